// The soak's scenario: the first start, the SIGKILLs under load (each followed by a restart, a drain
// and the checks), then the final checks and a graceful stop whose aftermath is checked too.

import fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { waitExit, waitFor } from "../lib/run.mjs";
import { median } from "../lib/stats.mjs";
import { checkInvariants } from "./checks.mjs";
import { clientLoop, DRAIN_TIMEOUT_MS, drain, pause, resume } from "./clients.mjs";
import { KILL_EXIT_TIMEOUT_MS, readInstance, readStateFile, startDaemon } from "./daemon.mjs";
import { addViolation, countCheck, logContext } from "./ledger.mjs";
import { scanMarked } from "./proc.mjs";
import {
  catchUp,
  certainNow,
  checkAdopted,
  checkPrinted,
  checkShimRestarts,
  killShim,
  killVictim,
  learnList,
  liveShims,
  OUTAGE_NAMES,
  outageSpec,
  PRINTER,
  printerSpec,
  rememberShimsOf,
  watchAll,
} from "./survival.mjs";
import { fmt } from "./workload.mjs";

/** The longest wait for the daemon to exit after SIGTERM. */
const TERM_EXIT_TIMEOUT_MS = 30_000;
/** How long to wait, after SIGTERM, for every marked process to be gone. */
const LEFTOVER_TIMEOUT_MS = 10_000;
/** Time kept at the end of the budget for the final checks and the shutdown. */
const FINAL_RESERVE_MS = 45_000;
/** After a shim kill, how long the processes may take to be running again. */
const SHIM_RESTART_TIMEOUT_MS = 15_000;

/** Runs the soak: { stoppedEarly, finalOk, shutdown }. Throws when it cannot be carried out. */
export async function runSoak(soak) {
  const { daemons } = soak;
  const first = await startDaemon(soak);
  daemons.up = true;
  daemons.generation++;
  soak.restarts.push({ epoch: daemons.epoch, servingMs: first.servingMs, orphans: 0 });
  daemons.instance = readInstance(soak);
  if (daemons.instance === undefined) throw new Error(`no instance id in ${daemons.stateFile}`);
  soak.log(`procmond serving in ${first.servingMs.toFixed(0)} ms, instance ${daemons.instance}`);

  // The watcher from now on, then the printer, so that it sees every line of it.
  const { lastEventSeq } = await daemons.current.client.listProcesses({ timeoutMs: 10_000 });
  soak.survival.watcher.cursor = lastEventSeq;
  const watching = watchAll(soak).catch((err) => {
    soak.survival.watcher.errors.push(`watcher ended: ${err?.message ?? err}`);
  });
  const printer = await daemons.current.client.addProcess(printerSpec(), { timeoutMs: 10_000 });
  soak.expected.set(PRINTER, new Set(["running"]));
  soak.survival.known.set(PRINTER, { pid: printer.pid, restartCount: printer.restartCount });
  for (const name of OUTAGE_NAMES) {
    const p = await daemons.current.client.addProcess(outageSpec(name), { timeoutMs: 10_000 });
    soak.expected.set(name, new Set(["running"]));
    soak.survival.known.set(name, { pid: p.pid, restartCount: p.restartCount });
  }

  const loops = Array.from({ length: soak.opts.clients }, (_, i) => clientLoop(soak, i));
  const stoppedEarly = await killRounds(soak);
  const exit = daemons.unexpectedExit;
  if (exit) {
    addViolation(soak, "daemon-exit", {
      expected: "procmond exits only when killed or terminated",
      found: `epoch ${exit.epoch} exited on its own: code ${exit.code} signal ${exit.signal}`,
      daemonLog: logContext(soak, undefined, exit.epoch, 30),
    });
    countCheck(soak, "daemon-exit", false);
  }

  // Final: quiesce, check, then a graceful stop.
  pause(soak);
  await drain(soak);
  soak.clients.finished = true;
  resume(soak);
  await Promise.race([Promise.all(loops), sleep(DRAIN_TIMEOUT_MS, undefined, { ref: false })]);
  if (exit) return { stoppedEarly, finalOk: false, shutdown: notShutDown() };
  const finalOk = await checkInvariants(soak, "final");
  if (await catchUp(soak, "final")) checkPrinted(soak, "final");
  const result = { stoppedEarly, finalOk, shutdown: await shutdown(soak) };
  soak.survival.watcherDone = true;
  await Promise.race([watching, sleep(5_000, undefined, { ref: false })]);
  return result;
}

