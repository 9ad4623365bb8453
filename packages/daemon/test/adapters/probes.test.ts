// Readiness checks against real servers on 127.0.0.1 and real commands
// started through the NodeSpawner; a fake spawner covers the one that
// answers later. Everything a test starts is ended by it.
import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NodeSpawner } from "../../src/adapters/node-spawner.js";
import { ReadinessProber } from "../../src/adapters/probes.js";
import type { ProbeResult } from "../../src/core/probes.js";
import {
  type Child,
  type ChildHandlers,
  SpawnError,
  type Spawner,
  type SpawnRequest,
} from "../../src/core/spawner.js";
import {
  DEFAULT_END_POLICY,
  DEFAULT_POLICY,
  DEFAULT_READINESS,
  type ProbeCheck,
  type ProcessSpec,
  type ReadinessProbe,
} from "../../src/core/types.js";

const WAIT_MS = 3_000;

let dir: string;
/** Servers and sockets a test opened, closed after it. */
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), "procmon-probes-")));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function spec(extra: Partial<ProcessSpec> = {}): ProcessSpec {
  return {
    name: "web",
    args: ["true"],
    env: {},
    clearEnv: false,
    cwd: "",
    ...DEFAULT_POLICY,
    ...DEFAULT_END_POLICY,
    ...DEFAULT_READINESS,
    ...extra,
  };
}

function probe(check: ProbeCheck, timeoutMs = 1_000): ReadinessProbe {
  return { check, periodMs: 1_000, timeoutMs, initialDelayMs: 0 };
}

/** Runs one check, timing it, and fails the test if it does not settle within its timeout and a margin. */
async function run(
  prober: ReadinessProber,
  check: ProbeCheck,
  timeoutMs = 1_000,
  processSpec = spec(),
): Promise<{ result: ProbeResult; elapsedMs: number }> {
  const started = performance.now();
  const result = await within(prober.check(processSpec, probe(check, timeoutMs)), "the check");
  return { result, elapsedMs: performance.now() - started };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on: bound once, then closed. */
async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An HTTP server whose `handler` answers; its sockets are destroyed at the end. */
async function httpServer(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
  });
  const port = await listen(server);
  return `http://127.0.0.1:${port}`;
}

/** True once `pid` is dead or a zombie. */
function isGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
  } catch {
    return true;
  }
}

async function waitGone(pid: number, ms = WAIT_MS): Promise<void> {
  const deadline = performance.now() + ms;
  while (!isGone(pid)) {
    if (performance.now() > deadline) throw new Error(`pid ${pid} still alive after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A spawner that records the children the real one started, to check on them and end them. */
function recordingSpawner(): Spawner & { readonly pids: number[] } {
  const inner = new NodeSpawner();
  const pids: number[] = [];
  cleanups.push(() => {
    for (const pid of pids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
  return {
    pids,
    spawn(request, handlers) {
      const child = inner.spawn(request, handlers);
      pids.push(child.pid);
      return child;
    },
  };
}

describe("tcp", () => {
  it("passes once a connection is made, and closes it", async () => {
    const server = net.createServer();
    const closed = new Promise<void>((resolve) => {
      server.on("connection", (socket) => {
        socket.on("close", () => resolve());
        socket.resume();
      });
    });
    const port = await listen(server);
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "tcp", host: "127.0.0.1", port });

    expect(result).toEqual({ ok: true });
    await within(closed, "the probe's connection to close");
  });

  it("fails on a refused port, naming the address and the error", async () => {
    const port = await refusedPort();
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "tcp", host: "127.0.0.1", port });

    expect(result).toEqual({ ok: false, error: `connect 127.0.0.1:${port}: ECONNREFUSED` });
  });
});

describe("http", () => {
  it("passes on a 200, and reads its body", async () => {
    const url = await httpServer((_, res) => res.end("x".repeat(100_000)));
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "http", url: `${url}/health` });

    expect(result).toEqual({ ok: true });
  });

  it("fails on a 503, naming the request and the status", async () => {
    const url = await httpServer((_, res) => {
      res.statusCode = 503;
      res.end("down");
    });
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "http", url: `${url}/health` });

    expect(result).toEqual({ ok: false, error: `GET ${url}/health: 503` });
  });

  it("fails at the timeout on a server that never answers, and closes the connection", async () => {
    let arrived!: () => void;
    let socketClosed!: () => void;
    const connected = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const closed = new Promise<void>((resolve) => {
      socketClosed = resolve;
    });
    // Never answers: the request is held until the client gives up.
    const url = await httpServer((req) => {
      req.socket.on("close", () => socketClosed());
      arrived();
    });
    const prober = new ReadinessProber(recordingSpawner());

    const { result, elapsedMs } = await run(prober, { kind: "http", url }, 200);

    expect(result).toEqual({ ok: false, error: `GET ${url}: timed out after 200ms` });
    expect(elapsedMs).toBeGreaterThanOrEqual(190);
    expect(elapsedMs).toBeLessThan(700);
    await within(connected, "the request to arrive");
    await within(closed, "the probe's connection to close");
  });

  it("fails on a refused port", async () => {
    const port = await refusedPort();
    const prober = new ReadinessProber(recordingSpawner());
    const url = `http://127.0.0.1:${port}/`;

    const { result } = await run(prober, { kind: "http", url });

    expect(result).toEqual({ ok: false, error: `GET ${url}: ECONNREFUSED` });
  });

  it("fails on a URL that is not http or https", async () => {
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "http", url: "ftp://127.0.0.1/" });

    expect(result).toEqual({ ok: false, error: "GET ftp://127.0.0.1/: not an http or https URL" });
  });
});

