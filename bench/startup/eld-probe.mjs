// Preloaded into a procmond under test by bench/startup.mjs, as
//   node --import file:///…/bench/startup/eld-probe.mjs procmond.js …
// with PROCMON_BENCH_PROBE_DIR set; without it the module does nothing.
//
// It measures nothing until asked. The bench writes "SEQ COMMAND" to DIR/command and sends the
// daemon SIGUSR2; the probe runs the command and writes its answer, atomically (a rename), to
// DIR/reply.json, as { seq, command, atNs, ... }:
//   start  resets and enables an event-loop delay histogram (monitorEventLoopDelay, 1 ms)
//   stop   disables it: { eld: { n, min, p50, p90, p99, max, mean } } in ms, as Node records them
//          (the time between two 1 ms samples, so an idle loop reads about 1 ms)
//   mem    { memory: process.memoryUsage() }
//   gc     a full garbage collection: { before, after } (process.memoryUsage() around it)
// Off between start and stop, the probe has no timer: it adds nothing to an idle daemon.

import fs from "node:fs";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";

const dir = process.env.PROCMON_BENCH_PROBE_DIR;
if (dir) install(dir);

function histogramSummary(h) {
  const ms = (ns) => ns / 1e6;
  return {
    n: h.count,
    min: ms(h.min),
    p50: ms(h.percentile(50)),
    p90: ms(h.percentile(90)),
    p99: ms(h.percentile(99)),
    max: ms(h.max),
    mean: ms(h.mean),
  };
}

function install(dir) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  // A gc() without --expose-gc on the daemon's command line.
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc");
  const commands = {
    start: () => {
      histogram.reset();
      histogram.enable();
      return {};
    },
    stop: () => {
      histogram.disable();
      return { eld: histogramSummary(histogram) };
    },
    mem: () => ({ memory: process.memoryUsage() }),
    gc: () => {
      const before = process.memoryUsage();
      gc();
      return { before, after: process.memoryUsage() };
    },
  };
  const reply = path.join(dir, "reply.json");
  process.on("SIGUSR2", () => {
    const atNs = String(process.hrtime.bigint());
    const [seq, command] = fs.readFileSync(path.join(dir, "command"), "utf8").trim().split(" ");
    const run = commands[command] ?? (() => ({ error: `unknown command ${command}` }));
    const answer = { seq: Number(seq), command, atNs, ...run() };
    fs.writeFileSync(`${reply}.tmp`, JSON.stringify(answer));
    fs.renameSync(`${reply}.tmp`, reply);
  });
}
