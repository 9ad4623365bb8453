import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import type { StatsReader, TreeStats } from "../core/probes.js";
import { INSTANCE_ENV, NAME_ENV } from "./orphans.js";
import { readEnvironment } from "./proc-stat.js";

/** Options of {@link ProcTreeStats}. */
export interface ProcTreeStatsOptions {
  /**
   * The pid of procmon-shim, the children's subreaper, when they are spawned
   * through it: what left a tree (setsid and a double fork) is reparented to
   * it, and is counted in the tree its PROCMON_NAME names. Undefined, or a
   * function answering undefined: nothing is looked for. Defaults to none.
   */
  readonly shimPid?: (() => number | undefined) | undefined;
  /**
   * The registry's PROCMON_INSTANCE: a process reparented to the shim is
   * counted only if its environment carries it. Defaults to not checked.
   */
  readonly instance?: string | undefined;
  /** Clock ticks per second of /proc's times (USER_HZ, which is 100 on Linux). Defaults to 100. */
  readonly clockTicksPerSecond?: number | undefined;
  /**
   * Bytes of a page, /proc's unit of RSS. Defaults to the kernel's, read once
   * from the first KernelPageSize of /proc/self/smaps (Node has no
   * sysconf(_SC_PAGESIZE)): 4096 on x86-64, but 16 or 64 KiB on some arm64
   * kernels, where a fixed 4096 would undercount memory caps 4 or 16 times.
   * 4096 if it cannot be read.
   */
  readonly pageSizeBytes?: number | undefined;
  /** Where proc is mounted. Defaults to "/proc". */
  readonly procDir?: string | undefined;
}

/** What one pass over /proc keeps of a process. */
interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly zombie: boolean;
  /** utime + stime + cutime + cstime, in clock ticks. */
  readonly ticks: number;
  readonly rssPages: number;
}

/** Every process in one pass over /proc, and the children of each. */
interface ProcTable {
  readonly entries: Map<number, ProcEntry>;
  readonly children: Map<number, number[]>;
}

/** A page size read from /proc/self/smaps, once for the whole daemon. */
let kernelPageSize: number | undefined;

