import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  type ProcessSpec,
  ProcessSpecSchema,
  RestartPolicy,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkSpecFiles } from "../../src/adapters/spec-files.js";
import { type ErrorCode, ProcmonError } from "../../src/core/errors.js";
import { normaliseSpec, runsAsDaemon, type SpecContext } from "../../src/core/spec.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/types.js";
import { specInputFromProto } from "../../src/wire/spec.js";

const DEFAULTS: Policy = {
  thresholdMs: 1_000,
  killTimeMs: 5_000,
  minRestartDelayMs: 1_000,
  maxRestartDelayMs: 3_600_000,
};
const OPTS = { defaults: DEFAULTS, daemonUid: 1000, daemonGid: 1000 };

/** What AddProcess does with a wire spec: decode it, hold it to the rules, then check its files. */
function validateSpec(wire: ProcessSpec | undefined, context: SpecContext) {
  const spec = normaliseSpec(specInputFromProto(wire), context);
  checkSpecFiles(spec, runsAsDaemon(spec, context));
  return spec;
}

let dir: string;
let script: string;
let notExecutable: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "procmon-validate-"));
  script = join(dir, "run.sh");
  writeFileSync(script, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  notExecutable = join(dir, "data.txt");
  writeFileSync(notExecutable, "data\n", { mode: 0o644 });
  mkdirSync(join(dir, "sub"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// The init form only: a full message in the union would demand $typeName.
type SpecInit = Exclude<MessageInitShape<typeof ProcessSpecSchema>, ProcessSpec>;

function spec(init: SpecInit = {}) {
  return create(ProcessSpecSchema, { name: "web-1", args: ["sleep", "60"], ...init });
}

function ms(value: number) {
  const seconds = Math.trunc(value / 1_000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((value - seconds * 1_000) * 1e6),
  });
}

function rejection(fn: () => unknown): ProcmonError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ProcmonError) return error;
    throw error;
  }
  throw new Error("expected a ProcmonError");
}

function expectRejected(
  init: SpecInit,
  code: ErrorCode,
  message: string | RegExp,
  opts = OPTS,
): void {
  const error = rejection(() => validateSpec(spec(init), opts));
  expect(error.code).toBe(code);
  if (typeof message === "string") expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
}

describe("validateSpec accepts", () => {
  it("a good spec, normalised with the defaults filled in", () => {
    const result = validateSpec(
      spec({ env: { FOO: "bar" }, killTime: ms(2_500), minRestartDelay: ms(100.4) }),
      OPTS,
    );
    expect(result).toEqual({
      name: "web-1",
      args: ["sleep", "60"],
      env: { FOO: "bar" },
      clearEnv: false,
      cwd: "",
      thresholdMs: 1_000,
      killTimeMs: 2_500,
      minRestartDelayMs: 100,
      maxRestartDelayMs: 3_600_000,
      restart: "always",
      successExitCodes: [0],
      maxInstantDeaths: 0,
      stopSignal: "SIGTERM",
      dependsOn: [],
      ready: undefined,
      maxRssBytes: 0,
    });
  });

  it("a bare name found on PATH, and the name is kept as given", () => {
    expect(validateSpec(spec({ args: ["sleep", "1"] }), OPTS).args).toEqual(["sleep", "1"]);
  });

  it("a bare name found on the spec's own PATH", () => {
    const result = validateSpec(
      spec({ args: ["run.sh"], env: { PATH: dir }, clearEnv: true }),
      OPTS,
    );
    expect(result.env).toEqual({ PATH: dir });
  });

  it("a relative path resolved against cwd", () => {
    expect(validateSpec(spec({ args: ["./run.sh"], cwd: dir }), OPTS).cwd).toBe(dir);
  });

  it("every name character the contract allows", () => {
    const name = `a${"Zz9._-:@".repeat(15)}`.slice(0, 128);
    expect(validateSpec(spec({ name }), OPTS).name).toBe(name);
  });

  it("the daemon's own uid and gid when it is not root", () => {
    const result = validateSpec(spec({ uid: 1000, gid: 1000 }), OPTS);
    expect(result.uid).toBe(1000);
    expect(result.gid).toBe(1000);
  });

  it("any uid and gid when the daemon is root", () => {
    const result = validateSpec(spec({ uid: 1234, gid: 0 }), {
      defaults: DEFAULT_POLICY,
      daemonUid: 0,
      daemonGid: 0,
    });
    expect(result).toMatchObject({ uid: 1234, gid: 0 });
  });

  it("min_restart_delay equal to max_restart_delay", () => {
    const result = validateSpec(
      spec({ minRestartDelay: ms(2_000), maxRestartDelay: ms(2_000) }),
      OPTS,
    );
    expect(result.minRestartDelayMs).toBe(2_000);
  });
});

