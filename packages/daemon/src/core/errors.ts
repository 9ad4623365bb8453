import { quote } from "./quote.js";

/** What went wrong, independent of the transport; mapped to a gRPC code at the edge. */
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "failed_precondition"
  | "resource_exhausted"
  | "out_of_range"
  | "unavailable";

/** The one error type of the daemon: a code and a sentence a person can act on. */
export class ProcmonError extends Error {
  override readonly name = "ProcmonError";
  readonly code: ErrorCode;
  /** Facts a program can act on without parsing the message, sent as trailing metadata. */
  readonly details: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: ErrorOptions & { details?: Readonly<Record<string, string>> },
  ) {
    super(message, options);
    this.code = code;
    this.details = options?.details ?? {};
  }
}

/** The error for an unknown process name, quoting at most 128 characters of it. */
export function notFound(name: string): ProcmonError {
  return new ProcmonError("not_found", `process ${quote(name)} does not exist`);
}
