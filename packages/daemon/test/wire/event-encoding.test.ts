import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WatchEventsResponseSchema } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { describe, expect, it } from "vitest";
import type { CoreEvent } from "../../src/core/events.js";
import type { LoggedEvent } from "../../src/events/logged-event.js";
import { eventToProto } from "../../src/wire/event.js";
import {
  ENCODED_BYTES_KEPT,
  encodedEvent,
  encodeWatchEventsResponse,
  encodingsKept,
} from "../../src/wire/event-encoding.js";
import { seeded, spec } from "../core/fakes.js";

/** What protobuf-es writes for `logged`: the reference. */
function reference(logged: LoggedEvent): Uint8Array {
  return toBinary(
    WatchEventsResponseSchema,
    create(WatchEventsResponseSchema, {
      event: eventToProto(logged.event, logged.seq, logged.timeWallMs),
    }),
  );
}

function output(
  seq: bigint,
  timeWallMs: number,
  fields: Partial<Extract<CoreEvent, { kind: "output" }>> = {},
): LoggedEvent {
  return {
    seq,
    timeWallMs,
    event: {
      kind: "output",
      process: "web",
      stream: "stdout",
      line: "hello",
      partial: false,
      ...fields,
    },
  };
}

describe("encodeWatchEventsResponse", () => {
  it("writes an output event exactly as protobuf-es does, at the edges", () => {
    const cases: LoggedEvent[] = [
      output(1n, 1_764_000_000_123),
      output(1n, 0), // an empty but present timestamp
      output(1n, 1_000), // nanos 0
      output(1n, 999), // seconds 0
      output(127n, 1_764_000_000_000, { line: "" }),
      output(128n, 1_764_000_000_001, { stream: "stderr", partial: true }),
      output(2n ** 53n - 1n, 1_764_000_000_999.6), // the largest fast-path seq; a fractional ms
      output(2n ** 53n, 1_764_000_000_000), // past it: protobuf-es itself
      output(5n, -1_500), // before 1970: protobuf-es itself
      output(9n, 1_764_000_000_000, { process: "" }),
      output(10n, 1_764_000_000_000, { line: "héllo \u{1F600} \uFFFD", process: "naïve" }),
      output(11n, 1_764_000_000_000, { line: "x".repeat(127) }),
      output(12n, 1_764_000_000_000, { line: "x".repeat(128) }),
      output(13n, 1_764_000_000_000, { line: "é".repeat(64 * 1024), partial: true }),
    ];
    for (const logged of cases) {
      expect(Buffer.from(encodeWatchEventsResponse(logged)).toString("hex")).toBe(
        Buffer.from(reference(logged)).toString("hex"),
      );
    }
  });

  it("matches protobuf-es on 2,000 random output lines (seeded)", () => {
    const next = seeded(20261125);
    const alphabet = ["a", "Z", " ", "\t", "é", "ß", "\u4e2d", "\u{1F680}", "\uFFFD", "\\", '"'];
    for (let i = 0; i < 2_000; i++) {
      const length = Math.floor(next() ** 3 * 3_000);
      let line = "";
      for (let j = 0; j < length; j++) line += alphabet[Math.floor(next() * alphabet.length)];
      const logged = output(
        BigInt(Math.floor(next() * 2 ** (1 + next() * 52)) + 1),
        next() * 4e12,
        {
          process: `p-${Math.floor(next() * 1e6)}`,
          stream: next() < 0.5 ? "stdout" : "stderr",
          partial: next() < 0.2,
          line,
        },
      );
      const ours = encodeWatchEventsResponse(logged);
      expect(Buffer.compare(Buffer.from(ours), Buffer.from(reference(logged)))).toBe(0);
      if (i % 100 === 0) {
        const decoded = fromBinary(WatchEventsResponseSchema, ours).event;
        expect(decoded?.seq).toBe(logged.seq);
        expect(decoded?.kind.case).toBe("output");
      }
    }
  });

  it("takes its own path for output events (a Buffer), protobuf-es's beyond it", () => {
    // Else the comparisons above would hold for want of ever running it.
    expect(Buffer.isBuffer(encodeWatchEventsResponse(output(7n, 1_764_000_000_000)))).toBe(true);
    expect(Buffer.isBuffer(encodeWatchEventsResponse(output(2n ** 53n, 0)))).toBe(false);
    expect(Buffer.isBuffer(encodeWatchEventsResponse(output(7n, -1)))).toBe(false);
  });

  it("writes every other event through protobuf-es", () => {
    const logged: LoggedEvent = {
      seq: 3n,
      timeWallMs: 1_764_000_000_000,
      event: {
        kind: "exited",
        process: "web",
        pid: 42,
        status: { code: 1, signal: null, uptimeMs: 5 },
        instant: true,
      },
    };
    expect(encodeWatchEventsResponse(logged)).toEqual(reference(logged));
  });
});

describe("encodedEvent", () => {
  it("encodes an event once for every subscriber it goes to", () => {
    const logged = output(1n, 1_764_000_000_000);
    expect(encodedEvent(logged)).toBe(encodedEvent(logged));
  });

  it("keeps only the recent encodings: an old event is encoded again, the same", () => {
    const first = output(1n, 1_764_000_000_000);
    const bytes = encodedEvent(first);
    for (let i = 0; i < 5_000; i++) encodedEvent(output(BigInt(i + 2), 1_764_000_000_000));
    const again = encodedEvent(first);
    expect(again).not.toBe(bytes);
    expect(again).toEqual(bytes);
  });

  it("keeps the encodings of large events by bytes: 40 specs of a 250 kB env are not all held", () => {
    const added = (seq: number): LoggedEvent => ({
      seq: BigInt(1_000_000 + seq),
      timeWallMs: 1_764_000_000_000,
      event: {
        kind: "added",
        process: `p${seq}`,
        spec: spec(`p${seq}`, { env: { BIG: "v".repeat(250_000) } }),
      },
    });
    const events = Array.from({ length: 40 }, (_, i) => added(i));
    const first = encodedEvent(events[0] as LoggedEvent);
    for (const logged of events.slice(1)) encodedEvent(logged);
    const last = events.at(-1) as LoggedEvent;
    expect(encodedEvent(last)).toBe(encodedEvent(last));
    expect(encodingsKept().heapBytes).toBeLessThanOrEqual(ENCODED_BYTES_KEPT);
    expect(encodingsKept().count).toBeLessThan(10);
    const again = encodedEvent(events[0] as LoggedEvent);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });
});
