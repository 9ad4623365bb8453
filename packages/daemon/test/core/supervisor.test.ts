import { describe, expect, it } from "vitest";
import { ProcmonError } from "../../src/core/errors.js";
import {
  FAKE_EPOCH_MS,
  flushMicrotasks,
  type Harness,
  makeSupervisor,
  ofKind,
  thrown,
  track,
} from "./fakes.js";

/** Stops `name` and lets its child exit at once. */
async function stopNow(h: Harness, name: string): Promise<void> {
  const child = h.spawner.lastOf(name);
  const stopped = h.sup.stop(name);
  child.kill("SIGTERM");
  await stopped;
}

/**
 * Kills the current child instantly `deaths` times and returns each backoff
 * delay, checking that each restart happens exactly when its delay ends.
 */
function crashLoop(h: Harness, name: string, deaths: number): number[] {
  const delays: number[] = [];
  for (let i = 0; i < deaths; i++) {
    const spawned = h.spawner.children.length;
    h.spawner.lastOf(name).exit(1);
    const delay = ofKind(h.events, "restartScheduled").at(-1)?.delayMs ?? Number.NaN;
    delays.push(delay);
    h.clock.advance(delay - 1);
    expect(h.spawner.children).toHaveLength(spawned);
    h.clock.advance(1);
    expect(h.spawner.children).toHaveLength(spawned + 1);
  }
  return delays;
}

describe("add", () => {
  it("spawns the spec's args and answers with it running", () => {
    const h = makeSupervisor();
    const view = h.sup.add(h.spec("web", { args: ["/bin/web", "--port", "80"] }));
    const child = h.spawner.last();
    expect(child.request.args).toEqual(["/bin/web", "--port", "80"]);
    expect(view).toMatchObject({
      state: "running",
      pid: child.pid,
      startedAtWallMs: FAKE_EPOCH_MS,
      restartCount: 0,
      lastExit: undefined,
      nextRestartAtWallMs: undefined,
      restartDelayMs: 1_000,
    });
  });

  it("reports added, then started with the pid", () => {
    const h = makeSupervisor();
    const spec = h.spec("web");
    h.sup.add(spec);
    expect(h.events).toEqual([
      { process: "web", kind: "added", spec },
      { process: "web", kind: "started", pid: h.spawner.last().pid },
    ]);
  });

  it("refuses a name in use with already_exists and changes nothing", () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const events = [...h.events];
    const err = thrown(() => h.sup.add(h.spec("web", { args: ["/bin/other"] })));
    expect(err).toBeInstanceOf(ProcmonError);
    expect(err).toMatchObject({ code: "already_exists", message: 'process "web" already exists' });
    expect(h.spawner.children).toHaveLength(1);
    expect(h.events).toEqual(events);
    expect(h.sup.get("web")).toMatchObject({
      state: "running",
      pid: child.pid,
      spec: { args: ["/bin/web"] },
    });
  });

  it("passes env and clearEnv through to the spawner", () => {
    const h = makeSupervisor();
    const child = h.add("web", { env: { PORT: "8080", MODE: "prod" }, clearEnv: true });
    expect(child.request.env).toEqual({ PORT: "8080", MODE: "prod" });
    expect(child.request.clearEnv).toBe(true);
  });

  it("passes cwd, uid and gid through to the spawner", () => {
    const h = makeSupervisor();
    const child = h.add("web", { cwd: "/srv/web", uid: 1000, gid: 1001 });
    expect(child.request).toMatchObject({ cwd: "/srv/web", uid: 1000, gid: 1001 });
  });

  it("treats a failed spawn (ENOENT) as an instant death instead of throwing", () => {
    const h = makeSupervisor();
    h.spawner.failNext();
    const view = h.sup.add(h.spec("web"));
    expect(view).toMatchObject({ state: "backoff", pid: 0, restartDelayMs: 2_000 });
    expect(h.events.slice(1)).toEqual([
      { process: "web", kind: "spawnFailed", error: "spawn /bin/web ENOENT" },
      { process: "web", kind: "restartScheduled", delayMs: 1_000, atWallMs: FAKE_EPOCH_MS + 1_000 },
    ]);
    h.clock.advance(999);
    expect(h.spawner.children).toHaveLength(0);
    h.clock.advance(1);
    expect(h.sup.get("web")).toMatchObject({ state: "running", pid: h.spawner.last().pid });
  });

  it("keeps why the spawn failed in the view until a spawn succeeds", () => {
    const h = makeSupervisor();
    h.spawner.failNext();
    const view = h.sup.add(h.spec("web"));
    expect(view.lastSpawnError).toBe("spawn /bin/web ENOENT");
    h.clock.advance(1_000);
    expect(h.sup.get("web")).toMatchObject({ state: "running", lastSpawnError: undefined });
  });

  it("backs off with doubling delays while spawns keep failing", () => {
    const h = makeSupervisor();
    h.spawner.failNext(3);
    h.sup.add(h.spec("web"));
    h.clock.advance(1_000 + 2_000 + 4_000 - 1);
    expect(h.spawner.children).toHaveLength(0);
    h.clock.advance(1);
    expect(h.spawner.children).toHaveLength(1);
    expect(ofKind(h.events, "restartScheduled").map((e) => e.delayMs)).toEqual([
      1_000, 2_000, 4_000,
    ]);
    expect(ofKind(h.events, "spawnFailed")).toHaveLength(3);
  });
});

