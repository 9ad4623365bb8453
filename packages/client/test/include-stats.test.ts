// include_stats from the SDK and from `procmonctl ls/get --stats`, against a
// stand-in ProcessMonitor on a real unix socket that records each request
// and answers with fixed processes (the daemon's stats are being written
// elsewhere; what is tested here is what the client sends and prints).
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  GetProcessResponseSchema,
  ListProcessesResponseSchema,
  type Process,
  ProcessSchema,
  State,
} from "@procmon/api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../src/cli/program.js";
import { createClient } from "../src/client.js";
import { type FakeDaemon, startFakeDaemon } from "./helpers/fake-daemon.js";

const web: Process = create(ProcessSchema, {
  spec: { name: "web", args: ["sleep", "60"] },
  state: State.RUNNING,
  pid: 4321,
  startedAt: timestampFromMs(Date.now()),
  ready: true,
  cpuSeconds: 3.5,
  rssBytes: 50n * 1024n * 1024n,
});

let socket = "";
let fake: FakeDaemon;
const requests: { method: string; includeStats: boolean }[] = [];

beforeAll(async () => {
  fake = await startFakeDaemon("procmon-stats-", {
    listProcesses: (
      call: { request: { includeStats: boolean } },
      done: (err: null, r: unknown) => void,
    ) => {
      requests.push({ method: "list", includeStats: call.request.includeStats });
      done(null, create(ListProcessesResponseSchema, { processes: [web], lastEventSeq: 9n }));
    },
    getProcess: (
      call: { request: { includeStats: boolean } },
      done: (err: null, r: unknown) => void,
    ) => {
      requests.push({ method: "get", includeStats: call.request.includeStats });
      done(null, create(GetProcessResponseSchema, { process: web }));
    },
  });
  socket = fake.socket;
});

afterAll(() => fake.close());

beforeEach(() => {
  requests.length = 0;
});

describe("the SDK", () => {
  it("sends include_stats only when asked, and stays callable as before", async () => {
    const client = createClient({ socket, timeoutMs: 5_000 });
    try {
      await client.listProcesses();
      await client.listProcesses({ includeStats: true });
      await client.getProcess("web");
      const got = await client.getProcess("web", { includeStats: true, timeoutMs: 5_000 });
      expect(got.cpuSeconds).toBe(3.5);
      expect(got.rssBytes).toBe(50n * 1024n * 1024n);
    } finally {
      client.close();
    }
    expect(requests).toEqual([
      { method: "list", includeStats: false },
      { method: "list", includeStats: true },
      { method: "get", includeStats: false },
      { method: "get", includeStats: true },
    ]);
  });
});

/** Runs procmonctl against the stand-in; resolves with its exit status and stdout. */
async function ctl(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const io = {
    out: (text: string) => {
      out += text;
    },
    err: () => {},
  };
  const code = await runCli(["--socket", socket, ...argv], io);
  return { code, out };
}

describe("procmonctl --stats", () => {
  it("ls --stats asks for stats and shows CPU and MEM; ls alone does neither", async () => {
    const plain = await ctl("ls");
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/^NAME {2}STATE {4}PID {3}UPTIME {2}RESTARTS {2}LAST EXIT\n/);
    const stats = await ctl("ls", "--stats");
    expect(stats.out).toMatch(/^NAME +STATE +PID +UPTIME +CPU +MEM +RESTARTS +LAST EXIT\n/);
    expect(stats.out).toMatch(/^web +running +4321 +\S+ +3\.5s +50\.0 MiB +0 +-$/m);
    expect(requests).toEqual([
      { method: "list", includeStats: false },
      { method: "list", includeStats: true },
    ]);
  });

  it("get --stats asks for stats and prints cpu and memory lines", async () => {
    const { code, out } = await ctl("get", "--stats", "web");
    expect(code).toBe(0);
    expect(out).toMatch(/^cpu: +3\.5s$/m);
    expect(out).toMatch(/^memory: +50\.0 MiB$/m);
    expect(out).toMatch(/^ready: +yes$/m);
    expect((await ctl("get", "web")).out).not.toMatch(/^cpu:/m);
    expect(requests.map((r) => r.includeStats)).toEqual([true, false]);
  });

  it("--json prints the new fields as protobuf JSON", async () => {
    const listed = JSON.parse((await ctl("--json", "ls", "--stats")).out);
    expect(listed.lastEventSeq).toBe("9");
    expect(listed.processes[0]).toMatchObject({
      ready: true,
      waitingFor: [],
      cpuSeconds: 3.5,
      rssBytes: "52428800",
      spec: { restart: "RESTART_POLICY_UNSPECIFIED", stopSignal: "", maxRssBytes: "0" },
    });
    const got = JSON.parse((await ctl("--json", "get", "--stats", "web")).out);
    expect(got).toMatchObject({ state: "STATE_RUNNING", cpuSeconds: 3.5, rssBytes: "52428800" });
  });
});
