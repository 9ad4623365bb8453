import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatDurationMs, parseDurationMs } from "@procmon/api/duration";
import { defaultSocketPath } from "@procmon/api/socket";
import type { SpawnerChoice } from "./adapters/spawner-choice.js";
import { DEFAULT_LIMITS, type Limits } from "./control.js";
import { ProcmonError } from "./core/errors.js";
import { DEFAULT_POLICY, type Policy } from "./core/types.js";
import { DEFAULT_RETENTION, type Retention } from "./events/event-log.js";

/** Everything procmond is configured with. */
export interface DaemonOptions {
  /** The unix socket to serve on. Defaults to PROCMON_SOCKET, then the per-user default. */
  readonly socketPath: string;
  /** A YAML file of processes to add at start. */
  readonly configFile: string | undefined;
  /** Where the process list is persisted; undefined with --no-state-file. */
  readonly stateFile: string | undefined;
  /** Mode of the socket file. Defaults to 0o600. */
  readonly socketMode: number;
  /** Group id given the socket file, for a shared group; undefined to keep the daemon's. */
  readonly socketGroup: number | undefined;
  /** Caps against abuse. */
  readonly limits: Limits;
  /** The largest gRPC message accepted, in bytes. Defaults to 4 MiB. */
  readonly maxMessageBytes: number;
  /** The default timings of every process. */
  readonly policy: Policy;
  /** How often running processes are checked. Defaults to 60000. */
  readonly consistencyDelayMs: number;
  /** pino level. Defaults to "info". */
  readonly logLevel: string;
  /** How many events are kept for resuming watchers, and how many bytes of them. */
  readonly retention: Retention;
  /** systemd's notification socket (NOTIFY_SOCKET), told when the daemon is ready; undefined without. */
  readonly notifySocket: string | undefined;
  /** What spawns the children. Defaults to "auto": procmon-shim when it was built, else Node. */
  readonly spawner: SpawnerChoice;
  /** Bytes of output procmon-shim keeps per process while no daemon is attached. Defaults to 1 MiB. */
  readonly detachedOutputBuffer: number;
  /** How often the memory of processes with max_rss_bytes is read. Defaults to 5000. */
  readonly statsPeriodMs: number;
  /** Where each process's output also goes, as `<name>.log`; undefined: nowhere. */
  readonly logDir: string | undefined;
  /** A log file is rotated before it passes this. Defaults to 10 MiB. */
  readonly logMaxBytes: number;
  /** Rotated log files kept per process. Defaults to 5. */
  readonly logKeep: number;
}

/** The outcome of reading the command line. */
export type ParsedFlags =
  | { readonly kind: "run"; readonly options: DaemonOptions }
  | { readonly kind: "help" }
  | { readonly kind: "version" };

/**
 * One flag of procmond: what the usage says of it, and how its text is read
 * (undefined when it is not given: the reader returns the default, which the
 * usage shows). The table below is the only place a flag is written.
 */
interface Flag<T> {
  /** The value's placeholder in the usage (`PATH`, `D`); absent for a switch. */
  readonly value?: string;
  readonly help: string;
  /** The default as the usage shows it; absent when there is none to show. */
  readonly shown?: (env: NodeJS.ProcessEnv) => string;
  /** A one-letter alias. */
  readonly short?: string;
  read(text: string | undefined, env: NodeJS.ProcessEnv, name: string): T;
}

const invalid = (message: string) => new ProcmonError("invalid_argument", message);

/** A duration (the codec's syntax and limit), in ms. */
const duration = (help: string, fallbackMs: number): Flag<number> => ({
  value: "D",
  help,
  shown: () => formatDurationMs(fallbackMs),
  read(text, _env, name) {
    if (text === undefined) return fallbackMs;
    try {
      return parseDurationMs(text);
    } catch (err) {
      throw invalid(`--${name}: ${(err as Error).message}`);
    }
  },
});

/** A whole number of at least `min`. */
const whole = (help: string, fallback: number, min = 2, unit = ""): Flag<number> => ({
  value: "N",
  help,
  shown: () => (Number.isFinite(fallback) ? String(fallback) : "no limit"),
  read(text, _env, name) {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
      throw invalid(`--${name} must be a whole number${unit}, at least ${min}, got "${text}"`);
    }
    return n;
  },
});

/** A string, or undefined when not given. */
const text = (value: string, help: string): Flag<string | undefined> => ({
  value,
  help,
  read: (given) => given,
});

