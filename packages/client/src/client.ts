import {
  create,
  type DescMessage,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Client,
  credentials,
  type CallOptions as GrpcCallOptions,
  Metadata,
  type StatusObject,
} from "@grpc/grpc-js";
import { Code, ProcmonError } from "./errors.js";
import {
  type Event,
  type Process,
  ProcessMonitor,
  type ProcessSpecSchema,
  type WatchEventsRequestSchema,
} from "./gen/procmon/v1/procmon_pb.js";
import { grpcMethodDefinition } from "./grpc-service.js";
import { defaultSocketPath } from "./socket.js";

/** How to reach procmond. */
export interface ClientOptions {
  /** The daemon's unix socket. Defaults to PROCMON_SOCKET, then the per-user default path. */
  readonly socket?: string;
  /** The deadline of every call that sets none, in ms. Defaults to none (streams never time out). */
  readonly timeoutMs?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting it cancels the call, which then rejects with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Deadline in ms from now; overrides the client's. `Infinity`: none, whatever the client's. */
  readonly timeoutMs?: number;
}

/** A process spec as a plain object or a message. */
export type ProcessSpecInit = MessageInitShape<typeof ProcessSpecSchema>;
/** WatchEvents' request as a plain object. */
export type WatchEventsInit = MessageInitShape<typeof WatchEventsRequestSchema>;

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

/** The answer of ListProcesses. */
export interface ProcessList {
  /** Every process, sorted by name. */
  readonly processes: Process[];
  /** The seq of the last event the snapshot reflects: resume a watch from it. */
  readonly lastEventSeq: bigint;
}

/** A typed procmon client: one async method per RPC. */
export interface ProcmonClient {
  /** The socket this client dials. */
  readonly socket: string;
  /** Registers a process and starts it; resolves with it running. */
  addProcess(spec: ProcessSpecInit, options?: CallOptions): Promise<Process>;
  /** Stops and forgets a process; resolves with its final state once it has exited. */
  removeProcess(name: string, options?: CallOptions): Promise<Process>;
  /** Starts a stopped process (or one in backoff, now). */
  startProcess(name: string, options?: CallOptions): Promise<Process>;
  /** Stops a process and keeps it stopped; resolves once it has exited. */
  stopProcess(name: string, options?: CallOptions): Promise<Process>;
  /** Stops a process and starts it again at once. */
  restartProcess(name: string, options?: CallOptions): Promise<Process>;
  /** Restarts every running or backing-off process at once. */
  restartAll(options?: CallOptions): Promise<Process[]>;
  /** Returns one process. */
  getProcess(name: string, options?: CallOptions): Promise<Process>;
  /** Returns every process and the seq of the last event the snapshot reflects. */
  listProcesses(options?: CallOptions): Promise<ProcessList>;
  /** The raw WatchEvents stream: events until aborted or the daemon ends it. */
  watchEvents(request?: WatchEventsInit, options?: CallOptions): AsyncIterable<Event>;
  /**
   * Events as an endless async iterable that survives broken streams and
   * daemon restarts: it reconnects and resumes after the last seq it
   * delivered. Ends when `options.signal` aborts.
   * @throws ProcmonError OUT_OF_RANGE when resuming is impossible (list again);
   *   the last error (UNAVAILABLE, say) once `maxReconnectAttempts` or
   *   `reconnectTimeoutMs` is spent.
   */
  watch(options?: WatchOptions): AsyncIterable<Event>;
  /** Closes the connection; later calls reject with FAILED_PRECONDITION. */
  close(): void;
}

/** The HTTP/2 receive window of the client's connection and of each stream. */
const FLOW_CONTROL_WINDOW_BYTES = 1024 * 1024;

