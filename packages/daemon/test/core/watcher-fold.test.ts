// Every change of state is an event: over random sequences of calls, deaths
// and time, the state a watcher folds from the events always equals what
// get() and list() answer.
import { describe, expect, it } from "vitest";
import type { CoreEvent } from "../../src/core/events.js";
import type { ProcessSpec, StateName } from "../../src/core/types.js";
import {
  type FakeChild,
  FakeProber,
  flushMicrotasks,
  type Harness,
  makeSupervisor,
  seeded,
} from "./fakes.js";

interface Folded {
  state: StateName;
  pid: number;
}

/** What a watcher knows of each process after `event`, from the events alone. */
function fold(known: Map<string, Folded>, event: CoreEvent): void {
  const current = known.get(event.process);
  const set = (state: StateName, pid = 0) => known.set(event.process, { state, pid });
  switch (event.kind) {
    case "added":
      set("stopped");
      return;
    case "removed":
      known.delete(event.process);
      return;
    case "started":
      set("running", event.pid);
      return;
    case "exited":
      // What follows says otherwise (started, restart_scheduled, gave_up, removed);
      // nothing does when its policy ended it. After a stop it is stopped.
      set(current?.state === "stopping" ? "stopped" : "exited");
      return;
    case "stopped":
      set("stopped");
      return;
    case "gaveUp":
      set("failed");
      return;
    case "waiting":
      set("waiting");
      return;
    case "ready":
    case "unready":
      // Readiness, not a state: the pid stays.
      if (current === undefined) throw new Error(`${event.kind} for unknown "${event.process}"`);
      return;
    case "restartScheduled":
      set("backoff");
      return;
    case "stopping":
      set("stopping", event.pid);
      return;
    case "spawnFailed":
      // Followed by its backoff, or gave_up; by nothing when its policy ends it.
      if (current === undefined) throw new Error(`${event.kind} for unknown "${event.process}"`);
      set("exited");
      return;
    case "killed":
    case "output":
      // No change of state: killed escalates a stop.
      if (current === undefined) throw new Error(`${event.kind} for unknown "${event.process}"`);
      return;
  }
}

const NAMES = ["a", "b", "c"] as const;

/** The end policies a process is added with: Twisted's, and each of v1.1's. */
const POLICIES: ReadonlyArray<Partial<ProcessSpec>> = [
  {},
  { restart: "never" },
  { restart: "on-failure" },
  { restart: "on-failure", successExitCodes: [0, 1] },
  { maxInstantDeaths: 2 },
  { restart: "on-failure", maxInstantDeaths: 1 },
  { dependsOn: [{ name: "a", condition: "started" }] },
  { dependsOn: [{ name: "b", condition: "exited-ok" }] },
  {
    dependsOn: [
      { name: "c", condition: "ready" },
      { name: "a", condition: "started" },
    ],
  },
  {
    ready: {
      check: { kind: "tcp", host: "127.0.0.1", port: 1 },
      periodMs: 500,
      timeoutMs: 500,
      initialDelayMs: 0,
    },
  },
];

/** One random step: a call, a death, a failed spawn or the passing of time. */
function step(h: Harness, prober: FakeProber, random: () => number, log: string[]): void {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const name = pick(NAMES);
  // Calls that wait for an exit are left pending; their refusals are expected.
  const call = (what: string, fn: () => Promise<unknown> | unknown) => {
    log.push(`${what} ${name}`);
    try {
      const result = fn();
      if (result instanceof Promise) result.catch(() => {});
    } catch {
      // not_found, already_exists, failed_precondition: nothing changed.
    }
  };
  const live = (): FakeChild[] => h.spawner.children.filter((c) => !c.exited);
  const roll = random();
  if (h.spawner.answerLater && h.spawner.pending.length > 0 && random() < 0.4) {
    log.push("a spawn is answered");
    h.spawner.answer();
    return;
  }
  const check = prober.pending[0];
  if (check !== undefined && random() < 0.3) {
    const ok = random() < 0.6;
    log.push(`a check of ${check.spec.name} ${ok ? "passes" : "fails"}`);
    prober.pending.shift();
    check.answer(ok ? { ok: true } : { ok: false, error: "refused" });
    return;
  }
  if (roll < 0.15) {
    const policy = pick(POLICIES);
    call(`add (${JSON.stringify(policy)})`, () => h.sup.add(h.spec(name, policy)));
  } else if (roll < 0.22) call("remove", () => h.sup.remove(name));
  else if (roll < 0.32) call("start", () => h.sup.start(name));
  else if (roll < 0.42) call("stop", () => h.sup.stop(name));
  else if (roll < 0.5) call("restart", () => h.sup.restart(name));
  else if (roll < 0.53) call("restartAll", () => h.sup.restartAll());
  else if (roll < 0.58) {
    log.push("next spawn fails");
    h.spawner.failNext();
  } else if (roll < 0.75) {
    const child = live().length > 0 ? pick(live()) : undefined;
    if (child) {
      const code = Math.floor(random() * 3);
      log.push(`child ${child.pid} ${code === 2 ? "killed" : `exits ${code}`}`);
      if (code === 2) child.kill("SIGTERM");
      else child.exit(code);
    }
  } else {
    const ms = pick([1, 10, 500, 999, 1_000, 2_000, 5_000, 60_000]);
    log.push(`advance ${ms}`);
    h.clock.advance(ms);
  }
}

describe("a watcher's fold of the events", () => {
  it.each([
    ["a spawner that answers at once", false],
    ["a spawner that answers later", true],
  ])(
    "equals get() and list() after every step of 200 random runs, with %s",
    async (_how, later) => {
      for (let run = 0; run < 200; run++) {
        const random = seeded(run + 1);
        const prober = new FakeProber();
        const h = makeSupervisor({ thresholdMs: 1_000, killTimeMs: 2_000 }, { prober });
        h.spawner.answerLater = later;
        const known = new Map<string, Folded>();
        let folded = 0;
        const log: string[] = [];
        for (let i = 0; i < 60; i++) {
          step(h, prober, random, log);
          await flushMicrotasks();
          for (; folded < h.events.length; folded++) fold(known, h.events[folded] as CoreEvent);
          const actual = new Map(
            h.sup.list().map((v) => [v.spec.name, { state: v.state, pid: v.pid }]),
          );
          expect(known, `run ${run + 1}, after: ${log.join("; ")}`).toEqual(actual);
        }
      }
    },
  );
});
