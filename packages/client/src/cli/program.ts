// procmonctl's command line: the commander tree, and how a run ends. Exit
// codes: 0 done, 1 the daemon refused or could not be reached, 2 the command
// line was wrong (usage is printed to stderr).
import { readFileSync } from "node:fs";
import { defaultSocketPath } from "@procmon/api/socket";
import { Command, CommanderError } from "commander";
import { Code, hasCode, ProcmonError } from "../errors.js";
import {
  countArg,
  dependencyArg,
  dirArg,
  durationArg,
  envArg,
  exitCodesArg,
  httpUrlArg,
  idArg,
  restartArg,
  rssArg,
  seqArg,
  signalArg,
  tcpArg,
  timeoutArg,
  wordsArg,
} from "./arguments.js";
import {
  type AddFlags,
  add,
  addFlagsProblem,
  get,
  list,
  reload,
  remove,
  restart,
  restartAll,
  type StatsFlags,
  start,
  stop,
  update,
  version,
} from "./commands.js";
import {
  type GlobalFlags,
  globalsOf,
  type Io,
  openSession,
  permissionProblem,
  printNote,
  QUICK_TIMEOUT_MS,
  type Session,
} from "./session.js";
import { type LogsFlags, logs, type WatchFlags, watch } from "./streams.js";

/** Exit status: the command did what it was asked. */
export const EXIT_OK = 0;
/** Exit status: the daemon answered with an error, or could not be reached. */
export const EXIT_FAILED = 1;
/** Exit status: the command line was wrong. */
export const EXIT_USAGE = 2;

const DURATIONS_HELP = "\nDurations are written like 500ms, 5s, 1m30s, 1h.";

/** The NAME of the commands that also take `all` or a glob. */
const NAME_OR_PATTERN = "the process's name, all, or a glob such as 'web-*'";
const PATTERN_HELP =
  "\nNAME may be all (every process) or a shell-style glob: * any characters, ? one,\n" +
  "[abc] or [a-z] one of a set, [!abc] one not in it (quote it from the shell).\n" +
  "The command then runs for every matching process at once, printing one line\n" +
  "each; it exits 1 if the pattern matches nothing or any of them failed (each\n" +
  "failure on stderr, naming its process). [a]ll names a process called all.";

/** Runs procmonctl with the user's arguments (`process.argv.slice(2)`); resolves with the exit status. */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  try {
    await buildProgram(argv, io).parseAsync([...argv], { from: "user" });
    return EXIT_OK;
  } catch (err) {
    // Commander has printed its message and the usage already; help and --version end with 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    printNote(io, err instanceof Error ? err.message : String(err));
    return EXIT_FAILED;
  }
}

