// `get` and `watch` show a moment the same way: watch's local clock time with
// ms (which the root CLI test pins), get's with the local date before it.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EventSchema, ProcessSchema, State } from "@procmon/api";
import { afterEach, describe, expect, it } from "vitest";
import { clockTime, eventLine, localTimestamp, processDetails } from "../../src/cli/format.js";
import { asIs } from "../../src/cli/terminal-text.js";

const savedTz = process.env.TZ;
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const MOMENT = Date.UTC(2030, 0, 2, 3, 4, 5, 67);

describe("clockTime and localTimestamp", () => {
  it("write local time with milliseconds, localTimestamp with the local date first", () => {
    process.env.TZ = "UTC";
    expect(clockTime(new Date(MOMENT))).toBe("03:04:05.067");
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-02 03:04:05.067");
    process.env.TZ = "Asia/Kolkata";
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-02 08:34:05.067");
    process.env.TZ = "America/St_Johns";
    expect(localTimestamp(new Date(MOMENT))).toBe("2030-01-01 23:34:05.067");
    expect(clockTime(new Date(MOMENT))).toBe("23:34:05.067");
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
    const shown = "04:04:05.067";
    const line = details.split("\n").find((l) => l.startsWith("started:"));
    expect(line?.replace(/^started: +/, "")).toBe(`2030-01-02 ${shown}`);
    expect(eventLine(started, asIs)).toBe(`${shown}  #3  web  started pid 9`);
  });
});
