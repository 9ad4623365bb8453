// What the daemon keeps for resuming watchers, end to end: the real procmond
// with its default retention (or the flags under test), real children, the
// real client. Counts, never timings: a paused watcher stands for one that
// keeps up but was held back for a while.
import { Code, type ProcessSpecInit } from "@procmon/client";
import type { Event } from "@procmon/client/api";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { cleanupAll, runProcmond, startProcmond } from "./helpers/daemon.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

afterEach(closeAllWatches);
afterAll(cleanupAll);

/** A one-shot printer of `lines` lines of `width` characters, not restarted for a minute. */
function printer(name: string, lines: number, width = 99): ProcessSpecInit {
  return {
    name,
    args: ["sh", "-c", `yes '${"y".repeat(width)}' | head -n ${lines}`],
    // However long a loaded machine makes it run, its exit is an instant death.
    threshold: { seconds: 600n },
    minRestartDelay: { seconds: 60n },
    maxRestartDelay: { seconds: 60n },
  };
}

/** Where `events` first break the run of consecutive seqs, or undefined. */
function firstGap(events: readonly Event[]): string | undefined {
  for (let i = 1; i < events.length; i++) {
    const [before, after] = [events[i - 1]?.seq, events[i]?.seq];
    if (before === undefined || after !== before + 1n) return `seq ${after} after ${before}`;
  }
  return undefined;
}

/**
 * How WatchEvents answers `afterSeq`: "replays" once a retained event arrives, or
 * the gRPC code it was refused with (after its headers: the refusal comes as the status).
 */
async function resumeFrom(socket: string, afterSeq: bigint, includeOutput: boolean) {
  const watch = await openWatch(socket, { afterSeq, includeOutput });
  try {
    await watch.waitForEvent(() => true, 5_000);
    return "replays";
  } catch (err) {
    if (watch.status === undefined) throw err;
    return watch.status.code;
  } finally {
    watch.close();
  }
}

describe("output retention", () => {
  it("by default, a watcher held back for 40,000 lines of 100 B (2 s at 20,000 lines/s) is not ended, and gets every line", async () => {
    // The log goes to /dev/null, as by default it goes somewhere: it paces the pipe reading.
    const d = await startProcmond([], {}, { readyWhen: "answers", log: "discard" });
    try {
      const held = await openWatch(d.socket, { includeOutput: true });
      held.pause();
      const observer = await openWatch(d.socket);
      await d.client.addProcess(printer("flood", 40_000));
      const exited = await observer.waitForEvent((e) => e.kind.case === "exited", 30_000);
      held.resume();
      await held.waitForEvent((e) => e.seq === exited.seq, 30_000);
      expect(held.status).toBeUndefined();
      expect(firstGap(held.events)).toBeUndefined();
      expect(held.events.filter((e) => e.kind.case === "output")).toHaveLength(40_000);
    } finally {
      await d.cleanup();
    }
  }, 60_000);

  it("keeps output lines up to whichever is reached first, --output-retention or --output-retention-bytes", async () => {
    const d = await startProcmond(
      ["--output-retention", "200000", "--output-retention-bytes", String(2 * 1024 * 1024)],
      {},
      { log: "discard", readyWhen: "answers" },
    );
    try {
      const observer = await openWatch(d.socket);
      await d.client.addProcess(printer("flood", 30_000, 20));
      const exited = await observer.waitForEvent((e) => e.kind.case === "exited", 30_000);
      // 2 MiB hold about 10,000 lines of 20 B: the first of 30,000 are gone, the last kept.
      expect(await resumeFrom(d.socket, 1n, true)).toBe(Code.OUT_OF_RANGE);
      expect(await resumeFrom(d.socket, exited.seq - 8_000n, true)).toBe("replays");
      // State events are kept apart: a watcher without output may still resume from 1.
      expect(await resumeFrom(d.socket, 1n, false)).toBe("replays");
    } finally {
      await d.cleanup();
    }
  }, 60_000);

  it("refuses a byte window under 1 MiB, naming the flag", async () => {
    for (const flag of ["--output-retention-bytes", "--event-retention-bytes"]) {
      const run = await runProcmond([flag, "65536"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`${flag} must be a whole number of bytes, at least 1048576`);
    }
  });
});

describe("state event retention", () => {
  it("keeps added events' specs only up to 8 MiB by default: older cursors get OUT_OF_RANGE, recent ones replay exactly", async () => {
    const d = await startProcmond([], {}, { readyWhen: "answers", log: "discard" });
    try {
      // 250 kB of env in five variables (one string may not pass 128 KiB in execve).
      const env: Record<string, string> = {};
      for (let i = 0; i < 5; i++) env[`BIG_${i}`] = String(i).repeat(50_000);
      let recent = 0n;
      for (let cycle = 0; cycle < 40; cycle++) {
        await d.client.addProcess({ name: `big-${cycle}`, args: ["sleep", "100"], env });
        await d.client.removeProcess(`big-${cycle}`);
        if (cycle === 35) recent = (await d.client.listProcesses()).lastEventSeq;
      }
      // 40 specs of 250 kB do not fit in 8 MiB: the first cycles' events are gone.
      expect(await resumeFrom(d.socket, 1n, false)).toBe(Code.OUT_OF_RANGE);
      // The last four cycles are kept, and replay in order without a gap.
      const { lastEventSeq } = await d.client.listProcesses();
      const replay = await openWatch(d.socket, { afterSeq: recent });
      await replay.waitForEvent((e) => e.seq === lastEventSeq, 10_000);
      expect(replay.events[0]?.seq).toBe(recent + 1n);
      expect(firstGap(replay.events)).toBeUndefined();
      const added = replay.events.filter((e) => e.kind.case === "added");
      expect(added.map((e) => e.process)).toEqual(["big-36", "big-37", "big-38", "big-39"]);
      const first = added[0]?.kind.case === "added" ? added[0].kind.value.spec : undefined;
      expect(first?.env.BIG_4).toHaveLength(50_000);
    } finally {
      await d.cleanup();
    }
  }, 60_000);
});
