// procmonctl on a terminal: a child that prints escape sequences, and a spec
// full of them, must not take over the operator's terminal. The real bin runs
// under a pseudo-terminal (util-linux `script`) and, for contrast, through a
// pipe, where scripts must get the exact bytes.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Changes } from "./helpers/changes.js";
import { killAllCtl, PROCMONCTL_BIN, runCtl, spawnCtl } from "./helpers/cli.js";
import {
  childEnv,
  cleanupAll,
  makeTempDir,
  type Procmond,
  ROOT,
  startProcmond,
} from "./helpers/daemon.js";

/** Clears the screen and sets the terminal's title. */
const HOSTILE = "\x1b[2J\x1b]0;pwned\x07";
/** HOSTILE as procmonctl shows it on a terminal. */
const SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07";
/** Reverses what follows it on screen. */
const RLO = "\u202e";

let d: Procmond;
let evilSeq: bigint;
let evilCwd: string;

beforeAll(async () => {
  d = await startProcmond();
  evilCwd = join(makeTempDir("procmon-tty-"), `dir${HOSTILE}`);
  mkdirSync(evilCwd);
  evilSeq = (await d.client.listProcesses()).lastEventSeq;
  await d.client.addProcess({
    name: "evil",
    // printf's own escapes: the argument holds no control character, the output does.
    args: ["sh", "-c", `printf '\\033[2J\\033]0;pwned\\007 ${RLO}gnp.exe\\n'; exec sleep 600`],
    env: { TITLE: HOSTILE },
    cwd: evilCwd,
  });
  // The line is retained once the daemon has published it.
  for await (const event of d.client.watch({ includeOutput: true, afterSeq: evilSeq })) {
    if (event.kind.case === "output") break;
  }
});

afterEach(() => {
  killAllCtl();
  killAllTerminals();
});

afterAll(async () => {
  await cleanupAll();
});

/** A procmonctl running under a pseudo-terminal. */
interface TerminalRun {
  /** Everything the terminal received so far (stdout and stderr together, newlines as CRLF). */
  text(): string;
  /** Resolves with the text once it contains `needle`; rejects after `timeoutMs` or if it exits first. */
  waitFor(needle: string, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit status once procmonctl has exited. */
  exited(timeoutMs?: number): Promise<number | null>;
  /** Interrupts procmonctl (as Ctrl-C would) and resolves with its exit status. */
  interrupt(timeoutMs?: number): Promise<number | null>;
}

const terminals = new Set<ChildProcess>();

const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** Runs `procmonctl --socket <d> ARGS` with a pseudo-terminal as its stdout and stderr. */
function inTerminal(args: readonly string[]): TerminalRun {
  // exec: procmonctl itself is the terminal's process, with no shell around it.
  const command = `exec ${[process.execPath, PROCMONCTL_BIN, "--socket", d.socket, ...args]
    .map(shellQuote)
    .join(" ")}`;
  // -q: no banner; -f: flush at once; -e: procmonctl's exit status; -c: run this.
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    cwd: ROOT,
    env: childEnv({ SHELL: "/bin/sh" }),
    // Its stdin is the terminal's keyboard: what is written there, procmonctl gets as typed.
    stdio: ["pipe", "pipe", "pipe"],
  });
  terminals.add(child);
  const changes = new Changes();
  let text = "";
  let status: { code: number | null } | undefined;
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    text += chunk;
    changes.notify();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    text += `[script stderr] ${chunk}`;
    changes.notify();
  });
  child.on("close", (code) => {
    terminals.delete(child);
    status = { code };
    changes.notify();
  });
  const exited = (timeoutMs = 15_000) =>
    changes.until(
      () => status?.code,
      timeoutMs,
      () => new Error(`procmonctl ${args.join(" ")} still ran after ${timeoutMs}ms:\n${text}`),
    );
  return {
    text: () => text,
    waitFor: (needle, timeoutMs = 10_000) =>
      changes.until(
        () => {
          if (text.includes(needle)) return text;
          if (status) throw new Error(`procmonctl exited (${status.code}) first:\n${text}`);
          return undefined;
        },
        timeoutMs,
        () => new Error(`${JSON.stringify(needle)} not seen within ${timeoutMs}ms:\n${text}`),
      ),
    exited,
    async interrupt(timeoutMs = 5_000) {
      // Ctrl-C: the terminal sends SIGINT to procmonctl, its foreground process.
      child.stdin?.write("\x03");
      return exited(timeoutMs);
    },
  };
}

