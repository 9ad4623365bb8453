/** The generated procmon.v1 messages, enums and service descriptor. */
export * from "@procmon/api";
