// Issue 14, point 5: durations as "5s" or ms, name and args required at the
// type level, responses as plain JSON, and the ESM package from CommonJS.
// Against a stand-in ProcessMonitor on a real unix socket that records the
// spec it is sent and answers with it.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AddProcessResponseSchema,
  EventSchema,
  ListProcessesResponseSchema,
  ProcessSchema,
  type ProcessSpec,
  State,
} from "@procmon/api";
import {
  Code,
  createClient,
  eventToJson,
  type ProcessSpecInit,
  ProcmonError,
  processListToJson,
  processToJson,
  toPlainJson,
} from "@procmon/client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeDaemon, startFakeDaemon } from "./helpers/fake-daemon.js";

let socket = "";
let fake: FakeDaemon;
const sent: ProcessSpec[] = [];

beforeAll(async () => {
  fake = await startFakeDaemon("procmon-sdk-", {
    addProcess: (
      call: { request: { process: ProcessSpec } },
      done: (err: null, r: unknown) => void,
    ) => {
      sent.push(call.request.process);
      const process = create(ProcessSchema, { spec: call.request.process, state: State.RUNNING });
      done(null, create(AddProcessResponseSchema, { process }));
    },
    listProcesses: (_call: unknown, done: (err: null, r: unknown) => void) => {
      done(null, create(ListProcessesResponseSchema, { lastEventSeq: 7n }));
    },
  });
  socket = fake.socket;
});

afterAll(() => fake.close());

beforeEach(() => {
  sent.length = 0;
});

const base = { name: "web", args: ["sleep", "60"] };

async function rejection(p: Promise<unknown>): Promise<ProcmonError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ProcmonError)) throw new Error(`expected a ProcmonError, got ${err}`);
  return err;
}

