// A spawner that answers later (the shim, in another process): the process is
// starting meanwhile, shown as what it left, and calls wait for the answer.
import { describe, expect, it } from "vitest";
import { FAKE_EPOCH_MS, flushMicrotasks, makeSupervisor, ofKind, track } from "./fakes.js";

function later() {
  const h = makeSupervisor();
  h.spawner.answerLater = true;
  return h;
}

describe("a spawn that is answered later", () => {
  it("shows the process as it was, with no event, until the answer; then started", () => {
    const h = later();
    const view = h.sup.add(h.spec("web"));
    expect(view).toMatchObject({ state: "stopped", pid: 0 });
    expect(h.events.map((e) => e.kind)).toEqual(["added"]);
    const child = h.spawner.answer();
    expect(h.events.at(-1)).toEqual({
      process: "web",
      kind: "started",
      pid: (child as { pid: number }).pid,
    });
    expect(h.sup.get("web")).toMatchObject({ state: "running", startedAtWallMs: FAKE_EPOCH_MS });
  });

  it("a failure answered later is an instant death: spawnFailed, then backoff", () => {
    const h = later();
    h.sup.add(h.spec("web"));
    h.spawner.failNext();
    h.spawner.answer();
    expect(h.events.slice(1).map((e) => e.kind)).toEqual(["spawnFailed", "restartScheduled"]);
    expect(h.sup.get("web")).toMatchObject({
      state: "backoff",
      lastSpawnError: "spawn /bin/web ENOENT",
    });
    // The backoff's restart is asked for, and shows as backoff until its answer.
    h.clock.advance(1_000);
    expect(h.spawner.pending).toHaveLength(1);
    expect(h.sup.get("web").state).toBe("backoff");
    h.spawner.answer();
    expect(h.sup.get("web")).toMatchObject({ state: "running", restartCount: 1 });
  });

  it("a stop while starting waits for the answer, then stops what started", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    const stopping = track(h.sup.stop("web"));
    await flushMicrotasks();
    expect(stopping.settled).toBe(false);
    const child = h.spawner.answer();
    await flushMicrotasks();
    expect(h.sup.get("web").state).toBe("stopping");
    (child as { kill(s: string): void }).kill("SIGTERM");
    await flushMicrotasks();
    expect(stopping.value).toMatchObject({ state: "stopped", intent: "stopped" });
    expect(h.events.map((e) => e.kind)).toEqual(["added", "started", "stopping", "exited"]);
  });

  it("a remove while starting forgets it once what started has exited", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    const removing = track(h.sup.remove("web"));
    const child = h.spawner.answer();
    await flushMicrotasks();
    (child as { kill(s: string): void }).kill("SIGTERM");
    await flushMicrotasks();
    expect(removing.settled).toBe(true);
    expect(h.sup.list()).toEqual([]);
    expect(ofKind(h.events, "removed")).toHaveLength(1);
  });

  it("a restart or a start while starting answers with what the spawn came to", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    const restarting = track(h.sup.restart("web"));
    const starting = track(h.sup.start("web"));
    h.spawner.answer();
    await flushMicrotasks();
    expect(restarting.value).toMatchObject({ state: "running" });
    expect(starting.value).toMatchObject({ state: "running" });
    expect(h.spawner.children).toHaveLength(1);
    expect(h.spawner.pending).toHaveLength(0);
  });

  it("shutdown while starting stops what started", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    const down = track(h.sup.shutdown());
    const child = h.spawner.answer();
    await flushMicrotasks();
    (child as { kill(s: string): void }).kill("SIGTERM");
    await flushMicrotasks();
    expect(down.settled).toBe(true);
    expect(h.sup.get("web").state).toBe("stopped");
  });
});

describe("calls that start a process, with a spawner that answers later", () => {
  it("answer with what the spawn came to, not the state it left", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    h.spawner.answer();
    const stopping = h.sup.stop("web");
    h.spawner.last().kill("SIGTERM");
    await stopping;
    const started = track(h.sup.start("web"));
    await flushMicrotasks();
    expect(started.settled).toBe(false);
    h.spawner.answer();
    await flushMicrotasks();
    expect(started.value).toMatchObject({ state: "running", pid: h.spawner.last().pid });
    const settled = track(h.sup.whenSettled("web"));
    await flushMicrotasks();
    expect(settled.value).toMatchObject({ state: "running" });
  });

  it("a restart of a running process answers once its new spawn has", async () => {
    const h = later();
    h.sup.add(h.spec("web"));
    const first = h.spawner.answer();
    const restarting = track(h.sup.restart("web"));
    (first as { kill(s: string): void }).kill("SIGTERM");
    await flushMicrotasks();
    expect(restarting.settled).toBe(false);
    h.spawner.answer();
    await flushMicrotasks();
    expect(restarting.value).toMatchObject({ state: "running", pid: h.spawner.last().pid });
  });
});