/** procmonctl's command tree, printing to `io`; `argv` lets `add` check where `--` is. */
export function buildProgram(argv: readonly string[], io: Io): Command {
  const program = new Command("procmonctl")
    .description("Control procmond, the procmon process supervisor.")
    .version(packageVersion(), "-V, --version", "print the version")
    .option(
      "--socket <path>",
      `procmond's unix socket (default: $PROCMON_SOCKET, else ${defaultSocketPath({})})`,
    )
    .option("--json", "print protobuf JSON, one object per line, instead of text")
    .option("--no-color", "no colour on a terminal (as does a non-empty NO_COLOR)")
    .option(
      "--timeout <duration>",
      `deadline of each call (default: ${QUICK_TIMEOUT_MS / 1000}s, plus the kill time for calls that wait for an exit; streams have none)`,
      timeoutArg,
    )
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .configureOutput({ writeOut: (text) => io.out(text), writeErr: (text) => io.err(text) })
    .exitOverride();

  /** Runs `body` in a session of `command`'s global flags, closing its client afterwards. */
  const inSession = async (command: Command, body: (session: Session) => Promise<void>) => {
    const session = openSession(globalsOf(command.optsWithGlobals<GlobalFlags>()), io);
    try {
      await body(session);
    } catch (err) {
      throw explained(err, session);
    } finally {
      session.client.close();
    }
  };

  const addCommand = program
    .command("add")
    .summary("register a process and start it")
    .description(
      "Registers NAME and starts it at once. Everything after -- is the command: its\n" +
        "executable (a path, or a name looked up on PATH) and arguments, never passed\n" +
        'through a shell (write sh -c "..." for shell syntax).',
    )
    .usage("[options] NAME -- COMMAND [ARGS...]")
    .argument("<name>", "unique name: letters, digits and . _ - : @")
    .argument("<command...>", "the command and its arguments, after --");
  withSpecOptions(addCommand)
    .addHelpText(
      "after",
      `\nUnset timings take the daemon's defaults.${DURATIONS_HELP}\n\n` +
        "A readiness probe has one check: --ready-exec, --ready-tcp or --ready-http.\n" +
        "--ready-exec's command is split into words as a shell would split it (quotes\n" +
        "and backslashes work) but is not run by one: write --ready-exec 'sh -c \"...\"'\n" +
        "for pipes or $VARIABLES. It runs as the process, in its cwd and environment.\n\n" +
        "--depends-on reads a condition after the last colon only if it is started,\n" +
        "ready or exited-ok (names may hold colons): --depends-on db:ready.\n\n" +
        "Sizes are binary: 512M and 512MiB are both 512 x 1024 x 1024 bytes; B, K/KiB,\n" +
        "M/MiB, G/GiB, T/TiB; 1MiB at least (0: no cap).\n\n" +
        "Examples:\n" +
        "  procmonctl add web --env PORT=8080 -- node server.js --verbose\n" +
        "  procmonctl add db --ready-tcp 5432 --stop-signal INT -- postgres -D /srv/pg\n" +
        "  procmonctl add migrate --restart never --depends-on db:ready -- ./migrate.sh\n" +
        "  procmonctl add api --depends-on migrate:exited-ok --max-rss 512MiB -- ./api",
    )
    .action(async (name: string, args: string[], flags: AddFlags, command: Command) => {
      // Without `--`, the command's own options would be read as add's.
      const dashes = argv.indexOf("--");
      if (dashes < 0 || argv.length - dashes - 1 !== args.length) {
        command.error("error: put -- between NAME and the command, as in: add web -- sleep 60", {
          exitCode: EXIT_USAGE,
          code: "procmonctl.missingDashDash",
        });
      }
      const problem = addFlagsProblem(flags);
      if (problem !== undefined) {
        command.error(problem, { exitCode: EXIT_USAGE, code: "procmonctl.badAddFlags" });
      }
      await inSession(command, (s) => add(s, name, args, flags));
    });

  const updateCommand = program
    .command("update")
    .summary("replace a process's spec, restarting it if it changed")
    .description(
      "Replaces NAME's spec with its current one and the options given over it\n" +
        "(--env adds to its environment), and the command after -- if one is given.\n" +
        "If anything changed, it is restarted with the new spec at once (no backoff);\n" +
        "a stopped one keeps it for its next start. Nothing changed: nothing happens.",
    )
    .usage("[options] NAME [-- COMMAND [ARGS...]]")
    .argument("<name>", "the process")
    .argument("[command...]", "a new command and its arguments, after --");
  withSpecOptions(updateCommand)
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  procmonctl update web --env PORT=8081\n" +
        "  procmonctl update web --restart on-failure -- node server.js --port 8081",
    )
    .action(async (name: string, args: string[], flags: AddFlags, command: Command) => {
      const dashes = argv.indexOf("--");
      if (args.length > 0 && (dashes < 0 || argv.length - dashes - 1 !== args.length)) {
        command.error("error: put -- before the new command, as in: update web -- sleep 60", {
          exitCode: EXIT_USAGE,
          code: "procmonctl.missingDashDash",
        });
      }
      const problem = addFlagsProblem(flags);
      if (problem !== undefined) {
        command.error(problem, { exitCode: EXIT_USAGE, code: "procmonctl.badAddFlags" });
      }
      await inSession(command, (s) => update(s, name, args, flags));
    });

  program
    .command("reload")
    .summary("re-read procmond's --config file, as SIGHUP does")
    .description(
      "Re-reads the daemon's --config: new entries start, entries gone from the file\n" +
        "stop and are forgotten, changed ones restart with their new spec, the rest are\n" +
        "left alone. A bad file changes nothing and is an error naming its line.",
    )
    .action(async (_options: unknown, command: Command) => {
      await inSession(command, (s) => reload(s));
    });

  /** A command of one process: `procmonctl <verb> NAME`. */
  const byName = (
    verb: string,
    summary: string,
    run: (session: Session, name: string) => Promise<void>,
  ) =>
    program
      .command(verb)
      .summary(summary)
      .argument("<name>", NAME_OR_PATTERN)
      .addHelpText("after", PATTERN_HELP)
      .action((name: string, _flags: object, command: Command) =>
        inSession(command, (s) => run(s, name)),
      );

  byName("rm", "stop a process and forget it", remove);
  byName("start", "start a stopped process (or one in backoff, now)", start);
  byName("stop", "stop a process and keep it stopped", stop);
  byName("restart", "stop a process and start it again at once", restart);
  program
    .command("restart-all")
    .summary("restart every running or backing-off process at once")
    .action((_flags: object, command: Command) => inSession(command, restartAll));
  program
    .command("get")
    .summary("show one process in detail")
    .argument("<name>", NAME_OR_PATTERN)
    .addHelpText("after", PATTERN_HELP.replace("one line\neach", "the details\nof each"))
    .option("--stats", "also show the CPU time and resident memory of its process tree")
    .action((name: string, flags: StatsFlags, command: Command) =>
      inSession(command, (s) => get(s, name, flags)),
    );
  program
    .command("ls")
    .summary("list every process")
    .description(
      "Lists every process as a table; with --json, {processes, lastEventSeq}: pass\n" +
        "lastEventSeq to watch --since to follow the changes after this snapshot.",
    )
    .option("-s, --stats", "add CPU (time used) and MEM (resident memory) of each process tree")
    .action((flags: StatsFlags, command: Command) => inSession(command, (s) => list(s, flags)));

  program
    .command("version")
    .summary("print procmonctl's version and the daemon's, and what spawns its children")
    .action((_flags: object, command: Command) =>
      inSession(command, (s) => version(s, packageVersion())),
    );

  program
    .command("watch")
    .summary("print events as they happen, until interrupted")
    .description(
      "Prints one line per event (with --json, one Event object per line) until\n" +
        "SIGINT. Survives daemon restarts: it reconnects and resumes where it was.",
    )
    .argument("[names...]", "only these processes (default: all)")
    .option("--output", "also print output lines")
    .option("--since <seq>", "first replay the retained events after this seq", seqArg)
    .action((names: string[], flags: WatchFlags, command: Command) =>
      inSession(command, (s) => watch(s, names, flags)),
    );
  program
    .command("logs")
    .summary("print a process's retained output")
    .description(
      "Prints the output lines of NAME that the daemon still keeps, stdout and stderr\n" +
        "alike, then ends; with --follow, keeps printing new ones until interrupted.",
    )
    .argument("<name>", "the process's name")
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option(
      "-n, --lines <n>",
      "the last N lines; from the daemon's --log-dir files when it keeps fewer",
      countArg,
    )
    .action((name: string, flags: LogsFlags, command: Command) =>
      inSession(command, (s) => logs(s, name, flags)),
    );

  // A wrong command line gets the command's usage line, not its whole help.
  for (const command of [program, ...program.commands]) {
    const name = command === program ? "procmonctl" : `procmonctl ${command.name()}`;
    command.showHelpAfterError(`Usage: ${name} ${command.usage()}\nRun "${name} --help" for more.`);
  }
  return program;
}

