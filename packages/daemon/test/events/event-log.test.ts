import { LAST_DELIVERED_SEQ_KEY, OLDEST_RESUMABLE_SEQ_KEY } from "@procmon/api/metadata";
import { describe, expect, it } from "vitest";
import { ProcmonError } from "../../src/core/errors.js";
import type { CoreEvent } from "../../src/core/events.js";
import {
  DEFAULT_RETENTION,
  type EventFilter,
  EventLog,
  type LoggedEvent,
  type Retention,
  type SubscriberSink,
  type Subscription,
} from "../../src/events/event-log.js";
import { FAKE_EPOCH_MS, FakeClock, seeded, spec, thrown } from "../core/fakes.js";

// ---------------------------------------------------------------- helpers

function stateEvent(process: string, pid = 1): CoreEvent {
  return { kind: "started", process, pid };
}

function outputLine(process: string, line = "hello"): CoreEvent {
  return { kind: "output", process, stream: "stdout", line, partial: false };
}

function filter(names: readonly string[] = [], includeOutput = false): EventFilter {
  return { names: new Set(names), includeOutput };
}

/** What a filter selects, written out independently of the code under test. */
function wanted(f: EventFilter, event: CoreEvent): boolean {
  if (event.kind === "output" && !f.includeOutput) return false;
  return f.names.size === 0 || f.names.has(event.process);
}

function range(from: number, to: number): bigint[] {
  const seqs: bigint[] = [];
  for (let s = from; s <= to; s++) seqs.push(BigInt(s));
  return seqs;
}

/**
 * A sink that records everything and takes `credit` writes before it reports
 * itself full (Infinity: never). It notes any write it gets while full.
 */
class RecordingSink implements SubscriberSink {
  readonly events: LoggedEvent[] = [];
  readonly failures: ProcmonError[] = [];
  ends = 0;
  writesWhileFull = 0;
  writesAfterEnd = 0;
  /** How many writes it answered with false. */
  timesFull = 0;
  /** Called after each recorded write (before answering). */
  onWrite: ((logged: LoggedEvent) => void) | undefined;
  private full = false;

  constructor(private credit = Number.POSITIVE_INFINITY) {}

  write(logged: LoggedEvent): boolean {
    if (this.full) this.writesWhileFull += 1;
    if (this.ends > 0 || this.failures.length > 0) this.writesAfterEnd += 1;
    this.events.push(logged);
    this.onWrite?.(logged);
    this.credit -= 1;
    this.full = this.credit <= 0;
    if (this.full) this.timesFull += 1;
    return !this.full;
  }

  end(): void {
    this.ends += 1;
  }

  fail(error: ProcmonError): void {
    this.failures.push(error);
  }

  /** The consumer drained `credit` more writes' worth: resume `subscription`. */
  drain(subscription: Subscription, credit = Number.POSITIVE_INFINITY): void {
    this.credit = credit;
    this.full = false;
    subscription.resume();
  }

  get seqs(): bigint[] {
    return this.events.map((e) => e.seq);
  }

  /** True if it was neither ended nor failed, and never written out of turn. */
  get clean(): boolean {
    return this.writesWhileFull === 0 && this.writesAfterEnd === 0;
  }
}

function makeLog(retention: Partial<Retention> = {}): { log: EventLog; clock: FakeClock } {
  const clock = new FakeClock();
  const log = new EventLog(clock, {
    stateEvents: 10_000,
    stateBytes: Number.MAX_SAFE_INTEGER,
    outputLines: 10_000,
    outputBytes: 16 * 1024 * 1024,
    ...retention,
  });
  return { log, clock };
}

function appendState(log: EventLog, n: number, process = "p"): LoggedEvent[] {
  const out: LoggedEvent[] = [];
  for (let i = 0; i < n; i++) out.push(log.append(stateEvent(process, i)));
  return out;
}

function appendOutput(log: EventLog, n: number, process = "p", line = "hello"): LoggedEvent[] {
  const out: LoggedEvent[] = [];
  for (let i = 0; i < n; i++) out.push(log.append(outputLine(process, line)));
  return out;
}

/** An `added` event whose spec holds an env value of `envChars` characters. */
function addedEvent(process: string, envChars: number): CoreEvent {
  return { kind: "added", process, spec: spec(process, { env: { BIG: "v".repeat(envChars) } }) };
}

function outOfRange(fn: () => unknown): ProcmonError {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(ProcmonError);
  const e = error as ProcmonError;
  expect(e.code).toBe("out_of_range");
  return e;
}

/** The first place where two seq lists differ, or undefined if they are equal. */
function firstDifference(
  actual: readonly bigint[],
  expected: readonly bigint[],
): string | undefined {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      return `at ${i}: got ${actual[i] ?? "nothing"}, expected ${expected[i] ?? "nothing"} (lengths ${actual.length} / ${expected.length})`;
    }
  }
  return undefined;
}

