// A socket procmonctl may not connect to is reported as a permission
// problem, not as a daemon that is not running.
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { permissionProblem } from "../../src/cli/session.js";
import { ProcmonError } from "../../src/errors.js";

const SOCKET = "/run/procmon/procmon.sock";

/** What grpc-js raises when the connect fails with `errno`, wrapped as the SDK does. */
function unreachable(errno: string): ProcmonError {
  const err = Object.assign(new Error("14 UNAVAILABLE"), {
    code: status.UNAVAILABLE,
    details: `No connection established. Last error: Error: connect ${errno} ${SOCKET}`,
    metadata: { getMap: () => ({}) },
  });
  return ProcmonError.from(err, SOCKET);
}

describe("permissionProblem", () => {
  it("says permission denied on the socket for EACCES", () => {
    const sdk = unreachable("EACCES");
    expect(sdk.message).toContain("is it running?");
    const denied = permissionProblem(sdk, SOCKET);
    expect(denied?.code).toBe(status.UNAVAILABLE);
    expect(denied?.message).toMatch(/^cannot connect to procmond: permission denied on \/run\//);
    expect(denied?.message).toContain(`permission denied on ${SOCKET}`);
    expect(denied?.message).not.toContain("is it running");
    expect(denied?.cause).toBe(sdk);
  });

  it("leaves ENOENT, ECONNREFUSED and other errors alone", () => {
    expect(permissionProblem(unreachable("ENOENT"), SOCKET)).toBeUndefined();
    expect(permissionProblem(unreachable("ECONNREFUSED"), SOCKET)).toBeUndefined();
    expect(permissionProblem(new ProcmonError(status.NOT_FOUND, "EACCES"), SOCKET)).toBeUndefined();
    expect(permissionProblem(new Error("connect EACCES"), SOCKET)).toBeUndefined();
  });
});
