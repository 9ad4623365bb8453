// The subscriber worker's minimal protobuf decoder of WatchEventsResponse: only what the bench
// counts (seq, time, process, the kind's field number, an output line's length and number),
// without building messages, so that 100 subscribers in two processes keep up with the daemon.
//
// Every other field is skipped by its wire type (varint, 64-bit, length-delimited, group, 32-bit),
// as protobuf-es's BinaryReader.skip does, and every read is bounded by its message's end: a
// malformed message throws instead of reading past the buffer. The kinds are the Event oneof's
// fields as generated from proto/ (EventSchema), so a kind added to the proto is known here.
// (The decoder this replaces skipped a length-delimited field to one byte short of its end and
// had no `stopped` kind: the first `stopped` event sent its worker into an endless loop.)

const VARINT = 0;
const BIT64 = 1;
const LEN = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const BIT32 = 5;

/** field number -> localName of the `kind` oneof of `eventSchema` (protobuf-es DescMessage). */
export function kindFields(eventSchema) {
  const kinds = {};
  for (const field of eventSchema.fields) {
    if (field.oneof?.localName === "kind") kinds[field.number] = field.localName;
  }
  return kinds;
}

/** A varint at `pos.p` (below `end`), as a Number (exact up to 2^53). */
export function varint(buf, pos, end) {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos.p >= end) throw new Error(`truncated varint at ${pos.p}`);
    const b = buf[pos.p++];
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new Error(`varint longer than 10 bytes at ${pos.p}`);
}

/** The length of a length-delimited field, checked against `end`; `pos.p` is then its start. */
function length(buf, pos, end) {
  const len = varint(buf, pos, end);
  if (pos.p + len > end) throw new Error(`field of ${len} bytes at ${pos.p} overruns ${end}`);
  return len;
}

/** Skips the value of a field with tag `tag` (already read). */
export function skip(buf, pos, end, tag, depth = 0) {
  const wire = tag & 7;
  if (wire === VARINT) varint(buf, pos, end);
  else if (wire === LEN) {
    const len = length(buf, pos, end);
    pos.p += len;
  } else if (wire === BIT64 || wire === BIT32) {
    const size = wire === BIT64 ? 8 : 4;
    if (pos.p + size > end) throw new Error(`fixed${size * 8} at ${pos.p} overruns ${end}`);
    pos.p += size;
  } else if (wire === START_GROUP) skipGroup(buf, pos, end, tag >>> 3, depth);
  else throw new Error(`wire type ${wire} (tag ${tag}) at ${pos.p}`);
}

function skipGroup(buf, pos, end, field, depth) {
  if (depth >= 100) throw new Error("groups nested deeper than 100");
  for (;;) {
    const tag = varint(buf, pos, end);
    if ((tag & 7) === END_GROUP) {
      if (tag >>> 3 !== field) throw new Error(`end of group ${tag >>> 3} in group ${field}`);
      return;
    }
    skip(buf, pos, end, tag, depth + 1);
  }
}

/** Decodes google.protobuf.Timestamp into milliseconds since the epoch. */
function decodeTime(buf, pos, end) {
  let seconds = 0;
  let nanos = 0;
  while (pos.p < end) {
    const tag = varint(buf, pos, end);
    if (tag === 0x08) seconds = varint(buf, pos, end);
    else if (tag === 0x10) nanos = varint(buf, pos, end);
    else skip(buf, pos, end, tag);
  }
  return seconds * 1000 + nanos / 1e6;
}

/** OutputLine: the line's byte length, and its number if it is "L" + 12 digits (linewriter's). */
function decodeOutput(buf, pos, end, ev) {
  while (pos.p < end) {
    const tag = varint(buf, pos, end);
    if (tag !== 0x12) {
      skip(buf, pos, end, tag);
      continue;
    }
    const len = length(buf, pos, end);
    ev.lineBytes = len;
    ev.lineNo = lineNumber(buf, pos.p, len);
    pos.p += len;
  }
}

function lineNumber(buf, at, len) {
  if (len < 13 || buf[at] !== 0x4c) return -1;
  let n = 0;
  for (let i = 1; i <= 12; i++) {
    const digit = buf[at + i] - 48;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

function decodeEvent(buf, pos, end, ev, kinds) {
  while (pos.p < end) {
    const tag = varint(buf, pos, end);
    const field = tag >>> 3;
    if (tag === 0x08) ev.seq = varint(buf, pos, end);
    else if (tag === 0x12) {
      const len = length(buf, pos, end);
      ev.timeMs = decodeTime(buf, pos, pos.p + len);
    } else if (tag === 0x1a) {
      const len = length(buf, pos, end);
      ev.process = buf.toString("utf8", pos.p, pos.p + len);
      pos.p += len;
    } else if (kinds[field] !== undefined && (tag & 7) === LEN) {
      ev.kind = field;
      const len = length(buf, pos, end);
      if (kinds[field] === "output") decodeOutput(buf, pos, pos.p + len, ev);
      else pos.p += len;
    } else {
      // A kind this proto does not have (a newer daemon's) is counted, not mistaken for another.
      if (field >= 10 && (tag & 7) === LEN) ev.unknownKind = field;
      skip(buf, pos, end, tag);
    }
  }
}

/**
 * A decoder for the kinds of `eventSchema`: decode(buf) -> { seq, timeMs, process, kind (the
 * field number, 0 if none), lineBytes, lineNo (-1 if none), unknownKind }. Throws on a
 * malformed message.
 */
export function createDecoder(eventSchema) {
  const kinds = kindFields(eventSchema);
  const decode = (buf) => {
    const ev = { seq: 0, timeMs: 0, process: "", kind: 0, lineBytes: 0, lineNo: -1 };
    const pos = { p: 0 };
    const end = buf.length;
    while (pos.p < end) {
      const tag = varint(buf, pos, end);
      if (tag !== 0x0a) {
        skip(buf, pos, end, tag);
        continue;
      }
      const len = length(buf, pos, end);
      decodeEvent(buf, pos, pos.p + len, ev, kinds);
    }
    return ev;
  };
  return { decode, kinds };
}
