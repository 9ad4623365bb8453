// Every grpcurl and buf curl recipe of the root README.md, read out of the
// README itself (so this breaks when the README changes them) and run through
// reflection against a real daemon with `buf curl` (grpcurl is not installed:
// each grpcurl line is mapped to its buf curl equivalent). Also: Health/Check
// answers NOT_SERVING while the daemon shuts down.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isNotFound, isUnavailable } from "@procmon/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll, makeTempDir, type Procmond, ROOT, startProcmond } from "./helpers/daemon.js";

const BUF = join(ROOT, "node_modules/.bin/buf");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const BASE_URL = "http://localhost";

// ---------------------------------------------------------------- reading the README

/**
 * Splits one shell command line into words as sh would: quotes, backslashes,
 * `$NAME` expansion (word-split when unquoted), `#` comments.
 */
function shellWords(line: string, vars: Readonly<Record<string, string>>): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  const expand = (at: number): [string, number] => {
    const name = /^[A-Za-z_]\w*/.exec(line.slice(at + 1))?.[0] ?? "";
    const value = vars[name];
    if (value === undefined) throw new Error(`$${name} is not set in: ${line}`);
    return [value, at + 1 + name.length];
  };
  for (let i = 0; i < line.length; ) {
    const ch = line.charAt(i);
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i += 1;
      while (line.charAt(i) !== '"') {
        if (i >= line.length) throw new Error(`unterminated quote in: ${line}`);
        if (line.charAt(i) === "\\" && '"\\$'.includes(line.charAt(i + 1))) {
          word += line.charAt(i + 1);
          i += 2;
        } else if (line.charAt(i) === "$") {
          const [value, next] = expand(i);
          word += value;
          i = next;
        } else {
          word += line.charAt(i);
          i += 1;
        }
      }
      inWord = true;
      i += 1;
    } else if (ch === "\\") {
      word += line.charAt(i + 1);
      inWord = true;
      i += 2;
    } else if (ch === "$") {
      const [value, next] = expand(i);
      const parts = value.split(/\s+/).filter(Boolean);
      parts.forEach((part, k) => {
        word += part;
        if (k < parts.length - 1) {
          words.push(word);
          word = "";
        }
      });
      inWord = inWord || parts.length > 0;
      i = next;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i += 1;
    } else if (ch === "#" && !inWord) {
      break;
    } else {
      word += ch;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The ```sh blocks of the README that contain `marker`, as logical lines (continuations joined). */
function shellLines(marker: string): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map(([, body = ""]) => body)
    .filter((body) => body.includes(marker));
  expect(blocks.length).toBeGreaterThan(0);
  return blocks
    .flatMap((body) => body.replace(/\\\n\s*/g, " ").split("\n"))
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** One README recipe, as buf curl runs it. */
interface Recipe {
  /** The README's line. */
  readonly source: string;
  readonly kind: "services" | "methods" | "call";
  /** For calls: `package.Service/Method`. */
  readonly method: string;
  /** For calls: the JSON request, if the recipe gives one. */
  readonly body: string | undefined;
  /** For "methods" (grpcurl describe): the service whose methods are listed. */
  readonly service: string | undefined;
  /** buf's arguments, after `buf`. */
  readonly args: string[];
}

/** Where buf curl's flags say the socket is: replaced by the test's socket when run. */
const SOCKET_PLACEHOLDER = "<SOCK>";

/** `grpcurl -plaintext -unix $SOCK [-d JSON] (list | describe X | METHOD)` as a buf curl recipe. */
function fromGrpcurl(source: string, words: readonly string[]): Recipe {
  expect(words.slice(0, 4)).toEqual(["grpcurl", "-plaintext", "-unix", SOCKET_PLACEHOLDER]);
  const rest = words.slice(4);
  let body: string | undefined;
  if (rest[0] === "-d") {
    body = rest[1];
    rest.splice(0, 2);
  }
  const curl = [
    "curl",
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    "--unix-socket",
    SOCKET_PLACEHOLDER,
  ];
  const [verb = "", target] = rest;
  if (verb === "list" && rest.length === 1) {
    return {
      source,
      kind: "services",
      method: "",
      body,
      service: undefined,
      args: [...curl, "--list-services", BASE_URL],
    };
  }
  if (verb === "describe" && target !== undefined && rest.length === 2) {
    // buf curl has no describe: listing the service's methods through reflection stands in.
    return {
      source,
      kind: "methods",
      method: "",
      body,
      service: target,
      args: [...curl, "--list-methods", BASE_URL],
    };
  }
  expect({ source, extra: rest.slice(1) }).toEqual({ source, extra: [] });
  return {
    source,
    kind: "call",
    method: verb,
    body,
    service: undefined,
    args: [...curl, `${BASE_URL}/${verb}`, ...(body === undefined ? [] : ["-d", body])],
  };
}

/** `$BUF [--list-services] URL [-d JSON]`, with BUF as the README defines it. */
function fromBufCurl(source: string, words: readonly string[]): Recipe {
  expect(words.slice(0, 3)).toEqual(["npx", "buf", "curl"]);
  const args = words.slice(2);
  const url = args.find((a) => a.startsWith(`${BASE_URL}`)) ?? "";
  const d = args.indexOf("-d");
  const body = d >= 0 ? args[d + 1] : undefined;
  const kind = args.includes("--list-services") ? "services" : "call";
  return {
    source,
    kind,
    method: kind === "call" ? url.slice(BASE_URL.length + 1) : "",
    body,
    service: undefined,
    args,
  };
}

/** The grpcurl block's recipes and the buf curl block's, in README order. */
function readRecipes(): { grpcurl: Recipe[]; buf: Recipe[] } {
  const vars: Record<string, string> = { SOCK: SOCKET_PLACEHOLDER };
  const grpcurl: Recipe[] = [];
  for (const line of shellLines("grpcurl -plaintext")) {
    if (/^SOCK=/.test(line)) continue; // the test's socket stands in for the README's
    grpcurl.push(fromGrpcurl(line, shellWords(line, vars)));
  }
  const buf: Recipe[] = [];
  for (const line of shellLines("buf curl")) {
    const assignment = /^([A-Za-z_]\w*)=(.*)$/.exec(line);
    if (assignment) {
      vars[assignment[1] ?? ""] = shellWords(assignment[2] ?? "", vars).join(" ");
      continue;
    }
    buf.push(fromBufCurl(line, shellWords(line, vars)));
  }
  return { grpcurl, buf };
}

// ---------------------------------------------------------------- running buf curl

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const argsFor = (recipe: Recipe, socket: string) =>
  recipe.args.map((a) => a.split(SOCKET_PLACEHOLDER).join(socket));

/**
 * Runs buf with a recipe's arguments. node_modules/.bin/buf is a Node shim
 * that runs the real binary with spawnSync, so a signal to the shim alone
 * would orphan the binary: each run gets a process group of its own, and
 * that group is what a timeout or the end of a stream kills.
 */
function startBuf(recipe: Recipe, socket: string): ChildProcess {
  return spawn(BUF, argsFor(recipe, socket), {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Runs a recipe to completion (its group killed after 15 s). */
function runRecipe(recipe: Recipe, socket: string): Promise<Run> {
  const child = startBuf(recipe, socket);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stderr += "\n(killed after 15 s)";
      killGroup(child, "SIGKILL");
    }, 15_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A streaming recipe's first `count` messages (buf prints each as indented JSON), then ends it. */
async function firstMessages(recipe: Recipe, socket: string, count: number): Promise<unknown[]> {
  const child = startBuf(recipe, socket);
  let stdout = "";
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  try {
    return await new Promise<unknown[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`fewer than ${count} messages within 10 s:\n${stdout}\n${stderr}`)),
        10_000,
      );
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
        const complete = stdout.split(/(?<=\n\}\n)/).filter((m) => m.endsWith("\n}\n"));
        if (complete.length < count) return;
        clearTimeout(timer);
        resolve(complete.slice(0, count).map((m) => JSON.parse(m) as unknown));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        reject(
          new Error(`buf curl exited (${code}) before ${count} messages:\n${stdout}\n${stderr}`),
        );
      });
    });
  } finally {
    killGroup(child, "SIGTERM");
    await closed;
  }
}

// ---------------------------------------------------------------- what each answer must be

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "procmon.v1.ProcessMonitor",
];
const RPCS = [
  "AddProcess",
  "GetDaemonInfo",
  "GetProcess",
  "ListProcesses",
  "ReloadConfig",
  "RemoveProcess",
  "RestartAll",
  "RestartProcess",
  "StartProcess",
  "StopProcess",
  "UpdateProcess",
  "WatchEvents",
];

interface JsonProcess {
  spec: { name: string; args: string[] };
  state: string;
  pid?: number;
}

/** The request's process name, as the recipe's JSON gives it. */
const nameIn = (recipe: Recipe): string => {
  const body = JSON.parse(recipe.body ?? "{}") as { name?: string; process?: { name?: string } };
  return body.name ?? body.process?.name ?? "";
};

/** Runs `recipe` against `d` and checks its answer against what the SDK sees. */
async function check(recipe: Recipe, d: Procmond, pids: Map<string, number>): Promise<void> {
  if (recipe.method.endsWith("/WatchEvents")) {
    const [message] = await firstMessages(recipe, d.socket, 1);
    const { event } = message as { event: { seq: string; process: string } & object };
    expect(event.seq).toMatch(/^[1-9]\d*$/);
    const { processes } = await d.client.listProcesses();
    expect(processes.map((p) => p.spec?.name)).toContain(event.process);
    const request = JSON.parse(recipe.body ?? "{}") as { includeOutput?: boolean };
    // What the request asks for arrives: with includeOutput, the ticker's dates.
    if (request.includeOutput) expect(Object.keys(event)).toContain("output");
    return;
  }
  const r = await runRecipe(recipe, d.socket);
  expect({ source: recipe.source, code: r.code, stderr: r.stderr }).toEqual({
    source: recipe.source,
    code: 0,
    stderr: "",
  });
  if (recipe.kind === "services") {
    expect(r.stdout.trim().split("\n").sort()).toEqual(SERVICES);
    return;
  }
  if (recipe.kind === "methods") {
    const methods = r.stdout
      .trim()
      .split("\n")
      .filter((m) => m.startsWith(`${recipe.service}/`));
    expect(methods.sort()).toEqual(RPCS.map((m) => `procmon.v1.ProcessMonitor/${m}`));
    return;
  }
  const out = JSON.parse(r.stdout) as {
    process?: JsonProcess;
    processes?: JsonProcess[];
    lastEventSeq?: string;
    status?: string;
  };
  const name = nameIn(recipe);
  const rpc = recipe.method.split("/")[1];
  switch (recipe.method) {
    case "grpc.health.v1.Health/Check":
      expect(out).toEqual({ status: "SERVING" });
      return;
    case "procmon.v1.ProcessMonitor/ListProcesses": {
      const seen = await d.client.listProcesses();
      expect(out.processes?.map((p) => p.spec.name) ?? []).toEqual(
        seen.processes.map((p) => p.spec?.name),
      );
      expect(BigInt(out.lastEventSeq ?? "0")).toBeLessThanOrEqual(seen.lastEventSeq);
      return;
    }
    case "procmon.v1.ProcessMonitor/GetDaemonInfo": {
      const info = out as unknown as { version?: string; pid?: number; spawner?: string };
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(info.pid).toBe(d.child.pid);
      expect(["SPAWNER_SHIM", "SPAWNER_NODE"]).toContain(info.spawner);
      return;
    }
    case "procmon.v1.ProcessMonitor/RestartAll": {
      const running = out.processes ?? [];
      expect(running.map((p) => p.state)).toEqual(running.map(() => "STATE_RUNNING"));
      for (const p of running) {
        expect(p.pid).not.toBe(pids.get(p.spec.name));
        pids.set(p.spec.name, p.pid ?? 0);
      }
      return;
    }
    case "procmon.v1.ProcessMonitor/ReloadConfig": {
      // The daemon's config file holds no process: nothing to add, remove or change.
      expect(out).toEqual({});
      return;
    }
    case "procmon.v1.ProcessMonitor/RemoveProcess": {
      expect(out.process?.spec.name).toBe(name);
      const gone = await d.client.getProcess(name).catch((err: unknown) => err);
      expect(isNotFound(gone)).toBe(true);
      pids.delete(name);
      return;
    }
  }
  const p = out.process;
  expect(p?.spec.name).toBe(name);
  const expected: Record<string, string> = {
    AddProcess: "STATE_RUNNING",
    GetProcess: "STATE_RUNNING",
    StopProcess: "STATE_STOPPED",
    StartProcess: "STATE_RUNNING",
    RestartProcess: "STATE_RUNNING",
    UpdateProcess: "STATE_RUNNING",
  };
  expect({ rpc, state: p?.state }).toEqual({ rpc, state: expected[rpc ?? ""] ?? "a known RPC" });
  // The same as the SDK sees it; a start or restart gives a new pid.
  const now = await d.client.getProcess(name);
  expect(p?.pid ?? 0).toBe(now.pid);
  if (rpc === "StartProcess" || rpc === "RestartProcess" || rpc === "UpdateProcess") {
    expect(now.pid).not.toBe(pids.get(name));
  }
  if (rpc === "AddProcess" || rpc === "UpdateProcess") {
    const body = JSON.parse(recipe.body ?? "{}") as { process: { args: string[] } };
    expect(p?.spec.args).toEqual(body.process.args);
  }
  pids.set(name, now.pid);
}

// ---------------------------------------------------------------- the tests

const recipes = readRecipes();

describe("the README's recipes, through reflection, with buf curl", () => {
  let d: Procmond;
  const pids = new Map<string, number>();

  beforeAll(async () => {
    // A config of no process, for ReloadConfig's recipe.
    const config = join(makeTempDir("procmon-recipes-"), "processes.yaml");
    writeFileSync(config, "processes: []\n");
    d = await startProcmond(["--kill-time", "1s", "--config", config]);
  });
  afterAll(cleanupAll);

  it("the README has a recipe for every RPC, listing, describing and health", () => {
    const covered = new Set(
      recipes.grpcurl.map((r) => (r.kind === "call" ? r.method.split("/")[1] : r.kind)),
    );
    expect([...covered].sort()).toEqual([...RPCS, "Check", "methods", "services"].sort());
    const viaBuf = recipes.buf.map((r) => (r.kind === "call" ? r.method : r.kind));
    expect(viaBuf).toEqual(
      expect.arrayContaining(["services", "procmon.v1.ProcessMonitor/ListProcesses"]),
    );
  });

  // In README order: the grpcurl block, then the buf curl block (the daemon's state carries over).
  for (const [block, list] of [
    ["grpcurl", recipes.grpcurl],
    ["buf curl", recipes.buf],
  ] as const) {
    describe(block, () => {
      for (const recipe of list) {
        it(recipe.source, async () => {
          await check(recipe, d, pids);
        });
      }
    });
  }
});

describe("health while shutting down", () => {
  afterAll(cleanupAll);

  it("Health/Check answers NOT_SERVING while procmond stops its processes", async () => {
    const health = recipes.grpcurl.find((r) => r.method === "grpc.health.v1.Health/Check");
    expect(health).toBeDefined();
    if (!health) return;
    const d = await startProcmond();
    // Ignores SIGTERM: the daemon's shutdown waits the 3 s kill_time before its SIGKILL.
    await d.client.addProcess({
      name: "stubborn",
      args: ["sh", "-c", "trap '' TERM; exec sleep 100"],
      killTime: { seconds: 3n },
    });
    expect((await runRecipe(health, d.socket)).stdout).toMatch(/"SERVING"/);
    d.child.kill("SIGTERM");
    await d.waitForLog((line) => line.msg === "procmond shutting down");
    const during = await runRecipe(health, d.socket);
    expect({ code: during.code, out: JSON.parse(during.stdout) as unknown }).toEqual({
      code: 0,
      out: { status: "NOT_SERVING" },
    });
    // Still stopping: the stubborn process was not killed yet, and then the daemon exits cleanly.
    expect(d.child.exitCode).toBeNull();
    expect(await d.exited(10_000)).toBe(0);
    expect(isUnavailable(await d.client.listProcesses().catch((err: unknown) => err))).toBe(true);
  }, 20_000);
});
