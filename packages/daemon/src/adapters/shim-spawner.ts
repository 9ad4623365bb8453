import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import type { Duplex } from "node:stream";
import type { Logger } from "../core/logger.js";
import { quote } from "../core/quote.js";
import {
  type Child,
  type ChildHandlers,
  SpawnError,
  type Spawner,
  type SpawnRequest,
  type StopSignal,
} from "../core/spawner.js";
import { childEnvironment, effectivePath, lookupExecutable } from "./executable.js";
import type { FlowGate } from "./flow-gate.js";
import { LineSplitter } from "./line-splitter.js";
import { NAME_ENV } from "./orphans.js";
import { readProcStat } from "./proc-stat.js";
import {
  creditFrame,
  FrameReader,
  helloFrame,
  SHIM_PROTOCOL_VERSION,
  type ShimMessage,
  signalFrame,
  spawnFrame,
} from "./shim-protocol.js";
import { errnoName, errnoText, runAs, signalName } from "./spawn-errors.js";

/** Options of {@link ShimSpawner.start}. */
export interface ShimSpawnerOptions {
  /** The procmon-shim binary. */
  readonly path: string;
  /** Pauses giving output credit back while closed (the log sink is full). Defaults to always open. */
  readonly outputGate?: FlowGate | undefined;
  /** Set in every child's environment, whatever its spec says (PROCMON_INSTANCE). */
  readonly markerEnv?: Readonly<Record<string, string>> | undefined;
  /** Where the shim's own complaints go. */
  readonly logger: Logger;
  /** Called once if the shim goes away while the daemon still needs it. */
  readonly onLost?: ((why: string) => void) | undefined;
  /** How long to wait for the shim's HELLO, in ms. Defaults to 5000. */
  readonly helloTimeoutMs?: number;
}

/** What each stage of a failed spawn was, by PROTOCOL.md's numbers. */
const STAGES = [
  "creating its pipes",
  "vfork",
  "setsid",
  "setgroups",
  "setresgid",
  "setresuid",
  "chdir",
  "placing its descriptors",
  "execve",
];

/** A spawn asked for and not answered. */
interface Pending {
  readonly request: SpawnRequest;
  readonly handlers: ChildHandlers;
  readonly file: string;
}

/**
 * Spawns through procmon-shim (native/PROTOCOL.md): the shim forks, is the
 * children's parent and subreaper, reaps them and reads their pipes, so the
 * daemon never forks itself and holds no pipe. Spawns are answered later,
 * through `onSpawned`. Output credit goes back to the shim as lines are
 * handed on, while the output gate is open: only the daemon's log sink paces
 * how fast the shim reads.
 */
export class ShimSpawner implements Spawner {
  readonly #socket: Duplex;
  readonly #process: ChildProcess;
  readonly #gate: FlowGate | undefined;
  readonly #markerEnv: Readonly<Record<string, string>>;
  readonly #logger: Logger;
  readonly #pending = new Map<number, Pending>();
  readonly #children = new Map<number, ShimChild>();
  /** Credit consumed and not yet given back, by child id. */
  readonly #owed = new Map<number, number>();
  #creditScheduled = false;
  #nextId = 1;
  #closing = false;

  /** The shim's pid. */
  readonly shimPid: number;

  private constructor(
    process: ChildProcess,
    socket: Duplex,
    shimPid: number,
    options: ShimSpawnerOptions,
  ) {
    this.#process = process;
    this.#socket = socket;
    this.shimPid = shimPid;
    this.#gate = options.outputGate;
    this.#markerEnv = options.markerEnv ?? {};
    this.#logger = options.logger;
  }

