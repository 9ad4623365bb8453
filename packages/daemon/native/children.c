// The children: their records, their pipes (read as credit and the socket
// allow), their reaping, and the EXITED that follows once their output is in.
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "shim.h"
#include "spawn.h"

/* ---- the run queue: pipes with bytes to read, taken in turn ---- */

static void runq_add(struct shim *s, struct stream *st) {
  if (st->queued) return;
  st->queued = 1;
  st->next = NULL;
  st->prev = s->runq_tail;
  if (s->runq_tail != NULL)
    s->runq_tail->next = st;
  else
    s->runq_head = st;
  s->runq_tail = st;
  s->runq_len++;
}

static void runq_remove(struct shim *s, struct stream *st) {
  if (!st->queued) return;
  if (st->prev != NULL)
    st->prev->next = st->next;
  else
    s->runq_head = st->next;
  if (st->next != NULL)
    st->next->prev = st->prev;
  else
    s->runq_tail = st->prev;
  st->queued = 0;
  st->prev = st->next = NULL;
  s->runq_len--;
}

/* ---- exits ---- */

static void pending_add(struct shim *s, struct child *c) {
  c->pending_prev = NULL;
  c->pending_next = s->pending;
  if (s->pending != NULL) s->pending->pending_prev = c;
  s->pending = c;
}

static void pending_remove(struct shim *s, struct child *c) {
  if (c->pending_prev != NULL)
    c->pending_prev->pending_next = c->pending_next;
  else
    s->pending = c->pending_next;
  if (c->pending_next != NULL) c->pending_next->pending_prev = c->pending_prev;
  c->pending_prev = c->pending_next = NULL;
}

static int pipes_closed(const struct child *c) {
  return c->out[0].fd < 0 && c->out[1].fd < 0;
}

/** Frees the record once nothing can come of the child: EXITED sent, both pipes at EOF. */
static void child_release(struct shim *s, struct child *c) {
  if (!c->reported || !pipes_closed(c)) return;
  index_remove(&s->by_id, c);
  free(c);
}

static void report_exit(struct shim *s, struct child *c) {
  encode_exited(outq_reserve(s, EXITED_FRAME_SIZE), &c->exit);
  outq_commit(s, EXITED_FRAME_SIZE);
  c->reported = 1;
  pending_remove(s, c);
  child_release(s, c);
}

static int64_t timeval_us(struct timeval tv) {
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void child_reaped(struct shim *s, struct child *c, int status, const struct rusage *ru) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  index_remove(&s->by_pid, c);
  c->pid = 0;
  c->reaped = 1;
  c->exit.status = status;
  c->exit.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  c->exit.utime_us = timeval_us(ru->ru_utime);
  c->exit.stime_us = timeval_us(ru->ru_stime);
  c->exit.maxrss_kib = ru->ru_maxrss;
  c->reaped_at_ns = c->quiet_since_ns = mono_ns();
  pending_add(s, c);
  if (pipes_closed(c)) report_exit(s, c);
}

void children_reap(struct shim *s) {
  struct signalfd_siginfo si;
  // SIGCHLDs coalesce: the signalfd only says "look", wait4 says what.
  while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
  }
  for (;;) {
    int status;
    struct rusage ru;
    pid_t pid = wait4(-1, &status, WNOHANG, &ru);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    struct child *c = child_by_pid(s, pid);
    // Not one of ours: an orphan of some tree, reparented to the shim. Reaped, not reported.
    if (c != NULL) child_reaped(s, c, status, &ru);
  }
}

int exits_due(struct shim *s) {
  int64_t now = mono_ns(), next = INT64_MAX;
  int reading = outq_has_room(s);
  struct child *c = s->pending, *after;
  for (; c != NULL; c = after) {
    after = c->pending_next;
    int64_t due = c->reaped_at_ns + EXIT_LATEST_NS;
    // Silence counts only while the shim would read: credit left and room on the socket.
    if (reading && c->credit > 0 && c->quiet_since_ns + EXIT_QUIET_NS < due)
      due = c->quiet_since_ns + EXIT_QUIET_NS;
    if (due <= now)
      report_exit(s, c);
    else if (due < next)
      next = due;
  }
  if (next == INT64_MAX) return -1;
  return (int)((next - now + 999999) / 1000000);
}

