// What procmonctl prints for people: process lines, the `ls` table, the `get`
// details and one line per event. Every function is pure: the current time
// is passed in, so the output of a given answer is fixed. So is how the
// daemon's strings are shown (`safe`): each one is escaped on its own,
// before the layout, so that the newlines and padding the CLI adds stay as
// they are and columns line up on what is actually printed.
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  DependencyCondition,
  type Event,
  type ExitStatus,
  OutputStream,
  type Process,
  type ProcessSpec,
  type ReadinessProbe,
  RestartPolicy,
  State,
  StopReason,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { noPaint, type Paint, type Style, stateStyle } from "./colors.js";
import { durationToMs, formatCpuSeconds, formatDuration, formatElapsed } from "./durations.js";
import { formatBytes, formatSize } from "./sizes.js";
import type { Escape } from "./terminal-text.js";

/** How `ls` and `get` lay a process out. */
export interface ProcessFormat {
  /** Show the CPU time and memory of each tree (the answer was asked with include_stats). Defaults to false. */
  readonly includeStats?: boolean;
  /** How the CLI's state words are coloured. Defaults to none. */
  readonly paint?: Paint;
}

/** A table cell: text, or one of the CLI's own words with the style it is painted in. */
export type Cell = string | { readonly text: string; readonly style: Style | undefined };

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
  [StopReason.MEMORY]: "memory over max rss",
};

/** As `--restart` takes them; unset is always. */
const RESTART_NAMES: Readonly<Record<RestartPolicy, string>> = {
  [RestartPolicy.UNSPECIFIED]: "always",
  [RestartPolicy.ALWAYS]: "always",
  [RestartPolicy.ON_FAILURE]: "on-failure",
  [RestartPolicy.NEVER]: "never",
};

/** As `--depends-on NAME:CONDITION` takes them; unset is started. */
const CONDITION_NAMES: Readonly<Record<DependencyCondition, string>> = {
  [DependencyCondition.UNSPECIFIED]: "started",
  [DependencyCondition.STARTED]: "started",
  [DependencyCondition.READY]: "ready",
  [DependencyCondition.EXITED_OK]: "exited-ok",
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

/** What a waiting process waits for, as `waiting for db, migrate`; empty otherwise. */
export function waitingFor(process: Process, safe: Escape): string {
  if (process.state !== State.WAITING || process.waitingFor.length === 0) return "";
  return `waiting for ${process.waitingFor.map(safe).join(", ")}`;
}

/** What follows a process's row or line: when a backoff restarts, or what a waiting one waits for. */
function stateNote(process: Process, nowMs: number, safe: Escape): string {
  return nextRestart(process, nowMs) || waitingFor(process, safe);
}

/** The CPU time of a process's tree, `1.2s`; `-` without a run to measure. */
export function cpuUsage(process: Process): string {
  return process.pid === 0 ? "-" : formatCpuSeconds(process.cpuSeconds);
}

/** The resident memory of a process's tree, `12.3 MiB`; `-` without a run to measure. */
export function memoryUsage(process: Process): string {
  return process.pid === 0 ? "-" : formatBytes(process.rssBytes);
}

/**
 * Lays `rows` out in columns two spaces apart, every column as wide as its
 * widest cell; trailing spaces are trimmed. A styled cell is measured and
 * padded as its text, then painted (the padding is not), so colour codes
 * never shift a column.
 */
export function table(rows: readonly (readonly Cell[])[], paint: Paint = noPaint): string {
  const textOf = (cell: Cell) => (typeof cell === "string" ? cell : cell.text);
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, textOf(cell).length);
    });
  }
  return rows
    .map((row) => {
      const cells = row.map((cell, i) => {
        const text = textOf(cell);
        const padding = i === row.length - 1 ? "" : " ".repeat((widths[i] ?? 0) - text.length);
        return typeof cell === "string" ? text + padding : paint(text, cell.style) + padding;
      });
      return cells.join("  ").trimEnd();
    })
    .join("\n");
}

/**
 * The `ls` table: a header and one row per process, with CPU and MEM after
 * UPTIME when `includeStats`; a backoff's restart time, or what a waiting
 * process waits for, trails its row.
 */
export function processTable(
  processes: readonly Process[],
  nowMs: number,
  safe: Escape,
  format: ProcessFormat = {},
): string {
  const stats = format.includeStats ?? false;
  const header: Cell[] = ["NAME", "STATE", "PID", "UPTIME"];
  if (stats) header.push("CPU", "MEM");
  header.push("RESTARTS", "LAST EXIT");
  const rows = processes.map((p) => {
    const row: Cell[] = [
      safe(p.spec?.name ?? "?"),
      { text: stateName(p.state), style: stateStyle(p.state) },
      p.pid === 0 ? "-" : String(p.pid),
      uptime(p, nowMs),
    ];
    if (stats) row.push(cpuUsage(p), memoryUsage(p));
    row.push(String(p.restartCount), exitSummary(p.lastExit, safe));
    const note = stateNote(p, nowMs, safe);
    return note === "" ? row : [...row, note];
  });
  return table([header, ...rows], format.paint);
}

/**
 * One line about a process: `web running pid 1234`, `web stopped (SIGTERM)`,
 * `web backoff (exit 1), restart in 2s`, `api waiting for db, migrate`.
 */
