import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DurationSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  EventSchema,
  OutputStream,
  ProcessSchema,
  ProcessSpecSchema,
  State,
  StopReason,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { describe, expect, it } from "vitest";
import type { CoreEvent } from "../../src/core/events.js";
import {
  DEFAULT_END_POLICY,
  DEFAULT_POLICY,
  DEFAULT_READINESS,
  type Policy,
  type ProcessSpec,
  type ProcessView,
} from "../../src/core/types.js";

/** A wire spec as the daemon takes it: decoded, then held to the rules (by a root daemon). */
const specFromProto = (spec: Parameters<typeof specInputFromProto>[0], defaults: Policy) =>
  normaliseSpec(specInputFromProto(spec), { defaults, daemonUid: 0, daemonGid: 0 });

import { normaliseSpec } from "../../src/core/spec.js";
import { eventToProto } from "../../src/wire/event.js";
import { processToProto } from "../../src/wire/process.js";
import { specInputFromProto, specToProto } from "../../src/wire/spec.js";
import { durationToMs, msToDuration, msToTimestamp } from "../../src/wire/time.js";

const SPEC: ProcessSpec = {
  name: "web-1",
  args: ["sleep", "60"],
  // A computed key defines an own property, where a literal __proto__ would set the prototype.
  env: { FOO: "bar", ["__proto__"]: "kept" },
  clearEnv: true,
  cwd: "/tmp",
  uid: 1000,
  gid: 1000,
  thresholdMs: 1_500,
  killTimeMs: 5_000,
  minRestartDelayMs: 250,
  maxRestartDelayMs: 3_600_000,
  restart: "on-failure",
  successExitCodes: [0, 3],
  maxInstantDeaths: 5,
  stopSignal: "SIGQUIT",
  dependsOn: [
    { name: "db", condition: "ready" },
    { name: "migrate", condition: "exited-ok" },
  ],
  ready: {
    check: { kind: "http", url: "http://127.0.0.1:8080/health" },
    periodMs: 2_000,
    timeoutMs: 500,
    initialDelayMs: 100,
  },
  maxRssBytes: 64 * 1024 * 1024,
};

const VIEW: ProcessView = {
  spec: SPEC,
  intent: "running",
  state: "backoff",
  pid: 0,
  startedAtWallMs: 1_700_000_000_123.456,
  restartCount: 3,
  lastExit: { code: 1, signal: null, uptimeMs: 12.7 },
  nextRestartAtWallMs: 1_700_000_001_999.5,
  restartDelayMs: 2_000.000_000_1,
  lastSpawnError: 'cannot spawn "sleep": EMFILE: too many open files',
  removing: false,
  source: "api",
  ready: false,
  waitingFor: [],
};

describe("durations and timestamps", () => {
  it("rounds fractional milliseconds so that messages serialize", () => {
    for (const ms of [0.1 + 0.2, 12.7, -1.5, 1_234.5678, -0.4, 1e12 + 0.5]) {
      const d = msToDuration(ms);
      expect(Number.isInteger(d.nanos)).toBe(true);
      expect(d.nanos % 1_000_000 === 0).toBe(true);
      expect(Object.is(d.nanos, -0)).toBe(false);
      expect(() => toBinary(DurationSchema, d)).not.toThrow();
      expect(durationToMs(d)).toBe(Math.round(ms) || 0);
    }
    for (const ms of [1_700_000_000_123.456, 0.5, -1_500.25]) {
      const t = msToTimestamp(ms);
      expect(t.nanos).toBeGreaterThanOrEqual(0);
      expect(t.nanos).toBeLessThan(1e9);
      expect(timestampMs(t)).toBe(Math.round(ms));
    }
  });

  it("keeps a negative duration's seconds and nanos on the same side", () => {
    const d = msToDuration(-1_500);
    expect(d.seconds).toBe(-1n);
    expect(d.nanos).toBe(-500_000_000);
  });

  it("refuses non-finite values with a clear error", () => {
    expect(() => msToDuration(Number.NaN)).toThrow(/NaN/);
    expect(() => msToTimestamp(Number.POSITIVE_INFINITY)).toThrow(/Infinity/);
  });
});

