// procmon-shim against PROTOCOL.md: the real binary on a socket pair, spoken
// to with the codec of ./shim-client.ts. Every test runs once per binary
// built (-O2, and -fsanitize=address,undefined when `build.mjs --sanitize`
// made it), and fails on any sanitizer report on the shim's stderr.
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  CREDIT_INITIAL,
  creditFrame,
  exitFrame,
  FrameWriter,
  helloFrame,
  procStat,
  type ShimConnection,
  type ShimFrame,
  ShimHarness,
  type ShimOptions,
  signalFrame,
  spawnWriter,
  T,
  WAIT_MS,
  withTimeout,
} from "./shim-client.js";

const BUILD = path.join(import.meta.dirname, "../../native/build");
const BINARIES = [
  { label: "procmon-shim -O2", file: path.join(BUILD, "procmon-shim"), make: "" },
  {
    label: "procmon-shim-asan (address,undefined)",
    file: path.join(BUILD, "procmon-shim-asan"),
    make: " --sanitize",
  },
];
const built = BINARIES.filter((b) => existsSync(b.file));
for (const b of BINARIES) {
  if (!existsSync(b.file))
    console.warn(`skipping ${b.label}: not built (node packages/daemon/native/build.mjs${b.make})`);
}
const root = process.getuid?.() === 0;
const valgrind = existsSync("/usr/bin/valgrind");
if (!valgrind) console.warn("skipping the valgrind run: no /usr/bin/valgrind");
if (!root) console.warn("skipping the uid/gid tests: they need root (CAP_SETUID, CAP_SETGID)");

/** The environment of most children: a PATH for their shell, and their name. */
const PATH_ENV = "PATH=/usr/bin:/bin";
const STAGE = { pipes: 0, clone: 1, setgroups: 3, setresuid: 5, chdir: 6, execve: 8 } as const;
const ERRNO = { EPERM: 1, ENOENT: 2, EAGAIN: 11, EACCES: 13, ENOTDIR: 20, EMFILE: 24, ENOEXEC: 8 };

type Exited = Extract<ShimFrame, { type: "exited" }>;

/** A process a test caused outside the shim's reach: killed after the test if still the same. */
interface Stray {
  readonly pid: number;
  readonly startTime: bigint;
}

let dir: string;
const running: ShimHarness[] = [];
/** Names the --listen sockets of the whole file (both binaries' tests share `dir`). */
let sockets = 0;
const strays: Stray[] = [];

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), "procmon-shim-test-")));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const h of running.splice(0)) await shutDown(h);
  for (const s of strays.splice(0)) if (alive(s)) process.kill(s.pid, "SIGKILL");
});

/**
 * Ends what the test left: its children's trees, through the shim, then the
 * shim. A --listen shim outlives its socket: it is killed, and its children
 * die with it.
 */
async function shutDown(h: ShimHarness): Promise<void> {
  if (h.listening && h.running) {
    h.process.kill("SIGKILL");
  } else if (h.running && !h.socketEnded) {
    const open = h.frames.flatMap((f) =>
      f.type === "spawned" && !h.frames.some((e) => e.type === "exited" && e.id === f.id)
        ? [f.id]
        : [],
    );
    for (const id of open) h.send(signalFrame(id, 9, 1));
    await Promise.all(open.map((id) => h.exitOf(id).catch(() => undefined)));
    h.socket.end();
  }
  await withTimeout(h.exited, "the shim to exit").catch(() => h.process.kill("SIGKILL"));
  // Should the shim have failed at that, its children, if still the same processes.
  for (const c of [h, ...h.connections]) {
    c.socket.destroy();
    for (const f of c.frames)
      if ((f.type === "spawned" || f.type === "child") && alive(f)) process.kill(f.pid, "SIGKILL");
  }
  expect(h.stderr).not.toMatch(/Sanitizer|runtime error/);
}

function alive(s: Stray): boolean {
  const now = procStat(s.pid);
  return now !== undefined && now.startTime === s.startTime && now.state !== "Z";
}

function stray(pid: number): Stray {
  const st = procStat(pid);
  if (st === undefined) throw new Error(`process ${pid} is gone already`);
  const s = { pid, startTime: st.startTime };
  strays.push(s);
  return s;
}

/** Polls what no event announces (a state in /proc) every 10 ms, up to WAIT_MS. */
async function until(what: string, check: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => procStat(p)?.ppid === pid);
}

