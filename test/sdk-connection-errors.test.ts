// What the client says when it cannot get an answer: nothing listens on the
// socket ("is it running?"), something accepted the connection and closed it
// before the HTTP/2 handshake (a daemon out of file descriptors), or the
// connection went away during a call. Each case is provoked for real.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { createServer as createHttp2Server } from "node:http2";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { createClient, isUnavailable, type ProcmonClient } from "@procmon/client";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { killAllCtl, runCtl } from "./helpers/cli.js";
import {
  childEnv,
  cleanupAll,
  makeTempDir,
  PROCMOND_BIN,
  startProcmond,
  waitFor,
} from "./helpers/daemon.js";
import { rejection } from "./helpers/rejection.js";

const notRunning = (socket: string, errno: string) =>
  `cannot connect to procmond at ${socket}: ${errno}, is it running?`;
const closedBeforeAnswer = (socket: string) =>
  `procmond at ${socket} closed the connection before answering (it may be out of file descriptors: see its log)`;
const droppedDuringCall = (socket: string) =>
  `procmond at ${socket} dropped the connection during the call (it may have exited or crashed: see its log)`;

const clients = new Set<ProcmonClient>();
const servers = new Set<Server | ReturnType<typeof createHttp2Server>>();
const children = new Set<ChildProcess>();

afterEach(async () => {
  killAllCtl();
  for (const c of clients) c.close();
  clients.clear();
  await Promise.all([...servers].map((s) => new Promise((resolve) => s.close(resolve))));
  servers.clear();
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

afterAll(cleanupAll);

/** A client of its own, closed after the test. */
function client(socket: string): ProcmonClient {
  const c = createClient({ socket });
  clients.add(c);
  return c;
}

/** Resolves once `server` listens on a fresh socket; returns the socket. */
async function listen(server: Server | ReturnType<typeof createHttp2Server>): Promise<string> {
  servers.add(server);
  const socket = join(makeTempDir("procmon-conn-"), "procmon.sock");
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return socket;
}

/** The first error of a WatchEvents stream. */
async function streamError(c: ProcmonClient): Promise<unknown> {
  for await (const _ of c.watchEvents()) {
    // Nothing is expected before the error.
  }
  throw new Error("the stream ended without an error");
}

describe("nothing listens on the socket: is it running?", () => {
  it("no socket file: ENOENT", async () => {
    const socket = join(makeTempDir("procmon-conn-"), "procmon.sock");
    const err = await rejection(client(socket).listProcesses());
    expect(isUnavailable(err)).toBe(true);
    expect(err.message).toBe(notRunning(socket, "ENOENT"));
  });

  it("a socket file nobody listens on (a daemon killed with SIGKILL): ECONNREFUSED", async () => {
    const d = await startProcmond();
    expect(await d.stop("SIGKILL")).toBeNull();
    const err = await rejection(client(d.socket).listProcesses());
    expect(isUnavailable(err)).toBe(true);
    expect(err.message).toBe(notRunning(d.socket, "ECONNREFUSED"));
  });
});

describe("the connection is accepted, then closed before an answer: says so", () => {
  it("a server that closes every connection at once", async () => {
    const socket = await listen(createServer((connection) => connection.destroy()));
    const c = client(socket);
    for (const call of [c.listProcesses(), streamError(c)]) {
      const err = await rejection(call);
      expect(isUnavailable(err)).toBe(true);
      expect(err.message).toBe(closedBeforeAnswer(socket));
    }
    const run = await runCtl(["--socket", socket, "ls"]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 1,
      stderr: `procmonctl: ${closedBeforeAnswer(socket)}\n`,
    });
  });

  it("procmond out of file descriptors", async () => {
    // A real daemon with few descriptors, and raw connections that hold
    // them all: libuv then accepts each new connection and closes it at once.
    const dir = makeTempDir("procmon-emfile-");
    const socket = join(dir, "procmon.sock");
    const limit = 128;
    const daemon = spawn(
      "bash",
      [
        "-c",
        `ulimit -n ${limit} && exec "$0" "$@"`,
        process.execPath,
        PROCMOND_BIN,
        ...["--socket", socket, "--state-file", join(dir, "state.json")],
      ],
      { env: childEnv({}), stdio: ["ignore", "pipe", "pipe"] },
    );
    children.add(daemon);
    let log = "";
    daemon.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      log += chunk;
    });
    daemon.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      log += chunk;
    });
    await waitFor(() => log.includes("procmond listening"), 10_000);
    const openFiles = () => readdirSync(`/proc/${daemon.pid}/fd`).length;

    const held: Socket[] = [];
    try {
      // Until the daemon closes one at once: it has no descriptor left.
      for (let full = false; !full; ) {
        expect(held.length, "connections held").toBeLessThan(limit);
        const before = openFiles();
        const raw = connect(socket);
        let closed = false;
        raw.on("error", () => {});
        raw.on("close", () => {
          closed = true;
        });
        held.push(raw);
        // Accepted and kept (it holds a descriptor of the daemon's), or closed.
        await waitFor(() => closed || openFiles() > before, 5_000);
        full = closed;
      }
      const err = await rejection(client(socket).listProcesses({ timeoutMs: 5_000 }));
      expect(isUnavailable(err)).toBe(true);
      expect(err.message).toBe(closedBeforeAnswer(socket));
      const run = await runCtl(["--socket", socket, "ls"]);
      expect(run.stderr).toBe(`procmonctl: ${closedBeforeAnswer(socket)}\n`);
    } finally {
      for (const raw of held) raw.destroy();
    }
    // With its descriptors back, it answers again.
    const again = client(socket);
    await waitFor(() => again.listProcesses({ timeoutMs: 1_000 }), 10_000, 100);
    daemon.kill("SIGTERM");
    await waitFor(() => daemon.exitCode !== null, 10_000);
    expect(daemon.exitCode).toBe(0);
  }, 30_000);
});

describe("the connection goes away during the call: says so", () => {
  it("an HTTP/2 server that drops the connection once a call arrives", async () => {
    const server = createHttp2Server();
    const connections = new Set<Socket>();
    server.on("connection", (connection: Socket) => connections.add(connection));
    server.on("stream", () => {
      for (const connection of connections) connection.destroy();
    });
    const socket = await listen(server);
    const c = client(socket);
    for (const call of [c.listProcesses(), streamError(c)]) {
      const err = await rejection(call);
      expect(isUnavailable(err)).toBe(true);
      expect(err.message).toBe(droppedDuringCall(socket));
    }
  });

  it("procmond killed while a stream is open", async () => {
    const d = await startProcmond();
    const c = client(d.socket);
    await c.listProcesses();
    // The stream goes out on the connection the first call opened.
    const broken = rejection(streamError(c));
    await c.listProcesses();
    expect(await d.stop("SIGKILL")).toBeNull();
    const err = await broken;
    expect(isUnavailable(err)).toBe(true);
    expect(err.message).toBe(droppedDuringCall(d.socket));
  });
});