describe("get and list", () => {
  it("lists every process sorted by name", () => {
    const h = makeSupervisor();
    h.add("web");
    h.add("api");
    h.add("db");
    expect(h.sup.list().map((v) => v.spec.name)).toEqual(["api", "db", "web"]);
  });

  it("refuses an unknown name with not_found", () => {
    const h = makeSupervisor();
    const err = thrown(() => h.sup.get("nope"));
    expect(err).toBeInstanceOf(ProcmonError);
    expect(err).toMatchObject({ code: "not_found", message: 'process "nope" does not exist' });
  });
});

describe("remove", () => {
  it("SIGTERMs the group and answers only once the process has exited", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const removing = h.sup.remove("web");
    const tracked = track(removing);
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping")).toEqual([
      { process: "web", kind: "stopping", pid: child.pid, signal: "SIGTERM", reason: "remove" },
    ]);
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    expect(h.sup.get("web").state).toBe("stopping");
    child.kill("SIGTERM");
    expect(await removing).toMatchObject({
      state: "stopped",
      pid: 0,
      lastExit: { code: null, signal: "SIGTERM" },
    });
  });

  it("frees the name and reports removed after the exit", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const removing = h.sup.remove("web");
    child.kill("SIGTERM");
    await removing;
    expect(h.events.at(-1)).toEqual({ process: "web", kind: "removed" });
    expect(h.sup.list()).toEqual([]);
    expect(h.sup.add(h.spec("web")).state).toBe("running");
  });

  it("forgets a stopped process at once", async () => {
    const h = makeSupervisor();
    h.add("web");
    await stopNow(h, "web");
    const view = await h.sup.remove("web");
    expect(view.state).toBe("stopped");
    expect(h.sup.list()).toEqual([]);
    expect(h.events.at(-1)).toEqual({ process: "web", kind: "removed" });
  });

  it("refuses an unknown name with not_found", async () => {
    const h = makeSupervisor();
    const removing = h.sup.remove("nope");
    await expect(removing).rejects.toBeInstanceOf(ProcmonError);
    await expect(removing).rejects.toMatchObject({
      code: "not_found",
      message: 'process "nope" does not exist',
    });
  });

  it("during backoff cancels the restart and nothing is spawned later", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    expect(h.clock.pendingTimers()).toBe(1);
    const view = await h.sup.remove("web");
    expect(view).toMatchObject({ state: "stopped", pid: 0 });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(1);
    expect(h.sup.list()).toEqual([]);
    expect(h.events.slice(-2)).toEqual([
      { process: "web", kind: "stopped", reason: "remove" },
      { process: "web", kind: "removed" },
    ]);
  });

  it("while stopping sends no second SIGTERM and forgets it after the exit", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const stopping = h.sup.stop("web");
    const removing = h.sup.remove("web");
    expect(child.signals).toEqual(["SIGTERM"]);
    child.kill("SIGTERM");
    await Promise.all([stopping, removing]);
    expect(h.sup.list()).toEqual([]);
    expect(ofKind(h.events, "removed")).toHaveLength(1);
  });

  it("while stopping for a restart forgets it instead of starting it again", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const restarting = h.sup.restart("web");
    const removing = h.sup.remove("web");
    child.kill("SIGTERM");
    await Promise.all([restarting, removing]);
    expect(h.spawner.children).toHaveLength(1);
    expect(h.sup.list()).toEqual([]);
  });
});

