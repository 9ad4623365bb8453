// Process names as the CLI lists and matches them: a natural order (`p2`
// before `p10`; the daemon sorts by plain string) and shell-style globs.

/**
 * Compares two names in natural order: runs of ASCII digits compare as
 * numbers (`p2` < `p10`), everything else by UTF-16 code unit, as the daemon
 * does. Equal numbers with different leading zeros (`p01`, `p1`) fall back
 * to the plain order, so the order is total and names never tie.
 */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (isDigit(a, i) && isDigit(b, j)) {
      const x = digitRun(a, i);
      const y = digitRun(b, j);
      const order = compareDigits(x, y);
      if (order !== 0) return order;
      i += x.length;
      j += y.length;
      continue;
    }
    const order = plainCompare(a[i] ?? "", b[j] ?? "");
    if (order !== 0) return order;
    i++;
    j++;
  }
  const rest = a.length - i - (b.length - j);
  return rest !== 0 ? Math.sign(rest) : plainCompare(a, b);
}

function isDigit(text: string, at: number): boolean {
  const code = text.charCodeAt(at);
  return code >= 0x30 && code <= 0x39;
}

function digitRun(text: string, from: number): string {
  let end = from;
  while (end < text.length && isDigit(text, end)) end++;
  return text.slice(from, end);
}

/** Two runs of ASCII digits, by value, without turning them into numbers (no overflow). */
function compareDigits(x: string, y: string): number {
  const u = x.replace(/^0+/, "");
  const v = y.replace(/^0+/, "");
  if (u.length !== v.length) return u.length - v.length;
  return plainCompare(u, v);
}

function plainCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The items sorted by name in natural order (a new array). */
export function byName<T>(items: readonly T[], nameOf: (item: T) => string): T[] {
  return [...items].sort((a, b) => naturalCompare(nameOf(a), nameOf(b)));
}
