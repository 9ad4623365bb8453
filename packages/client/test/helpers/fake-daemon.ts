// A gRPC server speaking the ProcessMonitor service on a unix socket in a
// temp dir, answering with what a test gives it: for the SDK's and the CLI's
// requests, checked without a real daemon.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { ProcessMonitor } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { grpcServiceDefinition } from "@procmon/api/grpc";

/** A fake procmond: its socket, and how to end it (and remove its dir). */
export interface FakeDaemon {
  readonly socket: string;
  close(): Promise<void>;
}

/** Serves `implementation` (handlers by method name, as grpc-js takes them) on a fresh socket. */
export async function startFakeDaemon(
  prefix: string,
  implementation: Record<string, unknown>,
): Promise<FakeDaemon> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const socket = join(dir, "procmon.sock");
  const server = new Server();
  server.addService(
    grpcServiceDefinition(ProcessMonitor),
    implementation as unknown as UntypedServiceImplementation,
  );
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return {
    socket,
    async close() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
