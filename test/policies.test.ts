// Lifecycle policies (procmon-v1.1 §B) with real daemons, real children and
// real probes against servers this test starts on loopback.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { Code, type ProcessSpecInit } from "@procmon/client";
import { RestartPolicy, State, StopReason } from "@procmon/client/api";
import { afterEach, describe, expect, it } from "vitest";
import { cleanupAll, makeTempDir, startProcmond, waitFor } from "./helpers/daemon.js";
import { statFields } from "./helpers/proc.js";
import { closeAllWatches, openWatch } from "./helpers/watch.js";

const servers: Array<Server | HttpServer> = [];

afterEach(async () => {
  closeAllWatches();
  for (const server of servers.splice(0)) server.close();
  await cleanupAll();
});

const TIMINGS = ["--kill-time", "2s", "--threshold", "300ms", "--min-restart-delay", "100ms"];
const start = () => startProcmond(TIMINGS);

/** A free loopback port: a server bound to port 0 and closed at once. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const gone = (pid: number) => statFields(pid) === undefined || statFields(pid)?.[0] === "Z";

describe("restart policies and giving up", () => {
  it("never: a one-shot task runs once and stays exited; on-failure: restarted until it succeeds", async () => {
    const d = await start();
    const watch = await openWatch(d.socket);
    const once: ProcessSpecInit = {
      name: "once",
      args: ["sh", "-c", "exit 0"],
      restart: RestartPolicy.NEVER,
    };
    await d.client.addProcess(once);
    await watch.waitForEvent((e) => e.process === "once" && e.kind.case === "exited");
    await waitFor(async () => (await d.client.getProcess("once")).state === State.EXITED);
    const dir = makeTempDir("procmon-policy-");
    // Fails until its third run, then succeeds: counted by a file it appends to.
    const count = join(dir, "runs");
    await d.client.addProcess({
      name: "job",
      args: [
        "sh",
        "-c",
        `echo run >> '${count}'; [ "$(wc -l < '${count}')" -ge 3 ] && exit 0; exit 1`,
      ],
      restart: RestartPolicy.ON_FAILURE,
    });
    await waitFor(async () => (await d.client.getProcess("job")).state === State.EXITED, 10_000);
    const job = await d.client.getProcess("job");
    expect(job.restartCount).toBe(2);
    expect(job.lastExit?.status).toEqual({ case: "exitCode", value: 0 });
    expect((await d.client.getProcess("once")).restartCount).toBe(0);
  });

  it("max_instant_deaths: gives up (gave_up, FAILED) and StartProcess tries again", async () => {
    const d = await start();
    const watch = await openWatch(d.socket);
    await d.client.addProcess({
      name: "broken",
      args: ["sh", "-c", "exit 3"],
      maxInstantDeaths: 3,
    });
    const gaveUp = await watch.waitForEvent(
      (e) => e.process === "broken" && e.kind.case === "gaveUp",
      10_000,
    );
    expect(gaveUp.kind.case === "gaveUp" && gaveUp.kind.value.instantDeaths).toBe(3);
    expect((await d.client.getProcess("broken")).state).toBe(State.FAILED);
    expect(
      watch.events.filter((e) => e.process === "broken" && e.kind.case === "exited"),
    ).toHaveLength(3);
    await d.client.startProcess("broken");
    await watch.waitForEvent(
      (e) => e.process === "broken" && e.kind.case === "gaveUp" && e.seq > gaveUp.seq,
      10_000,
    );
  });

  it("refuses bad policies, naming the field, and registers nothing", async () => {
    const d = await start();
    const cases: Array<[ProcessSpecInit, RegExp]> = [
      [{ name: "a", args: ["true"], stopSignal: "SIGKILL" }, /stop_signal "SIGKILL"/],
      [{ name: "a", args: ["true"], successExitCodes: [300] }, /success_exit_codes\[0\] 300/],
      [{ name: "a", args: ["true"], maxRssBytes: 1000n }, /max_rss_bytes 1000 is below 1 MiB/],
      [
        { name: "a", args: ["true"], dependsOn: [{ name: "a" }] },
        /depends_on\[0\] names the process itself/,
      ],
      [{ name: "a", args: ["true"], ready: {} }, /ready has no check/],
      [
        {
          name: "a",
          args: ["true"],
          ready: { check: { case: "tcp", value: { port: 80 } }, period: { seconds: 0n } },
        },
        /ready.period must be positive/,
      ],
    ];
    for (const [spec, message] of cases) {
      const err = await d.client.addProcess(spec).catch((e: unknown) => e);
      expect({ message: String(err), code: (err as { code?: number }).code }).toMatchObject({
        message: expect.stringMatching(message),
        code: Code.INVALID_ARGUMENT,
      });
    }
    await d.client.addProcess({ name: "b", args: ["sleep", "100"], dependsOn: [{ name: "c" }] });
    const cycle = await d.client
      .addProcess({ name: "c", args: ["sleep", "100"], dependsOn: [{ name: "b" }] })
      .catch((e: unknown) => e);
    expect(String(cycle)).toContain('depends_on makes a cycle: "c" -> "b" -> "c"');
    expect((await d.client.listProcesses()).processes.map((p) => p.spec?.name)).toEqual(["b"]);
  });
});

describe("stop_signal", () => {
  it("a stop begins with it: a process that exits on SIGQUIT only stops before kill_time", async () => {
    const d = await start();
    const watch = await openWatch(d.socket);
    const nginx = await d.client.addProcess({
      name: "nginx",
      // Ignores SIGTERM; exits 0 on SIGQUIT.
      args: ["sh", "-c", "trap '' TERM; trap 'exit 0' QUIT; while :; do sleep 0.05; done"],
      stopSignal: "SIGQUIT",
    });
    await waitFor(() => statFields(nginx.pid) !== undefined);
    const began = Date.now();
    await d.client.stopProcess("nginx");
    expect(Date.now() - began).toBeLessThan(1_500);
    const stopping = watch.events.find((e) => e.kind.case === "stopping");
    expect(stopping?.kind.case === "stopping" && stopping.kind.value.signal).toBe("SIGQUIT");
    const exited = watch.events.find((e) => e.kind.case === "exited");
    expect(exited?.kind.case === "exited" && exited.kind.value.status?.status).toEqual({
      case: "exitCode",
      value: 0,
    });
  });
});

describe("dependencies and readiness probes", () => {
  it("a web app waits for its database to be ready (a TCP probe against a server of the test)", async () => {
    const port = await freePort();
    const d = await start();
    const watch = await openWatch(d.socket);
    await d.client.addProcess({
      name: "db",
      args: ["sleep", "100"],
      ready: {
        check: { case: "tcp", value: { host: "127.0.0.1", port } },
        period: { nanos: 100_000_000 },
        timeout: { nanos: 200_000_000 },
      },
    });
    await d.client.addProcess({
      name: "web",
      args: ["sleep", "100"],
      dependsOn: [{ name: "db", condition: 2 }],
    });
    const web = await d.client.getProcess("web");
    expect(web).toMatchObject({ state: State.WAITING, waitingFor: ["db"], pid: 0 });
    expect((await d.client.getProcess("db")).ready).toBe(false);
    // The database "comes up": the test's server listens on the probed port.
    const server = createServer((socket) => socket.end());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    await watch.waitForEvent((e) => e.process === "db" && e.kind.case === "ready", 5_000);
    await watch.waitForEvent((e) => e.process === "web" && e.kind.case === "started", 5_000);
    expect(await d.client.getProcess("db")).toMatchObject({ ready: true, state: State.RUNNING });
    // Unready once it stops answering: an event, not a restart.
    const dbPid = (await d.client.getProcess("db")).pid;
    await new Promise((resolve) => server.close(resolve));
    servers.splice(servers.indexOf(server), 1);
    await watch.waitForEvent((e) => e.process === "db" && e.kind.case === "unready", 5_000);
    expect(await d.client.getProcess("db")).toMatchObject({ ready: false, pid: dbPid });
  });

  it("an HTTP probe passes on 2xx only; an exec probe on exit 0 (run through the spawner)", async () => {
    let status = 503;
    const server = createHttpServer((_req, res) => {
      res.statusCode = status;
      res.end("ok");
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const d = await start();
    const watch = await openWatch(d.socket);
    await d.client.addProcess({
      name: "api",
      args: ["sleep", "100"],
      ready: {
        check: { case: "http", value: { url: `http://127.0.0.1:${port}/health` } },
        period: { nanos: 100_000_000 },
      },
    });
    const dir = makeTempDir("procmon-probe-");
    const flag = join(dir, "ready");
    await d.client.addProcess({
      name: "worker",
      args: ["sleep", "100"],
      ready: {
        check: { case: "exec", value: { args: ["sh", "-c", `test -e '${flag}'`] } },
        period: { nanos: 100_000_000 },
      },
    });
    await waitFor(async () => (await d.client.getProcess("api")).state === State.RUNNING);
    // A few periods of 503 and of a missing file: not ready.
    await waitFor(() => watch.events.length > 0);
    expect((await d.client.getProcess("api")).ready).toBe(false);
    status = 200;
    await watch.waitForEvent((e) => e.process === "api" && e.kind.case === "ready", 5_000);
    expect((await d.client.getProcess("worker")).ready).toBe(false);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(flag, "");
    await watch.waitForEvent((e) => e.process === "worker" && e.kind.case === "ready", 5_000);
  });

  it("a migration that must exit 0 first: the app starts only after it", async () => {
    const d = await start();
    const watch = await openWatch(d.socket);
    await d.client.addProcess({
      name: "app",
      args: ["sleep", "100"],
      dependsOn: [{ name: "migrate", condition: 3 }],
    });
    await d.client.addProcess({
      name: "migrate",
      args: ["sh", "-c", "sleep 0.2; exit 0"],
      restart: RestartPolicy.ON_FAILURE,
    });
    const started = await watch.waitForEvent(
      (e) => e.process === "app" && e.kind.case === "started",
      5_000,
    );
    const migrated = watch.events.find((e) => e.process === "migrate" && e.kind.case === "exited");
    expect(migrated).toBeDefined();
    expect((migrated?.seq ?? 0n) < started.seq).toBe(true);
    expect((await d.client.getProcess("migrate")).state).toBe(State.EXITED);
  });

  it("a dependent is left alone when its dependency restarts; one whose dependency gave up waits, naming it", async () => {
    const d = await start();
    const watch = await openWatch(d.socket);
    await d.client.addProcess({ name: "db", args: ["sleep", "100"] });
    const web = await d.client.addProcess({
      name: "web",
      args: ["sleep", "100"],
      dependsOn: [{ name: "db" }],
    });
    await waitFor(async () => (await d.client.getProcess("web")).state === State.RUNNING);
    const running = await d.client.getProcess("web");
    await d.client.restartProcess("db");
    expect((await d.client.getProcess("web")).pid).toBe(running.pid);
    expect(watch.events.filter((e) => e.process === "web" && e.kind.case === "stopping")).toEqual(
      [],
    );
    expect(web.state).not.toBe(State.STOPPED);
    // A dependency that can never start, and one not registered at all.
    await d.client.addProcess({
      name: "broken",
      args: ["sh", "-c", "exit 1"],
      maxInstantDeaths: 1,
    });
    await d.client.addProcess({
      name: "app",
      args: ["sleep", "100"],
      dependsOn: [{ name: "broken" }, { name: "ghost" }],
    });
    await watch.waitForEvent((e) => e.process === "broken" && e.kind.case === "gaveUp", 5_000);
    const app = await d.client.getProcess("app");
    expect(app).toMatchObject({ state: State.WAITING, pid: 0 });
    expect([...app.waitingFor].sort()).toEqual(["broken", "ghost"]);
  });

  it("SIGTERM stops dependents before their dependencies", async () => {
    const d = await start();
    await d.client.addProcess({ name: "db", args: ["sleep", "100"] });
    await d.client.addProcess({ name: "web", args: ["sleep", "100"], dependsOn: [{ name: "db" }] });
    await waitFor(async () => (await d.client.getProcess("web")).state === State.RUNNING);
    expect(await d.stop("SIGTERM")).toBe(0);
    const stopping = d.logs
      .filter((l) => l.event === "stopping" || l.event === "exited")
      .map((l) => `${l.process} ${l.event}`);
    expect(stopping).toEqual(["web stopping", "web exited", "db stopping", "db exited"]);
  });
});

describe("memory cap and stats", () => {
  it("a process over max_rss_bytes at two checks in a row is restarted (reason memory); include_stats reads its tree", async () => {
    const d = await startProcmond([...TIMINGS, "--stats-period", "200ms"]);
    const watch = await openWatch(d.socket);
    const hog = await d.client.addProcess({
      name: "hog",
      // Holds ~40 MiB resident.
      args: [
        process.execPath,
        "-e",
        "const b = Buffer.alloc(40 * 1024 * 1024, 1); setInterval(() => b[0]++, 1000);",
      ],
      maxRssBytes: BigInt(16 * 1024 * 1024),
    });
    const stopping = await watch.waitForEvent(
      (e) => e.process === "hog" && e.kind.case === "stopping",
      10_000,
    );
    expect(stopping.kind.case === "stopping" && stopping.kind.value.reason).toBe(StopReason.MEMORY);
    await watch.waitForEvent(
      (e) => e.process === "hog" && e.kind.case === "started" && e.kind.value.pid !== hog.pid,
      10_000,
    );
    await waitFor(() => gone(hog.pid));
    await d.client.addProcess({ name: "tree", args: ["sh", "-c", "sleep 100 & sleep 100 & wait"] });
    await waitFor(async () => (await d.client.getProcess("tree")).state === State.RUNNING);
    const { processes } = await d.client.listProcesses({ includeStats: true });
    const tree = processes.find((p) => p.spec?.name === "tree");
    expect(Number(tree?.rssBytes ?? 0n)).toBeGreaterThan(0);
    expect(tree?.cpuSeconds).toBeGreaterThanOrEqual(0);
    const plain = await d.client.getProcess("tree");
    expect(plain.rssBytes).toBe(0n);
  });
});
