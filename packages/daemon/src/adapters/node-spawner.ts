import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import type { Readable } from "node:stream";
import { quote } from "../core/quote.js";
import {
  type Child,
  type ChildExit,
  type ChildHandlers,
  type OutputStreamName,
  SpawnError,
  type Spawner,
  type SpawnRequest,
  type StopSignal,
} from "../core/spawner.js";
import { type DescriptorBudget, descriptorUsage, systemOutOfFiles } from "./descriptors.js";
import { childEnvironment, effectivePath, lookupExecutable } from "./executable.js";
import type { OutputGate } from "./flow-gate.js";
import { LineSplitter } from "./line-splitter.js";
import { NAME_ENV } from "./orphans.js";
import { readProcStat } from "./proc-stat.js";
import { errnoText, runAs } from "./spawn-errors.js";

/** Options of {@link NodeSpawner}. */
export interface NodeSpawnerOptions {
  /**
   * How long a child's pipes may stay silent, once it has exited, before the exit is reported
   * without waiting for them to close (a grandchild may hold them open). While they still
   * deliver what the child wrote, or the output gate holds their reading back, the wait goes on,
   * up to ten times this. Defaults to 100.
   */
  readonly exitGraceMs?: number | undefined;
  /** Pauses reading children's pipes while closed (the log sink is full). Defaults to always open. */
  readonly outputGate?: OutputGate | undefined;
  /**
   * Set in every child's environment, whatever its spec says: marks the
   * children of one registry so that a later daemon can find what a killed
   * one left behind. Defaults to none.
   */
  readonly markerEnv?: Readonly<Record<string, string>> | undefined;
  /** Refuses spawns that would take the descriptors kept for clients. Defaults to none. */
  readonly descriptors?: DescriptorBudget | undefined;
}

/** Starts children with node:child_process, each the leader of its own process group. */
export class NodeSpawner implements Spawner {
  readonly #exitGraceMs: number;
  readonly #outputGate: OutputGate | undefined;
  readonly #markerEnv: Readonly<Record<string, string>>;
  readonly #descriptors: DescriptorBudget | undefined;

  constructor(options: NodeSpawnerOptions = {}) {
    this.#exitGraceMs = options.exitGraceMs ?? 100;
    this.#outputGate = options.outputGate;
    this.#markerEnv = options.markerEnv ?? {};
    this.#descriptors = options.descriptors;
  }

