// What procmonctl prints for people: process lines, the `ls` table, the `get`
// details and one line per event. Every function is pure: the current time
// is passed in, so the output of a given answer is fixed. So is how the
// daemon's strings are shown (`safe`): each one is escaped on its own,
// before the layout, so that the newlines and padding the CLI adds stay as
// they are and columns line up on what is actually printed.
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  type ExitStatus,
  OutputStream,
  type Process,
  State,
  StopReason,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { durationToMs, formatDuration, formatElapsed } from "./durations.js";
import type { Escape } from "./terminal-text.js";

const STATE_NAMES: Readonly<Record<State, string>> = {
  [State.UNSPECIFIED]: "unknown",
  [State.RUNNING]: "running",
  [State.BACKOFF]: "backoff",
  [State.STOPPING]: "stopping",
  [State.STOPPED]: "stopped",
  [State.WAITING]: "waiting",
  [State.EXITED]: "exited",
  [State.FAILED]: "failed",
};

const STOP_REASONS: Readonly<Record<StopReason, string>> = {
  [StopReason.UNSPECIFIED]: "unknown reason",
  [StopReason.STOP]: "stop",
  [StopReason.REMOVE]: "remove",
  [StopReason.RESTART]: "restart",
  [StopReason.SHUTDOWN]: "shutdown",
  [StopReason.MEMORY]: "memory",
};

/** The state as a lowercase word: running, backoff, stopping, stopped, exited, failed... */
export function stateName(state: State): string {
  return STATE_NAMES[state] ?? `state ${state}`;
}

/** How a run ended, in short: `exit 3`, `SIGKILL`, or `-` if it has not ended. */
export function exitSummary(status: ExitStatus | undefined, safe: Escape): string {
  switch (status?.status.case) {
    case "exitCode":
      return `exit ${status.status.value}`;
    case "signal":
      return safe(status.status.value);
    default:
      return "-";
  }
}

/** How long the current run has lasted, for a running process; `-` otherwise. */
export function uptime(process: Process, nowMs: number): string {
  if (process.state !== State.RUNNING || process.startedAt === undefined) return "-";
  return formatElapsed(nowMs - timestampMs(process.startedAt));
}

/** When a process in backoff restarts, as `restart in 2s`; empty otherwise. */
export function nextRestart(process: Process, nowMs: number): string {
  if (process.state !== State.BACKOFF || process.nextRestartAt === undefined) return "";
  const inMs = timestampMs(process.nextRestartAt) - nowMs;
  return inMs > 0 ? `restart in ${formatElapsed(inMs)}` : "restart due now";
}

/**
 * Lays `rows` out in columns two spaces apart, every column as wide as its
 * widest cell; trailing spaces are trimmed.
 */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** The `ls` table: a header and one row per process; a backoff's restart time trails its row. */
export function processTable(processes: readonly Process[], nowMs: number, safe: Escape): string {
  const header = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"];
  const rows = processes.map((p) => {
    const row = [
      safe(p.spec?.name ?? "?"),
      stateName(p.state),
      p.pid === 0 ? "-" : String(p.pid),
      uptime(p, nowMs),
      String(p.restartCount),
      exitSummary(p.lastExit, safe),
    ];
    const next = nextRestart(p, nowMs);
    return next === "" ? row : [...row, next];
  });
  return table([header, ...rows]);
}

/** One line about a process: `web running pid 1234`, `web stopped (SIGTERM)`, `web backoff (exit 1), restart in 2s`. */
export function processLine(process: Process, nowMs: number, safe: Escape): string {
  const name = safe(process.spec?.name ?? "?");
  const state = stateName(process.state);
  const pid = process.pid === 0 ? "" : ` pid ${process.pid}`;
  const lastExit = exitSummary(process.lastExit, safe);
  const how = process.state === State.RUNNING || lastExit === "-" ? "" : ` (${lastExit})`;
  const next = nextRestart(process, nowMs);
  return `${name} ${state}${pid}${how}${next === "" ? "" : `, ${next}`}`;
}

