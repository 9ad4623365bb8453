// The soak's results: the JSON of bench/results/soak.json and the summary printed on stdout.

import path from "node:path";
import { ROOT } from "../lib/daemon.mjs";
import { percentile, round } from "../lib/stats.mjs";
import { DAEMON_KILL_TIME } from "./daemon.mjs";

/** The nearest-rank percentile of an ascending array, null (not NaN) when empty. */
const pct = (sorted, p) => (sorted.length === 0 ? null : percentile(sorted, p));
/** To a tenth; null when there is nothing. */
const tenth = (x) => round(x) ?? null;

function ackedLatency(ackLatencies) {
  return Object.fromEntries(
    Object.entries(ackLatencies).map(([op, ms]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      return [op, { p50: pct(sorted, 50), p90: pct(sorted, 90), max: sorted.at(-1) }];
    }),
  );
}

function warnCounts(lines) {
  const counts = {};
  for (const l of lines) {
    if ((l.obj?.level ?? 0) >= 40) counts[l.obj.msg] = (counts[l.obj.msg] ?? 0) + 1;
  }
  return counts;
}

function operations(soak) {
  const { stats } = soak;
  return {
    started: stats.opsStarted,
    acknowledged: stats.opsAcked,
    rejected: stats.opsRejected,
    uncertain: stats.opsUncertain,
    notReached: stats.opsNotReached,
    uncertainResolvedByListing: stats.uncertainResolved,
    stopsFinishedAfterAdoption: stats.stopsFinishedAfterAdoption,
    backoffWaitedAtCheck: [...stats.backoffAtCheck],
    spawnFailedInShimKill: stats.spawnFailedInShimKill,
    unexpectedErrors: stats.opsUnexpectedError,
    byOp: stats.byOp,
    ackedLatencyMs: ackedLatency(soak.ackLatencies),
  };
}

/** The tallies of the survival checks (spec v1.1 §A). */
function survivalResults(soak) {
  const { tallies: t, watcher: w } = soak.survival;
  const byKind = soak.checks.byKind;
  const failedOf = (kind) => byKind[kind]?.failed ?? 0;
  return {
    daemonKills: soak.killsDone,
    shimKills: t.shimKills,
    shimReplacedMs: t.shimReplacedMs,
    adoptedPidChecks: { checked: t.adoptedChecked, failed: t.adoptedFailed },
    shimRestartChecks: { checked: t.shimRestartChecked, failed: t.shimRestartFailed },
    printer: {
      runs: w.printed.size,
      linesChecked: t.printedLinesChecked,
      missingLines: t.missingLines,
      duplicateLines: t.duplicateLines,
      malformedLines: w.malformed,
    },
    outageExits: { checked: t.outageExitsChecked, reported: t.outageExitsReported },
    seqContinuation: byKind["seq-continuation"] ?? { passed: 0, failed: 0 },
    watcherResumes: w.resumes,
    watcherErrors: w.errors,
    failures:
      failedOf("adopted") +
      failedOf("shim-restart") +
      failedOf("outage-exit") +
      failedOf("printer-lines") +
      failedOf("seq-continuation") +
      failedOf("watcher"),
  };
}

/** The results of the run: `outcome` is runSoak()'s, `fatal` what aborted it. */
export function soakResults(soak, outcome, fatal) {
  const { opts } = soak;
  const serving = soak.restarts.map((r) => r.servingMs).sort((a, b) => a - b);
  return {
    date: new Date().toISOString(),
    node: process.version,
    options: {
      kills: opts.kills,
      shimKills: opts.shimKills,
      seed: opts.seed,
      seconds: opts.seconds,
      clients: opts.clients,
      names: opts.names,
      logLevel: opts.logLevel,
      startupKillRate: opts.startupKillRate,
      daemonKillTime: DAEMON_KILL_TIME,
      daemon: opts.daemonBin,
    },
    ok: fatal === undefined && soak.checks.failed === 0 && soak.violations.length === 0,
    fatal: fatal === undefined ? null : String(fatal?.stack ?? fatal),
    killsDone: soak.killsDone,
    survival: survivalResults(soak),
    startupKillsDone: soak.startupKillsDone,
    startupKills: soak.startupKills,
    stoppedEarlyByTimeBudget: outcome?.stoppedEarly ?? null,
    totalMs: Date.now() - soak.t0,
    ops: operations(soak),
    checks: soak.checks,
    timeToServingMs: {
      max: tenth(serving.at(-1)),
      p50: tenth(pct(serving, 50)),
      p90: tenth(pct(serving, 90)),
      min: tenth(serving[0]),
      all: serving.map(tenth),
    },
    restarts: soak.restarts.map((r) => ({ ...r, servingMs: tenth(r.servingMs) })),
    interruptedPerKill: soak.stats.interruptedPerKill,
    shutdown: outcome?.shutdown ?? null,
    daemonWarnings: warnCounts(soak.daemons.lines),
    warnings: soak.warnings,
    violations: soak.violations,
  };
}

