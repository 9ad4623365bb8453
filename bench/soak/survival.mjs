// The soak's checks of survival (spec v1.1 §A): the processes outlive a SIGKILLed daemon (same
// pid, restart_count unchanged, no started/exited/stopping event for them), a printing process
// loses no line across the restarts, an exit during an outage is reported once by the next
// daemon, and a SIGKILLed shim costs each process exactly one restart.
//
// The printer is registered by the soak itself (the clients never touch it): a node that writes
// "<pid> <n>" every PRINTER_PERIOD_MS. One watcher follows every event (output included) across
// every restart: after a crash its old cursor is out of range, and it resumes after the oldest
// seq the new daemon can replay, which must be the seqReservedUpTo of the state file the killed
// daemon left.

import fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, createClient, OLDEST_RESUMABLE_SEQ_KEY } from "@procmon/client";
import { CLK_TCK, childrenOf, commOf } from "../lib/machine.mjs";
import { waitFor } from "../lib/run.mjs";
import { addViolation, countCheck, logContext } from "./ledger.mjs";
import { readStat } from "./proc.mjs";

export const PRINTER = "printer";
const PRINTER_PERIOD_MS = 10;
const PRINTER_SCRIPT = `let i=0;setInterval(()=>process.stdout.write(process.pid+" "+(++i)+"\\n"),${PRINTER_PERIOD_MS})`;
/** How long the watcher may take to catch up with the daemon's last seq before a check. */
const CATCH_UP_TIMEOUT_MS = 10_000;
/** How long a new shim may take to replace a SIGKILLed one (the spec: noticed within 1 s). */
const SHIM_REPLACE_TIMEOUT_MS = 5_000;
/**
 * Processes the soak registers for the outage kills (the clients never touch them), so that a
 * long-running certain one is at hand even when the clients' churn leaves none of theirs.
 */
export const OUTAGE_NAMES = ["outage-0", "outage-1", "outage-2"];
/** How long an outage's victim may take to be gone (reaped by the shim). */
const VICTIM_GONE_TIMEOUT_MS = 3_000;

/** The survival part of the soak's state (soak.survival). */
export function createSurvival() {
  return {
    /** Per name: { pid, restartCount } as last acknowledged or listed; absent when unknown. */
    known: new Map(),
    /** Per name: calls that reached (or may have reached) a daemon; a change means "touched". */
    touches: new Map(),
    /** Every shim pid seen, to kill at cleanup. */
    shimPids: new Set(),
    watcher: {
      cursor: 0n,
      live: false,
      resumes: [],
      /** Every state event seen: { seq, kind, process, pid, signal, exitCode }. */
      events: [],
      /** The printer's lines, per pid: { numbers: Set, max, duplicates, seq0 }. */
      printed: new Map(),
      malformed: 0,
      errors: [],
    },
    tallies: {
      shimKills: 0,
      adoptedChecked: 0,
      adoptedFailed: 0,
      shimRestartChecked: 0,
      shimRestartFailed: 0,
      outageExitsChecked: 0,
      outageExitsReported: 0,
      printedLinesChecked: 0,
      missingLines: 0,
      duplicateLines: 0,
      shimReplacedMs: [],
    },
  };
}

export const touch = (soak, name) =>
  soak.survival.touches.set(name, (soak.survival.touches.get(name) ?? 0) + 1);

/** What an acknowledged call told of `name`'s pid. */
export function learnAck(soak, name, op, p) {
  const { known } = soak.survival;
  touch(soak, name);
  if ((op === "add" || op === "start" || op === "restart") && p.state === 1 && p.pid > 0) {
    known.set(name, { pid: p.pid, restartCount: p.restartCount });
  } else {
    known.delete(name);
  }
}

/** A listing of the quiescent daemon: the pids and restart counts of everything running. */
export function learnList(soak, list) {
  const { known } = soak.survival;
  known.clear();
  for (const p of list) {
    if (p.state === 1) known.set(p.spec.name, { pid: p.pid, restartCount: p.restartCount });
  }
}

/** The ProcessSpec of an outage process. */
export const outageSpec = (name) => ({ name, args: ["sh", "-c", "sleep 1000"] });

