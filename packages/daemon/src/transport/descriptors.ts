// Server reflection must hand out the descriptors exactly as buf compiled them:
// decoders that rebuild descriptors (protobufjs) drop comments and rename map
// entries, which grpcurl then rejects. So this keeps each file's own bytes and
// only reads them to build the lookup tables.
import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { DescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { descriptorSetUrl } from "@procmon/api/descriptor-set";

/** Lookup tables over a compiled descriptor set, for answering reflection requests. */
export interface DescriptorIndex {
  /** Serialized FileDescriptorProto by file name, e.g. "procmon/v1/procmon.proto". */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** File name by fully qualified symbol (no leading dot): types, services, methods, fields, enum values. */
  readonly symbols: ReadonlyMap<string, string>;
  /** Fully qualified names of message types, the only symbols extensions can extend. */
  readonly messages: ReadonlySet<string>;
  /** Direct dependencies of each file, in import order. */
  readonly dependencies: ReadonlyMap<string, readonly string[]>;
  /** File name of each extension, by extended message (no leading dot) then field number. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, string>>;
  /** Fully qualified names of every service in the set, in file order. */
  readonly services: readonly string[];
}

/** The buf image `npm run build` writes into @procmon/api. */
export const defaultDescriptorSetUrl: URL = descriptorSetUrl;

/** Reads a FileDescriptorSet (or buf image) from disk and indexes it. */
export function loadDescriptorSet(path: string | URL = defaultDescriptorSetUrl): DescriptorIndex {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    // Running from source without a build is the usual way to get here.
    throw new Error(`cannot read the descriptor set ${String(path)}: run \`npm run build\``, {
      cause,
    });
  }
  return indexDescriptorSet(bytes);
}

/** Indexes the wire encoding of a FileDescriptorSet (or buf image). */
export function indexDescriptorSet(set: Uint8Array): DescriptorIndex {
  const files = new Map<string, Uint8Array>();
  const symbols = new Map<string, string>();
  const messages = new Set<string>();
  const dependencies = new Map<string, readonly string[]>();
  const extensions = new Map<string, Map<number, string>>();
  const services: string[] = [];

  const addSymbol = (name: string, file: string): void => {
    const other = symbols.get(name);
    if (other !== undefined) {
      throw new Error(`descriptor set defines ${name} twice: in ${other} and in ${file}`);
    }
    symbols.set(name, file);
  };

  for (const bytes of fileDescriptorBytes(set)) {
    const file = fromBinary(FileDescriptorProtoSchema, bytes);
    if (files.has(file.name)) {
      throw new Error(`descriptor set contains ${file.name} twice`);
    }
    files.set(file.name, bytes);
    dependencies.set(file.name, file.dependency);
    for (const [name, kind] of fileSymbols(file)) {
      addSymbol(name, file.name);
      if (kind === "message") messages.add(name);
      if (kind === "service") services.push(name);
    }
    for (const { extendee, number } of fileExtensions(file)) {
      const byNumber = extensions.get(extendee) ?? new Map<number, string>();
      byNumber.set(number, file.name);
      extensions.set(extendee, byNumber);
    }
  }
  return { files, symbols, messages, dependencies, extensions, services };
}

/** The file and every file it imports, directly or not, the file itself first. */
export function withDependencies(index: DescriptorIndex, fileName: string): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const dependency of index.dependencies.get(name) ?? []) visit(dependency);
  };
  visit(fileName);
  return [...seen];
}

/** buf's ImageFileExtension: build metadata (is_import, module), not part of descriptor.proto. */
const bufImageExtensionField = 8042;

/** FileDescriptorSet.file */
const setFileField = 1;

/**
 * Slices each FileDescriptorProto out of the set's encoding rather than
 * decoding and re-encoding it, so nothing the compiler wrote can be lost.
 */
function fileDescriptorBytes(set: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const reader = new BinaryReader(set);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === setFileField && wireType === WireType.LengthDelimited) {
      out.push(withoutField(reader.bytes(), bufImageExtensionField));
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return out;
}

function withoutField(message: Uint8Array, dropped: number): Uint8Array {
  const kept: Uint8Array[] = [];
  let found = false;
  const reader = new BinaryReader(message);
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [fieldNo, wireType] = reader.tag();
    reader.skip(wireType, fieldNo);
    if (fieldNo === dropped) found = true;
    else kept.push(message.subarray(start, reader.pos));
  }
  return found ? concat(kept) : message;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

type SymbolKind = "message" | "enum" | "service" | "other";

function* fileSymbols(file: FileDescriptorProto): Generator<[string, SymbolKind]> {
  const scope = file.package;
  for (const message of file.messageType) yield* messageSymbols(message, scope);
  for (const enumType of file.enumType) {
    yield [qualify(scope, enumType.name), "enum"];
    // Enum values live in the enum's enclosing scope (C++ scoping rules).
    for (const value of enumType.value) yield [qualify(scope, value.name), "other"];
  }
  for (const extension of file.extension) yield [qualify(scope, extension.name), "other"];
  for (const service of file.service) {
    const serviceName = qualify(scope, service.name);
    yield [serviceName, "service"];
    for (const method of service.method) yield [qualify(serviceName, method.name), "other"];
  }
}

function* messageSymbols(message: DescriptorProto, scope: string): Generator<[string, SymbolKind]> {
  const name = qualify(scope, message.name);
  yield [name, "message"];
  for (const field of message.field) yield [qualify(name, field.name), "other"];
  for (const oneof of message.oneofDecl) yield [qualify(name, oneof.name), "other"];
  for (const extension of message.extension) yield [qualify(name, extension.name), "other"];
  for (const nested of message.nestedType) yield* messageSymbols(nested, name);
  for (const enumType of message.enumType) {
    yield [qualify(name, enumType.name), "enum"];
    for (const value of enumType.value) yield [qualify(name, value.name), "other"];
  }
}

function* fileExtensions(
  file: FileDescriptorProto,
): Generator<{ extendee: string; number: number }> {
  const fromMessage = function* (
    message: DescriptorProto,
  ): Generator<{ extendee: string; number: number }> {
    for (const extension of message.extension) {
      yield { extendee: stripDot(extension.extendee), number: extension.number };
    }
    for (const nested of message.nestedType) yield* fromMessage(nested);
  };
  for (const extension of file.extension) {
    yield { extendee: stripDot(extension.extendee), number: extension.number };
  }
  for (const message of file.messageType) yield* fromMessage(message);
}

function qualify(scope: string, name: string): string {
  return scope === "" ? name : `${scope}.${name}`;
}

// Compilers write type references fully qualified with a leading dot; reflection
// requests name them without it.
function stripDot(typeName: string): string {
  return typeName.startsWith(".") ? typeName.slice(1) : typeName;
}
