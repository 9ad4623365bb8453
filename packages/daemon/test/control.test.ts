// Control: the daemon's use cases over a real Supervisor on a fake clock and
// spawner, with a real state file in a temp dir. Each change is on disk
// before the call resolves; restore, config and limits; and the consistency
// check that repairs a child that vanished without an exit.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { ProcessSpecSchema } from "@procmon/client/api";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
// The daemon as built: it serves the descriptor set that the build puts next to it.
import { startDaemon } from "../dist/daemon.js";
import { parseFlags } from "../dist/flags.js";
import { FlowGate } from "../src/adapters/flow-gate.js";
import { checkSpecFiles } from "../src/adapters/spec-files.js";
import { type PersistedState, readStateFile, StateFileWriter } from "../src/adapters/state-file.js";
import { Control, DEFAULT_LIMITS, type Limits } from "../src/control.js";
import { ProcmonError } from "../src/core/errors.js";
import type { CoreEvent } from "../src/core/events.js";
import type { ChildHandlers, Spawner, SpawnRequest } from "../src/core/spawner.js";
import { Supervisor } from "../src/core/supervisor.js";
import { DEFAULT_POLICY, type ProcessSpec } from "../src/core/types.js";
import { DEFAULT_RETENTION, EventLog } from "../src/events/event-log.js";
import { specInputFromJson, specInputFromProto, specToJson } from "../src/wire/spec.js";
import { FakeChild, FakeClock, ofKind, spec } from "./core/fakes.js";

/** A fake child whose liveness the test sets, as /proc would report it. */
class MortalChild extends FakeChild {
  alive = true;
  isAlive(): boolean {
    return this.alive;
  }
}

/** Hands out MortalChild objects with pids 2001, 2002, ... */
class MortalSpawner implements Spawner {
  readonly children: MortalChild[] = [];
  private nextPid = 2001;

  spawn(request: SpawnRequest, handlers: ChildHandlers): MortalChild {
    const child = new MortalChild(this.nextPid++, request, handlers);
    this.children.push(child);
    return child;
  }

  /** The latest child of the process `name`. */
  of(name: string): MortalChild {
    const child = this.children.findLast((c) => c.request.name === name);
    if (!child) throw new Error(`nothing was spawned for "${name}"`);
    return child;
  }

  /** How many children `name` has had. */
  count(name: string): number {
    return this.children.filter((c) => c.request.name === name).length;
  }
}

let dir: string;
let statePath: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "procmon-control-"));
  statePath = join(dir, "state.json");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Harness {
  readonly control: Control;
  readonly supervisor: Supervisor;
  readonly events: EventLog;
  readonly clock: FakeClock;
  readonly spawner: MortalSpawner;
  /** Every core event, in order. */
  readonly emitted: CoreEvent[];
  /** What the state file holds now. */
  saved(): PersistedState;
}

function harness(
  options: { limits?: Partial<Limits>; continueAfterSeq?: bigint; instance?: string } = {},
): Harness {
  const clock = new FakeClock();
  const spawner = new MortalSpawner();
  const events = new EventLog(clock, DEFAULT_RETENTION, options.continueAfterSeq ?? 0n);
  const emitted: CoreEvent[] = [];
  let control: Control | undefined;
  const supervisor = new Supervisor({
    clock,
    spawner,
    emit: (event) => {
      emitted.push(event);
      events.append(event);
      control?.afterEvent();
    },
  });
  control = new Control({
    supervisor,
    events,
    store: new StateFileWriter(statePath),
    instance: options.instance ?? "test-instance",
    validation: { defaults: DEFAULT_POLICY, daemonUid: 0, daemonGid: 0 },
    checkFiles: checkSpecFiles,
    specJson: { encode: specToJson, decode: specInputFromJson },
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    logger: pino({ level: "silent" }),
  });
  return {
    control,
    supervisor,
    events,
    clock,
    spawner,
    emitted,
    saved() {
      const state = readStateFile(statePath);
      if (!state) throw new Error("no state file");
      return state;
    },
  };
}

/** A spec as the service hands it to Control: decoded from its wire form. */
type ProcessSpecInit = MessageInitShape<typeof ProcessSpecSchema>;
const proto = (init: ProcessSpecInit) => specInputFromProto(create(ProcessSpecSchema, init));
const sleeper = (name: string, extra: ProcessSpecInit = {}) =>
  proto({ name, args: ["sleep", "100"], ...extra });

