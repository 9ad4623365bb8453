import { durationProblem, formatDurationMs } from "@procmon/api/duration";
import { ProcmonError } from "./errors.js";
import { isProcessName, NAME_RULE } from "./names.js";
import { quote } from "./quote.js";
import {
  DEFAULT_END_POLICY,
  type Dependency,
  type DependencyCondition,
  type EndPolicy,
  type Policy,
  type ProbeCheck,
  type ProcessSpec,
  type Readiness,
  type ReadinessProbe,
  type RestartPolicy,
  type RunSpec,
  STOP_SIGNALS,
  type StopSignalName,
} from "./types.js";

/**
 * A spec as a client, a config file or a state file gives it, before it is
 * checked: durations are exact (fractional) milliseconds, and undefined ones
 * take the daemon's defaults; so do an unset policy, exit codes or signal.
 */
export type SpecInput = RunSpec & {
  readonly [K in keyof Policy]?: number | undefined;
} & {
  readonly restart?: RestartPolicy | undefined;
  /** Empty or undefined: [0]. */
  readonly successExitCodes?: readonly number[] | undefined;
  readonly maxInstantDeaths?: number | undefined;
  /** Empty or undefined: SIGTERM. */
  readonly stopSignal?: string | undefined;
  readonly dependsOn?:
    | ReadonlyArray<{ readonly name: string; readonly condition?: DependencyCondition | undefined }>
    | undefined;
  /** A probe as given: its check may be missing, its durations unset. */
  readonly ready?: ProbeInput | undefined;
  readonly maxRssBytes?: number | undefined;
};

/** A readiness probe before it is checked. */
export interface ProbeInput {
  readonly check: ProbeCheck | undefined;
  readonly periodMs?: number | undefined;
  readonly timeoutMs?: number | undefined;
  readonly initialDelayMs?: number | undefined;
}

/** What the rules need to know of the daemon. */
export interface SpecContext {
  /** The daemon's timings, for durations the spec leaves unset. */
  readonly defaults: Policy;
  /** The daemon's own uid: a process may always run as it. */
  readonly daemonUid: number;
  /** The daemon's own gid: a process may always run as it. */
  readonly daemonGid: number;
}

/**
 * Checks a spec's files where they are now (its cwd, its executable), as the
 * process will see them. A port: the file system is the adapters'.
 * @throws ProcmonError invalid_argument naming the field and the problem.
 */
export type SpecFileCheck = (spec: ProcessSpec, runsAsDaemon: boolean) => void;

// Node's spawn takes uid/gid as int32, so larger ids would throw at spawn time.
const MAX_ID = 2_147_483_647;

/**
 * Holds `input` to the contract's rules and returns it normalised: defaults
 * filled in, durations in whole milliseconds, as the supervisor runs it. Pure:
 * the file system is `SpecFileCheck`'s.
 * @throws ProcmonError naming the field and the problem (invalid_argument, or
 * permission_denied for an id the daemon cannot switch to).
 */
export function normaliseSpec(input: SpecInput | undefined, context: SpecContext): ProcessSpec {
  if (input === undefined) throw invalid("process is required");
  if (!isProcessName(input.name)) {
    throw invalid(`name ${quote(input.name)} is invalid: use ${NAME_RULE}`);
  }
  const executable = input.args[0];
  if (executable === undefined) throw invalid("args must not be empty: args[0] is the executable");
  if (executable === "") throw invalid("args[0] must not be empty: it is the executable");
  input.args.forEach((arg, i) => {
    if (arg.includes("\0")) throw invalid(`args[${i}] ${quote(arg)} contains a NUL character`);
  });
  if (input.cwd.includes("\0")) throw invalid(`cwd ${quote(input.cwd)} contains a NUL character`);
  for (const [key, value] of Object.entries(input.env)) {
    if (key === "" || key.includes("=") || key.includes("\0")) {
      throw invalid(`env key ${quote(key)} is invalid: it must be non-empty, without "=" or NUL`);
    }
    if (value.includes("\0")) throw invalid(`env ${quote(key)} has a NUL character in its value`);
  }
  const timing = (field: string, property: keyof Policy): number => {
    const exact = input[property];
    if (exact === undefined) return context.defaults[property];
    const problem = durationProblem(exact);
    if (problem !== undefined) throw invalid(`${field} ${problem}, got ${formatDurationMs(exact)}`);
    return Math.round(exact);
  };
  const timings: Policy = {
    thresholdMs: timing("threshold", "thresholdMs"),
    killTimeMs: timing("kill_time", "killTimeMs"),
    minRestartDelayMs: timing("min_restart_delay", "minRestartDelayMs"),
    maxRestartDelayMs: timing("max_restart_delay", "maxRestartDelayMs"),
  };
  if (timings.minRestartDelayMs > timings.maxRestartDelayMs) {
    throw invalid(
      `min_restart_delay (${formatDurationMs(timings.minRestartDelayMs)}) must not exceed max_restart_delay (${formatDurationMs(timings.maxRestartDelayMs)})`,
    );
  }
  checkId("uid", input.uid, context.daemonUid, context.daemonUid);
  checkId("gid", input.gid, context.daemonGid, context.daemonUid);
  const ending = endPolicy(input);
  const readiness = readinessOf(input);
  return {
    name: input.name,
    args: [...input.args],
    // fromEntries defines own properties, so a key like "__proto__" stays a key.
    env: Object.fromEntries(Object.entries(input.env)),
    clearEnv: input.clearEnv,
    cwd: input.cwd,
    ...(input.uid === undefined ? {} : { uid: input.uid }),
    ...(input.gid === undefined ? {} : { gid: input.gid }),
    ...timings,
    ...ending,
    ...readiness,
  };
}