export function processLine(
  process: Process,
  nowMs: number,
  safe: Escape,
  paint: Paint = noPaint,
): string {
  const name = safe(process.spec?.name ?? "?");
  const waiting = waitingFor(process, safe);
  if (waiting !== "") {
    const word = stateName(State.WAITING);
    return `${name} ${paint(word, stateStyle(State.WAITING))}${waiting.slice(word.length)}`;
  }
  const state = paint(stateName(process.state), stateStyle(process.state));
  const pid = process.pid === 0 ? "" : ` pid ${process.pid}`;
  const lastExit = exitSummary(process.lastExit, safe);
  const how = process.state === State.RUNNING || lastExit === "-" ? "" : ` (${lastExit})`;
  const next = nextRestart(process, nowMs);
  return `${name} ${state}${pid}${how}${next === "" ? "" : `, ${next}`}`;
}

/**
 * What `get` prints: every field of the process, one per line; a field that
 * is unset or means nothing here (success codes under a policy other than
 * on-failure) is left out. With `includeStats`, the tree's CPU and memory.
 */
export function processDetails(
  process: Process,
  nowMs: number,
  safe: Escape,
  format: ProcessFormat = {},
): string {
  const spec = process.spec;
  const rows: [string, string][] = [
    ["name", safe(spec?.name ?? "?")],
    ["state", stateName(process.state)],
    ["pid", process.pid === 0 ? "-" : String(process.pid)],
    ["uptime", uptime(process, nowMs)],
    ["started", process.startedAt ? localTimestamp(timestampDate(process.startedAt)) : "-"],
    ["restarts", String(process.restartCount)],
    ["last exit", exitSummary(process.lastExit, safe)],
  ];
  const next = nextRestart(process, nowMs);
  if (next !== "") rows.push(["next", next]);
  if (process.waitingFor.length > 0) {
    rows.push(["waiting for", process.waitingFor.map(safe).join(", ")]);
  }
  // Ready is about the current run; a process with a probe says "no" between runs too.
  if (spec?.ready !== undefined || process.state === State.RUNNING) {
    rows.push(["ready", process.ready ? "yes" : "no"]);
  }
  if (process.lastSpawnError !== "") rows.push(["spawn error", safe(process.lastSpawnError)]);
  if (format.includeStats) rows.push(["cpu", cpuUsage(process)], ["memory", memoryUsage(process)]);
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
  if (spec) rows.push(...policyRows(spec, safe));
  return table(rows.map(([key, value]) => [`${key}:`, value]));
}

/** The `get` lines of the end policy, the dependencies, the probe and the memory cap. */
function policyRows(spec: ProcessSpec, safe: Escape): [string, string][] {
  const rows: [string, string][] = [
    ["stop signal", safe(spec.stopSignal || "SIGTERM")],
    ["restart policy", RESTART_NAMES[spec.restart] ?? `policy ${spec.restart}`],
  ];
  if (spec.restart === RestartPolicy.ON_FAILURE) {
    const codes = spec.successExitCodes.length > 0 ? spec.successExitCodes : [0];
    rows.push(["success codes", codes.join(",")]);
  }
  if (spec.maxInstantDeaths > 0) {
    rows.push(["give up after", `${spec.maxInstantDeaths} instant deaths in a row`]);
  }
  if (spec.dependsOn.length > 0) {
    const deps = spec.dependsOn.map(
      (d) => `${safe(d.name)} (${CONDITION_NAMES[d.condition] ?? `condition ${d.condition}`})`,
    );
    rows.push(["depends on", deps.join(", ")]);
  }
  if (spec.ready) rows.push(["ready check", probeSummary(spec.ready, safe)]);
  if (spec.maxRssBytes > 0n) rows.push(["max rss", formatSize(spec.maxRssBytes)]);
  return rows;
}

/**
 * A readiness probe in a line: `tcp 127.0.0.1:5432 every 1s, timeout 1s`,
 * with `, first after 2s` when it has an initial delay; unset timings are
 * the daemon's defaults, 1s.
 */
export function probeSummary(probe: ReadinessProbe, safe: Escape): string {
  let check: string;
  switch (probe.check.case) {
    case "exec":
      check = `exec ${safe(quoteArgs(probe.check.value.args))}`;
      break;
    case "tcp": {
      const host = probe.check.value.host || "127.0.0.1";
      check = `tcp ${safe(host.includes(":") ? `[${host}]` : host)}:${probe.check.value.port}`;
      break;
    }
    case "http":
      check = `http ${safe(probe.check.value.url)}`;
      break;
    default:
      check = "no check";
  }
  const second = (d: typeof probe.period) => (d === undefined ? "1s" : formatDuration(d));
  const delay = durationToMs(probe.initialDelay) > 0;
  const first = delay ? `, first after ${formatDuration(probe.initialDelay)}` : "";
  return `${check} every ${second(probe.period)}, timeout ${second(probe.timeout)}${first}`;
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
    case "ready":
      return "ready";
    case "unready":
      return `unready: ${safe(kind.value.error)}`;
    case "waiting":
      return `waiting for ${kind.value.names.map(safe).join(", ")}`;
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

/** Local wall-clock time with milliseconds, as `watch` shows an event's: `12:00:01.123`. */
export function clockTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const ms = String(date.getMilliseconds()).padStart(3, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${ms}`;
}

/**
 * A moment as `get` shows it: the local date, then the same clock time as
 * `watch` (local, with milliseconds), `2030-01-01 12:00:01.123`; a start can
 * be days old, so the date is kept.
 */
export function localTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const day = `${String(date.getFullYear()).padStart(4, "0")}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  return `${day} ${clockTime(date)}`;
}

/** argv as a shell would read it back: words with special characters in single quotes. */
export function quoteArgs(args: readonly string[]): string {
  return args
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`))
    .join(" ");
}
