// keepup's command line (see the header of bench/keepup.mjs).

import path from "node:path";
import { DAEMON_BIN, ROOT } from "../lib/daemon.mjs";

function defaults() {
  return {
    rounds: 9,
    daemons: [],
    daemonNodeArgs: ["--max-semi-space-size=4"],
    readers: ["grpc", "http2"],
    lines: 200,
    lineBytes: 100,
    tickMs: 10,
    seconds: 8,
    log: "null",
    busy: 0,
    specs: 0,
    stallMs: 0,
    specsSettleMs: 3000,
    keepProbe: false,
    traceDir: undefined,
    out: path.join(ROOT, "bench/results/keepup.json"),
  };
}

/** `--daemon="LABEL=BIN [FLAGS...]"`: { label, bin, flags }. */
function parseDaemon(value) {
  const [label, ...spec] = value.split("=");
  const [bin, ...flags] = spec.join("=").trim().split(/\s+/);
  return { label, bin: path.resolve(bin), flags };
}

const NUMBERS = {
  rounds: "rounds",
  lines: "lines",
  "line-bytes": "lineBytes",
  "tick-ms": "tickMs",
  seconds: "seconds",
  busy: "busy",
  specs: "specs",
  "stall-ms": "stallMs",
  "specs-settle-ms": "specsSettleMs",
};

/** The options of `argv` (`--key=value` each); throws on an unknown one. */
export function parseOptions(argv) {
  const o = defaults();
  for (const arg of argv) {
    const [key, ...rest] = arg.replace(/^--/, "").split("=");
    const value = rest.join("=");
    if (NUMBERS[key]) o[NUMBERS[key]] = Number(value);
    else if (key === "daemon") o.daemons.push(parseDaemon(value));
    else if (key === "daemon-node-args") o.daemonNodeArgs = value.split(/\s+/).filter(Boolean);
    else if (key === "readers") o.readers = value.split(",");
    else if (key === "log") o.log = value;
    else if (key === "keep-probe") o.keepProbe = true;
    else if (key === "trace-dir") o.traceDir = path.resolve(value);
    else if (key === "out") o.out = path.resolve(value);
    else throw new Error(`unknown option ${arg}`);
  }
  if (o.daemons.length === 0) o.daemons.push({ label: "this", bin: DAEMON_BIN, flags: [] });
  return o;
}
