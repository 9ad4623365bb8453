// The soak's random choices, from a seed (mulberry32, a small seeded PRNG). The interleaving of
// the client loops is not deterministic, so a seed only biases a rerun toward the same choices.

/** The choices drawn from `seed`: random() in [0, 1), randInt(lo, hi), pick(items), weighted(table). */
export function createRandom(seed) {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