describe("start", () => {
  it("starts a stopped process with a new pid", async () => {
    const h = makeSupervisor();
    const first = h.add("web");
    await stopNow(h, "web");
    const view = await h.sup.start("web");
    const second = h.spawner.last();
    expect(second.pid).not.toBe(first.pid);
    expect(view).toMatchObject({ state: "running", pid: second.pid });
    expect(h.events.at(-1)).toEqual({ process: "web", kind: "started", pid: second.pid });
  });

  it("leaves a running process alone: same pid, no spawn, no event", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const events = h.events.length;
    const view = await h.sup.start("web");
    expect(view).toMatchObject({ state: "running", pid: child.pid });
    expect(h.spawner.children).toHaveLength(1);
    expect(h.events).toHaveLength(events);
    expect(child.signals).toEqual([]);
  });

  it("refuses an unknown name with not_found", async () => {
    const h = makeSupervisor();
    await expect(h.sup.start("nope")).rejects.toMatchObject({ code: "not_found" });
  });

  it("during backoff starts it now and cancels the scheduled restart", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    const view = await h.sup.start("web");
    expect(h.spawner.children).toHaveLength(2);
    expect(view).toMatchObject({ state: "running", pid: h.spawner.last().pid });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(2);
  });

  it("during stopping starts it again once it has exited", async () => {
    const h = makeSupervisor();
    const first = h.add("web");
    const stopping = h.sup.stop("web");
    const starting = h.sup.start("web");
    const tracked = track(starting);
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    expect(h.spawner.children).toHaveLength(1);
    first.kill("SIGTERM");
    const view = await starting;
    const second = h.spawner.last();
    expect(second.pid).not.toBe(first.pid);
    expect(view).toMatchObject({ state: "running", pid: second.pid });
    expect((await stopping).state).toBe("running");
  });

  it("refuses a process being removed with failed_precondition", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const removing = h.sup.remove("web");
    await expect(h.sup.start("web")).rejects.toMatchObject({
      code: "failed_precondition",
      message: 'process "web" is being removed',
    });
    child.kill("SIGTERM");
    await removing;
    expect(h.spawner.children).toHaveLength(1);
  });
});

