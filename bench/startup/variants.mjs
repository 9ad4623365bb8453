// The variants of bench/startup.mjs, one run each: the native floor, and procmond started empty
// then given COUNT AddProcess calls ("add"), or started with a --config of COUNT ("config").
// Each returns its figures (ms, MiB, ticks) and, under --cpu-prof, the time windows of its
// daemon's profile to look into.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startProcmond } from "../lib/daemon.mjs";
import { CLK_TCK, idleCpu, procStatus, withFdLimit } from "../lib/machine.mjs";
import { stopProc } from "../lib/run.mjs";
import { names, pool } from "../lib/stamps.mjs";
import {
  firstConnect,
  PROBE_URL,
  probeControl,
  threadTicks,
  ticksGrown,
  waitQuiet,
} from "./control.mjs";

const now = () => process.hrtime.bigint();
const msSince = (t0, t1 = now()) => Number(t1 - t0) / 1e6;
/** Time windows { name: [fromNs, toNs] } (bigint hrtime) as JSON-safe strings. */
const daemonWindows = (windows) =>
  Object.fromEntries(Object.entries(windows).map(([w, range]) => [w, range.map(String)]));

/** The ms from `t0` to the latest stamp of `tags`. */
function lastStampMs(board, tags, t0) {
  let last = 0n;
  for (const tag of tags) {
    const { ns } = board.last.get(tag);
    if (ns > last) last = ns;
  }
  return msSince(t0, last);
}

/** The native floor: native-parent (posix_spawn) starting `count` stamp children. */
export async function runNative(ctx, prefix) {
  const { run, board, cfg } = ctx;
  const tags = names(prefix, cfg.count);
  const argv = [board.stamp, board.fifo, String(cfg.count), prefix];
  const { file, args } = withFdLimit(argv, cfg.count, board.nativeParent);
  const stamped = board.all(tags, cfg.stampTimeoutMs);
  const t0 = now();
  const proc = run.track(spawn(file, args, { stdio: ["ignore", "ignore", "inherit"] }), "native");
  await stamped;
  const startsMs = lastStampMs(board, tags, t0);
  const stop = await stopProc(proc, 60_000);
  board.forget(tags);
  if (!stop.exited) throw new Error("native-parent did not exit");
  const command = [board.nativeParent, ...argv].join(" ").replaceAll(run.tmp, "$TMP");
  return { startsMs, command };
}

/** procmond under the event-loop probe (and --cpu-prof if asked); `wait` as startProcmond's. */
async function launch(ctx, label, spawner, args, wait) {
  const probe = probeControl(path.join(ctx.run.tmp, `probe-${label}`));
  const nodeArgs = ["--import", PROBE_URL];
  if (ctx.profDir) {
    nodeArgs.push(
      "--cpu-prof",
      `--cpu-prof-dir=${ctx.profDir}`,
      `--cpu-prof-name=${label}.cpuprofile`,
    );
  }
  const daemon = await startProcmond(ctx.run, {
    label,
    spawner,
    args,
    nodeArgs,
    children: ctx.cfg.count,
    env: probe.env,
    wait,
  });
  const send = (command) => probe.send(daemon.proc.pid, command);
  return { daemon, send };
}

/** Stops `daemon` (its processes with it) and forgets their stamps: { shutdownMs, profile }. */
async function stopDaemon(ctx, daemon, tags) {
  const stop = await stopProc(daemon.proc, 60_000);
  daemon.client.close();
  ctx.board.forget(tags);
  if (!stop.exited) throw new Error(`${daemon.label} did not exit within 60 s of SIGTERM`);
  if (stop.code !== 0) throw new Error(`${daemon.label} exited with ${stop.code}`);
  const profile = ctx.profDir ? path.join(ctx.profDir, `${daemon.label}.cpuprofile`) : undefined;
  return { shutdownMs: stop.ms, profile };
}

/** VmRSS in MiB of the daemon and of its shim (undefined without one). */
function rss(pid, shim) {
  return { daemonMB: procStatus(pid).rssMB, shimMB: shim ? procStatus(shim).rssMB : undefined };
}

