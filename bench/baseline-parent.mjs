// The baseline of bench/restart-latency.mjs: a bare Node parent that keeps N copies of the stamp
// program alive with child_process.spawn, respawning each one on 'exit', and nothing else (no
// gRPC, no state machine, no logging, no executable lookup).
//
// Usage: node bench/baseline-parent.mjs STAMP FIFO COUNT PREFIX
//
// The spawn options are the ones procmond's NodeSpawner uses (its own process group, stdout and
// stderr piped and read, stdin ignored, the environment copied), so that the difference between
// the two is the daemon's own overhead. Prints "ready" once the N children are spawned. SIGTERM
// stops respawning, sends SIGTERM to every child's group and exits once they have all exited.
import { spawn } from "node:child_process";

const [stamp, fifo, countText, prefix] = process.argv.slice(2);
const count = Number(countText);
if (!stamp || !fifo || !Number.isInteger(count) || count <= 0 || !prefix) {
  process.stderr.write("usage: baseline-parent.mjs STAMP FIFO COUNT PREFIX\n");
  process.exit(2);
}

let stopping = false;
const live = new Map(); // tag -> ChildProcess

function start(tag) {
  const child = spawn(stamp, [fifo, tag], {
    env: { ...process.env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", () => {});
  child.stderr.on("data", () => {});
  child.on("error", (err) => process.stderr.write(`baseline: spawn ${tag}: ${err.message}\n`));
  live.set(tag, child);
  child.on("exit", () => {
    if (live.get(tag) === child) live.delete(tag);
    if (!stopping) start(tag);
    else if (live.size === 0) process.exit(0);
  });
}

function stop() {
  if (stopping) return;
  stopping = true;
  if (live.size === 0) process.exit(0);
  for (const child of live.values()) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // Already gone: its 'exit' is on the way.
    }
  }
  setTimeout(() => process.exit(1), 10_000).unref();
}
// Before the first spawn: a SIGTERM that arrives while the (synchronous) spawn loop runs must be
// handled once it ends, not kill this parent and orphan the children already started.
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

for (let i = 0; i < count; i++) start(`${prefix}${String(i).padStart(4, "0")}`);
process.stdout.write("ready\n");