/** The seq named in a resource_exhausted message as the last delivered. */
function lastSeqIn(error: ProcmonError): bigint {
  const match = /seq (\d+)/.exec(error.message);
  if (!match?.[1]) throw new Error(`no seq in "${error.message}"`);
  return BigInt(match[1]);
}

// ---------------------------------------------------------------- numbering

describe("EventLog numbering", () => {
  it("numbers from 1 with the clock's wall time in integer ms", () => {
    const { log, clock } = makeLog();
    expect(log.lastSeq).toBe(0n);
    clock.advance(1500.4);
    const first = log.append(stateEvent("a"));
    clock.advance(0.2);
    const second = log.append(outputLine("a"));
    expect(first.seq).toBe(1n);
    expect(first.timeWallMs).toBe(FAKE_EPOCH_MS + 1500);
    expect(second.seq).toBe(2n);
    expect(Number.isInteger(second.timeWallMs)).toBe(true);
    expect(first.event).toEqual(stateEvent("a"));
    expect(log.lastSeq).toBe(2n);
  });

  it("numbers 20k mixed events from many processes without gaps and feeds every filter exactly (seeded)", () => {
    const rand = seeded(20240101);
    const { log, clock } = makeLog({ stateEvents: 256, outputLines: 256, outputBytes: 16_384 });
    const names = Array.from({ length: 12 }, (_, i) => `proc-${i}`);
    const pick = () => names[Math.floor(rand() * names.length)] ?? "proc-0";
    const randomEvent = (): CoreEvent => {
      const process = pick();
      const r = rand();
      if (r < 0.55) {
        const stream = rand() < 0.5 ? "stdout" : "stderr";
        const line = "x".repeat(Math.floor(rand() * 60));
        return { kind: "output", process, stream, line, partial: rand() < 0.05 };
      }
      if (r < 0.7) return { kind: "started", process, pid: 1000 + Math.floor(rand() * 1000) };
      if (r < 0.85) {
        const status = { code: 1, signal: null, uptimeMs: 5 };
        return { kind: "exited", process, pid: 1, status, instant: rand() < 0.5 };
      }
      if (r < 0.9) return { kind: "restartScheduled", process, delayMs: 1000, atWallMs: 0 };
      if (r < 0.95) return { kind: "added", process, spec: spec(process) };
      return { kind: "removed", process };
    };

    interface Watcher {
      readonly label: string;
      readonly filter: EventFilter;
      readonly afterSeq: bigint;
      readonly sink: RecordingSink;
      readonly subscription: Subscription;
      /** For a jittery consumer: appends left until it drains. */
      drainIn?: number;
    }
    const watchers: Watcher[] = [];
    const watch = (label: string, f: EventFilter, afterSeq?: bigint, credit?: number) => {
      const sink = new RecordingSink(credit);
      const subscription = log.subscribe(f, afterSeq, sink);
      watchers.push({ label, filter: f, afterSeq: afterSeq ?? log.lastSeq, sink, subscription });
    };
    watch("all state", filter());
    watch("all with output", filter([], true));
    watch("two with output", filter(["proc-1", "proc-3"], true));
    watch("one, state only", filter(["proc-2"]));
    watch("nobody", filter(["no-such-process"], true));
    watch("jittery with output", filter(["proc-4", "proc-5", "proc-6"], true), undefined, 1);
    watch("jittery all", filter([], true), undefined, 3);

    const all: LoggedEvent[] = [];
    const total = 20_000;
    for (let n = 1; n <= total; n++) {
      clock.advance(rand() * 3);
      const logged = log.append(randomEvent());
      all.push(logged);
      if (n === total / 2) {
        // Joiners half-way: from a recent seq (replay, then live) and live only.
        watch("late replay, state", filter(["proc-7", "proc-8"]), log.lastSeq - 50n);
        watch("late replay, output", filter([], true), log.lastSeq - 50n, 2);
        watch("late live", filter(["proc-9"], true));
      }
      // Jittery consumers drain now and then, taking a random number of events
      // each time: often blocked, sometimes for a while, never far behind.
      for (const w of watchers) {
        if (!w.label.includes("jittery") && !w.label.startsWith("late replay, output")) continue;
        w.drainIn = (w.drainIn ?? 0) - 1;
        if (w.drainIn <= 0) {
          w.drainIn = 1 + Math.floor(rand() * 10);
          w.sink.drain(w.subscription, 1 + Math.floor(rand() * 40));
        }
      }
    }
    for (const w of watchers) w.sink.drain(w.subscription);

    // The log: 1..N, no gap, time never going back.
    const gaps = firstDifference(
      all.map((e) => e.seq),
      range(1, total),
    );
    expect(gaps).toBeUndefined();
    expect(log.lastSeq).toBe(BigInt(total));
    expect(all.every((e, i) => i === 0 || e.timeWallMs >= (all[i - 1]?.timeWallMs ?? 0))).toBe(
      true,
    );
    expect(all.filter((e) => e.event.kind === "output").length).toBeGreaterThan(total / 3);

    // Every watcher: exactly the matching events after its cursor, in order.
    const report = watchers.map((w) => {
      const expected = all.filter((e) => e.seq > w.afterSeq && wanted(w.filter, e.event));
      const sameEvents = w.sink.events.every((e, i) => e.event === expected[i]?.event);
      return {
        label: w.label,
        difference: firstDifference(
          w.sink.seqs,
          expected.map((e) => e.seq),
        ),
        sameEvents,
        failures: w.sink.failures.map((e) => e.message),
        clean: w.sink.clean,
      };
    });
    expect(report).toEqual(
      watchers.map((w) => ({
        label: w.label,
        difference: undefined,
        sameEvents: true,
        failures: [],
        clean: true,
      })),
    );
    // The filters did select something (except "nobody"), and the jittery
    // consumers were often full, so the check has teeth.
    for (const w of watchers) {
      if (w.label !== "nobody") expect(w.sink.events.length, w.label).toBeGreaterThan(100);
      if (w.label.includes("jittery")) expect(w.sink.timesFull, w.label).toBeGreaterThan(100);
    }
    expect(log.subscriberCount).toBe(watchers.length);
  });
});

