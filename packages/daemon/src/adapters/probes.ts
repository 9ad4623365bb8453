import http from "node:http";
import https from "node:https";
import net from "node:net";
import { formatDurationMs } from "@procmon/api/duration";
import type { ProbeResult, Prober } from "../core/probes.js";
import { quote } from "../core/quote.js";
import {
  type Child,
  type ChildHandlers,
  SpawnError,
  type Spawner,
  type SpawnRequest,
} from "../core/spawner.js";
import type { ProcessSpec, ReadinessProbe } from "../core/types.js";

/** Settles a check once; later calls are ignored. */
type Settle = (result: ProbeResult) => void;

/** Ends what a check started; called once, whichever way the check settled. */
type Cleanup = () => void;

const OK: ProbeResult = { ok: true };

function failure(error: string): ProbeResult {
  return { ok: false, error };
}

/** An error's errno code where it has one (`ECONNREFUSED`), else its message. */
function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && code !== "") return code;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs one check: `start` begins it and returns what ends it. The check
 * settles at its first result, or fails `label: timed out after ...` once
 * `timeoutMs` has passed; either way the timer is cleared and the cleanup
 * runs, once. A throw from `start` is a failure, never a rejection.
 */
function bounded(
  label: string,
  timeoutMs: number,
  start: (settle: Settle) => Cleanup,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let cleanup: Cleanup | undefined;
    const settle: Settle = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cleanup?.();
      resolve(result);
    };
    const timer = setTimeout(
      () => settle(failure(`${label}: timed out after ${formatDurationMs(timeoutMs)}`)),
      timeoutMs,
    );
    try {
      cleanup = start(settle);
    } catch (err) {
      settle(failure(`${label}: ${reason(err)}`));
    }
    // `start` may settle before it has returned its cleanup.
    if (settled) cleanup?.();
  });
}

/** `host:port`, bracketing an IPv6 address. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Ready once a TCP connection is made; the socket is closed at once. */
function checkTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  const label = `connect ${hostPort(host, port)}`;
  return bounded(label, timeoutMs, (settle) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => settle(OK));
    // Also keeps an error after the settlement (a reset on destroy) from being unhandled.
    socket.on("error", (err) => settle(failure(`${label}: ${reason(err)}`)));
    return () => socket.destroy();
  });
}

/**
 * Ready on a 2xx answer to a GET. The body is read and thrown away (the
 * check settles at its end, so the connection closes cleanly); no agent
 * keeps the socket alive afterwards. Redirects are not followed: a 3xx fails.
 */
function checkHttp(url: string, timeoutMs: number): Promise<ProbeResult> {
  const label = `GET ${url}`;
  return bounded(label, timeoutMs, (settle) => {
    const target = URL.canParse(url) ? new URL(url) : undefined;
    const client =
      target?.protocol === "http:" ? http : target?.protocol === "https:" ? https : undefined;
    if (target === undefined || client === undefined) {
      settle(failure(`${label}: not an http or https URL`));
      return () => {};
    }
    const request = client.get(target, { agent: false }, (response) => {
      const status = response.statusCode ?? 0;
      const result = status >= 200 && status < 300 ? OK : failure(`${label}: ${status}`);
      response.on("end", () => settle(result));
      response.on("error", (err) => settle(failure(`${label}: ${reason(err)}`)));
      response.resume();
    });
    request.on("error", (err) => settle(failure(`${label}: ${reason(err)}`)));
    // Aborts a request still waiting and closes its socket; a no-op once the answer was read.
    return () => request.destroy();
  });
}

/**
 * The probe's command, run as the process itself runs: its environment,
 * directory and ids.
 *
 * The name is left out, so the probe carries no PROCMON_NAME (it still gets
 * the registry's PROCMON_INSTANCE from the spawner, so an orphan sweep finds
 * it). With the process's name, three things would take the probe for the
 * process: the shim's tree signal, whose SIGKILL at a timeout would also hit
 * the process's own descendants reparented to the shim (matched by that
 * name); a later daemon attaching to the shim, which would adopt a probe
 * still running as the process's latest run; and the tree stats, which count
 * what is reparented to the shim under its PROCMON_NAME.
 */
function probeRequest(spec: ProcessSpec, args: readonly string[]): SpawnRequest {
  return {
    args,
    env: spec.env,
    clearEnv: spec.clearEnv,
    cwd: spec.cwd,
    uid: spec.uid,
    gid: spec.gid,
  };
}

/**
 * Ready if the command exits 0. At a timeout its process group is killed.
 * What it leaves running after an exit of its own is not ended here: the
 * spawner no longer signals a child that has exited (its pid may be reused).
 */
function checkExec(
  spawner: Spawner,
  spec: ProcessSpec,
  args: readonly string[],
  timeoutMs: number,
): Promise<ProbeResult> {
  const label = `exec ${quote(args[0] ?? "")}`;
  return bounded(label, timeoutMs, (settle) => {
    let child: Child | undefined;
    let exited = false;
    let ended = false;
    const kill = (): void => {
      if (child !== undefined && !exited) child.signal("SIGKILL");
    };
    const spawnFailure = (err: unknown): ProbeResult =>
      failure(`${label}: ${err instanceof SpawnError ? err.message : reason(err)}`);
    const handlers: ChildHandlers = {
      onExit({ code, signal }) {
        exited = true;
        if (code === 0) settle(OK);
        else settle(failure(`${label}: ${code === null ? `killed by ${signal}` : `exit ${code}`}`));
      },
      // A probe's output is nobody's business; it must only be read, so that it cannot block.
      onOutput() {},
      onSpawned(outcome) {
        if (outcome instanceof SpawnError) {
          settle(spawnFailure(outcome));
          return;
        }
        child = outcome;
        // It came after the check had timed out: nothing waits for it any more.
        if (ended) kill();
      },
    };
    try {
      child = spawner.spawn(probeRequest(spec, args), handlers);
    } catch (err) {
      settle(spawnFailure(err));
    }
    return () => {
      ended = true;
      kill();
    };
  });
}

/**
 * Runs readiness checks: exec through the daemon's spawner, TCP and HTTP with
 * node:net and node:http(s). Every check is asynchronous and bounded by the
 * probe's timeout.
 */
export class ReadinessProber implements Prober {
  readonly #spawner: Spawner;

  /** `spawner` starts the exec checks' commands, as it starts the processes. */
  constructor(spawner: Spawner) {
    this.#spawner = spawner;
  }

  check(spec: ProcessSpec, probe: ReadinessProbe): Promise<ProbeResult> {
    const check = probe.check;
    switch (check.kind) {
      case "tcp":
        return checkTcp(check.host, check.port, probe.timeoutMs);
      case "http":
        return checkHttp(check.url, probe.timeoutMs);
      case "exec":
        return checkExec(this.#spawner, spec, check.args, probe.timeoutMs);
    }
  }
}
