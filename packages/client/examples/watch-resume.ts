import { once } from "node:events";
import { createClient, isNotFound, isOutOfRange, type ProcmonClient } from "@procmon/client";
import type { Process } from "@procmon/client/api";

/**
 * Keeps `table` equal to the daemon's processes: a snapshot, then every change
 * after it, with no gap and no duplicate. `watch()` rides out broken streams
 * and daemon restarts; when resuming is impossible (OUT_OF_RANGE) it lists
 * again. Calls `onChange` after each update; returns once `signal` aborts.
 */
export async function mirror(
  client: ProcmonClient,
  table: Map<string, Process>,
  signal: AbortSignal,
  onChange: () => void,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const { processes, lastEventSeq } = await client.listProcesses({ signal });
      table.clear();
      for (const p of processes) table.set(p.spec?.name ?? "", p);
      onChange();
      for await (const event of client.watch({ afterSeq: lastEventSeq, signal })) {
        // An event is published after the state it describes: what GetProcess
        // answers now is at least as new (or the process is gone already).
        const now =
          event.kind.case === "removed"
            ? undefined
            : await client.getProcess(event.process, { signal }).catch((err: unknown) => {
                if (isNotFound(err)) return undefined;
                throw err;
              });
        if (now) table.set(event.process, now);
        else table.delete(event.process);
        onChange();
      }
    } catch (err) {
      if (signal.aborted) return;
      // The daemon cannot replay what we missed (it was restarted after a
      // crash, or we fell out of its window): list again. Anything else is real.
      if (!isOutOfRange(err)) throw err;
    }
  }
}

/** Mirrors the daemon while a process is added and restarted; returns the pids it saw. */
export async function main(socket: string): Promise<{ added: number; mirrored: number[] }> {
  const client = createClient({ socket, timeoutMs: 10_000 });
  const controller = new AbortController();
  const changes = new EventTarget();
  const table = new Map<string, Process>();
  const mirrored: number[] = [];
  const following = mirror(client, table, controller.signal, () => {
    const pid = table.get("worker")?.pid;
    if (pid && mirrored.at(-1) !== pid) mirrored.push(pid);
    changes.dispatchEvent(new Event("change"));
  });
  /** Resolves once `check()` holds in the mirror; rejects if the mirror fails, or after 10 s. */
  const until = async (check: () => boolean) => {
    const timeout = AbortSignal.timeout(10_000);
    while (!check()) await Promise.race([once(changes, "change", { signal: timeout }), following]);
  };
  try {
    const worker = await client.addProcess({ name: "worker", args: ["sleep", "600"] });
    await until(() => table.get("worker")?.pid === worker.pid);
    const restarted = await client.restartProcess("worker");
    await until(() => table.get("worker")?.pid === restarted.pid);
    await client.removeProcess("worker");
    await until(() => !table.has("worker"));
    return { added: worker.pid, mirrored };
  } finally {
    controller.abort();
    await following;
    client.close();
  }
}
