#!/usr/bin/env node
// procmond benchmark: WatchEvents fan-out, a stuck subscriber, and output throughput.
//
//   npm run build && node bench/events.mjs [--quick] [--cpu-prof] [--only=fanout,slow,throughput]
//
// --quick      a reduced run in < 40 s: the storm fan-out only (25 restarters, 5 printers, 3 s),
//              30,000-line bursts, 3 MB throughput runs, one sweep step per line size
// --cpu-prof   run every daemon under `node --cpu-prof`; the profiles go to --cpu-prof-dir=DIR
//              (default: a new directory in the system temp dir, kept) and the top self-time
//              functions of each are put in the JSON (and printed)
// --only=LIST  run only some scenarios (fanout, slow, throughput)
// --fanout=LIST  run only these fan-out loads (storm, calm, light; --quick runs storm only)
// --daemon=BIN run this procmond instead of packages/daemon/bin/procmond.js (a snapshot of the
//              build, or a patched copy to compare)
// --daemon-node-args="ARGS"  node options for the daemon (e.g. "--max-semi-space-size=4")
// --out=FILE   write the JSON there instead of bench/results/events.json
//
// Scenarios (each with a fresh daemon: --no-state-file, --log-level info, stdout to /dev/null
// unless said otherwise; its stdout never goes through this script):
//
// 1. fanout: 100 WatchEvents subscribers (include_output, all processes) as 10 gRPC connections
//    x 10 streams, in 2 worker processes (this script forked with --worker; raw grpc-js streams
//    with a minimal decoder of seq/time/kind, checked against protobuf-es on the first messages),
//    while 50 restarters `sh -c 'sleep S; exit 0'` (threshold 10ms: restarted at once) and 10
//    line writers (bench/linewriter.c, 64-byte lines) run for the window. Three loads: "storm"
//    (S = 0.05, 100 lines/s each: the issue's), "calm" (S = 5, 100 lines/s), "light" (S = 5,
//    20 lines/s); a spawn blocks the daemon's loop, so the storm measures mostly that.
//    Measures deliveries/s (sum over subscribers), delivery latency (the daemon's event.time vs
//    the subscriber's wall clock when the message is decoded), gaps/duplicates in each
//    subscriber's seq sequence, how many streams ended with RESOURCE_EXHAUSTED, the daemon's RSS
//    (sampled every 100 ms, and VmHWM) and CPU.
// 2. slow: one subscriber that stops reading (its stream paused right after the headers) beside a
//    fast one, while a child writes 100-byte lines as fast as it can. The stuck one must end with
//    RESOURCE_EXHAUSTED, the fast one must get every line, RSS must stay < 200 MB, and the child's
//    write rate must not drop compared with the rounds without the stuck subscriber next to it
//    (rounds A B B A A B). Run twice: with an unpaced child, and with a child paced at a rate that
//    one subscriber can follow (so that "the fast one sees everything" is tested on its own).
// 3. throughput: a child writing N MB of 100-byte and of 1 KiB lines as fast as it can, (a) into
//    /dev/null (the baseline, same run, median of 3), (b) into a pipe read by a bare Node process
//    (context), (c) through the daemon with no subscriber (only the log sink), (d) through the
//    daemon to one include_output subscriber; (c) and (d) with the daemon's stdout on /dev/null
//    and on a file on disk. Then a rate sweep: the highest paced line rate one subscriber follows
//    without being ended.
//
// Everything the script starts (daemons, workers, baseline writers, the temp dir) is stopped and
// removed on exit, on error and on SIGINT/SIGTERM; children of the daemon carry a marker in
// their environment, and any left behind by a daemon that did not stop cleanly are killed by pid
// after checking that marker. Results: a table on stdout and JSON in bench/results/events.json
// (events-quick.json with --quick).

