// keepup's daemons and what it reads of them: each started by bench/lib's startProcmond in a
// directory of its own with the probe preloaded, its log on /dev/null (or a file); the
// processes it runs for the bench, killed by pid (as a group) if it did not stop them.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startProcmond } from "../lib/daemon.mjs";
import { cpuSeconds, procStatus } from "../lib/machine.mjs";
import { exited, stopProc, waitExit } from "../lib/run.mjs";

const PROBE_URL = pathToFileURL(
  path.join(path.dirname(fileURLToPath(import.meta.url)), "probe.mjs"),
).href;
/** The longest wait for a daemon to stop after SIGTERM. */
const STOP_TIMEOUT_MS = 15_000;

/**
 * Starts `build`'s daemon with its socket, state file and probe file in `dir` and resolves once
 * it answers: { proc, client, socket, probeFile }.
 */
export async function startDaemonIn(run, o, build, dir, index) {
  const probeFile = path.join(dir, "probe.json");
  const logFd = fs.openSync(o.log === "file" ? path.join(dir, "daemon.log") : "/dev/null", "w");
  try {
    const daemon = await startProcmond(run, {
      label: "procmon",
      dir,
      bin: build.bin,
      logLevel: "info",
      args: build.flags,
      nodeArgs: [...o.daemonNodeArgs, "--import", PROBE_URL],
      stdout: logFd,
      env: {
        PROCMON_SOCKET: undefined,
        PROCMON_KEEPUP_PROBE: probeFile,
        PROCMON_KEEPUP_TRACE: o.traceDir && path.join(o.traceDir, `${build.label}-${index}.json`),
      },
    });
    return { proc: daemon.proc, client: daemon.client, socket: daemon.socket, probeFile };
  } finally {
    fs.closeSync(logFd);
  }
}

/** SIGTERM, SIGKILL if it has not exited within STOP_TIMEOUT_MS. */
export async function stopDaemon(proc) {
  const { exited: done } = await stopProc(proc, STOP_TIMEOUT_MS);
  if (!done) proc.kill("SIGKILL");
}

/** SIGKILL unless it has exited, and its exit awaited. */
export async function killDaemon(proc) {
  if (exited(proc)) return;
  proc.kill("SIGKILL");
  await waitExit(proc, 5_000);
}

/**
 * Pids of the daemons' children, each a process group leader: at cleanup and at exit, the groups
 * of those still listed (their daemon did not stop them) are SIGKILLed.
 */
export function createGrandchildren(run) {
  const pids = new Set();
  const killAll = () => {
    for (const pid of pids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    pids.clear();
  };
  run.onCleanup(killAll);
  process.on("exit", killAll);
  return pids;
}

/** VmRSS and VmHWM of `pid` in MiB, undefined once it is gone. */
export function memoryOf(pid) {
  const { rssMB, hwmMB } = procStatus(pid);
  return Number.isFinite(rssMB) ? { rssMiB: rssMB, hwmMiB: hwmMB } : undefined;
}

/** CPU seconds used by `pid` so far, null once it is gone. */
export function cpuOf(pid) {
  const s = cpuSeconds(pid);
  return Number.isFinite(s) ? s : null;
}

/** The JSON in `file`, undefined while it is missing or incomplete. */
export function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}
