// Orphans: the processes a killed daemon left, found by the marker in their
// environment and terminated with their process group. Real processes, each
// started here and ended here by pid.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import {
  findMarkedProcesses,
  INSTANCE_ENV,
  NAME_ENV,
  terminateOrphans,
} from "../../src/adapters/orphans.js";
import { readProcStat } from "../../src/adapters/proc-stat.js";
import type { Logger } from "../../src/core/logger.js";

/** Every child started here, killed (with its group) after each test. */
const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0)) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: Array<{ fields: object; message: string }> } {
  const warnings: Array<{ fields: object; message: string }> = [];
  return {
    warnings,
    debug() {},
    info() {},
    warn(fields, message) {
      warnings.push({ fields, message });
    },
    error() {},
  };
}

/** Starts `sh -c script` as the leader of its own process group, with `env` over ours. */
function startShell(script: string, env: Record<string, string>): ChildProcess & { pid: number } {
  const child = spawn("sh", ["-c", script], {
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "ignore"],
  });
  started.push(child);
  if (child.pid === undefined) throw new Error("sh did not start");
  return child as ChildProcess & { pid: number };
}

/** Resolves with the first line `child` prints. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error("no output within 5 s")), 5_000);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      resolve(text.slice(0, nl));
    });
  });
}

/** Polls `condition` until it holds; rejects after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Alive and not a zombie (an orphan reparented to a container's init may never be reaped). */
function alive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

/** Resolves once `pid` has exec'd into `command` (its environment is then readable as given). */
const execd = (pid: number, command: string) =>
  until(() => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === command;
    } catch {
      return false;
    }
  }, `pid ${pid} running ${command}`);

const markerOf = (instance: string) => ({ [INSTANCE_ENV]: instance });

describe("findMarkedProcesses", () => {
  it("finds exactly the processes carrying this instance's marker", async () => {
    const instance = randomUUID();
    const mine = startShell("exec sleep 100", markerOf(instance));
    const other = startShell("exec sleep 100", markerOf(randomUUID()));
    // Near misses: a longer value, and the marker inside another variable's value.
    const longer = startShell("exec sleep 100", markerOf(`${instance}-2`));
    const inValue = startShell("exec sleep 100", { OTHER: `${INSTANCE_ENV}=${instance}` });
    for (const child of [mine, other, longer, inValue]) await execd(child.pid, "sleep");

    const found = findMarkedProcesses(instance);
    expect(found.map((p) => p.pid)).toEqual([mine.pid]);
    const [stat] = found;
    expect(stat?.pgid).toBe(mine.pid);
    expect(stat?.startTime).toBe(readProcStat(mine.pid)?.startTime);
    expect(stat?.state).not.toBe("Z");
  });

  it("finds nothing for an instance no process carries", () => {
    expect(findMarkedProcesses(randomUUID())).toEqual([]);
  });

  it("finds a marked process's children too (they inherit the environment)", async () => {
    const instance = randomUUID();
    const tree = startShell("sleep 100 & echo $!; wait", markerOf(instance));
    const child = Number(await firstLine(tree));
    await execd(child, "sleep");
    expect(
      findMarkedProcesses(instance)
        .map((p) => p.pid)
        .sort(),
    ).toEqual([tree.pid, child].sort());
  });

  it("leaves out a zombie", async () => {
    const instance = randomUUID();
    // `sleep 0` exits at once and its parent, exec'd into `sleep 100`, never reaps it.
    const parent = startShell("sleep 0 & exec sleep 100", markerOf(instance));
    let zombie = 0;
    await until(() => {
      try {
        const children = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, "utf8");
        zombie = Number(children.trim().split(" ")[0]);
      } catch {
        return false;
      }
      return zombie > 0 && readProcStat(zombie)?.state === "Z";
    }, "a zombie child");
    await execd(parent.pid, "sleep");
    expect(findMarkedProcesses(instance).map((p) => p.pid)).toEqual([parent.pid]);
  });
});

