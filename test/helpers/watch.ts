// A WatchEvents stream that reports when it is live. The SDK's watchEvents()
// starts lazily and hides the response headers, so a test could not know when
// the daemon's subscription is in place; the raw grpc-js call can: the daemon
// sends the headers once it is.
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { type ClientReadableStream, credentials, type StatusObject } from "@grpc/grpc-js";
import { grpcClientConstructor } from "@procmon/api/grpc";
import type { WatchEventsInit } from "@procmon/client";
import {
  type Event,
  ProcessMonitor,
  WatchEventsRequestSchema,
  type WatchEventsResponse,
} from "@procmon/client/api";
import { Changes } from "./changes.js";

const ProcessMonitorClient = grpcClientConstructor(ProcessMonitor);

const FAST_READER = join(dirname(fileURLToPath(import.meta.url)), "fast-reader.mjs");

/** A live WatchEvents stream that records what it receives. */
export interface Watch {
  /** Every event received so far, in order. */
  readonly events: Event[];
  /** The stream's final status, once it has ended. */
  readonly status: StatusObject | undefined;
  /** Resolves with the first event (past or future) matching `predicate`. */
  waitForEvent(predicate: (event: Event) => boolean, timeoutMs?: number): Promise<Event>;
  /** Resolves with the final status once the daemon ended the stream and every message is in. */
  ended(timeoutMs?: number): Promise<StatusObject>;
  /** Stops reading: what the daemon sends piles up in its buffers, as with a slow client. */
  pause(): void;
  /** Reads again. */
  resume(): void;
  /** Cancels the stream and closes its connection. Idempotent. */
  close(): void;
}

const open = new Set<Watch>();

/**
 * Opens WatchEvents on `socket` and resolves once the response headers have
 * arrived, i.e. once the subscription is live. Rejects with the status if the
 * daemon ends the call first, or after `timeoutMs`.
 */
export function openWatch(
  socket: string,
  request: WatchEventsInit = {},
  timeoutMs = 5_000,
): Promise<Watch> {
  const client = new ProcessMonitorClient(`unix:${socket}`, credentials.createInsecure(), {
    // The SDK's 1 MiB HTTP/2 window (packages/client/src/client.ts).
    "grpc-node.flow_control_window": 1024 * 1024,
    // Each watch on its own connection, as separate subscribers are: a paused
    // stream holds its connection's window, and would stall any other on it.
    "grpc.use_local_subchannel_pool": 1,
  });
  const call: ClientReadableStream<WatchEventsResponse> = client.watchEvents(
    create(WatchEventsRequestSchema, request),
  );
  const events: Event[] = [];
  const changes = new Changes();
  let status: StatusObject | undefined;
  const notify = () => changes.notify();
  call.on("data", (response: WatchEventsResponse) => {
    if (response.event) events.push(response.event);
    notify();
  });
  // A non-OK status also comes as 'error'; 'status' carries it either way.
  call.on("error", () => {});
  call.on("status", (s: StatusObject) => {
    status = s;
    notify();
  });
  // The status can come while messages still wait in a paused stream: the end is once both are in.
  let drained = false;
  const onDrained = () => {
    drained = true;
    notify();
  };
  call.on("end", onDrained);
  call.on("close", onDrained);

  /** Resolves with `check()`'s value once it is defined, re-checking on every stream event. */
  const until = <T>(check: () => T | undefined, what: string, ms: number) =>
    changes.until(check, ms, () => notSeen(what, ms, events));

  let closed = false;
  const watch: Watch = {
    events,
    get status() {
      return status;
    },
    waitForEvent: (predicate, ms = 5_000) =>
      until(
        () => events.find(predicate) ?? (status ? failEnded(status) : undefined),
        "awaited event",
        ms,
      ),
    ended: (ms = 5_000) => until(() => (drained ? status : undefined), "end of stream", ms),
    pause: () => call.pause(),
    resume: () => call.resume(),
    close() {
      if (closed) return;
      closed = true;
      open.delete(watch);
      call.cancel();
      client.close();
    },
  };
  open.add(watch);

  return new Promise<Watch>((resolve, reject) => {
    const timer = setTimeout(() => {
      watch.close();
      reject(new Error(`WatchEvents headers not received within ${timeoutMs}ms`));
    }, timeoutMs);
    call.once("metadata", () => {
      clearTimeout(timer);
      resolve(watch);
    });
    call.once("status", (s: StatusObject) => {
      clearTimeout(timer);
      watch.close();
      reject(Object.assign(new Error(`WatchEvents ended before going live: ${s.details}`), s));
    });
  });
}

/** The error of a wait for `what` that timed out, listing the events seen. */
export function notSeen(what: string, ms: number, events: readonly Event[]): Error {
  const seen = events.map((e) => `${e.seq} ${e.process} ${e.kind.case}`).join(", ");
  return new Error(`${what} not seen within ${ms}ms; events: [${seen}]`);
}

function failEnded(status: StatusObject): never {
  throw new Error(`stream ended (code ${status.code}: ${status.details}) before the event`);
}

/** Closes every watch still open: for afterEach. */
export function closeAllWatches(): void {
  for (const watch of [...open]) watch.close();
}

/** What test/helpers/fast-reader.mjs reports. */
export interface FastReaderSummary {
  readonly outputLines: number;
  readonly events: number;
  readonly firstSeq: string | null;
  readonly lastSeq: string | null;
  /** The first break in the seqs, or null. */
  readonly gap: string | null;
  /** The gRPC code the daemon ended the stream with; null while it was live. */
  readonly status: number | null;
}

/** A running fast-reader.mjs. */
export interface FastReader {
  /** Resolves with its summary once `until` exited or the stream ended. */
  summary(timeoutMs?: number): Promise<FastReaderSummary>;
}

const readers = new Set<ChildProcess>();

/**
 * Starts a subscriber in a process of its own that reads everything with
 * output as fast as grpc-js delivers it, and resolves once it is live.
 */
export async function startFastReader(
  socket: string,
  until: string,
  timeoutMs = 10_000,
): Promise<FastReader> {
  const child = spawn(process.execPath, [FAST_READER, socket, until], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  readers.add(child);
  const lines: string[] = [];
  const changes = new Changes();
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    lines.push(...parts);
    changes.notify();
  });
  child.on("exit", () => {
    readers.delete(child);
    changes.notify();
  });
  const line = (index: number, what: string, ms: number) =>
    changes.until(
      () => {
        const found = lines[index];
        if (found === undefined && (child.exitCode !== null || child.signalCode !== null)) {
          throw new Error(`fast reader exited before ${what}`);
        }
        return found;
      },
      ms,
      () => new Error(`fast reader: no ${what} within ${ms}ms`),
    );
  await line(0, "ready line", timeoutMs);
  return {
    summary: async (ms = 30_000) => JSON.parse(await line(1, "summary", ms)) as FastReaderSummary,
  };
}

/** Kills, by pid, every fast reader still running: for afterEach. */
export function stopFastReaders(): void {
  for (const child of readers) child.kill("SIGKILL");
  readers.clear();
}
