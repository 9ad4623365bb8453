import { LAST_DELIVERED_SEQ_KEY, OLDEST_RESUMABLE_SEQ_KEY } from "@procmon/api/metadata";
import type { Clock } from "../core/clock.js";
import { ProcmonError } from "../core/errors.js";
import type { CoreEvent } from "../core/events.js";
import { estimatedBytes } from "./event-size.js";
import { type EventFilter, type LoggedEvent, matches } from "./logged-event.js";
import { Retained } from "./retained.js";

export type { EventFilter, LoggedEvent } from "./logged-event.js";

/**
 * How much history the log keeps for resuming subscribers: state events and
 * output lines in windows of their own, each bounded by count and by bytes (by
 * each event's estimated heap, see event-size.ts). A subscriber is ended once it
 * lags by half a window, so half the output window is the slack of one that
 * keeps up: 24 MiB holds 87,000 lines of 100 B, 2.2 s at 20,000 lines/s.
 */
export interface Retention {
  /** State events kept (everything but output). Defaults to 10000. */
  readonly stateEvents: number;
  /** Bytes of state events kept, estimated: `added` events hold whole specs. Defaults to 8 MiB. */
  readonly stateBytes: number;
  /** Output lines kept. Defaults to no limit: the bytes bound them. */
  readonly outputLines: number;
  /** Bytes of output lines kept, estimated. Defaults to 24 MiB. */
  readonly outputBytes: number;
}

/** The default retention. */
export const DEFAULT_RETENTION: Retention = {
  stateEvents: 10_000,
  stateBytes: 8 * 1024 * 1024,
  outputLines: Number.POSITIVE_INFINITY,
  outputBytes: 24 * 1024 * 1024,
};

/** Where a subscription delivers: a stream with backpressure. */
export interface SubscriberSink {
  /** Delivers one event; false means the consumer is full until `Subscription.resume()`. */
  write(logged: LoggedEvent): boolean;
  /** Ends the stream cleanly: the log is closed and everything was delivered. */
  end(): void;
  /** Ends the stream with an error (resource_exhausted for a subscriber left behind). */
  fail(error: ProcmonError): void;
}

/**
 * Numbers the core's events, keeps a bounded window of them (state events and
 * output lines apart, so a chatty process cannot push state events out), and
 * feeds subscribers from that window. A subscriber is a cursor into the
 * window, not a queue: replay and live delivery are the same walk, and a
 * subscriber that lags by half the window is ended while what it missed is
 * still there to resume from.
 */
export class EventLog {
  private seq = 0n;
  private readonly state: Retained;
  private readonly output: Retained;
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;

  constructor(
    private readonly clock: Clock,
    readonly retention: Retention = DEFAULT_RETENTION,
    /** The seq numbering continues after (a previous daemon's last); nothing before it is kept. */
    continueAfterSeq = 0n,
  ) {
    this.seq = continueAfterSeq;
    this.state = new Retained(retention.stateEvents, retention.stateBytes, continueAfterSeq);
    this.output = new Retained(retention.outputLines, retention.outputBytes, continueAfterSeq);
  }

