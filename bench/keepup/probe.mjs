// keepup's probe, inside the daemon: preloaded with `node --import bench/keepup/probe.mjs`, it
// installs itself when PROCMON_KEEPUP_PROBE=FILE is set, and writes its measurements to FILE as
// JSON when the daemon exits. It changes nothing the daemon does: one 5 ms timer (unref'd), an
// event-loop-delay histogram and a GC observer. Written: eld {p50Ms, p99Ms, maxMs} over the
// daemon's life; ticks [atMs, lateMs, ...], every 5 ms timer, when it was due and how late it
// fired (the bench takes the flood's window from them); gc [{atMs, ms, kind}], the pauses of
// 2 ms or more (V8's kinds: 1 scavenge, 2 mark-compact, 4 incremental marking, 8 weak
// callbacks); gcTotalMs, gcCount; heapUsedPeakBytes. Times are wall-clock ms
// (performance.timeOrigin + now(), the readers' clock). On SIGUSR2 it writes FILE.gc, the heap
// live after a full GC (with --expose-gc), for --specs.

import fs from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver, performance } from "node:perf_hooks";
import v8 from "node:v8";

const TICK_MS = 5;
const MAX_TICKS = 400_000;
const MAX_GC_KEPT = 10_000;

const wall = (t) => performance.timeOrigin + t;

function observeGc(probe) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      probe.gcTotalMs += entry.duration;
      probe.gcCount++;
      if (entry.duration >= 2 && probe.gc.length < MAX_GC_KEPT) {
        probe.gc.push({
          atMs: Math.round(wall(entry.startTime)),
          ms: Math.round(entry.duration * 10) / 10,
          kind: entry.detail?.kind ?? entry.kind,
        });
      }
    }
  }).observe({ entryTypes: ["gc"] });
}

function tick(probe) {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (probe.ticks.length < MAX_TICKS) {
      probe.ticks.push(
        Math.round(wall(last + TICK_MS)),
        Math.round((now - last - TICK_MS) * 10) / 10,
      );
    }
    last = now;
    if (probe.ticks.length % 40 === 0) {
      const used = v8.getHeapStatistics().used_heap_size;
      probe.heapUsedPeakBytes = Math.max(probe.heapUsedPeakBytes, used);
    }
  }, TICK_MS).unref();
}

function installProbe(out) {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const probe = { ticks: [], gc: [], gcTotalMs: 0, gcCount: 0, heapUsedPeakBytes: 0 };
  tick(probe);
  observeGc(probe);
  process.on("SIGUSR2", () => {
    globalThis.gc?.();
    const live = v8.getHeapStatistics().used_heap_size;
    fs.writeFileSync(`${out}.gc`, JSON.stringify({ heapUsedAfterGcBytes: live }));
  });
  process.on("exit", () => {
    const ms = (ns) => Math.round(ns / 1e5) / 10;
    const { ticks, gc, gcCount, heapUsedPeakBytes } = probe;
    fs.writeFileSync(
      out,
      JSON.stringify({
        eld: { p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max) },
        ticks,
        gc,
        gcTotalMs: Math.round(probe.gcTotalMs),
        gcCount,
        heapUsedPeakBytes,
      }),
    );
  });
}

if (process.env.PROCMON_KEEPUP_PROBE) installProbe(process.env.PROCMON_KEEPUP_PROBE);
