// `procmonctl add`'s v1.1 options: the spec they send (specOf), the
// combinations refused (addFlagsProblem), and how a bad value ends the run:
// exit 2, before any daemon is dialled, with a message naming the option.

import { create, toJson } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import { DependencyCondition, ProcessSpecSchema, RestartPolicy } from "@procmon/api";
import { describe, expect, it } from "vitest";
import { addFlagsProblem, specOf } from "../../src/cli/commands.js";
import { EXIT_USAGE, runCli } from "../../src/cli/program.js";
import { createProcessSpec } from "../../src/spec-input.js";

/** The JSON of the spec `add` sends for these flags, as the daemon receives it. */
const sent = (flags: Parameters<typeof specOf>[2]) =>
  toJson(ProcessSpecSchema, createProcessSpec(specOf("web", ["sleep", "60"], flags))) as Record<
    string,
    unknown
  >;

/** A Duration, as durationArg makes them. */
const seconds = (s: bigint, nanos = 0): Duration => create(DurationSchema, { seconds: s, nanos });

describe("specOf", () => {
  it("sends none of the new fields when no flag asks for them", () => {
    expect(sent({})).toEqual({ name: "web", args: ["sleep", "60"] });
  });

  it("sends the end policy: restart, success codes, instant deaths, stop signal", () => {
    expect(
      sent({
        restart: RestartPolicy.ON_FAILURE,
        successExitCodes: [0, 2],
        maxInstantDeaths: 3,
        stopSignal: "SIGQUIT",
      }),
    ).toEqual({
      name: "web",
      args: ["sleep", "60"],
      restart: "RESTART_POLICY_ON_FAILURE",
      successExitCodes: [0, 2],
      maxInstantDeaths: 3,
      stopSignal: "SIGQUIT",
    });
  });

  it("sends the dependencies in order, each with its condition", () => {
    const spec = specOf("api", ["./api"], {
      dependsOn: [
        { name: "db", condition: DependencyCondition.READY },
        { name: "migrate", condition: DependencyCondition.EXITED_OK },
        { name: "cache", condition: DependencyCondition.STARTED },
      ],
    });
    const json = toJson(ProcessSpecSchema, createProcessSpec(spec)) as {
      dependsOn: unknown;
    };
    expect(json.dependsOn).toEqual([
      { name: "db", condition: "DEPENDENCY_CONDITION_READY" },
      { name: "migrate", condition: "DEPENDENCY_CONDITION_EXITED_OK" },
      { name: "cache", condition: "DEPENDENCY_CONDITION_STARTED" },
    ]);
  });

  it("sends one readiness probe with the timings given, the others left to the daemon", () => {
    const exec = sent({ readyExec: ["pg_isready", "-q"], readyPeriod: seconds(2n) });
    expect(exec.ready).toEqual({ exec: { args: ["pg_isready", "-q"] }, period: "2s" });
    const tcp = sent({
      readyTcp: { host: "", port: 5432 },
      readyTimeout: seconds(0n, 500_000_000),
      readyInitialDelay: seconds(3n),
    });
    expect(tcp.ready).toEqual({ tcp: { port: 5432 }, timeout: "0.500s", initialDelay: "3s" });
    expect(sent({ readyHttp: "http://127.0.0.1:8080/healthz" }).ready).toEqual({
      http: { url: "http://127.0.0.1:8080/healthz" },
    });
  });

  it("sends the memory cap in bytes (a uint64: a string in JSON)", () => {
    expect(sent({ maxRss: 512n * 1024n * 1024n }).maxRssBytes).toBe("536870912");
  });
});

