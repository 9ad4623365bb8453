/** The generated procmon.v1 messages, enums and service descriptor. */
export * from "./gen/procmon/v1/procmon_pb.js";
