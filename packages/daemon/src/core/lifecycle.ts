import type { Clock } from "./clock.js";
import type { EventBody, EventSink } from "./events.js";
import type { Logger } from "./logger.js";
import type { ProbeResult, Prober } from "./probes.js";
import {
  childOf,
  dueToStart,
  ENTERED_FROM,
  type Entry,
  exited,
  failed,
  type InBackoff,
  inBackoff,
  isAtRest,
  type Running,
  running,
  type State,
  type Stopping,
  starting,
  stopped,
  stopping,
  waiting,
} from "./process-state.js";
import { decide, isInstantDeath, type Requested } from "./restart-policy.js";
import {
  type Child,
  type ChildExit,
  type ChildHandlers,
  type FoundRun,
  SpawnError,
  type Spawner,
} from "./spawner.js";
import type { ExitStatus, StopReason } from "./types.js";

/** What the lifecycle asks of the registry that holds the entries. */
export interface LifecycleHost {
  /** True while `entry` is the one registered under its name: output of a forgotten one is dropped. */
  isRegistered(entry: Entry): boolean;
  /** Forgets `entry`, whose removal its exit completed. */
  forget(entry: Entry): void;
  /** The names `entry` depends on whose condition is not met now. */
  unmet(entry: Entry): string[];
  /** Told of every state `entry` enters, after it is in place. */
  entered(entry: Entry, state: State): void;
}

/** What the lifecycle needs from the outside world. */
export interface LifecycleDeps {
  readonly clock: Clock;
  readonly spawner: Spawner;
  readonly emit: EventSink;
  readonly logger: Logger;
  readonly host: LifecycleHost;
  /** Runs readiness checks; without one, a probe never passes. */
  readonly prober?: Prober | undefined;
}

/**
 * What happens to one process between the calls: its spawn, its exit and the
 * restart rule that follows it (restart-policy.ts), its timers, and entering
 * each state, which is where every state's signals, timers and event are.
 */
export class Lifecycle {
  private readonly clock: Clock;
  private readonly spawner: Spawner;
  private readonly emit: EventSink;
  private readonly logger: Logger;
  private readonly host: LifecycleHost;
  private readonly prober: Prober | undefined;

  constructor(deps: LifecycleDeps) {
    this.clock = deps.clock;
    this.spawner = deps.spawner;
    this.emit = deps.emit;
    this.logger = deps.logger;
    this.host = deps.host;
    this.prober = deps.prober;
  }

  /**
   * Spawns the process, once its dependencies are met (until then it waits,
   * unless a call asked for it regardless); a failed spawn is an instant
   * death, decided as any other. A spawner that answers later leaves it
   * starting until it does.
   */
  launch(entry: Entry, ignoreDependencies = false): void {
    const { spec } = entry;
    if (!ignoreDependencies && spec.dependsOn.length > 0) {
      const names = this.host.unmet(entry);
      if (names.length > 0) {
        this.wait(entry, names);
        return;
      }
    }
    let child: Child | undefined;
    let answer: Child | undefined;
    try {
      answer = this.spawner.spawn(
        spec,
        {
          onExit: (exit) => {
            if (child) this.onExit(entry, child, exit);
          },
          onOutput: this.outputOf(entry),
          onSpawned: (outcome) => {
            if (!(outcome instanceof SpawnError)) child = outcome;
            this.spawned(entry, outcome);
          },
        },
        { restartCount: entry.restartCount, lastExit: entry.lastExit },
      );
    } catch (err) {
      this.spawnFailed(entry, err);
      return;
    }
    const { state } = entry;
    if (answer === undefined) {
      if (isAtRest(state) || state.kind === "backoff" || state.kind === "waiting") {
        this.enter(entry, starting(state));
      }
      return;
    }
    child = answer;
    this.enter(entry, running(child, this.clock.now()));
  }

  /**
   * Takes over a run an earlier daemon started (`entry` is new, stopped): it
   * is running, as it was, with no event (nothing changed for a watcher), its
   * restart count and last exit as that daemon recorded them. A run that ended
   * meanwhile reports its exit next, and the restart rule follows.
   */
  adopt(entry: Entry, found: FoundRun): void {
    const { child } = found;
    entry.restartCount = found.record?.restartCount ?? entry.restartCount;
    entry.lastExit = found.record?.lastExit;
    entry.startedAtWall = found.startedAtWallMs;
    const ranMs = Math.max(0, this.clock.wallNow() - found.startedAtWallMs);
    const run = running(child, this.clock.now() - ranMs);
    entry.state = run;
    found.bind({
      onExit: (exit) => this.onExit(entry, child, exit),
      onOutput: this.outputOf(entry),
    });
    // Whether it was ready died with the earlier daemon: its probe says so again.
    this.startProbing(entry, run);
    this.host.entered(entry, run);
  }

