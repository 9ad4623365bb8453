import { readdirSync, readFileSync } from "node:fs";
import { type Clock, repeat, type Timer } from "../core/clock.js";
import type { Logger } from "../core/logger.js";

/** How many of its file descriptors a process uses, against its soft limit. */
export interface DescriptorUsage {
  /** Open now; Infinity if even listing them failed for want of one. */
  readonly open: number;
  /** The soft RLIMIT_NOFILE; Infinity when unlimited or unreadable. */
  readonly limit: number;
}

/** This process's descriptor usage, from /proc/self (a listing costs ~1 µs per open descriptor). */
export function descriptorUsage(): DescriptorUsage {
  let open: number;
  try {
    // The listing itself takes a descriptor: if none is left, that says it all.
    open = readdirSync("/proc/self/fd").length - 1;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    open = code === "EMFILE" || code === "ENFILE" ? Number.POSITIVE_INFINITY : 0;
  }
  return { open, limit: softLimit() };
}

/** True if the whole system is out of file descriptions (ENFILE rather than EMFILE). */
export function systemOutOfFiles(): boolean {
  try {
    const [allocated, , max] = readFileSync("/proc/sys/fs/file-nr", "utf8").trim().split(/\s+/);
    return Number(allocated) >= Number(max) - 64;
  } catch {
    return false;
  }
}

function softLimit(): number {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
    return soft === undefined || soft === "unlimited" ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** What a spawn takes while it runs: two pipes, and libuv's pipe for the child's exec error. */
const SPAWN_DESCRIPTORS = 3;

/** The descriptors no spawn may take, so that clients can still connect. */
export const DESCRIPTOR_RESERVE = 32;

/** True if, at `usage`, a spawn would eat into the `reserve`. */
function reserveReached(usage: DescriptorUsage, reserve: number): boolean {
  return usage.open + SPAWN_DESCRIPTORS > usage.limit - reserve;
}

/** Options of {@link DescriptorBudget}. */
export interface DescriptorBudgetOptions {
  /** Descriptors no spawn may take, so that clients can still connect. Defaults to 32. */
  readonly reserve?: number;
  /** Spawns between two listings of /proc/self/fd while far from the limit. Defaults to 64. */
  readonly spawnsPerCount?: number;
  /** Reads the usage; defaults to {@link descriptorUsage}. */
  readonly usage?: () => DescriptorUsage;
  /** Told every usage read (the {@link DescriptorAlarm} watches them). */
  readonly onUsage?: (usage: DescriptorUsage) => void;
}

/**
 * Keeps the daemon's last descriptors for its clients. Every child costs two
 * (its stdout and stderr pipes), and at the limit the kernel's accept fails:
 * libuv then closes each new connection at once, unseen, and every client is
 * told the daemon is not there. So a spawn that would eat into the reserve is
 * refused as EMFILE, and the socket stays reachable to stop or remove
 * processes. /proc/self/fd is listed only now and then while far from the
 * limit, and before every spawn within twice the reserve of it.
 */
export class DescriptorBudget {
  readonly #reserve: number;
  readonly #spawnsPerCount: number;
  readonly #usage: () => DescriptorUsage;
  readonly #onUsage: (usage: DescriptorUsage) => void;
  #last: DescriptorUsage | undefined;
  #spawnsSince = 0;

  constructor(options: DescriptorBudgetOptions = {}) {
    this.#reserve = options.reserve ?? DESCRIPTOR_RESERVE;
    this.#spawnsPerCount = options.spawnsPerCount ?? 64;
    this.#usage = options.usage ?? descriptorUsage;
    this.#onUsage = options.onUsage ?? (() => {});
  }

  /**
   * Undefined if a spawn (two pipes and libuv's error pipe while it runs) fits
   * above the reserve; otherwise the usage that refuses it.
   */
  refusal(): DescriptorUsage | undefined {
    const estimate = (u: DescriptorUsage) => u.open + 2 * this.#spawnsSince + SPAWN_DESCRIPTORS;
    let usage = this.#last;
    // Within twice the reserve of the limit, connections opened meanwhile
    // could matter: the estimate is not trusted there.
    if (
      usage === undefined ||
      this.#spawnsSince >= this.#spawnsPerCount ||
      estimate(usage) > usage.limit - 2 * this.#reserve
    ) {
      usage = this.#usage();
      this.#last = usage;
      this.#spawnsSince = 0;
      this.#onUsage(usage);
    }
    if (estimate(usage) > usage.limit - this.#reserve) return usage;
    this.#spawnsSince += 1;
    return undefined;
  }

  /** The descriptors kept for clients. */
  get reserve(): number {
    return this.#reserve;
  }
}

/**
 * Logs, once each way, when the daemon reaches the descriptors it keeps for
 * clients and when it has room again: the kernel drops connections beyond
 * the limit without a trace, so this line is all an operator gets. It sees
 * every listing the {@link DescriptorBudget} makes before a spawn, and the
 * daemon asks it to look now and then: {@link check} says how soon to look
 * again (no polling while far from the limit).
 */
export class DescriptorAlarm {
  #raised = false;

  constructor(
    private readonly logger: Logger,
    /** The descriptors kept for clients; the daemon gives its budget the same. */
    readonly reserve: number = DESCRIPTOR_RESERVE,
    private readonly usage: () => DescriptorUsage = descriptorUsage,
  ) {}

  /** Reads the usage now; true while it is worth watching closely (past half the limit). */
  check(): boolean {
    const usage = this.usage();
    this.observe(usage);
    return this.#raised || 2 * usage.open >= usage.limit;
  }

  /** Logs if `usage` crosses the reserve either way. */
  observe(usage: DescriptorUsage): void {
    const { open, limit } = usage;
    const low = reserveReached(usage, this.reserve);
    if (low && !this.#raised) {
      this.logger.error(
        { open, limit },
        `procmond has ${open} of its ${limit} file descriptors open: spawns are refused to keep the last ${this.reserve} for clients, and past the limit new client connections are dropped unseen; raise LimitNOFILE= (systemd) or ulimit -n`,
      );
    } else if (!low && this.#raised) {
      this.logger.info({ open, limit }, "procmond has file descriptors to spare again");
    }
    this.#raised = low;
  }
}

/**
 * Has `alarm` look every `farMs` (a minute: no polling of an idle daemon), or
 * every `nearMs` while the usage is past half the limit, until cancelled.
 */
export function watchDescriptors(
  clock: Clock,
  alarm: DescriptorAlarm,
  farMs = 60_000,
  nearMs = 5_000,
): Timer {
  return repeat(clock, farMs, () => (alarm.check() ? nearMs : farMs));
}
