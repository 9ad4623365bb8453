// Processes outlive the daemon (procmon-v1.1 §A): a daemon killed with
// SIGKILL, or leaving on SIGUSR2, and the next one on the same state file;
// the shim killed under a running daemon. Real daemons, a real shim, real
// children; every count is taken from /proc or from the events.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ProcessSpecInit } from "@procmon/client";
import { type Event, State } from "@procmon/client/api";
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
import { closeAllWatches, openWatch, type Watch } from "./helpers/watch.js";

const built = existsSync(join(ROOT, "packages/daemon/native/build/procmon-shim"));

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

const TIMINGS = ["--kill-time", "300ms", "--threshold", "200ms", "--min-restart-delay", "100ms"];

const startOn = (stateFile: string) =>
  startProcmond(["--state-file", stateFile, "--spawner", "shim", ...TIMINGS]);

/** Prints 1, 2, 3... one line every 10 ms. */
const printer: ProcessSpecInit = {
  name: "printer",
  args: [
    process.execPath,
    "-e",
    "let i = 0; setInterval(() => process.stdout.write(String(++i) + '\\n'), 10);",
  ],
};

/** Exits 7 once `go` exists, removing it (so that its next run waits again). */
const exiter = (go: string): ProcessSpecInit => ({
  name: "exiter",
  args: ["sh", "-c", `while [ ! -e '${go}' ]; do sleep 0.02; done; rm -f '${go}'; exit 7`],
});

const sleeper = (name: string): ProcessSpecInit => ({ name, args: ["sleep", "1000"] });

/** A process's start time (with its pid, its identity for ever); undefined once gone or a zombie. */
function startTimeOf(pid: number): string | undefined {
  const fields = statFields(pid);
  return fields?.[0] === "Z" ? undefined : fields?.[19];
}

interface Saved {
  instance: string;
  seqReservedUpTo: string;
}
const readSaved = (stateFile: string) => JSON.parse(readFileSync(stateFile, "utf8")) as Saved;

/** The printer's numbers in a list of events, in order. */
const numbers = (events: readonly Event[]) =>
  events
    .filter((e) => e.process === "printer" && e.kind.case === "output")
    .map((e) => Number(e.kind.case === "output" ? e.kind.value.line : Number.NaN));

/** Numbers missing between the first and the last of `seen`, and how many came twice. */
function gapsAndRepeats(seen: readonly number[]): { missing: number[]; repeated: number } {
  const set = new Set(seen);
  const missing: number[] = [];
  const lo = Math.min(...seen);
  const hi = Math.max(...seen);
  for (let n = lo; n <= hi; n++) if (!set.has(n)) missing.push(n);
  return { missing, repeated: seen.length - set.size };
}

/** Waits for the printer's output to pass `n` in `watch`. */
const printedPast = (watch: Watch, n: number, ms = 10_000) =>
  waitFor(() => numbers(watch.events).some((k) => k > n), ms);

/** What the 20 processes of the outage tests are: 18 sleepers, the printer and the exiter. */
async function addTwenty(d: Procmond, go: string): Promise<void> {
  for (let i = 0; i < 18; i++) await d.client.addProcess(sleeper(`s${String(i).padStart(2, "0")}`));
  await d.client.addProcess(printer);
  await d.client.addProcess(exiter(go));
}

const pidsByName = async (d: Procmond) =>
  new Map(
    (await d.client.listProcesses()).processes.map((p) => [
      p.spec?.name ?? "",
      { pid: p.pid, restarts: p.restartCount, state: p.state },
    ]),
  );

/**
 * The outage: what the old daemon's watcher saw, the exiter ended during it
 * (waited for in /proc), and the next daemon on the same state file.
 */
