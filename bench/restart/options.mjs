// The command line of bench/restart-latency.mjs and the sizes of a full and a quick run.

import fs from "node:fs";
import path from "node:path";

export const USAGE = `usage: node bench/restart-latency.mjs [--quick] [--prev=DIR] [--cpu-prof] [--daemon-node-arg=ARG]...
  --quick                 smoke run: 30 restarts per variant, 10 and 100 processes (under a minute)
  --prev=DIR              also run DIR's procmond (another checkout, built) as "prev"
  --cpu-prof              run the daemons under node --cpu-prof; profiles kept in bench/results/prof/
  --daemon-node-arg=ARG   pass ARG to every daemon's node (repeatable), after the deployed
                          --max-semi-space-size=4 (a later V8 flag wins), e.g. --max-semi-space-size=16
  -h, --help              show this help`;

/** A usage error: main prints its message and the usage, and exits 2. */
export class UsageError extends Error {}

/** The options in `argv` (without node and the script); throws UsageError on anything else. */
export function parseArgs(argv) {
  const options = { quick: false, prevDir: undefined, cpuProf: false, daemonNodeArgs: [] };
  for (const arg of argv) {
    const [flag, value] = arg.includes("=") ? splitOnce(arg) : [arg, undefined];
    if (flag === "--quick" && value === undefined) options.quick = true;
    else if (flag === "--cpu-prof" && value === undefined) options.cpuProf = true;
    else if (flag === "--help" || flag === "-h") options.help = true;
    else if (flag === "--prev") options.prevDir = prevDir(value);
    else if (flag === "--daemon-node-arg") {
      if (!value) throw new UsageError("--daemon-node-arg needs a value: --daemon-node-arg=ARG");
      options.daemonNodeArgs.push(value);
    } else throw new UsageError(`unknown argument: ${arg}`);
  }
  return options;
}

function splitOnce(arg) {
  const i = arg.indexOf("=");
  return [arg.slice(0, i), arg.slice(i + 1)];
}

/** DIR of --prev=DIR, resolved, once its built procmond is there. */
function prevDir(value) {
  if (!value) throw new UsageError("--prev needs a directory: --prev=DIR");
  const dir = path.resolve(value);
  const bin = prevBin(dir);
  if (!fs.existsSync(bin)) throw new UsageError(`--prev=${value}: no ${bin}`);
  if (!fs.existsSync(path.join(dir, "packages/daemon/dist/main.js"))) {
    throw new UsageError(`--prev=${value}: not built (no packages/daemon/dist/main.js)`);
  }
  return dir;
}

/** The procmond.js of the checkout `dir`. */
export function prevBin(dir) {
  return path.join(dir, "packages/daemon/bin/procmond.js");
}

/**
 * How much a run does. `scales` are the processes per variant; each scale runs `warmup` rounds
 * and then `rounds` measured rounds, one kill per variant per round, `killTargets` of each
 * variant's processes killed in turn (the others idle), `gapMs` (plus up to `jitterMs`) before
 * each kill. `listCalls` ListProcesses per daemon at the largest scale; `concurrency` AddProcess
 * calls in flight while filling a daemon; `resamples` for the bootstrap intervals.
 */
export function sizes(quick) {
  const common = { killTargets: 3, gapMs: 10, jitterMs: 5, concurrency: 50, resamples: 2000 };
  return quick
    ? { ...common, scales: [10, 100], rounds: 30, warmup: 5, listCalls: 50 }
    : { ...common, scales: [10, 1000], rounds: 800, warmup: 20, listCalls: 200 };
}
