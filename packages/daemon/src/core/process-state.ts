import { Backoff } from "./backoff.js";
import type { Timer } from "./clock.js";
import type { Requested } from "./restart-policy.js";
import type { Child } from "./spawner.js";
import type { ExitStatus, Intent, ProcessSource, ProcessSpec, ProcessView } from "./types.js";

/** The process is alive. */
export interface Running {
  readonly kind: "running";
  readonly child: Child;
  /** Monotonic ms of the spawn, for uptime and the instant-death threshold. */
  readonly startedAt: number;
  /** The next readiness check, while one is due (set as the state is entered). */
  probeTimer: Timer | undefined;
}

/** Registered to run, not started: `unmet` dependencies first. */
export interface Waiting {
  readonly kind: "waiting";
  readonly unmet: readonly string[];
}

/** The process died; `timer` will start it again at `restartAtWall`. */
export interface InBackoff {
  readonly kind: "backoff";
  readonly delayMs: number;
  readonly restartAtWall: number;
  /**
   * Whose the start is: the delay's timer (set as the state is entered), or,
   * for a process registered at daemon start, Control's bounded start-up.
   */
  readonly startedBy: "timer" | "caller";
  timer: Timer | undefined;
}

/**
 * The stop signal was sent to the process group; `killTimer` sends SIGKILL
 * after kill_time. `after` says what the exit leads to, and may be changed by
 * calls made while it is stopping (a start during a stop starts it again).
 */
export interface Stopping {
  readonly kind: "stopping";
  readonly child: Child;
  readonly startedAt: number;
  after: Requested;
  /** Set as the state is entered. */
  killTimer: Timer | undefined;
}

/**
 * A spawn was asked for and its answer has not come (a spawner that answers
 * later). Shown as the state it left (`from`): no event announces it, and the
 * calls made meanwhile wait for `settled`.
 */
export interface Starting {
  readonly kind: "starting";
  readonly from: AtRest | InBackoff | Waiting;
  readonly settled: Promise<void>;
  /** Resolves `settled`: the spawn answered, and the state that follows is in place. */
  readonly settle: () => void;
}

/** Nothing runs and nothing is scheduled: stopped on request, or between a run and what follows. */
export interface Stopped {
  readonly kind: "stopped";
}

/** The run ended and its restart policy does not restart it; a start runs it again. */
export interface Exited {
  readonly kind: "exited";
}

/** The monitor gave up after max_instant_deaths instant deaths in a row; a start tries again. */
export interface Failed {
  readonly kind: "failed";
}

/** A process's supervision state. */
export type State = Running | InBackoff | Stopping | Stopped | Exited | Failed | Waiting | Starting;

/** The states in which nothing runs and nothing will until a call starts it. */
export type AtRest = Stopped | Exited | Failed;

/** A state's name. */
export type StateKind = State["kind"];

/** The process runs `child`, spawned now. */
export const running = (child: Child, startedAt: number): Running => ({
  kind: "running",
  child,
  startedAt,
  probeTimer: undefined,
});

/** Waits for `unmet` dependencies. */
export const waiting = (unmet: readonly string[]): Waiting => ({ kind: "waiting", unmet });

/** The process waits `delayMs` before it is started again. */
export const inBackoff = (delayMs: number, restartAtWall: number): InBackoff => ({
  kind: "backoff",
  delayMs,
  restartAtWall,
  startedBy: "timer",
  timer: undefined,
});

/**
 * Registered to run, its start due now but left to the caller's start():
 * what a process of the state file or the config is while the daemon serves
 * its socket before starting them. Shown as backoff (a start scheduled), not
 * stopped, which would say it was stopped on request.
 */
export const dueToStart = (atWall: number): InBackoff => ({
  kind: "backoff",
  delayMs: 0,
  restartAtWall: atWall,
  startedBy: "caller",
  timer: undefined,
});

/** The running process is being stopped; its exit leads to `after`. */
export const stopping = (from: Running, after: Requested): Stopping => ({
  kind: "stopping",
  child: from.child,
  startedAt: from.startedAt,
  after,
  killTimer: undefined,
});

/** Nothing runs. */
export const stopped = (): Stopped => ({ kind: "stopped" });