describe("exec", () => {
  it("passes when the command exits 0", async () => {
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "exec", args: ["sh", "-c", "exit 0"] });

    expect(result).toEqual({ ok: true });
  });

  it("fails with the exit code otherwise", async () => {
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "exec", args: ["sh", "-c", "exit 3"] });

    expect(result).toEqual({ ok: false, error: 'exec "sh": exit 3' });
  });

  it("fails at the timeout, and kills the command", async () => {
    const spawner = recordingSpawner();
    const prober = new ReadinessProber(spawner);

    const { result, elapsedMs } = await run(prober, { kind: "exec", args: ["sleep", "10"] }, 200);

    expect(result).toEqual({ ok: false, error: 'exec "sleep": timed out after 200ms' });
    expect(elapsedMs).toBeGreaterThanOrEqual(190);
    expect(elapsedMs).toBeLessThan(700);
    expect(spawner.pids).toHaveLength(1);
    await waitGone(spawner.pids[0] as number);
  });

  it("fails naming the SpawnError of a missing executable", async () => {
    const prober = new ReadinessProber(recordingSpawner());

    const { result } = await run(prober, { kind: "exec", args: ["procmon-no-such-command"] });

    expect(result).toEqual({
      ok: false,
      error:
        'exec "procmon-no-such-command": executable "procmon-no-such-command" not found on PATH',
    });
  });

  it("runs in the spec's environment and directory", async () => {
    const prober = new ReadinessProber(recordingSpawner());
    const processSpec = spec({ env: { PROBE_WANTS: "yes" }, cwd: dir });
    const script = `[ "$PROBE_WANTS" = yes ] && [ "$(pwd)" = "${dir}" ] && [ -z "$PROCMON_NAME" ]`;

    const { result } = await run(
      prober,
      { kind: "exec", args: ["sh", "-c", script] },
      1_000,
      processSpec,
    );
    const elsewhere = await run(
      prober,
      { kind: "exec", args: ["sh", "-c", script] },
      1_000,
      spec(),
    );

    expect(result).toEqual({ ok: true });
    expect(elsewhere.result).toEqual({ ok: false, error: 'exec "sh": exit 1' });
  });

  it("clears the environment when the spec does", async () => {
    const prober = new ReadinessProber(recordingSpawner());
    const processSpec = spec({
      clearEnv: true,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    expect(process.env.HOME).toBeDefined();

    const { result } = await run(
      prober,
      { kind: "exec", args: ["sh", "-c", '[ -z "$HOME" ]'] },
      1_000,
      processSpec,
    );

    expect(result).toEqual({ ok: true });
  });

  it("does not leave its output unread", async () => {
    const prober = new ReadinessProber(recordingSpawner());
    // More than a pipe holds: a command whose output nobody read would block.
    const script = "head -c 1000000 /dev/zero; exit 0";

    const { result } = await run(prober, { kind: "exec", args: ["sh", "-c", script] });

    expect(result).toEqual({ ok: true });
  });
});

/** A spawner whose children are all known later, as the shim's are; the test drives them. */
class LaterSpawner implements Spawner {
  readonly requests: Array<{ request: SpawnRequest; handlers: ChildHandlers }> = [];
  readonly signals: string[] = [];
  #arrived: Array<() => void> = [];

