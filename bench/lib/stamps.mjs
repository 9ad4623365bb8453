// Stamp children: bench/stamp.c reads CLOCK_MONOTONIC as its first instruction, appends
// "TAG PID NS" to a FIFO the bench owns (one write below PIPE_BUF, so lines never interleave) and
// sleeps in pause(). A bench compiles it (and bench/native-parent.c, the native floor) into its
// temp dir, then learns from the FIFO when each child began, in the clock of
// process.hrtime.bigint().

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { alive } from "./machine.mjs";

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const STAMP_TIMEOUT_MS = 5_000;

/** Compiles stamp.c and native-parent.c into `dir`; `link` says whether the stamp is static. */
export function buildStamp(dir) {
  const stamp = path.join(dir, "stamp");
  const nativeParent = path.join(dir, "native-parent");
  const cc = (args) => execFileSync("cc", args, { stdio: "pipe" });
  cc(["-O2", "-Wall", "-o", nativeParent, path.join(BENCH, "native-parent.c")]);
  const source = path.join(BENCH, "stamp.c");
  let link = "static";
  try {
    cc(["-O2", "-static", "-o", stamp, source]);
  } catch {
    cc(["-O2", "-o", stamp, source]);
    link = "dynamic";
  }
  return { stamp, nativeParent, link };
}

/**
 * Builds the stamp programs in `run.tmp`, opens the FIFO and returns the stamp board:
 *   last        tag -> { pid, ns } of its latest stamp
 *   next(tag, notPid)  the next stamp of `tag` from another pid
 *   all(tags, timeoutMs)  resolves once every tag has stamped (since it was forgotten)
 *   forget(tags)  drop the tags' stamps
 *   isOurs(pid)  whether `pid` is one of this run's stamp children (its argv[0] is our stamp)
 *   spec(name)  the ProcessSpec of a stamp child tagged `name`
 * At cleanup it kills, by pid, any stamp child still alive that is ours, and closes the FIFO.
 */
export function openStamps(run) {
  const built = buildStamp(run.tmp);
  const fifo = path.join(run.tmp, "stamps.fifo");
  execFileSync("mkfifo", ["-m", "600", fifo]);
  const board = createBoard(built.stamp, fifo);
  // O_RDWR: there is always a reader (children never block in open) and never EOF.
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const socket = new net.Socket({ fd, readable: true, writable: false });
  let rest = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) board.onLine(line);
  });
  socket.on("error", (err) => run.log(`fifo: ${err.message}`));
  run.onCleanup(() => {
    let leftovers = 0;
    for (const pid of board.allPids) {
      if (alive(pid) && board.isOurs(pid)) {
        leftovers++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    if (leftovers > 0) run.log(`killed ${leftovers} leftover stamp children`);
    socket.destroy();
  });
  return Object.assign(board, built, { fifo });
}

function createBoard(stamp, fifo) {
  return {
    last: new Map(),
    waiters: new Map(),
    groupWaiters: new Set(),
    allPids: new Set(),
    lines: 0,

    onLine(line) {
      const [tag, pidText, nsText] = line.split(" ");
      if (!tag || !pidText || !nsText) return;
      const entry = { pid: Number(pidText), ns: BigInt(nsText) };
      this.lines++;
      this.allPids.add(entry.pid);
      this.last.set(tag, entry);
      const waiter = this.waiters.get(tag);
      if (waiter && waiter.notPid !== entry.pid) {
        this.waiters.delete(tag);
        waiter.resolve(entry);
      }
      for (const group of this.groupWaiters) {
        group.missing.delete(tag);
        if (group.missing.size === 0) {
          this.groupWaiters.delete(group);
          group.resolve();
        }
      }
    },

    next(tag, notPid, timeoutMs = STAMP_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiters.delete(tag);
          reject(new Error(`no new stamp from ${tag} within ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiters.set(tag, {
          notPid,
          resolve: (entry) => {
            clearTimeout(timer);
            resolve(entry);
          },
        });
      });
    },

    all(tags, timeoutMs) {
      const missing = new Set(tags.filter((t) => !this.last.has(t)));
      if (missing.size === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const group = {
          missing,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          this.groupWaiters.delete(group);
          reject(new Error(`${group.missing.size} of ${tags.length} never stamped`));
        }, timeoutMs);
        this.groupWaiters.add(group);
      });
    },

    forget(tags) {
      for (const tag of tags) this.last.delete(tag);
    },

    isOurs(pid) {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] === stamp;
      } catch {
        return false;
      }
    },

    spec(name) {
      return { name, args: [stamp, fifo, name] };
    },
  };
}

/** `count` tags `prefix0000`, `prefix0001`, ... */
export function names(prefix, count) {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function pool(items, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
