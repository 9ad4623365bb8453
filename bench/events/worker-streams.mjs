// One WatchEvents stream of the subscriber worker, on a raw grpc-js client (its deserializer is
// the minimal decoder), and what the bench counts of it: seq gaps and duplicates, latency into a
// histogram, kinds, per-process output lines and their order, and how it ended.

import { performance } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as pb from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { record } from "./histogram.mjs";

const METHOD = `/${pb.ProcessMonitor.typeName}/WatchEvents`;
/** An undecodable message reaches the stream as this, and is counted. */
export const UNDECODABLE = { undecodable: true };

/** A grpc-js Client for `socket` with its own HTTP/2 connection (a local subchannel pool). */
export function connect(socket) {
  return new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.enable_retries": 0,
    "grpc.max_receive_message_length": 8 * 1024 * 1024,
    // As the SDK (packages/client/src/client.ts): a 1 MiB HTTP/2 window.
    "grpc-node.flow_control_window": 1024 * 1024,
  });
}

function requestOf(spec) {
  const request = create(pb.WatchEventsRequestSchema, {
    names: spec.names ?? [],
    includeOutput: spec.includeOutput ?? true,
    ...(spec.afterSeq === undefined ? {} : { afterSeq: BigInt(spec.afterSeq) }),
  });
  return Buffer.from(toBinary(pb.WatchEventsRequestSchema, request));
}

function newStream(spec, call, { hist, outputField }) {
  return {
    id: spec.id,
    group: spec.group,
    call,
    track: spec.track ?? false,
    hist,
    outputField,
    ready: false,
    firstSeq: 0,
    lastSeq: 0,
    count: 0,
    gaps: 0,
    missing: 0,
    dups: 0,
    undecodable: 0,
    unknownKinds: 0,
    kinds: new Map(),
    perProcess: new Map(),
    ended: undefined,
    cancelledByUs: false,
  };
}

/**
 * Opens stream `spec` ({id, conn, group, includeOutput, track, pauseOnReady, names, afterSeq})
 * on `client`; `options`: { decode, hist (its latency histogram), outputField (the field number
 * of the output kind) }. `s.whenReady()` resolves at its headers or its end.
 */
export function openStream(client, spec, options) {
  const request = requestOf(spec);
  const call = client.makeServerStreamRequest(
    METHOD,
    () => request,
    options.decode,
    {},
    new grpc.Metadata(),
    {},
  );
  const s = newStream(spec, call, options);
  const waiters = [];
  const wake = () => {
    for (const resolve of waiters.splice(0)) resolve();
  };
  s.whenReady = () =>
    s.ready || s.ended ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
  call.on("metadata", () => {
    s.ready = true;
    if (spec.pauseOnReady) call.pause();
    wake();
  });
  call.on("data", (ev) => onMessage(s, ev));
  call.on("error", () => {});
  call.on("status", (status) => {
    s.ended = endingOf(status);
    wake();
  });
  return s;
}

function endingOf(status) {
  const last = status.metadata?.get("procmon-last-delivered-seq")?.[0];
  return {
    code: status.code,
    codeName: grpc.status[status.code],
    details: status.details,
    lastDeliveredSeq: last === undefined ? undefined : String(last),
    at: Date.now(),
  };
}

function onMessage(s, ev) {
  const now = performance.timeOrigin + performance.now();
  s.count++;
  if (ev === UNDECODABLE) {
    s.undecodable++;
    return;
  }
  const seq = ev.seq;
  if (s.lastSeq === 0) s.firstSeq = seq;
  else if (seq <= s.lastSeq) s.dups++;
  else if (seq !== s.lastSeq + 1) {
    s.gaps++;
    s.missing += seq - s.lastSeq - 1;
  }
  if (seq > s.lastSeq) s.lastSeq = seq;
  record(s.hist, now - ev.timeMs);
  s.kinds.set(ev.kind, (s.kinds.get(ev.kind) ?? 0) + 1);
  if (ev.unknownKind !== undefined) s.unknownKinds++;
  if (s.track && ev.kind === s.outputField) trackLine(s, ev, now);
}

function trackLine(s, ev, now) {
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

/** What the main process gets of stream `s`; kinds by name (`kinds`: field number -> name). */
export function summary(s, kinds) {
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
    undecodable: s.undecodable,
    unknownKinds: s.unknownKinds,
    kinds: Object.fromEntries([...s.kinds].map(([f, n]) => [kinds[f] ?? `field ${f}`, n])),
    perProcess: Object.fromEntries(s.perProcess),
    ended: s.ended,
    cancelledByUs: s.cancelledByUs,
  };
}
