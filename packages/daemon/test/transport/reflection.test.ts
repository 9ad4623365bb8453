import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as v1 from "@procmon/api/gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "@procmon/api/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcClientConstructor } from "@procmon/api/grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DescriptorIndex,
  loadDescriptorSet,
  withDependencies,
} from "../../src/transport/descriptors.js";
import { createHealth } from "../../src/transport/health.js";
import { addReflection } from "../../src/transport/reflection.js";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));
const imagePath = join(repoRoot, "packages/daemon/dist/procmon.binpb");
const bufBin = join(repoRoot, "node_modules/.bin/buf");
const WAIT_MS = 10_000;

const SERVICES = ["procmon.v1.ProcessMonitor", "grpc.health.v1.Health"];

let index: DescriptorIndex;
let dir: string;
let socket: string;
let server: grpc.Server;

beforeAll(async () => {
  // `npm run build` writes the image; a fresh checkout running only vitest has none yet.
  if (!existsSync(imagePath)) {
    await run(bufBin, ["build", "--output", imagePath], { cwd: repoRoot, timeout: WAIT_MS });
  }
  index = loadDescriptorSet(imagePath);

  dir = await mkdtemp(join(tmpdir(), "procmon-reflection-"));
  socket = join(dir, "t.sock");
  server = new grpc.Server();
  const health = createHealth();
  health.addToServer(server);
  addReflection(server, index, SERVICES);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    );
  });
  health.setServing();
});

