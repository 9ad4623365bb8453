import { performance } from "node:perf_hooks";
import type { Clock, Timer } from "../core/clock.js";

/** setTimeout fires at once, with a warning, for delays above this (about 24.8 days). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The real clock: performance.now() for durations, Date.now() for timestamps, Node timers. */
export const nodeClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer: (delayMs, fn) => setLongTimer(delayMs, fn),
};

/** A setTimeout that also honours delays too long for one Node timer, by chaining them. */
function setLongTimer(delayMs: number, fn: () => void): Timer {
  let handle: NodeJS.Timeout;
  const arm = (remainingMs: number): void => {
    if (remainingMs > MAX_TIMEOUT_MS) {
      handle = setTimeout(() => arm(remainingMs - MAX_TIMEOUT_MS), MAX_TIMEOUT_MS);
    } else {
      handle = setTimeout(fn, remainingMs);
    }
  };
  arm(delayMs);
  return { cancel: () => clearTimeout(handle) };
}
