// Issue 11's targets, as ratios between variants measured in the same run (absolute figures move
// with the machine's load; ratios of interleaved variants much less):
//   shim/native p50 <= 1.3x at 10 processes, <= 1.5x at 1,000; shim/native p99 <= 2x at both
//   node/prev p50 and p99 within noise (issue 10): the interval includes 1.0, or within ±10%
//   node/baseline p50 and p99, for context (no target)

import { ratioInterval } from "./bootstrap.mjs";

/** The ratios computed at each scale, as [numerator, denominator]. */
const PAIRS = [
  ["shim", "native"],
  ["node", "prev"],
  ["node", "baseline"],
];

/** Per scale, "a/b" -> { n, 50: {ratio, lo, hi}, 99: {...} } for the pairs both measured. */
export function ratios(scales, resamples) {
  return Object.fromEntries(
    scales.map(({ scale, restarts }) => {
      const pairs = PAIRS.filter(([a, b]) => restarts[a] && restarts[b]).map(([a, b]) => [
        `${a}/${b}`,
        ratioInterval(restarts[a].byRound, restarts[b].byRound, [50, 99], resamples),
      ]);
      return [scale, Object.fromEntries(pairs)];
    }),
  );
}

/** Whether a ratio is "within noise": its interval includes 1.0, or it is within ±10%. */
function withinNoise({ ratio, lo, hi }) {
  return (lo <= 1 && hi >= 1) || Math.abs(ratio - 1) <= 0.1;
}

/**
 * The rows of the PASS/MISS table: { ratio, scale, p, value, target, verdict }, value being
 * { ratio, lo, hi } or undefined when not measured (no --prev). verdict is PASS, MISS or "-"
 * (context rows, unmeasured rows). A bound's verdict is on the point estimate; the interval
 * says how sure it is.
 */
export function evaluate(byScale, scales) {
  const few = scales[0];
  const many = scales[scales.length - 1];
  const bound = (max) => ({ target: `<= ${max}x`, pass: (v) => v.ratio <= max });
  const noise = { target: "within noise", pass: withinNoise };
  const context = { target: "(context)" };
  const specs = [
    ["shim/native", few, 50, bound(1.3)],
    ["shim/native", many, 50, bound(1.5)],
    ["shim/native", few, 99, bound(2)],
    ["shim/native", many, 99, bound(2)],
    ["node/prev", few, 50, noise],
    ["node/prev", many, 50, noise],
    ["node/prev", few, 99, noise],
    ["node/prev", many, 99, noise],
    ["node/baseline", few, 50, context],
    ["node/baseline", many, 50, context],
    ["node/baseline", few, 99, context],
    ["node/baseline", many, 99, context],
  ];
  return specs.map(([ratio, scale, p, { target, pass }]) => {
    const value = byScale[scale]?.[ratio]?.[p];
    let verdict = "-";
    if (value && pass) verdict = pass(value) ? "PASS" : "MISS";
    if (verdict === "MISS" && target === noise.target && value.ratio < 1) verdict = "MISS (faster)";
    return { ratio, scale, p, value, target, verdict };
  });
}
