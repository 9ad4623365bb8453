// The soak's invariants, checked against a quiescent daemon after every restart and at the end:
// registry (ListProcesses against what the clients were told), alive (each running process is
// one live group leader with the pid listed), orphans (no marked process of an unregistered
// name) and instance (the state file keeps its instance id).

import { setTimeout as sleep } from "node:timers/promises";
import { readInstance, readStateFile } from "./daemon.mjs";
import { addViolation, countCheck, logContext, remember } from "./ledger.mjs";
import { scanMarked } from "./proc.mjs";
import { fmt, STATE_NAME } from "./workload.mjs";

/** How long a /proc discrepancy may last (a killed group's members take a moment to die). */
const PROC_SETTLE_MS = 1_500;
const LIST_TIMEOUT_MS = 10_000;
/** How long the processes of the state file may take to start once the socket is served. */
const START_SETTLE_MS = 15_000;

function statusOf(p) {
  if (p === undefined) return "absent";
  if (p.state === 1 || p.state === 2) return "running";
  if (p.state === 4) return "stopped";
  return `in-state-${STATE_NAME[p.state] ?? p.state}`;
}

const show = (ms) =>
  ms.map((m) => `${m.pid}(pgid ${m.pgid} ppid ${m.ppid} ${m.state} "${m.cmdline}")`);
const bigintAsNumber = (_, v) => (typeof v === "bigint" ? Number(v) : v);

/** What /proc shows wrong for one listed process `p`, given its marked processes `ms`. */
function aliveProblems(p, ms) {
  const name = p.spec?.name;
  const problems = [];
  if (p.state === 1) {
    const leaders = ms.filter((m) => m.leader);
    if (!(leaders.length === 1 && leaders[0].pid === p.pid)) {
      problems.push({
        kind: "alive",
        name,
        expected: `exactly one live group leader, pid ${p.pid} (ListProcesses)`,
        found: leaders.length === 0 ? "none" : show(leaders),
      });
    }
    const strays = ms.filter((m) => !m.leader && m.pgid !== p.pid);
    if (strays.length > 0) {
      problems.push({
        kind: "alive",
        name,
        expected: `every process of ${name} in the group of ${p.pid}`,
        found: `outside it: ${show(strays).join(", ")}`,
      });
    }
  } else if (p.state === 2) {
    problems.push({
      kind: "alive",
      name,
      expected: "running (intent running, no call in progress)",
      found: `BACKOFF, last exit ${JSON.stringify(p.lastExit ?? null, bigintAsNumber)}; marked: ${JSON.stringify(show(ms))}`,
    });
  } else if (ms.length > 0) {
    problems.push({
      kind: "alive",
      name,
      expected: `no process (${STATE_NAME[p.state]})`,
      found: show(ms),
    });
  }
  return problems;
}

/** Problems of /proc against the listed registry: [] when all is as it must be. */
function procProblems(list, marked) {
  const byName = new Map(list.map((p) => [p.spec?.name, p]));
  const markedByName = new Map();
  for (const m of marked) {
    const key = m.name ?? "";
    if (!markedByName.has(key)) markedByName.set(key, []);
    markedByName.get(key).push(m);
  }
  const problems = list.flatMap((p) => aliveProblems(p, markedByName.get(p.spec?.name) ?? []));
  for (const [name, ms] of markedByName) {
    if (byName.has(name)) continue;
    problems.push({
      kind: "orphans",
      name: name === "" ? "(no PROCMON_NAME)" : name,
      expected: "no process (not registered)",
      found: show(ms),
    });
  }
  return problems;
}

/**
 * Checks every invariant against the quiescent daemon, records the results, and resolves the
 * uncertain names to what the daemon says. Returns true when all held.
 */
export async function checkInvariants(soak, label) {
  const client = soak.daemons.current.client;
  soak.lastList = undefined;
  let list;
  try {
    list = await listStarted(soak, client);
  } catch (err) {
    countCheck(soak, "list", false);
    addViolation(soak, "list", {
      label,
      error: `${err?.code} ${err?.message}`,
      daemonLog: logContext(soak, undefined, soak.daemons.epoch),
    });
    return false;
  }
  countCheck(soak, "list", true);
  soak.lastList = list;
  const instanceOk = checkInstance(soak, label);
  const registryOk = checkRegistry(soak, label, list);
  const procOk = await checkProc(soak, label, list);
  return instanceOk && registryOk && procOk;
}

/**
 * A process whose start is due or under way: in backoff, its next_restart_at passed (a spawn
 * shows as what it left until it is done; restart_delay is the next instant death's delay).
 */
const dueToStart = (p) =>
  p.state === 2 &&
  p.nextRestartAt !== undefined &&
  Number(p.nextRestartAt.seconds) * 1000 + p.nextRestartAt.nanos / 1e6 <= Date.now();

