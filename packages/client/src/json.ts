// Responses as plain JSON: protobuf JSON (durations "5s", timestamps RFC 3339,
// 64-bit integers as strings, enums by name), so that JSON.stringify never
// meets a BigInt.
import {
  createRegistry,
  type JsonObject,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
  toJson,
} from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  EventSchema,
  file_procmon_v1_procmon,
  type Process,
  ProcessSchema,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { ProcessList } from "./client.js";

/** How the helpers write JSON; implicit (default) fields are written unless told otherwise. */
export type ToJsonOptions = Partial<JsonWriteOptions>;

const registry = createRegistry(file_procmon_v1_procmon, DurationSchema, TimestampSchema);

// Scripts see a stable shape: pid 0 and STATE_STOPPED are written, not left out.
const withDefaults = (options: ToJsonOptions): ToJsonOptions => ({
  alwaysEmitImplicit: true,
  ...options,
});

/** A Process as plain JSON. */
export function processToJson(process: Process, options: ToJsonOptions = {}): JsonObject {
  return toJson(ProcessSchema, process, withDefaults(options)) as JsonObject;
}

/** An Event as plain JSON. */
export function eventToJson(event: Event, options: ToJsonOptions = {}): JsonObject {
  return toJson(EventSchema, event, withDefaults(options)) as JsonObject;
}

/** listProcesses()'s answer as plain JSON: `lastEventSeq` as a string, as protobuf JSON writes a uint64. */
export function processListToJson(list: ProcessList, options: ToJsonOptions = {}): JsonObject {
  return {
    processes: list.processes.map((p) => processToJson(p, options)),
    lastEventSeq: String(list.lastEventSeq),
  };
}

/**
 * Any procmon.v1 message (or a Duration or Timestamp) as plain JSON, its
 * schema found by its type name.
 * @throws Error for a message of another package.
 */
export function toPlainJson(message: Message, options: ToJsonOptions = {}): JsonValue {
  const schema = registry.getMessage(message.$typeName);
  if (schema === undefined) throw new Error(`toPlainJson: unknown message ${message.$typeName}`);
  return toJson(schema, message, withDefaults(options));
}
