// The daemon's own log: pino's JSON on stdout, asynchronous, whose fullness
// paces how fast children's pipes are read; each event as one line.
import { setLogger } from "@grpc/grpc-js";
import { type Logger as PinoLogger, pino } from "pino";
import { FlowGate } from "./adapters/flow-gate.js";
import type { CoreEvent } from "./core/events.js";

/** The daemon's JSON log on stdout, and the gate its fullness closes. */
export interface DaemonLog {
  readonly logger: PinoLogger;
  /** Closed while the log's buffer is full: children's pipes are not read meanwhile. */
  readonly gate: FlowGate;
  /** Writes out what is buffered, in order, and closes the log: call before exiting. */
  close(): Promise<void>;
}

/** Creates the daemon's asynchronous JSON log on stdout. */
export function createDaemonLog(level: string): DaemonLog {
  // Buffer mode: in string mode sonic-boom re-measures its pending chunk on
  // every line, which cost a fifth of the daemon's time under heavy output.
  const destination = pino.destination({ fd: 1, sync: false, contentMode: "buffer" });
  const gate = new FlowGate();
  destination.on("drain", () => gate.open());
  const stream = {
    write(chunk: string): void {
      // In buffer mode sonic-boom takes Buffers; its types only declare strings.
      if (!destination.write(Buffer.from(chunk) as unknown as string)) gate.close();
    },
  };
  const logger = pino({ level, base: { pid: process.pid } }, stream);
  const close = () =>
    new Promise<void>((resolve) => {
      // end(), not flushSync(): a synchronous flush beside a write in flight reorders lines.
      const fallback = setTimeout(resolve, 2_000);
      destination.once("close", () => {
        clearTimeout(fallback);
        resolve();
      });
      destination.end();
    });
  return { logger, gate, close };
}

/** Child output goes to the log as it is; state events as one line each. */
export function logEvent(logger: PinoLogger, event: CoreEvent): void {
  if (event.kind === "output") {
    const fields = { process: event.process, stream: event.stream };
    logger.info(event.partial ? { ...fields, partial: true } : fields, event.line);
    return;
  }
  if (!logger.isLevelEnabled("info")) return;
  // The child's pid is logged as childPid: pid is the daemon's own in every pino line.
  const { kind, process, ...details } = event;
  if (kind === "added") {
    logger.info({ process, event: kind, args: event.spec.args }, `process ${kind}`);
  } else if ("pid" in details) {
    const { pid, ...rest } = details;
    logger.info({ process, event: kind, childPid: pid, ...rest }, `process ${kind}`);
  } else {
    logger.info({ process, event: kind, ...details }, `process ${kind}`);
  }
}

/**
 * The logger for the daemon's own comings and goings (listening, shutting
 * down, stopped): shown at any level but silent, since people and scripts
 * wait for them.
 */
export function lifecycleLogger(logger: PinoLogger): PinoLogger {
  return logger.isLevelEnabled("fatal") ? logger.child({}, { level: "info" }) : logger;
}

/**
 * Sends grpc-js's own log to `logger`: it writes its errors to stderr
 * ("E No address added ..."), where a person reads procmond's one-line reasons.
 */
export function routeGrpcLog(logger: PinoLogger): void {
  setLogger({
    error: (message: unknown) => logger.warn({ grpc: true }, String(message)),
    info: (message: unknown) => logger.debug({ grpc: true }, String(message)),
    debug: (message: unknown) => logger.trace({ grpc: true }, String(message)),
  });
}
