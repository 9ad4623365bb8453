import { randomBytes, randomUUID } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseDurationMs } from "@procmon/api/duration";
import { ProcmonError } from "../core/errors.js";
import type { Ended, Intent, ProcessSource } from "../core/types.js";

export type { Ended, Intent, ProcessSource } from "../core/types.js";

/** One registered process as persisted. */
export interface PersistedProcess {
  /** The spec in ProcessSpec's JSON form. */
  readonly spec: unknown;
  readonly intent: Intent;
  readonly source: ProcessSource;
  /** Set when one that should run came to rest (exited, failed): it is not started again. */
  readonly ended?: Ended | undefined;
}

/** The whole state file. */
export interface PersistedState {
  readonly version: 1;
  /** Identifies this registry's children (PROCMON_INSTANCE) across daemon restarts. */
  readonly instance: string;
  /**
   * No event seq above this has been or will be used by the daemon that wrote
   * it: the next daemon continues after it.
   */
  readonly seqReservedUpTo: string;
  readonly processes: readonly PersistedProcess[];
}

/** A state, or the function that takes it when the write begins. */
export type StateSource = PersistedState | (() => PersistedState);

/** A state for a registry that has never run. */
export function emptyState(): PersistedState {
  return { version: 1, instance: randomUUID(), seqReservedUpTo: "0", processes: [] };
}

function corrupt(path: string, problem: string): ProcmonError {
  return new ProcmonError(
    "failed_precondition",
    `state file ${path} is unusable: ${problem}. It was left untouched: repair it or move it away to start with an empty registry`,
  );
}

/**
 * Reads the state file; undefined if it does not exist.
 * @throws ProcmonError failed_precondition when it is empty, torn or not a state file:
 * the daemon must refuse to start rather than wipe the registry.
 */
export function readStateFile(path: string): PersistedState | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw corrupt(path, (err as Error).message);
  }
  if (text.trim() === "") throw corrupt(path, "it is empty");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw corrupt(path, `it is not valid JSON (${(err as Error).message})`);
  }
  if (typeof data !== "object" || data === null) throw corrupt(path, "it is not a JSON object");
  const state = data as Partial<PersistedState>;
  if (state.version !== 1) throw corrupt(path, `unknown version ${JSON.stringify(state.version)}`);
  if (typeof state.instance !== "string" || state.instance === "") {
    throw corrupt(path, "instance is missing");
  }
  if (typeof state.seqReservedUpTo !== "string" || !/^\d+$/.test(state.seqReservedUpTo)) {
    throw corrupt(path, "seqReservedUpTo is missing or not a number");
  }
  if (!Array.isArray(state.processes)) throw corrupt(path, "processes is not a list");
  for (const [i, p] of state.processes.entries()) {
    const entry = p as Partial<PersistedProcess> | null;
    if (
      typeof entry !== "object" ||
      entry === null ||
      typeof entry.spec !== "object" ||
      (entry.intent !== "running" && entry.intent !== "stopped") ||
      (entry.source !== "api" && entry.source !== "config") ||
      (entry.ended !== undefined && entry.ended !== "exited" && entry.ended !== "failed")
    ) {
      throw corrupt(path, `processes[${i}] is malformed`);
    }
  }
  return state as PersistedState;
}

/**
 * Writes the state file atomically and durably: a temp file in the same
 * directory, fsync, rename over the old one, fsync of the directory. A power
 * cut leaves either the old file or the new one, never a torn one. Writes are
 * serialised; saves requested during a write are coalesced into one more.
 */
export class StateFileWriter {
  #writing: Promise<void> | undefined;
  #pending:
    | { state: StateSource; waiters: Array<[() => void, (err: unknown) => void]> }
    | undefined;

  constructor(readonly path: string) {}

  /**
   * Removes the temp files that writes cut short (a crash, a power cut) left
   * beside the state file. Only for the holder of the state file's lock: no
   * other daemon writes there then.
   */
  sweepTemps(): void {
    const prefix = `${basename(this.path)}.`;
    let names: string[];
    try {
      names = readdirSync(dirname(this.path));
    } catch {
      return; // no directory yet: nothing was ever written
    }
    for (const name of names) {
      if (name.startsWith(prefix) && TEMP_SUFFIX.test(name.slice(prefix.length))) {
        rmSync(join(dirname(this.path), name), { force: true });
      }
    }
  }

  /**
   * Resolves once `state` (or a later one) is durably on disk. Given a
   * function, calls it only when the write begins: saves that are coalesced
   * cost no snapshot each.
   */
  save(state: StateSource): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#pending) {
        this.#pending.state = state;
        this.#pending.waiters.push([resolve, reject]);
      } else {
        this.#pending = { state, waiters: [[resolve, reject]] };
      }
      if (!this.#writing) this.#writing = this.#drain();
    });
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const { state, waiters } = this.#pending;
      this.#pending = undefined;
      try {
        await this.#write(typeof state === "function" ? state() : state);
        for (const [resolve] of waiters) resolve();
      } catch (err) {
        for (const [, reject] of waiters) reject(err);
      }
    }
    this.#writing = undefined;
  }

  async #write(state: PersistedState): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temp = tempPath(this.path);
    const file = await open(temp, TEMP_FLAGS, 0o600);
    let isOpen = true;
    try {
      await file.writeFile(serialise(state));
      await file.sync();
      isOpen = false;
      await file.close();
      await rename(temp, this.path);
    } catch (err) {
      if (isOpen) await file.close();
      await rm(temp, { force: true });
      throw err;
    }
    const dir = await open(dirname(this.path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/**
 * The temp file is created, never opened if it exists (O_EXCL) and never
 * through a symlink (O_NOFOLLOW): a file or link planted in the directory
 * cannot redirect or share a write.
 */
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A name of its own for each write, beside the state file, so that the rename is atomic. */
function tempPath(path: string): string {
  return `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
}

/** What {@link tempPath} puts after `<state file>.`. */
const TEMP_SUFFIX = /^\d+\.[0-9a-f]{12}\.tmp$/;

function serialise(state: PersistedState): string {
  // Compact: a registry of thousands is rewritten on every change.
  return `${JSON.stringify(state)}\n`;
}

function _fsyncDirectorySync(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The name in a persisted spec's JSON form ("" if it has none: readStateFile checked the rest). */
export function persistedName(process: PersistedProcess): string {
  const name = (process.spec as { name?: unknown }).name;
  return typeof name === "string" ? name : "";
}

/** The kill time in a persisted spec's JSON form ("0.300s"), in ms; undefined if it has none. */
export function persistedKillTimeMs(process: PersistedProcess): number | undefined {
  const killTime = (process.spec as { killTime?: unknown }).killTime;
  if (typeof killTime !== "string") return undefined;
  try {
    return parseDurationMs(killTime);
  } catch {
    return undefined;
  }
}
