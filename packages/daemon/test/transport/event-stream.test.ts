import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  Deliveries,
  EventStream,
  type FrameTarget,
  http2StreamOf,
} from "../../src/transport/event-stream.js";

/** An http2 stream stand-in whose writes complete when the test says so. */
function fakeTarget() {
  const writes: Array<{ bytes: Buffer; done: () => void }> = [];
  const target = {
    writableEnded: false,
    destroyed: false,
    write(chunk: Buffer, done: () => void) {
      writes.push({ bytes: chunk, done });
      return true;
    },
  };
  return { target: target as unknown as FrameTarget & typeof target, writes };
}

/** Splits gRPC length-prefixed frames. */
function unframe(bytes: Buffer): number[][] {
  const messages: number[][] = [];
  let at = 0;
  while (at < bytes.length) {
    expect(bytes[at]).toBe(0);
    const length = bytes.readUInt32BE(at + 1);
    messages.push([...bytes.subarray(at + 5, at + 5 + length)]);
    at += 5 + length;
  }
  expect(at).toBe(bytes.length);
  return messages;
}

/** The only element of `items`. */
function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

const settle = () => new Promise<void>((resolve) => queueMicrotask(resolve));

describe("EventStream with the http2 stream", () => {
  it("frames the messages of one turn into one write, in order", async () => {
    const { target, writes } = fakeTarget();
    const stream = new EventStream({ write: () => true }, target, () => {});
    stream.write(Uint8Array.of(1));
    stream.write(Uint8Array.of(2, 3));
    stream.write(new Uint8Array(0));
    expect(writes).toHaveLength(0);
    await settle();
    expect(unframe(only(writes).bytes)).toEqual([[1], [2, 3], []]);
    stream.write(Uint8Array.of(4));
    await settle();
    expect(writes.map((w) => unframe(w.bytes))).toEqual([[[1], [2, 3], []], [[4]]]);
  });

  it("is full at the limit in bytes, and ready again once half has gone", async () => {
    const { target, writes } = fakeTarget();
    let ready = 0;
    const stream = new EventStream({ write: () => true }, target, () => ready++, 100);
    // 5 header bytes each: 45 + 45 queued, then 45 more crosses 100.
    expect(stream.write(new Uint8Array(40))).toBe(true);
    expect(stream.write(new Uint8Array(40))).toBe(true);
    expect(stream.write(new Uint8Array(40))).toBe(false);
    expect(stream.pendingBytes).toBe(135);
    await settle();
    const first = only(writes);
    // Still in flight: still full, whatever is written.
    expect(stream.write(new Uint8Array(1))).toBe(false);
    await settle();
    first.done();
    expect(stream.pendingBytes).toBe(6);
    expect(ready).toBe(1);
    expect(stream.write(new Uint8Array(1))).toBe(true);
  });

  it("does not call ready while it was never full", async () => {
    const { target, writes } = fakeTarget();
    let ready = 0;
    const stream = new EventStream({ write: () => true }, target, () => ready++, 100);
    stream.write(new Uint8Array(10));
    await settle();
    only(writes).done();
    expect(ready).toBe(0);
    expect(stream.pendingBytes).toBe(0);
  });

  it("close sends what is queued at once, and nothing after", async () => {
    const { target, writes } = fakeTarget();
    const stream = new EventStream({ write: () => true }, target, () => {});
    stream.write(Uint8Array.of(7));
    stream.close();
    expect(writes.map((w) => unframe(w.bytes))).toEqual([[[7]]]);
    expect(stream.write(Uint8Array.of(8))).toBe(false);
    await settle();
    expect(writes).toHaveLength(1);
  });

  it("writes nothing to a stream already ended under it", async () => {
    const { target, writes } = fakeTarget();
    const stream = new EventStream({ write: () => true }, target, () => {});
    stream.write(Uint8Array.of(1));
    target.writableEnded = true;
    await settle();
    expect(writes).toHaveLength(0);
    expect(stream.pendingBytes).toBe(0);
  });
});

describe("EventStream without the http2 stream", () => {
  it("writes each message through grpc-js, bounded the same way", () => {
    const written: Array<{ bytes: Uint8Array; done: () => void }> = [];
    const messages = {
      write(bytes: Uint8Array, done: () => void) {
        written.push({ bytes, done });
        return true;
      },
    };
    let ready = 0;
    const stream = new EventStream(messages as never, undefined, () => ready++, 10);
    expect(stream.write(Uint8Array.of(1, 2, 3, 4, 5))).toBe(true);
    expect(stream.write(Uint8Array.of(6, 7, 8, 9, 10))).toBe(false);
    expect(written.map((w) => [...w.bytes])).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
    ]);
    written.at(0)?.done();
    expect(ready).toBe(1);
  });
});

