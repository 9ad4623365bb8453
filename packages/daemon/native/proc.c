// /proc: a process's stat and environment, and the scan behind SIGNAL scope 1.
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static ssize_t read_some(int fd, void *buf, size_t n) {
  ssize_t r;
  do r = read(fd, buf, n);
  while (r < 0 && errno == EINTR);
  return r;
}

static int open_proc(pid_t pid, const char *file) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  return open(path, O_RDONLY | O_CLOEXEC);
}

/** The text after field `from` up to field `to` of a stat line, at `p` (field `from`). */
static const char *skip_fields(const char *p, int from, int to) {
  for (int f = from; f < to && p != NULL; f++) {
    p = strchr(p, ' ');
    if (p != NULL) p++;
  }
  return p;
}

int proc_stat_read(pid_t pid, struct proc_stat *st) {
  char buf[1024];
  int fd = open_proc(pid, "stat");
  if (fd < 0) return -1;
  ssize_t n = read_some(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // comm (field 2) may hold spaces and parentheses: field 3 starts after the last ')'.
  const char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ') return -1;
  const char *ppid = skip_fields(p + 2, 3, 4);
  const char *pgid = skip_fields(ppid, 4, 5);
  const char *start = skip_fields(pgid, 5, 22);
  if (start == NULL) return -1;
  st->ppid = (pid_t)strtol(ppid, NULL, 10);
  st->pgid = (pid_t)strtol(pgid, NULL, 10);
  st->start_time = strtoull(start, NULL, 10);
  return 0;
}

int proc_environ_has(pid_t pid, const char *entry, size_t len) {
  int fd = open_proc(pid, "environ");
  if (fd < 0) return 0;
  // Streamed through a small buffer: an environment can be megabytes.
  char buf[4096];
  size_t pos = 0;
  int matching = 1, found = 0;
  ssize_t n;
  while (!found && (n = read_some(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !found; i++) {
      if (buf[i] == '\0') {
        found = matching && pos == len;
        pos = 0;
        matching = 1;
      } else if (matching && pos < len && buf[i] == entry[pos]) {
        pos++;
      } else {
        matching = 0;
      }
    }
  }
  close(fd);
  return found;
}

enum mark { UNKNOWN, IN_TREE, OUTSIDE, VISITING };

struct entry {
  pid_t pid, ppid, pgid;
  uint64_t start_time;
  int8_t mark;
};

struct scan {
  struct entry *e;
  size_t n, cap;
  pid_t root, shim;
  const char *marker; /* "PROCMON_NAME=<name>" */
  size_t marker_len;
  is_spawned_fn spawned;
  void *ctx;
};

static int all_digits(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static int scan_push(struct scan *sc, pid_t pid, const struct proc_stat *st) {
  if (sc->n == sc->cap) {
    size_t cap = sc->cap ? sc->cap * 2 : 256;
    struct entry *e = realloc(sc->e, cap * sizeof *e);
    if (e == NULL) return -1;
    sc->e = e;
    sc->cap = cap;
  }
  sc->e[sc->n++] = (struct entry){pid, st->ppid, st->pgid, st->start_time, UNKNOWN};
  return 0;
}

static int by_pid(const void *a, const void *b) {
  pid_t x = ((const struct entry *)a)->pid, y = ((const struct entry *)b)->pid;
  return (x > y) - (x < y);
}

/** Every process /proc lists now, sorted by pid. */
static int scan_all(struct scan *sc) {
  DIR *d = opendir("/proc");
  if (d == NULL) return -1;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    struct proc_stat st;
    if (!all_digits(de->d_name)) continue;
    pid_t pid = (pid_t)atoi(de->d_name);
    if (proc_stat_read(pid, &st) == 0) rc = scan_push(sc, pid, &st);
  }
  closedir(d);
  if (sc->n > 0) qsort(sc->e, sc->n, sizeof *sc->e, by_pid);
  return rc;
}

static struct entry *scan_find(struct scan *sc, pid_t pid) {
  struct entry key = {.pid = pid};
  return bsearch(&key, sc->e, sc->n, sizeof *sc->e, by_pid);
}

/** IN_TREE or OUTSIDE if `e` settles the question itself; UNKNOWN if its parent does. */
static enum mark settled(struct scan *sc, const struct entry *e) {
  if (e->pid == sc->root) return IN_TREE;
  if (e->pid == sc->shim || e->pid <= 1 || e->ppid <= 0) return OUTSIDE;
  if (e->ppid != sc->shim) return UNKNOWN;
  // Reparented to the shim: another spawned child, or an orphan of some tree.
  if (sc->spawned(sc->ctx, e->pid)) return OUTSIDE;
  return proc_environ_has(e->pid, sc->marker, sc->marker_len) ? IN_TREE : OUTSIDE;
}

/** Marks `e` and its ancestors up to the first settled one; a cycle (a racy scan) is OUTSIDE. */
static enum mark mark_of(struct scan *sc, struct entry *e) {
  struct entry *at = e;
  while (at->mark == UNKNOWN) {
    enum mark m = settled(sc, at);
    if (m != UNKNOWN) {
      at->mark = (int8_t)m;
      break;
    }
    at->mark = VISITING;
    struct entry *parent = scan_find(sc, at->ppid);
    if (parent == NULL) {
      at->mark = OUTSIDE;
      break;
    }
    at = parent;
  }
  enum mark result = at->mark == VISITING ? OUTSIDE : (enum mark)at->mark;
  for (at = e; at != NULL && at->mark == VISITING; at = scan_find(sc, at->ppid))
    at->mark = (int8_t)result;
  return result;
}

/** Signals `e` if the process with its pid is still the one scanned. */
static void signal_if_same(const struct entry *e, int signo) {
  long fd = syscall(SYS_pidfd_open, e->pid, 0u);
  if (fd < 0 && errno != ENOSYS) return;
  struct proc_stat now;
  // The pidfd holds the process: checked once it is held, the signal cannot miss.
  if (proc_stat_read(e->pid, &now) == 0 && now.start_time == e->start_time) {
    if (fd >= 0)
      syscall(SYS_pidfd_send_signal, (int)fd, signo, NULL, 0u);
    else
      kill(e->pid, signo);
  }
  if (fd >= 0) close((int)fd);
}

void proc_signal_tree(pid_t root, pid_t shim, const char *name, int signo, is_spawned_fn spawned,
                      void *ctx) {
  char marker[sizeof "PROCMON_NAME=" + MAX_NAME];
  int len = snprintf(marker, sizeof marker, "PROCMON_NAME=%s", name);
  struct scan sc = {NULL, 0, 0, root, shim, marker, (size_t)len, spawned, ctx};
  if (scan_all(&sc) != 0) warnx_shim("cannot list /proc (%s): signalling %s's group only",
                                     strerror(errno), name);
  for (size_t i = 0; i < sc.n; i++) {
    struct entry *e = &sc.e[i];
    // Its group has the signal from the caller already: once is enough.
    if (e->pid == root || e->pgid == root) continue;
    if (mark_of(&sc, e) == IN_TREE) signal_if_same(e, signo);
  }
  free(sc.e);
}
