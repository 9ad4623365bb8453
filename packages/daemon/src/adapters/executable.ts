import { accessSync, constants, type Stats, statSync } from "node:fs";
import path from "node:path";
import { ProcmonError } from "../core/errors.js";
import { quote } from "../core/quote.js";

/** The PATH searched when the child's environment has none, as execvp does. */
export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Where and how to look an executable up. */
export interface ExecutableLookupOptions {
  /** The PATH the child will see; undefined searches {@link DEFAULT_PATH}. */
  readonly pathEnv: string | undefined;
  /** The child's working directory; empty for the daemon's. */
  readonly cwd: string;
}

/** The result of {@link lookupExecutable}: a path, or the errno execve would give and why. */
export type ExecutableLookup =
  | { readonly found: true; readonly path: string }
  | { readonly found: false; readonly errno: "ENOENT" | "EACCES"; readonly message: string };

/**
 * Returns the absolute path that `file` (a path, or a bare name looked up on PATH) runs.
 * @throws ProcmonError `invalid_argument` naming the problem when it is missing or not executable.
 */
export function resolveExecutable(file: string, opts: ExecutableLookupOptions): string {
  const lookup = lookupExecutable(file, opts);
  if (!lookup.found) throw new ProcmonError("invalid_argument", lookup.message);
  return lookup.path;
}

/** Like {@link resolveExecutable}, but returns the problem instead of throwing it. */
export function lookupExecutable(file: string, opts: ExecutableLookupOptions): ExecutableLookup {
  if (file === "") {
    return { found: false, errno: "ENOENT", message: "the executable (args[0]) is empty" };
  }
  const base = opts.cwd || process.cwd();
  if (file.includes("/")) {
    const resolved = path.resolve(base, file);
    const where = path.isAbsolute(file) ? "" : ` (resolved to ${quote(resolved)})`;
    switch (probe(resolved)) {
      case "ok":
        return { found: true, path: resolved };
      case "missing":
        return notFound(`executable ${quote(file)} does not exist${where}`);
      case "directory":
        return denied(`executable ${quote(file)} is a directory${where}`);
      case "not_executable":
        return denied(`executable ${quote(file)} is not executable${where}`);
    }
  }
  // As execvp does: skip what is missing or a directory, and report a non-executable file only if
  // nothing later on the PATH can run.
  let notExecutable: string | undefined;
  for (const dir of (opts.pathEnv ?? DEFAULT_PATH).split(path.delimiter)) {
    // An empty entry means the working directory, as in POSIX shells.
    const candidate = path.resolve(base, dir, file);
    const outcome = probe(candidate);
    if (outcome === "ok") return { found: true, path: candidate };
    if (outcome === "not_executable") notExecutable ??= candidate;
  }
  if (notExecutable !== undefined) {
    return denied(
      `executable ${quote(file)} found on PATH at ${quote(notExecutable)} is not executable`,
    );
  }
  return notFound(`executable ${quote(file)} not found on PATH`);
}

/**
 * The PATH the child will see: the spec's over the daemon's, unless the environment is cleared;
 * {@link DEFAULT_PATH} for a cleared environment without one.
 */
export function effectivePath(
  env: Readonly<Record<string, string>>,
  clearEnv: boolean,
): string | undefined {
  const fromSpec = env.PATH;
  if (fromSpec !== undefined) return fromSpec;
  return clearEnv ? DEFAULT_PATH : process.env.PATH;
}

type Probe = "ok" | "missing" | "directory" | "not_executable";

function probe(file: string): Probe {
  let stats: Stats | undefined;
  try {
    // Without throwing for ENOENT: a PATH search mostly misses, and exceptions are slow.
    stats = statSync(file, { throwIfNoEntry: false });
  } catch (err) {
    // EACCES here means a directory on the way cannot be searched: it exists but cannot run.
    return (err as NodeJS.ErrnoException).code === "ENOTDIR" ? "missing" : "not_executable";
  }
  if (stats === undefined) return "missing";
  // Directories pass the X_OK check (it means "searchable" for them), so test this first.
  if (stats.isDirectory()) return "directory";
  try {
    accessSync(file, constants.X_OK);
  } catch {
    return "not_executable";
  }
  return "ok";
}

function notFound(message: string): ExecutableLookup {
  return { found: false, errno: "ENOENT", message };
}

function denied(message: string): ExecutableLookup {
  return { found: false, errno: "EACCES", message };
}

/**
 * The environment a child is given: the daemon's (unless cleared), the spec's
 * over it, then `markers` (PROCMON_INSTANCE, PROCMON_NAME) whatever the spec says.
 */
export function childEnvironment(
  env: Readonly<Record<string, string>>,
  clearEnv: boolean,
  markers: Readonly<Record<string, string>>,
): Record<string, string> {
  return clearEnv ? { ...env, ...markers } : { ...daemonEnvironment(), ...env, ...markers };
}

let inherited: Readonly<Record<string, string>> | undefined;

/**
 * The daemon's environment, read once: procmond never changes its own, and
 * reading `process.env` (a getenv per variable) was the top self time of
 * 1,000 spawns.
 */
function daemonEnvironment(): Readonly<Record<string, string>> {
  if (inherited === undefined) {
    const copy: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env))
      if (value !== undefined) copy[key] = value;
    inherited = Object.freeze(copy);
  }
  return inherited;
}