import { execFileSync, fork, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const HERE = path.dirname(SELF);
const ROOT = path.resolve(HERE, "..");

if (process.argv[2] === "--worker") {
  await runWorker();
} else {
  await runMain();
}

// =============================================================================================
// The subscriber worker
// =============================================================================================

/**
 * A forked process holding gRPC connections and WatchEvents streams, driven by IPC requests
 * {id, type, ...} and answering {id, ok, result | error}.
 */
async function runWorker() {
  const grpc = await import("@grpc/grpc-js");
  const { create, toBinary, fromBinary } = await import("@bufbuild/protobuf");
  const pb = await import("@procmon/api/gen/procmon/v1/procmon_pb.js");
  const METHOD = `/${pb.ProcessMonitor.typeName}/WatchEvents`;
  const KIND_FIELD = { 10: "added", 11: "removed", 12: "started", 13: "exited" };
  Object.assign(KIND_FIELD, { 14: "restartScheduled", 15: "stopping", 16: "killed" });
  Object.assign(KIND_FIELD, { 17: "spawnFailed", 18: "output" });

  const conns = new Map();
  const streams = new Map();
  const hists = new Map();
  const decoderCheck = { checked: 0, mismatches: 0, firstMismatch: undefined };
  const clockOffsets = [];
  const sampleClock = () =>
    clockOffsets.push(performance.timeOrigin + performance.now() - Date.now());
  sampleClock();

  // --- a minimal decoder of WatchEventsResponse{event: Event{seq, time, process, kind}} ---
  function varint(buf, pos) {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos.p++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  }
  function skip(buf, pos, wire) {
    if (wire === 0) varint(buf, pos);
    else if (wire === 2) pos.p += varint(buf, pos);
    else if (wire === 1) pos.p += 8;
    else if (wire === 5) pos.p += 4;
    else throw new Error(`wire type ${wire}`);
  }
  function decodeOutput(buf, pos, end, ev) {
    while (pos.p < end) {
      const tag = varint(buf, pos);
      if (tag === 0x12) {
        const len = varint(buf, pos);
        ev.lineBytes = len;
        // "L" + 12 digits: the writer's line number.
        if (len >= 13 && buf[pos.p] === 0x4c) {
          let n = 0;
          for (let i = 1; i <= 12; i++) n = n * 10 + (buf[pos.p + i] - 48);
          ev.lineNo = n;
        }
        pos.p += len;
      } else skip(buf, pos, tag & 7);
    }
  }
  function decodeEvent(buf, pos, end, ev) {
    while (pos.p < end) {
      const tag = varint(buf, pos);
      const field = tag >>> 3;
      if (tag === 0x08) ev.seq = varint(buf, pos);
      else if (tag === 0x12) {
        const len = varint(buf, pos);
        const stop = pos.p + len;
        let seconds = 0;
        let nanos = 0;
        while (pos.p < stop) {
          const t = varint(buf, pos);
          if (t === 0x08) seconds = varint(buf, pos);
          else if (t === 0x10) nanos = varint(buf, pos);
          else skip(buf, pos, t & 7);
        }
        ev.timeMs = seconds * 1000 + nanos / 1e6;
      } else if (tag === 0x1a) {
        const len = varint(buf, pos);
        ev.process = buf.toString("utf8", pos.p, pos.p + len);
        pos.p += len;
      } else if (field >= 10 && field <= 18 && (tag & 7) === 2) {
        ev.kind = field;
        const len = varint(buf, pos);
        if (field === 18) decodeOutput(buf, pos, pos.p + len, ev);
        else pos.p += len;
      } else skip(buf, pos, tag & 7);
    }
  }
  function decode(buf) {
    const ev = { seq: 0, timeMs: 0, process: "", kind: 0, lineBytes: 0, lineNo: -1 };
    const pos = { p: 0 };
    while (pos.p < buf.length) {
      const tag = varint(buf, pos);
      if (tag === 0x0a) {
        const len = varint(buf, pos);
        decodeEvent(buf, pos, pos.p + len, ev);
      } else skip(buf, pos, tag & 7);
    }
    if (decoderCheck.checked < 2000) check(buf, ev);
    return ev;
  }
  function check(buf, ev) {
    decoderCheck.checked++;
    const { event } = fromBinary(pb.WatchEventsResponseSchema, buf);
    const timeMs = Number(event.time.seconds) * 1000 + event.time.nanos / 1e6;
    const kind = event.kind.case;
    const ok =
      Number(event.seq) === ev.seq &&
      timeMs === ev.timeMs &&
      event.process === ev.process &&
      kind === KIND_FIELD[ev.kind] &&
      (kind !== "output" || Buffer.byteLength(event.kind.value.line) === ev.lineBytes);
    if (!ok) {
      decoderCheck.mismatches++;
      decoderCheck.firstMismatch ??= { seq: String(event.seq), kind, ev };
    }
  }

  // --- latency histogram: 0.1 ms buckets from -10 ms to 60 s ---
  const H_MIN = -10;
  const H_RES = 0.1;
  const H_N = Math.ceil((60_000 - H_MIN) / H_RES);
  function hist(group) {
    let h = hists.get(group);
    if (!h) {
      h = { buckets: new Uint32Array(H_N), over: 0, n: 0, max: Number.NEGATIVE_INFINITY };
      hists.set(group, h);
    }
    return h;
  }
  function record(h, ms) {
    h.n++;
    if (ms > h.max) h.max = ms;
    const i = Math.floor((ms - H_MIN) / H_RES);
    if (i >= H_N) h.over++;
    else h.buckets[Math.max(i, 0)]++;
  }
  function sparse(h) {
    const pairs = [];
    for (let i = 0; i < H_N; i++) if (h.buckets[i] !== 0) pairs.push([i, h.buckets[i]]);
    return { min: H_MIN, res: H_RES, pairs, over: h.over, n: h.n, max: h.max };
  }

  // --- connections and streams ---
  function connection(key, socket) {
    let conn = conns.get(key);
    if (!conn) {
      // A local subchannel pool: each Client gets its own HTTP/2 connection, not a shared one.
      conn = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
        "grpc.enable_retries": 0,
        "grpc.max_receive_message_length": 8 * 1024 * 1024,
        // As the SDK (packages/client/src/client.ts): a 1 MiB HTTP/2 window.
        "grpc-node.flow_control_window": 1024 * 1024,
      });
      conns.set(key, conn);
    }
    return conn;
  }

  function open(socket, spec) {
    const request = toBinary(
      pb.WatchEventsRequestSchema,
      create(pb.WatchEventsRequestSchema, {
        names: spec.names ?? [],
        includeOutput: spec.includeOutput ?? true,
        ...(spec.afterSeq === undefined ? {} : { afterSeq: BigInt(spec.afterSeq) }),
      }),
    );
    const call = connection(spec.conn, socket).makeServerStreamRequest(
      METHOD,
      () => Buffer.from(request),
      decode,
      {},
      new grpc.Metadata(),
      {},
    );
    const s = {
      id: spec.id,
      group: spec.group,
      call,
      track: spec.track ?? false,
      hist: hist(spec.group),
      ready: false,
      readyAt: 0,
      firstSeq: 0,
      lastSeq: 0,
      count: 0,
      gaps: 0,
      missing: 0,
      dups: 0,
      kinds: new Array(19).fill(0),
      perProcess: new Map(),
      ended: undefined,
      cancelledByUs: false,
      paused: false,
    };
    streams.set(spec.id, s);
    const readyWaiters = [];
    s.whenReady = () =>
      s.ready || s.ended ? Promise.resolve() : new Promise((r) => readyWaiters.push(r));
    const wake = () => {
      for (const r of readyWaiters.splice(0)) r();
    };
    call.on("metadata", () => {
      s.ready = true;
      s.readyAt = Date.now();
      if (spec.pauseOnReady) {
        call.pause();
        s.paused = true;
      }
      wake();
    });
    call.on("data", (ev) => {
      const now = performance.timeOrigin + performance.now();
      s.count++;
      const seq = ev.seq;
      if (s.lastSeq === 0) s.firstSeq = seq;
      else if (seq <= s.lastSeq) s.dups++;
      else if (seq !== s.lastSeq + 1) {
        s.gaps++;
        s.missing += seq - s.lastSeq - 1;
      }
      if (seq > s.lastSeq) s.lastSeq = seq;
      record(s.hist, now - ev.timeMs);
      s.kinds[ev.kind]++;
      if (s.track && ev.kind === 18) {
        let p = s.perProcess.get(ev.process);
        if (!p) {
          p = { lines: 0, bytes: 0, firstRecv: now, lastRecv: now, lastLineNo: 0, lineBreaks: 0 };
          s.perProcess.set(ev.process, p);
        }
        p.lines++;
        p.bytes += ev.lineBytes;
        p.lastRecv = now;
        if (ev.lineNo !== p.lastLineNo + 1) p.lineBreaks++;
        p.lastLineNo = ev.lineNo;
      }
    });
    call.on("error", () => {});
    call.on("status", (status) => {
      const last = status.metadata?.get("procmon-last-delivered-seq")?.[0];
      s.ended = {
        code: status.code,
        codeName: grpc.status[status.code],
        details: status.details,
        lastDeliveredSeq: last === undefined ? undefined : String(last),
        at: Date.now(),
      };
      wake();
    });
    return s;
  }

  function summary(s) {
    return {
      id: s.id,
      group: s.group,
      ready: s.ready,
      firstSeq: s.firstSeq,
      lastSeq: s.lastSeq,
      count: s.count,
      gaps: s.gaps,
      missing: s.missing,
      dups: s.dups,
      kinds: Object.fromEntries(
        s.kinds.map((n, f) => [KIND_FIELD[f], n]).filter(([k, n]) => k && n > 0),
      ),
      perProcess: Object.fromEntries(s.perProcess),
      ended: s.ended,
      cancelledByUs: s.cancelledByUs,
    };
  }

  const select = (ids) => (ids ? ids.map((id) => streams.get(id)) : [...streams.values()]);

  const handlers = {
    async open({ socket, streams: specs }) {
      const opened = specs.map((spec) => open(socket, spec));
      await Promise.all(opened.map((s) => s.whenReady()));
      return {
        ready: opened.filter((s) => s.ready).length,
        ended: opened.filter((s) => s.ended).map(summary),
      };
    },
    pause({ ids }) {
      for (const s of select(ids)) {
        s.call.pause();
        s.paused = true;
      }
    },
    resume({ ids }) {
      for (const s of select(ids)) {
        s.paused = false;
        s.call.resume();
      }
    },
    snapshot() {
      let deliveries = 0;
      for (const s of streams.values()) deliveries += s.count;
      return { deliveries, cpu: process.cpuUsage(), at: Date.now() };
    },
    /** Resolves when every selected stream has ended or reached `seq` / `lines` of `process`. */
    async waitFor({ ids, seq, process: name, lines, ended, timeoutMs }) {
      const deadline = Date.now() + timeoutMs;
      const done = (s) => {
        if (s.ended) return true;
        if (ended) return false;
        if (seq !== undefined && s.lastSeq < seq) return false;
        if (name !== undefined && (s.perProcess.get(name)?.lines ?? 0) < lines) return false;
        return true;
      };
      for (;;) {
        const pending = select(ids).filter((s) => !done(s));
        if (pending.length === 0) return { timedOut: false };
        if (Date.now() > deadline) return { timedOut: true, pending: pending.map((s) => s.id) };
        await sleep(20);
      }
    },
    stats({ ids, groups }) {
      sampleClock();
      const out = { streams: select(ids).map(summary), hists: {}, decoderCheck, clockOffsets };
      for (const g of groups ?? [...hists.keys()])
        if (hists.has(g)) out.hists[g] = sparse(hists.get(g));
      return out;
    },
    /** From now on, latencies of every stream go to histogram `group`. */
    phase({ group }) {
      for (const s of streams.values()) s.hist = hist(group);
    },
    cancel({ ids }) {
      for (const s of select(ids)) {
        if (!s.ended) s.cancelledByUs = true;
        s.call.cancel();
        streams.delete(s.id);
      }
    },
    closeConnections() {
      for (const conn of conns.values()) conn.close();
      conns.clear();
    },
  };

  process.on("message", async (msg) => {
    try {
      const result = await handlers[msg.type](msg);
      process.send({ id: msg.id, ok: true, result });
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: err?.stack ?? String(err) });
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ ready: true });
}

