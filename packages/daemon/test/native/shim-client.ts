// The test side of the shim protocol (packages/daemon/native/PROTOCOL.md),
// written from the document alone: frame encoders for the daemon's frames, a
// strict decoder of the shim's, a connection that records what the shim says
// on one socket, and a harness that runs a real shim on a socket pair (and
// connects to its --listen socket).
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";

export const MAGIC = 0x534d5250;
export const MAX_FRAME = 1_048_576;
export const CREDIT_INITIAL = 262_144;
export const VERSION = 2;
/** How long any one wait of these tests may take. */
export const WAIT_MS = 5_000;

export const T = {
  HELLO: 1,
  SPAWN: 2,
  SIGNAL: 3,
  CREDIT: 4,
  SPAWNED: 5,
  SPAWN_FAILED: 6,
  OUTPUT: 7,
  EOF: 8,
  EXITED: 9,
  ERROR: 10,
  CHILD: 11,
  EXIT: 12,
} as const;

/** Builds one frame's payload field by field. */
export class FrameWriter {
  readonly #parts: Buffer[] = [];

  u8(v: number): this {
    return this.#push(1, (b) => b.writeUInt8(v));
  }
  u16(v: number): this {
    return this.#push(2, (b) => b.writeUInt16LE(v));
  }
  u32(v: number): this {
    return this.#push(4, (b) => b.writeUInt32LE(v >>> 0));
  }
  i32(v: number): this {
    return this.#push(4, (b) => b.writeInt32LE(v));
  }
  str(s: string | Buffer): this {
    const bytes = typeof s === "string" ? Buffer.from(s) : s;
    this.u32(bytes.length);
    this.#parts.push(bytes);
    return this;
  }
  strList(items: readonly (string | Buffer)[]): this {
    this.u32(items.length);
    for (const item of items) this.str(item);
    return this;
  }
  raw(bytes: Buffer): this {
    this.#parts.push(bytes);
    return this;
  }
  /** The whole frame: length, type, payload. */
  frame(type: number): Buffer {
    const body = Buffer.concat([Buffer.from([type]), ...this.#parts]);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(body.length);
    return Buffer.concat([length, body]);
  }

  #push(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    this.#parts.push(b);
    return this;
  }
}

export function helloFrame(version = VERSION, magic = MAGIC, reserved = 0): Buffer {
  return new FrameWriter().u32(magic).u16(version).u16(reserved).frame(T.HELLO);
}

/** A SPAWN's fields; flags bit 0 switches to uid, bit 1 to gid. */
export interface SpawnFields {
  readonly id: number;
  readonly path: string;
  readonly argv: readonly string[];
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly name?: string;
  readonly flags?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly memo?: string | Buffer;
}

export function spawnWriter(f: SpawnFields): FrameWriter {
  return new FrameWriter()
    .u32(f.id)
    .u32(f.flags ?? 0)
    .u32(f.uid ?? 0)
    .u32(f.gid ?? 0)
    .str(f.name ?? `t${f.id}`)
    .str(f.path)
    .strList(f.argv)
    .strList(f.env ?? [])
    .str(f.cwd ?? "")
    .str(f.memo ?? "");
}

export function signalFrame(id: number, signo: number, scope: 0 | 1): Buffer {
  return new FrameWriter().u32(id).i32(signo).u8(scope).frame(T.SIGNAL);
}

export function creditFrame(id: number, stream: number, bytes: number): Buffer {
  return new FrameWriter().u32(id).u8(stream).u32(bytes).frame(T.CREDIT);
}

export function exitFrame(): Buffer {
  return new FrameWriter().frame(T.EXIT);
}

/** One frame from the shim, decoded. */
export type ShimFrame =
  | {
      type: "hello";
      magic: number;
      version: number;
      reserved: number;
      pid: number;
      held: number;
    }
  | {
      type: "child";
      id: number;
      pid: number;
      startTime: bigint;
      flags: number;
      name: string;
      memo: string;
    }
  | { type: "spawned"; id: number; pid: number; startTime: bigint }
  | { type: "spawn_failed"; id: number; errno: number; stage: number }
  | { type: "output"; id: number; stream: number; data: Buffer }
  | { type: "eof"; id: number; stream: number }
  | {
      type: "exited";
      id: number;
      pid: number;
      status: number;
      timeNs: bigint;
      utimeUs: bigint;
      stimeUs: bigint;
      maxrssKib: bigint;
    };

/** A cursor that throws when a field runs past the frame. */
class FrameReader {
  #at = 0;
  constructor(readonly body: Buffer) {}
  #take(n: number): number {
    if (this.#at + n > this.body.length) throw new Error("frame too short for its fields");
    const at = this.#at;
    this.#at += n;
    return at;
  }
  u8 = () => this.body.readUInt8(this.#take(1));
  u16 = () => this.body.readUInt16LE(this.#take(2));
  u32 = () => this.body.readUInt32LE(this.#take(4));
  i32 = () => this.body.readInt32LE(this.#take(4));
  i64 = () => this.body.readBigInt64LE(this.#take(8));
  u64 = () => this.body.readBigUInt64LE(this.#take(8));
  rest = () => this.body.subarray(this.#take(this.body.length - this.#at));
  str = () => {
    const n = this.u32();
    const at = this.#take(n);
    return this.body.subarray(at, at + n).toString();
  };
  end(): void {
    if (this.#at !== this.body.length) throw new Error("bytes after the frame's fields");
  }
}

function decodeBody(type: number, r: FrameReader): ShimFrame | { type: "error"; message: string } {
  switch (type) {
    case T.HELLO:
      return {
        type: "hello",
        magic: r.u32(),
        version: r.u16(),
        reserved: r.u16(),
        pid: r.u32(),
        held: r.u32(),
      };
    case T.CHILD:
      return {
        type: "child",
        id: r.u32(),
        pid: r.u32(),
        startTime: r.u64(),
        flags: r.u8(),
        name: r.str(),
        memo: r.str(),
      };
    case T.SPAWNED:
      return { type: "spawned", id: r.u32(), pid: r.u32(), startTime: r.u64() };
    case T.SPAWN_FAILED:
      return { type: "spawn_failed", id: r.u32(), errno: r.i32(), stage: r.u8() };
    case T.OUTPUT:
      return { type: "output", id: r.u32(), stream: r.u8(), data: Buffer.from(r.rest()) };
    case T.EOF:
      return { type: "eof", id: r.u32(), stream: r.u8() };
    case T.EXITED:
      return {
        type: "exited",
        id: r.u32(),
        pid: r.u32(),
        status: r.i32(),
        timeNs: r.i64(),
        utimeUs: r.i64(),
        stimeUs: r.i64(),
        maxrssKib: r.i64(),
      };
    case T.ERROR:
      return { type: "error", message: r.str() };
    default:
      throw new Error(`unknown frame type ${type} from the shim`);
  }
}

export type AnyShimFrame = ShimFrame | { type: "error"; message: string };

/** Splits the shim's byte stream into frames, checking every bound PROTOCOL.md sets. */
export class FrameDecoder {
  #pending = Buffer.alloc(0);

  push(chunk: Buffer): AnyShimFrame[] {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const frames: AnyShimFrame[] = [];
    while (this.#pending.length >= 4) {
      const length = this.#pending.readUInt32LE(0);
      if (length < 1 || length > MAX_FRAME) throw new Error(`frame length ${length}`);
      if (this.#pending.length < 4 + length) break;
      const body = this.#pending.subarray(4, 4 + length);
      this.#pending = this.#pending.subarray(4 + length);
      const reader = new FrameReader(body.subarray(1));
      const frame = decodeBody(body.readUInt8(0), reader);
      reader.end();
      if (frame.type === "output" && (frame.data.length < 1 || frame.data.length > 65_536))
        throw new Error(`OUTPUT of ${frame.data.length} bytes`);
      frames.push(frame);
    }
    return frames;
  }
}

/** How to start a shim: the binary, and a wrapper command line around it (ulimit, setpriv...). */
export interface ShimOptions {
  /** Shell text run before `exec`ing the shim: `ulimit -n 12`, a `trap`. */
  readonly shellPrefix?: string;
  /** A command the shim runs under: ["setpriv", "--groups=4,24"]. */
  readonly wrapper?: readonly string[];
  readonly cwd?: string;
  readonly uid?: number;
  readonly gid?: number;
  /** The shim's environment. Defaults to the test's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Extra fds for the shim beyond the socket (fd 3): each an inherited pipe. */
  readonly extraFds?: number;
  /** Gives back the credit of each OUTPUT as it arrives, as the daemon's log sink would. */
  readonly autoCredit?: boolean;
  /** --listen PATH: the shim outlives this harness's socket. */
  readonly listen?: string;
  /** --detached-output-buffer BYTES. */
  readonly detachedOutputBuffer?: number;
}

type Waiter = { test: (f: AnyShimFrame) => boolean; resolve: (f: AnyShimFrame) => void };

/** One socket to a shim, and everything the shim has said on it. */
export class ShimConnection {
  readonly socket: Socket;
  readonly frames: AnyShimFrame[] = [];
  /** True once the socket reached its end (the shim closed it or exited). */
  socketEnded = false;
  readonly #waiters = new Set<Waiter>();
  readonly #decoder = new FrameDecoder();
  readonly #ended: Promise<void>;
  #autoCredit: boolean;

  constructor(socket: Socket, autoCredit = true) {
    this.socket = socket;
    this.#autoCredit = autoCredit;
    this.#ended = new Promise((resolve) => this.socket.on("close", () => resolve()));
    this.socket.on("end", () => {
      this.socketEnded = true;
    });
    this.socket.on("error", () => {});
    this.socket.on("data", (chunk: Buffer) => this.#receive(chunk));
  }

  /** What to say when a wait times out (the harness adds the shim's stderr). */
  protected describe(): string {
    return "";
  }

  /** Turns giving credit back on or off (the flood test spends it on purpose). */
  set autoCredit(on: boolean) {
    this.#autoCredit = on;
  }

  send(frame: Buffer): void {
    this.socket.write(frame);
  }

  /** The first frame (received or to come) that passes `test`. */
  waitFor<F extends AnyShimFrame>(
    what: string,
    test: (f: AnyShimFrame) => f is F,
    timeoutMs = WAIT_MS,
  ): Promise<F> {
    const seen = this.frames.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<F>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${what} from the shim within ${timeoutMs} ms${this.describe()}`));
      }, timeoutMs);
      const waiter: Waiter = {
        test,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f as F);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Resolves once the socket has closed, within WAIT_MS. */
  async closed(): Promise<void> {
    await withTimeout(this.#ended, "the shim's socket to close");
  }

  async handshake(): Promise<Extract<ShimFrame, { type: "hello" }>> {
    this.send(helloFrame());
    return this.waitFor(
      "HELLO",
      (f): f is Extract<ShimFrame, { type: "hello" }> => f.type === "hello",
    );
  }

  /** The HELLO and the `held` CHILD frames after it (sending HELLO first unless `sent`). */
  async inventory(sent = false): Promise<{
    hello: Extract<ShimFrame, { type: "hello" }>;
    children: Extract<ShimFrame, { type: "child" }>[];
  }> {
    if (!sent) this.send(helloFrame());
    const hello = await this.waitFor(
      "HELLO",
      (f): f is Extract<ShimFrame, { type: "hello" }> => f.type === "hello",
    );
    const children = () =>
      this.frames.filter((f): f is Extract<ShimFrame, { type: "child" }> => f.type === "child");
    if (children().length < hello.held)
      await this.waitFor(
        `${hello.held} CHILD frames`,
        (f): f is ShimFrame => f.type === "child" && children().length >= hello.held,
      );
    return { hello, children: children() };
  }

  /** Sends a SPAWN and waits for its answer. */
  async spawn(
    fields: SpawnFields,
  ): Promise<Extract<ShimFrame, { type: "spawned" } | { type: "spawn_failed" }>> {
    this.send(spawnWriter(fields).frame(T.SPAWN));
    return this.waitFor(
      `the answer to SPAWN ${fields.id}`,
      (f): f is Extract<ShimFrame, { type: "spawned" } | { type: "spawn_failed" }> =>
        (f.type === "spawned" || f.type === "spawn_failed") && f.id === fields.id,
    );
  }

  /** Spawns and insists on success. */
  async spawned(fields: SpawnFields): Promise<Extract<ShimFrame, { type: "spawned" }>> {
    const answer = await this.spawn(fields);
    if (answer.type !== "spawned")
      throw new Error(`SPAWN ${fields.id} failed: errno ${answer.errno}, stage ${answer.stage}`);
    return answer;
  }

  exitOf(id: number, timeoutMs = WAIT_MS): Promise<Extract<ShimFrame, { type: "exited" }>> {
    return this.waitFor(
      `EXITED ${id}`,
      (f): f is Extract<ShimFrame, { type: "exited" }> => f.type === "exited" && f.id === id,
      timeoutMs,
    );
  }

  eofOf(id: number, stream: 1 | 2): Promise<Extract<ShimFrame, { type: "eof" }>> {
    return this.waitFor(
      `EOF ${id}/${stream}`,
      (f): f is Extract<ShimFrame, { type: "eof" }> =>
        f.type === "eof" && f.id === id && f.stream === stream,
    );
  }

  /** Everything stream `stream` of `id` has sent so far. */
  output(id: number, stream: 1 | 2): Buffer {
    const parts = this.frames.flatMap((f) =>
      f.type === "output" && f.id === id && f.stream === stream ? [f.data] : [],
    );
    return Buffer.concat(parts);
  }

  /** Waits until the output of `id` on `stream` matches `pattern`. */
  async outputMatching(
    id: number,
    stream: 1 | 2,
    pattern: RegExp,
    timeoutMs = WAIT_MS,
  ): Promise<string> {
    const matches = () => pattern.test(this.output(id, stream).toString());
    if (!matches())
      await this.waitFor(
        `output of ${id} matching ${pattern}`,
        (f): f is ShimFrame => f.type === "output" && f.id === id && matches(),
        timeoutMs,
      );
    return this.output(id, stream).toString();
  }

  #receive(chunk: Buffer): void {
    for (const frame of this.#decoder.push(chunk)) {
      this.frames.push(frame);
      if (this.#autoCredit && frame.type === "output") {
        this.send(creditFrame(frame.id, frame.stream, frame.data.length));
      }
      for (const waiter of this.#waiters) {
        if (waiter.test(frame)) {
          this.#waiters.delete(waiter);
          waiter.resolve(frame);
        }
      }
    }
  }
}

/** A running shim on a socket pair (fd 3), and everything it has said there. */
export class ShimHarness extends ShimConnection {
  readonly process: ChildProcess;
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The connections made to its --listen socket. */
  readonly connections: ShimConnection[] = [];
  /** Whether it was started with --listen (and so outlives its socket). */
  readonly listening: boolean;

  constructor(binary: string, options: ShimOptions = {}) {
    const flags = [
      ...(options.listen === undefined ? [] : ["--listen", options.listen]),
      ...(options.detachedOutputBuffer === undefined
        ? []
        : ["--detached-output-buffer", String(options.detachedOutputBuffer)]),
    ];
    const shimArgs = [...(options.wrapper ?? []), binary, "--fd", "3", ...flags];
    const [file, args] =
      options.shellPrefix === undefined
        ? [shimArgs[0] ?? binary, shimArgs.slice(1)]
        : ["/bin/sh", ["-c", `${options.shellPrefix}; exec "$@"`, "sh", ...shimArgs]];
    const extra = Array.from({ length: options.extraFds ?? 0 }, () => "pipe" as const);
    const child = spawn(file, args, {
      stdio: ["ignore", "ignore", "pipe", "pipe", ...extra],
      cwd: options.cwd,
      uid: options.uid,
      gid: options.gid,
      env: options.env ?? process.env,
    });
    super(child.stdio[3] as Socket, options.autoCredit ?? true);
    this.process = child;
    this.listening = options.listen !== undefined;
    this.exited = new Promise((resolve) =>
      this.process.on("exit", (code, signal) => resolve({ code, signal })),
    );
    this.process.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  protected override describe(): string {
    return `; stderr: ${this.stderr}`;
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Whether the shim process is still running. */
  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Connects to the shim's --listen socket, as a later daemon would (no frame sent yet). */
  async connect(socketPath: string, autoCredit = true): Promise<ShimConnection> {
    const socket = createConnection(socketPath);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("error", reject);
      }),
      `a connection to ${socketPath}`,
    );
    const c = new ShimConnection(socket, autoCredit);
    this.connections.push(c);
    return c;
  }

  /** Ends the daemon's side of the socket and waits for the shim to exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.socket.end();
    return withTimeout(this.exited, "the shim to exit");
  }
}

export async function withTimeout<V>(promise: Promise<V>, what: string, ms = WAIT_MS): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What /proc/<pid>/stat says, or undefined once the process is gone. */
export function procStat(
  pid: number,
): { state: string; ppid: number; pgid: number; sid: number; startTime: bigint } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return {
      state: f[0] ?? "?",
      ppid: Number(f[1]),
      pgid: Number(f[2]),
      sid: Number(f[3]),
      startTime: BigInt(f[19] ?? "0"),
    };
  } catch {
    return undefined;
  }
}
