// `npm start` is a development run: its socket and state file are its own
// (.procmon-dev/ in the clone, or $PROCMON_DEV_DIR), never the production
// registry that the procmond bin uses by default (/var/lib/procmon as root).
import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@procmon/client";
import { afterEach, describe, expect, it } from "vitest";
import { childEnv, cleanupAll, makeTempDir, ROOT, waitFor } from "./helpers/daemon.js";

afterEach(cleanupAll);

/** What exists at each production path, to show that nothing there changed. */
function production(): Record<string, number | undefined> {
  const paths = ["/var/lib/procmon/state.json", "/run/procmon/procmon.sock"];
  return Object.fromEntries(paths.map((p) => [p, existsSync(p) ? statSync(p).mtimeMs : undefined]));
}

describe("npm start", () => {
  it("runs a daemon on a socket and state file of its own, leaving the production paths alone", async () => {
    // Checked before it runs: a script that named neither would adopt the production registry.
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      scripts: { start: string };
    };
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's expansion, not a template.
    expect(pkg.scripts.start).toContain('d="${PROCMON_DEV_DIR:-.procmon-dev}"');
    expect(pkg.scripts.start).toContain('--socket "$d/procmon.sock"');
    expect(pkg.scripts.start).toContain('--state-file "$d/state.json"');

    const dir = makeTempDir("procmon-dev-");
    const before = production();
    const npm = spawn("npm", ["start"], {
      cwd: ROOT,
      env: childEnv({ PROCMON_DEV_DIR: dir }),
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, as a terminal's foreground job: Ctrl-C reaches npm, node and pino-pretty.
      detached: true,
    });
    let output = "";
    npm.stdout.setEncoding("utf8").on("data", (c: string) => {
      output += c;
    });
    npm.stderr.setEncoding("utf8").on("data", (c: string) => {
      output += c;
    });
    const closed = new Promise<number | null>((resolve) => npm.once("close", resolve));
    const client = createClient({ socket: join(dir, "procmon.sock"), timeoutMs: 2_000 });
    try {
      await waitFor(async () => (await client.listProcesses()) !== undefined, 20_000, 100);
      expect(existsSync(join(dir, "state.json"))).toBe(true);
      expect(output).toContain("procmond listening");
    } finally {
      client.close();
      if (npm.pid !== undefined) process.kill(-npm.pid, "SIGINT");
    }
    await closed;
    expect(existsSync(join(dir, "procmon.sock"))).toBe(false);
    expect(production()).toEqual(before);
  }, 40_000);
});
