// The soak's state: what the clients were told, the calls remembered per name, the daemon's
// log lines, and the tallies of operations, checks, violations and warnings.

import { createRandom } from "./random.mjs";
import { createSurvival } from "./survival.mjs";
import { createPool } from "./workload.mjs";

const HISTORY_KEPT = 14;
const MAX_KEPT_LINES = 300_000;
const LIFECYCLE = new Set([
  "terminating processes left by a previous procmond",
  "registry restored from the state file",
  "procmond listening",
]);

/** The soak's whole state, for `opts` (see options.mjs) in `run` (a createRun()). */
export function createSoak(opts, run) {
  const t0 = Date.now();
  const since = (wall = Date.now()) => `+${((wall - t0) / 1000).toFixed(3)}s`;
  const { pool, specFor } = createPool(opts.names);
  return {
    opts,
    run,
    t0,
    since,
    log: (message) => process.stderr.write(`[soak ${since()}] ${message}\n`),
    rng: createRandom(opts.seed),
    pool,
    specFor,
    /** The daemon now running (or being started) as `current`, its epoch (1 = first start). */
    daemons: {
      current: undefined,
      epoch: 0,
      // Changes each time the daemon is killed or starts serving: a call that failed to connect
      // without it changing, while the daemon was down, never reached a daemon.
      generation: 0,
      up: false,
      /** Every line the daemons wrote: { epoch, wall, text, obj, stream }. */
      lines: [],
      unexpectedExit: undefined,
      instance: undefined,
      socket: undefined,
      stateFile: undefined,
      logOut: undefined,
    },
    clients: { paused: true, finished: false, resumeWaiters: [], busy: new Set(), inFlight: 0 },
    /** What the clients were told, per name: the set of states the daemon may be in. */
    expected: new Map(pool.map((p) => [p.name, new Set(["absent"])])),
    /** The last calls on each name, for violation reports. */
    history: new Map(pool.map((p) => [p.name, []])),
    stats: newStats(),
    /** Durations of the acknowledged calls, in ms, per op. */
    ackLatencies: {},
    checks: { passed: 0, failed: 0, byKind: {} },
    violations: [],
    warnings: [],
    restarts: [],
    killsDone: 0,
    startupKillsDone: 0,
    startupKills: [],
    /** Survival (spec v1.1 §A): pids known, the watcher, shim kills, outage exits. */
    survival: createSurvival(),
  };
}

function newStats() {
  return {
    opsStarted: 0,
    opsAcked: 0,
    /** NOT_FOUND / ALREADY_EXISTS: answered, nothing changed. */
    opsRejected: 0,
    opsUncertain: 0,
    /** Failed to connect while the daemon was down, never reached one: retried. */
    opsNotReached: 0,
    opsUnexpectedError: 0,
    byOp: {},
    /** Uncertain names resolved by reading the registry. */
    uncertainResolved: 0,
    /** Processes a new daemon found STOPPING at a check (a stop the killed one had begun). */
    stopsFinishedAfterAdoption: 0,
    /** Names found in BACKOFF, their restart not due yet, while waiting for a check. */
    backoffAtCheck: new Set(),
    /** Answers BACKOFF (a spawn failed) to a call that raced a shim kill: tolerated. */
    spawnFailedInShimKill: 0,
    interruptedPerKill: [],
  };
}

/** Keeps `entry` (a call on `name`, at `entry.wall`) among the name's last calls. */
export function remember(soak, name, entry) {
  const h = soak.history.get(name);
  h.push({ at: soak.since(entry.wall), ...entry, wall: undefined });
  if (h.length > HISTORY_KEPT) h.shift();
}

/** Counts one check of `kind`. */
export function countCheck(soak, kind, ok) {
  const { checks } = soak;
  checks.byKind[kind] ??= { passed: 0, failed: 0 };
  const entry = checks.byKind[kind];
  if (ok) {
    checks.passed++;
    entry.passed++;
  } else {
    checks.failed++;
    entry.failed++;
  }
}

/** Records a violation, unless a signal or the watchdog is tearing everything down. */
export function addViolation(soak, kind, details) {
  // Once the cleanup has started, failures are of its making.
  if (soak.run.signal.aborted) return undefined;
  const v = {
    kind,
    at: soak.since(),
    epoch: soak.daemons.epoch,
    killsDone: soak.killsDone,
    ...details,
  };
  soak.violations.push(v);
  soak.log(
    `VIOLATION ${kind}: ${JSON.stringify({ ...details, history: undefined, daemonLog: undefined })}`,
  );
  return v;
}

/** Keeps one line of the daemon's, tagged with the current epoch, and writes it to its log. */
export function recordLine(soak, text, stream) {
  const { daemons } = soak;
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    obj = undefined;
  }
  const entry = { epoch: daemons.epoch, wall: obj?.time ?? Date.now(), text, obj, stream };
  if (daemons.lines.length >= MAX_KEPT_LINES) daemons.lines.splice(0, MAX_KEPT_LINES / 10);
  daemons.lines.push(entry);
  daemons.logOut.write(`[epoch ${daemons.epoch}${stream === "stderr" ? " stderr" : ""}] ${text}\n`);
  return entry;
}

function aboutName(line, name) {
  const obj = line.obj;
  if (name === undefined) return (obj?.level ?? 50) >= 40 || line.stream === "stderr";
  return (
    obj?.process === name ||
    (Array.isArray(obj?.processes) && obj.processes.includes(name)) ||
    (obj === undefined && line.text.includes(name))
  );
}

/**
 * The daemon's log lines about `name` (or, without one, its warnings and errors) since
 * `fromEpoch`: by default the epoch before the current one, or the epoch of the oldest call on
 * `name` remembered, if older. With `lifecycle`, also each daemon's start-up milestones.
 */
export function logContext(soak, name, fromEpoch, limit = 24, lifecycle = false) {
  const { epoch, lines } = soak.daemons;
  const oldestCall = name === undefined ? undefined : soak.history.get(name)?.[0]?.epoch;
  const from = fromEpoch ?? Math.min(epoch - 1, oldestCall ?? epoch);
  const picked = lines.filter(
    (l) => l.epoch >= from && ((lifecycle && LIFECYCLE.has(l.obj?.msg)) || aboutName(l, name)),
  );
  return picked.slice(-limit).map((l) => `[epoch ${l.epoch} ${soak.since(l.wall)}] ${l.text}`);
}
