import { createHash } from "node:crypto";
import { constants } from "node:os";
import type { Logger } from "../core/logger.js";
import { quote } from "../core/quote.js";
import {
  type Child,
  type ChildExit,
  type ChildHandlers,
  type FoundRun,
  type RunRecord,
  SpawnError,
  type Spawner,
  type SpawnRequest,
  type StopSignal,
} from "../core/spawner.js";
import type { ExitStatus, RunSpec } from "../core/types.js";
import { childEnvironment, effectivePath, lookupExecutable } from "./executable.js";
import type { OutputGate } from "./flow-gate.js";
import { LineSplitter } from "./line-splitter.js";
import { NAME_ENV } from "./orphans.js";
import { readProcStat } from "./proc-stat.js";
import { attachShim, type HeldChild, type ShimLink, startShim } from "./shim-link.js";
import {
  creditFrame,
  exitFrame,
  type ShimMessage,
  type StreamNumber,
  signalFrame,
  spawnFrame,
} from "./shim-protocol.js";
import { errnoName, errnoText, runAs, signalName } from "./spawn-errors.js";

/** Options of {@link ShimSpawner.open}. */
export interface ShimSpawnerOptions {
  /** The procmon-shim binary. */
  readonly path: string;
  /**
   * The socket the shim listens on to outlive this daemon (beside the state
   * file); undefined for a shim whose children end with the daemon.
   */
  readonly listen?: string | undefined;
  /** Bytes of output the shim keeps per child while no daemon is attached. Defaults to 1 MiB. */
  readonly detachedOutputBuffer?: number;
  /** Pauses giving output credit back while closed (the log sink is full). Defaults to always open. */
  readonly outputGate?: OutputGate | undefined;
  /**
   * Calls back once the events made so far have been written to every
   * subscriber that keeps up: output is acknowledged to the shim (which then
   * forgets it) only then, so that a daemon killed meanwhile loses none of it.
   * Defaults to at once.
   */
  readonly afterDelivery?: ((fn: () => void) => void) | undefined;
  /** Set in every child's environment, whatever its spec says (PROCMON_INSTANCE). */
  readonly markerEnv?: Readonly<Record<string, string>> | undefined;
  /** Where the shim's own complaints go. */
  readonly logger: Logger;
  /**
   * After the shim died and a new one started (`shimPid`), once the dead
   * one's children are gone: ends what their trees left, before anything is
   * spawned again.
   */
  readonly sweep?: ((shimPid: number) => Promise<void>) | undefined;
  /** Called once if the shim is gone and cannot be replaced: the daemon cannot supervise. */
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

/** The raw wait status of a child killed by SIGKILL: what a shim's death does to its children. */
const KILLED_STATUS = constants.signals.SIGKILL;

/** A spawn asked for and not answered. */
interface Pending {
  readonly request: SpawnRequest;
  readonly handlers: ChildHandlers;
  readonly file: string;
  readonly memo: Memo;
  /** The SPAWN, sent again to a new shim if the one it went to died first. */
  readonly frame: Buffer;
}

/** What the shim keeps with a child for a later daemon (SPAWN's memo), as JSON. */
interface Memo {
  readonly v: 1;
  /** The restart count at its start. */
  readonly r: number;
  /** Wall-clock ms of the spawn. */
  readonly t: number;
  /** runKey() of what it runs. */
  readonly k: string;
  /** The exit of the run before it. */
  readonly x?: ExitStatus | undefined;
}

/** What a run runs, in short: a later daemon restarts a run whose spec no longer matches it. */
function runKey(spec: RunSpec | SpawnRequest): string {
  const env = Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const what = [spec.args, env, spec.clearEnv, spec.cwd, spec.uid ?? null, spec.gid ?? null];
  return createHash("sha256").update(JSON.stringify(what)).digest("base64url").slice(0, 22);
}

function readMemo(text: string): Memo | undefined {
  try {
    const memo = JSON.parse(text) as Partial<Memo> | null;
    if (memo?.v !== 1 || typeof memo.r !== "number" || typeof memo.t !== "number") return undefined;
    if (typeof memo.k !== "string") return undefined;
    return memo as Memo;
  } catch {
    return undefined;
  }
}

/**
 * Spawns through procmon-shim (native/PROTOCOL.md): the shim forks, is the
 * children's parent and subreaper, reaps them and reads their pipes, so the
 * daemon never forks itself and holds no pipe. Spawns are answered later,
 * through `onSpawned`.
 *
 * With `listen`, the shim and its children outlive the daemon: open()
 * attaches to the shim an earlier daemon left, whose children are `found`
 * for the daemon to adopt. Output is acknowledged (credit given back) only
 * once the lines were handed on and delivered, so the shim keeps what a
 * killed daemon had not finished with for the next one. If the shim itself
 * dies, its children die with it: each is reported killed, and a new shim is
 * started for what restarts them.
 */
export class ShimSpawner implements Spawner {
  readonly #options: ShimSpawnerOptions;
  readonly #markerEnv: Readonly<Record<string, string>>;
  readonly #logger: Logger;
  #link: ShimLink;
  readonly #pending = new Map<number, Pending>();
  readonly #children = new Map<number, ShimChild>();
  /** Bytes of each stream consumed and not yet acknowledged, by child id. */
  readonly #owed = new Map<number, [number, number]>();
  #creditScheduled = false;
  #paused = false;
  #nextId = 1;
  #closing = false;
  /** Frames for a shim being started in place of a dead one. */
  #queued: Buffer[] | undefined;

