// The bench's children: bench/linewriter.c built into the run's temp dir, its report files, runs
// of it outside any daemon (the baselines), and the marker every daemon child carries in its
// environment, by which leftovers of a daemon that did not stop cleanly are found and killed.

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../lib/run.mjs";

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MARKER_KEY = "PROCMON_EVENTS_BENCH";

/** Pids of live processes whose environment holds `needle` (KEY=VALUE). */
function markedPids(needle) {
  const pids = [];
  for (const name of fs.readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(needle)) {
        pids.push(pid);
      }
    } catch {}
  }
  return pids;
}

/**
 * Builds linewriter in `run.tmp` and returns the children's kit:
 *   linewriter  its path;  env  the marker, for every ProcessSpec
 *   reportFile()  a new report path;  waitReport(file, ms)  its parsed report once written
 * At cleanup, any process still carrying this run's marker is SIGKILLed by pid.
 */
export function createChildren(run) {
  const linewriter = path.join(run.tmp, "linewriter");
  execFileSync("cc", ["-O2", "-Wall", "-o", linewriter, path.join(BENCH, "linewriter.c")], {
    stdio: "pipe",
  });
  const marker = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  run.onCleanup(() => {
    const left = markedPids(`${MARKER_KEY}=${marker}`);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    if (left.length > 0) run.log(`killed ${left.length} leftover children of a daemon`);
  });
  let reports = 0;
  return {
    linewriter,
    env: { [MARKER_KEY]: marker },
    reportFile: () => path.join(run.tmp, `report-${++reports}`),
    waitReport: (file, timeoutMs) =>
      waitFor(() => readReport(file), timeoutMs, `linewriter report ${file}`, 20),
  };
}

/** linewriter's report "lines bytes elapsed_ns start_realtime_ns", or undefined if not there. */
export function readReport(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  // Written by one fprintf at fclose: complete once its newline is there.
  if (!text.endsWith("\n")) return undefined;
  const [lines, bytes, ns, startRealNs] = text.trim().split(" ").map(Number);
  const sec = ns / 1e9;
  return { lines, bytes, sec, mbps: bytes / 1e6 / sec, startWallMs: startRealNs / 1e6 };
}

/** Resolves true once `proc` has exited and its stdio closed, false after `timeoutMs`. */
function closedWithin(proc, timeoutMs) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    proc.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Runs linewriter outside any daemon, its stdout on /dev/null (`target` "devnull") or on a pipe
 * read by this process, which counts bytes and splits nothing (`target` "pipe").
 */
export async function runWriterDirect(run, kit, size, lines, target) {
  const report = kit.reportFile();
  const out = target === "devnull" ? fs.openSync("/dev/null", "w") : "pipe";
  const proc = run.track(
    spawn(kit.linewriter, [String(size), String(lines), "0", report], {
      stdio: ["ignore", out, "ignore"],
    }),
    "linewriter",
    1_000,
  );
  if (typeof out === "number") fs.closeSync(out);
  let read = 0;
  proc.stdout?.on("data", (chunk) => {
    read += chunk.length;
  });
  // "close", not "exit": the pipe's last chunks may be read after the exit.
  if (!(await closedWithin(proc, 300_000))) throw new Error(`linewriter ${size}: no exit`);
  const r = readReport(report);
  if (!r) throw new Error(`linewriter ${size} ${lines} ${target}: no report`);
  if (target === "pipe" && read !== r.bytes) throw new Error(`pipe got ${read} of ${r.bytes}`);
  return r;
}
