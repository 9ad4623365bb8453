// --config FILE: processes added at start, SIGHUP reloads, and bad files,
// with the real procmond, real children and a real state file.
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@procmon/client";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanupAll,
  isAlive,
  type LogLine,
  makeTempDir,
  type Procmond,
  runProcmond,
  startProcmond,
} from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

const TIMINGS = ["--kill-time", "300ms", "--threshold", "200ms", "--min-restart-delay", "100ms"];

/** A config file in a dir of its own, with the state file beside it. */
function configDir(): { config: string; stateFile: string } {
  const dir = makeTempDir("procmon-config-it-");
  return { config: join(dir, "procmon.yaml"), stateFile: join(dir, "state.json") };
}

const write = (path: string, ...lines: string[]) => writeFileSync(path, `${lines.join("\n")}\n`);

const startWith = (config: string, stateFile: string) =>
  startProcmond(["--config", config, "--state-file", stateFile, ...TIMINGS]);

/** name → pid of the processes the daemon lists. */
async function pids(d: Procmond): Promise<Record<string, number>> {
  const { processes } = await d.client.listProcesses();
  return Object.fromEntries(processes.map((p) => [p.spec?.name ?? "", p.pid]));
}

/** name → [intent, source] as the state file holds them. */
function registry(stateFile: string): Record<string, [string, string]> {
  const state = JSON.parse(readFileSync(stateFile, "utf8")) as {
    processes: Array<{ spec: { name: string }; intent: string; source: string }>;
  };
  return Object.fromEntries(state.processes.map((p) => [p.spec.name, [p.intent, p.source]]));
}

/** Sends SIGHUP and resolves with the first matching log line that comes after it. */
async function reload(d: Procmond, predicate: (line: LogLine) => boolean): Promise<LogLine> {
  const from = d.logs.length;
  d.child.kill("SIGHUP");
  return d.waitForLog((line) => d.logs.indexOf(line) >= from && predicate(line), 10_000);
}

const reloaded = (line: LogLine) => line.msg === "config reloaded";

