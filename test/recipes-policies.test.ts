// The README's "Policies" recipes, the companion of recipes.test.ts (which runs
// its grpcurl and buf curl recipes): read out of the README itself and run against
// real daemons. The procmonctl lines, the config file and the SDK script each
// bring up the same five processes, with the same outcome.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { State } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanupAll,
  makeTempDir,
  type Procmond,
  ROOT,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

const run = promisify(execFile);
const PROCMONCTL = join(ROOT, "packages/client/bin/procmonctl.js");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

afterEach(async () => {
  closeAllWatches();
  await cleanupAll();
});

/** The fenced blocks of `lang` in the README's "## Policies" section. */
function blocks(lang: string): string[] {
  const start = README.indexOf("\n## Policies\n");
  const section = README.slice(start, README.indexOf("\n## ", start + 1));
  return [...section.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, "g"))].map(
    (m) => m[1] as string,
  );
}

/** A command line's words: spaces split them, single quotes hold them together. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? "");
}

/** What every variant brings up: migrate ran and exited 0, db is ready, web runs after both, the worker gave up, the cache has its cap. */
async function expectOutcome(d: Procmond): Promise<void> {
  const get = (name: string) => d.client.getProcess(name);
  await waitFor(async () => (await get("web")).state === State.RUNNING, 15_000);
  expect(await get("migrate")).toMatchObject({ state: State.EXITED });
  expect((await get("migrate")).lastExit?.status).toEqual({ case: "exitCode", value: 0 });
  expect(await get("db")).toMatchObject({ state: State.RUNNING, ready: true });
  await waitFor(async () => (await get("worker")).state === State.FAILED, 15_000);
  const cache = await get("cache");
  expect(cache.state).toBe(State.RUNNING);
  expect(cache.spec?.maxRssBytes).toBe(200n * 1024n * 1024n);
  expect(cache.spec?.stopSignal).toBe("SIGQUIT");
}

describe("the README's policies examples", () => {
  it("has one block each of procmonctl lines, config and SDK", () => {
    expect([blocks("sh").length, blocks("yaml").length, blocks("js").length]).toEqual([1, 1, 1]);
  });

  it("procmonctl", async () => {
    const d = await startProcmond();
    const watch = await openWatch(d.socket);
    for (const line of (blocks("sh")[0] ?? "").split("\n").filter((l) => l.startsWith("npx "))) {
      const [, command, ...args] = words(line);
      expect(command).toBe("procmonctl");
      await run(process.execPath, [PROCMONCTL, "--socket", d.socket, ...args], { timeout: 15_000 });
    }
    await expectOutcome(d);
    // web waited for its dependencies before it started.
    expect(watch.events.some((e) => e.process === "web" && e.kind.case === "waiting")).toBe(true);
  });

  it("the config file", async () => {
    const config = join(makeTempDir("procmon-readme-"), "processes.yaml");
    writeFileSync(config, blocks("yaml")[0] ?? "");
    const d = await startProcmond(["--config", config]);
    await expectOutcome(d);
  });

  it("the SDK", async () => {
    const d = await startProcmond();
    await run(process.execPath, ["--input-type=module", "-e", blocks("js")[0] ?? ""], {
      cwd: ROOT,
      env: { ...process.env, PROCMON_SOCKET: d.socket },
      timeout: 15_000,
    });
    await expectOutcome(d);
  });
});
