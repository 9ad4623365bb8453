import { readFileSync } from "node:fs";

/** What /proc says of a process. */
export interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z, T... */
  readonly state: string;
  readonly ppid: number;
  readonly pgid: number;
  /** Clock ticks after boot: with the pid, identifies one process for ever. */
  readonly startTime: string;
}

/** Reads /proc/<pid>/stat; undefined if the process is gone. */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  const startTime = fields[19];
  if (state === undefined || startTime === undefined || !Number.isInteger(pgid)) return undefined;
  return { pid, state, ppid, pgid, startTime };
}

/** The environment of `pid` (`KEY=VALUE` strings), or undefined if it is gone or not ours to read. */
export function readEnvironment(pid: number, procDir = "/proc"): string[] | undefined {
  try {
    return readFileSync(`${procDir}/${pid}/environ`, "latin1").split("\0");
  } catch {
    return undefined;
  }
}

/** True if `ancestor` is `pid`'s parent, or its parent's, and so on up to init. */
export function descendsFrom(pid: number, ancestor: number): boolean {
  let at = readProcStat(pid)?.ppid;
  // A parent chain is short; the bound only guards against a loop of reused pids.
  for (let depth = 0; at !== undefined && at > 1 && depth < 256; depth++) {
    if (at === ancestor) return true;
    at = readProcStat(at)?.ppid;
  }
  return false;
}
