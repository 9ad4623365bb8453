#!/usr/bin/env node
// procmond crash soak: SIGKILL the daemon (and its procmon-shim) at random moments under
// concurrent client load and check, after every restart, that what the clients were told
// survived, that every process runs exactly once, and that the processes outlived the daemon.
//
//   npm run build && node bench/soak.mjs [--kills 50] [--shim-kills 5] [--seed N] [--seconds 300]
//                                        [--clients 6] [--names 20] [--log-level info]
//                                        [--startup-kill-rate 0] [--daemon PATH]
//   quick: node bench/soak.mjs --kills 5 --shim-kills 1 --seconds 90 --seed 7
//
// --kills N              SIGKILLs of the daemon under load (default 50)
// --shim-kills N         SIGKILLs of the daemon's procmon-shim under load, interleaved at random
//                        among the daemon kills (default 5)
// --seed N               seed of the random choices (default: random, printed); the interleaving
//                        of the client loops is not deterministic, so a seed only biases a rerun
// --seconds N            time budget of the whole run: no new kill starts once it is nearly used
//                        up, and a watchdog aborts (cleaning up) a run that overruns it by 60 s
// --clients N            concurrent client loops (default 6)
// --names N              size of the pool of process names (default 20)
// --log-level L          the daemon's --log-level (default info: its lines are the context of a
//                        violation report)
// --startup-kill-rate R  also SIGKILL, with probability R per restart, the daemon being started
//                        again before it serves: half of them at a random moment of its
//                        start-up, half 0-30 ms after its first write of the state file, where
//                        a crash can cost the registry (default 0: off)
// --daemon PATH          the procmond to run (default packages/daemon/bin/procmond.js), to soak
//                        another build, an older one say
//
// The daemon runs on a socket and a state file in a temp dir. A few client loops pick a free name
// from the pool (one call per name at a time, so the order of acknowledgements is the order of
// effects) and add (`sh -c 'sleep 1000'`, `sh -c 'sleep 1000 & sleep 1000; wait'`, or a tree that
// ignores SIGTERM with kill_time 250ms), remove, stop, start or restart it. The expected registry
// is what the clients were TOLD: per name, the set of states the daemon may be in ("absent",
// "running" or "stopped"); an acknowledged call makes it one state; a call cut by the daemon's
// death has an unknown outcome, so the name may be in the state before or after it ("uncertain").
// After each restart the clients are paused and drained and the invariants are checked:
//   registry  ListProcesses holds exactly the names expected, each in a state expected of it
//             (uncertain names are then resolved to what the daemon says);
//   alive     each process with intent running is alive exactly once: one live, non-zombie
//             process-group leader in /proc carrying PROCMON_INSTANCE=<instance> and
//             PROCMON_NAME=<name>, whose pid is the one ListProcesses gives; none for a stopped
//             one; every other marked process belongs to that leader's group;
//   orphans   no process carries the marker of a name that is not registered;
//   instance  the state file keeps its instance id.
// Survival (spec v1.1 §A, issue 12), with the shim holding the children:
//   adopted   after a daemon kill, every name whose state was certain at the kill (running, its
//             pid known, no call in flight then and none since) runs with the same pid and the
//             same restart_count, and the new daemon emitted no started/exited/stopping for it;
//   printer   a process the soak registers itself (the clients never touch it) prints "<pid> <n>"
//             every 10 ms; one watcher follows every event across every restart (after a crash
//             it gets OUT_OF_RANGE and resumes after the oldest resumable seq, which must be the
//             state file's seqReservedUpTo: "seq-continuation"); no number may be missing of any
//             run of the printer below the highest seen (duplicates, allowed after a crash, are
//             counted);
//   outage    after every third daemon kill, while no daemon runs, the soak kills the process
//             group of one certain plain-* process (SIGTERM and SIGKILL in turn): the new daemon
//             must report exactly one exited event for that pid with that signal, and start it
//             again once (restart_count + 1);
//   shim      after a SIGKILL of the shim (its pid from GetDaemonInfo, checked to be this run's
//             procmon-shim), the daemon starts a new one, and each certain process exited SIGKILL
//             once and was started once with a new pid (restart_count + 1); none doubled, none
//             left (the alive check).
// At the end: the same checks, then SIGTERM; the daemon must exit 0, leave no marked process and
// no socket file, and its state file must still hold the registry with each intent.
//
// Results: a summary on stdout, JSON in bench/results/soak.json, the daemon's log (every start,
// prefixed with its epoch) in bench/results/soak-daemon.log. Exit status 0 when every invariant
// held, 1 when one failed, 2 when the run itself could not be carried out.
//
// Only processes this script started are ever signalled: the daemon by its pid, its shims by pid
// (checked to be a procmon-shim whose command line names this run's temp dir), and processes
// carrying this run's instance marker (a random UUID the first daemon wrote into the temp state
// file). A SIGKILLed daemon leaves its shim and processes running, so at cleanup the daemon is
// SIGKILLed, then every shim it ran (their children die with them), then whatever still carries
// the marker. This happens on exit, on error and on SIGINT/SIGTERM, and the temp dir is removed.
//
// The modules, in bench/soak/: options (the command line), ledger (the state: what the clients
// were told, tallies, violations, the daemon's lines), daemon (starts and kills), clients (the
// client loops), checks (the invariants), scenario (the kills and the final checks), proc (the
// marked processes in /proc), workload (names, kinds and calls), random (the seeded choices),
// report (the JSON and the summary), survival (the watcher, the printer, the shim kills and the
// adoption checks).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRun } from "./lib/run.mjs";
import { resume } from "./soak/clients.mjs";
import { killDaemon, killMarked, killMarkedSync } from "./soak/daemon.mjs";
import { createSoak } from "./soak/ledger.mjs";
import { soakOptions } from "./soak/options.mjs";
import { soakResults, soakSummary } from "./soak/report.mjs";
import { runSoak } from "./soak/scenario.mjs";
import { killShims, rememberShimsOf } from "./soak/survival.mjs";

