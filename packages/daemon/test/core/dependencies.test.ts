// v1.1 §B's dependencies, readiness and memory cap through the supervisor,
// on a fake clock, a fake prober and fake memory figures.
import { describe, expect, it } from "vitest";
import { findCycle } from "../../src/core/dependencies.js";
import type { Dependency, ReadinessProbe } from "../../src/core/types.js";
import { FakeProber, FakeStats, flushMicrotasks, makeSupervisor, ofKind, thrown } from "./fakes.js";

const on = (name: string, condition: Dependency["condition"] = "started"): Dependency => ({
  name,
  condition,
});

const PROBE: ReadinessProbe = {
  check: { kind: "tcp", host: "127.0.0.1", port: 5432 },
  periodMs: 1_000,
  timeoutMs: 1_000,
  initialDelayMs: 500,
};

const states = (h: ReturnType<typeof makeSupervisor>) =>
  Object.fromEntries(h.sup.list().map((v) => [v.spec.name, v.state]));

describe("findCycle", () => {
  const search = (graph: Record<string, string[]>, from = Object.keys(graph)) =>
    findCycle((name) => graph[name], from);

  it("names the path that closes a cycle, and none for a DAG or a missing name", () => {
    expect(search({ a: ["b"], b: ["a"] })).toEqual(["a", "b", "a"]);
    expect(search({ a: ["b"], b: ["c"], c: ["b"] })).toEqual(["b", "c", "b"]);
    expect(search({ a: ["a"] })).toEqual(["a", "a"]);
    expect(search({ a: ["b", "c"], b: ["c"], c: ["ghost"] })).toBeUndefined();
  });

  it("starts from the names given: a cycle through them is found from there", () => {
    expect(search({ a: ["b"], b: ["c"], c: ["a"] }, ["c"])).toEqual(["c", "a", "b", "c"]);
  });
});

describe("depends_on: started", () => {
  it("waits for a name not registered yet, listed in waiting_for, and starts once it runs", async () => {
    const h = makeSupervisor();
    h.sup.add(h.spec("web", { dependsOn: [on("db")] }));
    expect(h.sup.get("web")).toMatchObject({ state: "waiting", waitingFor: ["db"], pid: 0 });
    expect(ofKind(h.events, "waiting")).toEqual([
      { kind: "waiting", process: "web", names: ["db"] },
    ]);
    expect(h.spawner.children).toHaveLength(0);
    h.sup.add(h.spec("db"));
    await flushMicrotasks();
    expect(states(h)).toEqual({ db: "running", web: "running" });
    expect(h.sup.get("web").waitingFor).toEqual([]);
  });

  it("a dependent already running is left alone when its dependency restarts", async () => {
    const h = makeSupervisor();
    h.add("db");
    h.sup.add(h.spec("web", { dependsOn: [on("db")] }));
    const web = h.spawner.last();
    h.clock.advance(5_000);
    h.spawner.lastOf("db").exit(1);
    await flushMicrotasks();
    expect(web.signals).toEqual([]);
    expect(h.sup.get("web").pid).toBe(web.pid);
  });

  it("a dependent that dies while its dependency is down waits for it again", async () => {
    const h = makeSupervisor({ minRestartDelayMs: 1_000 });
    h.add("db");
    h.sup.add(h.spec("web", { dependsOn: [on("db")] }));
    const web = h.spawner.last();
    const stopping = h.sup.stop("db");
    h.spawner.lastOf("db").kill("SIGTERM");
    await stopping;
    h.clock.advance(5_000);
    web.exit(1);
    await flushMicrotasks();
    expect(h.sup.get("web")).toMatchObject({ state: "waiting", waitingFor: ["db"] });
    await h.sup.start("db");
    await flushMicrotasks();
    expect(states(h)).toEqual({ db: "running", web: "running" });
  });

  it("StartProcess starts a waiting process now, its dependencies or not; StopProcess stops it", async () => {
    const h = makeSupervisor();
    h.sup.add(h.spec("a", { dependsOn: [on("ghost")] }));
    expect(await h.sup.start("a")).toMatchObject({ state: "running" });
    h.sup.add(h.spec("b", { dependsOn: [on("ghost")] }));
    await h.sup.stop("b");
    expect(h.sup.get("b").state).toBe("stopped");
    expect(ofKind(h.events, "stopped")).toEqual([
      { kind: "stopped", process: "b", reason: "stop" },
    ]);
  });
});

