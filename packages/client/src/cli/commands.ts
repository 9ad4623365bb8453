// The commands that make one call and print its answer: add, rm, start,
// stop, restart, restart-all, get and ls.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { create, toJson } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  GetDaemonInfoResponseSchema,
  ListProcessesResponseSchema,
  type Process,
  ProcessSchema,
  type ProcessSpec,
  type ReadinessProbeSchema,
  ReloadConfigResponseSchema,
  RestartAllResponseSchema,
  type RestartPolicy,
  Spawner,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { ProcessSpecInit } from "../client.js";
import type { DependencyArg, TcpArg } from "./arguments.js";
import { durationToMs } from "./durations.js";
import { processDetails, processLine, processTable } from "./format.js";
import { ALL, byName, globMatcher, isPattern } from "./names.js";
import {
  printJson,
  printLine,
  printNote,
  quickCall,
  type Session,
  waitingCall,
} from "./session.js";

/** The flags of `add`, parsed. */
export interface AddFlags {
  /** --env K=V, in order; a later key wins. */
  readonly env?: readonly (readonly [string, string])[];
  /** --clear-env. */
  readonly clearEnv?: boolean;
  /** --cwd DIR, made absolute. */
  readonly cwd?: string;
  /** --uid N. */
  readonly uid?: number;
  /** --gid N. */
  readonly gid?: number;
  /** --threshold D. */
  readonly threshold?: Duration;
  /** --kill-time D. */
  readonly killTime?: Duration;
  /** --min-restart-delay D. */
  readonly minRestartDelay?: Duration;
  /** --max-restart-delay D. */
  readonly maxRestartDelay?: Duration;
  /** --restart POLICY. */
  readonly restart?: RestartPolicy;
  /** --success-exit-codes 0,2. */
  readonly successExitCodes?: readonly number[];
  /** --max-instant-deaths N. */
  readonly maxInstantDeaths?: number;
  /** --stop-signal SIG, normalised to its SIG name. */
  readonly stopSignal?: string;
  /** --depends-on NAME[:CONDITION], in order. */
  readonly dependsOn?: readonly DependencyArg[];
  /** --ready-exec 'CMD ARGS', split into words. */
  readonly readyExec?: readonly string[];
  /** --ready-tcp [HOST:]PORT. */
  readonly readyTcp?: TcpArg;
  /** --ready-http URL. */
  readonly readyHttp?: string;
  /** --ready-period D. */
  readonly readyPeriod?: Duration;
  /** --ready-timeout D. */
  readonly readyTimeout?: Duration;
  /** --ready-initial-delay D. */
  readonly readyInitialDelay?: Duration;
  /** --max-rss SIZE, in bytes. */
  readonly maxRss?: bigint;
}

const CHECK_FLAGS = ["--ready-exec", "--ready-tcp", "--ready-http"] as const;

/**
 * What is wrong with a combination of `add`'s flags that each parsed well,
 * as a usage error; undefined when nothing is. A probe has one check, and
 * its timings mean nothing without one.
 */
export function addFlagsProblem(flags: AddFlags): string | undefined {
  const checks = [flags.readyExec, flags.readyTcp, flags.readyHttp];
  const given = CHECK_FLAGS.filter((_, i) => checks[i] !== undefined);
  if (given.length > 1) {
    return `error: a readiness probe has one check: give only one of ${given.join(", ")}`;
  }
  const timings = [
    ["--ready-period", flags.readyPeriod],
    ["--ready-timeout", flags.readyTimeout],
    ["--ready-initial-delay", flags.readyInitialDelay],
  ] as const;
  const timing = timings.find(([, value]) => value !== undefined);
  if (given.length === 0 && timing !== undefined) {
    return `error: ${timing[0]} times a readiness check: give one of ${CHECK_FLAGS.join(", ")} too`;
  }
  return undefined;
}

