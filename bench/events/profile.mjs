// --cpu-prof: every daemon runs under `node --cpu-prof` into one kept directory; once they have
// exited, each profile's functions are ranked by self time.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { round } from "../lib/stats.mjs";

/** The profile directory: --cpu-prof-dir's, else a new one in the system temp dir (kept). */
export function profileDir(options) {
  const dir = options.profDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "procmon-events-prof-"));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function frameName({ functionName, url, lineNumber }) {
  const name = functionName || "(anonymous)";
  if (!url) return name;
  const file = url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/packages\//, "");
  return `${name} ${file}:${lineNumber + 1}`;
}

/** The `top` functions of one .cpuprofile by self time, with the share of the busy time. */
function summarise(file, top) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8"));
  const nameOf = new Map(profile.nodes.map((node) => [node.id, frameName(node.callFrame)]));
  const selfUs = new Map();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    totalUs += us;
    selfUs.set(nameOf.get(id), (selfUs.get(nameOf.get(id)) ?? 0) + us);
  });
  const busyUs = totalUs - (selfUs.get("(idle)") ?? 0);
  const ranked = [...selfUs].filter(([fn]) => fn !== "(idle)").sort((a, b) => b[1] - a[1]);
  return {
    file,
    totalMs: round(totalUs / 1000, 0),
    busyMs: round(busyUs / 1000, 0),
    top: ranked.slice(0, top).map(([fn, us]) => ({
      fn,
      selfMs: round(us / 1000, 0),
      pctOfBusy: round((100 * us) / busyUs, 1),
    })),
  };
}

/** Every profile in `dir`, summarised; each one's top 15 logged through `log`. */
export function summariseProfiles(dir, log, top = 25) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  const profiles = files.map((f) => summarise(path.join(dir, f), top));
  for (const p of profiles) {
    log(`profile ${p.file} (${p.totalMs} ms sampled, ${p.busyMs} ms busy), top self time:`);
    for (const t of p.top.slice(0, 15)) log(`  ${String(t.pctOfBusy).padStart(5)} %  ${t.fn}`);
  }
  return profiles;
}