  spawn(request: SpawnRequest, handlers: ChildHandlers): undefined {
    this.requests.push({ request, handlers });
    for (const wake of this.#arrived.splice(0)) wake();
    return undefined;
  }

  /** The next request's handlers, once it has come. */
  async next(): Promise<ChildHandlers> {
    return (await this.nextRequest()).handlers;
  }

  /** The next request, once it has come. */
  async nextRequest(): Promise<{ request: SpawnRequest; handlers: ChildHandlers }> {
    while (this.requests.length === 0) {
      await within(new Promise<void>((resolve) => this.#arrived.push(resolve)), "a spawn");
    }
    return this.requests.shift() as { request: SpawnRequest; handlers: ChildHandlers };
  }

  child(pid: number): Child {
    return { pid, signal: (signal) => this.signals.push(`${pid} ${signal}`) };
  }
}

describe("exec through a spawner that answers later", () => {
  it("passes on an exit 0 after the child was announced", async () => {
    const spawner = new LaterSpawner();
    const check = new ReadinessProber(spawner).check(spec(), probe({ kind: "exec", args: ["x"] }));

    const handlers = await spawner.next();
    handlers.onSpawned(spawner.child(41));
    handlers.onExit({ code: 0, signal: null });

    expect(await within(check, "the check")).toEqual({ ok: true });
    expect(spawner.signals).toEqual([]);
  });

  it("fails naming a SpawnError answered later", async () => {
    const spawner = new LaterSpawner();
    const check = new ReadinessProber(spawner).check(spec(), probe({ kind: "exec", args: ["x"] }));

    (await spawner.next()).onSpawned(new SpawnError("EACCES", 'executable "x" is not executable'));

    expect(await within(check, "the check")).toEqual({
      ok: false,
      error: 'exec "x": executable "x" is not executable',
    });
  });

  it("names a signal that ended the command", async () => {
    const spawner = new LaterSpawner();
    const check = new ReadinessProber(spawner).check(spec(), probe({ kind: "exec", args: ["x"] }));

    const handlers = await spawner.next();
    handlers.onSpawned(spawner.child(42));
    handlers.onExit({ code: null, signal: "SIGSEGV" });

    expect(await within(check, "the check")).toEqual({
      ok: false,
      error: 'exec "x": killed by SIGSEGV',
    });
  });

  it("kills a child at the timeout, and one announced only after it", async () => {
    const spawner = new LaterSpawner();
    const prober = new ReadinessProber(spawner);
    const announced = prober.check(spec(), probe({ kind: "exec", args: ["x"] }, 50));
    const first = await spawner.next();
    first.onSpawned(spawner.child(43));
    const late = prober.check(spec(), probe({ kind: "exec", args: ["y"] }, 50));
    const second = await spawner.next();

    expect(await within(announced, "the first check")).toEqual({
      ok: false,
      error: 'exec "x": timed out after 50ms',
    });
    expect(await within(late, "the second check")).toEqual({
      ok: false,
      error: 'exec "y": timed out after 50ms',
    });
    expect(spawner.signals).toEqual(["43 SIGKILL"]);
    second.onSpawned(spawner.child(44));
    expect(spawner.signals).toEqual(["43 SIGKILL", "44 SIGKILL"]);
    // Their exits, when they come, change nothing.
    first.onExit({ code: null, signal: "SIGKILL" });
    second.onExit({ code: null, signal: "SIGKILL" });
  });

  it("runs the probe's args with the spec's environment, directory and ids, and no name", async () => {
    const spawner = new LaterSpawner();
    const processSpec = spec({
      env: { A: "1" },
      clearEnv: true,
      cwd: "/srv",
      uid: 1000,
      gid: 1001,
    });
    const check = new ReadinessProber(spawner).check(
      processSpec,
      probe({ kind: "exec", args: ["pg_isready", "-q"] }),
    );

    const { request, handlers } = await spawner.nextRequest();
    handlers.onSpawned(spawner.child(45));
    handlers.onExit({ code: 2, signal: null });

    expect(request).toEqual({
      args: ["pg_isready", "-q"],
      env: { A: "1" },
      clearEnv: true,
      cwd: "/srv",
      uid: 1000,
      gid: 1001,
    });
    expect(await within(check, "the check")).toEqual({
      ok: false,
      error: 'exec "pg_isready": exit 2',
    });
  });
});
