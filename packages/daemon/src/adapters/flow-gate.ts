/**
 * A shared open/closed signal: the daemon's log sink closes it when its
 * buffer is full and opens it when drained, and child pipes are paused while
 * it is closed. This is how the log sink, and nothing else, paces how fast
 * children's output is read.
 */
export class FlowGate {
  #open = true;
  #waiters: Array<() => void> = [];

  /** True while readers may go on. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Asks readers to pause. */
  close(): void {
    this.#open = false;
  }

  /** Lets readers go on, and wakes those waiting. */
  open(): void {
    if (this.#open) return;
    this.#open = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Calls `wake` once the gate is open (at once if it is). */
  whenOpen(wake: () => void): void {
    if (this.#open) wake();
    else this.#waiters.push(wake);
  }
}

/** What paces reading children's output: a gate, or several that must all be open. */
export interface OutputGate {
  readonly isOpen: boolean;
  whenOpen(wake: () => void): void;
}

/** A gate open only while every one of `gates` is (the daemon's log and its log files). */
export function allOpen(gates: readonly OutputGate[]): OutputGate {
  const every = {
    get isOpen() {
      return gates.every((g) => g.isOpen);
    },
    whenOpen(wake: () => void) {
      const closed = gates.find((g) => !g.isOpen);
      if (closed === undefined) wake();
      // Open, that one; another may have closed meanwhile: look again.
      else closed.whenOpen(() => every.whenOpen(wake));
    },
  };
  return every;
}
