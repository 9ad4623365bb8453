// A WatchEvents subscriber in a process of its own, reading as fast as grpc-js
// delivers and keeping nothing but counts, so that the test runner's own load
// does not make it slow:
//
//   node fast-reader.mjs SOCKET PROCESS
//
// Watches everything with output. Prints {"ready":true} once the subscription
// is live, then one summary line and exits when PROCESS's `exited` event
// arrives or the stream ends: {outputLines, events, firstSeq, lastSeq, gap,
// status}, `gap` naming the first break in the seqs and `status` the gRPC code
// the daemon ended the stream with (null while it is live).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  ProcessMonitor,
  WatchEventsRequestSchema,
  WatchEventsResponseSchema,
} from "@procmon/client/api";

const [socket, until] = process.argv.slice(2);
const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure(), {
  // As the SDK's client.
  "grpc-node.flow_control_window": 1024 * 1024,
});
const request = toBinary(
  WatchEventsRequestSchema,
  create(WatchEventsRequestSchema, { includeOutput: true }),
);
// Only the seq and the kind are read from each message, by hand; protobuf-es
// decodes an `exited` event to see its process. A full decode of every line
// made this reader slower than the daemon it is meant to outrun.
const OUTPUT = ProcessMonitor.method.watchEvents.output.field.event.message.field.output.number;
const EXITED = ProcessMonitor.method.watchEvents.output.field.event.message.field.exited.number;
const call = client.makeServerStreamRequest(
  `/${ProcessMonitor.typeName}/${ProcessMonitor.method.watchEvents.name}`,
  () => Buffer.from(request),
  (bytes) => bytes,
  undefined,
);
const summary = {
  outputLines: 0,
  events: 0,
  firstSeq: null,
  lastSeq: null,
  gap: null,
  status: null,
};
let done = false;
let lastSeq = 0;
const finish = () => {
  if (done) return;
  done = true;
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
};

/** Reads a varint (below 2^53) at `at` in `bytes`: [value, next offset]. */
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

/** The seq and the kind's field number of a WatchEventsResponse. */
function peek(bytes) {
  // WatchEventsResponse: field 1 (the event), length-delimited.
  const [, afterTag] = varint(bytes, 0);
  const [length, start] = varint(bytes, afterTag);
  const end = start + length;
  let at = start;
  let seq = 0;
  let kind = 0;
  while (at < end) {
    let key;
    [key, at] = varint(bytes, at);
    const field = Math.floor(key / 8);
    if (key % 8 === 0) {
      let value;
      [value, at] = varint(bytes, at);
      if (field === 1) seq = value;
    } else {
      let size;
      [size, at] = varint(bytes, at);
      at += size;
      if (field >= 10) kind = field;
    }
  }
  return { seq, kind };
}

call.on("metadata", () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
call.on("data", (bytes) => {
  if (done) return;
  const { seq, kind } = peek(bytes);
  summary.events++;
  if (summary.lastSeq === null) summary.firstSeq = String(seq);
  else if (summary.gap === null && seq !== lastSeq + 1) {
    summary.gap = `seq ${seq} after ${lastSeq}`;
  }
  lastSeq = seq;
  summary.lastSeq = String(seq);
  if (kind === OUTPUT) summary.outputLines++;
  if (kind === EXITED && fromBinary(WatchEventsResponseSchema, bytes).event?.process === until) {
    finish();
  }
});
call.on("error", () => {});
call.on("status", (status) => {
  summary.status = status.code;
  finish();
});