/** The ProcessSpec of the printer. */
export function printerSpec() {
  return { name: PRINTER, args: [process.execPath, "-e", PRINTER_SCRIPT] };
}

// ---- the watcher ----

const exitStatus = (status) =>
  status?.status?.case === "signal"
    ? { signal: status.status.value }
    : status?.status?.case === "exitCode"
      ? { exitCode: status.status.value }
      : {};

function onEvent(w, ev) {
  w.cursor = ev.seq;
  const kind = ev.kind?.case;
  const v = ev.kind?.value;
  if (kind === "output") {
    if (ev.process !== PRINTER) return;
    const m = /^(\d+) (\d+)$/.exec(v.line);
    if (!m || v.partial) {
      w.malformed++;
      return;
    }
    const pid = Number(m[1]);
    const n = Number(m[2]);
    let run = w.printed.get(pid);
    if (!run) {
      run = { numbers: new Set(), max: 0, duplicates: 0, firstSeq: ev.seq };
      w.printed.set(pid, run);
    }
    if (run.numbers.has(n)) run.duplicates++;
    else run.numbers.add(n);
    if (n > run.max) run.max = n;
    return;
  }
  if (kind === "started" || kind === "exited" || kind === "stopping" || kind === "killed") {
    w.events.push({
      seq: ev.seq,
      kind,
      process: ev.process,
      pid: v.pid,
      ...(kind === "exited" ? exitStatus(v.status) : {}),
    });
  }
}

/**
 * Follows every event until `soak.clients.finished` (or cleanup): after a broken stream it
 * reconnects with its cursor; on OUT_OF_RANGE (a crash) it resumes after the oldest seq the new
 * daemon keeps, and records it against what the state file reserved.
 */
export async function watchAll(soak) {
  const w = soak.survival.watcher;
  const { signal } = soak.run;
  let client = createClient({ socket: soak.daemons.socket });
  try {
    while (!signal.aborted && !soak.survival.watcherDone) {
      try {
        const stream = client.watchEvents(
          { includeOutput: true, afterSeq: w.cursor },
          { signal, timeoutMs: Number.POSITIVE_INFINITY },
        );
        w.live = true;
        for await (const ev of stream) onEvent(w, ev);
      } catch (err) {
        if (signal.aborted || soak.survival.watcherDone) break;
        if (err?.code === Code.OUT_OF_RANGE) {
          const oldest = err.metadata?.[OLDEST_RESUMABLE_SEQ_KEY];
          if (oldest === undefined || !/^\d+$/.test(oldest)) {
            w.errors.push(`OUT_OF_RANGE without ${OLDEST_RESUMABLE_SEQ_KEY}: ${err.message}`);
            throw err;
          }
          w.resumes.push({
            at: soak.since(),
            epoch: soak.daemons.epoch,
            from: String(w.cursor),
            oldest,
          });
          w.cursor = BigInt(oldest);
          continue;
        }
        if (err?.code !== Code.UNAVAILABLE && err?.code !== Code.CANCELLED) {
          w.errors.push(`${err?.code} ${err?.message}`);
        }
        client.close();
        client = createClient({ socket: soak.daemons.socket });
        await sleep(50);
      } finally {
        w.live = false;
      }
    }
  } finally {
    client.close();
  }
}

/** Waits until the watcher has every event up to the daemon's last seq now. */
export async function catchUp(soak, label) {
  const { lastEventSeq } = await soak.daemons.current.client.listProcesses({ timeoutMs: 10_000 });
  const w = soak.survival.watcher;
  try {
    await waitFor(() => w.cursor >= lastEventSeq, CATCH_UP_TIMEOUT_MS, "watcher caught up", 10);
    countCheck(soak, "watcher", true);
    return true;
  } catch {
    countCheck(soak, "watcher", false);
    addViolation(soak, "watcher", {
      label,
      expected: `the watcher has every event up to seq ${lastEventSeq} within ${CATCH_UP_TIMEOUT_MS} ms`,
      found: `cursor ${w.cursor}, errors ${JSON.stringify(w.errors.slice(-3))}`,
    });
    return false;
  }
}

