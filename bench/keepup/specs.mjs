// keepup --specs=N: the retention issue's repro. N cycles of adding and removing a process whose
// spec carries 250 kB of env (five variables of 50,000 B: execve takes no string over 128 KiB),
// then the daemon's RSS and heap: at the start, after the cycles, peak, after --specs-settle-ms
// (default 3000) idle, and the heap still live after a full GC (the probe runs gc() on SIGUSR2;
// the daemon gets --expose-gc for it).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "../lib/run.mjs";
import { round } from "../lib/stats.mjs";
import { killDaemon, memoryOf, readJson, startDaemonIn, stopDaemon } from "./daemon.mjs";

const CALL_TIMEOUT_MS = 15_000;
const GC_REPORT_TIMEOUT_MS = 5_000;

/** The add/rm cycles: the seconds they took. */
async function cycles(client, count, grandchildren) {
  const env = {};
  for (let i = 0; i < 5; i++) env[`BIG_${i}`] = String(i).repeat(50_000);
  const o = { timeoutMs: CALL_TIMEOUT_MS };
  const started = performance.now();
  for (let cycle = 0; cycle < count; cycle++) {
    const added = await client.addProcess({ name: `big-${cycle}`, args: ["sleep", "100"], env }, o);
    grandchildren.add(added.pid);
    await client.removeProcess(`big-${cycle}`, o);
    grandchildren.delete(added.pid);
  }
  return (performance.now() - started) / 1000;
}

/** The heap live after a full GC in the daemon, as its probe reports it on SIGUSR2 (or null). */
async function liveHeap(daemon) {
  const gcFile = `${daemon.probeFile}.gc`;
  daemon.proc.kill("SIGUSR2");
  return waitFor(() => readJson(gcFile), GC_REPORT_TIMEOUT_MS, "the probe's gc report", 50).catch(
    () => null,
  );
}

/** Round `index` of `build`. */
async function specsRound(run, o, build, index, grandchildren) {
  const dir = fs.mkdtempSync(path.join(run.tmp, `s${index}-`));
  const loadStart = os.loadavg();
  const daemon = await startDaemonIn(run, o, build, dir, index);
  const pid = daemon.proc.pid;
  try {
    const before = memoryOf(pid);
    const cyclesS = await cycles(daemon.client, o.specs, grandchildren);
    const after = memoryOf(pid);
    // Idle, on purpose: what the daemon gives back by itself.
    await sleep(o.specsSettleMs);
    const settled = memoryOf(pid);
    const live = await liveHeap(daemon);
    const afterGc = memoryOf(pid);
    daemon.client.close();
    await stopDaemon(daemon.proc);
    const probe = readJson(daemon.probeFile) ?? null;
    return {
      build: build.label,
      round: index,
      cycles: o.specs,
      cyclesS: round(cyclesS),
      rssStartMiB: round(before?.rssMiB),
      rssAfterMiB: round(after?.rssMiB),
      rssSettledMiB: round(settled?.rssMiB),
      rssHwmMiB: round(settled?.hwmMiB),
      heapPeakMiB: probe ? round(probe.heapUsedPeakBytes / 2 ** 20) : null,
      heapLiveMiB: live ? round(live.heapUsedAfterGcBytes / 2 ** 20) : null,
      rssAfterGcMiB: round(afterGc?.rssMiB),
      load: [round(loadStart[0]), round(os.loadavg()[0])],
    };
  } finally {
    daemon.client.close();
    await killDaemon(daemon.proc);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Every round of every build, printed, and their JSON in the --out file's "-specs" sibling. */
export async function runSpecs(run, o, startedAt, grandchildren) {
  console.log(
    `keepup --specs: ${o.rounds} rounds per build of ${o.specs} add/rm cycles of a 250 kB env, ` +
      `builds ${o.daemons.map((d) => d.label).join(", ")}; load ${os
        .loadavg()
        .map((x) => round(x))
        .join(" ")}`,
  );
  const rounds = [];
  for (let i = 0; i < o.rounds; i++) {
    for (const build of o.daemons) {
      const x = await specsRound(run, o, build, i + 1, grandchildren);
      console.log(
        `${x.build.padEnd(8)} #${String(x.round).padEnd(2)} RSS ${x.rssStartMiB} -> ${x.rssAfterMiB} MiB ` +
          `(${x.rssSettledMiB} after ${o.specsSettleMs} ms idle, peak ${x.rssHwmMiB}), heap peak ` +
          `${x.heapPeakMiB} MiB, live after a full GC ${x.heapLiveMiB} MiB (RSS then ${x.rssAfterGcMiB} MiB), ${x.cyclesS} s | load ${x.load.join("->")}`,
      );
      rounds.push(x);
    }
  }
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  const out = o.out.replace(/\.json$/, "-specs.json");
  fs.writeFileSync(out, `${JSON.stringify({ startedAt, rounds }, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), out)}`);
}
