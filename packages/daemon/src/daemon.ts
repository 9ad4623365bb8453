import { createHash } from "node:crypto";
import { chmodSync, chownSync, lstatSync, unlinkSync } from "node:fs";
import { Server, ServerCredentials, setLogger } from "@grpc/grpc-js";
import { parseDurationMs } from "@procmon/api/duration";
import { ProcessMonitor } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { grpcServiceDefinition } from "@procmon/api/grpc";
import { type Logger as PinoLogger, pino } from "pino";
import { loadConfigFile } from "./adapters/config-file.js";
import { DescriptorAlarm, DescriptorBudget } from "./adapters/descriptors.js";
import { FlowGate } from "./adapters/flow-gate.js";
import { nodeClock } from "./adapters/node-clock.js";
import { NodeSpawner } from "./adapters/node-spawner.js";
import { INSTANCE_ENV, terminateOrphans } from "./adapters/orphans.js";
import { bindError, prepareSocketPath, withPrivateUmask } from "./adapters/socket-file.js";
import { checkSpecFiles } from "./adapters/spec-files.js";
import { emptyState, readStateFile, StateFileWriter } from "./adapters/state-file.js";
import { lockStateFile, type StateLock } from "./adapters/state-lock.js";
import { notifyReady } from "./adapters/systemd-notify.js";
import { Control, refuseTakeover } from "./control.js";
import type { Clock, Timer } from "./core/clock.js";
import type { CoreEvent } from "./core/events.js";
import type { Spawner } from "./core/spawner.js";
import { Supervisor } from "./core/supervisor.js";
import { EventLog } from "./events/event-log.js";
import type { DaemonOptions } from "./flags.js";
import { loadDescriptorSet } from "./transport/descriptors.js";
import { createHealth, healthServiceName } from "./transport/health.js";
import { rejectMalformedRequests, tolerantServices } from "./transport/malformed-requests.js";
import { addReflection } from "./transport/reflection.js";
import { processMonitorService } from "./transport/service.js";
import { specInputFromJson, specToJson } from "./wire/spec.js";

/** A running procmond. */
export interface Daemon {
  /** The socket it serves on. */
  readonly socketPath: string;
  /** The process monitor. */
  readonly supervisor: Supervisor;
  /** The numbered event stream. */
  readonly events: EventLog;
  /** The use cases the API serves. */
  readonly control: Control;
  /** Stops every process, ends streams, closes the socket and removes it. Idempotent. */
  shutdown(): Promise<void>;
  /** Re-reads the config file and applies it; a bad file changes nothing and is logged. */
  reload(): Promise<void>;
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
  /** Writes out what is buffered, in order, and closes the log: call before exiting. */
  close(): Promise<void>;
}

