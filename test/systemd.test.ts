// procmond under systemd: Type=notify readiness through NOTIFY_SOCKET, which
// no supervised child inherits, and the readiness line whatever the log level.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Changes } from "./helpers/changes.js";
import { cleanupAll, makeTempDir, startProcmond } from "./helpers/daemon.js";

const receivers: ChildProcess[] = [];
afterEach(async () => {
  for (const receiver of receivers.splice(0)) receiver.kill("SIGKILL");
  await cleanupAll();
});

const has = (command: string) => spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
// Node cannot bind a unix datagram socket: python3 plays systemd's end of it.
const canReceive = has("python3") && has("systemd-notify");
if (!canReceive) {
  console.log("skipped: the NOTIFY_SOCKET test needs python3 and systemd-notify on PATH");
}

/** Binds a datagram socket at `path` as systemd would, collecting every message it gets. */
async function notifyReceiver(path: string): Promise<{ messages: string[]; changes: Changes }> {
  const script = `
import socket, sys, os, array, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i"); fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds: os.close(fd)
    print(json.dumps(msg.decode()), flush=True)
`;
  const receiver = spawn("python3", ["-c", script, path], { stdio: ["ignore", "pipe", "inherit"] });
  receivers.push(receiver);
  const messages: string[] = [];
  const changes = new Changes();
  let pending = "";
  receiver.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      messages.push(JSON.parse(pending.slice(0, nl)) as string);
      pending = pending.slice(nl + 1);
      changes.notify();
    }
  });
  await changes.until(
    () => (messages.includes("bound") ? true : undefined),
    5_000,
    () => new Error("the receiver did not bind"),
  );
  return { messages, changes };
}

describe("systemd", () => {
  it.runIf(canReceive)(
    "Type=notify: READY=1 once the socket is served, and no child inherits NOTIFY_SOCKET",
    async () => {
      const notifySocket = join(makeTempDir("procmon-notify-"), "notify.sock");
      const { messages, changes } = await notifyReceiver(notifySocket);
      const d = await startProcmond([], { NOTIFY_SOCKET: notifySocket });
      await changes.until(
        () => (messages.some((m) => m.includes("READY=1")) ? true : undefined),
        10_000,
        () => new Error(`no READY=1 among ${JSON.stringify(messages)}`),
      );
      expect(messages).toContain(`READY=1\nSTATUS=listening on ${d.socket}`);
      const child = await d.client.addProcess({ name: "child", args: ["sleep", "100"] });
      const environ = readFileSync(`/proc/${child.pid}/environ`, "latin1").split("\0");
      expect(environ.some((v) => v.startsWith("NOTIFY_SOCKET="))).toBe(false);
    },
  );

  it("says procmond listening at --log-level warn, and error", async () => {
    for (const level of ["warn", "error"]) {
      const d = await startProcmond(["--log-level", level]);
      const line = await d.waitForLog((l) => l.msg === "procmond listening");
      expect(line.socket).toBe(d.socket);
      // Nothing else at info got through but the daemon's own comings and goings.
      const lifecycle = ["procmond listening", "registry started"];
      expect(d.logs.filter((l) => l.level === 30 && !lifecycle.includes(String(l.msg)))).toEqual(
        [],
      );
      expect(await d.stop()).toBe(0);
    }
  });
});
