// The supervisors whose restarts are timed, each keeping `scale` stamp children alive:
//   native    bench/native-parent.c: posix_spawn from a waitpid(-1) loop, the floor
//   baseline  bench/baseline-parent.mjs: a bare Node parent, child_process.spawn on 'exit'
//   shim      procmond --spawner shim (procmon-shim spawns and reaps)
//   node      procmond --spawner node (the daemon forks its children itself)
//   prev      the procmond of another checkout (--prev=DIR), as it runs by default
// Each daemon runs with --threshold 1ms (so that every SIGKILL is restarted at once, with no
// backoff), its state file in the run's temp dir, and no node flags but --daemon-node-arg's.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startProcmond } from "../lib/daemon.mjs";
import { withFdLimit } from "../lib/machine.mjs";
import { exited, stopProc } from "../lib/run.mjs";
import { names, pool } from "../lib/stamps.mjs";
import { prevBin } from "./options.mjs";

const BASELINE_PARENT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../baseline-parent.mjs",
);
const ADD_TIMEOUT_MS = 60_000;
const STAMPED_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 60_000;

/** The variants to run, in start order: `prevDir` adds "prev". */
export function variantLabels(prevDir) {
  return ["native", "baseline", "shim", "node", ...(prevDir ? ["prev"] : [])];
}

/**
 * Starts every variant of `labels` with `scale` children each, one after the other, and resolves
 * once all their children have stamped. `options`: prevDir, nodeArgs(label) (the daemon's node
 * flags), concurrency (AddProcess calls in flight).
 */
export async function startVariants(run, board, labels, scale, options) {
  const variants = [];
  for (const label of labels) {
    const t0 = Date.now();
    const variant =
      label === "native" || label === "baseline"
        ? await startParent(run, board, label, scale)
        : await startDaemon(run, board, label, scale, options);
    run.log(`${label}: ${scale} children stamped in ${Date.now() - t0} ms`);
    variants.push(variant);
  }
  return variants;
}

/** Stops every variant (daemons stop their children; parents SIGTERM theirs) and forgets them. */
export async function stopVariants(board, variants) {
  for (const variant of variants) {
    const stopped = await stopProc(variant.proc, STOP_TIMEOUT_MS);
    if (!stopped.exited) throw new Error(`${variant.label} did not stop`);
    board.forget(variant.tags);
  }
}

async function startParent(run, board, label, scale) {
  const tags = names(`${label}-${scale}-`, scale);
  const parentArgs = [board.stamp, board.fifo, String(scale), `${label}-${scale}-`];
  const { file, args } =
    label === "native"
      ? withFdLimit(parentArgs, scale, board.nativeParent)
      : withFdLimit([BASELINE_PARENT, ...parentArgs], scale);
  const proc = run.track(
    spawn(file, args, { stdio: ["ignore", "ignore", "inherit"] }),
    `${label} parent (${scale})`,
  );
  await untilStamped(board, tags, proc, label);
  const command = [file, ...args].join(" ").replaceAll(run.tmp, "$TMP");
  return { label, proc, tags, command, shimPid: () => undefined };
}

async function startDaemon(run, board, label, scale, options) {
  const daemon = await startProcmond(run, {
    label: `${label}-${scale}`,
    ...(label === "prev" ? { bin: prevBin(options.prevDir) } : { spawner: label }),
    args: ["--threshold", "1ms"],
    nodeArgs: options.nodeArgs(label, scale),
    children: scale,
  });
  const tags = names(`${label}-${scale}-`, scale);
  const add = (name) => daemon.client.addProcess(board.spec(name), { timeoutMs: ADD_TIMEOUT_MS });
  await Promise.race([pool(tags, options.concurrency, add), exitError(daemon.proc, label)]);
  await untilStamped(board, tags, daemon.proc, label);
  return {
    label,
    proc: daemon.proc,
    tags,
    command: daemon.command,
    daemon,
    shimPid: daemon.shimPid,
  };
}

/** Resolves once every tag has stamped; rejects if `proc` exits first or on the timeout. */
function untilStamped(board, tags, proc, label) {
  return Promise.race([board.all(tags, STAMPED_TIMEOUT_MS), exitError(proc, label)]);
}

/** Rejects once `proc` exits (never settles otherwise: only for a race). */
function exitError(proc, label) {
  return new Promise((_, reject) => {
    const fail = () => reject(new Error(`${label} exited early (${proc.exitCode})`));
    if (exited(proc)) fail();
    else proc.once("exit", fail);
  });
}
