// The tables on stdout: each scenario's figures and checks per variant, issue 11's targets per
// spawner, and the current-node/prev ratios.

import { round } from "../lib/stats.mjs";
import { CHECKS, P99_TARGET_MS, PREV_TOLERANCE } from "./targets.mjs";

const pf = (ok) => (ok ? "PASS" : "FAIL");

function fanoutRows(load, label, f) {
  const p = `fan-out ${load} [${label}]`;
  const mem = f.daemon;
  return [
    [
      `${p}: restarts/s, events produced/s`,
      `${f.restartsPerSec}, ${f.eventsProducedPerSec}`,
      "",
      "",
    ],
    [
      `${p}: deliveries/s (all subscribers)`,
      f.deliveriesPerSec,
      `${round(100 * f.deliveryRatio, 1)} % of produced x ${f.subscribers}`,
      "",
    ],
    [`${p}: lost (gaps+dups+undecodable+ended+short)`, f.lostEvents, "0", pf(f.pass.lostEvents)],
    [
      `${p}: delivery p50 / p99 ms`,
      `${f.latencyMs.p50} / ${f.latencyMs.p99}`,
      `p99 <= ${P99_TARGET_MS[load]}`,
      pf(f.pass.deliveryP99),
    ],
    [`${p}: RESOURCE_EXHAUSTED endings`, f.resourceExhausted, "0", pf(f.pass.resourceExhausted)],
    [
      `${p}: decoder (self-test, checks, errors)`,
      f.decoderOk ? "ok" : "MISMATCH",
      "ok",
      pf(f.pass.decoder),
    ],
    [
      `${p}: daemon RSS max / HWM MB`,
      `${mem.rssMaxSampledMB} / ${mem.hwmMB}`,
      `< ${CHECKS.rssMB}`,
      pf(f.pass.rss),
    ],
    [
      `${p}: daemon (shim) CPU % of a core`,
      `${mem.cpuPctOfCoreInWindow}${mem.shimCpuPctOfCoreInWindow === undefined ? "" : ` (${mem.shimCpuPctOfCoreInWindow})`}`,
      "",
      "",
    ],
    [
      `${p}: ListProcesses p50 / p99 ms`,
      `${f.listProcessesMs.p50} / ${f.listProcessesMs.p99}`,
      "",
      "",
    ],
  ];
}

function slowRows(label, s) {
  const rows = [];
  for (const kind of ["unpaced", "paced"]) {
    const v = s[kind];
    const p = `slow ${kind} [${label}]`;
    const stuck = v.rounds.filter((x) => x.stuck).map((x) => x.stuck.ended);
    rows.push([
      `${p}: stuck one ended RESOURCE_EXHAUSTED`,
      stuck.join(","),
      "yes",
      pf(v.pass.stuckEndedResourceExhausted),
    ]);
    rows.push([
      `${p}: fast one saw everything`,
      v.rounds.map((x) => `${x.fast.lines}/${x.fast.of}`).join(","),
      "all",
      pf(v.pass.fastSawEverything),
    ]);
    if (kind === "unpaced") {
      rows.push([
        `${p}: child MB/s with / without stuck`,
        `${v.childMBpsWith} / ${v.childMBpsWithout} (paired ${v.childRateRatiosPaired.join(", ")})`,
        `paired median >= ${CHECKS.childRateRatio}`,
        pf(v.pass.childNotSlowed),
      ]);
    }
    rows.push([
      `${p}: daemon RSS max / HWM MB`,
      `${v.daemon.rssMaxSampledMB} / ${v.daemon.hwmMB}`,
      `< ${CHECKS.rssMB}`,
      pf(v.pass.rss),
    ]);
  }
  return rows;
}

