// @procmon/client as a user gets it: `npm pack`, installed from the tarball
// into an empty project, type-checked by a strict tsc (no `any` may leak from
// its types), compiled, and run against a real daemon; its procmonctl bin too.
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { cleanupAll, makeTempDir, ROOT, startProcmond } from "./helpers/daemon.js";

afterAll(cleanupAll);

const CLIENT = join(ROOT, "packages/client");
const API = join(ROOT, "packages/api");
const TSC = join(ROOT, "node_modules/.bin/tsc");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`); never rejects on a non-zero exit. */
function run(
  file: string,
  args: readonly string[],
  cwd: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { cwd, env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Expects `r` to have exited 0, showing its output otherwise. */
function expectOk(what: string, r: Run): void {
  expect({ what, code: r.code, output: r.code === 0 ? "" : `${r.stdout}\n${r.stderr}` }).toEqual({
    what,
    code: 0,
    output: "",
  });
}

/** What a user writes: typed throughout, with checks that fail to compile if `any` leaked in. */
const CONSUMER = `import { Code, createClient, isNotFound, type ProcmonClient, type ProcmonError } from "@procmon/client";
import { type Event, type Process, State } from "@procmon/client/api";
import { grpcClientConstructor } from "@procmon/api/grpc";

/** true only for \`any\`. */
type IsAny<T> = 0 extends 1 & T ? true : false;
/** Written out by hand: if the SDK's type were wider (or any), assigning to it would fail. */
type EventKind =
  | "added"
  | "removed"
  | "started"
  | "exited"
  | "restartScheduled"
  | "stopping"
  | "killed"
  | "spawnFailed"
  | "output"
  | "stopped"
  | "gaveUp"
  | "ready"
  | "unready"
  | "waiting"
  | undefined;

const socket = process.argv[2];
if (socket === undefined) throw new Error("usage: consumer SOCKET");

const client: ProcmonClient = createClient({ socket, timeoutMs: 10_000 });
const noAnyClient: IsAny<typeof client.watch> = false;
const before = await client.listProcesses();
const cursor: bigint = before.lastEventSeq;

const added: Process = await client.addProcess({
  name: "packed",
  args: ["sleep", "60"],
  env: { FROM: "tarball" },
  killTime: { seconds: 1n },
});
const noAnyProcess: IsAny<typeof added> = false;
const state: State = added.state;

const seen: Array<{ seq: string; kind: EventKind }> = [];
let startedPid = 0;
for await (const event of client.watch({ names: ["packed"], afterSeq: cursor })) {
  const noAnyEvent: IsAny<typeof event> = false;
  const typed: Event = event;
  const seq: bigint = typed.seq;
  const kind: EventKind = event.kind.case;
  // @ts-expect-error a bigint is no string: without this error (event.seq: any) the check fails
  const notAString: string = event.seq;
  seen.push({ seq: seq.toString(), kind });
  if (event.kind.case === "started") {
    const pid: number = event.kind.value.pid;
    startedPid = pid;
    break;
  }
}