/** The first KernelPageSize in /proc/self/smaps, in bytes; 4096 if it cannot be read. */
function detectPageSize(procDir: string): number {
  let fd: number | undefined;
  try {
    fd = openSync(`${procDir}/self/smaps`, "r");
    // The first mapping's lines are enough; the whole file is a line per mapping field.
    const buffer = Buffer.alloc(8_192);
    const read = readSync(fd, buffer, 0, buffer.length, null);
    const match = /KernelPageSize:\s+(\d+) kB/.exec(buffer.toString("latin1", 0, read));
    const kib = match ? Number(match[1]) : Number.NaN;
    return Number.isInteger(kib) && kib > 0 ? kib * 1_024 : 4_096;
  } catch {
    return 4_096;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Parses /proc/<pid>/stat (proc(5)). comm may hold spaces and parentheses:
 * the fields start after the last ')', at field 3 (state).
 */
function parseStat(pid: number, text: string): ProcEntry | undefined {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Field n of proc(5) is fields[n - 3].
  const numbers = [1, 11, 12, 13, 14, 21].map((i) => Number(fields[i]));
  if (!numbers.every(Number.isFinite)) return undefined;
  const [ppid, utime, stime, cutime, cstime, rss] = numbers as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const zombie = fields[0] === "Z";
  return {
    pid,
    ppid,
    zombie,
    ticks: utime + stime + cutime + cstime,
    // A zombie holds no memory (its rss already reads 0 on Linux).
    rssPages: zombie ? 0 : rss,
  };
}

/** `pids` and everything that descends from them in `table`, each once. */
function treeOf(table: ProcTable, pids: readonly number[]): ProcEntry[] {
  const seen = new Set<number>();
  const members: ProcEntry[] = [];
  const pending = [...pids];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    // A racy pass (a pid reused while /proc was read) may show a loop.
    if (seen.has(pid)) continue;
    seen.add(pid);
    const entry = table.entries.get(pid);
    if (entry === undefined) continue;
    members.push(entry);
    pending.push(...(table.children.get(pid) ?? []));
  }
  return members;
}

/**
 * Reads the CPU time and resident memory of process trees from /proc, in one
 * pass over it per sample, however many trees are asked for.
 *
 * A tree's CPU time is the sum, over the root and its live descendants, of
 * each one's own time and its reaped children's (utime + stime + cutime +
 * cstime): a child that ended is counted in exactly one live process, the
 * one that reaped it, so this counts every process once. (The root's cutime
 * alone would miss what a live descendant reaped, such as a shell's finished
 * commands.) What was reaped by the shim or init is no longer counted. Its
 * RSS is the sum of its live processes' RSS (shared pages count once per
 * process, as ps and top count them).
 */
export class ProcTreeStats implements StatsReader {
  readonly #shimPid: () => number | undefined;
  readonly #instance: string | undefined;
  readonly #ticksPerSecond: number;
  readonly #pageSizeBytes: number;
  readonly #procDir: string;
  #scans = 0;

  constructor(options: ProcTreeStatsOptions = {}) {
    this.#shimPid = options.shimPid ?? (() => undefined);
    this.#instance = options.instance;
    this.#ticksPerSecond = options.clockTicksPerSecond ?? 100;
    this.#procDir = options.procDir ?? "/proc";
    this.#pageSizeBytes = options.pageSizeBytes ?? this.#defaultPageSize();
  }

  /** How many passes over /proc the samples took so far (one a sample). */
  get scans(): number {
    return this.#scans;
  }

  sample(
    roots: ReadonlyArray<{ readonly name: string; readonly pid: number }>,
  ): Map<string, TreeStats> {
    const stats = new Map<string, TreeStats>();
    if (roots.length === 0) return stats;
    const table = this.#scan();
    const adopted = this.#reparented(table, roots);
    for (const root of roots) {
      // Gone: left out, as the port says.
      if (!table.entries.has(root.pid)) continue;
      const members = treeOf(table, [root.pid, ...(adopted.get(root.name) ?? [])]);
      stats.set(root.name, this.#total(members));
    }
    return stats;
  }

  #defaultPageSize(): number {
    if (this.#procDir !== "/proc") return detectPageSize(this.#procDir);
    kernelPageSize ??= detectPageSize("/proc");
    return kernelPageSize;
  }

  /** One pass over /proc: every process's stat, read once. */
  #scan(): ProcTable {
    this.#scans++;
    const entries = new Map<number, ProcEntry>();
    const children = new Map<number, number[]>();
    for (const name of readdirSync(this.#procDir)) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      let text: string;
      try {
        text = readFileSync(`${this.#procDir}/${name}/stat`, "latin1");
      } catch {
        // Gone between the listing and the read.
        continue;
      }
      const entry = parseStat(pid, text);
      if (entry === undefined) continue;
      entries.set(pid, entry);
      const siblings = children.get(entry.ppid);
      if (siblings) siblings.push(pid);
      else children.set(entry.ppid, [pid]);
    }
    return { entries, children };
  }

  /**
   * The processes reparented to the shim that are not roots themselves, by the
   * PROCMON_NAME in their environment, for the names asked about. Only these
   * environments are read: one per escaped process, not one per process.
   */
  #reparented(
    table: ProcTable,
    roots: ReadonlyArray<{ readonly name: string; readonly pid: number }>,
  ): Map<string, number[]> {
    const byName = new Map<string, number[]>();
    const shim = this.#shimPid();
    if (shim === undefined) return byName;
    const rootPids = new Set(roots.map((r) => r.pid));
    const names = new Set(roots.map((r) => r.name));
    for (const pid of table.children.get(shim) ?? []) {
      // A zombie's environment cannot be read, and it holds no memory.
      if (rootPids.has(pid) || table.entries.get(pid)?.zombie) continue;
      const name = this.#markedName(pid);
      if (name === undefined || !names.has(name)) continue;
      const pids = byName.get(name);
      if (pids) pids.push(pid);
      else byName.set(name, [pid]);
    }
    return byName;
  }

  /** The PROCMON_NAME of `pid` (the first, as getenv reads it), if it carries this registry's marker. */
  #markedName(pid: number): string | undefined {
    const environment = readEnvironment(pid, this.#procDir);
    if (environment === undefined) return undefined;
    if (
      this.#instance !== undefined &&
      !environment.includes(`${INSTANCE_ENV}=${this.#instance}`)
    ) {
      return undefined;
    }
    const prefix = `${NAME_ENV}=`;
    return environment.find((v) => v.startsWith(prefix))?.slice(prefix.length);
  }

  #total(members: readonly ProcEntry[]): TreeStats {
    let ticks = 0;
    let pages = 0;
    for (const member of members) {
      ticks += member.ticks;
      pages += member.rssPages;
    }
    return { cpuSeconds: ticks / this.#ticksPerSecond, rssBytes: pages * this.#pageSizeBytes };
  }
}