/** The idle figures of a daemon holding `count` processes, then its heap before and after GC. */
async function idleFigures(ctx, daemon, send, shim) {
  const pid = daemon.proc.pid;
  const pids = shim ? [pid, shim] : [pid];
  const settle = await waitQuiet(pids, 500, ctx.cfg.settleTimeoutMs);
  const idleRss = rss(pid, shim);
  const { memory } = await send("mem");
  const threads = threadTicks(pid);
  const from = now();
  const [cpu, shimCpu] = await idleCpu(pids, ctx.cfg.idleSec);
  const to = now();
  const byThread = ticksGrown(threads, threadTicks(pid));
  const gc = await send("gc");
  const ticks = (c) => (c ? Math.round(c.cpuSec * CLK_TCK) : undefined);
  return {
    settle,
    rss: idleRss,
    memory,
    idle: {
      wallSec: cpu.wallSec,
      daemonTicks: ticks(cpu),
      daemonTicksByThread: byThread,
      shimTicks: ticks(shimCpu),
    },
    afterGc: { rssMB: procStatus(pid).rssMB, memory: gc.after },
    window: [from, to],
  };
}

/** procmond started empty, then `count` AddProcess calls, `cfg.concurrency` in flight. */
export async function runAdd(ctx, spawner, prefix, label) {
  const { board, cfg } = ctx;
  const { daemon, send } = await launch(ctx, label, spawner, [], true);
  const readyAt = now();
  const pid = daemon.proc.pid;
  const shim = spawner === "shim" ? daemon.shimPid() : undefined;
  if (spawner === "shim" && !shim) throw new Error(`${label}: no procmon-shim child`);
  // Empty: serving, no processes, and the start-up's own work (module loading, GC) over.
  const settle = await waitQuiet(shim ? [pid, shim] : [pid], 500, cfg.settleTimeoutMs);
  const empty = { settle, rss: rss(pid, shim), memory: (await send("mem")).memory };
  const tags = names(prefix, cfg.count);
  const stamped = board.all(tags, cfg.stampTimeoutMs);
  await send("start");
  const t0 = now();
  await pool(tags, cfg.concurrency, (name) => daemon.client.addProcess(board.spec(name)));
  const answeredMs = msSince(t0);
  await stamped;
  const { eld, atNs } = await send("stop");
  const startsMs = lastStampMs(board, tags, t0);
  const idle = await idleFigures(ctx, daemon, send, shim);
  const stop = await stopDaemon(ctx, daemon, tags);
  const windows = { boot: [daemon.startedAt, readyAt], starts: [t0, BigInt(atNs)] };
  windows.idle = idle.window;
  delete idle.window;
  return {
    command: daemon.command,
    startsMs,
    answeredMs,
    eld,
    empty,
    ...idle,
    ...stop,
    windows: daemonWindows(windows),
  };
}

/** A --config file of `tags`, each a stamp child. */
function writeConfig(ctx, prefix, tags) {
  const file = path.join(ctx.run.tmp, `${prefix}config.yaml`);
  const q = JSON.stringify;
  const lines = ["processes:"];
  for (const tag of tags) {
    lines.push(
      `  - name: ${tag}`,
      `    args: [${q(ctx.board.stamp)}, ${q(ctx.board.fifo)}, ${tag}]`,
    );
  }
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** procmond started with a --config of `count`: connect, first answer, all stamped. */
export async function runConfig(ctx, spawner, prefix, label) {
  const { board, cfg } = ctx;
  const tags = names(prefix, cfg.count);
  const config = writeConfig(ctx, prefix, tags);
  const stamped = board.all(tags, cfg.stampTimeoutMs);
  const { daemon, send } = await launch(ctx, label, spawner, ["--config", config], false);
  const t0 = daemon.startedAt;
  const connectMs = await firstConnect(daemon.socket, t0, daemon.proc);
  // The grpc client connects only now, so its reconnect backoff never delays the first answer.
  const [, listMs] = await Promise.all([send("start"), daemon.ready(30_000)]);
  await stamped;
  const { eld, atNs } = await send("stop");
  const startsMs = lastStampMs(board, tags, t0);
  const stop = await stopDaemon(ctx, daemon, tags);
  const connectAt = t0 + BigInt(Math.round(connectMs * 1e6));
  const windows = { boot: [t0, connectAt], starts: [t0, BigInt(atNs)] };
  return {
    command: daemon.command,
    connectMs,
    listMs,
    startsMs,
    eld,
    ...stop,
    windows: daemonWindows(windows),
  };
}
