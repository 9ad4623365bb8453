// Process snapshots and exit statuses in their wire form.
import { create } from "@bufbuild/protobuf";
import {
  type ExitStatus as ExitStatusProto,
  ExitStatusSchema,
  type Process as ProcessProto,
  ProcessSchema,
  State,
} from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import type { TreeStats } from "../core/probes.js";
import type { ExitStatus, ProcessView, StateName } from "../core/types.js";
import { specToProto } from "./spec.js";
import { msToDuration, msToTimestamp } from "./time.js";

const STATE: Readonly<Record<StateName, State>> = {
  running: State.RUNNING,
  backoff: State.BACKOFF,
  stopping: State.STOPPING,
  stopped: State.STOPPED,
  exited: State.EXITED,
  failed: State.FAILED,
  waiting: State.WAITING,
};

/** The wire form of how a run ended: exit code or signal, and uptime. */
export function exitStatusToProto(status: ExitStatus): ExitStatusProto {
  return create(ExitStatusSchema, {
    status:
      status.code !== null
        ? { case: "exitCode", value: status.code }
        : status.signal !== null
          ? { case: "signal", value: status.signal }
          : { case: undefined },
    uptime: msToDuration(status.uptimeMs),
  });
}

/**
 * The wire form of a process snapshot; next_restart_at is set in backoff
 * only, cpu_seconds and rss_bytes with `stats` (of its running tree).
 */
export function processToProto(view: ProcessView, stats?: TreeStats): ProcessProto {
  return create(ProcessSchema, {
    spec: specToProto(view.spec),
    state: STATE[view.state],
    pid: view.pid,
    ...(view.startedAtWallMs === undefined
      ? {}
      : { startedAt: msToTimestamp(view.startedAtWallMs) }),
    restartCount: view.restartCount,
    ...(view.lastExit === undefined ? {} : { lastExit: exitStatusToProto(view.lastExit) }),
    ...(view.state === "backoff" && view.nextRestartAtWallMs !== undefined
      ? { nextRestartAt: msToTimestamp(view.nextRestartAtWallMs) }
      : {}),
    restartDelay: msToDuration(view.restartDelayMs),
    lastSpawnError: view.lastSpawnError ?? "",
    ready: view.ready,
    waitingFor: [...view.waitingFor],
    ...(stats === undefined
      ? {}
      : { cpuSeconds: stats.cpuSeconds, rssBytes: BigInt(Math.round(stats.rssBytes)) }),
  });
}
