import { spawn } from "node:child_process";
import type { Logger } from "../core/logger.js";

/**
 * Tells systemd (Type=notify) that procmond is ready, through systemd-notify(1):
 * Node cannot send on a unix datagram socket. systemd-notify waits, by
 * default, until systemd has taken the message in (a barrier), so the unit
 * needs NotifyAccess=all (the sender is its child, not the main pid) and
 * nothing races. Resolves once it has run; a failure is logged, never thrown:
 * supervision does not depend on it.
 */
export function notifyReady(notifySocket: string, status: string, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("systemd-notify", ["--ready", `--status=${status}`], {
      env: { ...process.env, NOTIFY_SOCKET: notifySocket },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      const why =
        err.code === "ENOENT" ? "systemd-notify is not on PATH" : `systemd-notify: ${err.message}`;
      logger.warn(
        { notifySocket },
        `NOTIFY_SOCKET is set, but ${why}: systemd is not told that procmond is ready`,
      );
      resolve();
    });
    child.on("close", (code) => {
      if (code === 0) logger.debug({ notifySocket }, "told systemd that procmond is ready");
      else if (code !== null) {
        logger.warn(
          { notifySocket, code, stderr: stderr.trim() },
          "systemd-notify failed: systemd is not told that procmond is ready",
        );
      }
      resolve();
    });
  });
}
