// gRPC server reflection (v1 and v1alpha) served from the descriptors buf
// compiled, so `grpcurl describe` shows the .proto comments and grpcurl 1.9
// accepts the map entry types; @grpc/reflection rebuilds descriptors with
// protobufjs and loses both.
import type { Message } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import * as v1 from "@procmon/api/gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "@procmon/api/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type GrpcServiceImplementation, grpcServiceDefinition } from "@procmon/api/grpc";
import { quote } from "../core/quote.js";
import { type DescriptorIndex, withDependencies } from "./descriptors.js";

/** Names of the reflection services this module registers, as list_services reports them. */
export const reflectionServiceNames: readonly string[] = [
  v1.ServerReflection.typeName,
  v1alpha.ServerReflection.typeName,
];

/**
 * Registers grpc.reflection.v1 and v1alpha ServerReflection on the server,
 * answering from the index and listing `services` plus reflection itself.
 * Throws if a listed service is not in the index, since reflection could then
 * list it but never describe it.
 */
export function addReflection(
  server: Pick<grpc.Server, "addService">,
  index: DescriptorIndex,
  services: readonly string[],
): void {
  const listed = [...new Set([...services, ...reflectionServiceNames])];
  const missing = listed.filter((name) => !index.services.includes(name));
  if (missing.length > 0) {
    throw new Error(`reflection: the descriptor set does not describe ${missing.join(", ")}`);
  }
  const answer = (request: ReflectionRequest): Answer => answerRequest(index, listed, request);

  const v1Handlers: GrpcServiceImplementation<typeof v1.ServerReflection> = {
    serverReflectionInfo: (call) => {
      serve(call, (request) =>
        create(v1.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request),
        }),
      );
    },
  };
  const v1alphaHandlers: GrpcServiceImplementation<typeof v1alpha.ServerReflection> = {
    serverReflectionInfo: (call) => {
      serve(call, (request) =>
        create(v1alpha.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request),
        }),
      );
    },
  };
  server.addService(grpcServiceDefinition(v1.ServerReflection), v1Handlers);
  server.addService(grpcServiceDefinition(v1alpha.ServerReflection), v1alphaHandlers);
}

/** What v1 and v1alpha requests have in common: the same fields under other type names. */
type ReflectionRequest = {
  readonly host: string;
  readonly messageRequest:
    | { case: "fileByFilename"; value: string }
    | { case: "fileContainingSymbol"; value: string }
    | {
        case: "fileContainingExtension";
        value: { containingType: string; extensionNumber: number };
      }
    | { case: "allExtensionNumbersOfType"; value: string }
    | { case: "listServices"; value: string }
    | { case: undefined; value?: undefined };
};

/** The message_response oneof, in the init form both versions' `create` accept. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

// grpc::StatusCode values, carried inside error_response.
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

function answerRequest(
  index: DescriptorIndex,
  services: readonly string[],
  request: ReflectionRequest,
): Answer {
  const { messageRequest: message } = request;
  switch (message.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return index.files.has(message.value)
        ? files(index, message.value)
        : notFound(`file not found: ${quote(message.value)}`);
    case "fileContainingSymbol": {
      const file = index.symbols.get(message.value);
      return file === undefined
        ? notFound(`symbol not found: ${quote(message.value)}`)
        : files(index, file);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = message.value;
      const file = index.extensions.get(containingType)?.get(extensionNumber);
      return file === undefined
        ? notFound(`extension not found: ${quote(containingType)} field ${extensionNumber}`)
        : files(index, file);
    }
    case "allExtensionNumbersOfType": {
      if (!index.messages.has(message.value)) {
        return notFound(`message type not found: ${quote(message.value)}`);
      }
      const numbers = [...(index.extensions.get(message.value)?.keys() ?? [])];
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: message.value, extensionNumber: numbers },
      };
    }
    case undefined:
      return {
        case: "errorResponse",
        value: { errorCode: INVALID_ARGUMENT, errorMessage: "empty reflection request" },
      };
  }
}

/**
 * The file with all its transitive imports, file first, as grpc-go answers:
 * a client then resolves every type from one response. Files already sent on
 * the stream are sent again: they are small, and a client that dropped them
 * still gets a complete answer.
 */
function files(index: DescriptorIndex, fileName: string): Answer {
  const fileDescriptorProto = withDependencies(index, fileName).flatMap((name) => {
    const bytes = index.files.get(name);
    return bytes === undefined ? [] : [bytes];
  });
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
}

function notFound(errorMessage: string): Answer {
  return { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage } };
}

/**
 * Answers each request in order on the same stream; a request the index
 * cannot answer gets an error_response, so the client may go on asking.
 */
function serve<Req extends Message, Res extends Message>(
  call: grpc.ServerDuplexStream<Req, Res>,
  respond: (request: Req) => Res,
): void {
  call.on("data", (request: Req) => {
    call.write(respond(request));
  });
  call.on("end", () => {
    call.end();
  });
}
