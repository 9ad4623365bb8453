import { ProcmonError } from "./errors.js";

/**
 * The longest delay a Node timer honours (2^31 - 1 ms, about 24.8 days): a
 * longer one fires at once, so policies must stay at or under it.
 */
export const MAX_DURATION_MS = 2_147_483_647;

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // micro sign, as Go accepts
  "\u03bcs": 1e-3, // Greek mu, as Go accepts
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

// One "<number><unit>" term; the number needs a digit on at least one side of the dot.
const TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/**
 * Parses a Go-style duration (`500ms`, `1.5s`, `1m30s`, `1h`) into whole
 * milliseconds, rounding sub-millisecond parts; throws invalid_argument otherwise.
 */
export function parseDuration(text: string): number {
  if (text === "0") return 0;
  if (text === "") throw invalidDuration(text, "it is empty");
  if (text.startsWith("-")) throw invalidDuration(text, "it must not be negative");
  const body = text.startsWith("+") ? text.slice(1) : text;
  if (body === "") throw invalidDuration(text, "it has no value");
  let total = 0;
  let at = 0;
  while (at < body.length) {
    TERM.lastIndex = at;
    const match = TERM.exec(body);
    if (match === null) {
      throw invalidDuration(
        text,
        /^\d*\.?\d*$/.test(body.slice(at))
          ? "a number needs a unit (ns, us, ms, s, m or h), as in 500ms or 5s"
          : "use a number and a unit (ns, us, ms, s, m or h), as in 500ms, 1.5s or 1m30s",
      );
    }
    const [whole, amount, unit] = match;
    total += Number(amount) * (UNIT_MS[unit ?? ""] ?? Number.NaN);
    at += whole.length;
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw invalidDuration(text, "it is too long");
  return ms;
}

/**
 * Formats milliseconds for people, Go-style but without zero parts: `500ms`,
 * `1.5s`, `1h`, `1h30m`; the result parses back with parseDuration.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  // Whole microseconds keep the arithmetic exact, and finer is never useful.
  const us = Math.round(ms * 1_000);
  if (us === 0) return "0s";
  const hours = Math.floor(us / 3_600_000_000);
  const minutes = Math.floor((us % 3_600_000_000) / 60_000_000);
  const restUs = us % 60_000_000;
  let out = "";
  if (hours > 0) out += `${hours}h`;
  if (minutes > 0) out += `${minutes}m`;
  if (restUs === 0) return out;
  if (out !== "" || restUs >= 1_000_000) return `${out}${decimal(restUs, 1_000_000)}s`;
  if (restUs >= 1_000) return `${decimal(restUs, 1_000)}ms`;
  return `${restUs}us`;
}

function invalidDuration(text: string, why: string): ProcmonError {
  return new ProcmonError(
    "invalid_argument",
    `duration ${JSON.stringify(text)} is invalid: ${why}`,
  );
}

/** `value / scale` as a decimal without trailing zeros, exact for integers. */
function decimal(value: number, scale: number): string {
  const whole = Math.floor(value / scale);
  const fraction = value % scale;
  if (fraction === 0) return String(whole);
  const digits = String(scale).length - 1;
  return `${whole}.${String(fraction).padStart(digits, "0").replace(/0+$/, "")}`;
}
