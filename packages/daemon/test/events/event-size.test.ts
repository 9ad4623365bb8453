import { describe, expect, it } from "vitest";
import {
  ADDED_EVENT_BYTES,
  estimatedBytes,
  OUTPUT_EVENT_BYTES,
  STATE_EVENT_BYTES,
  textBytes,
} from "../../src/events/event-size.js";
import { spec } from "../core/fakes.js";

describe("estimatedBytes", () => {
  it("counts an output line's characters, two bytes each once one is past U+00FF", () => {
    const line = (text: string) =>
      estimatedBytes({
        kind: "output",
        process: "p",
        stream: "stdout",
        line: text,
        partial: false,
      });
    expect(line("x".repeat(99))).toBe(OUTPUT_EVENT_BYTES + 99);
    expect(line("é".repeat(99))).toBe(OUTPUT_EVENT_BYTES + 99);
    expect(line(`${"x".repeat(98)}中`)).toBe(OUTPUT_EVENT_BYTES + 2 * 99);
    expect(line("")).toBe(OUTPUT_EVENT_BYTES);
    expect(textBytes("🙂")).toBe(4); // a surrogate pair
  });

  it("counts an added event's whole spec: args, env keys and values, cwd and name", () => {
    const small = estimatedBytes({ kind: "added", process: "p", spec: spec("p") });
    const env = { BIG: "v".repeat(250_000) };
    const big = estimatedBytes({
      kind: "added",
      process: "p",
      spec: spec("p", { env, args: ["/bin/p", "a".repeat(1_000)], cwd: "/srv/x" }),
    });
    expect(small).toBeGreaterThan(ADDED_EVENT_BYTES);
    expect(small).toBeLessThan(ADDED_EVENT_BYTES + 200);
    expect(big - small).toBeGreaterThanOrEqual(250_000 + "BIG".length + 1_000 + "/srv/x".length);
    expect(big - small).toBeLessThan(250_000 + 1_000 + 200);
  });

  it("counts a state event at its share, and a spawn failure's message on top", () => {
    expect(estimatedBytes({ kind: "started", process: "p", pid: 4 })).toBe(STATE_EVENT_BYTES);
    const error = "e".repeat(500);
    expect(estimatedBytes({ kind: "spawnFailed", process: "p", error })).toBeGreaterThan(
      STATE_EVENT_BYTES + 500,
    );
  });
});
