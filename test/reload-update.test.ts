// ReloadConfig and UpdateProcess (procmon-v1.1 §C) through the SDK and
// procmonctl, against real daemons: what each answers, and its error codes.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, type ProcmonError } from "@procmon/client";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import { cleanupAll, makeTempDir, ROOT, startProcmond, waitFor } from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

const run = promisify(execFile);
const PROCMONCTL = join(ROOT, "packages/client/bin/procmonctl.js");

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

const TIMINGS = ["--kill-time", "1s"];
const codeOf = (err: unknown) => (err as ProcmonError).code;

/** A config file of `entries` (name → args), rewritten in place by each call. */
function configFile(): { path: string; write(entries: Record<string, string[]>): void } {
  const path = join(makeTempDir("procmon-reload-"), "processes.yaml");
  return {
    path,
    write(entries) {
      const lines = ["processes:"];
      for (const [name, args] of Object.entries(entries)) {
        lines.push(`  - name: ${name}`, `    args: ${JSON.stringify(args)}`);
      }
      if (Object.keys(entries).length === 0) lines[0] = "processes: []";
      writeFileSync(path, `${lines.join("\n")}\n`);
    },
  };
}

describe("UpdateProcess", () => {
  it("restarts a process whose spec changed, with the new spec; an unchanged spec changes nothing", async () => {
    const d = await startProcmond(TIMINGS);
    const first = await d.client.addProcess({ name: "web", args: ["sleep", "100"] });
    const watch = await openWatch(d.socket);
    const updated = await d.client.updateProcess({
      name: "web",
      args: ["sleep", "200"],
      env: { PORT: "8081" },
    });
    expect(updated.state).toBe(State.RUNNING);
    expect(updated.pid).not.toBe(first.pid);
    expect(updated.spec?.args).toEqual(["sleep", "200"]);
    expect(updated.spec?.env).toEqual({ PORT: "8081" });
    expect(watch.events.map((e) => e.kind.case)).toEqual(["stopping", "exited", "started"]);
    // The same again: nothing happens, same pid, no event.
    const same = await d.client.updateProcess({
      name: "web",
      args: ["sleep", "200"],
      env: { PORT: "8081" },
    });
    expect(same.pid).toBe(updated.pid);
    expect(watch.events).toHaveLength(3);
  });

  it("NOT_FOUND for an unknown name, INVALID_ARGUMENT for a bad spec, and nothing changes", async () => {
    const d = await startProcmond(TIMINGS);
    const web = await d.client.addProcess({ name: "web", args: ["sleep", "100"] });
    const unknown = await d.client
      .updateProcess({ name: "nope", args: ["true"] })
      .catch((e: unknown) => e);
    expect(codeOf(unknown)).toBe(Code.NOT_FOUND);
    const bad = await d.client.updateProcess({ name: "web", args: [] }).catch((e: unknown) => e);
    expect(codeOf(bad)).toBe(Code.INVALID_ARGUMENT);
    expect(String(bad)).toContain("args must not be empty");
    expect(await d.client.getProcess("web")).toMatchObject({ pid: web.pid, state: State.RUNNING });
  });

  it("procmonctl update: the options given over the current spec, --env added to its environment", async () => {
    const d = await startProcmond(TIMINGS);
    const first = await d.client.addProcess({
      name: "web",
      args: ["sleep", "100"],
      env: { A: "1" },
    });
    const { stdout } = await run(
      process.execPath,
      [PROCMONCTL, "--socket", d.socket, "update", "web", "--env", "B=2", "--stop-signal", "INT"],
      { timeout: 15_000 },
    );
    expect(stdout).toContain("web");
    const now = await d.client.getProcess("web");
    expect(now.spec).toMatchObject({ args: ["sleep", "100"], env: { A: "1", B: "2" } });
    expect(now.spec?.stopSignal).toBe("SIGINT");
    expect(now.pid).not.toBe(first.pid);
  });
});

describe("ReloadConfig", () => {
  it("answers what it added, removed, changed and left alone; procmonctl reload says so", async () => {
    const config = configFile();
    config.write({ a: ["sleep", "100"], b: ["sleep", "100"], c: ["sleep", "100"] });
    const d = await startProcmond([...TIMINGS, "--config", config.path]);
    const b = await d.client.getProcess("b");
    config.write({ b: ["sleep", "100"], c: ["sleep", "300"], d: ["sleep", "100"] });
    const summary = await d.client.reloadConfig();
    expect({
      added: summary.added,
      removed: summary.removed,
      changed: summary.changed,
      unchanged: summary.unchanged,
    }).toEqual({ added: ["d"], removed: ["a"], changed: ["c"], unchanged: ["b"] });
    const { processes } = await d.client.listProcesses();
    expect(processes.map((p) => p.spec?.name)).toEqual(["b", "c", "d"]);
    expect((await d.client.getProcess("b")).pid).toBe(b.pid);
    expect((await d.client.getProcess("c")).spec?.args).toEqual(["sleep", "300"]);
    config.write({ b: ["sleep", "100"] });
    const { stdout } = await run(process.execPath, [PROCMONCTL, "--socket", d.socket, "reload"], {
      timeout: 15_000,
    });
    expect(stdout).toBe("added: -\nremoved: c, d\nchanged: -\nunchanged: 1\n");
  });

  it("INVALID_ARGUMENT naming file and line for a bad file, or a process added through the API; nothing changes", async () => {
    const config = configFile();
    config.write({ a: ["sleep", "100"] });
    const d = await startProcmond([...TIMINGS, "--config", config.path]);
    const a = await d.client.getProcess("a");
    await d.client.addProcess({ name: "mine", args: ["sleep", "100"] });
    writeFileSync(config.path, "processes:\n  - name: a\n    args: [sleep, '100']\n   x: y\n");
    const bad = await d.client.reloadConfig().catch((e: unknown) => e);
    expect(codeOf(bad)).toBe(Code.INVALID_ARGUMENT);
    expect(String(bad)).toContain(`config file ${config.path}:`);
    config.write({ a: ["sleep", "100"], mine: ["sleep", "1"] });
    const takeover = await d.client.reloadConfig().catch((e: unknown) => e);
    expect(codeOf(takeover)).toBe(Code.INVALID_ARGUMENT);
    expect(String(takeover)).toContain('process "mine" was added through the API');
    const { processes } = await d.client.listProcesses();
    expect(processes.map((p) => [p.spec?.name, p.spec?.args])).toEqual([
      ["a", ["sleep", "100"]],
      ["mine", ["sleep", "100"]],
    ]);
    expect((await d.client.getProcess("a")).pid).toBe(a.pid);
  });

  it("FAILED_PRECONDITION without --config; procmonctl reload exits 1 with the server's sentence", async () => {
    const d = await startProcmond(TIMINGS);
    const err = await d.client.reloadConfig().catch((e: unknown) => e);
    expect(codeOf(err)).toBe(Code.FAILED_PRECONDITION);
    expect(String(err)).toContain("no --config file");
    const cli = await run(process.execPath, [PROCMONCTL, "--socket", d.socket, "reload"]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((cli as { code: number }).code).toBe(1);
    expect((cli as { stderr: string }).stderr).toContain("no --config file");
  });

  it("SIGHUP does the same", async () => {
    const config = configFile();
    config.write({ a: ["sleep", "100"] });
    const d = await startProcmond([...TIMINGS, "--config", config.path]);
    config.write({ a: ["sleep", "100"], b: ["sleep", "100"] });
    d.child.kill("SIGHUP");
    await waitFor(async () => (await d.client.listProcesses()).processes.length === 2, 5_000);
  });
});
