// The @procmon/client SDK against the real procmond on a real unix socket:
// every method with plain init objects, every error guard on the error it is
// for, cancellation and deadlines, watch() across a stalled subscriber and
// daemon restarts, and the README's examples (run, and shown verbatim).
import { chownSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Code,
  codeName,
  createClient,
  hasCode,
  isAlreadyExists,
  isCancelled,
  isDeadlineExceeded,
  isInvalidArgument,
  isNotFound,
  isOutOfRange,
  isPermissionDenied,
  isUnavailable,
  LAST_DELIVERED_SEQ_KEY,
  OLDEST_RESUMABLE_SEQ_KEY,
  type ProcessSpecInit,
  type ProcmonClient,
  ProcmonError,
  type WatchEventsInit,
} from "@procmon/client";
import { type Event, State, StopReason } from "@procmon/client/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { main as errorsExample } from "../packages/client/examples/errors.js";
import { main as methodsExample } from "../packages/client/examples/methods.js";
import { main as quickstartExample } from "../packages/client/examples/quickstart.js";
import { main as watchResumeExample } from "../packages/client/examples/watch-resume.js";
import { Changes } from "./helpers/changes.js";
import {
  cleanupAll,
  makeTempDir,
  type Procmond,
  ROOT,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { rejection } from "./helpers/rejection.js";
import { closeAllWatches, notSeen, openWatch } from "./helpers/watch.js";

const isRoot = process.getuid?.() === 0;

/** Short timings, so that restarts and an orphan's SIGKILL take little time. */
const TIMINGS = ["--kill-time", "300ms", "--threshold", "200ms", "--min-restart-delay", "100ms"];

let d: Procmond;
/** Clients a test made, closed after it. */
const clients = new Set<ProcmonClient>();
/** Process groups a test signalled itself, in case one is still alive. */
const groups = new Set<number>();

function client(socket: string, timeoutMs?: number): ProcmonClient {
  const c = createClient(timeoutMs === undefined ? { socket } : { socket, timeoutMs });
  clients.add(c);
  return c;
}

beforeAll(async () => {
  d = await startProcmond(TIMINGS);
});

/** After each test on the shared daemon: close what it opened, remove what it added. */
async function resetShared(): Promise<void> {
  closeAllWatches();
  for (const c of clients) c.close();
  clients.clear();
  for (const pgid of groups) killGroup(pgid);
  groups.clear();
  if (d.child.exitCode !== null) return;
  const { processes } = await d.client.listProcesses();
  await Promise.all(
    processes.map((p) => d.client.removeProcess(p.spec?.name ?? "").catch(() => undefined)),
  );
}

afterAll(cleanupAll);

// ---------------------------------------------------------------- helpers

const sleeper = (name: string): ProcessSpecInit => ({ name, args: ["sleep", "100"] });

/** Ignores SIGTERM (the disposition survives exec): only SIGKILL after its kill_time ends it. */
const stubborn = (name: string): ProcessSpecInit => ({
  name,
  args: ["sh", "-c", "trap '' TERM; exec sleep 100"],
  killTime: { seconds: 5n },
});

/** SIGKILLs a process group this test started through the daemon (each child leads one). */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Drains `events`; resolves with the error it ended with (undefined if it just ended). */
async function drain(events: AsyncIterable<Event>, seen: Event[] = []): Promise<unknown> {
  try {
    for await (const event of events) seen.push(event);
  } catch (err) {
    return err;
  }
  return undefined;
}

/** An iteration run in the background, recording what it yields and how it ends. */
interface Collector {
  readonly events: Event[];
  /** Resolves once `check(events)` holds; rejects if the iteration ends first, or after `ms`. */
  until(check: (events: readonly Event[]) => boolean, ms?: number): Promise<void>;
  /** Resolves with how the iteration ended: `{ error }` (undefined when it just ended). */
  ended(ms?: number): Promise<{ error: unknown }>;
}

function collect(iterable: AsyncIterable<Event>): Collector {
  const events: Event[] = [];
  const changes = new Changes();
  let end: { error: unknown } | undefined;
  const notify = () => changes.notify();
  void (async () => {
    try {
      for await (const event of iterable) {
        events.push(event);
        notify();
      }
      end = { error: undefined };
    } catch (error) {
      end = { error };
    }
    notify();
  })();
  const wait = <T>(check: () => T | undefined, what: string, ms: number) =>
    changes.until(check, ms, () => notSeen(what, ms, events));
  return {
    events,
    async until(check, ms = 5_000) {
      await wait(
        () => {
          if (check(events)) return true;
          if (end) throw new Error(`the iteration ended first: ${String(end.error)}`);
          return undefined;
        },
        "the awaited events",
        ms,
      );
    },
    ended: (ms = 5_000) => wait(() => end, "the end of the iteration", ms),
  };
}

/** One WatchEvents stream that watch() opened, as seen through {@link tapStreams}. */
interface Attempt {
  readonly afterSeq: bigint | undefined;
  error?: ProcmonError;
}

/**
 * Records every WatchEvents stream `c.watch()` opens and how each ended.
 * watch() opens its streams through the client's own `watchEvents`, so
 * wrapping that method shows its reconnections from outside.
 */
function tapStreams(c: ProcmonClient): Attempt[] {
  const attempts: Attempt[] = [];
  // watch() passes a hidden third argument (its clean-end hook): forward it.
  const raw = c.watchEvents.bind(c) as (...args: unknown[]) => AsyncIterable<Event>;
  c.watchEvents = ((request: WatchEventsInit = {}, ...rest: unknown[]) => {
    const attempt: Attempt = { afterSeq: request.afterSeq };
    attempts.push(attempt);
    const stream = raw(request, ...rest);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* stream;
        } catch (err) {
          attempt.error = ProcmonError.from(err);
          throw err;
        }
      },
    };
  }) as ProcmonClient["watchEvents"];
  return attempts;
}

