// A daemon of one variant for one scenario, on bench/lib/daemon.mjs: no state file, log level
// info, its stdout (the log, with every output line) on /dev/null or on a file in the temp dir,
// never through this process. Its RSS is sampled every 100 ms; stop() returns memory and CPU over
// its life (its shim's too) and, for a file, the log's size. Every daemon's command line is kept
// in `ctx.daemons` for the JSON.

import fs from "node:fs";
import path from "node:path";
import { startProcmond } from "../lib/daemon.mjs";
import { cpuSeconds, procStatus } from "../lib/machine.mjs";
import { stopProc } from "../lib/run.mjs";
import { round } from "../lib/stats.mjs";

const SPAWNERS = { 1: "shim", 2: "node" };

/** What the daemon says it spawns with (GetDaemonInfo; a build before it forks from Node). */
async function spawnerOf(client) {
  try {
    const info = await client.getDaemonInfo({ timeoutMs: 5_000 });
    return { spawner: SPAWNERS[info.spawner] ?? String(info.spawner), shimPid: info.shimPid };
  } catch (err) {
    return {
      spawner: "node (no GetDaemonInfo)",
      getDaemonInfoError: String(err.message).slice(0, 120),
    };
  }
}

function sampleRss(pid) {
  const rss = { max: 0, samples: 0, sum: 0 };
  const timer = setInterval(() => {
    const mb = procStatus(pid).rssMB;
    if (!Number.isFinite(mb)) return;
    rss.samples++;
    rss.sum += mb;
    if (mb > rss.max) rss.max = mb;
  }, 100);
  return { rss, stop: () => clearInterval(timer) };
}

/** The daemon's node flags: --daemon-node-args, then --cpu-prof's into ctx.profDir. */
function nodeArgsOf(ctx, tag) {
  const args = [...ctx.options.daemonNodeArgs];
  if (ctx.profDir) {
    args.push("--cpu-prof", `--cpu-prof-dir=${ctx.profDir}`, `--cpu-prof-name=${tag}.cpuprofile`);
  }
  return args;
}

/**
 * Starts `variant`'s daemon for scenario `tag`, its stdout on /dev/null (`sink` "null") or a file.
 * `ctx`: { run, options, profDir, daemons }.
 */
export async function startDaemon(ctx, variant, { sink, tag }) {
  const n = ctx.daemons.length + 1;
  const fullTag = `${tag}-${variant.label}`;
  const outPath = sink === "file" ? path.join(ctx.run.tmp, `procmond-${n}.log`) : "/dev/null";
  const d = await startProcmond(ctx.run, {
    label: `procmond-${n}-${fullTag}`,
    bin: variant.bin,
    spawner: variant.spawner,
    stateFile: false,
    logLevel: "info",
    stdout: outPath,
    nodeArgs: nodeArgsOf(ctx, fullTag),
    wait: true,
  });
  const info = await spawnerOf(d.client);
  const shimPid = d.shimPid();
  ctx.daemons.push({
    variant: variant.label,
    scenario: tag,
    command: d.command,
    stdout: sink,
    ...info,
  });
  const sampler = sampleRss(d.proc.pid);
  const t0 = performance.now();
  const cpu0 = cpuSeconds(d.proc.pid);
  const shimCpu0 = shimPid ? cpuSeconds(shimPid) : Number.NaN;
  const life = { t0, cpu0, shimPid, shimCpu0, sampler, outPath, sink, tag: fullTag };
  return {
    proc: d.proc,
    socket: d.socket,
    client: d.client,
    spawner: info.spawner,
    cpuSec: () => cpuSeconds(d.proc.pid),
    shimCpuSec: () => (shimPid ? cpuSeconds(shimPid) : Number.NaN),
    stop: () => stopDaemon(ctx, d, life),
  };
}

async function stopDaemon(ctx, d, life) {
  life.sampler.stop();
  const mem = procStatus(d.proc.pid);
  const shimMem = life.shimPid ? procStatus(life.shimPid) : undefined;
  const cpu = cpuSeconds(d.proc.pid) - life.cpu0;
  const shimCpu = life.shimPid ? cpuSeconds(life.shimPid) - life.shimCpu0 : undefined;
  const lifeSec = (performance.now() - life.t0) / 1000;
  d.client.close();
  const stopped = await stopProc(d.proc, 30_000);
  if (!stopped.exited) {
    ctx.run.log(`procmond (${life.tag}) did not stop within 30 s: SIGKILL`);
    d.proc.kill("SIGKILL");
  }
  const { rss } = life.sampler;
  return {
    rssMaxSampledMB: round(rss.max, 1),
    rssMeanMB: round(rss.sum / (rss.samples || 1), 1),
    hwmMB: round(mem.hwmMB, 1),
    cpuPctOfCore: round((100 * cpu) / lifeSec, 1),
    ...(shimMem
      ? {
          shimHwmMB: round(shimMem.hwmMB, 1),
          shimCpuPctOfCore: round((100 * shimCpu) / lifeSec, 1),
        }
      : {}),
    stopMs: round(stopped.ms, 0),
    exitCode: d.proc.exitCode,
    ...(life.sink === "file" ? logFileFacts(life.outPath) : {}),
  };
}

/** The log file's size, whether its head has the "listening" line; then it is removed. */
function logFileFacts(file) {
  const logBytes = fs.statSync(file).size;
  const fd = fs.openSync(file, "r");
  const head = Buffer.alloc(64 * 1024);
  const got = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  fs.rmSync(file, { force: true });
  const listeningLineSeen = head.toString("utf8", 0, got).includes('"msg":"procmond listening"');
  return { logBytes, listeningLineSeen };
}
