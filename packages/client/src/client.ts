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
import {
  type Event,
  type GetDaemonInfoResponse,
  type Process,
  ProcessMonitor,
  type ReloadConfigResponse,
  type WatchEventsRequestSchema,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { grpcMethodDefinition } from "@procmon/api/grpc";
import { defaultSocketPath, socketPathProblem } from "@procmon/api/socket";
import type { CallOptions } from "./call-options.js";
import { Code, ProcmonError } from "./errors.js";
import { createProcessSpec, type ProcessSpecInit } from "./spec-input.js";

export type { ProcessSpecInit } from "./spec-input.js";

import {
  MAX_RECONNECT_DELAY_MS,
  type RawWatch,
  type StreamHooks,
  type WatchOptions,
  watchWithResume,
} from "./watch-resume.js";

/** How to reach procmond. */
export interface ClientOptions {
  /** The daemon's unix socket. Defaults to PROCMON_SOCKET, then the per-user default path. */
  readonly socket?: string;
  /** The deadline of every call that sets none, in ms. Defaults to none (streams never time out). */
  readonly timeoutMs?: number;
}

/** WatchEvents' request as a plain object. */
export type WatchEventsInit = MessageInitShape<typeof WatchEventsRequestSchema>;

/** The options of getProcess and listProcesses: a call's, and whether to read the processes' usage. */
export interface ProcessQueryOptions extends CallOptions {
  /**
   * Fill in `cpuSeconds` and `rssBytes`, the CPU time and resident memory of
   * each process's whole tree (the daemon reads them from /proc). Defaults
   * to false: both are 0.
   */
  readonly includeStats?: boolean;
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
  /**
   * Registers a process and starts it; resolves with it running. Durations
   * may be `"5s"`, ms or a Duration; a bad one rejects with INVALID_ARGUMENT
   * naming the field, before any call.
   */
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
  /** Returns one process; with `includeStats`, its tree's CPU time and memory too. */
  getProcess(name: string, options?: ProcessQueryOptions): Promise<Process>;
  /**
   * Returns every process and the seq of the last event the snapshot
   * reflects; with `includeStats`, each tree's CPU time and memory too.
   */
  listProcesses(options?: ProcessQueryOptions): Promise<ProcessList>;
  /** Says what the daemon is: its version, pid, and what spawns its children. */
  getDaemonInfo(options?: CallOptions): Promise<GetDaemonInfoResponse>;
  /**
   * Replaces a process's spec (matched by its name): restarted with it if
   * anything but the name changed; resolves with the process.
   */
  updateProcess(spec: ProcessSpecInit, options?: CallOptions): Promise<Process>;
  /**
   * Re-reads the daemon's --config, as SIGHUP does; resolves with the names
   * added, removed, changed and unchanged.
   * @throws ProcmonError FAILED_PRECONDITION without --config, INVALID_ARGUMENT for a bad file.
   */
  reloadConfig(options?: CallOptions): Promise<ReloadConfigResponse>;
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

/**
 * The wire spec of `spec`; none for a caller (without the types) who gave
 * none, which the daemon answers with INVALID_ARGUMENT "process is required".
 */
function specOrNone(spec: ProcessSpecInit | undefined) {
  return spec === undefined || spec === null ? undefined : createProcessSpec(spec);
}

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
  // Why a call is not even tried: aborted already, the client is closed, or
  // the socket is refused (checked before every call, not once: the
  // directory may change).
  const refusal = (signal: AbortSignal | undefined): ProcmonError | undefined => {
    if (signal?.aborted) return ProcmonError.from(abortError(signal));
    if (closed) return closedError();
    const problem = socketPathProblem(socket);
    if (problem === undefined) return undefined;
    const code = problem.code === "too_long" ? Code.INVALID_ARGUMENT : Code.FAILED_PRECONDITION;
    return new ProcmonError(code, problem.message);
  };

  /** grpc-js's first arguments for a call of `method` with `input`. */
  function requestOf<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O> | DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions | undefined,
  ) {
    const { path, requestSerialize, responseDeserialize } = grpcMethodDefinition(method);
    return [
      path,
      requestSerialize,
      responseDeserialize,
      create(method.input, input),
      new Metadata(),
      callOptions(options),
    ] as const;
  }

  function unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions | undefined,
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const signal = options?.signal;
      const refused = refusal(signal);
      if (refused) {
        reject(refused);
        return;
      }
      const call = grpc.makeUnaryRequest(...requestOf(method, input, options), (err, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (err || response === undefined) reject(ProcmonError.from(err, socket));
        else resolve(response);
      });
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
        const refused = refusal(signal);
        if (refused) throw refused;
        const call = grpc.makeServerStreamRequest(...requestOf(method, input, options));
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
    // async: a spec that does not convert rejects, as the daemon's answer would.
    addProcess: async (spec, o) => processOf(unary(m.addProcess, { process: specOrNone(spec) }, o)),
    removeProcess: (name, o) => processOf(unary(m.removeProcess, { name }, o)),
    startProcess: (name, o) => processOf(unary(m.startProcess, { name }, o)),
    stopProcess: (name, o) => processOf(unary(m.stopProcess, { name }, o)),
    restartProcess: (name, o) => processOf(unary(m.restartProcess, { name }, o)),
    restartAll: async (o) => (await unary(m.restartAll, {}, o)).processes,
    getProcess: (name, o) =>
      processOf(unary(m.getProcess, { name, includeStats: o?.includeStats ?? false }, o)),
    getDaemonInfo: (o) => unary(m.getDaemonInfo, {}, o),
    updateProcess: async (spec, o) =>
      processOf(unary(m.updateProcess, { process: specOrNone(spec) }, o)),
    reloadConfig: (o) => unary(m.reloadConfig, {}, o),
    listProcesses: async (o) => {
      const request = { includeStats: o?.includeStats ?? false };
      const { processes, lastEventSeq } = await unary(m.listProcesses, request, o);
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

function abortError(signal: AbortSignal): Error & { code: number; details: string } {
  const reason = signal.reason instanceof Error ? signal.reason.message : "aborted";
  return Object.assign(new Error(reason), { code: 1, details: `call cancelled: ${reason}` });
}
