import { tmpdir } from "node:os";
import { join } from "node:path";

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