/** The printer's numbering: 0 missing per pid below the highest number seen. */
export function checkPrinted(soak, label) {
  const w = soak.survival.watcher;
  const t = soak.survival.tallies;
  let checked = 0;
  let missing = 0;
  let duplicates = 0;
  const gaps = [];
  for (const [pid, run] of w.printed) {
    checked += run.numbers.size;
    duplicates += run.duplicates;
    const lost = run.max - run.numbers.size;
    if (lost > 0) {
      missing += lost;
      const absent = [];
      for (let n = 1; n <= run.max && absent.length < 10; n++) {
        if (!run.numbers.has(n)) absent.push(n);
      }
      gaps.push({ pid, max: run.max, seen: run.numbers.size, firstMissing: absent });
    }
  }
  t.printedLinesChecked = checked;
  t.missingLines = missing;
  t.duplicateLines = duplicates;
  const ok = gaps.length === 0 && w.malformed === 0;
  countCheck(soak, "printer-lines", ok);
  if (!ok && !soak.survival.gapReported?.has(JSON.stringify(gaps))) {
    soak.survival.gapReported ??= new Set();
    soak.survival.gapReported.add(JSON.stringify(gaps));
    addViolation(soak, "printer-lines", {
      label,
      expected: "every number of each run of the printer up to the highest seen",
      found: { gaps, malformed: w.malformed },
      daemonLog: logContext(soak, undefined, soak.daemons.epoch - 1, 20),
    });
  }
  return ok;
}

// ---- the kills ----

/** The names whose state is certain now: running, pid known, no call in flight. */
export function certainNow(soak) {
  const { known, touches } = soak.survival;
  const certain = new Map();
  for (const [name, k] of known) {
    if (soak.clients.busy.has(name)) continue;
    const exp = soak.expected.get(name);
    if (!(exp?.size === 1 && exp.has("running"))) continue;
    certain.set(name, { ...k, touches: touches.get(name) ?? 0 });
  }
  return certain;
}

/** Of `certain`, those no call has touched since. */
function stillCertain(soak, certain) {
  const { touches } = soak.survival;
  return [...certain].filter(([name, c]) => (touches.get(name) ?? 0) === c.touches);
}

/** Whether `pid` is alive, not a zombie, and carries `name` of this run's instance. */
export function isSupervised(soak, pid, name) {
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    const stat = readStat(pid);
    return (
      env.includes(`PROCMON_INSTANCE=${soak.daemons.instance}`) &&
      env.includes(`PROCMON_NAME=${name}`) &&
      stat !== undefined &&
      stat.state !== "Z"
    );
  } catch {
    return false;
  }
}

const gone = (pid) => {
  const s = readStat(pid);
  return s === undefined || s.state === "Z" || s.state === "X";
};