/** The summary of `results` (soakResults()) as printed; `files`: { results, daemonLog }. */
export function soakSummary(results, files, fatal) {
  const { ops, checks, violations, shutdown, timeToServingMs: t, survival: sv } = results;
  const rel = (file) => path.relative(ROOT, file);
  const startup = results.startupKillsDone ? ` (+${results.startupKillsDone} during start-up)` : "";
  const lines = [
    "",
    "procmond soak",
    `  seed                      ${results.options.seed}`,
    `  daemon kills done         ${results.killsDone}/${results.options.kills}${startup}${results.stoppedEarlyByTimeBudget ? " (time budget)" : ""}`,
    `  shim kills done           ${sv.shimKills}/${results.options.shimKills} (new shim in ${sv.shimReplacedMs.join(", ") || "-"} ms)`,
    `  operations                ${ops.started} started: ${ops.acknowledged} acknowledged, ${ops.rejected} rejected (NOT_FOUND/ALREADY_EXISTS), ${ops.uncertain} uncertain, ${ops.notReached} not reached (daemon down, retried)`,
    `  invariant checks          ${checks.passed} passed, ${checks.failed} failed`,
    ...Object.entries(checks.byKind).map(
      ([k, v]) => `    ${k.padEnd(24)}${v.passed} passed, ${v.failed} failed`,
    ),
    `  adopted-pid checks        ${sv.adoptedPidChecks.checked} checked, ${sv.adoptedPidChecks.failed} failed`,
    `  shim-restart checks       ${sv.shimRestartChecks.checked} checked, ${sv.shimRestartChecks.failed} failed`,
    `  printed lines             ${sv.printer.linesChecked} checked over ${sv.printer.runs} runs of the printer: ${sv.printer.missingLines} missing, ${sv.printer.duplicateLines} duplicates`,
    `  outage exits              ${sv.outageExits.checked} checked, ${sv.outageExits.reported} reported`,
    `  seq continuation          ${sv.seqContinuation.passed} passed, ${sv.seqContinuation.failed} failed`,
    `  survival failures         ${sv.failures}`,
    `  violations                ${violations.length}`,
    `  time to serving (ms)      max ${t.max}, p50 ${t.p50}, p90 ${t.p90}`,
    `  shutdown                  ${shutdown ? `exit ${shutdown.exitCode} in ${shutdown.ms} ms, ${shutdown.leftovers.length} leftovers, socket removed ${shutdown.socketRemoved}` : "not reached"}`,
    `  total time                ${(results.totalMs / 1000).toFixed(1)} s`,
    `  results                   ${rel(files.results)}, daemon log ${rel(files.daemonLog)}`,
  ];
  if (fatal) lines.push(`  RUN ABORTED: ${fatal?.message ?? fatal}`);
  for (const v of violations.slice(0, 10)) {
    lines.push(
      `  VIOLATION ${v.kind} ${v.label ?? ""} ${v.name ?? ""}: expected ${JSON.stringify(v.expected)}, found ${JSON.stringify(v.found)}`,
    );
  }
  if (violations.length > 10) {
    lines.push(`  ... ${violations.length - 10} more in ${rel(files.results)}`);
  }
  return `${lines.join("\n")}\n`;
}
