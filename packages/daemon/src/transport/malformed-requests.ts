// Request bytes that do not decode are the client's mistake: INVALID_ARGUMENT
// with a sentence, not grpc-js's INTERNAL "Error deserializing request".
// grpc-js turns any throw of a request deserializer into INTERNAL, so each
// service's deserializers return a marker instead of throwing, and a server
// interceptor answers the marker before any handler sees it. This covers every
// call kind (unary, server stream, bidi) and every service, ours or a library's.
import {
  Metadata,
  type Server,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  type ServiceDefinition,
  status,
} from "@grpc/grpc-js";

const MALFORMED = Symbol("malformed request");

/** What a deserializer returns for bytes it cannot decode. */
interface Malformed {
  readonly [MALFORMED]: string;
}

function isMalformed(message: unknown): message is Malformed {
  return typeof message === "object" && message !== null && MALFORMED in message;
}

/** The definition with request deserializers that return a marker instead of throwing. */
export function tolerantDefinition<D extends ServiceDefinition>(definition: D): D {
  const methods = Object.entries(definition).map(([name, method]) => {
    const decode = method.requestDeserialize;
    const tolerant = (bytes: Buffer): unknown => {
      try {
        return decode(bytes);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        return { [MALFORMED]: why } satisfies Malformed;
      }
    };
    return [name, { ...method, requestDeserialize: tolerant }];
  });
  return Object.fromEntries(methods) as D;
}

/**
 * A server whose every service gets {@link tolerantDefinition}: pass it to
 * whatever registers services (ours and grpc-health-check's `addToServer`).
 */
export function tolerantServices(server: Server): Pick<Server, "addService"> {
  return {
    addService: (definition, implementation) =>
      server.addService(tolerantDefinition(definition), implementation),
  };
}

/** The interceptor that answers a marked request with INVALID_ARGUMENT. Install it on the Server. */
export const rejectMalformedRequests: ServerInterceptor = (
  method: ServerMethodDefinition<unknown, unknown>,
  next: ServerInterceptingCallInterface,
) => {
  const call: ServerInterceptingCall = new ServerInterceptingCall(next, {
    start: (startNext) =>
      startNext({
        onReceiveMessage: (message: unknown, deliver: (message: unknown) => void) => {
          if (!isMalformed(message)) {
            deliver(message);
            return;
          }
          call.sendStatus({
            code: status.INVALID_ARGUMENT,
            details: `the request to ${method.path} is not a valid protobuf message of its type (${message[MALFORMED]}): nothing was done`,
            metadata: new Metadata(),
          });
        },
      }),
  });
  return call;
};