/** Creates a client of the procmond listening on `options.socket`. */
export function createClient(options: ClientOptions = {}): ProcmonClient {
  const socket = options.socket ?? defaultSocketPath();
  const grpc = new Client(`unix:${socket}`, credentials.createInsecure(), {
    // Fail fast when nobody listens rather than retrying for the whole deadline.
    "grpc.enable_retries": 0,
    // Reconnecting to a local socket is cheap: after a daemon restart, be back
    // within watch()'s own retry delay, not after grpc-js's default backoff (up to 120 s).
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_DELAY_MS,
    // HTTP/2's default 64 KiB window lets the daemon send one window per round
    // trip: a watcher of a chatty process fell behind and was ended while it
    // still had time to read (bench/events.mjs). 1 MiB keeps up; it is also
    // what a paused watcher may hold unread before the daemon counts it behind.
    "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
  });

  function callOptions(options: CallOptions | undefined): GrpcCallOptions {
    const timeoutMs = options?.timeoutMs ?? optionsTimeout;
    return timeoutMs === undefined || timeoutMs === Number.POSITIVE_INFINITY
      ? {}
      : { deadline: Date.now() + timeoutMs };
  }
  const optionsTimeout = options.timeoutMs;
  // grpc-js throws a plain Error for a call on a closed channel; say so as a ProcmonError.
  let closed = false;
  const closedError = () =>
    new ProcmonError(Code.FAILED_PRECONDITION, `the client of procmond at ${socket} is closed`);

  function unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions | undefined,
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) {
        reject(ProcmonError.from(abortError(signal)));
        return;
      }
      if (closed) {
        reject(closedError());
        return;
      }
      const { path, requestSerialize, responseDeserialize } = grpcMethodDefinition(method);
      const call = grpc.makeUnaryRequest(
        path,
        requestSerialize,
        responseDeserialize,
        create(method.input, input),
        new Metadata(),
        callOptions(options),
        (err, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (err || response === undefined) reject(ProcmonError.from(err, socket));
          else resolve(response);
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  function serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions | undefined,
    hooks: StreamHooks = {},
  ): AsyncIterable<MessageShape<O>> {
    return {
      async *[Symbol.asyncIterator]() {
        const signal = options?.signal;
        if (signal?.aborted) throw ProcmonError.from(abortError(signal));
        if (closed) throw closedError();
        const { path, requestSerialize, responseDeserialize } = grpcMethodDefinition(method);
        const call = grpc.makeServerStreamRequest(
          path,
          requestSerialize,
          responseDeserialize,
          create(method.input, input),
          new Metadata(),
          callOptions(options),
        );
        const onAbort = () => call.cancel();
        signal?.addEventListener("abort", onAbort, { once: true });
        const status = new Promise<StatusObject>((resolve) => call.once("status", resolve));
        // Response headers: the daemon sends them once the stream is in place.
        // A status with no headers before it (trailers-only) emits none.
        if (hooks.onLive) call.once("metadata", hooks.onLive);
        try {
          for await (const message of call) yield message as MessageShape<O>;
          if (hooks.onCleanEnd) {
            const { code, metadata } = await status;
            if (code === Code.OK) hooks.onCleanEnd(metadata);
          }
        } catch (err) {
          throw ProcmonError.from(err, socket);
        } finally {
          signal?.removeEventListener("abort", onAbort);
          call.cancel();
        }
      },
    };
  }

  const m = ProcessMonitor.method;
  const processOf = async (p: Promise<{ process?: Process | undefined }>): Promise<Process> => {
    const { process } = await p;
    if (!process) throw new ProcmonError(Code.INTERNAL, "procmond answered without a process");
    return process;
  };

  const events: RawWatch = (request, o, hooks) => {
    const stream = serverStream(m.watchEvents, request, o, hooks);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const { event } of stream) if (event) yield event;
      },
    };
  };

  const client: ProcmonClient = {
    socket,
    addProcess: (spec, o) => processOf(unary(m.addProcess, { process: spec }, o)),
    removeProcess: (name, o) => processOf(unary(m.removeProcess, { name }, o)),
    startProcess: (name, o) => processOf(unary(m.startProcess, { name }, o)),
    stopProcess: (name, o) => processOf(unary(m.stopProcess, { name }, o)),
    restartProcess: (name, o) => processOf(unary(m.restartProcess, { name }, o)),
    restartAll: async (o) => (await unary(m.restartAll, {}, o)).processes,
    getProcess: (name, o) => processOf(unary(m.getProcess, { name }, o)),
    listProcesses: async (o) => {
      const { processes, lastEventSeq } = await unary(m.listProcesses, {}, o);
      return { processes, lastEventSeq };
    },
    // The third parameter is watch()'s hooks, not part of the public type.
    watchEvents: (request = {}, o, hooks?: StreamHooks) => events(request, o, hooks),
    watch: (o = {}) => watchWithResume(client, o),
    close: () => {
      closed = true;
      grpc.close();
    },
  };
  return client;
}

const MAX_RECONNECT_DELAY_MS = 2_000;

/**
 * Trailer of a WatchEvents stream that the daemon ended cleanly (shutdown):
 * the subscriber has been sent everything up to this seq that it selects.
 */
export const LAST_SEQ_KEY = "procmon-last-seq";

/** What watch() learns of a stream that the messages do not say. */
interface StreamHooks {
  /** The response headers arrived: the daemon has the subscription in place. */
  readonly onLive?: () => void;
  /** The daemon ended the stream cleanly (status OK), with these trailers. */
  readonly onCleanEnd?: (trailers: Metadata) => void;
}

/** WatchEvents, with the hooks watch() needs. */
type RawWatch = (
  request: WatchEventsInit,
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

async function* watchWithResume(
  client: ProcmonClient,
  options: WatchOptions,
): AsyncGenerator<Event> {
  // Through the client's own method (so a wrapped one is honoured), which
  // also takes the hooks its public type does not show.
  const watchEvents = client.watchEvents.bind(client) as RawWatch;
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

function abortError(signal: AbortSignal): Error & { code: number; details: string } {
  const reason = signal.reason instanceof Error ? signal.reason.message : "aborted";
  return Object.assign(new Error(reason), { code: 1, details: `call cancelled: ${reason}` });
}
