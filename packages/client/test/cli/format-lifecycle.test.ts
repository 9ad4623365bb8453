// What procmonctl prints of the v1.1 lifecycle: the new states in `ls` and
// process lines, what a waiting process waits for, the --stats columns, the
// new spec and Process fields in `get`, and the new events in `watch`.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DependencyCondition,
  EventSchema,
  ProcessSchema,
  ReadinessProbeSchema,
  RestartPolicy,
  State,
  StopReason,
} from "@procmon/api";
import { describe, expect, it } from "vitest";
import { formatCpuSeconds } from "../../src/cli/durations.js";
import {
  eventSummary,
  probeSummary,
  processDetails,
  processLine,
  processTable,
} from "../../src/cli/format.js";
import { asIs, escapeForTerminal } from "../../src/cli/terminal-text.js";

const NOW_MS = Date.UTC(2030, 0, 1);
type EventKind = NonNullable<MessageInitShape<typeof EventSchema>["kind"]>;
const MIB = 1024n * 1024n;

const processOf = (init: MessageInitShape<typeof ProcessSchema>) => create(ProcessSchema, init);

const running = processOf({
  spec: { name: "web", args: ["sleep", "60"] },
  state: State.RUNNING,
  pid: 1234,
  startedAt: timestampFromMs(NOW_MS - 5_000),
  ready: true,
  cpuSeconds: 1.25,
  rssBytes: 12_897_485n,
});
const waiting = processOf({
  spec: { name: "api", args: ["./api"] },
  state: State.WAITING,
  waitingFor: ["db", "migrate"],
});
const exited = processOf({
  spec: { name: "migrate", args: ["./migrate"], restart: RestartPolicy.NEVER },
  state: State.EXITED,
  lastExit: { status: { case: "exitCode", value: 0 } },
});
const failed = processOf({
  spec: { name: "flaky", args: ["false"], maxInstantDeaths: 3 },
  state: State.FAILED,
  restartCount: 2,
  lastExit: { status: { case: "exitCode", value: 1 } },
});

const rowsOf = (text: string) => text.split("\n").map((line) => line.split(/ {2,}/));

describe("ls", () => {
  it("shows exited, failed and waiting, and what a waiting process waits for", () => {
    const text = processTable([waiting, running, exited, failed], NOW_MS, asIs);
    expect(rowsOf(text)).toEqual([
      ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"],
      ["api", "waiting", "-", "-", "0", "-", "waiting for db, migrate"],
      ["web", "running", "1234", "5s", "0", "-"],
      ["migrate", "exited", "-", "-", "0", "exit 0"],
      ["flaky", "failed", "-", "-", "2", "exit 1"],
    ]);
  });

  it("with --stats, CPU and MEM after UPTIME, `-` for a process without a run", () => {
    const text = processTable([running, exited], NOW_MS, asIs, { includeStats: true });
    expect(rowsOf(text)).toEqual([
      ["NAME", "STATE", "PID", "UPTIME", "CPU", "MEM", "RESTARTS", "LAST EXIT"],
      ["web", "running", "1234", "5s", "1.2s", "12.3 MiB", "0", "-"],
      ["migrate", "exited", "-", "-", "-", "-", "0", "exit 0"],
    ]);
    // The columns line up: each header starts where its cells do.
    const [header = "", row = ""] = text.split("\n");
    expect(row.slice(header.indexOf("MEM")).startsWith("12.3 MiB")).toBe(true);
  });

  it("escapes the names waited for on a terminal", () => {
    const hostile = processOf({ ...waiting, waitingFor: ["a\x1b[2J"] });
    expect(processTable([hostile], NOW_MS, escapeForTerminal)).toContain("waiting for a\\x1b[2J");
  });
});

