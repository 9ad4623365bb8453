/**
 * Waits that re-check a condition whenever some state changes: how the test
 * helpers wait for stream events and child output without sleeping.
 */
export class Changes {
  readonly #listeners = new Set<() => void>();

  /** The state changed: re-checks every pending wait. */
  notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /**
   * Resolves with `check()`'s value once it is defined, checking now and on
   * every notify(). Rejects with what `check` throws, or with `timeoutError()`
   * after `ms`.
   */
  until<T>(check: () => T | undefined, ms: number, timeoutError: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (value === undefined) return;
        done();
        resolve(value);
      };
      const timer = setTimeout(() => {
        done();
        reject(timeoutError());
      }, ms);
      this.#listeners.add(listener);
      listener();
    });
  }
}
