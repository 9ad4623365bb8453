// ProcessSpec between the wire (and its JSON form, the state file's) and the
// core: the only place that knows both. A new field with a default is added
// here, in the core's SpecInput and ProcessSpec, and in its rule.
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  DependencyCondition as ConditionProto,
  DependencySchema,
  type ReadinessProbe as ProbeProto,
  type ProcessSpec as ProcessSpecProto,
  ProcessSpecSchema,
  ReadinessProbeSchema,
  RestartPolicy as RestartPolicyProto,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { ProcmonError } from "../core/errors.js";
import type { ProbeInput, SpecInput } from "../core/spec.js";
import type {
  DependencyCondition,
  ProcessSpec,
  ReadinessProbe,
  RestartPolicy,
} from "../core/types.js";
import { exactMsOf, msToDuration } from "./time.js";

const RESTART: Readonly<Record<RestartPolicy, RestartPolicyProto>> = {
  always: RestartPolicyProto.ALWAYS,
  "on-failure": RestartPolicyProto.ON_FAILURE,
  never: RestartPolicyProto.NEVER,
};

/** The core's restart policy of a wire one; undefined when unset. */
function restartFromProto(policy: RestartPolicyProto): RestartPolicy | undefined {
  return fromEnum(
    RESTART,
    policy,
    "restart",
    "RestartPolicy: RESTART_POLICY_ALWAYS, RESTART_POLICY_ON_FAILURE or RESTART_POLICY_NEVER",
  );
}

const CONDITION: Readonly<Record<DependencyCondition, ConditionProto>> = {
  started: ConditionProto.STARTED,
  ready: ConditionProto.READY,
  "exited-ok": ConditionProto.EXITED_OK,
};

/** The core's name of a wire enum value; undefined for unset, an error naming `field` for an unknown one. */
function fromEnum<K extends string, V extends number>(
  table: Readonly<Record<K, V>>,
  value: V,
  field: string,
  type: string,
): K | undefined {
  if (value === 0) return undefined;
  const found = (Object.keys(table) as K[]).find((k) => table[k] === value);
  if (found === undefined) {
    throw new ProcmonError("invalid_argument", `${field} ${value} is not a ${type}`);
  }
  return found;
}

function probeFromProto(probe: ProbeProto): ProbeInput {
  const { check } = probe;
  return {
    check:
      check.case === "exec"
        ? { kind: "exec", args: check.value.args }
        : check.case === "tcp"
          ? { kind: "tcp", host: check.value.host, port: check.value.port }
          : check.case === "http"
            ? { kind: "http", url: check.value.url }
            : undefined,
    periodMs: exactMsOf(probe.period),
    timeoutMs: exactMsOf(probe.timeout),
    initialDelayMs: exactMsOf(probe.initialDelay),
  };
}

function probeToProto(probe: ReadinessProbe): ProbeProto {
  const { check } = probe;
  return create(ReadinessProbeSchema, {
    check:
      check.kind === "exec"
        ? { case: "exec", value: { args: [...check.args] } }
        : check.kind === "tcp"
          ? { case: "tcp", value: { host: check.host, port: check.port } }
          : { case: "http", value: { url: check.url } },
    period: msToDuration(probe.periodMs),
    timeout: msToDuration(probe.timeoutMs),
    initialDelay: msToDuration(probe.initialDelayMs),
  });
}

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
    restart: restartFromProto(spec.restart),
    successExitCodes: spec.successExitCodes,
    maxInstantDeaths: spec.maxInstantDeaths,
    stopSignal: spec.stopSignal,
    dependsOn: spec.dependsOn.map((dep, i) => ({
      name: dep.name,
      condition: fromEnum(
        CONDITION,
        dep.condition,
        `depends_on[${i}].condition`,
        "DependencyCondition",
      ),
    })),
    ready: spec.ready === undefined ? undefined : probeFromProto(spec.ready),
    maxRssBytes: Number(spec.maxRssBytes),
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
    restart: RESTART[spec.restart],
    successExitCodes: [...spec.successExitCodes],
    maxInstantDeaths: spec.maxInstantDeaths,
    stopSignal: spec.stopSignal,
    dependsOn: spec.dependsOn.map((dep) =>
      create(DependencySchema, { name: dep.name, condition: CONDITION[dep.condition] }),
    ),
    ...(spec.ready === undefined ? {} : { ready: probeToProto(spec.ready) }),
    maxRssBytes: BigInt(spec.maxRssBytes),
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
