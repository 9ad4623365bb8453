// How spawn failures are worded, whichever spawner met them.
import { constants } from "node:os";
import type { SpawnRequest } from "../core/spawner.js";

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  EACCES: "permission denied",
  EAGAIN: "resource temporarily unavailable (too many processes?)",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EPERM: "operation not permitted",
  E2BIG: "argument list too long",
  ENOEXEC: "exec format error",
};

/** The errno's name and what it means: `EMFILE: too many open files`. */
export function errnoText(code: string): string {
  const text = ERRNO_TEXT[code];
  return text === undefined ? code : `${code}: ${text}`;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The name of errno `n` (`ENOENT` for 2); `E<n>` for one Node does not know. */
export function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `E${n}`;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/** The name of signal `n` (`SIGKILL` for 9); `SIG<n>` for one Node does not know. */
export function signalName(n: number): string {
  return SIGNAL_NAMES.get(n) ?? `SIG${n}`;
}

/** ` as uid 1 and gid 2`, or nothing: who the child was to run as. */
export function runAs(request: SpawnRequest): string {
  const parts: string[] = [];
  if (request.uid !== undefined) parts.push(`uid ${request.uid}`);
  if (request.gid !== undefined) parts.push(`gid ${request.gid}`);
  return parts.length === 0 ? "" : ` as ${parts.join(" and ")}`;
}
