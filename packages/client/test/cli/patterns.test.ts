// procmonctl start/stop/restart/rm/get with `all` and globs, against a
// stand-in ProcessMonitor on a real unix socket (as include-stats.test.ts):
// which names the CLI calls, what it prints, and how it exits.
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import {
  GetProcessResponseSchema,
  ListProcessesResponseSchema,
  type Process,
  ProcessSchema,
  RemoveProcessResponseSchema,
  RestartProcessResponseSchema,
  StartProcessResponseSchema,
  State,
  StopProcessResponseSchema,
} from "@procmon/api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/program.js";
import { type FakeDaemon, startFakeDaemon } from "../helpers/fake-daemon.js";

const NAMES = ["web-10", "api", "web-2", "web-1", "db"];
/** Calls on this name fail, as a daemon refusing one of them would. */
const FAILING = "web-2";

const processOf = (name: string, state = State.RUNNING): Process =>
  create(ProcessSchema, { spec: { name, args: ["sleep", "60"] }, state, pid: 100 });

let socket = "";
let fake: FakeDaemon;
let failing: string | undefined;
const calls: string[] = [];

type Done = (err: { code: number; details: string } | null, r?: unknown) => void;

beforeAll(async () => {
  /** A unary method of one name that answers `schema` with the process, or fails for `failing`. */
  const byName =
    (method: string, schema: Parameters<typeof create>[0], state: State) =>
    (call: { request: { name: string } }, done: Done) => {
      const { name } = call.request;
      calls.push(`${method} ${name}`);
      if (!NAMES.includes(name)) {
        done({ code: status.NOT_FOUND, details: `no process named "${name}"` });
      } else if (name === failing && method !== "get") {
        done({ code: status.FAILED_PRECONDITION, details: `${name} is being removed` });
      } else done(null, create(schema, { process: processOf(name, state) }));
    };
  fake = await startFakeDaemon("procmon-patterns-", {
    listProcesses: (_call: unknown, done: Done) => {
      calls.push("list");
      const processes = [...NAMES].sort().map((n) => processOf(n));
      done(null, create(ListProcessesResponseSchema, { processes, lastEventSeq: 1n }));
    },
    getProcess: byName("get", GetProcessResponseSchema, State.RUNNING),
    startProcess: byName("start", StartProcessResponseSchema, State.RUNNING),
    stopProcess: byName("stop", StopProcessResponseSchema, State.STOPPED),
    restartProcess: byName("restart", RestartProcessResponseSchema, State.RUNNING),
    removeProcess: byName("rm", RemoveProcessResponseSchema, State.STOPPED),
  });
  socket = fake.socket;
});

afterAll(() => fake.close());

beforeEach(() => {
  calls.length = 0;
  failing = undefined;
});

/** Runs procmonctl against the stand-in (with --timeout, so a plain name makes one call). */
function ctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return ctlWith({}, ...argv);
}

/** {@link ctl} with a terminal or an environment. */
async function ctlWith(
  options: { outIsTerminal?: boolean; env?: Record<string, string> },
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io = {
    ...options,
    out: (text: string) => {
      out += text;
    },
    err: (text: string) => {
      err += text;
    },
  };
  const code = await runCli(["--socket", socket, "--timeout", "5s", ...argv], io);
  return { code, out, err };
}

