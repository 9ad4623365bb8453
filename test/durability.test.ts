// Durability: the state file across clean restarts and kill -9, with real
// daemons on real sockets and real children. After any restart every
// registered process that should run runs exactly once, counted by the
// PROCMON_INSTANCE marker in /proc, and nothing from before is left alive.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, type ProcessSpecInit } from "@procmon/client";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanupAll,
  makeTempDir,
  type Procmond,
  ROOT,
  runProcmond,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { marked, statFields } from "./helpers/proc.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

// ---------------------------------------------------------------- helpers

/** Short timings, so that a stop or an orphan's SIGKILL takes 300 ms. */
const TIMINGS = ["--kill-time", "300ms", "--threshold", "200ms", "--min-restart-delay", "100ms"];

/** A state file in a dir of its own, shared by the daemons of one test. */
function newStateFile(): string {
  return join(makeTempDir("procmon-durable-"), "state.json");
}

const startOn = (stateFile: string) => startProcmond(["--state-file", stateFile, ...TIMINGS]);

const sleeper = (name: string): ProcessSpecInit => ({ name, args: ["sleep", "100"] });

/** Ignores SIGTERM (the disposition survives exec), so only SIGKILL after kill_time ends it. */
const stubborn = (name: string): ProcessSpecInit => ({
  name,
  args: ["sh", "-c", "trap '' TERM; exec sleep 100"],
  killTime: { seconds: 2n },
});

interface SavedState {
  instance: string;
  seqReservedUpTo: string;
  processes: Array<{ spec: { name: string }; intent: string; source: string }>;
}

const readState = (path: string): SavedState =>
  JSON.parse(readFileSync(path, "utf8")) as SavedState;

/** name → intent, as the state file holds them. */
const intents = (path: string): Record<string, string> =>
  Object.fromEntries(readState(path).processes.map((p) => [p.spec.name, p.intent]));

/** A process as /proc identifies it for ever: its pid and its start time. */
interface ProcId {
  readonly pid: number;
  readonly startTime: string;
}

const procId = (pid: number): ProcId => {
  const fields = statFields(pid);
  if (!fields?.[19]) throw new Error(`pid ${pid} is not running`);
  return { pid, startTime: fields[19] };
};

/** True if that very process is still alive: same pid, same start time, not a zombie. */
function stillAlive({ pid, startTime }: ProcId): boolean {
  const fields = statFields(pid);
  return fields !== undefined && fields[19] === startTime && fields[0] !== "Z";
}

const countMarked = (instance: string): number =>
  [...marked(instance).values()].reduce((n, pids) => n + pids.length, 0);

/** Resolves once `pid` runs `command` (e.g. a shell has exec'd `sleep`, its trap in place). */
const runs = (pid: number, command: string) =>
  waitFor(() => readFileSync(`/proc/${pid}/comm`, "utf8").trim() === command, 5_000);

/** The running processes' /proc identities, by name. */
async function runningIds(d: Procmond): Promise<Map<string, ProcId>> {
  const { processes } = await d.client.listProcesses();
  return new Map(
    processes.filter((p) => p.pid !== 0).map((p) => [p.spec?.name ?? "", procId(p.pid)]),
  );
}

/**
 * The invariants after a restart: each process the state file says should run
 * is RUNNING and is the one process with its name carrying the marker (its pid
 * is the listed one); each that should not is STOPPED with none; nothing else
 * carries the marker; and no process from before is alive.
 */
async function expectExactlyOnce(
  d: Procmond,
  stateFile: string,
  before: Iterable<ProcId>,
): Promise<void> {
  const { instance } = readState(stateFile);
  const wanted = intents(stateFile);
  const { processes } = await d.client.listProcesses();
  expect(processes.map((p) => p.spec?.name).sort()).toEqual(Object.keys(wanted).sort());
  const found = marked(instance);
  let running = 0;
  for (const p of processes) {
    const name = p.spec?.name ?? "";
    if (wanted[name] === "running") {
      running += 1;
      expect({ name, state: p.state }).toEqual({ name, state: State.RUNNING });
      expect({ name, pids: found.get(name) }).toEqual({ name, pids: [p.pid] });
    } else {
      expect({ name, state: p.state, pid: p.pid }).toEqual({ name, state: State.STOPPED, pid: 0 });
      expect({ name, pids: found.get(name) }).toEqual({ name, pids: undefined });
    }
  }
  expect(countMarked(instance)).toBe(running);
  for (const old of before)
    expect({ ...old, alive: stillAlive(old) }).toEqual({ ...old, alive: false });
}

