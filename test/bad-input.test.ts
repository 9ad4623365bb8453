// Bad input, end to end: every case is refused with the right code and a
// sentence naming the field (or the call) at fault, and nothing that was
// registered or running changes. The real procmond on a unix socket, the real
// client, and raw bytes where a client library would refuse to send them.
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client, type ClientReadableStream, credentials, Metadata } from "@grpc/grpc-js";
import { Code, type ProcessSpecInit, ProcmonError, ProcmonError as Refusal } from "@procmon/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll, isAlive, type Procmond, startProcmond } from "./helpers/daemon.js";

let d: Procmond;
let keeper: { name: string; pid: number };
let raw: Client;

beforeAll(async () => {
  d = await startProcmond(["--kill-time", "500ms"]);
  const p = await d.client.addProcess({ name: "keeper", args: ["sleep", "1000"] });
  keeper = { name: "keeper", pid: p.pid };
  raw = new Client(`unix:${d.socket}`, credentials.createInsecure());
});

afterAll(async () => {
  raw.close();
  await cleanupAll();
});

/** What must not change: the registry, each process's pid and state, and the event seq. */
async function snapshot() {
  const { processes, lastEventSeq } = await d.client.listProcesses();
  return {
    lastEventSeq,
    processes: processes.map((p) => [p.spec?.name, p.state, p.pid, p.restartCount]),
  };
}

const identity = (bytes: Buffer) => bytes;

/** A unary call of `path` with `bytes` as its request, as no client library would send it. */
function rawUnary(path: string, bytes: Buffer): Promise<unknown> {
  return new Promise((resolve, reject) => {
    raw.makeUnaryRequest(path, identity, identity, bytes, new Metadata(), {}, (err, value) =>
      err ? reject(ProcmonError.from(err)) : resolve(value),
    );
  });
}

/** The first message of a server stream of `path` sent `bytes`. */
function rawStream(path: string, bytes: Buffer): Promise<unknown> {
  return firstMessage(
    raw.makeServerStreamRequest(path, identity, identity, bytes, new Metadata(), {}),
  );
}

/** The first message of a bidi stream of `path` whose first message is `bytes`. */
function rawBidi(path: string, bytes: Buffer): Promise<unknown> {
  const call = raw.makeBidiStreamRequest(path, identity, identity, new Metadata(), {});
  call.write(bytes);
  return firstMessage(call);
}

function firstMessage(call: ClientReadableStream<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    call.on("data", (message: unknown) => {
      call.cancel();
      resolve(message);
    });
    call.on("error", (err: Error) => reject(ProcmonError.from(err)));
  });
}

/** The error the first step of a WatchEvents stream fails with. */
async function watchError(request: Parameters<Procmond["client"]["watchEvents"]>[0]) {
  const controller = new AbortController();
  try {
    for await (const _ of d.client.watchEvents(request, { signal: controller.signal })) {
      throw new Error("the watch delivered an event");
    }
    throw new Error("the watch ended cleanly");
  } finally {
    controller.abort();
  }
}

// Field 1 with wire type 7, which does not exist: no protobuf library decodes it.
const NOT_A_MESSAGE = Buffer.from([0x0f]);
const BIG_NAME = "n".repeat(100_000);
const base = { name: "bad-1", args: ["sleep", "100"] };
const add = (spec: ProcessSpecInit | undefined) => () =>
  d.client.addProcess(spec as ProcessSpecInit);

type Case = readonly [label: string, call: () => Promise<unknown>, code: Code, messages: RegExp[]];