/** Seqs strictly consecutive from `first`: no gap, no duplicate, in order. */
function expectConsecutive(events: readonly Event[], first: bigint): void {
  const seqs = events.map((e) => e.seq);
  expect(seqs).toEqual(seqs.map((_, i) => first + BigInt(i)));
}

const kinds = (events: readonly Event[]) => events.map((e) => `${e.process} ${e.kind.case}`);

interface SavedState {
  readonly seqReservedUpTo: string;
}
const reservedSeq = (stateFile: string): bigint =>
  BigInt((JSON.parse(readFileSync(stateFile, "utf8")) as SavedState).seqReservedUpTo);

/** A daemon on a socket and state file of the test's choosing, shared by successive daemons. */
const startOnShared = (socket: string, stateFile: string, extra: readonly string[] = []) =>
  startProcmond(
    ["--socket", socket, "--state-file", stateFile, ...TIMINGS, ...extra],
    {},
    {
      // The helper's own socket goes in an env variable the flag overrides.
      socketVia: "env",
    },
  );

// ---------------------------------------------------------------- the methods

describe("every method, with plain init objects", () => {
  afterEach(resetShared);

  it("add, get, list, stop, start, restart, restart-all, remove", async () => {
    const c = client(d.socket);
    const web = await c.addProcess({
      name: "web",
      args: ["sh", "-c", 'echo "port $PORT"; exec sleep 100'],
      env: { PORT: "8080" },
      killTime: { seconds: 2n, nanos: 500_000_000 },
      minRestartDelay: { nanos: 200_000_000 },
    });
    expect(web.state).toBe(State.RUNNING);
    expect(web.pid).toBeGreaterThan(0);
    expect(web.spec?.env).toEqual({ PORT: "8080" });
    expect(web.spec?.killTime).toMatchObject({ seconds: 2n, nanos: 500_000_000 });
    expect(web.spec?.minRestartDelay).toMatchObject({ seconds: 0n, nanos: 200_000_000 });
    const idle = await c.addProcess(sleeper("idle"));

    const got = await c.getProcess("web");
    expect({ pid: got.pid, state: got.state }).toEqual({ pid: web.pid, state: State.RUNNING });

    const list = await c.listProcesses();
    expect(list.processes.map((p) => p.spec?.name)).toEqual(["idle", "web"]);
    expect(list.lastEventSeq).toBeGreaterThanOrEqual(4n);

    const stopped = await c.stopProcess("idle");
    expect({ state: stopped.state, pid: stopped.pid }).toEqual({ state: State.STOPPED, pid: 0 });
    expect((await c.stopProcess("idle")).state).toBe(State.STOPPED); // no-op

    const started = await c.startProcess("idle");
    expect(started.state).toBe(State.RUNNING);
    expect(started.pid).not.toBe(idle.pid);
    expect((await c.startProcess("idle")).pid).toBe(started.pid); // running: no-op

    const restarted = await c.restartProcess("web");
    expect(restarted.state).toBe(State.RUNNING);
    expect(restarted.pid).not.toBe(web.pid);
    expect(restarted.restartCount).toBe(0); // a requested restart is not a death

    await c.stopProcess("idle");
    const all = await c.restartAll();
    expect(all.map((p) => [p.spec?.name, p.state])).toEqual([
      ["idle", State.STOPPED],
      ["web", State.RUNNING],
    ]);
    expect(all[1]?.pid).not.toBe(restarted.pid);

    const removed = await c.removeProcess("web");
    expect(removed.spec?.name).toBe("web");
    expect(removed.pid).toBe(0);
    await c.removeProcess("idle");
    expect(await c.listProcesses()).toMatchObject({ processes: [] });
  });

  it("watchEvents: replays after a seq, then goes live; filters by name; output on request", async () => {
    const c = client(d.socket);
    const { lastEventSeq } = await c.listProcesses();
    await c.addProcess({ name: "talker", args: ["sh", "-c", "echo hello; exec sleep 100"] });
    await c.addProcess(sleeper("other"));

    const all = collect(c.watchEvents({ afterSeq: lastEventSeq }));
    const talker = collect(c.watchEvents({ names: ["talker"], afterSeq: lastEventSeq }));
    const output = collect(
      c.watchEvents({ names: ["talker"], includeOutput: true, afterSeq: lastEventSeq }),
    );
    await all.until((es) => es.length >= 4);
    await c.restartProcess("talker");
    await talker.until((es) => es.filter((e) => e.kind.case === "started").length === 2);
    await output.until((es) => es.filter((e) => e.kind.case === "output").length === 2);

    expect(kinds(all.events.slice(0, 4))).toEqual([
      "talker added",
      "talker started",
      "other added",
      "other started",
    ]);
    // Output lines take seqs too: without includeOutput the seqs skip them, in order.
    const seqs = all.events.map((e) => e.seq);
    expect(seqs[0]).toBe(lastEventSeq + 1n);
    expect(seqs).toEqual([...seqs].sort((a, b) => (a < b ? -1 : 1)));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(kinds(talker.events)).toEqual([
      "talker added",
      "talker started",
      "talker stopping",
      "talker exited",
      "talker started",
    ]);
    const stopping = talker.events[2]?.kind;
    expect(stopping?.case === "stopping" && stopping.value.reason).toBe(StopReason.RESTART);
    const lines = output.events.flatMap((e) => (e.kind.case === "output" ? [e.kind.value] : []));
    expect(lines.map((l) => l.line)).toEqual(["hello", "hello"]);
    expect(all.events.some((e) => e.kind.case === "output")).toBe(false);
  });

  it("watch: list then watch gives exactly the changes after the snapshot; break ends it", async () => {
    const c = client(d.socket);
    await c.addProcess(sleeper("w1"));
    const { lastEventSeq } = await c.listProcesses();
    await c.stopProcess("w1");
    const seen: Event[] = [];
    const done = (async () => {
      for await (const event of c.watch({ names: ["w1"], afterSeq: lastEventSeq })) {
        seen.push(event);
        if (event.kind.case === "started") break;
      }
    })();
    await c.startProcess("w1");
    await done;
    expect(kinds(seen)).toEqual(["w1 stopping", "w1 exited", "w1 started"]);
    expectConsecutive(seen, lastEventSeq + 1n);

    // Without afterSeq: from now on (a snapshot's seq it takes first), nothing replayed.
    const attempts = tapStreams(c);
    const live = collect(c.watch({ names: ["w1"] }));
    await waitFor(() => attempts.length === 1);
    await c.restartProcess("w1");
    await live.until((es) => es.some((e) => e.kind.case === "started"));
    expect(kinds(live.events)).toEqual(["w1 stopping", "w1 exited", "w1 started"]);
  });

  it("close: the client's later calls reject with FAILED_PRECONDITION, a ProcmonError", async () => {
    const c = createClient({ socket: d.socket });
    expect((await c.listProcesses()).processes).toEqual([]);
    c.close();
    const unary = await rejection(c.listProcesses());
    expect(unary.code).toBe(Code.FAILED_PRECONDITION);
    expect(unary.message).toBe(`the client of procmond at ${d.socket} is closed`);
    const stream = await drain(c.watchEvents());
    expect(hasCode(stream, Code.FAILED_PRECONDITION)).toBe(true);
    // watch() does not retry a closed client for ever.
    const watched = await drain(c.watch({ afterSeq: 0n }));
    expect(hasCode(watched, Code.FAILED_PRECONDITION)).toBe(true);
    c.close(); // idempotent
  });
});

