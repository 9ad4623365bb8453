import { create } from "@bufbuild/protobuf";
import {
  type Duration,
  DurationSchema,
  type Timestamp,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import { durationToExactMs, roundMs } from "@procmon/client/duration";
import {
  type Event,
  EventSchema,
  type ExitStatus as ExitStatusProto,
  ExitStatusSchema,
  OutputLineSchema,
  OutputStream,
  ProcessAddedSchema,
  ProcessExitedSchema,
  ProcessKilledSchema,
  type Process as ProcessProto,
  ProcessRemovedSchema,
  ProcessSchema,
  type ProcessSpec as ProcessSpecProto,
  ProcessSpecSchema,
  ProcessStartedSchema,
  ProcessStoppedSchema,
  ProcessStoppingSchema,
  RestartScheduledSchema,
  SpawnFailedSchema,
  State,
  StopReason as StopReasonProto,
} from "@procmon/client/gen/procmon/v1/procmon_pb.js";
import type { CoreEvent } from "../core/events.js";
import type { OutputStreamName } from "../core/spawner.js";
import type {
  ExitStatus,
  Policy,
  ProcessSpec,
  ProcessView,
  StateName,
  StopReason,
} from "../core/types.js";

const STATE: Readonly<Record<StateName, State>> = {
  running: State.RUNNING,
  backoff: State.BACKOFF,
  stopping: State.STOPPING,
  stopped: State.STOPPED,
};

const STOP_REASON: Readonly<Record<StopReason, StopReasonProto>> = {
  stop: StopReasonProto.STOP,
  remove: StopReasonProto.REMOVE,
  restart: StopReasonProto.RESTART,
  shutdown: StopReasonProto.SHUTDOWN,
};

/** The wire enum of each output stream. */
export const OUTPUT_STREAM: Readonly<Record<OutputStreamName, OutputStream>> = {
  stdout: OutputStream.STDOUT,
  stderr: OutputStream.STDERR,
};

/** A Duration in whole milliseconds, rounded to the nearest, as procmon's timers run it. */
export function durationToMs(duration: Duration): number {
  return roundMs(durationToExactMs(duration));
}

/**
 * A Duration of `ms` rounded to whole milliseconds: fractional nanos make
 * toBinary fail with an opaque error, so every Duration goes through here.
 */
export function msToDuration(ms: number): Duration {
  const whole = Math.round(finite(ms, "Duration"));
  const seconds = Math.trunc(whole / 1_000);
  // seconds and nanos must share a sign, and -0 nanos would not serialize.
  const nanos = (whole - seconds * 1_000) * 1e6 || 0;
  return create(DurationSchema, { seconds: BigInt(seconds), nanos });
}

/** A Timestamp of wall-clock `ms` rounded to whole milliseconds, so that it always serializes. */
export function msToTimestamp(ms: number): Timestamp {
  const { seconds, nanos } = timestampParts(ms);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos });
}

/** A Timestamp's seconds and nanos for wall-clock `ms`, rounded to the nearest ms. */
export function timestampParts(ms: number): { seconds: number; nanos: number } {
  const whole = Math.round(finite(ms, "Timestamp"));
  // Timestamp nanos are never negative: floor the seconds for pre-1970 times.
  const seconds = Math.floor(whole / 1_000);
  return { seconds, nanos: (whole - seconds * 1_000) * 1e6 };
}

function finite(ms: number, what: string): number {
  if (!Number.isFinite(ms)) throw new RangeError(`cannot make a ${what} of ${ms} ms`);
  return ms;
}

/**
 * A core spec from the wire, with unset durations taken from `defaults`;
 * converts only: validateSpec is what checks it.
 */
export function specFromProto(spec: ProcessSpecProto, defaults: Policy): ProcessSpec {
  const ms = (d: Duration | undefined, fallback: number): number =>
    d === undefined ? fallback : durationToMs(d);
  return {
    name: spec.name,
    args: [...spec.args],
    // fromEntries defines own properties, so a key like "__proto__" stays a key.
    env: Object.fromEntries(Object.entries(spec.env)),
    clearEnv: spec.clearEnv,
    cwd: spec.cwd,
    ...(spec.uid === undefined ? {} : { uid: spec.uid }),
    ...(spec.gid === undefined ? {} : { gid: spec.gid }),
    thresholdMs: ms(spec.threshold, defaults.thresholdMs),
    killTimeMs: ms(spec.killTime, defaults.killTimeMs),
    minRestartDelayMs: ms(spec.minRestartDelay, defaults.minRestartDelayMs),
    maxRestartDelayMs: ms(spec.maxRestartDelay, defaults.maxRestartDelayMs),
  };
}

