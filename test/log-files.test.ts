// --log-dir (procmon-v1.1 §C) with a real daemon and a real child: every
// output line in exactly one file, in order, rotated by size; and
// `procmonctl logs --lines` reading them when the daemon keeps fewer.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import { cleanupAll, makeTempDir, ROOT, startProcmond, waitFor } from "./helpers/daemon.js";

const run = promisify(execFile);
const PROCMONCTL = join(ROOT, "packages/client/bin/procmonctl.js");

afterEach(cleanupAll);

/** The log files of `name`, oldest first: `.log.K` … `.log.1`, then `.log`. */
function filesOf(dir: string, name: string): string[] {
  const rotated = readdirSync(dir)
    .filter((f) => f.startsWith(`${name}.log.`))
    .map((f) => Number(f.slice(name.length + 5)))
    .sort((a, b) => b - a)
    .map((k) => join(dir, `${name}.log.${k}`));
  return [...rotated, join(dir, `${name}.log`)];
}

describe("--log-dir", () => {
  it("writes every line once, in order, with time and stream, rotated by size; logs --lines reads the files", async () => {
    const logDir = join(makeTempDir("procmon-logs-"), "logs");
    const d = await startProcmond([
      "--log-dir",
      logDir,
      "--log-max-size",
      "8192",
      "--log-keep",
      "100",
      "--output-retention",
      "10",
    ]);
    await d.client.addProcess({
      name: "counter",
      args: ["sh", "-c", "seq 1 3000; echo oops >&2"],
      restart: 3,
    });
    await waitFor(async () => (await d.client.getProcess("counter")).state === State.EXITED);
    // The daemon writes the files asynchronously: wait for the last line to land.
    await waitFor(() => readFileSync(join(logDir, "counter.log"), "utf8").includes(" err oops"));
    const files = filesOf(logDir, "counter");
    expect(files.length).toBeGreaterThan(3);
    const lines = files.flatMap((f) => {
      const text = readFileSync(f, "utf8");
      expect(text.length).toBeLessThanOrEqual(8192);
      expect(text.endsWith("\n")).toBe(true);
      return text.split("\n").filter((l) => l !== "");
    });
    for (const line of lines) {
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (out|err) /);
    }
    const numbers = lines.filter((l) => l.includes(" out ")).map((l) => Number(l.split(" ")[2]));
    expect(numbers).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(lines.at(-1)).toMatch(/ err oops$/);
    // The daemon keeps 10 lines; the other 40 come from the files, in order, once each.
    const { stdout } = await run(
      process.execPath,
      [PROCMONCTL, "--socket", d.socket, "logs", "counter", "--lines", "50"],
      { timeout: 15_000 },
    );
    const printed = stdout.trim().split("\n");
    expect(printed).toEqual([...Array.from({ length: 49 }, (_, i) => String(2952 + i)), "oops"]);
    expect((await d.client.getDaemonInfo()).logDir).toBe(logDir);
  });
});
