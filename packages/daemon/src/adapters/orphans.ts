import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../core/logger.js";
import { descendsFrom, type ProcStat, readEnvironment, readProcStat } from "./proc-stat.js";

/** The environment variable that marks every child of one registry. */
export const INSTANCE_ENV = "PROCMON_INSTANCE";
/** The environment variable that tells a child its process name. */
export const NAME_ENV = "PROCMON_NAME";

/** A marked process: what /proc says of it, and the name its environment gives. */
export interface MarkedProcess extends ProcStat {
  /** Its PROCMON_NAME (which its descendants inherit too); undefined if it has none. */
  readonly name: string | undefined;
}

/**
 * Every live process (zombies excluded) whose environment carries
 * `INSTANCE_ENV=instance`, but those in `skip` (not even read).
 */
export function findMarkedProcesses(
  instance: string,
  skip: ReadonlySet<number> = new Set(),
): MarkedProcess[] {
  const marker = `${INSTANCE_ENV}=${instance}`;
  const namePrefix = `${NAME_ENV}=`;
  const found: MarkedProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid || skip.has(pid)) continue;
    const environment = readEnvironment(pid);
    if (!environment?.includes(marker)) continue;
    const stat = readProcStat(pid);
    const name = environment.find((v) => v.startsWith(namePrefix))?.slice(namePrefix.length);
    if (stat && stat.state !== "Z") found.push({ ...stat, name });
  }
  return found;
}

/** True if the very process `stat` described is still alive (same pid, same start time). */
function stillThere(stat: ProcStat): boolean {
  const now = readProcStat(stat.pid);
  return now !== undefined && now.startTime === stat.startTime && now.state !== "Z";
}

/** Signals one process, and its group if it leads one, only if it is still the same process. */
function signalIfSame(stat: ProcStat, signal: NodeJS.Signals): void {
  if (!stillThere(stat)) return;
  try {
    process.kill(stat.pgid === stat.pid ? -stat.pid : stat.pid, signal);
  } catch {
    // Gone in between.
  }
}

/**
 * Terminates what a previous daemon of this registry left running (it was
 * killed before it could stop its children): SIGTERM to each, then SIGKILL to
 * each one still there after the kill time of its own process (`killTimeOf`
 * its PROCMON_NAME), as a stop would. Each process is identified by its
 * marker and its start time, so a reused pid is never signalled. What
 * descends from the shim a daemon attached to (whose children it adopts:
 * `shim.held`, which are not even looked at) is not an orphan. Resolves with
 * what was found, once all of it is gone.
 */
export async function terminateOrphans(
  instance: string,
  killTimeOf: (name: string | undefined) => number,
  logger: Logger,
  shim?: { readonly pid: number; readonly held: ReadonlySet<number> },
): Promise<MarkedProcess[]> {
  const orphans = findMarkedProcesses(instance, shim?.held).filter(
    (found) => shim === undefined || !descendsFrom(found.pid, shim.pid),
  );
  if (orphans.length === 0) return [];
  logger.warn(
    { pids: orphans.map((o) => o.pid) },
    "terminating processes left by a previous procmond",
  );
  const started = Date.now();
  for (const orphan of orphans) signalIfSame(orphan, "SIGTERM");
  const waiting = new Set(orphans);
  // A one-off wait at start-up, not a steady-state loop.
  while (waiting.size > 0) {
    const now = Date.now();
    for (const orphan of [...waiting]) {
      if (!stillThere(orphan)) {
        waiting.delete(orphan);
      } else if (now - started >= killTimeOf(orphan.name)) {
        signalIfSame(orphan, "SIGKILL");
        // SIGKILL cannot be held off: it is gone once the kernel gets to it.
        if (now - started >= killTimeOf(orphan.name) + 5_000) waiting.delete(orphan);
      }
    }
    if (waiting.size > 0) await sleep(20);
  }
  return orphans;
}