/** The order of the kills: `kills` "daemon" and `shimKills` "shim", shuffled by `rng`. */
function killSchedule(rng, kills, shimKills) {
  const order = [...Array(kills).fill("daemon"), ...Array(shimKills).fill("shim")];
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.randInt(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The kills, until done, out of time or the daemon exited on its own; true if out of time. */
async function killRounds(soak) {
  const { daemons } = soak;
  const budgetEnd = soak.t0 + soak.opts.seconds * 1000 - FINAL_RESERVE_MS;
  let k = 0;
  let s = 0;
  for (const what of killSchedule(soak.rng, soak.opts.kills, soak.opts.shimKills)) {
    if (Date.now() >= budgetEnd) {
      soak.log(
        `time budget nearly used: stopping after ${soak.killsDone} daemon kills, ${s} shim kills`,
      );
      return true;
    }
    if (daemons.unexpectedExit) break;
    resume(soak);
    await sleep(soak.rng.randInt(50, 500));
    if (daemons.unexpectedExit) break;
    if (what === "shim") await shimKillOnce(soak, ++s);
    else await killOnce(soak, ++k);
  }
  return false;
}

/**
 * SIGKILL of the shim at a random moment of client activity: the daemon must start a new one,
 * report each process exited SIGKILL and start each once (new pid); then the usual checks.
 */
async function shimKillOnce(soak, s) {
  const label = `after shim kill ${s}`;
  let certain;
  let seqAtKill;
  const r = await killShim(soak, () => {
    certain = certainNow(soak);
    seqAtKill = soak.survival.watcher.cursor;
  });
  // Everything it had is restarted (not an instant death for the old ones: no backoff).
  const back = await waitFor(
    async () => {
      const { processes } = await soak.daemons.current.client.listProcesses({ timeoutMs: 5_000 });
      return !processes.some((p) => p.state === 2);
    },
    SHIM_RESTART_TIMEOUT_MS,
    "no process in backoff after the shim kill",
    50,
  ).then(
    () => true,
    () => false,
  );
  pause(soak);
  if (!(await drain(soak))) {
    addViolation(soak, "hung-call", {
      label,
      expected: `every call answered within ${DRAIN_TIMEOUT_MS} ms`,
      found: `${soak.clients.inFlight} still in flight: ${[...soak.clients.busy].join(", ")}`,
    });
    countCheck(soak, "drain", false);
  }
  const ok = await checkInvariants(soak, label);
  if (soak.lastList && (await catchUp(soak, label))) {
    checkShimRestarts(soak, label, certain, seqAtKill, soak.lastList);
    checkPrinted(soak, label);
  }
  if (soak.lastList) learnList(soak, soak.lastList);
  soak.log(
    `shim kill ${s}: shim ${r.oldPid} replaced by ${r.newPid} in ${r.replacedMs.toFixed(0)} ms, ${certain.size} processes certain, ${back ? "all running again" : "SOME STILL IN BACKOFF"}, checks ${ok ? "ok" : "FAILED"}`,
  );
}

/** SIGKILL at a random moment of client activity, a restart, a drain and the checks. */
async function killOnce(soak, k) {
  const { daemons, stats } = soak;
  const inFlightAtKill = soak.clients.inFlight;
  const uncertainBefore = stats.opsUncertain;
  const killed = daemons.current;
  killed.expectExit = true;
  rememberShimsOf(soak, killed.proc);
  // What is certain at the kill: running, pid known, no call in flight.
  const certain = certainNow(soak);
  daemons.up = false;
  daemons.generation++;
  killed.proc.kill("SIGKILL");
  if (!(await waitExit(killed.proc, KILL_EXIT_TIMEOUT_MS))) {
    throw new Error(
      `procmond pid ${killed.proc.pid} still there ${KILL_EXIT_TIMEOUT_MS} ms after SIGKILL`,
    );
  }
  soak.killsDone++;
  const markedLeft = scanMarked(daemons.instance).length;
  // The new daemon's events start after what the state file reserved.
  const reservedSeq = BigInt(readStateFile(soak)?.seqReservedUpTo ?? "0");
  // Every third outage, one process dies while no daemon runs.
  const victim =
    k % 3 === 2
      ? await killVictim(soak, certain, (k / 3) % 2 < 1 ? "SIGTERM" : "SIGKILL")
      : undefined;
  // Start it again; the clients keep trying meanwhile.
  const r = await restart(soak);
  daemons.up = true;
  daemons.generation++;
  // Its orphan sweep, as it logged it.
  const sweep = daemons.lines.findLast(
    (l) =>
      l.epoch === daemons.epoch &&
      l.obj?.msg === "terminating processes left by a previous procmond",
  );
  soak.restarts.push({
    epoch: daemons.epoch,
    servingMs: r.servingMs,
    markedLeftByKilled: markedLeft,
    orphansSwept: sweep?.obj?.pids?.length ?? 0,
  });
  // Pause and drain the clients, then check.
  pause(soak);
  if (!(await drain(soak))) {
    addViolation(soak, "hung-call", {
      expected: `every call answered within ${DRAIN_TIMEOUT_MS} ms`,
      found: `${soak.clients.inFlight} still in flight: ${[...soak.clients.busy].join(", ")}`,
    });
    countCheck(soak, "drain", false);
  }
  stats.interruptedPerKill.push({
    kill: k,
    inFlightAtKill,
    uncertain: stats.opsUncertain - uncertainBefore,
  });
  const label = `after kill ${k}`;
  const ok = await checkInvariants(soak, label);
  if (soak.lastList && (await catchUp(soak, label))) {
    checkAdopted(soak, label, certain, reservedSeq, victim, soak.lastList);
    checkPrinted(soak, label);
  }
  if (victim) soak.clients.busy.delete(victim.name);
  if (soak.lastList) learnList(soak, soak.lastList);
  const outage = victim
    ? `, ${victim.name} (pid ${victim.pid}) ${victim.signal}ed in the outage`
    : "";
  soak.log(
    `kill ${k}: ${inFlightAtKill} calls in flight, ${certain.size} processes certain${outage}, serving again in ${r.servingMs.toFixed(0)} ms (${markedLeft} marked processes left by the killed daemon), checks ${ok ? "ok" : "FAILED"}`,
  );
}

/** The daemon started again; not coming back after a SIGKILL is a failure of the daemon. */
async function restart(soak) {
  try {
    const r = await restartDaemon(soak);
    countCheck(soak, "restart", true);
    return r;
  } catch (err) {
    // A torn state file, say.
    countCheck(soak, "restart", false);
    addViolation(soak, "restart", {
      expected: "procmond serves again after SIGKILL, with the same state file",
      found: err.message,
      daemonLog: logContext(soak, undefined, soak.daemons.epoch, 30),
    });
    throw err;
  }
}

/** Starts the daemon, sometimes killing it during its start-up first (--startup-kill-rate). */
async function restartDaemon(soak) {
  const { rng, opts } = soak;
  while (opts.startupKillRate > 0 && rng.random() < opts.startupKillRate) {
    // Half at a random moment of its start-up, half just after its first state file write.
    const typical = median(soak.restarts.map((r) => r.servingMs)) || 400;
    const r = await startDaemon(
      soak,
      rng.random() < 0.5
        ? { killAtMs: rng.randInt(0, Math.max(50, Math.round(typical))) }
        : { killAfterStateWriteMs: rng.randInt(0, 30) },
    );
    // It served before the kill was due: just use it.
    if (!r.killedEarly) return r;
    soak.startupKillsDone++;
    const sinceSpawnMs = Math.round(r.sinceSpawnMs);
    soak.startupKills.push({
      at: soak.since(),
      epoch: soak.daemons.epoch,
      sinceSpawnMs,
      how: r.how,
    });
    soak.log(
      `startup kill ${soak.startupKillsDone}: SIGKILLed the starting daemon ${sinceSpawnMs} ms after its spawn (${r.how})`,
    );
  }
  return startDaemon(soak);
}

function notShutDown() {
  return { exitCode: null, signal: null, ms: null, leftovers: [], socketRemoved: null };
}

/** SIGTERM: exit 0, no marked process left, the socket removed, the registry persisted. */
async function shutdown(soak) {
  const { daemons } = soak;
  const result = notShutDown();
  const { proc } = daemons.current;
  const t = performance.now();
  daemons.current.expectExit = true;
  proc.kill("SIGTERM");
  const gone = await waitExit(proc, TERM_EXIT_TIMEOUT_MS);
  result.ms = Math.round(performance.now() - t);
  result.exitCode = proc.exitCode;
  result.signal = proc.signalCode;
  const exitOk = gone && proc.exitCode === 0;
  countCheck(soak, "shutdown-exit", exitOk);
  if (!exitOk) {
    addViolation(soak, "shutdown-exit", {
      expected: `exit 0 within ${TERM_EXIT_TIMEOUT_MS} ms of SIGTERM`,
      found: gone ? `code ${proc.exitCode} signal ${proc.signalCode}` : "still running",
      daemonLog: logContext(soak, undefined, daemons.epoch, 30),
    });
  }
  result.leftovers = await leftovers(soak);
  result.shimsLeft = liveShims(soak);
  countCheck(soak, "shutdown-shim", result.shimsLeft.length === 0);
  if (result.shimsLeft.length > 0) {
    addViolation(soak, "shutdown-shim", {
      expected: "no procmon-shim of this run after SIGTERM",
      found: result.shimsLeft,
    });
  }
  result.socketRemoved = !fs.existsSync(daemons.socket);
  countCheck(soak, "shutdown-socket", result.socketRemoved);
  if (!result.socketRemoved) {
    addViolation(soak, "shutdown-socket", {
      expected: "socket file removed",
      found: daemons.socket,
    });
  }
  checkPersisted(soak);
  return result;
}

/** The marked processes still there LEFTOVER_TIMEOUT_MS after the SIGTERM (none, normally). */
async function leftovers(soak) {
  let left = [];
  await waitFor(
    () => {
      left = scanMarked(soak.daemons.instance);
      return left.length === 0;
    },
    LEFTOVER_TIMEOUT_MS,
    "no marked process left",
    50,
  ).catch(() => undefined);
  const shown = left.map((m) => `${m.pid} ${m.name} ${m.cmdline}`);
  countCheck(soak, "shutdown-leftovers", left.length === 0);
  if (left.length > 0) {
    addViolation(soak, "shutdown-leftovers", {
      expected: "no marked process after SIGTERM",
      found: shown,
      daemonLog: logContext(soak, undefined, soak.daemons.epoch, 30),
    });
  }
  return shown;
}

/** The registry outlives a graceful stop too, each intent kept. */
function checkPersisted(soak) {
  const state = readStateFile(soak);
  const persisted = new Map((state?.processes ?? []).map((e) => [e.spec?.name, e.intent]));
  const mismatches = [];
  for (const [name, exp] of soak.expected) {
    const found = persisted.has(name) ? persisted.get(name) : "absent";
    if (!exp.has(found)) mismatches.push({ name, expected: fmt(exp), found });
  }
  for (const name of persisted.keys()) {
    if (!soak.expected.has(name)) {
      mismatches.push({ name, expected: "absent", found: persisted.get(name) });
    }
  }
  countCheck(soak, "shutdown-state-file", mismatches.length === 0);
  for (const m of mismatches) addViolation(soak, "shutdown-state-file", m);
}
