// Every method of the client once, in the order of the README's sections.
// Each `#region` is shown verbatim in packages/client/README.md.
import { createClient, isCancelled, processToJson } from "@procmon/client";
import type { State } from "@procmon/client/api";

/** What each call answered, for a test to check. */
export interface MethodsResult {
  readonly added: { readonly pid: number; readonly state: State };
  readonly gotPid: number;
  readonly json: string;
  readonly names: string[];
  readonly stopped: { readonly pid: number; readonly state: State };
  readonly startedPid: number;
  readonly restartedPid: number;
  readonly restartedAll: number[];
  readonly watched: string[];
  readonly followed: string[];
  readonly aborted: string;
  readonly removed: State;
}

/** Runs every method against the procmond at `socket`; leaves nothing behind. */
export async function main(socket: string): Promise<MethodsResult> {
  // #region createClient
  const client = createClient({ socket, timeoutMs: 10_000 });
  // #endregion createClient
  try {
    // #region addProcess
    const web = await client.addProcess({
      name: "web",
      args: ["sh", "-c", 'echo "listening on $PORT"; exec sleep 600'],
      env: { PORT: "8080" },
      killTime: "3s", // or 3_000 (ms), or { seconds: 3n }
    });
    // Answers once it runs: web.state === State.RUNNING, web.pid > 0.
    // #endregion addProcess

    // #region getProcess
    const got = await client.getProcess("web");
    // got.spec?.args, got.state, got.pid, got.restartCount, got.lastExit...
    // #endregion getProcess

    // #region toJson
    const line = JSON.stringify(processToJson(got));
    // {"spec":{"name":"web",...,"killTime":"3s"},"state":"STATE_RUNNING","pid":...}
    // #endregion toJson

    // #region listProcesses
    const { processes, lastEventSeq } = await client.listProcesses();
    const names = processes.map((p) => p.spec?.name ?? ""); // sorted by name
    // #endregion listProcesses

    // #region stopProcess
    const stopped = await client.stopProcess("web");
    // Answers once it has exited: State.STOPPED, pid 0; it stays stopped until started.
    // #endregion stopProcess

    // #region startProcess
    const started = await client.startProcess("web");
    // #endregion startProcess

    // #region restartProcess
    const restarted = await client.restartProcess("web");
    // A new pid at once, no backoff: restarted.pid !== started.pid.
    // #endregion restartProcess

    // #region restartAll
    const all = await client.restartAll();
    // Every running or backing-off process restarted at once; stopped ones stay stopped.
    // #endregion restartAll

    // #region watchEvents
    // The raw stream: here the retained events after the snapshot, then live ones.
    const watched: string[] = [];
    for await (const event of client.watchEvents({ names: ["web"], afterSeq: lastEventSeq })) {
      watched.push(`${event.seq} ${event.kind.case}`);
      if (event.kind.case === "started" && event.kind.value.pid === all[0]?.pid) break;
    }
    // #endregion watchEvents

    // #region watch
    // Endless: reconnects and resumes after a broken stream or a daemon restart.
    const followed: string[] = [];
    for await (const event of client.watch({ names: ["web"], afterSeq: lastEventSeq })) {
      followed.push(`${event.seq} ${event.kind.case}`);
      if (event.kind.case === "started" && event.kind.value.pid === all[0]?.pid) break;
    }
    // #endregion watch

    // #region callOptions
    const controller = new AbortController();
    const call = client.getProcess("web", { signal: controller.signal, timeoutMs: 2_000 });
    controller.abort(); // the call rejects at once with CANCELLED
    const aborted = await call.then(
      () => "answered",
      (err: unknown) => (isCancelled(err) ? "cancelled" : "failed"),
    );
    // #endregion callOptions

    // #region removeProcess
    const removed = await client.removeProcess("web");
    // Its final state, once it has exited and the name is free again.
    // #endregion removeProcess

    return {
      added: { pid: web.pid, state: web.state },
      gotPid: got.pid,
      json: line,
      names,
      stopped: { pid: stopped.pid, state: stopped.state },
      startedPid: started.pid,
      restartedPid: restarted.pid,
      restartedAll: all.map((p) => p.pid),
      watched,
      followed,
      aborted,
      removed: removed.state,
    };
  } finally {
    // #region close
    client.close(); // later calls reject with FAILED_PRECONDITION
    // #endregion close
  }
}
