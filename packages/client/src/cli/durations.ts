// Durations for people reading the CLI's output: elapsed times (`12ms`,
// `3s`, `2m5s`, `1h2m`) and configured ones, exactly as they could be written
// on the command line. Reading them is the shared codec's (../duration.ts).
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationToExactMs, formatDurationNanos } from "@procmon/api/duration";

/** A google.protobuf.Duration in milliseconds (fractional); 0 when unset. */
export const durationToMs = durationToExactMs;

/**
 * Formats milliseconds for people, at the precision that matters at that
 * scale: `12ms` under a second, whole seconds under a minute (`3s`), then
 * `2m5s`, `1h2m` and `3d4h`.
 */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "0s";
  if (ms < 1_000) return `${Math.floor(ms)}ms`;
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return joinUnits(minutes, "m", seconds % 60, "s");
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return joinUnits(hours, "h", minutes % 60, "m");
  return joinUnits(Math.floor(hours / 24), "d", hours % 24, "h");
}

/**
 * Formats CPU time for people: tenths of a second under a minute (`0.3s`,
 * `12.5s`), then as {@link formatElapsed} (`2m5s`, `1h2m`).
 */
export function formatCpuSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "0.0s";
  return seconds < 60
    ? `${(Math.floor(seconds * 10) / 10).toFixed(1)}s`
    : formatElapsed(seconds * 1_000);
}

/**
 * Formats a configured duration (a timing of a spec) exactly, as it could be
 * written on the command line: `500ms`, `1.5s`, `1m30s`, `1h`; `-` when unset.
 */
export function formatDuration(duration: Duration | undefined): string {
  if (duration === undefined) return "-";
  return formatDurationNanos(duration.seconds * 1_000_000_000n + BigInt(duration.nanos));
}

function joinUnits(big: number, bigUnit: string, small: number, smallUnit: string): string {
  return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit}${small}${smallUnit}`;
}
