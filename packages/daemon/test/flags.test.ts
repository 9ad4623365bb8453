import { describe, expect, it } from "vitest";
import { ProcmonError } from "../src/core/errors.js";
import { parseFlags } from "../src/flags.js";

/** What parseFlags throws for `argv`. */
function refusal(argv: string[]): ProcmonError {
  try {
    parseFlags(argv, {});
  } catch (err) {
    if (err instanceof ProcmonError) return err;
    throw err;
  }
  throw new Error(`${argv.join(" ")} was accepted`);
}

describe("duration flags", () => {
  it("read durations with the codec of specs and the CLI", () => {
    const parsed = parseFlags(
      ["--kill-time", "1m30s", "--threshold", "1500us", "--max-restart-delay", "596h31m23.647s"],
      {},
    );
    if (parsed.kind !== "run") throw new Error("not a run");
    expect(parsed.options.policy).toMatchObject({
      killTimeMs: 90_000,
      thresholdMs: 2,
      maxRestartDelayMs: 2_147_483_647,
    });
  });

  it.each([
    [
      "--max-restart-delay",
      "1000h",
      /^--max-restart-delay: "1000h" must be at most 596h31m23\.647s$/,
    ],
    ["--kill-time", "0", /^--kill-time: "0" must be positive$/],
    ["--threshold", "0s", /^--threshold: "0s" must be positive$/],
    ["--consistency-delay", "100us", /^--consistency-delay: "100us" must be at least 1ms$/],
    [
      "--min-restart-delay",
      "5",
      /^--min-restart-delay: "5" is not a duration: a number needs a unit/,
    ],
  ])("refuse %s %s with the same limit as a spec", (flag, value, message) => {
    const err = refusal([flag, value]);
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toMatch(message);
  });
});
