#!/usr/bin/env node
// Lifecycle policies (issue 13): the cost of dependencies and of readiness probes.
//
//   npm run build && node bench/policies.mjs [--quick] [--rounds=N] [--cpu-prof]
//
// --quick     one round, 3 s idle and 5 s probe windows (~1 min); default 3 rounds, 10 s, 20 s
// --rounds=N  rounds of the start-up variants, each running every variant once, in an order
//             rotated round by round
// --cpu-prof  run the start-up daemons under `node --cpu-prof` (profiles kept in
//             bench/results/policies-prof-DATE) and print the top self-time functions of the
//             tree variants, from spawn (or the first call) to the last start
//
// 1. Start-up: 1,000 `sleep` processes, independent or in a 10-level tree (100 roots; each
//    process of level k>0 depends on process i of level k-1, the odd ones also on i+1, all
//    with condition started), from a --config file (spawn -> the last `started` event) and
//    through AddProcess, 50 in flight (first call -> the last `started` event). The times are
//    the daemon's own event times (a replay of WatchEvents from seq 1 once all are answered),
//    checked against ListProcesses (all RUNNING). Target: tree / independent <= 1.5.
// 2. Idle: 1,000 sleepers, no probes: the daemon's and the shim's CPU ticks over the idle
//    window once they have gone quiet. Target: 0.
// 3. Probes: 100 sleepers without a probe, with an exec probe (`true`, period 1 s), with a tcp
//    probe (period 1 s) against a loopback server this bench runs; once all are ready, the
//    daemon's and the shim's CPU over the probe window (and the shim's reaped children's,
//    i.e. the `true`s), as % of a core and ticks per probe run. Recorded, no target.
// Each figure carries the load average before and after it. Results: a summary on stdout,
// JSON in bench/results/policies.json (policies-quick.json with --quick). Everything started
// is stopped (SIGTERM to the daemons) and the temp dir removed, also on error and SIGINT.

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { DependencyCondition, State } from "@procmon/client/api";
import { ROOT, startProcmond } from "./lib/daemon.mjs";
import {
  alive,
  CLK_TCK,
  idleCpu,
  loadavg,
  machine,
  parseStat,
  procStatus,
} from "./lib/machine.mjs";
import { createRun, stopProc, waitFor } from "./lib/run.mjs";
import { pool } from "./lib/stamps.mjs";
import { median, round } from "./lib/stats.mjs";
import { threadTicks, ticksGrown, waitQuiet } from "./startup/control.mjs";
import { selfTimes, top } from "./startup/profile.mjs";

const USAGE = "usage: node bench/policies.mjs [--quick] [--rounds=N] [--cpu-prof]";
const RESULTS_DIR = path.join(ROOT, "bench/results");
const COUNT = 1000;
const LEVELS = 10;
const PROBED = 100;
const TREE_TARGET = 1.5;

