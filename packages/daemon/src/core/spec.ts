import { durationProblem, formatDurationMs } from "@procmon/api/duration";
import { ProcmonError } from "./errors.js";
import { isProcessName, NAME_RULE } from "./names.js";
import { quote } from "./quote.js";
import type { Policy, ProcessSpec, RunSpec } from "./types.js";

/**
 * A spec as a client, a config file or a state file gives it, before it is
 * checked: durations are exact (fractional) milliseconds, and undefined ones
 * take the daemon's defaults.
 */
export type SpecInput = RunSpec & {
  readonly [K in keyof Policy]?: number | undefined;
};

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
