import { createClient } from "@procmon/client";

/** Adds a process, lists, watches until it has started, then removes it. */
export async function main(socket: string): Promise<{ names: string[]; startedPid: number }> {
  const client = createClient({ socket, timeoutMs: 10_000 });
  try {
    const before = await client.listProcesses();

    const ticker = await client.addProcess({
      name: "ticker",
      args: ["sh", "-c", "while sleep 1; do date; done"],
    });
    const { processes } = await client.listProcesses();

    // Every event after the first snapshot: "added", then "started".
    let startedPid = 0;
    for await (const event of client.watch({ names: ["ticker"], afterSeq: before.lastEventSeq })) {
      if (event.kind.case === "started") {
        startedPid = event.kind.value.pid; // === ticker.pid
        break; // ends the stream
      }
    }

    await client.removeProcess(ticker.spec?.name ?? "ticker");
    return { names: processes.map((p) => p.spec?.name ?? ""), startedPid };
  } finally {
    client.close();
  }
}