describe("stop", () => {
  it("natural termination: SIGTERM only, no SIGKILL, no timer left", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const stopping = h.sup.stop("web");
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping").at(-1)).toMatchObject({ reason: "stop" });
    h.clock.advance(4_999);
    child.exit(0);
    expect(await stopping).toMatchObject({
      state: "stopped",
      pid: 0,
      lastExit: { code: 0, signal: null, uptimeMs: 4_999 },
    });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(60_000);
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "killed")).toEqual([]);
  });

  it("forced kill: SIGKILL at exactly kill_time, reported, then stopped", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const stopping = h.sup.stop("web");
    const tracked = track(stopping);
    h.clock.advance(4_999);
    expect(child.signals).toEqual(["SIGTERM"]);
    h.clock.advance(1);
    expect(child.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(ofKind(h.events, "killed")).toEqual([
      { process: "web", kind: "killed", pid: child.pid, signal: "SIGKILL" },
    ]);
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    child.kill("SIGKILL");
    expect(await stopping).toMatchObject({
      state: "stopped",
      lastExit: { code: null, signal: "SIGKILL", uptimeMs: 5_000 },
    });
  });

  it("refuses an unknown name with not_found", async () => {
    const h = makeSupervisor();
    await expect(h.sup.stop("nope")).rejects.toMatchObject({ code: "not_found" });
  });

  it("of a stopped process is a no-op", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    await stopNow(h, "web");
    const events = h.events.length;
    const view = await h.sup.stop("web");
    expect(view).toMatchObject({ state: "stopped", pid: 0 });
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(h.events).toHaveLength(events);
  });

  it("keeps the process stopped: the monitor never restarts it", async () => {
    const h = makeSupervisor();
    h.add("web");
    await stopNow(h, "web");
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(1);
    expect(h.sup.get("web").state).toBe("stopped");
  });

  it("during backoff cancels the restart", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    const view = await h.sup.stop("web");
    expect(view).toMatchObject({ state: "stopped", nextRestartAtWallMs: undefined });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(1);
  });

  it("during backoff reports the change of state as stopped, with its reason", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    expect(h.events.at(-1)).toMatchObject({ kind: "restartScheduled" });
    await h.sup.stop("web");
    expect(h.events.at(-1)).toEqual({ process: "web", kind: "stopped", reason: "stop" });
  });

  it("while stopping for a restart keeps it stopped, with one SIGTERM", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const restarting = h.sup.restart("web");
    const stopping = h.sup.stop("web");
    child.kill("SIGTERM");
    const [restarted, stopped] = await Promise.all([restarting, stopping]);
    expect(stopped.state).toBe("stopped");
    expect(restarted.state).toBe("stopped");
    expect(h.spawner.children).toHaveLength(1);
    expect(child.signals).toEqual(["SIGTERM"]);
  });

  it("twice while stopping sends one SIGTERM and both answer after the exit", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const first = h.sup.stop("web");
    const second = h.sup.stop("web");
    const tracked = track(second);
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    child.kill("SIGTERM");
    expect((await first).state).toBe("stopped");
    expect((await second).state).toBe("stopped");
    expect(child.signals).toEqual(["SIGTERM"]);
  });
});

describe("restart", () => {
  it("SIGTERMs the running process and answers with a new one running", async () => {
    const h = makeSupervisor();
    const first = h.add("web");
    const restarting = h.sup.restart("web");
    expect(first.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping").at(-1)).toMatchObject({ reason: "restart" });
    expect(h.spawner.children).toHaveLength(1);
    first.kill("SIGTERM");
    const view = await restarting;
    expect(h.spawner.children).toHaveLength(2);
    expect(view).toMatchObject({ state: "running", pid: h.spawner.last().pid });
  });

  it("never lands in backoff, even when the run was shorter than threshold", async () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(10);
    const restarting = h.sup.restart("web");
    first.kill("SIGTERM");
    const view = await restarting;
    expect(view).toMatchObject({ state: "running", restartDelayMs: 1_000 });
    expect(ofKind(h.events, "restartScheduled")).toEqual([]);
    expect(ofKind(h.events, "exited")[0]).toMatchObject({ instant: false });
    expect(h.clock.pendingTimers()).toBe(0);
  });

  it("during backoff starts it now without doubling the delay", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    expect(h.sup.get("web").restartDelayMs).toBe(2_000);
    const view = await h.sup.restart("web");
    expect(h.spawner.children).toHaveLength(2);
    expect(view).toMatchObject({ state: "running", pid: h.spawner.last().pid });
    expect(view.restartDelayMs).toBe(2_000);
    expect(h.clock.pendingTimers()).toBe(0);
    expect(ofKind(h.events, "restartScheduled")).toHaveLength(1);
  });

  it("of a stopped process starts it", async () => {
    const h = makeSupervisor();
    h.add("web");
    await stopNow(h, "web");
    const view = await h.sup.restart("web");
    expect(view).toMatchObject({ state: "running", pid: h.spawner.last().pid });
    expect(h.spawner.children).toHaveLength(2);
  });

  it("refuses an unknown name with not_found", async () => {
    const h = makeSupervisor();
    await expect(h.sup.restart("nope")).rejects.toMatchObject({ code: "not_found" });
  });

  it("cancels the old kill timer: the new child is never SIGKILLed by it", async () => {
    const h = makeSupervisor();
    const first = h.add("web");
    const restarting = h.sup.restart("web");
    h.clock.advance(100);
    first.kill("SIGTERM");
    await restarting;
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(60_000);
    expect(h.spawner.last().signals).toEqual([]);
    expect(ofKind(h.events, "killed")).toEqual([]);
  });
});