  /**
   * Starts the shim and shakes hands with it.
   * @throws Error when it cannot start, or speaks another protocol version.
   */
  static async start(options: ShimSpawnerOptions): Promise<ShimSpawner> {
    const shim = spawn(options.path, ["--fd", "3"], {
      stdio: ["ignore", "ignore", "pipe", "pipe"],
    });
    const socket = shim.stdio[3] as Duplex | null;
    if (socket === null || shim.stderr === null) throw new Error("procmon-shim has no socket");
    shim.stderr.setEncoding("utf8").on("data", (text: string) => {
      for (const line of text.split("\n")) {
        if (line !== "") options.logger.warn({ shim: shim.pid }, line);
      }
    });
    const hello = await new Promise<ShimMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("procmon-shim did not answer HELLO")),
        options.helloTimeoutMs ?? 5_000,
      );
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`procmon-shim could not start: ${err.message}`));
      };
      shim.once("error", fail);
      shim.once("exit", (code, signal) => fail(new Error(`it exited (${code ?? signal})`)));
      const reader = new FrameReader((message) => {
        clearTimeout(timer);
        shim.removeAllListeners("exit");
        shim.removeListener("error", fail);
        socket.removeAllListeners("data");
        resolve(message);
      });
      socket.on("data", (chunk: Buffer) => {
        try {
          reader.push(chunk);
        } catch (err) {
          fail(err as Error);
        }
      });
      socket.write(helloFrame());
    });
    if (hello.type !== "hello") throw new Error(`procmon-shim answered ${hello.type}, not HELLO`);
    if (hello.version !== SHIM_PROTOCOL_VERSION) {
      shim.kill("SIGKILL");
      throw new Error(
        `procmon-shim speaks protocol ${hello.version}, this procmond ${SHIM_PROTOCOL_VERSION}: stop the processes and the old shim, then start`,
      );
    }
    const spawner = new ShimSpawner(shim, socket, hello.shimPid, options);
    spawner.#listen(options);
    return spawner;
  }

  spawn(request: SpawnRequest, handlers: ChildHandlers): Child | undefined {
    const file = request.args[0] ?? "";
    const lookup = lookupExecutable(file, {
      pathEnv: effectivePath(request.env, request.clearEnv),
      cwd: request.cwd,
    });
    if (!lookup.found) throw new SpawnError(lookup.errno, lookup.message);
    if (this.#closing) throw new SpawnError("ESHUTDOWN", "procmon-shim is gone");
    const id = this.#nextId++;
    const env = childEnvironment(request.env, request.clearEnv, {
      ...this.#markerEnv,
      ...(request.name === undefined ? {} : { [NAME_ENV]: request.name }),
    });
    let frame: Buffer;
    try {
      // A daemon that is not root may only ask for its own ids, which the child
      // has anyway: switching would drop its groups, which takes CAP_SETGID
      // (as libuv, whose failing setgroups is ignored, leaves them).
      const switches = process.getuid?.() === 0;
      frame = spawnFrame({
        id,
        uid: switches ? request.uid : undefined,
        gid: switches ? request.gid : undefined,
        name: request.name ?? "",
        path: lookup.path,
        argv: request.args,
        env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        cwd: request.cwd,
      });
    } catch (err) {
      throw new SpawnError("E2BIG", `cannot spawn ${quote(file)}: ${(err as Error).message}`);
    }
    this.#pending.set(id, { request, handlers, file });
    this.#socket.write(frame);
    return undefined;
  }

  /** Ends the conversation: the shim exits (leaving nothing: call after every child has exited). */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#process.exitCode !== null || this.#process.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#process.once("exit", () => resolve()));
    this.#socket.end();
    const timer = setTimeout(() => this.#process.kill("SIGKILL"), 2_000);
    await exited;
    clearTimeout(timer);
  }

  #listen(options: ShimSpawnerOptions): void {
    const reader = new FrameReader((message) => this.#receive(message));
    const lost = (why: string) => {
      if (this.#closing) return;
      this.#closing = true;
      options.onLost?.(why);
    };
    const resume = () => this.#socket.resume();
    this.#socket.on("data", (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        options.logger.warn({ err }, "procmon-shim broke the protocol");
        lost(`procmon-shim broke the protocol: ${(err as Error).message}`);
        this.#process.kill("SIGKILL");
      }
      // One read (up to 64 KiB) per event-loop turn: libuv would read up to 32
      // in a row from a socket that keeps filling, and the events they make
      // would wait for their subscribers' sockets until the next turn.
      this.#socket.pause();
      setImmediate(resume);
    });
    this.#socket.on("error", () => {});
    this.#process.once("exit", (code, signal) => {
      lost(`procmon-shim (pid ${this.shimPid}) exited (${signal ?? `code ${code}`})`);
    });
  }

  #receive(message: ShimMessage): void {
    switch (message.type) {
      case "spawned": {
        const pending = this.#take(message.id);
        if (pending === undefined) return;
        const child = new ShimChild(
          this,
          message.id,
          message.pid,
          String(message.startTime),
          pending.handlers,
        );
        this.#children.set(message.id, child);
        pending.handlers.onSpawned(child);
        return;
      }
      case "spawnFailed": {
        const pending = this.#take(message.id);
        if (pending === undefined) return;
        const code = errnoName(message.errno);
        const stage = STAGES[message.stage] ?? `stage ${message.stage}`;
        pending.handlers.onSpawned(
          new SpawnError(
            code,
            `cannot spawn ${quote(pending.file)}${runAs(pending.request)}: ${errnoText(code)} (${stage})`,
          ),
        );
        return;
      }
      case "output": {
        this.#children.get(message.id)?.output(message.stream, message.data);
        this.#owe(message.id, message.data.length);
        return;
      }
      case "eof":
        this.#children.get(message.id)?.eof(message.stream);
        return;
      case "exited": {
        const child = this.#children.get(message.id);
        child?.exited(message.status);
        return;
      }
      case "error":
        this.#logger.warn({ shim: this.shimPid }, `procmon-shim: ${message.message}`);
        return;
      case "hello":
        return;
    }
  }

  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    return pending;
  }

  /** Gives consumed credit back, once a turn and while the output gate is open. */
  #owe(id: number, bytes: number): void {
    this.#owed.set(id, (this.#owed.get(id) ?? 0) + bytes);
    if (this.#creditScheduled) return;
    this.#creditScheduled = true;
    const flush = () => {
      this.#creditScheduled = false;
      for (const [child, owed] of this.#owed) this.#socket.write(creditFrame(child, owed));
      this.#owed.clear();
    };
    if (this.#gate && !this.#gate.isOpen) this.#gate.whenOpen(() => setImmediate(flush));
    else setImmediate(flush);
  }

  /** @internal Sends `signal` to child `id`'s whole tree. */
  signal(id: number, signal: StopSignal): void {
    if (this.#closing) return;
    this.#socket.write(signalFrame(id, constants.signals[signal], "tree"));
  }

  /** @internal Forgets child `id` once nothing more can come of it. */
  forget(id: number): void {
    this.#children.delete(id);
    this.#owed.delete(id);
  }
}

/** A child of the shim, as the core sees it. */
class ShimChild implements Child {
  #exited = false;
  #open = 2;
  readonly #lines: Record<1 | 2, LineSplitter>;

  constructor(
    private readonly shim: ShimSpawner,
    private readonly id: number,
    readonly pid: number,
    /** From /proc at the spawn, as the shim read it: tells this process from a later one with its pid. */
    private readonly startTime: string,
    private readonly handlers: ChildHandlers,
  ) {
    this.#lines = {
      1: new LineSplitter((line, partial) => handlers.onOutput("stdout", line, partial)),
      2: new LineSplitter((line, partial) => handlers.onOutput("stderr", line, partial)),
    };
  }

  signal(signal: StopSignal): void {
    // Its pid is reaped once it has exited and may be reused: never signal it again.
    if (!this.#exited) this.shim.signal(this.id, signal);
  }

  isAlive(): boolean {
    if (this.#exited) return true;
    return readProcStat(this.pid)?.startTime === this.startTime;
  }

  /** @internal */
  output(stream: 1 | 2, data: Buffer): void {
    this.#lines[stream].push(data);
  }

  /** @internal */
  eof(stream: 1 | 2): void {
    this.#lines[stream].end();
    this.#open -= 1;
    if (this.#open === 0 && this.#exited) this.shim.forget(this.id);
  }

  /** @internal The shim reaped it: `status` is the raw wait status. */
  exited(status: number): void {
    if (this.#exited) return;
    this.#exited = true;
    const signalled = status & 0x7f;
    this.handlers.onExit(
      signalled === 0
        ? { code: (status >> 8) & 0xff, signal: null }
        : { code: null, signal: signalName(signalled) },
    );
    if (this.#open === 0) this.shim.forget(this.id);
  }
}