/** The wire form of a core spec, every duration filled in (the normalised spec). */
export function specToProto(spec: ProcessSpec): ProcessSpecProto {
  return create(ProcessSpecSchema, {
    name: spec.name,
    args: [...spec.args],
    env: Object.fromEntries(Object.entries(spec.env)),
    clearEnv: spec.clearEnv,
    cwd: spec.cwd,
    ...(spec.uid === undefined ? {} : { uid: spec.uid }),
    ...(spec.gid === undefined ? {} : { gid: spec.gid }),
    threshold: msToDuration(spec.thresholdMs),
    killTime: msToDuration(spec.killTimeMs),
    minRestartDelay: msToDuration(spec.minRestartDelayMs),
    maxRestartDelay: msToDuration(spec.maxRestartDelayMs),
  });
}

/** The wire form of how a run ended: exit code or signal, and uptime. */
export function exitStatusToProto(status: ExitStatus): ExitStatusProto {
  return create(ExitStatusSchema, {
    status:
      status.code !== null
        ? { case: "exitCode", value: status.code }
        : status.signal !== null
          ? { case: "signal", value: status.signal }
          : { case: undefined },
    uptime: msToDuration(status.uptimeMs),
  });
}

/** The wire form of a process snapshot; next_restart_at is set in backoff only. */
export function processToProto(view: ProcessView): ProcessProto {
  return create(ProcessSchema, {
    spec: specToProto(view.spec),
    state: STATE[view.state],
    pid: view.pid,
    ...(view.startedAtWallMs === undefined
      ? {}
      : { startedAt: msToTimestamp(view.startedAtWallMs) }),
    restartCount: view.restartCount,
    ...(view.lastExit === undefined ? {} : { lastExit: exitStatusToProto(view.lastExit) }),
    ...(view.state === "backoff" && view.nextRestartAtWallMs !== undefined
      ? { nextRestartAt: msToTimestamp(view.nextRestartAtWallMs) }
      : {}),
    restartDelay: msToDuration(view.restartDelayMs),
    lastSpawnError: view.lastSpawnError ?? "",
  });
}

/** The wire form of a core event, numbered `seq` and stamped at wall-clock `timeWallMs`. */
export function eventToProto(event: CoreEvent, seq: bigint, timeWallMs: number): Event {
  return create(EventSchema, {
    seq,
    time: msToTimestamp(timeWallMs),
    process: event.process,
    kind: eventKind(event),
  });
}

function eventKind(event: CoreEvent): Event["kind"] {
  switch (event.kind) {
    case "added":
      return {
        case: "added",
        value: create(ProcessAddedSchema, { spec: specToProto(event.spec) }),
      };
    case "removed":
      return { case: "removed", value: create(ProcessRemovedSchema) };
    case "started":
      return { case: "started", value: create(ProcessStartedSchema, { pid: event.pid }) };
    case "exited":
      return {
        case: "exited",
        value: create(ProcessExitedSchema, {
          pid: event.pid,
          status: exitStatusToProto(event.status),
          uptime: msToDuration(event.status.uptimeMs),
          instant: event.instant,
        }),
      };
    case "restartScheduled":
      return {
        case: "restartScheduled",
        value: create(RestartScheduledSchema, {
          delay: msToDuration(event.delayMs),
          at: msToTimestamp(event.atWallMs),
        }),
      };
    case "stopping":
      return {
        case: "stopping",
        value: create(ProcessStoppingSchema, {
          pid: event.pid,
          signal: event.signal,
          reason: STOP_REASON[event.reason],
        }),
      };
    case "killed":
      return {
        case: "killed",
        value: create(ProcessKilledSchema, { pid: event.pid, signal: event.signal }),
      };
    case "stopped":
      return {
        case: "stopped",
        value: create(ProcessStoppedSchema, { reason: STOP_REASON[event.reason] }),
      };
    case "spawnFailed":
      return { case: "spawnFailed", value: create(SpawnFailedSchema, { error: event.error }) };
    case "output":
      return {
        case: "output",
        value: create(OutputLineSchema, {
          stream: OUTPUT_STREAM[event.stream],
          line: event.line,
          partial: event.partial,
        }),
      };
  }
}
