// Tree stats: real process trees started here (and killed here by their
// group), checked against the same /proc files read by the test; a made-up
// /proc directory for what real processes cannot show on demand (the shim's
// reparented orphans, odd comms, zombies, the page size).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ProcTreeStats } from "../../src/adapters/tree-stats.js";

const WAIT_MS = 5_000;
const PAGE = 4_096;

/** Every process group started here, killed after each test. */
const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0)) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Starts `script` under sh, the leader of its own group. */
function sh(script: string): number {
  const child = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
  started.push(child);
  if (child.pid === undefined) throw new Error("sh did not start");
  return child.pid;
}

/** Fields of /proc/<pid>/stat after the comm (field 3 onwards), or undefined once it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** The live descendants of `root` (not itself), by a scan of /proc. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    const ppid = Number(statFields(pid)?.[1]);
    if (Number.isInteger(pid) && Number.isInteger(ppid)) parent.set(pid, ppid);
  }
  const found: number[] = [];
  for (const pid of parent.keys()) {
    for (let at = parent.get(pid), depth = 0; at !== undefined && depth < 64; depth++) {
      if (at === root) {
        found.push(pid);
        break;
      }
      at = parent.get(at);
    }
  }
  return found;
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline)
      throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Resolves once `root` has `count` descendants running `name`, asleep (past
 * the loader, so that their RSS holds still), as `root` is.
 */
function childrenNamed(root: number, name: string, count: number): Promise<number[]> {
  const asleep = (pid: number) => statFields(pid)?.[0] === "S";
  return until(`${count} ${name} asleep under ${root}`, () => {
    const found = descendants(root).filter((pid) => comm(pid) === name && asleep(pid));
    return found.length >= count && asleep(root) ? found : undefined;
  });
}

function rssPages(pid: number): number {
  return Number(statFields(pid)?.[21]);
}

// Busy for 300 ms of its own CPU time, however the test machine is loaded.
const busyNode = `${process.execPath} -e 'while (process.cpuUsage().user < 300000) {}'`;

describe("ProcTreeStats on real processes", () => {
  it("sums the RSS of the root and its children", async () => {
    const root = sh("sleep 30 & sleep 30 & wait");
    const sleeps = await childrenNamed(root, "sleep", 2);
    const stats = new ProcTreeStats({ pageSizeBytes: PAGE });

    const tree = stats.sample([{ name: "web", pid: root }]).get("web");

    const expected = [root, ...sleeps].reduce((sum, pid) => sum + rssPages(pid) * PAGE, 0);
    expect(tree?.rssBytes).toBe(expected);
    expect(tree?.rssBytes).toBeGreaterThan(rssPages(root) * PAGE);
  });

  it("counts a busy child's CPU while it runs and after a descendant reaped it", async () => {
    // The inner sh reaps node, so its time is in the inner sh's cutime, not the root's.
    const root = sh(`sh -c "${busyNode.replaceAll('"', '\\"')}; exec sleep 30"; exit 0`);
    const stats = new ProcTreeStats();
    const before = stats.sample([{ name: "busy", pid: root }]).get("busy");

    await childrenNamed(root, "sleep", 1);
    const after = stats.sample([{ name: "busy", pid: root }]).get("busy");

    expect(before).toBeDefined();
    expect(after?.cpuSeconds).toBeGreaterThanOrEqual(0.3);
    expect(after?.cpuSeconds).toBeGreaterThan(before?.cpuSeconds ?? Number.POSITIVE_INFINITY);
    const rootReaped = (Number(statFields(root)?.[13]) + Number(statFields(root)?.[14])) / 100;
    expect(rootReaped).toBeLessThan(0.1);
  });

  it("leaves out a root that is gone", async () => {
    const child = spawn("true", { stdio: "ignore" });
    const gone = child.pid as number;
    await new Promise((resolve) => child.once("exit", resolve));
    const live = sh("exec sleep 30");
    const stats = new ProcTreeStats();

    const sampled = stats.sample([
      { name: "gone", pid: gone },
      { name: "live", pid: live },
    ]);

    expect([...sampled.keys()]).toEqual(["live"]);
  });

  it("reads /proc once for all the roots of a sample", async () => {
    const first = sh("sleep 30 & wait");
    const second = sh("sleep 30 & sleep 30 & wait");
    const [firstSleep] = await childrenNamed(first, "sleep", 1);
    const secondSleeps = await childrenNamed(second, "sleep", 2);
    const stats = new ProcTreeStats({ pageSizeBytes: PAGE });

    const sampled = stats.sample([
      { name: "first", pid: first },
      { name: "second", pid: second },
    ]);

    expect(stats.scans).toBe(1);
    const rss = (pids: number[]) => pids.reduce((sum, pid) => sum + rssPages(pid) * PAGE, 0);
    expect(sampled.get("first")?.rssBytes).toBe(rss([first, firstSleep as number]));
    expect(sampled.get("second")?.rssBytes).toBe(rss([second, ...secondSleeps]));
  });

  it("makes no pass over /proc for no roots", () => {
    const stats = new ProcTreeStats();

    expect(stats.sample([]).size).toBe(0);
    expect(stats.scans).toBe(0);
  });

  it("finds the kernel's page size by default", async () => {
    const pid = sh("exec sleep 30");
    await until("sleep to sleep", () =>
      comm(pid) === "sleep" && statFields(pid)?.[0] === "S" ? true : undefined,
    );

    const tree = new ProcTreeStats().sample([{ name: "s", pid }]).get("s");

    // The kernel's own page size, as status (kB) and statm (pages) tell it of the same memory.
    const vmRssKiB = Number(
      /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1],
    );
    const residentPages = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]);
    expect((tree?.rssBytes ?? 0) / rssPages(pid)).toBe((vmRssKiB * 1_024) / residentPages);
  });
});

