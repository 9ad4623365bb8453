export { LAST_SEQ_KEY } from "@procmon/api/metadata";
export {
  defaultSocketPath,
  MAX_SOCKET_PATH_BYTES,
  type SocketPathProblem,
  socketPathProblem,
} from "@procmon/api/socket";
export type { CallOptions } from "./call-options.js";
export {
  type ClientOptions,
  createClient,
  type ProcessList,
  type ProcessQueryOptions,
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
  eventToJson,
  processListToJson,
  processToJson,
  type ToJsonOptions,
  toPlainJson,
} from "./json.js";
export {
  createProcessSpec,
  type DurationInput,
  type ProcessSpecInit,
  type ReadinessProbeInit,
} from "./spec-input.js";
export type { Reconnection, WatchOptions } from "./watch-resume.js";