// ---------------------------------------------------------------- replay

describe("EventLog replay boundaries", () => {
  /** 25 state events through a window of 10: 16..25 kept, 15 the last evicted. */
  function evictedLog(): EventLog {
    const { log } = makeLog({ stateEvents: 10 });
    appendState(log, 25);
    return log;
  }

  it("resumes from the last evicted seq (the oldest cursor) with everything after it", () => {
    const log = evictedLog();
    const sink = new RecordingSink();
    const sub = log.subscribe(filter(), 15n, sink);
    expect(sink.seqs).toEqual(range(16, 25));
    expect(sub.lastDeliveredSeq).toBe(25n);
    log.append(stateEvent("p"));
    expect(sink.seqs).toEqual(range(16, 26));
  });

  it("refuses a cursor one before the oldest resumable, naming it", () => {
    const log = evictedLog();
    const error = outOfRange(() => log.subscribe(filter(), 14n, new RecordingSink()));
    expect(error.message).toContain("14");
    expect(error.message).toContain("15");
    expect(error.details[OLDEST_RESUMABLE_SEQ_KEY]).toBe("15");
    outOfRange(() => log.subscribe(filter(), 0n, new RecordingSink()));
    expect(log.subscriberCount).toBe(0);
  });

  it("from the newest seq replays nothing, then goes live", () => {
    const log = evictedLog();
    const sink = new RecordingSink();
    const sub = log.subscribe(filter(), 25n, sink);
    expect(sink.seqs).toEqual([]);
    expect(sub.lastDeliveredSeq).toBe(25n);
    appendState(log, 2);
    expect(sink.seqs).toEqual([26n, 27n]);
  });

  it("without a cursor starts live, like from the newest", () => {
    const log = evictedLog();
    const sink = new RecordingSink();
    const sub = log.subscribe(filter(), undefined, sink);
    expect(sub.lastDeliveredSeq).toBe(25n);
    appendState(log, 1);
    expect(sink.seqs).toEqual([26n]);
  });

  it("refuses a cursor one past the newest", () => {
    const log = evictedLog();
    const error = outOfRange(() => log.subscribe(filter(), 26n, new RecordingSink()));
    expect(error.message).toContain("26");
    expect(error.message).toContain("25");
    expect(log.subscriberCount).toBe(0);
    const empty = makeLog().log;
    outOfRange(() => empty.subscribe(filter(), 1n, new RecordingSink()));
  });

  it("after_seq 0 replays everything when nothing was evicted (and nothing on an empty log)", () => {
    const { log } = makeLog({ stateEvents: 5, outputLines: 5 });
    const empty = new RecordingSink();
    log.subscribe(filter([], true), 0n, empty);
    expect(empty.seqs).toEqual([]);
    appendState(log, 5);
    appendOutput(log, 5);
    const sink = new RecordingSink();
    log.subscribe(filter([], true), 0n, sink);
    expect(sink.seqs).toEqual(range(1, 10));
    expect(empty.seqs).toEqual(range(1, 10));
    // One more state event evicts seq 1: 0 is no longer resumable.
    log.append(stateEvent("p"));
    outOfRange(() => log.subscribe(filter(), 0n, new RecordingSink()));
    log.subscribe(filter(), 1n, new RecordingSink());
  });

  it("replays only what the filter selects", () => {
    const { log } = makeLog();
    log.append(stateEvent("a")); // 1
    log.append(outputLine("a")); // 2
    log.append(stateEvent("b")); // 3
    log.append(outputLine("b")); // 4
    log.append(stateEvent("c")); // 5
    const seqsOf = (f: EventFilter, after = 0n) => {
      const sink = new RecordingSink();
      log.subscribe(f, after, sink);
      return sink.seqs;
    };
    expect(seqsOf(filter())).toEqual([1n, 3n, 5n]);
    expect(seqsOf(filter([], true))).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(seqsOf(filter(["a"]))).toEqual([1n]);
    expect(seqsOf(filter(["a", "b"], true))).toEqual([1n, 2n, 3n, 4n]);
    expect(seqsOf(filter(["b"], true), 3n)).toEqual([4n]);
    expect(seqsOf(filter(["zzz"], true))).toEqual([]);
  });
});