const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
const FILES = {
  results: path.join(RESULTS_DIR, "soak.json"),
  daemonLog: path.join(RESULTS_DIR, "soak-daemon.log"),
};
/** How long past its --seconds the watchdog lets a run go before aborting it. */
const WATCHDOG_GRACE_MS = 60_000;

const opts = soakOptions(process.argv.slice(2));
const run = createRun("soak");
const soak = createSoak(opts, run);
fs.mkdirSync(RESULTS_DIR, { recursive: true });
soak.daemons.logOut = fs.createWriteStream(FILES.daemonLog);

// At cleanup (at the end, on error, on SIGINT/SIGTERM, from the watchdog): the client loops end,
// the daemon is SIGKILLed (it is already gone after a run that went through), then whatever
// carries the instance marker; the daemon's log is closed and the temp dir removed.
run.onCleanup(
  async () => {
    soak.clients.finished = true;
    soak.survival.watcherDone = true;
    resume(soak);
    rememberShimsOf(soak, soak.daemons.current?.proc);
    await killDaemon(soak);
    const shims = killShims(soak);
    if (shims > 0) soak.log(`cleanup: killed ${shims} procmon-shim left running`);
  },
  { first: true },
);
run.onCleanup(() => new Promise((resolve) => soak.daemons.logOut.end(resolve)));
run.onCleanup(() => killMarked(soak, "cleanup"));
// The last resort when something went badly wrong (run.mjs SIGKILLs the daemon itself).
process.on("exit", () => {
  killShims(soak);
  killMarkedSync(soak);
});

soak.log(
  `seed ${opts.seed}, ${opts.kills} daemon kills, ${opts.shimKills} shim kills, ${opts.clients} client loops, ${opts.names} names, budget ${opts.seconds}s, temp dir ${run.tmp}`,
);
const watchdog = setTimeout(
  () => {
    soak.log(`watchdog: the run overran its budget of ${opts.seconds}s by 60s: aborting`);
    run.cleanup().finally(() => process.exit(2));
  },
  opts.seconds * 1000 + WATCHDOG_GRACE_MS,
);

let outcome;
let fatal;
try {
  outcome = await runSoak(soak);
} catch (err) {
  fatal = err;
  soak.log(`run aborted: ${err?.stack ?? err}`);
} finally {
  clearTimeout(watchdog);
  await run.cleanup();
}

const results = soakResults(soak, outcome, fatal);
fs.writeFileSync(FILES.results, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(soakSummary(results, FILES, fatal));
process.exitCode = results.violations.length > 0 || results.checks.failed > 0 ? 1 : fatal ? 2 : 0;
