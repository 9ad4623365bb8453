import { describe, expect, it } from "vitest";
import { LineSplitter } from "../../src/adapters/line-splitter.js";

interface Piece {
  readonly line: string;
  readonly partial: boolean;
}

function collect(maxLineBytes?: number): { splitter: LineSplitter; pieces: Piece[] } {
  const pieces: Piece[] = [];
  const splitter = new LineSplitter(
    (line, partial) => pieces.push({ line, partial }),
    maxLineBytes,
  );
  return { splitter, pieces };
}

function whole(...lines: string[]): Piece[] {
  return lines.map((line) => ({ line, partial: false }));
}

describe("LineSplitter", () => {
  it("emits complete lines without their newline", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("one\ntwo\nthree\n"));
    expect(pieces).toEqual(whole("one", "two", "three"));
  });

  it("joins a line split across chunks", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("hel"));
    splitter.push(Buffer.from("lo wo"));
    expect(pieces).toEqual([]);
    splitter.push(Buffer.from("rld\nnext"));
    expect(pieces).toEqual(whole("hello world"));
  });

  it("keeps a carriage return before the newline", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("dos\r\nline\r\n"));
    expect(pieces).toEqual(whole("dos\r", "line\r"));
  });

  it("emits empty lines", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("\n\na\n\n"));
    expect(pieces).toEqual(whole("", "", "a", ""));
  });

  it("replaces invalid UTF-8 instead of dropping the line", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from([0x61, 0xff, 0x62, 0x0a, 0xc3, 0x0a]));
    expect(pieces).toEqual(whole("a\uFFFDb", "\uFFFD"));
  });

  it("decodes a multi-byte character split across chunks", () => {
    const { splitter, pieces } = collect();
    const bytes = Buffer.from("é€😀\n");
    for (let i = 0; i < bytes.length; i++) splitter.push(bytes.subarray(i, i + 1));
    expect(pieces).toEqual(whole("é€😀"));
  });

  it("flushes a last line without newline on end()", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("done\nno newline"));
    splitter.end();
    splitter.end();
    expect(pieces).toEqual(whole("done", "no newline"));
  });

  it("emits nothing on end() when no bytes are pending", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from("a\n"));
    splitter.end();
    expect(pieces).toEqual(whole("a"));
  });

  it("emits a line of exactly 64 KiB as one piece", () => {
    const { splitter, pieces } = collect();
    const line = "x".repeat(65536);
    splitter.push(Buffer.from(line));
    expect(pieces).toEqual([]);
    splitter.push(Buffer.from("\n"));
    expect(pieces).toEqual(whole(line));
  });

  it("splits a line one byte over 64 KiB into a partial piece and its end", () => {
    const { splitter, pieces } = collect();
    splitter.push(Buffer.from(`${"x".repeat(65537)}\n`));
    expect(pieces).toEqual([
      { line: "x".repeat(65536), partial: true },
      { line: "x", partial: false },
    ]);
  });

  it("emits a 1 MiB line without newline as 16 pieces while it arrives", () => {
    const { splitter, pieces } = collect();
    const chunk = Buffer.alloc(4096, "y");
    for (let sent = 0; sent < 1 << 20; sent += chunk.length) {
      splitter.push(chunk);
      // Never more than one piece's worth (plus the chunk being read) waits unemitted.
      const emittedBytes = pieces.reduce((sum, piece) => sum + piece.line.length, 0);
      expect(sent + chunk.length - emittedBytes).toBeLessThanOrEqual(65536);
    }
    const emittedBeforeEnd = pieces.length;
    splitter.end();
    expect(emittedBeforeEnd).toBe(15);
    expect(pieces).toHaveLength(16);
    expect(pieces.every((piece) => piece.line.length === 65536)).toBe(true);
    expect(pieces.map((piece) => piece.partial)).toEqual([...Array(15).fill(true), false]);
  });

  it("never cuts a multi-byte character when splitting a long line", () => {
    const { splitter, pieces } = collect(8);
    // "€" is 3 bytes: an 8-byte piece holds two of them, never two and a part.
    splitter.push(Buffer.from(`${"€".repeat(5)}\n`));
    expect(pieces).toEqual([
      { line: "€€", partial: true },
      { line: "€€", partial: true },
      { line: "€", partial: false },
    ]);
    expect(pieces.some((piece) => piece.line.includes("\uFFFD"))).toBe(false);
  });

  it("splits long lines that arrive together with short ones", () => {
    const { splitter, pieces } = collect(4);
    splitter.push(Buffer.from("ab\nabcdefghij\ncd"));
    splitter.push(Buffer.from("\n"));
    expect(pieces).toEqual([
      { line: "ab", partial: false },
      { line: "abcd", partial: true },
      { line: "efgh", partial: true },
      { line: "ij", partial: false },
      { line: "cd", partial: false },
    ]);
  });

  it("rejects a limit too small for a UTF-8 character", () => {
    expect(() => new LineSplitter(() => {}, 3)).toThrow(RangeError);
  });
});