/** `pid` and every process under it, children before their parent. */
function treeOf(pid: number): number[] {
  let children: number[] = [];
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
    children = text.split(" ").filter(Boolean).map(Number);
  } catch {
    // It has exited.
  }
  return [...children.flatMap(treeOf), pid];
}

/** Kills every `script` still running and what runs under it, by pid: for afterEach. */
function killAllTerminals(): void {
  for (const child of terminals) {
    if (child.pid === undefined) continue;
    for (const pid of treeOf(child.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  terminals.clear();
}

/** What must never reach a terminal raw. The pty itself adds the CR of each CRLF. */
function expectNoControls(text: string): void {
  const controls = [...text.replaceAll("\r\n", "\n")].filter((c) =>
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(c),
  );
  expect(controls.map((c) => `U+${c.codePointAt(0)?.toString(16).padStart(4, "0")}`)).toEqual([]);
}

describe("on a terminal, the daemon's strings are escaped", () => {
  it("logs NAME", async () => {
    const run = inTerminal(["logs", "evil"]);
    expect(await run.exited()).toBe(0);
    expect(run.text()).toBe(`${SHOWN} \\u202egnp.exe\r\n`);
  });

  it("watch --output", async () => {
    const run = inTerminal(["watch", "--output", "--since", String(evilSeq)]);
    const text = await run.waitFor("output stdout:");
    await run.waitFor("\r\n", 1_000);
    expect(await run.interrupt()).toBe(0);
    expect(text).toContain(`evil  output stdout: ${SHOWN} \\u202egnp.exe`);
    expect(run.text()).toContain(`evil  added: sh -c `);
    expectNoControls(run.text());
  });

  it("get NAME: args, env and cwd", async () => {
    const run = inTerminal(["get", "evil"]);
    expect(await run.exited()).toBe(0);
    const lines = run.text().split("\r\n");
    expect(lines.find((l) => l.startsWith("cwd:"))).toMatch(/\/dir\\x1b\[2J\\x1b\]0;pwned\\x07$/);
    expect(lines.find((l) => l.startsWith("env:"))).toMatch(
      / 'TITLE=\\x1b\[2J\\x1b\]0;pwned\\x07'$/,
    );
    expect(lines.find((l) => l.startsWith("command:"))).toContain(`\\u202egnp.exe`);
    expectNoControls(run.text());
  });

  it("an error message that quotes what was sent", async () => {
    // The daemon quotes it JSON-style already; the terminal gets no raw control either way.
    const run = inTerminal(["get", `x${HOSTILE}`]);
    expect(await run.exited()).toBe(1);
    expect(run.text()).toMatch(/^procmonctl: process "x\\u001b\[2J\\u001b\]0;pwned\\u0007"/);
    expectNoControls(run.text());
  });
});

describe("through a pipe, they are printed as they are", () => {
  it("logs NAME", async () => {
    const run = await runCtl(["logs", "evil"], { socket: d.socket });
    expect({ code: run.code, stdout: run.stdout }).toEqual({
      code: 0,
      stdout: `${HOSTILE} ${RLO}gnp.exe\n`,
    });
  });

  it("watch --output", async () => {
    const watch = spawnCtl(["watch", "--output", "--since", String(evilSeq)], { socket: d.socket });
    const line = await watch.waitForLine((l) => l.includes("output stdout:"));
    expect(line.endsWith(`evil  output stdout: ${HOSTILE} ${RLO}gnp.exe`)).toBe(true);
    expect((await watch.stop()).code).toBe(0);
  });

  it("get NAME", async () => {
    const run = await runCtl(["get", "evil"], { socket: d.socket });
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines.find((l) => l.startsWith("cwd:"))).toMatch(
      new RegExp(` ${escapeRegExp(evilCwd)}$`),
    );
    expect(lines.find((l) => l.startsWith("env:"))).toContain(`'TITLE=${HOSTILE}'`);
  });

  it("an error message, as the daemon worded it", async () => {
    const run = await runCtl(["get", `x${HOSTILE}`], { socket: d.socket });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `procmonctl: process ${JSON.stringify(`x${HOSTILE}`)} does not exist\n`,
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
