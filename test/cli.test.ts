// procmonctl end to end: the real bin, run as a process against the real
// procmond on a unix socket in a temp dir, with real children. Each test
// checks what a user or a script sees: stdout, stderr and the exit status.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CtlRun, killAllCtl, runCtl, runCtlAll, spawnCtl } from "./helpers/cli.js";
import {
  cleanupAll,
  isAlive,
  makeTempDir,
  type Procmond,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";

let d: Procmond;

beforeAll(async () => {
  // A state file of its own: the default one is shared by every root daemon.
  const state = join(makeTempDir("procmon-cli-state-"), "state.json");
  d = await startProcmond(["--state-file", state, "--kill-time", "2s"]);
});

afterEach(async () => {
  killAllCtl();
  if (d.child.exitCode !== null) return;
  const { processes } = await d.client.listProcesses();
  await Promise.all(
    processes.map((p) => d.client.removeProcess(p.spec?.name ?? "").catch(() => undefined)),
  );
});

afterAll(async () => {
  killAllCtl();
  await cleanupAll();
});

// ---------------------------------------------------------------- helpers

/** Runs procmonctl against the test daemon. */
const ctl = (...args: string[]) => runCtl(args, { socket: d.socket });

/** Runs procmonctl and expects exit 0 with nothing on stderr. */
async function ok(...args: string[]): Promise<string> {
  const run = await ctl(...args);
  expect({ code: run.code, stderr: run.stderr }, `procmonctl ${args.join(" ")}`).toEqual({
    code: 0,
    stderr: "",
  });
  return run.stdout;
}

/** Runs procmonctl with --json and parses the one object it prints. */
async function json(...args: string[]): Promise<Record<string, unknown>> {
  const stdout = await ok("--json", ...args);
  expect(stdout.endsWith("\n")).toBe(true);
  expect(stdout.trimEnd().split("\n")).toHaveLength(1);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** Process JSON, the fields tests read. */
interface ProcessJson {
  spec: { name: string; args: string[]; env: Record<string, string>; killTime: string };
  state: string;
  pid: number;
  restartCount: number;
}

const SLEEP = ["--", "sleep", "60"];

/**
 * Parses the `ls` table by the header's column starts, checking on the way
 * that every row's cells start exactly there.
 */
function parseTable(stdout: string): Record<string, string>[] {
  const [header = "", ...rows] = stdout.trimEnd().split("\n");
  const names = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"];
  const starts = names.map((name) => header.indexOf(name));
  expect(starts[0]).toBe(0);
  for (let i = 1; i < starts.length; i++) {
    expect(starts[i] ?? -1, `header ${header}`).toBeGreaterThan(starts[i - 1] ?? 0);
  }
  return rows.map((row) => {
    const record: Record<string, string> = {};
    names.forEach((name, i) => {
      const at = starts[i] ?? 0;
      if (i > 0) expect(row[at - 1], `row "${row}" column ${name}`).toBe(" ");
      expect(row[at] ?? " ", `row "${row}" column ${name}`).not.toBe(" ");
      // The last column may be followed by a note (a backoff's "restart in 2s").
      const end = i + 1 < starts.length ? (starts[i + 1] ?? row.length) : row.length;
      record[name] = row.slice(at, end).split(/ {2,}/)[0]?.trim() ?? "";
    });
    return record;
  });
}

async function tableRow(name: string): Promise<Record<string, string> | undefined> {
  return parseTable(await ok("ls")).find((row) => row.NAME === name);
}

function expectUsage(run: CtlRun, message: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe("");
  expect(run.stderr).toMatch(message);
  expect(run.stderr).toMatch(/Usage: procmonctl/);
}

// ---------------------------------------------------------------- tests

// Every step is a Node process of its own, slow on a loaded machine.
const SLOW = { timeout: 60_000 };

describe("procmonctl without a daemon", SLOW, () => {
  it("prints help and its version with exit 0", async () => {
    const [help, addHelp, version] = await runCtlAll([
      ["--help"],
      ["add", "--help"],
      ["--version"],
    ]);
    expect(help.code).toBe(0);
    for (const command of ["add", "rm", "start", "stop", "restart", "restart-all", "get", "ls"]) {
      expect(help.stdout).toContain(`  ${command} `);
    }
    expect(help.stdout).toContain("watch");
    expect(help.stdout).toContain("logs");
    expect(addHelp.code).toBe(0);
    expect(addHelp.stdout).toContain("Usage: procmonctl add [options] NAME -- COMMAND [ARGS...]");
    expect(addHelp.stdout).toContain("--kill-time <duration>");
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
  });

  it("fails at once, not at a deadline, naming the socket when nobody listens on it", async () => {
    const socket = join(makeTempDir(), "procmon.sock");
    // One at a time, so that each run's time is its own.
    // A generous --timeout: failing fast must not come from a deadline. The
    // bound leaves room for Node's own start-up on a loaded machine; the SDK
    // test checks the call itself fails in well under 2 s.
    const runs = [
      ...(await runCtlAll(
        [["--timeout", "60s", "ls"], ["--timeout", "60s", "stop", "web"], ["watch"]],
        { socket },
        1,
      )),
      await runCtl(["--timeout", "60s", "ls"], { env: { PROCMON_SOCKET: socket } }),
    ];
    for (const run of runs) {
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(10_000);
      expect(run.stdout).toBe("");
      expect(run.stderr).toContain(`procmonctl: cannot connect to procmond at ${socket}`);
    }
  });
});

describe("procmonctl against procmond", SLOW, () => {
  it("adds a process, which ls shows running with its pid", async () => {
    const out = await ok("add", "web", "--env", "A=1", "--env", "B=x=y", ...SLEEP);
    const [, pid] = out.match(/^web running pid (\d+)\n$/) ?? [];
    expect(isAlive(Number(pid))).toBe(true);
    const row = await tableRow("web");
    expect(row).toMatchObject({ NAME: "web", STATE: "running", PID: pid, RESTARTS: "0" });
    expect(row?.UPTIME).toMatch(/^\d+(ms|s)$/);
    expect(row?.["LAST EXIT"]).toBe("-");
    const process = (await d.client.getProcess("web")).spec;
    expect(process?.env).toEqual({ A: "1", B: "x=y" });
  });

  it("aligns the ls table and reports state, pid and last exit", async () => {
    await ok("add", "a-long-process-name", ...SLEEP);
    await ok("add", "b", "--min-restart-delay", "30s", "--", "sh", "-c", "exit 3");
    await ok("add", "c", ...SLEEP);
    await ok("stop", "c");
    await waitFor(async () => (await d.client.getProcess("b")).lastExit);
    const rows = parseTable(await ok("ls"));
    expect(rows.map((r) => [r.NAME, r.STATE, r["LAST EXIT"]])).toEqual([
      ["a-long-process-name", "running", "-"],
      ["b", "backoff", "exit 3"],
      ["c", "stopped", "SIGTERM"],
    ]);
    expect(rows[1]?.PID).toBe("-");
    expect(rows[2]?.PID).toBe("-");
    const backoffLine = (await ok("ls")).split("\n").find((l) => l.startsWith("b "));
    expect(backoffLine).toMatch(/restart in \d+s$/);

    const list = await json("ls");
    const processes = list.processes as ProcessJson[];
    expect(processes.map((p) => [p.spec.name, p.state])).toEqual([
      ["a-long-process-name", "STATE_RUNNING"],
      ["b", "STATE_BACKOFF"],
      ["c", "STATE_STOPPED"],
    ]);
    expect(BigInt(list.lastEventSeq as string)).toBeGreaterThan(0n);
  });

  it("prints an empty table and JSON when there is nothing", async () => {
    expect(await ok("ls")).toBe("NAME  STATE  PID  UPTIME  RESTARTS  LAST EXIT\n");
    expect(await json("ls")).toMatchObject({ processes: [] });
  });

  it("prints every unary answer as Process JSON", async () => {
    const added = (await json(
      "add",
      "web",
      "--kill-time",
      "1500ms",
      ...SLEEP,
    )) as unknown as ProcessJson;
    expect(added).toMatchObject({
      state: "STATE_RUNNING",
      spec: { name: "web", args: ["sleep", "60"], killTime: "1.500s" },
    });
    const got = (await json("get", "web")) as unknown as ProcessJson;
    expect(got.pid).toBe(added.pid);
    const stopped = (await json("stop", "web")) as unknown as ProcessJson;
    expect(stopped).toMatchObject({ state: "STATE_STOPPED", pid: 0 });
    const started = (await json("start", "web")) as unknown as ProcessJson;
    expect(started.state).toBe("STATE_RUNNING");
    const restarted = (await json("restart", "web")) as unknown as ProcessJson;
    expect(restarted.pid).not.toBe(started.pid);
    const all = await json("restart-all");
    expect((all.processes as ProcessJson[]).map((p) => p.spec.name)).toEqual(["web"]);
    const removed = (await json("rm", "web")) as unknown as ProcessJson;
    expect(removed.spec.name).toBe("web");
  });

  it("gets one process in detail", async () => {
    await ok(
      "add",
      "web",
      "--threshold",
      "1m30s",
      "--min-restart-delay",
      "250ms",
      "--max-restart-delay",
      "1.5h",
      "--cwd",
      "/tmp",
      ...SLEEP,
    );
    const out = await ok("get", "web");
    expect(out).toMatch(/^name: +web$/m);
    expect(out).toMatch(/^state: +running$/m);
    expect(out).toMatch(/^pid: +\d+$/m);
    expect(out).toMatch(/^command: +sleep 60$/m);
    expect(out).toMatch(/^cwd: +\/tmp$/m);
    expect(out).toMatch(/^threshold: +1m30s$/m);
    expect(out).toMatch(/^kill time: +2s$/m);
    expect(out).toMatch(/^min restart delay: +250ms$/m);
    expect(out).toMatch(/^max restart delay: +1h30m$/m);
  });

  it("stops, starts and restarts a process", async () => {
    const first = Number((await ok("add", "web", ...SLEEP)).match(/pid (\d+)/)?.[1]);

    expect(await ok("stop", "web")).toBe("web stopped (SIGTERM)\n");
    expect(isAlive(first)).toBe(false);
    expect(await tableRow("web")).toMatchObject({ STATE: "stopped", PID: "-", UPTIME: "-" });

    const started = await ok("start", "web");
    const second = Number(started.match(/^web running pid (\d+)\n$/)?.[1]);
    expect(second).not.toBe(first);
    expect(isAlive(second)).toBe(true);

    const restarted = await ok("restart", "web");
    const third = Number(restarted.match(/^web running pid (\d+)\n$/)?.[1]);
    expect(third).not.toBe(second);
    expect(isAlive(second)).toBe(false);
    expect(await tableRow("web")).toMatchObject({ STATE: "running", PID: String(third) });
  });

  it("restarts every running process, leaving stopped ones stopped", async () => {
    const pidOf = async (name: string) => (await d.client.getProcess(name)).pid;
    await ok("add", "one", ...SLEEP);
    await ok("add", "two", ...SLEEP);
    await ok("add", "off", ...SLEEP);
    await ok("stop", "off");
    const before = [await pidOf("one"), await pidOf("two")];
    const out = await ok("restart-all");
    expect(out).toMatch(/^off stopped \(SIGTERM\)\none running pid \d+\ntwo running pid \d+\n$/);
    const after = [await pidOf("one"), await pidOf("two")];
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect((await d.client.getProcess("off")).pid).toBe(0);
  });

  it("removes a process, which ls no longer shows", async () => {
    const pid = Number((await ok("add", "web", ...SLEEP)).match(/pid (\d+)/)?.[1]);
    expect(await ok("rm", "web")).toBe("web removed\n");
    expect(isAlive(pid)).toBe(false);
    expect(await tableRow("web")).toBeUndefined();
  });

  it("reports the daemon's refusals on stderr with exit 1", async () => {
    await ok("add", "web", ...SLEEP);
    const runs = await runCtlAll(
      [
        ["get", "nope"],
        ["stop", "nope"],
        ["start", "nope"],
        ["restart", "nope"],
        ["rm", "nope"],
        ["logs", "nope"],
        ["--json", "get", "nope"],
      ],
      { socket: d.socket },
    );
    for (const run of runs) {
      expect(run).toMatchObject({ code: 1, stdout: "" });
      expect(run.stderr).toBe('procmonctl: process "nope" does not exist\n');
    }
    const duplicate = await ctl("add", "web", ...SLEEP);
    expect(duplicate).toMatchObject({ code: 1, stdout: "" });
    expect(duplicate.stderr).toBe('procmonctl: process "web" already exists\n');
    const missing = await ctl("add", "x", "--", "/nonexistent/procmon-cli");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^procmonctl: .*\/nonexistent\/procmon-cli/);
  });

  it("rejects a bad command line with exit 2 and the usage, changing nothing", async () => {
    const runs = await runCtlAll(
      [
        ["frobnicate"],
        ["ls", "--frob"],
        ["get"],
        ["add", "web", "sleep", "60"],
        ["add", "web", "--threshold", "5x", ...SLEEP],
        ["add", "web", "--kill-time", "0s", ...SLEEP],
        ["add", "web", "--env", "NOEQUALS", ...SLEEP],
        ["add", "web", "--uid", "-1", ...SLEEP],
        ["add", "web", "--max-restart-delay", "1000h", ...SLEEP],
        ["watch", "--since", "abc"],
        ["--timeout", "soon", "ls"],
      ],
      { socket: d.socket },
    );
    const [
      unknownCommand,
      unknownOption,
      missingName,
      noDashes,
      badDuration,
      zero,
      env,
      uid,
      long,
    ] = runs;
    expectUsage(unknownCommand, /unknown command 'frobnicate'/);
    expectUsage(unknownOption, /unknown option '--frob'/);
    expectUsage(missingName, /missing required argument 'name'/);
    expectUsage(noDashes, /put -- between NAME and the command/);
    expectUsage(badDuration, /"5x" is not a duration/);
    expectUsage(zero, /"0s" must be positive/);
    expectUsage(env, /"NOEQUALS" is not KEY=VALUE/);
    expectUsage(uid, /unknown option '-1'|is not a numeric id/);
    // The daemon's own limit, applied before anything is sent.
    expectUsage(long, /"1000h" must be at most 596h31m23\.647s/);
    for (const run of runs.slice(9)) expectUsage(run, /is not|invalid/);
    expect((await d.client.listProcesses()).processes).toEqual([]);
  });

  it("watches events as JSON until SIGINT, then exits 0", async () => {
    const { lastEventSeq } = await d.client.listProcesses();
    const watch = spawnCtl(["--json", "watch", "--since", String(lastEventSeq)], {
      socket: d.socket,
    });
    await ok("add", "web", ...SLEEP);
    const started = await watch.waitForLine((line) => line.includes('"started"'));
    const event = JSON.parse(started) as { seq: string; process: string; started: { pid: number } };
    expect(event.process).toBe("web");
    expect(event.started.pid).toBe((await d.client.getProcess("web")).pid);
    expect(BigInt(event.seq)).toBeGreaterThan(lastEventSeq);
    const end = await watch.stop("SIGINT");
    expect(end).toMatchObject({ code: 0, stderr: "" });
    const kinds = end.stdout
      .trimEnd()
      .split("\n")
      .map((line) =>
        Object.keys(JSON.parse(line) as object).find(
          (k) => !["seq", "time", "process"].includes(k),
        ),
      );
    expect(kinds.slice(0, 2)).toEqual(["added", "started"]);
  });

  it("watches one process as readable lines, output included", async () => {
    const { lastEventSeq } = await d.client.listProcesses();
    const watch = spawnCtl(["watch", "web", "--output", "--since", String(lastEventSeq)], {
      socket: d.socket,
    });
    await ok("add", "other", ...SLEEP);
    await ok("add", "web", "--", "sh", "-c", "echo hello; exit 3");
    const exited = await watch.waitForLine((line) => line.includes(" exited "));
    expect(exited).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} {2}#\d+ {2}web {2}exited code 3 after \d+ms \(instant\)$/,
    );
    const end = await watch.stop("SIGTERM");
    expect(end.code).toBe(0);
    const lines = end.stdout.trimEnd().split("\n");
    expect(lines.every((line) => line.includes("  web  "))).toBe(true);
    expect(lines.some((line) => / {2}started pid \d+$/.test(line))).toBe(true);
    expect(lines).toContainEqual(expect.stringMatching(/ {2}output stdout: hello$/));
  });

  it("ends a watch that cannot resume with exit 1", async () => {
    const run = await ctl("watch", "--since", "999999999");
    expect(run).toMatchObject({ code: 1, stdout: "" });
    expect(run.stderr).toMatch(/^procmonctl: after_seq 999999999 is newer than the last event/);
  });

  it("prints a process's retained output, then ends", async () => {
    const dir = makeTempDir();
    await ok(
      "add",
      "talker",
      "--cwd",
      dir,
      "--",
      "sh",
      "-c",
      "echo one; echo two >&2; echo three; sleep 60",
    );
    await ok("add", "ticker", "--", "sh", "-c", "while true; do echo tick; sleep 0.05; done");
    await waitFor(async () => (await ok("logs", "talker")).split("\n").length === 4, 5_000, 50);
    const out = await ok("logs", "talker");
    expect(out.split("\n").sort()).toEqual(["", "one", "three", "two"]);
    expect(out.indexOf("one")).toBeLessThan(out.indexOf("three"));

    const asJson = (await ok("--json", "logs", "talker")).trimEnd().split("\n");
    const lines = asJson.map(
      (l) => JSON.parse(l) as { process: string; output: { line: string; stream: string } },
    );
    expect(lines.map((l) => l.output.line).sort()).toEqual(["one", "three", "two"]);
    expect(lines.find((l) => l.output.line === "two")?.output.stream).toBe("OUTPUT_STREAM_STDERR");

    // A process that never stops talking does not keep logs from ending.
    const ticks = await ok("logs", "ticker");
    expect(ticks).toMatch(/^(tick\n)+$/);
  });

  it("follows a process's output live with --follow", async () => {
    const dir = makeTempDir();
    const script = "echo ready; while [ ! -e go ]; do sleep 0.05; done; echo went; sleep 60";
    await ok("add", "follower", "--cwd", dir, "--", "sh", "-c", script);
    const follow = spawnCtl(["logs", "--follow", "follower"], { socket: d.socket });
    await follow.waitForLine((line) => line === "ready");
    writeFileSync(join(dir, "go"), "");
    await follow.waitForLine((line) => line === "went");
    const end = await follow.stop("SIGINT");
    expect(end).toMatchObject({ code: 0, stdout: "ready\nwent\n", stderr: "" });
  });
});