void exits_resume(struct shim *s) {
  int64_t now = mono_ns();
  for (struct child *c = s->pending; c != NULL; c = c->pending_next) c->quiet_since_ns = now;
}

/* ---- pipes ---- */

static void stream_eof(struct shim *s, struct stream *st) {
  struct child *c = st->child;
  runq_remove(s, st);
  s->by_fd[st->fd] = NULL;
  close(st->fd);
  st->fd = -1;
  encode_eof(outq_reserve(s, EOF_FRAME_SIZE), c->id, st->which);
  outq_commit(s, EOF_FRAME_SIZE);
  if (!pipes_closed(c)) return;
  if (c->reaped && !c->reported)
    report_exit(s, c);
  else
    child_release(s, c);
}

/** A pipe with no writer and no byte left is at EOF: seen without credit to read it. */
static void eof_without_credit(struct shim *s, struct stream *st) {
  int avail;
  if (ioctl(st->fd, FIONREAD, &avail) == 0 && avail == 0) stream_eof(s, st);
}

/** Queues a ready pipe for reading if its child has credit. */
static void stream_schedule(struct shim *s, struct stream *st) {
  if (st->fd < 0 || !st->ready) return;
  if (st->child->credit > 0)
    runq_add(s, st);
  else if (st->hup)
    eof_without_credit(s, st);
}

void pipe_event(struct shim *s, int fd, uint32_t events) {
  // An fd closed earlier in this batch of events is no stream, or a new one: either is harmless.
  if (fd < 0 || (size_t)fd >= s->by_fd_cap || s->by_fd[fd] == NULL) return;
  struct stream *st = s->by_fd[fd];
  st->ready = 1;
  if (events & (EPOLLHUP | EPOLLERR)) st->hup = 1;
  stream_schedule(s, st);
}

/** One read of at most the credit (and 64 KiB), straight into an OUTPUT frame. */
static void stream_read(struct shim *s, struct stream *st) {
  struct child *c = st->child;
  uint32_t want = c->credit < MAX_OUTPUT ? c->credit : MAX_OUTPUT;
  uint8_t *frame = outq_reserve(s, OUTPUT_HEADER_SIZE + want);
  ssize_t n = read(st->fd, frame + OUTPUT_HEADER_SIZE, want);
  if (n > 0) {
    encode_output_header(frame, c->id, st->which, (uint32_t)n);
    outq_commit(s, OUTPUT_HEADER_SIZE + (size_t)n);
    c->credit -= (uint32_t)n;
    c->quiet_since_ns = mono_ns();
    // A pipe read returns what the pipe holds: short means empty, and the next write is an edge.
    if ((uint32_t)n < want && !st->hup) st->ready = 0;
    stream_schedule(s, st);
  } else if (n == 0) {
    stream_eof(s, st);
  } else if (errno == EAGAIN) {
    st->ready = 0;
  } else if (errno == EINTR) {
    runq_add(s, st);
  } else {
    warnx_shim("reading the output of %s (id %u): %s", c->name, c->id, strerror(errno));
    stream_eof(s, st);
  }
}

void pipes_pump(struct shim *s) {
  // One read per queued pipe and pass: a flooding child cannot starve the others.
  // (A read may free its child, so the pass counts rather than remembering the tail.)
  for (size_t n = s->runq_len; n > 0 && s->runq_head != NULL && outq_has_room(s); n--) {
    struct stream *st = s->runq_head;
    runq_remove(s, st);
    stream_read(s, st);
  }
}

