const NEWLINE = 0x0a;

/** Turns a byte stream into UTF-8 lines, splitting over-long lines into bounded pieces. */
export class LineSplitter {
  readonly #onLine: (line: string, partial: boolean) => void;
  readonly #maxLineBytes: number;
  /** Bytes of the current line not yet emitted; never more than maxLineBytes between calls. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /**
   * @param onLine receives each line without its newline; `partial` is true for every piece of
   *   an over-long line except the one that ends it.
   * @param maxLineBytes the largest piece emitted, in bytes. Defaults to 65536.
   */
  constructor(onLine: (line: string, partial: boolean) => void, maxLineBytes = 65536) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 4) {
      // Below 4 bytes a piece could not hold every UTF-8 character.
      throw new RangeError(`maxLineBytes must be an integer of at least 4, got ${maxLineBytes}`);
    }
    this.#onLine = onLine;
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes pushed and not yet emitted: the start of a line that has not ended. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Feeds the next chunk of bytes, emitting every line it completes. */
  push(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(NEWLINE);
    while (newline !== -1) {
      if (this.#pendingBytes === 0 && newline - start <= this.#maxLineBytes) {
        // The common case: a whole line inside one chunk, decoded without copying.
        this.#onLine(chunk.toString("utf8", start, newline), false);
      } else {
        if (newline > start) this.#append(chunk.subarray(start, newline));
        this.#emitRest();
      }
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) this.#append(chunk.subarray(start));
  }

  /** Emits the last line if it did not end with a newline. */
  end(): void {
    if (this.#pendingBytes > 0) this.#emitRest();
  }

  #append(bytes: Buffer): void {
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    // Only past the limit: a line of exactly maxLineBytes may still end with the next byte.
    if (this.#pendingBytes > this.#maxLineBytes) this.#emitPieces();
  }

  /** Emits full pieces until at most maxLineBytes remain, so memory stays bounded. */
  #emitPieces(): void {
    const bytes = this.#takePending();
    let offset = 0;
    while (bytes.length - offset > this.#maxLineBytes) {
      const cut = characterBoundary(bytes, offset, offset + this.#maxLineBytes);
      this.#onLine(bytes.toString("utf8", offset, cut), true);
      offset = cut;
    }
    this.#pending = [bytes.subarray(offset)];
    this.#pendingBytes = bytes.length - offset;
  }

  /** Emits what is pending as the piece that ends the line. */
  #emitRest(): void {
    const bytes = this.#takePending();
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#onLine(bytes.toString("utf8"), false);
  }

  #takePending(): Buffer {
    const pending = this.#pending;
    return pending.length === 1 ? pending[0]! : Buffer.concat(pending, this.#pendingBytes);
  }
}

/**
 * The largest index in (from, limit] that does not cut a UTF-8 sequence in two, so a character is
 * never turned into two replacement characters. Falls back to `limit` on bytes that are not UTF-8.
 */
function characterBoundary(bytes: Buffer, from: number, limit: number): number {
  let cut = limit;
  // A character is at most 4 bytes: at most 3 continuation bytes (10xxxxxx) follow its lead byte.
  for (let i = 0; i < 3 && cut > from && isContinuation(bytes[cut]!); i++) cut--;
  return cut === from || isContinuation(bytes[cut]!) ? limit : cut;
}

function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}