describe("addFlagsProblem", () => {
  it("accepts one check, with or without timings, and no probe at all", () => {
    expect(addFlagsProblem({})).toBeUndefined();
    expect(addFlagsProblem({ readyTcp: { host: "", port: 1 } })).toBeUndefined();
    expect(addFlagsProblem({ readyHttp: "http://x", readyPeriod: seconds(1n) })).toBeUndefined();
  });
  it("refuses two checks, naming them", () => {
    expect(addFlagsProblem({ readyExec: ["true"], readyHttp: "http://x" })).toBe(
      "error: a readiness probe has one check: give only one of --ready-exec, --ready-http",
    );
  });
  it("refuses timings without a check, naming the timing", () => {
    expect(addFlagsProblem({ readyInitialDelay: seconds(1n) })).toBe(
      "error: --ready-initial-delay times a readiness check: give one of --ready-exec, --ready-tcp, --ready-http too",
    );
  });
});

/** Runs procmonctl with a socket nobody listens on: a usage error must end the run before it is dialled. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io = {
    out: (text: string) => {
      out += text;
    },
    err: (text: string) => {
      err += text;
    },
  };
  const full = ["--socket", "/nonexistent/procmon-cli13/s.sock", ...argv];
  const code = await runCli(full, io);
  return { code, out, err };
}

describe("add's usage errors", () => {
  const cases: [string[], RegExp][] = [
    [["--restart", "sometimes"], /option '--restart <policy>' argument 'sometimes' is invalid/],
    [["--success-exit-codes", "0,300"], /option '--success-exit-codes <codes>'.*"300"/],
    [["--max-instant-deaths", "-1"], /option '--max-instant-deaths <n>'/],
    [["--stop-signal", "KILL"], /option '--stop-signal <signal>' argument 'KILL' is invalid/],
    [["--depends-on", ":ready"], /option '--depends-on <name\[:condition\]>'/],
    [["--ready-exec", "sh -c 'x"], /option '--ready-exec <command>'.*quote is not closed/],
    [["--ready-tcp", "99999"], /option '--ready-tcp <address>'/],
    [["--ready-http", "ftp://x"], /option '--ready-http <url>'/],
    [["--ready-period", "soon", "--ready-tcp", "1"], /option '--ready-period <duration>'/],
    [["--max-rss", "10KiB"], /option '--max-rss <size>'.*below 1MiB/],
    [["--max-rss", "1GB"], /option '--max-rss <size>'.*write GiB or G/],
    [
      ["--ready-tcp", "1", "--ready-http", "http://x"],
      /give only one of --ready-tcp, --ready-http/,
    ],
    [["--ready-timeout", "1s"], /--ready-timeout times a readiness check/],
  ];
  for (const [flags, message] of cases) {
    it(`add ${flags.join(" ")}: exit 2, naming the option`, async () => {
      const { code, out, err } = await run("add", ...flags, "web", "--", "sleep", "60");
      expect(code).toBe(EXIT_USAGE);
      expect(out).toBe("");
      expect(err).toMatch(message);
      expect(err).toContain("Usage: procmonctl add [options] NAME -- COMMAND [ARGS...]");
      // Refused before any call: no "cannot connect" note.
      expect(err).not.toMatch(/cannot connect|procmonctl: /);
    });
  }

  it("documents every new option in add --help", async () => {
    const { code, out } = await run("add", "--help");
    expect(code).toBe(0);
    for (const flag of [
      "--restart <policy>",
      "--success-exit-codes <codes>",
      "--max-instant-deaths <n>",
      "--stop-signal <signal>",
      "--depends-on <name[:condition]>",
      "--ready-exec <command>",
      "--ready-tcp <address>",
      "--ready-http <url>",
      "--ready-period <duration>",
      "--ready-timeout <duration>",
      "--ready-initial-delay <duration>",
      "--max-rss <size>",
    ]) {
      expect(out).toContain(flag);
    }
    expect(out).toMatch(/not run by one/);
    expect(out).toMatch(/Sizes are binary/);
  });

  it("ls and get take --stats", async () => {
    expect((await run("ls", "--help")).out).toContain("--stats");
    expect((await run("get", "--help")).out).toContain("--stats");
  });
});
