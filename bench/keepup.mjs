#!/usr/bin/env node
// Does a subscriber that keeps up stay subscribed? The issue's repro, as a benchmark.
//
//   npm run build && node bench/keepup.mjs [--rounds=9] [--daemon="LABEL=BIN [FLAGS...]"]...
//
// Each round starts a fresh daemon (the real bin, on a socket in a temp dir, with its own
// --state-file there, its log on /dev/null unless --log=file), subscribes one or two fast
// readers to WatchEvents(include_output), each in a process of its own, and adds a child that
// prints LINES lines of LINE_BYTES bytes every TICK_MS ms for SECONDS s (by default 200 lines of
// 100 B every 10 ms for 8 s: 20,000 lines/s, 2 MB/s), then exits. A reader counts, checks the
// seqs for gaps and duplicates and measures each message's delivery lag (its wall clock when
// the message is decoded minus the event's time); it ends at the child's `exited` event or when
// the daemon ends its stream. The readers:
//
//   grpc   a grpc-js client with a 1 MiB HTTP/2 window, as the SDK's, decoding seq, time and
//          kind by hand (as test/helpers/fast-reader.mjs);
//   http2  plain node:http2 with a 1 MiB window, never paused, parsing the gRPC frames itself.
//
// Printed for every round and summed up per build: whether a reader was cut off
// (RESOURCE_EXHAUSTED), the seq it was cut at and when (s after the child's start), the max and
// p99 delivery lag, the daemon's event-loop delay p99/max during the flood (a 5 ms timer inside
// the daemon: this file, preloaded with --import, runs installProbe() there), its GC pauses, its
// RSS peak
// (VmHWM) and heap peak, whether the child was slowed, and os.loadavg() at the round's start and
// end. Several --daemon builds run alternately, round by round (A B A B ...).
//
//   node bench/keepup.mjs --heap [--daemon="LABEL=BIN"]
//
// measures instead what retaining events costs in the V8 heap of this node: the build's own
// EventLog (BIN's ../dist) filled with output lines (split from 64 KiB chunks by its
// LineSplitter, as the daemon does) of several widths and alphabets, and with state and `added`
// events, each kind twice as many in a second log so that fixed costs cancel out; printed per
// event beside the size the build estimates for it (when it exports estimatedBytes).
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
//                           then the daemon's RSS (the retention issue's repro; see runSpecsRound)
//   --busy=N                also run N processes that spin on the CPU for the whole run (a
//                           loaded machine: another build, another test suite); default 0
//   --keep-probe            put the probe's raw timeline (every tick, every GC) into the JSON
//   --trace-dir=DIR         give each daemon PROCMON_KEEPUP_TRACE=DIR/LABEL-ROUND.json, where an
//                           instrumented build (a patched copy of dist/) may write its timeline
//   --out=FILE              JSON results (default bench/results/keepup.json)
//
// Everything started here (daemons, readers) is stopped by pid on exit, on error and on
// SIGINT/SIGTERM, the daemons' children are removed through the API (and killed by pid if a
// daemon did not stop cleanly), and the temp dir is removed.

import { fork, spawn } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, PerformanceObserver, performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import v8 from "node:v8";

const SELF = fileURLToPath(import.meta.url);
const HERE = path.dirname(SELF);
const ROOT = path.resolve(HERE, "..");
const WATCH_PATH = "/procmon.v1.ProcessMonitor/WatchEvents";
const FLOW_CONTROL_WINDOW_BYTES = 1024 * 1024;
const RESOURCE_EXHAUSTED = 8;
const STALL_PERIOD_MS = 2_000;

const wallNow = () => performance.timeOrigin + performance.now();

// =============================================================================================
// A reader (a forked process): `keepup.mjs --reader grpc|http2 SOCKET PROCESS`
// =============================================================================================

/** Reads a varint (below 2^53) at `at`: [value, next offset]. */
function varint(bytes, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
}

/** seq, time (ms), kind (the oneof's field number) and process of a WatchEventsResponse. */
function peek(bytes) {
  const [, afterTag] = varint(bytes, 0);
  const [length, start] = varint(bytes, afterTag);
  const end = start + length;
  let at = start;
  const ev = { seq: 0, timeMs: 0, kind: 0, process: "" };
  while (at < end) {
    let key;
    [key, at] = varint(bytes, at);
    const field = Math.floor(key / 8);
    if (key % 8 === 0) {
      let value;
      [value, at] = varint(bytes, at);
      if (field === 1) ev.seq = value;
    } else {
      let size;
      [size, at] = varint(bytes, at);
      if (field === 2) {
        let p = at;
        let seconds = 0;
        let nanos = 0;
        while (p < at + size) {
          let k;
          let v;
          [k, p] = varint(bytes, p);
          [v, p] = varint(bytes, p);
          if (k === 0x08) seconds = v;
          else if (k === 0x10) nanos = v;
        }
        ev.timeMs = seconds * 1000 + nanos / 1e6;
      } else if (field === 3) {
        ev.process = bytes.toString("utf8", at, at + size);
      } else if (field >= 10) {
        ev.kind = field;
      }
      at += size;
    }
  }
  return ev;
}