describe("durations in a spec", () => {
  it('takes "5s", milliseconds and Duration alike, the readiness probe\'s too', async () => {
    const client = createClient({ socket, timeoutMs: 5_000 });
    try {
      await client.addProcess({
        ...base,
        threshold: "1m30s",
        killTime: 2_500,
        minRestartDelay: { seconds: 3n },
        maxRestartDelay: create(DurationSchema, { seconds: 4n, nanos: 500_000_000 }),
        ready: {
          check: { case: "tcp", value: { port: 8080 } },
          period: "500ms",
          timeout: 1_500.5,
          initialDelay: { seconds: 1n },
        },
        maxRssBytes: 200 * 1024 * 1024,
      });
      const [spec] = sent;
      const d = (x: { seconds: bigint; nanos: number } | undefined) => [x?.seconds, x?.nanos];
      expect(d(spec?.threshold)).toEqual([90n, 0]);
      expect(d(spec?.killTime)).toEqual([2n, 500_000_000]);
      expect(d(spec?.minRestartDelay)).toEqual([3n, 0]);
      expect(d(spec?.maxRestartDelay)).toEqual([4n, 500_000_000]);
      expect(d(spec?.ready?.period)).toEqual([0n, 500_000_000]);
      expect(d(spec?.ready?.timeout)).toEqual([1n, 500_500_000]);
      expect(d(spec?.ready?.initialDelay)).toEqual([1n, 0]);
      expect(spec?.maxRssBytes).toBe(200n * 1024n * 1024n);
      expect(spec?.ready?.check).toEqual({
        case: "tcp",
        value: expect.objectContaining({ port: 8080 }),
      });
    } finally {
      client.close();
    }
  });

  it("rejects a bad string or number with INVALID_ARGUMENT naming the field, before any call", async () => {
    const client = createClient({ socket, timeoutMs: 5_000 });
    try {
      const cases: [ProcessSpecInit, RegExp][] = [
        [{ ...base, killTime: "5x" }, /^killTime: "5x" is not a duration/],
        [{ ...base, threshold: "5" }, /^threshold: "5" is not a duration: a number needs a unit/],
        [{ ...base, minRestartDelay: "-1s" }, /^minRestartDelay: "-1s" must be positive/],
        [{ ...base, maxRestartDelay: -5 }, /^maxRestartDelay: -5 ms must be positive/],
        [{ ...base, killTime: 0 }, /^killTime: 0 ms must be positive/],
        [{ ...base, killTime: Number.NaN }, /^killTime: NaN is not a number of milliseconds/],
        [{ ...base, killTime: 3e9 }, /^killTime: 3000000000 ms must be at most 596h31m23.647s/],
        [{ ...base, ready: { period: "soon" } }, /^ready.period: "soon" is not a duration/],
        [{ ...base, maxRssBytes: 1.5 }, /^maxRssBytes: 1.5 is not a whole number of bytes/],
        [{ ...base, maxRssBytes: -1 }, /^maxRssBytes: -1 is not a uint64/],
      ];
      for (const [spec, message] of cases) {
        const err = await rejection(client.addProcess(spec));
        expect({ code: err.code, message: err.message }).toEqual({
          code: Code.INVALID_ARGUMENT,
          message: expect.stringMatching(message),
        });
      }
      expect(sent).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("requires name and args at the type level", () => {
    const typed: ProcessSpecInit[] = [
      base,
      // @ts-expect-error a spec without a name does not type-check
      { args: ["sleep", "60"] },
      // @ts-expect-error a spec without args does not type-check
      { name: "web" },
      // @ts-expect-error a duration is a string, a number or a Duration
      { ...base, killTime: true },
    ];
    expect(typed).toHaveLength(4);
  });
});

describe("plain JSON", () => {
  const process = create(ProcessSchema, {
    spec: { name: "web", args: ["sleep", "60"], killTime: { seconds: 5n }, maxRssBytes: 1n << 60n },
    state: State.RUNNING,
    pid: 42,
    startedAt: timestampFromMs(Date.UTC(2026, 0, 2, 3, 4, 5, 678)),
    rssBytes: 50n * 1024n * 1024n,
  });

  it('writes durations as "5s", timestamps in RFC 3339, uint64 as strings, enums by name', () => {
    const json = processToJson(process);
    expect(json).toMatchObject({
      spec: {
        name: "web",
        args: ["sleep", "60"],
        killTime: "5s",
        maxRssBytes: "1152921504606846976",
      },
      state: "STATE_RUNNING",
      pid: 42,
      startedAt: "2026-01-02T03:04:05.678Z",
      rssBytes: "52428800",
      restartCount: 0, // implicit fields are written, for a stable shape
    });
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
    expect(processToJson(create(ProcessSchema), { alwaysEmitImplicit: false })).toEqual({});
  });

  it("converts events, lists and any procmon message, with no BigInt left", async () => {
    const event = create(EventSchema, {
      seq: 9n,
      process: "web",
      kind: { case: "started", value: { pid: 42 } },
    });
    expect(eventToJson(event)).toMatchObject({ seq: "9", process: "web", started: { pid: 42 } });
    expect(toPlainJson(event)).toEqual(eventToJson(event));
    expect(toPlainJson(create(DurationSchema, { seconds: 90n }))).toBe("90s");
    const client = createClient({ socket, timeoutMs: 5_000 });
    try {
      const list = processListToJson(await client.listProcesses());
      expect(JSON.stringify(list)).toBe('{"processes":[],"lastEventSeq":"7"}');
    } finally {
      client.close();
    }
  });
});

describe("from CommonJS", () => {
  it("the README's snippet loads the ESM package with import() and calls the daemon", async () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "README.md"), "utf8");
    const snippet = /```js\n(\/\/ \S+\.cjs[^\n]*\n[\s\S]*?)\n```/.exec(readme)?.[1];
    expect(snippet).toBeDefined();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--input-type=commonjs", "-e", snippet ?? ""],
      {
        cwd: join(import.meta.dirname, ".."),
        env: { ...process.env, PROCMON_SOCKET: socket, NODE_PATH: "" },
        timeout: 10_000,
      },
    );
    expect(stdout).toBe('{"processes":[],"lastEventSeq":"7"}\n');
  });
});
