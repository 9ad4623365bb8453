// Integration helpers for procmonctl: the real bin run as a process, as a
// user or a script runs it. Every wait has a timeout, and every process
// started here is tracked so cleanup can end exactly those.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { childEnv, ROOT } from "./daemon.js";

/** The CLI's bin, as users run it. */
export const PROCMONCTL_BIN = join(ROOT, "packages/client/bin/procmonctl.js");

/** How a run of procmonctl ended and what it printed. */
export interface CtlRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** How long it ran, in ms. */
  readonly ms: number;
}

/** How to run procmonctl. */
export interface CtlOptions {
  /** Prepended as `--socket SOCKET`. */
  readonly socket?: string;
  /** Variables over the test's environment (undefined deletes one); PROCMON_SOCKET is never inherited. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** How long it may run before it is killed and the run fails. Defaults to 15000. */
  readonly timeoutMs?: number;
}

/** A procmonctl still running (watch, logs --follow). */
export interface CtlProcess {
  readonly child: ChildProcess;
  /** The complete stdout lines so far. */
  readonly lines: readonly string[];
  /** Everything written on stderr so far. */
  stderr(): string;
  /** Resolves with the first stdout line (past or future) matching `predicate`. */
  waitForLine(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (SIGINT by default) and resolves with how it ended. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CtlRun>;
}

const running = new Set<ChildProcess>();

function start(args: readonly string[], options: CtlOptions): ChildProcess {
  const argv = options.socket === undefined ? [...args] : ["--socket", options.socket, ...args];
  const child = spawn(process.execPath, [PROCMONCTL_BIN, ...argv], {
    cwd: ROOT,
    env: childEnv(options.env ?? {}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.on("close", () => running.delete(child));
  return child;
}

/** Runs procmonctl to completion; rejects if it runs past the timeout. */
export function runCtl(args: readonly string[], options: CtlOptions = {}): Promise<CtlRun> {
  const started = Date.now();
  const child = start(args, options);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`procmonctl ${args.join(" ")} still ran after ${timeoutMs}ms\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/**
 * Runs procmonctl once per argument list, at most `limit` at a time (each
 * run is a Node process: more at once only fight over the CPUs); resolves
 * with the runs in the order given.
 */
export async function runCtlAll<const Lists extends readonly (readonly string[])[]>(
  argLists: Lists,
  options: CtlOptions = {},
  limit = 3,
): Promise<{ -readonly [K in keyof Lists]: CtlRun }> {
  const runs: CtlRun[] = new Array(argLists.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < argLists.length; i = next++) {
      runs[i] = await runCtl(argLists[i] ?? [], options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, argLists.length) }, worker));
  return runs as { -readonly [K in keyof Lists]: CtlRun };
}

/** Starts procmonctl and leaves it running, collecting its output line by line. */
export function spawnCtl(args: readonly string[], options: CtlOptions = {}): CtlProcess {
  const started = Date.now();
  const child = start(args, options);
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  let stdout = "";
  let pending = "";
  let stderr = "";
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    lines.push(...parts);
    notify();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  child.on("close", (code, signal) => {
    ended = { code, signal };
    notify();
  });

  /** Resolves with `check()`'s value once it is defined, re-checking on every output and at exit. */
  const until = <T>(check: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const listener = () => {
        const value = check();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (ended) {
          done();
          reject(new Error(`procmonctl exited (${ended.code}) before ${what}\n${stderr}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${what} not seen within ${timeoutMs}ms; stdout:\n${stdout}\n${stderr}`));
      }, timeoutMs);
      listeners.add(listener);
      listener();
    });

  return {
    child,
    lines,
    stderr: () => stderr,
    waitForLine: (predicate, timeoutMs = 5_000) =>
      until(() => lines.find(predicate), "the awaited line", timeoutMs),
    async stop(signal = "SIGINT", timeoutMs = 5_000) {
      if (!ended) child.kill(signal);
      try {
        const { code, signal: bySignal } = await until(() => ended, "exit", timeoutMs);
        return { code, signal: bySignal, stdout, stderr, ms: Date.now() - started };
      } catch (err) {
        child.kill("SIGKILL");
        throw err;
      }
    },
  };
}

/** Kills every procmonctl still running: for afterEach/afterAll. */
export function killAllCtl(): void {
  for (const child of running) child.kill("SIGKILL");
  running.clear();
}