describe("output", () => {
  it("reports a complete stdout line with the process name", () => {
    const h = makeSupervisor();
    h.add("web").output("stdout", "listening on :80");
    expect(ofKind(h.events, "output")).toEqual([
      {
        process: "web",
        kind: "output",
        stream: "stdout",
        line: "listening on :80",
        partial: false,
      },
    ]);
  });

  it("reports a stderr line as stderr", () => {
    const h = makeSupervisor();
    h.add("web").output("stderr", "warning: low disk");
    expect(ofKind(h.events, "output")).toEqual([
      {
        process: "web",
        kind: "output",
        stream: "stderr",
        line: "warning: low disk",
        partial: false,
      },
    ]);
  });

  it("carries the partial flag of a split line", () => {
    const h = makeSupervisor();
    h.add("web").output("stdout", "xxxx", true);
    expect(ofKind(h.events, "output")[0]).toMatchObject({ line: "xxxx", partial: true });
  });

  it("drops late output from a removed process's child", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const removing = h.sup.remove("web");
    child.kill("SIGTERM");
    await removing;
    h.add("web");
    child.output("stdout", "late");
    expect(ofKind(h.events, "output")).toEqual([]);
  });
});

describe("automatic restart", () => {
  it("restarts a long-lived process at once, counting the restart", () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(1_000);
    first.exit(1);
    const second = h.spawner.last();
    expect(second.pid).not.toBe(first.pid);
    expect(h.sup.get("web")).toMatchObject({ state: "running", pid: second.pid, restartCount: 1 });
    expect(ofKind(h.events, "exited")[0]).toMatchObject({ instant: false });
    expect(ofKind(h.events, "restartScheduled")).toEqual([]);
  });

  it("resets the delay to min_restart_delay after a long run", () => {
    const h = makeSupervisor();
    h.add("web");
    crashLoop(h, "web", 2);
    expect(h.sup.get("web").restartDelayMs).toBe(4_000);
    h.clock.advance(1_000);
    h.spawner.last().exit(0);
    expect(h.sup.get("web")).toMatchObject({ state: "running", restartDelayMs: 1_000 });
  });

  it("resets the delay after a long run ended by a requested restart", async () => {
    const h = makeSupervisor();
    h.add("web");
    crashLoop(h, "web", 3);
    h.clock.advance(1_000);
    const restarting = h.sup.restart("web");
    h.spawner.last().kill("SIGTERM");
    expect(await restarting).toMatchObject({ state: "running", restartDelayMs: 1_000 });
    h.spawner.last().exit(1);
    expect(ofKind(h.events, "restartScheduled").at(-1)).toMatchObject({ delayMs: 1_000 });
  });

  it("keeps the delay after a short run ended by a requested restart", async () => {
    const h = makeSupervisor();
    h.add("web");
    crashLoop(h, "web", 3);
    h.clock.advance(999);
    const restarting = h.sup.restart("web");
    h.spawner.last().kill("SIGTERM");
    expect(await restarting).toMatchObject({ state: "running", restartDelayMs: 8_000 });
  });

  it("counts a run one millisecond short of threshold as an instant death", () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(999);
    first.exit(1);
    expect(h.sup.get("web").state).toBe("backoff");
    expect(ofKind(h.events, "exited")[0]).toMatchObject({ instant: true });
  });

  it("waits exactly min_restart_delay after the first instant death", () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    expect(h.sup.get("web")).toMatchObject({ state: "backoff", pid: 0 });
    h.clock.advance(999);
    expect(h.spawner.children).toHaveLength(1);
    h.clock.advance(1);
    expect(h.spawner.children).toHaveLength(2);
    expect(h.sup.get("web")).toMatchObject({ state: "running", pid: h.spawner.last().pid });
  });

  it("doubles the delay after each instant death: 1s, 2s, 4s, 8s...", () => {
    const h = makeSupervisor();
    h.add("web");
    expect(crashLoop(h, "web", 5)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it("caps the delay at max_restart_delay", () => {
    const h = makeSupervisor({ minRestartDelayMs: 1_000, maxRestartDelayMs: 5_000 });
    h.add("web");
    expect(crashLoop(h, "web", 5)).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
  });

  it("caps the default delay at one hour", () => {
    const h = makeSupervisor();
    h.add("web");
    const delays = crashLoop(h, "web", 14);
    expect(delays.slice(-3)).toEqual([2_048_000, 3_600_000, 3_600_000]);
  });

  it("counts only automatic restarts in restart_count", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    h.clock.advance(1_000);
    expect(h.sup.get("web").restartCount).toBe(1);
    h.clock.advance(1_000);
    h.spawner.last().exit(0);
    expect(h.sup.get("web").restartCount).toBe(2);
    const restarting = h.sup.restart("web");
    h.spawner.last().kill("SIGTERM");
    await restarting;
    await stopNow(h, "web");
    await h.sup.start("web");
    expect(h.sup.get("web").restartCount).toBe(2);
  });

  it("reports next_restart_at and restart_delay while in backoff", () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(250);
    first.exit(1);
    expect(h.sup.get("web")).toMatchObject({
      state: "backoff",
      pid: 0,
      nextRestartAtWallMs: FAKE_EPOCH_MS + 1_250,
      restartDelayMs: 2_000,
    });
    h.clock.advance(1_000);
    expect(h.sup.get("web")).toMatchObject({
      state: "running",
      nextRestartAtWallMs: undefined,
      startedAtWallMs: FAKE_EPOCH_MS + 1_250,
    });
  });

  it("reports a crash as exited{instant}, restartScheduled{delay}, started", () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(100);
    first.exit(3);
    h.clock.advance(1_000);
    expect(h.events.slice(2)).toEqual([
      {
        process: "web",
        kind: "exited",
        pid: first.pid,
        status: { code: 3, signal: null, uptimeMs: 100 },
        instant: true,
      },
      { process: "web", kind: "restartScheduled", delayMs: 1_000, atWallMs: FAKE_EPOCH_MS + 1_100 },
      { process: "web", kind: "started", pid: h.spawner.last().pid },
    ]);
  });

  it("records how the last run ended", () => {
    const h = makeSupervisor();
    const first = h.add("web");
    h.clock.advance(2_000);
    first.kill("SIGSEGV");
    expect(h.sup.get("web").lastExit).toEqual({ code: null, signal: "SIGSEGV", uptimeMs: 2_000 });
  });
});

