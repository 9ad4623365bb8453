import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import type { Duplex } from "node:stream";
import type { Logger } from "../core/logger.js";
import {
  FrameReader,
  helloFrame,
  SHIM_PROTOCOL_VERSION,
  type ShimMessage,
} from "./shim-protocol.js";

/** A child the shim holds, as its CHILD frame says. */
export type HeldChild = Extract<ShimMessage, { type: "child" }>;

/**
 * One conversation with a procmon-shim, its handshake done: the socket, the
 * inventory the shim sent, and the frames that came after it, held until
 * `listen()` takes them (so that whoever adopts the inventory first is ready
 * for what follows).
 */
export interface ShimLink {
  readonly socket: Duplex;
  readonly shimPid: number;
  /** The shim process, when this daemon started it (not for a shim it attached to). */
  readonly process: ChildProcess | undefined;
  /** The children the shim held at the handshake. */
  readonly held: readonly HeldChild[];
  /** Delivers every frame from now on, those received after the inventory first. */
  listen(onMessage: (message: ShimMessage) => void, onError: (err: Error) => void): void;
  /** Reads no more frames (they stay in the socket, for the next daemon's shim to send again). */
  pause(): void;
}

/** How to reach a shim. */
export interface ShimLinkOptions {
  /** The procmon-shim binary. */
  readonly path: string;
  /** The socket a shim that outlives the daemon listens on; undefined for one that does not. */
  readonly listen: string | undefined;
  /** Bytes of output the shim keeps per child while no daemon is attached. */
  readonly detachedOutputBuffer: number;
  /** Where the shim's own complaints go. */
  readonly logger: Logger;
  /** How long to wait for the shim's HELLO, in ms. */
  readonly helloTimeoutMs: number;
}

/** What to do on a version mismatch: say both, and never guess. */
export function versionMismatch(version: number): Error {
  return new Error(
    `procmon-shim speaks protocol ${version}, this procmond ${SHIM_PROTOCOL_VERSION}: stop procmond with SIGTERM (which stops the processes and the old shim), then start the new one`,
  );
}

/**
 * Starts a procmon-shim in a session of its own (terminal and group signals
 * meant for the daemon must not reach it), hands it one end of a socket
 * pair, and shakes hands. With `listen`, the shim outlives this daemon there;
 * a stale socket file a dead shim left is removed first.
 * @throws Error when it cannot start, or speaks another protocol version.
 */
export async function startShim(options: ShimLinkOptions): Promise<ShimLink> {
  const args = ["--fd", "3"];
  if (options.listen !== undefined) {
    mkdirSync(dirname(options.listen), { recursive: true, mode: 0o700 });
    rmSync(options.listen, { force: true });
    args.push(
      "--listen",
      options.listen,
      "--detached-output-buffer",
      String(options.detachedOutputBuffer),
    );
  }
  const shim = spawn(options.path, args, {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
    detached: true,
  });
  const socket = shim.stdio[3] as Duplex | null;
  if (socket === null || shim.stderr === null) throw new Error("procmon-shim has no socket");
  shim.stderr.setEncoding("utf8").on("data", (text: string) => {
    for (const line of text.split("\n")) {
      if (line !== "") options.logger.warn({ shim: shim.pid }, line);
    }
  });
  const failure = new Promise<never>((_, reject) => {
    shim.once("error", (err) => reject(new Error(`procmon-shim could not start: ${err.message}`)));
    shim.once("exit", (code, signal) =>
      reject(new Error(`procmon-shim could not start: it exited (${code ?? signal})`)),
    );
  });
  failure.catch(() => {});
  try {
    return await Promise.race([handshake(socket, shim, options.helloTimeoutMs), failure]);
  } catch (err) {
    shim.kill("SIGKILL");
    throw err;
  }
}

/**
 * Attaches to the shim an earlier daemon left listening at `path`, if one
 * is there: undefined when none answers (no socket file, or a dead shim's).
 * @throws Error when one answers but not as a shim of this protocol version.
 */
export async function attachShim(
  path: string,
  helloTimeoutMs: number,
): Promise<ShimLink | undefined> {
  const socket = createConnection(path);
  const connected = await new Promise<boolean>((resolve, reject) => {
    socket.once("connect", () => resolve(true));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED") resolve(false);
      else reject(new Error(`cannot reach procmon-shim at ${path}: ${err.message}`));
    });
  });
  if (!connected) {
    socket.destroy();
    return undefined;
  }
  try {
    return await handshake(socket, undefined, helloTimeoutMs);
  } catch (err) {
    socket.destroy();
    throw new Error(`procmon-shim at ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Sends HELLO and reads the shim's, then its inventory; later frames wait for listen(). */
async function handshake(
  socket: Duplex,
  process: ChildProcess | undefined,
  timeoutMs: number,
): Promise<ShimLink> {
  let deliver: ((message: ShimMessage) => void) | undefined;
  let fail: ((err: Error) => void) | undefined;
  let listening = false;
  let paused = false;
  const early: ShimMessage[] = [];
  const reader = new FrameReader((message) => {
    if (deliver) deliver(message);
    else early.push(message);
  });
  const onData = (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch (err) {
      fail?.(err as Error);
    }
    if (!listening) return;
    // One read (up to 64 KiB) per event-loop turn: libuv would read up to 32
    // in a row from a socket that keeps filling, and the events they make
    // would wait for their subscribers' sockets until the next turn.
    socket.pause();
    setImmediate(() => {
      if (!paused) socket.resume();
    });
  };
  const handshakeClosed = () => fail?.(new Error("procmon-shim closed the socket"));
  socket.on("data", onData);
  // A socket error once listening (EPIPE from a dead shim) is no protocol error: its close follows.
  socket.on("error", (err) => {
    if (!listening) fail?.(err);
  });
  const hello = await new Promise<ShimMessage & { type: "hello" }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("procmon-shim did not answer HELLO")),
      timeoutMs,
    );
    const settle = () => clearTimeout(timer);
    fail = (err) => {
      settle();
      reject(err);
    };
    socket.once("close", handshakeClosed);
    deliver = (message) => {
      if (message.type !== "hello") {
        fail?.(new Error(`procmon-shim answered ${message.type}, not HELLO`));
      } else if (message.version !== SHIM_PROTOCOL_VERSION) {
        fail?.(versionMismatch(message.version));
      } else {
        settle();
        deliver = undefined;
        resolve(message);
      }
    };
    socket.write(helloFrame());
  });
  // The inventory follows at once: nothing else may come before it.
  const held: HeldChild[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("procmon-shim did not send its inventory")),
      timeoutMs,
    );
    fail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
    const take = (message: ShimMessage): boolean => {
      if (held.length === hello.held) return false;
      if (message.type !== "child") {
        fail?.(new Error(`procmon-shim sent ${message.type} inside its inventory`));
        return true;
      }
      held.push(message);
      return true;
    };
    const check = () => {
      if (held.length === hello.held) {
        clearTimeout(timer);
        resolve();
      }
    };
    while (early.length > 0 && take(early[0] as ShimMessage)) early.shift();
    check();
    deliver = (message) => {
      if (!take(message)) early.push(message);
      check();
    };
  });
  deliver = undefined;
  socket.pause();
  return {
    socket,
    shimPid: hello.shimPid,
    process,
    held,
    listen(onMessage, onError) {
      fail = onError;
      socket.removeListener("close", handshakeClosed);
      for (const message of early.splice(0)) onMessage(message);
      deliver = onMessage;
      listening = true;
      socket.resume();
    },
    pause() {
      paused = true;
      socket.pause();
    },
  };
}