/** The pids of live processes whose environment holds `NAME=value`. */
function processesWithEnv(entry: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(entry)) {
        if (isAlive(pid)) found.push(pid);
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

describe("at start", () => {
  it("adds the file's processes, in either spelling, with written durations", async () => {
    const { config, stateFile } = configDir();
    write(
      config,
      "# processes supervised by procmond",
      "processes:",
      "  - name: web",
      '    args: [sleep, "100"]',
      "    kill_time: 500ms",
      "    env: { PORT: 8080 }",
      "  - name: worker",
      "    args: [/bin/sleep, 101]",
      "    killTime: 1s",
      "    minRestartDelay: 250ms",
      "    max_restart_delay: 1m",
      "    clear_env: true",
    );
    const d = await startWith(config, stateFile);

    const web = await d.client.getProcess("web");
    expect(web.state).toBe(State.RUNNING);
    expect(web.spec?.args).toEqual(["sleep", "100"]);
    expect(web.spec?.killTime).toMatchObject({ seconds: 0n, nanos: 500_000_000 });
    expect(web.spec?.env).toEqual({ PORT: "8080" });
    expect(readFileSync(`/proc/${web.pid}/environ`, "latin1").split("\0")).toContain("PORT=8080");

    const worker = await d.client.getProcess("worker");
    expect(worker.state).toBe(State.RUNNING);
    expect(worker.spec?.clearEnv).toBe(true);
    expect(worker.spec?.killTime).toMatchObject({ seconds: 1n, nanos: 0 });
    expect(worker.spec?.minRestartDelay).toMatchObject({ seconds: 0n, nanos: 250_000_000 });
    expect(worker.spec?.maxRestartDelay).toMatchObject({ seconds: 60n, nanos: 0 });

    expect(registry(stateFile)).toEqual({
      web: ["running", "config"],
      worker: ["running", "config"],
    });
  });

  it("a bad file stops the daemon before anything starts, naming file and line", async () => {
    // A few kinds (a bad duration is the reload test's); the unit tests go through every problem.
    const cases: Array<[string, string[], number, RegExp]> = [
      ["a syntax error", ["  - name: b", "    args: [sleep, '1']", "   x: y"], 7, /indicator/],
      [
        "an unknown field",
        ["  - name: b", "    args: [sleep, '1']", "    autorestart: true"],
        7,
        /processes\[1\]\.autorestart: unknown field/,
      ],
      [
        "a missing executable",
        ["  - name: b", "    args: [/nonexistent/procmon-it-bin]"],
        5,
        /processes\[1\]: executable "\/nonexistent\/procmon-it-bin" does not exist/,
      ],
    ];
    await Promise.all(
      cases.map(async ([what, bad, line, problem]) => {
        const { config, stateFile } = configDir();
        // A good entry first, tagged so that a start of it would show in /proc.
        const tag = randomUUID();
        write(
          config,
          "processes:",
          "  - name: a",
          `    args: [sleep, "100"]`,
          `    env: { PROCMON_IT_TAG: ${tag} }`,
          ...bad,
        );
        const dir = join(config, "..");
        const run = await runProcmond(
          ["--socket", join(dir, "procmon.sock"), "--config", config, "--state-file", stateFile],
          {},
          { cwd: dir, timeoutMs: 20_000 },
        );
        expect({ what, code: run.code }).toEqual({ what, code: 1 });
        expect({ what, stderr: run.stderr }).toEqual({
          what,
          stderr: expect.stringContaining(`config file ${config}:${line}: `),
        });
        expect(run.stderr).toMatch(problem);
        // Nothing ran, nothing was written but the lock file (taken first, never removed).
        expect({ what, started: processesWithEnv(`PROCMON_IT_TAG=${tag}`) }).toEqual({
          what,
          started: [],
        });
        expect({ what, files: readdirSync(dir).sort() }).toEqual({
          what,
          files: ["procmon.yaml", "state.json.lock"],
        });
      }),
    );
  });
});

describe("SIGHUP", () => {
  it("reloads: added start, removed stop and are forgotten, changed restart, the rest keep their pid", async () => {
    const { config, stateFile } = configDir();
    write(
      config,
      "processes:",
      "  - name: same",
      "    args: [sleep, '100']",
      "  - name: changed",
      "    args: [sleep, '100']",
      "  - name: dropped",
      "    args: [sleep, '100']",
    );
    const d = await startWith(config, stateFile);
    await d.client.addProcess({ name: "api", args: ["sleep", "100"] });
    const before = await pids(d);

    write(
      config,
      "processes:",
      "  - name: same",
      "    args: [sleep, '100']",
      "  - name: changed",
      "    args: [sleep, '200']",
      "    kill_time: 400ms",
      "  - name: added",
      "    args: [sleep, '100']",
    );
    const watch = await openWatch(d.socket);
    await reload(d, reloaded);

    const after = await pids(d);
    expect(Object.keys(after)).toEqual(["added", "api", "changed", "same"]);
    expect(after.same).toBe(before.same);
    expect(after.api).toBe(before.api);
    expect(after.changed).not.toBe(before.changed);
    expect(after.added).toBeGreaterThan(0);
    const changed = await d.client.getProcess("changed");
    expect(changed.state).toBe(State.RUNNING);
    expect(changed.spec?.args).toEqual(["sleep", "200"]);
    expect(changed.spec?.killTime).toMatchObject({ seconds: 0n, nanos: 400_000_000 });
    expect(readFileSync(`/proc/${changed.pid}/cmdline`, "utf8")).toBe("sleep\u0000200\u0000");
    await expect(d.client.getProcess("dropped")).rejects.toMatchObject({ code: Code.NOT_FOUND });
    for (const gone of [before.dropped, before.changed]) {
      expect(isAlive(gone ?? 0)).toBe(false);
    }
    await watch.waitForEvent((e) => e.process === "dropped" && e.kind.case === "removed");
    expect(watch.events.filter((e) => e.process === "same")).toEqual([]);
    expect(registry(stateFile)).toEqual({
      added: ["running", "config"],
      api: ["running", "api"],
      changed: ["running", "config"],
      same: ["running", "config"],
    });

    // A bad file changes nothing, and says so at error level.
    const good = readFileSync(config, "utf8");
    const savedBefore = readFileSync(stateFile, "utf8");
    write(config, good.trimEnd(), "    kill_time: later");
    const complaint = await reload(
      d,
      (l) => typeof l.msg === "string" && l.msg.startsWith("config not reloaded"),
    );
    expect(complaint.level).toBeGreaterThanOrEqual(50);
    expect(complaint.msg).toContain(`config file ${config}:9: `);
    expect(await pids(d)).toEqual(after);
    expect(readFileSync(stateFile, "utf8")).toBe(savedBefore);

    // Fixed again: applied again.
    write(config, "processes:", "  - name: same", "    args: [sleep, '100']");
    await reload(d, reloaded);
    expect(await pids(d)).toEqual({ api: after.api, same: after.same });

    // Entries that leave the file while the daemon is down are forgotten at
    // its next start; processes added through the API are not the file's.
    expect(await d.stop()).toBe(0);
    write(config, "processes:", "  - name: fresh", "    args: [sleep, '100']");
    const d2 = await startWith(config, stateFile);
    const { processes } = await d2.client.listProcesses();
    expect(processes.map((p) => [p.spec?.name, p.state])).toEqual([
      ["api", State.RUNNING],
      ["fresh", State.RUNNING],
    ]);
    expect(registry(stateFile)).toEqual({ api: ["running", "api"], fresh: ["running", "config"] });
  });

  it("never takes over a process added through the API: the reload is refused naming it, nothing changes", async () => {
    const { config, stateFile } = configDir();
    write(config, "processes:", "  - name: mine", "    args: [sleep, '100']");
    const d = await startWith(config, stateFile);
    const web = await d.client.addProcess({ name: "web", args: ["sleep", "100"] });
    const before = await pids(d);
    const savedBefore = readFileSync(stateFile, "utf8");

    // The file now names "web", adds "new" and drops "mine": none of it happens.
    write(
      config,
      "processes:",
      "  - name: new",
      "    args: [sleep, '100']",
      "  - name: web",
      "    args: [sleep, '200']",
    );
    const complaint = await reload(
      d,
      (l) => typeof l.msg === "string" && l.msg.startsWith("config not reloaded"),
    );
    expect(complaint.level).toBeGreaterThanOrEqual(50);
    expect(complaint.msg).toContain(
      `config file ${config}:4: process "web" was added through the API, not by this file`,
    );
    expect(await pids(d)).toEqual(before);
    expect((await d.client.getProcess("web")).spec?.args).toEqual(["sleep", "100"]);
    expect(isAlive(web.pid)).toBe(true);
    expect(readFileSync(stateFile, "utf8")).toBe(savedBefore);

    // At the next start the same file stops the daemon before anything runs.
    expect(await d.stop()).toBe(0);
    const run = await runProcmond(
      ["--config", config, "--state-file", stateFile, ...TIMINGS],
      {},
      {
        cwd: d.dir,
      },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `config file ${config}:4: process "web" was added through the API`,
    );
    expect(readFileSync(stateFile, "utf8")).not.toBe("");
    expect(processesWithEnv("PROCMON_NAME=web")).toEqual([]);
  });

  it("then SIGTERM at once: the daemon exits 0 and leaves a whole state file", async () => {
    // The reload's write and the final write used to share the temp file:
    // the state file could be left torn or empty, and the next start refused.
    // (And a SIGHUP right after "procmond listening" used to kill the daemon.)
    await Promise.all(
      [1, 2, 3].map(async () => {
        const { config, stateFile } = configDir();
        write(
          config,
          "processes:",
          "  - name: a",
          "    args: [sleep, '100']",
          "  - name: b",
          "    args: [sleep, '100']",
        );
        const d = await startWith(config, stateFile);
        write(config, "processes:", "  - name: a", "    args: [sleep, '100']");
        d.child.kill("SIGHUP");
        d.child.kill("SIGTERM");
        const code = await d.exited();
        expect({ code, signal: d.child.signalCode, stderr: d.stderr() }).toEqual({
          code: 0,
          signal: null,
          stderr: "",
        });
        // Whole: what the next daemon reads (readStateFile's checks, in short).
        const saved = JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, unknown>;
        expect(saved).toMatchObject({
          version: 1,
          seqReservedUpTo: expect.stringMatching(/^\d+$/),
        });
        expect(Object.keys(registry(stateFile))).toContain("a");
      }),
    );
  });
});
