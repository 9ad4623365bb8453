// The daemons a run compares: one variant per --spawner (this build's procmond, or --daemon's),
// and with --prev=DIR that checkout's procmond, which has no --spawner flag (it forks from Node).

import { execFileSync } from "node:child_process";
import path from "node:path";
import { DAEMON_BIN } from "../lib/daemon.mjs";
import { prevBin, UsageError } from "./options.mjs";

/** Whether the procmond `bin` takes --spawner (its --help says so). */
export function hasSpawnerFlag(bin) {
  try {
    const help = execFileSync(process.execPath, [bin, "--help"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 15_000,
    });
    return help.includes("--spawner");
  } catch {
    return false;
  }
}

/** The short commit of the checkout holding `bin`, "(modified)" if it has changes. */
export function commitOf(bin) {
  try {
    const dir = path.resolve(path.dirname(bin), "../../..");
    const git = (args) =>
      execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", stdio: "pipe" }).trim();
    const dirty = git(["status", "--porcelain", "--untracked-files=no"]) !== "";
    return `${git(["rev-parse", "--short", "HEAD"])}${dirty ? " (modified)" : ""}`;
  } catch {
    return undefined;
  }
}

/**
 * The variants of `options` ({spawners, spawnersGiven, daemonBin, prevDir}), each
 * { label, bin, spawner (the flag's value, undefined for none), build: "current" | "prev" }.
 * --prev adds "node" if it is not listed: its ratios are current-node/prev. A --daemon build
 * without --spawner runs once, as "default"; a UsageError if --spawner was given for it.
 */
export function variantsOf(options) {
  const bin = path.resolve(options.daemonBin ?? DAEMON_BIN);
  const flag = hasSpawnerFlag(bin);
  if (!flag && options.spawnersGiven) {
    throw new UsageError(`${bin} takes no --spawner flag: leave out --spawner`);
  }
  let spawners = flag ? options.spawners : ["default"];
  if (options.prevDir && flag && !spawners.includes("node")) spawners = [...spawners, "node"];
  const variants = spawners.map((s) => ({
    label: s,
    bin,
    spawner: s === "default" ? undefined : s,
    build: "current",
  }));
  if (options.prevDir) {
    variants.push({
      label: "prev",
      bin: prevBin(options.prevDir),
      spawner: undefined,
      build: "prev",
    });
  }
  return variants.map((v) => ({ ...v, commit: commitOf(v.bin) }));
}
