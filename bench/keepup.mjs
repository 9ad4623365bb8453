#!/usr/bin/env node
// Does a subscriber that keeps up stay subscribed? The issue's repro, as a benchmark.
//
//   npm run build && node bench/keepup.mjs [--rounds=9] [--daemon="LABEL=BIN [FLAGS...]"]...
//   quick: node bench/keepup.mjs --rounds=1
//
// Each round starts a fresh daemon (the real bin, on a socket in a temp dir, with its own
// --state-file there, its log on /dev/null unless --log=file), subscribes one or two fast
// readers to WatchEvents(include_output), each in a process of its own (keepup/reader.mjs), and
// adds a child (keepup/flood-child.mjs) that prints LINES lines of LINE_BYTES bytes every TICK_MS
// ms for SECONDS s (by default 200 lines of 100 B every 10 ms for 8 s: 20,000 lines/s, 2 MB/s),
// then exits. A reader counts, checks the seqs for gaps and duplicates and measures each
// message's delivery lag (its wall clock when the message is decoded minus the event's time); it
// ends at the child's `exited` event or when the daemon ends its stream. The readers:
//
//   grpc   a grpc-js client with a 1 MiB HTTP/2 window, as the SDK's, decoding seq, time and
//          kind by hand (as test/helpers/fast-reader.mjs);
//   http2  plain node:http2 with a 1 MiB window, never paused, parsing the gRPC frames itself.
//
// Printed for every round and summed up per build: whether a reader was cut off
// (RESOURCE_EXHAUSTED), the seq it was cut at and when (s after the child's start), the max and
// p99 delivery lag, the daemon's event-loop delay p99/max during the flood (a 5 ms timer inside
// the daemon: keepup/probe.mjs, preloaded with --import), its GC pauses, its RSS peak (VmHWM)
// and heap peak, whether the child was slowed, and os.loadavg() at the round's start and end.
// Several --daemon builds run alternately, round by round (A B A B ...).
//
//   node bench/keepup.mjs --heap [--daemon="LABEL=BIN"]
//
// measures instead what retaining events costs in the V8 heap of this node (keepup/heap.mjs):
// the build's own EventLog (BIN's ../dist) filled with output lines (split from 64 KiB chunks by
// its LineSplitter, as the daemon does) of several widths and alphabets, and with state and
// `added` events, each kind twice as many in a second log so that fixed costs cancel out; printed
// per event beside the size the build estimates for it (when it exports estimatedBytes).
//
// Options:
//   --rounds=N              rounds per build (default 9)
//   --daemon="LABEL=BIN [FLAGS]"   a build to run (repeatable; default this tree's bin); FLAGS
//                           are extra procmond flags, e.g. "--output-retention 40000"
//   --daemon-node-args="ARGS"      node options of every daemon (default --max-semi-space-size=4,
//                           as the bin's shebang and the systemd unit)
//   --readers=grpc,http2    which readers (default both)
//   --lines=200 --line-bytes=100 --tick-ms=10 --seconds=8   the child's output
//   --log=null|file         the daemon's log to /dev/null (default) or a file in the temp dir
//   --stall-ms=MS           each reader stops reading for MS every 2 s (its stream paused), from
//                           its first message on: the slack the daemon gives it, measured
//   --specs=N               instead of the flood: N add/rm cycles of a spec with 250 kB of env,
//                           then the daemon's RSS (the retention issue's repro; keepup/specs.mjs)
//   --busy=N                also run N processes that spin on the CPU for the whole run (a
//                           loaded machine: another build, another test suite); default 0
//   --keep-probe            put the probe's raw timeline (every tick, every GC) into the JSON
//   --trace-dir=DIR         give each daemon PROCMON_KEEPUP_TRACE=DIR/LABEL-ROUND.json, where an
//                           instrumented build (a patched copy of dist/) may write its timeline
//   --out=FILE              JSON results (default bench/results/keepup.json)
//
// Everything started here (daemons, readers, spinners) is stopped by pid on exit, on error and on
// SIGINT/SIGTERM, the daemons' children are removed through the API (and killed by pid, as a
// group, if a daemon did not stop them), and the temp dir is removed.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createGrandchildren } from "./keepup/daemon.mjs";
import { parseOptions } from "./keepup/options.mjs";
import { runRound } from "./keepup/round.mjs";
import { runSpecs } from "./keepup/specs.mjs";
import { roundLine, summarizeBuild } from "./keepup/summary.mjs";
import { ROOT } from "./lib/daemon.mjs";
import { createRun, waitExit } from "./lib/run.mjs";
import { round } from "./lib/stats.mjs";

