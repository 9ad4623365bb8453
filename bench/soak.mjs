#!/usr/bin/env node
// procmond crash soak: SIGKILL the daemon at random moments under concurrent client load and
// check, after every restart, that what the clients were told survived and that every process
// runs exactly once.
//
//   npm run build && node bench/soak.mjs [--kills 50] [--seed N] [--seconds 300]
//                                        [--clients 6] [--names 20] [--log-level info]
//                                        [--startup-kill-rate 0] [--daemon PATH]
//
// --kills N              SIGKILLs of the daemon under load (default 50)
// --seed N               seed of the random choices (default: random, printed); the interleaving
//                        of the client loops is not deterministic, so a seed only biases a rerun
// --seconds N            time budget of the whole run: no new kill starts once it is nearly used
//                        up, and a watchdog aborts (cleaning up) a run that overruns it by 60 s
// --clients N            concurrent client loops (default 6)
// --names N              size of the pool of process names (default 20)
// --log-level L          the daemon's --log-level (default info: its lines are the context of a
//                        violation report)
// --startup-kill-rate R  also SIGKILL, with probability R per restart, the daemon being started
//                        again before it serves: half of them at a random moment of its
//                        start-up, half 0-30 ms after its first write of the state file, where
//                        a crash can cost the registry (default 0: off)
// --daemon PATH          the procmond to run (default packages/daemon/bin/procmond.js), to soak
//                        another build, an older one say
//
// The daemon runs on a socket and a state file in a temp dir. A few client loops pick a free name
// from the pool (one call per name at a time, so the order of acknowledgements is the order of
// effects) and add (`sh -c 'sleep 1000'`, `sh -c 'sleep 1000 & sleep 1000; wait'`, or a tree that
// ignores SIGTERM with kill_time 250ms), remove, stop, start or restart it. The expected registry
// is what the clients were TOLD: per name, the set of states the daemon may be in ("absent",
// "running" or "stopped"); an acknowledged call makes it one state; a call cut by the daemon's
// death has an unknown outcome, so the name may be in the state before or after it ("uncertain").
// After each restart the clients are paused and drained and the invariants are checked:
//   registry  ListProcesses holds exactly the names expected, each in a state expected of it
//             (uncertain names are then resolved to what the daemon says);
//   alive     each process with intent running is alive exactly once: one live, non-zombie
//             process-group leader in /proc carrying PROCMON_INSTANCE=<instance> and
//             PROCMON_NAME=<name>, whose pid is the one ListProcesses gives; none for a stopped
//             one; every other marked process belongs to that leader's group;
//   orphans   no process carries the marker of a name that is not registered;
//   instance  the state file keeps its instance id.
// At the end: the same checks, then SIGTERM; the daemon must exit 0, leave no marked process and
// no socket file, and its state file must still hold the registry with each intent.
//
// Results: a summary on stdout, JSON in bench/results/soak.json, the daemon's log (every start,
// prefixed with its epoch) in bench/results/soak-daemon.log. Exit status 0 when every invariant
// held, 1 when one failed, 2 when the run itself could not be carried out.
//
// Only processes this script started are ever signalled: the daemon by its pid, and processes
// carrying this run's instance marker (a random UUID the first daemon wrote into the temp state
// file). They are killed on exit, on error and on SIGINT/SIGTERM, and the temp dir is removed.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Code, createClient, isAlreadyExists, isNotFound } from "@procmon/client";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const DEFAULT_DAEMON_BIN = path.join(ROOT, "packages/daemon/bin/procmond.js");
const RESULTS_DIR = path.join(HERE, "results");
const RESULTS_FILE = path.join(RESULTS_DIR, "soak.json");
const DAEMON_LOG_FILE = path.join(RESULTS_DIR, "soak-daemon.log");

// ---------------------------------------------------------------------------------------------
// Options

const USAGE =
  "usage: node bench/soak.mjs [--kills 50] [--seed N] [--seconds 300] [--clients 6] [--names 20] [--log-level info] [--startup-kill-rate 0] [--daemon PATH]";