static int watch_stream(struct shim *s, struct stream *st, int fd) {
  st->fd = fd;
  if (by_fd_set(s, fd, st) != 0) return -1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
  return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- the daemon's requests ---- */

static void answer_failed(struct shim *s, uint32_t id, int error, uint8_t stage) {
  encode_spawn_failed(outq_reserve(s, SPAWN_FAILED_FRAME_SIZE), id, error, stage);
  outq_commit(s, SPAWN_FAILED_FRAME_SIZE);
}

/** Gives up a child the shim cannot watch (no memory for it): killed and reaped at once. */
static void abandon(struct shim *s, struct child *c, const struct spawn_result *res) {
  int error = errno;
  uint32_t id = c->id;
  kill(-res->pid, SIGKILL);
  while (waitpid(res->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  for (int i = 0; i < 2; i++) {
    int fd = c->out[i].fd;
    if (fd >= 0 && (size_t)fd < s->by_fd_cap && s->by_fd[fd] == &c->out[i]) s->by_fd[fd] = NULL;
  }
  close(res->out_fd);
  close(res->err_fd);
  free(c);
  answer_failed(s, id, error, STAGE_PIPES);
}

static struct child *child_new(const struct msg_spawn *m) {
  struct child *c = calloc(1, sizeof *c + m->name.n + 1);
  if (c == NULL) return NULL;
  c->id = m->id;
  c->credit = CREDIT_INITIAL;
  if (m->name.n > 0) memcpy(c->name, m->name.p, m->name.n);
  for (int i = 0; i < 2; i++) c->out[i] = (struct stream){c, -1, (uint8_t)(i + 1), 0, 0, 0, 0, 0};
  return c;
}

void child_spawn(struct shim *s, const struct msg_spawn *m) {
  if (child_by_id(s, m->id) != NULL) protocol_error(s, "SPAWN: id %u is in use", m->id);
  struct child *c = child_new(m);
  struct spawn_strings str;
  if (c == NULL || spawn_strings_build(m, &str) != 0) {
    free(c);
    answer_failed(s, m->id, ENOMEM, STAGE_PIPES);
    return;
  }
  struct spawn_request req = {&str, m->flags, m->uid, m->gid, s->devnull};
  struct spawn_result res;
  int rc = spawn_start(&req, &res);
  spawn_strings_free(&str);
  if (rc != 0) {
    free(c);
    answer_failed(s, m->id, res.error, res.stage);
    return;
  }
  if (watch_stream(s, &c->out[0], res.out_fd) != 0 ||
      watch_stream(s, &c->out[1], res.err_fd) != 0) {
    abandon(s, c, &res);
    return;
  }
  c->pid = res.pid;
  c->exit.id = c->id;
  c->exit.pid = (uint32_t)res.pid;
  index_add(&s->by_id, c);
  index_add(&s->by_pid, c);
  struct proc_stat st;
  uint64_t start = proc_stat_read(res.pid, &st) == 0 ? st.start_time : 0;
  encode_spawned(outq_reserve(s, SPAWNED_FRAME_SIZE), c->id, (uint32_t)res.pid, start);
  outq_commit(s, SPAWNED_FRAME_SIZE);
}

void child_credit(struct shim *s, uint32_t id, uint32_t bytes) {
  struct child *c = child_by_id(s, id);
  if (c == NULL) return;
  uint32_t before = c->credit;
  c->credit = bytes > UINT32_MAX - before ? UINT32_MAX : before + bytes;
  if (before > 0 || c->credit == 0) return;
  // Its silence before counted for nothing: it could not be read.
  c->quiet_since_ns = mono_ns();
  for (int i = 0; i < 2; i++) stream_schedule(s, &c->out[i]);
}

static int is_spawned(void *ctx, pid_t pid) {
  return child_by_pid(ctx, pid) != NULL;
}

void child_signal(struct shim *s, uint32_t id, int signo, int scope) {
  struct child *c = child_by_id(s, id);
  // Reaped, its pid may be anyone's by now.
  if (c == NULL || c->reaped) return;
  // One look at /proc a turn, not one a signal (stopping everything is a burst of
  // these), and taken before the signal, while the parent chains are whole.
  if (scope == 1 && !s->scanned) {
    s->scan = proc_scan_new(s->pid, is_spawned, s);
    s->scanned = 1;
  }
  // Unreaped, even a zombie holds its pid and its group's id: this reaches its group only.
  kill(-c->pid, signo);
  if (scope == 1 && s->scan != NULL) proc_signal_tree(s->scan, c->pid, c->name, signo);
}

void children_turn_end(struct shim *s) {
  proc_scan_free(s->scan);
  s->scan = NULL;
  s->scanned = 0;
}
