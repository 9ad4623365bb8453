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
import { fmt } from "./workload.mjs";

/** The longest wait for the daemon to exit after SIGTERM. */
const TERM_EXIT_TIMEOUT_MS = 30_000;
/** How long to wait, after SIGTERM, for every marked process to be gone. */
const LEFTOVER_TIMEOUT_MS = 10_000;
/** Time kept at the end of the budget for the final checks and the shutdown. */
const FINAL_RESERVE_MS = 45_000;

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
  return { stoppedEarly, finalOk, shutdown: await shutdown(soak) };
}

/** The kills, until done, out of time or the daemon exited on its own; true if out of time. */
async function killRounds(soak) {
  const { daemons } = soak;
  const budgetEnd = soak.t0 + soak.opts.seconds * 1000 - FINAL_RESERVE_MS;
  for (let k = 1; k <= soak.opts.kills; k++) {
    if (Date.now() >= budgetEnd) {
      soak.log(`time budget nearly used: stopping after ${soak.killsDone} kills`);
      return true;
    }
    if (daemons.unexpectedExit) break;
    resume(soak);
    await sleep(soak.rng.randInt(50, 500));
    if (daemons.unexpectedExit) break;
    await killOnce(soak, k);
  }
  return false;
}

/** SIGKILL at a random moment of client activity, a restart, a drain and the checks. */
async function killOnce(soak, k) {
  const { daemons, stats } = soak;
  const inFlightAtKill = soak.clients.inFlight;
  const uncertainBefore = stats.opsUncertain;
  const killed = daemons.current;
  killed.expectExit = true;
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
  const ok = await checkInvariants(soak, `after kill ${k}`);
  soak.log(
    `kill ${k}: ${inFlightAtKill} calls in flight, serving again in ${r.servingMs.toFixed(0)} ms (${markedLeft} marked processes left by the killed daemon), checks ${ok ? "ok" : "FAILED"}`,
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
