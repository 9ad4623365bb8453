// grpc.health.v1.Health over grpc-health-check. Its wire definition comes from
// its own proto-loader copy of health.proto, which is fine for calls; what
// reflection shows is the buf-compiled health.proto (see reflection.ts).
import type * as grpc from "@grpc/grpc-js";
import { Health as HealthService } from "@procmon/api/gen/grpc/health/v1/health_pb.js";
import { ProcessMonitor } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { HealthImplementation } from "grpc-health-check";

/** The health service's fully qualified name, for the reflection service list. */
export const healthServiceName = HealthService.typeName;

/** Health statuses for the whole server and for ProcessMonitor, switched together. */
export interface Health {
  /** Registers grpc.health.v1.Health (Check, Watch, List) on the server. */
  addToServer(server: Pick<grpc.Server, "addService">): void;
  /** Reports SERVING, e.g. once the daemon accepts calls. */
  setServing(): void;
  /** Reports NOT_SERVING, e.g. while shutting down, so Watch clients learn first. */
  setNotServing(): void;
}

/** Creates the health service; both statuses start NOT_SERVING until `setServing()`. */
export function createHealth(): Health {
  // The whole server (""), and ProcessMonitor by name.
  const services = ["", ProcessMonitor.typeName];
  const implementation = new HealthImplementation(
    Object.fromEntries(services.map((name) => [name, "NOT_SERVING"])),
  );
  const setAll = (status: "SERVING" | "NOT_SERVING"): void => {
    for (const name of services) implementation.setStatus(name, status);
  };
  return {
    addToServer: (server) => implementation.addToServer(server),
    setServing: () => setAll("SERVING"),
    setNotServing: () => setAll("NOT_SERVING"),
  };
}