/** The spec `add NAME [flags] -- ARGS...` asks for; unset flags are left to the daemon's defaults. */
export function specOf(name: string, args: readonly string[], flags: AddFlags): ProcessSpecInit {
  const spec: ProcessSpecInit = {
    name,
    args: [...args],
    env: Object.fromEntries(flags.env ?? []),
    clearEnv: flags.clearEnv ?? false,
  };
  if (flags.cwd !== undefined) spec.cwd = flags.cwd;
  if (flags.uid !== undefined) spec.uid = flags.uid;
  if (flags.gid !== undefined) spec.gid = flags.gid;
  if (flags.threshold) spec.threshold = flags.threshold;
  if (flags.killTime) spec.killTime = flags.killTime;
  if (flags.minRestartDelay) spec.minRestartDelay = flags.minRestartDelay;
  if (flags.maxRestartDelay) spec.maxRestartDelay = flags.maxRestartDelay;
  if (flags.restart !== undefined) spec.restart = flags.restart;
  if (flags.successExitCodes) spec.successExitCodes = [...flags.successExitCodes];
  if (flags.maxInstantDeaths !== undefined) spec.maxInstantDeaths = flags.maxInstantDeaths;
  if (flags.stopSignal !== undefined) spec.stopSignal = flags.stopSignal;
  if (flags.dependsOn) spec.dependsOn = flags.dependsOn.map((d) => ({ ...d }));
  const ready = probeOf(flags);
  if (ready) spec.ready = ready;
  if (flags.maxRss !== undefined) spec.maxRssBytes = flags.maxRss;
  return spec;
}

/** The readiness probe the --ready-* flags ask for; undefined without a check. */
function probeOf(flags: AddFlags): MessageInitShape<typeof ReadinessProbeSchema> | undefined {
  let check: MessageInitShape<typeof ReadinessProbeSchema>["check"];
  if (flags.readyExec) check = { case: "exec", value: { args: [...flags.readyExec] } };
  else if (flags.readyTcp) check = { case: "tcp", value: { ...flags.readyTcp } };
  else if (flags.readyHttp !== undefined) check = { case: "http", value: { url: flags.readyHttp } };
  else return undefined;
  const probe: MessageInitShape<typeof ReadinessProbeSchema> = { check };
  if (flags.readyPeriod) probe.period = flags.readyPeriod;
  if (flags.readyTimeout) probe.timeout = flags.readyTimeout;
  if (flags.readyInitialDelay) probe.initialDelay = flags.readyInitialDelay;
  return probe;
}

/**
 * The spec `update NAME [flags] [-- ARGS...]` asks for: the current one with
 * what the flags set over it (--env adds to its environment), and the new
 * command if one is given.
 */
export function updatedSpec(
  current: ProcessSpec,
  args: readonly string[],
  flags: AddFlags,
): ProcessSpecInit {
  const { $typeName: _, ...now } = current;
  // What the flags set, over the current spec; what they leave out stays as it is.
  return {
    ...now,
    ...specOf(current.name, args.length > 0 ? args : current.args, flags),
    env: { ...current.env, ...Object.fromEntries(flags.env ?? []) },
    clearEnv: flags.clearEnv ?? current.clearEnv,
  };
}

/** `update`: replaces a process's spec; prints it (restarted if its spec changed). */
export async function update(
  session: Session,
  name: string,
  args: readonly string[],
  flags: AddFlags,
): Promise<void> {
  const current = await session.client.getProcess(name, quickCall(session));
  if (current.spec === undefined) throw new Error(`the daemon gave no spec for ${name}`);
  const spec = updatedSpec(current.spec, args, flags);
  const process = await session.client.updateProcess(
    spec,
    waitingCall(session, killTimeMs(current)),
  );
  printProcess(session, process);
}

/** `reload`: re-reads the daemon's config; prints what it added, removed and changed. */
export async function reload(session: Session): Promise<void> {
  // Removed and changed processes are stopped first: allow a minute of kill times.
  const summary = await session.client.reloadConfig(waitingCall(session, 60_000));
  if (session.globals.json) {
    printJson(session, ReloadConfigResponseSchema, summary);
    return;
  }
  const names = (list: readonly string[]) => (list.length === 0 ? "-" : list.join(", "));
  printLine(session, `added: ${names(summary.added)}`);
  printLine(session, `removed: ${names(summary.removed)}`);
  printLine(session, `changed: ${names(summary.changed)}`);
  printLine(session, `unchanged: ${summary.unchanged.length}`);
}

