// The command line of bench/events.mjs and the sizes of a full and a quick run.

import fs from "node:fs";
import path from "node:path";

export const USAGE = `usage: node bench/events.mjs [--quick] [--spawner=LIST] [--prev=DIR] [--daemon=BIN]
         [--only=fanout,slow,throughput] [--fanout=storm,calm,light] [--cpu-prof] [--cpu-prof-dir=DIR]
         [--daemon-node-args="ARGS"] [--out=FILE]
  --quick           reduced run (storm and calm fan-out at half load for 2 s, short bursts, 3 MB
                    throughput runs); indicative figures only
  --spawner=LIST    run every scenario once per spawner: shim, node (default: shim)
  --prev=DIR        also run DIR's procmond (a built checkout, e.g. /work/prev10; no --spawner
                    flag) and report current-node/prev ratios; adds node to --spawner
  --daemon=BIN      run BIN instead of this build's procmond (for a build without --spawner,
                    leave out --spawner: it runs once, as "default")
  --only=LIST       run only these scenarios;  --fanout=LIST  only these fan-out loads
  --cpu-prof        run every daemon under node --cpu-prof into --cpu-prof-dir (default: a new
                    temp dir, kept); the top self-time functions go to the JSON
  --daemon-node-args="ARGS"  node options for every daemon (e.g. "--max-semi-space-size=4")
  --out=FILE        the JSON (default bench/results/events.json, events-quick.json with --quick)`;

/** A usage error: the entry prints it with the usage and exits 2. */
export class UsageError extends Error {}

/** The procmond.js of the checkout `dir`. */
export function prevBin(dir) {
  return path.join(dir, "packages/daemon/bin/procmond.js");
}

const SCENARIOS = ["fanout", "slow", "throughput"];
const LOADS = ["storm", "calm", "light"];
const SPAWNERS = ["shim", "node"];

function listOf(flag, value, allowed) {
  const list = (value ?? "").split(",").filter(Boolean);
  const bad = list.filter((x) => !allowed.includes(x));
  if (list.length === 0 || bad.length > 0) {
    throw new UsageError(`${flag}=${value ?? ""}: expected a list of ${allowed.join(", ")}`);
  }
  return [...new Set(list)];
}

function prevDirOf(value) {
  if (!value) throw new UsageError("--prev needs a directory: --prev=DIR");
  const dir = path.resolve(value);
  if (!fs.existsSync(prevBin(dir))) throw new UsageError(`--prev=${value}: no ${prevBin(dir)}`);
  return dir;
}

const FLAGS = {
  "--spawner": (o, v) => {
    o.spawners = listOf("--spawner", v, SPAWNERS);
    o.spawnersGiven = true;
  },
  "--prev": (o, v) => {
    o.prevDir = prevDirOf(v);
  },
  "--daemon": (o, v) => {
    if (!v || !fs.existsSync(v)) throw new UsageError(`--daemon=${v ?? ""}: no such file`);
    o.daemonBin = path.resolve(v);
  },
  "--only": (o, v) => {
    o.only = listOf("--only", v, SCENARIOS);
  },
  "--fanout": (o, v) => {
    o.loads = listOf("--fanout", v, LOADS);
  },
  "--cpu-prof-dir": (o, v) => {
    o.profDir = path.resolve(v);
  },
  "--daemon-node-args": (o, v) => {
    o.daemonNodeArgs = (v ?? "").split(" ").filter(Boolean);
  },
  "--out": (o, v) => {
    o.out = path.resolve(v);
  },
};

/** The options in `argv` (without node and the script); throws UsageError on anything else. */
export function parseArgs(argv) {
  const o = { quick: false, cpuProf: false, spawners: ["shim"], daemonNodeArgs: [] };
  for (const arg of argv) {
    const i = arg.indexOf("=");
    const [flag, value] = i === -1 ? [arg, undefined] : [arg.slice(0, i), arg.slice(i + 1)];
    if (flag === "--quick" && value === undefined) o.quick = true;
    else if (flag === "--cpu-prof" && value === undefined) o.cpuProf = true;
    else if (flag === "--help" || flag === "-h") o.help = true;
    else if (FLAGS[flag] && value !== undefined) FLAGS[flag](o, value);
    else throw new UsageError(`unknown argument: ${arg}`);
  }
  o.scenarios = SCENARIOS.filter((s) => !o.only || o.only.includes(s));
  return o;
}

// Fan-out loads. "storm" is the issue's: 50 `sh -c 'sleep 0.05; exit 0'` restarting at once;
// with the Node spawner a spawn blocks the daemon's loop for 10-40 ms (fork of a ~100 MB
// process), so the storm saturates it on its own. "calm" keeps the restarters and printers but
// with 5 s lives (~10 restarts/s), the delivery path without the spawn cost; "light" also prints
// 5x less, to see whether 100 subscribers keep up at a lower event rate.
const LOAD_SHAPES = {
  storm: { restartSleep: "0.05", printerRate: 100 },
  calm: { restartSleep: "5", printerRate: 100 },
  light: { restartSleep: "5", printerRate: 20 },
};

/** The fan-out loads a run measures: --fanout's, else storm and calm (quick) or all three. */
export function loadsOf(options) {
  const labels = options.loads ?? (options.quick ? ["storm", "calm"] : LOADS);
  return labels.map((label) => ({ label, ...LOAD_SHAPES[label] }));
}

/**
 * How much a run does (full or --quick). The stuck subscriber of `slow` is ended once it lags by
 * half the daemon's output window (24 MiB estimated: about 40,000 lines of 100 B), plus what its
 * HTTP/2 window and the socket hold: each run of it writes well over 50,000 lines.
 */
export function sizes(quick) {
  const fanout = {
    workers: 2,
    conns: 10,
    perConn: 10,
    restarters: 50,
    printers: 10,
    printerBytes: 64,
  };
  if (quick) {
    return {
      fanout: { ...fanout, restarters: 25, printers: 5, windowSec: 2, warmupSec: 0.5 },
      slow: { lines: 100_000, rounds: ["without", "with"], pacedRate: 12_000, pacedSec: 5 },
      throughput: {
        mb: 3,
        baselineRepeats: 3,
        repeats: 1,
        sinks: ["null"],
        sweepSec: 1,
        rates: { 100: [2_000], 1024: [1_000] },
      },
    };
  }
  return {
    fanout: { ...fanout, windowSec: 20, warmupSec: 2 },
    slow: {
      lines: 500_000,
      rounds: ["without", "with", "with", "without", "without", "with"],
      pacedRate: 5_000,
      pacedSec: 16,
    },
    throughput: {
      mb: 30,
      baselineRepeats: 3,
      repeats: 2,
      sinks: ["null", "file"],
      sweepSec: 3,
      rates: {
        100: [2_000, 5_000, 10_000, 20_000, 40_000, 80_000],
        1024: [1_000, 2_000, 5_000, 10_000, 20_000],
      },
    },
  };
}
