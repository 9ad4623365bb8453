// Colour of the CLI's state words: when it is on, what it wraps, and that it
// never comes from (or shifts around) the daemon's strings.
import { create } from "@bufbuild/protobuf";
import { ProcessSchema, State } from "@procmon/api";
import { describe, expect, it } from "vitest";
import { ansiPaint, colorEnabled, noPaint, paintFor, stateStyle } from "../../src/cli/colors.js";
import { processLine, processTable } from "../../src/cli/format.js";
import { escapeForTerminal } from "../../src/cli/terminal-text.js";

const NOW_MS = Date.UTC(2030, 0, 1);
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping SGR codes is the point.
const SGR = /\x1b\[[0-9;]*m/g;
const plain = (text: string) => text.replace(SGR, "");
const on = { isTerminal: true, json: false, color: true, env: {} };

describe("colorEnabled", () => {
  it("is on only on a terminal, without --json, --no-color or a non-empty NO_COLOR", () => {
    expect(colorEnabled(on)).toBe(true);
    expect(colorEnabled({ ...on, env: { NO_COLOR: "" } })).toBe(true);
    expect(colorEnabled({ ...on, env: { NO_COLOR: "1" } })).toBe(false);
    expect(colorEnabled({ ...on, env: { NO_COLOR: "0" } })).toBe(false);
    expect(colorEnabled({ ...on, isTerminal: false })).toBe(false);
    expect(colorEnabled({ ...on, json: true })).toBe(false);
    expect(colorEnabled({ ...on, color: false })).toBe(false);
    expect(paintFor(on)).toBe(ansiPaint);
    expect(paintFor({ ...on, isTerminal: false })).toBe(noPaint);
  });
});

describe("the paints", () => {
  it("wrap a word in SGR codes, or leave it as is", () => {
    expect(ansiPaint("running", "green")).toBe("\x1b[32mrunning\x1b[39m");
    expect(ansiPaint("failed", "red")).toBe("\x1b[31mfailed\x1b[39m");
    expect(ansiPaint("backoff", "yellow")).toBe("\x1b[33mbackoff\x1b[39m");
    expect(ansiPaint("stopped", "dim")).toBe("\x1b[2mstopped\x1b[22m");
    expect(ansiPaint("unknown", undefined)).toBe("unknown");
    expect(noPaint("running", "green")).toBe("running");
  });

  it("give each state one style", () => {
    expect(stateStyle(State.RUNNING)).toBe("green");
    expect(stateStyle(State.BACKOFF)).toBe("yellow");
    expect(stateStyle(State.WAITING)).toBe("yellow");
    expect(stateStyle(State.FAILED)).toBe("red");
    expect(stateStyle(State.EXITED)).toBe("red");
    expect(stateStyle(State.STOPPED)).toBe("dim");
    expect(stateStyle(State.UNSPECIFIED)).toBeUndefined();
  });
});

const HOSTILE_NAME = "x\x1b[31mfake\x1b[0m";
const processes = [
  create(ProcessSchema, { spec: { name: "web" }, state: State.RUNNING, pid: 12 }),
  create(ProcessSchema, { spec: { name: HOSTILE_NAME }, state: State.STOPPED }),
  create(ProcessSchema, { spec: { name: "db" }, state: State.FAILED }),
];

describe("processTable and processLine with colour", () => {
  it("colour the STATE column and keep the columns where they are without colour", () => {
    const coloured = processTable(processes, NOW_MS, escapeForTerminal, { paint: ansiPaint });
    const bare = processTable(processes, NOW_MS, escapeForTerminal);
    expect(plain(coloured)).toBe(bare);
    expect(coloured).toContain("\x1b[32mrunning\x1b[39m  ");
    expect(coloured).toContain("\x1b[2mstopped\x1b[22m  ");
    expect(coloured).toContain("\x1b[31mfailed\x1b[39m   ");
  });

  it("add codes only around state words, after the daemon's strings were escaped", () => {
    const coloured = processTable(processes, NOW_MS, escapeForTerminal, { paint: ansiPaint });
    const codes = coloured.match(SGR) ?? [];
    expect(codes).toHaveLength(6);
    expect(coloured).toContain("x\\x1b[31mfake\\x1b[0m");
    // Every real ESC is one of ours, around a state word.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching our SGR codes is the point.
    const words = [...coloured.matchAll(/\x1b\[(?:32|2|31)m([a-z]+)\x1b\[(?:39|22)m/g)].map(
      (m) => m[1],
    );
    expect(words).toEqual(["running", "stopped", "failed"]);
  });

  it("colour a process line's state, waiting included", () => {
    const [web] = processes;
    if (!web) throw new Error("no web");
    expect(processLine(web, NOW_MS, escapeForTerminal, ansiPaint)).toBe(
      "web \x1b[32mrunning\x1b[39m pid 12",
    );
    const waiting = create(ProcessSchema, {
      spec: { name: "api" },
      state: State.WAITING,
      waitingFor: ["db"],
    });
    expect(processLine(waiting, NOW_MS, escapeForTerminal, ansiPaint)).toBe(
      "api \x1b[33mwaiting\x1b[39m for db",
    );
    expect(processLine(waiting, NOW_MS, escapeForTerminal)).toBe("api waiting for db");
  });
});
