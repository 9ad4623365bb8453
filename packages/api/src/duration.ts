// The one duration codec of procmon: procmond's flags, ProcessSpec durations
// from the API and from config files, and procmonctl's options all read
// durations with this syntax and hold them to this limit.
import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";

/** The shortest duration procmon accepts: timers run in whole milliseconds. */
export const MIN_DURATION_MS = 1;

/**
 * The longest duration procmon accepts (2^31 - 1 ms, 596h31m23.647s): a Node
 * timer given a longer delay fires at once.
 */
export const MAX_DURATION_MS = 2_147_483_647;

const NANOS_PER_MS = 1_000_000n;
const NANOS_PER_SECOND = 1_000_000_000n;
const MINUTE_NANOS = 60n * NANOS_PER_SECOND;
const HOUR_NANOS = 60n * MINUTE_NANOS;

const UNIT_NANOS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // micro sign, as Go accepts
  "\u03bcs": 1_000n, // Greek mu, as Go accepts
  ms: NANOS_PER_MS,
  s: NANOS_PER_SECOND,
  m: MINUTE_NANOS,
  h: HOUR_NANOS,
};

// One "<number><unit>" term; the number needs a digit on at least one side of the dot.
const TERM = /(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** A duration that is malformed or out of range; the message says how to write one. */
export class DurationError extends Error {
  override readonly name = "DurationError";
}

/**
 * Reads a Go-style duration (`500ms`, `1.5s`, `1m30s`, `1h`; `0` alone is
 * zero) into whole nanoseconds, exactly (a fraction finer than 1ns is
 * dropped). Checks the syntax only: see {@link durationProblem} for the limit.
 * @throws DurationError naming the text and what is wrong with it.
 */
export function parseDurationNanos(text: string): bigint {
  const fail = (why: string) => new DurationError(`${quoted(text)} is not a duration: ${why}`);
  if (text === "0") return 0n;
  if (text === "") throw fail("it is empty");
  if (text.startsWith("-")) throw new DurationError(`${quoted(text)} must be positive`);
  let total = 0n;
  let at = 0;
  while (at < text.length) {
    TERM.lastIndex = at;
    const match = TERM.exec(text);
    const [whole = "", int = "", fraction = "", unit = ""] = match ?? [];
    if (match === null || (int === "" && fraction === "")) {
      throw fail(
        /^\d*\.?\d*$/.test(text.slice(at))
          ? "a number needs a unit (ns, us, ms, s, m or h), as in 500ms or 5s"
          : "write a number and a unit (ns, us, ms, s, m or h), as in 500ms, 1.5s or 1m30s",
      );
    }
    const scale = UNIT_NANOS[unit] ?? 0n;
    total += BigInt(int || "0") * scale;
    if (fraction !== "") total += (BigInt(fraction) * scale) / 10n ** BigInt(fraction.length);
    at += whole.length;
  }
  return total;
}

/**
 * What is wrong with a duration of `exactMs` milliseconds (fractions allowed),
 * as a predicate such as "must be positive", or undefined if procmon accepts
 * it: it must be positive, and rounded to
 * whole milliseconds (as procmon runs it) between {@link MIN_DURATION_MS} and
 * {@link MAX_DURATION_MS}.
 */
export function durationProblem(exactMs: number): string | undefined {
  if (!(exactMs > 0)) return "must be positive";
  const ms = roundMs(exactMs);
  if (ms < MIN_DURATION_MS) return `must be at least ${formatDurationMs(MIN_DURATION_MS)}`;
  if (ms > MAX_DURATION_MS) return `must be at most ${formatDurationMs(MAX_DURATION_MS)}`;
  return undefined;
}

/**
 * Reads a duration and checks it against procmon's limit; returns it in
 * whole milliseconds, rounded to the nearest, as procmon runs it.
 * @throws DurationError when it is malformed or out of range.
 */
export function parseDurationMs(text: string): number {
  const nanos = parseDurationNanos(text);
  checked(text, nanosToExactMs(nanos));
  return roundMs(nanosToExactMs(nanos));
}

/**
 * Reads a duration and checks it against procmon's limit, as a
 * google.protobuf.Duration holding exactly what was written.
 * @throws DurationError when it is malformed or out of range.
 */
export function parseDuration(text: string): Duration {
  const nanos = parseDurationNanos(text);
  checked(text, nanosToExactMs(nanos));
  return create(DurationSchema, {
    seconds: nanos / NANOS_PER_SECOND,
    nanos: Number(nanos % NANOS_PER_SECOND),
  });
}

/** A google.protobuf.Duration in (possibly fractional) milliseconds; 0 when unset. */
export function durationToExactMs(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  return Number(duration.seconds) * 1_000 + duration.nanos / 1e6;
}

/** Milliseconds rounded to the nearest whole one, as procmon's timers run them. */
export function roundMs(exactMs: number): number {
  // Math.round(-0.4) is -0, which would print as "0s" but compare oddly.
  return Math.round(exactMs) || 0;
}

/**
 * Formats milliseconds exactly, Go-style without zero parts (`500ms`, `1.5s`,
 * `1h30m`, `250us`); the result reads back with {@link parseDurationNanos}.
 */
export function formatDurationMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDurationMs(-ms)}`;
  // Whole nanoseconds keep the arithmetic exact, and finer is never written.
  return formatDurationNanos(BigInt(Math.round(ms * 1e6)));
}

/** Formats nanoseconds exactly, Go-style without zero parts: `500ms`, `1.5s`, `1h30m`. */
export function formatDurationNanos(nanos: bigint): string {
  if (nanos < 0n) return `-${formatDurationNanos(-nanos)}`;
  if (nanos === 0n) return "0s";
  const hours = nanos / HOUR_NANOS;
  const minutes = (nanos % HOUR_NANOS) / MINUTE_NANOS;
  const rest = nanos % MINUTE_NANOS;
  const out = `${hours > 0n ? `${hours}h` : ""}${minutes > 0n ? `${minutes}m` : ""}`;
  if (rest === 0n) return out;
  if (out !== "" || rest >= NANOS_PER_SECOND) return `${out}${decimal(rest, 9)}s`;
  if (rest >= NANOS_PER_MS) return `${decimal(rest, 6)}ms`;
  if (rest >= 1_000n) return `${decimal(rest, 3)}us`;
  return `${rest}ns`;
}

function checked(text: string, exactMs: number): void {
  const problem = durationProblem(exactMs);
  if (problem !== undefined) {
    throw new DurationError(`${quoted(text)} ${problem}`);
  }
}

function nanosToExactMs(nanos: bigint): number {
  return Number(nanos / NANOS_PER_MS) + Number(nanos % NANOS_PER_MS) / 1e6;
}

/** `value / 10^digits` as a decimal without trailing zeros. */
function decimal(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const whole = value / scale;
  const fraction = value % scale;
  if (fraction === 0n) return String(whole);
  return `${whole}.${String(fraction).padStart(digits, "0").replace(/0+$/, "")}`;
}

/** The text as written, cut short so that one bad value cannot flood a message. */
function quoted(text: string): string {
  return text.length > 64 ? `${JSON.stringify(text.slice(0, 64))}...` : JSON.stringify(text);
}