/**
 * The registry once the daemon has started what it restored: it serves its socket first, its
 * processes due to start show as BACKOFF, their start due, until then (START_SETTLE_MS at most).
 * With the shim, a process whose stop a killed daemon had begun is adopted and stopped again by
 * the next one (intent stopped): it shows as STOPPING until it has exited (kill_time at most),
 * though no client call is in flight. Those are counted in soak.stats.stopsFinishedAfterAdoption.
 * And a process that died instantly (under 1 s) during an outage (a stop or restart the killed
 * daemon had begun, then SIGTERMed it) is in BACKOFF for its restart delay (1 s) at the next
 * daemon: that is waited for too (its names in soak.stats.backoffAtCheck).
 */
async function listStarted(soak, client) {
  const deadline = Date.now() + START_SETTLE_MS;
  const stopping = new Set();
  for (;;) {
    const { processes } = await client.listProcesses({ timeoutMs: LIST_TIMEOUT_MS });
    for (const p of processes) if (p.state === 3) stopping.add(p.spec?.name);
    for (const p of processes)
      if (p.state === 2 && !dueToStart(p)) soak.stats.backoffAtCheck.add(p.spec?.name);
    const settled = !processes.some((p) => p.state === 2 || p.state === 3);
    if (settled || Date.now() > deadline) {
      soak.stats.stopsFinishedAfterAdoption += stopping.size;
      return processes;
    }
    await sleep(20);
  }
}

/** instance: the state file keeps its instance id. */
function checkInstance(soak, label) {
  const inst = readInstance(soak);
  const ok = inst === soak.daemons.instance;
  countCheck(soak, "instance", ok);
  if (!ok) {
    addViolation(soak, "instance", {
      label,
      expected: soak.daemons.instance,
      found: inst ?? "(unreadable)",
    });
  }
  return ok;
}

/** registry: names and states as the clients were told; uncertain names resolved. */
function checkRegistry(soak, label, list) {
  const state = readStateFile(soak);
  const listed = new Map(list.map((p) => [p.spec?.name, p]));
  const problems = [];
  for (const name of new Set([...soak.expected.keys(), ...listed.keys()])) {
    const p = listed.get(name);
    const found = statusOf(p);
    const exp = soak.expected.get(name) ?? new Set(["absent"]);
    if (!exp.has(found)) {
      const persisted = state?.processes?.find((e) => e.spec?.name === name);
      problems.push({
        name,
        expected: fmt(exp),
        found: p === undefined ? "absent" : `${found} (${STATE_NAME[p.state]}, pid ${p.pid})`,
        stateFile: persisted === undefined ? "absent" : `intent ${persisted.intent}`,
        history: [...(soak.history.get(name) ?? [])],
        daemonLog: logContext(soak, name, undefined, 40, true),
      });
    } else if (exp.size > 1) {
      soak.stats.uncertainResolved++;
    }
    if ((exp.size > 1 || !exp.has(found)) && soak.history.has(name)) {
      remember(soak, name, {
        wall: Date.now(),
        epoch: soak.daemons.epoch,
        client: "check",
        op: "list",
        outcome: `daemon says ${found}`,
        expectedAfter: found,
      });
    }
    if (found === "absent" || found === "running" || found === "stopped") {
      soak.expected.set(name, new Set([found]));
    }
  }
  countCheck(soak, "registry", problems.length === 0);
  for (const problem of problems) addViolation(soak, "registry", { label, ...problem });
  return problems.length === 0;
}

/**
 * alive / orphans: /proc against the listed registry (a killed group's members may take a
 * moment to go, so a discrepancy must last PROC_SETTLE_MS).
 */
async function checkProc(soak, label, list) {
  const { instance } = soak.daemons;
  let problems = procProblems(list, scanMarked(instance));
  const settleDeadline = Date.now() + PROC_SETTLE_MS;
  let transient = 0;
  while (problems.length > 0 && Date.now() < settleDeadline) {
    transient = problems.length;
    await sleep(50);
    problems = procProblems(list, scanMarked(instance));
  }
  if (transient > 0 && problems.length === 0) {
    soak.warnings.push({
      kind: "transient-proc-discrepancy",
      at: soak.since(),
      label,
      count: transient,
    });
  }
  countCheck(soak, "alive", !problems.some((p) => p.kind === "alive"));
  countCheck(soak, "orphans", !problems.some((p) => p.kind === "orphans"));
  for (const problem of problems) {
    addViolation(soak, problem.kind, {
      label,
      ...problem,
      history: [...(soak.history.get(problem.name) ?? [])],
      daemonLog: [
        ...logContext(soak, problem.name),
        ...logContext(soak, undefined, soak.daemons.epoch, 8),
      ],
    });
  }
  return problems.length === 0;
}
