import type { CoreEvent } from "../core/events.js";

/** An event with its daemon-wide sequence number and wall-clock time. */
export interface LoggedEvent {
  /** Strictly increasing, no gaps, starting at 1. */
  readonly seq: bigint;
  /** Wall-clock ms since the epoch, an integer. */
  readonly timeWallMs: number;
  /** What happened. */
  readonly event: CoreEvent;
}

/** Which events a subscriber wants. */
export interface EventFilter {
  /** Only these processes; empty for all. */
  readonly names: ReadonlySet<string>;
  /** Also output lines. */
  readonly includeOutput: boolean;
}

/** True if `filter` selects `event`. */
export function matches(filter: EventFilter, event: CoreEvent): boolean {
  if (event.kind === "output" && !filter.includeOutput) return false;
  return filter.names.size === 0 || filter.names.has(event.process);
}
