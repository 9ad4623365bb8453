// The daemon's side of the shim protocol (native/PROTOCOL.md, version 2):
// frames in and out, every length and count bounds-checked.

/** The protocol version this daemon speaks. */
export const SHIM_PROTOCOL_VERSION = 2;
/** "PRMS" as bytes, read as a little-endian u32. */
export const SHIM_MAGIC = 0x534d5250;
/** The largest frame either side sends: its length field counts at most this. */
export const MAX_FRAME = 1_048_576;
/** The output credit every child starts with, in bytes. */
export const CREDIT_INITIAL = 262_144;
/** The most items of a list. */
const MAX_COUNT = 65_536;
/** The longest SPAWN memo, in bytes. */
export const MAX_MEMO = 4_096;

/** Frame types. */
export const FrameType = {
  Hello: 1,
  Spawn: 2,
  Signal: 3,
  Credit: 4,
  Spawned: 5,
  SpawnFailed: 6,
  Output: 7,
  Eof: 8,
  Exited: 9,
  Error: 10,
  Child: 11,
  Exit: 12,
} as const;

/** A frame type's number. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** SIGNAL's scope: the child's process group, or all of its tree the shim can find. */
export type SignalScope = "group" | "tree";

/** A SPAWN request. */
export interface SpawnFrame {
  readonly id: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly name: string;
  readonly path: string;
  readonly argv: readonly string[];
  /** `KEY=VALUE` strings: the whole environment. */
  readonly env: readonly string[];
  readonly cwd: string;
  /** Kept by the shim and given back in the child's CHILD frame, for a later daemon. */
  readonly memo: string;
}

/** Which output stream: 1 stdout, 2 stderr. */
export type StreamNumber = 1 | 2;

/** What the shim sends. */
export type ShimMessage =
  | {
      readonly type: "hello";
      readonly version: number;
      /** 0 in the HELLO of another version, which is not read past its version. */
      readonly shimPid: number;
      /** How many CHILD frames follow: the children the shim holds. */
      readonly held: number;
    }
  | {
      readonly type: "child";
      readonly id: number;
      readonly pid: number;
      readonly startTime: bigint;
      readonly reaped: boolean;
      readonly name: string;
      readonly memo: string;
    }
  | {
      readonly type: "spawned";
      readonly id: number;
      readonly pid: number;
      readonly startTime: bigint;
    }
  | {
      readonly type: "spawnFailed";
      readonly id: number;
      readonly errno: number;
      readonly stage: number;
    }
  | {
      readonly type: "output";
      readonly id: number;
      readonly stream: StreamNumber;
      readonly data: Buffer;
    }
  | { readonly type: "eof"; readonly id: number; readonly stream: StreamNumber }
  | {
      readonly type: "exited";
      readonly id: number;
      readonly pid: number;
      readonly status: number;
      readonly timeNs: bigint;
      readonly utimeUs: bigint;
      readonly stimeUs: bigint;
      readonly maxRssKib: bigint;
    }
  | { readonly type: "error"; readonly message: string };

/** A protocol error: the frame is not what the protocol says. */
export class ShimProtocolError extends Error {
  override readonly name = "ShimProtocolError";
}

/** Builds a frame: its length, its type, then the payload written by `fill`. */
class FrameWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;

  u8(n: number): this {
    return this.push(Buffer.of(n));
  }

  u16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return this.push(b);
  }

  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return this.push(b);
  }

  i32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return this.push(b);
  }

  str(text: string): this {
    const bytes = Buffer.from(text, "utf8");
    if (bytes.includes(0)) throw new ShimProtocolError("a string holds a NUL byte");
    return this.u32(bytes.length).push(bytes);
  }

  list(items: readonly string[]): this {
    if (items.length > MAX_COUNT) throw new ShimProtocolError(`a list of ${items.length} items`);
    this.u32(items.length);
    for (const item of items) this.str(item);
    return this;
  }

  /** The frame: its length field (type and payload), then both. */
  frame(type: FrameType): Buffer {
    const length = 1 + this.size;
    if (length > MAX_FRAME) throw new ShimProtocolError(`a frame of ${length} bytes`);
    const head = Buffer.alloc(5);
    head.writeUInt32LE(length);
    head.writeUInt8(type, 4);
    return Buffer.concat([head, ...this.parts], 5 + this.size);
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }
}

/** The daemon's HELLO. */
export function helloFrame(version = SHIM_PROTOCOL_VERSION): Buffer {
  return new FrameWriter().u32(SHIM_MAGIC).u16(version).u16(0).frame(FrameType.Hello);
}

/**
 * A SPAWN frame.
 * @throws ShimProtocolError when a string holds NUL or it would not fit a frame.
 */
export function spawnFrame(spawn: SpawnFrame): Buffer {
  const flags = (spawn.uid === undefined ? 0 : 1) | (spawn.gid === undefined ? 0 : 2);
  return new FrameWriter()
    .u32(spawn.id)
    .u32(flags)
    .u32(spawn.uid ?? 0)
    .u32(spawn.gid ?? 0)
    .str(spawn.name)
    .str(spawn.path)
    .list(spawn.argv)
    .list(spawn.env)
    .str(spawn.cwd)
    .str(checkedMemo(spawn.memo))
    .frame(FrameType.Spawn);
}

function checkedMemo(memo: string): string {
  const bytes = Buffer.byteLength(memo);
  if (bytes > MAX_MEMO) throw new ShimProtocolError(`a memo of ${bytes} bytes`);
  return memo;
}

