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

/**
 * Copies the value of PROCMON_NAME from /proc/<pid>/environ into `value`
 * (MAX_NAME + 1 bytes), the first one as getenv would; 0 if it has none (or
 * one too long to be a name). Streamed: an environment can be megabytes.
 */
static int environ_name(pid_t pid, char *value) {
  static const char key[] = "PROCMON_NAME=";
  enum { SKIP, KEY, VALUE } state = KEY;
  size_t pos = 0, len = 0;
  int fd = open_proc(pid, "environ");
  if (fd < 0) return 0;
  char buf[4096];
  ssize_t n;
  while ((n = read_some(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (c == '\0') {
        if (state == VALUE) goto done;
        state = KEY;
        pos = len = 0;
      } else if (state == KEY) {
        state = c != key[pos] ? SKIP : ++pos == sizeof key - 1 ? VALUE : KEY;
      } else if (state == VALUE) {
        if (len == MAX_NAME)
          state = SKIP;
        else
          value[len++] = c;
      }
    }
  }
done:
  close(fd);
  value[len] = '\0';
  return state == VALUE;
}

enum mark { UNKNOWN, IN_TREE, OUTSIDE, VISITING };

struct entry {
  pid_t pid, ppid, pgid;
  uint64_t start_time;
  int8_t mark;
  /* For a child of the shim: -1 not looked at yet, 1 an orphan with a PROCMON_NAME, else 0. */
  int8_t orphan;
  char *name;
};

struct proc_scan {
  struct entry *e;
  size_t n, cap;
  pid_t shim;
  is_spawned_fn spawned;
  void *ctx;
  /* The tree being signalled. */
  pid_t root;
  const char *name;
};

static int all_digits(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static int scan_push(struct proc_scan *sc, pid_t pid, const struct proc_stat *st) {
  if (sc->n == sc->cap) {
    size_t cap = sc->cap ? sc->cap * 2 : 256;
    struct entry *e = realloc(sc->e, cap * sizeof *e);
    if (e == NULL) return -1;
    sc->e = e;
    sc->cap = cap;
  }
  sc->e[sc->n++] = (struct entry){pid, st->ppid, st->pgid, st->start_time, UNKNOWN, -1, NULL};
  return 0;
}

static int by_pid(const void *a, const void *b) {
  pid_t x = ((const struct entry *)a)->pid, y = ((const struct entry *)b)->pid;
  return (x > y) - (x < y);
}

struct proc_scan *proc_scan_new(pid_t shim, is_spawned_fn spawned, void *ctx) {
  struct proc_scan *sc = calloc(1, sizeof *sc);
  DIR *d = sc == NULL ? NULL : opendir("/proc");
  if (d == NULL) {
    warnx_shim("cannot list /proc (%s): signalling groups only", strerror(errno));
    free(sc);
    return NULL;
  }
  sc->shim = shim;
  sc->spawned = spawned;
  sc->ctx = ctx;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    struct proc_stat st;
    if (!all_digits(de->d_name)) continue;
    pid_t pid = (pid_t)atoi(de->d_name);
    if (proc_stat_read(pid, &st) == 0) rc = scan_push(sc, pid, &st);
  }
  closedir(d);
  if (rc != 0) warnx_shim("out of memory listing /proc: some processes are not signalled");
  if (sc->n > 0) qsort(sc->e, sc->n, sizeof *sc->e, by_pid);
  return sc;
}

void proc_scan_free(struct proc_scan *sc) {
  if (sc == NULL) return;
  for (size_t i = 0; i < sc->n; i++) free(sc->e[i].name);
  free(sc->e);
  free(sc);
}

static struct entry *scan_find(struct proc_scan *sc, pid_t pid) {
  struct entry key = {.pid = pid};
  return bsearch(&key, sc->e, sc->n, sizeof *sc->e, by_pid);
}

/** Reads, once a scan, whether a child of the shim is an orphan with a name. */
static void load_orphan(struct proc_scan *sc, struct entry *e) {
  char value[MAX_NAME + 1];
  e->orphan = 0;
  if (sc->spawned(sc->ctx, e->pid) || !environ_name(e->pid, value)) return;
  e->name = strdup(value);
  e->orphan = e->name != NULL;
}

/** IN_TREE or OUTSIDE if `e` settles the question itself; UNKNOWN if its parent does. */
static enum mark settled(struct proc_scan *sc, struct entry *e) {
  if (e->pid == sc->root) return IN_TREE;
  if (e->pid == sc->shim || e->pid <= 1 || e->ppid <= 0) return OUTSIDE;
  if (e->ppid != sc->shim) return UNKNOWN;
  // Reparented to the shim: another spawned child, or an orphan of some tree.
  if (e->orphan < 0) load_orphan(sc, e);
  return e->orphan == 1 && strcmp(e->name, sc->name) == 0 ? IN_TREE : OUTSIDE;
}

/** Marks `e` and its ancestors up to the first settled one; a cycle (a racy scan) is OUTSIDE. */
static enum mark mark_of(struct proc_scan *sc, struct entry *e) {
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

void proc_signal_tree(struct proc_scan *sc, pid_t root, const char *name, int signo) {
  sc->root = root;
  sc->name = name;
  for (size_t i = 0; i < sc->n; i++) sc->e[i].mark = UNKNOWN;
  for (size_t i = 0; i < sc->n; i++) {
    struct entry *e = &sc->e[i];
    // Its group has the signal from the caller already: once is enough.
    if (e->pid == root || e->pgid == root) continue;
    if (mark_of(sc, e) == IN_TREE) signal_if_same(e, signo);
  }
}