function parseArgs(argv) {
  const opts = { quick: false, cpuProf: false };
  for (const arg of argv) {
    const [flag, value] = arg.split(/=(.*)/s);
    if (arg === "--quick") opts.quick = true;
    else if (arg === "--cpu-prof") opts.cpuProf = true;
    else if (flag === "--rounds" && /^[1-9]\d*$/.test(value ?? "")) opts.rounds = Number(value);
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument ${arg}\n${USAGE}\n`);
      process.exit(2);
    }
  }
  return {
    ...opts,
    rounds: opts.rounds ?? (opts.quick ? 1 : 3),
    concurrency: 50,
    idleSec: opts.quick ? 3 : 10,
    probeSec: opts.quick ? 5 : 20,
    settleTimeoutMs: opts.quick ? 5_000 : 10_000,
    startTimeoutMs: 120_000,
  };
}

const nowNs = () => process.hrtime.bigint();
const msSince = (t0) => Number(nowNs() - t0) / 1e6;
/** Wall-clock ms (the daemon's event times) of an hrtime `ns` of this process. */
const wallOf = (ns) => performance.timeOrigin + performance.now() - Number(nowNs() - ns) / 1e6;
const eventMs = (event) => Number(event.time.seconds) * 1000 + event.time.nanos / 1e6;

/** The specs of one variant: `count` sleepers, independent or in a tree of `LEVELS`. */
function specs(prefix, shape, count = COUNT) {
  const perLevel = count / LEVELS;
  const name = (level, i) => `${prefix}${level}-${String(i).padStart(3, "0")}`;
  const out = [];
  for (let level = 0; level < LEVELS; level++) {
    for (let i = 0; i < perLevel; i++) {
      const spec = { name: name(level, i), args: ["sleep", "100000"] };
      if (shape !== "indep" && level > 0) {
        spec.dependsOn = [name(level - 1, i)];
        if (i % 2 === 1) spec.dependsOn.push(name(level - 1, (i + 1) % perLevel));
      }
      out.push(spec);
    }
  }
  return shape === "treerev" ? out.reverse() : out;
}

/** A --config file of `list` (specs(), plus `ready` as written in YAML). */
function writeConfig(run, file, list) {
  const q = JSON.stringify;
  const lines = ["processes:"];
  for (const s of list) {
    lines.push(`  - name: ${s.name}`, `    args: [${s.args.map((a) => q(a)).join(", ")}]`);
    if (s.dependsOn) {
      const deps = s.dependsOn.map((d) => `{ name: ${d}, condition: started }`);
      lines.push(`    depends_on: [${deps.join(", ")}]`);
    }
    if (s.readyYaml) lines.push(`    ready: ${s.readyYaml}`);
  }
  const out = path.join(run.tmp, file);
  fs.writeFileSync(out, `${lines.join("\n")}\n`);
  return out;
}

/** The SDK spec of a specs() entry. */
const sdkSpec = (s) => ({
  name: s.name,
  args: s.args,
  dependsOn: (s.dependsOn ?? []).map((name) => ({ name, condition: DependencyCondition.STARTED })),
});

/**
 * Replays the daemon's events from seq 1 until every one of `names` has a `started` event:
 * the wall time of the last, and how many `waiting` events there were.
 */
async function lastStarted(client, names, timeoutMs) {
  const missing = new Set(names);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let last = 0;
  let first = Number.POSITIVE_INFINITY;
  let waiting = 0;
  try {
    for await (const ev of client.watchEvents(
      { afterSeq: 0n },
      { signal: ac.signal, timeoutMs: Number.POSITIVE_INFINITY },
    )) {
      if (ev.kind.case === "waiting") waiting++;
      if (ev.kind.case !== "started" || !missing.has(ev.process)) continue;
      missing.delete(ev.process);
      const at = eventMs(ev);
      if (at > last) last = at;
      if (at < first) first = at;
      if (missing.size === 0) break;
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  if (missing.size > 0) throw new Error(`${missing.size} of ${names.length} never started`);
  return { lastWall: last, firstWall: first, waiting };
}

/** Every process of `client` RUNNING (and ready, with `ready`), polled; how many there are. */
async function allRunning(client, count, timeoutMs, { ready = false } = {}) {
  return waitFor(
    async () => {
      const { processes } = await client.listProcesses({ timeoutMs: 10_000 });
      const ok = processes.filter((p) => p.state === State.RUNNING && (!ready || p.ready));
      return ok.length === count && processes.length === count ? processes : undefined;
    },
    timeoutMs,
    `${count} processes running${ready ? " and ready" : ""}`,
    ready ? 100 : 20,
  );
}

function daemonOptions(ctx, label, args) {
  const nodeArgs = [];
  if (ctx.profDir) {
    nodeArgs.push(
      "--cpu-prof",
      `--cpu-prof-dir=${ctx.profDir}`,
      `--cpu-prof-name=${label}.cpuprofile`,
    );
  }
  return { label, args, nodeArgs, children: COUNT, logLevel: "warn" };
}

/** SIGTERM, exit 0, and no shim left behind: the ms it took. */
async function stopDaemon(run, daemon, shim) {
  const stop = await stopProc(daemon.proc, 60_000);
  daemon.client.close();
  if (!stop.exited) throw new Error(`${daemon.label} did not exit within 60 s of SIGTERM`);
  if (stop.code !== 0) throw new Error(`${daemon.label} exited with ${stop.code}`);
  if (shim && alive(shim)) {
    await waitFor(() => !alive(shim), 5_000, `${daemon.label}'s shim ${shim} to exit`);
  }
  if (daemon.log.errors > 0)
    run.log(`${daemon.label}: ${daemon.log.errors} error lines in its log`);
  return stop.ms;
}

const tsMs = (t) => Number(t.seconds) * 1000 + t.nanos / 1e6;

/** How many processes have dependencies, and how many started before one of theirs. */
function checkOrder(processes) {
  const startedAt = new Map(processes.map((p) => [p.spec.name, tsMs(p.startedAt)]));
  let withDeps = 0;
  let early = 0;
  for (const p of processes) {
    const deps = p.spec.dependsOn ?? [];
    if (deps.length === 0) continue;
    withDeps++;
    if (deps.some((d) => startedAt.get(d.name) > startedAt.get(p.spec.name))) early++;
  }
  return { withDeps, startedBeforeADependency: early };
}

