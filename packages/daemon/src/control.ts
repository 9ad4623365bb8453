import type { ConfigEntry } from "./adapters/config-file.js";
import type { PersistedState, ProcessSource, StateFileWriter } from "./adapters/state-file.js";
import { ProcmonError } from "./core/errors.js";
import type { CoreEvent } from "./core/events.js";
import type { Logger } from "./core/logger.js";
import { quote } from "./core/quote.js";
import type { FoundRun } from "./core/spawner.js";
import {
  normaliseSpec,
  runsAsDaemon,
  type SpecContext,
  type SpecFileCheck,
  type SpecInput,
} from "./core/spec.js";
import type { Supervisor } from "./core/supervisor.js";
import type { ProcessSpec, ProcessView } from "./core/types.js";
import type { EventLog } from "./events/event-log.js";

/** How the state file holds a spec: ProcessSpec's JSON form (wire/spec.ts in the daemon). */
export interface SpecJsonCodec {
  /** The JSON form of a normalised spec. */
  encode(spec: ProcessSpec): unknown;
  /**
   * What a JSON form asks for, for the rules to check.
   * @throws Error naming what does not decode.
   */
  decode(json: unknown): SpecInput;
}

/** What a reload of the config did, by process name. */
export interface ReloadSummary {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
  readonly unchanged: string[];
}

/** Caps that keep one client from exhausting the daemon. */
export interface Limits {
  /** The most processes registered at once. Defaults to 10000. */
  readonly maxProcesses: number;
  /** The most bytes of args and env in one spec. Defaults to 256 KiB. */
  readonly maxSpecBytes: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: Limits = { maxProcesses: 10_000, maxSpecBytes: 256 * 1024 };

/** Seqs reserved in the state file at a time, so a crash never reuses one. */
const SEQ_BLOCK = 1_000_000n;

/** What Control needs. */
export interface ControlDeps {
  readonly supervisor: Supervisor;
  readonly events: EventLog;
  /** Where the registry is persisted; undefined to run without a state file. */
  readonly store: StateFileWriter | undefined;
  /** Identifies this registry's children. */
  readonly instance: string;
  /** What the spec rules need to know of the daemon. */
  readonly validation: SpecContext;
  /** Checks a spec's cwd and executable where they are now. */
  readonly checkFiles: SpecFileCheck;
  /** The state file's form of a spec. */
  readonly specJson: SpecJsonCodec;
  readonly limits: Limits;
  readonly logger: Logger;
}

/**
 * The daemon's use cases: each call validates, applies the change through the
 * supervisor, and persists the registry before it answers, so that what a
 * client was told survives a crash.
 */
export class Control {
  private seqReservedUpTo: bigint;
  /** Registered at start-up without being started: startDeferred() starts them. */
  private readonly deferred: string[] = [];

  constructor(private readonly deps: ControlDeps) {
    this.seqReservedUpTo = deps.events.lastSeq;
  }

  /** Validates and registers a process, and starts it. */
  async add(spec: SpecInput | undefined, source: ProcessSource = "api"): Promise<ProcessView> {
    const { supervisor, limits, validation, checkFiles } = this.deps;
    const normalised = normaliseSpec(spec, validation);
    checkFiles(normalised, runsAsDaemon(normalised, validation));
    checkSpecSize(normalised, limits.maxSpecBytes);
    if (supervisor.size >= limits.maxProcesses && !supervisor.has(normalised.name)) {
      throw new ProcmonError(
        "resource_exhausted",
        `procmond already supervises ${supervisor.size} processes, its limit (--max-processes ${limits.maxProcesses})`,
      );
    }
    supervisor.add(normalised, source);
    // Answered once it runs, or its spawn has failed (a spawner may answer later).
    const view = await supervisor.whenSettled(normalised.name);
    await this.persist();
    return view;
  }

