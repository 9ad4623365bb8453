// The figures of bench/startup.mjs across rounds, its targets (issue 11), and the printed table.

import { median, round } from "../lib/stats.mjs";

const MiB_PER_KiB = 1 / 1024;

/** The medians (and, for idle ticks, the worst round) of a spawner's two variants. */
function spawnerFigures(rounds, spawner, nativeMs) {
  const add = rounds[`${spawner}-add`] ?? [];
  const config = rounds[`${spawner}-config`] ?? [];
  const med = (list, fn) => median(list.map(fn).filter((v) => v !== undefined));
  const worst = (list, fn) => Math.max(...list.map(fn));
  const eld = (list) => ({
    p50: med(list, (x) => x.eld.p50),
    p99: med(list, (x) => x.eld.p99),
    max: worst(list, (x) => x.eld.max),
  });
  const addMs = med(add, (x) => x.startsMs);
  const configMs = med(config, (x) => x.startsMs);
  return {
    startsAddMs: addMs,
    startsAddVsNative: addMs / nativeMs,
    answeredAddMs: med(add, (x) => x.answeredMs),
    startsConfigMs: configMs,
    startsConfigVsNative: configMs / nativeMs,
    eldAdd: eld(add),
    eldConfig: eld(config),
    rssEmptyMB: med(add, (x) => x.empty.rss.daemonMB),
    rssIdleMB: med(add, (x) => x.rss.daemonMB),
    rssGrowthMB: med(add, (x) => x.rss.daemonMB - x.empty.rss.daemonMB),
    rssAfterGcMB: med(add, (x) => x.afterGc.rssMB),
    heapUsedEmptyMB: med(add, (x) => x.empty.memory.heapUsed / 2 ** 20),
    heapUsedIdleMB: med(add, (x) => x.memory.heapUsed / 2 ** 20),
    heapUsedAfterGcMB: med(add, (x) => x.afterGc.memory.heapUsed / 2 ** 20),
    shimRssMB: spawner === "shim" ? med(add, (x) => x.rss.shimMB) : undefined,
    idleSec: med(add, (x) => x.idle.wallSec),
    idleDaemonTicks: worst(add, (x) => x.idle.daemonTicks),
    idleByThread: add.reduce((a, b) => (b.idle.daemonTicks > a.idle.daemonTicks ? b : a)).idle
      .daemonTicksByThread,
    idleShimTicks: spawner === "shim" ? worst(add, (x) => x.idle.shimTicks) : undefined,
    notQuiet: add.filter((x) => !x.settle.quiet).length,
    connectMs: med(config, (x) => x.connectMs),
    firstListMs: med(config, (x) => x.listMs),
  };
}

const ms = (v) => `${round(v, 0)} ms`;
const mb = (v) => `${round(v, 1)} MiB`;
const row = (figure, measured, target, pass, profile) => ({
  figure,
  measured,
  target,
  pass,
  profile,
});

/** Start time and event-loop delay, for AddProcess and for --config. */
function startTargets(s, f, count) {
  const rows = [];
  for (const [kind, how, starts, ratio, eld] of [
    ["add", "AddProcess", f.startsAddMs, f.startsAddVsNative, f.eldAdd],
    ["config", "--config", f.startsConfigMs, f.startsConfigVsNative, f.eldConfig],
  ]) {
    const profile = [`${s}-${kind}`, "starts"];
    const measured = `${ms(starts)} = ${ratio.toFixed(2)}x native`;
    rows.push(row(`start ${count} (${s}, ${how})`, measured, "<= 2x native", ratio <= 2, profile));
    const delay = `${round(eld.p99, 1)} ms (p50 ${round(eld.p50, 1)}, max ${round(eld.max, 1)})`;
    rows.push(row(`event-loop delay p99 (${s}, ${how})`, delay, "<= 5 ms", eld.p99 <= 5, profile));
  }
  return rows;
}