/** A switch. */
const toggle = (help: string, short?: string): Flag<boolean> => ({
  help,
  ...(short === undefined ? {} : { short }),
  read: (given) => given !== undefined,
});

/** A retention window holds at least 1 MiB: many lines of 64 KiB. */
const MIN_RETENTION_BYTES = 1024 * 1024;

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** Every flag of procmond, in the order the usage lists them. */
const FLAGS = {
  socket: {
    value: "PATH",
    help: "socket to serve on, or set PROCMON_SOCKET",
    shown: (env: NodeJS.ProcessEnv) =>
      `default ${defaultSocketPath({ ...env, PROCMON_SOCKET: "" })} for this user`,
    read: (given: string | undefined, env: NodeJS.ProcessEnv) => given ?? defaultSocketPath(env),
  },
  config: text("FILE", "YAML file of processes to add at start"),
  "state-file": {
    value: "FILE",
    help: "persist the process list here",
    shown: (env: NodeJS.ProcessEnv) => `default ${defaultStateFile(env)} for this user`,
    read: (given: string | undefined, env: NodeJS.ProcessEnv) => given ?? defaultStateFile(env),
  },
  "no-state-file": toggle("keep the process list in memory only"),
  "socket-mode": {
    value: "MODE",
    help: "octal mode of the socket file",
    shown: () => "0600",
    read: socketMode,
  },
  "socket-group": {
    value: "GROUP",
    help: "group (name or id) given the socket file",
    read: (given: string | undefined) => (given === undefined ? undefined : groupId(given)),
  },
  "max-processes": whole("most processes registered at once", DEFAULT_LIMITS.maxProcesses),
  "max-spec-bytes": whole("most bytes of args and env in one spec", DEFAULT_LIMITS.maxSpecBytes),
  "max-message-size": whole("largest request accepted, in bytes", 4 * 1024 * 1024),
  threshold: duration("runs shorter than this are instant deaths", DEFAULT_POLICY.thresholdMs),
  "kill-time": duration("SIGTERM to SIGKILL grace", DEFAULT_POLICY.killTimeMs),
  "min-restart-delay": duration("first backoff delay", DEFAULT_POLICY.minRestartDelayMs),
  "max-restart-delay": duration("backoff cap", DEFAULT_POLICY.maxRestartDelayMs),
  "consistency-delay": duration("interval of the liveness check", 60_000),
  "stats-period": duration("interval of the memory checks of processes with max_rss_bytes", 5_000),
  "event-retention": whole(
    "state events kept for resuming watchers",
    DEFAULT_RETENTION.stateEvents,
  ),
  "event-retention-bytes": whole(
    "bytes of state events kept, estimated",
    DEFAULT_RETENTION.stateBytes,
    MIN_RETENTION_BYTES,
    " of bytes",
  ),
  "output-retention": whole(
    "output lines kept for resuming watchers",
    DEFAULT_RETENTION.outputLines,
  ),
  "output-retention-bytes": whole(
    "bytes of output lines kept, estimated; half is a watcher's slack",
    DEFAULT_RETENTION.outputBytes,
    MIN_RETENTION_BYTES,
    " of bytes",
  ),
  spawner: {
    value: "S",
    help: "shim (procmon-shim holds the children) or node (the daemon forks them)",
    shown: () => "shim if it was built, else node",
    read(given: string | undefined): SpawnerChoice {
      if (given === undefined) return "auto";
      if (given !== "shim" && given !== "node") {
        throw invalid(`--spawner must be shim or node, got "${given}"`);
      }
      return given;
    },
  },
  "detached-output-buffer": whole(
    "bytes of output kept per process while no procmond is attached (then the process blocks)",
    1_048_576,
    65_536,
    " of bytes",
  ),
  "log-dir": text("DIR", "also write each process's output to DIR/<name>.log, rotated"),
  "log-max-size": whole(
    "rotate a log file before it passes this many bytes",
    10 * 1024 * 1024,
    4096,
    " of bytes",
  ),
  "log-keep": whole("rotated log files kept per process", 5, 0),
  "log-level": {
    value: "L",
    help: LOG_LEVELS.slice(0, 5).join(", "),
    shown: () => "info",
    read(given: string | undefined) {
      const level = given ?? "info";
      if (!LOG_LEVELS.includes(level)) {
        throw invalid(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
      }
      return level;
    },
  },
  help: toggle("show this help", "h"),
  version: toggle("show the version"),
} satisfies Record<string, Flag<unknown>>;

type FlagName = keyof typeof FLAGS;

/** procmond's usage text, from the flag table. */
export const USAGE = usage(process.env);

function usage(env: NodeJS.ProcessEnv): string {
  const lines = Object.entries(FLAGS).map(([name, flag]: [string, Flag<unknown>]) => {
    const short = flag.short === undefined ? "" : `-${flag.short}, `;
    const left = `  ${short}--${name}${flag.value === undefined ? "" : ` ${flag.value}`}`;
    const shown = flag.shown === undefined ? "" : ` (${flag.shown(env)})`;
    return `${left.padEnd(29)}${flag.help}${shown}`;
  });
  return `Usage: procmond [options]

Supervises processes and serves the procmon.v1.ProcessMonitor gRPC API on a
unix socket.

Options:
${lines.join("\n")}

Durations are written like 500ms, 5s, 1m30s, 1h.`;
}

/**
 * The state file when none is given: /var/lib/procmon/state.json for root,
 * else $XDG_STATE_HOME/procmon/state.json or ~/.local/state/procmon/state.json.
 */
export function defaultStateFile(env: NodeJS.ProcessEnv): string {
  if ((process.getuid?.() ?? 0) === 0) return "/var/lib/procmon/state.json";
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(stateHome, "procmon", "state.json");
}

function socketMode(given: string | undefined): number {
  if (given === undefined) return 0o600;
  if (!/^0?[0-7]{3}$/.test(given)) {
    throw invalid(`--socket-mode must be an octal mode such as 0660, got "${given}"`);
  }
  const mode = Number.parseInt(given, 8);
  if (mode & 0o007) {
    throw invalid(
      `--socket-mode ${given} would let every user run commands: leave "other" bits at 0`,
    );
  }
  return mode;
}

function groupId(given: string): number {
  if (/^\d+$/.test(given)) return Number(given);
  let groups = "";
  try {
    groups = readFileSync("/etc/group", "utf8");
  } catch {
    // No group database: only numeric groups work.
  }
  for (const line of groups.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === given && gid !== undefined) return Number(gid);
  }
  throw invalid(`--socket-group: no group named "${given}"`);
}

