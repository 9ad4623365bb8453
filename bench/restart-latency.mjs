#!/usr/bin/env node
// procmond benchmark: restart latency, start-up of many processes, memory, idle CPU and
// ListProcesses latency, against a bare-Node baseline measured in the same run.
//
//   npm run build && node bench/restart-latency.mjs [--quick] [--cpu-prof] [--daemon-node-arg=ARG]...
//
// --quick      a smoke run (30 restarts, 100 processes, shorter idle window) in well under 30 s
// --cpu-prof   also run the daemon under `node --cpu-prof`; profiles go to bench/results/prof/
// --daemon-node-arg=ARG   pass ARG to the daemon's node (repeatable), to try a V8 flag, e.g.
//              --daemon-node-arg=--max-semi-space-size=1
// --no-state-file   run the daemon without persistence. By default it persists, as deployed,
//              but to a state file in the temp dir (never the system default path).
//
// Restart latency is measured by the children themselves: bench/stamp.c (compiled with cc into
// the temp dir at start) reads CLOCK_MONOTONIC as its first instruction and appends
// "TAG PID NS" to a FIFO owned by this script. The script takes process.hrtime.bigint() (also
// CLOCK_MONOTONIC) right before process.kill(pid, "SIGKILL"); latency = stamp - kill time.
//
// Two baselines run in the same session, with the same children, kills and stamps:
//  - "node": bench/baseline-parent.mjs, a bare Node parent that respawns with child_process.spawn
//    on 'exit' (procmond's spawn options); the targets' ratios are against it.
//  - "native": bench/native-parent.c (compiled like stamp.c), a C parent that respawns with
//    posix_spawn (vfork-style) from a waitpid(-1) loop: the floor of this machine, for reference.
// All three run side by side and are killed in turn (one kill at a time, shuffled each round),
// so that the machine's noise falls on each alike and the ratios stay meaningful.
//
// Everything the script starts (the daemon, the baseline parent, their children, the temp dir,
// the FIFO) is stopped and removed on exit, on error and on SIGINT/SIGTERM. Children are only
// ever killed by pid after checking that their command line is this run's stamp binary.
// Results: a table on stdout and JSON in bench/results/restart-latency.json
// (restart-latency-quick.json with --quick).

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createClient } from "@procmon/client";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const DAEMON_BIN = path.join(ROOT, "packages/daemon/bin/procmond.js");
const BASELINE_PARENT = path.join(HERE, "baseline-parent.mjs");
const RESULTS_DIR = path.join(HERE, "results");

const QUICK = process.argv.includes("--quick");
const CPU_PROF = process.argv.includes("--cpu-prof");
const NO_STATE_FILE = process.argv.includes("--no-state-file");
const DAEMON_NODE_ARGS = process.argv
  .filter((a) => a.startsWith("--daemon-node-arg="))
  .map((a) => a.slice("--daemon-node-arg=".length));
for (const arg of process.argv.slice(2)) {
  if (
    !["--quick", "--cpu-prof", "--no-state-file"].includes(arg) &&
    !arg.startsWith("--daemon-node-arg=")
  ) {
    process.stderr.write(
      `unknown argument ${arg}\nusage: node bench/restart-latency.mjs [--quick] [--cpu-prof] [--no-state-file] [--daemon-node-arg=ARG]...\n`,
    );
    process.exit(2);
  }
}

const CFG = QUICK
  ? {
      restarts: 30,
      warmup: 5,
      few: 10,
      many: 100,
      concurrency: 50,
      idleSec: 2,
      settleMs: 500,
      listCalls: 50,
    }
  : {
      restarts: 500,
      warmup: 20,
      few: 10,
      many: 1000,
      concurrency: 50,
      idleSec: 10,
      settleMs: 2_000,
      listCalls: 200,
    };
/** How many of the supervised processes are SIGKILLed in turn (the rest idle). */
const KILL_TARGETS = 3;
/** Pause between two kills (plus up to 5 ms of jitter), well above the 1 ms threshold. */
const KILL_GAP_MS = 10;
const STAMP_TIMEOUT_MS = 5_000;

