import type { Backoff } from "./backoff.js";

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
}

/** What follows the end of a run, and the backoff from then on. */
export type Decision =
  /** Start it again now; `counted` says whether restart_count counts it. */
  | { readonly next: "start"; readonly counted: boolean; readonly backoff: Backoff }
  /** Wait `delayMs`, then start it again (counted). */
  | { readonly next: "backoff"; readonly delayMs: number; readonly backoff: Backoff }
  /** Keep it stopped. */
  | { readonly next: "stopped"; readonly backoff: Backoff }
  /** Forget it: it was being removed. */
  | { readonly next: "forget"; readonly backoff: Backoff };

/** True if the run ended before its threshold (a failed spawn included) by itself. */
export function isInstantDeath(end: RunEnd): boolean {
  return end.requested === undefined && (end.uptimeMs ?? 0) < end.thresholdMs;
}

/**
 * Twisted's rule, in one place: a run that lived at least `threshold` proves
 * the process healthy and resets the backoff, however it ended; one that died
 * sooner by itself (or was never spawned) waits the current delay, and the
 * next delay doubles. A requested stop decides what follows itself, and is
 * never a death.
 */
export function decide(end: RunEnd): Decision {
  const longRun = end.uptimeMs !== undefined && end.uptimeMs >= end.thresholdMs;
  const backoff = longRun ? end.backoff.reset() : end.backoff;
  switch (end.requested) {
    case "start":
      return { next: "start", counted: false, backoff };
    case "stay-stopped":
      return { next: "stopped", backoff };
    case "forget":
      return { next: "forget", backoff };
    case undefined:
      if (longRun) return { next: "start", counted: true, backoff };
      return { next: "backoff", delayMs: backoff.delayMs, backoff: backoff.next() };
  }
}
