// Limits, privileges and the socket's permissions, with the real procmond:
// caps that keep one client from exhausting the daemon, uid/gid switching
// (and its refusal by a daemon that is not root), and who may connect.
import { chmodSync, chownSync, lstatSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Code, createClient, type ProcmonClient } from "@procmon/client";
import { State } from "@procmon/client/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cleanupAll, makeTempDir, type Procmond, startProcmond } from "./helpers/daemon.js";
import { rejection } from "./helpers/rejection.js";

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** Clients a test created itself, closed after it. */
const clients: ProcmonClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

afterAll(cleanupAll);

/** The names the daemon lists. */
async function names(d: Procmond): Promise<string[]> {
  return (await d.client.listProcesses()).processes.map((p) => p.spec?.name ?? "");
}

/** The names the daemon's state file holds. */
function savedNames(d: Procmond): string[] {
  const state = JSON.parse(readFileSync(join(d.dir, "state.json"), "utf8")) as {
    processes: Array<{ spec: { name: string } }>;
  };
  return state.processes.map((p) => p.spec.name);
}

/** A line of /proc/<pid>/status, such as "Uid", split into its fields. */
function status(pid: number, key: string): string[] {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${key}:`));
  if (line === undefined) throw new Error(`no ${key} in /proc/${pid}/status`);
  return line
    .slice(key.length + 1)
    .trim()
    .split(/\s+/)
    .filter((f) => f !== "");
}

const sleeper = (name: string) => ({ name, args: ["sleep", "100"] });

describe("limits", () => {
  let d: Procmond;

  beforeAll(async () => {
    d = await startProcmond([
      "--max-processes",
      "3",
      "--max-spec-bytes",
      "1000",
      "--max-message-size",
      "100000",
      "--kill-time",
      "300ms",
    ]);
  });

  afterEach(async () => {
    for (const name of await names(d)) await d.client.removeProcess(name);
  });

  it("the socket is 0600 by default", () => {
    expect(lstatSync(d.socket).mode & 0o777).toBe(0o600);
  });

  it("--max-spec-bytes 1000: a spec with a 2000-byte arg is INVALID_ARGUMENT", async () => {
    const err = await rejection(
      d.client.addProcess({ name: "big", args: ["sleep", "1".repeat(2_000)] }),
    );
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.message).toMatch(/over the limit of 1000 \(--max-spec-bytes\)/);
    const env = await rejection(
      d.client.addProcess({ name: "big-env", args: ["sleep", "1"], env: { X: "x".repeat(1_500) } }),
    );
    expect(env.code).toBe(Code.INVALID_ARGUMENT);
    expect(await names(d)).toEqual([]);
    // Under the limit is fine.
    await d.client.addProcess({ name: "fits", args: ["sleep", "1".repeat(900)] });
    expect(await names(d)).toEqual(["fits"]);
  });

  it("--max-processes 3: the 4th AddProcess is RESOURCE_EXHAUSTED naming the limit", async () => {
    for (const name of ["p1", "p2", "p3"]) await d.client.addProcess(sleeper(name));
    const err = await rejection(d.client.addProcess(sleeper("p4")));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toContain("--max-processes 3");
    expect(await names(d)).toEqual(["p1", "p2", "p3"]);
    expect(savedNames(d)).toEqual(["p1", "p2", "p3"]);
    // Room again once one is removed.
    await d.client.removeProcess("p2");
    await d.client.addProcess(sleeper("p4"));
    expect(await names(d)).toEqual(["p1", "p3", "p4"]);
  });

  it("--max-message-size 100000: a 200 KB request is RESOURCE_EXHAUSTED; the daemon keeps serving", async () => {
    const err = await rejection(
      d.client.addProcess({ name: "huge", args: ["sleep", "1".repeat(200_000)] }),
    );
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(await names(d)).toEqual([]);
    const p = await d.client.addProcess(sleeper("after"));
    expect(p.state).toBe(State.RUNNING);
    expect(d.child.exitCode).toBeNull();
  });
});

describe.runIf(isRoot)("privileges", () => {
  it("a root daemon runs a process as uid/gid 65534, its supplementary groups dropped", async () => {
    // Give the daemon supplementary groups, so that dropping them shows.
    const groups = process.getgroups?.() ?? [];
    process.setgroups?.([4, 27]);
    let d: Procmond;
    try {
      d = await startProcmond(["--kill-time", "300ms"]);
    } finally {
      process.setgroups?.(groups);
    }
    expect(status(d.child.pid ?? 0, "Groups")).toEqual(["4", "27"]);

    const nobody = await d.client.addProcess({ ...sleeper("nobody"), uid: NOBODY, gid: NOBODY });
    expect(nobody.spec?.uid).toBe(NOBODY);
    expect(status(nobody.pid, "Uid")).toEqual(Array(4).fill(String(NOBODY)));
    expect(status(nobody.pid, "Gid")).toEqual(Array(4).fill(String(NOBODY)));
    expect(["", String(NOBODY)]).toContain(status(nobody.pid, "Groups").join(" "));

    // Without uid/gid, a process runs as the daemon does.
    const same = await d.client.addProcess(sleeper("same"));
    expect(status(same.pid, "Uid")).toEqual(["0", "0", "0", "0"]);
    expect(status(same.pid, "Groups")).toEqual(["4", "27"]);
  });

  it("a daemon that is not root answers PERMISSION_DENIED for another uid or gid, and registers nothing", async () => {
    const d = await startProcmond(
      [],
      {},
      {
        uid: NOBODY,
        gid: NOBODY,
        // Its temp dir (socket, state file, cwd) must be its own.
        prepare: (dir) => chownSync(dir, NOBODY, NOBODY),
      },
    );
    expect(status(d.child.pid ?? 0, "Uid")).toEqual(Array(4).fill(String(NOBODY)));

    const asRoot = await rejection(d.client.addProcess({ ...sleeper("as-root"), uid: 0 }));
    expect(asRoot.code).toBe(Code.PERMISSION_DENIED);
    expect(asRoot.message).toBe(
      `cannot run as uid 0: procmond runs as uid ${NOBODY} and is not root`,
    );
    const asRootGroup = await rejection(d.client.addProcess({ ...sleeper("as-wheel"), gid: 0 }));
    expect(asRootGroup.code).toBe(Code.PERMISSION_DENIED);
    expect(asRootGroup.message).toContain("cannot run as gid 0");
    expect(await names(d)).toEqual([]);
    expect(savedNames(d)).toEqual([]);

    // Its own ids are fine.
    const own = await d.client.addProcess({ ...sleeper("own"), uid: NOBODY, gid: NOBODY });
    expect(status(own.pid, "Uid")[0]).toBe(String(NOBODY));
    expect(savedNames(d)).toEqual(["own"]);
  });
});

describe("the socket", () => {
  it.runIf(isRoot)(
    "--socket-mode 0660 --socket-group gives that mode and group; missing parents are created 0750 with that group",
    async () => {
      const base = makeTempDir("procmon-sock-");
      chmodSync(base, 0o755);
      const socket = join(base, "run", "procmon", "procmon.sock");
      await startProcmond([
        "--socket",
        socket,
        "--socket-mode",
        "0660",
        "--socket-group",
        String(NOBODY),
      ]);
      const stats = lstatSync(socket);
      expect(stats.isSocket()).toBe(true);
      expect(stats.mode & 0o777).toBe(0o660);
      expect(stats.gid).toBe(NOBODY);
      // The group can reach the socket through the directories made for it, and write none.
      for (const made of [join(base, "run"), join(base, "run", "procmon")]) {
        expect(statSync(made).mode & 0o777).toBe(0o750);
        expect(statSync(made).gid).toBe(NOBODY);
      }

      const client = createClient({ socket, timeoutMs: 10_000 });
      clients.push(client);
      expect(await client.listProcesses()).toEqual({ processes: [], lastEventSeq: 0n });
    },
  );
});
