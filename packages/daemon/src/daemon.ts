// The composition root: what procmond is made of, and the order it starts in.
import { createHash } from "node:crypto";
import type { Logger as PinoLogger } from "pino";
import { type ConfigEntry, loadConfigFile } from "./adapters/config-file.js";
import { DescriptorAlarm, DescriptorBudget, watchDescriptors } from "./adapters/descriptors.js";
import { nodeClock } from "./adapters/node-clock.js";
import { NodeSpawner } from "./adapters/node-spawner.js";
import { INSTANCE_ENV, terminateOrphans } from "./adapters/orphans.js";
import { SHIM_PROTOCOL_VERSION } from "./adapters/shim-protocol.js";
import { ShimSpawner } from "./adapters/shim-spawner.js";
import { prepareSocketPath, removeSocket } from "./adapters/socket-file.js";
import { chooseSpawner } from "./adapters/spawner-choice.js";
import { checkSpecFiles } from "./adapters/spec-files.js";
import {
  emptyState,
  type PersistedState,
  persistedKillTimeMs,
  persistedName,
  readStateFile,
  StateFileWriter,
} from "./adapters/state-file.js";
import { lockStateFile } from "./adapters/state-lock.js";
import { notifyReady } from "./adapters/systemd-notify.js";
import { Control, refuseTakeover } from "./control.js";
import { type Clock, every } from "./core/clock.js";
import { EventBus } from "./core/event-bus.js";
import type { Spawner } from "./core/spawner.js";
import { Supervisor } from "./core/supervisor.js";
import {
  createDaemonLog,
  type DaemonLog,
  lifecycleLogger,
  logEvent,
  routeGrpcLog,
} from "./daemon-log.js";
import { EventLog } from "./events/event-log.js";
import type { DaemonOptions } from "./flags.js";
import { serveApi } from "./transport/server.js";
import { daemonVersion } from "./version.js";
import { specInputFromJson, specToJson } from "./wire/spec.js";

export { createDaemonLog, type DaemonLog } from "./daemon-log.js";

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
  /** What spawns the children: procmon-shim, Node itself, or a test's spawner. */
  readonly spawner: "shim" | "node" | "injected";
  /**
   * Resolves, with why, if the daemon can no longer supervise (its shim is
   * gone): the caller should exit, so that the next daemon sweeps and restarts.
   */
  readonly failed: Promise<string>;
  /**
   * Resolves, with how many, once the processes of the state file and the
   * config (registered before the socket was served) have been started.
   */
  readonly started: Promise<number>;
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

/**
 * Starts procmond: takes the state file's lock, loads the state and config
 * files (refusing to start on a bad one, before anything runs), terminates
 * what a killed predecessor left, restores the registry, and serves the API
 * with health and reflection on a unix socket created 0600.
 * @throws ProcmonError when the state file is locked, the socket is taken or a file is unusable.
 */