/**
 * Reads procmond's command line.
 * @throws ProcmonError invalid_argument naming the bad flag.
 */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.entries(FLAGS).map(([name, flag]: [string, Flag<unknown>]) => [
          name,
          {
            type: flag.value === undefined ? ("boolean" as const) : ("string" as const),
            ...(flag.short === undefined ? {} : { short: flag.short }),
          },
        ]),
      ),
    }).values;
  } catch (err) {
    throw invalid((err as Error).message);
  }
  const read = <N extends FlagName>(name: N): ReturnType<(typeof FLAGS)[N]["read"]> => {
    const given = values[name];
    const flag = FLAGS[name] as Flag<ReturnType<(typeof FLAGS)[N]["read"]>>;
    return flag.read(typeof given === "string" ? given : given ? "" : undefined, env, name);
  };
  if (read("help")) return { kind: "help" };
  if (read("version")) return { kind: "version" };
  const policy: Policy = {
    thresholdMs: read("threshold"),
    killTimeMs: read("kill-time"),
    minRestartDelayMs: read("min-restart-delay"),
    maxRestartDelayMs: read("max-restart-delay"),
  };
  if (policy.minRestartDelayMs > policy.maxRestartDelayMs) {
    throw invalid("--min-restart-delay must not exceed --max-restart-delay");
  }
  return {
    kind: "run",
    options: {
      socketPath: read("socket"),
      configFile: read("config"),
      stateFile: read("no-state-file") ? undefined : read("state-file"),
      socketMode: read("socket-mode"),
      socketGroup: read("socket-group"),
      limits: { maxProcesses: read("max-processes"), maxSpecBytes: read("max-spec-bytes") },
      maxMessageBytes: read("max-message-size"),
      policy,
      consistencyDelayMs: read("consistency-delay"),
      statsPeriodMs: read("stats-period"),
      logDir: read("log-dir"),
      logMaxBytes: read("log-max-size"),
      logKeep: read("log-keep"),
      logLevel: read("log-level"),
      notifySocket: env.NOTIFY_SOCKET || undefined,
      spawner: read("spawner"),
      detachedOutputBuffer: read("detached-output-buffer"),
      retention: {
        stateEvents: read("event-retention"),
        stateBytes: read("event-retention-bytes"),
        outputLines: read("output-retention"),
        outputBytes: read("output-retention-bytes"),
      },
    },
  };
}
