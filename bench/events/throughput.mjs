// Scenario 3, output throughput: a child writing N MB of 100-byte and of 1 KiB lines as fast as
// it can, (a) into /dev/null (the baseline, median of 3) and (b) into a pipe read by a bare Node
// process (context), both once per run, outside any daemon; then per variant (c) through the
// daemon with no subscriber (only the log sink) and (d) to one include_output subscriber,
// alternated A B B A; (c) and (d) with the daemon's stdout on /dev/null and (full run) on a file.
// Then a rate sweep (bench/events/sweep.mjs).

import { median, round } from "../lib/stats.mjs";
import { runWriterDirect } from "./children.mjs";
import { startDaemon } from "./daemons.mjs";
import { sweep } from "./sweep.mjs";
import { CHECKS } from "./targets.mjs";
import { startWorker } from "./workers.mjs";

export const SIZES = [100, 1024];
const linesOf = (mb, size) => Math.round((mb * 1e6) / size);

/** The writer outside any daemon: /dev/null (median of c.baselineRepeats) and a Node pipe. */
export async function baselines(ctx) {
  const c = ctx.cfg.throughput;
  const out = {};
  for (const size of SIZES) {
    const lines = linesOf(c.mb, size);
    const dev = [];
    for (let i = 0; i < c.baselineRepeats; i++) {
      dev.push((await runWriterDirect(ctx.run, ctx.kit, size, lines, "devnull")).mbps);
    }
    const pipe = await runWriterDirect(ctx.run, ctx.kit, size, lines, "pipe");
    out[size] = {
      devnullMBps: round(median(dev), 1),
      devnullRuns: dev.map((x) => round(x, 1)),
      nodePipeMBps: round(pipe.mbps, 1),
    };
    ctx.run.log(
      `baseline ${size} B lines: /dev/null ${out[size].devnullMBps} MB/s, Node pipe reader ${out[size].nodePipeMBps} MB/s`,
    );
  }
  return out;
}

async function subscriberOutcome(w, id, name, lines, size, child) {
  await w.call("waitFor", { ids: [id], process: name, lines, timeoutMs: 120_000 });
  const s = (await w.call("stats", { ids: [id], groups: [id] })).streams[0];
  await w.call("cancel", { ids: [id] });
  const got = s.perProcess[name] ?? { lines: 0, bytes: 0, lastRecv: 0 };
  const sec = (got.lastRecv - child.startWallMs) / 1000;
  return {
    lines: got.lines,
    of: lines,
    complete: got.lines === lines && !s.ended,
    receivedMBps: round((got.lines * size) / 1e6 / sec, 2),
    receivedLinesPerSec: round(got.lines / sec, 0),
    ended: s.ended?.codeName ?? null,
    gaps: s.gaps,
    dups: s.dups,
  };
}

/** One writer of `lines` x `size` B through daemon `d`, with one subscriber if `withSub`. */
async function throughputOnce(ctx, d, w, { size, lines, withSub, tag }) {
  const { kit } = ctx;
  const name = `writer-${tag}`;
  const id = `sub-${tag}`;
  if (withSub) {
    const streams = [{ id, conn: id, group: id, includeOutput: true, track: true }];
    await w.call("open", { socket: d.socket, streams });
  }
  const cpu0 = d.cpuSec();
  const report = kit.reportFile();
  const args = [kit.linewriter, String(size), String(lines), "0", report, "hold"];
  await d.client.addProcess({ name, args, env: kit.env });
  const child = await kit.waitReport(report, 600_000);
  const sub = withSub ? await subscriberOutcome(w, id, name, lines, size, child) : undefined;
  const cpu = d.cpuSec() - cpu0;
  await d.client.removeProcess(name);
  ctx.run.log(
    `throughput ${tag}: child ${round(child.mbps, 2)} MB/s${sub ? `, subscriber got ${sub.lines}/${lines} at ${sub.receivedMBps} MB/s${sub.ended ? ` then ${sub.ended}` : ""}` : ""}`,
  );
  return {
    size,
    lines,
    MB: round((size * lines) / 1e6, 1),
    childMBps: round(child.mbps, 2),
    childSec: round(child.sec, 2),
    daemonCpuSec: round(cpu, 2),
    ...(sub ? { subscriber: sub } : {}),
  };
}

