// Adoption: a run an earlier daemon started, which the spawner still holds
// (procmon-v1.1 §A), taken over by Supervisor.adopt() on a fake clock.
import { describe, expect, it } from "vitest";
import type { ChildHandlers, FoundRun, RunRecord } from "../../src/core/spawner.js";
import type { RunSpec } from "../../src/core/types.js";
import { FAKE_EPOCH_MS, FakeChild, flushMicrotasks, makeSupervisor, ofKind } from "./fakes.js";

/** A run found alive (or ended) with the spawner, whose handlers the core binds. */
function found(
  pid: number,
  options: {
    readonly name?: string;
    readonly startedAgoMs?: number;
    readonly record?: RunRecord;
    readonly exited?: boolean;
    readonly runs?: boolean;
  } = {},
): { run: FoundRun; child: FakeChild } {
  const handlers: ChildHandlers = {
    onExit: () => {
      throw new Error("not bound");
    },
    onOutput: () => {
      throw new Error("not bound");
    },
    onSpawned: () => {},
  };
  const child = new FakeChild(
    pid,
    { args: ["/bin/web"], env: {}, clearEnv: false, cwd: "" },
    {
      onExit: (exit) => handlers.onExit(exit),
      onOutput: (stream, line, partial) => handlers.onOutput(stream, line, partial),
      onSpawned: () => {},
    },
  );
  const run: FoundRun = {
    name: options.name ?? "web",
    child,
    startedAtWallMs: FAKE_EPOCH_MS - (options.startedAgoMs ?? 60_000),
    record: options.record,
    exited: options.exited ?? false,
    runs: (_spec: RunSpec) => options.runs ?? true,
    bind(bound) {
      handlers.onExit = bound.onExit;
      handlers.onOutput = bound.onOutput;
    },
  };
  return { run, child };
}

const RECORD: RunRecord = {
  restartCount: 3,
  lastExit: { code: 1, signal: null, uptimeMs: 5_000 },
};

describe("adopt", () => {
  it("takes the run over as it was: same pid, restart count, last exit and start, no event", () => {
    const h = makeSupervisor();
    const { run } = found(4242, { record: RECORD, startedAgoMs: 60_000 });
    const view = h.sup.adopt(h.spec("web"), "running", "api", run);
    expect(view).toMatchObject({
      state: "running",
      pid: 4242,
      restartCount: 3,
      lastExit: RECORD.lastExit,
      startedAtWallMs: FAKE_EPOCH_MS - 60_000,
      intent: "running",
    });
    expect(h.events).toEqual([]);
    expect(h.spawner.children).toEqual([]);
  });

  it("its output is the process's, and its exit follows the usual rule: a long run restarts at once, counted", () => {
    const h = makeSupervisor();
    const { run, child } = found(4242, { record: RECORD });
    h.sup.adopt(h.spec("web"), "running", "api", run);
    child.output("stdout", "hello");
    child.exit(0);
    expect(h.events.map((e) => e.kind)).toEqual(["output", "exited", "started"]);
    // Its uptime counts from its start under the earlier daemon (60 s), not from the adoption.
    expect(ofKind(h.events, "exited")[0]).toMatchObject({
      pid: 4242,
      status: { code: 0, signal: null, uptimeMs: 60_000 },
      instant: false,
    });
    expect(h.sup.get("web")).toMatchObject({ restartCount: 4, pid: 1001 });
    // The next run carries what a later daemon needs to take it over.
    expect(h.spawner.last().request.args).toEqual(["/bin/web"]);
  });

  it("an exit during the outage is reported with the spawner's uptime: a short one is an instant death", () => {
    const h = makeSupervisor();
    const { run, child } = found(4242, { exited: true, startedAgoMs: 600_000 });
    h.sup.adopt(h.spec("web"), "running", "api", run);
    expect(h.events).toEqual([]);
    child.handlers.onExit({ code: 7, signal: null, uptimeMs: 300 });
    const [exited] = ofKind(h.events, "exited");
    expect(exited).toMatchObject({ status: { code: 7, uptimeMs: 300 }, instant: true });
    expect(ofKind(h.events, "restartScheduled")[0]?.delayMs).toBe(1_000);
    expect(h.sup.get("web").state).toBe("backoff");
  });

  it("one whose intent is stopped is stopped now, with its events", async () => {
    const h = makeSupervisor();
    const { run, child } = found(4242);
    h.sup.adopt(h.spec("web"), "stopped", "api", run);
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping")[0]).toMatchObject({ pid: 4242, reason: "stop" });
    child.kill("SIGTERM");
    await flushMicrotasks();
    expect(h.sup.get("web")).toMatchObject({ state: "stopped", pid: 0 });
    expect(h.spawner.children).toEqual([]);
  });

  it("one whose spec changed before the earlier daemon died is restarted with it, not counted", async () => {
    const h = makeSupervisor();
    const { run, child } = found(4242, { record: RECORD, runs: false });
    h.sup.adopt(h.spec("web"), "running", "api", run);
    expect(ofKind(h.events, "stopping")[0]).toMatchObject({ reason: "restart" });
    child.kill("SIGTERM");
    await flushMicrotasks();
    expect(h.sup.get("web")).toMatchObject({ state: "running", pid: 1001, restartCount: 3 });
  });

  it("refuses a name in use", () => {
    const h = makeSupervisor();
    h.add("web");
    expect(() => h.sup.adopt(h.spec("web"), "running", "api", found(4242).run)).toThrow(
      /already exists/,
    );
  });
});

describe("the run record given to the spawner", () => {
  it("carries the restart count and the last exit of the process at each spawn", () => {
    const h = makeSupervisor();
    h.add("web");
    h.clock.advance(5_000);
    h.spawner.last().exit(2);
    expect(h.spawner.records).toEqual([
      { restartCount: 0, lastExit: undefined },
      { restartCount: 1, lastExit: { code: 2, signal: null, uptimeMs: 5_000 } },
    ]);
  });
});

describe("adopt of a run that ended during the outage, its intent stopped", () => {
  it("stays stopped once its exit comes", async () => {
    const h = makeSupervisor();
    const { run, child } = found(4242, { exited: true });
    h.sup.adopt(h.spec("web"), "stopped", "api", run);
    child.handlers.onExit({ code: 0, signal: null, uptimeMs: 90_000 });
    await flushMicrotasks();
    expect(h.sup.get("web")).toMatchObject({ state: "stopped", pid: 0, intent: "stopped" });
    expect(h.spawner.children).toEqual([]);
    expect(ofKind(h.events, "exited")[0]?.status).toMatchObject({ code: 0, uptimeMs: 90_000 });
  });
});
