import { Backoff } from "./backoff.js";
import { type Clock, every, type Timer } from "./clock.js";
import { type DependencyState, refuseCycles, unmet } from "./dependencies.js";
import { notFound, ProcmonError } from "./errors.js";
import type { CoreEvent, EventBody, EventSink } from "./events.js";
import { Lifecycle } from "./lifecycle.js";
import { type Logger, silentLogger } from "./logger.js";
import type { Prober, StatsReader } from "./probes.js";
import {
  childOf,
  type Entry,
  exited,
  failed,
  newEntry,
  type State,
  type Stopping,
  shownState,
  stopped,
  viewOf,
} from "./process-state.js";
import type { Requested } from "./restart-policy.js";
import type { FoundRun, Spawner } from "./spawner.js";
import type { Ended, Intent, ProcessSource, ProcessSpec, ProcessView } from "./types.js";

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
  /** Runs readiness checks. Without one, a probe never passes. */
  readonly prober?: Prober;
  /** Reads the memory of process trees, for max_rss_bytes. Without one, no cap is checked. */
  readonly stats?: StatsReader;
  /** How often capped processes' memory is read. Defaults to 5000. */
  readonly statsPeriodMs?: number;
}

/**
 * The process monitor: Twisted's ProcessMonitor with one record per process
 * and an explicit state machine. Every timer goes through the injected clock
 * and every spawn through the injected spawner, so it runs the same on a fake
 * clock in tests as on the real one in the daemon. This class is the
 * registry and its calls; what happens to each process in between (spawns,
 * exits, the restart rule, entering each state) is its Lifecycle's.
 */
export class Supervisor {
  private readonly entries = new Map<string, Entry>();
  private readonly logger: Logger;
  private readonly lifecycle: Lifecycle;
  private shuttingDown = false;
  /** The processes waiting for their dependencies, looked at again after each event. */
  private readonly waiting = new Set<Entry>();
  private wakeScheduled = false;
  private readonly stats: StatsReader | undefined;
  private readonly memoryWatch: Timer | undefined;

  constructor(deps: SupervisorDeps) {
    this.logger = deps.logger ?? silentLogger;
    const emit = deps.emit;
    this.lifecycle = new Lifecycle({
      ...deps,
      emit: (event: CoreEvent) => {
        emit(event);
        // Any change may meet a dependency: what waits is looked at once the change is done.
        if (this.waiting.size > 0) this.wakeSoon();
      },
      logger: this.logger,
      host: {
        isRegistered: (entry) => this.entries.get(entry.spec.name) === entry,
        forget: (entry) => this.forget(entry),
        unmet: (entry) => unmet(entry.spec.dependsOn, (name) => this.dependencyState(name)),
        entered: (entry, state) => this.entered(entry, state),
      },
    });
    this.stats = deps.stats;
    this.memoryWatch = deps.stats
      ? every(deps.clock, deps.statsPeriodMs ?? 5_000, () => this.checkMemory())
      : undefined;
  }

  /** How many processes are registered. */
  get size(): number {
    return this.entries.size;
  }

  /** True while shutdown() is in progress or done. */
  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Registers a validated spec and starts it at once.
   * @throws ProcmonError already_exists if the name is in use.
   */
  add(spec: ProcessSpec, source: ProcessSource = "api", launch = true): ProcessView {
    if (!this.entries.has(spec.name)) this.refuseCycles([spec]);
    return this.register(spec, "running", source, true, launch);
  }

  /**
   * Refuses specs that, registered (new, or replacing the one of their
   * name), would make the dependencies a cycle.
   * @throws ProcmonError invalid_argument naming the cycle.
   */
  refuseCycles(specs: readonly ProcessSpec[]): void {
    // A spec without dependencies closes no cycle: most adds cost nothing here.
    const changed = specs.filter((s) => s.dependsOn.length > 0);
    if (changed.length === 0) return;
    const given = new Map(specs.map((s) => [s.name, s]));
    const next = (name: string) =>
      (given.get(name) ?? this.entries.get(name)?.spec)?.dependsOn.map((d) => d.name);
    refuseCycles(
      next,
      changed.map((s) => s.name),
    );
  }

