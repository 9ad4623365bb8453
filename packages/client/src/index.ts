export type { CallOptions } from "./call-options.js";
export {
  type ClientOptions,
  createClient,
  type ProcessList,
  type ProcessSpecInit,
  type ProcmonClient,
  type WatchEventsInit,
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
export {
  defaultSocketPath,
  MAX_SOCKET_PATH_BYTES,
  type SocketPathProblem,
  socketPathProblem,
} from "./socket.js";
export { LAST_SEQ_KEY, type Reconnection, type WatchOptions } from "./watch-resume.js";
