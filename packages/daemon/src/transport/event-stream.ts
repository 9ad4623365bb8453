import type { Writable } from "node:stream";

/** Bytes a subscriber may have written and not yet had taken by http2 before it counts as full. */
export const DEFAULT_IN_FLIGHT_BYTES = 256 * 1024;

/** A gRPC message's frame header: a compressed flag and the length, big-endian. */
const HEADER_BYTES = 5;

/** The part of an http2 stream the fast path writes to. */
export type FrameTarget = Pick<Writable, "write" | "writableEnded" | "destroyed">;

/** The part of a grpc-js server stream (a Node Writable in object mode) the event stream uses. */
export type MessageStream = Pick<Writable, "write">;

/**
 * The http2 stream under a grpc-js server call, when grpc-js is built as this
 * module expects (its server call holds the base call, and that the stream);
 * undefined otherwise, and then messages go through grpc-js one by one.
 */
export function http2StreamOf(call: unknown): FrameTarget | undefined {
  // Through the server interceptors' layers (ServerInterceptingCall.nextCall)
  // down to grpc-js's own call, which holds the stream.
  let layer = (call as { call?: unknown } | undefined)?.call as
    | { stream?: unknown; nextCall?: unknown }
    | undefined;
  for (let depth = 0; layer !== undefined && depth < 8; depth++) {
    const inner = layer.stream as
      | (FrameTarget & { sendTrailers?: unknown; respond?: unknown })
      | undefined;
    const looksRight =
      typeof inner?.write === "function" &&
      typeof inner.sendTrailers === "function" &&
      typeof inner.respond === "function" &&
      typeof inner.writableEnded === "boolean";
    if (looksRight) return inner;
    layer = layer.nextCall as typeof layer;
  }
  return undefined;
}

/**
 * Writes one subscriber's encoded events, batched and bounded.
 *
 * grpc-js sends a server stream's messages one per completed http2 write:
 * about two per event-loop turn, each with its own frame buffer, write request
 * and callbacks (bench/grpc-pacing.mjs). Under a hundred subscribers that
 * pacing left them seconds behind and the garbage filled a quarter of the
 * daemon's time. So when the call's http2 stream can be reached, the messages
 * written in one turn are framed together into one buffer, in one write,
 * after the turn's events are all appended. Otherwise each message goes
 * through grpc-js's own `write`.
 *
 * Fullness is counted in bytes (an event is 60 bytes, an output line up to
 * 64 KiB): the stream is full once `limit` bytes are queued or in flight, and
 * reopens, calling `onReady`, when half of them are gone, so a subscriber that
 * reads as fast as we write never waits on an empty pipe. `close` sends what
 * is queued at once, before the call's status.
 */
export class EventStream {
  #queued: Uint8Array[] = [];
  #queuedBytes = 0;
  #inFlight = 0;
  #full = false;
  #flushScheduled = false;
  #closed = false;
  /** Bytes taken by write() and written by http2 since the start. */
  #acceptedBytes = 0;
  #writtenBytes = 0;
  /** Behind by more than a delivery's wait: not waited for until it has caught up. */
  #lagging = false;
  /** Callbacks of whenWritten(), each with the #written count it waits for, in order. */
  #waiters: Array<[number, () => void]> = [];

  constructor(
    private readonly messages: MessageStream,
    /** The http2 stream to write framed batches to, if reachable. */
    private readonly frames: FrameTarget | undefined,
    private readonly onReady: () => void,
    private readonly limit = DEFAULT_IN_FLIGHT_BYTES,
  ) {}