  /** A run begins: ready at once without a probe, else once its first check passes. */
  private startProbing(entry: Entry, run: Running): void {
    const probe = entry.spec.ready;
    entry.ready = probe === undefined;
    entry.overMemory = 0;
    if (probe !== undefined) this.armProbe(entry, run, probe.initialDelayMs);
  }

  /** Schedules the run's next readiness check, `delayMs` from now. */
  private armProbe(entry: Entry, run: Running, delayMs: number): void {
    const probe = entry.spec.ready;
    if (probe === undefined || this.prober === undefined) return;
    const prober = this.prober;
    run.probeTimer = this.clock.setTimer(delayMs, () => {
      run.probeTimer = undefined;
      if (entry.state !== run) return;
      prober.check(entry.spec, probe).then((result) => this.probed(entry, run, result));
    });
  }

  /** A check's outcome: ready when it passes, unready when it fails after having passed. */
  private probed(entry: Entry, run: Running, result: ProbeResult): void {
    if (entry.state !== run) return;
    if (result.ok && !entry.ready) {
      entry.ready = true;
      this.report(entry, { kind: "ready" });
    } else if (!result.ok && entry.ready) {
      entry.ready = false;
      this.report(entry, { kind: "unready", error: result.error });
    }
    this.armProbe(entry, run, entry.spec.ready?.periodMs ?? 1_000);
  }

  private outputOf(entry: Entry): ChildHandlers["onOutput"] {
    return (stream, line, partial) => {
      if (this.host.isRegistered(entry)) {
        this.emit({ process: entry.spec.name, kind: "output", stream, line, partial });
      }
    };
  }

  /** Waits for `names`: a waiting event each time the list changes. */
  wait(entry: Entry, names: readonly string[]): void {
    const { state } = entry;
    if (state.kind === "waiting" && state.unmet.join("\0") === names.join("\0")) return;
    this.enter(entry, waiting(names), { kind: "waiting", names });
  }

  /** The answer of a spawn that came later: the process runs, or its failure is decided. */
  private spawned(entry: Entry, outcome: Child | SpawnError): void {
    const { state } = entry;
    if (state.kind !== "starting") {
      this.logger.warn({ process: entry.spec.name }, "a spawn answered that nothing waits for");
      if (!(outcome instanceof SpawnError)) outcome.signal("SIGKILL");
      return;
    }
    if (outcome instanceof SpawnError) this.spawnFailed(entry, outcome);
    else this.enter(entry, running(outcome, this.clock.now()));
    state.settle();
  }

  private spawnFailed(entry: Entry, err: unknown): void {
    const error = err instanceof SpawnError ? err.message : `spawn failed: ${String(err)}`;
    this.logger.warn({ process: entry.spec.name, err }, "spawn failed");
    entry.lastSpawnError = error;
    this.report(entry, { kind: "spawnFailed", error });
    this.follow(entry, undefined, undefined, null);
  }

