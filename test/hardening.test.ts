// Hardening (v1.1 §D) with real daemons on real sockets: one daemon per state
// file, socket directories no other user controls, socket paths the kernel
// takes whole, and a clear word to the loser of a race for one socket.
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Code, createClient, type ProcmonClient } from "@procmon/client";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import { runCtl } from "./helpers/cli.js";
import {
  cleanupAll,
  isAlive,
  makeTempDir,
  runProcmond,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { rejection } from "./helpers/rejection.js";

const isRoot = process.getuid?.() === 0;
/** A uid no account has: a root test runs "another user" as it. */
const OTHER_UID = 65_533;
if (!isRoot) {
  console.log(
    "skipped: the test of another user's socket directory needs root, to run that user's daemon as uid 65533",
  );
}

const clients: ProcmonClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await cleanupAll();
});

function clientOf(socket: string): ProcmonClient {
  const client = createClient({ socket, timeoutMs: 10_000 });
  clients.push(client);
  return client;
}

const sleeper = (name: string) => ({ name, args: ["sleep", "100"] });

describe("one daemon per state file", () => {
  it("a second daemon on the state file exits at once, naming it and the holder's pid, and touches nothing", async () => {
    const shared = join(makeTempDir("procmon-shared-"), "state.json");
    const a = await startProcmond(["--state-file", shared, "--kill-time", "300ms"]);
    const fromA = await a.client.addProcess(sleeper("fromA"));
    const stateBefore = readFileSync(shared, "utf8");
    const mtimeBefore = statSync(shared).mtimeMs;
    const eventsBefore = (await a.client.listProcesses()).lastEventSeq;

    const bDir = makeTempDir("procmon-b-");
    const bSocket = join(bDir, "b.sock");
    const started = Date.now();
    const b = await runProcmond(["--socket", bSocket, "--state-file", shared]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toContain(`state file ${shared} is in use by another procmond`);
    expect(b.stderr).toContain(`pid ${a.child.pid}`);

    // No sweep, no write, no socket: fromA runs on, once, untouched.
    expect(existsSync(bSocket)).toBe(false);
    expect(readFileSync(shared, "utf8")).toBe(stateBefore);
    expect(statSync(shared).mtimeMs).toBe(mtimeBefore);
    expect(isAlive(fromA.pid)).toBe(true);
    const after = await a.client.listProcesses();
    expect(after.lastEventSeq).toBe(eventsBefore);
    expect(after.processes.map((p) => [p.spec?.name, p.pid])).toEqual([["fromA", fromA.pid]]);
  });

  it("the kernel releases the lock of a daemon killed with SIGKILL: the next one starts", async () => {
    const shared = join(makeTempDir("procmon-shared-"), "state.json");
    const a = await startProcmond(["--state-file", shared, "--kill-time", "300ms"]);
    const fromA = await a.client.addProcess(sleeper("fromA"));
    expect(await a.stop("SIGKILL")).toBe(null);
    const b = await startProcmond(["--state-file", shared, "--kill-time", "300ms"]);
    const [restored] = (await b.client.listProcesses()).processes;
    expect(restored?.spec?.name).toBe("fromA");
    if ((await b.client.getDaemonInfo()).shimPid === 0) {
      // Spawning from Node: the orphan of the killed daemon was ended, and the registry runs once.
      await waitFor(() => !isAlive(fromA.pid), 5_000);
      expect(restored?.pid).not.toBe(fromA.pid);
    } else {
      // With the shim, the process outlived the daemon and the next one adopted it.
      expect(restored?.pid).toBe(fromA.pid);
      expect(isAlive(fromA.pid)).toBe(true);
    }
  });
});

describe("the socket's directory", () => {
  it("a directory every user can write is refused by the daemon and by the clients, naming it", async () => {
    const dir = makeTempDir("procmon-open-");
    chmodSync(dir, 0o777);
    const socket = join(dir, "procmon.sock");
    const daemon = await runProcmond(["--socket", socket]);
    expect(daemon.code).not.toBe(0);
    expect(daemon.stderr).toContain(`refusing socket directory ${dir}: every user can write to it`);
    expect(readdirSync(dir)).toEqual([]);

    const err = await rejection(clientOf(socket).listProcesses());
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.message).toContain(`refusing socket directory ${dir}`);
    const ctl = await runCtl(["add", "db", "--env", "DB_PASSWORD=hunter2", "--", "sleep", "1"], {
      socket,
    });
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toContain(`refusing socket directory ${dir}`);
  });

  it.runIf(isRoot)(
    "another user's directory, with that user's daemon listening in it, gets no secret (root: the other user is uid 65533)",
    async () => {
      // The other user got there first and listens where ours would.
      const theirs = await startProcmond(
        [],
        {},
        {
          uid: OTHER_UID,
          gid: OTHER_UID,
          prepare: (dir) => chownSync(dir, OTHER_UID, OTHER_UID),
        },
      );
      const err = await rejection(
        clientOf(theirs.socket).addProcess({
          ...sleeper("db"),
          env: { DB_PASSWORD: "hunter2" },
        }),
      );
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.message).toContain(
        `refusing socket directory ${theirs.dir}: it is owned by uid ${OTHER_UID}, not by you (uid 0) or root`,
      );
      const ctl = await runCtl(["add", "db", "--env", "DB_PASSWORD=hunter2", "--", "sleep", "1"], {
        env: { PROCMON_SOCKET: theirs.socket },
      });
      expect(ctl.code).toBe(1);
      expect(ctl.stderr).toContain(`refusing socket directory ${theirs.dir}`);
      // Nothing reached it: its registry is empty.
      const state = JSON.parse(readFileSync(join(theirs.dir, "state.json"), "utf8")) as {
        processes: unknown[];
      };
      expect(state.processes).toEqual([]);
      // Our daemon will not serve from their directory either.
      const ours = await runProcmond(["--socket", join(theirs.dir, "ours.sock")]);
      expect(ours.code).not.toBe(0);
      expect(ours.stderr).toContain(`refusing socket directory ${theirs.dir}`);
      expect(existsSync(join(theirs.dir, "ours.sock"))).toBe(false);
    },
  );
});

