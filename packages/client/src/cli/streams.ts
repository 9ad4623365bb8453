// The commands that follow the event stream: watch and logs.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Event, EventSchema } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import {
  Code,
  hasCode,
  isOutOfRange,
  OLDEST_RESUMABLE_SEQ_KEY,
  type ProcmonError,
} from "../errors.js";
import type { Reconnection } from "../watch-resume.js";
import { eventLine } from "./format.js";
import { printJson, printLine, printNote, quickCall, type Session } from "./session.js";

/** The flags of `watch`, parsed. */
export interface WatchFlags {
  /** --output: also output lines. */
  readonly output?: boolean;
  /** --since SEQ: replay the retained events after SEQ first. */
  readonly since?: bigint;
}

/** The flags of `logs`, parsed. */
export interface LogsFlags {
  /** --follow: keep printing new lines until interrupted. */
  readonly follow?: boolean;
  /** --lines N: the last N lines, from the daemon's log files when it keeps fewer. */
  readonly lines?: number;
}

/**
 * `watch`: prints events as they happen (after `--since`, else after now),
 * across broken streams and daemon restarts, until SIGINT or SIGTERM.
 * @throws ProcmonError OUT_OF_RANGE when `--since` is no longer (or not yet) retained.
 */
export async function watch(session: Session, names: string[], flags: WatchFlags): Promise<void> {
  await untilInterrupted(async (signal) => {
    // Take the cursor here, with a deadline, so an unreachable daemon fails fast.
    const afterSeq =
      flags.since ??
      (await session.client.listProcesses({ ...quickCall(session), signal })).lastEventSeq;
    const includeOutput = flags.output ?? false;
    const onReconnect = noteReconnection(session);
    const events = session.client.watch({ names, includeOutput, afterSeq, signal, onReconnect });
    for await (const event of events) {
      if (session.globals.json) printJson(session, EventSchema, event);
      else printLine(session, eventLine(event, session.safe));
    }
  });
}

/**
 * `logs`: prints the retained output lines of `name`, oldest first; with
 * `--follow`, then new ones until interrupted.
 *
 * Without `--follow` it must know when it has caught up, and the daemon sends
 * no marker at the end of a replay. So it takes `lastEventSeq` from
 * ListProcesses and replays every event (all processes, output included):
 * that stream has no gaps, so it has caught up exactly when it reaches that
 * seq, and it keeps only `name`'s lines. This is precise where "stop when the
 * stream goes idle" would be a guess, at the price of receiving the other
 * processes' retained events too.
 */
export async function logs(session: Session, name: string, flags: LogsFlags): Promise<void> {
  await untilInterrupted(async (signal) => {
    const { client } = session;
    const { processes, lastEventSeq } = await client.listProcesses({
      ...quickCall(session),
      signal,
    });
    // For an unknown name, let the daemon say so in its own words.
    if (!processes.some((p) => p.spec?.name === name))
      await client.getProcess(name, quickCall(session));

    const events = flags.follow
      ? resuming(session, 0n, undefined, (afterSeq) =>
          client.watch({
            names: [name],
            includeOutput: true,
            afterSeq,
            signal,
            onReconnect: noteReconnection(session),
          }),
        )
      : resuming(session, 0n, lastEventSeq, (afterSeq) =>
          client.watchEvents({ includeOutput: true, afterSeq }, { signal }),
        );
    const print = (event: Event) => {
      if (event.kind.case !== "output") return;
      if (session.globals.json) printJson(session, EventSchema, event);
      else {
        // The newline is the CLI's (a line never holds one): it stays, the line is escaped.
        const { line, partial } = event.kind.value;
        session.io.out(`${session.safe(line)}${partial ? "" : "\n"}`);
      }
    };
    if (flags.lines === undefined || flags.follow) {
      for await (const event of events) {
        if (event.process === name && event.kind.case === "output") print(event);
      }
      return;
    }
    const kept: Event[] = [];
    for await (const event of events) {
      if (event.process === name && event.kind.case === "output") kept.push(event);
    }
    const wanted = flags.lines;
    if (kept.length < wanted && !session.globals.json) {
      // Fewer in memory than asked for: the log files, if the daemon keeps them.
      const { logDir } = await client.getDaemonInfo({ ...quickCall(session), signal });
      if (logDir !== "") {
        const file = fileLines(session, join(logDir, `${name}.log`), wanted + kept.length);
        const newer = kept.slice(overlap(file, kept));
        const texts = [...file.map((l) => l.text), ...newer.map(textOf)].slice(-wanted);
        for (const text of texts) session.io.out(`${session.safe(text)}\n`);
        return;
      }
    }
    for (const event of kept.slice(-wanted)) print(event);
  });
}

