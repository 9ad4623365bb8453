// keepup's flood, run by the daemon as its child:
//
//   node bench/keepup/flood-child.mjs LINES LINE_BYTES TICK_MS SECONDS REPORT
//
// prints LINES lines of LINE_BYTES bytes every TICK_MS ms for SECONDS s, paced on absolute
// deadlines with blocking writes (stdout is a pipe), then writes to REPORT, as JSON, the lines
// printed, its start (wall-clock ms), its elapsed ms, its longest blocked write and its late ticks.

import { writeFileSync, writeSync } from "node:fs";

const [lines, lineBytes, tickMs, seconds, report] = process.argv.slice(2);
const perTick = Number(lines);
const size = Number(lineBytes);
const ticks = Math.round((Number(seconds) * 1000) / Number(tickMs));
const pad = "x".repeat(size);
let n = 0;
const batch = () => {
  let out = "";
  for (let i = 0; i < perTick; i++) {
    const head = `L${String(n++).padStart(12, "0")} `;
    out += `${head + pad.slice(0, size - head.length - 1)}\n`;
  }
  return out;
};
const startWallMs = performance.timeOrigin + performance.now();
const start = performance.now();
let maxBlockMs = 0;
let lateTicks = 0;
let tick = 0;
const step = () => {
  // Every batch that is due, written with a blocking write.
  while (tick < ticks && performance.now() >= start + tick * Number(tickMs)) {
    if (performance.now() > start + (tick + 1) * Number(tickMs)) lateTicks++;
    const text = batch();
    const t = performance.now();
    writeSync(1, text);
    maxBlockMs = Math.max(maxBlockMs, performance.now() - t);
    tick++;
  }
  if (tick < ticks) {
    setTimeout(step, Math.max(0, start + tick * Number(tickMs) - performance.now()));
    return;
  }
  const elapsedMs = performance.now() - start;
  writeFileSync(
    report,
    JSON.stringify({ lines: n, startWallMs, elapsedMs, maxBlockMs, lateTicks }),
  );
};
step();