/**
 * `stallMs` > 0: once the first message is in, the reader stops reading for `stallMs` every
 * STALL_PERIOD_MS (its stream paused), as a reader's GC pause or a busy core would: the slack a
 * daemon gives a subscriber that otherwise keeps up, measured directly.
 */
async function runReader(kind, socket, until, stallMs = 0) {
  const { ProcessMonitor, WatchEventsRequestSchema } = await import("@procmon/client/api");
  const { create, toBinary } = await import("@bufbuild/protobuf");
  const eventFields = ProcessMonitor.method.watchEvents.output.field.event.message.field;
  const OUTPUT = eventFields.output.number;
  const EXITED = eventFields.exited.number;
  const request = Buffer.from(
    toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { includeOutput: true })),
  );

  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  // Delivery lag, 1 ms buckets up to 60 s.
  const lagBuckets = new Uint32Array(60_001);
  const s = {
    reader: kind,
    events: 0,
    outputLines: 0,
    firstSeq: null,
    lastSeq: null,
    gap: null,
    lagMaxMs: 0,
    lagMaxAtSeq: null,
    lagP99Ms: null,
    firstAtMs: null,
    lastAtMs: null,
    status: null,
    statusMessage: null,
    statusAtMs: null,
    readerEldMaxMs: null,
    readerEldP99Ms: null,
    stalls: 0,
  };
  let lastSeq = 0;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    let seen = 0;
    const n = lagBuckets.reduce((a, b) => a + b, 0);
    for (let i = 0; i < lagBuckets.length; i++) {
      seen += lagBuckets[i];
      if (seen >= n * 0.99) {
        s.lagP99Ms = i;
        break;
      }
    }
    s.readerEldMaxMs = Math.round(eld.max / 1e5) / 10;
    s.readerEldP99Ms = Math.round(eld.percentile(99) / 1e5) / 10;
    process.stdout.write(`${JSON.stringify({ summary: s })}\n`, () => process.exit(0));
  };
  const onMessage = (bytes) => {
    if (done) return;
    const now = wallNow();
    const ev = peek(bytes);
    s.events++;
    startStalls();
    if (s.firstSeq === null) {
      s.firstSeq = ev.seq;
      s.firstAtMs = now;
    } else if (s.gap === null && ev.seq !== lastSeq + 1) {
      s.gap = `seq ${ev.seq} after ${lastSeq}`;
    }
    lastSeq = ev.seq;
    s.lastSeq = ev.seq;
    s.lastAtMs = now;
    const lag = Math.max(0, now - ev.timeMs);
    lagBuckets[Math.min(60_000, Math.floor(lag))]++;
    if (lag > s.lagMaxMs) {
      s.lagMaxMs = Math.round(lag);
      s.lagMaxAtSeq = ev.seq;
    }
    if (ev.kind === OUTPUT) s.outputLines++;
    if (ev.kind === EXITED && ev.process === until) finish();
  };
  const onStatus = (code, message) => {
    s.status = code;
    s.statusMessage = message;
    s.statusAtMs = wallNow();
    finish();
  };
  const ready = () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  let stallable;
  let stalling = false;
  const startStalls = () => {
    if (stalling || stallMs <= 0) return;
    stalling = true;
    setInterval(() => {
      stallable.pause();
      s.stalls++;
      setTimeout(() => stallable.resume(), stallMs);
    }, STALL_PERIOD_MS).unref();
  };

  if (kind === "grpc") {
    const grpc = await import("@grpc/grpc-js");
    const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure(), {
      "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
    });
    const call = client.makeServerStreamRequest(
      WATCH_PATH,
      () => request,
      (bytes) => bytes,
      undefined,
    );
    call.on("metadata", ready);
    call.on("data", onMessage);
    stallable = call;
    call.on("error", () => {});
    call.on("status", (status) => onStatus(status.code, status.details));
  } else if (kind === "http2") {
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect(socket),
      settings: { initialWindowSize: FLOW_CONTROL_WINDOW_BYTES },
    });
    session.on("error", (err) => onStatus(-1, String(err)));
    session.once("remoteSettings", () => session.setLocalWindowSize(FLOW_CONTROL_WINDOW_BYTES));
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    request.copy(frame, 5);
    const stream = session.request({
      ":method": "POST",
      ":path": WATCH_PATH,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(frame);
    stallable = stream;
    let carry = Buffer.alloc(0);
    stream.on("response", (headers) => {
      // A refusal comes as trailers-only headers.
      if (headers["grpc-status"] !== undefined) {
        onStatus(Number(headers["grpc-status"]), decodeURIComponent(headers["grpc-message"] ?? ""));
      } else ready();
    });
    stream.on("data", (chunk) => {
      let buf = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
      let at = 0;
      while (buf.length - at >= 5) {
        const size = buf.readUInt32BE(at + 1);
        if (buf.length - at - 5 < size) break;
        onMessage(buf.subarray(at + 5, at + 5 + size));
        at += 5 + size;
      }
      buf = buf.subarray(at);
      carry = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    });
    stream.on("trailers", (trailers) =>
      onStatus(Number(trailers["grpc-status"]), decodeURIComponent(trailers["grpc-message"] ?? "")),
    );
    stream.on("close", () => onStatus(s.status ?? -1, s.statusMessage ?? "stream closed"));
    stream.on("error", () => {});
  } else {
    throw new Error(`unknown reader ${kind}`);
  }
}

