// watch(): WatchEvents as an endless iterable. It reconnects when the stream
// breaks, resumes after the last seq it delivered, tells `onReconnect` before
// each attempt and gives up once the caller's bounds are spent.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";
import type { Event, WatchEventsRequestSchema } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { LAST_SEQ_KEY } from "@procmon/api/metadata";
import type { CallOptions } from "./call-options.js";
import { Code, ProcmonError } from "./errors.js";

/** What `watch()` follows, and how long it keeps reconnecting. */
export interface WatchOptions {
  /** Only these processes; empty or unset for all. */
  readonly names?: readonly string[];
  /** Also output lines. Defaults to false. */
  readonly includeOutput?: boolean;
  /** Start after this seq (replaying what the daemon kept); unset: from now. */
  readonly afterSeq?: bigint;
  /** Ends the iteration when aborted. */
  readonly signal?: AbortSignal;
  /**
   * The first reconnection delay, doubled up to 2 s and back to this once an
   * event is delivered. Defaults to 100.
   */
  readonly reconnectDelayMs?: number;
  /**
   * Called before each reconnection, with the attempt, the delay before it
   * and the error that broke the stream. An error it throws ends the
   * iteration with that error. Defaults to none.
   */
  readonly onReconnect?: (reconnection: Reconnection) => void;
  /**
   * How many reconnections it makes in a row without getting a live stream:
   * once that many have failed, the iteration throws the last error. 0: the
   * first break throws. Defaults to `Infinity` (reconnect for ever).
   */
  readonly maxReconnectAttempts?: number;
  /**
   * How long, in ms from the moment the stream broke, reconnecting may go
   * on: the last attempt is made when it has passed, and if that fails the
   * iteration throws its error. 0: the first break throws. Defaults to
   * `Infinity` (reconnect for ever).
   */
  readonly reconnectTimeoutMs?: number;
}

/**
 * What `watch()` tells `onReconnect`. The count starts again once a stream
 * is live (the daemon acknowledged it or delivered an event), so it counts
 * the failures since the watch last worked.
 */
export interface Reconnection {
  /** 1 for the first reconnection since the stream was last live, then 2, 3... */
  readonly attempt: number;
  /** How long it waits before connecting again, in ms. */
  readonly delayMs: number;
  /**
   * Why: what ended the stream, or failed the previous attempt. A stream the
   * daemon ended cleanly (it was shutting down) is an UNAVAILABLE saying so.
   */
  readonly error: ProcmonError;
}

/** The longest wait between two reconnections of watch(), in ms. */
export const MAX_RECONNECT_DELAY_MS = 2_000;

/** What watch() learns of a stream that the messages do not say. */
export interface StreamHooks {
  /** The response headers arrived: the daemon has the subscription in place. */
  readonly onLive?: () => void;
  /** The daemon ended the stream cleanly (status OK), with these trailers. */
  readonly onCleanEnd?: (trailers: Metadata) => void;
}

/** WatchEvents, with the hooks watch() needs. */
export type RawWatch = (
  request: MessageInitShape<typeof WatchEventsRequestSchema>,
  options: CallOptions | undefined,
  hooks?: StreamHooks,
) => AsyncIterable<Event>;

/** Errors after which a resumed stream may succeed. */
function isTransient(err: ProcmonError): boolean {
  return (
    err.code === Code.UNAVAILABLE ||
    err.code === Code.RESOURCE_EXHAUSTED ||
    err.code === Code.INTERNAL ||
    err.code === Code.UNKNOWN ||
    err.code === Code.CANCELLED
  );
}

/**
 * What watch() needs of the client. A ProcmonClient is one; its methods are
 * called through it, so that a wrapped one is honoured.
 */
export interface WatchSource {
  /** The socket, for error messages. */
  readonly socket: string;
  /** WatchEvents, which also takes the hooks its public type does not show. */
  readonly watchEvents: RawWatch;
  /** ListProcesses, for a cursor when the watch is given none. */
  listProcesses(options: CallOptions): Promise<{ readonly lastEventSeq: bigint }>;
}

