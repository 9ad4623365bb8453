import { accessSync, constants, statSync } from "node:fs";
import { resolve } from "node:path";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationProblem, durationToExactMs, formatDurationMs } from "@procmon/client/duration";
import type { ProcessSpec as ProcessSpecProto } from "@procmon/client/gen/procmon/v1/procmon_pb.js";
import { ProcmonError } from "../core/errors.js";
import { isProcessName, NAME_RULE } from "../core/names.js";
import { quote } from "../core/quote.js";
import type { Policy, ProcessSpec } from "../core/types.js";
import { specFromProto } from "../transport/convert.js";
import { effectivePath, resolveExecutable } from "./executable.js";

/** What validateSpec needs to know about the daemon. */
export interface ValidateSpecOptions {
  /** The daemon's timings, for durations the spec leaves unset. */
  readonly defaults: Policy;
  /** The daemon's own uid: a process may always run as it. */
  readonly daemonUid: number;
  /** The daemon's own gid: a process may always run as it. */
  readonly daemonGid: number;
  /**
   * Whether the executable and cwd must be usable now. Defaults to true. A
   * spec restored from the state file is held to every other rule, but not to
   * this: an executable that vanished meanwhile is the supervisor's to retry
   * with backoff, not a reason to lose the process.
   */
  readonly checkFiles?: boolean;
}

// Node's spawn takes uid/gid as int32, so larger ids would throw at spawn time.
const MAX_ID = 2_147_483_647;

const DURATION_FIELDS = [
  ["threshold", "threshold"],
  ["kill_time", "killTime"],
  ["min_restart_delay", "minRestartDelay"],
  ["max_restart_delay", "maxRestartDelay"],
] as const;

/**
 * Checks a spec from the wire and returns it normalised (defaults filled in);
 * throws ProcmonError naming the field and the problem, before anything changes.
 */
export function validateSpec(
  spec: ProcessSpecProto | undefined,
  opts: ValidateSpecOptions,
): ProcessSpec {
  if (spec === undefined) throw invalid("process is required");

  if (!isProcessName(spec.name)) {
    throw invalid(`name ${quote(spec.name)} is invalid: use ${NAME_RULE}`);
  }

  const executable = spec.args[0];
  if (executable === undefined) throw invalid("args must not be empty: args[0] is the executable");
  if (executable === "") throw invalid("args[0] must not be empty: it is the executable");
  spec.args.forEach((arg, i) => {
    if (arg.includes("\0")) throw invalid(`args[${i}] ${quote(arg)} contains a NUL character`);
  });

  if (spec.cwd.includes("\0")) throw invalid(`cwd ${quote(spec.cwd)} contains a NUL character`);
  const runsAsDaemon = spec.uid === undefined || spec.uid === opts.daemonUid;
  const checkFiles = opts.checkFiles ?? true;
  if (spec.cwd !== "" && checkFiles) checkCwd(spec.cwd, runsAsDaemon);

  for (const [key, value] of Object.entries(spec.env)) {
    if (key === "" || key.includes("=") || key.includes("\0")) {
      throw invalid(`env key ${quote(key)} is invalid: it must be non-empty, without "=" or NUL`);
    }
    if (value.includes("\0")) throw invalid(`env ${quote(key)} has a NUL character in its value`);
  }

  for (const [field, prop] of DURATION_FIELDS) {
    const duration: Duration | undefined = spec[prop];
    if (duration !== undefined) checkDuration(field, duration);
  }

  const normalised = specFromProto(spec, opts.defaults);
  if (normalised.minRestartDelayMs > normalised.maxRestartDelayMs) {
    throw invalid(
      `min_restart_delay (${formatDurationMs(normalised.minRestartDelayMs)}) must not exceed max_restart_delay (${formatDurationMs(normalised.maxRestartDelayMs)})`,
    );
  }

  // Resolved with the checked env and cwd, as the spawner will.
  if (checkFiles) {
    resolveExecutable(executable, {
      pathEnv: effectivePath(spec.env, spec.clearEnv),
      cwd: resolve(spec.cwd),
    });
  }

  checkId("uid", spec.uid, opts.daemonUid, opts.daemonUid);
  checkId("gid", spec.gid, opts.daemonGid, opts.daemonUid);

  return normalised;
}

function checkCwd(cwd: string, runsAsDaemon: boolean): void {
  const dir = resolve(cwd);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw invalid(`cwd ${quote(cwd)} does not exist`);
    throw invalid(`cwd ${quote(cwd)} cannot be used: ${describe(error)}`);
  }
  if (!isDirectory) throw invalid(`cwd ${quote(cwd)} is not a directory`);
  // Only checkable for the daemon's own user; another user's access shows at spawn.
  if (runsAsDaemon) {
    try {
      accessSync(dir, constants.X_OK);
    } catch {
      throw invalid(`cwd ${quote(cwd)} is not accessible: permission denied`);
    }
  }
}

function checkDuration(field: string, duration: Duration): void {
  const exact = durationToExactMs(duration);
  const problem = durationProblem(exact);
  if (problem !== undefined) throw invalid(`${field} ${problem}, got ${formatDurationMs(exact)}`);
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

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
