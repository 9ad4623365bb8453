// What the soak's clients do: the pool of names (each of a kind of process tree), the calls they
// make on them and the state each call leaves the registry in.

/** kill_time of the processes that ignore SIGTERM. */
const STUBBORN_KILL_TIME_NS = 250_000_000;
/** Deadline of every client call: a stop takes at most kill_time, so this only catches hangs. */
const CALL_TIMEOUT_MS = 15_000;

const KINDS = {
  plain: { args: ["sh", "-c", "sleep 1000"] },
  tree: { args: ["sh", "-c", "sleep 1000 & sleep 1000; wait"] },
  stubborn: {
    args: ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000; wait"],
    killTime: { seconds: 0n, nanos: STUBBORN_KILL_TIME_NS },
  },
  "stubborn-single": {
    args: ["sh", "-c", "trap '' TERM; sleep 1000"],
    killTime: { seconds: 0n, nanos: STUBBORN_KILL_TIME_NS },
  },
};
const KIND_CYCLE = [
  "plain",
  "tree",
  "plain",
  "stubborn",
  "plain",
  "tree",
  "stubborn-single",
  "plain",
];

/** The ProcessState enum's names. */
export const STATE_NAME = {
  0: "UNSPECIFIED",
  1: "RUNNING",
  2: "BACKOFF",
  3: "STOPPING",
  4: "STOPPED",
};

/** A set of states, as the reports show it. */
export const fmt = (set) => [...set].sort().join("|");

/** `count` names, "plain-00", "tree-01", ..., and the ProcessSpec of each. */
export function createPool(count) {
  const pool = Array.from({ length: count }, (_, i) => {
    const kind = KIND_CYCLE[i % KIND_CYCLE.length];
    return { name: `${kind}-${String(i).padStart(2, "0")}`, kind };
  });
  const kindOf = new Map(pool.map((p) => [p.name, p.kind]));
  const specFor = (name) => {
    const { args, killTime } = KINDS[kindOf.get(name)];
    return killTime === undefined ? { name, args } : { name, args, killTime };
  };
  return { pool, specFor };
}

/** The state a call leaves the registry in, from `state`, if the daemon carried it out. */
export function applyOp(op, state) {
  switch (op) {
    case "add":
      return state === "absent" ? "running" : state;
    case "remove":
      return "absent";
    case "stop":
      return state === "absent" ? "absent" : "stopped";
    case "start":
    case "restart":
      return state === "absent" ? "absent" : "running";
  }
  throw new Error(`unknown op ${op}`);
}

/** The next call on a name that may be in `states`, drawn from `rng`. */
export function chooseOp(rng, states) {
  const state = rng.pick([...states]);
  if (state === "absent") {
    return rng.weighted([
      ["add", 85],
      ["stop", 4],
      ["start", 4],
      ["restart", 4],
      ["remove", 3],
    ]);
  }
  if (state === "running") {
    return rng.weighted([
      ["stop", 28],
      ["restart", 25],
      ["remove", 20],
      ["start", 12],
      ["add", 15],
    ]);
  }
  return rng.weighted([
    ["start", 35],
    ["restart", 20],
    ["remove", 25],
    ["stop", 10],
    ["add", 10],
  ]);
}

/** Makes the call `op` on `name` (`spec` for an add). */
export function callOp(client, op, name, spec) {
  const o = { timeoutMs: CALL_TIMEOUT_MS };
  switch (op) {
    case "add":
      return client.addProcess(spec, o);
    case "remove":
      return client.removeProcess(name, o);
    case "stop":
      return client.stopProcess(name, o);
    case "start":
      return client.startProcess(name, o);
    case "restart":
      return client.restartProcess(name, o);
  }
  throw new Error(`unknown op ${op}`);
}
