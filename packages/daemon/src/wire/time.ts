// Durations and timestamps between the core's milliseconds and the wire's
// google.protobuf types, always whole milliseconds so that they serialize.
import { create } from "@bufbuild/protobuf";
import {
  type Duration,
  DurationSchema,
  type Timestamp,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import { durationToExactMs, roundMs } from "@procmon/api/duration";

/** A Duration in whole milliseconds, rounded to the nearest, as procmon's timers run it. */
export function durationToMs(duration: Duration): number {
  return roundMs(durationToExactMs(duration));
}

/** A Duration in (possibly fractional) milliseconds, exactly as sent; undefined when unset. */
export function exactMsOf(duration: Duration | undefined): number | undefined {
  return duration === undefined ? undefined : durationToExactMs(duration);
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