async function outage(how: "SIGKILL" | "SIGUSR2"): Promise<{
  before: Watch;
  after: Watch;
  d1: Procmond;
  d2: Procmond;
  firstSeq: bigint;
  goAt: number;
  exiterStartedAt: number;
}> {
  const stateFile = join(makeTempDir("procmon-survive-"), "state.json");
  const go = join(makeTempDir("procmon-go-"), "go");
  const d1 = await startOn(stateFile);
  const before = await openWatch(d1.socket, { includeOutput: true });
  await addTwenty(d1, go);
  await printedPast(before, 20);
  const exiter = await d1.client.getProcess("exiter");
  const exiterPid = exiter.pid;
  const exiterStartedAt =
    Number(exiter.startedAt?.seconds ?? 0n) * 1000 + (exiter.startedAt?.nanos ?? 0) / 1e6;
  const code = await d1.stop(how);
  expect({ how, code }).toEqual({ how, code: how === "SIGKILL" ? null : 0 });
  const goAt = Date.now();
  writeFileSync(go, "");
  await waitFor(() => startTimeOf(exiterPid) === undefined, 5_000);
  const firstSeq = BigInt(readSaved(stateFile).seqReservedUpTo);
  const d2 = await startOn(stateFile);
  const after = await openWatch(d2.socket, { includeOutput: true, afterSeq: firstSeq });
  return { before, after, d1, d2, firstSeq, goAt, exiterStartedAt };
}

describe.runIf(built)(
  "the daemon killed with SIGKILL, and a new one on the same state file",
  () => {
    it("adopts all 20: same pids, same restart counts, no stopping or exited for them, output gap-free, the outage's exit reported with its code", async () => {
      const { before, after, d1, d2, goAt, exiterStartedAt } = await outage("SIGKILL");
      const was = new Map(
        d1.logs
          .filter((l) => l.event === "started")
          .map((l) => [l.process as string, l.childPid as number]),
      );
      await after.waitForEvent((e) => e.process === "exiter" && e.kind.case === "started");
      await printedPast(after, Math.max(...numbers(before.events)) + 50);
      const now = await pidsByName(d2);
      for (const [name, pid] of was) {
        if (name === "exiter") continue;
        expect({ name, ...now.get(name) }).toEqual({
          name,
          pid,
          restarts: 0,
          state: State.RUNNING,
        });
      }
      // No event about the adopted ones but their output.
      const about = after.events.filter(
        (e) => e.process !== "exiter" && e.kind.case !== "output" && e.seq > 0n,
      );
      expect(about.map((e) => `${e.process} ${e.kind.case}`)).toEqual([]);
      // The exiter's exit during the outage: its real code, then the restart rule.
      const exited = after.events.find((e) => e.process === "exiter" && e.kind.case === "exited");
      const status = exited?.kind.case === "exited" ? exited.kind.value.status : undefined;
      expect(status?.status).toEqual({ case: "exitCode", value: 7 });
      // Its real uptime: from its start under the old daemon to its exit during the outage.
      const ranMs =
        Number(status?.uptime?.seconds ?? 0n) * 1000 + (status?.uptime?.nanos ?? 0) / 1e6;
      expect(ranMs).toBeGreaterThanOrEqual(goAt - exiterStartedAt - 50);
      expect(ranMs).toBeLessThan(goAt - exiterStartedAt + 1_000);
      expect(now.get("exiter")?.restarts).toBe(1);
      const seen = [...numbers(before.events), ...numbers(after.events)];
      const { missing, repeated } = gapsAndRepeats(seen);
      expect({ missing, repeatedAtMost: Math.min(repeated, 5) }).toEqual({
        missing: [],
        repeatedAtMost: repeated,
      });
    });
  },
);

describe.runIf(built)("SIGUSR2: the upgrade path", () => {
  it("exits 0 at once, the next daemon adopts all 20, seqs continue exactly, output neither lost nor repeated", async () => {
    const { before, after, d1, d2, firstSeq } = await outage("SIGUSR2");
    const lastSeen = before.events.at(-1)?.seq ?? 0n;
    // The exact last seq was saved: a watcher resumes from what it saw, with no gap.
    expect(firstSeq).toBe(lastSeen);
    await after.waitForEvent((e) => e.process === "exiter" && e.kind.case === "started");
    await printedPast(after, Math.max(...numbers(before.events)) + 50);
    const was = new Map(
      d1.logs
        .filter((l) => l.event === "started")
        .map((l) => [l.process as string, l.childPid as number]),
    );
    const now = await pidsByName(d2);
    for (const [name, pid] of was) {
      if (name !== "exiter") expect({ name, pid: now.get(name)?.pid }).toEqual({ name, pid });
    }
    const seen = [...numbers(before.events), ...numbers(after.events)];
    expect(gapsAndRepeats(seen)).toEqual({ missing: [], repeated: 0 });
    expect(after.events[0]?.seq).toBe(firstSeq + 1n);
  });

  it("a new daemon refuses a shim that speaks another protocol version, naming both", async () => {
    const stateFile = join(makeTempDir("procmon-survive-"), "state.json");
    // An old shim's listening socket: it answers HELLO with version 1.
    const server = createServer((socket) => {
      const hello = Buffer.alloc(4 + 1 + 4 + 2 + 2 + 4);
      hello.writeUInt32LE(hello.length - 4, 0);
      hello.writeUInt8(1, 4);
      hello.writeUInt32LE(0x534d5250, 5);
      hello.writeUInt16LE(1, 9);
      hello.writeUInt32LE(process.pid, 13);
      socket.once("data", () => socket.end(hello));
    });
    await new Promise<void>((resolve) => server.listen(`${stateFile}.shim.sock`, resolve));
    try {
      const run = await runProcmond(["--state-file", stateFile, "--spawner", "shim"]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/procmon-shim speaks protocol 1, this procmond 2/);
    } finally {
      server.close();
    }
  });
});