describe("the socket path's length", () => {
  it("a path over 107 bytes is refused by the daemon and the clients, and nothing is bound", async () => {
    const dir = makeTempDir("procmon-long-");
    const socket = join(dir, `${"s".repeat(120 - dir.length)}.sock`);
    const daemon = await runProcmond(["--socket", socket]);
    expect(daemon.code).not.toBe(0);
    expect(daemon.stderr).toMatch(/socket path ".*" is \d+ bytes long, over the 107/);
    // The kernel would have bound the first 107 bytes: neither name exists.
    expect(readdirSync(dir)).toEqual([]);
    const err = await rejection(clientOf(socket).listProcesses());
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toMatch(/over the 107 a unix socket allows/);
  });
});

describe("two daemons racing for one socket", () => {
  it("the loser says another procmond is already listening, never grpc-js's words", async () => {
    for (let round = 0; round < 4; round++) {
      const dir = makeTempDir("procmon-race-");
      const socket = join(dir, "procmon.sock");
      const stateOf = (name: string) => ["--state-file", join(dir, `${name}.json`)];
      const runs = [
        runProcmond(["--socket", socket, ...stateOf("a")], {}, { timeoutMs: 15_000 }),
        runProcmond(["--socket", socket, ...stateOf("b")], {}, { timeoutMs: 15_000 }),
      ];
      // The winner listens; stop it once the loser is done.
      const loser = await Promise.race(runs);
      expect(loser.code, loser.stderr).not.toBe(0);
      expect(loser.stderr).toContain(`another procmond is already listening on ${socket}`);
      expect(loser.stderr).not.toMatch(/No address added|EADDRINUSE/);
      const client = clientOf(socket);
      expect((await client.listProcesses()).processes).toEqual([]);
      // Each daemon wrote its pid in its own state file's lock: the winner's is alive.
      const winnerPid = ["a", "b"]
        .map((name) => Number(readFileSync(join(dir, `${name}.json.lock`), "utf8")))
        .find((pid) => isAlive(pid));
      if (winnerPid === undefined) throw new Error("no daemon won the socket");
      process.kill(winnerPid, "SIGTERM");
      const winner = (await Promise.all(runs)).find((run) => run !== loser);
      expect(winner?.code).toBe(0);
    }
  });
});

describe("running out of file descriptors", () => {
  it("spawning from Node: names EMFILE in the answer and in Process, logs it, and keeps the socket reachable", async () => {
    // The daemon's own descriptors: with the shim, the children's pipes are the shim's.
    const d = await startProcmond(
      ["--spawner", "node", "--kill-time", "300ms", "--min-restart-delay", "10s"],
      {},
      {
        openFiles: 160,
      },
    );
    // Each child takes two pipes: well before 80 of them, spawns meet the reserve.
    let refused: Awaited<ReturnType<typeof d.client.addProcess>> | undefined;
    for (let i = 0; i < 80 && refused === undefined; i++) {
      const p = await d.client.addProcess(sleeper(`s${i}`));
      if (p.state !== State.RUNNING) refused = p;
    }
    if (refused === undefined) throw new Error("80 children fitted in 160 descriptors");
    expect(refused.state).toBe(State.BACKOFF);
    expect(refused.lastSpawnError).toMatch(
      /^cannot spawn "sleep": EMFILE: too many open files \(procmond has \d+ of its 160 file descriptors open and keeps the last 32 for its clients: raise LimitNOFILE= or ulimit -n\)$/,
    );
    expect((await d.client.getProcess(refused.spec?.name ?? "")).lastSpawnError).toBe(
      refused.lastSpawnError,
    );
    await d.waitForLog(
      (l) => l.level === 50 && /file descriptors open: spawns are refused/.test(String(l.msg)),
      10_000,
    );
    // New clients still get in, and can free descriptors.
    const fresh = clientOf(d.socket);
    const { processes } = await fresh.listProcesses();
    await Promise.all(processes.slice(0, 10).map((p) => fresh.removeProcess(p.spec?.name ?? "")));
    expect((await fresh.startProcess(refused.spec?.name ?? "")).state).toBe(State.RUNNING);
  }, 60_000);
});