describe("specs", () => {
  it("round-trips a full spec through the wire", () => {
    const wire = fromBinary(ProcessSpecSchema, toBinary(ProcessSpecSchema, specToProto(SPEC)));
    expect(specFromProto(wire, DEFAULT_POLICY)).toEqual(SPEC);
    expect(Object.keys(specFromProto(wire, DEFAULT_POLICY).env)).toContain("__proto__");
  });

  it("fills every duration in the normalised proto", () => {
    const wire = specToProto(SPEC);
    expect(durationToMs(wire.threshold!)).toBe(1_500);
    expect(durationToMs(wire.killTime!)).toBe(5_000);
    expect(durationToMs(wire.minRestartDelay!)).toBe(250);
    expect(durationToMs(wire.maxRestartDelay!)).toBe(3_600_000);
  });

  it("takes unset durations from the defaults and leaves unset ids out", () => {
    const spec = specFromProto(
      create(ProcessSpecSchema, {
        name: "a",
        args: ["true"],
        killTime: create(DurationSchema, { seconds: 2n, nanos: 400_600_000 }),
      }),
      DEFAULT_POLICY,
    );
    expect(spec).toEqual({
      name: "a",
      args: ["true"],
      env: {},
      clearEnv: false,
      cwd: "",
      thresholdMs: DEFAULT_POLICY.thresholdMs,
      killTimeMs: 2_401,
      minRestartDelayMs: DEFAULT_POLICY.minRestartDelayMs,
      maxRestartDelayMs: DEFAULT_POLICY.maxRestartDelayMs,
      ...DEFAULT_END_POLICY,
      ...DEFAULT_READINESS,
    });
    expect("uid" in spec).toBe(false);
    expect("gid" in spec).toBe(false);
    const wire = specToProto(spec);
    expect(wire.uid).toBeUndefined();
    expect(wire.gid).toBeUndefined();
  });

  it("keeps uid 0 and gid 0, which are set, not unset", () => {
    const wire = specToProto({ ...SPEC, uid: 0, gid: 0 });
    const back = fromBinary(ProcessSpecSchema, toBinary(ProcessSpecSchema, wire));
    expect(back.uid).toBe(0);
    expect(back.gid).toBe(0);
  });
});

describe("processToProto", () => {
  it("maps a process in backoff, rounding fractional times so it serializes", () => {
    const proto = processToProto(VIEW);
    const wire = fromBinary(ProcessSchema, toBinary(ProcessSchema, proto));
    expect(wire.state).toBe(State.BACKOFF);
    expect(wire.pid).toBe(0);
    expect(timestampMs(wire.startedAt!)).toBe(1_700_000_000_123);
    expect(wire.restartCount).toBe(3);
    expect(wire.lastExit?.status).toEqual({ case: "exitCode", value: 1 });
    expect(durationToMs(wire.lastExit!.uptime!)).toBe(13);
    expect(timestampMs(wire.nextRestartAt!)).toBe(1_700_000_002_000);
    expect(durationToMs(wire.restartDelay!)).toBe(2_000);
    expect(wire.lastSpawnError).toBe('cannot spawn "sleep": EMFILE: too many open files');
    expect(specFromProto(wire.spec!, DEFAULT_POLICY)).toEqual(SPEC);
  });

  it.each([
    ["running", State.RUNNING],
    ["stopping", State.STOPPING],
    ["stopped", State.STOPPED],
  ] as const)("maps %s and sets next_restart_at in backoff only", (state, expected) => {
    const proto = processToProto({ ...VIEW, state, pid: 4242 });
    expect(proto.state).toBe(expected);
    expect(proto.pid).toBe(4242);
    expect(proto.nextRestartAt).toBeUndefined();
  });

  it("leaves started_at and last_exit unset before any run", () => {
    const proto = processToProto({
      ...VIEW,
      state: "stopped",
      startedAtWallMs: undefined,
      lastExit: undefined,
      nextRestartAtWallMs: undefined,
    });
    expect(proto.startedAt).toBeUndefined();
    expect(proto.lastExit).toBeUndefined();
    expect(() => toBinary(ProcessSchema, proto)).not.toThrow();
  });

  it("reports a signal death as the signal's name", () => {
    const proto = processToProto({
      ...VIEW,
      lastExit: { code: null, signal: "SIGKILL", uptimeMs: 5 },
    });
    expect(proto.lastExit?.status).toEqual({ case: "signal", value: "SIGKILL" });
  });
});

