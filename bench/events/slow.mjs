// Scenario 2, a stuck subscriber: one subscriber that stops reading (paused right after the
// headers) beside a fast one, while a child writes 100-byte lines as fast as it can. The stuck
// one must end with RESOURCE_EXHAUSTED, the fast one must get every line in order, RSS must stay
// under 200 MB, and the child's write rate must not drop against the rounds without the stuck
// subscriber (rounds A B B A A B). Run twice: with an unpaced child, and with one paced at a rate
// one subscriber can follow (so that "the fast one sees everything" is tested on its own).

import { median, round } from "../lib/stats.mjs";
import { startDaemon } from "./daemons.mjs";
import { CHECKS } from "./targets.mjs";
import { startWorker } from "./workers.mjs";

function streamsOf(i, mode) {
  const streams = [
    { id: `fast-${i}`, conn: `F${i}`, group: `slow-fast-${i}`, includeOutput: true, track: true },
  ];
  if (mode === "with") {
    streams.push({
      id: `stuck-${i}`,
      conn: `S${i}`,
      group: `slow-stuck-${i}`,
      includeOutput: true,
      pauseOnReady: true,
    });
  }
  return streams;
}

/**
 * The stuck stream, let go: it reads what was queued and then its ending, or catches up with
 * the daemon's last event if it was never ended (a failed check, not a wait for a timeout).
 */
async function releaseStuck(d, w, id) {
  const lastSeq = Number((await d.client.listProcesses()).lastEventSeq);
  await w.call("resume", { ids: [id] });
  const waited = await w.call("waitFor", { ids: [id], seq: lastSeq, timeoutMs: 30_000 });
  const s = (await w.call("stats", { ids: [id], groups: [] })).streams[0];
  return {
    ended: s.ended?.codeName ?? null,
    details: s.ended?.details,
    lastDeliveredSeq: s.ended?.lastDeliveredSeq,
    received: s.count,
    lastSeq: s.lastSeq,
    gaps: s.gaps,
    dups: s.dups,
    timedOut: waited.timedOut,
  };
}

async function slowRound(ctx, d, w, i, mode, { lines, rate }) {
  const { kit } = ctx;
  const name = `burst-${i}`;
  const fastId = `fast-${i}`;
  await w.call("open", { socket: d.socket, streams: streamsOf(i, mode) });
  const report = kit.reportFile();
  const args = [kit.linewriter, "100", String(lines), String(rate), report, "hold"];
  await d.client.addProcess({ name, args, env: kit.env });
  const child = await kit.waitReport(report, 300_000);
  await w.call("waitFor", { ids: [fastId], process: name, lines, timeoutMs: 60_000 });
  const stuck = mode === "with" ? await releaseStuck(d, w, `stuck-${i}`) : undefined;
  const fast = (await w.call("stats", { ids: [fastId], groups: [] })).streams[0];
  await w.call("cancel", { ids: streamsOf(i, mode).map((s) => s.id) });
  await d.client.removeProcess(name);
  const got = fast.perProcess[name] ?? { lines: 0, lineBreaks: 0 };
  const out = {
    round: i,
    mode,
    childMBps: round(child.mbps, 2),
    childSec: round(child.sec, 2),
    fast: {
      lines: got.lines,
      of: lines,
      lineBreaks: got.lineBreaks,
      gaps: fast.gaps,
      dups: fast.dups,
      ended: fast.ended?.codeName ?? null,
      endedDetails: fast.ended?.details,
    },
    ...(stuck ? { stuck } : {}),
  };
  ctx.run.log(
    `slow ${rate ? `${rate} lines/s` : "unpaced"} round ${i} ${mode} stuck: child ${out.childMBps} MB/s, fast one got ${got.lines}/${lines}${fast.ended ? ` and was ended ${fast.ended.codeName}` : ""}${stuck ? `; stuck one ended ${stuck.ended ?? "NOT"} after ${stuck.received} events` : ""}`,
  );
  return out;
}

/** Each round with the stuck subscriber against the rounds without it just before or after. */
function pairedRatios(rounds) {
  return rounds.flatMap((r, i) => {
    if (r.mode !== "with") return [];
    const near = [rounds[i - 1], rounds[i + 1]].filter((x) => x?.mode === "without");
    if (near.length === 0) return [];
    return [round(r.childMBps / (near.reduce((a, x) => a + x.childMBps, 0) / near.length), 3)];
  });
}

function variantResult(kind, shape, rounds, mem) {
  const rate = (mode) =>
    round(median(rounds.filter((r) => r.mode === mode).map((r) => r.childMBps)), 2);
  const withStuck = rounds.filter((r) => r.mode === "with");
  const paired = kind === "unpaced" ? pairedRatios(rounds) : undefined;
  const fastOk = (r) =>
    r.fast.lines === r.fast.of &&
    !r.fast.ended &&
    r.fast.gaps === 0 &&
    r.fast.dups === 0 &&
    r.fast.lineBreaks === 0;
  return {
    lines: shape.lines,
    lineBytes: 100,
    rateLinesPerSec: shape.rate || "unpaced",
    rounds,
    childMBpsWithout: rate("without"),
    childMBpsWith: rate("with"),
    ...(paired
      ? { childRateRatiosPaired: paired, childRateRatioPairedMedian: median(paired) }
      : {}),
    daemon: mem,
    pass: {
      stuckEndedResourceExhausted: withStuck.every((r) => r.stuck?.ended === "RESOURCE_EXHAUSTED"),
      stuckGapFree: withStuck.every((r) => r.stuck?.gaps === 0 && r.stuck?.dups === 0),
      fastSawEverything: rounds.every(fastOk),
      rss: Math.max(mem.rssMaxSampledMB, mem.hwmMB) < CHECKS.rssMB,
      ...(paired ? { childNotSlowed: median(paired) >= CHECKS.childRateRatio } : {}),
    },
  };
}

/** Runs the stuck-subscriber scenario, unpaced and paced, against `variant`'s daemon. */
export async function slow(ctx, variant) {
  const c = ctx.cfg.slow;
  const out = {};
  let i = 0;
  const shapes = {
    unpaced: { lines: c.lines, rate: 0, rounds: c.rounds },
    paced: { lines: c.pacedRate * c.pacedSec, rate: c.pacedRate, rounds: ["with"] },
  };
  for (const [kind, shape] of Object.entries(shapes)) {
    const d = await startDaemon(ctx, variant, { sink: "null", tag: `slow-${kind}` });
    const w = await startWorker(ctx.run, `slow worker (${kind})`);
    const rounds = [];
    for (const mode of shape.rounds) rounds.push(await slowRound(ctx, d, w, i++, mode, shape));
    await w.stop();
    out[kind] = variantResult(kind, shape, rounds, await d.stop());
  }
  return out;
}
