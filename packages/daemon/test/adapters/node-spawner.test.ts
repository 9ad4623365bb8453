import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FlowGate } from "../../src/adapters/flow-gate.js";
import { NodeSpawner } from "../../src/adapters/node-spawner.js";
import {
  type Child,
  type ChildExit,
  type OutputStreamName,
  SpawnError,
  type SpawnRequest,
} from "../../src/core/spawner.js";

/** What a child reported, in the order it reported it. */
type Report =
  | {
      readonly kind: "output";
      readonly stream: OutputStreamName;
      readonly line: string;
      readonly partial: boolean;
    }
  | { readonly kind: "exit"; readonly exit: ChildExit };

interface Started {
  readonly child: Child;
  readonly reports: Report[];
  /** Resolves with the exit, at the first onExit. */
  readonly exited: Promise<ChildExit>;
  /** Resolves with the first line of `stream` matching `pattern`. */
  line(stream: OutputStreamName, pattern: RegExp): Promise<string>;
  lines(stream: OutputStreamName): string[];
}

const WAIT_MS = 3_000;

let dir: string;
/** Processes the tests started outside the spawner's control, killed after each test. */
const strays: number[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "procmon-spawner-"));
});

afterEach(() => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
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

function request(args: string[], extra: Partial<SpawnRequest> = {}): SpawnRequest {
  return { args, env: {}, clearEnv: false, cwd: "", ...extra };
}

function start(spawner: NodeSpawner, req: SpawnRequest): Started {
  const reports: Report[] = [];
  const waiters: Array<() => void> = [];
  let onExit!: (exit: ChildExit) => void;
  const exited = new Promise<ChildExit>((resolve) => {
    onExit = resolve;
  });
  const child = spawner.spawn(req, {
    onExit(exit) {
      reports.push({ kind: "exit", exit });
      onExit(exit);
    },
    onOutput(stream, line, partial) {
      reports.push({ kind: "output", stream, line, partial });
      for (const wake of waiters.splice(0)) wake();
    },
    onSpawned() {},
  });
  const lines = (stream: OutputStreamName): string[] =>
    reports.flatMap((r) => (r.kind === "output" && r.stream === stream ? [r.line] : []));
  const line = (stream: OutputStreamName, pattern: RegExp): Promise<string> =>
    within(
      new Promise<string>((resolve) => {
        const check = (): void => {
          const found = lines(stream).find((l) => pattern.test(l));
          if (found !== undefined) resolve(found);
          else waiters.push(check);
        };
        check();
      }),
      `a ${stream} line matching ${pattern}`,
    );
  return { child, reports, exited: within(exited, "the exit"), line, lines };
}

function exits(reports: Report[]): number {
  return reports.filter((r) => r.kind === "exit").length;
}

/** True once `pid` is dead; a zombie counts, since reaping orphans is init's job, not ours. */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw err;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
  } catch {
    return true;
  }
}

function waitUntilGone(pid: number): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      const poll = (): void => {
        if (isGone(pid)) resolve();
        else setTimeout(poll, 10);
      };
      poll();
    }),
    `pid ${pid} to die`,
  );
}

function spawnError(fn: () => unknown): SpawnError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpawnError);
    return err as SpawnError;
  }
  throw new Error("expected a SpawnError");
}

