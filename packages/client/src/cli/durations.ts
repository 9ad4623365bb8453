// Durations on the command line (`500ms`, `1.5s`, `1m30s`, `1h`) and for
// people reading the CLI's output (`12ms`, `3s`, `2m5s`, `1h2m`).
import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";

const NANOS_PER_SECOND = 1_000_000_000n;

const MINUTE_NANOS = 60n * NANOS_PER_SECOND;
const HOUR_NANOS = 60n * MINUTE_NANOS;

const UNIT_NANOS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // micro sign, as Go accepts
  "\u03bcs": 1_000n, // Greek mu, as Go accepts
  ms: 1_000_000n,
  s: NANOS_PER_SECOND,
  m: MINUTE_NANOS,
  h: HOUR_NANOS,
};

// One "<number><unit>" term; the number needs a digit on at least one side of the dot.
const TERM = /(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** A duration the command line could not read; its message says how to write one. */
export class DurationSyntaxError extends Error {
  override readonly name = "DurationSyntaxError";
}

/**
 * Parses a positive Go-style duration (`500ms`, `1.5s`, `1m30s`, `1h`) into
 * whole nanoseconds, exactly (a fraction finer than 1ns is dropped).
 * @throws DurationSyntaxError when it is malformed, zero or negative.
 */
export function parseDurationNanos(text: string): bigint {
  const fail = (why: string) => new DurationSyntaxError(`"${text}" is not a duration: ${why}`);
  if (text === "") throw fail("it is empty");
  if (text.startsWith("-")) throw fail("it must be positive");
  let total = 0n;
  let at = 0;
  while (at < text.length) {
    TERM.lastIndex = at;
    const match = TERM.exec(text);
    const [whole = "", int = "", fraction = "", unit = ""] = match ?? [];
    if (match === null || (int === "" && fraction === "")) {
      throw fail("write a number and a unit (ns, us, ms, s, m or h), as in 500ms, 1.5s or 1m30s");
    }
    const scale = UNIT_NANOS[unit] ?? 0n;
    total += BigInt(int || "0") * scale;
    if (fraction !== "") total += (BigInt(fraction) * scale) / 10n ** BigInt(fraction.length);
    at += whole.length;
  }
  if (total <= 0n) throw fail("it must be positive");
  return total;
}

/** Parses a positive duration (see {@link parseDurationNanos}) into a google.protobuf.Duration. */
export function parseDuration(text: string): Duration {
  const nanos = parseDurationNanos(text);
  return create(DurationSchema, {
    seconds: nanos / NANOS_PER_SECOND,
    nanos: Number(nanos % NANOS_PER_SECOND),
  });
}

/** Parses a positive duration into milliseconds, rounded up so that 1ns stays positive. */
export function parseDurationMs(text: string): number {
  const nanos = parseDurationNanos(text);
  return Number((nanos + 999_999n) / 1_000_000n);
}

/** A google.protobuf.Duration in milliseconds (fractional); 0 when unset. */
export function durationToMs(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  return Number(duration.seconds) * 1_000 + duration.nanos / 1_000_000;
}

/**
 * Formats milliseconds for people, at the precision that matters at that
 * scale: `12ms` under a second, whole seconds under a minute (`3s`), then
 * `2m5s`, `1h2m` and `3d4h`.
 */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "0s";
  if (ms < 1_000) return `${Math.floor(ms)}ms`;
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return joinUnits(minutes, "m", seconds % 60, "s");
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return joinUnits(hours, "h", minutes % 60, "m");
  return joinUnits(Math.floor(hours / 24), "d", hours % 24, "h");
}

/**
 * Formats a configured duration (a timing of a spec) exactly, as it could be
 * written on the command line: `500ms`, `1.5s`, `1m30s`, `1h`.
 */
export function formatDuration(duration: Duration | undefined): string {
  if (duration === undefined) return "-";
  let nanos = duration.seconds * NANOS_PER_SECOND + BigInt(duration.nanos);
  if (nanos === 0n) return "0s";
  const hours = nanos / HOUR_NANOS;
  const minutes = (nanos % HOUR_NANOS) / MINUTE_NANOS;
  nanos %= MINUTE_NANOS;
  const out = `${hours > 0n ? `${hours}h` : ""}${minutes > 0n ? `${minutes}m` : ""}`;
  if (nanos === 0n) return out;
  if (out !== "" || nanos >= NANOS_PER_SECOND) return `${out}${decimal(nanos, 9)}s`;
  if (nanos >= 1_000_000n) return `${decimal(nanos, 6)}ms`;
  if (nanos >= 1_000n) return `${decimal(nanos, 3)}us`;
  return `${nanos}ns`;
}

function joinUnits(big: number, bigUnit: string, small: number, smallUnit: string): string {
  return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit}${small}${smallUnit}`;
}

/** `value / 10^digits` as a decimal without trailing zeros. */
function decimal(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const whole = value / scale;
  const fraction = value % scale;
  if (fraction === 0n) return String(whole);
  return `${whole}.${String(fraction).padStart(digits, "0").replace(/0+$/, "")}`;
}
