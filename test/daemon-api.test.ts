// The ProcessMonitor API end to end: the real procmond on a unix socket in a
// temp dir, real children (sh, sleep), through the real @procmon/client.
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, type ProcessSpecInit } from "@procmon/client";
import {
  type Event,
  OutputStream,
  type Process,
  Spawner,
  State,
  StopReason,
} from "@procmon/client/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  cleanupAll,
  isAlive,
  type LogLine,
  type Procmond,
  peakRssMiB,
  ROOT,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { rejection } from "./helpers/rejection.js";
import { closeAllWatches, openWatch, startFastReader, stopFastReaders } from "./helpers/watch.js";

const isRoot = process.getuid?.() === 0;
/** A variable set in the daemon's environment, to see what children inherit. */
const MARKER = "PROCMON_IT_MARKER=from-daemon";

let d: Procmond;

beforeAll(async () => {
  d = await startProcmond(
    ["--kill-time", "2s", "--threshold", "300ms", "--min-restart-delay", "100ms"],
    { PROCMON_IT_MARKER: "from-daemon" },
  );
});

afterEach(async () => {
  closeAllWatches();
  stopFastReaders();
  // Each test starts from an empty daemon.
  if (d.child.exitCode !== null) return;
  const { processes } = await d.client.listProcesses();
  await Promise.all(
    processes.map((p) => d.client.removeProcess(p.spec?.name ?? "").catch(() => undefined)),
  );
});

afterAll(cleanupAll);

// ---------------------------------------------------------------- helpers

/** The optional fields tests set on a sleeper. */
interface Extra {
  readonly uid?: number;
  readonly gid?: number;
  readonly cwd?: string;
}

const sleeper = (name: string, extra: Extra = {}): ProcessSpecInit => ({
  name,
  args: ["sleep", "100"],
  ...extra,
});

const durationMs = (value: Duration | undefined): number | undefined =>
  value === undefined ? undefined : Number(value.seconds) * 1_000 + value.nanos / 1e6;

const timeMs = (value: Timestamp | undefined): number | undefined =>
  value === undefined ? undefined : Number(value.seconds) * 1_000 + value.nanos / 1e6;

const exitOf = (p: Process | undefined) => p?.lastExit?.status;

/** What a snapshot says about each process, without the fields that move on their own. */
async function snapshot() {
  const { processes, lastEventSeq } = await d.client.listProcesses();
  return {
    lastEventSeq,
    processes: processes.map((p) => ({
      name: p.spec?.name,
      state: p.state,
      pid: p.pid,
      restartCount: p.restartCount,
    })),
  };
}

/** The output lines the daemon logged for `process` on `stream`. */
const outputLines = (process: string, stream = "stdout"): string[] =>
  d.logs
    .filter((l: LogLine) => l.process === process && l.stream === stream)
    .map((l) => String(l.msg));

const logOf = (process: string, msg: string) => (l: LogLine) =>
  l.process === process && l.stream === "stdout" && l.msg === msg;

const eventsOf = (events: readonly Event[], process: string) =>
  events.filter((e) => e.process === process);

// ---------------------------------------------------------------- the calls

describe("AddProcess / GetProcess / ListProcesses", () => {
  it("AddProcess answers with the process running and its pid alive", async () => {
    const p = await d.client.addProcess(sleeper("add-1"));
    expect(p.state).toBe(State.RUNNING);
    expect(p.pid).toBeGreaterThan(0);
    expect(isAlive(p.pid)).toBe(true);
    expect(p.spec?.name).toBe("add-1");
    expect(p.spec?.args).toEqual(["sleep", "100"]);
    // Normalised: the daemon's defaults filled in.
    expect(durationMs(p.spec?.killTime)).toBe(2_000);
    expect(durationMs(p.spec?.threshold)).toBe(300);
    expect(durationMs(p.spec?.minRestartDelay)).toBe(100);
    expect(durationMs(p.spec?.maxRestartDelay)).toBe(3_600_000);
    expect(p.startedAt).toBeDefined();
    expect(p.restartCount).toBe(0);
    expect(p.nextRestartAt).toBeUndefined();
  });

  it("GetProcess returns the process as it is", async () => {
    const added = await d.client.addProcess(sleeper("get-1"));
    const got = await d.client.getProcess("get-1");
    expect(got.state).toBe(State.RUNNING);
    expect(got.pid).toBe(added.pid);
    expect(got.spec?.args).toEqual(["sleep", "100"]);
    expect(timeMs(got.startedAt)).toBe(timeMs(added.startedAt));
  });

  it("ListProcesses returns every process sorted by name, with the last event seq", async () => {
    const before = await d.client.listProcesses();
    expect(before.processes).toEqual([]);
    for (const name of ["list-b", "list-c", "list-a"]) await d.client.addProcess(sleeper(name));
    const after = await d.client.listProcesses();
    expect(after.processes.map((p) => p.spec?.name)).toEqual(["list-a", "list-b", "list-c"]);
    for (const p of after.processes) {
      expect(p.state).toBe(State.RUNNING);
      expect(isAlive(p.pid)).toBe(true);
    }
    // Each add is exactly two events: added, started.
    expect(after.lastEventSeq).toBe(before.lastEventSeq + 6n);
  });
});