export async function startDaemon(
  options: DaemonOptions,
  overrides: DaemonOverrides = {},
): Promise<Daemon> {
  // Before anything is read, swept or bound: a second daemon on this state
  // file must leave everything as it found it.
  const lock = options.stateFile === undefined ? undefined : lockStateFile(options.stateFile);
  const log = overrides.log ?? createDaemonLog(options.logLevel);
  const { logger } = log;
  const lifecycle = lifecycleLogger(logger);
  routeGrpcLog(logger);
  const clock = overrides.clock ?? nodeClock;
  const validation = {
    defaults: options.policy,
    daemonUid: process.getuid?.() ?? 0,
    daemonGid: process.getgid?.() ?? 0,
  };
  const loadConfig = (): ConfigEntry[] =>
    options.configFile === undefined
      ? []
      : loadConfigFile(options.configFile, { ...validation, checkFiles: checkSpecFiles });
  try {
    const { store, saved, configured, instance } = await openRegistry(options, loadConfig, logger);

    const bus = new EventBus();
    const events = new EventLog(clock, options.retention, BigInt(saved?.seqReservedUpTo ?? "0"));
    const alarm = new DescriptorAlarm(logger);
    const descriptors = new DescriptorBudget({
      reserve: alarm.reserve,
      onUsage: (usage) => alarm.observe(usage),
    });
    let lost: (why: string) => void = () => {};
    const failed = new Promise<string>((resolve) => {
      lost = resolve;
    });
    const markerEnv = { [INSTANCE_ENV]: instance };
    const chosen = overrides.spawner
      ? { spawner: overrides.spawner, kind: "injected" as const }
      : await chooseSpawner(options.spawner, {
          node: () => new NodeSpawner({ outputGate: log.gate, markerEnv, descriptors }),
          shim: (path) =>
            ShimSpawner.start({ path, outputGate: log.gate, markerEnv, logger, onLost: lost }),
          logger,
        });
    const { spawner } = chosen;
    const supervisor = new Supervisor({ clock, spawner, logger, emit: bus.emit });
    const control = new Control({
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
    bus.subscribe((event) => logEvent(logger, event));
    bus.subscribe((event) => events.append(event));
    bus.subscribe(() => control.afterEvent());

    // Registered now, started once the socket is served: clients can connect
    // at once, and watch a large registry come up.
    if (saved) await control.restore(saved, false);
    else await control.reserveSeqs();
    await control.applyConfig(configured, false);
    const api = await serveApi(options, {
      control,
      supervisor,
      events,
      logger,
      limits: options.limits,
      info: {
        version: daemonVersion(),
        spawner: chosen.kind === "shim" ? "shim" : "node",
        shim:
          spawner instanceof ShimSpawner
            ? { pid: spawner.shimPid, protocol: SHIM_PROTOCOL_VERSION }
            : undefined,
      },
    }).catch(async (err: unknown) => {
      // What was started must not outlive a daemon that cannot serve it.
      await supervisor.shutdown();
      throw err;
    });

    const timers = [
      watchDescriptors(clock, alarm),
      every(clock, options.consistencyDelayMs, () => {
        const repaired = supervisor.checkConsistency();
        if (repaired.length > 0) logger.warn({ processes: repaired }, "consistency check repaired");
      }),
    ];
    // Whatever --log-level says (but silent): scripts and people wait for this line.
    lifecycle.info(
      {
        socket: options.socketPath,
        stateFile: options.stateFile ?? null,
        policy: options.policy,
        spawner: chosen.kind,
        ...(spawner instanceof ShimSpawner ? { shimPid: spawner.shimPid } : {}),
      },
      "procmond listening",
    );
    if (options.notifySocket !== undefined) {
      await notifyReady(options.notifySocket, `listening on ${options.socketPath}`, logger);
    }
    const started = control.startDeferred().then((count) => {
      if (!supervisor.isShuttingDown) lifecycle.info({ processes: count }, "registry started");
      return count;
    });

    let shuttingDown: Promise<void> | undefined;
    const shutdown = (): Promise<void> => {
      shuttingDown ??= (async () => {
        lifecycle.info("procmond shutting down");
        for (const timer of timers) timer.cancel();
        api.setNotServing();
        await supervisor.shutdown();
        if (spawner instanceof ShimSpawner) await spawner.close();
        events.close();
        await api.close();
        await control.saveFinal();
        removeSocket(options.socketPath);
        lock?.release();
        lifecycle.info("procmond stopped");
      })();
      return shuttingDown;
    };
    const reload = () => reloadConfig(options, loadConfig, control, logger);
    return {
      socketPath: options.socketPath,
      supervisor,
      events,
      control,
      spawner: chosen.kind,
      failed,
      started,
      shutdown,
      reload,
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

/** The registry as the daemon finds it, read and checked before anything runs. */
interface Registry {
  readonly store: StateFileWriter | undefined;
  readonly saved: PersistedState | undefined;
  readonly configured: ConfigEntry[];
  /** Identifies this registry's children (PROCMON_INSTANCE). */
  readonly instance: string;
}

/**
 * Prepares the socket path, reads the state and config files (refusing a
 * config that takes over an API process), and terminates what a killed
 * predecessor of this registry left running.
 */
async function openRegistry(
  options: DaemonOptions,
  loadConfig: () => ConfigEntry[],
  logger: PinoLogger,
): Promise<Registry> {
  await prepareSocketPath(options.socketPath, options.socketGroup);
  const store =
    options.stateFile === undefined ? undefined : new StateFileWriter(options.stateFile);
  store?.sweepTemps();
  const saved = options.stateFile === undefined ? undefined : readStateFile(options.stateFile);
  const configured = loadConfig();
  const savedSources = new Map(saved?.processes.map((p) => [persistedName(p), p.source]));
  refuseTakeover(configured, (name) => savedSources.get(name));
  // Without a state file, the socket names the registry: a daemon restarted
  // on it still finds what its predecessor left.
  const instance =
    saved?.instance ??
    (store
      ? emptyState().instance
      : createHash("sha256").update(options.socketPath).digest("hex").slice(0, 32));
  // Each orphan gets the kill time of its own process, as its stop would have.
  const killTimes = new Map(
    saved?.processes.map((p) => [persistedName(p), persistedKillTimeMs(p)]),
  );
  await terminateOrphans(
    instance,
    (name) => killTimes.get(name ?? "") ?? options.policy.killTimeMs,
    logger,
  );
  return { store, saved, configured, instance };
}

/** SIGHUP: re-reads the config file and applies it; a bad file changes nothing and is logged. */
async function reloadConfig(
  options: DaemonOptions,
  loadConfig: () => ConfigEntry[],
  control: Control,
  logger: PinoLogger,
): Promise<void> {
  if (options.configFile === undefined) {
    logger.warn("SIGHUP ignored: no --config file");
    return;
  }
  let entries: ConfigEntry[];
  try {
    entries = loadConfig();
    await control.applyConfig(entries);
  } catch (err) {
    logger.error({ err }, `config not reloaded, nothing changed: ${(err as Error).message}`);
    return;
  }
  logger.info({ processes: entries.length }, "config reloaded");
}