/** name → [intent, source] as the state file holds them. */
const registry = (state: PersistedState) =>
  Object.fromEntries(
    state.processes.map((p) => [(p.spec as { name: string }).name, [p.intent, p.source]]),
  );

/** Polls `condition` (a file the control writes) until it holds; fails after 2 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 2s");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The error `promise` rejects with, checked to be a ProcmonError. */
async function rejection(promise: Promise<unknown>): Promise<ProcmonError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ProcmonError);
    return err as ProcmonError;
  }
  throw new Error("expected a rejection");
}

describe("every change is in the state file before the call resolves", () => {
  it("add, stop, start, restart and remove", async () => {
    const h = harness();
    await h.control.reserveSeqs();

    await h.control.add(sleeper("web", { killTime: { seconds: 2n } }));
    const added = h.saved();
    expect(added.instance).toBe("test-instance");
    expect(added.processes).toEqual([
      {
        spec: {
          name: "web",
          args: ["sleep", "100"],
          threshold: "1s",
          killTime: "2s",
          minRestartDelay: "1s",
          maxRestartDelay: "3600s",
          restart: "RESTART_POLICY_ALWAYS",
          successExitCodes: [0],
          stopSignal: "SIGTERM",
        },
        intent: "running",
        source: "api",
      },
    ]);

    const stopping = h.control.stop("web");
    h.spawner.of("web").kill("SIGTERM");
    await stopping;
    expect(registry(h.saved())).toEqual({ web: ["stopped", "api"] });

    await h.control.start("web");
    expect(registry(h.saved())).toEqual({ web: ["running", "api"] });

    const stopped = h.control.stop("web");
    h.spawner.of("web").kill("SIGTERM");
    await stopped;
    await h.control.restart("web");
    expect(registry(h.saved())).toEqual({ web: ["running", "api"] });
    expect(h.spawner.count("web")).toBe(3);

    const removing = h.control.remove("web");
    h.spawner.of("web").kill("SIGTERM");
    await removing;
    expect(h.saved().processes).toEqual([]);
  });

  it("stop and remove are on disk before the exits they wait for", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    await h.control.add(sleeper("web"));
    await h.control.add(sleeper("db"));
    // A daemon killed now, with both still stopping, must not bring either back.
    const stopping = h.control.stop("web");
    const removing = h.control.remove("db");
    await until(() => {
      const saved = registry(h.saved());
      return saved.web?.[0] === "stopped" && saved.db === undefined;
    });
    expect(h.supervisor.get("web").state).toBe("stopping");
    expect(h.supervisor.get("db").state).toBe("stopping");
    h.spawner.of("web").kill("SIGTERM");
    h.spawner.of("db").kill("SIGTERM");
    await Promise.all([stopping, removing]);
    expect(registry(h.saved())).toEqual({ web: ["stopped", "api"] });
  });

  it("a refused call leaves the file as it was", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    await h.control.add(sleeper("web"));
    const before = readFileSync(statePath, "utf8");
    await rejection(h.control.add(sleeper("web")));
    await rejection(h.control.add(proto({ name: "bad name", args: ["sleep"] })));
    await rejection(h.control.stop("nope"));
    await rejection(h.control.remove("nope"));
    expect(readFileSync(statePath, "utf8")).toBe(before);
  });
});