describe("StopProcess / StartProcess", () => {
  it("StopProcess answers stopped once the process has exited", async () => {
    const { pid } = await d.client.addProcess(sleeper("stop-1"));
    const stopped = await d.client.stopProcess("stop-1");
    expect(stopped.state).toBe(State.STOPPED);
    expect(stopped.pid).toBe(0);
    expect(exitOf(stopped)).toEqual({ case: "signal", value: "SIGTERM" });
    // Answered after the exit: the pid is already gone, no waiting.
    expect(isAlive(pid)).toBe(false);
    // Stays stopped, and stopping again is a no-op.
    const { lastEventSeq } = await d.client.listProcesses();
    const again = await d.client.stopProcess("stop-1");
    expect(again.state).toBe(State.STOPPED);
    expect((await d.client.listProcesses()).lastEventSeq).toBe(lastEventSeq);
  });

  it("StartProcess of a stopped process starts it with a new pid", async () => {
    const first = await d.client.addProcess(sleeper("start-1"));
    await d.client.stopProcess("start-1");
    const started = await d.client.startProcess("start-1");
    expect(started.state).toBe(State.RUNNING);
    expect(started.pid).toBeGreaterThan(0);
    expect(started.pid).not.toBe(first.pid);
    expect(isAlive(started.pid)).toBe(true);
    // An explicit start is not a restart by the monitor.
    expect(started.restartCount).toBe(0);
  });

  it("StartProcess of a running process is a no-op: same pid, no event", async () => {
    const first = await d.client.addProcess(sleeper("start-2"));
    const { lastEventSeq } = await d.client.listProcesses();
    const again = await d.client.startProcess("start-2");
    expect(again.state).toBe(State.RUNNING);
    expect(again.pid).toBe(first.pid);
    expect(isAlive(first.pid)).toBe(true);
    expect((await d.client.listProcesses()).lastEventSeq).toBe(lastEventSeq);
  });
});

describe("RestartProcess / RestartAll", () => {
  it("RestartProcess gives a new pid and never backs off", async () => {
    const first = await d.client.addProcess(sleeper("restart-1"));
    // Restarted well within its threshold: still no backoff.
    const second = await d.client.restartProcess("restart-1");
    expect(second.state).toBe(State.RUNNING);
    expect(second.pid).not.toBe(first.pid);
    expect(isAlive(first.pid)).toBe(false);
    expect(isAlive(second.pid)).toBe(true);
    expect(second.nextRestartAt).toBeUndefined();
    const third = await d.client.restartProcess("restart-1");
    expect(third.state).toBe(State.RUNNING);
    expect(third.pid).not.toBe(second.pid);
    expect(isAlive(third.pid)).toBe(true);
    // Explicit restarts are not counted as the monitor's.
    expect(third.restartCount).toBe(0);
    expect(exitOf(third)).toEqual({ case: "signal", value: "SIGTERM" });
  });

  it("RestartProcess of a stopped process starts it", async () => {
    await d.client.addProcess(sleeper("restart-2"));
    await d.client.stopProcess("restart-2");
    const p = await d.client.restartProcess("restart-2");
    expect(p.state).toBe(State.RUNNING);
    expect(isAlive(p.pid)).toBe(true);
  });

  it("RestartAll restarts running and backoff processes at once; stopped stay stopped", async () => {
    const flag = join(d.dir, "restart-all.flag");
    const a = await d.client.addProcess(sleeper("ra-a"));
    const b = await d.client.addProcess(sleeper("ra-b"));
    // Dies at once on its first run, then runs: a long backoff keeps it waiting for RestartAll.
    await d.client.addProcess({
      name: "ra-flaky",
      args: ["sh", "-c", `if [ -e "${flag}" ]; then exec sleep 100; fi; : > "${flag}"; exit 1`],
      minRestartDelay: { seconds: 30n },
      maxRestartDelay: { seconds: 60n },
    });
    await d.client.addProcess(sleeper("ra-stopped"));
    await d.client.stopProcess("ra-stopped");
    await waitFor(async () => (await d.client.getProcess("ra-flaky")).state === State.BACKOFF);

    const watch = await openWatch(d.socket);
    const processes = await d.client.restartAll();
    const { lastEventSeq } = await d.client.listProcesses();

    expect(processes.map((p) => [p.spec?.name, p.state])).toEqual([
      ["ra-a", State.RUNNING],
      ["ra-b", State.RUNNING],
      ["ra-flaky", State.RUNNING],
      ["ra-stopped", State.STOPPED],
    ]);
    const [newA, newB, flaky, stopped] = processes;
    expect(newA?.pid).not.toBe(a.pid);
    expect(newB?.pid).not.toBe(b.pid);
    expect(isAlive(a.pid)).toBe(false);
    expect(isAlive(b.pid)).toBe(false);
    for (const p of [newA, newB, flaky]) expect(isAlive(p?.pid ?? 0)).toBe(true);
    expect(flaky?.nextRestartAt).toBeUndefined();
    expect(stopped?.pid).toBe(0);

    await watch.waitForEvent((e) => e.seq === lastEventSeq);
    const events = watch.events;
    // All at once: both were signalled before either exited.
    const seqsOf = (kind: string) =>
      events.filter((e) => e.kind.case === kind).map((e) => Number(e.seq));
    const stoppings = seqsOf("stopping");
    const exits = seqsOf("exited");
    expect(stoppings).toHaveLength(2);
    expect(exits).toHaveLength(2);
    expect(Math.max(...stoppings)).toBeLessThan(Math.min(...exits));
    for (const e of events.filter((e) => e.kind.case === "stopping")) {
      expect(e.kind.case === "stopping" && e.kind.value.reason).toBe(StopReason.RESTART);
    }
    expect(eventsOf(events, "ra-flaky").map((e) => e.kind.case)).toEqual(["started"]);
    expect(eventsOf(events, "ra-stopped")).toEqual([]);
  });
});

