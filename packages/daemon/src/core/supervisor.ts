import { Backoff } from "./backoff.js";
import type { Clock, Timer } from "./clock.js";
import { notFound, ProcmonError } from "./errors.js";
import type { EventBody, EventSink } from "./events.js";
import { type Logger, silentLogger } from "./logger.js";
import { type Child, type ChildExit, SpawnError, type Spawner } from "./spawner.js";
import type {
  ExitStatus,
  Intent,
  ProcessSpec,
  ProcessView,
  StateName,
  StopReason,
} from "./types.js";

/** What happens once a stopping process has exited. */
type AfterExit = "stay-stopped" | "start" | "forget";

/** The process is alive. */
interface Running {
  readonly kind: "running";
  readonly child: Child;
  /** Monotonic ms of the spawn, for uptime and the instant-death threshold. */
  readonly startedAt: number;
}

/** The process died; `timer` will start it again at `restartAtWall`. */
interface InBackoff {
  readonly kind: "backoff";
  readonly timer: Timer;
  readonly restartAtWall: number;
}

/**
 * SIGTERM was sent to the process group; `killTimer` sends SIGKILL after
 * kill_time. `after` says what the exit leads to, and may be changed by calls
 * made while it is stopping (a start during a stop starts it again).
 */
interface Stopping {
  readonly kind: "stopping";
  readonly child: Child;
  readonly startedAt: number;
  killTimer: Timer | undefined;
  after: AfterExit;
}

/** Stopped on request: nothing runs and nothing is scheduled. */
interface Stopped {
  readonly kind: "stopped";
}

type State = Running | InBackoff | Stopping | Stopped;

const stopped = (): Stopped => ({ kind: "stopped" });

/** One supervised process: its spec and everything the monitor knows of it. */
interface Entry {
  /** Replaced by update(); each launch uses the current one. */
  spec: ProcessSpec;
  intent: Intent;
  state: State;
  backoff: Backoff;
  restartCount: number;
  lastExit: ExitStatus | undefined;
  startedAtWall: number | undefined;
  /** Why the latest spawn failed; undefined once one has succeeded. */
  lastSpawnError: string | undefined;
  /** Resolved when the run being stopped has exited and its aftermath is in place. */
  exitWaiters: Array<() => void>;
}

/** What the supervisor needs from the outside world. */
export interface SupervisorDeps {
  /** Time for timers, uptimes and timestamps. */
  readonly clock: Clock;
  /** Starts children. */
  readonly spawner: Spawner;
  /** Receives every event, after the state it describes is in place. */
  readonly emit: EventSink;
  /** Receives state transitions and handled failures. Defaults to silence. */
  readonly logger?: Logger;
}

/**
 * The process monitor: Twisted's ProcessMonitor with one record per process
 * and an explicit state machine. Every timer goes through the injected clock
 * and every spawn through the injected spawner, so it runs the same on a fake
 * clock in tests as on the real one in the daemon.
 */
export class Supervisor {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly spawner: Spawner;
  private readonly emit: EventSink;
  private readonly logger: Logger;
  private shuttingDown = false;

  constructor(deps: SupervisorDeps) {
    this.clock = deps.clock;
    this.spawner = deps.spawner;
    this.emit = deps.emit;
    this.logger = deps.logger ?? silentLogger;
  }

  /** How many processes are registered. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Registers a validated spec and starts it at once.
   * @throws ProcmonError already_exists if the name is in use.
   */
  add(spec: ProcessSpec): ProcessView {
    return this.register(spec, "running", true);
  }

  /**
   * Registers a process a previous daemon had (no `added` event: it is not
   * new), starting it only if it should be running.
   */
  restore(spec: ProcessSpec, intent: Intent): ProcessView {
    return this.register(spec, intent, false);
  }

