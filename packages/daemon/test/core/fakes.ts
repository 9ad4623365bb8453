import type { Clock, Timer } from "../../src/core/clock.js";
import type { CoreEvent } from "../../src/core/events.js";
import type { ProbeResult, Prober, StatsReader } from "../../src/core/probes.js";
import {
  type Child,
  type ChildHandlers,
  type OutputStreamName,
  type RunRecord,
  SpawnError,
  type Spawner,
  type SpawnRequest,
  type StopSignal,
} from "../../src/core/spawner.js";
import { Supervisor } from "../../src/core/supervisor.js";
import {
  DEFAULT_END_POLICY,
  DEFAULT_POLICY,
  DEFAULT_READINESS,
  type Policy,
  type ProcessSpec,
  type ReadinessProbe,
} from "../../src/core/types.js";

/** The wall-clock time of the fake clock's origin: 2024-01-01T00:00:00Z. */
export const FAKE_EPOCH_MS = Date.UTC(2024, 0, 1);

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock that only moves when told to, like Twisted's task.Clock: `advance()`
 * runs every timer that falls due, in time order (ties in scheduling order),
 * including timers that those callbacks schedule inside the advanced window.
 */
export class FakeClock implements Clock {
  private current = 0;
  private seq = 0;
  private readonly timers = new Set<PendingTimer>();

  /** Monotonic milliseconds since the fake origin. */
  now(): number {
    return this.current;
  }

  /** FAKE_EPOCH_MS plus now(). */
  wallNow(): number {
    return FAKE_EPOCH_MS + this.current;
  }

  /** Schedules `fn` at now() + delayMs (a negative delay counts as 0). */
  setTimer(delayMs: number, fn: () => void): Timer {
    const timer: PendingTimer = { at: this.current + Math.max(0, delayMs), seq: this.seq++, fn };
    this.timers.add(timer);
    return { cancel: () => void this.timers.delete(timer) };
  }

  /** Moves time forward by `ms`, running each due timer at its own time. */
  advance(ms: number): void {
    if (ms < 0) throw new Error(`cannot advance by ${ms} ms`);
    const target = this.current + ms;
    for (;;) {
      const due = this.nextDue(target);
      if (!due) break;
      this.timers.delete(due);
      this.current = due.at;
      due.fn();
    }
    this.current = target;
  }

  /** How many timers are scheduled and neither run nor cancelled. */
  pendingTimers(): number {
    return this.timers.size;
  }

  private nextDue(limit: number): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.timers) {
      if (t.at > limit) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** A child that the test drives by hand; it records every signal it is sent. */
export class FakeChild implements Child {
  /** Every signal the core sent, in order, including any sent after the exit. */
  readonly signals: string[] = [];
  /** Signals sent after the child had exited: a correct core never sends any. */
  readonly signalsAfterExit: string[] = [];
  /** True once exit() or kill() has been called. */
  exited = false;

  constructor(
    /** The fake pid, also its process group id. */
    readonly pid: number,
    /** The request it was spawned with. */
    readonly request: SpawnRequest,
    /** The callbacks the core handed to the spawner. */
    readonly handlers: ChildHandlers,
  ) {}

  /** Records the signal; it does not end the child (call exit() or kill()). */
  signal(signal: StopSignal): void {
    this.signals.push(signal);
    if (this.exited) this.signalsAfterExit.push(signal);
  }

  /** Ends the child with an exit code. */
  exit(code: number): void {
    this.end(code, null);
  }

  /** Ends the child as if `signal` had killed it. */
  kill(signal: string): void {
    this.end(null, signal);
  }

  /** Delivers one line of output, as the adapter's line splitter would. */
  output(stream: OutputStreamName, line: string, partial = false): void {
    this.handlers.onOutput(stream, line, partial);
  }

  private end(code: number | null, signal: string | null): void {
    if (this.exited) throw new Error(`fake child ${this.pid} has already exited`);
    this.exited = true;
    this.handlers.onExit({ code, signal });
  }
}

/** A spawn asked of a FakeSpawner that answers later, and not yet answered. */
export interface PendingSpawn {
  readonly request: SpawnRequest;
  readonly handlers: ChildHandlers;
}

/**
 * A spawner that hands out FakeChild objects with pids 1001, 1002, ...; at
 * once by default, or, once `answerLater` is set, when the test calls answer().
 */
export class FakeSpawner implements Spawner {
  /** Every child spawned, in order. */
  readonly children: FakeChild[] = [];
  /** Spawns asked for and not answered yet (with answerLater), oldest first. */
  readonly pending: PendingSpawn[] = [];
  /** How many spawn attempts failed. */
  failures = 0;
  /** Answer spawns later, through answer(), as a spawner in another process does. */
  answerLater = false;
  private nextPid = 1001;
  private failing = 0;

  /** The run record of every spawn asked for, in order. */
  readonly records: Array<RunRecord | undefined> = [];

  /** Spawns a FakeChild, or throws SpawnError("ENOENT") while failNext() is armed. */
  spawn(request: SpawnRequest, handlers: ChildHandlers, record?: RunRecord): Child | undefined {
    this.records.push(record);
    if (this.answerLater) {
      this.pending.push({ request, handlers });
      return undefined;
    }
    const outcome = this.outcome(request, handlers);
    if (outcome instanceof SpawnError) throw outcome;
    return outcome;
  }

  /** Answers the oldest pending spawn: a child, or ENOENT while failNext() is armed. */
  answer(): FakeChild | SpawnError {
    const next = this.pending.shift();
    if (!next) throw new Error("no spawn is pending");
    const outcome = this.outcome(next.request, next.handlers);
    next.handlers.onSpawned(outcome);
    return outcome;
  }

  private outcome(request: SpawnRequest, handlers: ChildHandlers): FakeChild | SpawnError {
    if (this.failing > 0) {
      this.failing -= 1;
      this.failures += 1;
      return new SpawnError("ENOENT", `spawn ${request.args[0] ?? ""} ENOENT`);
    }
    const child = new FakeChild(this.nextPid++, request, handlers);
    this.children.push(child);
    return child;
  }

  /** Makes the next `count` spawns fail with ENOENT. */
  failNext(count = 1): void {
    this.failing += count;
  }

  /** The most recently spawned child; throws if none was. */
  last(): FakeChild {
    const child = this.children.at(-1);
    if (!child) throw new Error("nothing was spawned");
    return child;
  }

  /** The most recent child spawned for the process with this executable (args[0]). */
  lastOf(name: string): FakeChild {
    const child = this.children.findLast((c) => c.request.args[0] === `/bin/${name}`);
    if (!child) throw new Error(`nothing was spawned for "${name}"`);
    return child;
  }
}

/** A valid spec named `name` running `/bin/<name>`, with DEFAULT_POLICY unless overridden. */
export function spec(name: string, overrides: Partial<ProcessSpec> = {}): ProcessSpec {
  return {
    ...DEFAULT_POLICY,
    ...DEFAULT_END_POLICY,
    ...DEFAULT_READINESS,
    name,
    args: [`/bin/${name}`],
    env: {},
    clearEnv: false,
    cwd: "",
    ...overrides,
  };
}

/** The events of one kind, narrowed to that kind. */
export function ofKind<K extends CoreEvent["kind"]>(
  events: readonly CoreEvent[],
  kind: K,
): Extract<CoreEvent, { kind: K }>[] {
  return events.filter((e): e is Extract<CoreEvent, { kind: K }> => e.kind === kind);
}

/** What a promise has come to so far, updated as it settles. */
export interface Tracked<T> {
  /** True once it has resolved or rejected. */
  readonly settled: boolean;
  /** The value, once resolved. */
  readonly value: T | undefined;
}

/** Watches a promise so a test can ask whether it has settled yet. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const state: { settled: boolean; value: T | undefined } = { settled: false, value: undefined };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** Lets every already-queued promise callback run; no timers involved. */
export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Returns what `fn` throws; fails if it returns normally. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to throw");
}