/** A SIGNAL frame. */
export function signalFrame(id: number, signo: number, scope: SignalScope): Buffer {
  return new FrameWriter()
    .u32(id)
    .i32(signo)
    .u8(scope === "tree" ? 1 : 0)
    .frame(FrameType.Signal);
}

/** A CREDIT frame: `bytes` more of `stream` consumed, so acknowledged, and given back as credit. */
export function creditFrame(id: number, stream: StreamNumber, bytes: number): Buffer {
  return new FrameWriter().u32(id).u8(stream).u32(bytes).frame(FrameType.Credit);
}

/** The EXIT frame: the daemon is done, and so is the shim. */
export function exitFrame(): Buffer {
  return new FrameWriter().frame(FrameType.Exit);
}

/** Reads one frame's payload, field by field, refusing to read past its end. */
class PayloadReader {
  private at = 0;

  constructor(private readonly payload: Buffer) {}

  private need(n: number): number {
    if (this.at + n > this.payload.length) throw new ShimProtocolError("a frame is too short");
    const at = this.at;
    this.at += n;
    return at;
  }

  u8(): number {
    return this.payload.readUInt8(this.need(1));
  }

  u16(): number {
    return this.payload.readUInt16LE(this.need(2));
  }

  u32(): number {
    return this.payload.readUInt32LE(this.need(4));
  }

  i32(): number {
    return this.payload.readInt32LE(this.need(4));
  }

  u64(): bigint {
    return this.payload.readBigUInt64LE(this.need(8));
  }

  i64(): bigint {
    return this.payload.readBigInt64LE(this.need(8));
  }

  str(): string {
    const n = this.u32();
    const bytes = this.payload.subarray(this.need(n), this.at);
    if (bytes.includes(0)) throw new ShimProtocolError("a string holds a NUL byte");
    return bytes.toString("utf8");
  }

  rest(): Buffer {
    const at = this.at;
    this.at = this.payload.length;
    return this.payload.subarray(at);
  }

  /** Fails unless every byte was read. */
  end(): void {
    if (this.at !== this.payload.length) throw new ShimProtocolError("a frame is too long");
  }
}

function stream(n: number): StreamNumber {
  if (n !== 1 && n !== 2) throw new ShimProtocolError(`stream ${n}`);
  return n;
}

/**
 * Decodes one frame's type and payload, as the shim sends them.
 * @throws ShimProtocolError when it is not a frame of the protocol.
 */
export function decodeShimFrame(type: number, payload: Buffer): ShimMessage {
  const r = new PayloadReader(payload);
  let message: ShimMessage;
  switch (type) {
    case FrameType.Hello: {
      if (r.u32() !== SHIM_MAGIC) throw new ShimProtocolError("HELLO without the magic");
      const version = r.u16();
      // Another version's HELLO is its own business past its version: the caller refuses it.
      if (version !== SHIM_PROTOCOL_VERSION) return { type: "hello", version, shimPid: 0, held: 0 };
      if (r.u16() !== 0) throw new ShimProtocolError("HELLO with reserved bits set");
      message = { type: "hello", version, shimPid: r.u32(), held: r.u32() };
      break;
    }
    case FrameType.Child: {
      const id = r.u32();
      const pid = r.u32();
      const startTime = r.u64();
      const flags = r.u8();
      if ((flags & ~1) !== 0) throw new ShimProtocolError(`CHILD flags ${flags}`);
      message = {
        type: "child",
        id,
        pid,
        startTime,
        reaped: (flags & 1) === 1,
        name: r.str(),
        memo: r.str(),
      };
      break;
    }
    case FrameType.Spawned:
      message = { type: "spawned", id: r.u32(), pid: r.u32(), startTime: r.u64() };
      break;
    case FrameType.SpawnFailed:
      message = { type: "spawnFailed", id: r.u32(), errno: r.i32(), stage: r.u8() };
      break;
    case FrameType.Output: {
      const id = r.u32();
      const s = stream(r.u8());
      const data = r.rest();
      if (data.length === 0) throw new ShimProtocolError("OUTPUT without data");
      message = { type: "output", id, stream: s, data };
      break;
    }
    case FrameType.Eof:
      message = { type: "eof", id: r.u32(), stream: stream(r.u8()) };
      break;
    case FrameType.Exited:
      message = {
        type: "exited",
        id: r.u32(),
        pid: r.u32(),
        status: r.i32(),
        timeNs: r.i64(),
        utimeUs: r.i64(),
        stimeUs: r.i64(),
        maxRssKib: r.i64(),
      };
      break;
    case FrameType.Error:
      message = { type: "error", message: r.str() };
      break;
    default:
      throw new ShimProtocolError(`frame type ${type}`);
  }
  r.end();
  return message;
}

/**
 * Cuts a byte stream into frames: push() what the socket delivers, and each
 * complete frame is decoded and handed to `onMessage` in order.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly onMessage: (message: ShimMessage) => void) {}

  /**
   * Takes the next bytes of the stream.
   * @throws ShimProtocolError at the first frame that breaks the protocol.
   */
  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < 5) return;
    let buffer =
      this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    let at = 0;
    while (buffer.length - at >= 4) {
      const length = buffer.readUInt32LE(at);
      if (length === 0 || length > MAX_FRAME) {
        throw new ShimProtocolError(`a frame length of ${length}`);
      }
      if (buffer.length - at < 4 + length) break;
      const type = buffer.readUInt8(at + 4);
      this.onMessage(decodeShimFrame(type, buffer.subarray(at + 5, at + 4 + length)));
      at += 4 + length;
    }
    buffer = buffer.subarray(at);
    this.pending = buffer.length === 0 ? [] : [buffer];
    this.pendingBytes = buffer.length;
  }
}