// ---------------------------------------------------------------- replay then live

describe("EventLog replay then live", () => {
  it("has no gap and no duplicate, also for events appended while blocked mid-replay", () => {
    const { log } = makeLog();
    appendState(log, 60);
    appendOutput(log, 40); // 61..100
    const sink = new RecordingSink(5);
    const sub = log.subscribe(filter([], true), 40n, sink);
    expect(sink.seqs).toEqual(range(41, 45)); // blocked mid-replay
    expect(sub.lastDeliveredSeq).toBe(45n);
    appendState(log, 3); // 101..103, while blocked
    appendOutput(log, 3); // 104..106
    expect(sink.events.length).toBe(5);
    sink.drain(sub, 7);
    expect(sink.seqs).toEqual(range(41, 52));
    appendState(log, 2); // 107..108
    sink.drain(sub);
    expect(sink.seqs).toEqual(range(41, 108));
    appendOutput(log, 2); // live
    expect(sink.seqs).toEqual(range(41, 110));
    expect(sink.clean).toBe(true);
    expect(sink.failures).toEqual([]);
  });

  it("a subscriber blocked on the last replayed event picks up the live ones on resume", () => {
    const { log } = makeLog();
    appendState(log, 3);
    const sink = new RecordingSink(3);
    const sub = log.subscribe(filter(), 0n, sink);
    expect(sink.seqs).toEqual(range(1, 3));
    appendState(log, 2);
    expect(sink.seqs).toEqual(range(1, 3));
    sink.drain(sub);
    expect(sink.seqs).toEqual(range(1, 5));
  });
});

// ---------------------------------------------------------------- state and output apart

describe("EventLog state and output windows", () => {
  it("an output flood evicts only output: state-only cursors stay resumable, output ones do not", () => {
    const { log } = makeLog({ stateEvents: 100, outputLines: 50 });
    const states = [
      ...appendState(log, 5, "quiet"), // 1..5
      ...appendState(log, 5, "chatty"), // 6..10
    ];
    appendOutput(log, 10_000, "chatty"); // 11..10010: only the last 50 kept
    log.append(stateEvent("chatty")); // 10011
    expect(log.lastSeq).toBe(10_011n);

    const stateOnly = new RecordingSink();
    log.subscribe(filter(), 0n, stateOnly);
    expect(stateOnly.seqs).toEqual([...states.map((e) => e.seq), 10_011n]);

    const error = outOfRange(() => log.subscribe(filter([], true), 0n, new RecordingSink()));
    expect(error.message).toContain("9960"); // the oldest resumable for output
    expect(error.details[OLDEST_RESUMABLE_SEQ_KEY]).toBe("9960");
    outOfRange(() => log.subscribe(filter(["quiet"], true), 5n, new RecordingSink()));
    // The output window's edge: 9960 was evicted last, 9961..10010 are kept.
    outOfRange(() => log.subscribe(filter([], true), 9959n, new RecordingSink()));
    const withOutput = new RecordingSink();
    log.subscribe(filter([], true), 9960n, withOutput);
    expect(withOutput.seqs).toEqual(range(9961, 10_011));
  });

  it("output evicted by bytes leaves state alone", () => {
    const { log } = makeLog({ stateEvents: 100, outputLines: 1_000_000, outputBytes: 10_000 });
    appendState(log, 3); // 1..3
    appendOutput(log, 100, "p", "y".repeat(1000)); // 4..103: only a few fit in 10 kB
    const stateOnly = new RecordingSink();
    log.subscribe(filter(), 0n, stateOnly);
    expect(stateOnly.seqs).toEqual(range(1, 3));
    outOfRange(() => log.subscribe(filter([], true), 50n, new RecordingSink()));
    const recent = new RecordingSink();
    log.subscribe(filter([], true), 100n, recent);
    expect(recent.seqs).toEqual(range(101, 103));
  });

  it("a state flood evicts only state: output resumes need both windows", () => {
    const { log } = makeLog({ stateEvents: 10, outputLines: 100 });
    appendOutput(log, 5); // 1..5
    appendState(log, 30); // 6..35: 26..35 kept, 25 last evicted
    outOfRange(() => log.subscribe(filter([], true), 5n, new RecordingSink()));
    outOfRange(() => log.subscribe(filter(), 24n, new RecordingSink()));
    const sink = new RecordingSink();
    log.subscribe(filter([], true), 25n, sink);
    expect(sink.seqs).toEqual(range(26, 35));
  });

  it("a blocked state-only subscriber is not ended by an output flood", () => {
    const { log } = makeLog({ stateEvents: 10, outputLines: 10, outputBytes: 2000 });
    const sink = new RecordingSink(1);
    const sub = log.subscribe(filter(), undefined, sink);
    log.append(stateEvent("p")); // 1, then full
    appendOutput(log, 5000, "p", "z".repeat(100));
    expect(sink.failures).toEqual([]);
    expect(log.subscriberCount).toBe(1);
    log.append(stateEvent("p")); // 5002
    sink.drain(sub);
    expect(sink.seqs).toEqual([1n, 5002n]);
  });
});

