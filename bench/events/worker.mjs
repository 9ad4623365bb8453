// The subscriber worker: a process forked by bench/events.mjs (bench/events/workers.mjs) that
// holds gRPC connections and WatchEvents streams, so that 100 subscribers do not share the
// bench's event loop. Driven by IPC requests {id, type, ...}, answered {id, ok, result | error}.
// At start it runs the decoder's self-test against protobuf-es and fails if it does not pass.

import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import * as pb from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { createDecoder } from "./decoder.mjs";
import { createChecker, selfTest } from "./decoder-check.mjs";
import { createHistogram, sparse } from "./histogram.mjs";
import { connect, openStream, summary, UNDECODABLE } from "./worker-streams.mjs";

const decoder = createDecoder(pb.EventSchema);
const kindsChecked = selfTest(pb, decoder.decode);
const outputField = Number(Object.keys(decoder.kinds).find((f) => decoder.kinds[f] === "output"));
const checker = createChecker(pb);
const decodeErrors = { count: 0, first: undefined };

const conns = new Map();
const streams = new Map();
const hists = new Map();
const clockOffsets = [];
const sampleClock = () =>
  clockOffsets.push(performance.timeOrigin + performance.now() - Date.now());
sampleClock();

/** The stream deserializer: the minimal decoder, checked, with errors counted, not thrown. */
function decode(buf) {
  try {
    const ev = decoder.decode(buf);
    checker.check(buf, ev);
    return ev;
  } catch (err) {
    decodeErrors.count++;
    decodeErrors.first ??= { error: err.message, hex: buf.toString("hex").slice(0, 512) };
    return UNDECODABLE;
  }
}

function hist(group) {
  let h = hists.get(group);
  if (!h) {
    h = createHistogram();
    hists.set(group, h);
  }
  return h;
}

function connection(key, socket) {
  let conn = conns.get(key);
  if (!conn) {
    conn = connect(socket);
    conns.set(key, conn);
  }
  return conn;
}

const select = (ids) => (ids ? ids.map((id) => streams.get(id)) : [...streams.values()]);
const summarize = (s) => summary(s, decoder.kinds);

/** Whether stream `s` is done for a waitFor request. */
function isDone(s, { seq, process: name, lines, ended }) {
  if (s.ended) return true;
  if (ended) return false;
  if (seq !== undefined && s.lastSeq < seq) return false;
  if (name !== undefined && (s.perProcess.get(name)?.lines ?? 0) < lines) return false;
  return true;
}

const handlers = {
  async open({ socket, streams: specs }) {
    const opened = specs.map((spec) => {
      const options = { decode, hist: hist(spec.group), outputField };
      const s = openStream(connection(spec.conn, socket), spec, options);
      streams.set(spec.id, s);
      return s;
    });
    await Promise.all(opened.map((s) => s.whenReady()));
    return {
      ready: opened.filter((s) => s.ready).length,
      ended: opened.filter((s) => s.ended).map(summarize),
    };
  },
  resume({ ids }) {
    for (const s of select(ids)) s.call.resume();
  },
  snapshot() {
    let deliveries = 0;
    for (const s of streams.values()) deliveries += s.count;
    return { deliveries, at: Date.now() };
  },
  /** Resolves when every selected stream has ended or reached `seq` / `lines` of `process`. */
  async waitFor(request) {
    const deadline = Date.now() + request.timeoutMs;
    for (;;) {
      const pending = select(request.ids).filter((s) => !isDone(s, request));
      if (pending.length === 0) return { timedOut: false };
      if (Date.now() > deadline) return { timedOut: true, pending: pending.map((s) => s.id) };
      await sleep(20);
    }
  },
  stats({ ids, groups }) {
    sampleClock();
    const decoderCheck = { ...checker.result(), selfTested: kindsChecked, errors: decodeErrors };
    const out = { streams: select(ids).map(summarize), hists: {}, decoderCheck, clockOffsets };
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
process.send({ ready: true, kinds: kindsChecked });
