// The soak's client loops: each picks a free name (one call per name at a time, so the order of
// acknowledgements is the order of effects), makes a call on it and updates what the clients were
// told; paused and drained around every check.

import { setTimeout as sleep } from "node:timers/promises";
import { Code, createClient, isAlreadyExists, isNotFound } from "@procmon/client";
import { waitFor } from "../lib/run.mjs";
import { addViolation, countCheck, logContext, remember } from "./ledger.mjs";
import { learnAck, touch } from "./survival.mjs";
import { applyOp, callOp, chooseOp, fmt, STATE_NAME } from "./workload.mjs";

/** The longest wait for the client loops to finish their calls when paused. */
export const DRAIN_TIMEOUT_MS = 30_000;

export function pause(soak) {
  soak.clients.paused = true;
}

export function resume(soak) {
  const c = soak.clients;
  c.paused = false;
  const waiters = c.resumeWaiters;
  c.resumeWaiters = [];
  for (const w of waiters) w();
}

function whenResumed(soak) {
  if (!soak.clients.paused) return Promise.resolve();
  return new Promise((resolve) => soak.clients.resumeWaiters.push(resolve));
}

/** Resolves true once no call is in flight, false after DRAIN_TIMEOUT_MS. */
export function drain(soak) {
  return waitFor(() => soak.clients.inFlight === 0, DRAIN_TIMEOUT_MS, "drain").then(
    () => true,
    () => false,
  );
}

function isConnectionError(err) {
  return err?.code === Code.UNAVAILABLE || err?.code === Code.CANCELLED;
}

/** Client loop `id`: calls until the soak is finished, on a channel of its own. */
export async function clientLoop(soak, id) {
  const c = soak.clients;
  let client = createClient({ socket: soak.daemons.socket });
  try {
    while (!c.finished) {
      await whenResumed(soak);
      if (c.finished) break;
      if (c.paused) continue;
      const free = soak.pool.filter((p) => !c.busy.has(p.name));
      if (free.length === 0) {
        await sleep(2);
        continue;
      }
      const { backoff, err } = await oneCall(soak, id, client, soak.rng.pick(free).name);
      if (isConnectionError(err)) {
        // A fresh channel: grpc-js would otherwise wait out its reconnection backoff.
        client.close();
        client = createClient({ socket: soak.daemons.socket });
      }
      // While the daemon is down, retry at a modest pace: a storm of connection attempts would
      // only slow its start-up.
      if (backoff === "down") await sleep(soak.rng.randInt(50, 100));
      else if (backoff) await sleep(soak.rng.randInt(5, 25));
    }
  } finally {
    client.close();
  }
}

/** One call on `name`, its outcome accounted for: { backoff, err }. */
async function oneCall(soak, id, client, name) {
  const { clients: c, daemons, stats } = soak;
  const op = chooseOp(soak.rng, soak.expected.get(name));
  c.busy.add(name);
  c.inFlight++;
  stats.opsStarted++;
  stats.byOp[op] ??= { acked: 0, rejected: 0, uncertain: 0, notReached: 0 };
  const call = {
    id,
    name,
    op,
    before: new Set(soak.expected.get(name)),
    gen0: daemons.generation,
    up0: daemons.up,
    epoch0: daemons.epoch,
    wall0: Date.now(),
    shimKills0: soak.survival.tallies.shimKills,
  };
  try {
    const p = await callOp(client, op, name, soak.specFor(name));
    soak.ackLatencies[op] ??= [];
    soak.ackLatencies[op].push(Date.now() - call.wall0);
    onAck(soak, call, p);
    stats.byOp[op].acked++;
    return { backoff: false };
  } catch (err) {
    return { backoff: onError(soak, call, err), err };
  } finally {
    c.busy.delete(name);
    c.inFlight--;
  }
}

/** A failed call: rejected, never reached a daemon, or uncertain. Returns the backoff. */
function onError(soak, call, err) {
  const { stats, daemons } = soak;
  const opStats = stats.byOp[call.op];
  if (isNotFound(err) || isAlreadyExists(err)) {
    onRejected(soak, call, err);
    opStats.rejected++;
    return false;
  }
  if (!call.up0 && call.gen0 === daemons.generation && isConnectionError(err)) {
    // Started and failed while the daemon was down: no daemon ever saw it.
    stats.opsNotReached++;
    opStats.notReached++;
    return "down";
  }
  onUncertain(soak, call, err);
  return true;
}

