import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_SOCKET_PATH_BYTES, socketPathProblem } from "../src/socket.js";

const me = process.getuid?.() ?? 0;
/** A uid that is neither ours nor root's, to check a directory as another user would. */
const stranger = me === 4242 ? 4243 : 4242;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "procmon-sock-"));
  dirs.push(dir);
  return dir;
}

describe("socketPathProblem", () => {
  it("accepts a socket in a 0700 directory of ours, and one whose directory does not exist yet", () => {
    const dir = tempDir();
    expect(socketPathProblem(join(dir, "procmon.sock"))).toBeUndefined();
    expect(socketPathProblem(join(dir, "missing", "procmon.sock"))).toBeUndefined();
  });

  it(`refuses a path over ${MAX_SOCKET_PATH_BYTES} bytes, which the kernel would cut short`, () => {
    const dir = tempDir();
    const fits = join(dir, "s".repeat(MAX_SOCKET_PATH_BYTES - dir.length - 1));
    expect(Buffer.byteLength(fits)).toBe(MAX_SOCKET_PATH_BYTES);
    expect(socketPathProblem(fits)).toBeUndefined();
    const problem = socketPathProblem(`${fits}s`);
    expect(problem?.code).toBe("too_long");
    expect(problem?.message).toContain(`is ${MAX_SOCKET_PATH_BYTES + 1} bytes long, over the 107`);
    // Bytes, not characters: "é" takes two.
    expect(socketPathProblem(join(dir, "é".repeat(60)))?.code).toBe("too_long");
  });

  it("refuses a directory every user can write, naming it and its mode", () => {
    const dir = tempDir();
    chmodSync(dir, 0o777);
    const problem = socketPathProblem(join(dir, "procmon.sock"));
    expect(problem?.code).toBe("untrusted_directory");
    expect(problem?.message).toContain(
      `refusing socket directory ${dir}: every user can write to it (mode 0777)`,
    );
  });

  it("refuses a directory its group can write", () => {
    const dir = tempDir();
    chmodSync(dir, 0o770);
    expect(socketPathProblem(join(dir, "s.sock"))?.message).toContain(
      "its group can write to it (mode 0770)",
    );
  });

  it("refuses a directory owned by another user, naming the owner", () => {
    const dir = tempDir();
    // As root, the directory is given away; otherwise ours is judged as another uid would.
    if (me === 0) chownSync(dir, stranger, stranger);
    const [owner, judge] = me === 0 ? [stranger, me] : [me, stranger];
    const problem = socketPathProblem(join(dir, "procmon.sock"), judge);
    expect(problem?.code).toBe("untrusted_directory");
    expect(problem?.message).toContain(
      `refusing socket directory ${dir}: it is owned by uid ${owner}, not by you (uid ${judge}) or root`,
    );
  });

  it("follows a symlinked directory, and holds its target to the same rules", () => {
    const dir = tempDir();
    const target = join(dir, "target");
    mkdirSync(target, { mode: 0o777 });
    chmodSync(target, 0o777);
    symlinkSync(target, join(dir, "link"));
    expect(socketPathProblem(join(dir, "link", "procmon.sock"))?.message).toContain(
      `refusing socket directory ${join(dir, "link")}: every user can write to it`,
    );
    chmodSync(target, 0o700);
    expect(socketPathProblem(join(dir, "link", "procmon.sock"))).toBeUndefined();
  });
});