/**
 * Kills the daemon with SIGKILL. Spawning from Node (startOnNode), its
 * children stay behind, as after a crash, for the next daemon's sweep. With
 * the shim, they outlive it (survival.test.ts), unless the shim is killed too.
 */
async function crash(d: Procmond): Promise<void> {
  expect(await d.stop("SIGKILL")).toBeNull();
}

/** The shim a daemon started (from its "procmond listening" line). */
const shimOf = (d: Procmond) =>
  d.logs.find((l) => typeof l.shimPid === "number")?.shimPid as number | undefined;

/** A daemon spawning from Node: nothing of its survives it but what the next one sweeps. */
const startOnNode = (stateFile: string) =>
  startProcmond(["--state-file", stateFile, "--spawner", "node", ...TIMINGS]);

/** Expects WatchEvents after `afterSeq` to end with OUT_OF_RANGE (headers come first, then the status). */
async function expectOutOfRange(d: Procmond, afterSeq: bigint): Promise<void> {
  const watch = await openWatch(d.socket, { afterSeq });
  const status = await watch.ended();
  expect({ afterSeq, code: status.code }).toEqual({ afterSeq, code: Code.OUT_OF_RANGE });
  expect(watch.events).toEqual([]);
}

// ---------------------------------------------------------------- clean restarts

describe("a clean restart (SIGTERM)", () => {
  it("brings back every process with its intent; seqs continue at exactly last+1; a leftover .tmp is ignored", async () => {
    const stateFile = newStateFile();
    const d1 = await startOn(stateFile);
    // Each call answers only once its change is in the state file.
    for (const name of ["a", "b", "c"]) {
      await d1.client.addProcess(sleeper(name));
      expect(intents(stateFile)[name]).toBe("running");
    }
    await d1.client.stopProcess("b");
    expect(intents(stateFile).b).toBe("stopped");
    await d1.client.addProcess(sleeper("gone"));
    await d1.client.removeProcess("gone");
    expect(intents(stateFile)).toEqual({ a: "running", b: "stopped", c: "running" });
    const before = await runningIds(d1);
    const { instance } = readState(stateFile);
    expect(countMarked(instance)).toBe(2);

    // Every event of the shutdown is delivered before the stream ends.
    const { lastEventSeq } = await d1.client.listProcesses();
    const watch = await openWatch(d1.socket, { afterSeq: lastEventSeq });
    expect(await d1.stop("SIGTERM")).toBe(0);
    await watch.ended();
    const last = watch.events.at(-1)?.seq ?? lastEventSeq;
    expect(last).toBeGreaterThan(lastEventSeq);

    const saved = readState(stateFile);
    expect(saved.seqReservedUpTo).toBe(String(last));
    expect(saved.instance).toBe(instance);
    expect(saved.processes.map((p) => [p.spec.name, p.intent, p.source])).toEqual([
      ["a", "running", "api"],
      ["b", "stopped", "api"],
      ["c", "running", "api"],
    ]);
    expect(countMarked(instance)).toBe(0);

    // A power cut in the middle of a write would leave a torn temp file: ignored.
    const good = readFileSync(stateFile, "utf8");
    writeFileSync(`${stateFile}.tmp`, good.slice(0, good.length / 3), { mode: 0o600 });

    const d2 = await startOn(stateFile);
    await expectExactlyOnce(d2, stateFile, before.values());
    expect(readState(stateFile).instance).toBe(instance);

    // The new daemon's first event is last+1: a restored process due to start
    // (the socket is served first, so it is in backoff, its start due now), then
    // its start.
    const resumed = await openWatch(d2.socket, { afterSeq: last });
    const first = await resumed.waitForEvent(() => true);
    expect(first.seq).toBe(last + 1n);
    expect(first.kind.case).toBe("restartScheduled");
    if (first.kind.case === "restartScheduled") {
      expect(first.kind.value.delay?.seconds ?? 0n).toBe(0n);
      expect(first.kind.value.delay?.nanos ?? 0).toBe(0);
    }
    const start = await resumed.waitForEvent(
      (e) => e.process === first.process && e.kind.case === "started",
    );
    expect(start.seq).toBeGreaterThan(first.seq);
    // Before its start is gone: OUT_OF_RANGE.
    await expectOutOfRange(d2, last - 1n);
  });
});