function openFds(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`);
}

/** Whether fd `fd` of `pid` is close-on-exec; true if it closed meanwhile (it leaks nothing). */
function closeOnExec(pid: number, fd: string): boolean {
  let info: string;
  try {
    info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
  } catch {
    return true;
  }
  const flags = info.match(/^flags:\s+(\d+)/m)?.[1] ?? "0";
  return (Number.parseInt(flags, 8) & 0o2000000) !== 0;
}

/** utime + stime of `pid`, in clock ticks. */
function cpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

function rssKib(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)/m);
  return Number(line?.[1]);
}

function statusField(text: string, field: string): string {
  return text.match(new RegExp(`^${field}:[ \\t]*(.*)$`, "m"))?.[1]?.trim() ?? "";
}

/** A file of `mode` in the test's directory. */
function file(name: string, content: string, mode: number): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

/** A copy of `binary` that any uid may run (the checkout may sit in a 0700 directory). */
function publicCopy(binary: string): string {
  const d = path.join(dir, "public");
  mkdirSync(d, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(d, 0o755);
  const copy = path.join(d, path.basename(binary));
  copyFileSync(binary, copy);
  chmodSync(copy, 0o755);
  return copy;
}

it("builds procmon-shim when a C compiler can (npm ci runs build.mjs)", () => {
  const cc = spawnSync(process.env.CC || "cc", ["--version"], { stdio: "ignore" });
  if (cc.error !== undefined) {
    console.warn("no C compiler here: procmon-shim is not expected to be built");
    return;
  }
  expect(existsSync(path.join(BUILD, "procmon-shim"))).toBe(true);
});

it("build.mjs without a C compiler warns and exits 0, so that npm ci goes on", () => {
  const script = path.join(import.meta.dirname, "../../native/build.mjs");
  const result = spawnSync(process.execPath, [script], {
    env: { PATH: "/nonexistent" },
    encoding: "utf8",
  });
  expect(result.status).toBe(0);
  expect(result.stderr).toContain(
    "procmon: no C compiler: procmon-shim not built; procmond will spawn from Node (no process survival)",
  );
});

describe.each(built)("$label", ({ file: binary }) => {
  /** Starts a shim on a socket pair, shut down after the test. */
  function start(options: ShimOptions = {}): ShimHarness {
    const h = new ShimHarness(binary, options);
    running.push(h);
    return h;
  }

  async function ready(options: ShimOptions = {}): Promise<ShimHarness> {
    const h = start(options);
    await h.handshake();
    return h;
  }

  /** Runs one child to its end and returns its stdout. */
  async function run(h: ShimHarness, id: number, script: string, env = [PATH_ENV]) {
    await h.spawned({ id, path: "/bin/sh", argv: ["sh", "-c", script], env });
    const exit = await h.exitOf(id);
    return { exit, out: h.output(id, 1).toString(), err: h.output(id, 2).toString() };
  }

  describe("the handshake", () => {
    it("answers HELLO with the magic, version 2, reserved 0, its pid and held 0; --version says 2", async () => {
      const h = start();
      const hello = await h.handshake();
      expect(hello).toEqual({
        type: "hello",
        magic: 0x534d5250,
        version: 2,
        reserved: 0,
        pid: h.pid,
        held: 0,
      });
      expect(h.frames).toHaveLength(1);
      const version = spawnSync(binary, ["--version"], { encoding: "utf8" });
      expect(version.stdout).toBe("procmon-shim 2\n");
      expect(version.status).toBe(0);
    });

    it("answers a daemon of protocol 3 with its own HELLO (version 2), then closes and exits 1", async () => {
      const h = start();
      // A version 3 HELLO may be longer: the version alone decides.
      h.send(new FrameWriter().u32(0x534d5250).u16(3).u16(0).u32(77).frame(T.HELLO));
      const hello = await h.waitFor("HELLO", (f): f is ShimFrame => f.type === "hello");
      expect(hello).toMatchObject({ version: 2, held: 0 });
      await h.closed();
      expect((await withTimeout(h.exited, "exit")).code).toBe(1);
      expect(h.stderr).toMatch(/protocol 3, this shim 2/);
      expect(h.frames).toHaveLength(1);
    });
  });

  describe("SPAWN", () => {
    it("runs path with argv as given, argv[0] included", async () => {
      const h = await ready();
      const argv = ["custom-zero", "-c", "cat /proc/$$/cmdline", "two words", ""];
      await h.spawned({ id: 1, path: "/bin/sh", argv, env: [PATH_ENV] });
      await h.exitOf(1);
      expect(h.output(1, 1).toString()).toBe(`${argv.join("\0")}\0`);
    });

    it("gives the child the env as given and nothing else", async () => {
      const h = await ready();
      const env = ["A=1", "B=two words", "EMPTY=", "PROCMON_NAME=env-test"];
      await h.spawned({ id: 1, path: "/bin/cat", argv: ["cat", "/proc/self/environ"], env });
      await h.spawned({ id: 2, path: "/bin/cat", argv: ["cat", "/proc/self/environ"], env: [] });
      await Promise.all([h.exitOf(1), h.exitOf(2)]);
      expect(h.output(1, 1).toString()).toBe(`${env.join("\0")}\0`);
      expect(h.output(2, 1).length).toBe(0);
    });

    it("runs in cwd, or in the shim's own when cwd is empty", async () => {
      const own = mkdtempSync(path.join(dir, "own-"));
      const h = await ready({ cwd: own });
      await h.spawned({ id: 1, path: "/bin/pwd", argv: ["pwd"], cwd: dir });
      await h.spawned({ id: 2, path: "/bin/pwd", argv: ["pwd"], cwd: "" });
      await Promise.all([h.exitOf(1), h.exitOf(2)]);
      expect(h.output(1, 1).toString()).toBe(`${dir}\n`);
      expect(h.output(2, 1).toString()).toBe(`${own}\n`);
    });

    it("makes the child the leader of a new session and process group", async () => {
      const h = await ready();
      const spawned = await h.spawned({
        id: 1,
        path: "/bin/cat",
        argv: ["cat", "/proc/self/stat"],
      });
      await h.exitOf(1);
      const text = h.output(1, 1).toString();
      const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
      expect([Number(text.split(" ")[0]), Number(f[2]), Number(f[3])]).toEqual([
        spawned.pid,
        spawned.pid,
        spawned.pid,
      ]);
      expect(procStat(h.pid)?.sid).not.toBe(spawned.pid);
    });

    it("gives the child default dispositions and an empty mask, whatever the shim had", async () => {
      // The shim inherits ignored signals, and blocks SIGCHLD and SIGPIPE itself.
      const h = await ready({ shellPrefix: "trap '' INT TERM HUP USR1 PIPE" });
      const shim = readFileSync(`/proc/${h.pid}/status`, "utf8");
      expect(BigInt(`0x${statusField(shim, "SigBlk")}`)).not.toBe(0n);
      const { out } = await run(h, 1, "grep -E '^Sig(Blk|Ign):' /proc/self/status");
      expect(out).toBe("SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    });

    it("gives the child /dev/null, its two pipes, and no other fd", async () => {
      // fds 4 and 5 are pipes the shim inherits from its parent, not close-on-exec.
      const h = await ready({ extraFds: 2 });
      expect(readdirSync(`/proc/${h.pid}/fd`)).toEqual(expect.arrayContaining(["4", "5"]));
      const { pid } = await h.spawned({ id: 1, path: "/bin/sleep", argv: ["sleep", "30"] });
      // Past its start-up, where the dynamic loader opens libraries for a moment.
      await until("sleep to sleep", () =>
        /nanosleep/.test(readFileSync(`/proc/${pid}/wchan`, "utf8")),
      );
      const fds = readdirSync(`/proc/${pid}/fd`);
      const targets = fds.map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
      expect(fds).toEqual(["0", "1", "2"]);
      expect(targets[0]).toBe("/dev/null");
      expect(targets[1]).toMatch(/^pipe:/);
      expect(targets[2]).toMatch(/^pipe:/);
      expect(targets[1]).not.toBe(targets[2]);
      // The shim's own fds (the socket, epoll, signalfd, /dev/null, pipes) are all close-on-exec;
      // the others it inherited, as this test's process did (from whatever started vitest).
      const leaked = openFds(process.pid).filter((fd) => !closeOnExec(process.pid, fd));
      const inherited = new Set(["4", "5", ...leaked]);
      const own = openFds(h.pid).filter((fd) => Number(fd) >= 3 && !inherited.has(fd));
      expect(own.length).toBeGreaterThanOrEqual(6);
      for (const fd of own) expect(closeOnExec(h.pid, fd), `fd ${fd}`).toBe(true);
    });

    it.runIf(root)(
      "switches uid, gid, or both, and drops the supplementary groups (root)",
      async () => {
        const h = await ready({ wrapper: ["setpriv", "--groups=4,24"] });
        const cases = [
          { flags: 0, ids: ["0", "0", "4 24"] },
          { flags: 3, ids: ["65534", "65534", ""] },
          { flags: 1, ids: ["65534", "0", ""] },
          { flags: 2, ids: ["0", "65534", ""] },
        ];
        for (const [i, c] of cases.entries()) {
          const id = i + 1;
          const spawn = { id, path: "/bin/cat", argv: ["cat", "/proc/self/status"] };
          await h.spawned({ ...spawn, flags: c.flags, uid: 65534, gid: 65534 });
          await h.exitOf(id);
          const status = h.output(id, 1).toString();
          const ids = ["Uid", "Gid", "Groups"].map((k) => statusField(status, k));
          expect(ids, `flags ${c.flags}`).toEqual([
            `${c.ids[0]}\t${c.ids[0]}\t${c.ids[0]}\t${c.ids[0]}`,
            `${c.ids[1]}\t${c.ids[1]}\t${c.ids[1]}\t${c.ids[1]}`,
            c.ids[2],
          ]);
        }
      },
    );
  });

  describe("SPAWN_FAILED", () => {
    /** Asserts the failure, and that nothing of the child is left (no child of the shim). */
    async function fails(h: ShimHarness, fields: Parameters<ShimHarness["spawn"]>[0]) {
      const answer = await h.spawn(fields);
      expect(childrenOf(h.pid)).toEqual([]);
      return answer;
    }

    it("ENOENT at execve for a missing executable", async () => {
      const h = await ready();
      const answer = await fails(h, { id: 1, path: path.join(dir, "missing"), argv: ["missing"] });
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.ENOENT,
        stage: STAGE.execve,
      });
    });

    it("EACCES at execve for a file without execute permission", async () => {
      const h = await ready();
      const p = file("not-executable", "#!/bin/sh\n", 0o644);
      const answer = await fails(h, { id: 1, path: p, argv: [p] });
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.EACCES,
        stage: STAGE.execve,
      });
    });

    it("ENOEXEC at execve for an executable no kernel loader knows", async () => {
      const h = await ready();
      const p = file("garbage", "\x01\x02 not a program\n", 0o755);
      const answer = await fails(h, { id: 1, path: p, argv: [p] });
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.ENOEXEC,
        stage: STAGE.execve,
      });
    });

    it("ENOENT and ENOTDIR at chdir for a missing cwd and a file as cwd", async () => {
      const h = await ready();
      const missing = path.join(dir, "no-such-dir");
      const notDir = file("plain", "", 0o644);
      const a = await fails(h, { id: 1, path: "/bin/true", argv: ["true"], cwd: missing });
      const b = await fails(h, { id: 2, path: "/bin/true", argv: ["true"], cwd: notDir });
      expect(a).toEqual({ type: "spawn_failed", id: 1, errno: ERRNO.ENOENT, stage: STAGE.chdir });
      expect(b).toEqual({ type: "spawn_failed", id: 2, errno: ERRNO.ENOTDIR, stage: STAGE.chdir });
    });

    it("EMFILE at the pipes when the shim is out of fds (ulimit -n 9), and goes on", async () => {
      const h = await ready({ shellPrefix: "ulimit -n 9" });
      const a = await fails(h, { id: 1, path: "/bin/true", argv: ["true"] });
      const b = await fails(h, { id: 2, path: "/bin/true", argv: ["true"] });
      expect(a).toEqual({ type: "spawn_failed", id: 1, errno: ERRNO.EMFILE, stage: STAGE.pipes });
      expect(b).toMatchObject({ errno: ERRNO.EMFILE, stage: STAGE.pipes });
      expect(readdirSync(`/proc/${h.pid}/fd`).length).toBeLessThanOrEqual(9);
    });

    it.runIf(root)("EAGAIN at vfork when the shim's uid is at RLIMIT_NPROC (root)", async () => {
      const shim = publicCopy(binary);
      const h = new ShimHarness(shim, {
        wrapper: ["prlimit", "--nproc=1"],
        uid: 65534,
        gid: 65534,
        // LeakSanitizer's check at exit needs a thread, which the limit refuses too.
        env: { ...process.env, ASAN_OPTIONS: "detect_leaks=0" },
      });
      running.push(h);
      await h.handshake();
      const answer = await fails(h, { id: 1, path: "/bin/true", argv: ["true"] });
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.EAGAIN,
        stage: STAGE.clone,
      });
    });

    it.runIf(root)("EPERM at setgroups for a shim that is not root (root)", async () => {
      const shim = publicCopy(binary);
      const h = new ShimHarness(shim, { uid: 65534, gid: 65534 });
      running.push(h);
      await h.handshake();
      const fields = { id: 1, path: "/bin/true", argv: ["true"], flags: 1, uid: 0 };
      const answer = await fails(h, fields);
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.EPERM,
        stage: STAGE.setgroups,
      });
    });

    it.runIf(root)("EPERM at setresuid for a root shim without CAP_SETUID (root)", async () => {
      const wrapper = ["setpriv", "--bounding-set=-setuid", "--inh-caps=-setuid"];
      const h = await ready({ wrapper });
      const fields = { id: 1, path: "/bin/true", argv: ["true"], flags: 3, uid: 65534, gid: 65534 };
      const answer = await fails(h, fields);
      expect(answer).toEqual({
        type: "spawn_failed",
        id: 1,
        errno: ERRNO.EPERM,
        stage: STAGE.setresuid,
      });
    });
  });

  describe("malformed frames: ERROR, then the socket closes and the shim exits 1", () => {
    const length = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const spawnOf = (overrides: Partial<Parameters<typeof spawnWriter>[0]> = {}) =>
      spawnWriter({ id: 1, path: "/bin/true", argv: ["true"], ...overrides }).frame(T.SPAWN);
    const truncated = (frame: Buffer, cut: number) =>
      Buffer.concat([length(frame.length - 4 - cut), frame.subarray(4, frame.length - cut)]);
    const cases: [string, () => Buffer, RegExp][] = [
      [
        "a length over MAX_FRAME",
        () => length(1_048_577),
        /frame length 1048577 is not 1 to 1048576/,
      ],
      ["a length of 0", () => length(0), /frame length 0/],
      ["a truncated SPAWN", () => truncated(spawnOf(), 2), /SPAWN: the frame ends inside memo/],
      [
        "bytes after the fields",
        () => new FrameWriter().u32(1).u8(1).u32(5).u8(0).frame(T.CREDIT),
        /CREDIT: 1 bytes after/,
      ],
      [
        "a CREDIT of version 1 (no stream)",
        () => new FrameWriter().u32(1).u32(5).frame(T.CREDIT),
        /CREDIT: the frame ends inside bytes/,
      ],
      ["a CREDIT of stream 3", () => creditFrame(1, 3, 5), /CREDIT: stream 3 is not 1 or 2/],
      [
        "an EXIT with a payload",
        () => new FrameWriter().u8(0).frame(T.EXIT),
        /EXIT: 1 bytes after/,
      ],
      ["an unknown type", () => new FrameWriter().u32(1).frame(42), /unknown frame type 42/],
      [
        "a shim's frame type",
        () => new FrameWriter().u32(1).u8(1).frame(T.EOF),
        /unknown frame type 8/,
      ],
      ["a NUL in a str", () => spawnOf({ path: "/bin/t\0rue" }), /SPAWN: path holds a NUL byte/],
      [
        "a NUL in a list item",
        () => spawnOf({ env: ["A=1", "B=\0"] }),
        /SPAWN: env holds a NUL byte/,
      ],
      [
        "a count over 65,536",
        () =>
          new FrameWriter()
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(0)
            .str("n")
            .str("/bin/true")
            .u32(65_537)
            .frame(T.SPAWN),
        /SPAWN: argv has 65537 items, over 65536/,
      ],
      ["a name over 255 bytes", () => spawnOf({ name: "n".repeat(256) }), /name is 256 bytes/],
      ["a memo over 4,096 bytes", () => spawnOf({ memo: "m".repeat(4097) }), /memo is 4097 bytes/],
      ["unknown flags", () => spawnOf({ flags: 4 }), /flags 0x4 has unknown bits/],
      ["signo 0", () => signalFrame(1, 0, 0), /signo 0 is not 1 to 64/],
      ["signo 65", () => signalFrame(1, 65, 0), /signo 65/],
      ["scope 2", () => new FrameWriter().u32(1).i32(9).u8(2).frame(T.SIGNAL), /scope 2/],
      ["a second HELLO", () => helloFrame(), /the handshake is over/],
    ];
    it.each(cases)("%s", async (_, frame, message) => {
      const h = await ready();
      h.send(frame());
      const error = await h.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: expect.stringMatching(message) });
      await h.closed();
      expect((await withTimeout(h.exited, "exit")).code).toBe(1);
    });

    it.each([
      ["a first frame that is not HELLO", () => spawnOf(), /first frame must be HELLO/],
      ["a wrong magic", () => helloFrame(2, 0x12345678), /magic 0x12345678/],
      ["a reserved field not 0", () => helloFrame(2, 0x534d5250, 1), /reserved is 1/],
    ] as [string, () => Buffer, RegExp][])("%s", async (_, frame, message) => {
      const h = start();
      h.send(frame());
      const error = await h.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: expect.stringMatching(message) });
      await h.closed();
      expect(h.frames).toHaveLength(1);
    });

    it("an id still in use", async () => {
      const h = await ready();
      await h.spawned({ id: 1, path: "/bin/sleep", argv: ["sleep", "30"] });
      h.send(spawnOf());
      const error = await h.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: "SPAWN: id 1 is in use" });
      await h.closed();
      const sleeper = h.frames.find((f) => f.type === "spawned");
      if (sleeper?.type === "spawned") stray(sleeper.pid);
    });

    it("accepts a list of exactly 65,536 items", async () => {
      const h = await ready();
      const argv = ["true", ...Array.from({ length: 65_535 }, () => "x")];
      await h.spawned({ id: 1, path: "/bin/true", argv });
      expect((await h.exitOf(1)).status).toBe(0);
    });
  });

  describe("output", () => {
    it("holds what the socket cannot take, and goes on by itself once the daemon reads again", async () => {
      const h = await ready({ autoCredit: false });
      // Ten children write their whole initial credit, 2.5 MiB in all, while the daemon reads nothing.
      h.socket.pause();
      const writers = Array.from({ length: 10 }, (_, i) => i + 1);
      const script = "head -c 262144 /dev/zero; exec sleep 30";
      for (const id of writers)
        h.send(
          spawnWriter({ id, path: "/bin/sh", argv: ["sh", "-c", script], env: [PATH_ENV] }).frame(
            T.SPAWN,
          ),
        );
      // Past 1 MiB queued the shim reads no pipe and no frame: this SPAWN waits with the pipes.
      h.send(spawnWriter({ id: 99, path: "/bin/true", argv: ["true"] }).frame(T.SPAWN));
      // Stopped: asleep in epoll_wait while a writer is blocked on a full pipe (twice in a row).
      const wchan = (pid: number) => readFileSync(`/proc/${pid}/wchan`, "utf8");
      const heads = () => childrenOf(h.pid).flatMap(childrenOf);
      const stalled = () =>
        /epoll/.test(wchan(h.pid)) && heads().some((pid) => /pipe_write$/.test(wchan(pid)));
      let seen = 0;
      await until("the shim to stop reading", () => {
        seen = stalled() ? seen + 1 : 0;
        return seen >= 2;
      });
      expect(h.frames.map((f) => f.type)).toEqual(["hello"]);
      const rss = rssKib(h.pid);
      h.socket.resume();
      await h.exitOf(99);
      for (const id of writers)
        await h.waitFor(
          `all of ${id}'s output`,
          (f): f is ShimFrame =>
            f.type === "output" && f.id === id && h.output(id, 1).length === CREDIT_INITIAL,
        );
      expect(rss).toBeLessThan(16_384);
    });

    it("keeps each stream's order, sends one EOF each, and EXITED after both", async () => {
      const h = await ready();
      const { out, err } = await run(
        h,
        1,
        "printf 'a\\n'; printf 'b\\n' >&2; printf 'c\\n'; printf 'partial'; printf 'd' >&2",
      );
      expect(out).toBe("a\nc\npartial");
      expect(err).toBe("b\nd");
      const mine = h.frames.filter((f) => "id" in f && f.id === 1).map((f) => f.type);
      expect(mine.filter((t) => t === "eof")).toHaveLength(2);
      expect(mine.at(-1)).toBe("exited");
      expect(mine.indexOf("exited")).toBeGreaterThan(mine.lastIndexOf("output"));
    });

    it("delivers a 1 MiB line whole, in frames of at most 64 KiB", async () => {
      const h = await ready();
      const { out } = await run(h, 1, "head -c 1048576 /dev/zero | tr '\\0' x; echo");
      expect(out).toBe(`${"x".repeat(1_048_576)}\n`);
      const frames = h.frames.filter((f) => f.type === "output");
      expect(frames.length).toBeGreaterThanOrEqual(16);
    });

    it("batches many lines into each frame", async () => {
      const h = await ready();
      const { out } = await run(h, 1, "seq 1 20000");
      const expected = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join("");
      expect(out).toBe(expected);
      expect(h.frames.filter((f) => f.type === "output").length).toBeLessThan(200);
    });

    it("stops reading at no credit (the child blocks), loses nothing, and resumes on CREDIT", async () => {
      const h = await ready({ autoCredit: false });
      const spawned = await h.spawned({
        id: 1,
        path: "/usr/bin/seq",
        argv: ["seq", "1", "600000"],
      });
      await h.waitFor(
        "the initial credit's output",
        (f): f is ShimFrame => f.type === "output" && h.output(1, 1).length >= CREDIT_INITIAL,
      );
      const wchan = () => readFileSync(`/proc/${spawned.pid}/wchan`, "utf8");
      await until("seq to block in its write", () => /pipe_write$/.test(wchan()));
      expect(h.output(1, 1).length).toBe(CREDIT_INITIAL);
      expect(h.frames.some((f) => f.type === "exited")).toBe(false);
      h.autoCredit = true;
      h.send(creditFrame(1, 1, CREDIT_INITIAL));
      await h.exitOf(1, 20_000);
      const expected = Array.from({ length: 600_000 }, (_, i) => `${i + 1}\n`).join("");
      expect(h.output(1, 1).toString()).toBe(expected);
      await h.eofOf(1, 1);
    }, 30_000);
  });

  describe("EXITED", () => {
    const receivedAfterReapMs = (exit: Exited, receivedAt: number) =>
      receivedAt - Number(exit.timeNs / 1_000_000n);

    it("carries the raw status, the reap's wall-clock time and the child's rusage", async () => {
      const h = await ready();
      const before = BigInt(Date.now()) * 1_000_000n;
      const a = await run(h, 1, "exit 7");
      // Date.now() is whole milliseconds: the reap may be later in the same one.
      const after = BigInt(Date.now() + 1) * 1_000_000n;
      expect(a.exit.status).toBe(7 << 8);
      expect(a.exit.timeNs >= before && a.exit.timeNs <= after).toBe(true);
      const busy = await run(h, 2, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
      expect(busy.exit.status).toBe(0);
      expect(busy.exit.utimeUs + busy.exit.stimeUs).toBeGreaterThan(10_000n);
      expect(busy.exit.maxrssKib).toBeGreaterThan(100n);
      expect(busy.exit.maxrssKib).toBeLessThan(1_000_000n);
      const spawned = await h.spawned({ id: 3, path: "/bin/sleep", argv: ["sleep", "30"] });
      h.send(signalFrame(3, 9, 0));
      expect(await h.exitOf(3)).toMatchObject({ pid: spawned.pid, status: 9 });
    });

    it("waits 100 ms of silence for a pipe a grandchild holds open, then EOF follows later", async () => {
      const h = await ready();
      await h.spawned({
        id: 1,
        path: "/bin/sh",
        argv: ["sh", "-c", "sleep 30 & echo $!; exit 3"],
        env: [PATH_ENV],
      });
      const exit = await h.exitOf(1);
      const afterReap = receivedAfterReapMs(exit, Date.now());
      expect(exit.status).toBe(3 << 8);
      expect(afterReap).toBeGreaterThanOrEqual(90);
      // Before the 1 s rule could have sent it, arrival lag allowed for.
      expect(afterReap).toBeLessThan(950);
      expect(h.frames.some((f) => f.type === "eof")).toBe(false);
      const sleeper = stray(Number(h.output(1, 1).toString().trim()));
      process.kill(sleeper.pid, "SIGKILL");
      await Promise.all([h.eofOf(1, 1), h.eofOf(1, 2)]);
    });

    it("comes 1 s after the reap at the latest while a grandchild keeps writing, output after it", async () => {
      const h = await ready();
      const script = "yes tick & echo $!; exit 0";
      await h.spawned({ id: 1, path: "/bin/sh", argv: ["sh", "-c", script], env: [PATH_ENV] });
      const exit = await h.exitOf(1);
      const afterReap = receivedAfterReapMs(exit, Date.now());
      expect(afterReap).toBeGreaterThanOrEqual(950);
      // Arrival lags a loaded machine: the lower bound is the rule's.
      expect(afterReap).toBeLessThan(2_500);
      const at = h.frames.indexOf(exit);
      await h.waitFor(
        "output after EXITED",
        (f): f is ShimFrame => f.type === "output" && h.frames.indexOf(f) > at,
      );
      const ticker = stray(Number(h.output(1, 1).toString().split("\n")[0]));
      process.kill(ticker.pid, "SIGKILL");
      await Promise.all([h.eofOf(1, 1), h.eofOf(1, 2)]);
    });

    it("counts credit after EXITED, for what descendants write to the pipes", async () => {
      const h = await ready();
      const script = "(sleep 0.2; seq 1 200000) & exit 0";
      await h.spawned({ id: 1, path: "/bin/sh", argv: ["sh", "-c", script], env: [PATH_ENV] });
      await h.exitOf(1);
      await h.eofOf(1, 1);
      const expected = Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join("");
      expect(h.output(1, 1).toString()).toBe(expected);
    });
  });

  describe("SIGNAL", () => {
    /**
     * A tree: the child, a sleep in its group, a setsid'd shell with a child
     * (its parent chain intact), and a setsid'd sleep whose parent exited
     * (a double fork: reparented to the shim).
     */
    const TREE = [
      'sleep 1000 & echo "group $!"',
      `setsid sh -c 'echo "session $$"; sleep 1000 & echo "session-child $!"; wait' &`,
      '(setsid sleep 1000 & echo "orphan $!")',
      "wait",
    ].join("\n");

    async function tree(h: ShimHarness, id: number, name: string) {
      const env = [PATH_ENV, `PROCMON_NAME=${name}`];
      const leader = await h.spawned({ id, name, path: "/bin/sh", argv: ["sh", "-c", TREE], env });
      const out = await h.outputMatching(
        id,
        1,
        /(group|session|session-child|orphan) \d+\n.*\n.*\n.*\n/s,
      );
      const pid = (label: string) => Number(out.match(new RegExp(`^${label} (\\d+)$`, "m"))?.[1]);
      const members = {
        leader: stray(leader.pid),
        group: stray(pid("group")),
        session: stray(pid("session")),
        sessionChild: stray(pid("session-child")),
        orphan: stray(pid("orphan")),
      };
      await until("the orphan's reparenting to the shim", () => {
        // Reparented once the subshell is gone; in its own session once setsid(1) has run.
        const st = procStat(members.orphan.pid);
        return st?.ppid === h.pid && st.sid === members.orphan.pid;
      });
      expect(procStat(members.session.pid)?.sid).toBe(members.session.pid);
      return members;
    }

    it("scope 0 reaches the group only", async () => {
      const h = await ready();
      const t = await tree(h, 1, "tree-a");
      h.send(signalFrame(1, 9, 0));
      expect((await h.exitOf(1)).status).toBe(9);
      await until("the group's death", () => !alive(t.group));
      expect([alive(t.session), alive(t.sessionChild), alive(t.orphan)]).toEqual([
        true,
        true,
        true,
      ]);
    });

    it("scope 1 reaches the whole tree, and nothing of another name's", async () => {
      const h = await ready();
      const a = await tree(h, 1, "tree-a");
      const b = await tree(h, 2, "tree-b");
      h.send(signalFrame(1, 9, 1));
      expect((await h.exitOf(1)).status).toBe(9);
      const members = Object.values(a);
      await until("every member's death", () => members.every((m) => !alive(m)));
      expect(Object.values(b).map(alive)).toEqual([true, true, true, true, true]);
    });

    it("ignores an id that has exited: a reused pid is never hit", async () => {
      const h = await ready();
      const first = await h.spawned({ id: 1, path: "/bin/true", argv: ["true"] });
      await h.exitOf(1);
      // Another process of ours takes the pid, if the kernel lets us ask for it (root).
      let holder: ReturnType<typeof spawn> | undefined;
      for (let i = 0; i < 20 && holder === undefined && root; i++) {
        writeFileSync("/proc/sys/kernel/ns_last_pid", String(first.pid - 1));
        const p = spawn("/bin/sleep", ["30"], { stdio: "ignore" });
        if (p.pid === first.pid) holder = p;
        else p.kill("SIGKILL");
      }
      if (holder === undefined) console.warn("pid not reused: only the silence is checked");
      else stray(first.pid);
      h.send(signalFrame(1, 9, 0));
      h.send(signalFrame(1, 9, 1));
      h.send(creditFrame(1, 1, 1000));
      // Frames are handled in order: once this one is answered, the others were.
      await h.spawned({ id: 2, path: "/bin/true", argv: ["true"] });
      const exitAt = h.frames.findIndex((f) => f.type === "exited" && f.id === 1);
      expect(h.frames.slice(exitAt + 1).filter((f) => "id" in f && f.id === 1)).toEqual([]);
      if (holder !== undefined) {
        expect(holder.exitCode).toBe(null);
        expect(procStat(first.pid)?.state).not.toBe("Z");
      }
    });
  });

  describe("CREDIT acknowledges output", () => {
    it("acknowledging more of a stream than was sent is a protocol error", async () => {
      const h = await ready({ autoCredit: false });
      // It lives on: CREDIT for an id the shim no longer holds would be ignored.
      const script = "echo hi; exec sleep 30";
      await h.spawned({ id: 1, path: "/bin/sh", argv: ["sh", "-c", script], env: [PATH_ENV] });
      await h.outputMatching(1, 1, /^hi\n$/);
      // All three bytes sent: acknowledging them is fine, and a fourth is not.
      h.send(creditFrame(1, 1, 3));
      h.send(creditFrame(1, 1, 1));
      const error = await h.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: expect.stringMatching(/^CREDIT: 1 bytes of id 1/) });
      await h.closed();
      expect((await withTimeout(h.exited, "exit")).code).toBe(1);
    });

    it("acknowledging a stream that sent nothing is a protocol error", async () => {
      const h = await ready({ autoCredit: false });
      const script = "echo hi; exec sleep 30";
      await h.spawned({ id: 1, path: "/bin/sh", argv: ["sh", "-c", script], env: [PATH_ENV] });
      await h.outputMatching(1, 1, /^hi\n$/);
      h.send(creditFrame(1, 2, 1));
      const error = await h.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: expect.stringMatching(/stream 2 acknowledged/) });
      await h.closed();
    });
  });

  describe("--listen: the shim outlives its daemon", () => {
    /** A fresh socket path, short enough for sun_path. */
    const socketPath = () => path.join(dir, `l${sockets++}.sock`);

    async function listening(options: ShimOptions = {}) {
      const p = socketPath();
      const h = await ready({ listen: p, ...options });
      return { h, p };
    }

    /** Ends the daemon's side and waits until the shim has closed its own (it is detached then). */
    async function detach(c: ShimConnection): Promise<void> {
      c.socket.end();
      await c.closed();
    }

    /** A FIFO a child blocks on (`read x < FIFO`) until the test writes a line to it. */
    function fifo(name: string): string {
      const p = path.join(dir, name);
      rmSync(p, { force: true });
      expect(spawnSync("mkfifo", [p]).status).toBe(0);
      return p;
    }

    const sh = (
      id: number,
      script: string,
      extra: Partial<Parameters<ShimHarness["spawn"]>[0]> = {},
    ) => ({
      id,
      path: "/bin/sh",
      argv: ["sh", "-c", script],
      env: [PATH_ENV],
      ...extra,
    });

    const lines = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join("");

    it("keeps its children when the daemon goes; the next one gets HELLO, the inventory and the exits", async () => {
      const { h, p } = await listening();
      const go = fifo("go-exit");
      const a = await h.spawned({
        id: 1,
        name: "alpha",
        path: "/bin/sleep",
        argv: ["sleep", "30"],
        memo: "run 1 of alpha",
      });
      const b = await h.spawned(
        sh(2, `read x < ${go}; exit 7`, { name: "beta", memo: '{"run":2}' }),
      );
      const c = await h.spawned({
        id: 3,
        name: "gamma",
        path: "/bin/sleep",
        argv: ["sleep", "30"],
      });
      await detach(h);
      expect(h.running).toBe(true);
      // Beta exits while no daemon is attached.
      writeFileSync(go, "\n");
      await until("beta's reap", () => procStat(b.pid) === undefined);
      // A millisecond on: Date.now() is the reap's time truncated, and may equal its millisecond.
      const attachedAt = BigInt(Date.now() + 1) * 1_000_000n;
      expect([alive(a), alive(c)]).toEqual([true, true]);
      const d = await h.connect(p);
      const { hello, children } = await d.inventory();
      expect(hello).toEqual({
        type: "hello",
        magic: 0x534d5250,
        version: 2,
        reserved: 0,
        pid: h.pid,
        held: 3,
      });
      expect(d.frames.slice(0, 4).map((f) => f.type)).toEqual(["hello", "child", "child", "child"]);
      expect([...children].sort((x, y) => x.id - y.id)).toEqual([
        {
          type: "child",
          id: 1,
          pid: a.pid,
          startTime: a.startTime,
          flags: 0,
          name: "alpha",
          memo: "run 1 of alpha",
        },
        {
          type: "child",
          id: 2,
          pid: b.pid,
          startTime: b.startTime,
          flags: 1,
          name: "beta",
          memo: '{"run":2}',
        },
        {
          type: "child",
          id: 3,
          pid: c.pid,
          startTime: c.startTime,
          flags: 0,
          name: "gamma",
          memo: "",
        },
      ]);
      const exitB = await d.exitOf(2);
      expect(exitB).toMatchObject({ pid: b.pid, status: 7 << 8 });
      expect(exitB.timeNs < attachedAt).toBe(true);
      await Promise.all([d.eofOf(2, 1), d.eofOf(2, 2)]);
      // Business as usual on the new connection.
      d.send(signalFrame(1, 9, 0));
      expect(await d.exitOf(1)).toMatchObject({ pid: a.pid, status: 9 });
      await d.spawned({ id: 4, path: "/bin/echo", argv: ["echo", "fresh"] });
      expect((await d.exitOf(4)).status).toBe(0);
      expect(d.output(4, 1).toString()).toBe("fresh\n");
      // Nothing of the first daemon's traffic is repeated for ids that are done.
      expect(d.frames.filter((f) => f.type === "spawned").map((f) => "id" in f && f.id)).toEqual([
        4,
      ]);
    });

    it("delivers output written while detached, re-sends the unacknowledged, not the acknowledged", async () => {
      const { h, p } = await listening();
      const one = fifo("go-1");
      const two = fifo("go-2");
      const script = `echo acked; echo err-acked >&2; read x < ${one}; echo unacked; echo err-unacked >&2; read x < ${two}; echo detached; echo err-detached >&2`;
      const child = await h.spawned(sh(1, script));
      await h.outputMatching(1, 1, /^acked\n$/);
      await h.outputMatching(1, 2, /^err-acked\n$/);
      // From here on this daemon receives but acknowledges nothing.
      h.autoCredit = false;
      writeFileSync(one, "\n");
      await h.outputMatching(1, 1, /unacked\n$/);
      await h.outputMatching(1, 2, /err-unacked\n$/);
      await detach(h);
      writeFileSync(two, "\n");
      await until("the child's reap", () => procStat(child.pid) === undefined);
      const d = await h.connect(p);
      const { children } = await d.inventory();
      expect(children).toMatchObject([{ id: 1, flags: 1 }]);
      await Promise.all([d.eofOf(1, 1), d.eofOf(1, 2), d.exitOf(1)]);
      expect(d.output(1, 1).toString()).toBe("unacked\ndetached\n");
      expect(d.output(1, 2).toString()).toBe("err-unacked\nerr-detached\n");
      const mine = d.frames.filter((f) => "id" in f && f.id === 1).map((f) => f.type);
      expect(mine.at(-1)).toBe("exited");
      // All acknowledged and EXITED written: the child is let go, a third daemon hears nothing of it.
      await detach(d);
      const e = await h.connect(p);
      expect((await e.inventory()).hello.held).toBe(0);
    });

    it("stops reading a child at --detached-output-buffer while detached, and loses nothing", async () => {
      const { h, p } = await listening({ detachedOutputBuffer: 65_536 });
      const go = fifo("go-flood");
      const child = await h.spawned(sh(1, `read x < ${go}; exec seq 1 200000`));
      await detach(h);
      writeFileSync(go, "\n");
      const wchan = () => readFileSync(`/proc/${child.pid}/wchan`, "utf8");
      // 1.3 MB of lines against 64 KiB kept and a 64 KiB pipe: seq blocks, and stays blocked.
      let seen = 0;
      await until("seq to block in its write while detached", () => {
        seen = /pipe_write$/.test(wchan()) ? seen + 1 : 0;
        return seen >= 3;
      });
      expect(alive({ pid: child.pid, startTime: child.startTime })).toBe(true);
      const d = await h.connect(p);
      await d.inventory();
      await d.exitOf(1, 20_000);
      await d.eofOf(1, 1);
      expect(d.output(1, 1).toString()).toBe(lines(200_000));
    }, 30_000);

    it("binds a 0600 socket, takes one daemon at a time, and survives a bad one", async () => {
      const { h, p } = await listening();
      const st = statSync(p);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      const sleeper = await h.spawned({ id: 1, path: "/bin/sleep", argv: ["sleep", "30"] });
      // A second daemon while the first is attached: in the backlog, unanswered.
      const second = await h.connect(p);
      second.send(helloFrame());
      // The shim works on for the first meanwhile: the answers prove it has read past the HELLO's arrival.
      await h.spawned({ id: 2, path: "/bin/true", argv: ["true"] });
      await h.exitOf(2);
      expect(second.frames).toEqual([]);
      await detach(h);
      const { hello, children } = await second.inventory(true);
      expect(hello.held).toBe(1);
      expect(children).toMatchObject([{ id: 1, pid: sleeper.pid }]);
      // A protocol error on an accepted connection closes it alone.
      second.send(new FrameWriter().u32(1).i32(9).u8(2).frame(T.SIGNAL));
      const error = await second.waitFor("ERROR", (f): f is ShimFrame => f.type === "error");
      expect(error).toMatchObject({ message: expect.stringMatching(/scope 2/) });
      await second.closed();
      expect(h.running).toBe(true);
      expect(alive({ pid: sleeper.pid, startTime: sleeper.startTime })).toBe(true);
      // And so does a version mismatch.
      const old = await h.connect(p);
      old.send(helloFrame(1));
      expect(await old.waitFor("HELLO", (f): f is ShimFrame => f.type === "hello")).toMatchObject({
        version: 2,
        held: 0,
      });
      await old.closed();
      const third = await h.connect(p);
      expect((await third.inventory()).children).toMatchObject([{ id: 1, pid: sleeper.pid }]);
      third.send(signalFrame(1, 9, 0));
      expect(await third.exitOf(1)).toMatchObject({ status: 9 });
      expect(h.running).toBe(true);
    });

    it("EXIT kills what is left of every tree, removes the socket and exits 0", async () => {
      const { h, p } = await listening();
      const script = 'sleep 1000 & echo "group $!"; setsid sleep 1000 & echo "session $!"; wait';
      const leader = await h.spawned(
        sh(1, script, { env: [PATH_ENV, "PROCMON_NAME=tree"], name: "tree" }),
      );
      const out = await h.outputMatching(1, 1, /group \d+\nsession \d+\n/);
      const pid = (label: string) => Number(out.match(new RegExp(`^${label} (\\d+)$`, "m"))?.[1]);
      const tree = [stray(leader.pid), stray(pid("group")), stray(pid("session"))];
      await until("the session's setsid", () => procStat(tree[2]?.pid ?? 0)?.sid === tree[2]?.pid);
      await detach(h);
      const d = await h.connect(p);
      await d.inventory();
      d.send(exitFrame());
      expect((await withTimeout(h.exited, "the shim to exit")).code).toBe(0);
      expect(existsSync(p)).toBe(false);
      await until("every member's death", () => tree.every((m) => !alive(m)));
    });
  });

  describe("the shim itself", () => {
    it("exits 0 when the socket closes without --listen, and its children die with it", async () => {
      const h = await ready();
      const sleeper = await h.spawned({ id: 1, path: "/bin/sleep", argv: ["sleep", "30"] });
      const s = stray(sleeper.pid);
      h.socket.end();
      expect((await withTimeout(h.exited, "the shim to exit")).code).toBe(0);
      await until("the child's death", () => !alive(s));
    });

    it("its children die when it is killed (PR_SET_PDEATHSIG)", async () => {
      const h = await ready();
      const kids: Stray[] = [];
      for (let id = 1; id <= 3; id++) {
        const { pid } = await h.spawned({ id, path: "/bin/sleep", argv: ["sleep", "30"] });
        kids.push(stray(pid));
      }
      expect(kids.map(alive)).toEqual([true, true, true]);
      h.process.kill("SIGKILL");
      await withTimeout(h.exited, "the shim to die");
      await until("every child's death", () => kids.every((k) => !alive(k)));
    });

    it("uses no CPU while idle with 50 idle children", async () => {
      const h = await ready();
      for (let id = 1; id <= 50; id++)
        await h.spawned({ id, path: "/bin/sleep", argv: ["sleep", "1000"] });
      const before = cpuTicks(h.pid);
      // The one fixed wait of the file: idleness is what is measured.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(cpuTicks(h.pid) - before).toBe(0);
    });

    it("holds little memory per idle child (RSS with 0 and 1,000 sleepers)", async () => {
      const h = await ready();
      const empty = rssKib(h.pid);
      for (let id = 1; id <= 1000; id++)
        await h.spawned({ id, path: "/bin/sleep", argv: ["sleep", "1000"] });
      const full = rssKib(h.pid);
      const perChild = ((full - empty) * 1024) / 1000;
      console.info(
        `${path.basename(binary)}: RSS ${empty} KiB idle, ${full} KiB with 1,000 sleepers: ${perChild} B a child`,
      );
      if (!binary.endsWith("-asan")) expect(perChild).toBeLessThanOrEqual(2048);
    }, 60_000);
  });
});

describe.runIf(valgrind && existsSync(path.join(BUILD, "procmon-shim")))(
  "procmon-shim -O2 under valgrind",
  () => {
    it("spawns, reports an exit and a failure, and exits with no error and no leak", async () => {
      const shim = path.join(BUILD, "procmon-shim");
      const wrapper = ["valgrind", "-q", "--error-exitcode=1", "--leak-check=full"];
      const h = new ShimHarness(shim, { wrapper });
      running.push(h);
      h.send(helloFrame());
      await h.waitFor("HELLO", (f): f is ShimFrame => f.type === "hello", 15_000);
      await h.spawned({ id: 1, path: "/bin/echo", argv: ["echo", "hi"] });
      await h.exitOf(1, 15_000);
      expect(h.output(1, 1).toString()).toBe("hi\n");
      expect(await h.spawn({ id: 2, path: "/nonexistent", argv: ["x"] })).toMatchObject({
        errno: 2,
      });
      h.socket.end();
      expect((await withTimeout(h.exited, "valgrind to exit", 15_000)).code).toBe(0);
      expect(h.stderr).toBe("");
    }, 30_000);
  },
);
