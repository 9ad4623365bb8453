// Starting procmond for a benchmark: in the run's temp dir (its own socket and state file,
// never the production paths), with its JSON log tallied, tracked for cleanup.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@procmon/client";
import { childrenOf, commOf, withFdLimit } from "./machine.mjs";
import { exited } from "./run.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DAEMON_BIN = path.join(ROOT, "packages/daemon/bin/procmond.js");
/** The node flags procmond runs with as deployed (its bin's shebang, the unit, npm start). */
export const DEPLOYED_NODE_ARGS = ["--max-semi-space-size=4"];

/** Tallies a daemon's pino lines: warnings, errors, the last 50 lines, and `onLine` hooks. */
function logTally(proc) {
  const tally = { warnings: 0, errors: 0, tail: [], listeners: new Set() };
  let rest = "";
  const onOutput = (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") continue;
      tally.tail.push(line);
      if (tally.tail.length > 50) tally.tail.shift();
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        tally.errors++;
        continue;
      }
      if (entry.level === 40) tally.warnings++;
      if (entry.level >= 50) tally.errors++;
      for (const listener of tally.listeners) listener(entry);
    }
  };
  proc.stdout?.setEncoding("utf8").on("data", onOutput);
  proc.stderr?.setEncoding("utf8").on("data", onOutput);
  return tally;
}

/**
 * Starts procmond and resolves once its socket answers.
 *   run        the createRun() this daemon belongs to (cleanup, temp dir, log)
 *   label      a name for logs (default "procmond")
 *   dir        where its socket and state file go (default run.tmp)
 *   bin        the procmond.js to run (another build's, to compare against it)
 *   spawner    "shim" | "node" | undefined (the daemon's default)
 *   stateFile  false for --no-state-file; default `dir`/state.json
 *   args       more daemon flags (e.g. ["--config", file]); logLevel (default "warn")
 *   stdout     where its stdout (its log) goes instead of a tallied pipe: "ignore", an fd, or a
 *              file (e.g. "/dev/null"); its log lines are then not tallied (stderr still is)
 *   nodeArgs   flags for the daemon's node, after DEPLOYED_NODE_ARGS (deployedFlags: false
 *              leaves those out; a later V8 flag wins); children: raises the fd limit for that many
 *   wait       false to return at once (the caller measures the time to serving)
 */
export async function startProcmond(run, options = {}) {
  const label = options.label ?? "procmond";
  const dir = options.dir ?? run.tmp;
  const socket = path.join(dir, `${label}.sock`);
  const stateFile = options.stateFile === false ? null : path.join(dir, `${label}.state.json`);
  const daemonArgs = [
    options.bin ?? DAEMON_BIN,
    "--socket",
    socket,
    "--log-level",
    options.logLevel ?? "warn",
    ...(stateFile ? ["--state-file", stateFile] : ["--no-state-file"]),
    ...(options.spawner ? ["--spawner", options.spawner] : []),
    ...(options.args ?? []),
  ];
  const nodeArgs = [
    ...(options.deployedFlags === false ? [] : DEPLOYED_NODE_ARGS),
    ...(options.nodeArgs ?? []),
    ...daemonArgs,
  ];
  const { file, args, raisedTo } = withFdLimit(nodeArgs, options.children ?? 100);
  // A file is opened for the child and closed here once it has its copy.
  const opensFile = typeof options.stdout === "string" && options.stdout !== "ignore";
  const stdout = opensFile ? fs.openSync(options.stdout, "w") : (options.stdout ?? "pipe");
  const startedAt = process.hrtime.bigint();
  const proc = run.track(
    spawn(file, args, {
      cwd: ROOT,
      stdio: ["ignore", stdout, "pipe"],
      env: { ...process.env, ...options.env },
    }),
    label,
  );
  if (opensFile) fs.closeSync(stdout);
  const log = logTally(proc);
  const client = createClient({ socket });
  run.onCleanup(() => client.close());
  const daemon = {
    label,
    proc,
    client,
    socket,
    stateFile,
    log,
    raisedTo,
    startedAt,
    command: [process.execPath, ...nodeArgs].join(" ").replaceAll(run.tmp, "$TMP"),
    /** The shim's pid, if this daemon runs one. */
    shimPid: () => childrenOf(proc.pid).find((pid) => commOf(pid) === "procmon-shim"),
    /** Resolves once the socket answers; the ms from spawn to that answer. */
    ready: (timeoutMs = 15_000) => waitServing(daemon, timeoutMs),
  };
  if (options.wait !== false) await daemon.ready();
  return daemon;
}

async function waitServing(daemon, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited(daemon.proc)) {
      throw new Error(
        `${daemon.label} exited with ${daemon.proc.exitCode}:\n${daemon.log.tail.join("\n")}`,
      );
    }
    try {
      await daemon.client.listProcesses({ timeoutMs: 1_000 });
      return Number(process.hrtime.bigint() - daemon.startedAt) / 1e6;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${daemon.label} never answered: ${err.message}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}
