// What /proc says of processes, and signals to a child's whole tree.
#ifndef PROCMON_PROC_H
#define PROCMON_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_stat {
  pid_t ppid, pgid;
  uint64_t start_time; /* field 22: clock ticks after boot */
};

/** Reads /proc/<pid>/stat; -1 if the process is gone. */
int proc_stat_read(pid_t pid, struct proc_stat *st);

/** Says whether `pid`, a child of the shim, is one the daemon spawned. */
typedef int (*is_spawned_fn)(void *ctx, pid_t pid);

/** One look at every process in /proc, for the scope 1 signals of one turn of the loop. */
struct proc_scan;

/** Lists /proc; NULL (and a warning) if it cannot. */
struct proc_scan *proc_scan_new(pid_t shim, is_spawned_fn spawned, void *ctx);
void proc_scan_free(struct proc_scan *sc);

/**
 * Sends `signo` to what descends from `root` (a live child of the shim) and
 * left its process group: processes whose parent chain leads to `root`, and
 * processes reparented to the shim that were not spawned and whose
 * environment holds `PROCMON_NAME=<name>`, with their own descendants. The
 * group of `root` itself is the caller's to signal. Each process is checked
 * again by its start time through a pidfd before the signal, so that a pid
 * reused since the scan is not hit.
 */
void proc_signal_tree(struct proc_scan *sc, pid_t root, const char *name, int signo);

#endif