/**
 * The events of WatchEvents after `options.afterSeq` (else after now), the
 * stream reopened after the last one delivered whenever it breaks, until
 * `options.signal` aborts or a bound of `options` is spent.
 */
export async function* watchWithResume(
  client: WatchSource,
  options: WatchOptions,
): AsyncGenerator<Event> {
  // Looked up now, on the client: a wrapped method is honoured.
  const watchEvents = client.watchEvents.bind(client);
  const { signal, onReconnect } = options;
  const firstDelay = options.reconnectDelayMs ?? 100;
  const maxAttempts = limitOption(options, "maxReconnectAttempts");
  const timeoutMs = limitOption(options, "reconnectTimeoutMs");
  let delay = firstDelay;
  // Aborted, even before it began: the iteration ends, it does not throw.
  if (signal?.aborted) return;
  // Without a cursor a reconnection could not know what it missed: take one now.
  let cursor: bigint;
  try {
    cursor =
      options.afterSeq ??
      (await client.listProcesses({ ...(signal ? { signal } : {}) })).lastEventSeq;
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  }
  // The reconnections that failed since the stream was last live, and when
  // it broke: a stream that is live (acknowledged, even if quiet) starts both afresh.
  let failed = 0;
  let brokenAtMs: number | undefined;
  const live = () => {
    failed = 0;
    brokenAtMs = undefined;
  };
  while (!signal?.aborted) {
    let error: ProcmonError;
    try {
      const stream = watchEvents(
        {
          names: [...(options.names ?? [])],
          includeOutput: options.includeOutput ?? false,
          afterSeq: cursor,
        },
        // Endless: the client's default deadline (meant for unary calls) must not end it.
        { ...(signal ? { signal } : {}), timeoutMs: Number.POSITIVE_INFINITY },
        {
          onLive: live,
          onCleanEnd: (trailers) => {
            // A clean end (daemon shutdown) sent everything this filter selects up
            // to the daemon's last seq: resume from there, even if the last event
            // this watcher received was older (it filters by name).
            const [last] = trailers.get(LAST_SEQ_KEY);
            if (typeof last === "string" && /^\d+$/.test(last) && BigInt(last) > cursor) {
              cursor = BigInt(last);
            }
          },
        },
      );
      for await (const event of stream) {
        live();
        delay = firstDelay;
        cursor = event.seq;
        yield event;
      }
      error = new ProcmonError(
        Code.UNAVAILABLE,
        `procmond at ${client.socket} ended the stream (it is shutting down)`,
      );
    } catch (err) {
      error = ProcmonError.from(err, client.socket);
      if (signal?.aborted) return;
      if (!isTransient(error)) throw error;
    }
    if (signal?.aborted) return;
    // Monotonic: a change of the wall clock must not cut or stretch the wait.
    const nowMs = performance.now();
    brokenAtMs ??= nowMs;
    failed += 1;
    const leftMs = timeoutMs - (nowMs - brokenAtMs);
    if (failed > maxAttempts || leftMs <= 0) throw error;
    // The last attempt is made when the time is up, not after it.
    const delayMs = Math.min(delay, leftMs);
    onReconnect?.({ attempt: failed, delayMs, error });
    await sleep(delayMs, signal);
    delay = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
  }
}

/** A give-up bound of watch(): a number ≥ 0 (`Infinity` by default). */
function limitOption(
  options: WatchOptions,
  name: "maxReconnectAttempts" | "reconnectTimeoutMs",
): number {
  const value = options[name] ?? Number.POSITIVE_INFINITY;
  // NaN would never compare as spent, and as a delay it would spin.
  if (!(value >= 0)) {
    throw new ProcmonError(
      Code.INVALID_ARGUMENT,
      `watch(): ${name} must be a number of 0 or more, not ${value}`,
    );
  }
  return value;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
