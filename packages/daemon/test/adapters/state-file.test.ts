// The state file: what readStateFile refuses (so the daemon never wipes a
// registry it cannot read), and what StateFileWriter writes, atomically.
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  emptyState,
  type PersistedState,
  readStateFile,
  StateFileWriter,
} from "../../src/adapters/state-file.js";
import { ProcmonError } from "../../src/core/errors.js";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "procmon-state-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A state with `count` processes, told apart by `seq`. */
function state(seq: number, count = 2): PersistedState {
  return {
    version: 1,
    instance: "0b5e4f3c-instance",
    seqReservedUpTo: String(seq),
    processes: Array.from({ length: count }, (_, i) => ({
      spec: { name: `p${i}`, args: ["sleep", "100"], killTime: "0.300s" },
      intent: i % 2 === 0 ? "running" : "stopped",
      source: i % 3 === 0 ? "config" : "api",
    })),
  };
}

const valid = `${JSON.stringify(state(7), null, 2)}\n`;

/** Writes `text` as the state file and returns its path. */
function stateFile(text: string): string {
  const path = join(dir, "state.json");
  writeFileSync(path, text);
  return path;
}

/** The error readStateFile throws for `text`; fails if it does not throw. */
function refusal(text: string): ProcmonError {
  const path = stateFile(text);
  let error: unknown;
  try {
    readStateFile(path);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ProcmonError);
  const procmonError = error as ProcmonError;
  expect(procmonError.code).toBe("failed_precondition");
  expect(procmonError.message).toContain(`state file ${path} is unusable`);
  expect(procmonError.message).toContain("left untouched");
  // Reading is all it does: the file is exactly as it was.
  expect(readFileSync(path, "utf8")).toBe(text);
  return procmonError;
}

const withProcesses = (processes: unknown) =>
  JSON.stringify({ version: 1, instance: "i", seqReservedUpTo: "0", processes });

describe("readStateFile", () => {
  it("returns undefined when there is no file", () => {
    expect(readStateFile(join(dir, "missing.json"))).toBeUndefined();
  });

  it("reads what a daemon wrote", () => {
    expect(readStateFile(stateFile(valid))).toEqual(state(7));
  });

  it.each([
    ["an empty file", "", /it is empty/],
    ["a file of blanks", " \n\t\n", /it is empty/],
    ["torn JSON (a write cut short)", valid.slice(0, valid.length / 2), /not valid JSON/],
    ["text that is not JSON", "processes: []\n", /not valid JSON/],
    ["JSON that is not an object", "42\n", /not a JSON object/],
    ["null", "null", /not a JSON object/],
    ["an unknown version", JSON.stringify({ ...state(1), version: 2 }), /unknown version 2/],
    ["no version", JSON.stringify({ ...state(1), version: undefined }), /unknown version/],
    ["no instance", JSON.stringify({ ...state(1), instance: "" }), /instance is missing/],
    [
      "a seq that is not a decimal string",
      JSON.stringify({ ...state(1), seqReservedUpTo: 12 }),
      /seqReservedUpTo is missing or not a number/,
    ],
    [
      "a negative seq",
      JSON.stringify({ ...state(1), seqReservedUpTo: "-1" }),
      /seqReservedUpTo is missing or not a number/,
    ],
    [
      "processes that are not a list",
      JSON.stringify({ ...state(1), processes: {} }),
      /processes is not a list/,
    ],
  ])("refuses %s", (_what, text, problem) => {
    expect(refusal(text).message).toMatch(problem);
  });

  it.each([
    ["null", null],
    ["a string", "web"],
    ["an entry without spec", { intent: "running", source: "api" }],
    ["a spec that is a string", { spec: "web", intent: "running", source: "api" }],
    ["an unknown intent", { spec: {}, intent: "paused", source: "api" }],
    ["no intent", { spec: {}, source: "api" }],
    ["an unknown source", { spec: {}, intent: "running", source: "cli" }],
  ])("refuses a malformed entry: %s, naming its index", (_what, entry) => {
    const good = { spec: { name: "ok", args: ["true"] }, intent: "running", source: "api" };
    expect(refusal(withProcesses([good, entry])).message).toContain("processes[1] is malformed");
  });

  it("refuses a file it cannot read, naming the reason", () => {
    const path = join(dir, "a-directory");
    mkdirSync(path);
    expect(() => readStateFile(path)).toThrow(/state file .*a-directory is unusable: .*EISDIR/);
  });
});

