import { create } from "@bufbuild/protobuf";
import {
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import {
  type AddProcessRequest,
  AddProcessResponseSchema,
  GetDaemonInfoResponseSchema,
  type GetProcessRequest,
  GetProcessResponseSchema,
  type ListProcessesRequest,
  ListProcessesResponseSchema,
  type Process,
  type ProcessMonitor,
  ReloadConfigResponseSchema,
  RemoveProcessResponseSchema,
  RestartAllResponseSchema,
  type RestartProcessRequest,
  RestartProcessResponseSchema,
  Spawner as SpawnerProto,
  type StartProcessRequest,
  StartProcessResponseSchema,
  type StopProcessRequest,
  StopProcessResponseSchema,
  type UpdateProcessRequest,
  UpdateProcessResponseSchema,
  type WatchEventsRequest,
  type WatchEventsResponse,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { GrpcServiceImplementation } from "@procmon/api/grpc";
import { LAST_SEQ_KEY } from "@procmon/api/metadata";
import type { Control, Limits, ReloadSummary } from "../control.js";
import { ProcmonError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { isProcessName, NAME_RULE } from "../core/names.js";
import type { StatsReader, TreeStats } from "../core/probes.js";
import { quote } from "../core/quote.js";
import type { Supervisor } from "../core/supervisor.js";
import type { ProcessView } from "../core/types.js";
import type { EventLog, Subscription } from "../events/event-log.js";
import { encodedEvent } from "../wire/event-encoding.js";
import { processToProto } from "../wire/process.js";
import { specInputFromProto } from "../wire/spec.js";
import { toServiceError } from "./errors.js";
import { type Deliveries, EventStream, http2StreamOf } from "./event-stream.js";

/** What the ProcessMonitor service delegates to. */
export interface ServiceDeps {
  /** The use cases that change the registry (and persist it). */
  readonly control: Control;
  /** Read-only views. */
  readonly supervisor: Supervisor;
  readonly events: EventLog;
  readonly logger: Logger;
  /** Caps on what one request may ask for. */
  readonly limits: Limits;
  /** What GetDaemonInfo answers. */
  readonly info: DaemonInfo;
  /** Where each subscriber's stream is known while it lasts. */
  readonly deliveries?: Deliveries | undefined;
  /** Reads the trees' CPU and memory for include_stats; without one they are left at 0. */
  readonly stats?: StatsReader | undefined;
  /** ReloadConfig: re-reads --config and applies it. Without one, FAILED_PRECONDITION. */
  readonly reload?: (() => Promise<ReloadSummary>) | undefined;
}

/** What the daemon says of itself. */
export interface DaemonInfo {
  readonly version: string;
  readonly spawner: "shim" | "node";
  /** procmon-shim's pid and protocol version, with a shim. */
  readonly shim?: { readonly pid: number; readonly protocol: number } | undefined;
  /** --log-dir, absolute; undefined without. */
  readonly logDir?: string | undefined;
}

type Handler<Req, Res> = (request: Req) => Res | Promise<Res>;

/**
 * The procmon.v1.ProcessMonitor handlers, keyed by method local name: each one
 * converts, delegates to the control layer, and maps errors to gRPC statuses.
 */
export function processMonitorService(
  deps: ServiceDeps,
): GrpcServiceImplementation<typeof ProcessMonitor> {
  const { control, supervisor, events, logger, limits } = deps;
  /** The trees' stats of the running ones among `views` (none without a reader). */
  const statsOf = (views: readonly ProcessView[]) =>
    deps.stats?.sample(
      views.filter((v) => v.pid !== 0).map((v) => ({ name: v.spec.name, pid: v.pid })),
    ) ?? new Map<string, TreeStats>();
  let warnedSlowPath = false;

  function unary<Req, Res>(handler: Handler<Req, Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      new Promise<Res>((resolve) => resolve(handler(call.request))).then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(err, logger)),
      );
    };
  }

  const name = (request: { name: string }): string => {
    if (request.name === "") throw new ProcmonError("invalid_argument", "name is required");
    return request.name;
  };
  const one = (view: ProcessView): { process: Process } => ({ process: processToProto(view) });

  return {
    addProcess: unary(async (request: AddProcessRequest) =>
      create(AddProcessResponseSchema, one(await control.add(specInputFromProto(request.process)))),
    ),
    removeProcess: unary(async (request: { name: string }) =>
      create(RemoveProcessResponseSchema, one(await control.remove(name(request)))),
    ),
    startProcess: unary(async (request: StartProcessRequest) =>
      create(StartProcessResponseSchema, one(await control.start(name(request)))),
    ),
    stopProcess: unary(async (request: StopProcessRequest) =>
      create(StopProcessResponseSchema, one(await control.stop(name(request)))),
    ),
    restartProcess: unary(async (request: RestartProcessRequest) =>
      create(RestartProcessResponseSchema, one(await control.restart(name(request)))),
    ),
    restartAll: unary(async () => {
      const views = await control.restartAll();
      return create(RestartAllResponseSchema, { processes: views.map((v) => processToProto(v)) });
    }),
    getProcess: unary((request: GetProcessRequest) => {
      const view = supervisor.get(name(request));
      const stats = request.includeStats ? statsOf([view]) : undefined;
      return create(GetProcessResponseSchema, {
        process: processToProto(view, stats?.get(view.spec.name)),
      });
    }),
    listProcesses: unary((request: ListProcessesRequest) => {
      // Read together, synchronously: the snapshot reflects exactly the events up to lastSeq.
      const views = supervisor.list();
      const lastEventSeq = events.lastSeq;
      const stats = request.includeStats ? statsOf(views) : undefined;
      return create(ListProcessesResponseSchema, {
        processes: views.map((view) => processToProto(view, stats?.get(view.spec.name))),
        lastEventSeq,
      });
    }),
    reloadConfig: unary(async () => {
      if (deps.reload === undefined) {
        throw new ProcmonError("failed_precondition", "this procmond cannot reload a config");
      }
      return create(ReloadConfigResponseSchema, await deps.reload());
    }),
    updateProcess: unary(async (request: UpdateProcessRequest) =>
      create(
        UpdateProcessResponseSchema,
        one(await control.update(specInputFromProto(request.process))),
      ),
    ),
    getDaemonInfo: unary(() =>
      create(GetDaemonInfoResponseSchema, {
        version: deps.info.version,
        pid: process.pid,
        spawner: deps.info.spawner === "shim" ? SpawnerProto.SHIM : SpawnerProto.NODE,
        shimPid: deps.info.shim?.pid ?? 0,
        shimProtocol: deps.info.shim?.protocol ?? 0,
        logDir: deps.info.logDir ?? "",
      }),
    ),
    watchEvents: (call: ServerWritableStream<WatchEventsRequest, WatchEventsResponse>) => {
      const request = call.request;
      try {
        checkWatchedNames(request.names, limits.maxProcesses);
      } catch (err) {
        call.emit("error", toServiceError(err, logger));
        return;
      }
      const filter = { names: new Set(request.names), includeOutput: request.includeOutput };
      // Headers first, in the same tick as the subscription: when the client
      // sees them, no later event can be missed.
      call.sendMetadata(new Metadata());
      let subscription: Subscription | undefined;
      const frames = http2StreamOf(call);
      if (frames === undefined && !warnedSlowPath) {
        warnedSlowPath = true;
        logger.warn(
          {},
          "the http2 stream under grpc-js's server call was not found (grpc-js changed?): events go one write per message, slower",
        );
      }
      const stream = new EventStream(call, frames, () => subscription?.resume());
      deps.deliveries?.add(stream);
      try {
        subscription = events.subscribe(filter, request.afterSeq, {
          // Encoded once per event, however many subscribers it goes to (on
          // grpc-js's own write path, the service's serializer passes the bytes through).
          write: (logged) => stream.write(encodedEvent(logged)),
          // Everything up to the last seq was sent: the trailer lets a filtered
          // watcher resume from there after a restart.
          end: () => {
            const trailers = new Metadata();
            trailers.set(LAST_SEQ_KEY, String(events.lastSeq));
            stream.close();
            call.end(trailers);
          },
          // emit, not destroy: what was already written is flushed before the status.
          fail: (error) => {
            stream.close();
            call.emit("error", toServiceError(error, logger));
          },
        });
      } catch (err) {
        deps.deliveries?.delete(stream);
        call.emit("error", toServiceError(err, logger));
        return;
      }
      logger.debug({ subscribers: events.subscriberCount }, "watch started");
      // However the stream ends (client gone, cancelled, ended by us), release its cursor once.
      let released = false;
      const cancel = () => {
        if (released) return;
        released = true;
        deps.deliveries?.delete(stream);
        subscription?.cancel();
        logger.debug({ subscribers: events.subscriberCount }, "watch ended");
      };
      call.on("cancelled", cancel);
      call.on("close", cancel);
      call.on("error", cancel);
    },
  };
}

/**
 * A watch filter names at most as many processes as may be registered, and
 * each one a valid name: a name that can never exist would never match.
 * @throws ProcmonError invalid_argument naming the problem.
 */
function checkWatchedNames(names: readonly string[], maxProcesses: number): void {
  if (names.length > maxProcesses) {
    throw new ProcmonError(
      "invalid_argument",
      `names lists ${names.length} processes, over the ${maxProcesses} that may be registered (--max-processes): watch them all (names empty) and filter`,
    );
  }
  names.forEach((name, i) => {
    if (!isProcessName(name)) {
      throw new ProcmonError(
        "invalid_argument",
        `names[${i}] ${quote(name)} is not a process name: use ${NAME_RULE}`,
      );
    }
  });
}
