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

/** The word that means every process, wherever a command takes a name or a pattern. */
export const ALL = "all";

/** A glob of name characters (letters, digits, . _ - : @) and glob syntax. */
const GLOB = /^[A-Za-z0-9._:@*?[\]!^\\-]+$/;

/**
 * True if `arg` names processes by pattern rather than one by name: `all`,
 * or a word with a glob character (`*`, `?`, `[`, none of which a process
 * name may hold) made only of name characters and glob syntax. Anything else
 * (a name with a space or a control character, say) goes to the daemon as a
 * name, for its own error.
 */
export function isPattern(arg: string): boolean {
  return arg === ALL || (/[*?[]/.test(arg) && GLOB.test(arg));
}

type GlobToken =
  | { readonly kind: "star" }
  | { readonly kind: "one" }
  | { readonly kind: "char"; readonly char: string }
  | {
      readonly kind: "set";
      readonly negated: boolean;
      readonly ranges: readonly (readonly [string, string])[];
    };

/**
 * Reads a shell-style glob: `*` any run of characters, `?` one character,
 * `[abc]`, `[a-z]` and `[!abc]` (or `[^abc]`) one character of (or not of) a
 * set, `\x` the character x; a `[` without its `]` is itself. Nothing else
 * is special: the pattern is never turned into a regular expression, so no
 * character of it can mean more than this.
 */
function globTokens(pattern: string): GlobToken[] {
  const chars = Array.from(pattern);
  const tokens: GlobToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === "*") tokens.push({ kind: "star" });
    else if (c === "?") tokens.push({ kind: "one" });
    else if (c === "\\" && i + 1 < chars.length)
      tokens.push({ kind: "char", char: chars[++i] as string });
    else if (c === "[") {
      const set = readSet(chars, i + 1);
      if (set === undefined) tokens.push({ kind: "char", char: c });
      else {
        tokens.push(set.token);
        i = set.end;
      }
    } else tokens.push({ kind: "char", char: c });
  }
  return tokens;
}

/** The set that starts after a `[` at `from`, and the index of its `]`; undefined if it is not closed. */
function readSet(chars: string[], from: number): { token: GlobToken; end: number } | undefined {
  let i = from;
  const negated = chars[i] === "!" || chars[i] === "^";
  if (negated) i++;
  const ranges: [string, string][] = [];
  // A `]` first in the set is one of its characters.
  for (let first = true; i < chars.length; first = false) {
    const c = chars[i] as string;
    if (c === "]" && !first) return { token: { kind: "set", negated, ranges }, end: i };
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      ranges.push([c, chars[i + 2] as string]);
      i += 3;
    } else {
      ranges.push([c, c]);
      i++;
    }
  }
  return undefined;
}

function matchesToken(token: GlobToken, char: string): boolean {
  switch (token.kind) {
    case "one":
      return true;
    case "char":
      return token.char === char;
    case "set": {
      const cp = char.codePointAt(0) ?? 0;
      const inSet = token.ranges.some(
        ([lo, hi]) => cp >= (lo.codePointAt(0) ?? 0) && cp <= (hi.codePointAt(0) ?? 0),
      );
      return inSet !== token.negated;
    }
    default:
      return false;
  }
}

/**
 * A test of names against `pattern`: `all` matches every name, anything else
 * is read as a glob (see {@link globTokens}) that must match the whole name.
 * Runs in time proportional to name × pattern: a star backtracks only to the
 * latest star, never exponentially.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  if (pattern === ALL) return () => true;
  const tokens = globTokens(pattern);
  return (name) => {
    const chars = Array.from(name);
    let t = 0;
    let c = 0;
    let starT = -1;
    let starC = 0;
    while (c < chars.length) {
      const token = tokens[t];
      if (token?.kind === "star") {
        starT = t++;
        starC = c;
      } else if (token !== undefined && matchesToken(token, chars[c] as string)) {
        t++;
        c++;
      } else if (starT >= 0) {
        t = starT + 1;
        c = ++starC;
      } else return false;
    }
    while (tokens[t]?.kind === "star") t++;
    return t === tokens.length;
  };
}