/** Creates the daemon's asynchronous JSON log on stdout. */
export function createDaemonLog(level: string): DaemonLog {
  // Buffer mode: in string mode sonic-boom re-measures its pending chunk on
  // every line, which cost a fifth of the daemon's time under heavy output.
  const destination = pino.destination({ fd: 1, sync: false, contentMode: "buffer" });
  const gate = new FlowGate();
  destination.on("drain", () => gate.open());
  const stream = {
    write(chunk: string): void {
      // In buffer mode sonic-boom takes Buffers; its types only declare strings.
      if (!destination.write(Buffer.from(chunk) as unknown as string)) gate.close();
    },
  };
  const logger = pino({ level, base: { pid: process.pid } }, stream);
  const close = () =>
    new Promise<void>((resolve) => {
      // end(), not flushSync(): a synchronous flush beside a write in flight reorders lines.
      const fallback = setTimeout(resolve, 2_000);
      destination.once("close", () => {
        clearTimeout(fallback);
        resolve();
      });
      destination.end();
    });
  return { logger, gate, close };
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
 * Starts procmond: loads the state and config files (refusing to start on a
 * bad one, before anything runs), terminates what a killed predecessor left,
 * restores the registry, and serves the API with health and reflection on a
 * unix socket created 0600.
 * @throws ProcmonError when the socket is taken or a file is unusable.
 */
export async function startDaemon(
  options: DaemonOptions,
  overrides: DaemonOverrides = {},
): Promise<Daemon> {
  // Before anything is read, swept or bound: a second daemon on this state
  // file must leave everything as it found it.
  const lock = options.stateFile === undefined ? undefined : lockStateFile(options.stateFile);
  try {
    return await start(options, overrides, lock);
  } catch (err) {
    lock?.release();
    throw err;
  }
}

async function start(
  options: DaemonOptions,
  overrides: DaemonOverrides,
  lock: StateLock | undefined,
): Promise<Daemon> {
  const log = overrides.log ?? createDaemonLog(options.logLevel);
  const logger = log.logger;
  // The daemon's own comings and goings are shown at any level but silent.
  const lifecycle = logger.isLevelEnabled("fatal") ? logger.child({}, { level: "info" }) : logger;
  // grpc-js writes its own errors to stderr ("E No address added ..."), where
  // a person reads procmond's one-line reasons: they go to the log instead.
  setLogger({
    error: (message: unknown) => logger.warn({ grpc: true }, String(message)),
    info: (message: unknown) => logger.debug({ grpc: true }, String(message)),
    debug: (message: unknown) => logger.trace({ grpc: true }, String(message)),
  });
  const clock = overrides.clock ?? nodeClock;
  const socketPath = options.socketPath;
  const validation = {
    defaults: options.policy,
    daemonUid: process.getuid?.() ?? 0,
    daemonGid: process.getgid?.() ?? 0,
  };
  const configContext = { ...validation, checkFiles: checkSpecFiles };

  await prepareSocketPath(socketPath, options.socketGroup);
  const store =
    options.stateFile === undefined ? undefined : new StateFileWriter(options.stateFile);
  store?.sweepTemps();
  const saved = options.stateFile === undefined ? undefined : readStateFile(options.stateFile);
  const loadConfig = () =>
    options.configFile === undefined ? [] : loadConfigFile(options.configFile, configContext);
  const configured = loadConfig();
  // Before anything runs: the config must not take over what the API added.
  const savedSources = new Map(saved?.processes.map((p) => [nameOf(p.spec), p.source]));
  refuseTakeover(configured, (name) => savedSources.get(name));

  // Without a state file, the socket names the registry: a daemon restarted
  // on it still finds what its predecessor left.
  const instance =
    saved?.instance ??
    (store
      ? emptyState().instance
      : createHash("sha256").update(socketPath).digest("hex").slice(0, 32));
  // Each orphan gets the kill time of its own process, as its stop would have.
  const killTimes = new Map(saved?.processes.map((p) => [nameOf(p.spec), killTimeOf(p.spec)]));
  await terminateOrphans(
    instance,
    (name) => killTimes.get(name ?? "") ?? options.policy.killTimeMs,
    logger,
  );

  const descriptors = new DescriptorBudget();
  const events = new EventLog(clock, options.retention, BigInt(saved?.seqReservedUpTo ?? "0"));
  let control: Control | undefined;
  const supervisor = new Supervisor({
    clock,
    spawner:
      overrides.spawner ??
      new NodeSpawner({
        outputGate: log.gate,
        markerEnv: { [INSTANCE_ENV]: instance },
        descriptors,
      }),
    logger,
    emit: (event) => {
      logEvent(logger, event);
      events.append(event);
      control?.afterEvent();
    },
  });
  control = new Control({
    supervisor,
    events,
    store,
    instance,
    validation,
    checkFiles: checkSpecFiles,
    specJson: { encode: specToJson, decode: specInputFromJson },
    limits: options.limits,
    logger,
  });
  if (saved) control.restore(saved);
  else control.reserveSeqsSync();
  await control.applyConfig(configured);

  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    interceptors: [rejectMalformedRequests],
  });
  // Every service registered through it answers undecodable bytes with INVALID_ARGUMENT.
  const services = tolerantServices(server);
  services.addService(
    grpcServiceDefinition(ProcessMonitor),
    processMonitorService({ control, supervisor, events, logger, limits: options.limits }),
  );
  const health = createHealth();
  health.addToServer(services);
  addReflection(services, loadDescriptorSet(), [ProcessMonitor.typeName, healthServiceName]);

  try {
    await withPrivateUmask(
      () =>
        new Promise<number>((resolve, reject) =>
          server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err, port) =>
            err ? reject(bindError(socketPath, err)) : resolve(port),
          ),
        ),
    );
  } catch (err) {
    // What was started must not outlive a daemon that cannot serve it.
    await supervisor.shutdown();
    server.forceShutdown();
    throw err;
  }
  if (options.socketGroup !== undefined) chownSync(socketPath, -1, options.socketGroup);
  if (options.socketMode !== 0o600) chmodSync(socketPath, options.socketMode);
  health.setServing();

  const alarm = new DescriptorAlarm(descriptors, logger);
  const descriptorCheck = every(clock, DESCRIPTOR_CHECK_MS, () => alarm.check());
  const consistency = every(clock, options.consistencyDelayMs, () => {
    const repaired = supervisor.checkConsistency();
    if (repaired.length > 0) logger.warn({ processes: repaired }, "consistency check repaired");
  });
  // Whatever --log-level says (but silent): scripts and people wait for this line.
  lifecycle.info(
    { socket: socketPath, stateFile: options.stateFile ?? null, policy: options.policy },
    "procmond listening",
  );
  if (options.notifySocket !== undefined) {
    await notifyReady(options.notifySocket, `listening on ${socketPath}`, logger);
  }

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shuttingDown ??= (async () => {
      lifecycle.info("procmond shutting down");
      consistency.cancel();
      descriptorCheck.cancel();
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
      await control.saveFinal();
      removeSocket(socketPath);
      lock?.release();
      lifecycle.info("procmond stopped");
    })();
    return shuttingDown;
  };

  const reload = async (): Promise<void> => {
    if (options.configFile === undefined) {
      logger.warn("SIGHUP ignored: no --config file");
      return;
    }
    let entries: ReturnType<typeof loadConfig>;
    try {
      entries = loadConfig();
      await control.applyConfig(entries);
    } catch (err) {
      logger.error({ err }, `config not reloaded, nothing changed: ${(err as Error).message}`);
      return;
    }
    logger.info({ processes: entries.length }, "config reloaded");
  };

  return { socketPath, supervisor, events, control, shutdown, reload };
}

/** How often the daemon looks at its file descriptors (a listing of /proc/self/fd). */
const DESCRIPTOR_CHECK_MS = 5_000;

/** The name in a persisted spec's JSON form; the state file was checked when read. */
function nameOf(spec: unknown): string {
  const name = (spec as { name?: unknown }).name;
  return typeof name === "string" ? name : "";
}

/** The kill time in a persisted spec's JSON form ("0.300s"); undefined if it has none. */
function killTimeOf(spec: unknown): number | undefined {
  const killTime = (spec as { killTime?: unknown }).killTime;
  if (typeof killTime !== "string") return undefined;
  try {
    return parseDurationMs(killTime);
  } catch {
    return undefined;
  }
}

/** Runs `fn` every `intervalMs` on `clock` until cancelled. */
function every(clock: Clock, intervalMs: number, fn: () => void): Timer {
  let timer: Timer;
  const tick = () => {
    fn();
    timer = clock.setTimer(intervalMs, tick);
  };
  timer = clock.setTimer(intervalMs, tick);
  return { cancel: () => timer.cancel() };
}

function removeSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Already gone.
  }
}
