// The bench's side of a subscriber worker (bench/events/worker.mjs): fork it, call it over IPC,
// stop it. Tracked by the run, so an error or a signal stops it too.

import { fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "../lib/daemon.mjs";
import { cpuSeconds } from "../lib/machine.mjs";
import { waitExit } from "../lib/run.mjs";

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "worker.mjs");
const READY_TIMEOUT_MS = 30_000;

function whenReady(proc, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} not ready after 30 s`)),
      READY_TIMEOUT_MS,
    );
    proc.on("message", (msg) => {
      if (!msg.ready) return;
      clearTimeout(timer);
      resolve(msg);
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready`));
    });
  });
}

/** Forks a worker named `name`; resolves once its decoder self-test has passed. */
export async function startWorker(run, name) {
  const proc = run.track(
    fork(WORKER, [], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] }),
    name,
    5_000,
  );
  const pending = new Map();
  let nextId = 0;
  proc.on("message", (msg) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`${name}: ${msg.error}`));
  });
  proc.on("exit", (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited (${code ?? signal})`));
    pending.clear();
  });
  await whenReady(proc, name);
  const call = (type, args = {}) =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve, reject });
      proc.send({ id, type, ...args });
    });
  const stop = async () => {
    await call("closeConnections").catch(() => {});
    if (proc.connected) proc.disconnect();
    if (!(await waitExit(proc, 10_000))) proc.kill("SIGTERM");
    await waitExit(proc, 5_000);
  };
  return { proc, call, stop, cpuSec: () => cpuSeconds(proc.pid) };
}
