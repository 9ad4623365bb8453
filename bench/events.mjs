#!/usr/bin/env node
// procmond benchmark: WatchEvents fan-out, a stuck subscriber and output throughput, once per
// spawner (issue 11), and optionally against another build (issue 10's "within noise").
//
//   npm run build
//   node bench/events.mjs [--quick] [--spawner=shim,node] [--prev=DIR] [--daemon=BIN]
//                         [--only=fanout,slow,throughput] [--fanout=storm,calm,light]
//                         [--cpu-prof] [--cpu-prof-dir=DIR] [--daemon-node-args="ARGS"] [--out=FILE]
//
// (node bench/events.mjs --help explains each flag.) The scenarios, each with a fresh daemon per
// variant (--no-state-file, --log-level info, its stdout on /dev/null or a file, never through
// this script), variants taking turns in an order reversed at each step:
//   fanout      100 subscribers in 2 worker processes while restarters and printers run, at the
//               loads storm, calm, light (bench/events/fanout.mjs)
//   slow        a stuck subscriber beside a fast one (bench/events/slow.mjs)
//   throughput  a child's output to no and to one subscriber against /dev/null, and the highest
//               paced rate one subscriber follows (bench/events/throughput.mjs, sweep.mjs)
// Subscribers decode with a minimal decoder checked against protobuf-es (bench/events/decoder*).
//
// The report: a table of every figure and check per variant; issue 11's targets per spawner
// (fan-out delivery p99 <= 50 ms calm, <= 250 ms storm; output to one subscriber, shim >= 5x
// node); with --prev, the current-node/prev ratios. The JSON (bench/results/events.json, or
// events-quick.json with --quick) holds them with the load average at start and end and every
// daemon's command line. A quick run takes about 30 s per variant on a 2-core machine; a full
// one, going by its sizes (none was run yet), 4-5 min per variant. Everything it starts is
// stopped by pid and its temp dir removed, also on error and on SIGINT/SIGTERM
// (bench/lib/run.mjs; daemon children left by a daemon that did not stop are found by a marker
// in their environment).

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { createChildren } from "./events/children.mjs";
import { fanout } from "./events/fanout.mjs";
import { loadsOf, parseArgs, sizes, USAGE, UsageError } from "./events/options.mjs";
import { profileDir, summariseProfiles } from "./events/profile.mjs";
import { printDetails, printTargets } from "./events/report.mjs";
import { slow } from "./events/slow.mjs";
import {
  CHECKS,
  issue11Rows,
  P99_TARGET_MS,
  prevRatios,
  SHIM_OVER_NODE,
} from "./events/targets.mjs";
import { baselines, throughput } from "./events/throughput.mjs";
import { variantsOf } from "./events/variants.mjs";
import { ROOT } from "./lib/daemon.mjs";
import { loadavg, machine } from "./lib/machine.mjs";
import { createRun } from "./lib/run.mjs";
import { round } from "./lib/stats.mjs";

const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");

function usage(message) {
  process.stderr.write(`events: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let options;
let variants;
try {
  options = parseArgs(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  variants = variantsOf(options);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  usage(err.message);
}

/** `variants` in turn, the order reversed at every other step, so drift falls on each alike. */
let step = 0;
const inTurn = () => (step++ % 2 === 0 ? variants : [...variants].reverse());

async function runScenarios(ctx, results) {
  if (options.scenarios.includes("fanout")) {
    results.fanout = {};
    for (const load of loadsOf(options)) {
      results.fanout[load.label] = {};
      for (const v of inTurn()) results.fanout[load.label][v.label] = await fanout(ctx, v, load);
    }
  }
  if (options.scenarios.includes("slow")) {
    results.slow = {};
    for (const v of inTurn()) results.slow[v.label] = await slow(ctx, v);
  }
  if (options.scenarios.includes("throughput")) {
    results.baseline = await baselines(ctx);
    results.throughput = {};
    for (const v of inTurn())
      results.throughput[v.label] = await throughput(ctx, v, results.baseline);
  }
}

function gitHead() {
  try {
    const git = (args) =>
      execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: "pipe" }).trim();
    return {
      head: git(["rev-parse", "--short", "HEAD"]),
      dirty: git(["status", "--short", "--", "packages"]).split("\n").filter(Boolean),
    };
  } catch {
    return undefined;
  }
}

function header(ctx) {
  return {
    date: new Date().toISOString(),
    quick: options.quick,
    command: `node bench/events.mjs ${process.argv.slice(2).join(" ")}`.trim(),
    machine: machine(),
    build: gitHead(),
    variants,
    ...(options.prevDir ? { prevDir: options.prevDir } : {}),
    daemons: ctx.daemons,
    daemonStdout: "/dev/null, and a file in the temp dir for the full run's throughput runs",
    targets: {
      issue11: { deliveryP99Ms: P99_TARGET_MS, shimOverNodeThroughput: SHIM_OVER_NODE },
      checks: CHECKS,
    },
    config: ctx.cfg,
  };
}

/** Fills in the end of `results`, writes the JSON and prints the tables. */
function finish(ctx, results, t0) {
  results.machine.loadAvgAtEnd = loadavg();
  results.durationSec = round((performance.now() - t0) / 1000, 1);
  if (ctx.profDir) results.profiles = summariseProfiles(ctx.profDir, ctx.run.log);
  if (!results.error) {
    results.issue11 = issue11Rows(results, variants);
    results.prevRatios = prevRatios(results, variants);
  }
  const file =
    options.out ?? path.join(RESULTS_DIR, options.quick ? "events-quick.json" : "events.json");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  if (!results.error) {
    printDetails(results, variants);
    printTargets(results);
  }
  ctx.run.log(
    `results in ${path.relative(process.cwd(), file)} (${results.durationSec} s)${ctx.profDir ? `; profiles in ${ctx.profDir}` : ""}`,
  );
}

const run = createRun("events");
await run.main(async () => {
  const t0 = performance.now();
  const ctx = { run, options, cfg: sizes(options.quick), daemons: [] };
  if (options.cpuProf) ctx.profDir = profileDir(options);
  const results = header(ctx);
  run.log(
    `variants: ${variants.map((v) => `${v.label} (${v.bin}${v.spawner ? ` --spawner ${v.spawner}` : ""})`).join(", ")}`,
  );
  try {
    ctx.kit = createChildren(run);
    await runScenarios(ctx, results);
  } catch (err) {
    results.error = String(err.stack ?? err);
    throw err;
  } finally {
    finish(ctx, results, t0);
  }
});
