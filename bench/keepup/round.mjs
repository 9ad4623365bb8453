// One keepup round: a fresh daemon, its readers (forked), the flood child, and what they saw.

import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { waitExit, waitFor } from "../lib/run.mjs";
import { cpuOf, killDaemon, memoryOf, readJson, startDaemonIn, stopDaemon } from "./daemon.mjs";
import { summarizeRound } from "./summary.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const READER = path.join(HERE, "reader.mjs");
const FLOOD_CHILD = path.join(HERE, "flood-child.mjs");
const READY_TIMEOUT_MS = 10_000;
const SUMMARY_TIMEOUT_MS = 120_000;
const CALL_TIMEOUT_MS = 15_000;
const RSS_SAMPLE_MS = 100;

/** Resolves with the first JSON line of `child`'s stdout that `pick` accepts. */
function jsonLine(child, pick, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let pending = "";
    const done = (fn, value) => {
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.off("exit", onExit);
      fn(value);
    };
    const onData = (chunk) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue; // Not ours.
        }
        if (pick(parsed)) return done(resolve, parsed);
      }
    };
    const onExit = (code) => done(reject, new Error(`${what} exited (${code}) before answering`));
    const timer = setTimeout(
      () => done(reject, new Error(`${what}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
}

/** Forks each reader and waits until its stream is open: [{ kind, reader, summary }]. */
async function startReaders(run, o, socket, readers) {
  for (const kind of o.readers) {
    const reader = run.track(
      fork(READER, [kind, socket, "flood", String(o.stallMs)], {
        stdio: ["ignore", "pipe", "inherit", "ipc"],
      }),
      `reader ${kind}`,
    );
    const entry = { kind, reader };
    readers.push(entry);
    await jsonLine(reader, (m) => m.ready, READY_TIMEOUT_MS, `reader ${kind}`);
    entry.summary = jsonLine(reader, (m) => m.summary, SUMMARY_TIMEOUT_MS, kind);
    // Awaited in turn later; meanwhile a teardown's rejection is not an unhandled one.
    entry.summary.catch(() => {});
  }
}

/** Adds the flood child; its exit is an "instant death" waiting an hour: not restarted. */
function addFlood(client, o, reportFile) {
  const hour = { seconds: 3600n };
  return client.addProcess(
    {
      name: "flood",
      args: [
        process.execPath,
        FLOOD_CHILD,
        String(o.lines),
        String(o.lineBytes),
        String(o.tickMs),
        String(o.seconds),
        reportFile,
      ],
      threshold: hour,
      minRestartDelay: hour,
      maxRestartDelay: hour,
    },
    { timeoutMs: CALL_TIMEOUT_MS },
  );
}

/** The flood, read: every reader's summary and the child's report (null if it never came). */
async function flood(ctx, daemon, readers) {
  const { o, grandchildren, reportFile } = ctx;
  const added = await addFlood(daemon.client, o, reportFile);
  grandchildren.add(added.pid);
  const summaries = [];
  for (const r of readers) summaries.push((await r.summary).summary);
  // The child may still be writing when every reader was cut off.
  const childReport = await waitFor(
    () => readJson(reportFile),
    (o.seconds + 30) * 1000,
    "the flood child's report",
    100,
  ).catch(() => null);
  return { summaries, childReport, pid: added.pid };
}

/** Round `index` of `build`: { build, round, readers, cut, ... } (see summarizeRound). */
export async function runRound(run, o, build, index, grandchildren) {
  const dir = fs.mkdtempSync(path.join(run.tmp, `r${index}-`));
  const ctx = { o, grandchildren, reportFile: path.join(dir, "child-report.json") };
  const loadStart = os.loadavg();
  const daemon = await startDaemonIn(run, o, build, dir, index);
  const readers = [];
  const rss = [];
  let sampling;
  try {
    await startReaders(run, o, daemon.socket, readers);
    sampling = setInterval(() => {
      const m = memoryOf(daemon.proc.pid);
      if (m) rss.push(m.rssMiB);
    }, RSS_SAMPLE_MS);
    const { summaries, childReport, pid } = await flood(ctx, daemon, readers);
    clearInterval(sampling);
    const hwm = memoryOf(daemon.proc.pid)?.hwmMiB ?? null;
    const cpuS = cpuOf(daemon.proc.pid);
    await daemon.client.removeProcess("flood", { timeoutMs: CALL_TIMEOUT_MS }).catch(() => {});
    grandchildren.delete(pid);
    daemon.client.close();
    await stopDaemon(daemon.proc);
    const probe = readJson(daemon.probeFile) ?? null;
    const loadEnd = os.loadavg();
    const r = { summaries, childReport, probe, rss, hwm, cpuS, loadStart, loadEnd };
    return summarizeRound(o, build, index, r);
  } finally {
    clearInterval(sampling);
    daemon.client.close();
    for (const { reader } of readers) {
      if (!(await waitExit(reader, 2_000))) reader.kill("SIGKILL");
    }
    await killDaemon(daemon.proc);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