describe("RemoveProcess", () => {
  it("answers once the process has exited; the name is then free", async () => {
    const first = await d.client.addProcess(sleeper("rm-1"));
    const final = await d.client.removeProcess("rm-1");
    expect(final.pid).toBe(0);
    expect(final.state).toBe(State.STOPPED);
    expect(exitOf(final)).toEqual({ case: "signal", value: "SIGTERM" });
    expect(isAlive(first.pid)).toBe(false);
    expect((await rejection(d.client.getProcess("rm-1"))).code).toBe(Code.NOT_FOUND);
    expect((await d.client.listProcesses()).processes).toEqual([]);

    const again = await d.client.addProcess(sleeper("rm-1"));
    expect(again.state).toBe(State.RUNNING);
    expect(again.pid).not.toBe(first.pid);
    expect(isAlive(again.pid)).toBe(true);
  });

  it("removes a process in backoff, cancelling its restart", async () => {
    const watch = await openWatch(d.socket, { names: ["rm-2"] });
    await d.client.addProcess({
      name: "rm-2",
      args: ["sh", "-c", "exit 1"],
      minRestartDelay: { seconds: 30n },
      maxRestartDelay: { seconds: 60n },
    });
    await watch.waitForEvent((e) => e.kind.case === "restartScheduled");
    const final = await d.client.removeProcess("rm-2");
    expect(final.pid).toBe(0);
    await watch.waitForEvent((e) => e.kind.case === "removed");
    expect((await rejection(d.client.getProcess("rm-2"))).code).toBe(Code.NOT_FOUND);
  });
});

// ---------------------------------------------------------------- supervision

