#!/usr/bin/env node
// keepup --heap's worker: what retaining an event costs in V8's heap.
//
//   node --expose-gc bench/keepup/heap.mjs DIST
//
// fills the EventLog of the build in DIST (a daemon's dist/) with output lines (split from
// 64 KiB chunks by its LineSplitter, as the daemon does) of several widths and alphabets, and
// with state and `added` events, each kind twice as many in a second log so that fixed costs
// cancel out; prints each per event beside the size the build estimates for it (when it exports
// estimatedBytes), then what the encodings kept for the subscribers at the head of the log take.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// The encodings' module: in wire/ since the daemon's restructure, in transport/ before it.
const ENCODING_MODULES = ["wire/event-encoding.js", "transport/event-encoding.js"];

/** The build's EventLog, LineSplitter, encodedEvent and (if it has one) estimatedBytes. */
async function loadBuild(dist) {
  const load = (rel) => import(pathToFileURL(path.join(dist, rel)).href);
  const encoding = ENCODING_MODULES.find((rel) => fs.existsSync(path.join(dist, rel)));
  if (encoding === undefined) {
    throw new Error(`no ${ENCODING_MODULES.join(" or ")} in ${dist}: is it a procmond dist/?`);
  }
  const hasSize = fs.existsSync(path.join(dist, "events/event-size.js"));
  return {
    EventLog: (await load("events/event-log.js")).EventLog,
    LineSplitter: (await load("adapters/line-splitter.js")).LineSplitter,
    encodedEvent: (await load(encoding)).encodedEvent,
    encoding: encoding.replace(/\.js$/, ""),
    estimate: hasSize ? (await load("events/event-size.js")).estimatedBytes : undefined,
  };
}

const clock = { now: () => performance.now(), wallNow: () => Date.now(), setTimer: () => ({}) };
const unbounded = { stateEvents: 1e9, outputLines: 1e9, outputBytes: 1e15, stateBytes: 1e15 };

function heapUsed() {
  for (let i = 0; i < 4; i++) globalThis.gc();
  return process.memoryUsage().heapUsed;
}

// Strings as the daemon gets them: decoded from bytes (protobuf-es decodes with TextDecoder).
const decoder = new TextDecoder();
const fresh = (text) => decoder.decode(Buffer.from(text));
let unique = 0;

/** A ProcessSpec of `args` args of `argChars` and `envEntries` variables of `valueChars` `ch`. */
function spec(args, argChars, envEntries, valueChars, ch = "x") {
  const env = {};
  for (let i = 0; i < envEntries; i++) env[fresh(`K${unique++}_`)] = fresh(ch.repeat(valueChars));
  return {
    name: fresh(`p${unique++}`),
    args: Array.from({ length: args }, () => fresh(`${unique++}`.padEnd(argChars, "a"))),
    env,
    clearEnv: false,
    cwd: fresh(`/srv/app-${unique++}`),
    thresholdMs: 1000,
    killTimeMs: 5000,
    minRestartDelayMs: 1000,
    maxRestartDelayMs: 3_600_000,
  };
}

/** Cases of output lines: [name, n, fill(log, n) -> a sample event]. */
function outputCases(LineSplitter) {
  const fill = (log, n, text) => {
    const splitter = new LineSplitter((line, partial) =>
      log.append({ process: "flood", kind: "output", stream: "stdout", line, partial }),
    );
    const one = Buffer.from(`${text}\n`);
    const perChunk = Math.max(1, Math.floor(65536 / one.length));
    const chunk = Buffer.concat(Array(perChunk).fill(one));
    for (let left = n; left > 0; left -= perChunk) {
      const k = Math.min(perChunk, left);
      splitter.push(k === perChunk ? chunk : chunk.subarray(0, k * one.length));
    }
    return { process: "flood", kind: "output", stream: "stdout", line: text, partial: false };
  };
  return [
    ["output, empty line", 100_000, ""],
    ["output, 20 B line", 100_000, "x".repeat(20)],
    ["output, 99 B line (100 with its newline)", 100_000, "x".repeat(99)],
    ["output, 1000 B line", 20_000, "x".repeat(1000)],
    ["output, 99 Latin-1 chars (é)", 100_000, "é".repeat(99)],
    ["output, 99 CJK chars (中)", 100_000, "中".repeat(99)],
  ].map(([name, n, text]) => [name, n, (log, count) => fill(log, count, text)]);
}

