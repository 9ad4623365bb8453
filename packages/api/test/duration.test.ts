import { describe, expect, it } from "vitest";
import {
  DurationError,
  durationProblem,
  formatDurationMs,
  MAX_DURATION_MS,
  parseDuration,
  parseDurationMs,
  parseDurationNanos,
} from "../src/duration.js";

describe("parseDurationNanos: the syntax", () => {
  it.each([
    ["0", 0n],
    ["0s", 0n],
    ["500ms", 500_000_000n],
    ["5s", 5_000_000_000n],
    ["1.5s", 1_500_000_000n],
    [".5s", 500_000_000n],
    ["1.s", 1_000_000_000n],
    ["1m30s", 90_000_000_000n],
    ["1h30m", 5_400_000_000_000n],
    ["2h45m30.5s", 9_930_500_000_000n],
    ["1500us", 1_500_000n],
    ["1499\u00b5s", 1_499_000n],
    ["1\u03bcs", 1_000n],
    ["3ns", 3n],
    ["1.0000000009s", 1_000_000_000n],
  ])("reads %j as %d ns", (text, nanos) => {
    expect(parseDurationNanos(text)).toBe(nanos);
  });

  it.each(["", "-1s", "+5s", "5", "1.5", "s", "5 s", " 5s", "5S", "5d", "1e3ms", "1h-5m", "+"])(
    "refuses %j, naming the text",
    (text) => {
      const error = thrown(() => parseDurationNanos(text));
      expect(error).toBeInstanceOf(DurationError);
      expect(error.message).toContain(JSON.stringify(text));
    },
  );

  it("tells a number without a unit apart from garbage", () => {
    expect(thrown(() => parseDurationNanos("5")).message).toMatch(/needs a unit/);
    expect(thrown(() => parseDurationNanos("abc")).message).toMatch(/a number and a unit/);
  });

  it("quotes at most 64 characters of what it was given", () => {
    const message = thrown(() => parseDurationNanos(`${"x".repeat(10_000)}`)).message;
    expect(message.length).toBeLessThan(200);
  });
});

describe("the one limit", () => {
  it.each([
    [0, "must be positive"],
    [-1, "must be positive"],
    [0.4, "must be at least 1ms"],
    [MAX_DURATION_MS + 1, "must be at most 596h31m23.647s"],
    [3_600_000_000, "must be at most 596h31m23.647s"],
  ])("refuses %d ms: %s", (ms, problem) => {
    expect(durationProblem(ms)).toBe(problem);
  });

  it.each([0.5, 1, 1_000, MAX_DURATION_MS])("accepts %d ms", (ms) => {
    expect(durationProblem(ms)).toBeUndefined();
  });

  it("holds for every reader: 1000h, 0s and 250us are refused the same way", () => {
    for (const text of ["1000h", "0s", "250us", "0"]) {
      const viaMs = thrown(() => parseDurationMs(text));
      const viaProto = thrown(() => parseDuration(text));
      expect(viaMs).toBeInstanceOf(DurationError);
      expect(viaProto.message).toBe(viaMs.message);
      expect(viaMs.message).toMatch(new RegExp(`^"${text}" must be`));
    }
  });

  it("rounds to whole milliseconds as the daemon runs them", () => {
    expect(parseDurationMs("1500us")).toBe(2);
    expect(parseDurationMs("1499us")).toBe(1);
    expect(parseDurationMs("1h")).toBe(3_600_000);
    expect(parseDurationMs("596h31m23.647s")).toBe(MAX_DURATION_MS);
  });

  it("keeps what was written exactly in a google.protobuf.Duration", () => {
    expect(parseDuration("1.5ms")).toMatchObject({ seconds: 0n, nanos: 1_500_000 });
    expect(parseDuration("90s")).toMatchObject({ seconds: 90n, nanos: 0 });
  });
});

describe("formatDurationMs", () => {
  it.each([
    [0, "0s"],
    [500, "500ms"],
    [1.5, "1.5ms"],
    [0.25, "250us"],
    [1_050, "1.05s"],
    [90_000, "1m30s"],
    [3_600_500, "1h0.5s"],
    [90_000_000, "25h"],
    [-1_000, "-1s"],
    [MAX_DURATION_MS, "596h31m23.647s"],
  ])("formats %d ms as %j", (ms, text) => {
    expect(formatDurationMs(ms)).toBe(text);
  });

  it("round-trips through parseDurationMs for whole milliseconds in range", () => {
    for (const ms of [1, 999, 1_000, 1_001, 59_999, 61_234, 3_599_999, MAX_DURATION_MS]) {
      expect(parseDurationMs(formatDurationMs(ms))).toBe(ms);
    }
  });
});

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error("expected an error");
}
