// The bench's checks, issue 11's targets per spawner, and the current-node/prev ratios that
// issue 10 asks to stay within noise.

import { round } from "../lib/stats.mjs";

/** The bench's own checks of every run (PASS/FAIL in the detailed table). */
export const CHECKS = { lostEvents: 0, rssMB: 200, throughputRatio: 0.5, childRateRatio: 0.9 };

/** Delivery p99 per fan-out load: issue 11's for storm and calm; light keeps the bench's 50 ms. */
export const P99_TARGET_MS = { storm: 250, calm: 50, light: 50 };

/** Issue 11: the shim's output throughput to one subscriber against --spawner node's. */
export const SHIM_OVER_NODE = 5;

/** One run per variant gives no interval: a ratio within this factor counts as "within noise". */
export const PREV_TOLERANCE = 1.2;

const status = (ok) => (ok === undefined ? "n/a" : ok ? "PASS" : "MISS");

function p99Row(results, label, load) {
  const f = results.fanout?.[load]?.[label];
  const target = P99_TARGET_MS[load];
  return {
    spawner: label,
    measure: `fan-out ${load}, 100 subscribers: delivery p99`,
    // The restart rate differs by spawner (a Node spawn blocks the loop): it says what the p99 is of.
    value: f
      ? `${f.latencyMs.p99} ms (${f.restartsPerSec} restarts/s, ${f.eventsProducedPerSec} events/s)`
      : "not run",
    target: `<= ${target} ms`,
    status: f ? status(f.latencyMs.p99 <= target) : "n/a",
  };
}

const subscriberOf = (results, label, size) =>
  results.throughput?.[label]?.daemon.stdoutDevNull?.runs[size]?.oneSubscriber.subscriber;

function throughputRow(results, label, size, labels) {
  const sub = subscriberOf(results, label, size);
  const value = sub
    ? `${sub.receivedMBps} MB/s, ${sub.receivedLinesPerSec} lines/s${sub.complete ? "" : " (incomplete)"}`
    : "not run";
  const row = {
    spawner: label,
    measure: `output to 1 subscriber, ${size} B lines`,
    value,
    target: "",
    status: "",
  };
  if (label !== "shim") return { ...row, target: "(reference)" };
  const node = labels.includes("node") ? subscriberOf(results, "node", size) : undefined;
  if (!sub || !node) {
    return {
      ...row,
      target: `>= ${SHIM_OVER_NODE}x node`,
      status: sub ? "n/a (no node run)" : "n/a",
    };
  }
  const ratio = node.receivedMBps > 0 ? sub.receivedMBps / node.receivedMBps : Number.NaN;
  return {
    ...row,
    target: `>= ${SHIM_OVER_NODE}x node`,
    ratio: round(ratio, 2),
    value: `${value} = ${round(ratio, 2)}x node`,
    status: status(sub.complete && node.complete && ratio >= SHIM_OVER_NODE),
  };
}

/** Issue 11's rows, per variant of this build: fan-out p99 (calm, storm), output throughput. */
export function issue11Rows(results, variants) {
  const labels = variants.filter((v) => v.build === "current").map((v) => v.label);
  const rows = [];
  for (const label of labels) {
    for (const load of ["calm", "storm"]) rows.push(p99Row(results, label, load));
    for (const size of [100, 1024]) rows.push(throughputRow(results, label, size, labels));
  }
  return rows;
}

/** [measure, lower is better?, (results, label) -> number] for the current-node/prev ratios. */
function comparedMeasures(results) {
  const measures = [];
  for (const load of Object.keys(results.fanout ?? {})) {
    const f = (label) => results.fanout[load][label];
    measures.push([`fan-out ${load}: delivery p99 ms`, true, (l) => f(l)?.latencyMs.p99]);
    measures.push([`fan-out ${load}: deliveries/s`, false, (l) => f(l)?.deliveriesPerSec]);
    measures.push([
      `fan-out ${load}: daemon CPU %`,
      true,
      (l) => f(l)?.daemon.cpuPctOfCoreInWindow,
    ]);
  }
  if (results.slow) {
    measures.push([
      "slow: child MB/s beside a stuck one",
      false,
      (l) => results.slow[l]?.unpaced.childMBpsWith,
    ]);
  }
  for (const size of results.throughput ? [100, 1024] : []) {
    const t = (l) => results.throughput[l];
    const runs = (l) => t(l)?.daemon.stdoutDevNull.runs[size];
    measures.push([
      `throughput ${size} B: no subscriber MB/s`,
      false,
      (l) => runs(l)?.noSubscriber.childMBps,
    ]);
    measures.push([
      `throughput ${size} B: 1 subscriber MB/s`,
      false,
      (l) => subscriberOf(results, l, size)?.receivedMBps,
    ]);
    measures.push([
      `sweep ${size} B: max followed lines/s`,
      false,
      (l) => t(l)?.sweep[size].maxFollowedLinesPerSec,
    ]);
  }
  return measures;
}

/** current-node/prev for every measure both ran, with a verdict against PREV_TOLERANCE. */
export function prevRatios(results, variants) {
  if (!variants.some((v) => v.label === "prev")) return undefined;
  return comparedMeasures(results).map(([measure, lowerIsBetter, of]) => {
    const node = of("node");
    const prev = of("prev");
    const ratio = Number.isFinite(node) && prev > 0 ? node / prev : Number.NaN;
    let verdict = "n/a";
    if (Number.isFinite(ratio)) {
      const within = ratio <= PREV_TOLERANCE && ratio >= 1 / PREV_TOLERANCE;
      verdict = within ? "within" : ratio < 1 === lowerIsBetter ? "better" : "worse";
    }
    return { measure, node, prev, ratio: round(ratio, 3), lowerIsBetter, verdict };
  });
}
