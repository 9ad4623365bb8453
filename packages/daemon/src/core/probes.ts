import type { ProcessSpec, ReadinessProbe } from "./types.js";

/** What one readiness check came to. */
export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

/**
 * Runs one readiness check of a process's probe (an adapter: exec through
 * the spawner, TCP and HTTP on the network), never longer than the probe's
 * timeout. The core schedules the checks on its clock; this only runs one.
 */
export interface Prober {
  /**
   * Resolves with the check's outcome, within `probe.timeoutMs` (a check that
   * takes longer fails, and whatever it started is ended). Never rejects.
   */
  check(spec: ProcessSpec, probe: ReadinessProbe): Promise<ProbeResult>;
}

/** Resources of a process's whole tree, as /proc says. */
export interface TreeStats {
  /** CPU time, user and system, of the tree's live processes and the children they reaped. */
  readonly cpuSeconds: number;
  /** Resident memory of the tree's live processes. */
  readonly rssBytes: number;
}

/** Reads the resources of process trees (an adapter: /proc). */
export interface StatsReader {
  /**
   * The stats of each process's tree, by name: `roots` are the processes'
   * names and their running pids. A tree that is gone is left out.
   */
  sample(
    roots: ReadonlyArray<{ readonly name: string; readonly pid: number }>,
  ): Map<string, TreeStats>;
}
