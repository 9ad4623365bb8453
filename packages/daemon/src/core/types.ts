/** Supervision timings, all in milliseconds. */
export interface Policy {
  /** A run shorter than this is an instant death. Defaults to 1000. */
  readonly thresholdMs: number;
  /** Grace between SIGTERM and SIGKILL. Defaults to 5000. */
  readonly killTimeMs: number;
  /** The first backoff delay, and the delay after a long run. Defaults to 1000. */
  readonly minRestartDelayMs: number;
  /** The cap of the doubling backoff delay. Defaults to 3_600_000. */
  readonly maxRestartDelayMs: number;
}

/** The daemon's default policy, as the contract fixes it. */
export const DEFAULT_POLICY: Policy = {
  thresholdMs: 1_000,
  killTimeMs: 5_000,
  minRestartDelayMs: 1_000,
  maxRestartDelayMs: 3_600_000,
};

/** A validated, normalised process spec: every timing filled in. */
export interface ProcessSpec extends Policy {
  readonly name: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly clearEnv: boolean;
  readonly cwd: string;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

/** How a run ended. */
export interface ExitStatus {
  /** The exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal's name, or null when it exited by itself. */
  readonly signal: string | null;
  /** How long the run lasted, in milliseconds. */
  readonly uptimeMs: number;
}

/** The names of the supervision states. */
export type StateName = "running" | "backoff" | "stopping" | "stopped";

/** Whether a process should be running: what a daemon restart brings back. */
export type Intent = "running" | "stopped";

/** Where a registered process came from: the config file owns its entries, the API the rest. */
export type ProcessSource = "api" | "config";

/** Why a process is being stopped. */
export type StopReason = "stop" | "remove" | "restart" | "shutdown";

/** A snapshot of one process, as the API reports it. */
export interface ProcessView {
  readonly spec: ProcessSpec;
  readonly state: StateName;
  /** The running process's pid; 0 when none. */
  readonly pid: number;
  /** Wall-clock ms when the current (or last) run started; undefined before any. */
  readonly startedAtWallMs: number | undefined;
  /** How many times the monitor restarted it after a death. */
  readonly restartCount: number;
  /** How the last run ended; undefined before any has ended. */
  readonly lastExit: ExitStatus | undefined;
  /** Wall-clock ms of the scheduled restart, in backoff only. */
  readonly nextRestartAtWallMs: number | undefined;
  /** The delay the next instant death will wait. */
  readonly restartDelayMs: number;
  /** Whether it should be running: changed only by add, start, stop and restart. */
  readonly intent: Intent;
  /** Who registered it. */
  readonly source: ProcessSource;
  /** Why the latest spawn failed; undefined once one has succeeded. */
  readonly lastSpawnError: string | undefined;
  /** True while it is being stopped to be forgotten (RemoveProcess has not answered yet). */
  readonly removing: boolean;
}