describe("http2StreamOf", () => {
  let dir: string | undefined;
  let server: grpc.Server | undefined;
  afterEach(() => {
    server?.forceShutdown();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    server = undefined;
    dir = undefined;
  });

  /** A server interceptor that passes everything through, as procmond's malformed-request one does. */
  const passThrough: grpc.ServerInterceptor = (_method, next) =>
    new grpc.ServerInterceptingCall(next, {});

  it.each([
    ["without interceptors", []],
    ["through two server interceptors", [passThrough, passThrough]],
  ] as const)(
    "finds the http2 stream of a server-streaming call of the installed grpc-js, %s",
    async (_how, interceptors) => {
      // If a grpc-js upgrade moves it, events fall back to one write per message: slower, still
      // correct. This test says so before a benchmark has to.
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "procmon-event-stream-"));
      const socket = path.join(dir, "s.sock");
      const id = (x: Buffer) => x;
      const method = {
        path: "/test.S/Watch",
        requestStream: false,
        responseStream: true,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      };
      let found: boolean | undefined;
      server = new grpc.Server({ interceptors: [...interceptors] });
      server.addService(
        { watch: method },
        {
          watch(call: grpc.ServerWritableStream<Buffer, Buffer>) {
            call.sendMetadata(new grpc.Metadata());
            const frames = http2StreamOf(call);
            found = frames !== undefined;
            const stream = new EventStream(call, frames, () => {});
            stream.write(Buffer.from("one"));
            stream.write(Buffer.from("two"));
            stream.close();
            call.end();
          },
        },
      );
      const s = server;
      await new Promise<void>((resolve, reject) =>
        s.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure());
      try {
        const got = await new Promise<string[]>((resolve, reject) => {
          const messages: string[] = [];
          const call = client.makeServerStreamRequest(method.path, id, id, Buffer.alloc(0));
          call.on("data", (m: Buffer) => messages.push(m.toString()));
          call.on("error", reject);
          call.on("end", () => resolve(messages));
        });
        expect(found).toBe(true);
        expect(got).toEqual(["one", "two"]);
      } finally {
        client.close();
      }
    },
  );
});

describe("Deliveries: acknowledging output once subscribers have it", () => {
  it("calls back once every stream has written what it had, not before", async () => {
    const a = fakeTarget();
    const b = fakeTarget();
    const deliveries = new Deliveries(60_000);
    const streamA = new EventStream({ write: () => true }, a.target, () => {});
    const streamB = new EventStream({ write: () => true }, b.target, () => {});
    deliveries.add(streamA);
    deliveries.add(streamB);
    streamA.write(Uint8Array.of(1));
    streamB.write(Uint8Array.of(2));
    let delivered = 0;
    deliveries.after(() => delivered++);
    // Written later in the turn do not count: only what each had when after() was called.
    await settle();
    streamA.write(Uint8Array.of(3));
    await settle();
    only(b.writes).done();
    expect(delivered).toBe(0);
    a.writes[0]?.done();
    expect(delivered).toBe(1);
  });

  it("calls back at once with nothing in flight, and for a closed or full stream", async () => {
    const { target } = fakeTarget();
    const deliveries = new Deliveries(60_000);
    const stream = new EventStream({ write: () => true }, target, () => {}, 10);
    deliveries.add(stream);
    let delivered = 0;
    deliveries.after(() => delivered++);
    expect(delivered).toBe(1);
    stream.write(new Uint8Array(20)); // over its limit of 10: full
    deliveries.after(() => delivered++);
    expect(delivered).toBe(2);
  });

  it("does not wait past its bound for a stream that takes nothing, nor again until it caught up", async () => {
    const { target, writes } = fakeTarget();
    const deliveries = new Deliveries(20);
    const stream = new EventStream({ write: () => true }, target, () => {});
    deliveries.add(stream);
    stream.write(Uint8Array.of(1));
    await settle();
    const first = new Promise<void>((resolve) => deliveries.after(resolve));
    await first;
    // Lagging now: no wait at all.
    stream.write(Uint8Array.of(2));
    let delivered = false;
    deliveries.after(() => {
      delivered = true;
    });
    expect(delivered).toBe(true);
    // Caught up: waited for again.
    await settle();
    for (const w of writes) w.done();
    stream.write(Uint8Array.of(3));
    let again = false;
    deliveries.after(() => {
      again = true;
    });
    expect(again).toBe(false);
  });
});
