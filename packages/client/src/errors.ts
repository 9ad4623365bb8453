import { status } from "@grpc/grpc-js";

/** gRPC status codes, by name. */
export const Code = status;
/** A gRPC status code. */
export type Code = status;

/** The name of a gRPC code, such as "NOT_FOUND". */
export function codeName(code: Code): string {
  return status[code] ?? `CODE_${code}`;
}

export { LAST_DELIVERED_SEQ_KEY, OLDEST_RESUMABLE_SEQ_KEY } from "@procmon/api/metadata";

interface GrpcMetadataLike {
  getMap(): Record<string, string | Buffer>;
}

function isServiceError(
  err: unknown,
): err is Error & { code: number; details: string; metadata?: GrpcMetadataLike } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === "number" &&
    typeof (err as { details?: unknown }).details === "string"
  );
}

/** The one error every client call throws: the gRPC code and the server's sentence. */
export class ProcmonError extends Error {
  override readonly name = "ProcmonError";
  /** The gRPC status code. */
  readonly code: Code;
  /** The server's trailing metadata (text values only), such as the seq to resume after. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(
    code: Code,
    message: string,
    options?: ErrorOptions & { metadata?: Readonly<Record<string, string>> },
  ) {
    super(message, options);
    this.code = code;
    this.metadata = options?.metadata ?? {};
  }

  /** Wraps anything thrown by grpc-js (or elsewhere) as a ProcmonError. */
  static from(err: unknown, socket?: string): ProcmonError {
    if (err instanceof ProcmonError) return err;
    if (isServiceError(err)) {
      if (
        err.code === status.UNAVAILABLE &&
        socket !== undefined &&
        !err.details.includes("procmond")
      ) {
        // grpc-js's own words ("No connection established. Last error: ...") stay in `cause`.
        return new ProcmonError(status.UNAVAILABLE, unavailableSentence(err.details, socket), {
          cause: err,
        });
      }
      return new ProcmonError(err.code, err.details || codeName(err.code), {
        cause: err,
        metadata: textMetadata(err.metadata),
      });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new ProcmonError(status.UNKNOWN, message, { cause: err });
  }
}

/**
 * What happened to the connection, from the `details` of an UNAVAILABLE that
 * grpc-js raised itself (the daemon's own UNAVAILABLE names procmond):
 *
 * - `No connection established. Last error: Error: connect ENOENT <path>`
 *   (or ECONNREFUSED, EACCES): nothing listens there.
 * - `No connection established. Last error: Failed to connect (<time>)`:
 *   the socket accepted the connection and closed it before the HTTP/2
 *   handshake. That is what a daemon out of file descriptors does: libuv
 *   accepts and closes at once what it has no descriptor for. `Socket
 *   closed`, `Connection closed before starting HTTP/2 handshake`,
 *   ECONNRESET and EPIPE are the same story told at other moments.
 * - `Connection dropped` (or ECONNRESET, EPIPE) without that prefix: the
 *   connection was up, and went away during the call.
 */
function unavailableSentence(details: string, socket: string): string {
  const notConnected = details.startsWith("No connection established");
  const refused = notConnected
    ? /\bconnect (ENOENT|ECONNREFUSED|EACCES)\b/.exec(details)?.[1]
    : undefined;
  if (refused) return `cannot connect to procmond at ${socket}: ${refused}, is it running?`;
  if (notConnected && CLOSED_BEFORE_ANSWER.test(details)) {
    return `procmond at ${socket} closed the connection before answering (it may be out of file descriptors: see its log)`;
  }
  if (!notConnected && DROPPED.test(details)) {
    return `procmond at ${socket} dropped the connection during the call (it may have exited or crashed: see its log)`;
  }
  return `cannot connect to procmond at ${socket}: is it running?`;
}

/** grpc-js's words for a connection that was accepted and closed before the HTTP/2 handshake. */
const CLOSED_BEFORE_ANSWER =
  /Failed to connect|Socket closed|Connection closed before starting HTTP\/2 handshake|ECONNRESET|EPIPE/;
/** grpc-js's words for an established connection that went away during a call. */
const DROPPED = /Connection dropped|ECONNRESET|EPIPE/;

/** True if `err` is a ProcmonError with `code`. */
export function hasCode(err: unknown, code: Code): err is ProcmonError {
  return err instanceof ProcmonError && err.code === code;
}

/** True for NOT_FOUND: no process of that name. */
export const isNotFound = (err: unknown): err is ProcmonError => hasCode(err, status.NOT_FOUND);
/** True for ALREADY_EXISTS: the name is in use. */
export const isAlreadyExists = (err: unknown): err is ProcmonError =>
  hasCode(err, status.ALREADY_EXISTS);
/** True for INVALID_ARGUMENT: the request was rejected, nothing changed. */
export const isInvalidArgument = (err: unknown): err is ProcmonError =>
  hasCode(err, status.INVALID_ARGUMENT);
/** True for PERMISSION_DENIED: the daemon cannot switch to that uid/gid. */
export const isPermissionDenied = (err: unknown): err is ProcmonError =>
  hasCode(err, status.PERMISSION_DENIED);
/** True for UNAVAILABLE: the daemon is not reachable or shutting down. */
export const isUnavailable = (err: unknown): err is ProcmonError =>
  hasCode(err, status.UNAVAILABLE);
/** True for OUT_OF_RANGE: a watch cannot resume from that seq; list again. */
export const isOutOfRange = (err: unknown): err is ProcmonError =>
  hasCode(err, status.OUT_OF_RANGE);
/** True for DEADLINE_EXCEEDED: the call's timeout passed. */
export const isDeadlineExceeded = (err: unknown): err is ProcmonError =>
  hasCode(err, status.DEADLINE_EXCEEDED);
/** True for CANCELLED: the call was aborted. */
export const isCancelled = (err: unknown): err is ProcmonError => hasCode(err, status.CANCELLED);

function textMetadata(metadata: GrpcMetadataLike | undefined): Record<string, string> {
  const text: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata?.getMap() ?? {})) {
    if (typeof value === "string") text[key] = value;
  }
  return text;
}