let notFound = "";
try {
  await client.getProcess("not-there");
} catch (err: unknown) {
  if (!isNotFound(err)) throw err;
  const error: ProcmonError = err;
  const code: Code = error.code;
  notFound = \`\${code === Code.NOT_FOUND} \${error.message}\`;
}

const removed = await client.removeProcess("packed");
client.close();
console.log(
  JSON.stringify({
    running: state === State.RUNNING,
    addedPid: added.pid,
    startedPid,
    seen,
    notFound,
    removed: State[removed.state],
    grpc: typeof grpcClientConstructor,
  }),
);
`;

/** The control: the same IsAny check on an \`any\` must fail, or the checks above prove nothing. */
const LEAK = `type IsAny<T> = 0 extends 1 & T ? true : false;
const leaked: any = JSON.parse("1");
const noAny: IsAny<typeof leaked> = false;
export {};
`;

const tsconfig = (files: string[], extra: Record<string, unknown> = {}) =>
  `${JSON.stringify(
    {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noImplicitAny: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        types: ["node"],
        skipLibCheck: false,
        outDir: "out",
        noEmitOnError: true,
        ...extra,
      },
      files,
    },
    null,
    2,
  )}\n`;

it("npm pack, install the tarball in an empty project, type-check strictly, run it", async () => {
  const dir = makeTempDir("procmon-pack-");

  // The tarballs, as `npm publish` would make them: the SDK and the API contract it depends on.
  const packOf = async (what: string, cwd: string) => {
    const pack = await run("npm", ["pack", "--json", "--pack-destination", dir], cwd, 60_000);
    expectOk(`npm pack ${what}`, pack);
    const [packed] = JSON.parse(pack.stdout) as Array<{
      filename: string;
      files: { path: string }[];
    }>;
    return {
      filename: packed?.filename ?? "missing.tgz",
      files: (packed?.files ?? []).map((f) => f.path),
    };
  };
  const api = await packOf("@procmon/api", API);
  expect(api.files).toEqual(
    expect.arrayContaining([
      "package.json",
      "dist/index.js",
      "dist/grpc-service.js",
      "dist/duration.js",
      "dist/socket.js",
      "dist/gen/procmon/v1/procmon_pb.js",
      "dist/procmon.binpb",
    ]),
  );
  const packed = await packOf("@procmon/client", CLIENT);
  const files = packed.files;
  expect(files).toEqual(
    expect.arrayContaining([
      "package.json",
      "README.md",
      "bin/procmonctl.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/api.js",
      "dist/cli/main.js",
    ]),
  );
  // The generated code is the API package's, not shipped twice.
  expect(files.filter((f) => f.startsWith("dist/gen/"))).toEqual([]);
  for (const tarball of [api, packed]) {
    expect(
      tarball.files.filter((f) => f.startsWith("examples/") || f.endsWith(".tsbuildinfo")),
    ).toEqual([]);
  }

  // An empty project that installs it (and its dependencies, from the cache where it can).
  const project = join(dir, "consumer");
  const projectFiles = {
    "package.json": `${JSON.stringify({ name: "consumer", private: true, type: "module" })}\n`,
    "consumer.ts": CONSUMER,
    "leak.ts": LEAK,
    "tsconfig.json": tsconfig(["consumer.ts"]),
    "tsconfig.leak.json": tsconfig(["leak.ts"], { noEmit: true }),
  };
  mkdirSync(project);
  for (const [name, text] of Object.entries(projectFiles)) writeFileSync(join(project, name), text);
  const install = await run(
    "npm",
    [
      "install",
      join(dir, api.filename),
      join(dir, packed.filename),
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ],
    project,
    90_000,
  );
  expectOk("npm install", install);

  // The repo's tsc, strict, over the SDK's shipped .d.ts files too (skipLibCheck off).
  expectOk("tsc --noEmit", await run(TSC, ["--noEmit", "-p", "tsconfig.json"], project, 60_000));
  const control = await run(TSC, ["-p", "tsconfig.leak.json"], project, 60_000);
  expect(control.code).not.toBe(0);
  expect(control.stdout).toMatch(/leak\.ts\(3,7\): error TS2322/);
  expectOk("tsc", await run(TSC, ["-p", "tsconfig.json"], project, 60_000));

  // Compiled, against a real daemon.
  const d = await startProcmond(["--kill-time", "1s"]);
  const consumer = await run(process.execPath, ["out/consumer.js", d.socket], project, 20_000);
  expectOk("node out/consumer.js", consumer);
  const result = JSON.parse(consumer.stdout) as {
    running: boolean;
    addedPid: number;
    startedPid: number;
    seen: Array<{ seq: string; kind: string }>;
    notFound: string;
    removed: string;
    grpc: string;
  };
  expect(result).toEqual({
    running: true,
    addedPid: result.startedPid,
    startedPid: expect.any(Number),
    seen: [
      { seq: "1", kind: "added" },
      { seq: "2", kind: "started" },
    ],
    notFound: 'true process "not-there" does not exist',
    removed: "STOPPED",
    grpc: "function",
  });
  expect(result.startedPid).toBeGreaterThan(0);

  // The installed bin works against the same daemon.
  const ctl = await run(
    join(project, "node_modules/.bin/procmonctl"),
    ["--socket", d.socket, "ls", "--json"],
    project,
    15_000,
  );
  expectOk("procmonctl ls --json", ctl);
  // Five events: packed added, started, stopping, exited, removed.
  expect(JSON.parse(ctl.stdout)).toEqual({ processes: [], lastEventSeq: "5" });
  await d.cleanup();
}, 180_000);