  /** Stops and forgets a process. */
  async remove(name: string): Promise<ProcessView> {
    this.deps.supervisor.get(name); // not_found before anything is written
    const exited = this.deps.supervisor.remove(name);
    // Gone from the file before the exit is awaited: a daemon killed
    // mid-remove must not bring the process back.
    await this.persistBefore(exited);
    const view = await exited;
    await this.persist();
    return view;
  }

  /** Starts a process. */
  async start(name: string): Promise<ProcessView> {
    return this.persisted(this.deps.supervisor.start(name));
  }

  /** Stops a process and keeps it stopped. */
  async stop(name: string): Promise<ProcessView> {
    this.deps.supervisor.get(name); // not_found before anything is written
    const exited = this.deps.supervisor.stop(name);
    // The stopped intent is on disk before the exit is awaited: a daemon
    // killed mid-stop (kill_time can be long) must not bring it back running.
    await this.persistBefore(exited);
    return this.persisted(exited);
  }

  /** Restarts a process at once. */
  async restart(name: string): Promise<ProcessView> {
    return this.persisted(this.deps.supervisor.restart(name));
  }

  /** Restarts every running or backing-off process. */
  async restartAll(): Promise<ProcessView[]> {
    return this.persisted(this.deps.supervisor.restartAll());
  }

  /**
   * Brings back the registry of a state file: every process with its
   * intent (those that should run are started). Every entry is read before
   * anything changes, and the first block of seqs is reserved in the file
   * with the registry it holds, so that neither a bad entry nor a crash in
   * between can cost the registry. Replaces reserveSeqs() at start-up.
   * A process whose run an earlier daemon left running (`found`, by name) is
   * adopted: it goes on with the same pid, not restarted.
   * @throws ProcmonError failed_precondition, the file untouched, when an entry cannot be read.
   */
  async restore(
    state: PersistedState,
    start = true,
    found: ReadonlyMap<string, FoundRun> = new Map(),
  ): Promise<void> {
    const { supervisor, validation, logger } = this.deps;
    const unusable = (problem: string) =>
      new ProcmonError(
        "failed_precondition",
        `state file ${this.deps.store?.path ?? "(none)"} ${problem}; it was left untouched: repair it or move it away to start with an empty registry`,
      );
    const names = new Set<string>();
    const entries = state.processes.map((persisted, i) => {
      let spec: ProcessSpec;
      const where = `processes[${i}]`;
      let input: SpecInput;
      try {
        input = this.deps.specJson.decode(persisted.spec);
      } catch (err) {
        // The file was written by us: a spec we cannot read means it was edited by hand.
        throw unusable(`holds a process that cannot be read (${where}: ${(err as Error).message})`);
      }
      try {
        // As AddProcess would, but for the files: an executable that vanished meanwhile
        // is the supervisor's to retry with backoff, not a reason to lose the process.
        spec = normaliseSpec(input, validation);
      } catch (err) {
        throw unusable(
          `holds a process that is not valid (${where} ${quote(input.name)}: ${(err as Error).message})`,
        );
      }
      if (names.has(spec.name)) throw unusable(`holds process "${spec.name}" twice`);
      names.add(spec.name);
      return { spec, persisted };
    });
    await this.reserveSeqs(state);
    let adopted = 0;
    for (const { spec, persisted } of entries) {
      const run = found.get(spec.name);
      if (run !== undefined) {
        supervisor.adopt(spec, persisted.intent, persisted.source, run);
        adopted += 1;
        continue;
      }
      supervisor.restore(spec, persisted.intent, persisted.source, start, persisted.ended);
      if (!start && persisted.intent === "running" && persisted.ended === undefined) {
        this.deferred.push(spec.name);
      }
    }
    logger.info(
      { processes: state.processes.length, adopted },
      "registry restored from the state file",
    );
  }