describe("an unusable state file", () => {
  it("makes the daemon refuse to start, naming the file; the file is byte-identical", async () => {
    // As a daemon writes it (the unit tests pin the format down, and go through every problem).
    const web = {
      spec: { name: "web", args: ["sleep", "100"], killTime: "0.300s" },
      intent: "running",
      source: "api",
    };
    const state = { version: 1, instance: "6f1d", seqReservedUpTo: "12", processes: [web] };
    const real = `${JSON.stringify(state, null, 2)}\n`;
    const variants: Array<[string, string]> = [
      ["empty", ""],
      ["torn", real.slice(0, Math.floor(real.length / 2))],
      [
        "a spec it cannot read",
        JSON.stringify({ ...state, processes: [{ ...web, spec: { ...web.spec, bogus: true } }] }),
      ],
      [
        // Read, but refused as AddProcess would refuse it: it would fail to spawn for ever.
        "a spec that does not validate",
        JSON.stringify({ ...state, processes: [{ ...web, spec: { ...web.spec, args: [] } }] }),
      ],
    ];
    // Independent daemons: run side by side.
    await Promise.all(
      variants.map(async ([what, text]) => {
        const dir = makeTempDir("procmon-bad-state-");
        const stateFile = join(dir, "state.json");
        writeFileSync(stateFile, text, { mode: 0o600 });

        const run = await runProcmond(
          ["--socket", join(dir, "procmon.sock"), "--state-file", stateFile],
          {},
          { cwd: dir, timeoutMs: 20_000 },
        );

        expect({ what, code: run.code }).toEqual({ what, code: 1 });
        expect(run.stderr).toContain(`state file ${stateFile} `);
        expect(run.stderr).toContain("left untouched");
        if (what === "a spec that does not validate") {
          expect(run.stderr).toContain(
            'holds a process that is not valid (processes[0] "web": args must not be empty',
          );
        }
        const same = readFileSync(stateFile, "utf8") === text;
        expect({ what, same }).toEqual({ what, same: true });
        // Nothing else was written, and no socket was left; the lock file stays (it
        // is never removed: a removal races with the next daemon's lock).
        expect({ what, files: readdirSync(dir).sort() }).toEqual({
          what,
          files: ["state.json", "state.json.lock"],
        });
      }),
    );
  });
});

// ---------------------------------------------------------------- kill -9

