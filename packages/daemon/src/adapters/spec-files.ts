import { accessSync, constants, statSync } from "node:fs";
import { resolve } from "node:path";
import { ProcmonError } from "../core/errors.js";
import { quote } from "../core/quote.js";
import type { SpecFileCheck } from "../core/spec.js";
import { effectivePath, resolveExecutable } from "./executable.js";

/**
 * The file system's part of checking a spec: its cwd is a directory the
 * process can enter, and its executable (resolved with the spec's own PATH
 * and cwd, as the spawner will) exists and can run.
 */
export const checkSpecFiles: SpecFileCheck = (spec, runsAsDaemon) => {
  if (spec.cwd !== "") checkCwd(spec.cwd, runsAsDaemon);
  resolveExecutable(spec.args[0] ?? "", {
    pathEnv: effectivePath(spec.env, spec.clearEnv),
    cwd: resolve(spec.cwd),
  });
};

function checkCwd(cwd: string, runsAsDaemon: boolean): void {
  const dir = resolve(cwd);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw invalid(`cwd ${quote(cwd)} does not exist`);
    throw invalid(`cwd ${quote(cwd)} cannot be used: ${(error as Error).message}`);
  }
  if (!isDirectory) throw invalid(`cwd ${quote(cwd)} is not a directory`);
  // Only checkable for the daemon's own user; another user's access shows at spawn.
  if (runsAsDaemon) {
    try {
      accessSync(dir, constants.X_OK);
    } catch {
      throw invalid(`cwd ${quote(cwd)} is not accessible: permission denied`);
    }
  }
}

function invalid(message: string): ProcmonError {
  return new ProcmonError("invalid_argument", message);
}