describe("per-process policy", () => {
  it("respects a per-process threshold", () => {
    const h = makeSupervisor();
    const slow = h.add("slow", { thresholdMs: 5_000 });
    const web = h.add("web");
    h.clock.advance(2_000);
    slow.exit(1);
    web.exit(1);
    expect(h.sup.get("slow").state).toBe("backoff");
    expect(h.sup.get("web").state).toBe("running");
  });

  it("respects a per-process kill_time", () => {
    const h = makeSupervisor();
    const quick = h.add("quick", { killTimeMs: 200 });
    const web = h.add("web");
    void h.sup.stop("quick");
    void h.sup.stop("web");
    h.clock.advance(199);
    expect(quick.signals).toEqual(["SIGTERM"]);
    h.clock.advance(1);
    expect(quick.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(web.signals).toEqual(["SIGTERM"]);
  });

  it("respects per-process min and max restart delays", () => {
    const h = makeSupervisor();
    h.add("tight", { minRestartDelayMs: 50, maxRestartDelayMs: 120 });
    h.add("web");
    expect(crashLoop(h, "tight", 4)).toEqual([50, 100, 120, 120]);
    expect(h.sup.get("web").restartDelayMs).toBe(1_000);
  });
});

describe("restartAll", () => {
  it("restarts running and backoff processes at once; stopped ones stay stopped", async () => {
    const h = makeSupervisor();
    const a = h.add("a");
    const b = h.add("b");
    h.add("c").exit(1);
    h.add("d");
    await stopNow(h, "d");
    const spawned = h.spawner.children.length;
    const restarting = h.sup.restartAll();
    const tracked = track(restarting);
    // Both SIGTERMs are out before either process has exited.
    expect(a.signals).toEqual(["SIGTERM"]);
    expect(b.signals).toEqual(["SIGTERM"]);
    expect(h.spawner.children).toHaveLength(spawned + 1);
    expect(h.sup.get("c").state).toBe("running");
    a.kill("SIGTERM");
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    b.kill("SIGTERM");
    const views = await restarting;
    expect(views.map((v) => [v.spec.name, v.state])).toEqual([
      ["a", "running"],
      ["b", "running"],
      ["c", "running"],
      ["d", "stopped"],
    ]);
    expect(h.spawner.children).toHaveLength(spawned + 3);
  });
});

describe("shutdown", () => {
  it("SIGTERMs every running process at once and resolves when all have exited", async () => {
    const h = makeSupervisor();
    const a = h.add("a");
    const b = h.add("b");
    const shutting = h.sup.shutdown();
    const tracked = track(shutting);
    expect(a.signals).toEqual(["SIGTERM"]);
    expect(b.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping").map((e) => [e.process, e.reason])).toEqual([
      ["a", "shutdown"],
      ["b", "shutdown"],
    ]);
    a.exit(0);
    await flushMicrotasks();
    expect(tracked.settled).toBe(false);
    b.exit(0);
    await shutting;
    expect(h.sup.list().map((v) => v.state)).toEqual(["stopped", "stopped"]);
    expect(h.clock.pendingTimers()).toBe(0);
    expect(h.spawner.children).toHaveLength(2);
  });

  it("cancels pending restarts, which never happen later", async () => {
    const h = makeSupervisor();
    h.add("web").exit(1);
    await h.sup.shutdown();
    expect(h.sup.get("web").state).toBe("stopped");
    expect(h.events.at(-1)).toEqual({ process: "web", kind: "stopped", reason: "shutdown" });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(1);
  });

  it("keeps a process that was being restarted stopped", async () => {
    const h = makeSupervisor();
    const child = h.add("web");
    const restarting = h.sup.restart("web");
    const shutting = h.sup.shutdown();
    child.kill("SIGTERM");
    await Promise.all([restarting, shutting]);
    expect(h.sup.get("web").state).toBe("stopped");
    expect(h.spawner.children).toHaveLength(1);
  });

  it("refuses new adds with unavailable", async () => {
    const h = makeSupervisor();
    await h.sup.shutdown();
    const err = thrown(() => h.sup.add(h.spec("web")));
    expect(err).toBeInstanceOf(ProcmonError);
    expect(err).toMatchObject({ code: "unavailable" });
    expect(h.spawner.children).toHaveLength(0);
    expect(h.sup.list()).toEqual([]);
  });

  it("refuses start, restart and restartAll with unavailable", async () => {
    const h = makeSupervisor();
    h.add("web");
    const shutting = h.sup.shutdown();
    h.spawner.last().exit(0);
    await shutting;
    await expect(h.sup.start("web")).rejects.toMatchObject({ code: "unavailable" });
    await expect(h.sup.restart("web")).rejects.toMatchObject({ code: "unavailable" });
    await expect(h.sup.restartAll()).rejects.toMatchObject({ code: "unavailable" });
    expect(h.spawner.children).toHaveLength(1);
  });
});