// =============================================================================================
// The benchmark
// =============================================================================================

async function runMain() {
  const { createClient } = await import("@procmon/client");
  const RESULTS_DIR = path.join(HERE, "results");

  const argv = process.argv.slice(2);
  const QUICK = argv.includes("--quick");
  const CPU_PROF = argv.includes("--cpu-prof");
  const value = (flag) => argv.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  const ONLY = value("--only")?.split(",");
  const ONLY_VARIANTS = value("--fanout")?.split(",");
  const DAEMON_BIN = path.resolve(
    value("--daemon") ?? path.join(ROOT, "packages/daemon/bin/procmond.js"),
  );
  const OUT = value("--out");
  const DAEMON_NODE_ARGS = value("--daemon-node-args")?.split(" ").filter(Boolean) ?? [];
  const PROF_DIR = path.resolve(
    value("--cpu-prof-dir") ?? path.join(os.tmpdir(), `procmon-events-prof-${process.pid}`),
  );
  for (const a of argv) {
    if (
      !["--quick", "--cpu-prof"].includes(a) &&
      !/^--(only|fanout|daemon|daemon-node-args|out|cpu-prof-dir)=/.test(a)
    ) {
      process.stderr.write(
        `unknown argument ${a}\nusage: node bench/events.mjs [--quick] [--cpu-prof] [--only=fanout,slow,throughput] [--fanout=storm,calm,light] [--daemon=BIN] [--daemon-node-args="ARGS"] [--out=FILE] [--cpu-prof-dir=DIR]\n`,
      );
      process.exit(2);
    }
  }
  const runs = (name) => !ONLY || ONLY.includes(name);

  // Fan-out loads. "storm" is the issue's: 50 `sh -c 'sleep 0.05; exit 0'` restarting at once.
  // On this machine a spawn blocks the daemon's loop for 10-40 ms (fork of a ~100 MB process), so
  // the storm saturates the daemon on its own; "calm" keeps the same 50 restarters and printers
  // but with 5 s lives (~10 restarts/s), to see the delivery path without the spawn cost; "light"
  // also prints 5x less, to see whether 100 subscribers keep up at a lower event rate.
  const FANOUT_VARIANTS = [
    { label: "storm", restartSleep: "0.05", printerRate: 100 },
    { label: "calm", restartSleep: "5", printerRate: 100 },
    { label: "light", restartSleep: "5", printerRate: 20 },
  ].filter((v) => !ONLY_VARIANTS || ONLY_VARIANTS.includes(v.label));
  const FANOUT_BASE = {
    workers: 2,
    conns: 10,
    perConn: 10,
    restarters: 50,
    printers: 10,
    printerBytes: 64,
  };
  const CFG = QUICK
    ? {
        fanout: {
          ...FANOUT_BASE,
          restarters: 25,
          printers: 5,
          windowSec: 3,
          warmupSec: 1,
          variants: ["storm"],
        },
        slow: { lines: 30_000, rounds: ["without", "with"], pacedRate: 5_000, pacedSec: 1.5 },
        throughput: {
          mb: 3,
          baselineRepeats: 3,
          repeats: 1,
          sinks: ["null"],
          sweepSec: 1,
          rates: { 100: [2_000], 1024: [1_000] },
        },
      }
    : {
        fanout: {
          ...FANOUT_BASE,
          windowSec: 20,
          warmupSec: 2,
          variants: ["storm", "calm", "light"],
        },
        slow: {
          lines: 500_000,
          rounds: ["without", "with", "with", "without", "without", "with"],
          pacedRate: 5_000,
          pacedSec: 4,
        },
        throughput: {
          mb: 30,
          baselineRepeats: 3,
          repeats: 2,
          sinks: ["null", "file"],
          sweepSec: 3,
          rates: {
            100: [2_000, 5_000, 10_000, 20_000, 40_000, 80_000],
            1024: [1_000, 2_000, 5_000, 10_000, 20_000],
          },
        },
      };
  const TARGETS = { lostEvents: 0, deliveryP99Ms: 50, throughputRatio: 0.5, rssMB: 200 };

  // -------------------------------------------------------------------------------------------
  // Things to clean up

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "procmon-events-"));
  const LINEWRITER = path.join(tmp, "linewriter");
  const MARKER_KEY = "PROCMON_EVENTS_BENCH";
  const MARKER = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  /** Processes this script spawned: { proc, name }. */
  const started = new Set();
  const clients = new Set();

  function log(message) {
    process.stderr.write(`[events ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
  }

  function exited(proc) {
    return proc.exitCode !== null || proc.signalCode !== null;
  }
  async function waitExit(proc, timeoutMs) {
    if (exited(proc)) return true;
    return Promise.race([
      new Promise((resolve) => proc.once("exit", () => resolve(true))),
      sleep(timeoutMs).then(() => false),
    ]);
  }
  function track(proc, name) {
    const entry = { proc, name };
    started.add(entry);
    proc.on("exit", () => started.delete(entry));
    return proc;
  }

  /** Pids of live processes whose environment carries this run's marker (the daemon's children). */
  function markedPids() {
    const pids = [];
    const needle = `${MARKER_KEY}=${MARKER}`;
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

  let cleaning;
  function cleanup() {
    cleaning ??= (async () => {
      for (const client of clients) {
        try {
          client.close();
        } catch {}
      }
      clients.clear();
      for (const { proc, name } of [...started]) {
        if (exited(proc)) continue;
        log(`stopping ${name} (pid ${proc.pid})`);
        try {
          proc.kill("SIGTERM");
        } catch {}
        if (!(await waitExit(proc, 20_000))) {
          log(`${name} did not exit after SIGTERM: SIGKILL`);
          try {
            proc.kill("SIGKILL");
          } catch {}
          await waitExit(proc, 5_000);
        }
      }
      const left = markedPids();
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      if (left.length > 0) log(`killed ${left.length} leftover children of a daemon`);
      fs.rmSync(tmp, { recursive: true, force: true });
    })();
    return cleaning;
  }
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      log(`${signal}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }

  // -------------------------------------------------------------------------------------------
  // /proc, statistics

  const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  function cpuSec(pid) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {
      return Number.NaN;
    }
  }
  function memMB(pid) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = (k) =>
        Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? Number.NaN);
      return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
    } catch {
      return { rss: Number.NaN, hwm: Number.NaN };
    }
  }
  function unixSockets(pid) {
    let n = 0;
    try {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
        } catch {}
      }
    } catch {}
    return n;
  }
  const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
  const round = (x, d = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

  /** Merges sparse histograms from workers and reads percentiles off them. */
  function mergeHists(list) {
    if (list.length === 0) return { n: 0 };
    const { min, res } = list[0];
    const counts = new Map();
    let over = 0;
    let n = 0;
    let max = Number.NEGATIVE_INFINITY;
    for (const h of list) {
      for (const [i, c] of h.pairs) counts.set(i, (counts.get(i) ?? 0) + c);
      over += h.over;
      n += h.n;
      if (h.max > max) max = h.max;
    }
    const sorted = [...counts.entries()].sort((a, b) => a[0] - b[0]);
    const at = (p) => {
      const rank = Math.max(1, Math.ceil((p / 100) * n));
      let seen = 0;
      for (const [i, c] of sorted) {
        seen += c;
        if (seen >= rank) return min + (i + 1) * res;
      }
      return max;
    };
    return n === 0
      ? { n: 0 }
      : {
          n,
          p50: round(at(50)),
          p90: round(at(90)),
          p99: round(at(99)),
          p999: round(at(99.9)),
          max: round(max),
          over60s: over,
        };
  }

  // -------------------------------------------------------------------------------------------
  // Daemons, workers, children

  let daemonCount = 0;
  async function startDaemon({ sink, tag }) {
    const n = ++daemonCount;
    const socket = path.join(tmp, `procmond-${n}.sock`);
    const outPath = sink === "file" ? path.join(tmp, `procmond-${n}-${tag}.log`) : "/dev/null";
    const nodeArgs = [...DAEMON_NODE_ARGS];
    if (CPU_PROF) {
      fs.mkdirSync(PROF_DIR, { recursive: true });
      nodeArgs.push(
        "--cpu-prof",
        `--cpu-prof-dir=${PROF_DIR}`,
        `--cpu-prof-name=${tag}.cpuprofile`,
      );
    }
    nodeArgs.push(DAEMON_BIN, "--socket", socket, "--no-state-file", "--log-level", "info");
    const outFd = fs.openSync(outPath, "w");
    const proc = track(
      spawn(process.execPath, nodeArgs, { cwd: ROOT, stdio: ["ignore", outFd, "pipe"] }),
      `procmond (${tag})`,
    );
    fs.closeSync(outFd);
    const stderr = [];
    proc.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr.push(chunk);
      if (stderr.length > 50) stderr.shift();
    });
    const client = createClient({ socket });
    clients.add(client);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited(proc))
        throw new Error(`procmond exited with ${proc.exitCode}: ${stderr.join("")}`);
      try {
        await client.listProcesses({ timeoutMs: 2_000 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`procmond never answered: ${err.message}`);
        await sleep(50);
      }
    }
    const rss = { max: 0, samples: 0, sum: 0 };
    const sampler = setInterval(() => {
      const { rss: mb } = memMB(proc.pid);
      if (!Number.isFinite(mb)) return;
      rss.samples++;
      rss.sum += mb;
      if (mb > rss.max) rss.max = mb;
    }, 100);
    const cpu0 = cpuSec(proc.pid);
    const t0 = performance.now();
    return {
      proc,
      socket,
      client,
      sink,
      outPath,
      rss,
      cpuSec: () => cpuSec(proc.pid),
      /** Stops it (SIGTERM); returns memory and CPU over its life, and the log file's size. */
      async stop() {
        clearInterval(sampler);
        const mem = memMB(proc.pid);
        const cpu = cpuSec(proc.pid) - cpu0;
        const lifeSec = (performance.now() - t0) / 1000;
        client.close();
        clients.delete(client);
        proc.kill("SIGTERM");
        if (!(await waitExit(proc, 30_000))) {
          log(`procmond (${tag}) did not stop within 30 s: SIGKILL`);
          proc.kill("SIGKILL");
          await waitExit(proc, 5_000);
        }
        let logBytes;
        let listening;
        if (sink === "file") {
          logBytes = fs.statSync(outPath).size;
          const fd = fs.openSync(outPath, "r");
          const head = Buffer.alloc(64 * 1024);
          const got = fs.readSync(fd, head, 0, head.length, 0);
          fs.closeSync(fd);
          listening = head.toString("utf8", 0, got).includes('"msg":"procmond listening"');
          fs.rmSync(outPath, { force: true });
        }
        return {
          rssMaxSampledMB: round(rss.max, 1),
          rssMeanMB: round(rss.sum / (rss.samples || 1), 1),
          hwmMB: round(mem.hwm, 1),
          cpuPctOfCore: round((100 * cpu) / lifeSec, 1),
          exitCode: proc.exitCode,
          ...(sink === "file" ? { logBytes, listeningLineSeen: listening } : {}),
        };
      },
    };
  }

  async function startWorker(name) {
    const proc = track(
      fork(SELF, ["--worker"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] }),
      name,
    );
    const pending = new Map();
    let nextId = 0;
    let ready;
    const isReady = new Promise((r) => {
      ready = r;
    });
    proc.on("message", (msg) => {
      if (msg.ready) return ready();
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${name}: ${msg.error}`));
    });
    proc.on("exit", (code, signal) => {
      for (const p of pending.values()) p.reject(new Error(`${name} exited (${code ?? signal})`));
      pending.clear();
    });
    await isReady;
    return {
      proc,
      call(type, args = {}) {
        return new Promise((resolve, reject) => {
          const id = ++nextId;
          pending.set(id, { resolve, reject });
          proc.send({ id, type, ...args });
        });
      },
      cpuSec: () => cpuSec(proc.pid),
      async stop() {
        try {
          await this.call("closeConnections");
        } catch {}
        proc.disconnect();
        if (!(await waitExit(proc, 10_000))) proc.kill("SIGTERM");
        await waitExit(proc, 5_000);
      },
    };
  }

  const env = { [MARKER_KEY]: MARKER };
  const ms = (n) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

  function readReport(file) {
    try {
      const text = fs.readFileSync(file, "utf8").trim();
      if (!text) return undefined;
      const [lines, bytes, ns, startRealNs] = text.split(" ").map(Number);
      return {
        lines,
        bytes,
        sec: ns / 1e9,
        mbps: bytes / 1e6 / (ns / 1e9),
        startWallMs: startRealNs / 1e6,
      };
    } catch {
      return undefined;
    }
  }
  async function waitReport(file, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = readReport(file);
      if (r) return r;
      if (Date.now() > deadline) throw new Error(`no report in ${file} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }
  let reportCount = 0;
  const reportFile = () => path.join(tmp, `report-${++reportCount}`);

  /** Runs the line writer directly (not under the daemon), stdout to /dev/null or a pipe read here. */
  async function runWriterDirect(size, lines, target) {
    const report = reportFile();
    const out = target === "devnull" ? fs.openSync("/dev/null", "w") : "pipe";
    const proc = track(
      spawn(LINEWRITER, [String(size), String(lines), "0", report], {
        stdio: ["ignore", out, "ignore"],
      }),
      "linewriter",
    );
    if (typeof out === "number") fs.closeSync(out);
    let read = 0;
    // A bare Node reader: counts bytes, splits nothing.
    proc.stdout?.on("data", (chunk) => {
      read += chunk.length;
    });
    await waitExit(proc, 300_000);
    const r = readReport(report);
    if (!r) throw new Error(`linewriter ${size} ${lines} ${target}: no report`);
    if (target === "pipe" && read !== r.bytes)
      throw new Error(`pipe reader got ${read} of ${r.bytes}`);
    return r;
  }

  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };

  // -------------------------------------------------------------------------------------------
  // Scenario 1: fan-out

  async function fanout(variant) {
    const c = { ...CFG.fanout, ...variant };
    const RESTARTER = ["/bin/sh", "-c", `sleep ${c.restartSleep}; exit 0`];
    log(
      `fan-out (${c.label}): ${c.conns * c.perConn} subscribers (${c.conns} connections x ${c.perConn} streams, ${c.workers} workers), ${c.restarters} x ${RESTARTER.join(" ")}, ${c.printers} printers, ${c.windowSec} s`,
    );
    const load0 = loadavg();
    const d = await startDaemon({ sink: "null", tag: `fanout-${c.label}` });
    const workers = [];
    for (let i = 0; i < c.workers; i++) workers.push(await startWorker(`subscriber worker ${i}`));
    const socketsBefore = unixSockets(d.proc.pid);
    await Promise.all(
      workers.map((w, wi) => {
        const streams = [];
        for (let ci = wi; ci < c.conns; ci += c.workers) {
          for (let k = 0; k < c.perConn; k++) {
            streams.push({
              id: `c${ci}s${k}`,
              conn: `c${ci}`,
              group: "setup",
              includeOutput: true,
            });
          }
        }
        return w.call("open", { socket: d.socket, streams });
      }),
    );
    const connections = unixSockets(d.proc.pid) - socketsBefore;
    log(`fan-out: subscribers live on ${connections} new connections`);

    const printers = Array.from({ length: c.printers }, (_, i) => ({
      name: `printer-${i}`,
      args: [LINEWRITER, String(c.printerBytes), "0", String(c.printerRate), "-"],
      env,
    }));
    const restarters = Array.from({ length: c.restarters }, (_, i) => ({
      name: `restarter-${i}`,
      args: RESTARTER,
      env,
      threshold: ms(10),
      minRestartDelay: ms(100),
      maxRestartDelay: ms(1000),
    }));
    // Ten at a time: each spawn is synchronous in the daemon, and one burst of 60 would block its
    // loop for seconds; one at a time takes minutes once a storm of restarts runs.
    const tAdd = performance.now();
    // Restarters first: printers added last do not leave the subscribers a backlog from the
    // spawns of set-up.
    const specs = [...restarters, ...printers];
    for (let i = 0; i < specs.length; i += 10) {
      await Promise.all(specs.slice(i, i + 10).map((spec) => d.client.addProcess(spec)));
    }
    const addMs = performance.now() - tAdd;
    await sleep(c.warmupSec * 1000);
    await Promise.all(workers.map((w) => w.call("phase", { group: "window" })));

    const snap = async () => {
      const [list, ...ws] = await Promise.all([
        d.client.listProcesses(),
        ...workers.map((w) => w.call("snapshot")),
      ]);
      return {
        t: performance.now(),
        seq: Number(list.lastEventSeq),
        restarts: list.processes.reduce((a, p) => a + p.restartCount, 0),
        deliveries: ws.reduce((a, w) => a + w.deliveries, 0),
        daemonCpu: d.cpuSec(),
        workerCpu: workers.map((w) => w.cpuSec()),
      };
    };
    const s0 = await snap();
    const windowStartWall = Date.now();
    // How long a control call takes meanwhile: the daemon's responsiveness under this load.
    const rpcMs = [];
    const windowEnd = performance.now() + c.windowSec * 1000;
    while (performance.now() < windowEnd) {
      const t = performance.now();
      await d.client.listProcesses();
      rpcMs.push(performance.now() - t);
      await sleep(Math.max(0, Math.min(250, windowEnd - performance.now())));
    }
    const s1 = await snap();
    const win = (s1.t - s0.t) / 1000;
    await Promise.all(workers.map((w) => w.call("phase", { group: "drain" })));

    const names = [...printers, ...restarters].map((p) => p.name);
    await Promise.all(names.map((name) => d.client.removeProcess(name)));
    const finalSeq = Number((await d.client.listProcesses()).lastEventSeq);
    const drain = await Promise.all(
      workers.map((w) => w.call("waitFor", { seq: finalSeq, timeoutMs: 60_000 })),
    );
    const stats = await Promise.all(workers.map((w) => w.call("stats", {})));
    const all = stats.flatMap((s) => s.streams);
    const latencyOf = (groups) =>
      mergeHists(stats.flatMap((s) => groups.map((g) => s.hists[g])).filter(Boolean));
    const latency = latencyOf(["window"]);
    const latencyAll = latencyOf(["setup", "window", "drain"]);
    const rpcSorted = [...rpcMs].sort((a, b) => a - b);
    const rpcAt = (p) =>
      round(
        rpcSorted[Math.min(rpcSorted.length - 1, Math.ceil((p / 100) * rpcSorted.length) - 1)],
        1,
      );
    const ended = (code) => all.filter((s) => s.ended && s.ended.codeName === code).length;
    const reachedEnd = all.filter((s) => s.lastSeq >= finalSeq).length;
    const decoder = stats.map((s) => s.decoderCheck);
    const clock = stats.flatMap((s) => s.clockOffsets);
    const ref = all.find((s) => !s.ended) ?? all[0];
    for (const w of workers) await w.stop();
    const mem = await d.stop();

    const produced = s1.seq - s0.seq;
    const live = all.length;
    const result = {
      subscribers: all.length,
      connections,
      workers: c.workers,
      restarters: c.restarters,
      restarterArgs: RESTARTER,
      printers: { count: c.printers, linesPerSec: c.printerRate, lineBytes: c.printerBytes },
      addAllMs: round(addMs, 0),
      windowSec: round(win, 2),
      restartsPerSec: round((s1.restarts - s0.restarts) / win, 1),
      eventsProducedPerSec: round(produced / win, 0),
      deliveriesPerSec: round((s1.deliveries - s0.deliveries) / win, 0),
      deliveryRatio: round((s1.deliveries - s0.deliveries) / (produced * live), 4),
      latencyMs: latency,
      latencyMsAllPhases: latencyAll,
      listProcessesMs: {
        n: rpcMs.length,
        p50: rpcAt(50),
        p99: rpcAt(99),
        max: round(rpcSorted.at(-1), 1),
      },
      finalSeq,
      reachedFinalSeq: reachedEnd,
      drainTimedOut: drain.some((x) => x.timedOut),
      gaps: all.reduce((a, s) => a + s.gaps, 0),
      missingInGaps: all.reduce((a, s) => a + s.missing, 0),
      duplicates: all.reduce((a, s) => a + s.dups, 0),
      resourceExhausted: ended("RESOURCE_EXHAUSTED"),
      otherEndings: all
        .filter((s) => s.ended && s.ended.codeName !== "RESOURCE_EXHAUSTED")
        .map((s) => s.ended),
      firstResourceExhausted: all.find((s) => s.ended?.codeName === "RESOURCE_EXHAUSTED")?.ended,
      resourceExhaustedAtSecFromWindowStart: all
        .filter((s) => s.ended?.codeName === "RESOURCE_EXHAUSTED")
        .map((s) => round((s.ended.at - windowStartWall) / 1000, 1))
        .sort((a, b) => a - b)
        .filter((_, i, xs) => i === 0 || i === xs.length - 1),
      kindsSeenByOneSubscriber: ref?.kinds,
      daemon: {
        ...mem,
        cpuPctOfCoreInWindow: round((100 * (s1.daemonCpu - s0.daemonCpu)) / win, 1),
      },
      workerCpuPctOfCoreInWindow: s1.workerCpu.map((x, i) =>
        round((100 * (x - s0.workerCpu[i])) / win, 1),
      ),
      decoderCheck: decoder,
      subscriberClockOffsetMs: {
        min: round(Math.min(...clock), 3),
        max: round(Math.max(...clock), 3),
      },
      loadavg: { before: load0, after: loadavg() },
    };
    const lost = result.gaps + result.duplicates + result.resourceExhausted + (live - reachedEnd);
    result.pass = {
      lostEvents: lost === 0,
      deliveryP99: latency.p99 <= TARGETS.deliveryP99Ms,
      rss: Math.max(mem.rssMaxSampledMB, mem.hwmMB) < TARGETS.rssMB,
      resourceExhausted: result.resourceExhausted === 0,
    };
    log(
      `fan-out (${c.label}): ${result.eventsProducedPerSec} events/s produced, ${result.deliveriesPerSec} deliveries/s ` +
        `(${(100 * result.deliveryRatio).toFixed(1)} % of produced x subscribers), p50 ${latency.p50} ms p99 ${latency.p99} ms, ` +
        `gaps ${result.gaps} dups ${result.duplicates} RESOURCE_EXHAUSTED ${result.resourceExhausted}, ` +
        `RSS max ${mem.rssMaxSampledMB} MB (HWM ${mem.hwmMB}), daemon CPU ${result.daemon.cpuPctOfCoreInWindow} %, ` +
        `${result.restartsPerSec} restarts/s, ListProcesses p50 ${result.listProcessesMs.p50} ms`,
    );
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Scenario 2: a stuck subscriber beside a fast one

  async function slowOnce(d, w, i, mode, { lines, rate }) {
    const name = `burst-${i}`;
    const F = `fast-${i}`;
    const S = `stuck-${i}`;
    const streams = [
      { id: F, conn: `F${i}`, group: `slow-fast-${i}`, includeOutput: true, track: true },
    ];
    if (mode === "with") {
      streams.push({
        id: S,
        conn: `S${i}`,
        group: `slow-stuck-${i}`,
        includeOutput: true,
        pauseOnReady: true,
      });
    }
    await w.call("open", { socket: d.socket, streams });
    const report = reportFile();
    await d.client.addProcess({
      name,
      args: [LINEWRITER, "100", String(lines), String(rate), report, "hold"],
      env,
    });
    const child = await waitReport(report, 300_000);
    await w.call("waitFor", { ids: [F], process: name, lines, timeoutMs: 60_000 });
    let stuck;
    if (mode === "with") {
      // It has been paused the whole time: let it read what was queued, and its ending.
      await w.call("resume", { ids: [S] });
      const waited = await w.call("waitFor", { ids: [S], ended: true, timeoutMs: 30_000 });
      stuck = {
        ...(await w.call("stats", { ids: [S], groups: [] })).streams[0],
        timedOut: waited.timedOut,
      };
    }
    const fast = (await w.call("stats", { ids: [F], groups: [] })).streams[0];
    await w.call("cancel", { ids: mode === "with" ? [F, S] : [F] });
    await d.client.removeProcess(name);
    const got = fast.perProcess[name] ?? { lines: 0, bytes: 0, lineBreaks: 0 };
    const out = {
      round: i,
      mode,
      childMBps: round(child.mbps, 2),
      childSec: round(child.sec, 2),
      fast: {
        lines: got.lines,
        of: lines,
        lineBreaks: got.lineBreaks,
        gaps: fast.gaps,
        dups: fast.dups,
        ended: fast.ended?.codeName ?? null,
        endedDetails: fast.ended?.details,
      },
      ...(stuck
        ? {
            stuck: {
              ended: stuck.ended?.codeName ?? null,
              details: stuck.ended?.details,
              lastDeliveredSeq: stuck.ended?.lastDeliveredSeq,
              received: stuck.count,
              lastSeq: stuck.lastSeq,
              gaps: stuck.gaps,
              dups: stuck.dups,
            },
          }
        : {}),
    };
    log(
      `slow (${rate ? `${rate} lines/s` : "unpaced"}) round ${i} ${mode} stuck subscriber: child ${out.childMBps} MB/s, fast one got ${got.lines}/${lines}` +
        `${fast.ended ? ` and was ended ${fast.ended.codeName}` : ""}` +
        `${stuck ? `; stuck one ended ${stuck.ended?.codeName ?? "NOT"} after ${stuck.count} events` : ""}`,
    );
    return out;
  }

  async function slow() {
    const c = CFG.slow;
    const load0 = loadavg();
    const variants = {};
    let round_ = 0;
    for (const [variant, shape] of [
      ["unpaced", { lines: c.lines, rate: 0 }],
      ["paced", { lines: c.pacedRate * c.pacedSec, rate: c.pacedRate }],
    ]) {
      const d = await startDaemon({ sink: "null", tag: `slow-${variant}` });
      const w = await startWorker(`slow worker (${variant})`);
      const rounds = [];
      const rounds_ = variant === "paced" ? ["with"] : c.rounds;
      for (const mode of rounds_) rounds.push(await slowOnce(d, w, round_++, mode, shape));
      await w.stop();
      const mem = await d.stop();
      const rate = (mode) =>
        round(median(rounds.filter((r) => r.mode === mode).map((r) => r.childMBps)), 2);
      const withStuck = rounds.filter((r) => r.mode === "with");
      // The machine drifts: compare each round with the stuck subscriber to the rounds without it
      // that ran just before or after it (the order is A B B A A B).
      const paired = rounds.flatMap((r, i) => {
        if (r.mode !== "with") return [];
        const near = [rounds[i - 1], rounds[i + 1]].filter((x) => x?.mode === "without");
        if (near.length === 0) return [];
        return [round(r.childMBps / (near.reduce((a, x) => a + x.childMBps, 0) / near.length), 3)];
      });
      variants[variant] = {
        lines: shape.lines,
        lineBytes: 100,
        rateLinesPerSec: shape.rate || "unpaced",
        rounds,
        childMBpsWithout: rate("without"),
        childMBpsWith: rate("with"),
        childRateRatio:
          variant === "unpaced" ? round(rate("with") / rate("without"), 3) : undefined,
        childRateRatiosPaired: variant === "unpaced" ? paired : undefined,
        childRateRatioPairedMedian: variant === "unpaced" ? median(paired) : undefined,
        daemon: mem,
        pass: {
          stuckEndedResourceExhausted: withStuck.every(
            (r) => r.stuck?.ended === "RESOURCE_EXHAUSTED",
          ),
          stuckGapFree: withStuck.every((r) => r.stuck?.gaps === 0 && r.stuck?.dups === 0),
          fastSawEverything: rounds.every(
            (r) =>
              r.fast.lines === r.fast.of &&
              !r.fast.ended &&
              r.fast.gaps === 0 &&
              r.fast.dups === 0 &&
              r.fast.lineBreaks === 0,
          ),
          rss: Math.max(mem.rssMaxSampledMB, mem.hwmMB) < TARGETS.rssMB,
          ...(variant === "unpaced" ? { childNotSlowed: median(paired) >= 0.9 } : {}),
        },
      };
    }
    return { ...variants, loadavg: { before: load0, after: loadavg() } };
  }

  // -------------------------------------------------------------------------------------------
  // Scenario 3: raw output throughput

  async function throughputOnce(d, w, size, lines, withSub, tag) {
    const name = `writer-${tag}`;
    const report = reportFile();
    const id = `sub-${tag}`;
    if (withSub) {
      await w.call("open", {
        socket: d.socket,
        streams: [{ id, conn: id, group: id, includeOutput: true, track: true }],
      });
    }
    const cpu0 = d.cpuSec();
    await d.client.addProcess({
      name,
      args: [LINEWRITER, String(size), String(lines), "0", report, "hold"],
      env,
    });
    const child = await waitReport(report, 600_000);
    let sub;
    if (withSub) {
      await w.call("waitFor", { ids: [id], process: name, lines, timeoutMs: 120_000 });
      const s = (await w.call("stats", { ids: [id], groups: [id] })).streams[0];
      await w.call("cancel", { ids: [id] });
      const got = s.perProcess[name] ?? { lines: 0, bytes: 0, firstRecv: 0, lastRecv: 0 };
      const sec = (got.lastRecv - child.startWallMs) / 1000;
      sub = {
        lines: got.lines,
        of: lines,
        complete: got.lines === lines && !s.ended,
        receivedMBps: round((got.lines * size) / 1e6 / sec, 2),
        payloadMB: round(got.bytes / 1e6, 2),
        ended: s.ended?.codeName ?? null,
        endedAfterSec: s.ended ? round((s.ended.at - child.startWallMs) / 1000, 2) : undefined,
        gaps: s.gaps,
        dups: s.dups,
      };
    }
    const cpu = d.cpuSec() - cpu0;
    await d.client.removeProcess(name);
    const out = {
      size,
      lines,
      MB: round((size * lines) / 1e6, 1),
      childMBps: round(child.mbps, 2),
      childSec: round(child.sec, 2),
      daemonCpuSec: round(cpu, 2),
      ...(sub ? { subscriber: sub } : {}),
    };
    log(
      `throughput ${tag}: child ${out.childMBps} MB/s` +
        (sub
          ? `, subscriber got ${sub.lines}/${lines} at ${sub.receivedMBps} MB/s${sub.ended ? ` then ${sub.ended}` : ""}`
          : ""),
    );
    return out;
  }

  async function throughput() {
    const c = CFG.throughput;
    const load0 = loadavg();
    const sizes = [100, 1024];
    const result = { mbPerRun: c.mb, baseline: {}, daemon: {}, sweep: {} };
    for (const size of sizes) {
      const lines = Math.round((c.mb * 1e6) / size);
      const dev = [];
      for (let i = 0; i < c.baselineRepeats; i++)
        dev.push((await runWriterDirect(size, lines, "devnull")).mbps);
      const pipe = await runWriterDirect(size, lines, "pipe");
      result.baseline[size] = {
        devnullMBps: round(median(dev), 1),
        devnullRuns: dev.map((x) => round(x, 1)),
        nodePipeMBps: round(pipe.mbps, 1),
      };
      log(
        `baseline ${size} B lines: /dev/null ${round(median(dev), 1)} MB/s, bare Node pipe reader ${round(pipe.mbps, 1)} MB/s`,
      );
    }
    const w = await startWorker("throughput worker");
    let k = 0;
    for (const sink of c.sinks) {
      const d = await startDaemon({ sink, tag: `throughput-${sink}` });
      const runs = {};
      for (const size of sizes) {
        const lines = Math.round((c.mb * 1e6) / size);
        const base = result.baseline[size].devnullMBps;
        // Alternated (A B B A ...) so that the machine's drift falls on both alike.
        const noSubs = [];
        const subs = [];
        for (let r = 0; r < c.repeats; r++) {
          const order = r % 2 === 0 ? [false, true] : [true, false];
          for (const withSub of order) {
            const run = await throughputOnce(
              d,
              w,
              size,
              lines,
              withSub,
              `${sink}-${size}-${withSub ? "sub" : "nosub"}-${k++}`,
            );
            (withSub ? subs : noSubs).push(run);
          }
        }
        const noSubMBps = round(median(noSubs.map((x) => x.childMBps)), 2);
        const subChildMBps = round(median(subs.map((x) => x.childMBps)), 2);
        const complete = subs.every((x) => x.subscriber.complete);
        const subMBps = round(median(subs.map((x) => x.subscriber.receivedMBps)), 2);
        runs[size] = {
          noSubscriber: {
            childMBps: noSubMBps,
            ratioToDevnull: round(noSubMBps / base, 4),
            runs: noSubs,
          },
          oneSubscriber: {
            childMBps: subChildMBps,
            childRatioToDevnull: round(subChildMBps / base, 4),
            childRatioToNoSubscriber: round(subChildMBps / noSubMBps, 3),
            subscriber: {
              complete,
              receivedMBps: subMBps,
              lines: subs.map((x) => x.subscriber.lines),
              of: lines,
              ended: subs.map((x) => x.subscriber.ended).find(Boolean) ?? null,
            },
            subscriberRatioToDevnull: complete ? round(subMBps / base, 4) : 0,
            runs: subs,
          },
        };
      }
      const mem = await d.stop();
      result.daemon[sink === "null" ? "stdoutDevNull" : "stdoutFile"] = { runs, daemon: mem };
    }
    // The highest paced rate that one subscriber follows to the end without being ended.
    const d = await startDaemon({ sink: "null", tag: "sweep" });
    for (const size of sizes) {
      const steps = [];
      for (const rate of c.rates[size]) {
        const lines = Math.max(1, Math.round(rate * c.sweepSec));
        const id = `sweep-${size}-${rate}`;
        const name = `paced-${size}-${rate}`;
        const report = reportFile();
        await w.call("open", {
          socket: d.socket,
          streams: [{ id, conn: id, group: id, includeOutput: true, track: true }],
        });
        await d.client.addProcess({
          name,
          args: [LINEWRITER, String(size), String(lines), String(rate), report, "hold"],
          env,
        });
        const child = await waitReport(report, 120_000);
        await w.call("waitFor", { ids: [id], process: name, lines, timeoutMs: 60_000 });
        const st = await w.call("stats", { ids: [id], groups: [id] });
        const s = st.streams[0];
        await w.call("cancel", { ids: [id] });
        await d.client.removeProcess(name);
        const got = s.perProcess[name]?.lines ?? 0;
        const step = {
          rate,
          achievedLinesPerSec: round(child.lines / child.sec, 0),
          MBps: round((rate * size) / 1e6, 2),
          got,
          of: lines,
          ended: s.ended?.codeName ?? null,
          latencyMs: mergeHists([st.hists[id]]),
        };
        step.ok = got === lines && !s.ended;
        // A writer held back by a full pipe did not run at the rate: the daemon slowed it. (Some
        // slack for a scheduling hiccup near the end, which the paced writer cannot catch up on.)
        step.childSlowed = child.sec > (lines / rate) * 1.05 + 0.1;
        steps.push(step);
        log(
          `sweep ${size} B x ${rate}/s: ${step.ok ? "followed" : `NOT followed (${got}/${lines}, ${step.ended})`}` +
            `${step.childSlowed ? ` but the writer only managed ${step.achievedLinesPerSec}/s` : ""}, p99 ${step.latencyMs.p99} ms`,
        );
        if (!step.ok || step.childSlowed) break;
      }
      const best = steps.filter((s) => s.ok && !s.childSlowed).at(-1);
      result.sweep[size] = {
        steps,
        maxFollowedLinesPerSec: best?.rate ?? 0,
        maxFollowedMBps: best?.MBps ?? 0,
        ratioToDevnull: round((best?.MBps ?? 0) / result.baseline[size].devnullMBps, 5),
      };
    }
    result.sweepDaemon = await d.stop();
    await w.stop();
    const sub100 = result.daemon.stdoutDevNull.runs[100].oneSubscriber;
    const sub1k = result.daemon.stdoutDevNull.runs[1024].oneSubscriber;
    result.pass = {
      throughputRatio:
        sub100.subscriberRatioToDevnull >= TARGETS.throughputRatio &&
        sub1k.subscriberRatioToDevnull >= TARGETS.throughputRatio,
      rss: [...Object.values(result.daemon).map((x) => x.daemon), result.sweepDaemon].every(
        (x) => Math.max(x.rssMaxSampledMB, x.hwmMB) < TARGETS.rssMB,
      ),
    };
    result.loadavg = { before: load0, after: loadavg() };
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Profiles

  function summariseProfile(file, top = 25) {
    const prof = JSON.parse(fs.readFileSync(file, "utf8"));
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const self = new Map();
    const dt = prof.timeDeltas;
    let total = 0;
    for (let i = 0; i < prof.samples.length; i++) {
      const node = byId.get(prof.samples[i]);
      const t = dt[i] ?? 0;
      total += t;
      const cf = node.callFrame;
      const key =
        `${cf.functionName || "(anonymous)"} ${cf.url ? `${cf.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/packages\//, "")}:${cf.lineNumber + 1}` : ""}`.trim();
      self.set(key, (self.get(key) ?? 0) + t);
    }
    const busy = total - (self.get("(idle)") ?? 0);
    return {
      file,
      totalMs: round(total / 1000, 0),
      busyMs: round(busy / 1000, 0),
      top: [...self.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([fn, us]) => ({
          fn,
          selfMs: round(us / 1000, 0),
          pct: round((100 * us) / total, 1),
          pctOfBusy: fn === "(idle)" ? null : round((100 * us) / busy, 1),
        })),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Main

  const t0 = performance.now();
  const results = {
    date: new Date().toISOString(),
    quick: QUICK,
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model,
      memGB: round(os.totalmem() / 2 ** 30, 1),
      kernel: os.release(),
      node: process.version,
      loadavgAtStart: loadavg(),
    },
    command: `node bench/events.mjs ${argv.join(" ")}`.trim(),
    daemon: DAEMON_BIN,
    build: buildInfo(),
    daemonStdout:
      "/dev/null for fan-out, slow subscriber and the sweep; /dev/null and a file on disk (temp dir) for the throughput runs",
    targets: TARGETS,
    config: CFG,
  };
  let failed;
  try {
    execFileSync("cc", ["-O2", "-Wall", "-o", LINEWRITER, path.join(HERE, "linewriter.c")], {
      stdio: "pipe",
    });
    if (runs("fanout")) {
      results.fanout = {};
      for (const variant of FANOUT_VARIANTS) {
        if (ONLY_VARIANTS || CFG.fanout.variants.includes(variant.label)) {
          results.fanout[variant.label] = await fanout(variant);
        }
      }
    }
    if (runs("slow")) results.slow = await slow();
    if (runs("throughput")) results.throughput = await throughput();
  } catch (err) {
    failed = err;
    log(`FAILED: ${err.stack ?? err}`);
  }
  await cleanup();
  results.machine.loadavgAtEnd = loadavg();
  results.durationSec = round((performance.now() - t0) / 1000, 1);
  if (CPU_PROF && fs.existsSync(PROF_DIR)) {
    results.profiles = fs
      .readdirSync(PROF_DIR)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => summariseProfile(path.join(PROF_DIR, f)));
    for (const p of results.profiles) {
      log(
        `profile ${p.file} (${p.totalMs} ms sampled, ${p.busyMs} ms not idle), top self time (% of not idle):`,
      );
      for (const t of p.top.slice(0, 15))
        log(`  ${String(t.pctOfBusy ?? "idle").padStart(5)} %  ${t.fn}`);
    }
  }
  if (failed) results.error = String(failed.stack ?? failed);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.resolve(
    OUT ?? path.join(RESULTS_DIR, QUICK ? "events-quick.json" : "events.json"),
  );
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  printTable(results);
  log(
    `results in ${path.relative(ROOT, file)} (${results.durationSec} s)${CPU_PROF ? `; profiles in ${PROF_DIR}` : ""}`,
  );
  process.exit(failed ? 1 : 0);

  function buildInfo() {
    const git = (...args) => {
      try {
        return execFileSync("git", args, {
          cwd: ROOT,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        }).trim();
      } catch {
        return undefined;
      }
    };
    const dist = path.join(path.dirname(DAEMON_BIN), "..", "dist", "daemon.js");
    return {
      head: git("rev-parse", "--short", "HEAD"),
      dirty: git("status", "--short", "--", "packages")?.split("\n").filter(Boolean),
      daemonDistMtime: fs.existsSync(dist) ? fs.statSync(dist).mtime.toISOString() : undefined,
    };
  }

  function printTable(r) {
    const rows = [];
    const pf = (b) => (b ? "PASS" : "FAIL");
    for (const [label, f] of Object.entries(r.fanout ?? {})) {
      const p = `fan-out ${label} (sleep ${f.restarterArgs[2].split(" ")[1].replace(";", "")})`;
      rows.push([`${p}: restarts / s`, f.restartsPerSec, "", ""]);
      rows.push([`${p}: events produced / s`, f.eventsProducedPerSec, "", ""]);
      rows.push([
        `${p}: deliveries / s (all subscribers)`,
        f.deliveriesPerSec,
        `${round(100 * f.deliveryRatio, 1)} % of produced x ${f.subscribers}`,
        "",
      ]);
      rows.push([
        `${p}: lost (gaps+dups+ended+short)`,
        f.gaps + f.duplicates + f.resourceExhausted + (f.subscribers - f.reachedFinalSeq),
        "0",
        pf(f.pass.lostEvents),
      ]);
      rows.push([
        `${p}: delivery p50 / p99 ms`,
        `${f.latencyMs.p50} / ${f.latencyMs.p99}`,
        `p99 <= ${TARGETS.deliveryP99Ms}`,
        pf(f.pass.deliveryP99),
      ]);
      rows.push([
        `${p}: RESOURCE_EXHAUSTED endings`,
        f.resourceExhausted,
        "0",
        pf(f.pass.resourceExhausted),
      ]);
      rows.push([
        `${p}: daemon RSS max / HWM MB`,
        `${f.daemon.rssMaxSampledMB} / ${f.daemon.hwmMB}`,
        `< ${TARGETS.rssMB}`,
        pf(f.pass.rss),
      ]);
      rows.push([`${p}: daemon CPU % of a core`, f.daemon.cpuPctOfCoreInWindow, "", ""]);
    }
    if (r.slow) {
      for (const v of ["unpaced", "paced"]) {
        const s = r.slow[v];
        if (!s) continue;
        rows.push([
          `slow (${v}): stuck one ended RESOURCE_EXHAUSTED`,
          s.rounds
            .filter((x) => x.stuck)
            .map((x) => x.stuck.ended)
            .join(","),
          "yes",
          pf(s.pass.stuckEndedResourceExhausted),
        ]);
        rows.push([
          `slow (${v}): fast one saw everything`,
          s.rounds.map((x) => `${x.fast.lines}/${x.fast.of}`).join(","),
          "all",
          pf(s.pass.fastSawEverything),
        ]);
        if (v === "unpaced") {
          rows.push([
            `slow (${v}): child MB/s with / without stuck`,
            `${s.childMBpsWith} / ${s.childMBpsWithout} (paired ratios ${s.childRateRatiosPaired.join(", ")})`,
            "paired median >= 0.9",
            pf(s.pass.childNotSlowed),
          ]);
        }
        rows.push([
          `slow (${v}): daemon RSS max / HWM MB`,
          `${s.daemon.rssMaxSampledMB} / ${s.daemon.hwmMB}`,
          `< ${TARGETS.rssMB}`,
          pf(s.pass.rss),
        ]);
      }
    }
    if (r.throughput) {
      const t = r.throughput;
      for (const size of [100, 1024]) {
        const b = t.baseline[size];
        rows.push([`throughput ${size} B: /dev/null baseline MB/s`, b.devnullMBps, "", ""]);
        rows.push([`throughput ${size} B: bare Node pipe reader MB/s`, b.nodePipeMBps, "", ""]);
        for (const [sink, label] of [
          ["stdoutDevNull", "log->/dev/null"],
          ["stdoutFile", "log->file"],
        ]) {
          const x = t.daemon[sink]?.runs[size];
          if (!x) continue;
          rows.push([
            `throughput ${size} B ${label}, no subscriber MB/s`,
            `${x.noSubscriber.childMBps} (${round(100 * x.noSubscriber.ratioToDevnull, 2)} %)`,
            "",
            "",
          ]);
          const s = x.oneSubscriber.subscriber;
          rows.push([
            `throughput ${size} B ${label}, 1 subscriber MB/s`,
            `child ${x.oneSubscriber.childMBps}; sub ${s.receivedMBps} (${s.lines.join(",")}/${s.of}${s.ended ? `, ${s.ended}` : ""})`,
            sink === "stdoutDevNull" ? ">= 50 %" : "",
            sink === "stdoutDevNull"
              ? pf(x.oneSubscriber.subscriberRatioToDevnull >= TARGETS.throughputRatio)
              : "",
          ]);
        }
        const sw = t.sweep[size];
        if (sw)
          rows.push([
            `throughput ${size} B: max paced rate 1 sub follows`,
            `${sw.maxFollowedLinesPerSec} lines/s = ${sw.maxFollowedMBps} MB/s`,
            "",
            "",
          ]);
      }
      const rss = [...Object.values(t.daemon).map((x) => x.daemon), t.sweepDaemon].filter(Boolean);
      rows.push([
        "throughput: daemon RSS max / HWM MB",
        `${Math.max(...rss.map((x) => x.rssMaxSampledMB))} / ${Math.max(...rss.map((x) => x.hwmMB))}`,
        `< ${TARGETS.rssMB}`,
        pf(t.pass.rss),
      ]);
    }
    const w0 = Math.max(...rows.map((x) => x[0].length));
    const w1 = Math.max(...rows.map((x) => String(x[1]).length));
    for (const [a, b, c, d] of rows) {
      process.stdout.write(
        `${a.padEnd(w0)}  ${String(b).padEnd(w1)}  ${String(c).padEnd(22)} ${d}\n`,
      );
    }
  }
}
