import { describe, expect, it } from "vitest";
import type { CoreEvent } from "../../src/core/events.js";
import type { LoggedEvent } from "../../src/events/logged-event.js";
import { Retained } from "../../src/events/retained.js";
import { seeded } from "../core/fakes.js";

const EVENT: CoreEvent = { kind: "removed", process: "p" };

function logged(seq: number | bigint): LoggedEvent {
  return { seq: BigInt(seq), timeWallMs: 0, event: EVENT };
}

/** The lengths of Retained's private arrays: what it really holds on to. */
function backingLengths(r: Retained): { items: number; cumulative: number } {
  const inside = r as unknown as { items: readonly unknown[]; cumulative: readonly unknown[] };
  return { items: inside.items.length, cumulative: inside.cumulative.length };
}

/** The seqs kept, oldest first, read through the public API. */
function keptSeqs(r: Retained): bigint[] {
  const seqs: bigint[] = [];
  for (let i = r.start; i < r.end; i++) {
    const e = r.at(i);
    if (e === undefined) throw new Error(`index ${i} in [${r.start}, ${r.end}) has no event`);
    seqs.push(e.seq);
  }
  return seqs;
}

describe("Retained", () => {
  it("starts empty", () => {
    const r = new Retained(10, 1000);
    expect([r.start, r.end, r.lastEvictedSeq]).toEqual([0, 0, 0n]);
    expect(r.at(0)).toBeUndefined();
    expect(r.indexAfterSeq(0n)).toBe(0);
    expect(r.indexAfterSeq(99n)).toBe(0);
    expect(r.bytesAfter(0)).toBe(0);
  });

  it("addresses events by absolute index and evicts the oldest beyond maxCount", () => {
    const r = new Retained(3, Number.MAX_SAFE_INTEGER);
    for (let seq = 1; seq <= 5; seq++) r.push(logged(seq), 10);
    expect([r.start, r.end]).toEqual([2, 5]);
    expect(r.lastEvictedSeq).toBe(2n);
    expect(r.at(0)).toBeUndefined();
    expect(r.at(1)).toBeUndefined();
    expect(r.at(2)?.seq).toBe(3n);
    expect(r.at(4)?.seq).toBe(5n);
    expect(r.at(5)).toBeUndefined();
    expect(keptSeqs(r)).toEqual([3n, 4n, 5n]);
  });

  it("evicts by bytes, but always keeps the newest event even when it alone is too big", () => {
    const r = new Retained(100, 100);
    r.push(logged(1), 30);
    r.push(logged(2), 30);
    r.push(logged(3), 30);
    expect(keptSeqs(r)).toEqual([1n, 2n, 3n]);
    expect(r.bytesAfter(r.start)).toBe(90);
    r.push(logged(4), 30); // 120 > 100: the oldest goes
    expect(keptSeqs(r)).toEqual([2n, 3n, 4n]);
    expect(r.lastEvictedSeq).toBe(1n);
    r.push(logged(5), 250); // bigger than the whole window: kept alone
    expect(keptSeqs(r)).toEqual([5n]);
    expect(r.bytesAfter(r.start)).toBe(250);
    expect(r.lastEvictedSeq).toBe(4n);
    r.push(logged(6), 10); // and it goes as soon as anything else comes
    expect(keptSeqs(r)).toEqual([6n]);
    expect(r.lastEvictedSeq).toBe(5n);
    expect(r.bytesAfter(r.start)).toBe(10);
  });

  it("finds the first kept event after a seq, with gaps in the seqs (the other kind's events)", () => {
    const r = new Retained(4, Number.MAX_SAFE_INTEGER);
    for (const seq of [2, 4, 6, 8, 10, 12]) r.push(logged(seq), 1); // keeps 6, 8, 10, 12
    expect(r.start).toBe(2);
    expect(r.indexAfterSeq(0n)).toBe(2);
    expect(r.indexAfterSeq(5n)).toBe(2);
    expect(r.indexAfterSeq(6n)).toBe(3);
    expect(r.indexAfterSeq(7n)).toBe(3);
    expect(r.indexAfterSeq(11n)).toBe(5);
    expect(r.indexAfterSeq(12n)).toBe(6);
    expect(r.indexAfterSeq(100n)).toBe(6);
    expect(r.at(r.indexAfterSeq(7n))?.seq).toBe(8n);
  });

  it("counts the bytes from an index to the end", () => {
    const r = new Retained(3, Number.MAX_SAFE_INTEGER);
    [5, 7, 11, 13, 17].forEach((bytes, i) => {
      r.push(logged(i + 1), bytes);
    }); // keeps 11, 13, 17 at indexes 2..4
    expect(r.bytesAfter(2)).toBe(11 + 13 + 17);
    expect(r.bytesAfter(3)).toBe(13 + 17);
    expect(r.bytesAfter(4)).toBe(17);
    expect(r.bytesAfter(5)).toBe(0);
    expect(r.bytesAfter(9)).toBe(0);
  });

  it("keeps exactly the newest events within both bounds (seeded random pushes)", () => {
    const rand = seeded(42);
    const problems: string[] = [];
    const check = (ok: boolean, what: () => string) => {
      if (!ok && problems.length < 5) problems.push(what());
    };
    for (let round = 0; round < 12; round++) {
      const maxCount = 1 + Math.floor(rand() * 50);
      const maxBytes = 1 + Math.floor(rand() * 2000);
      const r = new Retained(maxCount, maxBytes);
      const sizes: number[] = [];
      const seqs: bigint[] = [];
      let seq = 0n;
      for (let n = 0; n < 3000; n++) {
        seq += 1n + BigInt(Math.floor(rand() * 3)); // gaps, as in a log of two kinds
        const bytes = Math.floor(rand() * 300);
        r.push(logged(seq), bytes);
        sizes.push(bytes);
        seqs.push(seq);
        const at = () => `round ${round} (maxCount ${maxCount}, maxBytes ${maxBytes}) push ${n}`;
        const count = r.end - r.start;
        const kept = r.bytesAfter(r.start);
        check(r.end === n + 1, () => `${at()}: end ${r.end}`);
        check(count >= 1 && count <= maxCount, () => `${at()}: holds ${count}`);
        check(count === 1 || kept <= maxBytes, () => `${at()}: holds ${kept} bytes`);
        // What is kept is exactly the newest pushes, with their bytes...
        let expectedKept = 0;
        for (let i = r.start; i < r.end; i++) {
          expectedKept += sizes[i] ?? Number.NaN;
          check(r.at(i)?.seq === seqs[i], () => `${at()}: index ${i} holds ${r.at(i)?.seq}`);
        }
        check(kept === expectedKept, () => `${at()}: counts ${kept} bytes, not ${expectedKept}`);
        // ... nothing more was evicted than the bounds require...
        const previous = sizes[r.start - 1];
        check(
          previous === undefined || count === maxCount || kept + previous > maxBytes,
          () => `${at()}: evicted index ${r.start - 1} needlessly`,
        );
        // ... and the last evicted seq is the one just before the window.
        const evicted = r.start === 0 ? 0n : seqs[r.start - 1];
        check(r.lastEvictedSeq === evicted, () => `${at()}: lastEvictedSeq ${r.lastEvictedSeq}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("compacts its arrays: a million pushes through a small window stay small and fast", () => {
    const maxCount = 64;
    const r = new Retained(maxCount, 64 * 150);
    let maxBacking = 0;
    for (let seq = 1; seq <= 1_000_000; seq++) {
      r.push(logged(seq), 100 + (seq % 100));
      if ((seq & 1023) === 0) {
        const { items, cumulative } = backingLengths(r);
        maxBacking = Math.max(maxBacking, items, cumulative);
        expect(r.end - r.start).toBeLessThanOrEqual(maxCount);
      }
    }
    expect(r.end).toBe(1_000_000);
    expect(r.end - r.start).toBeLessThanOrEqual(maxCount);
    // Without compaction the arrays would hold a million slots.
    expect(maxBacking).toBeLessThan(4 * 1024);
    // Compaction kept the indexes and byte totals right.
    expect(r.at(r.end - 1)?.seq).toBe(1_000_000n);
    expect(r.at(r.start)?.seq).toBe(BigInt(r.start + 1));
    expect(r.lastEvictedSeq).toBe(BigInt(r.start));
    let bytes = 0;
    for (let i = r.start; i < r.end; i++) bytes += 100 + ((i + 1) % 100);
    expect(r.bytesAfter(r.start)).toBe(bytes);
    expect(r.bytesAfter(r.end - 1)).toBe(100 + (1_000_000 % 100));
    expect(r.indexAfterSeq(999_990n)).toBe(999_990);
  });
});