const SPEC_CASES: Case[] = [
  [
    "a name with a space",
    add({ ...base, name: "bad name" }),
    Code.INVALID_ARGUMENT,
    [/name "bad name" is invalid/],
  ],
  [
    "a name starting with -",
    add({ ...base, name: "-x" }),
    Code.INVALID_ARGUMENT,
    [/name "-x" is invalid/],
  ],
  [
    "a name of 129 characters",
    add({ ...base, name: "a".repeat(129) }),
    Code.INVALID_ARGUMENT,
    [/^name "a{128}"\.\.\. is invalid/],
  ],
  [
    "a name of a megabyte, quoted to 128 characters",
    add({ ...base, name: "m".repeat(1 << 20) }),
    Code.INVALID_ARGUMENT,
    [/^name "m{128}"\.\.\. is invalid: use 1-128/],
  ],
  ["an empty name", add({ ...base, name: "" }), Code.INVALID_ARGUMENT, [/name "" is invalid/]],
  ["no process at all", add(undefined), Code.INVALID_ARGUMENT, [/process is required/]],
  ["no args", add({ ...base, args: [] }), Code.INVALID_ARGUMENT, [/args must not be empty/]],
  [
    "an empty args[0]",
    add({ ...base, args: [""] }),
    Code.INVALID_ARGUMENT,
    [/args\[0\] must not be empty/],
  ],
  [
    "a NUL in args[1]",
    add({ ...base, args: ["sleep", "1\0"] }),
    Code.INVALID_ARGUMENT,
    [/args\[1\] "1\\u0000" contains a NUL/],
  ],
  [
    "an executable path that does not exist",
    add({ ...base, args: ["/nonexistent/procmon-nope"] }),
    Code.INVALID_ARGUMENT,
    [/executable "\/nonexistent\/procmon-nope" does not exist/],
  ],
  [
    "an executable not found on PATH",
    add({ ...base, args: ["procmon-no-such-command"] }),
    Code.INVALID_ARGUMENT,
    [/executable "procmon-no-such-command" not found on PATH/],
  ],
  [
    "an executable that is not executable",
    () => {
      const file = join(d.dir, "not-executable.sh");
      writeFileSync(file, "#!/bin/sh\nexit 0\n");
      chmodSync(file, 0o644);
      return d.client.addProcess({ ...base, args: [file] });
    },
    Code.INVALID_ARGUMENT,
    [/executable ".*not-executable\.sh" is not executable/],
  ],
  [
    "an executable that is a directory",
    add({ ...base, args: ["/tmp"] }),
    Code.INVALID_ARGUMENT,
    [/executable "\/tmp" is a directory/],
  ],
  [
    "a missing cwd",
    add({ ...base, cwd: "/nonexistent/procmon-dir" }),
    Code.INVALID_ARGUMENT,
    [/cwd "\/nonexistent\/procmon-dir" does not exist/],
  ],
  [
    "a cwd that is a file",
    add({ ...base, cwd: "/etc/hostname" }),
    Code.INVALID_ARGUMENT,
    [/cwd "\/etc\/hostname" is not a directory/],
  ],
  [
    "a NUL in cwd",
    add({ ...base, cwd: "/tmp\0x" }),
    Code.INVALID_ARGUMENT,
    [/cwd "\/tmp\\u0000x" contains a NUL/],
  ],
  [
    "an empty env key",
    add({ ...base, env: { "": "x" } }),
    Code.INVALID_ARGUMENT,
    [/env key "" is invalid/],
  ],
  [
    "an env key with =",
    add({ ...base, env: { "A=B": "x" } }),
    Code.INVALID_ARGUMENT,
    [/env key "A=B" is invalid/],
  ],
  [
    "an env key with NUL",
    add({ ...base, env: { "A\0": "x" } }),
    Code.INVALID_ARGUMENT,
    [/env key "A\\u0000" is invalid/],
  ],
  [
    "a NUL in an env value",
    add({ ...base, env: { K: "v\0" } }),
    Code.INVALID_ARGUMENT,
    [/env "K" has a NUL/],
  ],
  [
    "args and env over --max-spec-bytes",
    add({ ...base, env: { BIG: "x".repeat(300_000) } }),
    Code.INVALID_ARGUMENT,
    [/args and env take \d+ bytes, over the limit of 262144 \(--max-spec-bytes\)/],
  ],
  [
    "a zero kill_time",
    add({ ...base, killTime: {} }),
    Code.INVALID_ARGUMENT,
    [/^kill_time must be positive, got 0s$/],
  ],
  [
    "a negative threshold",
    add({ ...base, threshold: { seconds: -1n } }),
    Code.INVALID_ARGUMENT,
    [/^threshold must be positive, got -1s$/],
  ],
  [
    "a threshold under a millisecond",
    add({ ...base, threshold: { nanos: 400_000 } }),
    Code.INVALID_ARGUMENT,
    [/^threshold must be at least 1ms, got 400us$/],
  ],
  [
    "a zero min_restart_delay",
    add({ ...base, minRestartDelay: { seconds: 0n } }),
    Code.INVALID_ARGUMENT,
    [/^min_restart_delay must be positive/],
  ],
  [
    "a negative max_restart_delay",
    add({ ...base, maxRestartDelay: { nanos: -1_000_000 } }),
    Code.INVALID_ARGUMENT,
    [/^max_restart_delay must be positive/],
  ],
  [
    "a max_restart_delay of 1000h",
    add({ ...base, maxRestartDelay: { seconds: 3_600_000n } }),
    Code.INVALID_ARGUMENT,
    [/^max_restart_delay must be at most 596h31m23\.647s, got 1000h$/],
  ],
  [
    "a kill_time past the timer limit",
    add({ ...base, killTime: { seconds: 2_147_484n } }),
    Code.INVALID_ARGUMENT,
    [/^kill_time must be at most 596h31m23\.647s/],
  ],
  [
    "min_restart_delay above max_restart_delay",
    add({ ...base, minRestartDelay: { seconds: 2n }, maxRestartDelay: { seconds: 1n } }),
    Code.INVALID_ARGUMENT,
    [/min_restart_delay \(2s\) must not exceed max_restart_delay \(1s\)/],
  ],
  [
    "a uid past int32",
    add({ ...base, uid: 3_000_000_000 }),
    Code.INVALID_ARGUMENT,
    [/uid 3000000000 is out of range/],
  ],
  [
    "a gid past int32",
    add({ ...base, gid: 3_000_000_000 }),
    Code.INVALID_ARGUMENT,
    [/gid 3000000000 is out of range/],
  ],
  [
    "a name in use",
    add({ name: "keeper", args: ["sleep", "5"] }),
    Code.ALREADY_EXISTS,
    [/^process "keeper" already exists$/],
  ],
];

