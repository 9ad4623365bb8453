// The composition root: what procmond is made of, and the order it starts in.
import { createHash } from "node:crypto";
import { resolve as resolvePath } from "node:path";
import type { Logger as PinoLogger } from "pino";
import { type ConfigEntry, loadConfigFile } from "./adapters/config-file.js";
import { DescriptorAlarm, DescriptorBudget, watchDescriptors } from "./adapters/descriptors.js";
import { allOpen } from "./adapters/flow-gate.js";
import { LogFiles } from "./adapters/log-files.js";
import { nodeClock } from "./adapters/node-clock.js";
import { NodeSpawner } from "./adapters/node-spawner.js";
import { INSTANCE_ENV, terminateOrphans } from "./adapters/orphans.js";
import { ReadinessProber } from "./adapters/probes.js";
import { SHIM_PROTOCOL_VERSION } from "./adapters/shim-protocol.js";
import { dismissShim, ShimSpawner } from "./adapters/shim-spawner.js";
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
import { ProcTreeStats } from "./adapters/tree-stats.js";
import { Control, type ReloadSummary, refuseTakeover } from "./control.js";
import { type Clock, every } from "./core/clock.js";
import { ProcmonError } from "./core/errors.js";
import { EventBus } from "./core/event-bus.js";
import type { FoundRun, Spawner } from "./core/spawner.js";
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
import { Deliveries } from "./transport/event-stream.js";
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
   * gone and no new one starts): the caller should exit, so that the next
   * daemon sweeps and restarts.
   */
  readonly failed: Promise<string>;
  /**
   * Resolves, with how many, once the processes of the state file and the
   * config (registered before the socket was served) have been started.
   */
  readonly started: Promise<number>;
  /** Stops every process, ends streams, closes the socket and removes it. Idempotent. */
  shutdown(): Promise<void>;
  /**
   * SIGUSR2: leaves every process running with the shim for the next daemon
   * (the upgrade path): stops taking the shim's frames, acknowledges what was
   * delivered, saves the registry with the exact last seq and removes the
   * socket. The caller exits next. Resolves with whether the processes survive
   * (false without a shim that outlives the daemon: the next one restarts them).
   */
  detach(): Promise<boolean>;
  /** SIGHUP: re-reads the config file and applies it; a bad file changes nothing and is logged. */
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
  let opened: ShimSpawner | undefined;
  try {
    const { store, saved, configured, instance } = await openRegistry(options, loadConfig);
    // Each orphan gets the kill time of its own process, as its stop would have.
    const killTimes = new Map(
      saved?.processes.map((p) => [persistedName(p), persistedKillTimeMs(p)]),
    );
    const killTimeOf = (name: string | undefined) =>
      killTimes.get(name ?? "") ?? options.policy.killTimeMs;
    // What descends from `shim` (a shim this daemon attached to, or a new one) is spared.
    const sweep = (shim?: { readonly pid: number; readonly held: ReadonlySet<number> }) =>
      terminateOrphans(instance, killTimeOf, logger, shim).then(() => {});

    const bus = new EventBus();
    const events = new EventLog(clock, options.retention, BigInt(saved?.seqReservedUpTo ?? "0"));
    const deliveries = new Deliveries();
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
    const logDir = options.logDir === undefined ? undefined : resolvePath(options.logDir);
    const logFiles =
      logDir === undefined
        ? undefined
        : new LogFiles({
            dir: logDir,
            maxBytes: options.logMaxBytes,
            keep: options.logKeep,
            logger,
          });
    // Reading children's output waits for the daemon's log and its log files alike.
    const outputGate = logFiles ? allOpen([log.gate, logFiles.gate]) : log.gate;
    const listen = shimSocketPath(options.stateFile, logger);
    const chosen = overrides.spawner
      ? { spawner: overrides.spawner, kind: "injected" as const }
      : await chooseSpawner(options.spawner, {
          node: () => new NodeSpawner({ outputGate, markerEnv, descriptors }),
          shim: (path) =>
            ShimSpawner.open({
              path,
              listen,
              detachedOutputBuffer: options.detachedOutputBuffer,
              outputGate,
              afterDelivery: (fn) => deliveries.after(fn),
              markerEnv,
              logger,
              sweep: (shimPid) => sweep({ pid: shimPid, held: new Set() }),
              onLost: lost,
            }),
          logger,
        });
    const { spawner } = chosen;
    const shim = spawner instanceof ShimSpawner ? spawner : undefined;
    opened = shim;
    if (shim === undefined && listen !== undefined && chosen.kind === "node") {
      // Its processes cannot be adopted without a shim: they are stopped, and restarted below.
      await dismissShim(listen, logger);
    }
    // What a killed predecessor of this registry left outside the shim (or
    // everything, without one that survived) is ended before anything starts.
    await sweep(shim && { pid: shim.shimPid, held: shim.heldPids() });
    const found = claimFound(shim?.found ?? [], saved, killTimeOf, logger);
    const stats = new ProcTreeStats({ shimPid: () => shim?.shimPid, instance });
    const supervisor = new Supervisor({
      clock,
      spawner,
      logger,
      emit: bus.emit,
      prober: new ReadinessProber(spawner),
      stats,
      statsPeriodMs: options.statsPeriodMs,
    });
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
    // Once detach() has begun, no event is numbered: the next daemon continues after the saved seq.
    let frozen = false;
    bus.subscribe((event) => logEvent(logger, event));
    if (logFiles) {
      bus.subscribe((event) => {
        if (event.kind === "output")
          logFiles.write(event.process, event.stream, event.line, Date.now());
      });
    }
    bus.subscribe((event) => {
      if (!frozen) events.append(event);
    });
    bus.subscribe((event) => control.afterEvent(event));

    // Registered now, started once the socket is served: clients can connect
    // at once, and watch a large registry come up.
    if (saved) await control.restore(saved, false, found);
    else await control.reserveSeqs();
    await control.applyConfig(configured, false);
    // One reload at a time (SIGHUP and ReloadConfig alike): each reads the file anew.
    let reloading: Promise<unknown> = Promise.resolve();
    const reloadApi = (): Promise<ReloadSummary> => {
      const next = reloading.then(() => reloadConfig(options, loadConfig, control, logger));
      reloading = next.catch(() => {});
      return next;
    };
    const api = await serveApi(options, {
      reload: reloadApi,
      control,
      supervisor,
      events,
      logger,
      limits: options.limits,
      deliveries,
      stats,
      info: {
        version: daemonVersion(),
        spawner: chosen.kind === "shim" ? "shim" : "node",
        logDir,
        // A getter: a shim that died is replaced, and the pid with it.
        shim: shim && {
          get pid() {
            return shim.shimPid;
          },
          protocol: SHIM_PROTOCOL_VERSION,
        },
      },
    }).catch(async (err: unknown) => {
      // What runs must not outlive a daemon that cannot serve it, unless a
      // shim keeps it for the next daemon (adopted processes are not stopped
      // because this one could not bind its socket).
      if (!shim?.survives) await supervisor.shutdown();
      throw err;
    });

    // The adopted runs' frames (their output of the outage first) once the
    // socket is served: a watcher that reconnects at once sees them as they come.
    shim?.resume();
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
        ...(shim ? { shimPid: shim.shimPid, adopted: found.size, survives: shim.survives } : {}),
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
        await shim?.close();
        await logFiles?.close();
        events.close();
        await api.close();
        await control.saveFinal();
        removeSocket(options.socketPath);
        lock?.release();
        lifecycle.info("procmond stopped");
      })();
      return shuttingDown;
    };
    const detach = async (): Promise<boolean> => {
      for (const timer of timers) timer.cancel();
      const survives = shim?.survives ?? false;
      if (!survives) {
        logger.warn(
          "SIGUSR2 without a procmon-shim that outlives procmond (no shim, or no state file): the next procmond restarts every process",
        );
      }
      shim?.pause();
      // What was handed on reaches the subscribers that keep up, then is acknowledged.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        deliveries.after(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      shim?.acknowledgeNow();
      frozen = true;
      await logFiles?.close();
      await control.saveFinal();
      removeSocket(options.socketPath);
      lifecycle.info({ survives }, "procmond detached: the processes go on for the next procmond");
      return survives;
    };
    const reload = async () => {
      try {
        await reloadApi();
      } catch (err) {
        logger.error({ err }, `config not reloaded, nothing changed: ${(err as Error).message}`);
      }
    };
    return {
      socketPath: options.socketPath,
      supervisor,
      events,
      control,
      spawner: chosen.kind,
      failed,
      started,
      shutdown,
      detach,
      reload,
    };
  } catch (err) {
    await opened?.abandon();
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
 * Prepares the socket path and reads the state and config files (refusing a
 * config that takes over an API process).
 */
async function openRegistry(
  options: DaemonOptions,
  loadConfig: () => ConfigEntry[],
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
  return { store, saved, configured, instance };
}

/** The longest unix socket path the kernel takes (sun_path less its NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * Where procmon-shim listens for the next daemon: beside the state file, in
 * the daemon's own directory. Undefined without a state file (nothing to
 * reconcile its children with) or when the path is too long for a socket.
 */
function shimSocketPath(stateFile: string | undefined, logger: PinoLogger): string | undefined {
  if (stateFile === undefined) return undefined;
  const path = `${stateFile}.shim.sock`;
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH) return path;
  logger.warn(
    { path },
    `the shim's socket beside the state file would be longer than ${MAX_SOCKET_PATH} bytes: processes will not outlive procmond (use a shorter --state-file path)`,
  );
  return undefined;
}

