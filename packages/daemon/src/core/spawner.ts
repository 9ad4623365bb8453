import type { ExitStatus, RunSpec, StopSignalName } from "./types.js";

/** Which pipe a line of output came from. */
export type OutputStreamName = "stdout" | "stderr";

/** The signals the core sends: a stop's first (the spec's), and SIGKILL. */
export type StopSignal = StopSignalName | "SIGKILL";

/** How a child ended: exactly one of `code` and `signal` is set. */
export interface ChildExit {
  /** The exit code, when it exited by itself. */
  readonly code: number | null;
  /** The signal's name (`"SIGKILL"`), when a signal ended it. */
  readonly signal: string | null;
  /**
   * How long the run lasted, when the spawner knows it better than the core's
   * clock can (a run that ended while no daemon was attached).
   */
  readonly uptimeMs?: number;
}

/**
 * What a later daemon needs to take over a run it did not start: a spawner
 * whose children outlive the daemon keeps it with the child.
 */
export interface RunRecord {
  /** The process's restart count when this run was started. */
  readonly restartCount: number;
  /** How the run before it ended. */
  readonly lastExit: ExitStatus | undefined;
}

/**
 * A run that an earlier daemon started and the spawner still holds: alive,
 * or ended while no daemon was attached (its exit is reported once it is bound).
 */
export interface FoundRun {
  /** The process name it was spawned for. */
  readonly name: string;
  readonly child: Child;
  /** Wall-clock ms of its start. */
  readonly startedAtWallMs: number;
  /** What its daemon recorded; undefined if it could not be read. */
  readonly record: RunRecord | undefined;
  /** True if it has exited already. */
  readonly exited: boolean;
  /** False if `spec` asks for another command, environment, directory or ids than it runs. */
  runs(spec: RunSpec): boolean;
  /** Gives the run its handlers: what it wrote and its exit, held until now, follow in order. */
  bind(handlers: Omit<ChildHandlers, "onSpawned">): void;
}

/** What to run; the name may be left out where no child needs PROCMON_NAME (tests). */
export type SpawnRequest = Omit<RunSpec, "name"> & { readonly name?: string };

/** Callbacks from a running child into the core. */
export interface ChildHandlers {
  /**
   * Called once, when the child itself has exited (not when its pipes close:
   * a grandchild may hold them open for ever).
   */
  onExit(exit: ChildExit): void;
  /** Called for each line of output, without its newline, in order per stream. */
  onOutput(stream: OutputStreamName, line: string, partial: boolean): void;
  /**
   * For a spawn that answers later (spawn() returned undefined): called once,
   * before any other handler, with the child, or the SpawnError that says why
   * there is none.
   */
  onSpawned(outcome: Child | SpawnError): void;
}

/** A running child: the leader of its own process group. */
export interface Child {
  /** Its pid, which is also its process group id. */
  readonly pid: number;
  /**
   * Sends `signal` to the child's whole process group. A no-op once the child
   * has exited, so that a reused pid is never signalled.
   */
  signal(signal: StopSignal): void;
  /**
   * False if the process is gone, or its pid now belongs to another process,
   * without its exit having been reported. Undefined: cannot tell.
   */
  isAlive?(): boolean;
}

/** Starts children, as Twisted's reactor.spawnProcess does. */
export interface Spawner {
  /**
   * Starts a child in a new process group. Returns it when it is known at once;
   * undefined when the answer comes later, through `handlers.onSpawned`.
   * `record` is kept with the child by a spawner whose children outlive the daemon.
   * @throws SpawnError when the process cannot be started (ENOENT, EACCES, EMFILE...).
   */
  spawn(request: SpawnRequest, handlers: ChildHandlers, record?: RunRecord): Child | undefined;
}

/** A child that could not be started; the core treats it as an instant death. */
export class SpawnError extends Error {
  override readonly name = "SpawnError";
  /** The errno code, such as `"ENOENT"`. */
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