describe("a dependency that fails", () => {
  it("one the monitor gave up on keeps its dependents waiting, naming it, until it runs", async () => {
    const h = makeSupervisor();
    h.sup.add(h.spec("db", { maxInstantDeaths: 1 }));
    h.sup.add(h.spec("web", { dependsOn: [on("db")] }));
    await flushMicrotasks();
    const web = h.spawner.children.filter((c) => c.request.args[0] === "/bin/web");
    h.spawner.lastOf("db").exit(1);
    await flushMicrotasks();
    expect(states(h)).toEqual({ db: "failed", web: web.length > 0 ? "running" : "waiting" });
    // web started while db ran; a dependent that dies now waits for it.
    if (web.length > 0) {
      h.clock.advance(5_000);
      h.spawner.lastOf("web").exit(1);
      await flushMicrotasks();
    }
    expect(h.sup.get("web")).toMatchObject({ state: "waiting", waitingFor: ["db"] });
    await h.sup.start("db");
    await flushMicrotasks();
    expect(states(h)).toEqual({ db: "running", web: "running" });
  });
});

describe("depends_on: ready and exited-ok", () => {
  it("a web app waits for its database to be ready, not just running", async () => {
    const prober = new FakeProber();
    const h = makeSupervisor({}, { prober });
    h.sup.add(h.spec("db", { ready: PROBE }));
    h.sup.add(h.spec("web", { dependsOn: [on("db", "ready")] }));
    expect(states(h)).toEqual({ db: "running", web: "waiting" });
    expect(h.sup.get("db").ready).toBe(false);
    h.clock.advance(499);
    expect(prober.pending).toHaveLength(0);
    h.clock.advance(1);
    prober.answer("db", { ok: false, error: "connect 127.0.0.1:5432: ECONNREFUSED" });
    await flushMicrotasks();
    expect(states(h)).toEqual({ db: "running", web: "waiting" });
    // The next check a period after the last one ended.
    h.clock.advance(1_000);
    prober.answer("db", { ok: true });
    await flushMicrotasks();
    expect(h.sup.get("db").ready).toBe(true);
    expect(states(h)).toEqual({ db: "running", web: "running" });
    expect(ofKind(h.events, "ready").map((e) => e.process)).toEqual(["db"]);
  });

  it("unready after a failure once ready: an event, not a restart; ready again after a pass", async () => {
    const prober = new FakeProber();
    const h = makeSupervisor({}, { prober });
    h.sup.add(h.spec("db", { ready: { ...PROBE, initialDelayMs: 0 } }));
    const db = h.spawner.last();
    h.clock.advance(0);
    prober.answer("db", { ok: true });
    await flushMicrotasks();
    h.clock.advance(1_000);
    prober.answer("db", { ok: false, error: "timed out after 1s" });
    await flushMicrotasks();
    expect(ofKind(h.events, "unready")).toEqual([
      { kind: "unready", process: "db", error: "timed out after 1s" },
    ]);
    expect(h.sup.get("db")).toMatchObject({ ready: false, state: "running", pid: db.pid });
    expect(db.signals).toEqual([]);
    h.clock.advance(1_000);
    prober.answer("db", { ok: true });
    await flushMicrotasks();
    expect(ofKind(h.events, "ready")).toHaveLength(2);
  });

  it("no check after the run ends, and a late answer of an ended run is ignored", async () => {
    const prober = new FakeProber();
    const h = makeSupervisor({}, { prober });
    h.sup.add(h.spec("db", { ready: { ...PROBE, initialDelayMs: 0 } }));
    h.clock.advance(0);
    const stopping = h.sup.stop("db");
    h.spawner.last().kill("SIGTERM");
    await stopping;
    prober.answer("db", { ok: true });
    await flushMicrotasks();
    expect(ofKind(h.events, "ready")).toEqual([]);
    expect(h.clock.pendingTimers()).toBe(0);
  });

  it("a migration that must exit 0 first: the app starts after it, not after a failed run", async () => {
    const h = makeSupervisor();
    h.sup.add(h.spec("migrate", { restart: "on-failure" }));
    h.sup.add(h.spec("app", { dependsOn: [on("migrate", "exited-ok")] }));
    expect(states(h)).toEqual({ app: "waiting", migrate: "running" });
    h.clock.advance(2_000);
    h.spawner.lastOf("migrate").exit(1);
    await flushMicrotasks();
    expect(states(h)).toEqual({ app: "waiting", migrate: "running" });
    h.clock.advance(2_000);
    h.spawner.lastOf("migrate").exit(0);
    await flushMicrotasks();
    expect(states(h)).toEqual({ app: "running", migrate: "exited" });
  });

  it("a process without a probe is ready as soon as it runs", () => {
    const h = makeSupervisor();
    h.add("plain");
    expect(h.sup.get("plain").ready).toBe(true);
  });
});

