import { describe, expect, it } from "vitest";
import {
  DescriptorAlarm,
  DescriptorBudget,
  type DescriptorUsage,
  descriptorUsage,
  watchDescriptors,
} from "../../src/adapters/descriptors.js";
import { FakeClock } from "../core/fakes.js";

/** A usage the test sets, counting how often it is read. */
function fakeUsage(open: number, limit: number) {
  const state = { open, limit, reads: 0 };
  const read = (): DescriptorUsage => {
    state.reads += 1;
    return { open: state.open, limit: state.limit };
  };
  return { state, read };
}

describe("descriptorUsage", () => {
  it("counts this process's open descriptors against its soft limit", () => {
    const usage = descriptorUsage();
    expect(usage.open).toBeGreaterThan(2);
    expect(usage.open).toBeLessThan(usage.limit);
  });
});

describe("DescriptorBudget", () => {
  it("refuses a spawn that would take the descriptors kept for clients", () => {
    const { read } = fakeUsage(100, 128);
    const budget = new DescriptorBudget({ reserve: 32, usage: read });
    expect(budget.refusal()).toEqual({ open: 100, limit: 128 });
  });

  it("counts two descriptors a spawn, and lists /proc/self/fd only now and then far from the limit", () => {
    const { state, read } = fakeUsage(10, 10_000);
    const budget = new DescriptorBudget({ reserve: 32, spawnsPerCount: 64, usage: read });
    for (let i = 0; i < 64; i++) expect(budget.refusal()).toBeUndefined();
    expect(state.reads).toBe(1);
    budget.refusal();
    expect(state.reads).toBe(2);
  });

  it("lists before every spawn near the limit, and lets spawns go on once descriptors are freed", () => {
    const { state, read } = fakeUsage(80, 128);
    const budget = new DescriptorBudget({ reserve: 32, usage: read });
    // 80 + 3 fits under 96; the estimate then grows by two a spawn.
    expect(budget.refusal()).toBeUndefined();
    expect(budget.refusal()).toBeUndefined();
    expect(budget.refusal()).toBeUndefined();
    const readsBefore = state.reads;
    state.open = 95;
    expect(budget.refusal()).toEqual({ open: 95, limit: 128 });
    expect(state.reads).toBeGreaterThan(readsBefore);
    state.open = 40;
    expect(budget.refusal()).toBeUndefined();
  });
});

describe("DescriptorAlarm", () => {
  it("logs at error level once when the reserve is reached, and once when there is room again", () => {
    const { state, read } = fakeUsage(50, 128);
    const lines: Array<[string, string]> = [];
    const log = (level: string) => (_fields: object, message: string) =>
      void lines.push([level, message]);
    const logger = {
      debug: log("debug"),
      info: log("info"),
      warn: log("warn"),
      error: log("error"),
    };
    const alarm = new DescriptorAlarm(logger, 32, read);
    alarm.check();
    expect(lines).toEqual([]);
    state.open = 100;
    alarm.check();
    alarm.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.[0]).toBe("error");
    expect(lines[0]?.[1]).toMatch(
      /^procmond has 100 of its 128 file descriptors open: .*LimitNOFILE=/,
    );
    state.open = 60;
    alarm.check();
    expect(lines.map(([level]) => level)).toEqual(["error", "info"]);
  });
});

describe("watching the descriptors", () => {
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };

  it("looks once a minute while far from the limit, every 5 s past half of it", () => {
    const clock = new FakeClock();
    const { state, read } = fakeUsage(100, 1000);
    const timer = watchDescriptors(clock, new DescriptorAlarm(quiet, 32, read));
    clock.advance(59_999);
    expect(state.reads).toBe(0);
    clock.advance(1);
    expect(state.reads).toBe(1);
    state.open = 600;
    clock.advance(60_000);
    expect(state.reads).toBe(2);
    clock.advance(5_000);
    expect(state.reads).toBe(3);
    state.open = 100;
    clock.advance(5_000);
    clock.advance(59_999);
    expect(state.reads).toBe(4);
    timer.cancel();
    clock.advance(600_000);
    expect(state.reads).toBe(4);
  });

  it("the alarm sees each listing the budget makes before a spawn", () => {
    const { read } = fakeUsage(100, 128);
    const seen: DescriptorUsage[] = [];
    const budget = new DescriptorBudget({ reserve: 32, usage: read, onUsage: (u) => seen.push(u) });
    expect(budget.refusal()).toBeDefined();
    expect(seen).toEqual([{ open: 100, limit: 128 }]);
  });
});
