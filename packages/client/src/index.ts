export {
  type CallOptions,
  type ClientOptions,
  createClient,
  LAST_SEQ_KEY,
  type ProcessList,
  type ProcessSpecInit,
  type ProcmonClient,
  type Reconnection,
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
  LAST_DELIVERED_SEQ_KEY,
  OLDEST_RESUMABLE_SEQ_KEY,
  ProcmonError,
} from "./errors.js";
export { defaultSocketPath } from "./socket.js";