const exited = (i) => ({
  kind: "exited",
  process: "p",
  pid: i,
  instant: false,
  status: { code: 0, signal: null, uptimeMs: 1000.5 + i },
});
const spawnFailed = (i) => ({
  kind: "spawnFailed",
  process: "p",
  error: fresh(`cannot spawn "x${i}": no such file or directory`.padEnd(60)),
});
const added = (...shape) => ({ kind: "added", process: "p", spec: spec(...shape) });

/** Cases of state events: [name, n, fill(log, n) -> the last event]. */
function stateCases() {
  return [
    ["started", (i) => ({ kind: "started", process: "p", pid: 1000 + i })],
    ["exited", exited],
    ["spawnFailed, 60-char error", spawnFailed],
    ["added, 3 args of 10 B, no env", () => added(3, 10, 0, 0)],
    ["added, 3 args, 10 env entries of 100 B", () => added(3, 10, 10, 100)],
    ["added, 3 args, 1,000 env entries of 250 B", () => added(3, 10, 1000, 250)],
    ["added, 1 env entry of 250,000 B", () => added(1, 10, 1, 250_000)],
    ["added, 1 env entry of 125,000 CJK chars", () => added(1, 10, 1, 125_000, "中")],
  ].map(([name, make]) => [
    name,
    name.includes("env entr") && /250|125/.test(name) ? 40 : 20_000,
    (log, n) => {
      let last;
      for (let i = 0; i < n; i++) {
        last = make(i);
        log.append(last);
      }
      return last;
    },
  ]);
}

// Each measurement in a call of its own: an interpreter frame keeps what its registers last
// held, so a log made in a loop body would outlive its iteration and count in the next one.
function measure(EventLog, n, fill) {
  const h0 = heapUsed();
  const small = new EventLog(clock, unbounded);
  fill(small, n);
  const h1 = heapUsed();
  const big = new EventLog(clock, unbounded);
  const sample = fill(big, 2 * n);
  const h2 = heapUsed();
  // Both logs are alive at h2: the second one's cost, less the first's, is n events'.
  if (small.lastSeq === 0n || big.lastSeq === 0n) throw new Error("empty log");
  return { perEvent: Math.round((h2 - h1 - (h1 - h0)) / n), sample };
}

/** The heap the encodings kept take after 20,000 lines encoded, none of them held here. */
function encodings(encodedEvent) {
  const h0 = heapUsed();
  const line = "x".repeat(99);
  for (let seq = 1n; seq <= 20_000n; seq++) {
    const event = { process: "flood", kind: "output", stream: "stdout", line, partial: false };
    encodedEvent({ seq, timeWallMs: Date.now(), event });
  }
  return heapUsed() - h0;
}

const build = await loadBuild(process.argv[2]);
const results = [];
for (const [name, n, fill] of [...outputCases(build.LineSplitter), ...stateCases()]) {
  const { perEvent, sample } = measure(build.EventLog, n, fill);
  const estimated = build.estimate ? build.estimate(sample) : null;
  results.push({ name, heapBytesPerEvent: perEvent, estimatedBytes: estimated });
  const vsEstimate =
    estimated === null
      ? ""
      : `, estimated ${estimated} B (${((estimated / perEvent) * 100).toFixed(0)} %)`;
  console.log(
    `${name.padEnd(44)} ${String(perEvent).padStart(8)} B of heap per event${vsEstimate}`,
  );
}
const kept = encodings(build.encodedEvent);
console.log(
  `encodings kept by ${build.encoding} after 20,000 lines of 99 B: ${(kept / 2 ** 20).toFixed(2)} MiB of heap (what they retain: their events and the bytes)`,
);
console.log(JSON.stringify({ node: process.version, results }));
