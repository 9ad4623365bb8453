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
