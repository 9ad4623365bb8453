// How procmonctl lays out the daemon's strings with the terminal option on
// (escapeForTerminal) and off (asIs): escaped field by field, the CLI's own
// newlines and padding kept.
import { create } from "@bufbuild/protobuf";
import { EventSchema, OutputStream, ProcessSchema, State } from "@procmon/api";
import { describe, expect, it } from "vitest";
import {
  eventLine,
  eventSummary,
  processDetails,
  processLine,
  processTable,
} from "../../src/cli/format.js";
import { asIs, escapeForTerminal } from "../../src/cli/terminal-text.js";

const NOW_MS = Date.UTC(2030, 0, 1);
const HOSTILE = "\x1b[2J\x1b]0;pwned\x07";
const SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07";

/** Control characters, DEL, C1 and bidi overrides/isolates: what must never reach a terminal raw. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const RAW = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const hostileProcess = create(ProcessSchema, {
  spec: {
    name: "web",
    args: ["sh", "-c", `printf '${HOSTILE}'\necho forged`],
    env: { TITLE: HOSTILE, RTL: "a\u202eb" },
    cwd: `/tmp/${HOSTILE}`,
  },
  state: State.BACKOFF,
  lastExit: { status: { case: "signal", value: `SIG${HOSTILE}` } },
  lastSpawnError: `cannot spawn: ${HOSTILE}`,
});

const outputEvent = (line: string) =>
  create(EventSchema, {
    seq: 42n,
    process: "web",
    kind: { case: "output", value: { stream: OutputStream.STDOUT, line } },
  });

describe("on a terminal", () => {
  it("get: every field escaped, one field per line, the CLI's newlines kept", () => {
    const text = processDetails(hostileProcess, NOW_MS, escapeForTerminal);
    const lines = text.split("\n");
    for (const line of lines) expect(line).not.toMatch(RAW);
    // The newline in the argument is shown, not obeyed: no forged line.
    expect(lines.some((l) => l.startsWith("echo forged"))).toBe(false);
    expect(lines.find((l) => l.startsWith("command:"))).toContain(
      `'printf '\\''${SHOWN}'\\''\\x0aecho forged'`,
    );
    expect(lines.find((l) => l.startsWith("cwd:"))).toContain(`/tmp/${SHOWN}`);
    expect(lines.find((l) => l.startsWith("env:"))).toContain(`TITLE=${SHOWN}`);
    expect(lines.find((l) => l.startsWith("env:"))).toContain("RTL=a\\u202eb");
    expect(lines.find((l) => l.startsWith("spawn error:"))).toContain(`cannot spawn: ${SHOWN}`);
    expect(lines.find((l) => l.startsWith("last exit:"))).toContain(`SIG${SHOWN}`);
  });

  it("ls and process lines: cells escaped before the columns are laid out", () => {
    const lines = processTable([hostileProcess], NOW_MS, escapeForTerminal).split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toMatch(RAW);
    const [header = "", row = ""] = lines;
    expect(row.slice(header.indexOf("LAST EXIT"))).toBe(`SIG${SHOWN}`);
    expect(processLine(hostileProcess, NOW_MS, escapeForTerminal)).toBe(
      `web backoff (SIG${SHOWN})`,
    );
  });

  it("watch: output lines, spawn errors and added specs escaped", () => {
    expect(eventSummary(outputEvent(HOSTILE), escapeForTerminal)).toBe(`output stdout: ${SHOWN}`);
    const line = eventLine(outputEvent(`\u202e${HOSTILE}`), escapeForTerminal);
    expect(line).not.toMatch(RAW);
    expect(line).toContain(`#42  web  output stdout: \\u202e${SHOWN}`);
    const failed = create(EventSchema, {
      seq: 1n,
      process: "web",
      kind: { case: "spawnFailed", value: { error: HOSTILE } },
    });
    expect(eventSummary(failed, escapeForTerminal)).toBe(`spawn failed: ${SHOWN}`);
    const added = create(EventSchema, {
      seq: 1n,
      process: "web",
      kind: { case: "added", value: { spec: hostileProcess.spec } },
    });
    expect(eventSummary(added, escapeForTerminal)).not.toMatch(RAW);
  });
});

describe("in a pipe", () => {
  it("prints the daemon's strings exactly as they are", () => {
    expect(eventSummary(outputEvent(HOSTILE), asIs)).toBe(`output stdout: ${HOSTILE}`);
    const details = processDetails(hostileProcess, NOW_MS, asIs);
    expect(details).toMatch(new RegExp(`^cwd: +/tmp/${HOSTILE.replaceAll("[", "\\[")}$`, "m"));
    expect(details.split("\n")).toContain(`spawn error:        cannot spawn: ${HOSTILE}`);
    expect(processLine(hostileProcess, NOW_MS, asIs)).toBe(`web backoff (SIG${HOSTILE})`);
  });
});
