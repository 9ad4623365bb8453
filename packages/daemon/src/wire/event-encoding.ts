import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  EventSchema,
  OutputLineSchema,
  WatchEventsResponseSchema,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { CoreEvent } from "../core/events.js";
import { estimatedBytes } from "../events/event-size.js";
import type { LoggedEvent } from "../events/logged-event.js";
import { eventToProto, OUTPUT_STREAM } from "./event.js";
import { timestampParts } from "./time.js";

/**
 * The encodings of the events most recently sent. Subscribers at the head of
 * the log share them; one replaying from further back encodes again. (Keeping
 * an encoding for as long as its event is retained kept every retained line
 * twice.) Bounded by count and by bytes: an `added` event's encoding is its
 * whole spec, and each entry also holds its event, retained or not.
 */
const encoded = new Map<LoggedEvent, { readonly bytes: Uint8Array; readonly heapBytes: number }>();
let encodedHeapBytes = 0;
/** The most encodings kept. */
export const ENCODINGS_KEPT = 4096;
/** The most bytes the kept encodings and their events may take (the event by its estimated size). */
export const ENCODED_BYTES_KEPT = 4 * 1024 * 1024;

/** The WatchEventsResponse bytes of `logged`, encoded once for every subscriber it goes to. */
export function encodedEvent(logged: LoggedEvent): Uint8Array {
  const kept = encoded.get(logged);
  if (kept !== undefined) return kept.bytes;
  const bytes = encodeWatchEventsResponse(logged);
  const heapBytes = bytes.byteLength + estimatedBytes(logged.event);
  encoded.set(logged, { bytes, heapBytes });
  encodedHeapBytes += heapBytes;
  // The newest stays whatever its size: every subscriber of this turn wants it.
  while (
    encoded.size > 1 &&
    (encoded.size > ENCODINGS_KEPT || encodedHeapBytes > ENCODED_BYTES_KEPT)
  ) {
    const [oldest, entry] = encoded.entries().next().value as [
      LoggedEvent,
      { readonly heapBytes: number },
    ];
    encoded.delete(oldest);
    encodedHeapBytes -= entry.heapBytes;
  }
  return bytes;
}

/** How many encodings are kept, and the bytes they count: for tests. */
export function encodingsKept(): { readonly count: number; readonly heapBytes: number } {
  return { count: encoded.size, heapBytes: encodedHeapBytes };
}

/**
 * `toBinary(WatchEventsResponseSchema, …)` of `logged`, byte for byte.
 *
 * Output lines are nearly all of the events under load, and protobuf-es spent
 * a fifth of a flooded daemon's time building and encoding their messages
 * (BENCHMARKS.md). Their five fields are written here directly; every other
 * event, and an output event whose numbers fall outside the fast path, goes
 * through protobuf-es. A test checks both give the same bytes. protobuf-es's
 * own BinaryWriter, writing the same fields, was measured at 8.3 µs a line of
 * 100 B against 2.2 µs here (create + toBinary: 10.7 µs), so it is not used.
 */
export function encodeWatchEventsResponse(logged: LoggedEvent): Uint8Array {
  const { event } = logged;
  if (event.kind === "output" && logged.seq <= MAX_SAFE && logged.timeWallMs >= 0) {
    return encodeOutput(Number(logged.seq), logged.timeWallMs, event);
  }
  return toBinary(
    WatchEventsResponseSchema,
    create(WatchEventsResponseSchema, {
      event: eventToProto(event, logged.seq, logged.timeWallMs),
    }),
  );
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The tag of a field of `schema`: its number and wire type, as written before its value. */
function tag(schema: DescMessage, localName: string, wireType: 0 | 2): number {
  const field = schema.fields.find((f) => f.localName === localName);
  if (field === undefined) throw new Error(`${schema.typeName} has no field ${localName}`);
  return (field.number << 3) | wireType;
}

const VARINT = 0;
const LEN = 2;
const T = {
  event: tag(WatchEventsResponseSchema, "event", LEN),
  seq: tag(EventSchema, "seq", VARINT),
  time: tag(EventSchema, "time", LEN),
  process: tag(EventSchema, "process", LEN),
  output: tag(EventSchema, "output", LEN),
  seconds: tag(TimestampSchema, "seconds", VARINT),
  nanos: tag(TimestampSchema, "nanos", VARINT),
  stream: tag(OutputLineSchema, "stream", VARINT),
  line: tag(OutputLineSchema, "line", LEN),
  partial: tag(OutputLineSchema, "partial", VARINT),
};

/** Bytes of `n` (a non-negative safe integer) as a varint. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A field present only when not its default (proto3 implicit presence): 0 bytes for 0. */
function scalarSize(tagValue: number, n: number): number {
  return n === 0 ? 0 : varintSize(tagValue) + varintSize(n);
}

/** A length-delimited field of `length` bytes. */
function lenSize(tagValue: number, length: number): number {
  return varintSize(tagValue) + varintSize(length) + length;
}

function encodeOutput(
  seq: number,
  timeWallMs: number,
  event: Extract<CoreEvent, { kind: "output" }>,
): Uint8Array {
  const { seconds, nanos } = timestampParts(timeWallMs);
  const stream = OUTPUT_STREAM[event.stream];
  const processBytes = Buffer.byteLength(event.process);
  const lineBytes = Buffer.byteLength(event.line);

  const timeSize = scalarSize(T.seconds, seconds) + scalarSize(T.nanos, nanos);
  const outputSize =
    scalarSize(T.stream, stream) +
    (lineBytes === 0 ? 0 : lenSize(T.line, lineBytes)) +
    scalarSize(T.partial, event.partial ? 1 : 0);
  const eventSize =
    scalarSize(T.seq, seq) +
    lenSize(T.time, timeSize) +
    (processBytes === 0 ? 0 : lenSize(T.process, processBytes)) +
    lenSize(T.output, outputSize);
  const out = Buffer.allocUnsafe(lenSize(T.event, eventSize));

  let at = 0;
  const varint = (n: number) => {
    while (n >= 128) {
      out[at++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    out[at++] = n;
  };
  const scalar = (tagValue: number, n: number) => {
    if (n === 0) return;
    varint(tagValue);
    varint(n);
  };
  const string = (tagValue: number, value: string, bytes: number) => {
    if (bytes === 0) return;
    varint(tagValue);
    varint(bytes);
    at += out.write(value, at, "utf8");
  };

  varint(T.event);
  varint(eventSize);
  scalar(T.seq, seq);
  varint(T.time);
  varint(timeSize);
  scalar(T.seconds, seconds);
  scalar(T.nanos, nanos);
  string(T.process, event.process, processBytes);
  varint(T.output);
  varint(outputSize);
  scalar(T.stream, stream);
  string(T.line, event.line, lineBytes);
  scalar(T.partial, event.partial ? 1 : 0);
  return out;
}
