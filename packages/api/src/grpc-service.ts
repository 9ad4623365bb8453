// grpc-js wants a service definition (paths, streaming flags, codecs); the
// protobuf-es descriptor already has all of it, so both the daemon and the
// client derive the definition here instead of loading .proto files at runtime.
import type {
  DescMessage,
  DescMethod,
  DescService,
  Message,
  MessageShape,
} from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/** The part of a method descriptor that decides its types: kind, input, output. */
type MethodShape = Pick<DescMethod, "methodKind" | "input" | "output">;

/** Request message type of a method. */
type In<M extends MethodShape> = MessageShape<M["input"]>;

/** Response message type of a method. */
type Out<M extends MethodShape> = MessageShape<M["output"]>;

/** Methods of a service by local name; typed per method for generated services. */
type Methods<S extends DescService> = S["method"];

/** A grpc-js method definition whose codecs are protobuf-es messages of the method's types. */
export type GrpcMethodDefinition<M extends MethodShape> = grpc.MethodDefinition<In<M>, Out<M>>;

/** A grpc-js service definition keyed by each method's `localName` (e.g. `addProcess`). */
export type GrpcServiceDefinition<S extends DescService> = {
  readonly [K in keyof Methods<S>]: GrpcMethodDefinition<Methods<S>[K]>;
};

/** The grpc-js server handler type matching a method's kind and message types. */
export type GrpcMethodHandler<M extends MethodShape> = M["methodKind"] extends "unary"
  ? grpc.handleUnaryCall<In<M>, Out<M>>
  : M["methodKind"] extends "server_streaming"
    ? grpc.handleServerStreamingCall<In<M>, Out<M>>
    : M["methodKind"] extends "client_streaming"
      ? grpc.handleClientStreamingCall<In<M>, Out<M>>
      : grpc.handleBidiStreamingCall<In<M>, Out<M>>;

/** Handlers for every method of a service, keyed by `localName`, for `server.addService`. */
export type GrpcServiceImplementation<S extends DescService> = {
  [K in keyof Methods<S>]: GrpcMethodHandler<Methods<S>[K]>;
};

/** A grpc-js client call for a unary method, with the overloads grpc-js accepts. */
export interface GrpcUnaryClientMethod<I, O> {
  (
    request: I,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientUnaryCall;
  (request: I, metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, options: grpc.CallOptions, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
}

/** A grpc-js client call for a server-streaming method. */
export interface GrpcServerStreamingClientMethod<I, O> {
  (request: I, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<O>;
  (request: I, options?: grpc.CallOptions): grpc.ClientReadableStream<O>;
}

/** A grpc-js client call for a client-streaming method. */
export interface GrpcClientStreamingClientMethod<I, O> {
  (
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<O>,
  ): grpc.ClientWritableStream<I>;
  (metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (options: grpc.CallOptions, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
}

/** A grpc-js client call for a bidi-streaming method. */
export interface GrpcBidiStreamingClientMethod<I, O> {
  (metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<I, O>;
  (options?: grpc.CallOptions): grpc.ClientDuplexStream<I, O>;
}

/** The grpc-js client call type matching a method's kind and message types. */
export type GrpcClientMethod<M extends MethodShape> = M["methodKind"] extends "unary"
  ? GrpcUnaryClientMethod<In<M>, Out<M>>
  : M["methodKind"] extends "server_streaming"
    ? GrpcServerStreamingClientMethod<In<M>, Out<M>>
    : M["methodKind"] extends "client_streaming"
      ? GrpcClientStreamingClientMethod<In<M>, Out<M>>
      : GrpcBidiStreamingClientMethod<In<M>, Out<M>>;

/** A grpc-js client with one method per RPC, keyed by `localName`. */
export type GrpcClient<S extends DescService> = grpc.Client & {
  readonly [K in keyof Methods<S>]: GrpcClientMethod<Methods<S>[K]>;
};

/** The constructor `grpcClientConstructor` returns: `new Ctor(address, credentials, options?)`. */
export interface GrpcClientConstructor<S extends DescService> {
  new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: Partial<grpc.ChannelOptions>,
  ): GrpcClient<S>;
  readonly service: GrpcServiceDefinition<S>;
  readonly serviceName: string;
}

/** Builds the grpc-js service definition of a protobuf-es service, its codecs protobuf-es binary. */
export function grpcServiceDefinition<S extends DescService>(service: S): GrpcServiceDefinition<S> {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    definition[method.localName] = grpcMethodDefinition(method);
  }
  // The loop visits exactly the methods `service.method` holds, by the same keys.
  return definition as unknown as GrpcServiceDefinition<S>;
}

/** Makes a grpc-js client class for a protobuf-es service. */
export function grpcClientConstructor<S extends DescService>(service: S): GrpcClientConstructor<S> {
  const ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.typeName);
  // grpc-js builds the methods at runtime from the definition, so its own
  // constructor type cannot know them; GrpcClient<S> states what it built.
  return ctor as unknown as GrpcClientConstructor<S>;
}

/** The grpc-js definition of one method: its path, streaming flags and protobuf-es codecs. */
export function grpcMethodDefinition<M extends DescMethod>(method: M): GrpcMethodDefinition<M> {
  const streamsRequests =
    method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  const streamsResponses =
    method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
  const definition: grpc.MethodDefinition<Message, Message> = {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: streamsRequests,
    responseStream: streamsResponses,
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
  };
  // The codecs are built from the method's own input and output schemas.
  return definition as unknown as GrpcMethodDefinition<M>;
}

function serializer(schema: DescMessage): grpc.serialize<Message> {
  return (message: Message | Uint8Array) => {
    // A message encoded once for many streams (an event fanned out to every
    // subscriber) is written as its bytes and passes through.
    // toBinary returns a fresh array, so wrapping it is safe and saves a copy.
    const bytes = message instanceof Uint8Array ? message : toBinary(schema, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage): grpc.deserialize<Message> {
  return (bytes) => fromBinary(schema, bytes);
}
