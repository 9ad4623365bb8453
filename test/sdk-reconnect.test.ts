// watch() when the daemon goes away: it says so before each reconnection
// (onReconnect), gives up when told to (maxReconnectAttempts,
// reconnectTimeoutMs), and otherwise keeps trying and resumes with no gap.
// procmonctl watch / logs --follow say so on stderr. Real daemons, killed and
// restarted on the same socket and state file.
import { join } from "node:path";
import {
  createClient,
  isUnavailable,
  type ProcmonClient,
  type ProcmonError,
  type Reconnection,
  type WatchOptions,
} from "@procmon/client";
import type { Event } from "@procmon/client/api";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Changes } from "./helpers/changes.js";
import { killAllCtl, spawnCtl } from "./helpers/cli.js";
import { cleanupAll, makeTempDir, startProcmond, waitFor } from "./helpers/daemon.js";
import { notSeen } from "./helpers/watch.js";

const refused = (socket: string) =>
  `cannot connect to procmond at ${socket}: ECONNREFUSED, is it running?`;
const missing = (socket: string) =>
  `cannot connect to procmond at ${socket}: ENOENT, is it running?`;
const dropped = (socket: string) =>
  `procmond at ${socket} dropped the connection during the call (it may have exited or crashed: see its log)`;
const shutDown = (socket: string) => `procmond at ${socket} ended the stream (it is shutting down)`;

const controllers = new Set<AbortController>();
const clients = new Set<ProcmonClient>();

afterEach(() => {
  killAllCtl();
  for (const controller of controllers) controller.abort();
  controllers.clear();
  for (const c of clients) c.close();
  clients.clear();
});

afterAll(cleanupAll);

/** A daemon on a socket and state file of the test's choosing, shared by successive daemons. */
const startOnShared = (socket: string, stateFile: string) =>
  startProcmond(["--socket", socket, "--state-file", stateFile], {}, { socketVia: "env" });

/** A fresh socket and state file in a temp dir. */
function sharedPaths(): { socket: string; stateFile: string } {
  const dir = makeTempDir("procmon-reconnect-");
  return { socket: join(dir, "procmon.sock"), stateFile: join(dir, "state.json") };
}

function client(socket: string): ProcmonClient {
  const c = createClient({ socket, timeoutMs: 5_000 });
  clients.add(c);
  return c;
}

/** A watch() run in the background, recording its events, its reconnections and its end. */
interface Tracked {
  readonly events: Event[];
  readonly reconnections: Reconnection[];
  /** Resolves once `check()` holds; rejects if the iteration ends first, or after `ms`. */
  until(check: () => boolean, ms?: number): Promise<void>;
  /** Resolves with how the iteration ended and when (performance.now()). */
  ended(ms?: number): Promise<{ error: unknown; atMs: number }>;
}

function track(c: ProcmonClient, options: WatchOptions): Tracked {
  const controller = new AbortController();
  controllers.add(controller);
  const events: Event[] = [];
  const reconnections: Reconnection[] = [];
  const changes = new Changes();
  let end: { error: unknown; atMs: number } | undefined;
  void (async () => {
    try {
      const watch = c.watch({
        ...options,
        signal: controller.signal,
        onReconnect: (reconnection) => {
          reconnections.push(reconnection);
          changes.notify();
        },
      });
      for await (const event of watch) {
        events.push(event);
        changes.notify();
      }
      end = { error: undefined, atMs: performance.now() };
    } catch (error) {
      end = { error, atMs: performance.now() };
    }
    changes.notify();
  })();
  const describeState = () =>
    `reconnections: ${JSON.stringify(reconnections.map((r) => [r.attempt, r.delayMs, r.error.message]))}`;
  return {
    events,
    reconnections,
    async until(check, ms = 10_000) {
      await changes.until(
        () => {
          if (check()) return true;
          if (end)
            throw new Error(`the watch ended first: ${String(end.error)}\n${describeState()}`);
          return undefined;
        },
        ms,
        () => new Error(`${notSeen("condition", ms, events).message}\n${describeState()}`),
      );
    },
    ended: (ms = 10_000) =>
      changes.until(
        () => end,
        ms,
        () => new Error(`the watch did not end within ${ms}ms\n${describeState()}`),
      ),
  };
}

const started = (e: Event) => e.kind.case === "started";