/** How long `pid` has been running, in ms (0 once it is gone). */
function ageMs(pid) {
  const stat = readStat(pid);
  if (stat === undefined) return 0;
  const uptimeS = Number(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  return (uptimeS - Number(stat.startTime) / CLK_TCK) * 1000;
}

/**
 * A victim has run this long, so that its death is not instant (past the daemon's 1 s threshold:
 * restarted at once, no backoff).
 */
const VICTIM_MIN_AGE_MS = 1_500;

/**
 * During an outage: kills the process group of one certain `plain-*` or `outage-*` process with
 * `signal` (the leader is `sh -c 'sleep 1000'`), marks the name busy so that no client touches it
 * until the check, and waits for the leader to be gone (reaped by the shim). The oldest candidate
 * is taken; if it is younger than VICTIM_MIN_AGE_MS the outage is made that much longer first.
 * Returns the victim, or undefined when there is no candidate.
 */
export async function killVictim(soak, certain, signal) {
  const candidates = [...certain]
    .filter(
      ([name, c]) =>
        (name.startsWith("plain-") || OUTAGE_NAMES.includes(name)) &&
        isSupervised(soak, c.pid, name),
    )
    .map(([name, c]) => ({ name, c, age: ageMs(c.pid) }))
    .sort((a, b) => b.age - a.age);
  if (candidates.length === 0) {
    soak.warnings.push({ kind: "no-outage-victim", at: soak.since() });
    return undefined;
  }
  const { name, c, age } = candidates[0];
  soak.clients.busy.add(name);
  if (age < VICTIM_MIN_AGE_MS) await sleep(VICTIM_MIN_AGE_MS - age);
  process.kill(-c.pid, signal);
  const reaped = await waitFor(() => gone(c.pid), VICTIM_GONE_TIMEOUT_MS, "victim gone", 10).then(
    () => true,
    () => false,
  );
  return { name, pid: c.pid, restartCount: c.restartCount, signal, reaped };
}

/** After a daemon kill: the adopted processes, and the victim's exit reported once. */
export function checkAdopted(soak, label, certain, reservedSeq, victim, list) {
  const t = soak.survival.tallies;
  const w = soak.survival.watcher;
  const byName = new Map(list.map((p) => [p.spec?.name, p]));
  // Seq continuation: the watcher resumed after exactly what the state file had reserved.
  const resume = w.resumes.findLast((r) => r.epoch === soak.daemons.epoch);
  const seqOk = resume !== undefined && BigInt(resume.oldest) === reservedSeq;
  countCheck(soak, "seq-continuation", seqOk);
  if (!seqOk) {
    addViolation(soak, "seq-continuation", {
      label,
      expected: `the watcher's cursor out of range, oldest resumable seq ${reservedSeq} (seqReservedUpTo)`,
      found: resume ?? "no OUT_OF_RANGE: the watcher resumed without one",
    });
  }
  const fresh = w.events.filter((e) => e.seq > reservedSeq);
  for (const [name, c] of stillCertain(soak, certain)) {
    if (victim?.name === name) continue;
    const p = byName.get(name);
    const events = fresh.filter((e) => e.process === name);
    const ok =
      p !== undefined &&
      p.state === 1 &&
      p.pid === c.pid &&
      p.restartCount === c.restartCount &&
      events.length === 0;
    t.adoptedChecked++;
    if (!ok) t.adoptedFailed++;
    countCheck(soak, "adopted", ok);
    if (!ok) {
      addViolation(soak, "adopted", {
        label,
        name,
        expected: `running with pid ${c.pid}, restart_count ${c.restartCount}, no event from the new daemon`,
        found: `${p ? `state ${p.state} pid ${p.pid} restart_count ${p.restartCount}` : "absent"}; events ${JSON.stringify(events)}`,
        daemonLog: logContext(soak, name, soak.daemons.epoch - 1, 20),
      });
    }
  }
  if (victim) checkVictim(soak, label, victim, fresh, byName.get(victim.name));
}

function checkVictim(soak, label, victim, fresh, p) {
  const t = soak.survival.tallies;
  t.outageExitsChecked++;
  const exits = fresh.filter(
    (e) => e.kind === "exited" && e.process === victim.name && e.pid === victim.pid,
  );
  const matching = exits.filter((e) => e.signal === victim.signal);
  const restarted = fresh.filter(
    (e) =>
      e.kind === "started" &&
      e.process === victim.name &&
      exits.length > 0 &&
      e.seq > exits[0].seq &&
      e.pid !== victim.pid,
  );
  const ok =
    victim.reaped &&
    exits.length === 1 &&
    matching.length === 1 &&
    restarted.length === 1 &&
    p?.state === 1 &&
    p.pid === restarted[0].pid &&
    p.restartCount === victim.restartCount + 1;
  if (exits.length > 0) t.outageExitsReported++;
  countCheck(soak, "outage-exit", ok);
  if (!ok) {
    addViolation(soak, "outage-exit", {
      label,
      name: victim.name,
      expected: `one exited event for pid ${victim.pid} with ${victim.signal} from the new daemon, then one start (restart_count ${victim.restartCount + 1})`,
      found: {
        reapedDuringOutage: victim.reaped,
        exits,
        restarted,
        listed: p ? { state: p.state, pid: p.pid, restartCount: p.restartCount } : "absent",
      },
      daemonLog: logContext(soak, victim.name, soak.daemons.epoch - 1, 20),
    });
  }
}

/** The shim of the current daemon (GetDaemonInfo), checked to be a procmon-shim. */
export async function currentShim(soak) {
  const info = await soak.daemons.current.client.getDaemonInfo({ timeoutMs: 5_000 });
  const pid = info.shimPid;
  if (pid > 0) soak.survival.shimPids.add(pid);
  return pid;
}

/** Whether `pid` is a procmon-shim of this run (its socket is in the run's temp dir). */
const isShim = (soak, pid) => {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("procmon-shim") && cmdline.includes(soak.run.tmp);
  } catch {
    return false;
  }
};

