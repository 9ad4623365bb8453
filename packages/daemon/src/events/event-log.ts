import type { Clock } from "../core/clock.js";
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

/** A live subscription: receives matching events in seq order. */
export interface Subscriber {
  /** Called once per matching event, synchronously as it is appended. */
  onEvent(logged: LoggedEvent): void;
  /** Called once when the log closes (daemon shutdown). */
  onClose(): void;
}

/** True if `filter` selects `event`. */
export function matches(filter: EventFilter, event: CoreEvent): boolean {
  if (event.kind === "output" && !filter.includeOutput) return false;
  return filter.names.size === 0 || filter.names.has(event.process);
}

/**
 * Numbers the core's events and fans them out to live subscribers. Events are
 * appended synchronously by the core right after the state they describe, so
 * a snapshot taken together with `lastSeq` is consistent with it.
 */
export class EventLog {
  private seq = 0n;
  private readonly subscribers = new Map<Subscriber, EventFilter>();
  private closed = false;

  constructor(private readonly clock: Clock) {}

  /** The seq of the last event appended; 0 before any. */
  get lastSeq(): bigint {
    return this.seq;
  }

  /** Numbers `event` and delivers it to every matching subscriber. */
  append(event: CoreEvent): LoggedEvent {
    this.seq += 1n;
    const logged: LoggedEvent = {
      seq: this.seq,
      timeWallMs: Math.round(this.clock.wallNow()),
      event,
    };
    for (const [subscriber, filter] of this.subscribers) {
      if (matches(filter, event)) subscriber.onEvent(logged);
    }
    return logged;
  }

  /** Adds a live subscriber; returns the function that removes it. */
  subscribe(filter: EventFilter, subscriber: Subscriber): () => void {
    if (this.closed) {
      subscriber.onClose();
      return () => {};
    }
    this.subscribers.set(subscriber, filter);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Ends every subscription; later subscribers are closed at once. */
  close(): void {
    this.closed = true;
    const subscribers = [...this.subscribers.keys()];
    this.subscribers.clear();
    for (const subscriber of subscribers) subscriber.onClose();
  }
}
