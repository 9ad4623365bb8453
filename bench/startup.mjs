#!/usr/bin/env node
// procmond start-up and footprint (issue 11), against the native floor measured in the same run.
//
//   npm run build && node bench/startup.mjs [--quick] [--rounds=N] [--count=N] [--cpu-prof]
//                                           [--spawner=shim,node]
//
// --quick       one round, a 3 s idle window (under ~90 s); default 3 rounds, 10 s (~5-8 min)
// --rounds=N    rounds; each runs every variant once, in an order rotated round by round
// --count=N     processes per start (1000)
// --spawner=L   the daemon's spawners to measure, comma-separated (shim,node)
// --cpu-prof    run every daemon under `node --cpu-prof` (profiles kept in a dir named in the
//               output) and print the top self-time functions behind each missed target
//
// Every child is bench/stamp.c, which writes CLOCK_MONOTONIC to a FIFO as its first instruction
// (bench/lib/stamps.mjs). The variants of a round:
//   native         bench/native-parent.c posix_spawns COUNT stamps: spawn -> the last stamp
//   SPAWNER-add    procmond started empty; COUNT AddProcess, 50 in flight: first call -> last
//                  stamp. Then, idle: the daemon's VmRSS against its own when empty, the shim's,
//                  V8's heapUsed (before and after a full GC), and CPU ticks of both over the
//                  idle window with no client calls
//   SPAWNER-config procmond with a --config of COUNT: spawn -> last stamp, spawn -> the first
//                  net.connect to its socket, spawn -> the first ListProcesses answer
// Event-loop delay inside the daemon is read by bench/startup/eld-probe.mjs, preloaded with
// `node --import`, over exactly the starts (from the first call, or the first connect, to the
// last stamp), and off otherwise.
// Results: a table on stdout, JSON in bench/results/startup.json (startup-quick.json with
// --quick, -cpu-prof added when profiling). Everything started is stopped and the temp dir
// removed, also on error and on SIGINT/SIGTERM.

import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./lib/daemon.mjs";
import { loadavg, machine } from "./lib/machine.mjs";
import { createRun } from "./lib/run.mjs";
import { openStamps } from "./lib/stamps.mjs";
import { formatTops, profileTops } from "./startup/profile.mjs";
import { evaluate, formatReport } from "./startup/report.mjs";
import { runAdd, runConfig, runNative } from "./startup/variants.mjs";

const USAGE =
  "usage: node bench/startup.mjs [--quick] [--rounds=N] [--count=N] [--cpu-prof] [--spawner=shim,node]";
const RESULTS_DIR = path.join(ROOT, "bench/results");

function usageError(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function positive(value, flag) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usageError(`${flag} needs a positive integer, not ${value}`);
  return n;
}

/** The run's configuration from argv; exits 2 on anything unknown. */
function parseArgs(argv) {
  const opts = { quick: false, cpuProf: false, spawners: ["shim", "node"], count: 1000 };
  for (const arg of argv) {
    const [flag, value] = arg.split(/=(.*)/s);
    if (arg === "--quick") opts.quick = true;
    else if (arg === "--cpu-prof") opts.cpuProf = true;
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (flag === "--rounds" && value !== undefined) opts.rounds = positive(value, flag);
    else if (flag === "--count" && value !== undefined) opts.count = positive(value, flag);
    else if (flag === "--spawner" && value !== undefined) {
      opts.spawners = [...new Set(value.split(","))];
      const bad = opts.spawners.find((s) => s !== "shim" && s !== "node");
      if (bad !== undefined) usageError(`unknown spawner "${bad}" (shim, node)`);
    } else usageError(`unknown argument ${arg}`);
  }
  return {
    ...opts,
    rounds: opts.rounds ?? (opts.quick ? 1 : 3),
    concurrency: 50,
    idleSec: opts.quick ? 3 : 10,
    settleTimeoutMs: opts.quick ? 5_000 : 10_000,
    stampTimeoutMs: 120_000,
  };
}

/** One variant's run in round `round`. */
function runVariant(ctx, variant, round) {
  if (variant === "native") return runNative(ctx, `n${round}-`);
  const [spawner, kind] = variant.split("-");
  const prefix = `${spawner[0]}${kind[0]}${round}-`;
  const label = `${variant}-r${round}`;
  return kind === "add"
    ? runAdd(ctx, spawner, prefix, label)
    : runConfig(ctx, spawner, prefix, label);
}

/** Every round, the variants in an order rotated by one each round: r.rounds[variant][i]. */
async function runRounds(ctx, r) {
  const variants = ["native", ...r.config.spawners.flatMap((s) => [`${s}-add`, `${s}-config`])];
  r.rounds = Object.fromEntries(variants.map((v) => [v, []]));
  for (let round = 0; round < r.config.rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const variant of order) {
      const x = await runVariant(ctx, variant, round);
      r.rounds[variant].push(x);
      const more = x.connectMs === undefined ? "" : `, connect ${x.connectMs.toFixed(0)} ms`;
      const eld = x.eld ? `, event-loop p99 ${x.eld.p99.toFixed(1)} ms` : "";
      ctx.run.log(`round ${round + 1} ${variant}: ${x.startsMs.toFixed(0)} ms${eld}${more}`);
    }
  }
  r.daemons = Object.fromEntries(variants.map((v) => [v, r.rounds[v][0].command]));
}

function resultsFile(cfg) {
  const name = `startup${cfg.quick ? "-quick" : ""}${cfg.cpuProf ? "-cpu-prof" : ""}.json`;
  return path.join(RESULTS_DIR, name);
}

const cfg = parseArgs(process.argv.slice(2));
const run = createRun("startup");
await run.main(async () => {
  const t0 = Date.now();
  const r = { startedAt: new Date().toISOString(), config: cfg, machine: machine() };
  const board = openStamps(run);
  r.stampLink = board.link;
  const stamp = r.startedAt.replace(/[-:]/g, "").slice(0, 15);
  const profDir = cfg.cpuProf ? path.join(RESULTS_DIR, `startup-prof-${stamp}`) : undefined;
  if (profDir) fs.mkdirSync(profDir, { recursive: true });
  await runRounds({ run, board, cfg, profDir }, r);
  r.machine.loadAvgAtEnd = loadavg();
  evaluate(r);
  let text = formatReport(r);
  if (profDir) {
    r.profiles = { dir: path.relative(ROOT, profDir), tops: profileTops(r.rounds, ROOT) };
    text += `\n\n${formatTops(r.profiles.tops, r.targets, r.profiles.dir)}`;
  }
  r.durationSec = (Date.now() - t0) / 1000;
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = resultsFile(cfg);
  fs.writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  process.stdout.write(
    `\n${text}\n\nresults: ${path.relative(ROOT, file)} (${r.durationSec.toFixed(0)} s)\n`,
  );
});