/** A call cut by the daemon's death (or failing oddly): it may or may not have been carried out. */
function onUncertain(soak, call, err) {
  const { stats } = soak;
  const { name, op, before } = call;
  const killed = call.gen0 !== soak.daemons.generation;
  if (!killed || !isConnectionError(err)) {
    stats.opsUnexpectedError++;
    const details = {
      name,
      op,
      client: call.id,
      error: `${err?.name} ${err?.code} ${err?.message}`,
      daemonKilledDuringCall: killed,
      durationMs: Date.now() - call.wall0,
    };
    if (killed)
      soak.warnings.push({ kind: "error-of-a-killed-call", at: soak.since(), ...details });
    else addViolation(soak, "unexpected-error", { ...details, daemonLog: logContext(soak, name) });
  }
  // The daemon may or may not have carried it out (and persisted it) before dying.
  const after = new Set();
  for (const s of before) {
    after.add(s);
    after.add(applyOp(op, s));
  }
  soak.expected.set(name, after);
  soak.survival.known.delete(name);
  touch(soak, name);
  stats.opsUncertain++;
  stats.byOp[op].uncertain++;
  const code = err?.code === undefined ? err : (Code[err.code] ?? err.code);
  remember(soak, name, {
    wall: call.wall0,
    epoch: call.epoch0,
    client: call.id,
    op,
    outcome: `uncertain (${code}: ${err?.message})`,
    expectedAfter: fmt(after),
  });
}

function onAck(soak, call, p) {
  const { name, op, before } = call;
  soak.stats.opsAcked++;
  const result = op === "remove" ? "absent" : op === "stop" ? "stopped" : "running";
  const registry = (expected, found) =>
    addViolation(soak, "registry", {
      name,
      expected,
      found,
      history: [...soak.history.get(name)],
      daemonLog: logContext(soak, name),
    });
  // An acknowledged call on a name the clients know to be absent means the daemon has a name it
  // should not have (a removal or a failed add came back).
  if (op !== "add" && before.size === 1 && before.has("absent")) {
    registry(
      "absent",
      `${op} acknowledged (state ${STATE_NAME[p.state]}, pid ${p.pid}): the daemon has it`,
    );
  }
  if (op === "add" && !before.has("absent")) {
    registry(fmt(before), `add acknowledged (pid ${p.pid}): the daemon did not have it`);
  }
  checkAnswer(soak, call, p);
  learnAck(soak, name, op, p);
  soak.expected.set(name, new Set([result]));
  remember(soak, name, {
    wall: call.wall0,
    epoch: call.epoch0,
    client: call.id,
    op,
    outcome: `ok ${STATE_NAME[p.state]} pid ${p.pid}`,
    expectedAfter: result,
  });
}

/**
 * The answer itself: what each call promises. A spawn that failed because the shim was being
 * SIGKILLed (the call raced a shim kill) leaves the process in BACKOFF, pid 0, its
 * last_spawn_error naming procmon-shim, to be started by the rule: tolerated, and counted.
 */
function checkAnswer(soak, { name, op, shimKills0 }, p) {
  const wantState = op === "add" || op === "start" || op === "restart" ? 1 : 4;
  const racedShimKill = soak.survival.shimDying || soak.survival.tallies.shimKills !== shimKills0;
  if (wantState === 1 && p.state === 2 && racedShimKill && /procmon-shim/.test(p.lastSpawnError)) {
    soak.stats.spawnFailedInShimKill++;
    soak.warnings.push({
      kind: "spawn-failed-in-shim-kill",
      at: soak.since(),
      name,
      op,
      lastSpawnError: p.lastSpawnError,
    });
    return;
  }
  const okAnswer = p.state === wantState && (wantState === 1 ? p.pid > 0 : p.pid === 0);
  countCheck(soak, "answer", okAnswer);
  if (!okAnswer) {
    addViolation(soak, "answer", {
      name,
      op,
      expected: `${STATE_NAME[wantState]}${wantState === 1 ? " with a pid" : " without a pid"}`,
      found: `${STATE_NAME[p.state]} pid ${p.pid}`,
      daemonLog: logContext(soak, name),
    });
  }
}

function onRejected(soak, call, err) {
  const { name, op, before } = call;
  soak.stats.opsRejected++;
  let now;
  if (isNotFound(err)) {
    now = new Set(["absent"]);
  } else {
    now = new Set([...before].filter((s) => s !== "absent"));
    if (now.size === 0) now = new Set(["running", "stopped"]);
  }
  const consistent =
    [...now].some((s) => before.has(s)) || (isAlreadyExists(err) && before.size > 1);
  if (!consistent || (isAlreadyExists(err) && before.size === 1 && before.has("absent"))) {
    addViolation(soak, "registry", {
      name,
      expected: fmt(before),
      found: `${op} answered ${Code[err.code]} (${err.message})`,
      history: [...soak.history.get(name)],
      daemonLog: logContext(soak, name),
    });
    if (isAlreadyExists(err)) now = new Set(["running", "stopped"]);
  }
  soak.expected.set(name, now);
  remember(soak, name, {
    wall: call.wall0,
    epoch: call.epoch0,
    client: call.id,
    op,
    outcome: Code[err.code],
    expectedAfter: fmt(now),
  });
}