/** `add`: registers and starts a process; prints it running. */
export async function add(
  session: Session,
  name: string,
  args: readonly string[],
  flags: AddFlags,
): Promise<void> {
  const process = await session.client.addProcess(specOf(name, args, flags), quickCall(session));
  printProcess(session, process);
}

/** `rm`: stops and forgets a process (or every process a pattern matches); prints its final state. */
export async function remove(session: Session, name: string): Promise<void> {
  await perProcess(session, name, async (target, killTime) => {
    const process = await session.client.removeProcess(target, waitingCall(session, killTime));
    if (session.globals.json) return () => printJson(session, ProcessSchema, process);
    return () => printLine(session, `${session.safe(target)} removed`);
  });
}

/** `start`: starts a stopped process, or one in backoff now. */
export async function start(session: Session, name: string): Promise<void> {
  // A stopping process is started once it has exited: allow for its kill time.
  await perProcess(session, name, async (target, killTime) => {
    const process = await session.client.startProcess(target, waitingCall(session, killTime));
    return () => printProcess(session, process);
  });
}

/** `stop`: stops a process and keeps it stopped; prints it once it has exited. */
export async function stop(session: Session, name: string): Promise<void> {
  await perProcess(session, name, async (target, killTime) => {
    const process = await session.client.stopProcess(target, waitingCall(session, killTime));
    return () => printProcess(session, process);
  });
}

/** `restart`: stops a process and starts it again at once. */
export async function restart(session: Session, name: string): Promise<void> {
  await perProcess(session, name, async (target, killTime) => {
    const process = await session.client.restartProcess(target, waitingCall(session, killTime));
    return () => printProcess(session, process);
  });
}

/**
 * Runs `call` for `arg`: for a plain name, once, its errors (NOT_FOUND
 * included) thrown as they are. For `all` or a glob ({@link isPattern}), for
 * every listed process whose name matches, all at once, each with its own
 * deadline; their output is printed in natural order of the names once all
 * have answered, each failure on stderr naming its process.
 * @throws Error when the pattern matches nothing, or when any call failed.
 */
async function perProcess(
  session: Session,
  arg: string,
  call: (name: string, killTimeMs: number) => Promise<() => void>,
): Promise<void> {
  if (!isPattern(arg)) {
    (await call(arg, await killTimeOf(session, arg)))();
    return;
  }
  const matches = await matching(session, arg);
  const results = await Promise.allSettled(
    matches.map((p) => call(p.spec?.name ?? "", session.globals.timeoutMs ? 0 : killTimeMs(p))),
  );
  let failed = 0;
  results.forEach((result, i) => {
    if (result.status === "fulfilled") result.value();
    else {
      failed++;
      const reason = result.reason instanceof Error ? result.reason.message : String(result.reason);
      printNote(session.io, `${matches[i]?.spec?.name ?? "?"}: ${reason}`);
    }
  });
  if (failed > 0) {
    throw new Error(`${failed} of ${matches.length} processes matching '${arg}' failed`);
  }
}

/** The listed processes whose names match `pattern`, in natural order. @throws Error if none does. */
async function matching(session: Session, pattern: string): Promise<Process[]> {
  const { processes } = await session.client.listProcesses(quickCall(session));
  const matches = globMatcher(pattern);
  const found = byProcessName(processes.filter((p) => matches(p.spec?.name ?? "")));
  if (found.length === 0) {
    throw new Error(pattern === ALL ? "there are no processes" : `no process matches '${pattern}'`);
  }
  return found;
}