  /**
   * Makes the config file's processes the registered ones it owns: new
   * entries are added and started, removed ones stopped and forgotten,
   * changed ones restarted with their new spec, the rest left untouched.
   * Processes added through the API are not the config's: an entry naming
   * one is refused, and then nothing changes.
   * @throws ProcmonError invalid_argument naming the entry and the process.
   */
  async applyConfig(entries: readonly ConfigEntry[], start = true): Promise<ReloadSummary> {
    const { supervisor, logger } = this.deps;
    const sourceOf = (name: string) =>
      supervisor.has(name) ? supervisor.get(name).source : undefined;
    refuseTakeover(entries, sourceOf);
    // The whole file at once: a cycle among its entries is refused before anything changes.
    supervisor.refuseCycles(entries.map(({ spec }) => spec));
    const wanted = new Set(entries.map(({ spec }) => spec.name));
    const work: Promise<unknown>[] = [];
    const summary: ReloadSummary = { added: [], removed: [], changed: [], unchanged: [] };
    for (const view of supervisor.list()) {
      const { name } = view.spec;
      if (view.source === "config" && !wanted.has(name) && !view.removing) {
        logger.info({ process: name }, "config: removing");
        work.push(supervisor.remove(name));
        summary.removed.push(name);
      }
    }
    for (const { spec } of entries) {
      if (!supervisor.has(spec.name)) {
        logger.info({ process: spec.name }, "config: adding");
        supervisor.add(spec, "config", start);
        if (!start) this.deferred.push(spec.name);
        summary.added.push(spec.name);
      } else if (!this.sameSpec(supervisor.get(spec.name).spec, spec)) {
        logger.info({ process: spec.name }, "config: changed, restarting");
        work.push(supervisor.update(spec));
        summary.changed.push(spec.name);
      } else {
        summary.unchanged.push(spec.name);
      }
    }
    await Promise.all(work);
    await this.persist();
    for (const names of Object.values(summary)) names.sort();
    return summary;
  }

  /**
   * Replaces a process's spec: restarted with it if anything but the name
   * changed (and it should run); nothing happens otherwise.
   * @throws ProcmonError not_found, invalid_argument or permission_denied as add() would.
   */
  async update(spec: SpecInput | undefined): Promise<ProcessView> {
    const { supervisor, limits, validation, checkFiles } = this.deps;
    const normalised = normaliseSpec(spec, validation);
    const current = supervisor.get(normalised.name); // not_found before anything is checked further
    checkFiles(normalised, runsAsDaemon(normalised, validation));
    checkSpecSize(normalised, limits.maxSpecBytes);
    if (this.sameSpec(current.spec, normalised)) return current;
    return this.persisted(supervisor.update(normalised));
  }