afterAll(async () => {
  if (server !== undefined) {
    await withTimeout(
      new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
      WAIT_MS,
      "server shutdown",
    ).catch(() => server.forceShutdown());
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("descriptor index", () => {
  it("indexes messages, nested map entries, services, methods and fields", () => {
    expect(index.services).toEqual(
      expect.arrayContaining([
        ...SERVICES,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
    for (const symbol of [
      "procmon.v1.ProcessSpec",
      "procmon.v1.ProcessSpec.EnvEntry",
      "procmon.v1.ProcessSpec.env",
      "procmon.v1.State",
      "procmon.v1.ProcessMonitor.AddProcess",
    ]) {
      expect(index.symbols.get(symbol), symbol).toBe("procmon/v1/procmon.proto");
    }
    expect(index.symbols.get("google.protobuf.Duration")).toBe("google/protobuf/duration.proto");
  });

  it("lists a file before its transitive imports", () => {
    expect(withDependencies(index, "procmon/v1/procmon.proto")).toEqual([
      "procmon/v1/procmon.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
    ]);
  });

  it("keeps comments and drops buf's image metadata", () => {
    const file = fromBinary(
      FileDescriptorProtoSchema,
      index.files.get("procmon/v1/procmon.proto") ?? new Uint8Array(),
    );
    expect(file.sourceCodeInfo?.location.length).toBeGreaterThan(0);
    expect(file.$unknown ?? []).toEqual([]);
  });
});

describe("buf curl against the reflection and health services", () => {
  const curl = (...args: string[]) =>
    run(
      bufBin,
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--unix-socket", socket, ...args],
      { timeout: WAIT_MS },
    );

  it("lists the services over v1 and v1alpha reflection", async () => {
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const { stdout } = await curl(
        "--reflect-protocol",
        protocol,
        "--list-services",
        "http://localhost",
      );
      expect(stdout.trim().split("\n").sort(), protocol).toEqual(
        [
          ...SERVICES,
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ].sort(),
      );
    }
  });

  it("lists every method, describing each service from the served descriptors", async () => {
    const { stdout } = await curl("--list-methods", "http://localhost");
    expect(stdout).toContain("procmon.v1.ProcessMonitor/AddProcess");
    expect(stdout).toContain("procmon.v1.ProcessMonitor/WatchEvents");
  });

  it("calls Health/Check and gets SERVING", async () => {
    const { stdout } = await curl("-d", "{}", "http://localhost/grpc.health.v1.Health/Check");
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  it("reports ProcessMonitor's own health", async () => {
    const { stdout } = await curl(
      "-d",
      '{"service":"procmon.v1.ProcessMonitor"}',
      "http://localhost/grpc.health.v1.Health/Check",
    );
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });
});

describe("reflection over a grpc-js client", () => {
  it("v1: lists services and echoes host and request", async () => {
    await withStream(v1, async (ask) => {
      const response = await ask({
        host: "localhost",
        messageRequest: { case: "listServices", value: "" },
      });
      expect(response.validHost).toBe("localhost");
      expect(response.originalRequest?.messageRequest).toEqual({
        case: "listServices",
        value: "",
      });
      expect(serviceNames(response)).toEqual([
        ...SERVICES,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    });
  });

  it("v1alpha: lists services", async () => {
    await withStream(v1alpha, async (ask) => {
      const response = await ask({ messageRequest: { case: "listServices", value: "*" } });
      expect(response.messageResponse.case).toBe("listServicesResponse");
      if (response.messageResponse.case !== "listServicesResponse") return;
      expect(response.messageResponse.value.service.map((s) => s.name)).toContain(
        "procmon.v1.ProcessMonitor",
      );
    });
  });

  it("answers file_containing_symbol with the file, its imports and its comments", async () => {
    await withStream(v1, async (ask) => {
      const response = await ask({
        messageRequest: { case: "fileContainingSymbol", value: "procmon.v1.ProcessMonitor" },
      });
      const files = fileDescriptors(response);
      expect(files.map((f) => f.name)).toEqual([
        "procmon/v1/procmon.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
      ]);
      const procmon = files[0]!;
      const comments = procmon.sourceCodeInfo?.location.map((l) => l.leadingComments) ?? [];
      expect(comments.join("\n")).toContain("ProcessMonitor supervises named processes");
      const spec = procmon.messageType.find((m) => m.name === "ProcessSpec");
      expect(spec?.nestedType.map((m) => m.name)).toContain("EnvEntry");
    });
  });

  it("answers file_by_filename and a method symbol", async () => {
    await withStream(v1alpha, async (ask) => {
      const byName = await ask({
        messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
      });
      expect(fileDescriptors(byName).map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
      const byMethod = await ask({
        messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health.Check" },
      });
      expect(fileDescriptors(byMethod).map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
    });
  });

  it("answers unknown names with NOT_FOUND and keeps the stream open", async () => {
    await withStream(v1, async (ask) => {
      const unknown = await ask({
        messageRequest: { case: "fileContainingSymbol", value: "procmon.v1.Nope" },
      });
      expect(unknown.messageResponse).toEqual(
        expect.objectContaining({
          case: "errorResponse",
          value: expect.objectContaining({
            errorCode: grpc.status.NOT_FOUND,
            errorMessage: expect.stringContaining("procmon.v1.Nope"),
          }),
        }),
      );
      const missingFile = await ask({
        messageRequest: { case: "fileByFilename", value: "x.proto" },
      });
      expect(missingFile.messageResponse.case).toBe("errorResponse");
      const extension = await ask({
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "procmon.v1.ProcessSpec", extensionNumber: 1000 },
        },
      });
      expect(extension.messageResponse.case).toBe("errorResponse");

      const next = await ask({ messageRequest: { case: "listServices", value: "" } });
      expect(next.messageResponse.case).toBe("listServicesResponse");
    });
  });

  it("answers all_extension_numbers_of_type: none for a message, NOT_FOUND otherwise", async () => {
    await withStream(v1, async (ask) => {
      const known = await ask({
        messageRequest: { case: "allExtensionNumbersOfType", value: "procmon.v1.ProcessSpec" },
      });
      expect(known.messageResponse).toEqual(
        expect.objectContaining({
          case: "allExtensionNumbersResponse",
          value: expect.objectContaining({
            baseTypeName: "procmon.v1.ProcessSpec",
            extensionNumber: [],
          }),
        }),
      );
      const unknown = await ask({
        messageRequest: { case: "allExtensionNumbersOfType", value: "procmon.v1.Nope" },
      });
      expect(unknown.messageResponse.case).toBe("errorResponse");
    });
  });
});

type ReflectionModule = typeof v1 | typeof v1alpha;
type Request<M extends ReflectionModule> = MessageInitShape<M["ServerReflectionRequestSchema"]>;
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

/**
 * Opens one reflection stream and passes a function that sends a request and
 * waits for its answer, so a test can ask several things on the same stream.
 */
async function withStream<M extends ReflectionModule>(
  version: M,
  body: (ask: (request: Request<M>) => Promise<Response>) => Promise<void>,
): Promise<void> {
  const Client = grpcClientConstructor(version.ServerReflection);
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const stream = client.serverReflectionInfo({ deadline: Date.now() + WAIT_MS });
  const received: Response[] = [];
  const waiters: Array<{ resolve: (r: Response) => void; reject: (e: Error) => void }> = [];
  let failure: Error | undefined;
  stream.on("data", (response: Response) => {
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(response);
    else received.push(response);
  });
  stream.on("error", (error: Error) => {
    failure = error;
    for (const waiter of waiters.splice(0)) waiter.reject(error);
  });
  const ended = new Promise<void>((resolve) => stream.on("status", () => resolve()));
  const ask = (request: Request<M>): Promise<Response> => {
    stream.write(create(version.ServerReflectionRequestSchema, request));
    const ready = received.shift();
    if (ready) return Promise.resolve(ready);
    if (failure) return Promise.reject(failure);
    return withTimeout(
      new Promise<Response>((resolve, reject) => waiters.push({ resolve, reject })),
      WAIT_MS,
      "reflection answer",
    );
  };
  try {
    await body(ask);
    stream.end();
    await withTimeout(ended, WAIT_MS, "stream end");
    expect(failure).toBeUndefined();
  } finally {
    stream.cancel();
    client.close();
  }
}

function serviceNames(response: Response): string[] {
  if (response.messageResponse.case !== "listServicesResponse") {
    throw new Error(`expected list_services_response, got ${response.messageResponse.case}`);
  }
  return response.messageResponse.value.service.map((s) => s.name);
}

function fileDescriptors(response: Response) {
  if (response.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected file_descriptor_response, got ${response.messageResponse.case}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