  /**
   * Replaces a process's spec. One that should be running is restarted with
   * it (no backoff); a stopped one just keeps it for its next start.
   */
  async update(spec: ProcessSpec): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(spec.name);
    entry.spec = spec;
    entry.backoff = Backoff.initial(spec.minRestartDelayMs, spec.maxRestartDelayMs);
    if (entry.intent === "stopped") return this.view(entry);
    return this.restartEntry(entry);
  }

  private register(spec: ProcessSpec, intent: Intent, announce: boolean): ProcessView {
    this.refuseWhileShuttingDown();
    if (this.entries.has(spec.name)) {
      throw new ProcmonError("already_exists", `process "${spec.name}" already exists`);
    }
    const entry: Entry = {
      spec,
      intent,
      state: stopped(),
      backoff: Backoff.initial(spec.minRestartDelayMs, spec.maxRestartDelayMs),
      restartCount: 0,
      lastExit: undefined,
      startedAtWall: undefined,
      lastSpawnError: undefined,
      exitWaiters: [],
    };
    this.entries.set(spec.name, entry);
    if (announce) this.report(entry, { kind: "added", spec });
    if (intent === "running") this.launch(entry);
    return this.view(entry);
  }

  /** Stops the process if it runs, cancels any restart, and forgets it; resolves with its final view. */
  async remove(name: string): Promise<ProcessView> {
    const entry = this.lookup(name);
    const state = entry.state;
    switch (state.kind) {
      case "running":
        this.beginStop(entry, state, "remove", "forget");
        return this.afterExit(entry);
      case "stopping":
        state.after = "forget";
        return this.afterExit(entry);
      case "backoff":
        this.cancelBackoff(entry, state, "remove");
        this.forget(entry);
        return this.view(entry);
      case "stopped":
        this.forget(entry);
        return this.view(entry);
    }
  }

  /** Starts a stopped process, or one in backoff now; a running one is left alone. */
  async start(name: string): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(name);
    const state = entry.state;
    if (!(state.kind === "stopping" && state.after === "forget")) entry.intent = "running";
    // A running process is left alone (same pid); otherwise a start does what a restart does.
    return state.kind === "running" ? this.view(entry) : this.restartEntry(entry);
  }

  /** Stops the process and keeps it stopped; resolves once it has exited. */
  async stop(name: string): Promise<ProcessView> {
    const entry = this.lookup(name);
    const state = entry.state;
    entry.intent = "stopped";
    switch (state.kind) {
      case "running":
        this.beginStop(entry, state, "stop", "stay-stopped");
        return this.afterExit(entry);
      case "stopping":
        if (state.after === "start") state.after = "stay-stopped";
        return this.afterExit(entry);
      case "backoff":
        this.cancelBackoff(entry, state, "stop");
        return this.view(entry);
      case "stopped":
        return this.view(entry);
    }
  }

  /** Stops the process and starts it again at once, with no backoff. */
  async restart(name: string): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(name);
    const view = this.restartEntry(entry);
    entry.intent = "running";
    return view;
  }

  /** Restarts every running or backing-off process concurrently; resolves with all processes. */
  async restartAll(): Promise<ProcessView[]> {
    this.refuseWhileShuttingDown();
    const targets = [...this.entries.values()].filter(
      (e) => e.state.kind === "running" || e.state.kind === "backoff",
    );
    await Promise.all(targets.map((e) => this.restartEntry(e)));
    return this.list();
  }

  /** Returns one process. */
  get(name: string): ProcessView {
    return this.view(this.lookup(name));
  }

  /** Returns every process, sorted by name. */
  list(): ProcessView[] {
    return [...this.entries.values()]
      .sort((a, b) => (a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0))
      .map((e) => this.view(e));
  }

  /**
   * Checks that each process believed running is alive and still ours; one
   * that is not is handled as if it had exited (signal "LOST") and restarted.
   * Returns the names repaired.
   */
  checkConsistency(): string[] {
    const repaired: string[] = [];
    for (const entry of [...this.entries.values()]) {
      const state = entry.state;
      if (state.kind !== "running" && state.kind !== "stopping") continue;
      if (state.child.isAlive?.() !== false) continue;
      this.logger.warn(
        { process: entry.spec.name, childPid: state.child.pid },
        "process is gone without an exit: repairing",
      );
      repaired.push(entry.spec.name);
      this.onExit(entry, state.child, { code: null, signal: "LOST" });
    }
    return repaired;
  }

  /** True while shutdown() is in progress or done. */
  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Cancels every pending restart and stops every process at once; resolves
   * when all have exited. Afterwards only stop, remove, get and list are served.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const exits: Promise<ProcessView>[] = [];
    for (const entry of this.entries.values()) {
      const state = entry.state;
      switch (state.kind) {
        case "running":
          this.beginStop(entry, state, "shutdown", "stay-stopped");
          exits.push(this.afterExit(entry));
          break;
        case "stopping":
          if (state.after === "start") state.after = "stay-stopped";
          exits.push(this.afterExit(entry));
          break;
        case "backoff":
          this.cancelBackoff(entry, state, "shutdown");
          break;
        case "stopped":
          break;
      }
    }
    await Promise.all(exits);
  }

  private async restartEntry(entry: Entry): Promise<ProcessView> {
    const state = entry.state;
    switch (state.kind) {
      case "running":
        this.beginStop(entry, state, "restart", "start");
        return this.afterExit(entry);
      case "stopping":
        this.refuseWhileRemoving(entry, state);
        state.after = "start";
        return this.afterExit(entry);
      case "backoff":
        state.timer.cancel();
        this.launch(entry);
        return this.view(entry);
      case "stopped":
        this.launch(entry);
        return this.view(entry);
    }
  }

  /** Spawns the process; a failed spawn counts as an instant death. */
  private launch(entry: Entry): void {
    const { spec } = entry;
    let child: Child;
    try {
      child = this.spawner.spawn(spec, {
        onExit: (exit) => this.onExit(entry, child, exit),
        onOutput: (stream, line, partial) => {
          if (this.entries.get(spec.name) === entry) {
            this.emit({ process: spec.name, kind: "output", stream, line, partial });
          }
        },
      });
    } catch (err) {
      const error = err instanceof SpawnError ? err.message : `spawn failed: ${String(err)}`;
      this.logger.warn({ process: spec.name, err }, "spawn failed");
      entry.lastSpawnError = error;
      this.report(entry, { kind: "spawnFailed", error });
      this.scheduleRestart(entry);
      return;
    }
    entry.lastSpawnError = undefined;
    entry.startedAtWall = this.clock.wallNow();
    this.transition(entry, { kind: "running", child, startedAt: this.clock.now() }, [
      "stopped",
      "backoff",
    ]);
    this.report(entry, { kind: "started", pid: child.pid });
  }

  private onExit(entry: Entry, child: Child, exit: ChildExit): void {
    const state = entry.state;
    if ((state.kind !== "running" && state.kind !== "stopping") || state.child !== child) {
      this.logger.warn({ process: entry.spec.name, pid: child.pid }, "exit of an unknown child");
      return;
    }
    const uptimeMs = Math.max(0, Math.round(this.clock.now() - state.startedAt));
    const status: ExitStatus = { code: exit.code, signal: exit.signal, uptimeMs };
    entry.lastExit = status;
    if (state.kind === "running") {
      const instant = uptimeMs < entry.spec.thresholdMs;
      this.transition(entry, stopped(), ["running"]);
      this.report(entry, { kind: "exited", pid: child.pid, status, instant });
      if (instant) {
        this.scheduleRestart(entry);
      } else {
        // A long run proves the process healthy: restart at once, forget the backoff.
        entry.backoff = entry.backoff.reset();
        entry.restartCount += 1;
        this.launch(entry);
      }
      return;
    }
    state.killTimer?.cancel();
    // A long run is a successful run however it ended: forget the backoff.
    if (uptimeMs >= entry.spec.thresholdMs) entry.backoff = entry.backoff.reset();
    this.transition(entry, stopped(), ["stopping"]);
    this.report(entry, { kind: "exited", pid: child.pid, status, instant: false });
    if (state.after === "start") this.launch(entry);
    else if (state.after === "forget") this.forget(entry);
    const waiters = entry.exitWaiters;
    entry.exitWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits the current backoff delay, then restarts; the next delay doubles. */
  private scheduleRestart(entry: Entry): void {
    const delayMs = entry.backoff.delayMs;
    entry.backoff = entry.backoff.next();
    const restartAtWall = Math.round(this.clock.wallNow() + delayMs);
    const timer = this.clock.setTimer(delayMs, () => {
      if (entry.state.kind !== "backoff" || entry.state.timer !== timer) return;
      entry.restartCount += 1;
      this.launch(entry);
    });
    this.transition(entry, { kind: "backoff", timer, restartAtWall }, ["stopped", "backoff"]);
    this.report(entry, { kind: "restartScheduled", delayMs, atWallMs: restartAtWall });
  }

  /** SIGTERM to the group now, SIGKILL after kill_time unless it exits first. */
  private beginStop(entry: Entry, state: Running, reason: StopReason, after: AfterExit): void {
    const { child } = state;
    const stopping: Stopping = {
      kind: "stopping",
      child,
      startedAt: state.startedAt,
      killTimer: undefined,
      after,
    };
    this.transition(entry, stopping, ["running"]);
    child.signal("SIGTERM");
    this.report(entry, { kind: "stopping", pid: child.pid, signal: "SIGTERM", reason });
    stopping.killTimer = this.clock.setTimer(entry.spec.killTimeMs, () => {
      if (entry.state !== stopping) return;
      stopping.killTimer = undefined;
      child.signal("SIGKILL");
      this.report(entry, { kind: "killed", pid: child.pid, signal: "SIGKILL" });
    });
  }

  /** Cancels the pending restart: the process is stopped, with no run to end. */
  private cancelBackoff(entry: Entry, state: InBackoff, reason: StopReason): void {
    state.timer.cancel();
    this.transition(entry, stopped(), ["backoff"]);
    this.report(entry, { kind: "stopped", reason });
  }

  private afterExit(entry: Entry): Promise<ProcessView> {
    return new Promise((resolve) => {
      entry.exitWaiters.push(() => resolve(this.view(entry)));
    });
  }

  private forget(entry: Entry): void {
    this.entries.delete(entry.spec.name);
    this.report(entry, { kind: "removed" });
  }

  /** Moves to `next`, which is only legal from the states in `from`. */
  private transition(entry: Entry, next: State, from: readonly StateName[]): void {
    const previous = entry.state.kind;
    if (!from.includes(previous)) {
      throw new Error(`illegal transition ${previous} -> ${next.kind} for "${entry.spec.name}"`);
    }
    entry.state = next;
    this.logger.debug({ process: entry.spec.name }, `${previous} -> ${next.kind}`);
  }

  private report(entry: Entry, body: EventBody): void {
    this.emit({ ...body, process: entry.spec.name });
  }

  private lookup(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw notFound(name);
    return entry;
  }

  private refuseWhileShuttingDown(): void {
    if (this.shuttingDown) {
      throw new ProcmonError("unavailable", "procmond is shutting down");
    }
  }

  private refuseWhileRemoving(entry: Entry, state: Stopping): void {
    if (state.after === "forget") {
      throw new ProcmonError(
        "failed_precondition",
        `process "${entry.spec.name}" is being removed`,
      );
    }
  }

  private view(entry: Entry): ProcessView {
    const { state } = entry;
    const child = state.kind === "running" || state.kind === "stopping" ? state.child : undefined;
    return {
      spec: entry.spec,
      state: state.kind,
      pid: child?.pid ?? 0,
      startedAtWallMs: entry.startedAtWall,
      restartCount: entry.restartCount,
      lastExit: entry.lastExit,
      nextRestartAtWallMs: state.kind === "backoff" ? state.restartAtWall : undefined,
      restartDelayMs: entry.backoff.delayMs,
      intent: entry.intent,
      lastSpawnError: entry.lastSpawnError,
      removing: state.kind === "stopping" && state.after === "forget",
    };
  }
}
