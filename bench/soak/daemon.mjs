// The soak's daemon: started (by bench/lib's startProcmond) on the same socket and state file
// after every kill, its lines kept with its epoch; SIGKILLed on purpose, sometimes while it starts.

import fs from "node:fs";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { startProcmond } from "../lib/daemon.mjs";
import { exited, waitExit } from "../lib/run.mjs";
import { recordLine } from "./ledger.mjs";
import { scanMarked } from "./proc.mjs";

/** The daemon's --kill-time: also its grace for the orphans of a killed predecessor. */
export const DAEMON_KILL_TIME = "300ms";
/** The longest wait for a started daemon to serve. */
const SERVE_TIMEOUT_MS = 30_000;
/** The longest wait for the daemon to exit after SIGKILL (it is reaped at once, normally). */
export const KILL_EXIT_TIMEOUT_MS = 10_000;

const msSince = (hrtime) => Number(process.hrtime.bigint() - hrtime) / 1e6;

/** The state file's contents, undefined while it cannot be read. */
export function readStateFile(soak) {
  try {
    return JSON.parse(fs.readFileSync(soak.daemons.stateFile, "utf8"));
  } catch {
    return undefined;
  }
}

/** The registry's instance id, from the state file. */
export function readInstance(soak) {
  const state = readStateFile(soak);
  return typeof state?.instance === "string" ? state.instance : undefined;
}

function stateFileIno(file) {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}

/**
 * Starts procmond on the soak's socket and state file. Resolves with { proc, servingMs } once it
 * logs "procmond listening", or rejects (after killing it) when it exits or overruns the timeout.
 * With `killAtMs`, SIGKILLs it that long after the spawn if it is not serving yet; with
 * `killAfterStateWriteMs`, that long after it first replaces the state file (its writes at
 * start-up are where a crash can cost the registry); either way it then resolves with
 * { proc, killedEarly: true, sinceSpawnMs, how } once the daemon has exited.
 */
export async function startDaemon(soak, { killAtMs, killAfterStateWriteMs } = {}) {
  const { daemons, opts } = soak;
  daemons.epoch += 1;
  const started = await startProcmond(soak.run, {
    bin: opts.daemonBin,
    logLevel: opts.logLevel,
    args: ["--kill-time", DAEMON_KILL_TIME],
    children: opts.names,
    wait: false,
  });
  daemons.socket = started.socket;
  daemons.stateFile = started.stateFile;
  const me = {
    proc: started.proc,
    client: started.client,
    startedAt: started.startedAt,
    epoch: daemons.epoch,
    expectExit: false,
    serving: false,
  };
  daemons.current = me;
  daemons.logOut.write(`[epoch ${me.epoch}] ---- procmond started, pid ${me.proc.pid} ----\n`);
  const killEarly = () => {
    if (me.serving || exited(me.proc)) return;
    me.expectExit = true;
    me.killedEarly = true;
    me.proc.kill("SIGKILL");
  };
  const stopWatch =
    killAfterStateWriteMs === undefined
      ? () => {}
      : watchStateWrite(me, daemons.stateFile, killAfterStateWriteMs, killEarly);
  const earlyKill = killAtMs === undefined ? undefined : setTimeout(killEarly, killAtMs);
  return untilServing(soak, me, () => {
    clearTimeout(earlyKill);
    stopWatch();
  });
}

/** Calls `kill` `delayMs` after the daemon's first replacement of `file`; returns the stop. */
function watchStateWrite(me, file, delayMs, kill) {
  const ino0 = stateFileIno(file);
  const watcher = setInterval(() => {
    if (me.serving || exited(me.proc)) {
      clearInterval(watcher);
      return;
    }
    const ino = stateFileIno(file);
    if (ino === undefined || ino === ino0) return;
    clearInterval(watcher);
    me.earlyKillAt = "after its first state file write";
    if (delayMs === 0) kill();
    else setTimeout(kill, delayMs);
  }, 1);
  return () => clearInterval(watcher);
}

function untilServing(soak, me, clearKills) {
  const { proc, epoch } = me;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearKills();
      fn(value);
    };
    const timer = setTimeout(() => {
      me.expectExit = true;
      proc.kill("SIGKILL");
      settle(
        reject,
        new Error(`procmond (epoch ${epoch}) did not serve within ${SERVE_TIMEOUT_MS} ms`),
      );
    }, SERVE_TIMEOUT_MS);
    readline.createInterface({ input: proc.stdout }).on("line", (text) => {
      const entry = recordLine(soak, text, "stdout");
      if (entry.obj?.shimPid > 0) soak.survival.shimPids.add(entry.obj.shimPid);
      if (entry.obj?.msg === "procmond listening" && !me.serving) {
        me.serving = true;
        me.shimPid = entry.obj.shimPid;
        settle(resolve, { proc, servingMs: msSince(me.startedAt) });
      }
    });
    readline
      .createInterface({ input: proc.stderr })
      .on("line", (text) => recordLine(soak, text, "stderr"));
    proc.on("exit", (code, signal) => {
      const outcome = onExit(soak, me, code, signal);
      settle(outcome.ok ? resolve : reject, outcome.value);
    });
  });
}

/** What the start's promise becomes when the daemon exits: resolved (ok) or rejected with value. */
function onExit(soak, me, code, signal) {
  const { daemons } = soak;
  daemons.logOut.write(
    `[epoch ${me.epoch}] ---- procmond exited: code ${code} signal ${signal} ----\n`,
  );
  if (me.killedEarly) {
    const how = me.earlyKillAt ?? "at a random moment";
    const value = { proc: me.proc, killedEarly: true, sinceSpawnMs: msSince(me.startedAt), how };
    return { ok: true, value };
  }
  if (!me.expectExit) {
    daemons.unexpectedExit ??= { epoch: me.epoch, code, signal, serving: me.serving };
    daemons.up = false;
    daemons.generation += 1;
  }
  const error = new Error(
    `procmond (epoch ${me.epoch}) exited before serving: code ${code} signal ${signal}`,
  );
  return { ok: false, value: error };
}

/** SIGKILLs the daemon (if it runs) and waits for its exit. */
export async function killDaemon(soak) {
  const daemon = soak.daemons.current;
  if (!daemon || exited(daemon.proc)) return;
  daemon.expectExit = true;
  try {
    daemon.proc.kill("SIGKILL");
  } catch {}
  await waitExit(daemon.proc, KILL_EXIT_TIMEOUT_MS);
}

/** SIGKILLs every marked process, until none is left or 5 s are up; the number of kills. */
export async function killMarked(soak, reason) {
  const inst = soak.daemons.instance ?? readInstance(soak);
  if (inst === undefined) return 0;
  let killed = 0;
  const deadline = Date.now() + 5_000;
  for (;;) {
    const left = scanMarked(inst);
    if (left.length === 0 || Date.now() > deadline) break;
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
        killed++;
      } catch {}
    }
    await sleep(20);
  }
  if (killed > 0) soak.log(`${reason}: killed ${killed} leftover marked processes`);
  return killed;
}

/** The same, synchronously: for process.on("exit"), as a last resort. */
export function killMarkedSync(soak) {
  const inst = soak.daemons.instance ?? readInstance(soak);
  if (inst === undefined) return;
  const shared = new Int32Array(new SharedArrayBuffer(4));
  for (let round = 0; round < 50; round++) {
    const left = scanMarked(inst);
    if (left.length === 0) return;
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {}
    }
    Atomics.wait(shared, 0, 0, 20);
  }
}
