// The options every call of the client takes last.

/** Per-call options. */
export interface CallOptions {
  /** Aborting it cancels the call, which then rejects with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Deadline in ms from now; overrides the client's. `Infinity`: none, whatever the client's. */
  readonly timeoutMs?: number;
}