describe("cycles and bad dependencies", () => {
  it("a cycle is refused naming its path, and nothing changes", () => {
    const h = makeSupervisor();
    h.sup.add(h.spec("a", { dependsOn: [on("b")] }));
    const err = thrown(() => h.sup.add(h.spec("b", { dependsOn: [on("a")] })));
    expect(String(err)).toContain('depends_on makes a cycle: "b" -> "a" -> "b"');
    expect(h.sup.has("b")).toBe(false);
    expect(h.sup.get("a").state).toBe("waiting");
  });

  it("an update that would close a cycle is refused too", async () => {
    const h = makeSupervisor();
    h.add("a");
    h.sup.add(h.spec("b", { dependsOn: [on("a")] }));
    await expect(h.sup.update(h.spec("a", { dependsOn: [on("b")] }))).rejects.toThrow(/cycle/);
    expect(h.sup.get("a").spec.dependsOn).toEqual([]);
  });
});

describe("shutdown order", () => {
  it("stops dependents before their dependencies, each once all that depend on it have exited", async () => {
    const h = makeSupervisor();
    h.add("db");
    h.sup.add(h.spec("api", { dependsOn: [on("db")] }));
    h.sup.add(h.spec("web", { dependsOn: [on("api")] }));
    h.add("other");
    const [db, api, web, other] = ["db", "api", "web", "other"].map((n) =>
      h.spawner.children.find((c) => c.request.args[0] === `/bin/${n}`),
    );
    const done = h.sup.shutdown();
    await flushMicrotasks();
    expect([db?.signals, api?.signals, web?.signals, other?.signals]).toEqual([
      [],
      [],
      ["SIGTERM"],
      ["SIGTERM"],
    ]);
    web?.kill("SIGTERM");
    await flushMicrotasks();
    expect([db?.signals, api?.signals]).toEqual([[], ["SIGTERM"]]);
    api?.kill("SIGTERM");
    await flushMicrotasks();
    expect(db?.signals).toEqual(["SIGTERM"]);
    db?.kill("SIGTERM");
    other?.kill("SIGTERM");
    await done;
  });
});

describe("max_rss_bytes", () => {
  it("restarts a process over its cap at two checks in a row (stopping, reason memory), not at one", async () => {
    const stats = new FakeStats();
    const h = makeSupervisor({}, { stats });
    const cap = 64 * 1024 * 1024;
    const child = h.add("leaky", { maxRssBytes: cap });
    h.add("plain");
    stats.rss.set("leaky", cap + 1);
    h.clock.advance(5_000);
    expect(child.signals).toEqual([]);
    stats.rss.set("leaky", cap - 1);
    h.clock.advance(5_000);
    stats.rss.set("leaky", cap + 1);
    h.clock.advance(5_000);
    expect(child.signals).toEqual([]);
    h.clock.advance(5_000);
    expect(child.signals).toEqual(["SIGTERM"]);
    expect(ofKind(h.events, "stopping")[0]).toMatchObject({ process: "leaky", reason: "memory" });
    child.kill("SIGTERM");
    await flushMicrotasks();
    expect(h.sup.get("leaky")).toMatchObject({ state: "running", restartCount: 0 });
    expect(h.spawner.lastOf("leaky").pid).not.toBe(child.pid);
  });

  it("reads nothing when no process has a cap", () => {
    const stats = new FakeStats();
    const h = makeSupervisor({}, { stats });
    h.add("plain");
    h.clock.advance(60_000);
    expect(stats.samples).toBe(0);
  });
});

describe("RestartAll in dependency order", () => {
  it("a dependent whose dependency is being restarted too waits for its new run", async () => {
    const h = makeSupervisor();
    h.add("db");
    h.sup.add(h.spec("web", { dependsOn: [on("db")] }));
    const [db, web] = [h.spawner.lastOf("db"), h.spawner.lastOf("web")];
    const done = h.sup.restartAll();
    web.kill("SIGTERM");
    await flushMicrotasks();
    expect(h.sup.get("web")).toMatchObject({ state: "waiting", waitingFor: ["db"] });
    db.kill("SIGTERM");
    await flushMicrotasks();
    await done;
    const started = ofKind(h.events, "started").slice(-2);
    expect(started.map((e) => e.process)).toEqual(["db", "web"]);
    expect(states(h)).toEqual({ db: "running", web: "running" });
  });
});