describe("validateSpec rejects", () => {
  it("a missing spec", () => {
    const error = rejection(() => validateSpec(undefined, OPTS));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe("process is required");
  });

  it.each(["", "-x", ".x", "a b", "a/b", "é", "x".repeat(129), "a\0"])("name %j", (name) => {
    expectRejected(
      { name },
      "invalid_argument",
      /^name ".*"(\.\.\.)? is invalid: use 1-128 letters, digits and \. _ - : @, starting with a letter or digit$/,
    );
  });

  it("a name with the exact message", () => {
    expectRejected(
      { name: "-x" },
      "invalid_argument",
      'name "-x" is invalid: use 1-128 letters, digits and . _ - : @, starting with a letter or digit',
    );
  });

  it("a very long name without repeating all of it", () => {
    const error = rejection(() => validateSpec(spec({ name: "y".repeat(10_000) }), OPTS));
    expect(error.message.length).toBeLessThan(300);
  });

  it("empty args", () => {
    expectRejected(
      { args: [] },
      "invalid_argument",
      "args must not be empty: args[0] is the executable",
    );
  });

  it("an empty executable", () => {
    expectRejected({ args: [""] }, "invalid_argument", /^args\[0\] must not be empty/);
  });

  it("an argument containing NUL", () => {
    expectRejected({ args: ["sleep", "1\0"] }, "invalid_argument", /^args\[1\] .* contains a NUL/);
  });

  it("an executable that does not exist", () => {
    expectRejected(
      { args: [join(dir, "nope")] },
      "invalid_argument",
      /executable ".*nope" does not exist/,
    );
  });

  it("a bare name not on PATH", () => {
    expectRejected(
      { args: ["procmon-no-such-program"] },
      "invalid_argument",
      /executable "procmon-no-such-program" not found on PATH/,
    );
  });

  it("a bare name not on the spec's PATH, even if it is on the daemon's", () => {
    expectRejected(
      { args: ["sleep"], env: { PATH: join(dir, "sub") } },
      "invalid_argument",
      /executable "sleep" not found on PATH/,
    );
  });

  it.skipIf(process.getuid?.() === 0)("a file that is not executable", () => {
    expectRejected({ args: [notExecutable] }, "invalid_argument", /is not executable/);
  });

  it("a directory as the executable", () => {
    expectRejected({ args: [dir] }, "invalid_argument", /is a directory/);
  });

  it("a cwd that does not exist", () => {
    expectRejected({ cwd: "/nope" }, "invalid_argument", 'cwd "/nope" does not exist');
  });

  it("a cwd under a file", () => {
    expectRejected({ cwd: join(script, "x") }, "invalid_argument", /^cwd ".*" does not exist$/);
  });

  it("a cwd that is a file", () => {
    expectRejected({ cwd: script }, "invalid_argument", `cwd "${script}" is not a directory`);
  });

  it.skipIf(process.getuid?.() === 0)("a cwd the daemon cannot enter", () => {
    const locked = join(dir, "locked");
    mkdirSync(locked, { mode: 0o000 });
    try {
      expectRejected({ cwd: locked }, "invalid_argument", /is not accessible/);
    } finally {
      chmodSync(locked, 0o700);
    }
  });

  it.each(["", "A=B", "A\0"])("env key %j", (key) => {
    expectRejected({ env: { [key]: "v" } }, "invalid_argument", /^env key ".*" is invalid: /);
  });

  it("an env key with the exact message", () => {
    expectRejected(
      { env: { "A=B": "v" } },
      "invalid_argument",
      'env key "A=B" is invalid: it must be non-empty, without "=" or NUL',
    );
  });

  it("an env value containing NUL", () => {
    expectRejected({ env: { FOO: "a\0b" } }, "invalid_argument", /^env "FOO" has a NUL character/);
  });

  it.each([
    ["threshold", "threshold"],
    ["killTime", "kill_time"],
    ["minRestartDelay", "min_restart_delay"],
    ["maxRestartDelay", "max_restart_delay"],
  ] as const)("a zero or negative %s", (prop, field) => {
    expectRejected({ [prop]: ms(0) }, "invalid_argument", `${field} must be positive, got 0s`);
    expectRejected(
      { [prop]: ms(-1_000) },
      "invalid_argument",
      `${field} must be positive, got -1s`,
    );
  });

  it("a duration that rounds to 0ms", () => {
    expectRejected(
      { killTime: create(DurationSchema, { nanos: 400_000 }) },
      "invalid_argument",
      "kill_time must be at least 1ms, got 400us",
    );
  });

  it("a duration longer than a timer can wait", () => {
    expectRejected(
      { maxRestartDelay: create(DurationSchema, { seconds: 30n * 86_400n }) },
      "invalid_argument",
      "max_restart_delay must be at most 596h31m23.647s, got 720h",
    );
  });

  it("min_restart_delay above max_restart_delay", () => {
    expectRejected(
      { minRestartDelay: ms(2_000), maxRestartDelay: ms(1_000) },
      "invalid_argument",
      "min_restart_delay (2s) must not exceed max_restart_delay (1s)",
    );
  });

  it("min_restart_delay above the default max_restart_delay", () => {
    expectRejected(
      { minRestartDelay: ms(7_200_000) },
      "invalid_argument",
      "min_restart_delay (2h) must not exceed max_restart_delay (1h)",
    );
  });

  it("another uid when the daemon is not root", () => {
    expectRejected(
      { uid: 1234 },
      "permission_denied",
      "cannot run as uid 1234: procmond runs as uid 1000 and is not root",
    );
  });

  it("another gid when the daemon is not root", () => {
    expectRejected(
      { gid: 0 },
      "permission_denied",
      "cannot run as gid 0: procmond runs as gid 1000 and is not root",
    );
  });

  it("a uid that Node cannot spawn with, even as root", () => {
    expectRejected({ uid: 4_294_967_295 }, "invalid_argument", /^uid 4294967295 is out of range/, {
      defaults: DEFAULTS,
      daemonUid: 0,
      daemonGid: 0,
    });
  });

  it("bad arguments before permissions", () => {
    expectRejected({ name: "-x", uid: 1234 }, "invalid_argument", /^name "-x"/);
  });
});