/** One start-up run: `shape` (indep | tree) by `how` (config | add). */
async function startup(ctx, shape, how, round) {
  const { run, cfg } = ctx;
  const prefix = `${{ indep: "i", tree: "t", treerev: "r" }[shape]}${how[0]}${round}-`;
  const label = `${shape}-${how}-r${round}`;
  const list = specs(prefix, shape);
  const names = list.map((s) => s.name);
  const load0 = loadavg();
  let daemon;
  let t0;
  let answeredMs;
  if (how === "config") {
    const config = writeConfig(run, `${label}.yaml`, list);
    daemon = await startProcmond(run, { ...daemonOptions(ctx, label, ["--config", config]) });
    t0 = daemon.startedAt;
  } else {
    daemon = await startProcmond(run, daemonOptions(ctx, label, []));
    await waitQuiet([daemon.proc.pid], 300, cfg.settleTimeoutMs);
    t0 = nowNs();
    await pool(list, cfg.concurrency, (s) => daemon.client.addProcess(sdkSpec(s)));
    answeredMs = msSince(t0);
  }
  const shim = daemon.shimPid();
  const { lastWall, firstWall, waiting } = await lastStarted(
    daemon.client,
    names,
    cfg.startTimeoutMs,
  );
  const t0Wall = wallOf(t0);
  const order = checkOrder(await allRunning(daemon.client, COUNT, 10_000));
  const startsMs = lastWall - t0Wall;
  const load1 = loadavg();
  const rssMB = procStatus(daemon.proc.pid).rssMB;
  const shutdownMs = await stopDaemon(run, daemon, shim);
  const lastNs = t0 + BigInt(Math.round(startsMs * 1e6));
  return {
    label,
    command: daemon.command,
    startsMs,
    firstStartMs: firstWall - t0Wall,
    answeredMs,
    waitingEvents: waiting,
    order,
    rssMB,
    shutdownMs,
    loadBefore: load0,
    loadAfter: load1,
    profile: ctx.profDir ? path.join(ctx.profDir, `${label}.cpuprofile`) : undefined,
    window: [String(t0), String(lastNs)],
  };
}

async function startupRounds(ctx) {
  const variants = ["indep-config", "tree-config", "treerev-config"];
  variants.push("indep-add", "tree-add", "treerev-add");
  const rounds = Object.fromEntries(variants.map((v) => [v, []]));
  for (let round = 0; round < ctx.cfg.rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const variant of order) {
      const [shape, how] = variant.split("-");
      const x = await startup(ctx, shape, how, round);
      rounds[variant].push(x);
      ctx.run.log(
        `round ${round + 1} ${variant}: ${x.startsMs.toFixed(0)} ms to ${COUNT} started` +
          ` (${x.waitingEvents} waiting events, ${x.order.startedBeforeADependency} of` +
          ` ${x.order.withDeps} with dependencies started before one, shutdown` +
          ` ${x.shutdownMs.toFixed(0)} ms, load ${x.loadBefore[0]} -> ${x.loadAfter[0]})`,
      );
    }
  }
  const med = (v) => median(rounds[v].map((x) => x.startsMs));
  const targets = [];
  for (const how of ["config", "add"]) {
    for (const tree of ["tree", "treerev"]) targets.push(target(how, tree));
  }
  return { rounds, targets };

  function target(how, tree) {
    const r = med(`${tree}-${how}`) / med(`indep-${how}`);
    const order = tree === "tree" ? "roots first" : "leaves first";
    return {
      figure: `1,000 started, 10-level tree (${order}) / independent (${how === "config" ? "--config" : "AddProcess"})`,
      variant: `${tree}-${how}`,
      treeMs: med(`${tree}-${how}`),
      indepMs: med(`indep-${how}`),
      ratio: r,
      target: TREE_TARGET,
      pass: r <= TREE_TARGET,
    };
  }
}

/** A daemon with `list` from a config, all RUNNING (and ready if probed), quiet if it can be. */
async function settledDaemon(ctx, label, list, ready) {
  const config = writeConfig(ctx.run, `${label}.yaml`, list);
  const daemon = await startProcmond(ctx.run, {
    label,
    args: ["--config", config],
    children: list.length,
  });
  await allRunning(daemon.client, list.length, 60_000, { ready });
  const shim = daemon.shimPid();
  if (!shim) throw new Error(`${label}: no procmon-shim child`);
  return { daemon, shim };
}

/** cutime + cstime of `pid`: the CPU of its children it has reaped. */
function reapedTicks(pid) {
  const { fields } = parseStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  return Number(fields[13]) + Number(fields[14]);
}

