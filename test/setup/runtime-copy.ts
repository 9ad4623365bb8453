// A copy of what procmond needs at run time (its dist, the client's, and the
// production node_modules), in a directory every user can read. A test that
// runs a daemon as another uid runs it from here: the clone itself may sit in
// a 0700 directory (root's home, a mktemp -d) that the other uid cannot enter.
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The runtime copy's root, when the suite runs as root; undefined otherwise. */
    procmonRuntime: string | undefined;
  }
}

const ROOT = join(import.meta.dirname, "../..");

/** Copies the runtime into a new world-readable temp dir and returns its root. */
export function copyRuntime(): string {
  const dir = mkdtempSync(join(tmpdir(), "procmon-runtime-"));
  chmodSync(dir, 0o755);
  for (const pkg of ["api", "client", "daemon"]) {
    for (const part of ["package.json", "bin", "dist", "native/build"]) {
      if (!existsSync(join(ROOT, "packages", pkg, part))) continue;
      cpSync(join(ROOT, "packages", pkg, part), join(dir, "packages", pkg, part), {
        recursive: true,
      });
    }
  }
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; link?: boolean; resolved?: string }>;
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // Top-level packages only: the nested ones come with their parent's directory.
    if (entry.dev || !/^node_modules\/(@[^/]+\/)?[^/]+$/.test(path)) continue;
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    if (entry.link && entry.resolved !== undefined) {
      symlinkSync(relative(dirname(target), join(dir, entry.resolved)), target);
    } else {
      cpSync(join(ROOT, path), target, { recursive: true });
    }
  }
  openToEveryone(dir);
  return dir;
}

/** Vitest's global setup: makes the copy once per run when running as root. */
export default function setup(project: TestProject): (() => void) | undefined {
  if (process.getuid?.() !== 0) {
    project.provide("procmonRuntime", undefined);
    return undefined;
  }
  const dir = copyRuntime();
  project.provide("procmonRuntime", dir);
  return () => rmSync(dir, { recursive: true, force: true });
}

/** chmod a+rX, whatever the umask the copies were made under. */
function openToEveryone(path: string): void {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) return;
  if (stats.isDirectory()) {
    chmodSync(path, stats.mode | 0o555);
    for (const name of readdirSync(path)) openToEveryone(join(path, name));
  } else {
    chmodSync(path, stats.mode | 0o444 | (stats.mode & 0o100 ? 0o111 : 0));
  }
}