/**
 * Picks, for each process of the state file, the run of it the shim holds:
 * the latest started one still alive, else the latest that ended. Every
 * other live run (of a process no longer registered, or an older one of a
 * registered name) is stopped, SIGTERM then SIGKILL after its kill time: a
 * process is never doubled.
 */
function claimFound(
  found: readonly FoundRun[],
  saved: PersistedState | undefined,
  killTimeOf: (name: string) => number,
  logger: PinoLogger,
): Map<string, FoundRun> {
  const registered = new Set(saved?.processes.map(persistedName));
  const claimed = new Map<string, FoundRun>();
  const better = (a: FoundRun, b: FoundRun) =>
    a.exited !== b.exited ? !a.exited : a.startedAtWallMs > b.startedAtWallMs;
  for (const run of found) {
    if (!registered.has(run.name)) continue;
    const held = claimed.get(run.name);
    if (held === undefined || better(run, held)) claimed.set(run.name, run);
  }
  for (const run of found) {
    if (claimed.get(run.name) === run) continue;
    let timer: NodeJS.Timeout | undefined;
    run.bind({ onExit: () => clearTimeout(timer), onOutput: () => {} });
    if (run.exited) continue;
    logger.warn(
      { process: run.name, pid: run.child.pid },
      "stopping a process the last procmond left that is not registered (or not its latest run)",
    );
    run.child.signal("SIGTERM");
    timer = setTimeout(() => run.child.signal("SIGKILL"), killTimeOf(run.name));
  }
  return claimed;
}

/**
 * ReloadConfig and SIGHUP: re-reads the config file and applies it.
 * @throws ProcmonError failed_precondition without --config, invalid_argument
 * for a bad file (naming file, line and problem) or a takeover; then nothing changed.
 */
async function reloadConfig(
  options: DaemonOptions,
  loadConfig: () => ConfigEntry[],
  control: Control,
  logger: PinoLogger,
): Promise<ReloadSummary> {
  if (options.configFile === undefined) {
    throw new ProcmonError(
      "failed_precondition",
      "procmond has no --config file to reload: its processes come through the API only",
    );
  }
  const summary = await control.applyConfig(loadConfig());
  logger.info(
    {
      added: summary.added.length,
      removed: summary.removed.length,
      changed: summary.changed.length,
      unchanged: summary.unchanged.length,
    },
    "config reloaded",
  );
  return summary;
}