  spawn(request: SpawnRequest, handlers: ChildHandlers): Child {
    const file = request.args[0] ?? "";
    const lookup = lookupExecutable(file, {
      pathEnv: effectivePath(request.env, request.clearEnv),
      cwd: request.cwd,
    });
    if (!lookup.found) throw new SpawnError(lookup.errno, lookup.message);
    const short = this.#descriptors?.refusal();
    if (short !== undefined) {
      throw new SpawnError(
        "EMFILE",
        `cannot spawn ${quote(file)}: ${errnoText("EMFILE")} (procmond has ${short.open} of its ${short.limit} file descriptors open and keeps the last ${this.#descriptors?.reserve} for its clients: raise LimitNOFILE= or ulimit -n)`,
      );
    }

    let child: ChildProcess;
    try {
      child = spawn(lookup.path, request.args.slice(1), {
        argv0: file,
        env: childEnvironment(request.env, request.clearEnv, {
          ...this.#markerEnv,
          ...(request.name === undefined ? {} : { [NAME_ENV]: request.name }),
        }),
        cwd: request.cwd || undefined,
        uid: request.uid,
        gid: request.gid,
        // setsid(): its own process group, so that a signal reaches everything it started.
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (err) {
      throw synchronousFailure(file, request, err);
    }

    const pid = child.pid;
    if (pid === undefined) {
      // The 'error' event still comes, on the next tick; this failure is reported here instead.
      child.on("error", () => {});
      throw deferredFailure(file, lookup.path, request);
    }
    return new NodeChild(child, pid, handlers, this.#exitGraceMs, this.#outputGate);
  }
}

/** A started child: reads its output and reports its exit once. */
class NodeChild implements Child {
  readonly pid: number;
  #exited = false;
  /** From /proc at spawn: tells this process from a later one given the same pid. */
  readonly #startTime: string | undefined;

  constructor(
    child: ChildProcess,
    pid: number,
    handlers: ChildHandlers,
    exitGraceMs: number,
    gate: OutputGate | undefined,
  ) {
    this.pid = pid;
    this.#startTime = readProcStat(pid)?.startTime;
    let openPipes = 0;
    let exit: ChildExit | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    let reported = false;
    const report = (): void => {
      if (reported || exit === undefined) return;
      reported = true;
      clearTimeout(graceTimer);
      handlers.onExit(exit);
    };
    // After the exit: the output the child wrote comes before its exit
    // event, even when reading it takes a while.
    let drainUntil = 0;
    const awaitQuiet = (): void => {
      clearTimeout(graceTimer);
      const left = drainUntil - performance.now();
      graceTimer = setTimeout(
        () => {
          const heldBack = gate !== undefined && !gate.isOpen;
          if (heldBack && performance.now() < drainUntil) awaitQuiet();
          else report();
        },
        Math.max(0, Math.min(exitGraceMs, left)),
      );
    };

    const read = (name: OutputStreamName, stream: Readable | null): void => {
      if (stream === null) return;
      openPipes++;
      const lines = new LineSplitter((line, partial) => handlers.onOutput(name, line, partial));
      const resume = () => stream.resume();
      stream.on("data", (chunk: Buffer) => {
        lines.push(chunk);
        if (exit !== undefined && !reported) awaitQuiet();
        // One chunk (up to 64 KiB) per pipe per event-loop turn. libuv would
        // read up to 32 in a row from a pipe that keeps filling, and the
        // events they make would wait for their subscribers' sockets until
        // the next turn: a flood starved every watcher (bench/events.mjs).
        stream.pause();
        if (gate && !gate.isOpen) gate.whenOpen(() => setImmediate(resume));
        else setImmediate(resume);
      });
      // A read error destroys the stream, and 'close' follows: nothing more to do.
      stream.on("error", () => {});
      stream.on("close", () => {
        lines.end();
        openPipes--;
        if (openPipes === 0) report();
      });
    };
    read("stdout", child.stdout);
    read("stderr", child.stderr);

    // Only kill() emits 'error' once a child has started, and signal() does not use it.
    child.on("error", () => {});
    child.on("exit", (code, signal) => {
      // Its pid is reaped from here on and may be reused: never signal it again.
      this.#exited = true;
      exit = { code, signal };
      // Pipes normally close at once, and waiting for them flushes the last partial line first.
      if (openPipes === 0) {
        report();
      } else {
        drainUntil = performance.now() + exitGraceMs * 10;
        awaitQuiet();
      }
    });
  }

  isAlive(): boolean {
    // An exit already seen is being reported: not the check's to repair.
    if (this.#exited || this.#startTime === undefined) return true;
    return readProcStat(this.pid)?.startTime === this.#startTime;
  }

  signal(signal: StopSignal): void {
    if (this.#exited) return;
    try {
      process.kill(-this.pid, signal);
    } catch (err) {
      // Nothing left in the group to signal, which is what a stop wants anyway.
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }
}

/** A failure that spawn() threw: its errno (EPERM for a uid switch, E2BIG...) or a bad argument. */
function synchronousFailure(file: string, request: SpawnRequest, err: unknown): SpawnError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined || !/^E[A-Z0-9]+$/.test(code)) {
    // Node's argument validation (a NUL byte in an argument, say): the request itself is bad.
    const reason = err instanceof Error ? err.message : String(err);
    return new SpawnError("EINVAL", `cannot spawn ${quote(file)}: ${reason}`, { cause: err });
  }
  const as = runAs(request);
  return new SpawnError(code, `cannot spawn ${quote(file)}${as}: ${errnoText(code)}`, {
    cause: err,
  });
}

/**
 * Node 20 reports ENOENT, EACCES, EAGAIN, EMFILE and ENFILE only through an 'error' event on the
 * next tick (lib/internal/child_process.js), after spawn() has returned without a pid. Spawner
 * callers need the failure now, so it is told from what can be seen synchronously: the
 * descriptors left, the system's file table, the working directory and the executable; EAGAIN
 * (fork hit RLIMIT_NPROC or memory) is what remains.
 */
function deferredFailure(file: string, resolved: string, request: SpawnRequest): SpawnError {
  const usage = descriptorUsage();
  // A spawn needs a few descriptors at once (its pipes, libuv's error pipe).
  if (usage.open + 4 >= usage.limit) {
    const counted = Number.isFinite(usage.open) ? `${usage.open} of its ` : "all ";
    return new SpawnError(
      "EMFILE",
      `cannot spawn ${quote(file)}: ${errnoText("EMFILE")} (procmond has ${counted}${usage.limit} file descriptors open: raise LimitNOFILE= or ulimit -n)`,
    );
  }
  if (systemOutOfFiles()) {
    return new SpawnError(
      "ENFILE",
      `cannot spawn ${quote(file)}: ${errnoText("ENFILE")} (the system's file table is full: fs.file-max)`,
    );
  }
  // libuv reports the child's chdir() and execve() failures as the spawn's.
  if (request.cwd !== "") {
    const problem = directoryProblem(request.cwd);
    if (problem !== undefined) {
      const reason = `working directory ${quote(request.cwd)}: ${errnoText(problem)}`;
      return new SpawnError(problem, `cannot spawn ${quote(file)}: ${reason}`);
    }
  }
  const again = lookupExecutable(file, {
    pathEnv: effectivePath(request.env, request.clearEnv),
    cwd: request.cwd,
  });
  if (!again.found) return new SpawnError(again.errno, again.message);
  if (!executableAs(resolved, request)) {
    return new SpawnError(
      "EACCES",
      `executable ${quote(resolved)} is not executable${runAs(request)}`,
    );
  }
  return new SpawnError(
    "EAGAIN",
    `cannot spawn ${quote(file)}${runAs(request)}: ${errnoText("EAGAIN")}`,
  );
}

function directoryProblem(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return "ENOTDIR";
    accessSync(dir, constants.X_OK);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? "ENOENT";
  }
}

/**
 * Whether the mode bits let the child's uid and gid execute `file`. The daemon's own access check
 * already passed; this catches the file that only a switched-to user cannot run.
 */
function executableAs(file: string, request: SpawnRequest): boolean {
  if (request.uid === undefined && request.gid === undefined) return true;
  const uid = request.uid ?? process.getuid?.();
  const gid = request.gid ?? process.getgid?.();
  if (uid === 0) return true;
  try {
    const { mode, uid: owner, gid: group } = statSync(file);
    if (uid === owner) return (mode & 0o100) !== 0;
    if (gid === group) return (mode & 0o010) !== 0;
    return (mode & 0o001) !== 0;
  } catch {
    return false;
  }
}