const NAMED_CALLS = [
  ["RemoveProcess", (name: string) => d.client.removeProcess(name)],
  ["StartProcess", (name: string) => d.client.startProcess(name)],
  ["StopProcess", (name: string) => d.client.stopProcess(name)],
  ["RestartProcess", (name: string) => d.client.restartProcess(name)],
  ["GetProcess", (name: string) => d.client.getProcess(name)],
] as const;

const NAME_CASES: Case[] = NAMED_CALLS.flatMap(([rpc, call]): Case[] => [
  [`${rpc} without a name`, () => call(""), Code.INVALID_ARGUMENT, [/^name is required$/]],
  [
    `${rpc} of an unknown name`,
    () => call("ghost"),
    Code.NOT_FOUND,
    [/^process "ghost" does not exist$/],
  ],
  [
    `${rpc} of a 100 KB name, quoted to 128 characters`,
    () => call(BIG_NAME),
    Code.NOT_FOUND,
    [/^process "n{128}"\.\.\. does not exist$/],
  ],
]);

const WATCH_CASES: Case[] = [
  [
    "WatchEvents of more names than may be registered",
    () => watchError({ names: Array.from({ length: 10_001 }, (_, i) => `p${i}`) }),
    Code.INVALID_ARGUMENT,
    [/^names lists 10001 processes, over the 10000 that may be registered \(--max-processes\)/],
  ],
  [
    "WatchEvents of a name no process can have",
    () => watchError({ names: ["keeper", "bad name"] }),
    Code.INVALID_ARGUMENT,
    [/^names\[1\] "bad name" is not a process name/],
  ],
  [
    "WatchEvents after a seq that has not happened",
    () => watchError({ afterSeq: 1_000_000n }),
    Code.OUT_OF_RANGE,
    [/^after_seq 1000000 is newer than the last event/],
  ],
];

const service = "/procmon.v1.ProcessMonitor";
const BYTES_CASES: Case[] = [
  ...[
    "AddProcess",
    "RemoveProcess",
    "StartProcess",
    "StopProcess",
    "RestartProcess",
    "GetProcess",
  ].map(
    (rpc): Case => [
      `${rpc} of bytes that are no message`,
      () => rawUnary(`${service}/${rpc}`, NOT_A_MESSAGE),
      Code.INVALID_ARGUMENT,
      [
        new RegExp(
          `^the request to ${service}/${rpc} is not a valid protobuf message of its type \\(.+\\): nothing was done$`,
        ),
      ],
    ],
  ),
  [
    "WatchEvents of bytes that are no message",
    () => rawStream(`${service}/WatchEvents`, NOT_A_MESSAGE),
    Code.INVALID_ARGUMENT,
    [/^the request to \/procmon\.v1\.ProcessMonitor\/WatchEvents is not a valid protobuf message/],
  ],
  [
    "Health/Check of bytes that are no message",
    () => rawUnary("/grpc.health.v1.Health/Check", NOT_A_MESSAGE),
    Code.INVALID_ARGUMENT,
    [/^the request to \/grpc\.health\.v1\.Health\/Check is not a valid protobuf message/],
  ],
  [
    "ServerReflectionInfo of bytes that are no message",
    () => rawBidi("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", NOT_A_MESSAGE),
    Code.INVALID_ARGUMENT,
    [
      /^the request to \/grpc\.reflection\.v1\.ServerReflection\/ServerReflectionInfo is not a valid protobuf message/,
    ],
  ],
];

const CASES = [...SPEC_CASES, ...NAME_CASES, ...WATCH_CASES, ...BYTES_CASES];

describe("bad input", () => {
  it("has at least 40 cases", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES)("%s", async (_label, call, code, messages) => {
    const before = await snapshot();
    let err: unknown;
    try {
      await call();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Refusal);
    const refusal = err as ProcmonError;
    expect({ code: Code[refusal.code], message: refusal.message }).toMatchObject({
      code: Code[code],
    });
    for (const message of messages) expect(refusal.message).toMatch(message);
    // Quoted, never echoed whole: a sentence stays a sentence.
    expect(refusal.message.length).toBeLessThan(600);
    expect(await snapshot()).toEqual(before);
    expect(isAlive(keeper.pid)).toBe(true);
  });
});
