import { accessSync, constants } from "node:fs";
import { fileURLToPath } from "node:url";
import { ProcmonError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Spawner } from "../core/spawner.js";

/** Which spawner a daemon asks for: the shim, Node itself, or the shim if it was built. */
export type SpawnerChoice = "shim" | "node" | "auto";

/** Where `npm ci` builds procmon-shim (native/build.mjs); PROCMON_SHIM names another (tests). */
export function shimPath(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.PROCMON_SHIM || fileURLToPath(new URL("../../native/build/procmon-shim", import.meta.url))
  );
}

/**
 * The spawner `choice` comes to: the shim (started, hands shaken), or Node's
 * own, the fallback when the shim was not built (no C compiler at install),
 * said loudly: without the shim, spawning forks the whole daemon.
 * @throws ProcmonError failed_precondition when the shim is asked for and cannot run.
 */
export async function chooseSpawner(
  choice: SpawnerChoice,
  make: {
    readonly node: () => Spawner;
    readonly shim: (path: string) => Promise<Spawner>;
    readonly logger: Logger;
  },
): Promise<{ spawner: Spawner; kind: "shim" | "node" }> {
  if (choice === "node") return { spawner: make.node(), kind: "node" };
  const path = shimPath();
  let built = true;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    built = false;
  }
  if (!built) {
    if (choice === "shim") {
      throw new ProcmonError(
        "failed_precondition",
        `procmon-shim is not built at ${path}: run npm ci where a C compiler (cc) is installed, or use --spawner node`,
      );
    }
    make.logger.warn(
      { shim: path },
      "procmon-shim is not built (no C compiler at install?): spawning from Node, which forks the whole daemon for every child",
    );
    return { spawner: make.node(), kind: "node" };
  }
  try {
    const spawner = await make.shim(path);
    return { spawner, kind: "shim" };
  } catch (err) {
    throw new ProcmonError("failed_precondition", (err as Error).message, { cause: err });
  }
}