// ---------------------------------------------------------------- errors

describe("errors: each guard on its error", () => {
  afterEach(resetShared);

  it("isNotFound: every call that takes a name; the error's fields", async () => {
    const c = client(d.socket);
    const calls = [
      c.getProcess("nope"),
      c.stopProcess("nope"),
      c.startProcess("nope"),
      c.restartProcess("nope"),
      c.removeProcess("nope"),
    ];
    for (const call of calls) {
      const err = await rejection(call);
      expect(isNotFound(err)).toBe(true);
      expect(err.message).toBe('process "nope" does not exist');
    }
    const err = await rejection(c.getProcess("nope"));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("ProcmonError");
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(codeName(err.code)).toBe("NOT_FOUND");
    expect(hasCode(err, Code.NOT_FOUND)).toBe(true);
    expect(err.cause).toMatchObject({ code: Code.NOT_FOUND, details: err.message });
    // No trailer of ours (grpc-js also passes the response's headers along).
    expect(Object.keys(err.metadata).filter((k) => k.startsWith("procmon-"))).toEqual([]);
    // The other guards say no.
    for (const guard of [isAlreadyExists, isInvalidArgument, isOutOfRange, isCancelled]) {
      expect(guard(err)).toBe(false);
    }
    expect(isNotFound(new Error("not found"))).toBe(false);
  });

  it("isAlreadyExists: a name in use", async () => {
    const c = client(d.socket);
    const first = await c.addProcess(sleeper("twice"));
    const err = await rejection(c.addProcess(sleeper("twice")));
    expect(isAlreadyExists(err)).toBe(true);
    expect(err.message).toBe('process "twice" already exists');
    expect((await c.getProcess("twice")).pid).toBe(first.pid);
  });

  it("isInvalidArgument: bad specs, and nothing is added", async () => {
    const c = client(d.socket);
    const bad: Array<[string, ProcessSpecInit, RegExp]> = [
      ["bad name", { name: "-no", args: ["sleep", "1"] }, /name/],
      ["no args", { name: "noargs", args: [] }, /args/],
      ["missing executable", { name: "nox", args: ["/nonexistent/x"] }, /nonexistent/],
      ["missing cwd", { name: "nocwd", args: ["sleep", "1"], cwd: "/nonexistent" }, /cwd/],
      ["bad env key", { name: "noenv", args: ["sleep", "1"], env: { "A=B": "1" } }, /env/],
      ["zero kill time", { name: "nokill", args: ["sleep", "1"], killTime: {} }, /kill_time/],
      [
        "min over max",
        {
          name: "nodelay",
          args: ["sleep", "1"],
          minRestartDelay: { seconds: 10n },
          maxRestartDelay: { seconds: 1n },
        },
        /restart_delay/,
      ],
    ];
    for (const [what, spec, message] of bad) {
      const err = await rejection(c.addProcess(spec));
      expect({ what, invalid: isInvalidArgument(err) }).toEqual({ what, invalid: true });
      expect(err.message).toMatch(message);
    }
    expect((await c.listProcesses()).processes).toEqual([]);
  });

  it("isOutOfRange: a cursor beyond the last event, for watchEvents and watch", async () => {
    const c = client(d.socket);
    await c.addProcess(sleeper("r1"));
    const { lastEventSeq } = await c.listProcesses();
    const beyond = lastEventSeq + 5n;

    const seen: Event[] = [];
    const raw = await drain(c.watchEvents({ afterSeq: beyond }), seen);
    expect(isOutOfRange(raw)).toBe(true);
    expect((raw as ProcmonError).message).toBe(
      `after_seq ${beyond} is newer than the last event (${lastEventSeq})`,
    );
    // watch() does not retry what cannot succeed: it throws, having yielded nothing.
    const watched = await drain(c.watch({ afterSeq: beyond }), seen);
    expect(isOutOfRange(watched)).toBe(true);
    expect(seen).toEqual([]);
  });

  it.skipIf(isRoot)("isPermissionDenied: a uid a non-root daemon cannot switch to", async () => {
    const c = client(d.socket);
    const err = await rejection(c.addProcess({ ...sleeper("as-root"), uid: 0 }));
    expect(isPermissionDenied(err)).toBe(true);
    expect(err.message).toMatch(/uid 0/);
  });

  it.runIf(isRoot)(
    "isPermissionDenied: from a daemon running as nobody (we are root)",
    async () => {
      const nobody = 65_534;
      const n = await startProcmond(
        [],
        {},
        { uid: nobody, gid: nobody, prepare: (dir) => chownSync(dir, nobody, nobody) },
      );
      const err = await rejection(
        client(n.clientSocket).addProcess({ ...sleeper("p"), uid: 0, cwd: "/" }),
      );
      expect(isPermissionDenied(err)).toBe(true);
      expect(err.message).toMatch(/uid 0/);
      await n.cleanup();
    },
  );

  it("isDeadlineExceeded: a stop that waits for kill_time, past a 200 ms deadline; the daemon goes on", async () => {
    const c = client(d.socket);
    const tough = await c.addProcess(stubborn("tough"));
    groups.add(tough.pid);
    // Its trap is in place once sh has exec'd sleep: a SIGTERM before that would end it.
    await waitFor(() => readFileSync(`/proc/${tough.pid}/comm`, "utf8").trim() === "sleep");
    const started = Date.now();
    const err = await rejection(c.stopProcess("tough", { timeoutMs: 200 }));
    const took = Date.now() - started;
    expect(isDeadlineExceeded(err)).toBe(true);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(2_000);
    expect((await c.getProcess("tough")).state).toBe(State.STOPPING);

    // The client's own timeoutMs applies to calls that set none.
    const impatient = client(d.socket, 200);
    const again = await rejection(impatient.stopProcess("tough"));
    expect(isDeadlineExceeded(again)).toBe(true);

    // Rather than wait 5 s for the daemon's SIGKILL, end the group ourselves.
    killGroup(tough.pid);
    await waitFor(async () => (await c.getProcess("tough")).state === State.STOPPED);
  });

  it("isCancelled: aborting an in-flight stopProcess; the daemon goes on", async () => {
    const c = client(d.socket);
    const tough = await c.addProcess(stubborn("tough2"));
    groups.add(tough.pid);
    const { lastEventSeq } = await c.listProcesses();
    const events = collect(c.watch({ names: ["tough2"], afterSeq: lastEventSeq }));
    const controller = new AbortController();
    const stop = c.stopProcess("tough2", { signal: controller.signal });
    await events.until((es) => es.some((e) => e.kind.case === "stopping"));
    const started = Date.now();
    controller.abort();
    const err = await rejection(stop);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(isCancelled(err)).toBe(true);
    expect((await c.getProcess("tough2")).state).toBe(State.STOPPING);
    killGroup(tough.pid);
    await events.until((es) => es.some((e) => e.kind.case === "exited"));
    expect((await c.getProcess("tough2")).state).toBe(State.STOPPED);
  });

  it("isCancelled: aborting watchEvents in flight; watch() just ends", async () => {
    const c = client(d.socket);
    const { lastEventSeq } = await c.listProcesses();
    await c.addProcess(sleeper("s1"));

    const raw = new AbortController();
    const rawSeen: Event[] = [];
    const rawEnd = (async () => {
      try {
        for await (const event of c.watchEvents(
          { afterSeq: lastEventSeq },
          { signal: raw.signal },
        )) {
          rawSeen.push(event);
          raw.abort();
        }
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(isCancelled(await rawEnd)).toBe(true);
    expect(rawSeen.length).toBeGreaterThanOrEqual(1);

    const quiet = new AbortController();
    const watched = collect(c.watch({ afterSeq: lastEventSeq, signal: quiet.signal }));
    await watched.until((es) => es.length >= 2);
    quiet.abort();
    expect(await watched.ended()).toEqual({ error: undefined });
  });

  it("an already aborted signal rejects at once, without a round trip", async () => {
    // No daemon on this socket: CANCELLED, not UNAVAILABLE, proves nothing was sent.
    const c = client(join(makeTempDir(), "none.sock"));
    const signal = AbortSignal.abort();
    const o = { signal };
    const started = Date.now();
    const calls: Array<Promise<unknown>> = [
      c.addProcess(sleeper("x"), o),
      c.removeProcess("x", o),
      c.startProcess("x", o),
      c.stopProcess("x", o),
      c.restartProcess("x", o),
      c.restartAll(o),
      c.getProcess("x", o),
      c.listProcesses(o),
      drain(c.watchEvents({}, o)).then((err) => Promise.reject(err)),
    ];
    for (const call of calls) expect(isCancelled(await rejection(call))).toBe(true);
    // watch() ends at once, yielding nothing and throwing nothing.
    const seen: Event[] = [];
    expect(await drain(c.watch({ signal }), seen)).toBeUndefined();
    expect(seen).toEqual([]);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it("isUnavailable: no daemon on the socket fails at once, naming it", async () => {
    const socket = join(makeTempDir(), "procmon.sock");
    const c = client(socket);
    const expected = `cannot connect to procmond at ${socket}: ENOENT, is it running?`;
    for (const call of [
      () => c.listProcesses(),
      () => c.addProcess(sleeper("x"), { timeoutMs: 10_000 }),
      () => drain(c.watchEvents()).then((err) => Promise.reject(err)),
      () => drain(c.watch()).then((err) => Promise.reject(err)),
    ]) {
      const started = Date.now();
      const err = await rejection(call());
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(isUnavailable(err)).toBe(true);
      expect(err.message).toBe(expected);
      expect(err.cause).toMatchObject({ code: Code.UNAVAILABLE });
    }
  });
});

// ---------------------------------------------------------------- watch() when streams break

// Each on daemons of its own, side by side: they clean up after themselves.
describe.concurrent("watch() across broken streams and daemon restarts", () => {
  it("resumes after RESOURCE_EXHAUSTED with no gap and no duplicate", async ({
    onTestFinished,
  }) => {
    // The daemon's log leaves output out, so only the subscriber under test is slow.
    // 40,000 kept output lines: a subscriber is ended 20,000 behind, beyond the
    // ~12,000 lines (1.5 MB) that HTTP/2 windows and socket buffers hold.
    const q = await startProcmond(
      ["--log-level", "warn", "--min-restart-delay", "30s", "--output-retention", "40000"],
      {},
      { readyWhen: "answers" },
    );
    const c = createClient({ socket: q.socket });
    onTestFinished(async () => {
      c.close();
      await q.cleanup();
    });
    const attempts = tapStreams(c);
    // Past the 32,000 where it is ended; within the 40,000 kept after the
    // last seq it was sent, for it to resume.
    const lines = 42_000;
    const { lastEventSeq } = await c.listProcesses();
    const iterator = c
      .watch({ includeOutput: true, afterSeq: lastEventSeq })
      [Symbol.asyncIterator]();
    const observer = await openWatch(q.socket);
    onTestFinished(() => observer.close());
    const first = iterator.next();
    await c.addProcess({
      name: "flood",
      args: ["sh", "-c", `yes '${"y".repeat(100)}' | head -n ${lines}`],
      // An instant death however slow the machine: restarted after 30 s, not flooding again.
      threshold: { seconds: 600n },
    });
    const received: Event[] = [];
    const head = await first;
    if (!head.done) received.push(head.value);
    // The flood runs to its end while nothing is read.
    const exited = await observer.waitForEvent((e) => e.kind.case === "exited", 15_000);
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      received.push(next.value);
      if (next.value.seq === exited.seq) break;
    }
    await iterator.return?.(undefined);

    expect(received.filter((e) => e.kind.case === "output")).toHaveLength(lines);
    expectConsecutive(received, lastEventSeq + 1n);
    expect(received.at(-1)?.seq).toBe(exited.seq);
    // It was ended for falling behind, and resumed after the last event it had delivered.
    const cut = attempts.findIndex((a) => a.error?.code === Code.RESOURCE_EXHAUSTED);
    expect(cut).toBeGreaterThanOrEqual(0);
    const lastSent = BigInt(attempts[cut]?.error?.metadata[LAST_DELIVERED_SEQ_KEY] ?? -1);
    const resumedAfter = attempts[cut + 1]?.afterSeq ?? -1n;
    expect(resumedAfter).toBeGreaterThan(lastEventSeq);
    expect(resumedAfter).toBeLessThanOrEqual(lastSent);
  }, 30_000);

  it("resumes across a clean daemon restart (SIGTERM) on the same socket and state file", async ({
    onTestFinished,
  }) => {
    const shared = makeTempDir("procmon-sdk-restart-");
    const socket = join(shared, "procmon.sock");
    const stateFile = join(shared, "state.json");
    // A short client deadline: it must not cut watch(), which is endless.
    const c = createClient({ socket, timeoutMs: 2_000 });
    const daemons: Procmond[] = [];
    onTestFinished(async () => {
      c.close();
      for (const daemon of daemons) await daemon.cleanup();
    });
    const d1 = await startOnShared(socket, stateFile);
    daemons.push(d1);
    const attempts = tapStreams(c);
    await c.addProcess(sleeper("a"));
    // b outlives its SIGTERM a little, so that the old daemon's last event is b's.
    await c.addProcess({
      name: "b",
      args: ["sh", "-c", "trap 'sleep 0.5; exit 0' TERM; sleep 100 & wait"],
    });
    const { lastEventSeq } = await c.listProcesses();
    const all = collect(c.watch({ afterSeq: lastEventSeq }));
    const onlyA = collect(c.watch({ names: ["a"], afterSeq: lastEventSeq }));
    await c.restartProcess("a");
    await all.until((es) => es.some((e) => e.kind.case === "started"));

    expect(await d1.stop("SIGTERM")).toBe(0);
    // A clean stop records its last seq; the streams ended after delivering it.
    const last = reservedSeq(stateFile);
    await all.until((es) => es.at(-1)?.seq === last);

    const d2 = await startOnShared(socket, stateFile);
    daemons.unshift(d2);
    // The restored processes come first (due to start at last+1 and last+2,
    // then their starts), then what we do.
    await waitFor(() => c.listProcesses().then(() => true), 5_000);
    await c.restartProcess("a");
    await all.until(
      (es) =>
        es.filter((e) => e.seq > last && e.process === "a" && e.kind.case === "started").length ===
        2,
      10_000,
    );

    expectConsecutive(all.events, lastEventSeq + 1n);
    const after = all.events.filter((e) => e.seq > last);
    expect(after[0]?.seq).toBe(last + 1n);
    expect(kinds(after.slice(0, 2)).sort()).toEqual(["a restartScheduled", "b restartScheduled"]);
    expect(kinds(after)).toEqual(
      expect.arrayContaining(["a started", "b started", "a stopping", "a exited"]),
    );
    expect(after).toHaveLength(7);
    // It reconnected (failing while no daemon listened) and resumed exactly after `last`.
    expect(attempts.some((a) => a.error?.code === Code.UNAVAILABLE)).toBe(true);
    expect(attempts.filter((a) => a.afterSeq === last).length).toBeGreaterThanOrEqual(1);

    // A watcher filtered to "a" last received a's exit, before b's. The clean
    // end's trailer said everything up to `last` was sent, so it resumes from
    // there, with no OUT_OF_RANGE, and sees a's runs on the new daemon.
    await onlyA.until(
      (es) => es.filter((e) => e.seq > last && e.kind.case === "started").length === 2,
      10_000,
    );
    expect(onlyA.events.every((e) => e.process === "a")).toBe(true);
    const seqs = onlyA.events.map((e) => e.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(attempts.filter((a) => a.afterSeq === last).length).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it("after a SIGKILL restart it throws OUT_OF_RANGE: the skipped block is never a silent gap", async ({
    onTestFinished,
  }) => {
    const shared = makeTempDir("procmon-sdk-crash-");
    const socket = join(shared, "procmon.sock");
    const stateFile = join(shared, "state.json");
    const c = createClient({ socket });
    const daemons: Procmond[] = [];
    onTestFinished(async () => {
      c.close();
      for (const daemon of daemons) await daemon.cleanup();
    });
    const d1 = await startOnShared(socket, stateFile);
    daemons.push(d1);
    await c.addProcess(sleeper("a"));
    const { lastEventSeq } = await c.listProcesses();
    const watcher = collect(c.watch({ afterSeq: lastEventSeq }));
    await c.restartProcess("a");
    const lastSeq = (await c.listProcesses()).lastEventSeq;
    await watcher.until((es) => es.at(-1)?.seq === lastSeq);

    expect(await d1.stop("SIGKILL")).toBeNull();
    const reserved = reservedSeq(stateFile);
    expect(reserved).toBeGreaterThan(lastSeq);
    const d2 = await startOnShared(socket, stateFile);
    daemons.unshift(d2);

    // The watcher's cursor (lastSeq) precedes the new numbering: OUT_OF_RANGE,
    // with where resuming is possible, after exactly what it had delivered.
    const end = await watcher.ended(10_000);
    expect(isOutOfRange(end.error)).toBe(true);
    const error = end.error as ProcmonError;
    expect(error.message).toContain(`after_seq ${lastSeq} is older than the retained events`);
    expect(error.metadata[OLDEST_RESUMABLE_SEQ_KEY]).toBe(String(reserved));
    expectConsecutive(watcher.events, lastEventSeq + 1n);
    expect(watcher.events.at(-1)?.seq).toBe(lastSeq);

    // Any cursor inside the skipped block is refused the same way.
    for (const cursor of [lastSeq + 1n, (lastSeq + reserved) / 2n, reserved - 1n]) {
      const err = await drain(c.watch({ afterSeq: cursor }));
      expect({ cursor, outOfRange: isOutOfRange(err) }).toEqual({ cursor, outOfRange: true });
    }
    // Listing again gives a cursor to watch from: the new daemon numbers after the
    // block. (It adopted "a" as it ran, with no event: the first is the next change.)
    const relisted = await c.listProcesses();
    expect(relisted.lastEventSeq).toBeGreaterThanOrEqual(reserved);
    const fromBlock = collect(c.watch({ afterSeq: reserved }));
    await c.addProcess(sleeper("b"));
    await fromBlock.until((es) => es.length > 0);
    expect(fromBlock.events[0]?.seq).toBe(reserved + 1n);
    const fresh = collect(c.watch({ afterSeq: relisted.lastEventSeq }));
    await c.restartProcess("a");
    await fresh.until((es) => es.some((e) => e.kind.case === "started"));
    expectConsecutive(fresh.events, relisted.lastEventSeq + 1n);
  }, 30_000);
});

// ---------------------------------------------------------------- the README's examples

const CLIENT = join(ROOT, "packages/client");
const EXAMPLES = join(CLIENT, "examples");

describe("packages/client/examples against a real daemon", () => {
  afterEach(resetShared);

  it("quickstart.ts", async () => {
    const result = await quickstartExample(d.socket);
    expect(result.names).toEqual(["ticker"]);
    expect(result.startedPid).toBeGreaterThan(0);
    expect(isNotFound(await rejection(d.client.getProcess("ticker")))).toBe(true);
  });

  it("errors.ts", async () => {
    expect(await errorsExample(d.socket)).toEqual([
      'NOT_FOUND: process "nope" does not exist',
      'ALREADY_EXISTS: process "once" already exists',
      expect.stringMatching(/^INVALID_ARGUMENT: .*name/),
      'NOT_FOUND: process "nope" does not exist',
      `UNAVAILABLE: cannot connect to procmond at ${d.socket}.missing: ENOENT, is it running?`,
    ]);
    expect((await d.client.listProcesses()).processes).toEqual([]);
  });

  it("methods.ts", async () => {
    const r = await methodsExample(d.socket);
    expect(r.added.state).toBe(State.RUNNING);
    expect(r.gotPid).toBe(r.added.pid);
    expect(r.names).toEqual(["web"]);
    expect(r.stopped).toEqual({ pid: 0, state: State.STOPPED });
    const pids = [r.added.pid, r.startedPid, r.restartedPid, ...r.restartedAll];
    expect(new Set(pids).size).toBe(4);
    const cycle = ["stopping", "exited", "started"];
    expect(r.watched.map((w) => w.split(" ")[1])).toEqual([...cycle, ...cycle, ...cycle]);
    expect(r.followed).toEqual(r.watched);
    expect(r.aborted).toBe("cancelled");
    expect(r.removed).toBe(State.STOPPED);
    expect((await d.client.listProcesses()).processes).toEqual([]);
  });

  it("watch-resume.ts", async () => {
    const r = await watchResumeExample(d.socket);
    expect(r.mirrored).toHaveLength(2);
    expect(r.mirrored[0]).toBe(r.added);
    expect(r.mirrored[1]).not.toBe(r.added);
  });
});

/** The text of `ref` (`examples/x.ts` or `examples/x.ts#region`) as the README must show it. */
function exampleText(ref: string): string {
  const [path = "", region] = ref.split("#");
  const text = readFileSync(join(CLIENT, path), "utf8");
  if (region === undefined) return text.replace(/\n+$/, "");
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === `// #region ${region}`);
  const end = lines.findIndex((l) => l.trim() === `// #endregion ${region}`);
  if (start < 0 || end < start) throw new Error(`no region ${region} in ${path}`);
  const body = lines.slice(start + 1, end);
  const indent = Math.min(
    ...body.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length),
  );
  return body.map((l) => l.slice(indent)).join("\n");
}

describe("packages/client/README.md", () => {
  const readme = readFileSync(join(CLIENT, "README.md"), "utf8");
  const shown = [...readme.matchAll(/<!-- example: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)];

  it("shows each example verbatim where it says so", () => {
    expect(shown.length).toBeGreaterThan(0);
    // Every marker is followed by its block: none is left without one.
    expect(shown).toHaveLength(readme.match(/<!-- example: /g)?.length ?? 0);
    for (const [, ref = "", block] of shown) {
      expect({ ref, block }).toEqual({ ref, block: exampleText(ref) });
    }
  });

  it("shows every example file: whole, or every one of its regions", () => {
    const refs = new Set(shown.map(([, ref]) => ref));
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".ts"));
    expect(files.sort()).toEqual(["errors.ts", "methods.ts", "quickstart.ts", "watch-resume.ts"]);
    for (const file of files) {
      const text = readFileSync(join(EXAMPLES, file), "utf8");
      const regions = [...text.matchAll(/\/\/ #region (\S+)/g)].map(([, name]) => name);
      if (regions.length === 0) {
        expect({ file, shown: refs.has(`examples/${file}`) }).toEqual({ file, shown: true });
        expect(readme.includes(text.replace(/\n+$/, ""))).toBe(true);
      } else {
        for (const region of regions) {
          const ref = `examples/${file}#${region}`;
          expect({ ref, shown: refs.has(ref) }).toEqual({ ref, shown: true });
          expect(readme.includes(exampleText(ref))).toBe(true);
        }
      }
    }
  });
});
