// The `procmonctl` bin: runs the command line against the real stdio and
// sets the exit status.
import { runCli } from "./program.js";

// A reader that went away (`procmonctl watch | head`) is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  // Decided once per run: on a terminal the daemon's strings are escaped, in a pipe they are not.
  outIsTerminal: process.stdout.isTTY === true,
  errIsTerminal: process.stderr.isTTY === true,
  env: process.env,
});

// Everything is closed by now, so the process exits on its own; should a
// handle linger, this unref'd timer makes sure the run still ends.
setTimeout(() => process.exit(), 2_000).unref();
