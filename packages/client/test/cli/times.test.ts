// `get` and `watch` show a moment in one format: RFC 3339, local, with ms.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EventSchema, ProcessSchema, State } from "@procmon/api";
import { afterEach, describe, expect, it } from "vitest";
import { eventLine, localTimestamp, processDetails } from "../../src/cli/format.js";
import { asIs } from "../../src/cli/terminal-text.js";

const savedTz = process.env.TZ;
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const MOMENT = Date.UTC(2030, 0, 2, 3, 4, 5, 67);

describe("localTimestamp", () => {
  it("writes local time with milliseconds and the offset", () => {
    process.env.TZ = "UTC";
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-02T03:04:05.067+00:00");
    process.env.TZ = "Asia/Kolkata";
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-02T08:34:05.067+05:30");
    process.env.TZ = "America/St_Johns";
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-01T23:34:05.067-03:30");
  });

  it("names the same instant as the ISO form it replaces", () => {
    process.env.TZ = "Asia/Kolkata";
    expect(Date.parse(localTimestamp(new Date(MOMENT)))).toBe(MOMENT);
  });
});

describe("get and watch", () => {
  it("show the same moment the same way", () => {
    process.env.TZ = "Europe/Paris";
    const process_ = create(ProcessSchema, {
      spec: { name: "web" },
      state: State.RUNNING,
      pid: 9,
      startedAt: timestampFromMs(MOMENT),
    });
    const started = create(EventSchema, {
      seq: 3n,
      process: "web",
      time: timestampFromMs(MOMENT),
      kind: { case: "started", value: { pid: 9 } },
    });
    const details = processDetails(process_, MOMENT + 1_000, asIs);
    const shown = "2030-01-02T04:04:05.067+01:00";
    const line = details.split("\n").find((l) => l.startsWith("started:"));
    expect(line?.replace(/^started: +/, "")).toBe(shown);
    expect(eventLine(started, asIs)).toBe(`${shown}  #3  web  started pid 9`);
  });
});
