// keepup's figures: a round's, from its readers' summaries, the child's report and the probe's
// timeline; a build's, over its rounds; and the line printed for each round.

import { percentile, round } from "../lib/stats.mjs";

const RESOURCE_EXHAUSTED = 8;

/** The nearest-rank percentile of an ascending array, null when it is empty. */
const pct = (sorted, p) => (sorted.length === 0 ? null : percentile(sorted, p));
const ascending = (xs) => xs.filter((v) => v !== null).sort((a, b) => a - b);

/** The daemon's loop and GC during the flood: what the probe saw between `start` and `end`. */
function inFlood(probe, start, end) {
  if (!probe || start === null) return { eldP99Ms: null, eldMaxMs: null, gcInFlood: null };
  const late = [];
  for (let i = 0; i < probe.ticks.length; i += 2) {
    const at = probe.ticks[i];
    if (at >= start && at <= end) late.push(probe.ticks[i + 1]);
  }
  late.sort((a, b) => a - b);
  const pauses = probe.gc.filter((g) => g.atMs >= start && g.atMs <= end);
  return {
    eldP99Ms: pct(late, 99),
    eldMaxMs: late.at(-1) ?? null,
    gcInFlood: {
      pausesOver2Ms: pauses.length,
      maxMs: pauses.reduce((m, g) => Math.max(m, g.ms), 0),
      markCompacts: pauses.filter((g) => g.kind === 2).length,
    },
  };
}

function readerFigures(s, start) {
  const cut = s.status === RESOURCE_EXHAUSTED;
  const sent = cut ? /last event sent was seq (\d+)/.exec(s.statusMessage ?? "")?.[1] : undefined;
  const pending = cut ? /\((\d+) events pending\)/.exec(s.statusMessage ?? "")?.[1] : undefined;
  return {
    reader: s.reader,
    cut,
    status: s.status,
    cutAtSeq: sent === undefined ? null : Number(sent),
    pendingAtCut: pending === undefined ? null : Number(pending),
    cutAtS: cut && start !== null ? round((s.statusAtMs - start) / 1000) : null,
    lastSeqReceived: s.lastSeq,
    outputLines: s.outputLines,
    gap: s.gap,
    lagMaxMs: s.lagMaxMs,
    lagMaxAtSeq: s.lagMaxAtSeq,
    lagP99Ms: s.lagP99Ms,
    readerEldMaxMs: s.readerEldMaxMs,
    stalls: s.stalls,
  };
}

/** A round's figures from `r`: { summaries, childReport, probe, rss, hwm, cpuS, loadStart, loadEnd }. */
export function summarizeRound(o, build, index, r) {
  const child = r.childReport;
  const start = child?.startWallMs ?? null;
  const end = start === null ? null : start + child.elapsedMs;
  const readers = r.summaries.map((s) => readerFigures(s, start));
  const x = {
    build: build.label,
    round: index,
    readers,
    cut: readers.some((y) => y.cut),
    childLines: child?.lines ?? null,
    childPlannedS: o.seconds,
    childElapsedS: child ? round(child.elapsedMs / 1000) : null,
    childMaxBlockMs: child ? round(child.maxBlockMs) : null,
    ...inFlood(r.probe, start, end),
    gcTotalMs: r.probe?.gcTotalMs ?? null,
    heapPeakMiB: r.probe ? round(r.probe.heapUsedPeakBytes / 2 ** 20) : null,
    rssMaxSampledMiB: r.rss.length ? round(Math.max(...r.rss)) : null,
    rssHwmMiB: round(r.hwm),
    daemonCpuS: round(r.cpuS),
    load: [round(r.loadStart[0]), round(r.loadEnd[0])],
  };
  if (o.keepProbe) x.probe = r.probe;
  return x;
}

/** The line printed for round `x`. */
export function roundLine(x) {
  const readers = x.readers
    .map((r) =>
      r.cut
        ? `${r.reader} CUT at seq ${r.cutAtSeq} (${r.cutAtS} s, ${r.pendingAtCut} pending)`
        : `${r.reader} ${r.outputLines} lines${r.gap ? ` GAP ${r.gap}` : ""}`,
    )
    .join("; ");
  const lag = x.readers.map((r) => r.lagMaxMs).join("/");
  const readerLoop = x.readers.map((r) => r.readerEldMaxMs).join("/");
  return (
    `${x.build.padEnd(8)} #${String(x.round).padEnd(2)} ${readers} | lag max ${lag} ms | reader loop max ${readerLoop} ms | ` +
    `loop p99/max ${x.eldP99Ms}/${x.eldMaxMs} ms | gc max ${x.gcInFlood?.maxMs} ms | ` +
    `RSS ${x.rssHwmMiB} MiB heap ${x.heapPeakMiB} MiB | CPU ${x.daemonCpuS} s | child ${x.childElapsedS} s ` +
    `(max block ${x.childMaxBlockMs} ms) | load ${x.load.join("->")}`
  );
}

/** A build's figures over its `rounds`. */
export function summarizeBuild(rounds) {
  const lags = ascending(rounds.flatMap((x) => x.readers.map((r) => r.lagMaxMs)));
  const p99 = ascending(rounds.map((x) => x.eldP99Ms));
  const max = ascending(rounds.map((x) => x.eldMaxMs));
  const loads = rounds.flatMap((x) => x.load);
  const cutReaders = rounds.flatMap((x) => x.readers.filter((r) => r.cut));
  return {
    rounds: rounds.length,
    roundsCut: rounds.filter((x) => x.cut).length,
    readersCut: cutReaders.length,
    readers: rounds.reduce((n, x) => n + x.readers.length, 0),
    cutAtSeqs: cutReaders.map((r) => r.cutAtSeq),
    cutAtS: cutReaders.map((r) => r.cutAtS),
    gaps: rounds.reduce((n, x) => n + x.readers.filter((r) => r.gap).length, 0),
    lagMaxMsMedian: pct(lags, 50),
    lagMaxMsMax: lags.at(-1) ?? null,
    eldP99MsMedian: pct(p99, 50),
    eldMaxMsMedian: pct(max, 50),
    eldMaxMsMax: max.at(-1) ?? null,
    rssHwmMiBMax: Math.max(...rounds.map((x) => x.rssHwmMiB ?? 0)),
    daemonCpuSMedian: pct(ascending(rounds.map((x) => x.daemonCpuS)), 50),
    heapPeakMiBMax: Math.max(...rounds.map((x) => x.heapPeakMiB ?? 0)),
    childSlowedRounds: rounds.filter(
      (x) => x.childElapsedS !== null && x.childElapsedS > x.childPlannedS + 0.5,
    ).length,
    loadMin: Math.min(...loads),
    loadMax: Math.max(...loads),
  };
}
