import { ProcmonError } from "./core/errors.js";
import { createDaemonLog, startDaemon } from "./daemon.js";
import { parseFlags, USAGE } from "./flags.js";
import { daemonVersion } from "./version.js";

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`procmond: ${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed.kind === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (parsed.kind === "version") {
    process.stdout.write(`procmond ${daemonVersion()}\n`);
    return;
  }
  // systemd's socket is procmond's alone: a child that inherited it could
  // report on procmond's behalf (READY=1, MAINPID=, STOPPING=1).
  delete process.env.NOTIFY_SOCKET;
  const log = createDaemonLog(parsed.options.logLevel);
  const { logger } = log;
  const exit = (code: number): void => {
    log.close().then(() => process.exit(code));
  };
  // Handlers go in before anything starts: a signal that arrives while the
  // daemon starts up is acted on once it is up, never met by the default
  // action (which would kill it with its children orphaned).
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let stopRequested: string | undefined;
  const stop = (signal: string) => {
    logger.info({ signal }, "signal received");
    if (daemon === undefined) {
      stopRequested = signal;
      return;
    }
    daemon.shutdown().then(
      () => exit(0),
      (err: unknown) => {
        logger.fatal({ err }, "shutdown failed");
        exit(1);
      },
    );
  };
  process.on("SIGHUP", () => {
    logger.info({ signal: "SIGHUP" }, "signal received: reloading the config");
    // During start-up the config was just read: nothing to reload.
    daemon?.reload().catch((err: unknown) => logger.error({ err }, "config reload failed"));
  });
  process.on("SIGUSR2", () => {
    logger.info({ signal: "SIGUSR2" }, "signal received: exiting, leaving the processes running");
    if (daemon === undefined) {
      // Nothing was adopted or started yet that must be handed on: the next daemon finds it all.
      exit(0);
      return;
    }
    daemon.detach().then(
      () => exit(0),
      (err: unknown) => {
        logger.fatal({ err }, "detach failed");
        exit(1);
      },
    );
  });
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  try {
    daemon = await startDaemon(parsed.options, { log });
  } catch (err) {
    // A refusal (bad flag, lock held, shim missing) is the user's to fix: its message, no stack.
    const refusal = err instanceof ProcmonError;
    const message = refusal ? err.message : String(err);
    logger.fatal(refusal ? { code: err.code } : { err }, message);
    process.stderr.write(`procmond: ${message}\n`);
    exit(1);
    return;
  }
  if (stopRequested !== undefined) stop(stopRequested);
  daemon.failed.then((why) => {
    // Its shim is gone and no new one could start: the next daemon sweeps and starts afresh.
    logger.fatal({}, `${why}: procmond cannot supervise without it and exits`);
    process.stderr.write(`procmond: ${why}\n`);
    exit(1);
  });
}

await main();
