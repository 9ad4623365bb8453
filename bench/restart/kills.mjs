// The kill rounds: each round SIGKILLs one child of every variant, one kill at a time, in an
// order shuffled anew each round, so that the machine's noise falls on every variant alike. A
// sample is the replacement's stamp (CLOCK_MONOTONIC, its first instruction) minus
// process.hrtime.bigint() (the same clock) taken just before the kill. The pause before each kill
// is pacing, not a wait for an event: it lets the previous restart's aftermath settle.

import { setTimeout as sleep } from "node:timers/promises";
import { summarize } from "../lib/stats.mjs";

/** Restarts never seen (the stamp did not come within the board's timeout) before giving up. */
const MAX_TIMEOUTS = 5;

/**
 * Runs `cfg.warmup` unrecorded rounds and then `cfg.rounds` recorded ones over `variants`
 * ({label, tags}). Returns, per label: byRound (ms, or null for a restart never seen, indexed by
 * round so that variants pair up round by round), timeouts, targets and the summary.
 */
export async function killRounds(run, board, variants, cfg) {
  const states = variants.map((v) => ({
    label: v.label,
    targets: spread(v.tags, cfg.killTargets),
    byRound: [],
    timeouts: 0,
  }));
  for (let round = -cfg.warmup; round < cfg.rounds; round++) {
    for (const state of shuffle(states)) {
      const tag = state.targets[(round + cfg.warmup) % state.targets.length];
      const ms = await killOne(run, board, state, tag, cfg);
      if (round >= 0) state.byRound[round] = ms;
    }
  }
  return Object.fromEntries(
    states.map((s) => {
      const summary = summarize(s.byRound.filter((ms) => ms !== null));
      run.log(
        `${s.label}: p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms ` +
          `(${summary.n} restarts, ${s.timeouts} never seen)`,
      );
      return [s.label, { ...s, summary }];
    }),
  );
}

/** One restart of `tag`: ms from the kill to the replacement's stamp, null if never seen. */
async function killOne(run, board, state, tag, cfg) {
  const current = board.last.get(tag);
  if (!current) throw new Error(`${state.label}: ${tag} has never stamped`);
  await sleep(cfg.gapMs + Math.random() * cfg.jitterMs);
  // Never signal a pid that is not (any more) one of this run's stamp children.
  if (!board.isOurs(current.pid)) {
    throw new Error(`${state.label}: ${tag} (pid ${current.pid}) is gone`);
  }
  const next = board.next(tag, current.pid);
  const killedAt = process.hrtime.bigint();
  try {
    process.kill(current.pid, "SIGKILL");
  } catch (err) {
    run.log(`${state.label}: kill ${current.pid}: ${err.message}`);
  }
  try {
    const stamp = await next;
    return Number(stamp.ns - killedAt) / 1e6;
  } catch (err) {
    state.timeouts++;
    run.log(`${state.label}: ${err.message}`);
    if (state.timeouts > MAX_TIMEOUTS) throw new Error(`${state.label}: too many restarts lost`);
    return null;
  }
}

/** `k` of `tags`, evenly spread (the first, the last and between). */
function spread(tags, k) {
  if (tags.length <= k) return [...tags];
  if (k === 1) return [tags[0]];
  return Array.from({ length: k }, (_, i) => tags[Math.round((i * (tags.length - 1)) / (k - 1))]);
}

/** A shuffled copy of `items` (Fisher–Yates). */
export function shuffle(items) {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