describe("process lines", () => {
  it("say what a waiting process waits for, and how an exited or failed one ended", () => {
    expect(processLine(waiting, NOW_MS, asIs)).toBe("api waiting for db, migrate");
    expect(processLine(processOf({ ...waiting, waitingFor: [] }), NOW_MS, asIs)).toBe(
      "api waiting",
    );
    expect(processLine(exited, NOW_MS, asIs)).toBe("migrate exited (exit 0)");
    expect(processLine(failed, NOW_MS, asIs)).toBe("flaky failed (exit 1)");
  });
});

/** `get`'s lines as key → value. */
function details(...args: Parameters<typeof processDetails>): Map<string, string> {
  const lines = processDetails(...args).split("\n");
  return new Map(lines.map((line) => line.split(/: +/, 2) as [string, string]));
}

describe("get", () => {
  it("prints every new spec field that is set, as the command line writes it", () => {
    const p = processOf({
      spec: {
        name: "api",
        args: ["./api"],
        restart: RestartPolicy.ON_FAILURE,
        successExitCodes: [0, 2],
        maxInstantDeaths: 5,
        stopSignal: "SIGQUIT",
        dependsOn: [
          { name: "db", condition: DependencyCondition.READY },
          { name: "migrate", condition: DependencyCondition.EXITED_OK },
          { name: "cache" },
        ],
        ready: {
          check: { case: "http", value: { url: "http://127.0.0.1:8080/healthz" } },
          period: { seconds: 2n },
          timeout: { seconds: 0n, nanos: 500_000_000 },
          initialDelay: { seconds: 10n },
        },
        maxRssBytes: 512n * MIB,
      },
      state: State.WAITING,
      waitingFor: ["db"],
    });
    const got = details(p, NOW_MS, asIs);
    expect(got.get("state")).toBe("waiting");
    expect(got.get("waiting for")).toBe("db");
    expect(got.get("ready")).toBe("no");
    expect(got.get("stop signal")).toBe("SIGQUIT");
    expect(got.get("restart policy")).toBe("on-failure");
    expect(got.get("success codes")).toBe("0,2");
    expect(got.get("give up after")).toBe("5 instant deaths in a row");
    expect(got.get("depends on")).toBe("db (ready), migrate (exited-ok), cache (started)");
    expect(got.get("ready check")).toBe(
      "http http://127.0.0.1:8080/healthz every 2s, timeout 500ms, first after 10s",
    );
    expect(got.get("max rss")).toBe("512MiB");
    expect(got.has("cpu")).toBe(false);
  });

  it("leaves out what is unset or means nothing; the defaults of the policy are shown", () => {
    const got = details(running, NOW_MS, asIs);
    expect(got.get("stop signal")).toBe("SIGTERM");
    expect(got.get("restart policy")).toBe("always");
    expect(got.get("ready")).toBe("yes");
    for (const key of [
      "success codes",
      "give up after",
      "depends on",
      "ready check",
      "max rss",
      "waiting for",
    ]) {
      expect(got.has(key), key).toBe(false);
    }
    // Ready is about a run: a stopped process without a probe has none to tell of.
    expect(details(exited, NOW_MS, asIs).has("ready")).toBe(false);
  });

  it("with --stats, the tree's CPU and memory", () => {
    const got = details(running, NOW_MS, asIs, { includeStats: true });
    expect(got.get("cpu")).toBe("1.2s");
    expect(got.get("memory")).toBe("12.3 MiB");
    const none = details(exited, NOW_MS, asIs, { includeStats: true });
    expect([none.get("cpu"), none.get("memory")]).toEqual(["-", "-"]);
  });

  it("keeps the keys within the existing column (no key wider than min restart delay)", () => {
    const lines = processDetails(failed, NOW_MS, asIs, { includeStats: true }).split("\n");
    for (const line of lines) expect(line.indexOf(":") + 1).toBeLessThanOrEqual(18);
    expect(lines.every((line) => /^[a-z ]+: +\S/.test(line))).toBe(true);
  });

  it("escapes the probe, the dependencies and the stop signal on a terminal", () => {
    const hostile = processOf({
      spec: {
        name: "x",
        stopSignal: "\x1b]0;t\x07",
        dependsOn: [{ name: "\x1b[2J" }],
        ready: { check: { case: "exec", value: { args: ["echo", "\x1b[2J"] } } },
      },
    });
    const text = processDetails(hostile, NOW_MS, escapeForTerminal);
    expect(text).toContain("depends on:         \\x1b[2J (started)");
    expect(text).toContain("stop signal:        \\x1b]0;t\\x07");
    expect(text).toContain("exec echo '\\x1b[2J' every 1s");
  });
});