/** Ended, not restarted by its policy. */
export const exited = (): Exited => ({ kind: "exited" });

/** Given up on. */
export const failed = (): Failed => ({ kind: "failed" });

/** True for a state in which nothing runs and nothing is scheduled. */
export function isAtRest(state: State): state is AtRest {
  return state.kind === "stopped" || state.kind === "exited" || state.kind === "failed";
}

/** A spawn is under way from `from`. */
export function starting(from: AtRest | InBackoff | Waiting): Starting {
  let settle = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return { kind: "starting", from, settled, settle };
}

/** The states each state may be entered from: every other move is a bug. */
export const ENTERED_FROM: Readonly<Record<StateKind, readonly StateKind[]>> = {
  starting: ["stopped", "exited", "failed", "backoff", "waiting"],
  running: ["stopped", "exited", "failed", "backoff", "waiting", "starting"],
  backoff: ["stopped", "exited", "failed", "backoff", "waiting", "starting"],
  stopping: ["running"],
  stopped: ["running", "stopping", "backoff", "exited", "failed", "waiting"],
  // Whenever it would start (a call, a restart after a death) with dependencies not met.
  waiting: ["stopped", "exited", "failed", "backoff", "waiting", "starting"],
  // At a run's end, or after a spawn that failed.
  exited: ["running", "stopped", "exited", "failed", "backoff", "starting"],
  failed: ["stopped", "exited", "failed", "backoff", "starting"],
};

/** One supervised process: its spec and everything the monitor knows of it. */
export interface Entry {
  /** Replaced by update(); each launch uses the current one. */
  spec: ProcessSpec;
  intent: Intent;
  /** Who registered it: the config file may change and remove only its own. */
  source: ProcessSource;
  state: State;
  backoff: Backoff;
  restartCount: number;
  /** Instant deaths in a row: reset by a long run and by a start. */
  instantDeaths: number;
  /** The readiness probe has passed since the current run started (true at once without one). */
  ready: boolean;
  /** Memory checks in a row over max_rss_bytes. */
  overMemory: number;
  lastExit: ExitStatus | undefined;
  startedAtWall: number | undefined;
  /** Why the latest spawn failed; undefined once one has succeeded. */
  lastSpawnError: string | undefined;
  /** Resolved when the run being stopped has exited and its aftermath is in place. */
  exitWaiters: Array<() => void>;
}

/** A new entry for `spec`, stopped, with a fresh backoff. */
export function newEntry(spec: ProcessSpec, intent: Intent, source: ProcessSource): Entry {
  return {
    spec,
    intent,
    source,
    state: stopped(),
    backoff: Backoff.initial(spec.minRestartDelayMs, spec.maxRestartDelayMs),
    restartCount: 0,
    instantDeaths: 0,
    ready: false,
    overMemory: 0,
    lastExit: undefined,
    startedAtWall: undefined,
    lastSpawnError: undefined,
    exitWaiters: [],
  };
}

/** The running child of a state, if it has one. */
export function childOf(state: State): Child | undefined {
  return state.kind === "running" || state.kind === "stopping" ? state.child : undefined;
}

/** The state a process shows: a spawn under way shows as what it left, as no event has said otherwise. */
export function shownState(state: State): Exclude<State, Starting> {
  return state.kind === "starting" ? state.from : state;
}

/** A snapshot of `entry`, as the API reports it. */
export function viewOf(entry: Entry): ProcessView {
  const state = shownState(entry.state);
  return {
    spec: entry.spec,
    state: state.kind,
    pid: childOf(state)?.pid ?? 0,
    startedAtWallMs: entry.startedAtWall,
    restartCount: entry.restartCount,
    lastExit: entry.lastExit,
    nextRestartAtWallMs: state.kind === "backoff" ? state.restartAtWall : undefined,
    restartDelayMs: entry.backoff.delayMs,
    intent: entry.intent,
    source: entry.source,
    lastSpawnError: entry.lastSpawnError,
    removing: state.kind === "stopping" && state.after === "forget",
    ready: childOf(state) !== undefined && entry.ready,
    waitingFor: state.kind === "waiting" ? state.unmet : [],
  };
}