/** A supervisor on a fake clock and spawner, with every event it emits. */
export interface Harness {
  /** The supervisor under test. */
  readonly sup: Supervisor;
  /** Its clock. */
  readonly clock: FakeClock;
  /** Its spawner. */
  readonly spawner: FakeSpawner;
  /** Every event emitted so far, in order. */
  readonly events: CoreEvent[];
  /** spec() with this harness's policy overrides applied. */
  spec(name: string, overrides?: Partial<ProcessSpec>): ProcessSpec;
  /** Adds spec(name, overrides) and returns its child; throws if the spawn failed. */
  add(name: string, overrides?: Partial<ProcessSpec>): FakeChild;
}

/** A readiness check asked of a FakeProber, answered by the test. */
export interface PendingCheck {
  readonly spec: ProcessSpec;
  readonly probe: ReadinessProbe;
  answer(result: ProbeResult): void;
}

/** A prober whose checks the test answers, in the order they were asked. */
export class FakeProber implements Prober {
  readonly pending: PendingCheck[] = [];

  check(spec: ProcessSpec, probe: ReadinessProbe): Promise<ProbeResult> {
    return new Promise((resolve) => this.pending.push({ spec, probe, answer: resolve }));
  }

  /** Answers the oldest check of `name`; throws if none is pending. */
  answer(name: string, result: ProbeResult): void {
    const at = this.pending.findIndex((c) => c.spec.name === name);
    if (at < 0) throw new Error(`no check of "${name}" is pending`);
    const [check] = this.pending.splice(at, 1);
    check?.answer(result);
  }
}

/** Memory a test sets, by process name, for the supervisor's cap checks. */
export class FakeStats implements StatsReader {
  readonly rss = new Map<string, number>();
  samples = 0;

  sample(roots: ReadonlyArray<{ readonly name: string; readonly pid: number }>) {
    this.samples += 1;
    return new Map(
      roots
        .filter((r) => this.rss.has(r.name))
        .map((r) => [r.name, { cpuSeconds: 0, rssBytes: this.rss.get(r.name) ?? 0 }]),
    );
  }
}

/** Builds a Harness; `policyOverrides` apply to every spec made through it. */
export function makeSupervisor(
  policyOverrides: Partial<Policy> = {},
  extra: { readonly prober?: FakeProber; readonly stats?: FakeStats } = {},
): Harness {
  const clock = new FakeClock();
  const spawner = new FakeSpawner();
  const events: CoreEvent[] = [];
  const sup = new Supervisor({
    clock,
    spawner,
    emit: (e) => events.push(e),
    ...(extra.prober ? { prober: extra.prober } : {}),
    ...(extra.stats ? { stats: extra.stats, statsPeriodMs: 5_000 } : {}),
  });
  const harnessSpec = (name: string, overrides: Partial<ProcessSpec> = {}): ProcessSpec =>
    spec(name, { ...policyOverrides, ...overrides });
  return {
    sup,
    clock,
    spawner,
    events,
    spec: harnessSpec,
    add(name, overrides) {
      const before = spawner.children.length;
      sup.add(harnessSpec(name, overrides));
      if (spawner.children.length !== before + 1) throw new Error(`"${name}" did not spawn`);
      return spawner.last();
    },
  };
}

/** A small seeded generator (mulberry32), so that failures reproduce. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
