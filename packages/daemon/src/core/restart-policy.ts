import type { Backoff } from "./backoff.js";
import type { RestartPolicy } from "./types.js";

/** What a request asked to follow the end of the run it stopped. */
export type Requested = "start" | "stay-stopped" | "forget";

/** How a run ended, as the restart rule needs to know it. */
export interface RunEnd {
  /** How long it ran; undefined when it could not even be spawned. */
  readonly uptimeMs: number | undefined;
  /** A run shorter than this is an instant death. */
  readonly thresholdMs: number;
  /** What the stop that ended it asked for; undefined when it died by itself. */
  readonly requested: Requested | undefined;
  /** The backoff before this end. */
  readonly backoff: Backoff;
  /** Its exit code; null when a signal ended it or it never ran. Defaults to null. */
  readonly code?: number | null;
  /** The spec's restart policy. Defaults to "always". */
  readonly restart?: RestartPolicy;
  /** The codes that count as success under "on-failure". Defaults to [0]. */
  readonly successExitCodes?: readonly number[];
  /** Instant deaths in a row that give up; 0 never. Defaults to 0. */
  readonly maxInstantDeaths?: number;
  /** Instant deaths in a row before this end. Defaults to 0. */
  readonly instantDeaths?: number;
}

/** What follows the end of a run, the backoff from then on, and the instant deaths in a row. */
export type Decision =
  /** Start it again now; `counted` says whether restart_count counts it. */
  (
    | { readonly next: "start"; readonly counted: boolean }
    /** Wait `delayMs`, then start it again (counted). */
    | { readonly next: "backoff"; readonly delayMs: number }
    /** Keep it stopped. */
    | { readonly next: "stopped" }
    /** Forget it: it was being removed. */
    | { readonly next: "forget" }
    /** Leave it ended: its policy does not restart it. */
    | { readonly next: "exited" }
    /** Give up on it: `instantDeaths` in a row reached the spec's maximum. */
    | { readonly next: "failed" }
  ) & { readonly backoff: Backoff; readonly instantDeaths: number };

/** True if the run ended before its threshold (a failed spawn included) by itself. */
export function isInstantDeath(end: RunEnd): boolean {
  return end.requested === undefined && (end.uptimeMs ?? 0) < end.thresholdMs;
}

/**
 * Twisted's rule, in one place, with the policies of v1.1 over it: a run
 * that lived at least `threshold` proves the process healthy and resets the
 * backoff and the count of instant deaths, however it ended; one that died
 * sooner by itself (or was never spawned) is an instant death. A requested
 * stop decides what follows itself, and is never a death. A run that ended by
 * itself is then, in this order: left ended under "never", and under
 * "on-failure" when its code is a success; given up on when its instant
 * deaths in a row reach `maxInstantDeaths` (unless 0); after a long run
 * started again at once; after an instant death started again after the
 * current delay, the next one doubling.
 */
export function decide(end: RunEnd): Decision {
  const longRun = end.uptimeMs !== undefined && end.uptimeMs >= end.thresholdMs;
  const backoff = longRun ? end.backoff.reset() : end.backoff;
  const before = end.instantDeaths ?? 0;
  switch (end.requested) {
    case "start":
      return { next: "start", counted: false, backoff, instantDeaths: before };
    case "stay-stopped":
      return { next: "stopped", backoff, instantDeaths: before };
    case "forget":
      return { next: "forget", backoff, instantDeaths: before };
    case undefined:
      break;
  }
  const instantDeaths = longRun ? 0 : before + 1;
  const restart = end.restart ?? "always";
  const code = end.code ?? null;
  const succeeded = code !== null && (end.successExitCodes ?? [0]).includes(code);
  if (restart === "never" || (restart === "on-failure" && succeeded)) {
    return { next: "exited", backoff, instantDeaths };
  }
  const limit = end.maxInstantDeaths ?? 0;
  if (!longRun && limit > 0 && instantDeaths >= limit) {
    return { next: "failed", backoff, instantDeaths };
  }
  if (longRun) return { next: "start", counted: true, backoff, instantDeaths };
  return { next: "backoff", delayMs: backoff.delayMs, backoff: backoff.next(), instantDeaths };
}
