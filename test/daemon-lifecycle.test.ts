// procmond as a daemon: its socket file, signals, flags, and the standard
// gRPC services that ops tools rely on. Each test runs its own daemon(s).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { Code } from "@procmon/client";
import { State, StopReason } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanupAll,
  isAlive,
  makeTempDir,
  ROOT,
  runProcmond,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

const BUF = join(ROOT, "node_modules/.bin/buf");

/** Helper processes a test started itself, killed by pid after it. */
const helpers = new Set<ChildProcess>();

afterEach(async () => {
  closeAllWatches();
  for (const child of helpers) if (child.exitCode === null) child.kill("SIGKILL");
  helpers.clear();
  await cleanupAll();
});

/** True if something accepts connections on the unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Leaves a stale socket file at `path`: a process binds it, then dies without unlinking it. */
async function leaveStaleSocket(path: string): Promise<void> {
  const holder = spawn(
    process.execPath,
    [
      "-e",
      `process.umask(0o022); require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  helpers.add(holder);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("socket holder did not listen")), 5_000);
    holder.stdout?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const exited = new Promise((resolve) => holder.once("exit", resolve));
  holder.kill("SIGKILL");
  await exited;
}

/** Runs `buf curl` against the daemon's socket and parses its JSON answer. */
function bufCurl(socket: string, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      BUF,
      [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--unix-socket",
        socket,
        `http://localhost/${path}`,
        "-d",
        "{}",
      ],
      { timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`buf curl ${path} failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as Record<string, unknown>);
      },
    );
  });
}

describe("the socket file", () => {
  it("is created mode 0600", async () => {
    const d = await startProcmond();
    const stats = lstatSync(d.socket);
    expect(stats.isSocket()).toBe(true);
    expect(stats.mode & 0o777).toBe(0o600);
  });

  it("replaces a stale socket file that nobody listens on", async () => {
    const d = await startProcmond(
      [],
      {},
      {
        prepare: async (_dir, socket) => {
          await leaveStaleSocket(socket);
          expect(lstatSync(socket).isSocket()).toBe(true);
          expect(await answers(socket)).toBe(false);
          // Bound under umask 022: wider than the daemon's own, so a replaced file shows.
          expect(lstatSync(socket).mode & 0o777).not.toBe(0o600);
        },
      },
    );
    const stats = lstatSync(d.socket);
    expect(stats.isSocket()).toBe(true);
    expect(stats.mode & 0o777).toBe(0o600);
    expect(await d.client.listProcesses()).toEqual({ processes: [], lastEventSeq: 0n });
  });

  it("refuses a socket another daemon serves: exits non-zero naming it, the first keeps serving", async () => {
    const first = await startProcmond();
    const p = await first.client.addProcess({ name: "keep", args: ["sleep", "100"] });
    const ino = lstatSync(first.socket).ino;
    // The first's state file must not be touched (the second has its own: the
    // same one is refused before the socket is looked at, by its lock).
    const stateFile = join(first.dir, "state.json");
    const state = await waitFor(() => {
      const bytes = existsSync(stateFile) ? readFileSync(stateFile) : undefined;
      return bytes?.includes('"keep"') ? bytes : undefined;
    });
    const stateMtime = statSync(stateFile).mtimeMs;

    const second = await runProcmond([
      "--socket",
      first.socket,
      "--state-file",
      join(first.dir, "second.json"),
    ]);
    expect(second.code).not.toBe(0);
    expect(second.code).not.toBeNull();
    expect(second.stderr).toContain(first.socket);

    expect(lstatSync(first.socket).ino).toBe(ino);
    expect(readFileSync(stateFile).equals(state)).toBe(true);
    expect(statSync(stateFile).mtimeMs).toBe(stateMtime);
    const again = await first.client.getProcess("keep");
    expect(again.state).toBe(State.RUNNING);
    expect(again.pid).toBe(p.pid);
    expect(isAlive(p.pid)).toBe(true);
  });

  it("refuses a regular file at the socket path and leaves it untouched", async () => {
    const dir = makeTempDir();
    const path = join(dir, "procmon.sock");
    writeFileSync(path, "not a socket\n", { mode: 0o640 });
    const before = statSync(path);

    const run = await runProcmond(["--socket", path], {}, { cwd: dir });
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBeNull();
    expect(run.stderr).toContain(path);

    const after = statSync(path);
    expect(readFileSync(path, "utf8")).toBe("not a socket\n");
    expect(after.ino).toBe(before.ino);
    expect(after.mode).toBe(before.mode);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });
});

describe("shutdown", () => {
  it.each(["SIGTERM", "SIGINT"] as const)(
    "%s stops every child at once, ends streams, removes the socket, exits 0",
    async (signal) => {
      const d = await startProcmond(["--kill-time", "2s"]);
      const plain = await d.client.addProcess({ name: "plain", args: ["sleep", "100"] });
      const tree = await d.client.addProcess({
        name: "tree",
        args: ["sh", "-c", "sleep 100 & echo $!; sleep 100; wait"],
      });
      const stubborn = await d.client.addProcess({
        name: "stubborn",
        args: ["sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
        killTime: { nanos: 300_000_000 },
      });
      const grandchild = Number(
        (await d.waitForLog((l) => l.process === "tree" && l.stream === "stdout")).msg,
      );
      await d.waitForLog((l) => l.process === "stubborn" && l.msg === "ready");
      const pids = [plain.pid, tree.pid, stubborn.pid, grandchild];
      for (const pid of pids) expect(isAlive(pid)).toBe(true);
      const watch = await openWatch(d.socket);

      expect(await d.stop(signal)).toBe(0);

      // The stream ended cleanly, after the shutdown's events.
      const status = await watch.ended();
      expect(status.code).toBe(Code.OK);
      const stoppings = watch.events.filter((e) => e.kind.case === "stopping");
      const exits = watch.events.filter((e) => e.kind.case === "exited");
      expect(stoppings.map((e) => e.process).sort()).toEqual(["plain", "stubborn", "tree"]);
      expect(exits.map((e) => e.process).sort()).toEqual(["plain", "stubborn", "tree"]);
      for (const e of stoppings) {
        expect(e.kind.case === "stopping" && e.kind.value.reason).toBe(StopReason.SHUTDOWN);
      }
      // All at once: every process was signalled before any exited.
      const lastStopping = Math.max(...stoppings.map((e) => Number(e.seq)));
      expect(lastStopping).toBeLessThan(Math.min(...exits.map((e) => Number(e.seq))));
      const killed = watch.events.filter((e) => e.kind.case === "killed").map((e) => e.process);
      expect(killed).toEqual(["stubborn"]);

      for (const pid of [plain.pid, tree.pid, stubborn.pid]) expect(isAlive(pid)).toBe(false);
      await waitFor(() => !isAlive(grandchild), 2_000);
      expect(existsSync(d.socket)).toBe(false);
      expect(d.logs.some((l) => l.msg === "procmond stopped")).toBe(true);
    },
  );
});

describe("flags and environment", () => {
  it.each([
    [["--kill-time", "nope"], "--kill-time"],
    [["--bogus"], "--bogus"],
    [["--min-restart-delay", "2s", "--max-restart-delay", "1s"], "--min-restart-delay"],
  ])("%j exits 2 with a message naming the flag", async (args, flag) => {
    const dir = makeTempDir();
    const socket = join(dir, "procmon.sock");
    const run = await runProcmond(["--socket", socket, ...args], {}, { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(flag);
    expect(existsSync(socket)).toBe(false);
  });

  it("serves on PROCMON_SOCKET when --socket is absent", async () => {
    const d = await startProcmond([], {}, { socketVia: "env" });
    const listening = await d.waitForLog((l) => l.msg === "procmond listening");
    expect(listening.socket).toBe(d.socket);
    expect(lstatSync(d.socket).isSocket()).toBe(true);
    const p = await d.client.addProcess({ name: "via-env", args: ["sleep", "100"] });
    expect(p.state).toBe(State.RUNNING);
  });
});

describe("standard services, for ops tools", () => {
  it("grpc.health.v1.Health/Check answers SERVING", async () => {
    const d = await startProcmond();
    expect(await bufCurl(d.socket, "grpc.health.v1.Health/Check")).toEqual({
      status: "SERVING",
    });
  });

  it("ListProcesses answers buf curl through server reflection", async () => {
    const d = await startProcmond();
    const p = await d.client.addProcess({ name: "curl-1", args: ["sleep", "100"] });
    const answer = await bufCurl(d.socket, "procmon.v1.ProcessMonitor/ListProcesses");
    expect(answer).toMatchObject({
      processes: [
        {
          spec: { name: "curl-1", args: ["sleep", "100"] },
          state: "STATE_RUNNING",
          pid: p.pid,
        },
      ],
      lastEventSeq: "2",
    });
  });
});

describe("a subscriber killed mid-stream", () => {
  it("releases its subscription, and the daemon goes on serving the others", async () => {
    const d = await startProcmond(["--log-level", "debug"]);
    const observer = await openWatch(d.socket);
    // Another process subscribes, then dies without a word: SIGKILL. (A Node
    // client: buf's npm bin is a shim whose SIGKILL leaves the real buf running.)
    const script = `
      import { createClient } from "@procmon/client";
      const client = createClient({ socket: ${JSON.stringify(d.socket)} });
      for await (const e of client.watchEvents({ includeOutput: true })) console.log(String(e.seq));
    `;
    const watcher = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "ignore"],
    });
    helpers.add(watcher);
    await d
      .waitForLog((l) => l.msg === "watch started" && l.subscribers === 2, 10_000)
      .catch((e) => {
        console.log(JSON.stringify(d.logs));
        throw e;
      });
    await d.client.addProcess({
      name: "chatty",
      args: ["sh", "-c", "while :; do echo hi; sleep 0.01; done"],
    });
    // It received events: the stream was live when it was killed.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the watcher got nothing")), 10_000);
      watcher.stdout?.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    watcher.kill("SIGKILL");
    const ended = await d.waitForLog((l) => l.msg === "watch ended" && l.subscribers === 1, 10_000);
    expect(ended.subscribers).toBe(1);
    // The one left still gets every event of the process, in order.
    await d.client.stopProcess("chatty");
    await observer.waitForEvent((e) => e.kind.case === "exited", 10_000);
    expect(observer.events.map((e) => e.kind.case)).toEqual([
      "added",
      "started",
      "stopping",
      "exited",
    ]);
    const seqs = observer.events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => (a < b ? -1 : 1))).toEqual(seqs);
  }, 30_000);
});