  /** Bytes queued or written and not yet taken by http2. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#inFlight;
  }

  /**
   * Calls `done` once what was written so far has been taken by http2 (or the
   * stream is full or closed: a subscriber that does not keep up is not
   * waited for). Returns false, without calling it, if there is nothing to wait for.
   */
  whenWritten(done: () => void): boolean {
    if (this.#closed || this.#full || this.#lagging) return false;
    if (this.#writtenBytes >= this.#acceptedBytes) return false;
    this.#waiters.push([this.#acceptedBytes, done]);
    return true;
  }

  /**
   * Counts the subscriber as one that does not keep up (it took too long to
   * take what was written): its waiters are called now, and none waits for it
   * again until it has taken everything.
   */
  lagBehind(): void {
    if (this.#waiters.length === 0) return;
    this.#lagging = true;
    this.#release(Number.POSITIVE_INFINITY);
  }

  /** Queues one encoded message; false means full until `onReady` is called. */
  write(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#acceptedBytes += (this.frames === undefined ? 0 : HEADER_BYTES) + bytes.byteLength;
    if (this.frames === undefined) {
      const size = bytes.byteLength;
      this.#inFlight += size;
      this.messages.write(bytes, () => this.#written(size));
    } else {
      this.#queued.push(bytes);
      this.#queuedBytes += HEADER_BYTES + bytes.byteLength;
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    }
    if (this.pendingBytes >= this.limit) {
      this.#full = true;
      this.#release(Number.POSITIVE_INFINITY);
    }
    return !this.#full;
  }

  /** Writes what is queued, now. */
  flush(): void {
    this.#flushScheduled = false;
    const frames = this.frames;
    const size = this.#queuedBytes;
    if (frames === undefined || size === 0) return;
    const queued = this.#queued;
    this.#queued = [];
    this.#queuedBytes = 0;
    // The call may have been ended under us (a deadline, a cancel): writing
    // after the end would raise an error event nobody listens to.
    if (frames.writableEnded || frames.destroyed) return;
    const batch = Buffer.allocUnsafe(size);
    let at = 0;
    for (const message of queued) {
      batch[at] = 0; // not compressed
      batch.writeUInt32BE(message.byteLength, at + 1);
      batch.set(message, at + HEADER_BYTES);
      at += HEADER_BYTES + message.byteLength;
    }
    this.#inFlight += size;
    frames.write(batch, () => this.#written(size));
  }

  /** Sends what is queued, then no more: the caller ends the call next. */
  close(): void {
    this.flush();
    this.#closed = true;
    this.#release(Number.POSITIVE_INFINITY);
  }

  /** Calls the waiters whose bytes are all written by `upTo`. */
  #release(upTo: number): void {
    let n = 0;
    while (n < this.#waiters.length && (this.#waiters[n] as [number, () => void])[0] <= upTo) n++;
    if (n === 0) return;
    for (const [, done] of this.#waiters.splice(0, n)) done();
  }

  #written(size: number): void {
    this.#inFlight -= size;
    this.#writtenBytes += size;
    this.#release(this.#writtenBytes);
    if (this.#lagging && this.#writtenBytes >= this.#acceptedBytes) this.#lagging = false;
    if (this.#full && !this.#closed && this.pendingBytes <= this.limit / 2) {
      this.#full = false;
      this.onReady();
    }
  }
}

/**
 * The event streams of the daemon's subscribers, for what must wait until
 * the events made so far have reached them (the shim forgets output only
 * once it has): see {@link EventStream.whenWritten}. A subscriber that has
 * not taken them within `waitMs` is not waited for (nor again until it has
 * caught up): a stalled reader must not pace the children's output.
 */
export class Deliveries {
  readonly #streams = new Set<EventStream>();

  constructor(private readonly waitMs = 500) {}

  add(stream: EventStream): void {
    this.#streams.add(stream);
  }

  delete(stream: EventStream): void {
    this.#streams.delete(stream);
  }

  /** Calls `done` once every stream that keeps up has written what it was given so far. */
  after(done: () => void): void {
    let waiting = 1;
    const waitedOn: EventStream[] = [];
    let timer: NodeJS.Timeout | undefined;
    const one = () => {
      waiting -= 1;
      if (waiting > 0) return;
      if (timer) clearTimeout(timer);
      done();
    };
    for (const stream of this.#streams) {
      if (!stream.whenWritten(one)) continue;
      waiting += 1;
      waitedOn.push(stream);
    }
    if (waitedOn.length > 0) {
      timer = setTimeout(() => {
        for (const stream of waitedOn) stream.lagBehind();
      }, this.waitMs);
      timer.unref();
    }
    one();
  }
}