describe("limits", () => {
  it("--max-processes: the next add is RESOURCE_EXHAUSTED naming the limit, nothing changes", async () => {
    const h = harness({ limits: { maxProcesses: 2 } });
    await h.control.reserveSeqs();
    await h.control.add(sleeper("a"));
    await h.control.add(sleeper("b"));
    const spawned = h.spawner.children.length;

    const error = await rejection(h.control.add(sleeper("c")));
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toContain("--max-processes 2");
    expect(h.supervisor.size).toBe(2);
    expect(h.spawner.children.length).toBe(spawned);
    expect(Object.keys(registry(h.saved()))).toEqual(["a", "b"]);

    // A name in use is still ALREADY_EXISTS, not the limit.
    expect((await rejection(h.control.add(sleeper("a")))).code).toBe("already_exists");

    // Room again once one is removed.
    const removing = h.control.remove("b");
    h.spawner.of("b").kill("SIGTERM");
    await removing;
    await h.control.add(sleeper("c"));
    expect(Object.keys(registry(h.saved()))).toEqual(["a", "c"]);
  });

  it("--max-spec-bytes counts args and env; over it is INVALID_ARGUMENT", async () => {
    const h = harness({ limits: { maxSpecBytes: 1_000 } });
    await h.control.reserveSeqs();
    const bigArg = await rejection(
      h.control.add(sleeper("a", { args: ["sleep", "x".repeat(2_000)] })),
    );
    expect(bigArg.code).toBe("invalid_argument");
    expect(bigArg.message).toMatch(/over the limit of 1000 \(--max-spec-bytes\)/);
    const bigEnv = await rejection(
      h.control.add(sleeper("b", { env: { BIG: "y".repeat(1_000) } })),
    );
    expect(bigEnv.code).toBe("invalid_argument");
    expect(h.supervisor.size).toBe(0);
    expect(h.spawner.children).toEqual([]);

    await h.control.add(sleeper("c", { args: ["sleep", "z".repeat(900)] }));
    expect(h.supervisor.size).toBe(1);
  });
});

