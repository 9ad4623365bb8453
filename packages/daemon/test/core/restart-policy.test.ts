import { describe, expect, it } from "vitest";
import { Backoff } from "../../src/core/backoff.js";
import { decide, isInstantDeath, type RunEnd } from "../../src/core/restart-policy.js";

const fresh = Backoff.initial(1_000, 8_000);
const doubled = fresh.next().next(); // 4s
const end = (over: Partial<RunEnd>): RunEnd => ({
  uptimeMs: 5_000,
  thresholdMs: 1_000,
  requested: undefined,
  backoff: doubled,
  ...over,
});

describe("decide: what follows a run's end", () => {
  it("a long run by itself: start again now, counted, the backoff reset", () => {
    const d = decide(end({ uptimeMs: 1_000 }));
    expect(d).toMatchObject({ next: "start", counted: true });
    expect(d.backoff.delayMs).toBe(1_000);
  });

  it("an instant death: wait the current delay, and the next one doubles (capped)", () => {
    const d = decide(end({ uptimeMs: 999 }));
    expect(d).toMatchObject({ next: "backoff", delayMs: 4_000 });
    expect(d.backoff.delayMs).toBe(8_000);
    const capped = decide(end({ uptimeMs: 0, backoff: d.backoff }));
    expect(capped).toMatchObject({ next: "backoff", delayMs: 8_000 });
    expect(capped.backoff.delayMs).toBe(8_000);
  });

  it("a spawn that failed is an instant death", () => {
    expect(decide(end({ uptimeMs: undefined }))).toMatchObject({ next: "backoff", delayMs: 4_000 });
    expect(isInstantDeath(end({ uptimeMs: undefined }))).toBe(true);
  });

  it.each([
    ["start", "start"],
    ["stay-stopped", "stopped"],
    ["forget", "forget"],
  ] as const)("a requested stop for %s: %s, never a death", (requested, next) => {
    const short = decide(end({ uptimeMs: 10, requested }));
    expect(short.next).toBe(next);
    expect(isInstantDeath(end({ uptimeMs: 10, requested }))).toBe(false);
    // A short requested run keeps the backoff; a long one resets it.
    expect(short.backoff.delayMs).toBe(4_000);
    expect(decide(end({ uptimeMs: 2_000, requested })).backoff.delayMs).toBe(1_000);
    if (short.next === "start") expect(short.counted).toBe(false);
  });
});

describe("decide with v1.1's policies: every combination of policy, exit, instant or not, and max_instant_deaths", () => {
  type Policy = "always" | "on-failure" | "never";
  const policies: Policy[] = ["always", "on-failure", "never"];
  // How it ended: a code in success_exit_codes ([0, 3]), another code, a signal (code null).
  const exits = [
    { what: "exit 0", code: 0, success: true },
    { what: "exit 3", code: 3, success: true },
    { what: "exit 1", code: 1, success: false },
    { what: "a signal", code: null, success: false },
  ];
  const cases = policies.flatMap((restart) =>
    exits.flatMap((exit) =>
      [true, false].flatMap((instant) =>
        [0, 1, 3].flatMap((maxInstantDeaths) =>
          [0, 2].map((before) => ({ restart, ...exit, instant, maxInstantDeaths, before })),
        ),
      ),
    ),
  );

  /** The rule, written out once more from the contract's words, independently of decide(). */
  function expected(c: (typeof cases)[number]): string {
    if (c.restart === "never") return "exited";
    if (c.restart === "on-failure" && c.success) return "exited";
    const deaths = c.instant ? c.before + 1 : 0;
    if (c.instant && c.maxInstantDeaths > 0 && deaths >= c.maxInstantDeaths) return "failed";
    return c.instant ? "backoff" : "start";
  }

  it.each(cases)(
    "$restart, $what, instant $instant, max_instant_deaths $maxInstantDeaths, $before before",
    (c) => {
      const d = decide(
        end({
          uptimeMs: c.instant ? 500 : 5_000,
          code: c.code,
          restart: c.restart,
          successExitCodes: [0, 3],
          maxInstantDeaths: c.maxInstantDeaths,
          instantDeaths: c.before,
        }),
      );
      expect(d.next).toBe(expected(c));
      // The count of instant deaths in a row: reset by a long run, one more by an instant death.
      expect(d.instantDeaths).toBe(c.instant ? c.before + 1 : 0);
      if (d.next === "start") expect(d.counted).toBe(true);
      if (d.next === "backoff") expect(d.delayMs).toBe(4_000);
    },
  );

  it("a requested stop leaves the count as it was, whatever the policy", () => {
    for (const restart of policies) {
      const d = decide(end({ uptimeMs: 10, requested: "start", restart, instantDeaths: 2 }));
      expect({ restart, next: d.next, deaths: d.instantDeaths }).toEqual({
        restart,
        next: "start",
        deaths: 2,
      });
    }
  });

  it("a failed spawn is a failure for on-failure, and ends a never", () => {
    const spawnFailed = { uptimeMs: undefined, code: null };
    expect(decide(end({ ...spawnFailed, restart: "on-failure" })).next).toBe("backoff");
    expect(decide(end({ ...spawnFailed, restart: "never" })).next).toBe("exited");
    expect(decide(end({ ...spawnFailed, maxInstantDeaths: 3, instantDeaths: 2 })).next).toBe(
      "failed",
    );
  });
});