// ---------------------------------------------------------------- filtering live

describe("EventLog filters", () => {
  it("delivers live events by name and by include_output", () => {
    const { log } = makeLog();
    const sinks = {
      aState: new RecordingSink(),
      aAll: new RecordingSink(),
      abAll: new RecordingSink(),
      everyState: new RecordingSink(),
      everything: new RecordingSink(),
    };
    log.subscribe(filter(["a"]), undefined, sinks.aState);
    log.subscribe(filter(["a"], true), undefined, sinks.aAll);
    log.subscribe(filter(["a", "b"], true), undefined, sinks.abAll);
    log.subscribe(filter(), undefined, sinks.everyState);
    log.subscribe(filter([], true), undefined, sinks.everything);
    log.append(stateEvent("a")); // 1
    log.append(outputLine("a")); // 2
    log.append(stateEvent("b")); // 3
    log.append(outputLine("b")); // 4
    log.append(stateEvent("c")); // 5
    log.append(outputLine("c")); // 6
    log.append({ kind: "removed", process: "a" }); // 7
    expect(sinks.aState.seqs).toEqual([1n, 7n]);
    expect(sinks.aAll.seqs).toEqual([1n, 2n, 7n]);
    expect(sinks.abAll.seqs).toEqual([1n, 2n, 3n, 4n, 7n]);
    expect(sinks.everyState.seqs).toEqual([1n, 3n, 5n, 7n]);
    expect(sinks.everything.seqs).toEqual(range(1, 7));
    expect(sinks.aAll.events[1]?.event).toEqual(outputLine("a"));
  });
});

// ---------------------------------------------------------------- backpressure