/** Seqs strictly consecutive from `first`: no gap, no duplicate, in order. */
function expectConsecutive(events: readonly Event[], first: bigint): void {
  const seqs = events.map((e) => e.seq);
  expect(seqs).toEqual(seqs.map((_, i) => first + BigInt(i)));
}

describe("watch() when the daemon is killed", () => {
  it("reports each reconnection, and gives up only when bounded", async () => {
    const { socket, stateFile } = sharedPaths();
    const d = await startOnShared(socket, stateFile);
    const c = client(socket);
    await c.addProcess({ name: "a", args: ["sleep", "600"] });
    const { lastEventSeq: afterSeq } = await c.listProcesses();
    const reconnectDelayMs = 50;
    const forever = track(c, { afterSeq, reconnectDelayMs });
    const bounded = track(c, { afterSeq, reconnectDelayMs, maxReconnectAttempts: 3 });
    const timed = track(c, { afterSeq, reconnectDelayMs, reconnectTimeoutMs: 600 });
    const watches = [forever, bounded, timed];
    await c.restartProcess("a");
    for (const w of watches) await w.until(() => w.events.some(started));
    expect(watches.every((w) => w.reconnections.length === 0)).toBe(true);

    const killedAtMs = performance.now();
    expect(await d.stop("SIGKILL")).toBeNull();

    // Three reconnections, each failing, then the last error.
    const boundedEnd = await bounded.ended();
    expect(isUnavailable(boundedEnd.error)).toBe(true);
    expect((boundedEnd.error as ProcmonError).message).toBe(refused(socket));
    expect(bounded.reconnections.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 50],
      [2, 100],
      [3, 200],
    ]);
    // What broke the stream, then why each attempt failed.
    expect(bounded.reconnections.map((r) => r.error.message)).toEqual([
      dropped(socket),
      refused(socket),
      refused(socket),
    ]);

    // Gives up once 600 ms have passed since the break, its last wait cut short to fit.
    const timedEnd = await timed.ended();
    expect(isUnavailable(timedEnd.error)).toBe(true);
    expect(timedEnd.atMs - killedAtMs).toBeGreaterThanOrEqual(600);
    expect(timedEnd.atMs - killedAtMs).toBeLessThan(3_000);
    const delays = timed.reconnections.map((r) => r.delayMs);
    expect(delays.slice(0, 3)).toEqual([50, 100, 200]);
    expect(delays.reduce((sum, ms) => sum + ms, 0)).toBeLessThanOrEqual(600);

    // By default it never gives up: past the others' bounds, still trying.
    await forever.until(() => forever.reconnections.length >= 5);
    expect(forever.reconnections.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 50],
      [2, 100],
      [3, 200],
      [4, 400],
      [5, 800],
    ]);
    expect(forever.reconnections.every((r) => isUnavailable(r.error))).toBe(true);
  }, 30_000);

  it("maxReconnectAttempts 0 and reconnectTimeoutMs 0 throw at the first break", async () => {
    const { socket, stateFile } = sharedPaths();
    const d = await startOnShared(socket, stateFile);
    const c = client(socket);
    const { lastEventSeq: afterSeq } = await c.listProcesses();
    const never = track(c, { afterSeq, maxReconnectAttempts: 0 });
    const now = track(c, { afterSeq, reconnectTimeoutMs: 0 });
    await c.addProcess({ name: "a", args: ["sleep", "600"] });
    for (const w of [never, now]) await w.until(() => w.events.some(started));
    expect(await d.stop("SIGKILL")).toBeNull();
    for (const w of [never, now]) {
      const { error } = await w.ended();
      expect((error as ProcmonError).message).toBe(dropped(socket));
      expect(w.reconnections).toEqual([]);
    }
  });

  it("rejects a bound that is not a number of 0 or more", async () => {
    const c = client(join(makeTempDir("procmon-reconnect-"), "none.sock"));
    for (const options of [{ maxReconnectAttempts: -1 }, { reconnectTimeoutMs: Number.NaN }]) {
      const { error } = await track(c, { afterSeq: 0n, ...options }).ended();
      expect((error as ProcmonError).message).toMatch(
        /^watch\(\): \w+ must be a number of 0 or more/,
      );
    }
  });
});