/** RSS and idle CPU at `count` idle (the daemon's and the shim's), and the time to connect. */
function footprintTargets(s, f, count) {
  const idle = `over ${round(f.idleSec, 0)} s`;
  const rows = [
    row(
      `daemon RSS at ${count} idle (${s})`,
      `${mb(f.rssIdleMB)} = empty ${mb(f.rssEmptyMB)} + ${mb(f.rssGrowthMB)}`,
      "<= empty + 8 MiB",
      f.rssGrowthMB <= 8,
      [`${s}-add`, "starts"],
    ),
    row(
      `daemon idle CPU ${idle} (${s})`,
      `${f.idleDaemonTicks} ticks`,
      "0 ticks",
      f.idleDaemonTicks === 0,
      [`${s}-add`, "idle"],
    ),
    row(
      `connect, --config of ${count} (${s})`,
      `${ms(f.connectMs)} (first ListProcesses ${ms(f.firstListMs)})`,
      "<= 300 ms",
      f.connectMs <= 300,
      [`${s}-config`, "boot"],
    ),
  ];
  if (f.shimRssMB !== undefined) {
    const limit = 4 + 2 * count * MiB_PER_KiB;
    rows.push(
      row(
        `shim RSS at ${count} idle`,
        mb(f.shimRssMB),
        `<= ${round(limit, 2)} MiB`,
        f.shimRssMB <= limit,
      ),
    );
    rows.push(
      row(`shim idle CPU ${idle}`, `${f.idleShimTicks} ticks`, "0 ticks", f.idleShimTicks === 0),
    );
  }
  return rows;
}

/** r.figures and r.targets from r.rounds. */
export function evaluate(r) {
  const nativeMs = median(r.rounds.native.map((x) => x.startsMs));
  r.figures = { nativeStartsMs: nativeMs };
  r.targets = [];
  for (const s of r.config.spawners) {
    const f = spawnerFigures(r.rounds, s, nativeMs);
    r.figures[s] = f;
    r.targets.push(
      ...startTargets(s, f, r.config.count),
      ...footprintTargets(s, f, r.config.count),
    );
  }
}

export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  const line = (row) =>
    row
      .map((cell, c) => String(cell).padEnd(widths[c]))
      .join("  ")
      .trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)];
}

/** The printed report: machine, daemons, the targets table, the other figures. */
export function formatReport(r) {
  const load = (l) => l.map((x) => x.toFixed(2)).join(" ");
  const out = [
    `procmond start-up and footprint${r.config.quick ? " (--quick)" : ""}: ${r.config.count} processes, ${r.config.rounds} round(s), median`,
    `${r.machine.cpuModel}, ${r.machine.cpus} CPUs, Node ${r.machine.node}, Linux ${r.machine.kernel}; load ${load(r.machine.loadAvgAtStart)} at start, ${load(r.machine.loadAvgAtEnd)} at end`,
    `native floor (posix_spawn, ${r.config.count} children): ${round(r.figures.nativeStartsMs, 0)} ms`,
    `daemons (all in the JSON): ${Object.values(r.daemons).find((c) => c.includes("procmond"))}`,
    "",
    ...table([
      ["figure", "measured", "target", "result"],
      ...r.targets.map((t) => [t.figure, t.measured, t.target, t.pass ? "PASS" : "MISS"]),
    ]),
    "",
  ];
  for (const s of r.config.spawners) {
    const f = r.figures[s];
    const mb = (v) => round(v, 1);
    out.push(
      `${s}: last AddProcess answer ${round(f.answeredAddMs, 0)} ms; V8 heapUsed empty ${mb(f.heapUsedEmptyMB)} MiB, at ${r.config.count} idle ${mb(f.heapUsedIdleMB)} MiB, after a full GC ${mb(f.heapUsedAfterGcMB)} MiB (RSS then ${mb(f.rssAfterGcMB)} MiB)${f.notQuiet ? `; ${f.notQuiet} round(s) never went quiet before the idle window` : ""}`,
    );
  }
  for (const s of r.config.spawners) {
    const threads = Object.entries(r.figures[s].idleByThread);
    if (threads.length === 0) continue;
    const list = threads.map(([comm, ticks]) => `${comm} ${ticks}`).join(", ");
    out.push(`${s}: the daemon's idle ticks by thread (its worst round): ${list}`);
  }
  if (r.config.cpuProf) {
    out.push("--cpu-prof: V8's sampling thread runs all along; times and idle ticks are inflated");
  }
  out.push("event-loop delay: monitorEventLoopDelay at 1 ms, as Node records it (the gap between");
  out.push("two samples: an idle loop reads ~1 ms), from the first call (AddProcess) or the first");
  out.push("connect (--config) to the last stamp. CPU ticks are 1/CLK_TCK s of utime+stime.");
  return out.join("\n");
}
