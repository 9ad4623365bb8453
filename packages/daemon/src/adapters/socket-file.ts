import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname, resolve } from "node:path";
import { socketPathProblem } from "@procmon/api/socket";
import { ProcmonError } from "../core/errors.js";

/** True if something accepts connections on the unix socket at `path`. */
function isListening(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(timeoutMs, () => done(true));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Makes `path` ready to bind: refuses a path longer than the kernel takes and
 * a directory another user owns or can write (naming it), creates missing
 * directories (0700, or 0750 and given `group` so that the group can reach a
 * shared socket), and removes a stale socket file that nobody listens on.
 * Touches nothing, and throws, if another daemon answers there or the path is
 * not a socket.
 * @throws ProcmonError failed_precondition (invalid_argument for a path too long).
 */
export async function prepareSocketPath(path: string, group?: number): Promise<void> {
  const unusable = socketPathProblem(path);
  if (unusable !== undefined) {
    const code = unusable.code === "too_long" ? "invalid_argument" : "failed_precondition";
    throw new ProcmonError(code, unusable.message);
  }
  const dir = resolve(dirname(path));
  // Created by us, 0700 from the start: trusted as it is.
  const first = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (first !== undefined && group !== undefined) {
    // The group must be able to reach the socket through every directory made for it.
    for (let made = dir; ; made = dirname(made)) {
      chownSync(made, -1, group);
      chmodSync(made, 0o750);
      if (made === first) break;
    }
  }
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) {
    throw new ProcmonError(
      "failed_precondition",
      `${path} exists and is not a socket; remove it or choose another --socket`,
    );
  }
  if (await isListening(path, 1_000)) throw alreadyListening(path);
  unlinkSync(path);
}

/** The error of a second daemon on one socket, whether it saw the first at once or lost the bind. */
export function alreadyListening(path: string): ProcmonError {
  return new ProcmonError(
    "failed_precondition",
    `another procmond is already listening on ${path}`,
  );
}

/**
 * The error of a failed bind: grpc-js words it as "No address added out of
 * total 1 resolved" with errno text behind it; a daemon that bound the socket
 * between our check and our bind is another procmond.
 */
export function bindError(path: string, err: unknown): ProcmonError {
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes("EADDRINUSE")) return alreadyListening(path);
  const errno = /\b(E[A-Z]+)\b/.exec(message)?.[1];
  return new ProcmonError("failed_precondition", `cannot listen on ${path}: ${errno ?? message}`, {
    cause: err,
  });
}

/**
 * Runs `bind` with a umask that makes the socket file 0600 from the moment
 * it exists: a chmod afterwards would leave a window where it is wider.
 */
export async function withPrivateUmask<T>(bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o177);
  try {
    return await bind();
  } finally {
    process.umask(previous);
  }
}

/** Removes the socket file at `path` if there is one (never anything else there). */
export function removeSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Already gone.
  }
}