describe("restore", () => {
  const saved = (processes: PersistedState["processes"]): PersistedState => ({
    version: 1,
    instance: "test-instance",
    seqReservedUpTo: "41",
    processes,
  });
  const web = { name: "web", args: ["/bin/web"], killTime: "0.300s" };

  it("brings back each process with its intent and source, without 'added' events", async () => {
    const h = harness({ continueAfterSeq: 41n });
    const state = saved([
      { spec: web, intent: "running", source: "api" },
      { spec: { name: "batch", args: ["/bin/batch"] }, intent: "stopped", source: "config" },
    ]);
    writeFileSync(statePath, JSON.stringify(state));

    await h.control.restore(state);

    expect(h.spawner.children.map((c) => c.request.name)).toEqual(["web"]);
    expect(h.supervisor.get("web")).toMatchObject({ state: "running", intent: "running" });
    expect(h.supervisor.get("web").spec.killTimeMs).toBe(300);
    expect(h.supervisor.get("batch")).toMatchObject({ state: "stopped", intent: "stopped" });
    expect(ofKind(h.emitted, "added")).toEqual([]);
    expect(h.emitted.map((e) => e.kind)).toEqual(["started"]);
    // Numbering continues after the previous daemon's reservation.
    expect(h.events.lastSeq).toBe(42n);
    expect(registry(h.control.snapshot())).toEqual({
      batch: ["stopped", "config"],
      web: ["running", "api"],
    });
  });

  it("registered without starting (the socket served first), one that should run waits in backoff due now, never stopped", async () => {
    const h = harness({ continueAfterSeq: 41n });
    const state = saved([
      { spec: web, intent: "running", source: "api" },
      { spec: { name: "batch", args: ["/bin/batch"] }, intent: "stopped", source: "api" },
    ]);
    await h.control.restore(state, false);
    await h.control.applyConfig([{ spec: spec("cfg"), where: "config file test:1" }], false);

    expect(h.spawner.children).toEqual([]);
    for (const name of ["web", "cfg"]) {
      const view = h.supervisor.get(name);
      expect(view).toMatchObject({ state: "backoff", intent: "running", restartCount: 0 });
    }
    expect(h.supervisor.get("batch").state).toBe("stopped");
    // Watchers fold it as clients list it: a start scheduled now.
    const scheduled = ofKind(h.emitted, "restartScheduled");
    expect(scheduled.map((e) => [e.process, e.delayMs])).toEqual([
      ["web", 0],
      ["cfg", 0],
    ]);
    // No timer of its own: the clock moving on starts nothing.
    h.clock.advance(60_000);
    expect(h.spawner.children).toEqual([]);

    // A stop meanwhile keeps it stopped; the start-up then leaves it alone.
    await h.supervisor.stop("cfg");
    expect(await h.control.startDeferred()).toBe(2);
    expect(h.spawner.children.map((c) => c.request.name)).toEqual(["web"]);
    expect(h.supervisor.get("web")).toMatchObject({ state: "running", restartCount: 0 });
    expect(h.supervisor.get("cfg").state).toBe("stopped");
  });

  it("keeps a process whose executable is gone: the supervisor retries it with backoff", async () => {
    const h = harness({ continueAfterSeq: 41n });
    // /bin/web does not exist on this machine, as an executable removed while the daemon was down.
    const state = saved([{ spec: web, intent: "running", source: "api" }]);
    await h.control.restore(state);
    expect(h.supervisor.get("web").intent).toBe("running");
  });

  it("reserves the next block of seqs in the file, keeping its registry", async () => {
    const h = harness({ continueAfterSeq: 41n });
    const state = saved([{ spec: web, intent: "running", source: "api" }]);
    writeFileSync(statePath, JSON.stringify(state));

    await h.control.restore(state);

    const onDisk = h.saved();
    expect(onDisk.seqReservedUpTo).toBe(String(41 + 1_000_000));
    expect(onDisk.instance).toBe("test-instance");
    expect(onDisk.processes).toEqual(state.processes);
  });

  it.each([
    [
      "a spec it cannot read",
      [{ spec: { ...web, bogus: 1 }, intent: "running", source: "api" }],
      /processes\[1\]: .*bogus/,
    ],
    [
      "a name held twice",
      [
        { spec: web, intent: "running", source: "api" },
        { spec: web, intent: "stopped", source: "api" },
      ],
      /holds process "web" twice/,
    ],
    [
      "a spec AddProcess would refuse: no args",
      [{ spec: { ...web, args: [] }, intent: "running", source: "api" }],
      /holds a process that is not valid \(processes\[1\] "web": args must not be empty/,
    ],
    [
      "a spec AddProcess would refuse: a zero kill_time",
      [{ spec: { ...web, killTime: "0s" }, intent: "stopped", source: "config" }],
      /processes\[1\] "web": kill_time must be positive/,
    ],
  ] as const)(
    "refuses %s before anything starts; the file is untouched",
    async (_what, processes, problem) => {
      const h = harness({ continueAfterSeq: 41n });
      const good = {
        spec: { name: "first", args: ["/bin/first"] },
        intent: "running",
        source: "api",
      };
      const state = saved([good, ...processes] as PersistedState["processes"]);
      const text = JSON.stringify(state);
      writeFileSync(statePath, text);

      let error: unknown;
      try {
        await h.control.restore(state);
      } catch (err) {
        error = err;
      }

      expect(error).toBeInstanceOf(ProcmonError);
      expect((error as ProcmonError).code).toBe("failed_precondition");
      expect((error as ProcmonError).message).toMatch(problem);
      expect((error as ProcmonError).message).toContain(`state file ${statePath} `);
      expect((error as ProcmonError).message).toContain("left untouched");
      expect(h.spawner.children).toEqual([]);
      expect(h.supervisor.size).toBe(0);
      expect(readFileSync(statePath, "utf8")).toBe(text);
    },
  );
});

describe("event seqs in the state file", () => {
  it("reserveSeqs reserves a block ahead of the last seq", async () => {
    const h = harness({ continueAfterSeq: 7n });
    await h.control.reserveSeqs();
    expect(h.saved().seqReservedUpTo).toBe(String(7 + 1_000_000));
  });

  it("saveFinal writes the exact last seq, after a save still in flight", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    const adding = h.control.add(sleeper("web"));
    await h.control.saveFinal();
    await adding;
    const onDisk = h.saved();
    expect(onDisk.seqReservedUpTo).toBe(String(h.events.lastSeq));
    expect(h.events.lastSeq).toBe(2n); // added, started
    expect(registry(onDisk)).toEqual({ web: ["running", "api"] });
  });

  it("an event nearing the reservation reserves the next block", async () => {
    // Nothing reserved past seq 41: the first event must reserve more.
    const h = harness({ continueAfterSeq: 41n });
    await h.control.add(sleeper("web"));
    expect(h.events.lastSeq).toBe(43n);
    expect(h.saved().seqReservedUpTo).toBe(String(42 + 1_000_000));
  });
});

/** Config entries of `specs`, as the config file's loader gives them. */
const entries = (...specs: ProcessSpec[]) =>
  specs.map((spec, i) => ({ spec, where: `config file /etc/procmon.yaml:${2 + i * 2}` }));