describe("NodeSpawner", () => {
  const spawner = new NodeSpawner();

  it("delivers lines of both streams in order, the last one before the exit", async () => {
    const run = start(
      spawner,
      request(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf last"]),
    );
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.lines("stdout")).toEqual(["out1", "out2", "last"]);
    expect(run.lines("stderr")).toEqual(["err1", "err2"]);
    expect(run.reports.at(-1)?.kind).toBe("exit");
    expect(run.reports).toContainEqual({
      kind: "output",
      stream: "stdout",
      line: "last",
      partial: false,
    });
    expect(exits(run.reports)).toBe(1);
  });

  it("reports the exit code", async () => {
    const run = start(spawner, request(["sh", "-c", "exit 3"]));
    expect(await run.exited).toEqual({ code: 3, signal: null });
  });

  it("reports the signal that ended the child", async () => {
    const run = start(spawner, request(["sleep", "30"]));
    run.child.signal("SIGKILL");
    expect(await run.exited).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("makes the child the leader of its own process group", async () => {
    const run = start(spawner, request(["sh", "-c", "cut -d' ' -f5 /proc/$$/stat"]));
    await run.exited;
    expect(run.lines("stdout")).toEqual([String(run.child.pid)]);
  });

  it("passes args[0] as argv[0], not the resolved path", async () => {
    const run = start(spawner, request(["sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"]));
    await run.exited;
    expect(run.lines("stdout")[0]).toMatch(/^sh -c /);
  });

  it("kills the whole process tree with SIGTERM", async () => {
    const run = start(spawner, request(["sh", "-c", "sleep 30 & echo $!; sleep 30; wait"]));
    const grandchild = Number(await run.line("stdout", /^\d+$/));
    strays.push(grandchild);
    run.child.signal("SIGTERM");
    expect(await run.exited).toEqual({ code: null, signal: "SIGTERM" });
    await waitUntilGone(grandchild);
  });

  it("does not wait past the grace for a grandchild holding stdout", async () => {
    const quick = new NodeSpawner({ exitGraceMs: 50 });
    const startedAt = performance.now();
    const run = start(
      quick,
      request(["sh", "-c", "(sleep 0.3; echo late; exec sleep 5) & echo $!"]),
    );
    const grandchild = Number(await run.line("stdout", /^\d+$/));
    strays.push(grandchild);
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    // Lines written after the exit was reported still arrive.
    await run.line("stdout", /^late$/);
    expect(run.reports.findIndex((r) => r.kind === "exit")).toBeLessThan(
      run.reports.findIndex((r) => r.kind === "output" && r.line === "late"),
    );
    expect(exits(run.reports)).toBe(1);
  });

  it("reports the exit after the output it wrote, when reading it was held back past the grace", async () => {
    // The log sink fills at the first line and drains 7 graces later. Meanwhile the child writes
    // a burst (read, as one chunk, before the gate is looked at again), then 20,000 more lines,
    // which fit the pipe's buffer, and exits (~2 graces after the first line): those wait in the
    // pipe past the grace, within the 10 graces after the exit that reading may take. The margins
    // are hundreds of ms, as timers fire late on a loaded machine.
    const gate = new FlowGate();
    const held = new NodeSpawner({ exitGraceMs: 100, outputGate: gate });
    const reports: Report[] = [];
    const exited = new Promise<void>((resolve) => {
      const script =
        "echo first; sleep 0.1; yes x | head -n 1000; sleep 0.1; yes x | head -n 20000";
      held.spawn(request(["sh", "-c", script]), {
        onOutput(stream, line, partial) {
          reports.push({ kind: "output", stream, line, partial });
          if (line === "first") {
            gate.close();
            setTimeout(() => gate.open(), 700);
          }
        },
        onExit(exit) {
          reports.push({ kind: "exit", exit });
          resolve();
        },
        onSpawned() {},
      });
    });
    await within(exited, "the exit");
    expect(reports.filter((r) => r.kind === "output")).toHaveLength(21_001);
    expect(reports.at(-1)?.kind).toBe("exit");
  });

  it("does nothing when signalled after the exit", async () => {
    const run = start(spawner, request(["sh", "-c", "exit 0"]));
    await run.exited;
    const kill = vi.spyOn(process, "kill");
    try {
      run.child.signal("SIGTERM");
      run.child.signal("SIGKILL");
      expect(kill).not.toHaveBeenCalled();
    } finally {
      kill.mockRestore();
    }
    expect(exits(run.reports)).toBe(1);
  });

  it("sets env over the daemon's environment", async () => {
    const run = start(
      spawner,
      request(["sh", "-c", 'echo "$PROCMON_TEST"; echo "$PATH"'], { env: { PROCMON_TEST: "set" } }),
    );
    await run.exited;
    expect(run.lines("stdout")).toEqual(["set", process.env.PATH ?? ""]);
  });

  it("starts from an empty environment with clearEnv, finding args[0] on the default PATH", async () => {
    const run = start(spawner, request(["env"], { env: { ONLY: "this" }, clearEnv: true }));
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.lines("stdout")).toEqual(["ONLY=this"]);
  });

  it("runs in cwd, resolving a relative args[0] against it", async () => {
    const script = path.join(dir, "where.sh");
    writeFileSync(script, "#!/bin/sh\npwd\n");
    chmodSync(script, 0o755);
    const run = start(spawner, request(["./where.sh"], { cwd: dir }));
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.lines("stdout")).toEqual([realpathSync(dir)]);
  });

  it("throws ENOENT for a missing executable", () => {
    expect(
      spawnError(() => spawner.spawn(request([path.join(dir, "nope")]), noHandlers)).code,
    ).toBe("ENOENT");
    const bare = spawnError(() => spawner.spawn(request(["procmon-no-such-tool"]), noHandlers));
    expect(bare.code).toBe("ENOENT");
    expect(bare.message).toBe('executable "procmon-no-such-tool" not found on PATH');
  });

  it("throws EACCES for a file that is not executable", () => {
    const plain = path.join(dir, "plain.sh");
    writeFileSync(plain, "#!/bin/sh\n");
    chmodSync(plain, 0o644);
    const err = spawnError(() => spawner.spawn(request([plain]), noHandlers));
    expect(err.code).toBe("EACCES");
    expect(err.message).toBe(`executable "${plain}" is not executable`);
  });

  it("throws ENOENT for a missing working directory", () => {
    const cwd = path.join(dir, "gone");
    const err = spawnError(() => spawner.spawn(request(["/bin/sh"], { cwd }), noHandlers));
    expect(err.code).toBe("ENOENT");
    expect(err.message).toContain(cwd);
  });

  it("throws EMFILE, named, when the daemon is out of descriptors (not EAGAIN)", async () => {
    // In a process of its own with few descriptors, without the budget that would refuse first.
    const module = new URL("../../dist/adapters/node-spawner.js", import.meta.url).href;
    const script = `
      const { NodeSpawner } = await import(${JSON.stringify(module)});
      const spawner = new NodeSpawner();
      const handlers = { onExit() {}, onOutput() {} };
      const pids = [];
      try {
        for (let i = 0; i < 200; i++) pids.push(spawner.spawn({ args: ["sleep", "100"], env: {}, clearEnv: false, cwd: "" }, handlers).pid);
        console.log(JSON.stringify({ error: "none" }));
      } catch (err) {
        console.log(JSON.stringify({ code: err.code, message: err.message, spawned: pids.length }));
      } finally {
        for (const pid of pids) process.kill(-pid, "SIGKILL");
        process.exit(0);
      }`;
    const { execFileSync } = await import("node:child_process");
    const out = execFileSync(
      "sh",
      ["-c", 'ulimit -n 96 && exec "$0" --input-type=module -e "$1"', process.execPath, script],
      { encoding: "utf8", timeout: 20_000 },
    );
    const result = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>;
    expect(result.code).toBe("EMFILE");
    expect(result.message).toMatch(
      /^cannot spawn "sleep": EMFILE: too many open files \(procmond has (\d+ of its |all )96 file descriptors open: raise LimitNOFILE= or ulimit -n\)$/,
    );
    expect(result.spawned).toBeGreaterThan(10);
  });

  it("throws EINVAL for an argument Node rejects", () => {
    const err = spawnError(() => spawner.spawn(request(["sh", "-c", "a\0b"]), noHandlers));
    expect(err.code).toBe("EINVAL");
  });
});

const noHandlers = {
  onExit(): void {
    throw new Error("onExit called for a child that never started");
  },
  onOutput(): void {},
  onSpawned(): void {
    throw new Error("a synchronous spawner answered later");
  },
};