  /** The runs an earlier daemon left with the shim this one attached to; empty for a new shim. */
  readonly found: readonly FoundRun[];

  private constructor(link: ShimLink, options: ShimSpawnerOptions) {
    this.#link = link;
    this.#options = options;
    this.#markerEnv = options.markerEnv ?? {};
    this.#logger = options.logger;
    this.found = link.held.map((held) => this.#adoptable(held));
  }

  /**
   * Attaches to the shim at `listen` if an earlier daemon left one there,
   * else starts one; its frames wait for resume().
   * @throws Error when the shim cannot start, or speaks another protocol version.
   */
  static async open(options: ShimSpawnerOptions): Promise<ShimSpawner> {
    const timeout = options.helloTimeoutMs ?? 5_000;
    const attached =
      options.listen === undefined ? undefined : await attachShim(options.listen, timeout);
    const link = attached ?? (await startShim(ShimSpawner.#linkOptions(options)));
    if (attached) {
      options.logger.info(
        { shimPid: link.shimPid, children: link.held.length },
        "attached to the procmon-shim an earlier procmond left",
      );
    }
    return new ShimSpawner(link, options);
  }

  static #linkOptions(options: ShimSpawnerOptions) {
    return {
      path: options.path,
      listen: options.listen,
      detachedOutputBuffer: options.detachedOutputBuffer ?? 1_048_576,
      logger: options.logger,
      helloTimeoutMs: options.helloTimeoutMs ?? 5_000,
    };
  }

  /** The shim's pid. */
  get shimPid(): number {
    return this.#link.shimPid;
  }

  /** The pids of the children the shim holds now (alive or not yet reported). */
  heldPids(): Set<number> {
    return new Set([...this.#children.values()].map((child) => child.pid));
  }

  /** True if the shim outlives this daemon (it listens for the next one). */
  get survives(): boolean {
    return this.#options.listen !== undefined;
  }

  /**
   * Lets the shim's frames in: call once every found run is bound (one that
   * is not is left unbound: its output is dropped, its exit ignored).
   */
  resume(): void {
    this.#listen(this.#link);
  }

  /**
   * Stops taking the shim's frames, and giving credit back once delivered
   * (detach: what this daemon has not finished with is the next one's).
   */
  pause(): void {
    this.#paused = true;
    this.#link.pause();
  }

  /** Acknowledges at once everything handed on so far (detach, once it was delivered). */
  acknowledgeNow(): void {
    this.#sendCredit(this.#link, this.#takeOwed());
  }

  spawn(request: SpawnRequest, handlers: ChildHandlers, record?: RunRecord): Child | undefined {
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
    const memo: Memo = {
      v: 1,
      r: record?.restartCount ?? 0,
      t: Date.now(),
      k: runKey(request),
      x: record?.lastExit,
    };
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
        memo: JSON.stringify(memo),
      });
    } catch (err) {
      throw new SpawnError("E2BIG", `cannot spawn ${quote(file)}: ${(err as Error).message}`);
    }
    this.#pending.set(id, { request, handlers, file, memo, frame });
    this.#send(frame);
    return undefined;
  }

  /**
   * Ends the conversation for good: EXIT, and the shim kills what it still
   * holds and exits. Call after every child has exited.
   */
  async close(): Promise<void> {
    this.#closing = true;
    const { socket, process: shim, shimPid } = this.#link;
    if (socket.destroyed) return;
    const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.end(exitFrame());
    const timer = setTimeout(() => {
      // A shim this daemon did not start is checked before it is killed: its pid may be reused.
      if (shim) shim.kill("SIGKILL");
      else if (readProcStat(shimPid) !== undefined) process.kill(shimPid, "SIGKILL");
      socket.destroy();
    }, 2_000);
    await gone;
    if (shim && shim.exitCode === null && shim.signalCode === null) {
      await new Promise((resolve) => shim.once("exit", resolve));
    }
    clearTimeout(timer);
  }

  /**
   * For a daemon that failed to start: a shim it started, holding nothing,
   * is closed; one it attached to is left with its processes, for the next.
   */
  async abandon(): Promise<void> {
    if (this.found.length === 0 && this.#children.size === 0 && this.#pending.size === 0) {
      await this.close();
      return;
    }
    this.#closing = true;
    this.#link.socket.destroy();
  }

  #send(frame: Buffer): void {
    if (this.#queued) this.#queued.push(frame);
    else this.#link.socket.write(frame);
  }

  #listen(link: ShimLink): void {
    let lost = false;
    const lose = (why: string) => {
      if (lost || this.#link !== link) return;
      lost = true;
      this.#lost(why);
    };
    link.listen(
      (message) => this.#receive(message),
      (err) => {
        this.#logger.warn({ err }, "procmon-shim broke the protocol");
        link.socket.destroy();
        if (link.process) link.process.kill("SIGKILL");
        else process.kill(link.shimPid, "SIGKILL");
        lose(`procmon-shim broke the protocol: ${err.message}`);
      },
    );
    link.socket.on("close", () => lose(`procmon-shim (pid ${link.shimPid}) is gone`));
    link.process?.once("exit", (code, signal) =>
      lose(`procmon-shim (pid ${link.shimPid}) exited (${signal ?? `code ${code}`})`),
    );
  }

  /**
   * The shim died, and its children with it: a new shim is started, each
   * child reported killed (which restarts them by the usual rule, through
   * the new shim once it is up), and what their trees left is swept first.
   */
  #lost(why: string): void {
    if (this.#closing) return;
    this.#logger.error({}, `${why}: its children died with it; starting a new procmon-shim`);
    // Spawns it did not answer go to the new shim (a child it made died with it).
    this.#queued = [...this.#pending.values()].map((pending) => pending.frame);
    const dead = [...this.#children.values()];
    this.#children.clear();
    this.#owed.clear();
    (async () => {
      const link = await startShim(ShimSpawner.#linkOptions(this.#options));
      await Promise.all(dead.map((child) => child.gone()));
      this.#link = link;
      for (const child of dead) child.exited(KILLED_STATUS, undefined);
      await this.#options.sweep?.(link.shimPid);
      this.#listen(link);
      const queued = this.#queued ?? [];
      this.#queued = undefined;
      for (const frame of queued) link.socket.write(frame);
      this.#logger.warn({ shimPid: link.shimPid }, "a new procmon-shim took over");
    })().catch((err: unknown) => {
      this.#closing = true;
      for (const { handlers, file } of this.#pending.values()) {
        handlers.onSpawned(new SpawnError("ESHUTDOWN", `cannot spawn ${quote(file)}: ${why}`));
      }
      this.#pending.clear();
      this.#options.onLost?.(`${why}, and no new one could start: ${(err as Error).message}`);
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
          pending.memo.t,
          false,
        );
        child.bind(pending.handlers);
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
      case "output":
        this.#children.get(message.id)?.output(message.stream, message.data);
        return;
      case "eof":
        this.#children.get(message.id)?.eof(message.stream);
        return;
      case "exited":
        this.#children.get(message.id)?.exited(message.status, message.timeNs);
        return;
      case "error":
        this.#logger.warn({ shim: this.shimPid }, `procmon-shim: ${message.message}`);
        return;
      case "hello":
      case "child":
        return;
    }
  }

  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    return pending;
  }

  /** A run the shim held when this daemon attached, ready to be bound to its process. */
  #adoptable(held: HeldChild): FoundRun {
    const memo = readMemo(held.memo);
    if (held.id >= this.#nextId) this.#nextId = held.id + 1;
    const child = new ShimChild(
      this,
      held.id,
      held.pid,
      String(held.startTime),
      memo?.t ?? Date.now(),
      true,
    );
    if (held.reaped) child.markReaped();
    this.#children.set(held.id, child);
    return {
      name: held.name,
      child,
      startedAtWallMs: memo?.t ?? Date.now(),
      record: memo && { restartCount: memo.r, lastExit: memo.x },
      exited: held.reaped,
      runs: (spec) => memo !== undefined && memo.k === runKey(spec),
      bind: (handlers) => child.bind({ ...handlers, onSpawned: () => {} }),
    };
  }

  /** @internal `bytes` more of child `id`'s `stream` were handed on: acknowledged once delivered. */
  owe(id: number, stream: StreamNumber, bytes: number): void {
    if (bytes <= 0) return;
    const owed = this.#owed.get(id) ?? [0, 0];
    owed[stream - 1] = (owed[stream - 1] as number) + bytes;
    this.#owed.set(id, owed);
    if (this.#creditScheduled) return;
    this.#creditScheduled = true;
    const flush = () => {
      this.#creditScheduled = false;
      if (this.#paused) return;
      const link = this.#link;
      const owed = this.#takeOwed();
      const send = () => {
        // Paused (detaching): kept for acknowledgeNow(), which the detach calls once delivered.
        if (this.#paused) this.#restoreOwed(owed);
        else this.#sendCredit(link, owed);
      };
      if (this.#options.afterDelivery) this.#options.afterDelivery(send);
      else send();
    };
    const gate = this.#options.outputGate;
    if (gate && !gate.isOpen) gate.whenOpen(() => setImmediate(flush));
    else setImmediate(flush);
  }

  #takeOwed(): Array<[number, [number, number]]> {
    const owed = [...this.#owed];
    this.#owed.clear();
    return owed;
  }

  #restoreOwed(owed: Array<[number, [number, number]]>): void {
    for (const [id, [out, err]] of owed) {
      const now = this.#owed.get(id) ?? [0, 0];
      this.#owed.set(id, [now[0] + out, now[1] + err]);
    }
  }

  #sendCredit(link: ShimLink, owed: Array<[number, [number, number]]>): void {
    if (this.#link !== link || link.socket.destroyed) return;
    for (const [child, [out, err]] of owed) {
      if (out > 0) link.socket.write(creditFrame(child, 1, out));
      if (err > 0) link.socket.write(creditFrame(child, 2, err));
    }
  }

  /** @internal Sends `signal` to child `id`'s whole tree. */
  signal(id: number, signal: StopSignal): void {
    if (this.#closing || this.#queued) return;
    this.#link.socket.write(signalFrame(id, constants.signals[signal], "tree"));
  }

  /** @internal Forgets child `id` once nothing more can come of it. */
  forget(id: number): void {
    this.#children.delete(id);
  }
}

/** A child of the shim, as the core sees it. */
class ShimChild implements Child {
  #exited = false;
  /** The shim reaped it while no daemon was attached: its EXITED is on the way. */
  #reaped = false;
  #open = 2;
  #handlers: ChildHandlers | undefined;
  readonly #lines: Record<StreamNumber, LineSplitter>;
  /** Bytes of each stream handed to its splitter. */
  readonly #pushed: [number, number] = [0, 0];
  /** Bytes of each stream already owed to the shim. */
  readonly #settled: [number, number] = [0, 0];

  constructor(
    private readonly shim: ShimSpawner,
    private readonly id: number,
    readonly pid: number,
    /** From /proc at the spawn, as the shim read it: tells this process from a later one with its pid. */
    private readonly startTime: string,
    /** Wall-clock ms of its start. */
    private readonly startedAtWallMs: number,
    /** Started by an earlier daemon: its uptime is measured from its start, not from now. */
    private readonly adopted: boolean,
  ) {
    this.#lines = {
      1: new LineSplitter((line, partial) => this.#handlers?.onOutput("stdout", line, partial)),
      2: new LineSplitter((line, partial) => this.#handlers?.onOutput("stderr", line, partial)),
    };
  }

  /** @internal */
  bind(handlers: ChildHandlers): void {
    this.#handlers = handlers;
  }

  /** @internal */
  markReaped(): void {
    this.#reaped = true;
  }

  signal(signal: StopSignal): void {
    // Its pid is reaped once it has exited and may be reused: never signal it again.
    if (!this.#exited && !this.#reaped) this.shim.signal(this.id, signal);
  }

  isAlive(): boolean {
    if (this.#exited || this.#reaped) return true;
    return this.#same();
  }

  #same(): boolean {
    return readProcStat(this.pid)?.startTime === this.startTime;
  }

  /** Alive and not a zombie: a zombie is dead, waiting for whoever inherited it to reap it. */
  #running(): boolean {
    const stat = readProcStat(this.pid);
    return stat?.startTime === this.startTime && stat.state !== "Z";
  }

  /**
   * @internal Resolves once the process is gone (its shim died, and with it
   * the child, by its parent-death signal): SIGKILL if it is still there.
   */
  async gone(): Promise<void> {
    if (this.#exited || this.#reaped) return;
    for (let waited = 0; this.#running() && waited < 5_000; waited += 10) {
      if (waited === 500) {
        try {
          process.kill(-this.pid, "SIGKILL");
        } catch {
          // Gone in between.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** @internal */
  output(stream: StreamNumber, data: Buffer): void {
    const lines = this.#lines[stream];
    lines.push(data);
    this.#pushed[stream - 1] = (this.#pushed[stream - 1] as number) + data.length;
    this.#settle(stream);
  }

  /** Owes the shim the bytes handed on as lines: a line not yet ended is acknowledged with it. */
  #settle(stream: StreamNumber): void {
    const i = stream - 1;
    const settled = (this.#pushed[i] as number) - this.#lines[stream].pendingBytes;
    this.shim.owe(this.id, stream, settled - (this.#settled[i] as number));
    this.#settled[i] = settled;
  }

  /** @internal */
  eof(stream: StreamNumber): void {
    this.#lines[stream].end();
    this.#settle(stream);
    this.#open -= 1;
    if (this.#open === 0 && this.#exited) this.shim.forget(this.id);
  }

  /**
   * @internal The shim reaped it: `status` is the raw wait status, `timeNs`
   * the wall-clock time of the reap (undefined when its shim died).
   */
  exited(status: number, timeNs: bigint | undefined): void {
    if (this.#exited) return;
    this.#exited = true;
    const signalled = status & 0x7f;
    const exit: ChildExit =
      signalled === 0
        ? { code: (status >> 8) & 0xff, signal: null }
        : { code: null, signal: signalName(signalled) };
    const endedAt = timeNs === undefined ? Date.now() : Number(timeNs / 1_000_000n);
    this.#handlers?.onExit(
      this.adopted ? { ...exit, uptimeMs: Math.max(0, endedAt - this.startedAtWallMs) } : exit,
    );
    if (this.#open === 0) this.shim.forget(this.id);
  }
}

/**
 * Stops the shim an earlier daemon left at `listen`, if one is there, and
 * with it every process it holds (EXIT): for a daemon that cannot adopt
 * them (--spawner node), which then restarts them from its state file.
 */
export async function dismissShim(listen: string, logger: Logger): Promise<void> {
  const link = await attachShim(listen, 5_000).catch((err: unknown) => {
    logger.warn({ err }, "could not stop the procmon-shim an earlier procmond left");
    return undefined;
  });
  if (link === undefined) return;
  logger.warn(
    { shimPid: link.shimPid, children: link.held.length },
    "stopping the procmon-shim an earlier procmond left: --spawner node cannot adopt its processes",
  );
  link.listen(
    () => {},
    () => link.socket.destroy(),
  );
  const gone = new Promise<void>((resolve) => link.socket.once("close", () => resolve()));
  link.socket.end(exitFrame());
  const timer = setTimeout(() => link.socket.destroy(), 2_000);
  await gone;
  clearTimeout(timer);
}
