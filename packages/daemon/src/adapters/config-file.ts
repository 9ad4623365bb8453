import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { parseDuration } from "@procmon/client/duration";
import { ProcessSpecSchema } from "@procmon/client/gen/procmon/v1/procmon_pb.js";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import { ProcmonError } from "../core/errors.js";
import type { ProcessSpec } from "../core/types.js";
import { type ValidateSpecOptions, validateSpec } from "./validate-spec.js";

/** The fields of ProcessSpec's JSON form, in either spelling, by their canonical name. */
const FIELDS: Record<string, string> = {
  name: "name",
  args: "args",
  env: "env",
  clearEnv: "clearEnv",
  clear_env: "clearEnv",
  cwd: "cwd",
  uid: "uid",
  gid: "gid",
  threshold: "threshold",
  killTime: "killTime",
  kill_time: "killTime",
  minRestartDelay: "minRestartDelay",
  min_restart_delay: "minRestartDelay",
  maxRestartDelay: "maxRestartDelay",
  max_restart_delay: "maxRestartDelay",
};

const DURATION_FIELDS = new Set(["threshold", "killTime", "minRestartDelay", "maxRestartDelay"]);

/** One process of a config file, and where it is written. */
export interface ConfigEntry {
  /** The validated, normalised spec. */
  readonly spec: ProcessSpec;
  /** `config file PATH:LINE`, naming the entry in messages. */
  readonly where: string;
}

/**
 * Reads a config file of processes:
 *
 * ```yaml
 * processes:
 *   - name: web
 *     args: [python3, -m, http.server, "8080"]
 *     env: { PYTHONUNBUFFERED: "1" }
 *     killTime: 10s
 * ```
 *
 * Every entry is validated as AddProcess validates a spec.
 * @throws ProcmonError invalid_argument naming the file, the line and the problem.
 */
export function loadConfigFile(path: string, options: ValidateSpecOptions): ConfigEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ProcmonError("invalid_argument", `config file ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path, options);
}

/** Parses config text; `path` only names the file in errors. */
export function parseConfig(
  text: string,
  path: string,
  options: ValidateSpecOptions,
): ConfigEntry[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const fail = (node: Node | undefined | null, problem: string): never => {
    const offset = node?.range?.[0];
    const where = offset === undefined ? "" : `:${lines.linePos(offset).line}`;
    throw new ProcmonError("invalid_argument", `config file ${path}${where}: ${problem}`);
  };
  const syntax = doc.errors[0];
  if (syntax) {
    // Without prettyErrors, yaml gives the offset only (linePos is unset): count the line here.
    const line = lines.linePos(syntax.pos[0]).line;
    throw new ProcmonError(
      "invalid_argument",
      `config file ${path}:${line}: ${syntax.message.split("\n")[0]}`,
    );
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return [];
  if (!isMap(root)) return fail(root, "the top level must be a mapping with a `processes` list");
  let processes: Node | undefined;
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    if (key !== "processes") fail(pair.key as Node, `unknown key "${key}": expected \`processes\``);
    processes = (pair.value ?? undefined) as Node | undefined;
  }
  if (processes === undefined || (isScalar(processes) && processes.value === null)) return [];
  if (!isSeq(processes)) return fail(processes, "`processes` must be a list");

  const entries: ConfigEntry[] = [];
  const seen = new Map<string, number>();
  for (const [index, item] of processes.items.entries()) {
    const node = item as Node;
    if (!isMap(node)) fail(node, `processes[${index}] must be a mapping`);
    const init = readEntry(node as YAMLMap, index, fail);
    let spec: ProcessSpec;
    try {
      spec = validateSpec(create(ProcessSpecSchema, init), options);
    } catch (err) {
      return fail(node, `processes[${index}]: ${(err as Error).message}`);
    }
    const line = lines.linePos(node.range?.[0] ?? 0).line;
    const earlier = seen.get(spec.name);
    if (earlier !== undefined) {
      fail(node, `process "${spec.name}" is already defined at line ${earlier}`);
    }
    seen.set(spec.name, line);
    entries.push({ spec, where: `config file ${path}:${line}` });
  }
  return entries;
}

function readEntry(
  map: YAMLMap,
  index: number,
  fail: (node: Node | undefined | null, problem: string) => never,
): Parameters<typeof create<typeof ProcessSpecSchema>>[1] {
  const init: Record<string, unknown> = {};
  for (const pair of map.items) {
    const keyNode = pair.key as Node;
    const key = isScalar(keyNode) ? String(keyNode.value) : "";
    const field = FIELDS[key];
    const where = `processes[${index}].${key}`;
    if (field === undefined) {
      fail(keyNode, `${where}: unknown field (expected one of ${Object.keys(FIELDS).join(", ")})`);
    }
    const valueNode = pair.value as Node | null;
    const value: unknown = valueNode === null ? null : valueNode.toJSON();
    init[field as string] = convert(field as string, value, (problem) =>
      fail(valueNode ?? keyNode, `${where}: ${problem}`),
    );
  }
  return init;
}

function convert(field: string, value: unknown, fail: (problem: string) => never): unknown {
  if (DURATION_FIELDS.has(field)) {
    if (typeof value !== "string") return fail('expected a duration such as "500ms" or "5s"');
    try {
      return parseDuration(value);
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  switch (field) {
    case "name":
    case "cwd":
      if (typeof value !== "string") return fail("expected a string");
      return value;
    case "args":
      if (
        !Array.isArray(value) ||
        value.some((a) => typeof a !== "string" && typeof a !== "number")
      ) {
        return fail("expected a list of strings");
      }
      return value.map(String);
    case "env": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return fail("expected a mapping of names to values");
      }
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
          return fail(`the value of ${k} must be a string`);
        }
        env[k] = String(v);
      }
      return env;
    }
    case "clearEnv":
      if (typeof value !== "boolean") return fail("expected true or false");
      return value;
    case "uid":
    case "gid":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
        return fail("expected a non-negative whole number");
      }
      return value;
    default:
      return fail("unknown field");
  }
}
