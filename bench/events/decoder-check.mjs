// Checks of the worker's decoder against protobuf-es: a self-test at start (every kind of the
// proto, with unknown fields of every wire type at every level) and, while it runs, a comparison
// of the first messages and of the first message of each kind with fromBinary's reading.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { kindFields } from "./decoder.mjs";

const LINE = "L000000000042 xxxxxxxxxx";

/** Unknown fields of every wire type (a group holding a nested group), as protobuf-es keeps them. */
function unknownFields() {
  const endGroup = (no) => varintBytes((no << 3) | WireType.EndGroup);
  const inner = [...varintBytes((7 << 3) | WireType.Varint), 1, ...varintBytes(8 << 3), 0x80, 1];
  const nested = [...varintBytes((9 << 3) | WireType.StartGroup), ...inner, ...endGroup(9)];
  return [
    { no: 1000, wireType: WireType.Varint, data: bytes([0xff, 0xff, 0xff, 0xff, 0x0f]) },
    { no: 1001, wireType: WireType.Bit64, data: bytes([1, 2, 3, 4, 5, 6, 7, 8]) },
    { no: 1002, wireType: WireType.LengthDelimited, data: bytes([3, 0x0a, 0x01, 0x41]) },
    {
      no: 1003,
      wireType: WireType.StartGroup,
      data: bytes([...inner, ...nested, ...endGroup(1003)]),
    },
    { no: 1004, wireType: WireType.Bit32, data: bytes([9, 9, 9, 9]) },
    // The largest field number: a five-byte tag.
    { no: 536_870_911, wireType: WireType.Varint, data: bytes([1]) },
  ];
}

function varintBytes(n) {
  const out = [];
  let rest = n;
  while (rest >= 128) {
    out.push((rest % 128) | 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

const bytes = (list) => Uint8Array.from(list);

/** A WatchEventsResponse of kind `field`, with unknown fields at every level if `unknown`. */
function sample(pb, field, unknown) {
  const value = create(field.message, field.localName === "output" ? { line: LINE } : {});
  const event = create(pb.EventSchema, {
    seq: 123_456_789n,
    time: { seconds: 1_700_000_000n, nanos: 987_654_321 },
    process: "prozess-é",
    kind: { case: field.localName, value },
  });
  const response = create(pb.WatchEventsResponseSchema, { event });
  if (unknown) {
    for (const message of [response, event, event.time, value]) message.$unknown = unknownFields();
  }
  return toBinary(pb.WatchEventsResponseSchema, response);
}

/**
 * Decodes a message of every kind of the proto, plain and with unknown fields of every wire type
 * in the response, the event, its timestamp and its kind; throws on the first difference.
 * Returns the kinds checked.
 */
export function selfTest(pb, decode) {
  const kinds = Object.values(kindFields(pb.EventSchema));
  for (const field of pb.EventSchema.fields.filter((f) => f.oneof?.localName === "kind")) {
    for (const unknown of [false, true]) {
      const ev = decode(Buffer.from(sample(pb, field, unknown)));
      const expected = {
        seq: 123_456_789,
        timeMs: 1_700_000_000_000 + 987.654321,
        process: "prozess-é",
        kind: field.number,
        lineBytes: field.localName === "output" ? LINE.length : 0,
        lineNo: field.localName === "output" ? 42 : -1,
      };
      for (const [key, want] of Object.entries(expected)) {
        if (ev[key] !== want) {
          throw new Error(
            `decoder self-test: ${field.localName}${unknown ? " with unknown fields" : ""}: ${key} ${ev[key]}, expected ${want}`,
          );
        }
      }
    }
  }
  return kinds;
}

/**
 * A check of decoded messages against fromBinary: the first `first` messages and the first of
 * each kind. `check(buf, ev)`; `result()` -> { checked, mismatches, firstMismatch }.
 */
export function createChecker(pb, first = 2000) {
  const kinds = kindFields(pb.EventSchema);
  const seen = new Set();
  const state = { checked: 0, mismatches: 0, firstMismatch: undefined };
  const check = (buf, ev) => {
    if (state.checked >= first && seen.has(ev.kind)) return;
    seen.add(ev.kind);
    state.checked++;
    const { event } = fromBinary(pb.WatchEventsResponseSchema, buf);
    const timeMs = Number(event.time.seconds) * 1000 + event.time.nanos / 1e6;
    const kind = event.kind.case;
    const ok =
      Number(event.seq) === ev.seq &&
      timeMs === ev.timeMs &&
      event.process === ev.process &&
      kind === kinds[ev.kind] &&
      (kind !== "output" || Buffer.byteLength(event.kind.value.line) === ev.lineBytes);
    if (!ok) {
      state.mismatches++;
      state.firstMismatch ??= { seq: String(event.seq), kind, ev };
    }
  };
  return { check, result: () => ({ ...state, kindsSeen: [...seen].map((f) => kinds[f] ?? f) }) };
}