describe("after kill -9 and a restart on the same state file (spawning from Node)", () => {
  it("mid-life: each process runs exactly once, stopped ones stay stopped, seqs jump", async () => {
    const stateFile = newStateFile();
    const d1 = await startOnNode(stateFile);
    for (const name of ["a", "b", "idle"]) await d1.client.addProcess(sleeper(name));
    await d1.client.addProcess(stubborn("tough"));
    await d1.client.stopProcess("idle");
    const first = await runningIds(d1);
    const { instance } = readState(stateFile);
    const lastSeq = (await d1.client.listProcesses()).lastEventSeq;

    await crash(d1);
    // The children outlive it: this is the mess the next daemon must clean up.
    for (const old of first.values()) expect(stillAlive(old)).toBe(true);
    expect(countMarked(instance)).toBe(3);
    const reserved = BigInt(readState(stateFile).seqReservedUpTo);
    expect(reserved).toBeGreaterThan(lastSeq);

    const d2 = await startOnNode(stateFile);
    await expectExactlyOnce(d2, stateFile, first.values());
    expect(intents(stateFile)).toEqual({
      a: "running",
      b: "running",
      idle: "stopped",
      tough: "running",
    });
    expect(d2.logs).toContainEqual(
      expect.objectContaining({ msg: "terminating processes left by a previous procmond" }),
    );
    // Numbering resumes past the reserved block: no seq of the first daemon is reused.
    const watch = await openWatch(d2.socket, { afterSeq: reserved });
    expect((await watch.waitForEvent(() => true)).seq).toBe(reserved + 1n);
    await expectOutOfRange(d2, lastSeq);
  });

  it("during a restart and during a stop of processes that ignore SIGTERM", async () => {
    const stateFile = newStateFile();
    const d1 = await startOnNode(stateFile);
    await d1.client.addProcess(sleeper("plain"));
    const restarted = await d1.client.addProcess(stubborn("restarted"));
    const stopped = await d1.client.addProcess(stubborn("stopped"));
    await d1.client.addProcess(sleeper("idle"));
    await d1.client.stopProcess("idle");
    await runs(restarted.pid, "sleep");
    await runs(stopped.pid, "sleep");
    const before = await runningIds(d1);

    const outcome = (call: Promise<unknown>) =>
      call.then(
        () => "answered",
        () => "failed",
      );
    const restarting = outcome(d1.client.restartProcess("restarted"));
    const stopping = outcome(d1.client.stopProcess("stopped"));
    await waitFor(async () => {
      const { processes } = await d1.client.listProcesses();
      return processes.filter((p) => p.state === State.STOPPING).length === 2;
    });
    // The stopped intent reaches the file at once, long before kill_time runs out.
    await waitFor(() => intents(stateFile).stopped === "stopped", 1_000);
    await crash(d1);
    expect(await restarting).toBe("failed");
    expect(await stopping).toBe("failed");
    // kill_time (2 s) had not run out: both are still there, ignoring SIGTERM.
    expect(stillAlive(procId(restarted.pid))).toBe(true);
    expect(stillAlive(procId(stopped.pid))).toBe(true);

    const d2 = await startOnNode(stateFile);
    await expectExactlyOnce(d2, stateFile, before.values());
    // The stop was never answered, but its intent was on disk before the wait for the exit.
    expect(intents(stateFile)).toEqual({
      idle: "stopped",
      plain: "running",
      restarted: "running",
      stopped: "stopped",
    });
    expect((await d2.client.getProcess("stopped")).state).toBe(State.STOPPED);
    expect((await d2.client.getProcess("restarted")).pid).not.toBe(restarted.pid);
    // The orphans that ignore SIGTERM had their own kill_time (2 s), not the daemon's (300 ms).
    const timeOf = (msg: string) => Number(d2.logs.find((l) => l.msg === msg)?.time);
    const swept =
      timeOf("procmond listening") - timeOf("terminating processes left by a previous procmond");
    expect(swept).toBeGreaterThanOrEqual(1_900);
  });
});

describe.runIf(existsSync(join(ROOT, "packages/daemon/native/build/procmon-shim")))(
  "after kill -9 of the daemon and its shim together",
  () => {
    it("the state file's intents are honoured as in v1: each process that should run runs once, anew", async () => {
      const stateFile = newStateFile();
      const d1 = await startOn(stateFile);
      for (const name of ["a", "b", "idle"]) await d1.client.addProcess(sleeper(name));
      await d1.client.stopProcess("idle");
      const first = await runningIds(d1);
      const shimPid = shimOf(d1);
      expect(shimPid).toBeTypeOf("number");
      await crash(d1);
      process.kill(shimPid as number, "SIGKILL");
      // Its children die with it.
      for (const old of first.values()) await waitFor(() => !stillAlive(old), 5_000);

      const d2 = await startOn(stateFile);
      await expectExactlyOnce(d2, stateFile, first.values());
      const info = await d2.client.getDaemonInfo();
      expect(info.shimPid).not.toBe(shimPid);
    });
  },
);
