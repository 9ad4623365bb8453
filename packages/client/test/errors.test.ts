// ProcmonError.from on the UNAVAILABLE statuses grpc-js raises itself: the
// `details` here are what grpc-js 1.14 said in each case when reproduced
// (test/sdk-connection-errors.test.ts provokes them for real).
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { Code, ProcmonError } from "../src/errors.js";

const SOCKET = "/run/procmon/procmon.sock";

/** An error shaped as grpc-js's ServiceError. */
function serviceError(code: Code, details: string): Error {
  return Object.assign(new Error(`${code} ${Code[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });
}

const unavailable = (details: string) =>
  ProcmonError.from(serviceError(Code.UNAVAILABLE, details), SOCKET);

describe("ProcmonError.from an UNAVAILABLE of grpc-js's own", () => {
  it.each(["ENOENT", "ECONNREFUSED", "EACCES"])(
    "nothing listening (%s): is it running?",
    (errno) => {
      const err = unavailable(
        `No connection established. Last error: Error: connect ${errno} ${SOCKET}. Resolution note: `,
      );
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toBe(`cannot connect to procmond at ${SOCKET}: ${errno}, is it running?`);
    },
  );

  it.each([
    "Failed to connect (2030-01-01T00:00:00.000Z)",
    "Error: Socket closed",
    "Connection closed before starting HTTP/2 handshake",
    "read ECONNRESET (2030-01-01T00:00:00.000Z)",
    "write EPIPE (2030-01-01T00:00:00.000Z)",
  ])("accepted, then closed before the handshake (%s): says so", (last) => {
    const err = unavailable(`No connection established. Last error: ${last}. Resolution note: `);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe(
      `procmond at ${SOCKET} closed the connection before answering (it may be out of file descriptors: see its log)`,
    );
  });

  it.each(["Connection dropped", "read ECONNRESET"])(
    "connected, then lost during the call (%s): says so",
    (details) => {
      expect(unavailable(details).message).toBe(
        `procmond at ${SOCKET} dropped the connection during the call (it may have exited or crashed: see its log)`,
      );
    },
  );

  it("anything else: the old sentence, grpc-js's words in the cause", () => {
    const cause = serviceError(Code.UNAVAILABLE, "No connection established");
    const err = ProcmonError.from(cause, SOCKET);
    expect(err.message).toBe(`cannot connect to procmond at ${SOCKET}: is it running?`);
    expect(err.cause).toBe(cause);
  });

  it("an errno in the socket's path is not taken for the reason", () => {
    const socket = "/tmp/ECONNREFUSED/procmon.sock";
    const err = ProcmonError.from(
      serviceError(
        Code.UNAVAILABLE,
        `No connection established. Last error: Failed to connect (2030-01-01T00:00:00.000Z). Resolution note: ${socket}`,
      ),
      socket,
    );
    expect(err.message).toMatch(/closed the connection before answering/);
  });

  it("the daemon's own UNAVAILABLE keeps the daemon's sentence", () => {
    const err = unavailable("procmond is shutting down");
    expect(err.message).toBe("procmond is shutting down");
  });
});
