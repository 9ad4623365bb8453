import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { lockStateFile } from "../../src/adapters/state-lock.js";
import { ProcmonError } from "../../src/core/errors.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateFileIn(): string {
  const dir = mkdtempSync(join(tmpdir(), "procmon-lock-"));
  dirs.push(dir);
  return join(dir, "state.json");
}

function refusal(fn: () => unknown): ProcmonError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProcmonError) return err;
    throw err;
  }
  throw new Error("the lock was taken");
}

describe("lockStateFile", () => {
  it("holds <state file>.lock with the holder's pid, and touches no state file", () => {
    const state = stateFileIn();
    const lock = lockStateFile(state);
    try {
      expect(lock.path).toBe(`${state}.lock`);
      expect(readFileSync(lock.path, "utf8")).toBe(`${process.pid}\n`);
      expect(existsSync(state)).toBe(false);
    } finally {
      lock.release();
    }
  });

  it("refuses a second holder, naming the state file and the pid that holds it", () => {
    const state = stateFileIn();
    const first = lockStateFile(state);
    try {
      const err = refusal(() => lockStateFile(state));
      expect(err.code).toBe("failed_precondition");
      expect(err.message).toContain(`state file ${state} is in use by another procmond`);
      expect(err.message).toContain(`pid ${process.pid}`);
    } finally {
      first.release();
    }
    // Released: the next one takes it.
    lockStateFile(state).release();
  });

  it("is released by the kernel when its holder is killed", async () => {
    const state = stateFileIn();
    const module = new URL("../../dist/adapters/state-lock.js", import.meta.url).href;
    const holder = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { lockStateFile } = await import(${JSON.stringify(module)});
         lockStateFile(${JSON.stringify(state)}); console.log("locked"); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the holder did not lock")), 10_000);
        holder.stdout.on("data", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      expect(refusal(() => lockStateFile(state)).message).toContain(`pid ${holder.pid}`);
    } finally {
      holder.kill("SIGKILL");
    }
    await new Promise((resolve) => holder.once("close", resolve));
    lockStateFile(state).release();
  });

  it("refuses a symlink planted at the lock path instead of following it", () => {
    const state = stateFileIn();
    const elsewhere = `${state}.victim`;
    writeFileSync(elsewhere, "precious\n");
    symlinkSync(elsewhere, `${state}.lock`);
    const err = refusal(() => lockStateFile(state));
    expect(err.message).toMatch(/cannot open the lock file .*state\.json\.lock/);
    expect(readFileSync(elsewhere, "utf8")).toBe("precious\n");
  });
});