describe("probeSummary", () => {
  it("names the check, the host defaulting to 127.0.0.1, IPv6 in brackets", () => {
    const tcp = (host: string) =>
      probeSummary(
        create(ReadinessProbeSchema, { check: { case: "tcp", value: { host, port: 5432 } } }),
        asIs,
      );
    expect(tcp("")).toBe("tcp 127.0.0.1:5432 every 1s, timeout 1s");
    expect(tcp("db.local")).toBe("tcp db.local:5432 every 1s, timeout 1s");
    expect(tcp("::1")).toBe("tcp [::1]:5432 every 1s, timeout 1s");
  });
  it("quotes an exec check as a shell would read it back", () => {
    const probe = create(ReadinessProbeSchema, {
      check: { case: "exec", value: { args: ["sh", "-c", "curl -sf x | grep ok"] } },
    });
    expect(probeSummary(probe, asIs)).toBe(
      "exec sh -c 'curl -sf x | grep ok' every 1s, timeout 1s",
    );
  });
});

describe("formatCpuSeconds", () => {
  it("shows tenths under a minute, then minutes and hours", () => {
    expect(formatCpuSeconds(0)).toBe("0.0s");
    expect(formatCpuSeconds(0.04)).toBe("0.0s");
    expect(formatCpuSeconds(1.25)).toBe("1.2s");
    expect(formatCpuSeconds(59.99)).toBe("59.9s");
    expect(formatCpuSeconds(125)).toBe("2m5s");
    expect(formatCpuSeconds(3_720)).toBe("1h2m");
  });
});

describe("watch", () => {
  const event = (kind: EventKind) =>
    eventSummary(create(EventSchema, { seq: 1n, process: "web", kind }), asIs);

  it("formats gave_up, ready, unready and waiting", () => {
    expect(event({ case: "gaveUp", value: { instantDeaths: 3 } })).toBe(
      "gave up after 3 instant deaths in a row",
    );
    expect(event({ case: "ready", value: {} })).toBe("ready");
    expect(
      event({ case: "unready", value: { error: "connect ECONNREFUSED 127.0.0.1:5432" } }),
    ).toBe("unready: connect ECONNREFUSED 127.0.0.1:5432");
    expect(event({ case: "waiting", value: { names: ["db", "migrate"] } })).toBe(
      "waiting for db, migrate",
    );
  });

  it("says a stop was for memory", () => {
    expect(
      event({ case: "stopping", value: { pid: 7, signal: "SIGTERM", reason: StopReason.MEMORY } }),
    ).toBe("stopping pid 7: SIGTERM (memory over max rss)");
    expect(event({ case: "stopped", value: { reason: StopReason.MEMORY } })).toBe(
      "stopped (memory over max rss)",
    );
  });

  it("escapes an unready error and the names waited for on a terminal", () => {
    const kinds: EventKind[] = [
      { case: "unready", value: { error: "\x1b[2J" } },
      { case: "waiting", value: { names: ["\x1b[2J"] } },
    ];
    for (const kind of kinds) {
      const text = eventSummary(create(EventSchema, { process: "web", kind }), escapeForTerminal);
      expect(text).toContain("\\x1b[2J");
      expect(text).not.toContain("\x1b");
    }
  });
});
