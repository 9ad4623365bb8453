import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../core/logger.js";
import { type ProcStat, readProcStat } from "./proc-stat.js";

/** The environment variable that marks every child of one registry. */
export const INSTANCE_ENV = "PROCMON_INSTANCE";
/** The environment variable that tells a child its process name. */
export const NAME_ENV = "PROCMON_NAME";

function carriesMarker(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(marker);
  } catch {
    return false;
  }
}

/** Every live process (zombies excluded) whose environment carries `INSTANCE_ENV=instance`. */
export function findMarkedProcesses(instance: string): ProcStat[] {
  const marker = `${INSTANCE_ENV}=${instance}`;
  const found: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (!carriesMarker(pid, marker)) continue;
    const stat = readProcStat(pid);
    if (stat && stat.state !== "Z") found.push(stat);
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
 * killed before it could stop its children): SIGTERM, then SIGKILL after
 * `graceMs`. Each process is identified by its marker and its start time, so
 * a reused pid is never signalled. Resolves with what was found.
 */
export async function terminateOrphans(
  instance: string,
  graceMs: number,
  logger: Logger,
): Promise<ProcStat[]> {
  const orphans = findMarkedProcesses(instance);
  if (orphans.length === 0) return [];
  logger.warn(
    { pids: orphans.map((o) => o.pid) },
    "terminating processes left by a previous procmond",
  );
  for (const orphan of orphans) signalIfSame(orphan, "SIGTERM");
  const deadline = Date.now() + graceMs;
  // A one-off wait at start-up, not a steady-state loop.
  while (orphans.some(stillThere) && Date.now() < deadline) await sleep(20);
  for (const orphan of orphans) signalIfSame(orphan, "SIGKILL");
  while (orphans.some(stillThere) && Date.now() < deadline + 5_000) await sleep(20);
  return orphans;
}
