// @procmon/api: procmon's API contract, shared by the daemon and the SDK: the
// messages and services generated from proto/ (./gen/*), their grpc-js
// definitions (./grpc), the duration syntax (./duration), the socket path
// rules (./socket) and the trailing-metadata keys (./metadata).
export * from "./gen/procmon/v1/procmon_pb.js";