describe("the end policy of a spec (v1.1 §B)", () => {
  it("fills in its defaults: always, [0], never give up, SIGTERM", () => {
    expect(validateSpec(spec(), OPTS)).toMatchObject({
      restart: "always",
      successExitCodes: [0],
      maxInstantDeaths: 0,
      stopSignal: "SIGTERM",
    });
  });

  it("keeps what it is given, exit codes sorted without repeats", () => {
    expect(
      validateSpec(
        spec({
          restart: RestartPolicy.ON_FAILURE,
          successExitCodes: [3, 0, 3],
          maxInstantDeaths: 5,
          stopSignal: "SIGQUIT",
        }),
        OPTS,
      ),
    ).toMatchObject({
      restart: "on-failure",
      successExitCodes: [0, 3],
      maxInstantDeaths: 5,
      stopSignal: "SIGQUIT",
    });
    expect(validateSpec(spec({ restart: RestartPolicy.NEVER }), OPTS).restart).toBe("never");
  });

  it.each([
    [{ stopSignal: "SIGKILL" }, /^stop_signal "SIGKILL" is not one of SIGTERM, SIGINT, SIGQUIT/],
    [{ stopSignal: "TERM" }, /^stop_signal "TERM" is not one of/],
    [{ successExitCodes: [0, 256] }, "success_exit_codes[1] 256 is not an exit code: 0 to 255"],
    [{ successExitCodes: [-1] }, "success_exit_codes[0] -1 is not an exit code: 0 to 255"],
    [{ restart: 7 as RestartPolicy }, /^restart 7 is not a RestartPolicy/],
  ] as Array<[SpecInit, string | RegExp]>)("refuses %j, naming the field", (init, message) => {
    expectRejected(init, "invalid_argument", message);
  });
});
