// Memory sizes on procmonctl's command line and in its output, in binary
// units only: `512MiB` and `512M` both mean 512 × 1024², so that what is
// written is what `get` shows back, and no one has to guess whether M is
// 1000² or 1024².

/** One binary unit and how many bytes it holds. */
const UNITS: readonly (readonly [string, number])[] = [
  ["TiB", 1024 ** 4],
  ["GiB", 1024 ** 3],
  ["MiB", 1024 ** 2],
  ["KiB", 1024],
];

const FACTORS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Reads a size: bytes (`1048576`), or a number and a binary unit, `B`, `K`
 * or `KiB`, `M` or `MiB`, `G` or `GiB`, `T` or `TiB`, in any case (`512MiB`,
 * `1.5g`, `100 M`). Fractions are rounded down to whole bytes.
 * @throws Error saying what is wrong: a decimal unit (`MB`) is refused, not guessed at.
 */
export function parseSize(text: string): bigint {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const [, number = "", unit = ""] = match ?? [];
  const factor = FACTORS[unit.toLowerCase()];
  if (match === null || factor === undefined) {
    const decimal = /^[kmgt]b$/i.test(unit);
    throw new Error(
      decimal
        ? `"${text}": write ${unit[0]?.toUpperCase()}iB or ${unit[0]?.toUpperCase()} (sizes are binary: 1M is 1024 KiB)`
        : `"${text}" is not a size such as 512MiB, 1G or 1048576 (bytes)`,
    );
  }
  const bytes = Math.floor(Number(number) * factor);
  if (!Number.isSafeInteger(bytes)) throw new Error(`"${text}" is too large`);
  return BigInt(bytes);
}

/** Formats bytes for people: `512 B`, `12.3 MiB`, `1.0 GiB`. */
export function formatBytes(bytes: bigint | number): string {
  const n = Number(bytes);
  for (const [unit, size] of UNITS) {
    if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}

/**
 * Formats a configured size exactly, as it could be written back on the
 * command line: `512MiB`, `1GiB`, `1536KiB`, else bytes.
 */
export function formatSize(bytes: bigint): string {
  for (const [unit, size] of UNITS) {
    const big = BigInt(size);
    if (bytes >= big && bytes % big === 0n) return `${bytes / big}${unit}`;
  }
  return `${bytes}B`;
}