  onExit(entry: Entry, child: Child, exit: ChildExit): void {
    const { state } = entry;
    if (childOf(state) !== child || (state.kind !== "running" && state.kind !== "stopping")) {
      this.logger.warn({ process: entry.spec.name, pid: child.pid }, "exit of an unknown child");
      return;
    }
    const uptimeMs = Math.max(0, Math.round(exit.uptimeMs ?? this.clock.now() - state.startedAt));
    const status: ExitStatus = { code: exit.code, signal: exit.signal, uptimeMs };
    entry.lastExit = status;
    const requested = state.kind === "stopping" ? state.after : undefined;
    const instant = isInstantDeath({
      uptimeMs,
      thresholdMs: entry.spec.thresholdMs,
      requested,
      backoff: entry.backoff,
    });
    // Ended by itself, it is exited until its policy says what follows (a
    // spawner that answers later shows it so until the new run is up);
    // stopped, if a call asked for the stop.
    const ended = requested === undefined ? exited() : stopped();
    this.enter(entry, ended, { kind: "exited", pid: child.pid, status, instant });
    this.follow(entry, uptimeMs, requested, exit.code);
    if (state.kind === "stopping") {
      const waiters = entry.exitWaiters;
      entry.exitWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Applies the restart rule to a run that just ended (or never began: `uptimeMs` undefined). */
  private follow(
    entry: Entry,
    uptimeMs: number | undefined,
    requested: Requested | undefined,
    code: number | null,
  ): void {
    const { spec } = entry;
    const decision = decide({
      uptimeMs,
      thresholdMs: spec.thresholdMs,
      requested,
      backoff: entry.backoff,
      code,
      restart: spec.restart,
      successExitCodes: spec.successExitCodes,
      maxInstantDeaths: spec.maxInstantDeaths,
      instantDeaths: entry.instantDeaths,
    });
    entry.backoff = decision.backoff;
    entry.instantDeaths = decision.instantDeaths;
    switch (decision.next) {
      case "start":
        if (decision.counted) entry.restartCount += 1;
        this.launch(entry);
        return;
      case "backoff":
        this.enter(
          entry,
          inBackoff(decision.delayMs, Math.round(this.clock.wallNow() + decision.delayMs)),
        );
        return;
      case "forget":
        this.host.forget(entry);
        return;
      case "stopped":
        return;
      case "exited":
        if (entry.state.kind !== "exited") this.enter(entry, exited());
        return;
      case "failed":
        this.enter(entry, failed(), { kind: "gaveUp", instantDeaths: decision.instantDeaths });
        return;
    }
  }

  /** Registers `entry` as due to start now, by the caller's start() rather than a timer. */
  schedule(entry: Entry): void {
    this.enter(entry, dueToStart(Math.round(this.clock.wallNow())));
  }

  /** The stop signal to the group now, SIGKILL after kill_time unless it exits first. */
  beginStop(entry: Entry, state: Running, reason: StopReason, after: Requested): void {
    this.enter(entry, stopping(state, after), reason);
  }

  /**
   * Moves `entry` to `next`, which is only legal from the states
   * ENTERED_FROM names, and does what entering it means: leaving the old
   * state's timers behind, then the new state's signals, timers and event.
   * `because` is the stop's reason for stopping, the event for stopped.
   */
  enter(entry: Entry, next: State, because?: StopReason | EventBody): void {
    const previous = entry.state;
    if (!ENTERED_FROM[next.kind].includes(previous.kind)) {
      throw new Error(
        `illegal transition ${previous.kind} -> ${next.kind} for "${entry.spec.name}"`,
      );
    }
    if (previous.kind === "backoff") previous.timer?.cancel();
    if (previous.kind === "stopping") previous.killTimer?.cancel();
    if (previous.kind === "running") previous.probeTimer?.cancel();
    entry.state = next;
    this.logger.debug({ process: entry.spec.name }, `${previous.kind} -> ${next.kind}`);
    switch (next.kind) {
      case "running":
        entry.lastSpawnError = undefined;
        entry.startedAtWall = this.clock.wallNow();
        this.startProbing(entry, next);
        this.report(entry, { kind: "started", pid: next.child.pid });
        break;
      case "backoff":
        if (next.startedBy === "timer") {
          next.timer = this.clock.setTimer(next.delayMs, () => this.backoffEnded(entry, next));
        }
        this.report(entry, {
          kind: "restartScheduled",
          delayMs: next.delayMs,
          atWallMs: next.restartAtWall,
        });
        break;
      case "stopping":
        next.child.signal(entry.spec.stopSignal);
        this.report(entry, {
          kind: "stopping",
          pid: next.child.pid,
          signal: entry.spec.stopSignal,
          reason: because as StopReason,
        });
        next.killTimer = this.clock.setTimer(entry.spec.killTimeMs, () =>
          this.killTimeUp(entry, next),
        );
        break;
      case "stopped":
      case "exited":
      case "failed":
      case "waiting":
        // The event that says so: stopped, gave_up, waiting; none for exited,
        // whose exited (or spawn_failed) event just came with nothing after it.
        if (because !== undefined) this.report(entry, because as EventBody);
        break;
      case "starting":
        break;
    }
    this.host.entered(entry, next);
  }

  /** The backoff delay ended: the restart it waited for, counted. */
  private backoffEnded(entry: Entry, state: InBackoff): void {
    if (entry.state !== state) return;
    entry.restartCount += 1;
    this.launch(entry);
  }

  /** kill_time passed and the process still runs: SIGKILL to its group. */
  private killTimeUp(entry: Entry, state: Stopping): void {
    if (entry.state !== state) return;
    state.killTimer = undefined;
    state.child.signal("SIGKILL");
    this.report(entry, { kind: "killed", pid: state.child.pid, signal: "SIGKILL" });
  }

  /** Reports `body` about `entry`'s process. */
  report(entry: Entry, body: EventBody): void {
    this.emit({ ...body, process: entry.spec.name });
  }
}
