import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_PATH,
  effectivePath,
  lookupExecutable,
  resolveExecutable,
} from "../../src/adapters/executable.js";
import { ProcmonError } from "../../src/core/errors.js";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "procmon-executable-"));
  mkdirSync(path.join(dir, "bin"));
  mkdirSync(path.join(dir, "other"));
  mkdirSync(path.join(dir, "bin", "subdir"));
  writeFileSync(path.join(dir, "bin", "tool"), "#!/bin/sh\n");
  chmodSync(path.join(dir, "bin", "tool"), 0o755);
  writeFileSync(path.join(dir, "bin", "plain"), "not a program\n");
  chmodSync(path.join(dir, "bin", "plain"), 0o644);
  writeFileSync(path.join(dir, "other", "plain"), "#!/bin/sh\n");
  chmodSync(path.join(dir, "other", "plain"), 0o755);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function invalidArgument(fn: () => unknown): ProcmonError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProcmonError);
    expect((err as ProcmonError).code).toBe("invalid_argument");
    return err as ProcmonError;
  }
  throw new Error("expected a ProcmonError");
}

describe("resolveExecutable", () => {
  it("returns an absolute path as it is", () => {
    const tool = path.join(dir, "bin", "tool");
    expect(resolveExecutable(tool, { pathEnv: "", cwd: "" })).toBe(tool);
  });

  it("resolves a relative path against cwd", () => {
    expect(resolveExecutable("./bin/tool", { pathEnv: undefined, cwd: dir })).toBe(
      path.join(dir, "bin", "tool"),
    );
  });

  it("resolves a relative path against the daemon's cwd when cwd is empty", () => {
    const relative = path.relative(process.cwd(), path.join(dir, "bin", "tool"));
    expect(resolveExecutable(relative, { pathEnv: undefined, cwd: "" })).toBe(
      path.join(dir, "bin", "tool"),
    );
  });

  it("searches a bare name on PATH", () => {
    const pathEnv = [path.join(dir, "other"), path.join(dir, "bin")].join(":");
    expect(resolveExecutable("tool", { pathEnv, cwd: "" })).toBe(path.join(dir, "bin", "tool"));
  });

  it("skips a non-executable file for a later executable one, as execvp does", () => {
    const pathEnv = [path.join(dir, "bin"), path.join(dir, "other")].join(":");
    expect(resolveExecutable("plain", { pathEnv, cwd: "" })).toBe(path.join(dir, "other", "plain"));
  });

  it("treats an empty PATH entry as the working directory", () => {
    expect(
      resolveExecutable("tool", { pathEnv: "/nonexistent:", cwd: path.join(dir, "bin") }),
    ).toBe(path.join(dir, "bin", "tool"));
  });

  it("searches the default PATH when there is none", () => {
    expect(resolveExecutable("sh", { pathEnv: undefined, cwd: "" })).toMatch(/^\/.*\/sh$/);
  });

  it("names a bare name missing from PATH", () => {
    const err = invalidArgument(() =>
      resolveExecutable("no-such-tool", { pathEnv: path.join(dir, "bin"), cwd: "" }),
    );
    expect(err.message).toBe('executable "no-such-tool" not found on PATH');
  });

  it("names a bare name found on PATH only as a non-executable file", () => {
    const err = invalidArgument(() =>
      resolveExecutable("plain", { pathEnv: path.join(dir, "bin"), cwd: "" }),
    );
    expect(err.message).toBe(
      `executable "plain" found on PATH at "${path.join(dir, "bin", "plain")}" is not executable`,
    );
  });

  it("names a path that does not exist", () => {
    const missing = path.join(dir, "missing");
    const err = invalidArgument(() => resolveExecutable(missing, { pathEnv: "", cwd: "" }));
    expect(err.message).toBe(`executable "${missing}" does not exist`);
  });

  it("names a file that is not executable", () => {
    const plain = path.join(dir, "bin", "plain");
    const err = invalidArgument(() => resolveExecutable(plain, { pathEnv: "", cwd: "" }));
    expect(err.message).toBe(`executable "${plain}" is not executable`);
  });

  it("names a directory", () => {
    const err = invalidArgument(() => resolveExecutable(dir, { pathEnv: "", cwd: "" }));
    expect(err.message).toBe(`executable "${dir}" is a directory`);
  });

  it("shows where a relative path was resolved", () => {
    const err = invalidArgument(() => resolveExecutable("./bin/nope", { pathEnv: "", cwd: dir }));
    expect(err.message).toBe(
      `executable "./bin/nope" does not exist (resolved to "${path.join(dir, "bin", "nope")}")`,
    );
  });

  it("rejects an empty name", () => {
    invalidArgument(() => resolveExecutable("", { pathEnv: "/bin", cwd: "" }));
  });
});

describe("lookupExecutable", () => {
  it("gives the errno execve would give", () => {
    const opts = { pathEnv: path.join(dir, "bin"), cwd: "" };
    expect(lookupExecutable("missing", opts)).toMatchObject({ found: false, errno: "ENOENT" });
    expect(lookupExecutable("plain", opts)).toMatchObject({ found: false, errno: "EACCES" });
    expect(lookupExecutable(dir, opts)).toMatchObject({ found: false, errno: "EACCES" });
    expect(lookupExecutable("tool", opts)).toEqual({
      found: true,
      path: path.join(dir, "bin", "tool"),
    });
  });
});

describe("effectivePath", () => {
  it("prefers the spec's PATH", () => {
    expect(effectivePath({ PATH: "/spec" }, false)).toBe("/spec");
    expect(effectivePath({ PATH: "/spec" }, true)).toBe("/spec");
  });

  it("falls back to the daemon's PATH", () => {
    expect(effectivePath({}, false)).toBe(process.env.PATH);
  });

  it("uses the default PATH for a cleared environment without one", () => {
    expect(effectivePath({}, true)).toBe(DEFAULT_PATH);
    expect(DEFAULT_PATH).toBe("/usr/local/bin:/usr/bin:/bin");
  });
});