describe("StateFileWriter", () => {
  /** The temp files of writes beside `path` (none is left after a write). */
  const tempsOf = (path: string) =>
    readdirSync(dirname(path)).filter(
      (f) => f.startsWith(`${basename(path)}.`) && f.endsWith(".tmp"),
    );

  it("save writes what readStateFile reads back, mode 0600, no temp file left", async () => {
    const path = join(dir, "state.json");
    await new StateFileWriter(path).save(state(3, 4));
    expect(readStateFile(path)).toEqual(state(3, 4));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(tempsOf(path)).toEqual([]);
  });

  it("save creates a missing directory, mode 0700", async () => {
    const path = join(dir, "var/lib/procmon/state.json");
    await new StateFileWriter(path).save(emptyState());
    expect(statSync(join(dir, "var/lib/procmon")).mode & 0o777).toBe(0o700);
    expect(readStateFile(path)?.processes).toEqual([]);
  });

  it("emptyState is a valid state with a fresh instance", async () => {
    const path = join(dir, "state.json");
    const a = emptyState();
    await new StateFileWriter(path).save(a);
    expect(readStateFile(path)).toEqual(a);
    expect(a.instance).not.toBe(emptyState().instance);
    expect(a.seqReservedUpTo).toBe("0");
  });

  it("save writes what readStateFile reads back, mode 0600, no temp file left", async () => {
    const path = join(dir, "state.json");
    const writer = new StateFileWriter(path);
    await writer.save(state(5, 3));
    expect(readStateFile(path)).toEqual(state(5, 3));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(tempsOf(path)).toEqual([]);
    // And again, over the existing file.
    await writer.save(state(6, 1));
    expect(readStateFile(path)).toEqual(state(6, 1));
  });

  it("coalesces concurrent saves: every one resolves, the last state wins", async () => {
    const path = join(dir, "state.json");
    const writer = new StateFileWriter(path);
    const saves = Array.from({ length: 50 }, (_, i) => writer.save(state(i, (i % 5) + 1)));
    await expect(Promise.all(saves)).resolves.toHaveLength(50);
    expect(readStateFile(path)).toEqual(state(49, 5));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(tempsOf(path)).toEqual([]);
  });

  it("a save requested after the others resolve is written too", async () => {
    const path = join(dir, "state.json");
    const writer = new StateFileWriter(path);
    await Promise.all([writer.save(state(1)), writer.save(state(2))]);
    await writer.save(state(3));
    expect(readStateFile(path)?.seqReservedUpTo).toBe("3");
  });

  it("a failed write rejects every coalesced save, and the writer recovers", async () => {
    // A file where its directory should be: no write can succeed until it goes.
    const blocker = join(dir, "not-yet");
    writeFileSync(blocker, "");
    const path = join(blocker, "state.json");
    const writer = new StateFileWriter(path);
    const saves = [writer.save(state(1)), writer.save(state(2)), writer.save(state(3))];
    const results = await Promise.allSettled(saves);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    rmSync(blocker);
    await writer.save(state(4));
    expect(readStateFile(path)?.seqReservedUpTo).toBe("4");
  });

  it("ignores a leftover temp file of a cut-short write, and sweeps it", async () => {
    const path = join(dir, "state.json");
    const writer = new StateFileWriter(path);
    await writer.save(state(1));
    // A power cut during the next write: the rename never happened.
    const leftover = `${path}.4242.0123456789ab.tmp`;
    writeFileSync(leftover, valid.slice(0, 40), { mode: 0o600 });
    expect(readStateFile(path)).toEqual(state(1));
    await writer.save(state(2));
    expect(readStateFile(path)).toEqual(state(2));
    // The next daemon, holding the lock, removes what a cut-short write left.
    writer.sweepTemps();
    expect(tempsOf(path)).toEqual([]);
  });

  it("never writes through a file or symlink planted where a temp file might go", async () => {
    const path = join(dir, "state.json");
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious\n");
    // The name every write used to take.
    symlinkSync(victim, `${path}.tmp`);
    const writer = new StateFileWriter(path);
    await writer.save(state(1));
    await writer.save(state(2));
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(readStateFile(path)).toEqual(state(2));
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
  });
});