describe.runIf(built)("the shim killed with SIGKILL", () => {
  it("is noticed within 1 s: each process reported killed, restarted once by a new shim, none doubled, none left", async () => {
    const stateFile = join(makeTempDir("procmon-survive-"), "state.json");
    const d = await startOn(stateFile);
    const watch = await openWatch(d.socket);
    const names = ["a", "b", "c", "d", "e"];
    for (const name of names) await d.client.addProcess(sleeper(name));
    const info = await d.client.getDaemonInfo();
    const oldPids = new Map(
      (await d.client.listProcesses()).processes.map((p) => [p.spec?.name ?? "", p.pid]),
    );
    const killedAt = Date.now();
    process.kill(info.shimPid, "SIGKILL");
    for (const name of names) {
      await watch.waitForEvent(
        (e) =>
          e.process === name && e.kind.case === "started" && e.kind.value.pid !== oldPids.get(name),
      );
    }
    const exits = watch.events.filter((e) => e.kind.case === "exited");
    expect(exits.map((e) => e.process).sort()).toEqual(names);
    for (const e of exits) {
      const status = e.kind.case === "exited" ? e.kind.value.status?.status : undefined;
      expect({ process: e.process, status }).toEqual({
        process: e.process,
        status: { case: "signal", value: "SIGKILL" },
      });
    }
    const firstExit = exits[0]?.time;
    expect(firstExit).toBeDefined();
    const noticedMs =
      Number(firstExit?.seconds ?? 0n) * 1000 + (firstExit?.nanos ?? 0) / 1e6 - killedAt;
    expect(noticedMs).toBeLessThan(1_000);
    const after = await d.client.getDaemonInfo();
    expect(after.shimPid).not.toBe(info.shimPid);
    expect(startTimeOf(info.shimPid)).toBeUndefined();
    const { processes } = await d.client.listProcesses();
    const byName = marked(readSaved(stateFile).instance);
    for (const p of processes) {
      const name = p.spec?.name ?? "";
      expect({ name, restarts: p.restartCount, pids: byName.get(name) }).toEqual({
        name,
        restarts: 1,
        pids: [p.pid],
      });
      expect(startTimeOf(oldPids.get(name) ?? 0)).toBeUndefined();
    }
  });
});

describe.runIf(built)("a daemon spawning from Node after one with the shim was killed", () => {
  it("stops the shim the killed one left, with its processes, and starts them itself", async () => {
    const stateFile = join(makeTempDir("procmon-survive-"), "state.json");
    const d1 = await startOn(stateFile);
    const first = await d1.client.addProcess(sleeper("s"));
    const { shimPid } = await d1.client.getDaemonInfo();
    expect(await d1.stop("SIGKILL")).toBeNull();
    const d2 = await startProcmond(["--state-file", stateFile, "--spawner", "node", ...TIMINGS]);
    expect(startTimeOf(shimPid)).toBeUndefined();
    expect(startTimeOf(first.pid)).toBeUndefined();
    expect(existsSync(`${stateFile}.shim.sock`)).toBe(false);
    const now = await d2.client.getProcess("s");
    expect(now.state).toBe(State.RUNNING);
    expect(now.pid).not.toBe(first.pid);
    expect(marked(readSaved(stateFile).instance).get("s")).toEqual([now.pid]);
  });
});
