// Core events in their wire form (protobuf-es messages). The output lines'
// hand encoder (wire/event-encoding.ts) writes the same bytes faster.
import { create } from "@bufbuild/protobuf";
import {
  type Event,
  EventSchema,
  OutputLineSchema,
  OutputStream,
  ProcessAddedSchema,
  ProcessExitedSchema,
  ProcessGaveUpSchema,
  ProcessKilledSchema,
  ProcessReadySchema,
  ProcessRemovedSchema,
  ProcessStartedSchema,
  ProcessStoppedSchema,
  ProcessStoppingSchema,
  ProcessUnreadySchema,
  ProcessWaitingSchema,
  RestartScheduledSchema,
  SpawnFailedSchema,
  StopReason as StopReasonProto,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { CoreEvent } from "../core/events.js";
import type { OutputStreamName } from "../core/spawner.js";
import type { StopReason } from "../core/types.js";
import { exitStatusToProto } from "./process.js";
import { specToProto } from "./spec.js";
import { msToDuration, msToTimestamp } from "./time.js";

const STOP_REASON: Readonly<Record<StopReason, StopReasonProto>> = {
  stop: StopReasonProto.STOP,
  remove: StopReasonProto.REMOVE,
  restart: StopReasonProto.RESTART,
  shutdown: StopReasonProto.SHUTDOWN,
  memory: StopReasonProto.MEMORY,
};

/** The wire enum of each output stream. */
export const OUTPUT_STREAM: Readonly<Record<OutputStreamName, OutputStream>> = {
  stdout: OutputStream.STDOUT,
  stderr: OutputStream.STDERR,
};

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
    case "gaveUp":
      return {
        case: "gaveUp",
        value: create(ProcessGaveUpSchema, { instantDeaths: event.instantDeaths }),
      };
    case "ready":
      return { case: "ready", value: create(ProcessReadySchema) };
    case "unready":
      return { case: "unready", value: create(ProcessUnreadySchema, { error: event.error }) };
    case "waiting":
      return { case: "waiting", value: create(ProcessWaitingSchema, { names: [...event.names] }) };
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
