// The text report of bench/restart-latency.mjs: restart latency per variant and scale, the
// ratios against issue 11's targets, the footprint at the largest scale, load and commands.

const fmt = (v, digits = 2) =>
  v === undefined || v === null || Number.isNaN(v) ? "-" : v.toFixed(digits);

/** `rows` (the first one the header) as aligned columns. */
export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) =>
    r
      .map((cell, c) => String(cell).padEnd(widths[c]))
      .join("  ")
      .trimEnd();
  return [
    line(rows[0]),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.slice(1).map(line),
  ].join("\n");
}

function restartTable(scales) {
  const rows = [["variant", "procs", "n", "p50", "p90", "p99", "max", "lost"]];
  for (const { scale, restarts } of scales) {
    for (const [label, { summary: s, timeouts }] of Object.entries(restarts)) {
      rows.push([label, scale, s.n, fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max), timeouts]);
    }
  }
  return table(rows);
}

function targetTable(targets) {
  const rows = [["ratio", "procs", "value", "95% interval", "target", "result"]];
  for (const t of targets) {
    const v = t.value;
    rows.push([
      `${t.ratio} p${t.p}`,
      t.scale,
      v ? `${fmt(v.ratio)}x` : "not run",
      v ? `${fmt(v.lo)}-${fmt(v.hi)}x` : "",
      t.target,
      t.verdict,
    ]);
  }
  return table(rows);
}

function footprintTable(largest) {
  const rows = [["variant", "RSS MiB idle", "after restarts", "shim RSS MiB", "List p50", "p99"]];
  for (const [label, idle] of Object.entries(largest.memoryIdle)) {
    const after = largest.memoryAfter[label];
    const list = largest.list[label];
    rows.push([
      label,
      fmt(idle.parent.rssMB, 1),
      fmt(after?.parent.rssMB, 1),
      idle.shim ? `${fmt(idle.shim.rssMB, 1)} / ${fmt(after?.shim?.rssMB, 1)}` : "",
      list ? fmt(list.p50) : "",
      list ? fmt(list.p99) : "",
    ]);
  }
  return table(rows);
}

function logLines(scales) {
  const counts = scales.flatMap(({ scale, logs }) =>
    Object.entries(logs).map(([label, l]) => `${label}@${scale} ${l.warnings}/${l.errors}`),
  );
  return [`daemon log warnings/errors: ${counts.join(", ")}`];
}

function profileLines(scales) {
  const out = [];
  for (const { scale, profiles } of scales) {
    for (const [label, prof] of Object.entries(profiles ?? {})) {
      out.push(`${label} at ${scale}: ${fmt(prof.busyMs, 0)} ms busy, top self time:`);
      for (const f of prof.top)
        out.push(`  ${fmt(f.ms, 0).padStart(7)} ms ${fmt(f.pct, 1).padStart(5)} %  ${f.fn}`);
    }
  }
  return out;
}

/** The whole report of the result `r`. */
export function report(r) {
  const largest = r.scales[r.scales.length - 1];
  const m = r.machine;
  const load = (l) => l.map((x) => x.toFixed(2)).join(" ");
  const out = [
    `restart latency${r.quick ? " (--quick: indicative only)" : ""}: ${m.cpus} x ${m.cpuModel}, Node ${m.node}, Linux ${m.kernel}`,
    "",
    "SIGKILL -> the replacement's first instruction (ms):",
    restartTable(r.scales),
    "",
    `Ratios within this run (paired bootstrap over rounds, ${r.sizes.resamples} resamples):`,
    targetTable(r.targets),
    "",
    `At ${largest.scale} processes per variant (ListProcesses ms, ${r.sizes.listCalls} calls each):`,
    footprintTable(largest),
    "",
    `load average (1/5/15 min): ${load(m.loadAvgAtStart)} at start, ${load(m.loadAvgAtEnd)} at end`,
    `stamp binary ${r.stampLink}; daemons at ${largest.scale}:`,
    ...Object.entries(largest.commands)
      .filter(([label]) => !["native", "baseline"].includes(label))
      .map(([label, command]) => `  ${label}: ${command}`),
    ...logLines(r.scales),
    ...profileLines(r.scales),
  ];
  return out.join("\n");
}