describe("eventToProto", () => {
  const T = 1_700_000_000_000.75;

  function roundTrip(event: CoreEvent, seq = 7n) {
    const proto = eventToProto(event, seq, T);
    const wire = fromBinary(EventSchema, toBinary(EventSchema, proto));
    expect(wire.seq).toBe(seq);
    expect(timestampMs(wire.time!)).toBe(1_700_000_000_001);
    expect(wire.process).toBe(event.process);
    return wire.kind;
  }

  it("maps added with the normalised spec", () => {
    const kind = roundTrip({ process: "web-1", kind: "added", spec: SPEC });
    expect(kind.case).toBe("added");
    if (kind.case !== "added") return;
    expect(specFromProto(kind.value.spec!, DEFAULT_POLICY)).toEqual(SPEC);
  });

  it("maps removed", () => {
    expect(roundTrip({ process: "p", kind: "removed" }).case).toBe("removed");
  });

  it("maps started", () => {
    const kind = roundTrip({ process: "p", kind: "started", pid: 123 });
    expect(kind).toMatchObject({ case: "started", value: { pid: 123 } });
  });

  it("maps exited with status, uptime and instant", () => {
    const kind = roundTrip({
      process: "p",
      kind: "exited",
      pid: 123,
      status: { code: null, signal: "SIGTERM", uptimeMs: 999.9 },
      instant: true,
    });
    expect(kind.case).toBe("exited");
    if (kind.case !== "exited") return;
    expect(kind.value.pid).toBe(123);
    expect(kind.value.instant).toBe(true);
    expect(kind.value.status?.status).toEqual({ case: "signal", value: "SIGTERM" });
    expect(durationToMs(kind.value.status!.uptime!)).toBe(1_000);
    expect(durationToMs(kind.value.uptime!)).toBe(1_000);
  });

  it("maps restartScheduled to restart_scheduled with delay and at", () => {
    const kind = roundTrip({
      process: "p",
      kind: "restartScheduled",
      delayMs: 1_999.6,
      atWallMs: 1_700_000_002_000.4,
    });
    expect(kind.case).toBe("restartScheduled");
    if (kind.case !== "restartScheduled") return;
    expect(durationToMs(kind.value.delay!)).toBe(2_000);
    expect(timestampMs(kind.value.at!)).toBe(1_700_000_002_000);
  });

  it.each([
    ["stop", StopReason.STOP],
    ["remove", StopReason.REMOVE],
    ["restart", StopReason.RESTART],
    ["shutdown", StopReason.SHUTDOWN],
  ] as const)("maps stopping with reason %s", (reason, expected) => {
    const kind = roundTrip({ process: "p", kind: "stopping", pid: 9, signal: "SIGTERM", reason });
    expect(kind).toMatchObject({
      case: "stopping",
      value: { pid: 9, signal: "SIGTERM", reason: expected },
    });
  });

  it("maps killed", () => {
    const kind = roundTrip({ process: "p", kind: "killed", pid: 9, signal: "SIGKILL" });
    expect(kind).toMatchObject({ case: "killed", value: { pid: 9, signal: "SIGKILL" } });
  });

  it("maps stopped with its reason", () => {
    const kind = roundTrip({ process: "p", kind: "stopped", reason: "shutdown" });
    expect(kind).toMatchObject({ case: "stopped", value: { reason: StopReason.SHUTDOWN } });
  });

  it("maps spawnFailed to spawn_failed", () => {
    const kind = roundTrip({ process: "p", kind: "spawnFailed", error: "spawn ENOENT" });
    expect(kind).toMatchObject({ case: "spawnFailed", value: { error: "spawn ENOENT" } });
  });

  it.each([
    ["stdout", OutputStream.STDOUT],
    ["stderr", OutputStream.STDERR],
  ] as const)("maps output on %s", (stream, expected) => {
    const kind = roundTrip(
      { process: "p", kind: "output", stream, line: "h\u00e9llo \ufffd", partial: true },
      2n ** 63n,
    );
    expect(kind).toMatchObject({
      case: "output",
      value: { stream: expected, line: "h\u00e9llo \ufffd", partial: true },
    });
  });
});
