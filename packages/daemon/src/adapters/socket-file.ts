import { lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname } from "node:path";
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
 * Makes `path` ready to bind: creates its directory (0700) if missing, and
 * removes a stale socket file that nobody listens on. Touches nothing, and
 * throws, if another daemon answers there or the path is not a socket.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
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
  if (await isListening(path, 1_000)) {
    throw new ProcmonError(
      "failed_precondition",
      `another procmond is already listening on ${path}`,
    );
  }
  unlinkSync(path);
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
