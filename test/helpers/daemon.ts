// Integration helpers: the real procmond bin on a real unix socket in a temp
// dir, driven through the real client. Every wait has a timeout, and every
// process started here is tracked by pid so cleanup can end exactly those.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type ProcmonClient } from "@procmon/client";
import { inject } from "vitest";
import { statFields } from "./proc.js";

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The daemon's bin, as users run it. */
export const PROCMOND_BIN = join(ROOT, "packages/daemon/bin/procmond.js");

/**
 * The daemon's bin for a daemon that runs as `uid`: for another uid, the copy
 * that test/setup/runtime-copy.ts made where every user can read it, since
 * the clone may sit in a directory only we can enter.
 */
export function procmondBinFor(uid: number | undefined): string {
  if (uid === undefined || uid === process.getuid?.()) return PROCMOND_BIN;
  const runtime = inject("procmonRuntime");
  if (runtime === undefined) throw new Error("running a daemon as another uid needs root");
  return join(runtime, "packages/daemon/bin/procmond.js");
}

/** One parsed line of the daemon's JSON log (or `{ raw }` if it was not JSON). */
export type LogLine = Record<string, unknown>;

/** How to start a daemon beyond its flags and environment. */
export interface StartOptions {
  /** How the socket is given: `--socket` (default) or the PROCMON_SOCKET variable. */
  readonly socketVia?: "flag" | "env";
  /** Run the daemon as this uid (needs root). */
  readonly uid?: number;
  /** Run the daemon as this gid (needs root). */
  readonly gid?: number;
  /** Runs before the daemon starts, with its temp dir (e.g. to chown it). */
  readonly prepare?: (dir: string, socket: string) => void | Promise<void>;
  /** How long to wait for "procmond listening". Defaults to 10000. */
  readonly timeoutMs?: number;
  /**
   * How readiness is seen: the "procmond listening" log line (default), or a
   * call that succeeds, for a --log-level that hides that line.
   */
  readonly readyWhen?: "log" | "answers";
  /** Its soft limit of open files (`ulimit -n`); unset: the test's own. */
  readonly openFiles?: number;
  /**
   * Where its log goes: parsed into `logs` (default), or /dev/null, for a
   * daemon that logs more than the test should read (then readyWhen "answers").
   */
  readonly log?: "parse" | "discard";
}