const HEAP_WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "keepup/heap.mjs");
/** The longest a --heap measurement may take. */
const HEAP_TIMEOUT_MS = 600_000;

const loadNow = () =>
  os
    .loadavg()
    .map((x) => round(x))
    .join(" ");

/** --heap: the worker, with gc() exposed, on the first build's dist/; its exit status is ours. */
async function heap(run, o) {
  const dist = path.resolve(path.dirname(o.daemons[0].bin), "../dist");
  const worker = run.track(
    spawn(process.execPath, ["--expose-gc", HEAP_WORKER, dist], { stdio: "inherit" }),
    "heap worker",
  );
  if (!(await waitExit(worker, HEAP_TIMEOUT_MS))) throw new Error("the heap worker overran");
  if (worker.exitCode !== 0) throw new Error(`the heap worker failed (${worker.exitCode})`);
}

/** The flood rounds, builds alternating, printed; their figures per build. */
async function rounds(run, o, grandchildren) {
  console.log(
    `keepup: ${o.rounds} rounds per build, builds ${o.daemons.map((d) => d.label).join(", ")}; ` +
      `child ${o.lines} lines of ${o.lineBytes} B every ${o.tickMs} ms for ${o.seconds} s; ` +
      `readers ${o.readers.join(", ")}${o.stallMs ? ` stalling ${o.stallMs} ms every 2 s` : ""}; daemon node ${o.daemonNodeArgs.join(" ")}; ` +
      `log -> ${o.log === "file" ? "a file" : "/dev/null"}; ${o.busy} busy; load ${loadNow()}`,
  );
  const all = [];
  for (let i = 0; i < o.rounds; i++) {
    for (const build of o.daemons) {
      const x = await runRound(run, o, build, i + 1, grandchildren);
      console.log(roundLine(x));
      all.push(x);
    }
  }
  const builds = {};
  for (const build of o.daemons) {
    builds[build.label] = {
      bin: path.relative(ROOT, build.bin),
      flags: build.flags,
      ...summarizeBuild(all.filter((x) => x.build === build.label)),
    };
    console.log(`${build.label}: ${JSON.stringify(builds[build.label])}`);
  }
  return { builds, rounds: all };
}

async function keepup(run, argv) {
  const o = parseOptions(argv.filter((a) => a !== "--heap"));
  if (argv.includes("--heap")) return heap(run, o);
  const grandchildren = createGrandchildren(run);
  for (let i = 0; i < o.busy; i++) {
    run.track(spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }), "busy");
  }
  const startedAt = new Date().toISOString();
  if (o.specs > 0) {
    // For the probe's gc() on SIGUSR2.
    o.daemonNodeArgs = [...o.daemonNodeArgs, "--expose-gc"];
    return runSpecs(run, o, startedAt, grandchildren);
  }
  const { builds, rounds: all } = await rounds(run, o, grandchildren);
  const results = {
    startedAt,
    endedAt: new Date().toISOString(),
    host: { cpus: os.cpus().length, node: process.version },
    options: { ...o, daemons: undefined },
    builds,
    rounds: all,
  };
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), o.out)}`);
}

const run = createRun("keepup");
await run.main(() => keepup(run, process.argv.slice(2)));