/** Part 2: 1,000 sleepers, no probes; CPU over the idle window once quiet. */
async function idle(ctx) {
  const list = specs("idle-", "indep");
  const { daemon, shim } = await settledDaemon(ctx, "idle", list, false);
  const pid = daemon.proc.pid;
  const settle = await waitQuiet([pid, shim], 500, ctx.cfg.settleTimeoutMs);
  const load0 = loadavg();
  const threads = threadTicks(pid);
  const [d, s] = await idleCpu([pid, shim], ctx.cfg.idleSec);
  const byThread = ticksGrown(threads, threadTicks(pid));
  const load1 = loadavg();
  const ticks = (c) => Math.round(c.cpuSec * CLK_TCK);
  const out = {
    command: daemon.command,
    processes: list.length,
    settle,
    wallSec: d.wallSec,
    daemonTicks: ticks(d),
    shimTicks: ticks(s),
    daemonTicksByThread: byThread,
    loadBefore: load0,
    loadAfter: load1,
  };
  out.shutdownMs = await stopDaemon(ctx.run, daemon, shim);
  out.pass = out.daemonTicks === 0 && out.shimTicks === 0;
  return out;
}

/** A loopback server for tcp probes: it accepts and closes, counting connections. */
async function probeServer(run) {
  const server = net.createServer((socket) => {
    server.accepted++;
    socket.destroy();
  });
  server.accepted = 0;
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  run.onCleanup(() => new Promise((resolve) => server.close(() => resolve())));
  return server;
}

/** Part 3, one variant: 100 sleepers with `probe` (none | exec | tcp), CPU once all ready. */
async function probes(ctx, probe, server) {
  const readyYaml = {
    none: undefined,
    exec: '{ exec: { args: ["true"] }, period: 1s }',
    tcp: `{ tcp: { host: 127.0.0.1, port: ${server.address().port} }, period: 1s }`,
  }[probe];
  const list = specs(`${probe}-`, "indep", PROBED).map((s) => ({ ...s, readyYaml }));
  const { daemon, shim } = await settledDaemon(ctx, `probes-${probe}`, list, true);
  const pid = daemon.proc.pid;
  // All ready: let the start-up's own work end (at most a few seconds), the probes go on.
  await waitQuiet([pid], 1_000, probe === "none" ? ctx.cfg.settleTimeoutMs : 3_000);
  const load0 = loadavg();
  const accepted0 = server.accepted;
  const reaped0 = reapedTicks(shim);
  const threads = threadTicks(pid);
  const [d, s] = await idleCpu([pid, shim], ctx.cfg.probeSec);
  const byThread = ticksGrown(threads, threadTicks(pid));
  const reaped = reapedTicks(shim) - reaped0;
  const accepted = server.accepted - accepted0;
  const load1 = loadavg();
  const runs = probe === "none" ? 0 : (PROBED * d.wallSec) / 1;
  const ticks = (c) => Math.round(c.cpuSec * CLK_TCK);
  const out = {
    probe,
    command: daemon.command,
    processes: PROBED,
    wallSec: d.wallSec,
    daemonTicks: ticks(d),
    daemonPctOfCore: d.pctOfOneCore,
    shimTicks: ticks(s),
    shimPctOfCore: s.pctOfOneCore,
    reapedChildTicks: reaped,
    daemonTicksByThread: byThread,
    expectedProbeRuns: runs,
    tcpConnectionsAccepted: probe === "tcp" ? accepted : undefined,
    daemonTicksPerProbe: runs ? ticks(d) / runs : undefined,
    shimTicksPerProbe: runs ? ticks(s) / runs : undefined,
    daemonRssMB: procStatus(pid).rssMB,
    loadBefore: load0,
    loadAfter: load1,
  };
  out.shutdownMs = await stopDaemon(ctx.run, daemon, shim);
  return out;
}

/** Top self-time functions of the tree variants' daemons over their start windows. */
function profileTops(rounds) {
  const tops = {};
  for (const [variant, runs] of Object.entries(rounds)) {
    const maps = [];
    for (const x of runs) {
      if (!x.profile || !fs.existsSync(x.profile)) continue;
      const window = x.window.map(BigInt);
      maps.push(selfTimes(x.profile, { starts: window }, ROOT).starts);
    }
    if (maps.length === 0) continue;
    const sum = new Map();
    for (const map of maps) for (const [k, v] of map) sum.set(k, (sum.get(k) ?? 0) + v);
    tops[variant] = top(sum, 15);
  }
  return tops;
}

