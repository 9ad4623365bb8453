import { readFileSync } from "node:fs";
import {
  type DescEnum,
  type DescField,
  type DescMessage,
  fromJson,
  type JsonValue,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { parseDuration } from "@procmon/api/duration";
import { ProcessSpecSchema } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import { ProcmonError } from "../core/errors.js";
import { normaliseSpec, runsAsDaemon, type SpecContext, type SpecFileCheck } from "../core/spec.js";
import type { ProcessSpec } from "../core/types.js";
import { specInputFromJson } from "../wire/spec.js";

/** What checking the entries of a config file needs: the rules' context, and the files' check. */
export interface ConfigContext extends SpecContext {
  readonly checkFiles: SpecFileCheck;
}

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
 * Field names are ProcessSpec's, in either spelling, and values its JSON form
 * (read by protobuf-es's fromJson), except that durations are written as
 * everywhere else in procmon (`500ms`, `1m30s`) and numbers may stand for the
 * strings of a list or a mapping (`args: [sleep, 100]`). Every entry is validated as AddProcess
 * validates a spec.
 * @throws ProcmonError invalid_argument naming the file, the line and the problem.
 */
export function loadConfigFile(path: string, options: ConfigContext): ConfigEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ProcmonError("invalid_argument", `config file ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path, options);
}

/** Parses config text; `path` only names the file in errors. */
export function parseConfig(text: string, path: string, options: ConfigContext): ConfigEntry[] {
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
    const json = readEntry(node as YAMLMap, index, fail);
    let spec: ProcessSpec;
    try {
      spec = normaliseSpec(specInputFromJson(json), options);
      options.checkFiles(spec, runsAsDaemon(spec, options));
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

/** An entry as ProcessSpec's JSON form, each field checked (and failed) at its own line. */
function readEntry(
  map: YAMLMap,
  index: number,
  fail: (node: Node | undefined | null, problem: string) => never,
): JsonValue {
  const json: Record<string, JsonValue> = {};
  for (const pair of map.items) {
    const keyNode = pair.key as Node;
    const key = isScalar(keyNode) ? String(keyNode.value) : "";
    const where = `processes[${index}].${key}`;
    const field = fieldNamed(ProcessSpecSchema, key);
    if (field === undefined) {
      const known = ProcessSpecSchema.fields.map((f) => f.name).join(", ");
      fail(keyNode, `${where}: unknown field (expected one of ${known})`);
    }
    const valueNode = pair.value as Node | null;
    const at = (problem: string): never => fail(valueNode ?? keyNode, `${where}: ${problem}`);
    const value = jsonOf(field as DescField, valueNode === null ? null : valueNode.toJSON(), at);
    try {
      // Decoded alone first, so that a value protobuf-es refuses is named at its line.
      fromJson(ProcessSpecSchema, { [(field as DescField).jsonName]: value });
    } catch (err) {
      at((err as Error).message);
    }
    json[(field as DescField).jsonName] = value;
  }
  return json;
}

/** The field of `message` named `key`, in either spelling. */
function fieldNamed(message: DescMessage, key: string): DescField | undefined {
  return message.fields.find((f) => f.name === key || f.jsonName === key);
}

/**
 * A value of `field` as its JSON form: durations in procmon's syntax become
 * proto3 JSON's seconds, numbers and booleans where strings go become those
 * strings, and nested messages are translated the same way. What it does not
 * know is left to fromJson.
 */
function jsonOf(field: DescField, value: unknown, fail: (problem: string) => never): JsonValue {
  const each = <T>(list: unknown, item: (v: unknown) => T, what: string): T[] => {
    if (!Array.isArray(list)) return fail(`expected a list of ${what}`);
    return list.map(item);
  };
  switch (field.fieldKind) {
    case "scalar":
      return scalarJson(field.scalar, value, fail);
    case "enum":
      return enumJson(field.enum, value, fail);
    case "message":
      return messageJson(field.message, value, fail);
    case "list":
      if (field.listKind === "scalar") {
        const strings = field.scalar === ScalarType.STRING;
        return each(
          value,
          (v) =>
            strings && typeof v !== "string" && typeof v !== "number"
              ? fail("expected a list of strings")
              : scalarJson(field.scalar, strings ? String(v) : v, fail),
          strings ? "strings" : "values",
        );
      }
      if (field.listKind === "message") {
        return each(value, (v) => messageJson(field.message, v, fail), "mappings");
      }
      return value as JsonValue;
    case "map": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return fail("expected a mapping of names to values");
      }
      const entries = Object.entries(value).map(([k, v]): [string, JsonValue] => {
        if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING) {
          if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
            return fail(`the value of ${k} must be a string`);
          }
          return [k, String(v)];
        }
        return [k, v as JsonValue];
      });
      return Object.fromEntries(entries);
    }
    default:
      return value as JsonValue;
  }
}

function messageJson(
  message: DescMessage,
  value: unknown,
  fail: (problem: string) => never,
): JsonValue {
  if (message.typeName === DurationSchema.typeName) {
    if (typeof value !== "string") return fail('expected a duration such as "500ms" or "5s"');
    try {
      return toJson(DurationSchema, parseDuration(value));
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail("expected a mapping");
  }
  const json: Record<string, JsonValue> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = fieldNamed(message, key);
    if (field === undefined) return fail(`${key}: unknown field`);
    json[field.jsonName] = jsonOf(field, v, (problem) => fail(`${key}: ${problem}`));
  }
  return json;
}

/**
 * An enum value by its proto name (`RESTART_POLICY_NEVER`) or, as people
 * write it, by what follows the enum's prefix, in lower case with dashes
 * (`never`, `on-failure`).
 */
function enumJson(
  descriptor: DescEnum,
  value: unknown,
  fail: (problem: string) => never,
): JsonValue {
  const values = descriptor.values.filter((v) => !v.name.endsWith("_UNSPECIFIED"));
  const short = (name: string) =>
    name
      .slice(descriptor.sharedPrefix?.length ?? 0)
      .toLowerCase()
      .replaceAll("_", "-");
  const found =
    typeof value === "string"
      ? values.find((v) => v.name === value || short(v.name) === value.replaceAll("_", "-"))
      : undefined;
  if (found === undefined) {
    return fail(`expected one of ${values.map((v) => short(v.name)).join(", ")}`);
  }
  return found.name;
}

function scalarJson(
  scalar: ScalarType,
  value: unknown,
  fail: (problem: string) => never,
): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
      if (typeof value !== "string") return fail("expected a string");
      return value;
    case ScalarType.BOOL:
      if (typeof value !== "boolean") return fail("expected true or false");
      return value;
    case ScalarType.UINT32:
    case ScalarType.UINT64:
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
        return fail("expected a non-negative whole number");
      }
      return value;
    default:
      return value as JsonValue;
  }
}
