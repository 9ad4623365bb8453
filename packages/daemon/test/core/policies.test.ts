// v1.1 §B's end policies through the supervisor, on a fake clock: restart
// policies, giving up, and the stop signal.
import { describe, expect, it } from "vitest";
import { flushMicrotasks, makeSupervisor, ofKind } from "./fakes.js";

const kinds = (events: ReadonlyArray<{ kind: string }>) => events.map((e) => e.kind);

describe("restart: never (a one-shot task)", () => {
  it("runs once: after its exit it is exited, nothing is scheduled, and StartProcess runs it again", async () => {
    const h = makeSupervisor();
    const child = h.add("migrate", { restart: "never" });
    h.clock.advance(5_000);
    child.exit(0);
    expect(kinds(h.events)).toEqual(["added", "started", "exited"]);
    expect(h.sup.get("migrate")).toMatchObject({ state: "exited", pid: 0, restartCount: 0 });
    expect(h.clock.pendingTimers()).toBe(0);
    h.clock.advance(3_600_000);
    expect(h.spawner.children).toHaveLength(1);
    const again = await h.sup.start("migrate");
    expect(again).toMatchObject({ state: "running", pid: 1002, restartCount: 0 });
  });

  it("also when it failed, or died instantly", () => {
    const h = makeSupervisor();
    h.add("once", { restart: "never" }).exit(1);
    expect(h.sup.get("once").state).toBe("exited");
    expect(ofKind(h.events, "restartScheduled")).toEqual([]);
  });
});

describe("restart: on-failure", () => {
  it("a success code leaves it exited; any other code, or a signal, restarts it by the rule", () => {
    const h = makeSupervisor();
    h.add("job", { restart: "on-failure", successExitCodes: [0, 2] });
    h.clock.advance(5_000);
    h.spawner.last().exit(1);
    expect(h.sup.get("job")).toMatchObject({ state: "running", restartCount: 1 });
    h.clock.advance(5_000);
    h.spawner.last().kill("SIGSEGV");
    expect(h.sup.get("job")).toMatchObject({ state: "running", restartCount: 2 });
    h.spawner.last().exit(1);
    expect(h.sup.get("job").state).toBe("backoff");
    h.clock.advance(1_000);
    h.clock.advance(5_000);
    h.spawner.last().exit(2);
    expect(h.sup.get("job")).toMatchObject({ state: "exited", restartCount: 3 });
  });
});

describe("max_instant_deaths: giving up", () => {
  it("gives up after that many instant deaths in a row: gave_up, failed, nothing scheduled", () => {
    const h = makeSupervisor();
    h.add("broken", { maxInstantDeaths: 3 });
    for (let i = 0; i < 2; i++) {
      h.spawner.last().exit(1);
      expect(h.sup.get("broken").state).toBe("backoff");
      // The restart, when its delay ends; then it dies at once again.
      h.clock.advance(ofKind(h.events, "restartScheduled").at(-1)?.delayMs ?? 0);
    }
    h.spawner.last().exit(1);
    expect(ofKind(h.events, "gaveUp")).toEqual([
      { kind: "gaveUp", process: "broken", instantDeaths: 3 },
    ]);
    expect(h.sup.get("broken")).toMatchObject({ state: "failed", pid: 0 });
    expect(h.clock.pendingTimers()).toBe(0);
  });

  it("a long run resets the count; StartProcess resets it too", async () => {
    const h = makeSupervisor();
    h.add("flaky", { maxInstantDeaths: 2 });
    h.spawner.last().exit(1);
    h.clock.advance(1_000);
    h.clock.advance(5_000);
    h.spawner.last().exit(1); // a long run: the count starts again
    expect(h.sup.get("flaky").state).toBe("running");
    h.spawner.last().exit(1);
    h.clock.advance(1_000);
    h.spawner.last().exit(1);
    expect(h.sup.get("flaky").state).toBe("failed");
    await h.sup.start("flaky");
    h.spawner.last().exit(1);
    expect(h.sup.get("flaky").state).toBe("backoff");
  });

  it("failed spawns count as instant deaths", () => {
    const h = makeSupervisor();
    h.spawner.failNext(2);
    h.sup.add(h.spec("missing", { maxInstantDeaths: 2 }));
    h.clock.advance(1_000);
    expect(kinds(h.events)).toEqual([
      "added",
      "spawnFailed",
      "restartScheduled",
      "spawnFailed",
      "gaveUp",
    ]);
    expect(h.sup.get("missing").state).toBe("failed");
  });
});

describe("stop, remove, restart, shutdown of an exited or failed process", () => {
  it("a stop makes it stopped, with a stopped event; a remove forgets it", async () => {
    const h = makeSupervisor();
    h.add("a", { restart: "never" }).exit(0);
    await h.sup.stop("a");
    expect(ofKind(h.events, "stopped")).toEqual([
      { kind: "stopped", process: "a", reason: "stop" },
    ]);
    expect(h.sup.get("a")).toMatchObject({ state: "stopped", intent: "stopped" });
    h.add("b", { maxInstantDeaths: 1 }).exit(1);
    expect(h.sup.get("b").state).toBe("failed");
    await h.sup.remove("b");
    expect(h.sup.has("b")).toBe(false);
  });

  it("RestartAll leaves them as they are; a shutdown too", async () => {
    const h = makeSupervisor();
    h.add("done", { restart: "never" }).exit(0);
    await h.sup.restartAll();
    expect(h.sup.get("done").state).toBe("exited");
    await h.sup.shutdown();
    expect(h.sup.get("done").state).toBe("exited");
    expect(ofKind(h.events, "stopped")).toEqual([]);
  });

  it("RestartProcess runs it again at once", async () => {
    const h = makeSupervisor();
    h.add("done", { restart: "never" }).exit(0);
    expect(await h.sup.restart("done")).toMatchObject({ state: "running", pid: 1002 });
  });
});

describe("stop_signal", () => {
  it("a stop begins with it, and SIGKILL follows after kill_time", async () => {
    const h = makeSupervisor({ killTimeMs: 2_000 });
    const child = h.add("nginx", { stopSignal: "SIGQUIT" });
    const stopped = h.sup.stop("nginx");
    expect(child.signals).toEqual(["SIGQUIT"]);
    expect(ofKind(h.events, "stopping")[0]).toMatchObject({ signal: "SIGQUIT", reason: "stop" });
    h.clock.advance(2_000);
    expect(child.signals).toEqual(["SIGQUIT", "SIGKILL"]);
    child.kill("SIGKILL");
    await stopped;
    await flushMicrotasks();
    expect(h.sup.get("nginx").state).toBe("stopped");
  });
});