function throughputRows(label, t, baseline) {
  const rows = [];
  for (const size of [100, 1024]) {
    const base = baseline[size].devnullMBps;
    for (const [sink, sinkLabel] of [
      ["stdoutDevNull", "log->/dev/null"],
      ["stdoutFile", "log->file"],
    ]) {
      const x = t.daemon[sink]?.runs[size];
      if (!x) continue;
      const p = `throughput ${size} B ${sinkLabel} [${label}]`;
      const s = x.oneSubscriber.subscriber;
      const ratioOk = x.oneSubscriber.subscriberRatioToDevnull >= CHECKS.throughputRatio;
      rows.push([
        `${p}: no subscriber MB/s`,
        `${x.noSubscriber.childMBps} (${round(100 * x.noSubscriber.ratioToDevnull, 2)} % of ${base})`,
        "",
        "",
      ]);
      rows.push([
        `${p}: 1 subscriber MB/s`,
        `child ${x.oneSubscriber.childMBps}; sub ${s.receivedMBps} (${s.lines.join(",")}/${s.of}${s.ended ? `, ${s.ended}` : ""})`,
        sink === "stdoutDevNull" ? `>= ${100 * CHECKS.throughputRatio} % of /dev/null` : "",
        sink === "stdoutDevNull" ? pf(ratioOk) : "",
      ]);
    }
    const sw = t.sweep[size];
    rows.push([
      `sweep ${size} B [${label}]: max paced rate 1 sub follows`,
      `${sw.maxFollowedLinesPerSec} lines/s = ${sw.maxFollowedMBps} MB/s`,
      "",
      "",
    ]);
  }
  const daemons = [...Object.values(t.daemon).map((x) => x.daemon), t.sweepDaemon];
  const rss = `${Math.max(...daemons.map((x) => x.rssMaxSampledMB))} / ${Math.max(...daemons.map((x) => x.hwmMB))}`;
  rows.push([
    `throughput [${label}]: daemon RSS max / HWM MB`,
    rss,
    `< ${CHECKS.rssMB}`,
    pf(t.pass.rss),
  ]);
  return rows;
}

/** `rows` as columns padded to their widest cell (the last one not padded). */
function printRows(rows) {
  const columns = Math.max(...rows.map((r) => r.length));
  const w = Array.from({ length: columns - 1 }, (_, i) =>
    Math.max(...rows.map((r) => String(r[i] ?? "").length)),
  );
  for (const row of rows) {
    const cells = row.map((cell, i) => (i < w.length ? String(cell).padEnd(w[i]) : String(cell)));
    process.stdout.write(`${cells.join("  ").trimEnd()}\n`);
  }
}

/** The detailed table of every scenario and variant. */
export function printDetails(results, variants) {
  const rows = [];
  for (const load of Object.keys(results.fanout ?? {})) {
    for (const v of variants)
      rows.push(...fanoutRows(load, v.label, results.fanout[load][v.label]));
  }
  for (const v of results.slow ? variants : [])
    rows.push(...slowRows(v.label, results.slow[v.label]));
  if (results.baseline) {
    for (const size of [100, 1024]) {
      const b = results.baseline[size];
      rows.push([
        `throughput ${size} B: /dev/null, bare Node pipe MB/s`,
        `${b.devnullMBps}, ${b.nodePipeMBps}`,
        "",
        "",
      ]);
    }
  }
  for (const v of results.throughput ? variants : [])
    rows.push(...throughputRows(v.label, results.throughput[v.label], results.baseline));
  printRows(rows);
}

/** Issue 11's table and, with --prev, the ratios. */
export function printTargets(results) {
  const load = results.machine.loadAvgAtStart.join(" ");
  process.stdout.write(
    `\nissue 11 targets${results.quick ? " (--quick: reduced load, indicative only)" : ""}, load average at start ${load}, at end ${results.machine.loadAvgAtEnd.join(" ")}\n`,
  );
  printRows([
    ["spawner", "measure", "value", "target", "status"],
    ...results.issue11.map((r) => [r.spawner, r.measure, r.value, r.target, r.status]),
  ]);
  if (!results.prevRatios) return;
  process.stdout.write(
    `\ncurrent node / prev (${results.prevDir}); one run each: "within" = within x${PREV_TOLERANCE}, not a measured interval\n`,
  );
  printRows([
    ["measure", "node", "prev", "node/prev", "verdict"],
    ...results.prevRatios.map((r) => [r.measure, r.node ?? "-", r.prev ?? "-", r.ratio, r.verdict]),
  ]);
}