// =============================================================================================
// The probe, inside the daemon (this file preloaded with --import, PROCMON_KEEPUP_PROBE=FILE)
// =============================================================================================

/**
 * Measures the daemon's event loop and GC from inside, and writes them as JSON to `out` when
 * the daemon exits. It changes nothing the daemon does: one 5 ms timer (unref'd), an
 * event-loop-delay histogram and a GC observer. Written: eld {p50Ms, p99Ms, maxMs} over the
 * daemon's life; ticks [atMs, lateMs, ...], every 5 ms timer, when it was due and how late it
 * fired (the bench takes the flood's window from them); gc [{atMs, ms, kind}], the pauses of
 * 2 ms or more (V8's kinds: 1 scavenge, 2 mark-compact, 4 incremental marking, 8 weak
 * callbacks); gcTotalMs, gcCount; heapUsedPeakBytes. Times are wall-clock ms
 * (performance.timeOrigin + now(), the readers' clock).
 */
function installProbe(out) {
  const wall = (t) => performance.timeOrigin + t;
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const ticks = [];
  const gc = [];
  let gcTotalMs = 0;
  let gcCount = 0;
  let heapUsedPeakBytes = 0;
  const TICK_MS = 5;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (ticks.length < 400_000) {
      ticks.push(Math.round(wall(last + TICK_MS)), Math.round((now - last - TICK_MS) * 10) / 10);
    }
    last = now;
    if (ticks.length % 40 === 0) {
      heapUsedPeakBytes = Math.max(heapUsedPeakBytes, v8.getHeapStatistics().used_heap_size);
    }
  }, TICK_MS).unref();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcTotalMs += entry.duration;
      gcCount++;
      if (entry.duration >= 2 && gc.length < 10_000) {
        gc.push({
          atMs: Math.round(wall(entry.startTime)),
          ms: Math.round(entry.duration * 10) / 10,
          kind: entry.detail?.kind ?? entry.kind,
        });
      }
    }
  }).observe({ entryTypes: ["gc"] });
  // --specs asks, with SIGUSR2, for the heap that is live after a full GC (needs --expose-gc).
  process.on("SIGUSR2", () => {
    globalThis.gc?.();
    const live = v8.getHeapStatistics().used_heap_size;
    fs.writeFileSync(`${out}.gc`, JSON.stringify({ heapUsedAfterGcBytes: live }));
  });
  process.on("exit", () => {
    const ms = (ns) => Math.round(ns / 1e5) / 10;
    fs.writeFileSync(
      out,
      JSON.stringify({
        eld: { p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max) },
        ticks,
        gc,
        gcTotalMs: Math.round(gcTotalMs),
        gcCount,
        heapUsedPeakBytes,
      }),
    );
  });
}

// =============================================================================================
// --heap: what retaining an event costs in V8's heap (run with --expose-gc)
// =============================================================================================

