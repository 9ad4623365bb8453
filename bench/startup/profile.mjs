// Self time per function in a V8 .cpuprofile (node --cpu-prof), within windows of time.
// V8 stamps samples with CLOCK_MONOTONIC in µs, the clock of process.hrtime.bigint() in ns, so a
// window the bench timed in its own process selects the daemon's samples of that moment.

import fs from "node:fs";
import path from "node:path";

/** `functionName file:line` of a profile node; V8's own entries ("(program)", GC) as named. */
function keyOf(callFrame, root) {
  const name = callFrame.functionName || "(anonymous)";
  if (!callFrame.url) return name;
  let file = callFrame.url.replace(/^file:\/\//, "");
  if (file.startsWith(root)) file = path.relative(root, file);
  return `${name} ${file}:${callFrame.lineNumber + 1}`;
}

/**
 * Reads `file` and returns, for each window { name: [fromNs, toNs] } (bigint hrtime ns), a Map
 * of function key -> self ms, plus "(idle)" for the time the thread slept.
 */
export function selfTimes(file, windows, root) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8"));
  const keyById = new Map(profile.nodes.map((n) => [n.id, keyOf(n.callFrame, root)]));
  const out = Object.fromEntries(Object.keys(windows).map((w) => [w, new Map()]));
  const ranges = Object.entries(windows).map(([w, [from, to]]) => [
    out[w],
    Number(from / 1000n),
    Number(to / 1000n),
  ]);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the interval up to the next one.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const key = keyById.get(profile.samples[i]);
    for (const [map, from, to] of ranges) {
      if (t >= from && t <= to) map.set(key, (map.get(key) ?? 0) + ms);
    }
  }
  return out;
}

/** Sums Maps of key -> ms. */
export function mergeTimes(maps) {
  const sum = new Map();
  for (const map of maps) for (const [k, v] of map) sum.set(k, (sum.get(k) ?? 0) + v);
  return sum;
}

/** The `n` keys of most self time, with their share of the busy (non-idle) time. */
export function top(map, n = 12) {
  const busy = [...map].filter(([k]) => k !== "(idle)");
  const busyMs = busy.reduce((a, [, v]) => a + v, 0);
  const rows = busy
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, ms]) => ({ fn, ms, pct: busyMs > 0 ? (100 * ms) / busyMs : 0 }));
  return { busyMs, idleMs: map.get("(idle)") ?? 0, rows };
}

/** For each procmond variant of `rounds` and each window of its runs: the merged top. */
export function profileTops(rounds, root, n = 12) {
  const tops = {};
  for (const [variant, runs] of Object.entries(rounds)) {
    const byWindow = {};
    for (const x of runs) {
      if (!x.profile || !fs.existsSync(x.profile)) continue;
      const windows = Object.fromEntries(
        Object.entries(x.windows).map(([w, range]) => [w, range.map(BigInt)]),
      );
      const times = selfTimes(x.profile, windows, root);
      for (const [w, map] of Object.entries(times)) {
        byWindow[w] ??= [];
        byWindow[w].push(map);
      }
    }
    if (Object.keys(byWindow).length === 0) continue;
    tops[variant] = Object.fromEntries(
      Object.entries(byWindow).map(([w, maps]) => [w, top(mergeTimes(maps), n)]),
    );
  }
  return tops;
}

/** The printed tops of the windows behind each missed target (`targets` with a `profile`). */
export function formatTops(tops, targets, dir) {
  const out = [`CPU profiles (node --cpu-prof) kept in ${dir}`];
  const seen = new Set();
  for (const t of targets) {
    if (t.pass || !t.profile) continue;
    const [variant, window] = t.profile;
    const key = `${variant} ${window}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const found = tops[variant]?.[window];
    if (!found) continue;
    const ms = (v) => v.toFixed(0).padStart(6);
    out.push(
      "",
      `${variant}, ${window} window (behind "${t.figure}"): busy ${found.busyMs.toFixed(0)} ms, idle ${found.idleMs.toFixed(0)} ms; top self time:`,
      ...found.rows.map(
        (row) => `  ${ms(row.ms)} ms ${row.pct.toFixed(1).padStart(5)} %  ${row.fn}`,
      ),
    );
  }
  if (seen.size === 0) out.push("(no missed target has a daemon profile to explain it)");
  return out.join("\n");
}