let args;
try {
  args = parseArgs({
    options: {
      kills: { type: "string", default: "50" },
      seed: { type: "string" },
      seconds: { type: "string", default: "300" },
      clients: { type: "string", default: "6" },
      names: { type: "string", default: "20" },
      "log-level": { type: "string", default: "info" },
      "startup-kill-rate": { type: "string", default: "0" },
      daemon: { type: "string", default: DEFAULT_DAEMON_BIN },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
function intArg(name, min) {
  const n = Number(args[name]);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`--${name} must be a whole number >= ${min}\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}
const KILLS = intArg("kills", 0);
const SECONDS = intArg("seconds", 10);
const CLIENTS = intArg("clients", 1);
const NAMES = intArg("names", 1);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : intArg("seed", 0);
const LOG_LEVEL = args["log-level"];
const DAEMON_BIN = path.resolve(args.daemon);
const STARTUP_KILL_RATE = Number(args["startup-kill-rate"]);
if (!(STARTUP_KILL_RATE >= 0 && STARTUP_KILL_RATE <= 1)) {
  process.stderr.write(`--startup-kill-rate must be between 0 and 1\n${USAGE}\n`);
  process.exit(2);
}

/** The daemon's --kill-time: also its grace for the orphans of a killed predecessor. */
const DAEMON_KILL_TIME = "300ms";
/** kill_time of the processes that ignore SIGTERM. */
const STUBBORN_KILL_TIME_NS = 250_000_000;
/** Deadline of every client call: a stop takes at most kill_time, so this only catches hangs. */
const CALL_TIMEOUT_MS = 15_000;
/** The longest wait for a started daemon to serve. */
const SERVE_TIMEOUT_MS = 30_000;
/** The longest wait for the daemon to exit after SIGKILL (it is reaped at once, normally). */
const KILL_EXIT_TIMEOUT_MS = 10_000;
/** The longest wait for the daemon to exit after SIGTERM. */
const TERM_EXIT_TIMEOUT_MS = 30_000;
/** The longest wait for the client loops to finish their calls when paused. */
const DRAIN_TIMEOUT_MS = 30_000;
/** How long a /proc discrepancy may last (a killed group's members take a moment to die). */
const PROC_SETTLE_MS = 1_500;
/** How long to wait, after SIGTERM, for every marked process to be gone. */
const LEFTOVER_TIMEOUT_MS = 10_000;
/** Time kept at the end of the budget for the final checks and the shutdown. */
const FINAL_RESERVE_MS = 45_000;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** mulberry32: a small seeded PRNG. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const randInt = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const pick = (items) => items[Math.floor(random() * items.length)];
function weighted(table) {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let r = random() * total;
  for (const [value, w] of table) {
    r -= w;
    if (r < 0) return value;
  }
  return table[table.length - 1][0];
}

const T0 = Date.now();
const since = (wall = Date.now()) => `+${((wall - T0) / 1000).toFixed(3)}s`;
function log(message) {
  process.stderr.write(`[soak ${since()}] ${message}\n`);
}

async function waitFor(predicate, timeoutMs, stepMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (predicate()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(stepMs);
  }
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

async function waitExit(proc, timeoutMs) {
  if (exited(proc)) return true;
  return Promise.race([
    new Promise((resolve) => proc.once("exit", () => resolve(true))),
    sleep(timeoutMs).then(() => false),
  ]);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// ---------------------------------------------------------------------------------------------
// The temp dir, the daemon and its log

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "procmon-soak-"));
const SOCKET = path.join(tmp, "procmond.sock");
const STATE_FILE = path.join(tmp, "state.json");
fs.mkdirSync(RESULTS_DIR, { recursive: true });
const daemonLogOut = fs.createWriteStream(DAEMON_LOG_FILE);

/** The daemon now running (or being started), its epoch (1 = first start) and its lines. */
let daemon;
let epoch = 0;
/** Every line the daemons wrote: { epoch, wall, text, obj }. */
const daemonLines = [];
const MAX_KEPT_LINES = 300_000;
/** The instance id of the registry (from the state file, once the first daemon serves). */
let instance;
/** The clean-up under way, once one has started. */
let cleaning;
/** Set when a daemon exits without being told to: the run stops. */
let unexpectedExit;

/**
 * Changes each time the daemon is killed or starts serving. A call that failed to connect without
 * the generation changing, while the daemon was down, never reached a daemon.
 */
let generation = 0;
let daemonUp = false;

function recordLine(text, stream) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    obj = undefined;
  }
  const entry = { epoch, wall: obj?.time ?? Date.now(), text, obj, stream };
  if (daemonLines.length >= MAX_KEPT_LINES) daemonLines.splice(0, MAX_KEPT_LINES / 10);
  daemonLines.push(entry);
  daemonLogOut.write(`[epoch ${epoch}${stream === "stderr" ? " stderr" : ""}] ${text}\n`);
  return entry;
}

function stateFileIno() {
  try {
    return fs.statSync(STATE_FILE).ino;
  } catch {
    return undefined;
  }
}

/**
 * Starts procmond on the temp socket and state file. Resolves with { proc, servingMs } once it
 * logs "procmond listening", or rejects (after killing it) when it exits or overruns the timeout.
 * With `killAtMs`, SIGKILLs it that long after the spawn if it is not serving yet; with
 * `killAfterStateWriteMs`, that long after it first replaces the state file (its writes at
 * start-up are where a crash can cost the registry); either way it then resolves with
 * { proc, killedEarly: true } once the daemon has exited.
 */
function startDaemon({ killAtMs, killAfterStateWriteMs } = {}) {
  epoch += 1;
  const myEpoch = epoch;
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [
      DAEMON_BIN,
      "--socket",
      SOCKET,
      "--state-file",
      STATE_FILE,
      "--kill-time",
      DAEMON_KILL_TIME,
      "--log-level",
      LOG_LEVEL,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  daemon = { proc, epoch: myEpoch, expectExit: false, serving: false };
  const me = daemon;
  const killEarly = () => {
    if (me.serving || exited(proc)) return;
    me.expectExit = true;
    me.killedEarly = true;
    proc.kill("SIGKILL");
  };
  let watcher;
  if (killAfterStateWriteMs !== undefined) {
    const ino0 = stateFileIno();
    watcher = setInterval(() => {
      if (me.serving || exited(proc)) {
        clearInterval(watcher);
        return;
      }
      const ino = stateFileIno();
      if (ino === undefined || ino === ino0) return;
      clearInterval(watcher);
      me.earlyKillAt = "after its first state file write";
      if (killAfterStateWriteMs === 0) killEarly();
      else setTimeout(killEarly, killAfterStateWriteMs);
    }, 1);
  }
  daemonLogOut.write(`[epoch ${myEpoch}] ---- procmond started, pid ${proc.pid} ----\n`);
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(earlyKill);
      clearInterval(watcher);
      fn(value);
    };
    const timer = setTimeout(() => {
      me.expectExit = true;
      proc.kill("SIGKILL");
      settle(
        reject,
        new Error(`procmond (epoch ${myEpoch}) did not serve within ${SERVE_TIMEOUT_MS} ms`),
      );
    }, SERVE_TIMEOUT_MS);
    const earlyKill = killAtMs === undefined ? undefined : setTimeout(killEarly, killAtMs);
    readline.createInterface({ input: proc.stdout }).on("line", (text) => {
      const entry = recordLine(text, "stdout");
      if (entry.obj?.msg === "procmond listening" && !me.serving) {
        me.serving = true;
        settle(resolve, { proc, servingMs: performance.now() - t0 });
      }
    });
    readline
      .createInterface({ input: proc.stderr })
      .on("line", (text) => recordLine(text, "stderr"));
    proc.on("exit", (code, signal) => {
      daemonLogOut.write(
        `[epoch ${myEpoch}] ---- procmond exited: code ${code} signal ${signal} ----\n`,
      );
      if (me.killedEarly) {
        settle(resolve, {
          proc,
          killedEarly: true,
          sinceSpawnMs: performance.now() - t0,
          how: me.earlyKillAt ?? "at a random moment",
        });
        return;
      }
      if (!me.expectExit) {
        unexpectedExit ??= { epoch: myEpoch, code, signal, serving: me.serving };
        daemonUp = false;
        generation += 1;
      }
      settle(
        reject,
        new Error(
          `procmond (epoch ${myEpoch}) exited before serving: code ${code} signal ${signal}`,
        ),
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

/** Every live (non-zombie) process whose environment carries PROCMON_INSTANCE=<inst>. */
function scanMarked(inst) {
  const marker = `PROCMON_INSTANCE=${inst}`;
  const found = [];
  let entries;
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return found;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    let env;
    try {
      env = fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    } catch {
      continue;
    }
    if (!env.includes(marker)) continue;
    const stat = readStat(pid);
    if (!stat || stat.state === "Z" || stat.state === "X") continue;
    const nameVar = env.find((v) => v.startsWith("PROCMON_NAME="));
    let cmdline = "";
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {}
    found.push({
      pid,
      name: nameVar === undefined ? undefined : nameVar.slice("PROCMON_NAME=".length),
      ...stat,
      leader: stat.pgid === pid,
      cmdline,
    });
  }
  return found;
}

function readStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: fields[0],
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: fields[19],
  };
}

/** SIGKILLs every marked process (and, if given, the daemon), until none is left or time is up. */
async function killEverything(reason) {
  if (daemon && !exited(daemon.proc)) {
    daemon.expectExit = true;
    try {
      daemon.proc.kill("SIGKILL");
    } catch {}
    await waitExit(daemon.proc, KILL_EXIT_TIMEOUT_MS);
  }
  const inst = instance ?? readInstance();
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
  if (killed > 0) log(`${reason}: killed ${killed} leftover marked processes`);
  return killed;
}

/** The same, synchronously: for process.on("exit"). */
function killEverythingSync() {
  if (daemon && !exited(daemon.proc)) {
    try {
      daemon.proc.kill("SIGKILL");
    } catch {}
  }
  const inst = instance ?? readInstance();
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

function readStateFile() {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE, "utf8"));
  } catch {
    return undefined;
  }
}

function readInstance() {
  const state = readStateFile();
  return typeof state?.instance === "string" ? state.instance : undefined;
}

// ---------------------------------------------------------------------------------------------
// The workload

const KINDS = {
  plain: { args: ["sh", "-c", "sleep 1000"] },
  tree: { args: ["sh", "-c", "sleep 1000 & sleep 1000; wait"] },
  stubborn: {
    args: ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000; wait"],
    killTime: { seconds: 0n, nanos: STUBBORN_KILL_TIME_NS },
  },
  "stubborn-single": {
    args: ["sh", "-c", "trap '' TERM; sleep 1000"],
    killTime: { seconds: 0n, nanos: STUBBORN_KILL_TIME_NS },
  },
};
const KIND_CYCLE = [
  "plain",
  "tree",
  "plain",
  "stubborn",
  "plain",
  "tree",
  "stubborn-single",
  "plain",
];
const POOL = Array.from({ length: NAMES }, (_, i) => {
  const kind = KIND_CYCLE[i % KIND_CYCLE.length];
  return { name: `${kind}-${String(i).padStart(2, "0")}`, kind };
});
const KIND_OF = new Map(POOL.map((p) => [p.name, p.kind]));

function specFor(name) {
  const { args: argv, killTime } = KINDS[KIND_OF.get(name)];
  return killTime === undefined ? { name, args: argv } : { name, args: argv, killTime };
}

/** What the clients were told, per name: the set of states the daemon may be in. */
const expected = new Map(POOL.map((p) => [p.name, new Set(["absent"])]));
/** The last calls on each name, for violation reports. */
const history = new Map(POOL.map((p) => [p.name, []]));
const HISTORY_KEPT = 14;

function remember(name, entry) {
  const h = history.get(name);
  h.push({ at: since(entry.wall), ...entry, wall: undefined });
  if (h.length > HISTORY_KEPT) h.shift();
}

/** The state a call leaves the registry in, from `state`, if the daemon carried it out. */
function applyOp(op, state) {
  switch (op) {
    case "add":
      return state === "absent" ? "running" : state;
    case "remove":
      return "absent";
    case "stop":
      return state === "absent" ? "absent" : "stopped";
    case "start":
    case "restart":
      return state === "absent" ? "absent" : "running";
  }
  throw new Error(`unknown op ${op}`);
}

const fmt = (set) => [...set].sort().join("|");

function chooseOp(name) {
  const state = pick([...expected.get(name)]);
  if (state === "absent") {
    return weighted([
      ["add", 85],
      ["stop", 4],
      ["start", 4],
      ["restart", 4],
      ["remove", 3],
    ]);
  }
  if (state === "running") {
    return weighted([
      ["stop", 28],
      ["restart", 25],
      ["remove", 20],
      ["start", 12],
      ["add", 15],
    ]);
  }
  return weighted([
    ["start", 35],
    ["restart", 20],
    ["remove", 25],
    ["stop", 10],
    ["add", 10],
  ]);
}

function callOp(client, op, name) {
  const o = { timeoutMs: CALL_TIMEOUT_MS };
  switch (op) {
    case "add":
      return client.addProcess(specFor(name), o);
    case "remove":
      return client.removeProcess(name, o);
    case "stop":
      return client.stopProcess(name, o);
    case "start":
      return client.startProcess(name, o);
    case "restart":
      return client.restartProcess(name, o);
  }
  throw new Error(`unknown op ${op}`);
}

const STATE_NAME = { 0: "UNSPECIFIED", 1: "RUNNING", 2: "BACKOFF", 3: "STOPPING", 4: "STOPPED" };

// ---------------------------------------------------------------------------------------------
// Results

const stats = {
  opsStarted: 0,
  opsAcked: 0,
  /** NOT_FOUND / ALREADY_EXISTS: answered, nothing changed. */
  opsRejected: 0,
  opsUncertain: 0,
  /** Failed to connect while the daemon was down, never reached one: retried. */
  opsNotReached: 0,
  opsUnexpectedError: 0,
  byOp: {},
  /** Uncertain names resolved by reading the registry. */
  uncertainResolved: 0,
  interruptedPerKill: [],
};
/** Durations of the acknowledged calls, in ms. */
const ackLatencies = {};
const checks = { passed: 0, failed: 0, byKind: {} };
const violations = [];
const warnings = [];
const restarts = [];
let killsDone = 0;
let startupKillsDone = 0;
const startupKills = [];

function countCheck(kind, ok) {
  checks.byKind[kind] ??= { passed: 0, failed: 0 };
  const entry = checks.byKind[kind];
  if (ok) {
    checks.passed++;
    entry.passed++;
  } else {
    checks.failed++;
    entry.failed++;
  }
}

const LIFECYCLE = new Set([
  "terminating processes left by a previous procmond",
  "registry restored from the state file",
  "procmond listening",
]);

/**
 * The daemon's log lines about `name` (or, without one, its warnings and errors) since
 * `fromEpoch`: by default the epoch before the current one, or the epoch of the oldest call on
 * `name` remembered, if older. With `lifecycle`, also each daemon's start-up milestones.
 */
function logContext(name, fromEpoch, limit = 24, lifecycle = false) {
  const oldestCall = name === undefined ? undefined : history.get(name)?.[0]?.epoch;
  const from = fromEpoch ?? Math.min(epoch - 1, oldestCall ?? epoch);
  const lines = daemonLines.filter(
    (l) =>
      l.epoch >= from &&
      ((lifecycle && LIFECYCLE.has(l.obj?.msg)) ||
        (name === undefined
          ? (l.obj?.level ?? 50) >= 40 || l.stream === "stderr"
          : l.obj?.process === name ||
            (Array.isArray(l.obj?.processes) && l.obj.processes.includes(name)) ||
            (l.obj === undefined && l.text.includes(name)))),
  );
  return lines.slice(-limit).map((l) => `[epoch ${l.epoch} ${since(l.wall)}] ${l.text}`);
}

function addViolation(kind, details) {
  // Once a signal or the watchdog is tearing everything down, failures are of its making.
  if (cleaning !== undefined) return undefined;
  const v = { kind, at: since(), epoch, killsDone, ...details };
  violations.push(v);
  log(
    `VIOLATION ${kind}: ${JSON.stringify({ ...details, history: undefined, daemonLog: undefined })}`,
  );
  return v;
}

// ---------------------------------------------------------------------------------------------
// Client loops

let paused = true;
let finished = false;
let resumeWaiters = [];
const busy = new Set();
let inFlight = 0;

function pause() {
  paused = true;
}
function resume() {
  paused = false;
  const waiters = resumeWaiters;
  resumeWaiters = [];
  for (const w of waiters) w();
}
function whenResumed() {
  if (!paused) return Promise.resolve();
  return new Promise((resolve) => resumeWaiters.push(resolve));
}
async function drain() {
  return waitFor(() => inFlight === 0, DRAIN_TIMEOUT_MS);
}

function isConnectionError(err) {
  return err?.code === Code.UNAVAILABLE || err?.code === Code.CANCELLED;
}

async function clientLoop(id) {
  let client = createClient({ socket: SOCKET });
  try {
    while (!finished) {
      await whenResumed();
      if (finished) break;
      if (paused) continue;
      const free = POOL.filter((p) => !busy.has(p.name));
      if (free.length === 0) {
        await sleep(2);
        continue;
      }
      const name = pick(free).name;
      const op = chooseOp(name);
      busy.add(name);
      inFlight++;
      stats.opsStarted++;
      stats.byOp[op] ??= { acked: 0, rejected: 0, uncertain: 0, notReached: 0 };
      const opStats = stats.byOp[op];
      const before = new Set(expected.get(name));
      const gen0 = generation;
      const up0 = daemonUp;
      const epoch0 = epoch;
      const wall0 = Date.now();
      let backoff = false;
      try {
        const p = await callOp(client, op, name);
        ackLatencies[op] ??= [];
        ackLatencies[op].push(Date.now() - wall0);
        onAck(id, name, op, before, p, wall0, epoch0);
        opStats.acked++;
      } catch (err) {
        if (isNotFound(err) || isAlreadyExists(err)) {
          onRejected(id, name, op, before, err, wall0, epoch0);
          opStats.rejected++;
        } else if (!up0 && gen0 === generation && isConnectionError(err)) {
          // Started and failed while the daemon was down: no daemon ever saw it.
          stats.opsNotReached++;
          opStats.notReached++;
          backoff = "down";
        } else {
          const killed = gen0 !== generation;
          if (!killed || !isConnectionError(err)) {
            stats.opsUnexpectedError++;
            const details = {
              name,
              op,
              client: id,
              error: `${err?.name} ${err?.code} ${err?.message}`,
              daemonKilledDuringCall: killed,
              durationMs: Date.now() - wall0,
            };
            if (killed) warnings.push({ kind: "error-of-a-killed-call", at: since(), ...details });
            else addViolation("unexpected-error", { ...details, daemonLog: logContext(name) });
          }
          // The daemon may or may not have carried it out (and persisted it) before dying.
          const after = new Set();
          for (const s of before) {
            after.add(s);
            after.add(applyOp(op, s));
          }
          expected.set(name, after);
          stats.opsUncertain++;
          opStats.uncertain++;
          remember(name, {
            wall: wall0,
            epoch: epoch0,
            client: id,
            op,
            outcome: `uncertain (${err?.code === undefined ? err : (Code[err.code] ?? err.code)}: ${err?.message})`,
            expectedAfter: fmt(after),
          });
          backoff = true;
        }
        if (isConnectionError(err)) {
          // A fresh channel: grpc-js would otherwise wait out its reconnection backoff.
          client.close();
          client = createClient({ socket: SOCKET });
        }
      } finally {
        busy.delete(name);
        inFlight--;
      }
      // While the daemon is down, retry at a modest pace: a storm of connection attempts would
      // only slow its start-up.
      if (backoff === "down") await sleep(randInt(50, 100));
      else if (backoff) await sleep(randInt(5, 25));
    }
  } finally {
    client.close();
  }
}

function onAck(client, name, op, before, p, wall0, epoch0) {
  stats.opsAcked++;
  const result = op === "remove" ? "absent" : op === "stop" ? "stopped" : "running";
  // An acknowledged call on a name the clients know to be absent means the daemon has a name it
  // should not have (a removal or a failed add came back).
  if (op !== "add" && before.size === 1 && before.has("absent")) {
    addViolation("registry", {
      name,
      expected: "absent",
      found: `${op} acknowledged (state ${STATE_NAME[p.state]}, pid ${p.pid}): the daemon has it`,
      history: [...history.get(name)],
      daemonLog: logContext(name),
    });
  }
  if (op === "add" && !before.has("absent")) {
    addViolation("registry", {
      name,
      expected: fmt(before),
      found: `add acknowledged (pid ${p.pid}): the daemon did not have it`,
      history: [...history.get(name)],
      daemonLog: logContext(name),
    });
  }
  // The answer itself: what each call promises.
  const wantState = op === "add" || op === "start" || op === "restart" ? 1 : 4;
  const okAnswer = p.state === wantState && (wantState === 1 ? p.pid > 0 : p.pid === 0);
  countCheck("answer", okAnswer);
  if (!okAnswer) {
    addViolation("answer", {
      name,
      op,
      expected: `${STATE_NAME[wantState]}${wantState === 1 ? " with a pid" : " without a pid"}`,
      found: `${STATE_NAME[p.state]} pid ${p.pid}`,
      daemonLog: logContext(name),
    });
  }
  expected.set(name, new Set([result]));
  remember(name, {
    wall: wall0,
    epoch: epoch0,
    client,
    op,
    outcome: `ok ${STATE_NAME[p.state]} pid ${p.pid}`,
    expectedAfter: result,
  });
}

function onRejected(client, name, op, before, err, wall0, epoch0) {
  stats.opsRejected++;
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
    addViolation("registry", {
      name,
      expected: fmt(before),
      found: `${op} answered ${Code[err.code]} (${err.message})`,
      history: [...history.get(name)],
      daemonLog: logContext(name),
    });
    if (isAlreadyExists(err)) now = new Set(["running", "stopped"]);
  }
  expected.set(name, now);
  remember(name, {
    wall: wall0,
    epoch: epoch0,
    client,
    op,
    outcome: Code[err.code],
    expectedAfter: fmt(now),
  });
}

// ---------------------------------------------------------------------------------------------
// Invariants

function statusOf(p) {
  if (p === undefined) return "absent";
  if (p.state === 1 || p.state === 2) return "running";
  if (p.state === 4) return "stopped";
  return `in-state-${STATE_NAME[p.state] ?? p.state}`;
}

/** Problems of /proc against the listed registry: [] when all is as it must be. */
function procProblems(list, marked) {
  const problems = [];
  const byName = new Map(list.map((p) => [p.spec?.name, p]));
  const markedByName = new Map();
  for (const m of marked) {
    const key = m.name ?? "";
    if (!markedByName.has(key)) markedByName.set(key, []);
    markedByName.get(key).push(m);
  }
  const show = (ms) =>
    ms.map((m) => `${m.pid}(pgid ${m.pgid} ppid ${m.ppid} ${m.state} "${m.cmdline}")`);
  for (const p of list) {
    const name = p.spec?.name;
    const ms = markedByName.get(name) ?? [];
    const leaders = ms.filter((m) => m.leader);
    if (p.state === 1) {
      const ok = leaders.length === 1 && leaders[0].pid === p.pid;
      if (!ok) {
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
        found: `BACKOFF, last exit ${JSON.stringify(p.lastExit ?? null, (_, v) => (typeof v === "bigint" ? Number(v) : v))}; marked: ${JSON.stringify(show(ms))}`,
      });
    } else if (ms.length > 0) {
      problems.push({
        kind: "alive",
        name,
        expected: `no process (${STATE_NAME[p.state]})`,
        found: show(ms),
      });
    }
  }
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
async function checkInvariants(label) {
  let ok = true;
  const client = createClient({ socket: SOCKET, timeoutMs: 10_000 });
  let list;
  try {
    list = (await client.listProcesses()).processes;
  } catch (err) {
    countCheck("list", false);
    addViolation("list", {
      label,
      error: `${err?.code} ${err?.message}`,
      daemonLog: logContext(undefined, epoch),
    });
    return false;
  } finally {
    client.close();
  }
  countCheck("list", true);

  // instance: the state file keeps its instance id.
  const inst = readInstance();
  const instOk = inst === instance;
  countCheck("instance", instOk);
  if (!instOk) {
    ok = false;
    addViolation("instance", { label, expected: instance, found: inst ?? "(unreadable)" });
  }

  // registry: names and states as the clients were told.
  const state = readStateFile();
  const listed = new Map(list.map((p) => [p.spec?.name, p]));
  const registryProblems = [];
  for (const name of new Set([...expected.keys(), ...listed.keys()])) {
    const p = listed.get(name);
    const found = statusOf(p);
    const exp = expected.get(name) ?? new Set(["absent"]);
    if (!exp.has(found)) {
      const persisted = state?.processes?.find((e) => e.spec?.name === name);
      registryProblems.push({
        name,
        expected: fmt(exp),
        found: p === undefined ? "absent" : `${found} (${STATE_NAME[p.state]}, pid ${p.pid})`,
        stateFile: persisted === undefined ? "absent" : `intent ${persisted.intent}`,
        history: [...(history.get(name) ?? [])],
        daemonLog: logContext(name, undefined, 40, true),
      });
    } else if (exp.size > 1) {
      stats.uncertainResolved++;
    }
    if (exp.size > 1 || !exp.has(found)) {
      if (history.has(name)) {
        remember(name, {
          wall: Date.now(),
          epoch,
          client: "check",
          op: "list",
          outcome: `daemon says ${found}`,
          expectedAfter: found,
        });
      }
    }
    if (found === "absent" || found === "running" || found === "stopped") {
      expected.set(name, new Set([found]));
    }
  }
  countCheck("registry", registryProblems.length === 0);
  for (const problem of registryProblems) {
    ok = false;
    addViolation("registry", { label, ...problem });
  }

  // alive / orphans: /proc against the listed registry (a killed group's members may take a
  // moment to go, so a discrepancy must last PROC_SETTLE_MS).
  let problems = procProblems(list, scanMarked(instance));
  const settleDeadline = Date.now() + PROC_SETTLE_MS;
  let transient = 0;
  while (problems.length > 0 && Date.now() < settleDeadline) {
    transient = problems.length;
    await sleep(50);
    problems = procProblems(list, scanMarked(instance));
  }
  if (transient > 0 && problems.length === 0) {
    warnings.push({ kind: "transient-proc-discrepancy", at: since(), label, count: transient });
  }
  const aliveProblems = problems.filter((p) => p.kind === "alive");
  const orphanProblems = problems.filter((p) => p.kind === "orphans");
  countCheck("alive", aliveProblems.length === 0);
  countCheck("orphans", orphanProblems.length === 0);
  for (const problem of problems) {
    ok = false;
    addViolation(problem.kind, {
      label,
      ...problem,
      history: [...(history.get(problem.name) ?? [])],
      daemonLog: [...logContext(problem.name), ...logContext(undefined, epoch, 8)],
    });
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Cleanup

function cleanup(reason) {
  cleaning ??= (async () => {
    finished = true;
    resume();
    await killEverything(reason);
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {}
    await new Promise((resolve) => daemonLogOut.end(resolve));
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    cleanup(signal).finally(() => process.exit(130));
  });
}
process.on("exit", () => {
  // Last resort when something went badly wrong: nothing of ours may survive us.
  killEverythingSync();
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
  } catch {}
});

// ---------------------------------------------------------------------------------------------
// The run

async function restartDaemon() {
  // Sometimes kill the new daemon too before it serves: a crash during start-up.
  while (STARTUP_KILL_RATE > 0 && random() < STARTUP_KILL_RATE) {
    // Half at a random moment of its start-up, half just after its first state file write.
    const typical =
      percentile(
        restarts.map((r) => r.servingMs).sort((a, b) => a - b),
        50,
      ) ?? 400;
    const r = await startDaemon(
      random() < 0.5
        ? { killAtMs: randInt(0, Math.max(50, Math.round(typical))) }
        : { killAfterStateWriteMs: randInt(0, 30) },
    );
    if (!r.killedEarly) {
      // It served before the kill was due: just use it.
      return r;
    }
    startupKillsDone++;
    startupKills.push({ at: since(), epoch, sinceSpawnMs: Math.round(r.sinceSpawnMs), how: r.how });
    log(
      `startup kill ${startupKillsDone}: SIGKILLed the starting daemon ${Math.round(r.sinceSpawnMs)} ms after its spawn (${r.how})`,
    );
  }
  return startDaemon();
}

async function main() {
  log(
    `seed ${SEED}, ${KILLS} kills, ${CLIENTS} client loops, ${NAMES} names, budget ${SECONDS}s, temp dir ${tmp}`,
  );
  const first = await startDaemon();
  daemonUp = true;
  generation++;
  restarts.push({ epoch, servingMs: first.servingMs, orphans: 0 });
  instance = readInstance();
  if (instance === undefined) throw new Error(`no instance id in ${STATE_FILE}`);
  log(`procmond serving in ${first.servingMs.toFixed(0)} ms, instance ${instance}`);

  const loops = Array.from({ length: CLIENTS }, (_, i) => clientLoop(i));
  const budgetEnd = T0 + SECONDS * 1000 - FINAL_RESERVE_MS;
  let stoppedEarly = false;

  for (let k = 1; k <= KILLS; k++) {
    if (Date.now() >= budgetEnd) {
      stoppedEarly = true;
      log(`time budget nearly used: stopping after ${killsDone} kills`);
      break;
    }
    if (unexpectedExit) break;
    resume();
    await sleep(randInt(50, 500));
    if (unexpectedExit) break;

    // SIGKILL at a random moment of client activity.
    const inFlightAtKill = inFlight;
    const uncertainBefore = stats.opsUncertain;
    daemon.expectExit = true;
    daemonUp = false;
    generation++;
    daemon.proc.kill("SIGKILL");
    if (!(await waitExit(daemon.proc, KILL_EXIT_TIMEOUT_MS))) {
      throw new Error(
        `procmond pid ${daemon.proc.pid} still there ${KILL_EXIT_TIMEOUT_MS} ms after SIGKILL`,
      );
    }
    killsDone++;
    const markedLeft = scanMarked(instance).length;

    // Start it again; the clients keep trying meanwhile.
    let r;
    try {
      r = await restartDaemon();
    } catch (err) {
      // Not coming back after a SIGKILL (a torn state file, say) is a failure of the daemon.
      countCheck("restart", false);
      addViolation("restart", {
        expected: "procmond serves again after SIGKILL, with the same state file",
        found: err.message,
        daemonLog: logContext(undefined, epoch, 30),
      });
      throw err;
    }
    countCheck("restart", true);
    daemonUp = true;
    generation++;
    // Its orphan sweep, as it logged it.
    const sweep = daemonLines.findLast(
      (l) =>
        l.epoch === epoch && l.obj?.msg === "terminating processes left by a previous procmond",
    );
    restarts.push({
      epoch,
      servingMs: r.servingMs,
      markedLeftByKilled: markedLeft,
      orphansSwept: sweep?.obj?.pids?.length ?? 0,
    });

    // Pause and drain the clients, then check.
    pause();
    if (!(await drain())) {
      addViolation("hung-call", {
        expected: `every call answered within ${DRAIN_TIMEOUT_MS} ms`,
        found: `${inFlight} still in flight: ${[...busy].join(", ")}`,
      });
      countCheck("drain", false);
    }
    stats.interruptedPerKill.push({
      kill: k,
      inFlightAtKill,
      uncertain: stats.opsUncertain - uncertainBefore,
    });
    const ok = await checkInvariants(`after kill ${k}`);
    log(
      `kill ${k}: ${inFlightAtKill} calls in flight, serving again in ${r.servingMs.toFixed(0)} ms (${markedLeft} marked processes left by the killed daemon), checks ${ok ? "ok" : "FAILED"}`,
    );
  }

  if (unexpectedExit) {
    addViolation("daemon-exit", {
      expected: "procmond exits only when killed or terminated",
      found: `epoch ${unexpectedExit.epoch} exited on its own: code ${unexpectedExit.code} signal ${unexpectedExit.signal}`,
      daemonLog: logContext(undefined, unexpectedExit.epoch, 30),
    });
    countCheck("daemon-exit", false);
  }

  // Final: quiesce, check, then a graceful stop.
  pause();
  await drain();
  finished = true;
  resume();
  await Promise.race([Promise.all(loops), sleep(DRAIN_TIMEOUT_MS)]);
  let finalOk = false;
  if (!unexpectedExit) finalOk = await checkInvariants("final");

  const shutdown = { exitCode: null, signal: null, ms: null, leftovers: [], socketRemoved: null };
  if (!unexpectedExit) {
    const t = performance.now();
    daemon.expectExit = true;
    daemon.proc.kill("SIGTERM");
    const gone = await waitExit(daemon.proc, TERM_EXIT_TIMEOUT_MS);
    shutdown.ms = Math.round(performance.now() - t);
    shutdown.exitCode = daemon.proc.exitCode;
    shutdown.signal = daemon.proc.signalCode;
    const exitOk = gone && daemon.proc.exitCode === 0;
    countCheck("shutdown-exit", exitOk);
    if (!exitOk) {
      addViolation("shutdown-exit", {
        expected: `exit 0 within ${TERM_EXIT_TIMEOUT_MS} ms of SIGTERM`,
        found: gone
          ? `code ${daemon.proc.exitCode} signal ${daemon.proc.signalCode}`
          : "still running",
        daemonLog: logContext(undefined, epoch, 30),
      });
    }
    let left = [];
    await waitFor(
      () => {
        left = scanMarked(instance);
        return left.length === 0;
      },
      LEFTOVER_TIMEOUT_MS,
      50,
    );
    shutdown.leftovers = left.map((m) => `${m.pid} ${m.name} ${m.cmdline}`);
    countCheck("shutdown-leftovers", left.length === 0);
    if (left.length > 0) {
      addViolation("shutdown-leftovers", {
        expected: "no marked process after SIGTERM",
        found: shutdown.leftovers,
        daemonLog: logContext(undefined, epoch, 30),
      });
    }
    shutdown.socketRemoved = !fs.existsSync(SOCKET);
    countCheck("shutdown-socket", shutdown.socketRemoved);
    if (!shutdown.socketRemoved) {
      addViolation("shutdown-socket", { expected: "socket file removed", found: SOCKET });
    }
    // The registry outlives a graceful stop too, each intent kept.
    const state = readStateFile();
    const persisted = new Map((state?.processes ?? []).map((e) => [e.spec?.name, e.intent]));
    const mismatches = [];
    for (const [name, exp] of expected) {
      const found = persisted.has(name) ? persisted.get(name) : "absent";
      if (!exp.has(found)) mismatches.push({ name, expected: fmt(exp), found });
    }
    for (const name of persisted.keys()) {
      if (!expected.has(name))
        mismatches.push({ name, expected: "absent", found: persisted.get(name) });
    }
    countCheck("shutdown-state-file", mismatches.length === 0);
    for (const m of mismatches) addViolation("shutdown-state-file", m);
  }
  return { stoppedEarly, finalOk, shutdown };
}

let outcome;
let fatal;
const watchdog = setTimeout(
  () => {
    log(`watchdog: the run overran its budget of ${SECONDS}s by 60s: aborting`);
    cleanup("watchdog").finally(() => process.exit(2));
  },
  SECONDS * 1000 + 60_000,
);
try {
  outcome = await main();
} catch (err) {
  fatal = err;
  log(`run aborted: ${err?.stack ?? err}`);
} finally {
  clearTimeout(watchdog);
  await cleanup("end of run");
}

// ---------------------------------------------------------------------------------------------
// Report

const totalMs = Date.now() - T0;
const serving = restarts.map((r) => r.servingMs).sort((a, b) => a - b);
const round = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);
const warnCounts = {};
for (const l of daemonLines) {
  if ((l.obj?.level ?? 0) >= 40) warnCounts[l.obj.msg] = (warnCounts[l.obj.msg] ?? 0) + 1;
}
const results = {
  date: new Date().toISOString(),
  node: process.version,
  options: {
    kills: KILLS,
    seed: SEED,
    seconds: SECONDS,
    clients: CLIENTS,
    names: NAMES,
    logLevel: LOG_LEVEL,
    startupKillRate: STARTUP_KILL_RATE,
    daemonKillTime: DAEMON_KILL_TIME,
    daemon: DAEMON_BIN,
  },
  ok: fatal === undefined && checks.failed === 0 && violations.length === 0,
  fatal: fatal === undefined ? null : String(fatal?.stack ?? fatal),
  killsDone,
  startupKillsDone,
  startupKills,
  stoppedEarlyByTimeBudget: outcome?.stoppedEarly ?? null,
  totalMs,
  ops: {
    started: stats.opsStarted,
    acknowledged: stats.opsAcked,
    rejected: stats.opsRejected,
    uncertain: stats.opsUncertain,
    notReached: stats.opsNotReached,
    uncertainResolvedByListing: stats.uncertainResolved,
    unexpectedErrors: stats.opsUnexpectedError,
    byOp: stats.byOp,
    ackedLatencyMs: Object.fromEntries(
      Object.entries(ackLatencies).map(([op, ms]) => {
        const sorted = [...ms].sort((a, b) => a - b);
        return [
          op,
          { p50: percentile(sorted, 50), p90: percentile(sorted, 90), max: sorted.at(-1) },
        ];
      }),
    ),
  },
  checks,
  timeToServingMs: {
    max: round(serving.at(-1)),
    p50: round(percentile(serving, 50)),
    p90: round(percentile(serving, 90)),
    min: round(serving[0]),
    all: serving.map(round),
  },
  restarts: restarts.map((r) => ({ ...r, servingMs: round(r.servingMs) })),
  interruptedPerKill: stats.interruptedPerKill,
  shutdown: outcome?.shutdown ?? null,
  daemonWarnings: warnCounts,
  warnings,
  violations,
};
fs.writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);

const lines = [
  "",
  "procmond soak",
  `  seed                      ${SEED}`,
  `  kills done                ${killsDone}/${KILLS}${startupKillsDone ? ` (+${startupKillsDone} during start-up)` : ""}${outcome?.stoppedEarly ? " (time budget)" : ""}`,
  `  operations                ${stats.opsStarted} started: ${stats.opsAcked} acknowledged, ${stats.opsRejected} rejected (NOT_FOUND/ALREADY_EXISTS), ${stats.opsUncertain} uncertain, ${stats.opsNotReached} not reached (daemon down, retried)`,
  `  invariant checks          ${checks.passed} passed, ${checks.failed} failed`,
  ...Object.entries(checks.byKind).map(
    ([k, v]) => `    ${k.padEnd(24)}${v.passed} passed, ${v.failed} failed`,
  ),
  `  violations                ${violations.length}`,
  `  time to serving (ms)      max ${round(serving.at(-1))}, p50 ${round(percentile(serving, 50))}, p90 ${round(percentile(serving, 90))}`,
  `  shutdown                  ${outcome?.shutdown ? `exit ${outcome.shutdown.exitCode} in ${outcome.shutdown.ms} ms, ${outcome.shutdown.leftovers.length} leftovers, socket removed ${outcome.shutdown.socketRemoved}` : "not reached"}`,
  `  total time                ${(totalMs / 1000).toFixed(1)} s`,
  `  results                   ${path.relative(ROOT, RESULTS_FILE)}, daemon log ${path.relative(ROOT, DAEMON_LOG_FILE)}`,
];
if (fatal) lines.push(`  RUN ABORTED: ${fatal?.message ?? fatal}`);
for (const v of violations.slice(0, 10)) {
  lines.push(
    `  VIOLATION ${v.kind} ${v.label ?? ""} ${v.name ?? ""}: expected ${JSON.stringify(v.expected)}, found ${JSON.stringify(v.found)}`,
  );
}
if (violations.length > 10)
  lines.push(`  ... ${violations.length - 10} more in ${path.relative(ROOT, RESULTS_FILE)}`);
process.stdout.write(`${lines.join("\n")}\n`);
process.exitCode = violations.length > 0 || checks.failed > 0 ? 1 : fatal ? 2 : 0;
