#!/usr/bin/env node
// One of keepup's readers, in a process of its own (bench/keepup.mjs forks it):
//
//   node bench/keepup/reader.mjs grpc|http2 SOCKET PROCESS [STALL_MS]
//
// subscribes to WatchEvents(include_output) on SOCKET, counts the events, checks their seqs for
// gaps and measures each message's delivery lag (its wall clock when decoded minus the event's
// time), until PROCESS's `exited` event or the end of the stream. It prints {"ready":true} once
// the stream is open, then {"summary":{...}} and exits. The readers:
//   grpc   a grpc-js client with a 1 MiB HTTP/2 window, as the SDK's, decoding seq, time and
//          kind by hand (bench/events/decoder.mjs, the fan-out subscribers' decoder);
//   http2  plain node:http2 with a 1 MiB window, never paused, parsing the gRPC frames itself.
// STALL_MS > 0: once the first message is in, the reader stops reading for STALL_MS every 2 s (its
// stream paused), as a reader's GC pause or a busy core would: the slack a daemon gives a
// subscriber that otherwise keeps up, measured directly.

import http2 from "node:http2";
import net from "node:net";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createDecoder } from "../events/decoder.mjs";

const WATCH_PATH = "/procmon.v1.ProcessMonitor/WatchEvents";
const FLOW_CONTROL_WINDOW_BYTES = 1024 * 1024;
const STALL_PERIOD_MS = 2_000;
/** Delivery lags are counted in 1 ms buckets up to this. */
const LAG_BUCKETS_MS = 60_000;

const wallNow = () => performance.timeOrigin + performance.now();

/** The request's bytes, the events' decoder and the field numbers of the output and exited events. */
async function loadApi() {
  const { ProcessMonitor, WatchEventsRequestSchema } = await import("@procmon/client/api");
  const { create, toBinary } = await import("@bufbuild/protobuf");
  const eventSchema = ProcessMonitor.method.watchEvents.output.field.event.message;
  const eventFields = eventSchema.field;
  const request = Buffer.from(
    toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { includeOutput: true })),
  );
  const { decode } = createDecoder(eventSchema);
  return {
    request,
    decode,
    OUTPUT: eventFields.output.number,
    EXITED: eventFields.exited.number,
  };
}

function newSummary(kind) {
  return {
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
}

function bucketP99(buckets) {
  const n = buckets.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= n * 0.99) return i;
  }
  return null;
}

/** A function that starts, once, the stalls of `tally.stallable` (none if `stallMs` is 0). */
function staller(tally, stallMs) {
  let stalling = false;
  return () => {
    if (stalling || stallMs <= 0) return;
    stalling = true;
    setInterval(() => {
      tally.stallable.pause();
      tally.summary.stalls++;
      setTimeout(() => tally.stallable.resume(), stallMs);
    }, STALL_PERIOD_MS).unref();
  };
}

/** The reader's tally: onMessage(bytes), onStatus(code, message); `stallable` the stream. */
function createTally(kind, api, until, stallMs) {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const lagBuckets = new Uint32Array(LAG_BUCKETS_MS + 1);
  const s = newSummary(kind);
  const tally = { stallable: undefined, summary: s };
  let lastSeq = 0;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    s.lagP99Ms = bucketP99(lagBuckets);
    s.readerEldMaxMs = Math.round(eld.max / 1e5) / 10;
    s.readerEldP99Ms = Math.round(eld.percentile(99) / 1e5) / 10;
    process.stdout.write(`${JSON.stringify({ summary: s })}\n`, () => process.exit(0));
  };
  const startStalls = staller(tally, stallMs);
  tally.onMessage = (bytes) => {
    if (done) return;
    const now = wallNow();
    const ev = api.decode(bytes);
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
    lagBuckets[Math.min(LAG_BUCKETS_MS, Math.floor(lag))]++;
    if (lag > s.lagMaxMs) {
      s.lagMaxMs = Math.round(lag);
      s.lagMaxAtSeq = ev.seq;
    }
    if (ev.kind === api.OUTPUT) s.outputLines++;
    if (ev.kind === api.EXITED && ev.process === until) finish();
  };
  tally.onStatus = (code, message) => {
    s.status = code;
    s.statusMessage = message;
    s.statusAtMs = wallNow();
    finish();
  };
  return tally;
}

const ready = () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

async function readGrpc(socket, request, tally) {
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
  call.on("data", tally.onMessage);
  tally.stallable = call;
  call.on("error", () => {});
  call.on("status", (status) => tally.onStatus(status.code, status.details));
}

function readHttp2(socket, request, tally) {
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(socket),
    settings: { initialWindowSize: FLOW_CONTROL_WINDOW_BYTES },
  });
  session.on("error", (err) => tally.onStatus(-1, String(err)));
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
  tally.stallable = stream;
  const status = (headers) =>
    tally.onStatus(
      Number(headers["grpc-status"]),
      decodeURIComponent(headers["grpc-message"] ?? ""),
    );
  stream.on("response", (headers) => {
    // A refusal comes as trailers-only headers.
    if (headers["grpc-status"] !== undefined) status(headers);
    else ready();
  });
  stream.on("data", grpcFrames(tally.onMessage));
  stream.on("trailers", status);
  const s = tally.summary;
  stream.on("close", () => tally.onStatus(s.status ?? -1, s.statusMessage ?? "stream closed"));
  stream.on("error", () => {});
}

/** A 'data' listener that cuts the gRPC length-prefixed messages out of an HTTP/2 stream. */
function grpcFrames(onMessage) {
  let carry = Buffer.alloc(0);
  return (chunk) => {
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
  };
}

const [kind, socket, until, stall] = process.argv.slice(2);
const api = await loadApi();
const tally = createTally(kind, api, until, Number(stall ?? 0));
if (kind === "grpc") await readGrpc(socket, api.request, tally);
else if (kind === "http2") readHttp2(socket, api.request, tally);
else throw new Error(`unknown reader ${kind}`);
