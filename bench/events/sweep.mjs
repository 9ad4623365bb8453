// The throughput scenario's rate sweep: the highest paced line rate that one subscriber follows
// to the end without being ended, with the writer not held back by a full pipe.

import { round } from "../lib/stats.mjs";
import { startDaemon } from "./daemons.mjs";
import { mergeHists } from "./histogram.mjs";

async function sweepStep(ctx, d, w, size, rate) {
  const { kit } = ctx;
  const lines = Math.max(1, Math.round(rate * ctx.cfg.throughput.sweepSec));
  const id = `sweep-${size}-${rate}`;
  const name = `paced-${size}-${rate}`;
  const report = kit.reportFile();
  await w.call("open", {
    socket: d.socket,
    streams: [{ id, conn: id, group: id, includeOutput: true, track: true }],
  });
  const args = [kit.linewriter, String(size), String(lines), String(rate), report, "hold"];
  await d.client.addProcess({ name, args, env: kit.env });
  const child = await kit.waitReport(report, 120_000);
  await w.call("waitFor", { ids: [id], process: name, lines, timeoutMs: 60_000 });
  const st = await w.call("stats", { ids: [id], groups: [id] });
  const s = st.streams[0];
  await w.call("cancel", { ids: [id] });
  await d.client.removeProcess(name);
  const got = s.perProcess[name]?.lines ?? 0;
  return {
    rate,
    achievedLinesPerSec: round(child.lines / child.sec, 0),
    MBps: round((rate * size) / 1e6, 2),
    got,
    of: lines,
    ended: s.ended?.codeName ?? null,
    latencyMs: mergeHists([st.hists[id]]),
    ok: got === lines && !s.ended,
    // A writer held back by a full pipe did not run at the rate: the daemon slowed it. (Some
    // slack for a scheduling hiccup near the end, which a paced writer cannot catch up on.)
    childSlowed: child.sec > (lines / rate) * 1.05 + 0.1,
  };
}

/** The sweep of `variant` at both line sizes: { sweep: {size: ...}, sweepDaemon }. */
export async function sweep(ctx, variant, w, baseline) {
  const d = await startDaemon(ctx, variant, { sink: "null", tag: "sweep" });
  const out = {};
  for (const [size, rates] of Object.entries(ctx.cfg.throughput.rates)) {
    const steps = [];
    for (const rate of rates) {
      const step = await sweepStep(ctx, d, w, Number(size), rate);
      steps.push(step);
      ctx.run.log(
        `sweep ${size} B x ${rate}/s [${variant.label}]: ${step.ok ? "followed" : `NOT followed (${step.got}/${step.of}, ${step.ended})`}${step.childSlowed ? ` but the writer only managed ${step.achievedLinesPerSec}/s` : ""}, p99 ${step.latencyMs.p99} ms`,
      );
      if (!step.ok || step.childSlowed) break;
    }
    const best = steps.filter((s) => s.ok && !s.childSlowed).at(-1);
    out[size] = {
      steps,
      maxFollowedLinesPerSec: best?.rate ?? 0,
      maxFollowedMBps: best?.MBps ?? 0,
      ratioToDevnull: round((best?.MBps ?? 0) / baseline[size].devnullMBps, 5),
    };
  }
  return { sweep: out, sweepDaemon: await d.stop() };
}
