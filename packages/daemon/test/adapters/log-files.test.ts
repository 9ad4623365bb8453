// Per-process log files: the line format, rotation by size between lines,
// keep 0 and oversized lines, a full disk, and the pacing gate.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LogFiles, type LogFilesFs, nodeLogFilesFs } from "../../src/adapters/log-files.js";
import type { Logger } from "../../src/core/logger.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "procmon-log-files-"));
  dirs.push(dir);
  return dir;
}

interface Call {
  level: string;
  fields: object;
  message: string;
}

function recordingLogger(): Logger & { calls: Call[] } {
  const calls: Call[] = [];
  const at =
    (level: string) =>
    (fields: object, message: string): void => {
      calls.push({ level, fields, message });
    };
  return { calls, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (out|err) (.*)$/;

function lines(path: string): string[] {
  const text = readFileSync(path, "utf8");
  expect(text === "" || text.endsWith("\n")).toBe(true);
  return text === "" ? [] : text.slice(0, -1).split("\n");
}

describe("LogFiles", () => {
  it("writes one line per write: UTC time with ms, out or err, the line, in order", async () => {
    const base = tempDir();
    const dir = join(base, "logs");
    const files = new LogFiles({ dir, maxBytes: 1 << 20, keep: 5, logger: recordingLogger() });
    const at = Date.UTC(2026, 11, 8, 4, 5, 6, 789);
    files.write("web", "stdout", "hello", at);
    files.write("web", "stderr", "oops: x", at + 1);
    files.write("web", "stdout", "", at + 2);
    files.write("db", "stdout", "other", at);
    await files.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "web.log")).mode & 0o777).toBe(0o600);
    expect(lines(join(dir, "web.log"))).toEqual([
      "2026-12-08T04:05:06.789Z out hello",
      "2026-12-08T04:05:06.790Z err oops: x",
      "2026-12-08T04:05:06.791Z out ",
    ]);
    expect(lines(join(dir, "db.log"))).toEqual(["2026-12-08T04:05:06.789Z out other"]);
    // Later writes are ignored.
    files.write("web", "stdout", "late", at);
    await new Promise((r) => setTimeout(r, 20));
    expect(lines(join(dir, "web.log"))).toHaveLength(3);
  });

  it("appends to an existing file, counting its size", async () => {
    const dir = tempDir();
    const first = new LogFiles({ dir, maxBytes: 100, keep: 1, logger: recordingLogger() });
    first.write("a", "stdout", "x".repeat(40), 0); // 69 bytes
    await first.close();
    const second = new LogFiles({ dir, maxBytes: 100, keep: 1, logger: recordingLogger() });
    second.write("a", "stdout", "y".repeat(40), 0); // would pass 100: rotates
    await second.close();
    expect(lines(join(dir, "a.log.1"))).toHaveLength(1);
    expect(lines(join(dir, "a.log"))[0]).toMatch(/ out y{40}$/);
  });

  it("rotates between lines under a flood, keeping a contiguous suffix", async () => {
    const dir = tempDir();
    const maxBytes = 4096;
    const keep = 3;
    const files = new LogFiles({ dir, maxBytes, keep, logger: recordingLogger() });
    const total = 5000;
    for (let i = 1; i <= total; i++) {
      files.write("flood", i % 3 === 0 ? "stderr" : "stdout", `${i} ${"x".repeat(i % 97)}`, i);
    }
    await files.close();
    const names = ["flood.log.3", "flood.log.2", "flood.log.1", "flood.log"];
    expect(existsSync(join(dir, "flood.log.4"))).toBe(false);
    const numbers: number[] = [];
    for (const name of names) {
      const path = join(dir, name);
      const size = statSync(path).size;
      expect(size).toBeLessThanOrEqual(maxBytes);
      if (name !== "flood.log") expect(size).toBeGreaterThan(maxBytes - 200);
      for (const line of lines(path)) {
        const match = LINE.exec(line);
        expect(match, line).not.toBeNull();
        const [n, pad] = match![3]!.split(" ");
        const i = Number(n);
        expect(match![2]).toBe(i % 3 === 0 ? "err" : "out");
        expect(pad).toBe("x".repeat(i % 97)); // whole, not split
        numbers.push(i);
      }
    }
    expect(numbers.at(-1)).toBe(total);
    expect(numbers[0]).toBeGreaterThan(1); // older ones were deleted
    for (let k = 1; k < numbers.length; k++) expect(numbers[k]).toBe(numbers[k - 1]! + 1);
  });

  it("keeps no old file with keep 0, and puts a line longer than maxBytes alone in its file", async () => {
    const dir = tempDir();
    const files = new LogFiles({ dir, maxBytes: 100, keep: 0, logger: recordingLogger() });
    files.write("k", "stdout", "small", 0);
    files.write("k", "stdout", "L".repeat(300), 0);
    await files.close();
    expect(existsSync(join(dir, "k.log.1"))).toBe(false);
    expect(lines(join(dir, "k.log"))).toEqual([`1970-01-01T00:00:00.000Z out ${"L".repeat(300)}`]);

    const dir2 = tempDir();
    const two = new LogFiles({ dir: dir2, maxBytes: 100, keep: 2, logger: recordingLogger() });
    two.write("k", "stdout", "a", 0);
    two.write("k", "stdout", "B".repeat(300), 0);
    two.write("k", "stdout", "c", 0);
    await two.close();
    expect(lines(join(dir2, "k.log.2"))).toEqual(["1970-01-01T00:00:00.000Z out a"]);
    expect(lines(join(dir2, "k.log.1"))).toEqual([
      `1970-01-01T00:00:00.000Z out ${"B".repeat(300)}`,
    ]);
    expect(lines(join(dir2, "k.log"))).toEqual(["1970-01-01T00:00:00.000Z out c"]);
  });

  it("refuses names that would leave the directory", async () => {
    const dir = tempDir();
    const logger = recordingLogger();
    const files = new LogFiles({ dir: join(dir, "logs"), maxBytes: 1000, keep: 1, logger });
    for (const name of ["../escape", "..", ".", "a/b", "../escape"]) {
      files.write(name, "stdout", "x", 0);
    }
    await files.close();
    expect(existsSync(join(dir, "escape.log"))).toBe(false);
    expect(logger.calls.filter((c) => c.level === "error")).toHaveLength(4);
  });

  it("on a full disk logs one error, drops and counts lines, never holds the gate, resumes", async () => {
    const dir = tempDir();
    const logger = recordingLogger();
    let full = false;
    let now = 1_000_000;
    const fs: LogFilesFs = {
      ...nodeLogFilesFs,
      async open(path, flags, mode) {
        const handle = await nodeLogFilesFs.open(path, flags, mode);
        return {
          stat: () => handle.stat(),
          close: () => handle.close(),
          appendFile: async (data) => {
            if (full) throw Object.assign(new Error("ENOSPC: no space left"), { code: "ENOSPC" });
            await handle.appendFile(data);
          },
        };
      },
    };
    const files = new LogFiles({
      dir,
      maxBytes: 1 << 20,
      keep: 1,
      logger,
      fs,
      now: () => now,
      highWaterBytes: 1000,
    });
    const flush = () => new Promise((r) => setTimeout(r, 30));
    files.write("d", "stdout", "before", 0);
    await flush();
    full = true;
    for (let i = 0; i < 50; i++) files.write("d", "stdout", `during ${i} ${"z".repeat(50)}`, 0);
    expect(files.gate.isOpen).toBe(false); // behind while queued
    await flush();
    expect(files.gate.isOpen).toBe(true); // a failing file does not hold it
    for (let i = 0; i < 10; i++) files.write("d", "stdout", `still ${i}`, 0);
    now += 1500;
    files.write("d", "stdout", "retry fails", 0); // the once-a-second retry
    await flush();
    expect(logger.calls.filter((c) => c.level === "error")).toHaveLength(1);
    expect((logger.calls[0]!.fields as { name: string }).name).toBe("d");
    full = false;
    files.write("d", "stdout", "too soon", 0); // within a second of the failed retry
    now += 1500;
    files.write("d", "stdout", "after", 0);
    await files.close();
    expect(lines(join(dir, "d.log")).map((l) => LINE.exec(l)![3])).toEqual(["before", "after"]);
    expect(logger.calls.filter((c) => c.level === "error")).toHaveLength(1);
    const resumed = logger.calls.find((c) => c.level === "info");
    expect(resumed?.fields).toMatchObject({ name: "d", dropped: 62 });
    expect(files.gate.isOpen).toBe(true);
  });

  it("closes the gate under a burst and opens it once drained", async () => {
    const dir = tempDir();
    const files = new LogFiles({ dir, maxBytes: 64 << 20, keep: 1, logger: recordingLogger() });
    const chunk = "b".repeat(1000);
    for (let i = 0; i < 4000; i++) files.write(`p${i % 4}`, "stdout", chunk, 0);
    expect(files.gate.isOpen).toBe(false);
    expect(files.queuedBytes).toBeGreaterThan(1 << 20);
    await new Promise<void>((resolve) => files.gate.whenOpen(resolve));
    expect(files.queuedBytes).toBeLessThan(1 << 19);
    await files.close();
    expect(files.queuedBytes).toBe(0);
    let total = 0;
    for (let p = 0; p < 4; p++) total += lines(join(dir, `p${p}.log`)).length;
    expect(total).toBe(4000);
  });
});
