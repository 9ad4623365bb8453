import type { CoreEvent, EventSink } from "./events.js";

/**
 * Where the supervisor's events go: each subscriber is called for every
 * event, in the order they subscribed (the event log numbers it first, so
 * that those after it can read its seq).
 */
export class EventBus {
  private readonly subscribers: EventSink[] = [];

  /** The sink to hand the supervisor. */
  readonly emit: EventSink = (event: CoreEvent) => {
    for (const subscriber of this.subscribers) subscriber(event);
  };

  /** Calls `subscriber` for every event from now on. */
  subscribe(subscriber: EventSink): void {
    this.subscribers.push(subscriber);
  }
}
