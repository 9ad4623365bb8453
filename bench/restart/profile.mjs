// --cpu-prof: each daemon runs under `node --cpu-prof` into its own kept directory; once it has
// exited, its profile's functions are ranked by self time.

import fs from "node:fs";
import path from "node:path";
import { round } from "../lib/stats.mjs";

/** A fresh directory for this run's profiles: `resultsDir`/prof/restart-latency-<time>. */
export function profileRoot(resultsDir) {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = path.join(resultsDir, "prof", `restart-latency-${stamp}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The node flags that profile a daemon into `root`/`name`. */
export function profileArgs(root, name) {
  return ["--cpu-prof", `--cpu-prof-dir=${path.join(root, name)}`];
}

/**
 * The `top` functions by self time in the .cpuprofile files under `dir` (idle time left out):
 * { files, busyMs, top: [{ fn, ms, pct }] }, pct of the busy time.
 */
export function topSelfTime(dir, top = 10) {
  const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))
    : [];
  const selfMs = new Map();
  for (const file of files) {
    const profile = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    const nameOf = new Map(profile.nodes.map((node) => [node.id, frameName(node.callFrame)]));
    profile.samples.forEach((id, i) => {
      const name = nameOf.get(id);
      if (name === "(idle)") return;
      selfMs.set(name, (selfMs.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    });
  }
  const busyMs = [...selfMs.values()].reduce((a, b) => a + b, 0);
  const ranked = [...selfMs].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    files: files.map((f) => path.join(dir, f)),
    busyMs: round(busyMs),
    top: ranked.map(([fn, ms]) => ({ fn, ms: round(ms), pct: round((100 * ms) / busyMs) })),
  };
}

function frameName({ functionName, url, lineNumber }) {
  if (!url) return functionName || "(anonymous)";
  return `${functionName || "(anonymous)"} ${path.basename(url)}:${lineNumber + 1}`;
}
