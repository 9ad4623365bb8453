/** The slice of pino's Logger the core uses, so tests can pass a silent one. */
export interface Logger {
  /** Logs a routine fact. */
  debug(fields: object, message: string): void;
  /** Logs something an operator should know. */
  info(fields: object, message: string): void;
  /** Logs something that went wrong but was handled. */
  warn(fields: object, message: string): void;
  /** Logs something that needs an operator. */
  error(fields: object, message: string): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
