// The soak's view of /proc: the processes carrying this run's instance marker.

import fs from "node:fs";
import { parseStat } from "../lib/machine.mjs";

/** state, ppid, pgid and start time of `pid` (from /proc/PID/stat), undefined once it is gone. */
export function readStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const { fields } = parseStat(text);
  return {
    state: fields[0],
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: fields[19],
  };
}

function readMarked(pid, marker) {
  let env;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
  } catch {
    return undefined;
  }
  if (!env.includes(marker)) return undefined;
  const stat = readStat(pid);
  if (!stat || stat.state === "Z" || stat.state === "X") return undefined;
  const nameVar = env.find((v) => v.startsWith("PROCMON_NAME="));
  let cmdline = "";
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {}
  return {
    pid,
    name: nameVar === undefined ? undefined : nameVar.slice("PROCMON_NAME=".length),
    ...stat,
    leader: stat.pgid === pid,
    cmdline,
  };
}

/** Every live (non-zombie) process whose environment carries PROCMON_INSTANCE=<inst>. */
export function scanMarked(inst) {
  const marker = `PROCMON_INSTANCE=${inst}`;
  const found = [];
  let entries;
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return found;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    const marked = readMarked(pid, marker);
    if (marked) found.push(marked);
  }
  return found;
}
