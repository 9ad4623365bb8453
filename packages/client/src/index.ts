export {
  type CallOptions,
  type ClientOptions,
  createClient,
  type ProcessList,
  type ProcessSpecInit,
  type ProcmonClient,
  type WatchEventsInit,
  type WatchOptions,
} from "./client.js";
export {
  Code,
  codeName,
  hasCode,
  isAlreadyExists,
  isCancelled,
  isDeadlineExceeded,
  isInvalidArgument,
  isNotFound,
  isOutOfRange,
  isPermissionDenied,
  isUnavailable,
  ProcmonError,
} from "./errors.js";
export { defaultSocketPath } from "./socket.js";