  /** The seq of the last event appended; 0 before any. */
  get lastSeq(): bigint {
    return this.seq;
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** How many subscriptions are live. */
  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  /** Numbers `event`, keeps it, and delivers it to every subscriber that wants it. */
  append(event: CoreEvent): LoggedEvent {
    this.seq += 1n;
    const logged: LoggedEvent = {
      seq: this.seq,
      timeWallMs: Math.round(this.clock.wallNow()),
      event,
    };
    const buffer = event.kind === "output" ? this.output : this.state;
    buffer.push(logged, estimatedBytes(event));
    for (const subscription of this.subscriptions) subscription.advance();
    return logged;
  }

  /**
   * Starts a subscription: replays the kept events after `afterSeq` (if given)
   * then delivers live ones, with no gap and no duplicate.
   * @throws ProcmonError out_of_range when `afterSeq` is newer than the last
   * event or older than what is kept.
   */
  subscribe(filter: EventFilter, afterSeq: bigint | undefined, sink: SubscriberSink): Subscription {
    const from = afterSeq ?? this.seq;
    this.checkResumable(filter, from);
    const subscription = new Subscription(this, filter, sink, from, {
      state: this.state,
      output: this.output,
    });
    this.subscriptions.add(subscription);
    subscription.advance();
    return subscription;
  }

  /** Ends every subscription once it has delivered everything; refuses new appends' subscribers. */
  close(): void {
    this.closed = true;
    for (const subscription of this.subscriptions) subscription.advance();
  }

  /** @internal Called by a subscription that has ended. */
  drop(subscription: Subscription): void {
    this.subscriptions.delete(subscription);
  }

  private checkResumable(filter: EventFilter, afterSeq: bigint): void {
    if (afterSeq > this.seq) {
      throw new ProcmonError(
        "out_of_range",
        `after_seq ${afterSeq} is newer than the last event (${this.seq})`,
      );
    }
    const lost =
      this.state.lastEvictedSeq > afterSeq ||
      (filter.includeOutput && this.output.lastEvictedSeq > afterSeq);
    if (lost) {
      const oldest = filter.includeOutput
        ? maxBigint(this.state.lastEvictedSeq, this.output.lastEvictedSeq)
        : this.state.lastEvictedSeq;
      throw new ProcmonError(
        "out_of_range",
        `after_seq ${afterSeq} is older than the retained events (the oldest resumable is ${oldest}): list again and watch from its last_event_seq`,
        { details: { [OLDEST_RESUMABLE_SEQ_KEY]: String(oldest) } },
      );
    }
  }
}

function maxBigint(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** One subscriber's cursor into the log. */
export class Subscription {
  private stateIndex: number;
  private outputIndex: number;
  private lastDelivered: bigint;
  private blocked = false;
  private done = false;
  private readonly maxStateLag: number;
  private readonly maxStateLagBytes: number;
  private readonly maxOutputLag: number;
  private readonly maxOutputLagBytes: number;

  constructor(
    private readonly log: EventLog,
    private readonly filter: EventFilter,
    private readonly sink: SubscriberSink,
    afterSeq: bigint,
    private readonly buffers: { readonly state: Retained; readonly output: Retained },
  ) {
    const { state, output } = buffers;
    this.stateIndex = state.indexAfterSeq(afterSeq);
    this.outputIndex = output.indexAfterSeq(afterSeq);
    this.lastDelivered = afterSeq;
    // One that resumes far behind may catch up as long as its backlog does
    // not grow much more: it is allowed its starting lag plus a quarter
    // window, at least half a window, and never so much that events it has
    // not read are evicted before it could resume again.
    const allowance = (lag: number, capacity: number) =>
      Math.min(capacity * 0.9, Math.max(capacity / 2, lag + capacity / 4));
    this.maxStateLag = allowance(state.end - this.stateIndex, state.maxCount);
    this.maxStateLagBytes = allowance(state.bytesAfter(this.stateIndex), state.maxBytes);
    this.maxOutputLag = allowance(output.end - this.outputIndex, output.maxCount);
    this.maxOutputLagBytes = allowance(output.bytesAfter(this.outputIndex), output.maxBytes);
  }

  /** The seq of the last event handed to the sink (the cursor given, before any). */
  get lastDeliveredSeq(): bigint {
    return this.lastDelivered;
  }

  /** The consumer drained: deliver what is pending. */
  resume(): void {
    this.blocked = false;
    this.advance();
  }

  /** The consumer went away: release the cursor. */
  cancel(): void {
    this.finish();
  }

  /** @internal Delivers what the sink can take, then ends or fails the subscription if due. */
  advance(): void {
    if (this.done) return;
    // Only a blocked cursor can be overtaken by eviction (one that was not is
    // at the end), and the check below ends it in the same append; this one
    // keeps a walk from ever skipping what was evicted under it.
    if (this.evicted()) {
      this.failBehind();
      return;
    }
    while (!this.blocked) {
      const next = this.next();
      if (next === undefined) break;
      this.lastDelivered = next.seq;
      if (!this.sink.write(next)) this.blocked = true;
      if (this.done) return;
    }
    if (this.blocked) {
      this.failIfLeftBehind();
    } else if (this.log.isClosed) {
      this.finish();
      this.sink.end();
    }
  }

  /** The next event this subscriber wants, advancing past those it does not. */
  private next(): LoggedEvent | undefined {
    const { state, output } = this.buffers;
    for (;;) {
      const fromState = state.at(this.stateIndex);
      const fromOutput = this.filter.includeOutput ? output.at(this.outputIndex) : undefined;
      let chosen: LoggedEvent | undefined;
      if (fromState && (!fromOutput || fromState.seq < fromOutput.seq)) {
        this.stateIndex += 1;
        chosen = fromState;
      } else if (fromOutput) {
        this.outputIndex += 1;
        chosen = fromOutput;
      } else {
        return undefined;
      }
      if (matches(this.filter, chosen.event)) return chosen;
    }
  }

  /** True if events this subscriber has not read were evicted. */
  private evicted(): boolean {
    const { state, output } = this.buffers;
    return (
      this.stateIndex < state.start ||
      (this.filter.includeOutput && this.outputIndex < output.start)
    );
  }

  /** Ends a subscriber whose lag passed its allowance, while what it missed can still be replayed. */
  private failIfLeftBehind(): void {
    const { state, output } = this.buffers;
    const outputLag = this.filter.includeOutput ? output.end - this.outputIndex : 0;
    const outputLagBytes = this.filter.includeOutput ? output.bytesAfter(this.outputIndex) : 0;
    const behind =
      state.end - this.stateIndex > this.maxStateLag ||
      state.bytesAfter(this.stateIndex) > this.maxStateLagBytes ||
      outputLag > this.maxOutputLag ||
      outputLagBytes > this.maxOutputLagBytes ||
      this.evicted();
    if (behind) this.failBehind();
  }

  private failBehind(): void {
    const { state, output } = this.buffers;
    const pending =
      state.end - this.stateIndex + (this.filter.includeOutput ? output.end - this.outputIndex : 0);
    this.finish();
    this.sink.fail(
      new ProcmonError(
        "resource_exhausted",
        // "Sent", not "received": a client may drop what was in flight when the status came.
        `subscriber fell too far behind (${pending} events pending); the last event sent was seq ${this.lastDelivered}: resume with after_seq set to the last seq you received (at most ${this.lastDelivered})`,
        { details: { [LAST_DELIVERED_SEQ_KEY]: String(this.lastDelivered) } },
      ),
    );
  }

  private finish(): void {
    this.done = true;
    this.log.drop(this);
  }
}