describe("ProcTreeStats on a made-up /proc", () => {
  let proc: string;

  beforeAll(() => {
    proc = mkdtempSync(path.join(tmpdir(), "procmon-proc-"));
  });

  afterAll(() => {
    rmSync(proc, { recursive: true, force: true });
  });

  interface Fake {
    readonly pid: number;
    readonly ppid: number;
    readonly comm?: string;
    readonly state?: string;
    /** utime, stime, cutime, cstime. */
    readonly ticks?: readonly [number, number, number, number];
    readonly rss?: number;
    readonly environ?: readonly string[];
  }

  /** A fresh /proc holding `processes`, and `smaps` for self if given. */
  function fakeProc(processes: readonly Fake[], smaps?: string): string {
    const root = mkdtempSync(path.join(proc, "p-"));
    for (const p of processes) {
      const dir = path.join(root, String(p.pid));
      mkdirSync(dir);
      const [utime, stime, cutime, cstime] = p.ticks ?? [0, 0, 0, 0];
      // Fields 3 to 24 of proc(5), and a few after.
      const fields = [p.state ?? "S", p.ppid, p.pid, p.pid, 0, -1, 4194560, 10, 0, 0, 0];
      fields.push(utime, stime, cutime, cstime, 20, 0, 1, 0, 12345, 1000000, p.rss ?? 0, 1, 2);
      writeFileSync(path.join(dir, "stat"), `${p.pid} (${p.comm ?? "x"}) ${fields.join(" ")}\n`);
      if (p.environ) writeFileSync(path.join(dir, "environ"), `${p.environ.join("\0")}\0`);
    }
    mkdirSync(path.join(root, "self"));
    if (smaps !== undefined) writeFileSync(path.join(root, "self", "smaps"), smaps);
    return root;
  }

  const SHIM = 10;
  const marked = (name: string, instance = "i1") => [
    "PATH=/bin",
    `PROCMON_INSTANCE=${instance}`,
    `PROCMON_NAME=${name}`,
  ];

  it("parses comms with spaces and parentheses, and counts a zombie's time but no memory", () => {
    const dir = fakeProc([
      { pid: 100, ppid: SHIM, comm: "a) (b", ticks: [10, 5, 30, 5], rss: 100 },
      { pid: 101, ppid: 100, comm: "x) S 1 (", ticks: [20, 0, 40, 0], rss: 50 },
      { pid: 102, ppid: 101, state: "Z", ticks: [3, 2, 0, 0], rss: 7 },
    ]);
    const stats = new ProcTreeStats({ procDir: dir, pageSizeBytes: PAGE });

    const tree = stats.sample([{ name: "a", pid: 100 }]).get("a");

    expect(tree).toEqual({ cpuSeconds: (50 + 60 + 5) / 100, rssBytes: 150 * PAGE });
  });

  it("counts what was reparented to the shim in the tree its PROCMON_NAME names", () => {
    const dir = fakeProc([
      { pid: SHIM, ppid: 1, rss: 1_000, ticks: [500, 0, 0, 0] },
      { pid: 100, ppid: SHIM, rss: 100, environ: marked("a") },
      { pid: 110, ppid: SHIM, rss: 200, environ: marked("b") },
      // Escaped from a's tree, with a child of its own.
      { pid: 200, ppid: SHIM, rss: 10, ticks: [1, 0, 0, 0], environ: marked("a") },
      { pid: 201, ppid: 200, rss: 20, ticks: [2, 0, 0, 0] },
      // Another registry's marker, a name not asked about, no name at all (a probe).
      { pid: 300, ppid: SHIM, rss: 40, environ: marked("a", "other") },
      { pid: 400, ppid: SHIM, rss: 80, environ: marked("c") },
      { pid: 450, ppid: SHIM, rss: 160, environ: ["PROCMON_INSTANCE=i1"] },
      // Named a, but reparented to init, not to the shim.
      { pid: 500, ppid: 1, rss: 320, environ: marked("a") },
    ]);
    const stats = new ProcTreeStats({
      procDir: dir,
      pageSizeBytes: PAGE,
      shimPid: () => SHIM,
      instance: "i1",
    });

    const sampled = stats.sample([
      { name: "a", pid: 100 },
      { name: "b", pid: 110 },
    ]);

    expect(sampled.get("a")).toEqual({ cpuSeconds: 0.03, rssBytes: 130 * PAGE });
    expect(sampled.get("b")).toEqual({ cpuSeconds: 0, rssBytes: 200 * PAGE });
  });

  it("looks for nothing reparented without a shim", () => {
    const dir = fakeProc([
      { pid: 100, ppid: SHIM, rss: 100, environ: marked("a") },
      { pid: 200, ppid: SHIM, rss: 10, environ: marked("a") },
    ]);
    const withoutShim = new ProcTreeStats({ procDir: dir, pageSizeBytes: PAGE });
    const shimGone = new ProcTreeStats({
      procDir: dir,
      pageSizeBytes: PAGE,
      shimPid: () => undefined,
    });

    for (const stats of [withoutShim, shimGone]) {
      expect(stats.sample([{ name: "a", pid: 100 }]).get("a")?.rssBytes).toBe(100 * PAGE);
    }
  });

  it("reads the page size from the first KernelPageSize of smaps, else 4096", () => {
    const smaps = [
      "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/node",
      "Size:                328 kB",
      "KernelPageSize:       64 kB",
      "MMUPageSize:          64 kB",
      "",
    ].join("\n");
    const with64k = fakeProc([{ pid: 100, ppid: 1, rss: 3 }], smaps);
    const withoutSmaps = fakeProc([{ pid: 100, ppid: 1, rss: 3 }]);

    const sampled64k = new ProcTreeStats({ procDir: with64k }).sample([{ name: "a", pid: 100 }]);
    const sampled4k = new ProcTreeStats({ procDir: withoutSmaps }).sample([
      { name: "a", pid: 100 },
    ]);

    expect(sampled64k.get("a")?.rssBytes).toBe(3 * 65_536);
    expect(sampled4k.get("a")?.rssBytes).toBe(3 * 4_096);
  });

  it("divides the ticks by the clock rate given", () => {
    const dir = fakeProc([{ pid: 100, ppid: 1, ticks: [600, 400, 0, 0] }]);

    const tree = new ProcTreeStats({ procDir: dir, clockTicksPerSecond: 250 })
      .sample([{ name: "a", pid: 100 }])
      .get("a");

    expect(tree?.cpuSeconds).toBe(4);
  });
});
