import type { LoggedEvent } from "./logged-event.js";

/**
 * A FIFO of events addressed by absolute index (the nth event ever pushed is
 * index n), bounded by count and by bytes. Readers keep an index rather than
 * a copy, so any number of them cost no memory beyond the window itself.
 */
export class Retained {
  private items: (LoggedEvent | undefined)[] = [];
  /** Running byte totals: `cumulative[i]` counts every byte pushed up to and including item i. */
  private cumulative: number[] = [];
  private head = 0;
  private base = 0;
  private bytesPushed = 0;
  private bytesEvicted = 0;
  private evictedUpTo = 0n;

  constructor(
    /** The most events kept. */
    readonly maxCount: number,
    /** The most bytes kept (by each event's estimated size). */
    readonly maxBytes: number,
    /** Seqs up to this one count as evicted: a previous daemon had them. */
    firstSeqAfter = 0n,
  ) {
    this.evictedUpTo = firstSeqAfter;
  }

  /** The absolute index of the oldest event kept. */
  get start(): number {
    return this.base;
  }

  /** The absolute index the next pushed event will get. */
  get end(): number {
    return this.base + this.items.length - this.head;
  }

  /** The highest seq evicted so far; 0 if none. */
  get lastEvictedSeq(): bigint {
    return this.evictedUpTo;
  }

  /** The event at absolute `index`, or undefined if evicted or not yet pushed. */
  at(index: number): LoggedEvent | undefined {
    if (index < this.base) return undefined;
    return this.items[this.head + index - this.base];
  }

  /** Bytes pushed after absolute `index` (exclusive of it): how far a reader at it lags. */
  bytesAfter(index: number): number {
    if (index >= this.end) return 0;
    const before = index <= this.base ? this.bytesEvicted : this.cumulativeAt(index - 1);
    return this.bytesPushed - before;
  }

  /** The absolute index of the first kept event with seq greater than `seq`. */
  indexAfterSeq(seq: bigint): number {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as LoggedEvent).seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.base + lo - this.head;
  }

  /** Appends `event` of `bytes` estimated size, evicting the oldest beyond the bounds. */
  push(event: LoggedEvent, bytes: number): void {
    this.items.push(event);
    this.bytesPushed += bytes;
    this.cumulative.push(this.bytesPushed);
    while (
      this.end - this.base > this.maxCount ||
      (this.bytesPushed - this.bytesEvicted > this.maxBytes && this.end - this.base > 1)
    ) {
      this.evictOldest();
    }
  }

  private cumulativeAt(index: number): number {
    return this.cumulative[this.head + index - this.base] as number;
  }

  private evictOldest(): void {
    const event = this.items[this.head] as LoggedEvent;
    this.bytesEvicted = this.cumulative[this.head] as number;
    this.evictedUpTo = event.seq;
    this.items[this.head] = undefined;
    this.head += 1;
    this.base += 1;
    // Compact now and then so the arrays do not grow for ever.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.cumulative = this.cumulative.slice(this.head);
      this.head = 0;
    }
  }
}