  /**
   * Starts what restore() and applyConfig() registered without starting (at
   * daemon start, so that the socket is served first), `inFlight` at a time,
   * yielding to the event loop between spawns so that clients are answered
   * meanwhile. Resolves with how many were started.
   */
  async startDeferred(inFlight = 32): Promise<number> {
    const names = this.deferred.splice(0);
    const { supervisor, logger } = this.deps;
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++] as string;
        await new Promise((resolve) => setImmediate(resolve));
        if (supervisor.isShuttingDown) return;
        if (!supervisor.has(name) || supervisor.get(name).intent !== "running") continue;
        await supervisor.start(name).catch((err: unknown) => {
          logger.warn({ process: name, err }, "not started");
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, names.length) }, worker));
    return names.length;
  }

  private cameToRest(event: CoreEvent): boolean {
    if (event.kind === "gaveUp") return true;
    if (event.kind !== "exited" && event.kind !== "spawnFailed") return false;
    const { supervisor } = this.deps;
    return supervisor.has(event.process) && supervisor.get(event.process).state === "exited";
  }

  private sameSpec(a: ProcessSpec, b: ProcessSpec): boolean {
    const { encode } = this.deps.specJson;
    return JSON.stringify(encode(a)) === JSON.stringify(encode(b));
  }

  /**
   * Called after each event: persists a process that came to rest by itself
   * (exited by its policy, given up on), so that the next daemon leaves it
   * so; reserves more seqs in the state file well before they run out.
   */
  afterEvent(event?: CoreEvent): void {
    if (event !== undefined && this.cameToRest(event)) {
      this.persist().catch((err: unknown) =>
        this.deps.logger.warn({ err }, "could not save a process's end in the state file"),
      );
      return;
    }
    if (this.deps.events.lastSeq + SEQ_BLOCK / 2n <= this.seqReservedUpTo) return;
    this.seqReservedUpTo = this.deps.events.lastSeq + SEQ_BLOCK;
    this.persist().catch((err: unknown) =>
      this.deps.logger.warn({ err }, "could not reserve event seqs in the state file"),
    );
  }

  /**
   * Reserves the first block of seqs before any event is emitted (call it,
   * and await it, before anything is added); with `saved`, keeps the registry
   * it holds (not restored yet) in the file.
   */
  async reserveSeqs(saved?: PersistedState): Promise<void> {
    this.seqReservedUpTo = this.deps.events.lastSeq + SEQ_BLOCK;
    const state = saved
      ? { ...saved, seqReservedUpTo: String(this.seqReservedUpTo) }
      : this.snapshot();
    await this.deps.store?.save(state);
  }

  /**
   * The last write before exit: the exact seq, so the next daemon continues
   * without a jump. Queued after any write still in flight (a reload's, say),
   * as every write is, so that an older state never lands last.
   */
  async saveFinal(): Promise<void> {
    this.seqReservedUpTo = this.deps.events.lastSeq;
    await this.persist();
  }

  /** The registry as the state file holds it. */
  snapshot(): PersistedState {
    return {
      version: 1,
      instance: this.deps.instance,
      seqReservedUpTo: String(this.seqReservedUpTo),
      // One being removed is gone for the next daemon, which sweeps what it left.
      processes: this.deps.supervisor
        .list()
        .filter((view) => !view.removing)
        .map((view) => ({
          spec: this.deps.specJson.encode(view.spec),
          intent: view.intent,
          source: view.source,
          ...(view.state === "exited" || view.state === "failed" ? { ended: view.state } : {}),
        })),
    };
  }

  /**
   * Persists the registry as a change still under way (`change`, which
   * resolves once the process has exited) has already made it.
   */
  private async persistBefore(change: Promise<unknown>): Promise<void> {
    // Awaited by the caller after this write; meanwhile not an unhandled rejection.
    change.catch(() => {});
    await this.persist();
  }

  private async persisted<T>(change: Promise<T>): Promise<T> {
    const result = await change;
    await this.persist();
    return result;
  }

  private persist(): Promise<void> {
    return this.deps.store?.save(() => this.snapshot()) ?? Promise.resolve();
  }
}

/**
 * Refuses config entries that name a process added through the API: the
 * config never takes one over (nor removes it later). `sourceOf` says where
 * each registered process came from (undefined: not registered).
 * @throws ProcmonError invalid_argument naming the first entry and its process.
 */
export function refuseTakeover(
  entries: readonly ConfigEntry[],
  sourceOf: (name: string) => ProcessSource | undefined,
): void {
  const taken = entries.filter(({ spec }) => sourceOf(spec.name) === "api");
  const [first] = taken;
  if (first === undefined) return;
  const others = taken.length > 1 ? ` (and ${taken.length - 1} more)` : "";
  throw new ProcmonError(
    "invalid_argument",
    `${first.where}: process ${quote(first.spec.name)} was added through the API, not by this file${others}: remove it (procmonctl rm) or rename the entry; nothing was changed`,
  );
}

function checkSpecSize(spec: ProcessSpec, maxBytes: number): void {
  let bytes = 0;
  for (const arg of spec.args) bytes += Buffer.byteLength(arg) + 1;
  for (const [key, value] of Object.entries(spec.env)) {
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  }
  if (bytes > maxBytes) {
    throw new ProcmonError(
      "invalid_argument",
      `args and env take ${bytes} bytes, over the limit of ${maxBytes} (--max-spec-bytes)`,
    );
  }
}