describe("signals", () => {
  it("are sent through Child.signal, the process group, never after the child exited", async () => {
    const h = makeSupervisor({ killTimeMs: 100 });
    // Exits by itself before kill_time.
    const a = h.add("a");
    const stoppingA = h.sup.stop("a");
    a.exit(0);
    await stoppingA;
    // Killed, then exits.
    const b = h.add("b");
    const stoppingB = h.sup.stop("b");
    h.clock.advance(100);
    b.kill("SIGKILL");
    await stoppingB;
    // Dies by itself, then is stopped and removed while in backoff.
    const c = h.add("c");
    c.exit(1);
    await h.sup.stop("c");
    await h.sup.remove("c");
    // Restarted, removed, and the survivors shut down.
    const d = h.add("d");
    const restarting = h.sup.restart("d");
    d.exit(0);
    await restarting;
    const removing = h.sup.remove("d");
    h.spawner.last().exit(0);
    await removing;
    await h.sup.stop("a");
    await h.sup.remove("a");
    await h.sup.shutdown();
    h.clock.advance(3_600_000);

    expect(a.signals).toEqual(["SIGTERM"]);
    expect(b.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(c.signals).toEqual([]);
    expect(h.spawner.children.flatMap((child) => child.signalsAfterExit)).toEqual([]);
  });
});
