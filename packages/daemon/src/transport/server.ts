// The gRPC server: ProcessMonitor, health and reflection on a unix socket
// created 0600 (and then given the configured mode and group).
import { chmodSync, chownSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { ProcessMonitor } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { grpcServiceDefinition } from "@procmon/api/grpc";
import { bindError, withPrivateUmask } from "../adapters/socket-file.js";
import { loadDescriptorSet } from "./descriptors.js";
import { createHealth, healthServiceName } from "./health.js";
import { rejectMalformedRequests, tolerantServices } from "./malformed-requests.js";
import { addReflection } from "./reflection.js";
import { processMonitorService, type ServiceDeps } from "./service.js";

/** Where and how the API is served. */
export interface ServeOptions {
  readonly socketPath: string;
  /** Mode of the socket file. */
  readonly socketMode: number;
  /** Group given the socket file; undefined to keep the daemon's. */
  readonly socketGroup: number | undefined;
  /** The largest request accepted, in bytes. */
  readonly maxMessageBytes: number;
}

/** The API being served. */
export interface ApiServer {
  /** Health turns NOT_SERVING, so that Watch clients learn first. */
  setNotServing(): void;
  /** Ends every call (forcefully after 2 s) and closes the socket. */
  close(): Promise<void>;
}

/**
 * Serves the API on `options.socketPath`, health SERVING once bound.
 * @throws ProcmonError when the socket cannot be bound (another procmond won it, say).
 */
export async function serveApi(options: ServeOptions, deps: ServiceDeps): Promise<ApiServer> {
  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    interceptors: [rejectMalformedRequests],
  });
  // Every service registered through it answers undecodable bytes with INVALID_ARGUMENT.
  const services = tolerantServices(server);
  services.addService(grpcServiceDefinition(ProcessMonitor), processMonitorService(deps));
  const health = createHealth();
  health.addToServer(services);
  addReflection(services, loadDescriptorSet(), [ProcessMonitor.typeName, healthServiceName]);
  const { socketPath } = options;
  try {
    await withPrivateUmask(
      () =>
        new Promise<number>((resolve, reject) =>
          server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err, port) =>
            err ? reject(bindError(socketPath, err)) : resolve(port),
          ),
        ),
    );
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  if (options.socketGroup !== undefined) chownSync(socketPath, -1, options.socketGroup);
  if (options.socketMode !== 0o600) chmodSync(socketPath, options.socketMode);
  health.setServing();
  return {
    setNotServing: () => health.setNotServing(),
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
