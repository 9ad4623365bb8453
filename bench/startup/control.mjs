// What bench/startup.mjs does to a daemon under test besides its API calls: drives the
// event-loop probe preloaded into it (eld-probe.mjs), waits for its socket to accept a
// connection, and waits for it to go quiet after a burst of work.

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { cpuTicks, parseStat, ticksInStat } from "../lib/machine.mjs";
import { waitFor } from "../lib/run.mjs";

export const PROBE_URL = new URL("./eld-probe.mjs", import.meta.url).href;
export const PROBE_FILE = fileURLToPath(PROBE_URL);

/**
 * The control of a daemon's probe, its files in `dir` (created here; `env` passes it to the
 * daemon). send(pid, command) signals the daemon `pid` and resolves with the probe's answer.
 */
export function probeControl(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const commandFile = path.join(dir, "command");
  const replyFile = path.join(dir, "reply.json");
  let seq = 0;
  const readReply = (want) => {
    try {
      const reply = JSON.parse(fs.readFileSync(replyFile, "utf8"));
      return reply.seq === want ? reply : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    dir,
    env: { PROCMON_BENCH_PROBE_DIR: dir },
    async send(pid, command, timeoutMs = 10_000) {
      const want = ++seq;
      fs.writeFileSync(commandFile, `${want} ${command}\n`);
      process.kill(pid, "SIGUSR2");
      const reply = await waitFor(() => readReply(want), timeoutMs, `probe ${command}`, 2);
      if (reply.error) throw new Error(`probe: ${reply.error}`);
      return reply;
    },
  };
}

/** One connect attempt to `socket`: the hrtime at which it connected, or undefined. */
function connectOnce(socket) {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once("connect", () => {
      const at = process.hrtime.bigint();
      s.destroy();
      resolve(at);
    });
    s.once("error", () => {
      s.destroy();
      resolve(undefined);
    });
  });
}

/**
 * Tries `net.connect(socket)` every millisecond until one succeeds: the ms from `t0` (an
 * hrtime bigint) to that connect. Throws after `timeoutMs` or if `proc` exits.
 */
export async function firstConnect(socket, t0, proc, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const at = await connectOnce(socket);
    if (at !== undefined) return Number(at - t0) / 1e6;
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`the daemon exited (${proc.exitCode ?? proc.signalCode}) before serving`);
    }
    if (Date.now() > deadline) throw new Error(`no connect to ${socket} within ${timeoutMs} ms`);
    await sleep(1);
  }
}

function ticksOf(pids) {
  return pids.map((pid) => {
    try {
      return cpuTicks(pid);
    } catch {
      return Number.NaN;
    }
  });
}

/**
 * Waits until the CPU ticks of `pids` have not moved for `quietMs` (the start-up's aftermath,
 * a state-file write, a GC, is over): { ms, quiet }; quiet is false if `timeoutMs` passed first.
 */
export async function waitQuiet(pids, quietMs, timeoutMs) {
  const t0 = Date.now();
  let last = ticksOf(pids);
  let since = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    await sleep(50);
    const now = ticksOf(pids);
    if (now.some((t, i) => t !== last[i])) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return { ms: Date.now() - t0, quiet: true };
    }
  }
  return { ms: Date.now() - t0, quiet: false };
}

/** utime + stime of the threads of `pid` in clock ticks, summed by thread name (comm). */
export function threadTicks(pid) {
  const byName = {};
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const tid of tids) {
    try {
      const { comm, fields } = parseStat(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"));
      byName[comm] = (byName[comm] ?? 0) + ticksInStat(fields);
    } catch {}
  }
  return byName;
}

/** The threads whose ticks grew from `before` to `after`, and by how much. */
export function ticksGrown(before, after) {
  const grown = {};
  for (const [comm, ticks] of Object.entries(after)) {
    const d = ticks - (before[comm] ?? 0);
    if (d > 0) grown[comm] = d;
  }
  return grown;
}