async function runHeap(dist) {
  const url = (rel) => pathToFileURL(path.join(dist, rel)).href;
  const { EventLog } = await import(url("events/event-log.js"));
  const { LineSplitter } = await import(url("adapters/line-splitter.js"));
  const { encodedEvent } = await import(url("transport/event-encoding.js"));
  const estimate = fs.existsSync(path.join(dist, "events/event-size.js"))
    ? (await import(url("events/event-size.js"))).estimatedBytes
    : undefined;
  const clock = { now: () => performance.now(), wallNow: () => Date.now(), setTimer: () => ({}) };
  const unbounded = { stateEvents: 1e9, outputLines: 1e9, outputBytes: 1e15, stateBytes: 1e15 };
  const heapUsed = () => {
    for (let i = 0; i < 4; i++) globalThis.gc();
    return process.memoryUsage().heapUsed;
  };
  // Strings as the daemon gets them: decoded from bytes (protobuf-es decodes with TextDecoder).
  const decoder = new TextDecoder();
  const fresh = (text) => decoder.decode(Buffer.from(text));
  let unique = 0;
  const spec = (args, argChars, envEntries, valueChars, ch = "x") => {
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
  };
  const fillOutput = (log, n, text) => {
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
  const cases = [
    ["output, empty line", 100_000, (log, n) => fillOutput(log, n, "")],
    ["output, 20 B line", 100_000, (log, n) => fillOutput(log, n, "x".repeat(20))],
    [
      "output, 99 B line (100 with its newline)",
      100_000,
      (log, n) => fillOutput(log, n, "x".repeat(99)),
    ],
    ["output, 1000 B line", 20_000, (log, n) => fillOutput(log, n, "x".repeat(1000))],
    ["output, 99 Latin-1 chars (é)", 100_000, (log, n) => fillOutput(log, n, "é".repeat(99))],
    ["output, 99 CJK chars (中)", 100_000, (log, n) => fillOutput(log, n, "中".repeat(99))],
    ...[
      ["started", (i) => ({ kind: "started", process: "p", pid: 1000 + i })],
      [
        "exited",
        (i) => ({
          kind: "exited",
          process: "p",
          pid: i,
          instant: false,
          status: { code: 0, signal: null, uptimeMs: 1000.5 + i },
        }),
      ],
      [
        "spawnFailed, 60-char error",
        (i) => ({
          kind: "spawnFailed",
          process: "p",
          error: fresh(`cannot spawn "x${i}": no such file or directory`.padEnd(60)),
        }),
      ],
      [
        "added, 3 args of 10 B, no env",
        () => ({ kind: "added", process: "p", spec: spec(3, 10, 0, 0) }),
      ],
      [
        "added, 3 args, 10 env entries of 100 B",
        () => ({ kind: "added", process: "p", spec: spec(3, 10, 10, 100) }),
      ],
      [
        "added, 3 args, 1,000 env entries of 250 B",
        () => ({ kind: "added", process: "p", spec: spec(3, 10, 1000, 250) }),
      ],
      [
        "added, 1 env entry of 250,000 B",
        () => ({ kind: "added", process: "p", spec: spec(1, 10, 1, 250_000) }),
      ],
      [
        "added, 1 env entry of 125,000 CJK chars",
        () => ({ kind: "added", process: "p", spec: spec(1, 10, 1, 125_000, "中") }),
      ],
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
    ]),
  ];
  // Each measurement in a call of its own: an interpreter frame keeps what its registers last
  // held, so a log made in a loop body would outlive its iteration and count in the next one.
  const measure = (n, fill) => {
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
  };
  const results = [];
  for (const [name, n, fill] of cases) {
    const { perEvent, sample } = measure(n, fill);
    const estimated = estimate ? estimate(sample) : null;
    results.push({ name, heapBytesPerEvent: perEvent, estimatedBytes: estimated });
    console.log(
      `${name.padEnd(44)} ${String(perEvent).padStart(8)} B of heap per event` +
        (estimated === null
          ? ""
          : `, estimated ${estimated} B (${((estimated / perEvent) * 100).toFixed(0)} %)`),
    );
  }
  // The encodings kept for subscribers at the head of the log: 20,000 encoded, none held here.
  const encodings = () => {
    const h0 = heapUsed();
    const line = "x".repeat(99);
    for (let seq = 1n; seq <= 20_000n; seq++) {
      const event = { process: "flood", kind: "output", stream: "stdout", line, partial: false };
      encodedEvent({ seq, timeWallMs: Date.now(), event });
    }
    return heapUsed() - h0;
  };
  console.log(
    `encodings kept by transport/event-encoding after 20,000 lines of 99 B: ${(encodings() / 2 ** 20).toFixed(2)} MiB of heap (what they retain: their events and the bytes)`,
  );
  console.log(JSON.stringify({ node: process.version, results }));
}

// =============================================================================================
// The child: prints LINES lines every TICK_MS ms for SECONDS s, paced on absolute deadlines
// =============================================================================================

const CHILD_SOURCE = `
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
    const head = "L" + String(n++).padStart(12, "0") + " ";
    out += head + pad.slice(0, size - head.length - 1) + "\\n";
  }
  return out;
};
const startWallMs = performance.timeOrigin + performance.now();
const start = performance.now();
let maxBlockMs = 0;
let lateTicks = 0;
let tick = 0;
const step = () => {
  // Every batch that is due, written with a blocking write (stdout is a pipe).
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
  writeFileSync(report, JSON.stringify({ lines: n, startWallMs, elapsedMs, maxBlockMs, lateTicks }));
};
step();
`;

// =============================================================================================
// Main
// =============================================================================================

function parseOptions(argv) {
  const o = {
    rounds: 9,
    daemons: [],
    daemonNodeArgs: ["--max-semi-space-size=4"],
    readers: ["grpc", "http2"],
    lines: 200,
    lineBytes: 100,
    tickMs: 10,
    seconds: 8,
    log: "null",
    busy: 0,
    specs: 0,
    stallMs: 0,
    specsSettleMs: 3000,
    keepProbe: false,
    traceDir: undefined,
    out: path.join(ROOT, "bench/results/keepup.json"),
  };
  for (const arg of argv) {
    const [key, ...rest] = arg.replace(/^--/, "").split("=");
    const value = rest.join("=");
    if (key === "rounds") o.rounds = Number(value);
    else if (key === "daemon") {
      const [label, ...spec] = value.split("=");
      const [bin, ...flags] = spec.join("=").trim().split(/\s+/);
      o.daemons.push({ label, bin: path.resolve(bin), flags });
    } else if (key === "daemon-node-args") o.daemonNodeArgs = value.split(/\s+/).filter(Boolean);
    else if (key === "readers") o.readers = value.split(",");
    else if (key === "lines") o.lines = Number(value);
    else if (key === "line-bytes") o.lineBytes = Number(value);
    else if (key === "tick-ms") o.tickMs = Number(value);
    else if (key === "seconds") o.seconds = Number(value);
    else if (key === "log") o.log = value;
    else if (key === "busy") o.busy = Number(value);
    else if (key === "specs") o.specs = Number(value);
    else if (key === "stall-ms") o.stallMs = Number(value);
    else if (key === "specs-settle-ms") o.specsSettleMs = Number(value);
    else if (key === "keep-probe") o.keepProbe = true;
    else if (key === "trace-dir") o.traceDir = path.resolve(value);
    else if (key === "out") o.out = path.resolve(value);
    else throw new Error(`unknown option ${arg}`);
  }
  if (o.daemons.length === 0) {
    o.daemons.push({
      label: "this",
      bin: path.join(ROOT, "packages/daemon/bin/procmond.js"),
      flags: [],
    });
  }
  return o;
}