/** The error to report for `err`: a deadline says which daemon did not answer and what to do. */
function explained(err: unknown, session: Session): unknown {
  const denied = permissionProblem(err, session.globals.socket);
  if (denied) return denied;
  if (!hasCode(err, Code.DEADLINE_EXCEEDED)) return err;
  return new ProcmonError(
    err.code,
    `procmond at ${session.globals.socket} did not answer in time (${err.message}); use --timeout to wait longer`,
    { cause: err },
  );
}

function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  const parsed: unknown = JSON.parse(text);
  const version = (parsed as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

/** The options of a spec, which `add` and `update` both take. */
function withSpecOptions(command: Command): Command {
  return command
    .option("--env <key=value>", "set a variable in its environment (repeatable)", envArg)
    .option("--clear-env", "start from an empty environment instead of the daemon's")
    .option("--cwd <dir>", "working directory, relative to here (default: the daemon's)", dirArg)
    .option("--uid <n>", "run as this user id (needs a root daemon)", idArg)
    .option("--gid <n>", "run as this group id (needs a root daemon)", idArg)
    .option("--threshold <duration>", "runs shorter than this are instant deaths", durationArg)
    .option("--kill-time <duration>", "how long after the stop signal to send SIGKILL", durationArg)
    .option("--min-restart-delay <duration>", "first backoff delay", durationArg)
    .option("--max-restart-delay <duration>", "cap of the doubling backoff delay", durationArg)
    .option(
      "--restart <policy>",
      "after a run that ended by itself: always, on-failure (not after a success exit code) or never (a one-shot task) (default: always)",
      restartArg,
    )
    .option(
      "--success-exit-codes <codes>",
      "the exit codes that are a success for --restart on-failure, as 0,2 (default: 0)",
      exitCodesArg,
    )
    .option(
      "--max-instant-deaths <n>",
      "give up (state failed) after this many instant deaths in a row (default: 0, never)",
      countArg,
    )
    .option(
      "--stop-signal <signal>",
      "the first signal of a stop: TERM, INT, QUIT, HUP, USR1 or USR2, with or without SIG (default: SIGTERM)",
      signalArg,
    )
    .option(
      "--depends-on <name[:condition]>",
      "start only once NAME is started, ready or exited-ok (default: started; repeatable)",
      dependencyArg,
    )
    .option(
      "--ready-exec <command>",
      "ready once this command exits 0 (split into words, not run by a shell)",
      wordsArg,
    )
    .option(
      "--ready-tcp <address>",
      "ready once a TCP connect to [HOST:]PORT succeeds (default host: 127.0.0.1)",
      tcpArg,
    )
    .option("--ready-http <url>", "ready once a GET of this URL answers 2xx", httpUrlArg)
    .option("--ready-period <duration>", "between two readiness checks (default: 1s)", durationArg)
    .option(
      "--ready-timeout <duration>",
      "a readiness check taking longer fails (default: 1s)",
      durationArg,
    )
    .option(
      "--ready-initial-delay <duration>",
      "before the first readiness check of a run (default: 0)",
      durationArg,
    )
    .option(
      "--max-rss <size>",
      "restart it when its tree's resident memory stays above this, as 512MiB (default: no cap)",
      rssArg,
    );
}
