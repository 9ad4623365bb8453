// The soak's random choices, from a seed (mulberry32, a small seeded PRNG). The interleaving of
// the client loops is not deterministic, so a seed only biases a rerun toward the same choices.

import { seededRandom } from "../lib/stats.mjs";

/** The choices drawn from `seed`: random() in [0, 1), randInt(lo, hi), pick(items), weighted(table). */
export function createRandom(seed) {
  const random = seededRandom(seed);
  const randInt = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const pick = (items) => items[Math.floor(random() * items.length)];
  /** One value of `table` ([value, weight] pairs), with the probability of its weight. */
  const weighted = (table) => {
    const total = table.reduce((s, [, w]) => s + w, 0);
    let r = random() * total;
    for (const [value, w] of table) {
      r -= w;
      if (r < 0) return value;
    }
    return table[table.length - 1][0];
  };
  return { random, randInt, pick, weighted };
}