/** What `get` prints: every field of the process, one per line. */
export function processDetails(process: Process, nowMs: number, safe: Escape): string {
  const spec = process.spec;
  const rows: [string, string][] = [
    ["name", safe(spec?.name ?? "?")],
    ["state", stateName(process.state)],
    ["pid", process.pid === 0 ? "-" : String(process.pid)],
    ["uptime", uptime(process, nowMs)],
    ["started", process.startedAt ? timestampDate(process.startedAt).toISOString() : "-"],
    ["restarts", String(process.restartCount)],
    ["last exit", exitSummary(process.lastExit, safe)],
  ];
  const next = nextRestart(process, nowMs);
  if (next !== "") rows.push(["next", next]);
  if (process.lastSpawnError !== "") rows.push(["spawn error", safe(process.lastSpawnError)]);
  rows.push(["restart delay", formatDuration(process.restartDelay)]);
  rows.push(["command", safe(quoteArgs(spec?.args ?? []))]);
  if (spec?.cwd) rows.push(["cwd", safe(spec.cwd)]);
  const env = Object.entries(spec?.env ?? {}).map(([k, v]) => `${k}=${v}`);
  if (env.length > 0 || spec?.clearEnv) {
    rows.push(["env", `${spec?.clearEnv ? "(cleared) " : ""}${safe(quoteArgs(env))}`.trimEnd()]);
  }
  if (spec?.uid !== undefined) rows.push(["uid", String(spec.uid)]);
  if (spec?.gid !== undefined) rows.push(["gid", String(spec.gid)]);
  rows.push(
    ["threshold", formatDuration(spec?.threshold)],
    ["kill time", formatDuration(spec?.killTime)],
    ["min restart delay", formatDuration(spec?.minRestartDelay)],
    ["max restart delay", formatDuration(spec?.maxRestartDelay)],
  );
  return table(rows.map(([key, value]) => [`${key}:`, value]));
}

/** One line per event: `12:00:01.123  #42  web  started pid 1234`. */
export function eventLine(event: Event, safe: Escape): string {
  const time = event.time ? clockTime(timestampDate(event.time)) : "--:--:--.---";
  return `${time}  #${event.seq}  ${safe(event.process)}  ${eventSummary(event, safe)}`;
}

/** What happened, in words: `started pid 1234`, `exited code 3 after 12ms (instant)`. */
export function eventSummary(event: Event, safe: Escape): string {
  const kind = event.kind;
  switch (kind.case) {
    case "added":
      return `added: ${safe(quoteArgs(kind.value.spec?.args ?? []))}`;
    case "removed":
      return "removed";
    case "started":
      return `started pid ${kind.value.pid}`;
    case "exited": {
      const status = kind.value.status?.status;
      const uptimeMs = durationToMs(kind.value.uptime ?? kind.value.status?.uptime);
      const words = ["exited"];
      if (status?.case === "exitCode") words.push(`code ${status.value}`);
      else if (status?.case === "signal") words.push(`by ${safe(status.value)}`);
      words.push(`after ${formatElapsed(uptimeMs)}`);
      if (kind.value.instant) words.push("(instant)");
      return words.join(" ");
    }
    case "restartScheduled":
      return `restart in ${formatElapsed(durationToMs(kind.value.delay))}`;
    case "stopping":
      return `stopping pid ${kind.value.pid}: ${safe(kind.value.signal)} (${STOP_REASONS[kind.value.reason] ?? "unknown reason"})`;
    case "killed":
      return `killed pid ${kind.value.pid}: ${safe(kind.value.signal)} after the kill time`;
    case "stopped":
      return `stopped (${STOP_REASONS[kind.value.reason] ?? "unknown reason"})`;
    case "gaveUp":
      return `gave up after ${kind.value.instantDeaths} instant deaths in a row`;
    case "spawnFailed":
      return `spawn failed: ${safe(kind.value.error)}`;
    case "output": {
      const stream = kind.value.stream === OutputStream.STDERR ? "stderr" : "stdout";
      return `output ${stream}: ${safe(kind.value.line)}${kind.value.partial ? " (partial)" : ""}`;
    }
    default:
      return "unknown event";
  }
}

/** Local wall-clock time with milliseconds: `12:00:01.123`. */
export function clockTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const ms = String(date.getMilliseconds()).padStart(3, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${ms}`;
}

/** argv as a shell would read it back: words with special characters in single quotes. */
export function quoteArgs(args: readonly string[]): string {
  return args
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`))
    .join(" ");
}