describe("applyConfig", () => {
  it("adds, keeps, restarts changed and removes its own entries; API processes are not its own", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    const s = (name: string, overrides: Partial<ProcessSpec> = {}) => spec(name, overrides);

    await h.control.applyConfig(entries(s("a"), s("b")));
    await h.control.add(sleeper("api"));
    expect(registry(h.saved())).toEqual({
      a: ["running", "config"],
      api: ["running", "api"],
      b: ["running", "config"],
    });
    const a = h.spawner.of("a");
    const b = h.spawner.of("b");

    // a unchanged, b changed, d new.
    const changing = h.control.applyConfig(
      entries(s("a"), s("b", { args: ["/bin/b", "--new"] }), s("d")),
    );
    expect(b.signals).toEqual(["SIGTERM"]);
    b.kill("SIGTERM");
    await changing;
    expect(h.spawner.of("a")).toBe(a);
    expect(a.signals).toEqual([]);
    expect(h.spawner.of("b")).not.toBe(b);
    expect(h.spawner.of("b").request.args).toEqual(["/bin/b", "--new"]);
    expect(h.supervisor.get("b").spec.args).toEqual(["/bin/b", "--new"]);
    expect(h.supervisor.get("d").state).toBe("running");

    // b and d leave the file: stopped and forgotten; the API's process stays.
    const removing = h.control.applyConfig(entries(s("a")));
    h.spawner.of("b").kill("SIGTERM");
    h.spawner.of("d").kill("SIGTERM");
    await removing;
    expect(h.supervisor.list().map((v) => v.spec.name)).toEqual(["a", "api"]);
    expect(ofKind(h.emitted, "removed").map((e) => e.process)).toEqual(["b", "d"]);
    expect(registry(h.saved())).toEqual({ a: ["running", "config"], api: ["running", "api"] });
  });

  it("never takes over an API process: an entry naming one is refused and nothing changes", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    await h.control.applyConfig(entries(spec("old")));
    const view = await h.control.add(sleeper("web"));
    const child = h.spawner.of("web");
    const before = h.saved();
    const emitted = h.emitted.length;

    // The same spec or another one: either way the file names a process it does not own.
    for (const web of [view.spec, spec("web", { args: ["/bin/web", "--other"] })]) {
      const err = await h.control.applyConfig(entries(spec("new"), web)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProcmonError);
      expect(err).toMatchObject({
        code: "invalid_argument",
        message:
          'config file /etc/procmon.yaml:4: process "web" was added through the API, not by this file: remove it (procmonctl rm) or rename the entry; nothing was changed',
      });
    }
    // "old" was not removed, "new" not added, "web" not touched.
    expect(h.spawner.of("web")).toBe(child);
    expect(child.signals).toEqual([]);
    expect(h.supervisor.list().map((v) => v.spec.name)).toEqual(["old", "web"]);
    expect(h.emitted.length).toBe(emitted);
    expect(h.saved()).toEqual(before);
  });

  it("a stopped entry that changes keeps its intent and takes the new spec", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    await h.control.applyConfig(entries(spec("job")));
    const stopping = h.control.stop("job");
    h.spawner.of("job").kill("SIGTERM");
    await stopping;

    await h.control.applyConfig(entries(spec("job", { args: ["/bin/job", "v2"] })));
    expect(h.spawner.count("job")).toBe(1);
    expect(h.supervisor.get("job")).toMatchObject({ state: "stopped", intent: "stopped" });
    expect(h.supervisor.get("job").spec.args).toEqual(["/bin/job", "v2"]);
    expect(registry(h.saved())).toEqual({ job: ["stopped", "config"] });
  });
});

