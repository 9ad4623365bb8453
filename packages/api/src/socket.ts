import { lstatSync, type Stats, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

/**
 * The socket procmond listens on and clients dial: `PROCMON_SOCKET` if set,
 * else /run/procmon/procmon.sock for root, else $XDG_RUNTIME_DIR/procmon/procmon.sock,
 * else /tmp/procmon-<uid>/procmon.sock.
 */
export function defaultSocketPath(
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const fromEnv = env.PROCMON_SOCKET;
  if (fromEnv) return fromEnv;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return "/run/procmon/procmon.sock";
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir) return join(runtimeDir, "procmon", "procmon.sock");
  return join(tmpdir(), `procmon-${uid}`, "procmon.sock");
}

/**
 * The longest unix socket path Linux binds and connects to exactly: sun_path
 * holds 108 bytes with the terminating NUL. A longer path is silently cut short.
 */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Why procmon refuses a socket path or its directory; `code` says which check failed. */
export interface SocketPathProblem {
  /** "too_long": past {@link MAX_SOCKET_PATH_BYTES}; "untrusted_directory": see {@link socketPathProblem}. */
  readonly code: "too_long" | "untrusted_directory";
  /** A sentence naming the path or directory and what to do. */
  readonly message: string;
}

/**
 * Why `path` must not be used as procmond's socket, or undefined if it may:
 * it is longer than the kernel takes, or its directory (when it exists) is
 * owned by a user other than `uid` and root, or can be written by others.
 * Another user could then listen there and receive every command (and
 * secret) the clients send, or replace the daemon's socket. A missing
 * directory is no problem here: the daemon creates it 0700.
 */
export function socketPathProblem(
  path: string,
  uid: number = process.getuid?.() ?? 0,
): SocketPathProblem | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return {
      code: "too_long",
      message: `socket path ${shortened(path)} is ${bytes} bytes long, over the ${MAX_SOCKET_PATH_BYTES} a unix socket allows: choose a shorter path (--socket or PROCMON_SOCKET)`,
    };
  }
  const dir = dirname(resolve(path));
  let stats: Stats;
  let link: Stats;
  try {
    link = lstatSync(dir);
    stats = link.isSymbolicLink() ? statSync(dir) : link;
  } catch {
    return undefined;
  }
  const refuse = (why: string): SocketPathProblem => ({
    code: "untrusted_directory",
    message: `refusing socket directory ${dir}: ${why}; another user could listen there or replace the socket. Remove it, or choose a socket in a directory only you or root can write (--socket, PROCMON_SOCKET)`,
  });
  const owner = (what: string, owned: Stats) =>
    owned.uid === uid || owned.uid === 0
      ? undefined
      : refuse(`${what} owned by uid ${owned.uid}, not by you (uid ${uid}) or root`);
  const foreign =
    (link.isSymbolicLink() ? owner("its symlink is", link) : undefined) ?? owner("it is", stats);
  if (foreign) return foreign;
  if ((stats.mode & 0o022) !== 0) {
    const who = (stats.mode & 0o002) !== 0 ? "every user" : "its group";
    return refuse(
      `${who} can write to it (mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")})`,
    );
  }
  return undefined;
}

function shortened(path: string): string {
  return path.length > 128 ? `${JSON.stringify(path.slice(0, 128))}...` : JSON.stringify(path);
}