const load = (x) => `load ${x.loadBefore[0]} -> ${x.loadAfter[0]}`;

function report(r) {
  const out = [];
  out.push(`start-up, median of ${r.config.rounds} round(s), ms from spawn / first call:`);
  for (const [variant, runs] of Object.entries(r.startup.rounds)) {
    const each = runs.map((x) => `${x.startsMs.toFixed(0)} (${load(x)})`).join(", ");
    const med = median(runs.map((x) => x.startsMs));
    out.push(`  ${variant.padEnd(13)} ${med.toFixed(0).padStart(6)} ms   rounds: ${each}`);
  }
  for (const t of r.startup.targets) {
    out.push(
      `  ${t.figure}: ${t.ratio.toFixed(2)}x (${t.treeMs.toFixed(0)} / ${t.indepMs.toFixed(0)} ms), target <= ${t.target}x: ${t.pass ? "PASS" : "MISS"}`,
    );
  }
  const i = r.idle;
  out.push(
    `idle, ${i.processes} sleepers, ${i.wallSec.toFixed(1)} s: daemon ${i.daemonTicks} ticks, shim ${i.shimTicks} ticks (${load(i)}); target 0: ${i.pass ? "PASS" : "MISS"}`,
  );
  if (i.daemonTicks > 0) out.push(`  by thread: ${JSON.stringify(i.daemonTicksByThread)}`);
  for (const p of r.probes) {
    const per =
      p.daemonTicksPerProbe === undefined
        ? ""
        : `, ${p.daemonTicksPerProbe.toFixed(3)} / ${p.shimTicksPerProbe.toFixed(3)} ticks per probe run`;
    const tcp =
      p.tcpConnectionsAccepted === undefined ? "" : `, ${p.tcpConnectionsAccepted} connects`;
    out.push(
      `probes ${p.probe.padEnd(4)} ${p.processes} x ${p.wallSec.toFixed(1)} s: daemon ${p.daemonTicks} ticks (${p.daemonPctOfCore.toFixed(2)}% of a core), shim ${p.shimTicks} ticks (${p.shimPctOfCore.toFixed(2)}%), reaped children ${p.reapedChildTicks} ticks${per}${tcp} (${load(p)})`,
    );
  }
  if (r.profiles) {
    out.push(`CPU profiles in ${r.profiles.dir} (self time, busy ms, start windows):`);
    for (const [variant, t] of Object.entries(r.profiles.tops)) {
      out.push(`  ${variant}: busy ${t.busyMs.toFixed(0)} ms, idle ${t.idleMs.toFixed(0)} ms`);
      for (const row of t.rows.slice(0, 10)) {
        out.push(
          `    ${row.ms.toFixed(0).padStart(6)} ms ${row.pct.toFixed(1).padStart(5)}%  ${row.fn}`,
        );
      }
    }
  }
  return out.join("\n");
}

const cfg = parseArgs(process.argv.slice(2));
const run = createRun("policies");
await run.main(async () => {
  const t0 = Date.now();
  const r = { startedAt: new Date().toISOString(), config: cfg, machine: machine() };
  const stamp = r.startedAt.replace(/[-:]/g, "").slice(0, 15);
  const profDir = cfg.cpuProf ? path.join(RESULTS_DIR, `policies-prof-${stamp}`) : undefined;
  if (profDir) fs.mkdirSync(profDir, { recursive: true });
  const ctx = { run, cfg, profDir };
  r.startup = await startupRounds(ctx);
  if (profDir)
    r.profiles = { dir: path.relative(ROOT, profDir), tops: profileTops(r.startup.rounds) };
  r.idle = await idle(ctx);
  run.log(`idle: daemon ${r.idle.daemonTicks} ticks, shim ${r.idle.shimTicks} ticks`);
  const server = await probeServer(run);
  r.probes = [];
  for (const probe of ["none", "exec", "tcp"]) {
    const p = await probes(ctx, probe, server);
    r.probes.push(p);
    run.log(`probes ${probe}: daemon ${p.daemonTicks} ticks, shim ${p.shimTicks} ticks`);
  }
  r.machine.loadAvgAtEnd = loadavg();
  r.durationSec = (Date.now() - t0) / 1000;
  const text = report(r);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const name = `policies${cfg.quick ? "-quick" : ""}${cfg.cpuProf ? "-cpu-prof" : ""}.json`;
  const file = path.join(RESULTS_DIR, name);
  fs.writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  process.stdout.write(
    `\n${text}\n\nresults: ${path.relative(ROOT, file)} (${round(r.durationSec, 0)} s)\n`,
  );
});
