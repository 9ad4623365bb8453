// Just enough of a WatchEventsResponse's protobuf encoding for keepup's readers: seq, time, process
// and the kind of event, decoded by hand (as test/helpers/fast-reader.mjs), without protobuf-es.

/** Reads a varint (below 2^53) at `at`: [value, next offset]. */
function varint(bytes, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
}

/** A google.protobuf.Timestamp's bytes from `at` to `end`, in ms. */
function timestampMs(bytes, at, end) {
  let p = at;
  let seconds = 0;
  let nanos = 0;
  while (p < end) {
    let k;
    let v;
    [k, p] = varint(bytes, p);
    [v, p] = varint(bytes, p);
    if (k === 0x08) seconds = v;
    else if (k === 0x10) nanos = v;
  }
  return seconds * 1000 + nanos / 1e6;
}

/** seq, time (ms), kind (the oneof's field number) and process of a WatchEventsResponse. */
export function peek(bytes) {
  const [, afterTag] = varint(bytes, 0);
  const [length, start] = varint(bytes, afterTag);
  const end = start + length;
  let at = start;
  const ev = { seq: 0, timeMs: 0, kind: 0, process: "" };
  while (at < end) {
    let key;
    [key, at] = varint(bytes, at);
    const field = Math.floor(key / 8);
    if (key % 8 === 0) {
      let value;
      [value, at] = varint(bytes, at);
      if (field === 1) ev.seq = value;
      continue;
    }
    let size;
    [size, at] = varint(bytes, at);
    if (field === 2) ev.timeMs = timestampMs(bytes, at, at + size);
    else if (field === 3) ev.process = bytes.toString("utf8", at, at + size);
    else if (field >= 10) ev.kind = field;
    at += size;
  }
  return ev;
}
