import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultSocketPath } from "@procmon/client";
import { DEFAULT_LIMITS, type Limits } from "./control.js";
import { parseDuration } from "./core/duration.js";
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
}

/** The outcome of reading the command line. */
export type ParsedFlags =
  | { readonly kind: "run"; readonly options: DaemonOptions }
  | { readonly kind: "help" }
  | { readonly kind: "version" };

/** procmond's usage text. */
export const USAGE = `Usage: procmond [options]

Supervises processes and serves the procmon.v1.ProcessMonitor gRPC API on a
unix socket.

Options:
  --socket PATH              socket to serve on (env PROCMON_SOCKET;
                             default ${defaultSocketPath({})} for this user)
  --config FILE              YAML file of processes to add at start
  --state-file FILE          persist the process list here (default
                             ${defaultStateFile({})} for this user)
  --no-state-file            keep the process list in memory only
  --socket-mode MODE         octal mode of the socket file (0600)
  --socket-group GROUP       group (name or id) given the socket file
  --max-processes N          most processes registered at once (${DEFAULT_LIMITS.maxProcesses})
  --max-spec-bytes N         most bytes of args and env in one spec (${DEFAULT_LIMITS.maxSpecBytes})
  --max-message-size N       largest request accepted, in bytes (4194304)
  --threshold D              runs shorter than this are instant deaths (1s)
  --kill-time D              SIGTERM to SIGKILL grace (5s)
  --min-restart-delay D      first backoff delay (1s)
  --max-restart-delay D      backoff cap (1h)
  --consistency-delay D      interval of the liveness check (60s)
  --event-retention N        state events kept for resuming watchers (${DEFAULT_RETENTION.stateEvents})
  --event-retention-bytes N  bytes of state events kept, estimated (${DEFAULT_RETENTION.stateBytes})
  --output-retention N       output lines kept for resuming watchers (no limit)
  --output-retention-bytes N bytes of output lines kept, estimated (${DEFAULT_RETENTION.outputBytes});
                             half of it is the slack of a watcher that keeps up
  --log-level L              trace, debug, info, warn, error (info)
  -h, --help                 show this help
  --version                  show the version

Durations are written like 500ms, 5s, 1m30s, 1h.`;

const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

function duration(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new ProcmonError("invalid_argument", `--${flag}: ${(err as Error).message}`);
  }
  if (ms <= 0)
    throw new ProcmonError("invalid_argument", `--${flag} must be positive, got ${text}`);
  return ms;
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

function socketMode(text: string | undefined): number {
  if (text === undefined) return 0o600;
  if (!/^0?[0-7]{3}$/.test(text)) {
    throw new ProcmonError(
      "invalid_argument",
      `--socket-mode must be an octal mode such as 0660, got "${text}"`,
    );
  }
  const mode = Number.parseInt(text, 8);
  if (mode & 0o007) {
    throw new ProcmonError(
      "invalid_argument",
      `--socket-mode ${text} would let every user run commands: leave "other" bits at 0`,
    );
  }
  return mode;
}

function groupId(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  let groups = "";
  try {
    groups = readFileSync("/etc/group", "utf8");
  } catch {
    // No group database: only numeric groups work.
  }
  for (const line of groups.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === text && gid !== undefined) return Number(gid);
  }
  throw new ProcmonError("invalid_argument", `--socket-group: no group named "${text}"`);
}

function count(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 2) {
    throw new ProcmonError(
      "invalid_argument",
      `--${flag} must be a whole number of at least 2, got "${text}"`,
    );
  }
  return n;
}

/** A retention window's bytes: a whole number of at least 1 MiB, so that it holds many lines of 64 KiB. */
function retentionBytes(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < MIN_RETENTION_BYTES) {
    throw new ProcmonError(
      "invalid_argument",
      `--${flag} must be a whole number of bytes, at least ${MIN_RETENTION_BYTES} (1 MiB), got "${text}"`,
    );
  }
  return n;
}

const MIN_RETENTION_BYTES = 1024 * 1024;

/**
 * Reads procmond's command line.
 * @throws ProcmonError invalid_argument naming the bad flag.
 */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedFlags {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (err) {
    throw new ProcmonError("invalid_argument", (err as Error).message);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const policy: Policy = {
    thresholdMs: duration("threshold", values.threshold, DEFAULT_POLICY.thresholdMs),
    killTimeMs: duration("kill-time", values["kill-time"], DEFAULT_POLICY.killTimeMs),
    minRestartDelayMs: duration(
      "min-restart-delay",
      values["min-restart-delay"],
      DEFAULT_POLICY.minRestartDelayMs,
    ),
    maxRestartDelayMs: duration(
      "max-restart-delay",
      values["max-restart-delay"],
      DEFAULT_POLICY.maxRestartDelayMs,
    ),
  };
  if (policy.minRestartDelayMs > policy.maxRestartDelayMs) {
    throw new ProcmonError(
      "invalid_argument",
      "--min-restart-delay must not exceed --max-restart-delay",
    );
  }
  const logLevel = values["log-level"] ?? "info";
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ProcmonError(
      "invalid_argument",
      `--log-level must be one of ${[...LOG_LEVELS].join(", ")}, got "${logLevel}"`,
    );
  }
  return {
    kind: "run",
    options: {
      socketPath: values.socket ?? defaultSocketPath(env),
      configFile: values.config,
      stateFile: values["no-state-file"]
        ? undefined
        : (values["state-file"] ?? defaultStateFile(env)),
      socketMode: socketMode(values["socket-mode"]),
      socketGroup:
        values["socket-group"] === undefined ? undefined : groupId(values["socket-group"]),
      limits: {
        maxProcesses: count("max-processes", values["max-processes"], DEFAULT_LIMITS.maxProcesses),
        maxSpecBytes: count(
          "max-spec-bytes",
          values["max-spec-bytes"],
          DEFAULT_LIMITS.maxSpecBytes,
        ),
      },
      maxMessageBytes: count("max-message-size", values["max-message-size"], 4 * 1024 * 1024),
      policy,
      consistencyDelayMs: duration("consistency-delay", values["consistency-delay"], 60_000),
      logLevel,
      retention: {
        stateEvents: count(
          "event-retention",
          values["event-retention"],
          DEFAULT_RETENTION.stateEvents,
        ),
        stateBytes: retentionBytes(
          "event-retention-bytes",
          values["event-retention-bytes"],
          DEFAULT_RETENTION.stateBytes,
        ),
        outputLines: count(
          "output-retention",
          values["output-retention"],
          DEFAULT_RETENTION.outputLines,
        ),
        outputBytes: retentionBytes(
          "output-retention-bytes",
          values["output-retention-bytes"],
          DEFAULT_RETENTION.outputBytes,
        ),
      },
    },
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      socket: { type: "string" },
      config: { type: "string" },
      "state-file": { type: "string" },
      "no-state-file": { type: "boolean" },
      "socket-mode": { type: "string" },
      "socket-group": { type: "string" },
      "max-processes": { type: "string" },
      "max-spec-bytes": { type: "string" },
      "max-message-size": { type: "string" },
      threshold: { type: "string" },
      "kill-time": { type: "string" },
      "min-restart-delay": { type: "string" },
      "max-restart-delay": { type: "string" },
      "consistency-delay": { type: "string" },
      "log-level": { type: "string" },
      "event-retention": { type: "string" },
      "output-retention": { type: "string" },
      "event-retention-bytes": { type: "string" },
      "output-retention-bytes": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
    },
  });
}
