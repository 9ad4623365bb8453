// What the benchmarks read off the machine and off /proc.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { round } from "./stats.mjs";

export const CLK_TCK =
  Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** The 1-, 5- and 15-minute load averages, to two decimals. */
export function loadavg() {
  return os.loadavg().map((x) => round(x, 2));
}

/** The machine a figure was measured on, with its load at the time. */
export function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    memGB: round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    libuv: process.versions.uv,
    loadAvgAtStart: loadavg(),
  };
}

/** Whether `pid` exists (EPERM counts: it exists, it is not ours). */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/**
 * A /proc/PID/stat (or task/TID/stat) line: its comm, and the fields after it, from field 3
 * (state) on: fields[0] is the state, [1] ppid, [2] pgid, [11] utime, [12] stime, [19] starttime.
 */
export function parseStat(line) {
  const close = line.lastIndexOf(")");
  return {
    comm: line.slice(line.indexOf("(") + 1, close),
    fields: line.slice(close + 2).split(" "),
  };
}

/** utime + stime in clock ticks, of a parsed stat line's `fields`. */
export const ticksInStat = (fields) => Number(fields[11]) + Number(fields[12]);

/** utime + stime of `pid`, in clock ticks. */
export function cpuTicks(pid) {
  return ticksInStat(parseStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8")).fields);
}

/** utime + stime of `pid`, in seconds; NaN once it is gone. */
export function cpuSeconds(pid) {
  try {
    return cpuTicks(pid) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS and VmHWM of `pid`, in MiB (NaN when it is gone). */
export function procStatus(pid) {
  let status = "";
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {}
  const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { rssMB: kb("VmRSS") / 1024, hwmMB: kb("VmHWM") / 1024 };
}

/** How many fds `pid` holds. */
export function openFiles(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** The open-files limits of `pid`. */
export function softNofile(pid) {
  const limits = fs.readFileSync(`/proc/${pid}/limits`, "utf8");
  const m = limits.match(/^Max open files\s+(\S+)\s+(\S+)/m);
  return m ? { soft: m[1], hard: m[2] } : undefined;
}

/** The pids of `pid`'s children (from every thread's children list). */
export function childrenOf(pid) {
  const pids = [];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (text !== "") pids.push(...text.split(" ").map(Number));
    }
  } catch {}
  return pids;
}

/** The command name (`comm`) of `pid`, or undefined once it is gone. */
export function commOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** CPU used by each of `pids` over `seconds` of wall time, with no client activity. */
export async function idleCpu(pids, seconds) {
  const list = Array.isArray(pids) ? pids : [pids];
  const t0 = process.hrtime.bigint();
  const c0 = list.map(cpuTicks);
  await sleep(seconds * 1000);
  const c1 = list.map(cpuTicks);
  const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const each = list.map((_, i) => {
    const cpuSec = (c1[i] - c0[i]) / CLK_TCK;
    return { wallSec, cpuSec, pctOfOneCore: (100 * cpuSec) / wallSec };
  });
  return Array.isArray(pids) ? each : each[0];
}

function shellLimits() {
  const out = execFileSync("sh", ["-c", "ulimit -Sn; ulimit -Hn"], { encoding: "utf8" }).split(
    "\n",
  );
  const parse = (s) => (s === "unlimited" ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: parse(out[0]), hard: parse(out[1]) };
}

/**
 * The command that runs `file args...` with a soft open-files limit high enough for `children`
 * children (two pipes each, plus sockets), raised through `sh -c 'ulimit -n N; exec ...'` if
 * needed. `file` defaults to this node.
 */
export function withFdLimit(args, children, file = process.execPath) {
  const limits = shellLimits();
  const need = children * 2 + 1024;
  if (limits.soft >= need) return { file, args, raisedTo: undefined };
  const target = Math.min(limits.hard, 65_536);
  if (target < need) {
    process.stderr.write(`warning: hard open-files limit ${limits.hard} < ${need} needed\n`);
  }
  const quoted = [file, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
  return {
    file: "sh",
    args: ["-c", `ulimit -n ${target} && exec ${quoted.join(" ")}`],
    raisedTo: target,
  };
}
