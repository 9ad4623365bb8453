import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type ErrorCode, ProcmonError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";

const GRPC_CODES: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  permission_denied: status.PERMISSION_DENIED,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  out_of_range: status.OUT_OF_RANGE,
  unavailable: status.UNAVAILABLE,
};

/** A gRPC status carrying the sentence of a ProcmonError; anything else is INTERNAL and logged. */
export function toServiceError(err: unknown, logger: Logger): Partial<ServiceError> {
  if (err instanceof ProcmonError) {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(err.details)) metadata.set(key, value);
    return { code: GRPC_CODES[err.code], details: err.message, metadata };
  }
  logger.warn({ err }, "internal error");
  const message = err instanceof Error ? err.message : String(err);
  return {
    code: status.INTERNAL,
    details: `internal error in procmond: ${message}`,
    metadata: new Metadata(),
  };
}