function sizeResult(noSubs, subs, base, lines) {
  const noSubMBps = round(median(noSubs.map((x) => x.childMBps)), 2);
  const subChildMBps = round(median(subs.map((x) => x.childMBps)), 2);
  const complete = subs.every((x) => x.subscriber.complete);
  const subMBps = round(median(subs.map((x) => x.subscriber.receivedMBps)), 2);
  return {
    noSubscriber: {
      childMBps: noSubMBps,
      ratioToDevnull: round(noSubMBps / base, 4),
      runs: noSubs,
    },
    oneSubscriber: {
      childMBps: subChildMBps,
      childRatioToDevnull: round(subChildMBps / base, 4),
      childRatioToNoSubscriber: round(subChildMBps / noSubMBps, 3),
      subscriber: {
        complete,
        receivedMBps: subMBps,
        receivedLinesPerSec: round(median(subs.map((x) => x.subscriber.receivedLinesPerSec)), 0),
        lines: subs.map((x) => x.subscriber.lines),
        of: lines,
        ended: subs.map((x) => x.subscriber.ended).find(Boolean) ?? null,
      },
      subscriberRatioToDevnull: complete ? round(subMBps / base, 4) : 0,
      runs: subs,
    },
  };
}

/** Both line sizes through one daemon with its stdout on `sink`. */
async function sinkRuns(ctx, variant, w, sink, baseline) {
  const c = ctx.cfg.throughput;
  const d = await startDaemon(ctx, variant, { sink, tag: `throughput-${sink}` });
  const runs = {};
  let k = 0;
  for (const size of SIZES) {
    const lines = linesOf(c.mb, size);
    const noSubs = [];
    const subs = [];
    // Alternated (A B B A ...) so that the machine's drift falls on both alike.
    for (let r = 0; r < c.repeats; r++) {
      for (const withSub of r % 2 === 0 ? [false, true] : [true, false]) {
        const tag = `${variant.label}-${sink}-${size}-${withSub ? "sub" : "nosub"}-${k++}`;
        (withSub ? subs : noSubs).push(
          await throughputOnce(ctx, d, w, { size, lines, withSub, tag }),
        );
      }
    }
    runs[size] = sizeResult(noSubs, subs, baseline[size].devnullMBps, lines);
  }
  return { runs, daemon: await d.stop() };
}

/** The throughput runs and the sweep of `variant`, against the run's `baseline`. */
export async function throughput(ctx, variant, baseline) {
  const w = await startWorker(ctx.run, `throughput worker [${variant.label}]`);
  const result = { daemon: {} };
  for (const sink of ctx.cfg.throughput.sinks) {
    const key = sink === "null" ? "stdoutDevNull" : "stdoutFile";
    result.daemon[key] = await sinkRuns(ctx, variant, w, sink, baseline);
  }
  Object.assign(result, await sweep(ctx, variant, w, baseline));
  await w.stop();
  const devNull = result.daemon.stdoutDevNull.runs;
  const daemons = [...Object.values(result.daemon).map((x) => x.daemon), result.sweepDaemon];
  result.pass = {
    throughputRatio: SIZES.every(
      (s) => devNull[s].oneSubscriber.subscriberRatioToDevnull >= CHECKS.throughputRatio,
    ),
    subscriberComplete: SIZES.every((s) => devNull[s].oneSubscriber.subscriber.complete),
    rss: daemons.every((x) => Math.max(x.rssMaxSampledMB, x.hwmMB) < CHECKS.rssMB),
  };
  return result;
}
