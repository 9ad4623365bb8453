// `--log-dir DIR`: each process's output also goes to `DIR/<name>.log`, one
// line per output line, rotated by size between lines (never inside one).
// Writes are async and queued per file, one in flight per file; the shared
// gate closes while too much is queued so the daemon holds off reading pipes.
// A failing file (full disk, EIO...) logs one error per episode, drops and
// counts its lines, retries at most once a second, and never holds the gate.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../core/logger.js";
import { FlowGate } from "./flow-gate.js";

/** The slice of an open file LogFiles uses. */
export interface LogFileHandle {
  /** Appends all of `data` (the file is open for appending). */
  appendFile(data: Buffer): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** The file system calls LogFiles makes; tests pass one that fails. */
export interface LogFilesFs {
  mkdir(path: string, options: { recursive: true; mode: number }): Promise<unknown>;
  open(path: string, flags: "a", mode: number): Promise<LogFileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

/** node:fs/promises. */
export const nodeLogFilesFs: LogFilesFs = {
  mkdir: (path, options) => fsp.mkdir(path, options),
  open: (path, flags, mode) => fsp.open(path, flags, mode),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
};

export interface LogFilesOptions {
  /** Created 0700 if missing. */
  readonly dir: string;
  /** Rotate before a line would take the file past this. */
  readonly maxBytes: number;
  /** Old files kept: <name>.log.1 (newest) .. <name>.log.<keep>; 0: none kept. */
  readonly keep: number;
  readonly logger: Logger;
  /** File system calls (tests inject failures); node:fs/promises by default. */
  readonly fs?: LogFilesFs;
  /** Wall clock for the once-a-second retry; Date.now by default. */
  readonly now?: () => number;
  /** Queued bytes (all files) above which the gate closes; 1 MiB by default. Opens below half. */
  readonly highWaterBytes?: number;
}

/** How long a failing file drops lines before trying again. */
const RETRY_MS = 1000;
/** At most this much is written in one call. */
const MAX_BATCH = 256 * 1024;

interface FileState {
  readonly name: string;
  readonly path: string;
  handle: LogFileHandle | null;
  size: number;
  readonly queue: Buffer[];
  running: Promise<void> | null;
  failing: boolean;
  failedAt: number;
  dropped: number;
}

/** Per-process log files under one directory. */
export class LogFiles {
  /** Closed while the files' writes are behind (more than ~1 MiB queued in all): the daemon holds off reading children's pipes. Opens once drained. */
  readonly gate = new FlowGate();

  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #logger: Logger;
  readonly #fs: LogFilesFs;
  readonly #now: () => number;
  readonly #high: number;
  readonly #files = new Map<string, FileState>();
  readonly #rejected = new Set<string>();
  #dirReady: Promise<unknown> | null = null;
  #queued = 0;
  #closed = false;

  constructor(options: LogFilesOptions) {
    this.#dir = options.dir;
    this.#maxBytes = Math.max(1, options.maxBytes);
    this.#keep = Math.max(0, Math.floor(options.keep));
    this.#logger = options.logger;
    this.#fs = options.fs ?? nodeLogFilesFs;
    this.#now = options.now ?? Date.now;
    this.#high = options.highWaterBytes ?? 1024 * 1024;
  }

