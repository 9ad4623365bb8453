import type { OutputStreamName } from "./spawner.js";
import type { ExitStatus, ProcessSpec, StopReason, StopSignalName } from "./types.js";

/** What happened; each kind is named after the API's Event field. */
export type EventBody =
  | { readonly kind: "added"; readonly spec: ProcessSpec }
  | { readonly kind: "removed" }
  | { readonly kind: "started"; readonly pid: number }
  | {
      readonly kind: "exited";
      readonly pid: number;
      readonly status: ExitStatus;
      /** Died before its threshold: the restart waits with backoff. */
      readonly instant: boolean;
    }
  | { readonly kind: "restartScheduled"; readonly delayMs: number; readonly atWallMs: number }
  | {
      readonly kind: "stopping";
      readonly pid: number;
      /** The spec's stop signal. */
      readonly signal: StopSignalName;
      readonly reason: StopReason;
    }
  /** The monitor gave up after `instantDeaths` instant deaths in a row: the process is failed. */
  | { readonly kind: "gaveUp"; readonly instantDeaths: number }
  /** The readiness probe passed. */
  | { readonly kind: "ready" }
  /** The readiness probe failed after having passed. */
  | { readonly kind: "unready"; readonly error: string }
  /** Not started: these dependencies are not met yet. */
  | { readonly kind: "waiting"; readonly names: readonly string[] }
  | { readonly kind: "killed"; readonly pid: number; readonly signal: "SIGKILL" }
  /** Stopped with no run to end: a restart in backoff was cancelled. */
  | { readonly kind: "stopped"; readonly reason: StopReason }
  | { readonly kind: "spawnFailed"; readonly error: string }
  | {
      readonly kind: "output";
      readonly stream: OutputStreamName;
      readonly line: string;
      readonly partial: boolean;
    };

/** One thing that happened to a process, as the core reports it (unnumbered). */
export type CoreEvent = EventBody & { readonly process: string };

/** Where the core reports events: called after the state it describes is in place. */
export type EventSink = (event: CoreEvent) => void;
