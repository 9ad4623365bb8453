// What the variants cost besides restarts, at the largest scale: each parent's RSS (the daemon's
// and its procmon-shim's apart), and the daemons' ListProcesses latency, their calls interleaved
// (one call per daemon in turn, shuffled each round) as the kills are.

import { procStatus } from "../lib/machine.mjs";
import { round, summarize } from "../lib/stats.mjs";
import { shuffle } from "./kills.mjs";

const LIST_TIMEOUT_MS = 10_000;
const LIST_WARMUP = 10;

/** VmRSS and VmHWM (MiB) of each variant's parent, and of its shim if it has one. */
export function memory(variants) {
  const mib = (pid) => {
    const { rssMB, hwmMB } = procStatus(pid);
    return { pid, rssMB: round(rssMB), hwmMB: round(hwmMB) };
  };
  return Object.fromEntries(
    variants.map((v) => {
      const shim = v.shimPid();
      return [v.label, { parent: mib(v.proc.pid), ...(shim ? { shim: mib(shim) } : {}) }];
    }),
  );
}

/** `calls` ListProcesses on each daemon variant, after a warm-up: the summary (ms) of each. */
export async function listLatency(variants, calls) {
  const daemons = variants.filter((v) => v.daemon);
  const list = (v) => v.daemon.client.listProcesses({ timeoutMs: LIST_TIMEOUT_MS });
  for (let i = 0; i < LIST_WARMUP; i++) for (const v of daemons) await list(v);
  const samples = new Map(daemons.map((v) => [v.label, []]));
  const listed = new Map();
  for (let i = 0; i < calls; i++) {
    for (const v of shuffle(daemons)) {
      const t0 = process.hrtime.bigint();
      const { processes } = await list(v);
      samples.get(v.label).push(Number(process.hrtime.bigint() - t0) / 1e6);
      listed.set(v.label, processes.length);
    }
  }
  return Object.fromEntries(
    daemons.map((v) => [
      v.label,
      { ...summarize(samples.get(v.label)), processes: listed.get(v.label) },
    ]),
  );
}
