// A benchmark run's lifecycle: its temp dir, its log, the processes it started, and their
// cleanup on success, on error and on SIGINT/SIGTERM. Every bench script is
//
//   const run = createRun("restart-latency");
//   await run.main(async () => { ... run.track(proc, "procmond") ... });
//
// and leaves nothing behind: run.signal aborts; the `first` cleanup hooks run (oldest first, e.g.
// to stop a load generator or SIGKILL a daemon on purpose); each tracked process gets SIGTERM,
// then SIGKILL after its grace; the other cleanup hooks run (newest first, e.g. to kill leftover
// children by pid after checking their command line); the temp dir is removed. Should the
// process exit without that (process.exit from elsewhere, a cleanup cut short), its 'exit'
// handler SIGKILLs the tracked processes still alive and removes the temp dir, as a last resort.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Whether `proc` (a ChildProcess) has exited. */
export function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/** Resolves true when `proc` exits, false after `timeoutMs`. */
export async function waitExit(proc, timeoutMs) {
  if (exited(proc)) return true;
  let timer;
  const result = await Promise.race([
    new Promise((resolve) => proc.once("exit", () => resolve(true))),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/** SIGTERM, then how long `proc` took to exit (and its code). */
export async function stopProc(proc, timeoutMs = 30_000) {
  const t0 = process.hrtime.bigint();
  if (!exited(proc)) proc.kill("SIGTERM");
  const done = await waitExit(proc, timeoutMs);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, exited: done, code: proc.exitCode };
}

/** Polls `predicate` every `stepMs` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(predicate, timeoutMs, what = "condition", stepMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(stepMs);
  }
}

async function runHooks(hooks, log) {
  for (const hook of hooks) {
    try {
      await hook();
    } catch (err) {
      log(`cleanup: ${err.message}`);
    }
  }
}

/** The last resort, from process.on("exit"): SIGKILL what is still tracked, remove `tmp`. */
function killAtExit(tracked, tmp) {
  for (const { proc } of tracked) {
    try {
      proc.kill("SIGKILL");
    } catch {}
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** A run named `name`: its temp dir is $TMPDIR/procmon-`name`-XXXXXX. */
export function createRun(name) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `procmon-${name}-`));
  const tracked = new Set();
  const hooks = [];
  const firstHooks = [];
  const aborter = new AbortController();
  let cleaning;

  const log = (message) => {
    process.stderr.write(`[${name} ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
  };

  /** Stops `proc` at cleanup (SIGTERM, SIGKILL after `graceMs`) unless it has exited. */
  const track = (proc, label, graceMs = 20_000) => {
    const entry = { proc, label, graceMs };
    tracked.add(entry);
    proc.once("exit", () => tracked.delete(entry));
    return proc;
  };

  /**
   * Runs `fn` at cleanup, after the tracked processes are stopped (newest hook first); with
   * `first`, before they are stopped (oldest first).
   */
  const onCleanup = (fn, { first = false } = {}) => {
    (first ? firstHooks : hooks).push(fn);
  };

  const stopTracked = async ({ proc, label, graceMs }) => {
    if (exited(proc)) return;
    log(`stopping ${label} (pid ${proc.pid})`);
    try {
      proc.kill("SIGTERM");
    } catch {}
    if (await waitExit(proc, graceMs)) return;
    log(`${label} did not exit after SIGTERM: SIGKILL`);
    try {
      proc.kill("SIGKILL");
    } catch {}
    await waitExit(proc, 5_000);
  };

  const cleanup = () => {
    cleaning ??= (async () => {
      aborter.abort();
      await runHooks(firstHooks, log);
      await Promise.all([...tracked].map(stopTracked));
      await runHooks(hooks.reverse(), log);
      fs.rmSync(tmp, { recursive: true, force: true });
    })();
    return cleaning;
  };

  process.once("exit", () => killAtExit(tracked, tmp));

  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }

  /** Runs `body`, cleans up whatever happened, and exits 1 if it threw. */
  const main = async (body) => {
    let failed = false;
    try {
      await body();
    } catch (err) {
      failed = true;
      log(`failed: ${err.stack ?? err}`);
    } finally {
      await cleanup();
    }
    process.exit(failed ? 1 : 0);
  };

  /** Aborted once cleanup starts: what a teardown interrupts is not a failure of the subject. */
  const signal = aborter.signal;

  return { name, tmp, log, track, onCleanup, cleanup, main, signal };
}