describe("terminateOrphans", () => {
  it("terminates a marked process and its whole process group; others survive", async () => {
    const instance = randomUUID();
    // The grandchild drops the marker, so only the group signal can reach it.
    const tree = startShell(`env -u ${INSTANCE_ENV} sleep 100 & echo $!; wait`, markerOf(instance));
    const grandchild = Number(await firstLine(tree));
    await execd(grandchild, "sleep");
    expect(readProcStat(grandchild)?.pgid).toBe(tree.pid);
    expect(readFileSync(`/proc/${grandchild}/environ`, "latin1")).not.toContain(instance);
    const bystander = startShell("exec sleep 100", markerOf(randomUUID()));
    await execd(bystander.pid, "sleep");

    const logger = recordingLogger();
    const terminated = await terminateOrphans(instance, () => 2_000, logger);

    expect(terminated.map((p) => p.pid)).toEqual([tree.pid]);
    await until(() => !alive(tree.pid) && !alive(grandchild), "the orphan group gone");
    expect(alive(bystander.pid)).toBe(true);
    expect(logger.warnings).toEqual([
      {
        fields: { pids: [tree.pid] },
        message: "terminating processes left by a previous procmond",
      },
    ]);
    expect(findMarkedProcesses(instance)).toEqual([]);
  });

  it("sends SIGKILL after the grace to one that ignores SIGTERM", async () => {
    const instance = randomUUID();
    const stubborn = startShell(`trap "" TERM; exec sleep 100`, markerOf(instance));
    await execd(stubborn.pid, "sleep");
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      stubborn.once("exit", (_code, signal) => resolve(signal)),
    );

    const before = Date.now();
    await terminateOrphans(instance, () => 300, recordingLogger());

    expect(Date.now() - before).toBeGreaterThanOrEqual(290);
    expect(await exited).toBe("SIGKILL");
    expect(alive(stubborn.pid)).toBe(false);
  });

  it("gives each orphan the kill time of its own process, by its PROCMON_NAME", async () => {
    const instance = randomUUID();
    const stubbornAs = (name: string) =>
      startShell(`trap "" TERM; exec sleep 100`, { ...markerOf(instance), [NAME_ENV]: name });
    const quick = stubbornAs("quick");
    const patient = stubbornAs("patient");
    for (const child of [quick, patient]) await execd(child.pid, "sleep");
    const killedAt = (child: ChildProcess) =>
      new Promise<number>((resolve) => child.once("exit", () => resolve(Date.now())));
    const quickGone = killedAt(quick);
    const patientGone = killedAt(patient);
    const names: Array<string | undefined> = [];

    const before = Date.now();
    await terminateOrphans(
      instance,
      (name) => {
        names.push(name);
        return name === "quick" ? 200 : 1_500;
      },
      recordingLogger(),
    );

    expect(new Set(names)).toEqual(new Set(["quick", "patient"]));
    expect((await quickGone) - before).toBeLessThan(1_200);
    expect((await patientGone) - before).toBeGreaterThanOrEqual(1_490);
  });

  it("does not wait the grace for processes that exit on SIGTERM", async () => {
    const instance = randomUUID();
    const polite = startShell("exec sleep 100", markerOf(instance));
    await execd(polite.pid, "sleep");
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      polite.once("exit", (_code, signal) => resolve(signal)),
    );

    const before = Date.now();
    await terminateOrphans(instance, () => 10_000, recordingLogger());

    expect(Date.now() - before).toBeLessThan(5_000);
    expect(await exited).toBe("SIGTERM");
  });

  it("does nothing, and logs nothing, when there are none", async () => {
    const logger = recordingLogger();
    expect(await terminateOrphans(randomUUID(), () => 1_000, logger)).toEqual([]);
    expect(logger.warnings).toEqual([]);
  });
});