describe("supervision", () => {
  it("stopping kills the whole process group: a sh -c tree is entirely gone", async () => {
    const p = await d.client.addProcess({
      name: "tree",
      args: ["sh", "-c", "sleep 100 & echo $!; sleep 100; wait"],
    });
    const line = await d.waitForLog((l) => l.process === "tree" && l.stream === "stdout");
    const grandchild = Number(line.msg);
    expect(grandchild).toBeGreaterThan(0);
    expect(grandchild).not.toBe(p.pid);
    expect(isAlive(grandchild)).toBe(true);

    const stopped = await d.client.stopProcess("tree");
    expect(stopped.state).toBe(State.STOPPED);
    expect(isAlive(p.pid)).toBe(false);
    // SIGTERM went to the group at once; the grandchild's death is its own, so poll briefly.
    await waitFor(() => !isAlive(grandchild), 2_000);
  });

  it("a process ignoring SIGTERM is SIGKILLed after kill_time", async () => {
    const watch = await openWatch(d.socket, { names: ["stubborn"] });
    const p = await d.client.addProcess({
      name: "stubborn",
      args: ["sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
      killTime: { nanos: 500_000_000 },
    });
    expect(durationMs(p.spec?.killTime)).toBe(500);
    // Only once the trap is in place does SIGTERM get ignored.
    await d.waitForLog(logOf("stubborn", "ready"));

    const t0 = performance.now();
    const stopped = await d.client.stopProcess("stubborn");
    const elapsed = performance.now() - t0;
    expect(stopped.state).toBe(State.STOPPED);
    expect(exitOf(stopped)).toEqual({ case: "signal", value: "SIGKILL" });
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(isAlive(p.pid)).toBe(false);

    await watch.waitForEvent((e) => e.kind.case === "exited");
    expect(watch.events.map((e) => e.kind.case)).toEqual([
      "added",
      "started",
      "stopping",
      "killed",
      "exited",
    ]);
    const killed = watch.events.find((e) => e.kind.case === "killed");
    expect(killed?.kind.case === "killed" && killed.kind.value).toMatchObject({
      pid: p.pid,
      signal: "SIGKILL",
    });
  });

  it("a crash loop backs off with a doubling delay", async () => {
    const watch = await openWatch(d.socket, { names: ["crashy"] });
    await d.client.addProcess({
      name: "crashy",
      args: ["sh", "-c", "exit 3"],
      minRestartDelay: { nanos: 100_000_000 },
      maxRestartDelay: { seconds: 10n },
    });
    const scheduled = () => watch.events.filter((e) => e.kind.case === "restartScheduled");
    await waitFor(() => scheduled().length >= 3, 5_000);
    const delays = scheduled().map((e) =>
      e.kind.case === "restartScheduled" ? durationMs(e.kind.value.delay) : undefined,
    );
    expect(delays.slice(0, 3)).toEqual([100, 200, 400]);
    for (const e of watch.events.filter((e) => e.kind.case === "exited")) {
      expect(e.kind.case === "exited" && e.kind.value.instant).toBe(true);
      expect(e.kind.case === "exited" && e.kind.value.status?.status).toEqual({
        case: "exitCode",
        value: 3,
      });
    }

    // A snapshot in backoff: the restart time, and the delay the next death will wait.
    const inBackoff = await waitFor(async () => {
      const p = await d.client.getProcess("crashy");
      return p.state === State.BACKOFF && p.restartCount >= 2 ? p : undefined;
    });
    expect(exitOf(inBackoff)).toEqual({ case: "exitCode", value: 3 });
    expect(inBackoff.pid).toBe(0);
    const at = timeMs(inBackoff.nextRestartAt);
    expect(at).toBeDefined();
    const pending = scheduled().find(
      (e) => e.kind.case === "restartScheduled" && timeMs(e.kind.value.at) === at,
    );
    expect(pending).toBeDefined();
    const pendingDelay =
      pending?.kind.case === "restartScheduled" ? durationMs(pending.kind.value.delay) : -1;
    expect(durationMs(inBackoff.restartDelay)).toBe(2 * (pendingDelay ?? -1));

    // restart_count rises with every restart by the monitor.
    const later = await waitFor(async () => {
      const p = await d.client.getProcess("crashy");
      return p.restartCount > inBackoff.restartCount ? p : undefined;
    });
    expect(later.restartCount).toBeGreaterThan(inBackoff.restartCount);

    // Stopping in backoff cancels the restart.
    const stopped = await d.client.stopProcess("crashy");
    expect(stopped.state).toBe(State.STOPPED);
    expect(stopped.nextRestartAt).toBeUndefined();
  });

  it("a process that lived past its threshold is restarted at once", async () => {
    const watch = await openWatch(d.socket, { names: ["long"] });
    const first = await d.client.addProcess({
      name: "long",
      args: ["sh", "-c", "sleep 0.4; exit 0"],
      threshold: { nanos: 200_000_000 },
      minRestartDelay: { seconds: 5n },
      maxRestartDelay: { seconds: 10n },
    });
    const exited = await watch.waitForEvent((e) => e.kind.case === "exited", 5_000);
    expect(exited.kind.case === "exited" && exited.kind.value.instant).toBe(false);
    expect(exited.kind.case === "exited" && exited.kind.value.pid).toBe(first.pid);
    const next = await watch.waitForEvent((e) => e.seq > exited.seq);
    // No restart_scheduled in between: the very next event is the new run.
    expect(next.kind.case).toBe("started");
    expect(next.seq).toBe(exited.seq + 1n);
    const newPid = next.kind.case === "started" ? next.kind.value.pid : 0;
    expect(newPid).not.toBe(first.pid);
    // At once, not after min_restart_delay (5 s): the bound leaves room for a loaded machine.
    expect((timeMs(next.time) ?? 0) - (timeMs(exited.time) ?? 0)).toBeLessThan(2_500);

    const p = await d.client.getProcess("long");
    expect(p.restartCount).toBeGreaterThanOrEqual(1);
    expect(exitOf(p)).toEqual({ case: "exitCode", value: 0 });
    // A long run resets the backoff to its minimum.
    expect(durationMs(p.restartDelay)).toBe(5_000);
  });

  it("StartProcess while stopping starts it again once it has exited", async () => {
    const p = await d.client.addProcess({
      name: "restartable",
      args: ["sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
      killTime: { nanos: 300_000_000 },
    });
    await d.waitForLog(logOf("restartable", "ready"));
    const stopping = d.client.stopProcess("restartable");
    await waitFor(async () => (await d.client.getProcess("restartable")).state === State.STOPPING);
    const started = await d.client.startProcess("restartable");
    expect(started.state).toBe(State.RUNNING);
    expect(started.pid).not.toBe(p.pid);
    expect(isAlive(p.pid)).toBe(false);
    expect(isAlive(started.pid)).toBe(true);
    expect(exitOf(started)).toEqual({ case: "signal", value: "SIGKILL" });
    await stopping;
  });

  it("a spawn that fails is reported and backs off like an instant death", async () => {
    const script = join(d.dir, "self-deleting.sh");
    writeFileSync(script, '#!/bin/sh\nrm -f "$0"\nexit 1\n', { mode: 0o755 });
    const watch = await openWatch(d.socket, { names: ["vanishing"] });
    await d.client.addProcess({
      name: "vanishing",
      args: [script],
      minRestartDelay: { nanos: 100_000_000 },
      maxRestartDelay: { seconds: 10n },
    });
    const failed = await watch.waitForEvent((e) => e.kind.case === "spawnFailed", 5_000);
    expect(failed.kind.case === "spawnFailed" && failed.kind.value.error).toContain(script);
    const next = await watch.waitForEvent((e) => e.seq > failed.seq);
    expect(next.kind.case).toBe("restartScheduled");
    expect(next.kind.case === "restartScheduled" && durationMs(next.kind.value.delay)).toBe(200);
    const p = await d.client.getProcess("vanishing");
    expect(p.state).toBe(State.BACKOFF);
    expect(p.pid).toBe(0);
  });

  it("output: a last line without newline is flushed, bad UTF-8 replaced, long lines split", async () => {
    const watch = await openWatch(d.socket, { names: ["printer"], includeOutput: true });
    await d.client.addProcess({
      name: "printer",
      args: [
        "sh",
        "-c",
        "printf 'a\\377b\\n'; head -c 70000 /dev/zero | tr '\\0' x; echo; printf tail",
      ],
      minRestartDelay: { seconds: 30n },
      maxRestartDelay: { seconds: 60n },
    });
    await watch.waitForEvent((e) => e.kind.case === "exited", 5_000);
    const lines = watch.events.flatMap((e) => (e.kind.case === "output" ? [e.kind.value] : []));
    expect(lines[0]).toMatchObject({ line: "a\uFFFDb", partial: false });
    expect(lines.at(-1)).toMatchObject({ line: "tail", partial: false });
    const pieces = lines.slice(1, -1);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.map((l) => l.line).join("")).toBe("x".repeat(70_000));
    expect(pieces[0]?.partial).toBe(true);
    for (const piece of pieces) expect(Buffer.byteLength(piece.line)).toBeLessThanOrEqual(65_536);
  });

  describe("environment and working directory", () => {
    const script = 'env; echo "cwd=$(pwd -P)"; exec sleep 100';

    it("env is set over the daemon's environment, in cwd", async () => {
      const cwd = join(d.dir, "work dir");
      mkdirSync(cwd, { recursive: true });
      await d.client.addProcess({
        name: "env-1",
        args: ["sh", "-c", script],
        env: { FOO: "bar baz", PROCMON_IT_MARKER: "overridden" },
        cwd,
      });
      await d.waitForLog(logOf("env-1", `cwd=${realpathSync(cwd)}`));
      const lines = outputLines("env-1");
      expect(lines).toContain("FOO=bar baz");
      expect(lines).toContain("PROCMON_IT_MARKER=overridden");
      expect(lines).not.toContain(MARKER);
      // The daemon's other variables are inherited.
      expect(lines.some((l) => l.startsWith("PATH="))).toBe(true);
    });

    it("inherits the daemon's environment and working directory by default", async () => {
      await d.client.addProcess({ name: "env-2", args: ["sh", "-c", script] });
      await d.waitForLog(logOf("env-2", `cwd=${realpathSync(d.dir)}`));
      expect(outputLines("env-2")).toContain(MARKER);
    });

    it("clear_env starts from an empty environment plus env", async () => {
      const watch = await openWatch(d.socket, { names: ["env-3"], includeOutput: true });
      await d.client.addProcess({
        name: "env-3",
        args: ["sh", "-c", script],
        env: { ONLY: "this" },
        clearEnv: true,
        cwd: "/",
      });
      await watch.waitForEvent(
        (e) => e.kind.case === "output" && e.kind.value.line === "cwd=/",
        5_000,
      );
      const lines = watch.events.flatMap((e) => (e.kind.case === "output" ? [e.kind.value] : []));
      expect(lines.every((l) => l.stream === OutputStream.STDOUT)).toBe(true);
      const text = lines.map((l) => l.line);
      expect(text).toContain("ONLY=this");
      expect(text).not.toContain(MARKER);
      expect(text.some((l) => l.startsWith("HOME="))).toBe(false);
      // The daemon's log carries the same lines, with process and stream.
      await d.waitForLog(logOf("env-3", "ONLY=this"));
    });
  });
});

// ---------------------------------------------------------------- spawner

describe("GetDaemonInfo", () => {
  it("says what spawns the children: the shim when it was built, Node when asked or without it", async () => {
    const info = await d.client.getDaemonInfo();
    const shimBuilt = existsSync(join(ROOT, "packages/daemon/native/build/procmon-shim"));
    const expected =
      process.env.PROCMON_TEST_SPAWNER === "node" || !shimBuilt ? Spawner.NODE : Spawner.SHIM;
    expect(info).toMatchObject({ pid: d.child.pid, spawner: expected });
    expect(info.shimPid > 0).toBe(expected === Spawner.SHIM);
  });
});

// ---------------------------------------------------------------- errors

describe("errors", () => {
  // Every INVALID_ARGUMENT, NOT_FOUND and malformed request is a case of test/bad-input.test.ts.

  it("ALREADY_EXISTS when the name is in use, and the first is untouched", async () => {
    const first = await d.client.addProcess(sleeper("x"));
    const before = await snapshot();
    const err = await rejection(d.client.addProcess({ name: "x", args: ["sleep", "5"] }));
    expect(err.code).toBe(Code.ALREADY_EXISTS);
    expect(err.message).toBe('process "x" already exists');
    expect(await snapshot()).toEqual(before);
    const still = await d.client.getProcess("x");
    expect(still.pid).toBe(first.pid);
    expect(still.spec?.args).toEqual(["sleep", "100"]);
    expect(isAlive(first.pid)).toBe(true);
  });

  it.skipIf(isRoot)("PERMISSION_DENIED for a uid or gid a non-root daemon cannot use", async () => {
    const before = await snapshot();
    const byUid = await rejection(d.client.addProcess(sleeper("as-root", { uid: 0 })));
    expect(byUid.code).toBe(Code.PERMISSION_DENIED);
    expect(byUid.message).toMatch(/uid 0/);
    const byGid = await rejection(d.client.addProcess(sleeper("as-root", { gid: 0 })));
    expect(byGid.code).toBe(Code.PERMISSION_DENIED);
    expect(byGid.message).toMatch(/gid 0/);
    expect(await snapshot()).toEqual(before);
  });

  it.runIf(isRoot)("a root daemon runs a process as uid 1 / gid 1", async () => {
    const p = await d.client.addProcess(sleeper("as-daemon-user", { uid: 1, gid: 1, cwd: "/" }));
    expect(p.state).toBe(State.RUNNING);
    expect(p.spec?.uid).toBe(1);
    expect(p.spec?.gid).toBe(1);
    const status = readFileSync(`/proc/${p.pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+1\s+1\s+1\s+1$/m);
    expect(status).toMatch(/^Gid:\s+1\s+1\s+1\s+1$/m);
  });

  it.runIf(isRoot)(
    "PERMISSION_DENIED from a daemon that runs as nobody, for uid 0 and gid 0",
    async () => {
      const nobody = 65_534;
      const n = await startProcmond(
        [],
        {},
        {
          uid: nobody,
          gid: nobody,
          prepare: (dir) => chownSync(dir, nobody, nobody),
        },
      );
      try {
        const byUid = await rejection(n.client.addProcess(sleeper("p", { uid: 0, cwd: "/" })));
        expect(byUid.code).toBe(Code.PERMISSION_DENIED);
        expect(byUid.message).toMatch(/uid 0/);
        const byGid = await rejection(n.client.addProcess(sleeper("p", { gid: 0, cwd: "/" })));
        expect(byGid.code).toBe(Code.PERMISSION_DENIED);
        expect(byGid.message).toMatch(/gid 0/);
        expect(await n.client.listProcesses()).toEqual({ processes: [], lastEventSeq: 0n });
        // Its own ids are always allowed.
        const own = await n.client.addProcess(
          sleeper("own", { uid: nobody, gid: nobody, cwd: "/" }),
        );
        expect(own.state).toBe(State.RUNNING);
        expect(readFileSync(`/proc/${own.pid}/status`, "utf8")).toMatch(
          new RegExp(`^Uid:\\s+${nobody}\\s`, "m"),
        );
      } finally {
        expect(await n.stop()).toBe(0);
        await n.cleanup();
      }
    },
  );
});

// ---------------------------------------------------------------- WatchEvents

describe("WatchEvents", () => {
  it("sends headers once live: the first event after them is the action's", async () => {
    const watch = await openWatch(d.socket);
    expect(watch.events).toEqual([]);
    const { lastEventSeq } = await d.client.listProcesses();
    const p = await d.client.addProcess(sleeper("live-1"));
    const first = await watch.waitForEvent(() => true);
    expect(first.seq).toBe(lastEventSeq + 1n);
    expect(first.process).toBe("live-1");
    expect(first.kind.case).toBe("added");
    expect(first.kind.case === "added" && first.kind.value.spec?.args).toEqual(["sleep", "100"]);
    const started = await watch.waitForEvent((e) => e.kind.case === "started");
    expect(started.kind.case === "started" && started.kind.value.pid).toBe(p.pid);
  });

  it("reports a process's life in order: added, started, stopping, exited", async () => {
    const watch = await openWatch(d.socket);
    const p = await d.client.addProcess(sleeper("life-1"));
    await d.client.stopProcess("life-1");
    const exited = await watch.waitForEvent((e) => e.kind.case === "exited");
    const events = watch.events.filter((e) => e.seq <= exited.seq);
    expect(events.map((e) => e.kind.case)).toEqual(["added", "started", "stopping", "exited"]);
    // Daemon-wide seqs without gaps, and times that do not go back.
    events.forEach((e, i) => {
      expect(e.process).toBe("life-1");
      expect(e.time).toBeDefined();
      if (i > 0) {
        expect(e.seq).toBe((events[i - 1]?.seq ?? 0n) + 1n);
        expect(timeMs(e.time)).toBeGreaterThanOrEqual(timeMs(events[i - 1]?.time) ?? 0);
      }
    });
    const [, , stopping, exit] = events;
    expect(stopping?.kind.case === "stopping" && stopping.kind.value).toMatchObject({
      pid: p.pid,
      signal: "SIGTERM",
      reason: StopReason.STOP,
    });
    expect(exit?.kind.case === "exited" && exit.kind.value).toMatchObject({
      pid: p.pid,
      instant: false,
    });
    expect(exit?.kind.case === "exited" && exit.kind.value.status?.status).toEqual({
      case: "signal",
      value: "SIGTERM",
    });
  });

  it("filters by process names", async () => {
    const watch = await openWatch(d.socket, { names: ["wf-a", "wf-c"] });
    await d.client.addProcess(sleeper("wf-b"));
    await d.client.addProcess(sleeper("wf-a"));
    await d.client.stopProcess("wf-b");
    await d.client.addProcess(sleeper("wf-c"));
    await watch.waitForEvent((e) => e.process === "wf-c" && e.kind.case === "started");
    expect(watch.events.map((e) => [e.process, e.kind.case])).toEqual([
      ["wf-a", "added"],
      ["wf-a", "started"],
      ["wf-c", "added"],
      ["wf-c", "started"],
    ]);
  });

  it("streams output lines only with include_output", async () => {
    const withOutput = await openWatch(d.socket, { names: ["talker"], includeOutput: true });
    const without = await openWatch(d.socket, { names: ["talker"] });
    await d.client.addProcess({
      name: "talker",
      args: ["sh", "-c", "echo hello; echo oops >&2; exec sleep 100"],
    });
    await withOutput.waitForEvent((e) => e.kind.case === "output" && e.kind.value.line === "oops");
    await withOutput.waitForEvent((e) => e.kind.case === "output" && e.kind.value.line === "hello");
    const outputs = withOutput.events.flatMap((e) =>
      e.kind.case === "output" ? [[e.kind.value.stream, e.kind.value.line]] : [],
    );
    expect(outputs).toEqual(
      expect.arrayContaining([
        [OutputStream.STDOUT, "hello"],
        [OutputStream.STDERR, "oops"],
      ]),
    );
    // Everything before the stop has reached `without` once its exit has.
    await d.client.stopProcess("talker");
    await without.waitForEvent((e) => e.kind.case === "exited");
    expect(without.events.map((e) => e.kind.case)).toEqual([
      "added",
      "started",
      "stopping",
      "exited",
    ]);
  });

  it("resumes from after_seq equal to last_event_seq with no gap", async () => {
    await d.client.addProcess(sleeper("resume-1"));
    const { lastEventSeq } = await d.client.listProcesses();
    const watch = await openWatch(d.socket, { afterSeq: lastEventSeq });
    await d.client.stopProcess("resume-1");
    await watch.waitForEvent((e) => e.kind.case === "exited");
    expect(watch.events.map((e) => [e.seq, e.kind.case])).toEqual([
      [lastEventSeq + 1n, "stopping"],
      [lastEventSeq + 2n, "exited"],
    ]);
  });

  it("replays the retained events after an older after_seq, then goes live", async () => {
    // List-then-watch while things happen: the events between the two are replayed.
    const { lastEventSeq } = await d.client.listProcesses();
    await d.client.addProcess(sleeper("replay-1"));
    const watch = await openWatch(d.socket, { afterSeq: lastEventSeq });
    await d.client.stopProcess("replay-1");
    await watch.waitForEvent((e) => e.kind.case === "exited");
    expect(watch.events.map((e) => [e.seq, e.kind.case])).toEqual([
      [lastEventSeq + 1n, "added"],
      [lastEventSeq + 2n, "started"],
      [lastEventSeq + 3n, "stopping"],
      [lastEventSeq + 4n, "exited"],
    ]);
  });

  it("answers OUT_OF_RANGE for an after_seq beyond the last event", async () => {
    await d.client.addProcess(sleeper("range-1"));
    const { lastEventSeq } = await d.client.listProcesses();
    const beyond = lastEventSeq + 5n;
    const consume = async () => {
      for await (const _ of d.client.watchEvents({ afterSeq: beyond }, { timeoutMs: 5_000 })) {
        // No event may come before the error.
        throw new Error("an event arrived");
      }
    };
    const err = await rejection(consume());
    expect(err.code).toBe(Code.OUT_OF_RANGE);
    expect(err.message).toContain(String(beyond));
  });

  describe("slow and resuming subscribers", () => {
    /** A daemon whose log leaves output out, so that only the subscribers under test are slow. */
    const quietDaemon = () =>
      startProcmond(
        ["--log-level", "warn", "--min-restart-delay", "30s"],
        {},
        {
          readyWhen: "answers",
        },
      );
    const flood = (lines: number, width = 100, name = "flood"): ProcessSpecInit => ({
      name,
      args: ["sh", "-c", `yes '${"y".repeat(width)}' | head -n ${lines}`],
      // However long a loaded machine makes the flood, its exit is an instant
      // death (restarted after 30 s), never a second flood.
      threshold: { seconds: 600n },
    });

    it("ends a subscriber that stopped reading with RESOURCE_EXHAUSTED, without a gap, while one that reads gets everything", async () => {
      // "Keeps up" is relative to the lag a subscriber is allowed: half the
      // retained lines, 70,000 of 20-byte lines here, beyond the ~33,000 that
      // HTTP/2 windows and socket buffers hold. The flood of 120,000 puts the
      // one that reads nothing ~87,000 behind. The reader, a process of its
      // own that only counts, stays within the allowance as long as it goes
      // at more than a fifth of the daemon's pace; the daemon logs every line
      // (to /dev/null), as by default, which is what paces its reading.
      const total = 120_000;
      const q = await startProcmond(
        ["--log-level", "info", "--min-restart-delay", "30s", "--output-retention", "140000"],
        {},
        { readyWhen: "answers", log: "discard" },
      );
      try {
        const stalled = await openWatch(q.socket, { includeOutput: true });
        stalled.pause();
        const reader = await startFastReader(q.socket, "flood");
        const observer = await openWatch(q.socket);
        await q.client.addProcess(flood(total, 20));
        // The flood ran to its end while the subscriber read nothing: it was not slowed.
        const exited = await observer.waitForEvent((e) => e.kind.case === "exited", 15_000);

        // The one that read got every line, in order, and is still live.
        const read = await reader.summary();
        expect(read).toMatchObject({ outputLines: total, gap: null, status: null });
        expect(read.lastSeq).toBe(String(exited.seq));
        // The daemon's memory stayed bounded with one subscriber stuck.
        expect(peakRssMiB(q.child.pid)).toBeLessThan(200);

        stalled.resume();
        const status = await stalled.ended(10_000);
        expect(status.code).toBe(Code.RESOURCE_EXHAUSTED);
        // No silent gap: what it got is a prefix of the log.
        expect(stalled.events[0]?.seq).toBe(1n);
        expect(firstGap(stalled.events)).toBeUndefined();
        const last = stalled.events.at(-1)?.seq ?? 0n;
        expect(last).toBeLessThan(exited.seq);
        // The message names a seq to resume after, no earlier than what arrived.
        const named = (status.details.match(/\d+/g) ?? []).map(BigInt);
        expect(named.some((n) => n >= last && n < exited.seq)).toBe(true);

        // A second flood pushes the first output lines out of the retained window.
        await q.client.addProcess(flood(40_000, 20, "flood-2"));
        await observer.waitForEvent(
          (e) => e.kind.case === "exited" && e.process === "flood-2",
          15_000,
        );
        const tooOld = await rejection(
          (async () => {
            for await (const _ of q.client.watchEvents(
              { afterSeq: 1n, includeOutput: true },
              { timeoutMs: 5_000 },
            )) {
              throw new Error("an event arrived");
            }
          })(),
        );
        expect(tooOld.code).toBe(Code.OUT_OF_RANGE);
        expect(tooOld.message).toMatch(/after_seq 1\b/);
      } finally {
        await q.cleanup();
      }
    }, 40_000);

    it("replays a retained backlog in full to a subscriber that keeps up", async () => {
      const q = await quietDaemon();
      try {
        const observer = await openWatch(q.socket);
        await q.client.addProcess(flood(9_000));
        const exited = await observer.waitForEvent((e) => e.kind.case === "exited", 15_000);
        // 9000 lines fit the retained window (24 MiB by default): all can be replayed.
        const replay = await openWatch(q.socket, { afterSeq: 0n, includeOutput: true });
        await replay.waitForEvent((e) => e.seq === exited.seq, 10_000);
        const seqs = replay.events.map((e) => e.seq);
        expect(seqs.slice(0, Number(exited.seq))).toEqual(
          Array.from({ length: Number(exited.seq) }, (_, i) => BigInt(i + 1)),
        );
        expect(replay.status).toBeUndefined();
      } finally {
        await q.cleanup();
      }
    }, 40_000);
  });
});

/** Where `events` first break the run of consecutive seqs, or undefined (a cheap check for 100,000 events). */
function firstGap(events: readonly Event[]): string | undefined {
  for (let i = 1; i < events.length; i++) {
    const [before, after] = [events[i - 1]?.seq, events[i]?.seq];
    if (before === undefined || after !== before + 1n) return `seq ${after} after ${before}`;
  }
  return undefined;
}
