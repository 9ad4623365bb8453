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
const call = client.makeServerStreamRequest(
  `/${ProcessMonitor.typeName}/${ProcessMonitor.method.watchEvents.name}`,
  () => Buffer.from(request),
  (bytes) => fromBinary(WatchEventsResponseSchema, bytes).event,
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
const finish = () => {
  if (done) return;
  done = true;
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
};
call.on("metadata", () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
call.on("data", (event) => {
  if (done) return;
  summary.events++;
  const seq = event.seq;
  if (summary.lastSeq === null) summary.firstSeq = String(seq);
  else if (summary.gap === null && seq !== BigInt(summary.lastSeq) + 1n) {
    summary.gap = `seq ${seq} after ${summary.lastSeq}`;
  }
  summary.lastSeq = String(seq);
  if (event.kind.case === "output") summary.outputLines++;
  if (event.kind.case === "exited" && event.process === until) finish();
});
call.on("error", () => {});
call.on("status", (status) => {
  summary.status = status.code;
  finish();
});
