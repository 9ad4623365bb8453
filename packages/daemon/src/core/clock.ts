/** A scheduled callback that can be cancelled before it runs. */
export interface Timer {
  /** Cancels the callback; a no-op once it has run or been cancelled. */
  cancel(): void;
}

/**
 * Time as the core sees it, injected like Twisted's IReactorTime so that every
 * rule can be tested with a fake clock. Timers and durations use the monotonic
 * `now()`; `wallNow()` is only for the timestamps reported to users.
 */
export interface Clock {
  /** Monotonic milliseconds from an arbitrary origin. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch. */
  wallNow(): number;
  /** Runs `fn` once after `delayMs` monotonic milliseconds. */
  setTimer(delayMs: number, fn: () => void): Timer;
}

/** Runs `fn` every `intervalMs` on `clock` until cancelled. */
export function every(clock: Clock, intervalMs: number, fn: () => void): Timer {
  return repeat(clock, intervalMs, () => {
    fn();
    return intervalMs;
  });
}

/** Runs `fn` after `firstMs`, then again after each delay it returns, until cancelled. */
export function repeat(clock: Clock, firstMs: number, fn: () => number): Timer {
  let timer: Timer;
  const tick = () => {
    timer = clock.setTimer(fn(), tick);
  };
  timer = clock.setTimer(firstMs, tick);
  return { cancel: () => timer.cancel() };
}
