// The soak's command line (see the header of bench/soak.mjs).

import path from "node:path";
import { parseArgs } from "node:util";
import { DAEMON_BIN } from "../lib/daemon.mjs";

const USAGE =
  "usage: node bench/soak.mjs [--kills 50] [--shim-kills 5] [--seed N] [--seconds 300] [--clients 6] [--names 20] [--log-level info] [--startup-kill-rate 0] [--daemon PATH]";

function usageError(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse(argv) {
  try {
    return parseArgs({
      args: argv,
      options: {
        kills: { type: "string", default: "50" },
        "shim-kills": { type: "string", default: "5" },
        seed: { type: "string" },
        seconds: { type: "string", default: "300" },
        clients: { type: "string", default: "6" },
        names: { type: "string", default: "20" },
        "log-level": { type: "string", default: "info" },
        "startup-kill-rate": { type: "string", default: "0" },
        daemon: { type: "string", default: DAEMON_BIN },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return usageError(err.message);
  }
}

/** The options of `argv`; prints the usage and exits 2 (0 for --help) when they are wrong. */
export function soakOptions(argv) {
  const args = parse(argv);
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const intArg = (name, min) => {
    const n = Number(args[name]);
    if (!Number.isSafeInteger(n) || n < min)
      usageError(`--${name} must be a whole number >= ${min}`);
    return n;
  };
  const startupKillRate = Number(args["startup-kill-rate"]);
  if (!(startupKillRate >= 0 && startupKillRate <= 1)) {
    usageError("--startup-kill-rate must be between 0 and 1");
  }
  return {
    kills: intArg("kills", 0),
    shimKills: intArg("shim-kills", 0),
    seconds: intArg("seconds", 10),
    clients: intArg("clients", 1),
    names: intArg("names", 1),
    seed: args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : intArg("seed", 0),
    logLevel: args["log-level"],
    daemonBin: path.resolve(args.daemon),
    startupKillRate,
  };
}
