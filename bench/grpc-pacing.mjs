#!/usr/bin/env node
// A helper of bench/events.mjs: how fast one grpc-js server stream delivers small messages when
// the server's event loop is busy, as procmond's is while it reads and logs a child's output.
//
//   node bench/grpc-pacing.mjs [BUSY_MS...]      (default: 0 1 5)
//
// The server (this process) streams 20,000 messages of 110 bytes over a unix socket to a client
// (this script forked) as fast as the stream takes them, while a setImmediate loop burns BUSY_MS
// per event-loop turn. Two ways of writing:
//   - "write":   call.write() until it returns false, again on 'drain' (what procmond did before
//                it framed each turn's events into one http2 write, transport/event-stream.ts);
//   - "batched": the call's own sendMessage() (a grpc-js internal), up to 512 messages a turn.
// grpc-js's ServerWritableStream passes http2 one message per completed write, so with "write"
// the rate is tied to the number of loop turns, whatever the CPU left.

import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";

const id = (x) => x;
const definition = {
  watch: {
    path: "/bench.Pacing/Watch",
    requestStream: false,
    responseStream: true,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  },
};
const N = 20_000;
const payload = Buffer.alloc(110, 120);

if (process.env.GRPC_PACING_SOCKET) {
  // The client: counts messages, reports when the stream ends.
  const client = new grpc.Client(
    `unix:${process.env.GRPC_PACING_SOCKET}`,
    grpc.credentials.createInsecure(),
  );
  const call = client.makeServerStreamRequest(definition.watch.path, id, id, Buffer.alloc(0));
  let n = 0;
  call.on("data", () => n++);
  call.on("error", () => {});
  call.on("status", () => process.send(n, () => process.exit(0)));
} else {
  const busyList = process.argv.slice(2).map(Number);
  const results = [];
  for (const busyMs of busyList.length ? busyList : [0, 1, 5]) {
    for (const mode of ["write", "batched"]) results.push(await run(busyMs, mode));
  }
  console.table(results);
  process.exit(0);
}

async function run(busyMs, mode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "grpc-pacing-"));
  const socket = path.join(dir, "s.sock");
  const server = new grpc.Server();
  server.addService(definition, {
    watch(call) {
      call.sendMetadata(new grpc.Metadata());
      let sent = 0;
      const pump = () => {
        while (sent < N) {
          sent++;
          if (mode === "batched") {
            call.call.sendMessage(payload, () => {});
            if (sent % 512 === 0) {
              setImmediate(pump);
              return;
            }
          } else if (!call.write(payload)) {
            return;
          }
        }
        call.end();
      };
      call.on("drain", pump);
      pump();
    },
  });
  await new Promise((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  let turns = 0;
  let spinning = true;
  const spin = () => {
    if (!spinning) return;
    turns++;
    const t = performance.now();
    while (performance.now() - t < busyMs) {}
    setImmediate(spin);
  };
  if (busyMs > 0) setImmediate(spin);
  const t0 = performance.now();
  const child = fork(new URL(import.meta.url).pathname, [], {
    env: { ...process.env, GRPC_PACING_SOCKET: socket },
  });
  const got = await new Promise((resolve) => child.on("message", resolve));
  const sec = (performance.now() - t0) / 1000;
  spinning = false;
  await new Promise((resolve) => child.on("exit", resolve));
  server.forceShutdown();
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    busyMsPerTurn: busyMs,
    mode,
    messages: got,
    msgsPerSec: Math.round(got / sec),
    loopTurnsPerSec: busyMs > 0 ? Math.round(turns / sec) : "-",
    msgsPerTurn: busyMs > 0 ? Math.round((got / turns) * 10) / 10 : "-",
  };
}
