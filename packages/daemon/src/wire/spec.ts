// ProcessSpec between the wire (and its JSON form, the state file's) and the
// core: the only place that knows both. A new field with a default is added
// here, in the core's SpecInput and ProcessSpec, and in its rule.
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  type ProcessSpec as ProcessSpecProto,
  ProcessSpecSchema,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { SpecInput } from "../core/spec.js";
import type { ProcessSpec } from "../core/types.js";
import { exactMsOf, msToDuration } from "./time.js";

/** What a wire spec asks for, for the core's rules to check; undefined when it is unset. */
export function specInputFromProto(spec: ProcessSpecProto | undefined): SpecInput | undefined {
  if (spec === undefined) return undefined;
  return {
    name: spec.name,
    args: spec.args,
    env: spec.env,
    clearEnv: spec.clearEnv,
    cwd: spec.cwd,
    uid: spec.uid,
    gid: spec.gid,
    thresholdMs: exactMsOf(spec.threshold),
    killTimeMs: exactMsOf(spec.killTime),
    minRestartDelayMs: exactMsOf(spec.minRestartDelay),
    maxRestartDelayMs: exactMsOf(spec.maxRestartDelay),
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

/** Specs are immutable: each one's JSON form is computed once. */
const jsonCache = new WeakMap<ProcessSpec, JsonValue>();

/** The spec in ProcessSpec's canonical JSON form, as the state file holds it. */
export function specToJson(spec: ProcessSpec): JsonValue {
  let json = jsonCache.get(spec);
  if (json === undefined) {
    json = toJson(ProcessSpecSchema, specToProto(spec));
    jsonCache.set(spec, json);
  }
  return json;
}

/**
 * A spec in ProcessSpec's JSON form (the state file's, or a config entry's
 * once its durations are in that form), for the core's rules to check.
 * @throws Error from protobuf-es naming what does not decode.
 */
export function specInputFromJson(json: unknown): SpecInput {
  return specInputFromProto(fromJson(ProcessSpecSchema, json as JsonValue)) as SpecInput;
}