/** A running procmond started by a test. */
export interface Procmond {
  /** The socket it serves on: `<dir>/procmon.sock`. */
  readonly socket: string;
  /**
   * The socket a client of the test dials: `socket`, or for a daemon of
   * another uid a link to it in a directory of ours (clients refuse a socket
   * directory another user owns).
   */
  readonly clientSocket: string;
  /** Its temp dir (also its working directory). */
  readonly dir: string;
  /** The daemon's process. */
  readonly child: ChildProcess;
  /** A client of it. */
  readonly client: ProcmonClient;
  /** Every stdout line so far, parsed. */
  readonly logs: LogLine[];
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** Resolves with the first log line (past or future) matching `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (null if a signal ended it) once it has exited. */
  exited(timeoutMs?: number): Promise<number | null>;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** Closes the client, stops the daemon if it still runs, removes the temp dir. Idempotent. */
  cleanup(): Promise<void>;
}

/** What a daemon run to completion printed, and how it ended. */
export interface DaemonRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const live = new Set<Procmond>();
const tempDirs = new Set<string>();
/**
 * Every procmon-shim a daemon of the tests logged, with its start time when
 * it was recorded: a daemon killed, or detached, leaves its shim.
 */
const shims = new Map<number, string | undefined>();

/** Field 22 of /proc/<pid>/stat; undefined once it is gone. */
const startTimeOf = (pid: number): string | undefined => statFields(pid)?.[19];

/** Remembers a shim to end once no daemon of the tests runs (a gone one is not remembered). */
function noteShim(pid: number): void {
  const startTime = startTimeOf(pid);
  if (startTime !== undefined && !shims.has(pid)) shims.set(pid, startTime);
}

/** A fresh temp dir, removed by {@link cleanupAll}. */
export function makeTempDir(prefix = "procmon-it-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A child's environment: the test's with `env` over it, without a PROCMON_SOCKET that would leak in. */
export function childEnv(env: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  delete merged.PROCMON_SOCKET;
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

function parseLine(text: string): LogLine {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) return parsed as LogLine;
  } catch {
    // Not JSON: kept raw.
  }
  return { raw: text };
}

/**
 * Spawns the real procmond on `<mkdtemp>/procmon.sock` and resolves once it
 * logs "procmond listening"; rejects with its stderr if it exits first or does
 * not listen within the timeout.
 */
export async function startProcmond(
  extraArgs: readonly string[] = [],
  env: Readonly<Record<string, string | undefined>> = {},
  options: StartOptions = {},
): Promise<Procmond> {
  const dir = makeTempDir();
  const socket = join(dir, "procmon.sock");
  await options.prepare?.(dir, socket);
  const viaEnv = options.socketVia === "env";
  // Each daemon keeps its registry in its own temp dir, never the user's default state file.
  const stateArgs = extraArgs.some((a) => a.startsWith("--state-file") || a === "--no-state-file")
    ? []
    : ["--state-file", join(dir, "state.json")];
  // A project of the suite runs its files with another spawner (vitest.config.ts).
  const spawnerArgs =
    process.env.PROCMON_TEST_SPAWNER && !extraArgs.includes("--spawner")
      ? ["--spawner", process.env.PROCMON_TEST_SPAWNER]
      : [];
  const args = viaEnv
    ? [...stateArgs, ...spawnerArgs, ...extraArgs]
    : ["--socket", socket, ...stateArgs, ...spawnerArgs, ...extraArgs];
  const argv = [procmondBinFor(options.uid), ...args];
  // Through sh for a lower descriptor limit: it execs node, so the pid is the daemon's.
  const [command, commandArgs] =
    options.openFiles === undefined
      ? [process.execPath, argv]
      : [
          "sh",
          ["-c", `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, ...argv],
        ];
  const child = spawn(command, commandArgs, {
    cwd: dir,
    env: childEnv(viaEnv ? { ...env, PROCMON_SOCKET: socket } : env),
    stdio: ["ignore", options.log === "discard" ? "ignore" : "pipe", "pipe"],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });

  const logs: LogLine[] = [];
  const lineListeners = new Set<(line: LogLine) => void>();
  const exitListeners = new Set<(code: number | null) => void>();
  let stderr = "";
  let pending = "";
  let exit: { code: number | null } | undefined;

  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (text.trim() === "") continue;
      const line = parseLine(text);
      logs.push(line);
      for (const listener of [...lineListeners]) listener(line);
    }
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  // "close" waits for stdio to drain, so every log line is in before exit listeners run.
  child.on("close", (code) => {
    exit = { code };
    for (const listener of [...exitListeners]) listener(code);
  });

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 5_000) =>
    new Promise<LogLine>((resolveLine, reject) => {
      const found = logs.find(predicate);
      if (found) {
        resolveLine(found);
        return;
      }
      const done = () => {
        clearTimeout(timer);
        lineListeners.delete(onLine);
        exitListeners.delete(onExit);
      };
      const onLine = (line: LogLine) => {
        if (!predicate(line)) return;
        done();
        resolveLine(line);
      };
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`procmond exited (code ${code}) before the awaited log line\n${stderr}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching procmond log line within ${timeoutMs}ms`));
      }, timeoutMs);
      lineListeners.add(onLine);
      if (exit) onExit(exit.code);
      else exitListeners.add(onExit);
    });

  const exited = (timeoutMs = 10_000) =>
    new Promise<number | null>((resolveExit, reject) => {
      if (exit) {
        resolveExit(exit.code);
        return;
      }
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        resolveExit(code);
      };
      const timer = setTimeout(() => {
        exitListeners.delete(onExit);
        reject(new Error(`procmond (pid ${child.pid}) did not exit within ${timeoutMs}ms`));
      }, timeoutMs);
      exitListeners.add(onExit);
    });

  const stop = async (signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000) => {
    if (exit) return exit.code;
    child.kill(signal);
    try {
      return await exited(timeoutMs);
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  };

  // Clients refuse a socket directory another user owns, as this daemon's is
  // when it runs as another uid: the test's client goes through a link in a
  // directory of ours, which is what an operator would do to trust it.
  let clientSocket = socket;
  if (options.uid !== undefined && options.uid !== process.getuid?.()) {
    clientSocket = join(makeTempDir("procmon-link-"), "procmon.sock");
    symlinkSync(socket, clientSocket);
  }
  const client = createClient({ socket: clientSocket, timeoutMs: 15_000 });
  let cleaned = false;
  const handle: Procmond = {
    socket,
    clientSocket,
    dir,
    child,
    client,
    logs,
    stderr: () => stderr,
    waitForLog,
    exited,
    stop,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      client.close();
      let code: number | null = null;
      try {
        code = await stop("SIGTERM");
      } catch {
        child.kill("SIGKILL");
        await exited(5_000).catch(() => undefined);
      }
      // A daemon that did not shut down cleanly may leave its children behind:
      // end the groups it started and never saw exit, and no other process.
      if (code !== 0) killLeftoverChildren(logs);
      for (const line of logs) if (typeof line.shimPid === "number") noteShim(line.shimPid);
      live.delete(handle);
      // Only once no daemon of the tests runs: a later daemon may have attached to this one's shim.
      if (live.size === 0) killStrayShims();
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
  live.add(handle);

  const readyTimeoutMs = options.timeoutMs ?? 10_000;
  try {
    if (options.readyWhen === "answers") {
      await waitFor(async () => {
        if (exit) throw new Error(`procmond exited (code ${exit.code})`);
        await client.listProcesses({ timeoutMs: 1_000 });
        return true;
      }, readyTimeoutMs);
    } else {
      await waitForLog((line) => line.msg === "procmond listening", readyTimeoutMs);
      // The socket is served first; the registry's processes start after it.
      await waitForLog((line) => line.msg === "registry started", readyTimeoutMs);
    }
  } catch (err) {
    await handle.cleanup();
    throw new Error(
      `procmond did not start: ${(err as Error).message}\nstderr:\n${stderr}\nstdout:\n${logs
        .map((l) => JSON.stringify(l))
        .join("\n")}`,
    );
  }
  return handle;
}

/**
 * Kills the shims the tests' daemons left (checked by their command line: a
 * pid may have been reused); their children die with them.
 */
export function killStrayShims(): void {
  for (const [pid, startTime] of shims) {
    shims.delete(pid);
    let command = "";
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, "latin1");
    } catch {
      continue;
    }
    // The very process: its pid may have been reused, even by another test's shim.
    if (!command.includes("procmon-shim") || startTimeOf(pid) !== startTime) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone in between.
    }
  }
}

