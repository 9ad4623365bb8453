import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { bindError, prepareSocketPath } from "../../src/adapters/socket-file.js";
import { ProcmonError } from "../../src/core/errors.js";

const dirs: string[] = [];
const servers: NetServer[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "procmon-sf-"));
  dirs.push(dir);
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<ProcmonError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ProcmonError) return err;
    throw err;
  }
  throw new Error("it was accepted");
}

describe("prepareSocketPath", () => {
  it("refuses a path the kernel would cut short, creating nothing", async () => {
    const dir = tempDir();
    const err = await refusal(prepareSocketPath(join(dir, "sub", "x".repeat(120))));
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toMatch(/bytes long, over the 107/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a directory others can write, naming it", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o777);
    const err = await refusal(prepareSocketPath(join(dir, "procmon.sock")));
    expect(err.code).toBe("failed_precondition");
    expect(err.message).toContain(`refusing socket directory ${dir}`);
  });

  it("creates missing directories 0700", async () => {
    const dir = tempDir();
    await prepareSocketPath(join(dir, "a", "b", "procmon.sock"));
    expect(statSync(join(dir, "a")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "a", "b")).mode & 0o777).toBe(0o700);
  });

  it("refuses a socket someone answers on", async () => {
    const socket = join(tempDir(), "procmon.sock");
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    const err = await refusal(prepareSocketPath(socket));
    expect(err.message).toBe(`another procmond is already listening on ${socket}`);
  });
});

describe("bindError", () => {
  it("words grpc-js's EADDRINUSE as another procmond listening", async () => {
    const socket = join(tempDir(), "procmon.sock");
    const taken = createServer();
    servers.push(taken);
    await new Promise<void>((resolve) => taken.listen(socket, resolve));
    const server = new Server();
    const err = await new Promise<Error | null>((resolve) =>
      server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) => resolve(e)),
    );
    server.forceShutdown();
    expect(err?.message).toMatch(/No address added/);
    expect(bindError(socket, err).message).toBe(
      `another procmond is already listening on ${socket}`,
    );
  });

  it("names the errno of any other failure", () => {
    const err = bindError("/x.sock", new Error("No address added out of total 1 resolved: EACCES"));
    expect(err.message).toBe("cannot listen on /x.sock: EACCES");
  });
});