describe("Supervisor.checkConsistency", () => {
  const THRESHOLD = DEFAULT_POLICY.thresholdMs;

  it("handles a running child that vanished as an exit with signal LOST, and restarts it", async () => {
    const h = harness();
    await h.control.reserveSeqs();
    await h.control.add(sleeper("web"));
    const lost = h.spawner.of("web");
    h.clock.advance(THRESHOLD * 5);
    const before = h.emitted.length;

    lost.alive = false;
    expect(h.supervisor.checkConsistency()).toEqual(["web"]);

    const repair = h.emitted.slice(before);
    expect(repair.map((e) => e.kind)).toEqual(["exited", "started"]);
    expect(repair[0]).toMatchObject({
      kind: "exited",
      pid: lost.pid,
      status: { code: null, signal: "LOST", uptimeMs: THRESHOLD * 5 },
      instant: false,
    });
    const view = h.supervisor.get("web");
    expect(view.state).toBe("running");
    expect(view.pid).not.toBe(lost.pid);
    expect(view.pid).toBe(h.spawner.of("web").pid);
    expect(view.restartCount).toBe(1);
    expect(view.lastExit?.signal).toBe("LOST");
    // Nothing is ever sent to what may now be someone else's pid.
    expect(lost.signals).toEqual([]);

    // Should the lost child's exit still come, it is not a second death.
    const after = h.emitted.length;
    lost.kill("SIGKILL");
    expect(h.emitted.length).toBe(after);
    expect(h.supervisor.get("web").pid).toBe(view.pid);
    // Repaired once: the next check finds nothing.
    expect(h.supervisor.checkConsistency()).toEqual([]);
  });

  it("one lost before its threshold is an instant death: it backs off", () => {
    const h = harness();
    h.supervisor.add(spec("web"));
    const lost = h.spawner.of("web");
    h.clock.advance(10);
    lost.alive = false;

    expect(h.supervisor.checkConsistency()).toEqual(["web"]);
    expect(ofKind(h.emitted, "exited")[0]).toMatchObject({ instant: true });
    expect(h.supervisor.get("web").state).toBe("backoff");
    h.clock.advance(DEFAULT_POLICY.minRestartDelayMs);
    expect(h.supervisor.get("web").state).toBe("running");
    expect(h.spawner.count("web")).toBe(2);
  });

  it("one lost while stopping ends the stop, with no SIGKILL later", async () => {
    const h = harness();
    h.supervisor.add(spec("web"));
    const lost = h.spawner.of("web");
    const stopping = h.supervisor.stop("web");
    lost.alive = false;

    expect(h.supervisor.checkConsistency()).toEqual(["web"]);
    const view = await stopping;
    expect(view).toMatchObject({ state: "stopped", intent: "stopped" });
    expect(view.lastExit?.signal).toBe("LOST");
    h.clock.advance(DEFAULT_POLICY.killTimeMs * 2);
    expect(lost.signals).toEqual(["SIGTERM"]);
    expect(h.spawner.count("web")).toBe(1);
  });

  it("leaves alone children that are alive, or that cannot tell", () => {
    const h = harness();
    h.supervisor.add(spec("alive"));
    const before = h.emitted.length;
    expect(h.supervisor.checkConsistency()).toEqual([]);
    expect(h.emitted.length).toBe(before);

    // A child without isAlive(): the check cannot tell, so it trusts the exit callback.
    const plain = new Supervisor({
      clock: h.clock,
      spawner: { spawn: (request, handlers) => new FakeChild(9, request, handlers) },
      emit: () => {},
    });
    plain.add(spec("opaque"));
    expect(plain.checkConsistency()).toEqual([]);
    expect(plain.get("opaque").state).toBe("running");
  });

  it("the daemon runs the check every --consistency-delay and logs what it repaired", async () => {
    const clock = new FakeClock();
    const spawner = new MortalSpawner();
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: "warn" },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const parsed = parseFlags(
      [
        "--socket",
        join(dir, "procmon.sock"),
        "--state-file",
        statePath,
        "--consistency-delay",
        "30s",
        "--log-level",
        "warn",
      ],
      {},
    );
    if (parsed.kind !== "run") throw new Error("flags did not parse");
    const daemon = await startDaemon(parsed.options, {
      clock,
      spawner,
      log: { logger, gate: new FlowGate(), close: async () => {} },
    });
    try {
      await daemon.control.add(sleeper("web"));
      const lost = spawner.of("web");
      clock.advance(20_000);
      lost.alive = false;
      clock.advance(9_999);
      expect(spawner.count("web")).toBe(1);
      clock.advance(1);
      expect(spawner.count("web")).toBe(2);
      expect(daemon.supervisor.get("web").lastExit?.signal).toBe("LOST");
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: "consistency check repaired", processes: ["web"] }),
      );
      // And again at the next interval.
      spawner.of("web").alive = false;
      clock.advance(30_000);
      expect(spawner.count("web")).toBe(3);
    } finally {
      const done = daemon.shutdown();
      for (const child of spawner.children) if (!child.exited) child.kill("SIGTERM");
      await done;
    }
  });
});