  /**
   * Registers a process a previous daemon had (no `added` event: it is not
   * new), starting it only if it should be running. With `launch` false one
   * that should run waits in backoff, due now, for start() to start it.
   */
  restore(
    spec: ProcessSpec,
    intent: Intent,
    source: ProcessSource = "api",
    launch = true,
    ended?: Ended,
  ): ProcessView {
    return this.register(spec, intent, source, false, launch, ended);
  }

  /**
   * Registers a process a previous daemon had, taking over its run that the
   * spawner still holds (`found`): it keeps running with the same pid, with no
   * event. One that should be stopped is stopped now; one whose run no longer
   * matches its spec (changed just before that daemon died) is restarted.
   */
  adopt(spec: ProcessSpec, intent: Intent, source: ProcessSource, found: FoundRun): ProcessView {
    this.refuseWhileShuttingDown();
    if (this.entries.has(spec.name)) {
      throw new ProcmonError("already_exists", `process "${spec.name}" already exists`);
    }
    const entry = newEntry(spec, intent, source);
    this.entries.set(spec.name, entry);
    this.lifecycle.adopt(entry, found);
    // One that ended meanwhile reports its exit next; stopping, it then stays stopped.
    if (intent === "stopped") {
      this.stopEntry(entry, "stop").catch(() => {});
    } else if (!found.exited && !found.runs(spec)) {
      this.logger.info(
        { process: spec.name },
        "its spec changed before the last daemon died: restarting",
      );
      this.restartEntry(entry).catch(() => {});
    }
    return viewOf(entry);
  }

