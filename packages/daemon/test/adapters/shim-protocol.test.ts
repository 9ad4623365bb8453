// The daemon's side of native/PROTOCOL.md version 2: the frames it writes,
// byte by byte, and the shim's frames it reads.
import { describe, expect, it } from "vitest";
import {
  creditFrame,
  decodeShimFrame,
  exitFrame,
  FrameReader,
  MAX_MEMO,
  type ShimMessage,
  ShimProtocolError,
  spawnFrame,
} from "../../src/adapters/shim-protocol.js";

/** A u32 length-prefixed string, as PROTOCOL.md's `str`. */
const str = (text: string) => {
  const bytes = Buffer.from(text);
  const n = Buffer.alloc(4);
  n.writeUInt32LE(bytes.length);
  return Buffer.concat([n, bytes]);
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const frame = (type: number, payload: Buffer) =>
  Buffer.concat([u32(payload.length + 1), Buffer.of(type), payload]);

describe("the daemon's frames", () => {
  it("SPAWN ends with the memo", () => {
    const bytes = spawnFrame({
      id: 7,
      uid: undefined,
      gid: undefined,
      name: "web",
      path: "/bin/true",
      argv: ["true"],
      env: [],
      cwd: "",
      memo: '{"v":1}',
    });
    expect(bytes.subarray(bytes.length - 11)).toEqual(str('{"v":1}'));
    expect(bytes.readUInt8(4)).toBe(2);
  });

  it("refuses a memo over 4,096 bytes", () => {
    const spawn = (memo: string) =>
      spawnFrame({
        id: 1,
        uid: undefined,
        gid: undefined,
        name: "a",
        path: "/bin/true",
        argv: [],
        env: [],
        cwd: "",
        memo,
      });
    expect(() => spawn("x".repeat(MAX_MEMO))).not.toThrow();
    expect(() => spawn("x".repeat(MAX_MEMO + 1))).toThrow(ShimProtocolError);
  });

  it("CREDIT is id, stream, bytes; EXIT has no payload", () => {
    expect(creditFrame(9, 2, 1000)).toEqual(
      frame(4, Buffer.concat([u32(9), Buffer.of(2), u32(1000)])),
    );
    expect(exitFrame()).toEqual(Buffer.from([1, 0, 0, 0, 12]));
  });
});

describe("the shim's frames", () => {
  const hello = (version: number, rest: Buffer) =>
    Buffer.concat([u32(0x534d5250), Buffer.of(version & 0xff, version >> 8), rest]);

  it("HELLO of version 2 carries the shim's pid and how many CHILD frames follow", () => {
    const payload = hello(2, Buffer.concat([Buffer.of(0, 0), u32(4321), u32(3)]));
    expect(decodeShimFrame(1, payload)).toEqual({
      type: "hello",
      version: 2,
      shimPid: 4321,
      held: 3,
    });
  });

  it("HELLO of another version is read no further than its version", () => {
    expect(decodeShimFrame(1, hello(1, Buffer.concat([Buffer.of(0, 0), u32(4321)])))).toEqual({
      type: "hello",
      version: 1,
      shimPid: 0,
      held: 0,
    });
    expect(decodeShimFrame(1, hello(3, Buffer.alloc(0)))).toMatchObject({ version: 3 });
  });

  it("CHILD: id, pid, start time, the reaped flag, name and memo", () => {
    const payload = Buffer.concat([
      u32(5),
      u32(999),
      u64(123456n),
      Buffer.of(1),
      str("web"),
      str("{}"),
    ]);
    expect(decodeShimFrame(11, payload)).toEqual({
      type: "child",
      id: 5,
      pid: 999,
      startTime: 123456n,
      reaped: true,
      name: "web",
      memo: "{}",
    });
    const flagged = Buffer.from(payload);
    flagged.writeUInt8(2, 16);
    expect(() => decodeShimFrame(11, flagged)).toThrow(/CHILD flags 2/);
    expect(() => decodeShimFrame(11, payload.subarray(0, payload.length - 1))).toThrow(/too short/);
  });

  it("a reader cuts CHILD frames out of any chunking, in order", () => {
    const one = frame(
      11,
      Buffer.concat([u32(1), u32(10), u64(1n), Buffer.of(0), str("a"), str("")]),
    );
    const two = frame(
      11,
      Buffer.concat([u32(2), u32(20), u64(2n), Buffer.of(0), str("b"), str("")]),
    );
    const seen: ShimMessage[] = [];
    const reader = new FrameReader((m) => seen.push(m));
    const all = Buffer.concat([one, two]);
    for (let i = 0; i < all.length; i += 3) reader.push(all.subarray(i, i + 3));
    expect(seen.map((m) => (m.type === "child" ? m.name : m.type))).toEqual(["a", "b"]);
  });
});
