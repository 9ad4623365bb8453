import { lstatSync, unlinkSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { ProcessMonitor } from "@procmon/client/gen/procmon/v1/procmon_pb.js";
import { grpcServiceDefinition } from "@procmon/client/grpc";
import { type Logger as PinoLogger, pino } from "pino";
import { FlowGate } from "./adapters/flow-gate.js";
import { nodeClock } from "./adapters/node-clock.js";
import { NodeSpawner } from "./adapters/node-spawner.js";
import { prepareSocketPath, withPrivateUmask } from "./adapters/socket-file.js";
import type { Clock } from "./core/clock.js";
import type { CoreEvent } from "./core/events.js";
import type { Spawner } from "./core/spawner.js";
import { Supervisor } from "./core/supervisor.js";
import { EventLog } from "./events/event-log.js";
import type { DaemonOptions } from "./flags.js";
import { loadDescriptorSet } from "./transport/descriptors.js";
import { createHealth } from "./transport/health.js";
import { addReflection } from "./transport/reflection.js";
import { processMonitorService } from "./transport/service.js";

/** A running procmond. */
export interface Daemon {
  /** The socket it serves on. */
  readonly socketPath: string;
  /** The process monitor. */
  readonly supervisor: Supervisor;
  /** The numbered event stream. */
  readonly events: EventLog;
  /** Stops every process, ends streams, closes the socket and removes it. Idempotent. */
  shutdown(): Promise<void>;
}

/** Replacements for the real world, for tests. */
export interface DaemonOverrides {
  readonly log?: DaemonLog;
  readonly clock?: Clock;
  readonly spawner?: Spawner;
}

/** The daemon's JSON log on stdout, and the gate its fullness closes. */
export interface DaemonLog {
  readonly logger: PinoLogger;
  /** Closed while the log's buffer is full: children's pipes are not read meanwhile. */
  readonly gate: FlowGate;
  /** Writes out what is buffered; call before exiting. */
  flush(): void;
}

/** Creates the daemon's asynchronous JSON log on stdout. */
export function createDaemonLog(level: string): DaemonLog {
  const destination = pino.destination({ fd: 1, sync: false });
  const gate = new FlowGate();
  destination.on("drain", () => gate.open());
  const stream = {
    write(chunk: string): void {
      if (!destination.write(chunk)) gate.close();
    },
  };
  const logger = pino({ level, base: { pid: process.pid } }, stream);
  return { logger, gate, flush: () => destination.flushSync() };
}

/** Child output goes to the log as it is; state events as one line each. */
function logEvent(logger: PinoLogger, event: CoreEvent): void {
  if (event.kind === "output") {
    const fields = { process: event.process, stream: event.stream };
    logger.info(event.partial ? { ...fields, partial: true } : fields, event.line);
    return;
  }
  if (!logger.isLevelEnabled("info")) return;
  // The child's pid is logged as childPid: pid is the daemon's own in every pino line.
  const { kind, process, ...details } = event;
  if (kind === "added") {
    logger.info({ process, event: kind, args: event.spec.args }, `process ${kind}`);
  } else if ("pid" in details) {
    const { pid, ...rest } = details;
    logger.info({ process, event: kind, childPid: pid, ...rest }, `process ${kind}`);
  } else {
    logger.info({ process, event: kind, ...details }, `process ${kind}`);
  }
}

/**
 * Starts procmond: supervisor, event log and gRPC server with health and
 * reflection on a unix socket created 0600.
 * @throws ProcmonError failed_precondition when another daemon serves the socket.
 */
export async function startDaemon(
  options: DaemonOptions,
  overrides: DaemonOverrides = {},
): Promise<Daemon> {
  const log = overrides.log ?? createDaemonLog(options.logLevel);
  const logger = log.logger;
  const clock = overrides.clock ?? nodeClock;
  const events = new EventLog(clock, options.retention);
  const supervisor = new Supervisor({
    clock,
    spawner: overrides.spawner ?? new NodeSpawner({ outputGate: log.gate }),
    logger,
    emit: (event) => {
      logEvent(logger, event);
      events.append(event);
    },
  });

  const socketPath = options.socketPath;
  await prepareSocketPath(socketPath);

  const server = new Server();
  server.addService(
    grpcServiceDefinition(ProcessMonitor),
    processMonitorService({
      supervisor,
      events,
      defaults: options.policy,
      identity: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      logger,
    }),
  );
  const health = createHealth();
  health.addToServer(server);
  addReflection(server, loadDescriptorSet(), [ProcessMonitor.typeName, "grpc.health.v1.Health"]);

  await withPrivateUmask(
    () =>
      new Promise<number>((resolve, reject) =>
        server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(err) : resolve(port),
        ),
      ),
  );
  health.setServing();
  logger.info({ socket: socketPath, policy: options.policy }, "procmond listening");

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info("procmond shutting down");
      health.setNotServing();
      await supervisor.shutdown();
      events.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      removeSocket(socketPath);
      logger.info("procmond stopped");
    })();
    return shuttingDown;
  };

  return { socketPath, supervisor, events, shutdown };
}

function removeSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Already gone.
  }
}
