// Scenario 1, fan-out: 100 WatchEvents subscribers (include_output, every process) as 10 gRPC
// connections x 10 streams in 2 worker processes, while restarters (`sh -c 'sleep S; exit 0'`,
// threshold 10 ms: restarted at once) and printers (linewriter, 64-byte lines) run. Measures
// deliveries/s, delivery latency (the event's time against the subscriber's clock at decoding),
// seq gaps and duplicates per subscriber, RESOURCE_EXHAUSTED endings, ListProcesses latency
// meanwhile, the daemon's RSS and CPU (and its shim's).

import fs from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { summarize } from "../lib/stats.mjs";
import { startDaemon } from "./daemons.mjs";
import { fanoutResult } from "./fanout-result.mjs";
import { startWorker } from "./workers.mjs";

const ms = (n) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

/** How many sockets `pid` holds. */
function socketsOf(pid) {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {}
  }
  return n;
}

/** Opens c.conns x c.perConn streams spread over `workers`; the connections the daemon gained. */
async function openSubscribers(d, workers, c) {
  const before = socketsOf(d.proc.pid);
  await Promise.all(
    workers.map((w, wi) => {
      const streams = [];
      for (let ci = wi; ci < c.conns; ci += c.workers) {
        for (let k = 0; k < c.perConn; k++) {
          streams.push({ id: `c${ci}s${k}`, conn: `c${ci}`, group: "setup", includeOutput: true });
        }
      }
      return w.call("open", { socket: d.socket, streams });
    }),
  );
  return socketsOf(d.proc.pid) - before;
}

/** The restarters and printers; added ten at a time, restarters first. */
async function addLoad(d, kit, c, restarterArgs) {
  const restarters = Array.from({ length: c.restarters }, (_, i) => ({
    name: `restarter-${i}`,
    args: restarterArgs,
    env: kit.env,
    threshold: ms(10),
    minRestartDelay: ms(100),
    maxRestartDelay: ms(1000),
  }));
  const printers = Array.from({ length: c.printers }, (_, i) => ({
    name: `printer-${i}`,
    args: [kit.linewriter, String(c.printerBytes), "0", String(c.printerRate), "-"],
    env: kit.env,
  }));
  // Ten at a time: with the Node spawner each spawn is synchronous in the daemon, and a burst of
  // 60 would block its loop for seconds. Printers last, so set-up leaves no backlog of output.
  const specs = [...restarters, ...printers];
  const t0 = performance.now();
  for (let i = 0; i < specs.length; i += 10) {
    await Promise.all(specs.slice(i, i + 10).map((spec) => d.client.addProcess(spec)));
  }
  return { names: specs.map((s) => s.name), addMs: performance.now() - t0 };
}

async function snapshot(d, workers) {
  const [list, ...ws] = await Promise.all([
    d.client.listProcesses({ timeoutMs: 30_000 }),
    ...workers.map((w) => w.call("snapshot")),
  ]);
  return {
    t: performance.now(),
    seq: Number(list.lastEventSeq),
    restarts: list.processes.reduce((a, p) => a + p.restartCount, 0),
    deliveries: ws.reduce((a, w) => a + w.deliveries, 0),
    daemonCpu: d.cpuSec(),
    shimCpu: d.shimCpuSec(),
    workerCpu: workers.map((w) => w.cpuSec()),
  };
}

/** The measured window: snapshots at its ends, a ListProcesses every 250 ms in between. */
async function measureWindow(d, workers, windowSec) {
  await Promise.all(workers.map((w) => w.call("phase", { group: "window" })));
  const s0 = await snapshot(d, workers);
  const startWall = Date.now();
  const rpcMs = [];
  const end = performance.now() + windowSec * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await d.client.listProcesses({ timeoutMs: 30_000 });
    rpcMs.push(performance.now() - t);
    await sleep(Math.max(0, Math.min(250, end - performance.now())));
  }
  const s1 = await snapshot(d, workers);
  await Promise.all(workers.map((w) => w.call("phase", { group: "drain" })));
  return { s0, s1, startWall, rpc: summarize(rpcMs) };
}

/** Removes the load, waits for every subscriber to reach the last seq, collects their stats. */
async function drain(d, workers, names) {
  await Promise.all(names.map((name) => d.client.removeProcess(name, { timeoutMs: 60_000 })));
  const finalSeq = Number((await d.client.listProcesses()).lastEventSeq);
  const waits = await Promise.all(
    workers.map((w) => w.call("waitFor", { seq: finalSeq, timeoutMs: 60_000 })),
  );
  const stats = await Promise.all(workers.map((w) => w.call("stats", {})));
  return { finalSeq, drainTimedOut: waits.some((x) => x.timedOut), stats };
}

/** Runs fan-out load `load` ({label, restartSleep, printerRate}) against `variant`'s daemon. */
export async function fanout(ctx, variant, load) {
  const c = { ...ctx.cfg.fanout, ...load };
  const restarterArgs = ["/bin/sh", "-c", `sleep ${c.restartSleep}; exit 0`];
  ctx.run.log(
    `fan-out ${c.label} [${variant.label}]: ${c.conns * c.perConn} subscribers, ${c.restarters} x ${restarterArgs.join(" ")}, ${c.printers} printers, ${c.windowSec} s`,
  );
  const d = await startDaemon(ctx, variant, { sink: "null", tag: `fanout-${c.label}` });
  const workers = [];
  for (let i = 0; i < c.workers; i++)
    workers.push(await startWorker(ctx.run, `subscriber worker ${i}`));
  const connections = await openSubscribers(d, workers, c);
  const { names, addMs } = await addLoad(d, ctx.kit, c, restarterArgs);
  await sleep(c.warmupSec * 1000);
  const window = await measureWindow(d, workers, c.windowSec);
  const drained = await drain(d, workers, names);
  for (const w of workers) await w.stop();
  const mem = await d.stop();
  const result = fanoutResult({ c, restarterArgs, connections, addMs, window, drained, mem });
  result.spawner = d.spawner;
  ctx.run.log(
    `fan-out ${c.label} [${variant.label}]: ${result.eventsProducedPerSec} events/s, ${result.deliveriesPerSec} deliveries/s, p50 ${result.latencyMs.p50} ms p99 ${result.latencyMs.p99} ms, lost ${result.lostEvents}, RSS max ${mem.rssMaxSampledMB} MB, daemon CPU ${result.daemon.cpuPctOfCoreInWindow} %, ${result.restartsPerSec} restarts/s`,
  );
  return result;
}
