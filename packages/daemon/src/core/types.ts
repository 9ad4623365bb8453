import type { StopSignalName } from "@procmon/api/signals";
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

/** What to run, and as whom: the part of a spec that the spawner needs. */
export interface RunSpec {
  /** The process's name, for the child's PROCMON_NAME. */
  readonly name: string;
  /** argv; `args[0]` is a path or a bare name looked up on PATH. Never a shell. */
  readonly args: readonly string[];
  /** Variables set over the base environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Start from an empty environment instead of the daemon's. */
  readonly clearEnv: boolean;
  /** Working directory; empty for the daemon's. */
  readonly cwd: string;
  /** User id to run as; undefined for the daemon's. */
  readonly uid?: number | undefined;
  /** Group id to run as; undefined for the daemon's. */
  readonly gid?: number | undefined;
}

/** What follows a run that ended by itself: always restarted (Twisted), unless it succeeded, or never. */
export type RestartPolicy = "always" | "on-failure" | "never";

export { STOP_SIGNALS, type StopSignalName } from "@procmon/api/signals";

/** How a run's end is followed, and how a stop begins. */
export interface EndPolicy {
  /** Defaults to "always". */
  readonly restart: RestartPolicy;
  /** Exit codes that count as success under "on-failure". Defaults to [0]. */
  readonly successExitCodes: readonly number[];
  /** Instant deaths in a row after which the monitor gives up; 0 (default) never. */
  readonly maxInstantDeaths: number;
  /** Defaults to SIGTERM. */
  readonly stopSignal: StopSignalName;
}

/** The daemon's default end policy, as the contract fixes it. */
export const DEFAULT_END_POLICY: EndPolicy = {
  restart: "always",
  successExitCodes: [0],
  maxInstantDeaths: 0,
  stopSignal: "SIGTERM",
};

/** What a dependency must have done for its dependent to start. */
export type DependencyCondition = "started" | "ready" | "exited-ok";

/** A process another one needs. */
export interface Dependency {
  readonly name: string;
  readonly condition: DependencyCondition;
}

/** What a readiness probe checks. */
export type ProbeCheck =
  | { readonly kind: "exec"; readonly args: readonly string[] }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "http"; readonly url: string };

/** How to tell that a process is ready. */
export interface ReadinessProbe {
  readonly check: ProbeCheck;
  /** Between the end of a check and the start of the next. Defaults to 1000. */
  readonly periodMs: number;
  /** A check that takes longer fails. Defaults to 1000. */
  readonly timeoutMs: number;
  /** Before the first check of a run. Defaults to 0. */
  readonly initialDelayMs: number;
}

/** When a process may start, when it is ready, and its memory cap. */
export interface Readiness {
  /** Defaults to none. */
  readonly dependsOn: readonly Dependency[];
  /** Undefined: ready as soon as it runs. */
  readonly ready: ReadinessProbe | undefined;
  /** Restarted when its tree's RSS exceeds this at two checks in a row; 0 (default): no cap. */
  readonly maxRssBytes: number;
}

/** No dependencies, no probe, no memory cap. */
export const DEFAULT_READINESS: Readiness = { dependsOn: [], ready: undefined, maxRssBytes: 0 };

/** A validated, normalised process spec: every timing filled in. */
export interface ProcessSpec extends RunSpec, Policy, EndPolicy, Readiness {}

/** How a run ended. */
export interface ExitStatus {
  /** The exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal's name, or null when it exited by itself. */
  readonly signal: string | null;
  /** How long the run lasted, in milliseconds. */
  readonly uptimeMs: number;
}

/**
 * The names of the supervision states: "exited" is a run its policy does not
 * restart, "failed" one the monitor gave up on.
 */
export type StateName =
  | "running"
  | "backoff"
  | "stopping"
  | "stopped"
  | "exited"
  | "failed"
  | "waiting";

/** Whether a process should be running: what a daemon restart brings back. */
export type Intent = "running" | "stopped";

/** How a process that should run came to rest: its policy ended it, or the monitor gave up. */
export type Ended = "exited" | "failed";

/** Where a registered process came from: the config file owns its entries, the API the rest. */
export type ProcessSource = "api" | "config";

/** Why a process is being stopped: a call, the daemon's shutdown, or its memory cap. */
export type StopReason = "stop" | "remove" | "restart" | "shutdown" | "memory";

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
  /** Its readiness probe has passed since the current run started; true at once without one. */
  readonly ready: boolean;
  /** The dependencies not met yet, while it waits. */
  readonly waitingFor: readonly string[];
}