describe("watch() across a clean daemon restart", () => {
  it("says the daemon ended the stream, then resumes with no gap; the count starts again", async () => {
    const { socket, stateFile } = sharedPaths();
    const c = client(socket);
    const d1 = await startOnShared(socket, stateFile);
    await c.addProcess({ name: "a", args: ["sleep", "600"] });
    const { lastEventSeq } = await c.listProcesses();
    const w = track(c, { afterSeq: lastEventSeq, reconnectDelayMs: 50 });
    await c.restartProcess("a");
    await w.until(() => w.events.some(started));

    expect(await d1.stop("SIGTERM")).toBe(0);
    await w.until(() => w.reconnections.length >= 3);
    expect(w.reconnections.slice(0, 3).map((r) => [r.attempt, r.error.message])).toEqual([
      [1, shutDown(socket)],
      [2, missing(socket)],
      [3, missing(socket)],
    ]);
    const lastBefore = w.events.at(-1)?.seq ?? 0n;

    const d2 = await startOnShared(socket, stateFile);
    // The restored process starts on the new daemon: the seqs go on from the old one's.
    await w.until(() => w.events.some((e) => e.seq > lastBefore && started(e)));
    expectConsecutive(w.events, lastEventSeq + 1n);

    // Live again: the next break is attempt 1 again.
    const seen = w.reconnections.length;
    expect(await d2.stop("SIGTERM")).toBe(0);
    await w.until(() => w.reconnections.length > seen);
    expect(w.reconnections[seen]?.attempt).toBe(1);
    expect(w.reconnections[seen]?.delayMs).toBe(50);
    expect(w.reconnections[seen]?.error.message).toBe(shutDown(socket));
  }, 30_000);
});

describe("watch() of a quiet process", () => {
  it("counts afresh once a stream is live, even if no event comes", async () => {
    const { socket, stateFile } = sharedPaths();
    const c = client(socket);
    // The daemon logs "watch started" (at debug) once the subscription is in place.
    const debug = ["--log-level", "debug"];
    const isWatchStarted = (line: Record<string, unknown>) => line.msg === "watch started";
    const d1 = await startProcmond(
      ["--socket", socket, "--state-file", stateFile, ...debug],
      {},
      {
        socketVia: "env",
      },
    );
    const w = track(c, { names: ["quiet"], afterSeq: 0n, reconnectDelayMs: 50 });
    await d1.waitForLog(isWatchStarted);
    expect(await d1.stop("SIGTERM")).toBe(0);
    await w.until(() => w.reconnections.length >= 3);

    const d2 = await startProcmond(
      ["--socket", socket, "--state-file", stateFile, ...debug],
      {},
      {
        socketVia: "env",
      },
    );
    await d2.waitForLog(isWatchStarted, 10_000);
    const seen = w.reconnections.length;
    expect(await d2.stop("SIGTERM")).toBe(0);
    await w.until(() => w.reconnections.length > seen);
    expect(w.reconnections[seen]?.attempt).toBe(1);
    expect(w.reconnections[seen]?.error.message).toBe(shutDown(socket));
    expect(w.events).toEqual([]);
  }, 30_000);
});

describe("procmonctl notes a reconnection on stderr", () => {
  it("watch and logs --follow", async () => {
    const d = await startProcmond();
    await d.client.addProcess({ name: "talker", args: ["sh", "-c", "echo hello; exec sleep 600"] });
    const { lastEventSeq } = await d.client.listProcesses();
    // From a seq, so that the restart below is seen however long procmonctl takes to start.
    const watch = spawnCtl(["watch", "--since", String(lastEventSeq)], { socket: d.socket });
    const follow = spawnCtl(["logs", "--follow", "talker"], { socket: d.socket });
    await d.client.restartProcess("talker");
    // Both are live once they have printed what followed the restart.
    await watch.waitForLine((l) => l.includes("talker  started"), 10_000);
    await waitFor(() => follow.lines.filter((l) => l === "hello").length === 2, 10_000);

    expect(await d.stop("SIGKILL")).toBeNull();
    const note = new RegExp(
      `^procmonctl: connection lost \\(${escapeRegExp(dropped(d.socket))}\\), reconnecting in 100ms\\n` +
        `procmonctl: connection lost \\(${escapeRegExp(refused(d.socket))}\\), reconnecting in 200ms, attempt 2\\n`,
    );
    for (const ctl of [watch, follow]) {
      await waitFor(() => ctl.stderr().includes("attempt 2"), 10_000);
      expect(ctl.stderr()).toMatch(note);
      const run = await ctl.stop();
      expect(run.code).toBe(0);
      expect(run.stdout).not.toContain("reconnecting");
    }
  }, 30_000);
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