  /** True if a process of that name is registered (one being removed included). */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * Replaces a process's spec. One that should be running is restarted with
   * it (no backoff); a stopped one just keeps it for its next start.
   */
  async update(spec: ProcessSpec): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(spec.name);
    if (entry.state.kind === "starting") {
      await entry.state.settled;
      return this.update(spec);
    }
    this.refuseCycles([spec]);
    entry.spec = spec;
    entry.backoff = Backoff.initial(spec.minRestartDelayMs, spec.maxRestartDelayMs);
    entry.instantDeaths = 0;
    if (entry.intent === "stopped") return viewOf(entry);
    return this.restartEntry(entry);
  }

  /** Stops the process if it runs, cancels any restart, and forgets it; resolves with its final view. */
  async remove(name: string): Promise<ProcessView> {
    return this.stopEntry(this.lookup(name), "remove");
  }

  /** Starts a stopped process, or one in backoff now; a running one is left alone. */
  async start(name: string): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(name);
    const { state } = entry;
    if (state.kind === "starting") {
      entry.intent = "running";
      await state.settled;
      return this.start(name);
    }
    if (!(state.kind === "stopping" && state.after === "forget")) entry.intent = "running";
    // Exited, failed or not: a start is a fresh try.
    entry.instantDeaths = 0;
    // A running process is left alone (same pid); otherwise a start does what a restart does.
    return state.kind === "running" ? viewOf(entry) : this.restartEntry(entry);
  }

  /** Stops the process and keeps it stopped; resolves once it has exited. */
  async stop(name: string): Promise<ProcessView> {
    const entry = this.lookup(name);
    entry.intent = "stopped";
    return this.stopEntry(entry, "stop");
  }

  /** Stops the process and starts it again at once, with no backoff. */
  async restart(name: string): Promise<ProcessView> {
    this.refuseWhileShuttingDown();
    const entry = this.lookup(name);
    entry.instantDeaths = 0;
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
    return viewOf(this.lookup(name));
  }

  /** Returns every process, sorted by name. */
  list(): ProcessView[] {
    return [...this.entries.values()]
      .sort((a, b) => (a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0))
      .map(viewOf);
  }

  /**
   * Checks that each process believed running is alive and still ours; one
   * that is not is handled as if it had exited (signal "LOST") and restarted.
   * Returns the names repaired.
   */
  checkConsistency(): string[] {
    const repaired: string[] = [];
    for (const entry of [...this.entries.values()]) {
      const child = childOf(entry.state);
      if (child === undefined || child.isAlive?.() !== false) continue;
      this.logger.warn(
        { process: entry.spec.name, childPid: child.pid },
        "process is gone without an exit: repairing",
      );
      repaired.push(entry.spec.name);
      this.lifecycle.onExit(entry, child, { code: null, signal: "LOST" });
    }
    return repaired;
  }

  /**
   * Cancels every pending restart and stops every process at once; resolves
   * when all have exited. Afterwards only stop, remove, get and list are served.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.memoryWatch?.cancel();
    // Dependents first: each process is stopped once all that depend on it have exited.
    const stops = new Map<Entry, Promise<unknown>>();
    const stop = (entry: Entry, path: ReadonlySet<Entry>): Promise<unknown> => {
      const known = stops.get(entry);
      if (known) return known;
      // `path` breaks a cycle, which only a hand-edited state file could hold.
      const dependents = [...this.entries.values()].filter(
        (other) => !path.has(other) && other.spec.dependsOn.some((d) => d.name === entry.spec.name),
      );
      const within = new Set(path).add(entry);
      // Without dependents it is stopped at once (not a turn later): all of them in one go.
      const done =
        dependents.length === 0
          ? this.stopEntry(entry, "shutdown")
          : Promise.all(dependents.map((d) => stop(d, within))).then(() =>
              this.stopEntry(entry, "shutdown"),
            );
      stops.set(entry, done);
      return done;
    };
    await Promise.all([...this.entries.values()].map((entry) => stop(entry, new Set())));
  }

  /** What a dependency's condition is judged on; undefined for a name not registered. */
  private dependencyState(name: string): DependencyState | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) return undefined;
    const state = shownState(entry.state);
    return {
      state: state.kind,
      ready: childOf(state) !== undefined && entry.ready,
      lastExitCode: entry.lastExit?.code,
    };
  }

  /** Keeps the set of waiting processes as their states change. */
  private entered(entry: Entry, state: State): void {
    if (state.kind === "waiting") this.waiting.add(entry);
    else this.waiting.delete(entry);
  }

  private wakeSoon(): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      this.wake();
    });
  }

  /** Starts each waiting process whose dependencies are met now; updates what the others wait for. */
  private wake(): void {
    if (this.shuttingDown) return;
    for (const entry of [...this.waiting]) {
      if (entry.state.kind !== "waiting" || this.entries.get(entry.spec.name) !== entry) {
        this.waiting.delete(entry);
        continue;
      }
      const names = unmet(entry.spec.dependsOn, (name) => this.dependencyState(name));
      if (names.length === 0) this.lifecycle.launch(entry, true);
      else this.lifecycle.wait(entry, names);
    }
  }

  /**
   * Reads the memory of the running processes that have a cap: one over it
   * at two checks in a row is restarted (stopping, reason memory).
   */
  private checkMemory(): void {
    const capped = [...this.entries.values()].filter(
      (e) => e.spec.maxRssBytes > 0 && e.state.kind === "running",
    );
    if (capped.length === 0 || this.stats === undefined) return;
    const sampled = this.stats.sample(
      capped.map((e) => ({ name: e.spec.name, pid: childOf(e.state)?.pid ?? 0 })),
    );
    for (const entry of capped) {
      const { state } = entry;
      const rss = sampled.get(entry.spec.name)?.rssBytes;
      if (rss === undefined || state.kind !== "running") continue;
      if (rss <= entry.spec.maxRssBytes) {
        entry.overMemory = 0;
        continue;
      }
      entry.overMemory += 1;
      this.logger.warn(
        { process: entry.spec.name, rssBytes: rss, maxRssBytes: entry.spec.maxRssBytes },
        `over its memory cap (${entry.overMemory} check${entry.overMemory > 1 ? "s" : ""} in a row)`,
      );
      if (entry.overMemory >= 2) {
        entry.overMemory = 0;
        this.lifecycle.beginStop(entry, state, "memory", "start");
      }
    }
  }

  private register(
    spec: ProcessSpec,
    intent: Intent,
    source: ProcessSource,
    announce: boolean,
    launch: boolean,
    ended?: Ended,
  ): ProcessView {
    this.refuseWhileShuttingDown();
    if (this.entries.has(spec.name)) {
      throw new ProcmonError("already_exists", `process "${spec.name}" already exists`);
    }
    const entry = newEntry(spec, intent, source);
    this.entries.set(spec.name, entry);
    if (announce) this.report(entry, { kind: "added", spec });
    if (intent === "running" && ended !== undefined) {
      // As an earlier daemon left it: ended by its policy, or given up on. Nothing changed.
      entry.state = ended === "exited" ? exited() : failed();
    } else if (intent === "running") {
      if (launch) this.lifecycle.launch(entry);
      else this.lifecycle.schedule(entry);
    }
    return viewOf(entry);
  }

  /**
   * Stops whatever runs or waits to run, for `reason`, and keeps it stopped
   * (forgets it, for a remove); resolves once it has exited.
   */
  private async stopEntry(
    entry: Entry,
    reason: "stop" | "shutdown" | "remove",
  ): Promise<ProcessView> {
    const { state } = entry;
    // A spawn under way is answered first; the stop then finds it running, or in backoff.
    if (state.kind === "starting") {
      await state.settled;
      return this.stopEntry(entry, reason);
    }
    const after: Requested = reason === "remove" ? "forget" : "stay-stopped";
    switch (state.kind) {
      case "running":
        this.lifecycle.beginStop(entry, state, reason, after);
        return this.afterExit(entry);
      case "stopping":
        // A stop during a restart's stop keeps it stopped; a remove forgets it whatever it was for.
        if (after === "forget" || state.after === "start") state.after = after;
        return this.afterExit(entry);
      case "backoff":
      case "waiting":
        this.lifecycle.enter(entry, stopped(), { kind: "stopped", reason });
        break;
      case "exited":
      case "failed":
        // At rest already: a stop makes it stopped (a state change, so an
        // event); a shutdown leaves it as it ended, for the next daemon.
        if (reason !== "shutdown") {
          this.lifecycle.enter(entry, stopped(), { kind: "stopped", reason });
        }
        break;
      case "stopped":
        break;
    }
    if (after === "forget") this.forget(entry);
    return viewOf(entry);
  }

  private async restartEntry(entry: Entry): Promise<ProcessView> {
    const { state } = entry;
    switch (state.kind) {
      case "starting":
        // Starting already: what it comes to is the restart's answer.
        return this.settledView(entry);
      case "running":
        this.lifecycle.beginStop(entry, state, "restart", "start");
        return this.afterExit(entry);
      case "stopping":
        this.refuseWhileRemoving(entry, state);
        state.after = "start";
        return this.afterExit(entry);
      case "backoff":
      case "stopped":
      case "exited":
      case "failed":
        this.lifecycle.launch(entry);
        return this.settledView(entry);
      case "waiting":
        // A call for a process that waits: it starts now, its dependencies or not.
        this.lifecycle.launch(entry, true);
        return this.settledView(entry);
    }
  }

  /**
   * Resolves with the process's view once no spawn of it is under way: what
   * a call that (re)started it answers, running or in backoff.
   */
  async whenSettled(name: string): Promise<ProcessView> {
    return this.settledView(this.lookup(name));
  }

  private async settledView(entry: Entry): Promise<ProcessView> {
    while (entry.state.kind === "starting") await entry.state.settled;
    return viewOf(entry);
  }

  private afterExit(entry: Entry): Promise<ProcessView> {
    return new Promise((resolve) => {
      entry.exitWaiters.push(() => resolve(this.settledView(entry)));
    });
  }

  private forget(entry: Entry): void {
    this.entries.delete(entry.spec.name);
    this.report(entry, { kind: "removed" });
  }

  private report(entry: Entry, body: EventBody): void {
    this.lifecycle.report(entry, body);
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
}