describe("EventLog backpressure", () => {
  it("stops at a full sink until resume(), then delivers what is pending in order", () => {
    const { log } = makeLog();
    const sink = new RecordingSink(1);
    const sub = log.subscribe(filter(), undefined, sink);
    appendState(log, 3);
    expect(sink.seqs).toEqual([1n]);
    expect(sub.lastDeliveredSeq).toBe(1n);
    appendState(log, 2);
    expect(sink.seqs).toEqual([1n]);
    sink.drain(sub, 1);
    expect(sink.seqs).toEqual([1n, 2n]);
    sink.drain(sub, 2);
    expect(sink.seqs).toEqual(range(1, 4));
    sink.drain(sub);
    expect(sink.seqs).toEqual(range(1, 5));
    log.append(stateEvent("p"));
    expect(sink.seqs).toEqual(range(1, 6));
    expect(sink.clean).toBe(true);
    expect(sink.failures).toEqual([]);
  });

  it("resume() on a subscriber that is not blocked is harmless", () => {
    const { log } = makeLog();
    const sink = new RecordingSink();
    const sub = log.subscribe(filter(), undefined, sink);
    sub.resume();
    appendState(log, 2);
    sub.resume();
    expect(sink.seqs).toEqual([1n, 2n]);
  });

  it("ends a subscriber lagging by more than half the state window, while its gap is still kept", () => {
    const { log } = makeLog({ stateEvents: 100 });
    const fast = new RecordingSink();
    log.subscribe(filter(), undefined, fast);
    appendState(log, 7); // 1..7
    const slow = new RecordingSink(3);
    const slowSub = log.subscribe(filter(), 2n, slow); // replays 3, 4, 5, then full
    expect(slow.seqs).toEqual([3n, 4n, 5n]);
    expect(log.subscriberCount).toBe(2);

    appendState(log, 48); // 8..55: 50 pending, exactly half: still there
    expect(slow.failures).toEqual([]);
    expect(log.subscriberCount).toBe(2);
    log.append(stateEvent("p")); // 56: 51 pending
    expect(slow.failures.length).toBe(1);
    const failure = slow.failures[0] as ProcmonError;
    expect(failure).toBeInstanceOf(ProcmonError);
    expect(failure.code).toBe("resource_exhausted");
    expect(failure.message).toMatch(/\b5\b/);
    expect(lastSeqIn(failure)).toBe(5n);
    expect(failure.details[LAST_DELIVERED_SEQ_KEY]).toBe("5");
    expect(slow.ends).toBe(0);
    expect(log.subscriberCount).toBe(1);

    // Ended for good: no more writes, even when resumed.
    appendState(log, 3); // 57..59
    slow.drain(slowSub);
    expect(slow.seqs).toEqual([3n, 4n, 5n]);
    expect(slow.failures.length).toBe(1);

    // It resumes from the seq in the message and gets exactly the rest.
    const again = new RecordingSink();
    log.subscribe(filter(), lastSeqIn(failure), again);
    expect(again.seqs).toEqual(range(6, 59));
    log.append(stateEvent("p"));
    expect(again.seqs).toEqual(range(6, 60));
    expect(fast.seqs).toEqual(range(1, 60));
    expect(fast.failures).toEqual([]);
  });

  it("ends a subscriber lagging by more than half the output window, by count", () => {
    const { log } = makeLog({ stateEvents: 1000, outputLines: 20 });
    const fast = new RecordingSink();
    log.subscribe(filter([], true), undefined, fast);
    const slow = new RecordingSink(1);
    log.subscribe(filter([], true), undefined, slow);
    const stateOnly = new RecordingSink(1);
    log.subscribe(filter(), undefined, stateOnly);
    log.append(stateEvent("p")); // 1: both slow ones full
    appendOutput(log, 10); // 2..11: 10 pending, half
    expect(slow.failures).toEqual([]);
    log.append(outputLine("p")); // 12
    expect(slow.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    expect(lastSeqIn(slow.failures[0] as ProcmonError)).toBe(1n);
    expect(stateOnly.failures).toEqual([]);

    const again = new RecordingSink();
    log.subscribe(filter([], true), 1n, again);
    expect(again.seqs).toEqual(range(2, 12));
    expect(fast.seqs).toEqual(range(1, 12));
  });

  it("ends a subscriber lagging by more than half the output window, by bytes", () => {
    const { log } = makeLog({ outputLines: 1_000_000, outputBytes: 100_000 });
    const line = "b".repeat(10_000);
    const slow = new RecordingSink(2);
    log.subscribe(filter(["p"], true), undefined, slow);
    appendOutput(log, 2, "p", line); // 1, 2: full
    appendOutput(log, 4, "p", line); // 3..6: about 40 kB pending, under half
    expect(slow.failures).toEqual([]);
    appendOutput(log, 2, "p", line); // 7, 8: about 60 kB pending, over half
    expect(slow.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    const failure = slow.failures[0] as ProcmonError;
    expect(lastSeqIn(failure)).toBe(2n);
    expect(slow.seqs).toEqual([1n, 2n]);

    const again = new RecordingSink();
    log.subscribe(filter(["p"], true), 2n, again);
    const firstResumed = again.seqs[0];
    expect(firstResumed).toBe(3n);
    expect(again.seqs.at(-1)).toBe(log.lastSeq);
    expect(again.seqs).toEqual(range(3, Number(log.lastSeq)));
  });

  it("a filtered subscriber resumes exactly the matching rest", () => {
    const { log } = makeLog({ stateEvents: 40 });
    const slow = new RecordingSink(1);
    log.subscribe(filter(["a"]), undefined, slow);
    const all: LoggedEvent[] = [];
    for (let i = 0; all.length < 200 && slow.failures.length === 0; i++) {
      all.push(log.append(stateEvent(i % 3 === 0 ? "a" : "b")));
    }
    expect(slow.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    const from = lastSeqIn(slow.failures[0] as ProcmonError);
    expect(from).toBe(slow.seqs.at(-1));
    all.push(...appendState(log, 5, "a"));
    const again = new RecordingSink();
    log.subscribe(filter(["a"]), from, again);
    expect(again.seqs).toEqual(
      all.filter((e) => e.seq > from && e.event.process === "a").map((e) => e.seq),
    );
  });
});

// ---------------------------------------------------------------- memory

describe("EventLog resuming far behind", () => {
  it("lets a subscriber that resumed far behind catch up while its backlog does not grow", () => {
    const { log } = makeLog({ stateEvents: 100 });
    appendState(log, 70); // one that resumes from 0 starts 70 events behind
    const sink = new RecordingSink(16);
    const sub = log.subscribe(filter(), 0n, sink);
    // Blocked 54 behind, more than half the window: a fresh subscriber would be
    // ended here, but this one is only as far behind as it started.
    appendState(log, 10);
    expect(sink.failures).toHaveLength(0);
    for (let round = 0; round < 10 && sink.events.length < 80; round++) sink.drain(sub, 16);
    expect(sink.seqs).toEqual(range(1, 80));
    expect(sink.failures).toHaveLength(0);
  });

  it("still ends it once its backlog grows more than a quarter window beyond where it started", () => {
    const { log } = makeLog({ stateEvents: 100 });
    appendState(log, 60);
    const sink = new RecordingSink(1);
    log.subscribe(filter(), 0n, sink); // allowed 60 + 25 behind
    appendState(log, 26); // 85 behind: still allowed
    expect(sink.failures).toHaveLength(0);
    appendState(log, 1); // 86 behind
    expect(sink.failures).toHaveLength(1);
    expect(sink.failures[0]?.code).toBe("resource_exhausted");
  });
});

describe("EventLog state window in bytes", () => {
  it("keeps added events' specs only up to stateBytes; older resumes get OUT_OF_RANGE", () => {
    const { log } = makeLog({ stateEvents: 10_000, stateBytes: 1_000_000 });
    const all: LoggedEvent[] = [];
    // 300 add/rm cycles of a spec with a 250 kB env, as the issue's.
    for (let i = 0; i < 300; i++) {
      all.push(log.append(addedEvent(`p${i}`, 250_000)));
      all.push(log.append({ kind: "removed", process: `p${i}` }));
    }
    // Three specs fit in 1,000,000 bytes with four `removed` events, not four specs: the last
    // seven events are kept, and one may resume after the eighth from the end.
    const resumable = all.at(-8)?.seq ?? 0n;
    const kept = new RecordingSink();
    log.subscribe(filter(), resumable, kept);
    expect(kept.seqs).toEqual(all.slice(-7).map((e) => e.seq));
    const tooOld = outOfRange(() => log.subscribe(filter(), resumable - 1n, new RecordingSink()));
    expect(tooOld.details[OLDEST_RESUMABLE_SEQ_KEY]).toBe(String(resumable));
    outOfRange(() => log.subscribe(filter(), 0n, new RecordingSink()));
  });

  it("ends a subscriber lagging by more than half the state window in bytes, while its gap is kept", () => {
    const { log } = makeLog({ stateEvents: 10_000, stateBytes: 1_000_000 });
    const fast = new RecordingSink();
    log.subscribe(filter(), undefined, fast);
    const slow = new RecordingSink(1);
    log.subscribe(filter(), undefined, slow);
    log.append(addedEvent("a", 100_000)); // 1: delivered, and full
    for (let i = 0; i < 4; i++) log.append(addedEvent(`b${i}`, 100_000)); // 2..5: ~400 kB behind
    expect(slow.failures).toEqual([]);
    log.append(addedEvent("c", 100_000)); // 6: ~500 kB behind, over half
    expect(slow.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    const failure = slow.failures[0] as ProcmonError;
    expect(lastSeqIn(failure)).toBe(1n);
    expect(failure.details[LAST_DELIVERED_SEQ_KEY]).toBe("1");

    const again = new RecordingSink();
    log.subscribe(filter(), 1n, again);
    expect(again.seqs).toEqual(range(2, 6));
    expect(fast.seqs).toEqual(range(1, 6));
    expect(fast.failures).toEqual([]);
  });

  it("never leaves a subscriber pointing at evicted events: one spec that fills the window ends it", () => {
    const { log } = makeLog({ stateEvents: 10_000, stateBytes: 1_000_000 });
    const fast = new RecordingSink();
    log.subscribe(filter([], true), undefined, fast);
    const slow = new RecordingSink(1);
    log.subscribe(filter([], true), undefined, slow);
    log.append(stateEvent("p")); // 1: delivered, and full
    appendState(log, 2); // 2, 3: not read
    log.append(outputLine("p")); // 4: not read
    expect(slow.failures).toEqual([]);
    log.append(addedEvent("huge", 999_000)); // 5: evicts 1 and 2
    expect(slow.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    expect(lastSeqIn(slow.failures[0] as ProcmonError)).toBe(1n);
    // Nothing after the eviction reached it: no gap.
    slow.drain(log.subscribe(filter(), 5n, new RecordingSink()));
    expect(slow.seqs).toEqual([1n]);
    expect(slow.clean).toBe(true);
    // What it missed is gone, and it is told so when it resumes; from what is kept, it may.
    outOfRange(() => log.subscribe(filter([], true), 1n, new RecordingSink()));
    const again = new RecordingSink();
    log.subscribe(filter([], true), 2n, again);
    expect(again.seqs).toEqual([3n, 4n, 5n]);
    expect(fast.seqs).toEqual(range(1, 5));
  });
});

describe("EventLog default retention", () => {
  it("lets a subscriber stop reading for 40,000 lines of 100 B (2 s at 20,000 lines/s), not 50,000", () => {
    const log = new EventLog(new FakeClock());
    const line = "x".repeat(99);
    const paused = new RecordingSink(1);
    const sub = log.subscribe(filter([], true), undefined, paused);
    appendOutput(log, 40_001, "flood", line); // 1 delivered, then 40,000 behind
    expect(paused.failures).toEqual([]);
    paused.drain(sub);
    expect(paused.seqs.length).toBe(40_001);
    expect(firstDifference(paused.seqs, range(1, 40_001))).toBeUndefined();

    // Bounded all the same: 50,000 behind is too far.
    const stuck = new RecordingSink(1);
    log.subscribe(filter([], true), undefined, stuck);
    appendOutput(log, 50_001, "flood", line);
    expect(stuck.failures.map((e) => e.code)).toEqual(["resource_exhausted"]);
    expect(DEFAULT_RETENTION.outputBytes).toBe(24 * 1024 * 1024);
  });
});

describe("EventLog memory", () => {
  it("keeps only its windows whatever a stuck subscriber does", () => {
    const { log } = makeLog({ stateEvents: 50, outputLines: 50, outputBytes: 5000 });
    const stuck = new RecordingSink(1);
    log.subscribe(filter([], true), undefined, stuck);
    for (let i = 0; i < 50_000; i++) {
      log.append(i % 2 === 0 ? stateEvent("p") : outputLine("p", "w".repeat(i % 50)));
    }
    expect(stuck.failures.length).toBe(1);
    expect(log.subscriberCount).toBe(0);
    // Only the recent past can be replayed: the rest is gone.
    // State events are the odd seqs: 49_901..49_999 kept, 49_899 the last evicted.
    outOfRange(() => log.subscribe(filter(), 49_898n, new RecordingSink()));
    const states = new RecordingSink();
    log.subscribe(filter(), 49_899n, states);
    expect(states.events.length).toBe(50);
    const recent = new RecordingSink();
    log.subscribe(filter([], true), log.lastSeq - 40n, recent);
    expect(recent.seqs).toEqual(range(49_961, 50_000));
  });
});

// ---------------------------------------------------------------- close and cancel

describe("EventLog close", () => {
  it("ends each live subscriber once, after everything was delivered", () => {
    const { log } = makeLog();
    const a = new RecordingSink();
    const b = new RecordingSink();
    log.subscribe(filter(), undefined, a);
    log.subscribe(filter([], true), undefined, b);
    appendState(log, 2);
    appendOutput(log, 1);
    expect(log.isClosed).toBe(false);
    log.close();
    expect(log.isClosed).toBe(true);
    expect(a.seqs).toEqual([1n, 2n]);
    expect(b.seqs).toEqual([1n, 2n, 3n]);
    expect([a.ends, b.ends]).toEqual([1, 1]);
    expect(log.subscriberCount).toBe(0);
    log.close();
    expect([a.ends, b.ends]).toEqual([1, 1]);
    expect(a.failures).toEqual([]);
  });

  it("ends a blocked subscriber only once it was resumed and drained", () => {
    const { log } = makeLog();
    const sink = new RecordingSink(1);
    const sub = log.subscribe(filter(), undefined, sink);
    appendState(log, 4);
    log.close();
    expect(sink.seqs).toEqual([1n]);
    expect(sink.ends).toBe(0);
    expect(log.subscriberCount).toBe(1);
    sink.drain(sub, 1);
    expect(sink.seqs).toEqual([1n, 2n]);
    expect(sink.ends).toBe(0);
    sink.drain(sub, 2); // takes 3 and 4, full again on the last one
    expect(sink.seqs).toEqual(range(1, 4));
    expect(sink.ends).toBe(0);
    sink.drain(sub);
    expect(sink.ends).toBe(1);
    expect(log.subscriberCount).toBe(0);
    sub.resume();
    expect(sink.ends).toBe(1);
    expect(sink.clean).toBe(true);
  });

  it("a subscriber after close replays and ends", () => {
    const { log } = makeLog();
    appendState(log, 3);
    log.close();
    const replay = new RecordingSink();
    log.subscribe(filter(), 1n, replay);
    expect(replay.seqs).toEqual([2n, 3n]);
    expect(replay.ends).toBe(1);
    const live = new RecordingSink();
    log.subscribe(filter(), undefined, live);
    expect(live.seqs).toEqual([]);
    expect(live.ends).toBe(1);
    expect(log.subscriberCount).toBe(0);
    outOfRange(() => log.subscribe(filter(), 4n, new RecordingSink()));
  });

  it("cancel() stops delivery and removes the subscriber, without end or fail", () => {
    const { log } = makeLog();
    const kept = new RecordingSink();
    const gone = new RecordingSink();
    log.subscribe(filter(), undefined, kept);
    const sub = log.subscribe(filter(), undefined, gone);
    expect(log.subscriberCount).toBe(2);
    appendState(log, 2);
    sub.cancel();
    expect(log.subscriberCount).toBe(1);
    appendState(log, 2);
    sub.resume();
    log.close();
    expect(gone.seqs).toEqual([1n, 2n]);
    expect([gone.ends, gone.failures.length]).toEqual([0, 0]);
    expect(kept.seqs).toEqual(range(1, 4));
    expect(kept.ends).toBe(1);
    sub.cancel(); // twice is harmless
    expect(log.subscriberCount).toBe(0);
  });

  it("cancel() of a blocked subscriber, and from inside write(), stops at once", () => {
    const { log } = makeLog({ stateEvents: 10 });
    const blocked = new RecordingSink(1);
    const blockedSub = log.subscribe(filter(), undefined, blocked);
    const selfCancelling = new RecordingSink();
    const selfSub = log.subscribe(filter(), undefined, selfCancelling);
    selfCancelling.onWrite = (e) => {
      if (e.seq === 2n) selfSub.cancel();
    };
    appendState(log, 3);
    blockedSub.cancel();
    appendState(log, 20); // would have failed it, were it still there
    expect(blocked.seqs).toEqual([1n]);
    expect(blocked.failures).toEqual([]);
    expect(selfCancelling.seqs).toEqual([1n, 2n]);
    expect(log.subscriberCount).toBe(0);
  });
});
