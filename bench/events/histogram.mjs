// Delivery-latency histograms: 0.1 ms buckets from -10 ms to 60 s, filled in the workers (a
// sample per delivered message would be millions), sent sparse over IPC and merged here.

import { round } from "../lib/stats.mjs";

const MIN_MS = -10;
const RES_MS = 0.1;
const BUCKETS = Math.ceil((60_000 - MIN_MS) / RES_MS);

/** An empty histogram. */
export function createHistogram() {
  return { buckets: new Uint32Array(BUCKETS), over: 0, n: 0, max: Number.NEGATIVE_INFINITY };
}

/** Adds a latency of `ms`. */
export function record(h, ms) {
  h.n++;
  if (ms > h.max) h.max = ms;
  const i = Math.floor((ms - MIN_MS) / RES_MS);
  if (i >= BUCKETS) h.over++;
  else h.buckets[Math.max(i, 0)]++;
}

/** `h` as [bucket, count] pairs of its non-empty buckets, for IPC. */
export function sparse(h) {
  const pairs = [];
  for (let i = 0; i < BUCKETS; i++) if (h.buckets[i] !== 0) pairs.push([i, h.buckets[i]]);
  return { min: MIN_MS, res: RES_MS, pairs, over: h.over, n: h.n, max: h.max };
}

/** n, p50, p90, p99, p99.9 and max (ms) of the sparse histograms `list` merged. */
export function mergeHists(list) {
  const present = list.filter(Boolean);
  const counts = new Map();
  let over = 0;
  let n = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (const h of present) {
    for (const [i, c] of h.pairs) counts.set(i, (counts.get(i) ?? 0) + c);
    over += h.over;
    n += h.n;
    if (h.max > max) max = h.max;
  }
  if (n === 0) return { n: 0 };
  const sorted = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const at = (p) => {
    const rank = Math.max(1, Math.ceil((p / 100) * n));
    let seen = 0;
    for (const [i, c] of sorted) {
      seen += c;
      if (seen >= rank) return round(MIN_MS + (i + 1) * RES_MS, 2);
    }
    return round(max, 2);
  };
  return {
    n,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: round(max, 2),
    over60s: over,
  };
}
