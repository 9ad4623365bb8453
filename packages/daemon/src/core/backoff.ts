/**
 * The restart delay after instant deaths, as an immutable value: each instant
 * death waits `delayMs` and the next one waits twice as long, capped at
 * `maxMs`; a long run resets it to `minMs`. (Twisted's ProcessMonitor.delay.)
 */
export class Backoff {
  private constructor(
    /** The delay the next instant death waits. */
    readonly delayMs: number,
    readonly minMs: number,
    readonly maxMs: number,
  ) {}

  /** A fresh backoff starting at `minMs`. */
  static initial(minMs: number, maxMs: number): Backoff {
    return new Backoff(Math.min(minMs, maxMs), minMs, maxMs);
  }

  /** The backoff after one more instant death: doubled, capped at `maxMs`. */
  next(): Backoff {
    return new Backoff(Math.min(this.delayMs * 2, this.maxMs), this.minMs, this.maxMs);
  }

  /** The backoff after a long run: back to `minMs`. */
  reset(): Backoff {
    return Backoff.initial(this.minMs, this.maxMs);
  }
}