describe("procmonctl with all and globs", () => {
  it("stop 'web-*' stops each match, printing one line each in natural order", async () => {
    const { code, out, err } = await ctl("stop", "web-*");
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(out).toBe("web-1 stopped pid 100\nweb-2 stopped pid 100\nweb-10 stopped pid 100\n");
    expect(calls[0]).toBe("list");
    expect(calls.slice(1).sort()).toEqual(["stop web-1", "stop web-10", "stop web-2"]);
  });

  it("start all, restart web-?, rm [ad]* act on their matches", async () => {
    const all = await ctl("start", "all");
    expect(all.code).toBe(0);
    expect(
      all.out
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")[0]),
    ).toEqual(["api", "db", "web-1", "web-2", "web-10"]);
    calls.length = 0;
    expect((await ctl("restart", "web-?")).out).toBe(
      "web-1 running pid 100\nweb-2 running pid 100\n",
    );
    expect(calls.slice(1).sort()).toEqual(["restart web-1", "restart web-2"]);
    expect((await ctl("rm", "[ad]*")).out).toBe("api removed\ndb removed\n");
  });

  it("get with a glob prints each match's details; --json one object per line", async () => {
    const text = await ctl("get", "web-1*");
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^name: +web-1\n[\s\S]*\n\nname: +web-10\n/);
    const json = await ctl("--json", "get", "web-1*");
    const lines = json.out.trimEnd().split("\n");
    expect(lines.map((l) => JSON.parse(l).spec.name)).toEqual(["web-1", "web-10"]);
  });

  it("exits 1 naming each failed process on stderr, still printing the others", async () => {
    failing = FAILING;
    const { code, out, err } = await ctl("stop", "web-*");
    expect(code).toBe(1);
    expect(out).toBe("web-1 stopped pid 100\nweb-10 stopped pid 100\n");
    expect(err).toBe(
      "procmonctl: web-2: web-2 is being removed\n" +
        "procmonctl: 1 of 3 processes matching 'web-*' failed\n",
    );
  });

  it("exits 1 with a clear message when the pattern matches nothing", async () => {
    const { code, out, err } = await ctl("restart", "nope-*");
    expect({ code, out }).toEqual({ code: 1, out: "" });
    expect(err).toBe("procmonctl: no process matches 'nope-*'\n");
    expect(calls).toEqual(["list"]);
  });

  it("keeps a plain name as it was: one call, the daemon's NOT_FOUND", async () => {
    const missing = await ctl("stop", "nope");
    expect(missing.code).toBe(1);
    expect(missing.err).toBe('procmonctl: no process named "nope"\n');
    expect(calls).toEqual(["stop nope"]);
    calls.length = 0;
    expect((await ctl("stop", "web-1")).out).toBe("web-1 stopped pid 100\n");
    expect(calls).toEqual(["stop web-1"]);
  });

  it("documents the patterns in each command's help", async () => {
    for (const verb of ["start", "stop", "restart", "rm", "get"]) {
      const { out } = await ctl(verb, "--help");
      expect(out).toContain("glob such as 'web-*'");
      expect(out).toContain("NAME may be all (every process)");
    }
  });
});

describe("procmonctl colour", () => {
  const GREEN_RUNNING = "\x1b[32mrunning\x1b[39m";

  it("colours state words on a terminal: ls and the lines of stop/start", async () => {
    const ls = await ctlWith({ outIsTerminal: true, env: {} }, "ls");
    expect(ls.out).toContain(`web-1   ${GREEN_RUNNING}  100`);
    const stop = await ctlWith({ outIsTerminal: true }, "stop", "web-1");
    expect(stop.out).toBe("web-1 \x1b[2mstopped\x1b[22m pid 100\n");
  });

  it("does not colour with NO_COLOR, --no-color, --json, or off a terminal", async () => {
    const runs = [
      await ctlWith({ outIsTerminal: true, env: { NO_COLOR: "1" } }, "ls"),
      await ctlWith({ outIsTerminal: true }, "--no-color", "ls"),
      await ctlWith({ outIsTerminal: true }, "--json", "ls"),
      await ctlWith({ outIsTerminal: false }, "ls"),
      await ctlWith({ outIsTerminal: true }, "--no-color", "start", "all"),
    ];
    for (const run of runs) {
      expect(run.code).toBe(0);
      expect(run.out).not.toContain("\x1b");
    }
    // An empty NO_COLOR is as if unset.
    expect((await ctlWith({ outIsTerminal: true, env: { NO_COLOR: "" } }, "ls")).out).toContain(
      GREEN_RUNNING,
    );
  });
});

describe("ls -s", () => {
  it("is ls --stats", async () => {
    const short = await ctl("ls", "-s");
    expect(short.code).toBe(0);
    expect(short.out).toMatch(/^NAME +STATE +PID +UPTIME +CPU +MEM +RESTARTS +LAST EXIT\n/);
    expect(short.out).toBe((await ctl("ls", "--stats")).out);
    expect((await ctl("ls", "--help")).out).toContain("-s, --stats");
  });
});
