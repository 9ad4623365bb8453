// What every command runs with: the global flags, a client of the daemon,
// where to print, and the deadlines that keep a call from hanging.
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { defaultSocketPath } from "@procmon/api/socket";
import type { CallOptions } from "../call-options.js";
import { createClient, type ProcmonClient } from "../client.js";
import { Code, hasCode, ProcmonError } from "../errors.js";
import { type Paint, paintFor } from "./colors.js";
import { type Escape, escapeFor } from "./terminal-text.js";

/** Where the CLI prints. */
export interface Io {
  /** Writes to standard output as is. */
  out(text: string): void;
  /** Writes to standard error as is. */
  err(text: string): void;
  /**
   * Standard output is a terminal: the daemon's strings are printed with
   * their control characters escaped (terminal-text.ts). Defaults to false:
   * printed as they are, for scripts.
   */
  readonly outIsTerminal?: boolean;
  /** Standard error is a terminal: the daemon's words in messages are escaped. Defaults to false. */
  readonly errIsTerminal?: boolean;
  /** The environment, read for NO_COLOR. Defaults to none. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The global flags, as commander parsed them. */
export interface GlobalFlags {
  /** --socket PATH. */
  readonly socket?: string;
  /** --json. */
  readonly json?: boolean;
  /** --timeout D, already in ms. */
  readonly timeout?: number;
  /** false with --no-color. */
  readonly color?: boolean;
}

/** The global settings of one run. */
export interface Globals {
  /** The daemon's socket: --socket, else PROCMON_SOCKET, else the per-user default. */
  readonly socket: string;
  /** Print JSON (protobuf's canonical JSON form) instead of text. */
  readonly json: boolean;
  /** The deadline of every unary call in ms, as given by --timeout; undefined for the defaults. */
  readonly timeoutMs: number | undefined;
  /** Colour may be used: no --no-color (NO_COLOR, the terminal and --json are the session's to weigh). */
  readonly color: boolean;
}

/** Everything a command needs. */
export interface Session {
  /** The global settings. */
  readonly globals: Globals;
  /** A client of the daemon at `globals.socket`. */
  readonly client: ProcmonClient;
  /** Where to print. */
  readonly io: Io;
  /** How a string that came from the daemon is printed on standard output. */
  readonly safe: Escape;
  /**
   * How the CLI's own state words are coloured on standard output: ANSI on
   * a terminal, without --json, --no-color or NO_COLOR; else not at all.
   */
  readonly paint: Paint;
  /** The current wall-clock time in ms, for uptimes and restart times. */
  now(): number;
}

/**
 * The deadline of a call that answers at once (add, start, get, ls). An
 * unreachable daemon fails far sooner: the client does not wait for a connection.
 */
export const QUICK_TIMEOUT_MS = 5_000;

/** The settings of a run with these flags. */
export function globalsOf(flags: GlobalFlags): Globals {
  return {
    socket: flags.socket ?? defaultSocketPath(),
    json: flags.json ?? false,
    timeoutMs: flags.timeout,
    color: flags.color ?? true,
  };
}

/** Opens a session; the caller closes its client. */
export function openSession(globals: Globals, io: Io): Session {
  return {
    globals,
    io,
    safe: escapeFor(io.outIsTerminal ?? false),
    paint: paintFor({
      isTerminal: io.outIsTerminal ?? false,
      json: globals.json,
      color: globals.color,
      env: io.env ?? {},
    }),
    client: createClient({ socket: globals.socket }),
    now: Date.now,
  };
}

/** Call options for a call that answers at once: --timeout, else {@link QUICK_TIMEOUT_MS}. */
export function quickCall(session: Session): CallOptions {
  return { timeoutMs: session.globals.timeoutMs ?? QUICK_TIMEOUT_MS };
}

/**
 * Call options for a call that may wait for processes to exit (stop, rm,
 * restart): the daemon answers only after up to `killTimeMs`, so the default
 * deadline allows for it on top of {@link QUICK_TIMEOUT_MS}.
 */
export function waitingCall(session: Session, killTimeMs: number): CallOptions {
  return { timeoutMs: session.globals.timeoutMs ?? QUICK_TIMEOUT_MS + Math.ceil(killTimeMs) };
}

/** Prints `message` as one line of protobuf JSON, implicit fields included so scripts see a stable shape. */
export function printJson<Desc extends DescMessage>(
  session: Session,
  schema: Desc,
  message: MessageShape<Desc>,
): void {
  const json = toJson(schema, message, { alwaysEmitImplicit: true });
  session.io.out(`${JSON.stringify(json)}\n`);
}

/**
 * Prints `procmonctl: <text>` on standard error: a note that is no part of
 * the output scripts read. `text` may quote the daemon, so on a terminal it
 * is escaped.
 */
export function printNote(io: Io, text: string): void {
  io.err(`procmonctl: ${escapeFor(io.errIsTerminal ?? false)(text)}\n`);
}

/** Prints `text` and a newline, unless it is empty. */
export function printLine(session: Session, text: string): void {
  if (text !== "") session.io.out(`${text}\n`);
}

/**
 * A permission error on the socket, said as one: the SDK's sentence for a
 * refused connect asks "is it running?", which sends a user who may not
 * connect (a daemon of another user, a socket of mode 0600) looking in the
 * wrong place. Undefined for any other error. grpc-js's own words, in the
 * SDK error's `cause`, say `connect EACCES <path>`.
 */
export function permissionProblem(err: unknown, socket: string): ProcmonError | undefined {
  if (!hasCode(err, Code.UNAVAILABLE)) return undefined;
  const details = (err.cause as { details?: unknown } | undefined)?.details;
  if (typeof details !== "string" || !details.startsWith("No connection established")) {
    return undefined;
  }
  if (!/\bconnect EACCES\b/.test(details)) return undefined;
  return new ProcmonError(
    err.code,
    `cannot connect to procmond: permission denied on ${socket} (it belongs to another user, or its mode keeps you out)`,
    { cause: err },
  );
}