/** `restart-all`: restarts every running or backing-off process at once. */
export async function restartAll(session: Session): Promise<void> {
  const { processes: before } = await session.client.listProcesses(quickCall(session));
  // All restart at once, so the slowest to stop sets the pace.
  const slowest = Math.max(0, ...before.map(killTimeMs));
  const processes = byProcessName(await session.client.restartAll(waitingCall(session, slowest)));
  if (session.globals.json) {
    printJson(session, RestartAllResponseSchema, create(RestartAllResponseSchema, { processes }));
    return;
  }
  for (const process of processes) {
    printLine(session, processLine(process, session.now(), session.safe, session.paint));
  }
}

/** The flags of `get` and `ls`, parsed. */
export interface StatsFlags {
  /** --stats: ask for, and show, the CPU time and memory of each process's tree. */
  readonly stats?: boolean;
}

/**
 * `get`: one process in detail; for a pattern, every match, each one's
 * details apart from the next by an empty line (with --json, one per line).
 */
export async function get(session: Session, name: string, flags: StatsFlags = {}): Promise<void> {
  const includeStats = flags.stats ?? false;
  let first = true;
  const show = (process: Process) => {
    if (session.globals.json) printJson(session, ProcessSchema, process);
    else {
      if (!first) session.io.out("\n");
      printLine(session, processDetails(process, session.now(), session.safe, { includeStats }));
    }
    first = false;
  };
  if (!isPattern(name)) {
    show(await session.client.getProcess(name, { ...quickCall(session), includeStats }));
    return;
  }
  // One get per match (not the list's answer): the details and stats are get's.
  await perProcess(session, name, async (target) => {
    const process = await session.client.getProcess(target, {
      ...quickCall(session),
      includeStats,
    });
    return () => show(process);
  });
}

/** `ls`: every process as a table, or as `{processes, lastEventSeq}` with --json. */
export async function list(session: Session, flags: StatsFlags = {}): Promise<void> {
  const includeStats = flags.stats ?? false;
  const answer = await session.client.listProcesses({ ...quickCall(session), includeStats });
  // The daemon sorts by plain string; people expect p2 before p10.
  const processes = byProcessName(answer.processes);
  const { lastEventSeq } = answer;
  if (session.globals.json) {
    const response = create(ListProcessesResponseSchema, { processes, lastEventSeq });
    printJson(session, ListProcessesResponseSchema, response);
    return;
  }
  const format = { includeStats, paint: session.paint };
  printLine(session, processTable(processes, session.now(), session.safe, format));
}

/** `version`: procmonctl's version, and what the daemon says of itself. */
export async function version(session: Session, clientVersion: string): Promise<void> {
  const info = await session.client.getDaemonInfo(quickCall(session));
  if (session.globals.json) {
    session.io.out(
      `${JSON.stringify({ procmonctl: clientVersion, procmond: toJson(GetDaemonInfoResponseSchema, info, { alwaysEmitImplicit: true }) })}\n`,
    );
    return;
  }
  const spawner =
    info.spawner === Spawner.SHIM
      ? `children held by procmon-shim (pid ${info.shimPid}, protocol ${info.shimProtocol})`
      : "children spawned from Node: procmon-shim not built or not chosen (no process survival)";
  printLine(
    session,
    `procmonctl ${clientVersion}\nprocmond ${info.version} (pid ${info.pid}), ${spawner}`,
  );
}

/** Processes in the natural order of their names, as the CLI lists them. */
export function byProcessName(processes: readonly Process[]): Process[] {
  return byName(processes, (p) => p.spec?.name ?? "");
}

function printProcess(session: Session, process: Process): void {
  if (session.globals.json) printJson(session, ProcessSchema, process);
  else printLine(session, processLine(process, session.now(), session.safe, session.paint));
}

/** How long the daemon may wait for `name` to exit once signalled; also fails early for an unknown name. */
async function killTimeOf(session: Session, name: string): Promise<number> {
  // With --timeout the user chose the deadline: no need to look.
  if (session.globals.timeoutMs !== undefined) return 0;
  return killTimeMs(await session.client.getProcess(name, quickCall(session)));
}

function killTimeMs(process: Process): number {
  return durationToMs(process.spec?.killTime);
}