/** The least max_rss_bytes (below it a process would be restarted for its own runtime). */
export const MIN_RSS_CAP = 1024 * 1024;

/** The input's dependencies, probe and memory cap, defaults filled in. */
function readinessOf(input: SpecInput): Readiness {
  const seen = new Set<string>();
  const dependsOn: Dependency[] = (input.dependsOn ?? []).map((dep, i) => {
    const where = `depends_on[${i}]`;
    if (!isProcessName(dep.name)) {
      throw invalid(`${where} name ${quote(dep.name)} is invalid: use ${NAME_RULE}`);
    }
    if (dep.name === input.name) throw invalid(`${where} names the process itself`);
    if (seen.has(dep.name)) throw invalid(`${where} names ${quote(dep.name)} twice`);
    seen.add(dep.name);
    return { name: dep.name, condition: dep.condition ?? "started" };
  });
  const rss = input.maxRssBytes ?? 0;
  if (!Number.isSafeInteger(rss) || rss < 0 || (rss > 0 && rss < MIN_RSS_CAP)) {
    throw invalid(
      `max_rss_bytes ${rss} is below 1 MiB (${MIN_RSS_CAP}): give 0 for no cap, or at least that`,
    );
  }
  return {
    dependsOn,
    ready: input.ready === undefined ? undefined : probeOf(input.ready),
    maxRssBytes: rss,
  };
}

function probeOf(input: ProbeInput): ReadinessProbe {
  const { check } = input;
  if (check === undefined) throw invalid("ready has no check: give exec, tcp or http");
  const duration = (field: string, exact: number | undefined, fallback: number, zero: boolean) => {
    if (exact === undefined) return fallback;
    const problem = durationProblem(exact);
    if (problem !== undefined && !(zero && exact === 0)) {
      throw invalid(`ready.${field} ${problem}, got ${formatDurationMs(exact)}`);
    }
    return Math.round(exact);
  };
  switch (check.kind) {
    case "exec":
      if (check.args.length === 0 || check.args[0] === "") {
        throw invalid("ready.exec.args must not be empty: args[0] is the executable");
      }
      check.args.forEach((arg, i) => {
        if (arg.includes("\0")) throw invalid(`ready.exec.args[${i}] contains a NUL character`);
      });
      break;
    case "tcp":
      if (!Number.isInteger(check.port) || check.port < 1 || check.port > 65_535) {
        throw invalid(`ready.tcp.port ${check.port} is not a port: 1 to 65535`);
      }
      break;
    case "http": {
      let url: URL | undefined;
      try {
        url = new URL(check.url);
      } catch {
        url = undefined;
      }
      if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
        throw invalid(`ready.http.url ${quote(check.url)} is not an http:// or https:// URL`);
      }
      break;
    }
  }
  return {
    check:
      check.kind === "tcp"
        ? { kind: "tcp", host: check.host === "" ? "127.0.0.1" : check.host, port: check.port }
        : check.kind === "exec"
          ? { kind: "exec", args: [...check.args] }
          : { kind: "http", url: check.url },
    periodMs: duration("period", input.periodMs, 1_000, false),
    timeoutMs: duration("timeout", input.timeoutMs, 1_000, false),
    initialDelayMs: duration("initial_delay", input.initialDelayMs, 0, true),
  };
}

/** The most exit codes a spec may list (there are 256). */
const MAX_EXIT_CODES = 256;

/** The input's end policy, defaults filled in. */
function endPolicy(input: SpecInput): EndPolicy {
  const codes = input.successExitCodes ?? [];
  if (codes.length > MAX_EXIT_CODES) {
    throw invalid(`success_exit_codes lists ${codes.length} codes: at most ${MAX_EXIT_CODES}`);
  }
  codes.forEach((code, i) => {
    if (!Number.isInteger(code) || code < 0 || code > 255) {
      throw invalid(`success_exit_codes[${i}] ${code} is not an exit code: 0 to 255`);
    }
  });
  const deaths = input.maxInstantDeaths ?? 0;
  if (!Number.isInteger(deaths) || deaths < 0 || deaths > 4_294_967_295) {
    throw invalid(`max_instant_deaths ${deaths} is not a count: 0 (never give up) or more`);
  }
  const signal = input.stopSignal || DEFAULT_END_POLICY.stopSignal;
  if (!(STOP_SIGNALS as readonly string[]).includes(signal)) {
    throw invalid(
      `stop_signal ${quote(signal)} is not one of ${STOP_SIGNALS.join(", ")} (SIGKILL follows after kill_time)`,
    );
  }
  return {
    restart: input.restart ?? DEFAULT_END_POLICY.restart,
    successExitCodes: codes.length === 0 ? [0] : [...new Set(codes)].sort((a, b) => a - b),
    maxInstantDeaths: deaths,
    stopSignal: signal as StopSignalName,
  };
}

/** True if `spec` runs as the daemon's own user (whose access the daemon can check). */
export function runsAsDaemon(spec: ProcessSpec, context: SpecContext): boolean {
  return spec.uid === undefined || spec.uid === context.daemonUid;
}

function checkId(
  field: "uid" | "gid",
  id: number | undefined,
  daemonId: number,
  daemonUid: number,
): void {
  if (id === undefined) return;
  if (id > MAX_ID) throw invalid(`${field} ${id} is out of range: at most ${MAX_ID}`);
  if (id !== daemonId && daemonUid !== 0) {
    throw new ProcmonError(
      "permission_denied",
      `cannot run as ${field} ${id}: procmond runs as ${field} ${daemonId} and is not root`,
    );
  }
}

function invalid(message: string): ProcmonError {
  return new ProcmonError("invalid_argument", message);
}
