import { readFileSync } from "node:fs";

/** What /proc says of a process. */
export interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z, T... */
  readonly state: string;
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
  const pgid = Number(fields[2]);
  const startTime = fields[19];
  if (state === undefined || startTime === undefined || !Number.isInteger(pgid)) return undefined;
  return { pid, state, pgid, startTime };
}
