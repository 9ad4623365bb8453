import { spawnSync } from "node:child_process";
import {
  closeSync,
  constants,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { ProcmonError } from "../core/errors.js";

/** A held lock on a state file; the kernel releases it if the holder dies. */
export interface StateLock {
  /** The lock file: `<state file>.lock`. */
  readonly path: string;
  /** Releases the lock. Idempotent. */
  release(): void;
}

/**
 * Takes the lock that makes a daemon the only one on `stateFile`: an
 * exclusive flock(2) on `<stateFile>.lock`, which then holds the holder's pid.
 *
 * Node has no flock, so flock(1) from util-linux takes it on a descriptor this
 * process opened and hands it (its fd 3): a flock belongs to the open file
 * description, not to the process that asked, so the lock outlives flock(1)
 * and lasts as long as this process keeps the descriptor open, and the kernel
 * drops it when this process dies, however it dies. The descriptor is
 * close-on-exec (Node opens every file so), so the children never hold it.
 * @throws ProcmonError failed_precondition naming the file and the holder's
 * pid when another daemon holds it, or why it could not be taken.
 */
export function lockStateFile(stateFile: string): StateLock {
  const path = `${stateFile}.lock`;
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // O_NOFOLLOW: a symlink planted at the lock path is refused, not followed.
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new ProcmonError(
      "failed_precondition",
      `cannot open the lock file ${path} of state file ${stateFile}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const flock = spawnSync("flock", ["--nonblock", "--exclusive", "3"], {
    stdio: ["ignore", "ignore", "pipe", fd],
    encoding: "utf8",
  });
  if (flock.status === 0) {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    let held = true;
    return {
      path,
      release() {
        if (!held) return;
        held = false;
        closeSync(fd);
      },
    };
  }
  const holder = flock.status === 1 ? readPid(fd) : undefined;
  closeSync(fd);
  if (flock.status === 1) {
    throw new ProcmonError(
      "failed_precondition",
      `state file ${stateFile} is in use by another procmond (pid ${holder ?? "unknown"}, holding ${path}): stop that one, or give this one its own --state-file`,
    );
  }
  const why =
    (flock.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
      ? "flock(1) from util-linux is not installed"
      : (flock.error?.message ?? (flock.stderr.trim() || `flock exited ${flock.status}`));
  throw new ProcmonError("failed_precondition", `cannot lock state file ${stateFile}: ${why}`);
}

/** The pid a holder wrote into the lock file, if it is readable. */
function readPid(fd: number): number | undefined {
  const buffer = Buffer.alloc(32);
  const length = readSync(fd, buffer, 0, buffer.length, 0);
  const text = buffer.toString("utf8", 0, length).trim();
  return /^\d+$/.test(text) ? Number(text) : undefined;
}
