// The figures and checks of one fan-out run, from the workers' stats and the window's snapshots.

import { round } from "../lib/stats.mjs";
import { mergeHists } from "./histogram.mjs";
import { CHECKS, P99_TARGET_MS } from "./targets.mjs";

const pct = (ticks, sec) => round((100 * ticks) / sec, 1);

/** Gaps, duplicates, endings and undecodable messages over every subscriber. */
function losses(all, finalSeq) {
  const sum = (key) => all.reduce((a, s) => a + s[key], 0);
  const endedWith = (code) => all.filter((s) => s.ended?.codeName === code);
  const exhausted = endedWith("RESOURCE_EXHAUSTED");
  const reached = all.filter((s) => s.lastSeq >= finalSeq).length;
  const out = {
    reachedFinalSeq: reached,
    gaps: sum("gaps"),
    missingInGaps: sum("missing"),
    duplicates: sum("dups"),
    undecodable: sum("undecodable"),
    unknownKinds: sum("unknownKinds"),
    resourceExhausted: exhausted.length,
    firstResourceExhausted: exhausted[0]?.ended,
    otherEndings: all
      .filter((s) => s.ended && s.ended.codeName !== "RESOURCE_EXHAUSTED")
      .map((s) => s.ended),
  };
  out.lostEvents =
    out.gaps + out.duplicates + out.undecodable + out.resourceExhausted + (all.length - reached);
  return out;
}

function decoderOf(stats) {
  const checks = stats.map((s) => s.decoderCheck);
  const clock = stats.flatMap((s) => s.clockOffsets);
  return {
    decoderCheck: checks,
    decoderOk: checks.every((x) => x.mismatches === 0 && x.errors.count === 0),
    subscriberClockOffsetMs: {
      min: round(Math.min(...clock), 3),
      max: round(Math.max(...clock), 3),
    },
  };
}

function daemonOf(mem, s0, s1, win) {
  return {
    ...mem,
    cpuPctOfCoreInWindow: pct(s1.daemonCpu - s0.daemonCpu, win),
    ...(Number.isFinite(s1.shimCpu)
      ? { shimCpuPctOfCoreInWindow: pct(s1.shimCpu - s0.shimCpu, win) }
      : {}),
  };
}

/** One fan-out run's result object, with `pass` (the checks of CHECKS and P99_TARGET_MS). */
export function fanoutResult({ c, restarterArgs, connections, addMs, window, drained, mem }) {
  const { s0, s1 } = window;
  const { stats, finalSeq } = drained;
  const all = stats.flatMap((s) => s.streams);
  const win = (s1.t - s0.t) / 1000;
  const produced = s1.seq - s0.seq;
  const latencyOf = (groups) => mergeHists(stats.flatMap((s) => groups.map((g) => s.hists[g])));
  const latency = latencyOf(["window"]);
  const lost = losses(all, finalSeq);
  const result = {
    load: c.label,
    subscribers: all.length,
    connections,
    workers: c.workers,
    restarters: c.restarters,
    restarterArgs,
    printers: { count: c.printers, linesPerSec: c.printerRate, lineBytes: c.printerBytes },
    addAllMs: round(addMs, 0),
    windowSec: round(win, 2),
    restartsPerSec: round((s1.restarts - s0.restarts) / win, 1),
    eventsProducedPerSec: round(produced / win, 0),
    deliveriesPerSec: round((s1.deliveries - s0.deliveries) / win, 0),
    deliveryRatio: round((s1.deliveries - s0.deliveries) / (produced * all.length), 4),
    latencyMs: latency,
    latencyMsAllPhases: latencyOf(["setup", "window", "drain"]),
    listProcessesMs: {
      n: window.rpc.n,
      p50: round(window.rpc.p50),
      p99: round(window.rpc.p99),
      max: round(window.rpc.max),
    },
    finalSeq,
    drainTimedOut: drained.drainTimedOut,
    ...lost,
    kindsSeenByOneSubscriber: (all.find((s) => !s.ended) ?? all[0])?.kinds,
    daemon: daemonOf(mem, s0, s1, win),
    workerCpuPctOfCoreInWindow: s1.workerCpu.map((x, i) => pct(x - s0.workerCpu[i], win)),
    ...decoderOf(stats),
  };
  result.pass = {
    lostEvents: lost.lostEvents === 0,
    deliveryP99: latency.p99 <= P99_TARGET_MS[c.label],
    rss: Math.max(mem.rssMaxSampledMB, mem.hwmMB) < CHECKS.rssMB,
    resourceExhausted: lost.resourceExhausted === 0,
    decoder: result.decoderOk,
  };
  return result;
}
