// What addProcess takes, friendlier than the generated init shape: durations
// as "5s" or milliseconds, maxRssBytes as a number, and name and args
// required. Everything is checked and converted here, before any call, with
// procmon's one duration codec (@procmon/api/duration).
import { create, isMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import { DurationError, durationProblem, parseDuration } from "@procmon/api/duration";
import {
  type ProcessSpec,
  ProcessSpecSchema,
  type ReadinessProbe,
  ReadinessProbeSchema,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { Code, ProcmonError } from "./errors.js";

/**
 * A duration as the SDK takes it: procmon's syntax (`"500ms"`, `"5s"`,
 * `"1m30s"`), a number of milliseconds (fractions allowed), or a
 * google.protobuf.Duration (a message or `{ seconds: 5n }`, sent as is).
 */
export type DurationInput = string | number | MessageInitShape<typeof DurationSchema>;

/** The spec fields that are durations. */
type SpecDurationField = "threshold" | "killTime" | "minRestartDelay" | "maxRestartDelay";
/** The readiness probe's fields that are durations. */
type ProbeDurationField = "period" | "timeout" | "initialDelay";

type ProbeFields = Exclude<MessageInitShape<typeof ReadinessProbeSchema>, ReadinessProbe>;
type SpecFields = Exclude<MessageInitShape<typeof ProcessSpecSchema>, ProcessSpec>;

/** A readiness probe as a message, or a plain object whose durations may be `"5s"` or ms. */
export type ReadinessProbeInit =
  | ReadinessProbe
  | (Omit<ProbeFields, ProbeDurationField> & {
      [F in ProbeDurationField]?: DurationInput | undefined;
    });

/**
 * What addProcess takes: a ProcessSpec message, or a plain object with
 * `name` and `args` required whose durations may be `"5s"` or ms and whose
 * `maxRssBytes` may be a number. (The generated init shape, every field
 * optional, is `MessageInitShape<typeof ProcessSpecSchema>`.)
 */
export type ProcessSpecInit =
  | ProcessSpec
  | (Omit<SpecFields, SpecDurationField | "name" | "args" | "ready" | "maxRssBytes"> & {
      /** The process's unique name. */
      name: string;
      /** The executable and its arguments. */
      args: string[];
      /** The readiness probe. */
      ready?: ReadinessProbeInit | undefined;
      /** The memory cap in bytes, a bigint or a safe integer; 0, the default, is none. */
      maxRssBytes?: bigint | number | undefined;
    } & { [F in SpecDurationField]?: DurationInput | undefined });

/**
 * Checks and converts a spec as the SDK takes it into a ProcessSpec message.
 * @throws ProcmonError INVALID_ARGUMENT naming the field, for a duration
 *   string procmon cannot read, a number of ms that is not a positive
 *   duration within procmon's limit, or a maxRssBytes that is not a
 *   non-negative integer.
 */
export function createProcessSpec(init: ProcessSpecInit): ProcessSpec {
  if (isMessage(init, ProcessSpecSchema)) return init;
  const { threshold, killTime, minRestartDelay, maxRestartDelay, ready, maxRssBytes, ...rest } =
    init;
  const spec = create(ProcessSpecSchema, rest);
  const durations = { threshold, killTime, minRestartDelay, maxRestartDelay };
  for (const [field, value] of Object.entries(durations)) {
    if (value !== undefined) spec[field as SpecDurationField] = durationOf(field, value);
  }
  if (ready !== undefined) spec.ready = probeOf(ready);
  if (maxRssBytes !== undefined) spec.maxRssBytes = bytesOf("maxRssBytes", maxRssBytes);
  return spec;
}

function probeOf(init: ReadinessProbeInit): ReadinessProbe {
  if (isMessage(init, ReadinessProbeSchema)) return init;
  const { period, timeout, initialDelay, ...rest } = init;
  const probe = create(ReadinessProbeSchema, rest);
  for (const [field, value] of Object.entries({ period, timeout, initialDelay })) {
    if (value !== undefined)
      probe[field as ProbeDurationField] = durationOf(`ready.${field}`, value);
  }
  return probe;
}

/** `value` as a Duration, or an INVALID_ARGUMENT naming `field`. */
function durationOf(field: string, value: DurationInput): Duration {
  if (typeof value === "string") {
    try {
      return parseDuration(value);
    } catch (err) {
      if (err instanceof DurationError) throw invalid(`${field}: ${err.message}`, err);
      throw err;
    }
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw invalid(`${field}: ${value} is not a number of milliseconds`);
    const problem = durationProblem(value);
    if (problem !== undefined) throw invalid(`${field}: ${value} ms ${problem}`);
    const nanos = BigInt(Math.round(value * 1e6));
    return create(DurationSchema, {
      seconds: nanos / 1_000_000_000n,
      nanos: Number(nanos % 1_000_000_000n),
    });
  }
  return create(DurationSchema, value);
}

/** `value` as a uint64, or an INVALID_ARGUMENT naming `field`. */
function bytesOf(field: string, value: bigint | number): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw invalid(`${field}: ${value} is not a whole number of bytes (pass a bigint past 2^53)`);
  }
  const bytes = BigInt(value);
  if (bytes < 0n || bytes >= 2n ** 64n) throw invalid(`${field}: ${value} is not a uint64`);
  return bytes;
}

function invalid(message: string, cause?: unknown): ProcmonError {
  return new ProcmonError(Code.INVALID_ARGUMENT, message, cause === undefined ? {} : { cause });
}