/** A retained output event's line. */
const textOf = (event: Event) => (event.kind.case === "output" ? event.kind.value.line : "");

/**
 * How many of the retained lines (`kept`, oldest first) the file already
 * ends with: the files lag the daemon's memory by what is still queued.
 */
function overlap(file: readonly FileLine[], kept: readonly Event[]): number {
  for (let k = Math.min(file.length, kept.length); k > 0; k--) {
    const tail = file.slice(file.length - k);
    const same = tail.every((line, i) => {
      const event = kept[i] as Event;
      return (
        line.text === textOf(event) && (!event.time || line.timeMs === timestampMs(event.time))
      );
    });
    if (same) return k;
  }
  return 0;
}

/** One line of a log file: its time and text. */
interface FileLine {
  readonly timeMs: number;
  readonly text: string;
}

/**
 * The last `count` lines of a process's log file and its rotated ones (`.1`
 * is the newest), oldest first. A file that cannot be read is said on
 * stderr, and what is older than it left out.
 */
function fileLines(session: Session, path: string, count: number): FileLine[] {
  const taken: FileLine[] = [];
  for (let i = 0; taken.length < count; i++) {
    const file = i === 0 ? path : `${path}.${i}`;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") printNote(session.io, `cannot read ${file}: ${code ?? String(err)}`);
      break;
    }
    const lines = text.split("\n").filter((l) => l !== "");
    for (let k = lines.length - 1; k >= 0 && taken.length < count; k--) {
      const m = /^(\S+) (?:out|err) (.*)$/.exec(lines[k] as string);
      if (m) taken.push({ timeMs: Date.parse(m[1] as string), text: m[2] as string });
    }
  }
  return taken.reverse();
}

/**
 * Says on stderr (never on stdout, which scripts read) that the stream broke
 * and when the watch tries again: a watch that waits for a daemon that is
 * gone should not look like a quiet one.
 */
function noteReconnection(session: Session): (reconnection: Reconnection) => void {
  return ({ attempt, delayMs, error }) => {
    const again = attempt === 1 ? "" : `, attempt ${attempt}`;
    printNote(
      session.io,
      `connection lost (${error.message}), reconnecting in ${Math.round(delayMs)}ms${again}`,
    );
  };
}

/** How many reconnections in a row may deliver nothing before a replay gives up. */
const MAX_IDLE_RESUMES = 5;

/**
 * The events of `open(after)`, reopened after the last one delivered when
 * the daemon ends a stream that fell behind (RESOURCE_EXHAUSTED), and moved
 * on to the oldest retained seq when the daemon no longer keeps `after`
 * (OUT_OF_RANGE, which is expected at the start: old output is discarded).
 * Ends once it has delivered `until`, if given.
 */
async function* resuming(
  session: Session,
  after: bigint,
  until: bigint | undefined,
  open: (afterSeq: bigint) => AsyncIterable<Event>,
): AsyncGenerator<Event> {
  let cursor = after;
  let delivered = false;
  let idleResumes = 0;
  while (until === undefined || cursor < until) {
    const before = cursor;
    try {
      for await (const event of open(cursor)) {
        cursor = event.seq;
        delivered = true;
        yield event;
        if (until !== undefined && cursor >= until) return;
      }
      return;
    } catch (err) {
      const oldest = isOutOfRange(err) ? oldestResumable(err) : undefined;
      if (oldest !== undefined && oldest > cursor) {
        // Before anything was printed, this is just the retention window; after, a gap.
        if (delivered) {
          printNote(session.io, `events up to #${oldest} are no longer kept; skipping them`);
        }
        cursor = oldest;
        continue;
      }
      const fellBehind = hasCode(err, Code.RESOURCE_EXHAUSTED);
      idleResumes = cursor === before ? idleResumes + 1 : 0;
      if (!fellBehind || idleResumes >= MAX_IDLE_RESUMES) throw err;
    }
  }
}

function oldestResumable(err: ProcmonError): bigint | undefined {
  const text = err.metadata[OLDEST_RESUMABLE_SEQ_KEY];
  return text !== undefined && /^\d+$/.test(text) ? BigInt(text) : undefined;
}

/**
 * Runs `body` with a signal aborted by SIGINT or SIGTERM; an interrupted run
 * ends quietly (the user asked it to stop), anything else is rethrown.
 */
async function untilInterrupted(body: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    await body(controller.signal);
  } catch (err) {
    if (controller.signal.aborted) return;
    throw err;
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
}
