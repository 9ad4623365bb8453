// The config file: YAML with ProcessSpec's JSON field names (either spelling)
// and written durations; every error names the file, the line and the problem.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConfigContext, loadConfigFile, parseConfig } from "../../src/adapters/config-file.js";
import { checkSpecFiles } from "../../src/adapters/spec-files.js";
import { ProcmonError } from "../../src/core/errors.js";
import { DEFAULT_END_POLICY, DEFAULT_POLICY, DEFAULT_READINESS } from "../../src/core/types.js";

const PATH = "/etc/procmon/processes.yaml";

const options: ConfigContext = {
  checkFiles: checkSpecFiles,
  defaults: DEFAULT_POLICY,
  daemonUid: process.getuid?.() ?? 0,
  daemonGid: process.getgid?.() ?? 0,
};

const parse = (text: string) => parseConfig(text, PATH, options).map((entry) => entry.spec);

/** The error parseConfig throws for `lines`; checks it is invalid_argument naming the file. */
function failure(...lines: string[]): string {
  let error: unknown;
  try {
    parse(`${lines.join("\n")}\n`);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ProcmonError);
  expect((error as ProcmonError).code).toBe("invalid_argument");
  const message = (error as ProcmonError).message;
  expect(message.startsWith(`config file ${PATH}:`)).toBe(true);
  return message;
}

/** The line number an error message gives. */
const lineOf = (message: string): number => {
  const match = /^config file [^:]+:(\d+): /.exec(message);
  if (!match?.[1]) throw new Error(`no line in: ${message}`);
  return Number(match[1]);
};

describe("parseConfig: good files", () => {
  it("reads camelCase and snake_case fields, durations, and stringifies scalars", () => {
    const specs = parse(
      [
        "processes:",
        "  - name: web",
        "    args: [sleep, 100]",
        "    env: { PORT: 8080, DEBUG: true, NAME: web }",
        "    killTime: 500ms",
        "    min_restart_delay: 1m30s",
        "    maxRestartDelay: 2h",
        "    threshold: 1.5s",
        "  - name: worker",
        "    args:",
        "      - sh",
        "      - -c",
        "      - echo hi",
        "    clear_env: true",
        "    cwd: /",
        "    kill_time: 2s",
        "    clearEnv: true",
        `    uid: ${options.daemonUid}`,
        `    gid: ${options.daemonGid}`,
      ].join("\n"),
    );
    expect(specs).toEqual([
      {
        name: "web",
        args: ["sleep", "100"],
        env: { PORT: "8080", DEBUG: "true", NAME: "web" },
        clearEnv: false,
        cwd: "",
        thresholdMs: 1_500,
        killTimeMs: 500,
        minRestartDelayMs: 90_000,
        maxRestartDelayMs: 7_200_000,
        ...DEFAULT_END_POLICY,
        ...DEFAULT_READINESS,
      },
      {
        name: "worker",
        args: ["sh", "-c", "echo hi"],
        env: {},
        clearEnv: true,
        cwd: "/",
        uid: options.daemonUid,
        gid: options.daemonGid,
        thresholdMs: DEFAULT_POLICY.thresholdMs,
        killTimeMs: 2_000,
        minRestartDelayMs: DEFAULT_POLICY.minRestartDelayMs,
        maxRestartDelayMs: DEFAULT_POLICY.maxRestartDelayMs,
        ...DEFAULT_END_POLICY,
        ...DEFAULT_READINESS,
      },
    ]);
  });

  it("fills in the daemon's defaults for durations left out", () => {
    const custom = { ...options, defaults: { ...DEFAULT_POLICY, killTimeMs: 300 } };
    const [entry] = parseConfig("processes:\n  - name: a\n    args: [sleep, '1']\n", PATH, custom);
    expect(entry?.spec.killTimeMs).toBe(300);
    expect(entry?.spec.thresholdMs).toBe(DEFAULT_POLICY.thresholdMs);
  });

  it("says where each entry is written", () => {
    const text =
      "processes:\n  - name: a\n    args: [sleep, '1']\n  - name: b\n    args: [sleep, '1']\n";
    expect(parseConfig(text, PATH, options).map((e) => e.where)).toEqual([
      `config file ${PATH}:2`,
      `config file ${PATH}:4`,
    ]);
  });

  it.each([
    ["an empty file", ""],
    ["only a comment", "# nothing yet\n"],
    ["an empty processes key", "processes:\n"],
    ["an empty list", "processes: []\n"],
  ])("reads %s as no processes", (_what, text) => {
    expect(parse(text)).toEqual([]);
  });
});