const TARGETS = {
  restartP50Few: 4,
  restartP99Few: 15,
  restartP50Many: 6,
  start1000Ms: 3_000,
  rssMB: 100,
  idleCpuPct: 0.5,
  listP50Ms: 20,
};

// ---------------------------------------------------------------------------------------------
// Things to clean up

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "procmon-bench-"));
const STAMP = path.join(tmp, "stamp");
const NATIVE_PARENT = path.join(tmp, "native-parent");
const FIFO = path.join(tmp, "stamps.fifo");
const SOCKET = path.join(tmp, "procmond.sock");
/** Child processes this script spawned directly: { proc, name }. */
const started = new Set();
const clients = new Set();
let fifoSocket;

function log(message) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** True if `pid` is one of this run's stamp children (its argv[0] is our stamp binary). */
function isOurStamp(pid) {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv[0] === STAMP;
  } catch {
    return false;
  }
}

async function waitExit(proc, timeoutMs) {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  return Promise.race([
    new Promise((resolve) => proc.once("exit", () => resolve(true))),
    sleep(timeoutMs).then(() => false),
  ]);
}

let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    for (const client of clients) {
      try {
        client.close();
      } catch {}
    }
    clients.clear();
    for (const { proc, name } of [...started]) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      log(`stopping ${name} (pid ${proc.pid})`);
      try {
        proc.kill("SIGTERM");
      } catch {}
      if (!(await waitExit(proc, 20_000))) {
        log(`${name} did not exit after SIGTERM: SIGKILL`);
        try {
          proc.kill("SIGKILL");
        } catch {}
        await waitExit(proc, 5_000);
      }
    }
    // Anything of ours left over (after a crash of the daemon, say).
    let leftovers = 0;
    for (const pid of stamps.allPids) {
      if (alive(pid) && isOurStamp(pid)) {
        leftovers++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    if (leftovers > 0) log(`killed ${leftovers} leftover stamp children`);
    fifoSocket?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Stamps from the children

const stamps = {
  /** tag -> { pid, ns } of its latest stamp */
  last: new Map(),
  /** tag -> { notPid, resolve } */
  waiters: new Map(),
  /** [Set of tags, resolve] waiting for every tag of the set to have stamped */
  groupWaiters: new Set(),
  allPids: new Set(),
  lines: 0,

  onLine(line) {
    const [tag, pidText, nsText] = line.split(" ");
    if (!tag || !pidText || !nsText) return;
    const stamp = { pid: Number(pidText), ns: BigInt(nsText) };
    this.lines++;
    this.allPids.add(stamp.pid);
    this.last.set(tag, stamp);
    const waiter = this.waiters.get(tag);
    if (waiter && waiter.notPid !== stamp.pid) {
      this.waiters.delete(tag);
      waiter.resolve(stamp);
    }
    for (const group of this.groupWaiters) {
      group.missing.delete(tag);
      if (group.missing.size === 0) {
        this.groupWaiters.delete(group);
        group.resolve();
      }
    }
  },

  /** The next stamp of `tag` from a pid other than `notPid`. */
  next(tag, notPid, timeoutMs = STAMP_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tag);
        reject(new Error(`no new stamp from ${tag} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(tag, {
        notPid,
        resolve: (stamp) => {
          clearTimeout(timer);
          resolve(stamp);
        },
      });
    });
  },

  /** Resolves once every tag has stamped (since `forget` was called for them). */
  all(tags, timeoutMs) {
    const missing = new Set(tags.filter((t) => !this.last.has(t)));
    if (missing.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const group = {
        missing,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.groupWaiters.delete(group);
        reject(new Error(`${group.missing.size} of ${tags.length} never stamped`));
      }, timeoutMs);
      this.groupWaiters.add(group);
    });
  },
};

function openFifo() {
  execFileSync("mkfifo", ["-m", "600", FIFO]);
  // O_RDWR: there is always a reader (children never block in open) and never EOF.
  const fd = fs.openSync(FIFO, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  fifoSocket = new net.Socket({ fd, readable: true, writable: false });
  let rest = "";
  fifoSocket.setEncoding("utf8");
  fifoSocket.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) stamps.onLine(line);
  });
  fifoSocket.on("error", (err) => log(`fifo: ${err.message}`));
}

// ---------------------------------------------------------------------------------------------
// Statistics and /proc

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    n: sorted.length,
    min: sorted[0],
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1],
    mean,
  };
}

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

function procStatus(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { rssMB: kb("VmRSS") / 1024, hwmMB: kb("VmHWM") / 1024 };
}

function openFiles(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

function softNofile(pid) {
  const limits = fs.readFileSync(`/proc/${pid}/limits`, "utf8");
  const m = limits.match(/^Max open files\s+(\S+)\s+(\S+)/m);
  return m ? { soft: m[1], hard: m[2] } : undefined;
}

async function idleCpu(pid, seconds) {
  const t0 = process.hrtime.bigint();
  const c0 = cpuTicks(pid);
  await sleep(seconds * 1000);
  const c1 = cpuTicks(pid);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuSec = (c1 - c0) / CLK_TCK;
  return { wallSec: wall, cpuSec, pctOfOneCore: (100 * cpuSec) / wall };
}

// ---------------------------------------------------------------------------------------------
// Starting things

function shellLimits() {
  const out = execFileSync("sh", ["-c", "ulimit -Sn; ulimit -Hn"], { encoding: "utf8" }).split(
    "\n",
  );
  const parse = (s) => (s === "unlimited" ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: parse(out[0]), hard: parse(out[1]) };
}

/**
 * argv that runs `node args...` with a soft open-files limit high enough for `children` children
 * (two pipes each, plus sockets), raised through `sh -c 'ulimit -n N; exec node ...'` if needed.
 */
function withFdLimit(nodeArgs, children) {
  const limits = shellLimits();
  const need = children * 2 + 1024;
  if (limits.soft >= need) return { file: process.execPath, args: nodeArgs, raisedTo: undefined };
  const target = Math.min(limits.hard, 65_536);
  if (target < need) log(`warning: hard open-files limit ${limits.hard} < ${need} needed`);
  const quoted = [process.execPath, ...nodeArgs].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
  return {
    file: "sh",
    args: ["-c", `ulimit -n ${target} && exec ${quoted.join(" ")}`],
    raisedTo: target,
  };
}

function buildStamp() {
  execFileSync("cc", ["-O2", "-Wall", "-o", NATIVE_PARENT, path.join(HERE, "native-parent.c")], {
    stdio: "pipe",
  });
  const source = path.join(HERE, "stamp.c");
  try {
    execFileSync("cc", ["-O2", "-static", "-o", STAMP, source], { stdio: "pipe" });
    return "static";
  } catch {
    execFileSync("cc", ["-O2", "-o", STAMP, source], { stdio: "pipe" });
    return "dynamic";
  }
}

const daemonLog = { warnings: 0, errors: 0, tail: [] };

async function startDaemon() {
  const nodeArgs = [...DAEMON_NODE_ARGS];
  if (CPU_PROF) {
    const dir = path.join(RESULTS_DIR, "prof");
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  nodeArgs.push(DAEMON_BIN, "--socket", SOCKET, "--log-level", "warn", "--threshold", "1ms");
  // Newer daemons persist by default, to a system path: persist into the temp dir instead, or not
  // at all with --no-state-file. Never let the daemon touch the default path.
  const help = execFileSync(process.execPath, [DAEMON_BIN, "--help"], { encoding: "utf8" });
  let stateFile = null;
  if (NO_STATE_FILE) {
    if (help.includes("--no-state-file")) nodeArgs.push("--no-state-file");
  } else if (help.includes("--state-file")) {
    stateFile = path.join(tmp, "state.json");
    nodeArgs.push("--state-file", stateFile);
  }
  const { file, args, raisedTo } = withFdLimit(nodeArgs, CFG.many);
  const proc = spawn(file, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const entry = { proc, name: "procmond" };
  started.add(entry);
  proc.on("exit", () => started.delete(entry));
  let rest = "";
  const onOutput = (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") continue;
      daemonLog.tail.push(line);
      if (daemonLog.tail.length > 50) daemonLog.tail.shift();
      try {
        const { level } = JSON.parse(line);
        if (level === 40) daemonLog.warnings++;
        if (level >= 50) daemonLog.errors++;
      } catch {
        daemonLog.errors++;
      }
    }
  };
  proc.stdout.setEncoding("utf8").on("data", onOutput);
  proc.stderr.setEncoding("utf8").on("data", onOutput);

  // At --log-level warn the "procmond listening" line (info) is not printed: poll the socket.
  const client = createClient({ socket: SOCKET });
  clients.add(client);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`procmond exited with ${proc.exitCode}:\n${daemonLog.tail.join("\n")}`);
    }
    try {
      await client.listProcesses({ timeoutMs: 1_000 });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`procmond never answered: ${err.message}`);
      await sleep(50);
    }
  }
  return { proc, client, raisedTo, nofile: softNofile(proc.pid), stateFile, args: nodeArgs };
}

async function stopProc(proc, timeoutMs = 30_000) {
  const t0 = process.hrtime.bigint();
  proc.kill("SIGTERM");
  const exited = await waitExit(proc, timeoutMs);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, exited, code: proc.exitCode };
}

async function startBaseline(kind, count, prefix) {
  const parentArgs = [STAMP, FIFO, String(count), prefix];
  const { file, args, raisedTo } =
    kind === "node"
      ? withFdLimit([BASELINE_PARENT, ...parentArgs], count)
      : { file: NATIVE_PARENT, args: parentArgs, raisedTo: undefined };
  const proc = spawn(file, args, { stdio: ["ignore", "pipe", "inherit"] });
  const entry = { proc, name: `${kind} baseline parent (${count} children)` };
  started.add(entry);
  proc.on("exit", () => started.delete(entry));
  const tags = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
  await stamps.all(tags, 60_000);
  return { proc, tags, raisedTo };
}

// ---------------------------------------------------------------------------------------------
// Measurements

/**
 * Restart latency of several supervisors at once, interleaved so that the machine's noise falls on
 * all of them alike: each round SIGKILLs the current child of one target of every group, one kill
 * at a time, in a shuffled order, and records stamp - kill time in ms. `groups` maps a label to the
 * tags of its processes; the first KILL_TARGETS of each are killed in turn, the rest idle.
 */
async function measureRestarts(groups, count) {
  const state = Object.entries(groups).map(([label, tags]) => ({
    label,
    targets: tags.slice(0, KILL_TARGETS),
    samples: [],
    timeouts: 0,
  }));
  const killOne = async (group, tag, record) => {
    const current = stamps.last.get(tag);
    if (!current) throw new Error(`${group.label}: ${tag} has never stamped`);
    await sleep(KILL_GAP_MS + Math.random() * 5);
    if (cleaning) throw new Error("interrupted");
    // Never signal a pid that is not (any more) one of this run's stamp children.
    if (!isOurStamp(current.pid))
      throw new Error(`${group.label}: ${tag} (pid ${current.pid}) is gone`);
    const next = stamps.next(tag, current.pid);
    const killedAt = process.hrtime.bigint();
    try {
      process.kill(current.pid, "SIGKILL");
    } catch (err) {
      log(`${group.label}: kill ${current.pid}: ${err.message}`);
    }
    try {
      const stamp = await next;
      if (record) group.samples.push(Number(stamp.ns - killedAt) / 1e6);
    } catch (err) {
      group.timeouts++;
      log(`${group.label}: ${err.message}`);
      if (group.timeouts > 5) throw new Error(`${group.label}: too many restarts never seen`);
    }
  };
  for (let i = -CFG.warmup; i < count; i++) {
    const order = [...state].sort(() => Math.random() - 0.5);
    for (const group of order) {
      const k = ((i % group.targets.length) + group.targets.length) % group.targets.length;
      await killOne(group, group.targets[k], i >= 0);
    }
  }
  const out = {};
  for (const group of state) {
    const summary = summarize(group.samples);
    log(
      `${group.label}: p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms, ` +
        `max ${summary.max.toFixed(2)} ms (${summary.n} restarts)`,
    );
    out[group.label] = { ...summary, timeouts: group.timeouts, targets: group.targets.length };
  }
  return out;
}

function names(prefix, count) {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
}

const spec = (name) => ({ name, args: [STAMP, FIFO, name] });

async function pool(items, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** AddProcess for every name; time from the first call to the last answer, and to the last stamp. */
async function measureStart(client, tags, concurrency) {
  const allStamped = stamps.all(tags, 120_000);
  const t0 = process.hrtime.bigint();
  await pool(tags, concurrency, (name) => client.addProcess(spec(name)));
  const answered = Number(process.hrtime.bigint() - t0) / 1e6;
  await allStamped;
  const stamped = Number(process.hrtime.bigint() - t0) / 1e6;
  log(
    `start ${tags.length} (concurrency ${concurrency}): ${answered.toFixed(0)} ms to last answer`,
  );
  return { count: tags.length, concurrency, ms: answered, allStampedMs: stamped };
}

async function removeAll(client, tags, concurrency) {
  const t0 = process.hrtime.bigint();
  await pool(tags, concurrency, (name) => client.removeProcess(name));
  for (const tag of tags) stamps.last.delete(tag);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function measureList(client, calls) {
  for (let i = 0; i < 10; i++) await client.listProcesses();
  const samples = [];
  let count = 0;
  let bytes = 0;
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint();
    const { processes } = await client.listProcesses();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    count = processes.length;
    if (i === 0)
      bytes = JSON.stringify(processes, (_, v) => (typeof v === "bigint" ? String(v) : v)).length;
  }
  const summary = summarize(samples);
  log(
    `ListProcesses at ${count}: p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms`,
  );
  return { ...summary, processes: count, approxJsonBytes: bytes };
}

// ---------------------------------------------------------------------------------------------
// Report

function machine() {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown",
    node: process.version,
    kernel: os.release(),
    memTotalMB: Math.round(os.totalmem() / 2 ** 20),
    loadAvgAtStart: os.loadavg(),
    shellNofile: shellLimits(),
  };
}

const fmt = (v, d = 2) => (v === undefined || Number.isNaN(v) ? "-" : v.toFixed(d));
const ratio = (a, b) => (b > 0 ? `${(a / b).toFixed(2)}x` : "-");
const verdict = (ok) => (ok ? "PASS" : "FAIL");

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) =>
    r
      .map((cell, c) => String(cell).padEnd(widths[c]))
      .join("  ")
      .trimEnd();
  return [
    line(rows[0]),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.slice(1).map(line),
  ].join("\n");
}

function report(r) {
  const out = [];
  const rl = (label, s, base) => [
    label,
    s.n,
    fmt(s.p50),
    fmt(s.p90),
    fmt(s.p99),
    fmt(s.max),
    base ? ratio(s.p50, base.p50) : "",
    base ? ratio(s.p99, base.p99) : "",
  ];
  out.push(
    `procmond benchmark${QUICK ? " (--quick)" : ""}: ${r.machine.cpuModel}, ${r.machine.nproc} CPUs, Node ${r.machine.node}, Linux ${r.machine.kernel}`,
  );
  out.push(`daemon: ${r.daemon.command}`);
  out.push("");
  out.push("Restart latency, SIGKILL -> replacement's first instruction (ms):");
  out.push(
    table([
      ["setup", "n", "p50", "p90", "p99", "max", "p50 vs node", "p99 vs node"],
      rl(`node baseline, ${CFG.few} children`, r.restart.baselineFew),
      rl(`native floor, ${CFG.few} children`, r.restart.nativeFew, r.restart.baselineFew),
      rl(`procmond, ${CFG.few} processes`, r.restart.daemonFew, r.restart.baselineFew),
      rl(`node baseline, ${CFG.many} children`, r.restart.baselineMany),
      rl(`native floor, ${CFG.many} children`, r.restart.nativeMany, r.restart.baselineMany),
      rl(`procmond, ${CFG.many} processes`, r.restart.daemonMany, r.restart.baselineMany),
    ]),
  );
  out.push(
    `(procmond at ${CFG.many} vs the ${CFG.few}-child node baseline: p50 ${ratio(r.restart.daemonMany.p50, r.restart.baselineFew.p50)}, p99 ${ratio(r.restart.daemonMany.p99, r.restart.baselineFew.p99)})`,
  );
  out.push("");
  out.push(
    table([
      ["measure", "value"],
      [`start ${CFG.many}, sequential: last answer`, `${fmt(r.start.sequential.ms, 0)} ms`],
      [
        `start ${CFG.many}, sequential: all stamped`,
        `${fmt(r.start.sequential.allStampedMs, 0)} ms`,
      ],
      [
        `start ${CFG.many}, ${CFG.concurrency} in flight: last answer`,
        `${fmt(r.start.concurrent.ms, 0)} ms`,
      ],
      [
        `start ${CFG.many}, ${CFG.concurrency} in flight: all stamped`,
        `${fmt(r.start.concurrent.allStampedMs, 0)} ms`,
      ],
      [`remove ${CFG.many}, ${CFG.concurrency} in flight`, `${fmt(r.start.removeAllMs, 0)} ms`],
      [
        `daemon RSS at ${CFG.many} (idle)`,
        `${fmt(r.memory.idle.rssMB, 1)} MB (peak ${fmt(r.memory.idle.hwmMB, 1)} MB)`,
      ],
      [`daemon RSS at ${CFG.many} (after restarts)`, `${fmt(r.memory.afterRestarts.rssMB, 1)} MB`],
      [`daemon RSS, empty`, `${fmt(r.memory.empty.rssMB, 1)} MB`],
      [
        `daemon idle CPU at ${CFG.many} over ${fmt(r.idleCpu.wallSec, 1)} s`,
        `${fmt(r.idleCpu.pctOfOneCore, 3)} % of one core (${fmt(r.idleCpu.cpuSec, 2)} s CPU)`,
      ],
      [
        `daemon open fds at ${CFG.many}`,
        `${r.memory.openFds} (soft limit ${r.daemon.nofile?.soft})`,
      ],
      [
        `ListProcesses at ${r.list.processes}: p50 / p99 / max`,
        `${fmt(r.list.p50)} / ${fmt(r.list.p99)} / ${fmt(r.list.max)} ms (n=${r.list.n})`,
      ],
      [
        `daemon shutdown with ${CFG.many} processes`,
        `${fmt(r.daemon.shutdown?.ms, 0)} ms, exit ${r.daemon.shutdown?.code}`,
      ],
    ]),
  );
  out.push(
    `load average (1/5/15 min) at start ${r.machine.loadAvgAtStart.map((l) => l.toFixed(2)).join(" ")}, at end ${r.machine.loadAvgAtEnd.map((l) => l.toFixed(2)).join(" ")}`,
  );
  out.push("");
  out.push(
    `Targets${QUICK ? ` (--quick: measured at ${CFG.many}, not 1,000 processes; indicative only)` : ""}:`,
  );
  out.push(
    table([
      ["target", "measured", "result"],
      ...r.targets.map((t) => [t.target, t.measured, verdict(t.pass)]),
    ]),
  );
  out.push("");
  out.push(
    `daemon log: ${r.daemon.logWarnings} warnings, ${r.daemon.logErrors} errors; ` +
      `fd limit ${r.daemon.raisedTo ? `raised to ${r.daemon.raisedTo}` : `not raised (soft ${r.machine.shellNofile.soft})`}; stamp binary ${r.stampLink}`,
  );
  return out.join("\n");
}

function evaluate(r) {
  const t = TARGETS;
  return [
    {
      target: `restart p50 <= ${t.restartP50Few} ms (${CFG.few} procs)`,
      measured: `${fmt(r.restart.daemonFew.p50)} ms`,
      pass: r.restart.daemonFew.p50 <= t.restartP50Few,
    },
    {
      target: `restart p99 <= ${t.restartP99Few} ms (${CFG.few} procs)`,
      measured: `${fmt(r.restart.daemonFew.p99)} ms`,
      pass: r.restart.daemonFew.p99 <= t.restartP99Few,
    },
    {
      target: `restart p50 <= ${t.restartP50Many} ms (${CFG.many} procs)`,
      measured: `${fmt(r.restart.daemonMany.p50)} ms`,
      pass: r.restart.daemonMany.p50 <= t.restartP50Many,
    },
    {
      target: `start ${CFG.many} <= ${t.start1000Ms} ms (sequential)`,
      measured: `${fmt(r.start.sequential.ms, 0)} ms`,
      pass: r.start.sequential.ms <= t.start1000Ms,
    },
    {
      target: `start ${CFG.many} <= ${t.start1000Ms} ms (${CFG.concurrency} in flight)`,
      measured: `${fmt(r.start.concurrent.ms, 0)} ms`,
      pass: r.start.concurrent.ms <= t.start1000Ms,
    },
    {
      target: `RSS <= ${t.rssMB} MB (${CFG.many} procs)`,
      measured: `${fmt(r.memory.idle.rssMB, 1)} MB`,
      pass: r.memory.idle.rssMB <= t.rssMB,
    },
    {
      target: `idle CPU < ${t.idleCpuPct} % (${CFG.many} procs)`,
      measured: `${fmt(r.idleCpu.pctOfOneCore, 3)} %`,
      pass: r.idleCpu.pctOfOneCore < t.idleCpuPct,
    },
    {
      target: `ListProcesses p50 <= ${t.listP50Ms} ms (${CFG.many} procs)`,
      measured: `${fmt(r.list.p50)} ms`,
      pass: r.list.p50 <= t.listP50Ms,
    },
  ];
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  const r = {
    quick: QUICK,
    config: { ...CFG, killTargets: KILL_TARGETS, killGapMs: KILL_GAP_MS },
    startedAt: new Date().toISOString(),
  };
  r.machine = machine();
  r.stampLink = buildStamp();
  openFifo();
  r.restart = {};

  const baselines = async (count, prefix) => {
    log(`baselines: ${count} children each (node, native)`);
    return {
      node: await startBaseline("node", count, `n${prefix}`),
      native: await startBaseline("native", count, `c${prefix}`),
    };
  };
  const stopBaselines = async (bases) => {
    for (const base of Object.values(bases)) {
      await stopProc(base.proc);
      for (const tag of base.tags) stamps.last.delete(tag);
    }
  };
  const spread = (tags) => [tags[0], tags[Math.floor(tags.length / 2)], tags[tags.length - 1]];

  log("starting procmond");
  const daemon = await startDaemon();
  const { client, proc } = daemon;
  r.daemon = {
    pid: proc.pid,
    raisedTo: daemon.raisedTo,
    nofile: daemon.nofile,
    cpuProf: CPU_PROF,
    nodeArgs: DAEMON_NODE_ARGS,
    stateFile: daemon.stateFile,
    command: [process.execPath, ...daemon.args.map((a) => a.replaceAll(tmp, "$TMP"))].join(" "),
  };
  r.memory = { empty: procStatus(proc.pid) };

  // (a) few processes: procmond and both baselines, interleaved.
  const few = names("f", CFG.few);
  await measureStart(client, few, 1);
  let bases = await baselines(CFG.few, "f");
  log(`restarts at ${CFG.few}`);
  let m = await measureRestarts(
    { procmond: spread(few), node: spread(bases.node.tags), native: spread(bases.native.tags) },
    CFG.restarts,
  );
  r.restart.daemonFew = m.procmond;
  r.restart.baselineFew = m.node;
  r.restart.nativeFew = m.native;
  await stopBaselines(bases);
  await removeAll(client, few, CFG.concurrency);

  // Starting many: procmond alone.
  r.start = {};
  const seq = names("s", CFG.many);
  r.start.sequential = await measureStart(client, seq, 1);
  r.start.removeAllMs = await removeAll(client, seq, CFG.concurrency);
  const conc = names("c", CFG.many);
  r.start.concurrent = await measureStart(client, conc, CFG.concurrency);

  // Idle footprint and ListProcesses at many: procmond alone.
  await sleep(CFG.settleMs);
  r.memory.idle = procStatus(proc.pid);
  r.memory.openFds = openFiles(proc.pid);
  log(`idle CPU over ${CFG.idleSec} s`);
  r.idleCpu = await idleCpu(proc.pid, CFG.idleSec);
  r.list = await measureList(client, CFG.listCalls);

  // (b) many processes: procmond and both baselines (as many children each), interleaved.
  bases = await baselines(CFG.many, "m");
  log(`restarts at ${CFG.many}`);
  m = await measureRestarts(
    { procmond: spread(conc), node: spread(bases.node.tags), native: spread(bases.native.tags) },
    CFG.restarts,
  );
  r.restart.daemonMany = m.procmond;
  r.restart.baselineMany = m.node;
  r.restart.nativeMany = m.native;
  await stopBaselines(bases);
  r.memory.afterRestarts = procStatus(proc.pid);
  const final = await client.listProcesses();
  r.daemon.finalProcesses = final.processes.length;
  r.daemon.finalNotRunning = final.processes.filter((p) => p.pid === 0).length;
  r.daemon.lastEventSeq = String(final.lastEventSeq);

  client.close();
  clients.delete(client);
  log(`stopping procmond with ${CFG.many} processes`);
  r.daemon.shutdown = await stopProc(proc);
  r.daemon.logWarnings = daemonLog.warnings;
  r.daemon.logErrors = daemonLog.errors;
  if (daemonLog.warnings + daemonLog.errors > 0) r.daemon.logTail = daemonLog.tail.slice(-10);

  r.ratios = {
    fewP50: r.restart.daemonFew.p50 / r.restart.baselineFew.p50,
    fewP99: r.restart.daemonFew.p99 / r.restart.baselineFew.p99,
    manyP50: r.restart.daemonMany.p50 / r.restart.baselineMany.p50,
    manyP99: r.restart.daemonMany.p99 / r.restart.baselineMany.p99,
    manyVsFewBaselineP50: r.restart.daemonMany.p50 / r.restart.baselineFew.p50,
    fewVsNativeP50: r.restart.daemonFew.p50 / r.restart.nativeFew.p50,
    manyVsNativeP50: r.restart.daemonMany.p50 / r.restart.nativeMany.p50,
  };
  r.targets = evaluate(r);
  r.durationSec = (Date.now() - t0) / 1000;
  r.machine.loadAvgAtEnd = os.loadavg();

  const text = report(r);
  process.stdout.write(`\n${text}\n`);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  // Variants never overwrite the plain run's file.
  const variant = [
    ...DAEMON_NODE_ARGS,
    ...(NO_STATE_FILE ? ["no-state-file"] : []),
    ...(CPU_PROF ? ["cpu-prof"] : []),
  ]
    .map((a) => a.replace(/^-+/, "").replace(/[^A-Za-z0-9.]+/g, "-"))
    .join("_");
  const file = path.join(
    RESULTS_DIR,
    `restart-latency${QUICK ? "-quick" : ""}${variant ? `-${variant}` : ""}.json`,
  );
  fs.writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  process.stdout.write(`\nresults: ${path.relative(ROOT, file)} (${r.durationSec.toFixed(0)} s)\n`);
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  log(`failed: ${err.stack ?? err}`);
  if (daemonLog.tail.length > 0)
    log(`procmond's last lines:\n${daemonLog.tail.slice(-10).join("\n")}`);
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