/** The pids of the children the daemon logged as started and never as exited. */
function killLeftoverChildren(logs: readonly LogLine[]): void {
  const running = new Set<number>();
  for (const line of logs) {
    if (typeof line.childPid !== "number") continue;
    if (line.event === "started") running.add(line.childPid);
    if (line.event === "exited") running.delete(line.childPid);
  }
  for (const pid of running) {
    try {
      // Each child leads its own process group.
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Runs procmond expecting it to exit on its own (bad flags, socket in use...). */
export function runProcmond(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
  options: { readonly cwd?: string; readonly timeoutMs?: number } = {},
): Promise<DaemonRun> {
  return new Promise((resolveRun, reject) => {
    // Never the machine's default state file or socket (its directory, /run/procmon, is
    // created before a refusal at start): a daemon that fails must not touch them either.
    const stateArgs = args.some((a) => a.startsWith("--state-file") || a === "--no-state-file")
      ? []
      : ["--no-state-file"];
    const socketArgs = args.some((a) => a === "--socket" || a.startsWith("--socket="))
      ? []
      : ["--socket", join(makeTempDir(), "procmon.sock")];
    const child = spawn(process.execPath, [PROCMOND_BIN, ...stateArgs, ...socketArgs, ...args], {
      cwd: options.cwd ?? ROOT,
      env: childEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`procmond ${args.join(" ")} still ran after ${timeoutMs}ms\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // One that did start and was killed leaves its shim: cleanupAll ends it.
      for (const m of stdout.matchAll(/"shimPid":(\d+)/g)) noteShim(Number(m[1]));
      resolveRun({ code, signal, stdout, stderr });
    });
  });
}

/** Stops every daemon still running and removes every temp dir: for afterEach/afterAll. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...live].map((d) => d.cleanup()));
  killStrayShims();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Polls `condition` every `intervalMs` until it returns a truthy value, which
 * it resolves with; rejects after `timeoutMs` with the last error, if any.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  timeoutMs = 5_000,
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`condition not met within ${timeoutMs}ms${why}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * True if `pid` names a live process. A zombie counts as gone: orphans are
 * reparented to PID 1, which in a container may never reap them, and a
 * zombie still answers kill(pid, 0).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the parenthesised command, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false; // reaped between the two checks
  }
}

/** The peak resident set size of live process `pid` so far (VmHWM), in MiB. */
export function peakRssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib) / 1024;
}
