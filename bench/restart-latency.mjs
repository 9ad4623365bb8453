#!/usr/bin/env node
// procmond benchmark: restart latency of a SIGKILLed child, as ratios between supervisors
// measured side by side in one run (issue 11), at 10 and at 1,000 processes per supervisor.
//
//   npm run build
//   node bench/restart-latency.mjs [--quick] [--prev=DIR] [--cpu-prof] [--daemon-node-arg=ARG]...
//
//   --quick        smoke run: 30 restarts per variant, at 10 and 100 processes (under a minute)
//   --prev=DIR     also run the procmond of the checkout DIR (built), e.g. /work/prev10
//   --cpu-prof     run the daemons under node --cpu-prof; the profiles are kept in
//                  bench/results/prof/restart-latency-<time>/ and their top self time printed
//   --daemon-node-arg=ARG  pass ARG to every daemon's node (repeatable). Without it the daemons
//                  run as `node procmond.js`, with no V8 flag
//
// The variants (bench/restart/variants.mjs) all keep their children alive at once: native
// (bench/native-parent.c, the floor), baseline (bench/baseline-parent.mjs, a bare Node parent),
// shim (procmond --spawner shim), node (procmond --spawner node) and, with --prev, prev. Every
// daemon runs with --threshold 1ms and its state file in the run's temp dir.
//
// A restart's latency is measured by the children themselves: bench/stamp.c reads
// CLOCK_MONOTONIC as its first instruction and writes it to a FIFO (bench/lib/stamps.mjs);
// latency = that stamp - process.hrtime.bigint() just before the SIGKILL. Each round kills one
// child of every variant, one kill at a time, in an order shuffled each round, so that the
// machine's noise falls on each alike (bench/restart/kills.mjs). The report gives p50 and p99 per
// variant and the ratios of issue 11 with a bootstrap 95% interval (bench/restart/targets.mjs);
// at the largest scale also each daemon's RSS (and its shim's) and ListProcesses latency.
// Start-up time, memory of an empty daemon and idle CPU are bench/startup.mjs's.
//
// Output: a table on stdout, JSON in bench/results/restart-latency.json (-quick with --quick;
// --cpu-prof and --daemon-node-arg runs get their own suffix). A full run (800 rounds) should
// take about 5 min on a quiet 2-core machine, a quick one under 30 s. Everything it starts is stopped, by pid, and its temp dir removed, also on error and
// on SIGINT/SIGTERM (bench/lib/run.mjs).

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./lib/daemon.mjs";
import { loadavg, machine } from "./lib/machine.mjs";
import { createRun } from "./lib/run.mjs";
import { openStamps } from "./lib/stamps.mjs";
import { listLatency, memory } from "./restart/footprint.mjs";
import { killRounds } from "./restart/kills.mjs";
import { parseArgs, sizes, USAGE, UsageError } from "./restart/options.mjs";
import { profileArgs, profileRoot, topSelfTime } from "./restart/profile.mjs";
import { report } from "./restart/report.mjs";
import { evaluate, ratios } from "./restart/targets.mjs";
import { startVariants, stopVariants, variantLabels } from "./restart/variants.mjs";