  /** Bytes queued or in flight across all files. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Appends one output line of process `name` as `${rfc3339 UTC with ms} ${out|err} ${line}\n`. Never throws; never blocks the event loop. */
  write(name: string, stream: "stdout" | "stderr", line: string, atWallMs: number): void {
    try {
      if (this.#closed) return;
      if (!validName(name)) {
        if (!this.#rejected.has(name)) {
          this.#rejected.add(name);
          this.#logger.error(
            { name },
            "log file name refused; its output is not written to a file",
          );
        }
        return;
      }
      let file = this.#files.get(name);
      if (file === undefined) {
        file = {
          name,
          path: join(this.#dir, `${name}.log`),
          handle: null,
          size: 0,
          queue: [],
          running: null,
          failing: false,
          failedAt: 0,
          dropped: 0,
        };
        this.#files.set(name, file);
      }
      if (file.failing && this.#now() - file.failedAt < RETRY_MS) {
        file.dropped++;
        return;
      }
      const time = Number.isFinite(atWallMs) ? new Date(atWallMs) : new Date();
      const text = `${time.toISOString()} ${stream === "stdout" ? "out" : "err"} ${line}\n`;
      const data = Buffer.from(text, "utf8");
      file.queue.push(data);
      this.#add(data.length);
      if (file.running === null) this.#start(file);
    } catch (err) {
      this.#logger.error({ err, name }, "log file write failed");
    }
  }

  /** Writes what is queued, then closes every file. Later writes are ignored. */
  async close(): Promise<void> {
    this.#closed = true;
    for (;;) {
      const running = [...this.#files.values()]
        .map((file) => file.running)
        .filter((p): p is Promise<void> => p !== null);
      if (running.length === 0) break;
      await Promise.all(running);
    }
    await Promise.all(
      [...this.#files.values()].map(async (file) => {
        const handle = file.handle;
        file.handle = null;
        if (handle !== null) await handle.close().catch(() => {});
      }),
    );
    this.gate.open();
  }

  #add(bytes: number): void {
    this.#queued += bytes;
    if (this.#queued > this.#high && this.gate.isOpen) this.gate.close();
  }

  #remove(bytes: number): void {
    this.#queued -= bytes;
    if (this.#queued < this.#high / 2 && !this.gate.isOpen) this.gate.open();
  }

  #start(file: FileState): void {
    file.running = this.#drain(file)
      .catch((err) => {
        this.#logger.error({ err, name: file.name }, "log file writer failed");
      })
      .finally(() => {
        file.running = null;
        // Lines queued after the loop's last look.
        if (file.queue.length > 0) this.#start(file);
      });
  }

  async #drain(file: FileState): Promise<void> {
    while (file.queue.length > 0) {
      try {
        if (file.handle === null) await this.#open(file);
        const first = file.queue[0]!;
        if (file.size > 0 && file.size + first.length > this.#maxBytes) await this.#rotate(file);
        // As many whole lines as fit in this file.
        let count = 0;
        let bytes = 0;
        for (const data of file.queue) {
          const fits = file.size + bytes + data.length <= this.#maxBytes;
          if (count > 0 && (!fits || bytes + data.length > MAX_BATCH)) break;
          count++;
          bytes += data.length;
          if (!fits) break; // a line longer than maxBytes goes alone
        }
        const batch = file.queue.slice(0, count);
        await file.handle!.appendFile(count === 1 ? batch[0]! : Buffer.concat(batch, bytes));
        file.queue.splice(0, count);
        file.size += bytes;
        this.#remove(bytes);
        if (file.failing) this.#recovered(file);
      } catch (err) {
        this.#failed(file, err);
      }
    }
  }

  async #open(file: FileState): Promise<void> {
    if (this.#dirReady === null) {
      this.#dirReady = this.#fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
      this.#dirReady.catch(() => {
        this.#dirReady = null; // try again on the next attempt
      });
    }
    await this.#dirReady;
    const handle = await this.#fs.open(file.path, "a", 0o600);
    try {
      file.size = (await handle.stat()).size;
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
    file.handle = handle;
  }

  async #rotate(file: FileState): Promise<void> {
    const handle = file.handle;
    file.handle = null;
    if (handle !== null) await handle.close().catch(() => {});
    if (this.#keep === 0) {
      await ignoreMissing(this.#fs.unlink(file.path));
    } else {
      for (let i = this.#keep - 1; i >= 1; i--) {
        await ignoreMissing(this.#fs.rename(`${file.path}.${i}`, `${file.path}.${i + 1}`));
      }
      await ignoreMissing(this.#fs.rename(file.path, `${file.path}.1`));
    }
    await this.#open(file);
  }

  /** Drops what is queued for `file`, logs once per episode, and closes it to reopen on the retry. */
  #failed(file: FileState, err: unknown): void {
    const lines = file.queue.length;
    const bytes = file.queue.reduce((sum, data) => sum + data.length, 0);
    file.queue.length = 0;
    this.#remove(bytes);
    file.dropped += lines;
    file.failedAt = this.#now();
    if (!file.failing) {
      file.failing = true;
      this.#logger.error(
        { err, name: file.name, path: file.path },
        "log file write failed; dropping its lines until a write succeeds",
      );
    }
    const handle = file.handle;
    file.handle = null;
    if (handle !== null) handle.close().catch(() => {});
  }

  #recovered(file: FileState): void {
    this.#logger.info(
      { name: file.name, path: file.path, dropped: file.dropped },
      "log file writes resumed",
    );
    file.failing = false;
    file.dropped = 0;
  }
}

/** A name that stays inside the directory. */
function validName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== "." &&
    name !== ".." &&
    !name.includes("/") &&
    !name.includes("\\") &&
    !name.includes("\0")
  );
}

async function ignoreMissing(operation: Promise<void>): Promise<void> {
  try {
    await operation;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
