// Ratios of percentiles between two variants, with a bootstrap 95% interval. The bootstrap is
// paired by round: every round killed each variant once, a few ms apart, so one resample draws
// rounds (with replacement) and takes both variants' samples of the drawn rounds, keeping the
// noise they shared. The generator is seeded, so the same samples give the same interval.

import { percentile, seededRandom } from "../lib/stats.mjs";

const ascending = (a, b) => a - b;

/**
 * pct(a)/pct(b) for each of `ps` (e.g. [50, 99]) over the rounds both `a` and `b` (arrays of ms
 * or null, indexed by round) have a sample for, with the 2.5th and 97.5th percentiles of
 * `resamples` paired resamples: { n, [p]: { ratio, lo, hi } }.
 */
export function ratioInterval(a, b, ps, resamples = 2000, seed = 11) {
  const pairs = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== null && a[i] !== undefined && b[i] !== null && b[i] !== undefined) {
      pairs.push([a[i], b[i]]);
    }
  }
  const n = pairs.length;
  const out = { n };
  if (n === 0) return out;
  const ratioOf = (drawn, p) =>
    percentile(drawn.map((x) => x[0]).sort(ascending), p) /
    percentile(drawn.map((x) => x[1]).sort(ascending), p);
  const draws = Object.fromEntries(ps.map((p) => [p, []]));
  const next = seededRandom(seed);
  for (let r = 0; r < resamples; r++) {
    const drawn = Array.from({ length: n }, () => pairs[Math.floor(next() * n)]);
    for (const p of ps) draws[p].push(ratioOf(drawn, p));
  }
  for (const p of ps) {
    const sorted = draws[p].sort(ascending);
    out[p] = {
      ratio: ratioOf(pairs, p),
      lo: percentile(sorted, 2.5),
      hi: percentile(sorted, 97.5),
    };
  }
  return out;
}
