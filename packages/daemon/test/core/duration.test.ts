import { describe, expect, it } from "vitest";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../../src/core/duration.js";
import { ProcmonError } from "../../src/core/errors.js";

describe("parseDuration", () => {
  it.each([
    ["0", 0],
    ["0s", 0],
    ["500ms", 500],
    ["5s", 5_000],
    ["1.5s", 1_500],
    [".5s", 500],
    ["1.s", 1_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["2h45m30.5s", 9_930_500],
    ["1500us", 2],
    ["1499\u00b5s", 1],
    ["250us", 0],
    ["3000000ns", 3],
    ["+5s", 5_000],
  ])("parses %j as %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "-1s", "5", "1.5", "s", "5 s", " 5s", "5S", "5d", "1e3ms", "1h-5m", "+"])(
    "rejects %j with invalid_argument naming the text",
    (text) => {
      const error = catchError(() => parseDuration(text));
      expect(error).toBeInstanceOf(ProcmonError);
      expect(error).toMatchObject({ code: "invalid_argument" });
      expect(error.message).toContain(JSON.stringify(text));
    },
  );

  it("tells a unitless number apart from garbage", () => {
    expect(catchError(() => parseDuration("5")).message).toMatch(/needs a unit/);
    expect(catchError(() => parseDuration("abc")).message).toMatch(/use a number and a unit/);
  });

  it("rejects a duration too long to be exact", () => {
    expect(catchError(() => parseDuration(`${"9".repeat(30)}h`)).message).toMatch(/too long/);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [500, "500ms"],
    [1, "1ms"],
    [1.5, "1.5ms"],
    [0.25, "250us"],
    [1_000, "1s"],
    [1_500, "1.5s"],
    [1_050, "1.05s"],
    [60_000, "1m"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [3_600_500, "1h0.5s"],
    [90_000_000, "25h"],
    [-1_000, "-1s"],
    [MAX_DURATION_MS, "596h31m23.647s"],
  ])("formats %d ms as %j", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("round-trips through parseDuration for whole milliseconds", () => {
    for (const ms of [
      0,
      1,
      999,
      1_000,
      1_001,
      59_999,
      61_234,
      3_599_999,
      3_600_001,
      MAX_DURATION_MS,
    ]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error("expected an error");
}