/** Every process this script started and has not seen exit, by pid. */
const started = new Map();
/** Pids of daemons' children, killed (by pid, as a group) if their daemon did not stop them. */
const grandchildren = new Set();
let tempDir;

function track(child, what) {
  started.set(child.pid, { child, what });
  child.once("exit", () => started.delete(child.pid));
  return child;
}

function cleanupSync() {
  for (const [pid] of started) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  for (const pid of grandchildren) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
}

function exitedWithin(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Resolves with the first JSON line of `child`'s stdout that `pick` accepts. */
function jsonLine(child, pick, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let pending = "";
    const done = (fn, value) => {
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.off("exit", onExit);
      fn(value);
    };
    const onData = (chunk) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const parsed = JSON.parse(line);
          if (pick(parsed)) {
            done(resolve, parsed);
            return;
          }
        } catch {
          // Not ours.
        }
      }
    };
    const onExit = (code) => done(reject, new Error(`${what} exited (${code}) before answering`));
    const timer = setTimeout(
      () => done(reject, new Error(`${what}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
}

/** User plus system CPU seconds used so far by live process `pid`. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

function procStatus(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(text)?.[1] ?? 0);
    return { rssMiB: kib("VmRSS") / 1024, hwmMiB: kib("VmHWM") / 1024 };
  } catch {
    return undefined;
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

const round1 = (x) => (x === null || x === undefined ? x : Math.round(x * 10) / 10);

/** Starts `build`'s daemon with its socket and state file in `dir`, and resolves once it answers. */
async function startDaemonIn(o, build, dir, index) {
  const { createClient } = await import("@procmon/client");
  const socket = path.join(dir, "procmon.sock");
  const probeFile = path.join(dir, "probe.json");
  const logTarget = o.log === "file" ? path.join(dir, "daemon.log") : "/dev/null";
  const logFd = fs.openSync(logTarget, "w");
  const daemon = track(
    spawn(
      process.execPath,
      [
        ...o.daemonNodeArgs,
        "--import",
        pathToFileURL(SELF).href,
        build.bin,
        "--socket",
        socket,
        "--state-file",
        path.join(dir, "state.json"),
        "--log-level",
        "info",
        ...build.flags,
      ],
      {
        cwd: dir,
        env: {
          ...process.env,
          PROCMON_SOCKET: undefined,
          PROCMON_KEEPUP_PROBE: probeFile,
          PROCMON_KEEPUP_TRACE: o.traceDir && path.join(o.traceDir, `${build.label}-${index}.json`),
        },
        stdio: ["ignore", logFd, "pipe"],
      },
    ),
    "daemon",
  );
  fs.closeSync(logFd);
  let daemonStderr = "";
  daemon.stderr.setEncoding("utf8").on("data", (c) => {
    daemonStderr += c;
  });
  const client = createClient({ socket, timeoutMs: 15_000 });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await client.listProcesses({ timeoutMs: 1_000 });
      return { daemon, client };
    } catch (err) {
      if (Date.now() > deadline || daemon.exitCode !== null) {
        client.close();
        daemon.kill("SIGKILL");
        throw new Error(`daemon did not start: ${err.message}\n${daemonStderr}`);
      }
      await sleep(50);
    }
  }
}

/**
 * --specs=N: the retention issue's repro. N cycles of adding and removing a process whose spec
 * carries 250 kB of env (five variables of 50,000 B: execve takes no string over 128 KiB), then
 * the daemon's RSS and heap: at the start, after the cycles, peak, after --specs-settle-ms
 * (default 3000) idle, and the heap still live after a full GC (the probe runs gc() on SIGUSR2;
 * the daemon gets --expose-gc for it).
 */
async function runSpecsRound(o, build, index) {
  const dir = fs.mkdtempSync(path.join(tempDir, `s${index}-`));
  const loadStart = os.loadavg();
  const { daemon, client } = await startDaemonIn(o, build, dir, index);
  try {
    const before = procStatus(daemon.pid);
    const env = {};
    for (let i = 0; i < 5; i++) env[`BIG_${i}`] = String(i).repeat(50_000);
    const started = performance.now();
    for (let cycle = 0; cycle < o.specs; cycle++) {
      const added = await client.addProcess({ name: `big-${cycle}`, args: ["sleep", "100"], env });
      grandchildren.add(added.pid);
      await client.removeProcess(`big-${cycle}`);
      grandchildren.delete(added.pid);
    }
    const cyclesS = (performance.now() - started) / 1000;
    const after = procStatus(daemon.pid);
    await sleep(o.specsSettleMs);
    const settled = procStatus(daemon.pid);
    const gcFile = path.join(dir, "probe.json.gc");
    daemon.kill("SIGUSR2");
    const gcDeadline = Date.now() + 5_000;
    while (!fs.existsSync(gcFile) && Date.now() < gcDeadline) await sleep(50);
    await sleep(50);
    const live = fs.existsSync(gcFile) ? JSON.parse(fs.readFileSync(gcFile, "utf8")) : null;
    const afterGc = procStatus(daemon.pid);
    client.close();
    daemon.kill("SIGTERM");
    if (!(await exitedWithin(daemon, 15_000))) daemon.kill("SIGKILL");
    const probeFile = path.join(dir, "probe.json");
    const probe = fs.existsSync(probeFile) ? JSON.parse(fs.readFileSync(probeFile, "utf8")) : null;
    return {
      build: build.label,
      round: index,
      cycles: o.specs,
      cyclesS: round1(cyclesS),
      rssStartMiB: round1(before?.rssMiB),
      rssAfterMiB: round1(after?.rssMiB),
      rssSettledMiB: round1(settled?.rssMiB),
      rssHwmMiB: round1(settled?.hwmMiB),
      heapPeakMiB: probe ? round1(probe.heapUsedPeakBytes / 2 ** 20) : null,
      heapLiveMiB: live ? round1(live.heapUsedAfterGcBytes / 2 ** 20) : null,
      rssAfterGcMiB: round1(afterGc?.rssMiB),
      load: [round1(loadStart[0]), round1(os.loadavg()[0])],
    };
  } finally {
    client.close();
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill("SIGKILL");
      await exitedWithin(daemon, 5_000);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runRound(o, build, index) {
  const dir = fs.mkdtempSync(path.join(tempDir, `r${index}-`));
  const socket = path.join(dir, "procmon.sock");
  const probeFile = path.join(dir, "probe.json");
  const childFile = path.join(dir, "child.mjs");
  const reportFile = path.join(dir, "child-report.json");
  fs.writeFileSync(childFile, CHILD_SOURCE);
  const loadStart = os.loadavg();
  const { daemon, client } = await startDaemonIn(o, build, dir, index);
  const readers = [];
  const rss = [];
  let sampler;
  try {
    for (const kind of o.readers) {
      const reader = track(
        fork(SELF, ["--reader", kind, socket, "flood", String(o.stallMs)], {
          stdio: ["ignore", "pipe", "inherit", "ipc"],
        }),
        `reader ${kind}`,
      );
      await jsonLine(reader, (m) => m.ready, 10_000, `reader ${kind}`);
      readers.push({ kind, reader, summary: jsonLine(reader, (m) => m.summary, 120_000, kind) });
    }
    sampler = setInterval(() => {
      const st = procStatus(daemon.pid);
      if (st) rss.push(st.rssMiB);
    }, 100);
    const hour = { seconds: 3600n };
    const added = await client.addProcess({
      name: "flood",
      args: [
        process.execPath,
        childFile,
        String(o.lines),
        String(o.lineBytes),
        String(o.tickMs),
        String(o.seconds),
        reportFile,
      ],
      // Its exit is an "instant death" waiting an hour: it is not restarted during the round.
      threshold: hour,
      minRestartDelay: hour,
      maxRestartDelay: hour,
    });
    grandchildren.add(added.pid);
    const summaries = [];
    for (const r of readers) summaries.push((await r.summary).summary);
    // The child may still be writing when every reader was cut off.
    const childDeadline = Date.now() + (o.seconds + 30) * 1000;
    while (!fs.existsSync(reportFile) && Date.now() < childDeadline) await sleep(100);
    const childReport = fs.existsSync(reportFile)
      ? JSON.parse(fs.readFileSync(reportFile, "utf8"))
      : null;
    clearInterval(sampler);
    const hwm = procStatus(daemon.pid)?.hwmMiB ?? null;
    const cpuS = cpuSeconds(daemon.pid);
    await client.removeProcess("flood").catch(() => undefined);
    grandchildren.delete(added.pid);
    client.close();
    daemon.kill("SIGTERM");
    if (!(await exitedWithin(daemon, 15_000))) daemon.kill("SIGKILL");
    const probe = fs.existsSync(probeFile) ? JSON.parse(fs.readFileSync(probeFile, "utf8")) : null;
    const loadEnd = os.loadavg();
    return summarizeRound(o, build, index, {
      summaries,
      childReport,
      probe,
      rss,
      hwm,
      cpuS,
      loadStart,
      loadEnd,
    });
  } finally {
    clearInterval(sampler);
    client.close();
    for (const { reader } of readers) {
      if (!(await exitedWithin(reader, 2_000))) reader.kill("SIGKILL");
    }
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill("SIGKILL");
      await exitedWithin(daemon, 5_000);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function summarizeRound(o, build, index, r) {
  const start = r.childReport?.startWallMs ?? null;
  const end = start === null ? null : start + r.childReport.elapsedMs;
  // The daemon's loop during the flood: ticks due between the child's start and its end.
  let eldP99Ms = null;
  let eldMaxMs = null;
  let gcInFlood = null;
  if (r.probe && start !== null) {
    const late = [];
    for (let i = 0; i < r.probe.ticks.length; i += 2) {
      const at = r.probe.ticks[i];
      if (at >= start && at <= end) late.push(r.probe.ticks[i + 1]);
    }
    late.sort((a, b) => a - b);
    eldP99Ms = percentile(late, 99);
    eldMaxMs = late.at(-1) ?? null;
    const pauses = r.probe.gc.filter((g) => g.atMs >= start && g.atMs <= end);
    gcInFlood = {
      pausesOver2Ms: pauses.length,
      maxMs: pauses.reduce((m, g) => Math.max(m, g.ms), 0),
      markCompacts: pauses.filter((g) => g.kind === 2).length,
    };
  }
  const readers = r.summaries.map((s) => {
    const cut = s.status === RESOURCE_EXHAUSTED;
    const sent = cut ? /last event sent was seq (\d+)/.exec(s.statusMessage ?? "")?.[1] : undefined;
    const pending = cut ? /\((\d+) events pending\)/.exec(s.statusMessage ?? "")?.[1] : undefined;
    return {
      reader: s.reader,
      cut,
      status: s.status,
      cutAtSeq: sent === undefined ? null : Number(sent),
      pendingAtCut: pending === undefined ? null : Number(pending),
      cutAtS: cut && start !== null ? round1((s.statusAtMs - start) / 1000) : null,
      lastSeqReceived: s.lastSeq,
      outputLines: s.outputLines,
      gap: s.gap,
      lagMaxMs: s.lagMaxMs,
      lagMaxAtSeq: s.lagMaxAtSeq,
      lagP99Ms: s.lagP99Ms,
      readerEldMaxMs: s.readerEldMaxMs,
      stalls: s.stalls,
    };
  });
  const round = {
    build: build.label,
    round: index,
    readers,
    cut: readers.some((x) => x.cut),
    childLines: r.childReport?.lines ?? null,
    childPlannedS: o.seconds,
    childElapsedS: r.childReport ? round1(r.childReport.elapsedMs / 1000) : null,
    childMaxBlockMs: r.childReport ? round1(r.childReport.maxBlockMs) : null,
    eldP99Ms,
    eldMaxMs,
    gcInFlood,
    gcTotalMs: r.probe?.gcTotalMs ?? null,
    heapPeakMiB: r.probe ? round1(r.probe.heapUsedPeakBytes / 2 ** 20) : null,
    rssMaxSampledMiB: r.rss.length ? round1(Math.max(...r.rss)) : null,
    rssHwmMiB: round1(r.hwm),
    daemonCpuS: round1(r.cpuS),
    load: [round1(r.loadStart[0]), round1(r.loadEnd[0])],
  };
  if (o.keepProbe) round.probe = r.probe;
  return round;
}

function printRound(x) {
  const readers = x.readers
    .map((r) =>
      r.cut
        ? `${r.reader} CUT at seq ${r.cutAtSeq} (${r.cutAtS} s, ${r.pendingAtCut} pending)`
        : `${r.reader} ${r.outputLines} lines${r.gap ? ` GAP ${r.gap}` : ""}`,
    )
    .join("; ");
  const lag = x.readers.map((r) => r.lagMaxMs).join("/");
  const readerLoop = x.readers.map((r) => r.readerEldMaxMs).join("/");
  console.log(
    `${x.build.padEnd(8)} #${String(x.round).padEnd(2)} ${readers} | lag max ${lag} ms | reader loop max ${readerLoop} ms | ` +
      `loop p99/max ${x.eldP99Ms}/${x.eldMaxMs} ms | gc max ${x.gcInFlood?.maxMs} ms | ` +
      `RSS ${x.rssHwmMiB} MiB heap ${x.heapPeakMiB} MiB | CPU ${x.daemonCpuS} s | child ${x.childElapsedS} s ` +
      `(max block ${x.childMaxBlockMs} ms) | load ${x.load.join("->")}`,
  );
}

function summarizeBuild(rounds) {
  const sorted = (xs) => xs.filter((v) => v !== null).sort((a, b) => a - b);
  const lags = sorted(rounds.flatMap((x) => x.readers.map((r) => r.lagMaxMs)));
  const p99 = sorted(rounds.map((x) => x.eldP99Ms));
  const max = sorted(rounds.map((x) => x.eldMaxMs));
  const loads = rounds.flatMap((x) => x.load);
  return {
    rounds: rounds.length,
    roundsCut: rounds.filter((x) => x.cut).length,
    readersCut: rounds.reduce((n, x) => n + x.readers.filter((r) => r.cut).length, 0),
    readers: rounds.reduce((n, x) => n + x.readers.length, 0),
    cutAtSeqs: rounds.flatMap((x) => x.readers.filter((r) => r.cut).map((r) => r.cutAtSeq)),
    cutAtS: rounds.flatMap((x) => x.readers.filter((r) => r.cut).map((r) => r.cutAtS)),
    gaps: rounds.reduce((n, x) => n + x.readers.filter((r) => r.gap).length, 0),
    lagMaxMsMedian: percentile(lags, 50),
    lagMaxMsMax: lags.at(-1) ?? null,
    eldP99MsMedian: percentile(p99, 50),
    eldMaxMsMedian: percentile(max, 50),
    eldMaxMsMax: max.at(-1) ?? null,
    rssHwmMiBMax: Math.max(...rounds.map((x) => x.rssHwmMiB ?? 0)),
    daemonCpuSMedian: percentile(sorted(rounds.map((x) => x.daemonCpuS)), 50),
    heapPeakMiBMax: Math.max(...rounds.map((x) => x.heapPeakMiB ?? 0)),
    childSlowedRounds: rounds.filter(
      (x) => x.childElapsedS !== null && x.childElapsedS > x.childPlannedS + 0.5,
    ).length,
    loadMin: Math.min(...loads),
    loadMax: Math.max(...loads),
  };
}

async function runSpecs(o, startedAt) {
  console.log(
    `keepup --specs: ${o.rounds} rounds per build of ${o.specs} add/rm cycles of a 250 kB env, ` +
      `builds ${o.daemons.map((d) => d.label).join(", ")}; load ${os.loadavg().map(round1).join(" ")}`,
  );
  const rounds = [];
  for (let i = 0; i < o.rounds; i++) {
    for (const build of o.daemons) {
      const x = await runSpecsRound(o, build, i + 1);
      console.log(
        `${x.build.padEnd(8)} #${String(x.round).padEnd(2)} RSS ${x.rssStartMiB} -> ${x.rssAfterMiB} MiB ` +
          `(${x.rssSettledMiB} after ${o.specsSettleMs} ms idle, peak ${x.rssHwmMiB}), heap peak ` +
          `${x.heapPeakMiB} MiB, live after a full GC ${x.heapLiveMiB} MiB (RSS then ${x.rssAfterGcMiB} MiB), ${x.cyclesS} s | load ${x.load.join("->")}`,
      );
      rounds.push(x);
    }
  }
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  const out = o.out.replace(/\.json$/, "-specs.json");
  fs.writeFileSync(out, `${JSON.stringify({ startedAt, rounds }, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), out)}`);
}

async function runMain() {
  const o = parseOptions(process.argv.slice(2));
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "procmon-keepup-"));
  process.on("exit", cleanupSync);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      cleanupSync();
      process.exit(130);
    });
  }
  for (let i = 0; i < o.busy; i++) {
    const spinner = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
    track(spinner, "busy");
  }
  const startedAt = new Date().toISOString();
  if (o.specs > 0) {
    // For the probe's gc() on SIGUSR2.
    o.daemonNodeArgs = [...o.daemonNodeArgs, "--expose-gc"];
    await runSpecs(o, startedAt);
    return;
  }
  console.log(
    `keepup: ${o.rounds} rounds per build, builds ${o.daemons.map((d) => d.label).join(", ")}; ` +
      `child ${o.lines} lines of ${o.lineBytes} B every ${o.tickMs} ms for ${o.seconds} s; ` +
      `readers ${o.readers.join(", ")}${o.stallMs ? ` stalling ${o.stallMs} ms every 2 s` : ""}; daemon node ${o.daemonNodeArgs.join(" ")}; ` +
      `log -> ${o.log === "file" ? "a file" : "/dev/null"}; ${o.busy} busy; load ${os.loadavg().map(round1).join(" ")}`,
  );
  const rounds = [];
  for (let i = 0; i < o.rounds; i++) {
    for (const build of o.daemons) {
      const round = await runRound(o, build, i + 1);
      printRound(round);
      rounds.push(round);
    }
  }
  const builds = {};
  for (const build of o.daemons) {
    builds[build.label] = {
      bin: path.relative(ROOT, build.bin),
      flags: build.flags,
      ...summarizeBuild(rounds.filter((x) => x.build === build.label)),
    };
    console.log(`${build.label}: ${JSON.stringify(builds[build.label])}`);
  }
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(
    o.out,
    `${JSON.stringify(
      {
        startedAt,
        endedAt: new Date().toISOString(),
        host: { cpus: os.cpus().length, node: process.version },
        options: { ...o, daemons: undefined },
        builds,
        rounds,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`results: ${path.relative(process.cwd(), o.out)}`);
  for (const [pid, { what }] of started) if (what === "busy") process.kill(pid, "SIGKILL");
}

// Last, so that every declaration above is initialised.
if (process.env.PROCMON_KEEPUP_PROBE && process.argv[1] !== SELF) {
  installProbe(process.env.PROCMON_KEEPUP_PROBE);
} else if (process.argv[2] === "--heap-worker") {
  await runHeap(process.argv[3]);
} else if (process.argv.includes("--heap")) {
  const o = parseOptions(process.argv.slice(2).filter((a) => a !== "--heap"));
  const dist = path.resolve(path.dirname(o.daemons[0].bin), "../dist");
  const worker = spawn(process.execPath, ["--expose-gc", SELF, "--heap-worker", dist], {
    stdio: "inherit",
  });
  await new Promise((resolve) => worker.once("exit", resolve));
} else if (process.argv[2] === "--reader") {
  await runReader(process.argv[3], process.argv[4], process.argv[5], Number(process.argv[6] ?? 0));
} else {
  await runMain();
}