describe("parseConfig: each error names the line", () => {
  it("a syntax error", () => {
    const message = failure(
      "processes:",
      "  - name: a",
      "    args: [sleep, 1]",
      "   bad: indentation",
    );
    expect(lineOf(message)).toBe(4);
  });

  it("an unclosed flow sequence, at the line where it is noticed", () => {
    const message = failure("processes:", "  - name: a", '    args: [sleep, "1"', "  - name: b");
    expect(lineOf(message)).toBeGreaterThanOrEqual(3);
    expect(message).toMatch(/end with a \]/);
  });

  it("tabs as indentation", () => {
    expect(lineOf(failure("processes:", "\t- name: a"))).toBe(2);
  });

  it("a key given twice in one entry", () => {
    const message = failure("processes:", "  - name: a", "    args: [sleep, '1']", "    name: b");
    expect(lineOf(message)).toBe(4);
    expect(message).toMatch(/unique/);
  });

  it("an unknown top-level key", () => {
    const message = failure("processes: []", "", "services: []");
    expect(lineOf(message)).toBe(3);
    expect(message).toContain('unknown key "services"');
  });

  it("a top level that is not a mapping", () => {
    expect(failure("- name: a")).toMatch(/:1: the top level must be a mapping/);
  });

  it("processes that are not a list", () => {
    expect(failure("processes: web")).toMatch(/:1: `processes` must be a list/);
  });

  it("an entry that is not a mapping", () => {
    expect(failure("processes:", "  - name: a", "    args: [sleep, '1']", "  - web")).toMatch(
      /:4: processes\[1\] must be a mapping/,
    );
  });

  it("an unknown field, listing the known ones", () => {
    const message = failure("processes:", "  - name: a", "    args: [sleep, '1']", "    comand: x");
    expect(lineOf(message)).toBe(4);
    expect(message).toContain("processes[0].comand: unknown field");
    expect(message).toContain("kill_time");
  });

  it.each([
    ["a unit it does not know", "5 parsecs", /kill_time: "5 parsecs" is not a duration/],
    ["zero", "0s", /kill_time: "0s" must be positive/],
    ["over the limit every duration has", "1000h", /kill_time: "1000h" must be at most 596h/],
    ["a bare number", "5", /kill_time: expected a duration such as "500ms"/],
    ["a list", "[5s]", /kill_time: expected a duration/],
  ])("a bad duration: %s", (_what, value, problem) => {
    const message = failure(
      "processes:",
      "  - name: a",
      "    args: [sleep, '1']",
      `    kill_time: ${value}`,
    );
    expect(lineOf(message)).toBe(4);
    expect(message).toMatch(problem);
  });

  it.each([
    ["args as a string", "args: sleep", /processes\[0\]\.args: expected a list of strings/],
    ["args holding a mapping", "args: [{a: 1}]", /args: expected a list of strings/],
    ["env as a list", "env: [A=1]", /env: expected a mapping of names to values/],
    ["an env value that is a list", "env: { A: [1] }", /the value of A must be a string/],
    ["clear_env as a string", "clear_env: yes please", /clear_env: expected true or false/],
    ["a negative uid", "uid: -1", /uid: expected a non-negative whole number/],
    ["a fractional gid", "gid: 1.5", /gid: expected a non-negative whole number/],
    ["a cwd that is a list", "cwd: [a]", /cwd: expected a string/],
    ["a name that is a number", "name: 5", /name: expected a string/],
  ])("a value of the wrong type: %s", (_what, line, problem) => {
    const text = ["processes:", "  - threshold: 1s"];
    if (!line.startsWith("name")) text.push("    name: a");
    if (!line.startsWith("args")) text.push("    args: [sleep, '1']");
    text.push(`    ${line}`);
    const message = failure(...text);
    expect(lineOf(message)).toBe(text.length);
    expect(message).toMatch(problem);
  });

  it("a name defined twice, naming both lines", () => {
    const message = failure(
      "processes:",
      "  - name: web",
      "    args: [sleep, '1']",
      "  - name: other",
      "    args: [sleep, '1']",
      "  - name: web",
      "    args: [sleep, 1]",
    );
    expect(lineOf(message)).toBe(6);
    expect(message).toContain('process "web" is already defined at line 2');
  });

  it.each([
    ["a missing executable", "args: [/nonexistent/procmon-test-bin]", /does not exist/],
    ["no args", "args: []", /args must not be empty/],
    ["a missing cwd", "cwd: /nonexistent/procmon-dir", /cwd "\/nonexistent\/procmon-dir"/],
    ["a bad env key", "env: { 'A=B': x }", /env key "A=B" is invalid/],
  ])("an entry that does not validate: %s, at the entry's line", (_what, line, problem) => {
    const text = ["processes:", "  - name: ok", "    args: [sleep, '1']", "  - name: bad"];
    if (!line.startsWith("args")) text.push("    args: [sleep, '1']");
    text.push(`    ${line}`);
    const message = failure(...text);
    expect(lineOf(message)).toBe(4);
    expect(message).toContain("processes[1]: ");
    expect(message).toMatch(problem);
  });

  it("a bad name", () => {
    const message = failure("processes:", "  - name: -bad", "    args: [sleep, '1']");
    expect(lineOf(message)).toBe(2);
    expect(message).toMatch(/name "-bad" is invalid/);
  });

  it("min_restart_delay over max_restart_delay", () => {
    const message = failure(
      "processes:",
      "  - name: a",
      "    args: [sleep, '1']",
      "    min_restart_delay: 2s",
      "    maxRestartDelay: 1s",
    );
    expect(message).toMatch(/min_restart_delay \(2s\) must not exceed max_restart_delay \(1s\)/);
  });
});

describe("loadConfigFile", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "procmon-config-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads a file", () => {
    const path = join(dir, "good.yaml");
    writeFileSync(path, "processes:\n  - name: a\n    args: [sleep, '1']\n");
    expect(loadConfigFile(path, options).map((e) => e.spec.args)).toEqual([["sleep", "1"]]);
  });

  it("names the file in errors", () => {
    const path = join(dir, "bad.yaml");
    writeFileSync(path, "processes:\n  - name: a\n    args: [sleep, '1']\n    bogus: 1\n");
    expect(() => loadConfigFile(path, options)).toThrow(`config file ${path}:4: `);
  });

  it("names a file it cannot read", () => {
    const path = join(dir, "missing.yaml");
    expect(() => loadConfigFile(path, options)).toThrow(
      new RegExp(`^config file ${path}: .*ENOENT`),
    );
  });
});