const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`restart-latency: ${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const cfg = sizes(options.quick);
const labels = variantLabels(options.prevDir);
const profDir = options.cpuProf ? profileRoot(RESULTS_DIR) : undefined;

/** The node flags of daemon `label` at `scale`: --daemon-node-arg's, then --cpu-prof's. */
const nodeArgs = (label, scale) => [
  ...options.daemonNodeArgs,
  ...(profDir ? profileArgs(profDir, `${label}-${scale}`) : []),
];

/** The short commit of the checkout `dir`, or undefined if it is no git checkout. */
function commitOf(dir) {
  try {
    const git = (args) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" }).trim();
    const dirty = git(["status", "--porcelain", "--untracked-files=no"]) !== "";
    return `${git(["rev-parse", "--short", "HEAD"])}${dirty ? " (modified)" : ""}`;
  } catch {
    return undefined;
  }
}

/** Each daemon's log tally (warnings, errors, and its last lines if it logged either). */
function daemonLogs(variants) {
  return Object.fromEntries(
    variants
      .filter((v) => v.daemon)
      .map(({ label, daemon: { log } }) => [
        label,
        {
          warnings: log.warnings,
          errors: log.errors,
          ...(log.warnings + log.errors > 0 ? { tail: log.tail.slice(-10) } : {}),
        },
      ]),
  );
}

/** Everything measured at `scale` processes per variant; the footprint at the `largest` only. */
async function measureScale(run, board, scale, largest) {
  run.log(`${scale} processes per variant: starting ${labels.join(", ")}`);
  const out = { scale, loadAvgAtStart: loadavg() };
  const variants = await startVariants(run, board, labels, scale, {
    prevDir: options.prevDir,
    nodeArgs,
    concurrency: cfg.concurrency,
  });
  out.commands = Object.fromEntries(variants.map((v) => [v.label, v.command]));
  if (largest) {
    out.memoryIdle = memory(variants);
    run.log(`ListProcesses x ${cfg.listCalls} per daemon`);
    out.list = await listLatency(variants, cfg.listCalls);
  }
  run.log(`${cfg.warmup} + ${cfg.rounds} kill rounds at ${scale}`);
  out.restarts = await killRounds(run, board, variants, cfg);
  if (largest) out.memoryAfter = memory(variants);
  out.logs = daemonLogs(variants);
  await stopVariants(board, variants);
  if (profDir) {
    out.profiles = Object.fromEntries(
      variants
        .filter((v) => v.daemon)
        .map((v) => [v.label, topSelfTime(path.join(profDir, `${v.label}-${scale}`))]),
    );
  }
  out.loadAvgAtEnd = loadavg();
  return out;
}

/** bench/results/restart-latency[-quick][-flags].json: variants never overwrite a plain run. */
function resultsFile() {
  const variant = [...options.daemonNodeArgs, ...(options.cpuProf ? ["cpu-prof"] : [])]
    .map((a) => a.replace(/^-+/, "").replace(/[^A-Za-z0-9.]+/g, "-"))
    .join("_");
  const name = `restart-latency${options.quick ? "-quick" : ""}${variant ? `-${variant}` : ""}`;
  return path.join(RESULTS_DIR, `${name}.json`);
}

/** `r` as JSON: samples rounded to the µs. */
function writeResults(r) {
  const file = resultsFile();
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const replacer = (key, v) =>
    key === "byRound" ? v.map((ms) => (ms === null ? null : Math.round(ms * 1000) / 1000)) : v;
  fs.writeFileSync(file, `${JSON.stringify(r, replacer, 2)}\n`);
  return file;
}

const run = createRun("restart-latency");
await run.main(async () => {
  const t0 = Date.now();
  const r = {
    quick: options.quick,
    startedAt: new Date().toISOString(),
    options: { ...options, help: undefined },
    sizes: cfg,
    machine: machine(),
    code: { head: commitOf(ROOT), ...(options.prevDir ? { prev: commitOf(options.prevDir) } : {}) },
  };
  const board = openStamps(run);
  r.stampLink = board.link;
  r.scales = [];
  for (const scale of cfg.scales) {
    r.scales.push(await measureScale(run, board, scale, scale === cfg.scales.at(-1)));
  }
  r.ratios = ratios(r.scales, cfg.resamples);
  r.targets = evaluate(r.ratios, cfg.scales);
  r.machine.loadAvgAtEnd = loadavg();
  r.durationSec = Math.round((Date.now() - t0) / 1000);
  process.stdout.write(`\n${report(r)}\n`);
  const file = writeResults(r);
  process.stdout.write(`\nresults: ${path.relative(ROOT, file)} (${r.durationSec} s)\n`);
  if (profDir) process.stdout.write(`profiles: ${path.relative(ROOT, profDir)}\n`);
});