/**
 * SIGKILLs the current shim (calling `beforeKill` just before) and waits for a new one:
 * { oldPid, newPid, replacedMs }.
 */
export async function killShim(soak, beforeKill) {
  const oldPid = await currentShim(soak);
  if (!(oldPid > 0) || !isShim(soak, oldPid)) {
    throw new Error(`GetDaemonInfo gave shim pid ${oldPid}, which is no procmon-shim`);
  }
  beforeKill();
  soak.survival.shimDying = true;
  const t0 = performance.now();
  process.kill(oldPid, "SIGKILL");
  soak.survival.tallies.shimKills++;
  const newPid = await waitFor(
    async () => {
      const pid = await currentShim(soak).catch(() => 0);
      return pid > 0 && pid !== oldPid ? pid : 0;
    },
    SHIM_REPLACE_TIMEOUT_MS,
    "a new shim",
    20,
  );
  const replacedMs = performance.now() - t0;
  soak.survival.shimDying = false;
  soak.survival.tallies.shimReplacedMs.push(Math.round(replacedMs));
  await waitFor(() => gone(oldPid), SHIM_REPLACE_TIMEOUT_MS, "the old shim gone", 10);
  return { oldPid, newPid, replacedMs };
}

/**
 * After a shim kill: each certain process (pid `c.pid` at the kill) exited SIGKILL once and was
 * started once after that, with a new pid. `seqAtKill`: the watcher's cursor at the kill.
 */
export function checkShimRestarts(soak, label, certain, seqAtKill, list) {
  const t = soak.survival.tallies;
  const byName = new Map(list.map((p) => [p.spec?.name, p]));
  const fresh = soak.survival.watcher.events.filter((e) => e.seq > seqAtKill);
  for (const [name, c] of stillCertain(soak, certain)) {
    const p = byName.get(name);
    const exits = fresh.filter((e) => e.kind === "exited" && e.process === name && e.pid === c.pid);
    const starts = fresh.filter(
      (e) => e.kind === "started" && e.process === name && e.seq > (exits[0]?.seq ?? 0n),
    );
    const ok =
      exits.length === 1 &&
      exits[0].signal === "SIGKILL" &&
      starts.length === 1 &&
      starts[0].pid !== c.pid &&
      p?.state === 1 &&
      p.pid === starts[0].pid &&
      p.restartCount === c.restartCount + 1;
    t.shimRestartChecked++;
    if (!ok) t.shimRestartFailed++;
    countCheck(soak, "shim-restart", ok);
    if (!ok) {
      addViolation(soak, "shim-restart", {
        label,
        name,
        expected: `one exited SIGKILL of pid ${c.pid}, one start with a new pid, restart_count ${c.restartCount + 1}`,
        found: {
          exits,
          starts,
          listed: p ? { state: p.state, pid: p.pid, restartCount: p.restartCount } : "absent",
        },
        daemonLog: logContext(soak, name, soak.daemons.epoch, 20),
      });
    }
  }
}

/** The shims of the daemon `proc` (its children named procmon-shim), remembered for cleanup. */
export function rememberShimsOf(soak, proc) {
  if (!proc?.pid) return;
  for (const pid of childrenOf(proc.pid)) {
    if (commOf(pid) === "procmon-shim") soak.survival.shimPids.add(pid);
  }
}

/** SIGKILLs every remembered shim still running (its children die with it); the count. */
export function killShims(soak) {
  let killed = 0;
  for (const pid of soak.survival.shimPids) {
    if (!isShim(soak, pid)) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {}
  }
  return killed;
}

/** The shims remembered that are still running (none, after a graceful stop). */
export const liveShims = (soak) => [...soak.survival.shimPids].filter((pid) => isShim(soak, pid));
