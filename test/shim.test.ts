// procmond with procmon-shim, and without it: what the shim reports reaches
// the API, the fallback is loud, and the socket is served before a large
// registry starts.
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Spawner, State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import { runCtl } from "./helpers/cli.js";
import {
  cleanupAll,
  makeTempDir,
  ROOT,
  runProcmond,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

const SHIM = join(ROOT, "packages/daemon/native/build/procmon-shim");
const built = existsSync(SHIM);
if (!built) console.log("skipped: procmon-shim is not built (no C compiler at install)");

describe.runIf(built)("with procmon-shim", () => {
  it("a failure in the child names its errno and the step (a script whose interpreter is missing)", async () => {
    const d = await startProcmond(["--spawner", "shim", "--min-restart-delay", "10s"]);
    const script = join(d.dir, "orphaned.sh");
    writeFileSync(script, "#!/nonexistent/interpreter\n");
    chmodSync(script, 0o755);
    const p = await d.client.addProcess({ name: "orphaned", args: [script] });
    expect(p.state).toBe(State.BACKOFF);
    expect(p.lastSpawnError).toBe(
      `cannot spawn ${JSON.stringify(script)}: ENOENT: no such file or directory (execve)`,
    );
  });

  it("a stop ends the whole tree, a setsid double fork included", async () => {
    const d = await startProcmond(["--spawner", "shim", "--kill-time", "2s"]);
    const marker = join(d.dir, "escaped.pid");
    const p = await d.client.addProcess({
      name: "tree",
      args: ["sh", "-c", `setsid sh -c 'echo $$ > ${marker}; exec sleep 100' & exec sleep 100`],
    });
    await waitFor(
      () => existsSync(marker) && Number.parseInt(readFileSync(marker, "utf8"), 10) > 0,
    );
    const escaped = Number.parseInt(readFileSync(marker, "utf8"), 10);
    expect(escaped).not.toBe(p.pid);
    await d.client.stopProcess("tree");
    await waitFor(() => {
      try {
        process.kill(escaped, 0);
        return false;
      } catch {
        return true;
      }
    }, 5_000);
  });

  it("serves the socket before a registry of 300 processes is up, and clients watch it come up", async () => {
    const dir = makeTempDir("procmon-big-");
    const config = join(dir, "procmon.yaml");
    const lines = ["processes:"];
    for (let i = 0; i < 300; i++) lines.push(`  - name: p${i}`, "    args: [sleep, '1000']");
    writeFileSync(config, `${lines.join("\n")}\n`);
    const d = await startProcmond(
      ["--spawner", "shim", "--config", config, "--kill-time", "1s"],
      {},
      {
        readyWhen: "answers",
        timeoutMs: 20_000,
      },
    );
    const watch = await openWatch(d.socket, { afterSeq: 0n });
    // While they come up, none is shown stopped (stopped on request): those not
    // started yet are in backoff, their start due.
    const early = await d.client.listProcesses();
    expect(early.processes).toHaveLength(300);
    expect(early.processes.filter((p) => p.state === State.STOPPED)).toEqual([]);
    await watch.waitForEvent(
      () => watch.events.filter((e) => e.kind.case === "started").length === 300,
      30_000,
    );
    const { processes } = await d.client.listProcesses();
    expect(processes.filter((p) => p.state === State.RUNNING)).toHaveLength(300);
    await d.waitForLog((l) => l.msg === "registry started" && l.processes === 300, 10_000);
  }, 60_000);
});

describe("without procmon-shim", () => {
  it("falls back to spawning from Node, says so at warn and in procmonctl version", async () => {
    const d = await startProcmond([], { PROCMON_SHIM: "/nonexistent/procmon-shim" });
    await d.waitForLog((l) => l.level === 40 && /procmon-shim is not built/.test(String(l.msg)));
    expect((await d.client.getDaemonInfo()).spawner).toBe(Spawner.NODE);
    const ctl = await runCtl(["version"], { socket: d.socket });
    expect(ctl.stdout).toMatch(/children spawned from Node: procmon-shim not built or not chosen/);
    expect((await d.client.addProcess({ name: "a", args: ["sleep", "100"] })).state).toBe(
      State.RUNNING,
    );
  });

  it("refuses to start when the shim is asked for and not built", async () => {
    const run = await runProcmond(["--spawner", "shim"], {
      PROCMON_SHIM: "/nonexistent/procmon-shim",
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("procmon-shim is not built at /nonexistent/procmon-shim");
  });
});
