// The children: their records, their pipes (read as credit, the socket and,
// while no daemon is attached, the detached limit allow), the output kept
// until the daemon acknowledges it, their reaping, the EXITED that follows
// once their output is in, and their hand-over from one daemon to the next.
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

/* ---- a stream's kept output: read, not yet acknowledged ---- */

static uint32_t kept(const struct stream *st) {
  return st->tail - st->head;
}

static uint32_t unsent(const struct stream *st) {
  return kept(st) - st->sent;
}

static uint32_t child_kept(const struct child *c) {
  return kept(&c->out[0]) + kept(&c->out[1]);
}

static int all_sent(const struct child *c) {
  return unsent(&c->out[0]) == 0 && unsent(&c->out[1]) == 0;
}

/** Appends bytes read from the pipe; the shim exits if memory is out, as for its queue. */
static void stream_keep(struct stream *st, const uint8_t *data, uint32_t n) {
  if (st->cap - st->tail < n && st->head > 0) {
    memmove(st->buf, st->buf + st->head, kept(st));
    st->tail -= st->head;
    st->head = 0;
  }
  if (st->cap - st->tail < n) {
    size_t cap = st->cap ? st->cap : 4096;
    while (cap - st->tail < n) cap *= 2;
    uint8_t *buf = realloc(st->buf, cap);
    if (buf == NULL) die("keeping a child's output");
    st->buf = buf;
    st->cap = (uint32_t)cap;
  }
  memcpy(st->buf + st->tail, data, n);
  st->tail += n;
}

/** Forgets `n` acknowledged bytes; the buffer goes once it is empty, so idle children cost none. */
static void stream_ack(struct stream *st, uint32_t n) {
  st->head += n;
  st->sent -= n;
  if (st->head < st->tail) return;
  free(st->buf);
  st->buf = NULL;
  st->head = st->tail = st->cap = st->sent = 0;
}

/* ---- exits ---- */

static void pending_add(struct shim *s, struct child *c) {
  c->exit_state = EXIT_PENDING;
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

/**
 * Frees the record once nothing of the child is owed to any daemon: its
 * EXITED written to the socket (queued only, it would be lost with the
 * connection), both pipes at EOF and all its output acknowledged.
 */
static void child_release(struct shim *s, struct child *c) {
  if (c->exit_state != EXIT_WRITTEN || !pipes_closed(c) || child_kept(c) != 0) return;
  // Nothing left to send or read, but a stream may still sit on the run queue.
  runq_remove(s, &c->out[0]);
  runq_remove(s, &c->out[1]);
  index_remove(&s->by_id, c);
  free(c);
}

static void report_exit(struct shim *s, struct child *c) {
  encode_exited(outq_reserve(s, EXITED_FRAME_SIZE), &c->exit);
  outq_commit(s, EXITED_FRAME_SIZE);
  pending_remove(s, c);
  c->exit_state = EXIT_QUEUED;
  c->exit_mark = s->out.committed;
  // Marks grow with the queue: the written list stays in their order.
  c->written_next = NULL;
  if (s->written_tail != NULL)
    s->written_tail->written_next = c;
  else
    s->written_head = c;
  s->written_tail = c;
}

/**
 * Sends the EXITED a change made due (its pipes at EOF, its output all sent)
 * and frees what is done. It may free the child: callers call it last.
 */
static void child_settle(struct shim *s, struct child *c) {
  if (attached(s) && c->exit_state == EXIT_PENDING && pipes_closed(c) && all_sent(c))
    report_exit(s, c);
  child_release(s, c);
}

void exits_written(struct shim *s) {
  while (s->written_head != NULL && s->written_head->exit_mark <= s->out.written) {
    struct child *c = s->written_head;
    s->written_head = c->written_next;
    if (s->written_head == NULL) s->written_tail = NULL;
    c->exit_state = EXIT_WRITTEN;
    child_release(s, c);
  }
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
  child_settle(s, c);
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
  // No daemon, no EXITED, and no timeout: the attach restarts every clock.
  if (!attached(s)) return -1;
  int64_t now = mono_ns(), next = INT64_MAX;
  int reading = outq_has_room(s);
  struct child *c = s->pending, *after;
  for (; c != NULL; c = after) {
    after = c->pending_next;
    // Never before its output: what is unsent waits for credit or the queue, both events.
    if (!all_sent(c)) continue;
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

/** EOF once per stream and daemon, after every byte read from the pipe was sent. */
static void stream_settle(struct shim *s, struct stream *st) {
  if (!attached(s) || st->fd >= 0 || st->eof_sent || unsent(st) != 0) return;
  encode_eof(outq_reserve(s, EOF_FRAME_SIZE), st->child->id, st->which);
  outq_commit(s, EOF_FRAME_SIZE);
  st->eof_sent = 1;
}

static void stream_close(struct shim *s, struct stream *st) {
  s->by_fd[st->fd] = NULL;
  close(st->fd);
  st->fd = -1;
  st->ready = 0;
  stream_settle(s, st);
}

/** A pipe with no writer and no byte left is at EOF: seen without credit to read it. */
static void eof_without_credit(struct shim *s, struct stream *st) {
  int avail;
  if (ioctl(st->fd, FIONREAD, &avail) == 0 && avail == 0) stream_close(s, st);
}

/**
 * How many bytes the pipe may be read of now (0: none). Attached: once all
 * read before is sent, as credit allows. Detached: until the child's kept
 * bytes reach the limit, after which the child blocks in its writes.
 */
static uint32_t read_room(const struct shim *s, const struct stream *st) {
  const struct child *c = st->child;
  if (st->fd < 0 || !st->ready) return 0;
  uint32_t room;
  if (attached(s)) {
    if (unsent(st) != 0) return 0;
    room = c->credit;
  } else {
    uint32_t k = child_kept(c);
    room = k < s->detached_limit ? s->detached_limit - k : 0;
  }
  return room < MAX_OUTPUT ? room : MAX_OUTPUT;
}

static int can_send(const struct shim *s, const struct stream *st) {
  return attached(s) && unsent(st) != 0 && st->child->credit > 0;
}

/** Queues the stream if it has bytes to send or a pipe to read; notices an EOF it cannot read. */
static void stream_schedule(struct shim *s, struct stream *st) {
  if (can_send(s, st) || read_room(s, st) > 0)
    runq_add(s, st);
  else if (st->fd >= 0 && st->ready && st->hup)
    eof_without_credit(s, st);
}

void pipe_event(struct shim *s, int fd, uint32_t events) {
  // An fd closed earlier in this batch of events is no stream, or a new one: either is harmless.
  if (fd < 0 || (size_t)fd >= s->by_fd_cap || s->by_fd[fd] == NULL) return;
  struct stream *st = s->by_fd[fd];
  st->ready = 1;
  if (events & (EPOLLHUP | EPOLLERR)) st->hup = 1;
  stream_schedule(s, st);
  child_settle(s, st->child);
}

/** One OUTPUT of the stream's first unsent bytes, as far as credit goes. */
static void stream_send(struct shim *s, struct stream *st) {
  struct child *c = st->child;
  uint32_t n = unsent(st);
  if (n > c->credit) n = c->credit;
  if (n > MAX_OUTPUT) n = MAX_OUTPUT;
  uint8_t *frame = outq_reserve(s, OUTPUT_HEADER_SIZE + n);
  encode_output_header(frame, c->id, st->which, n);
  memcpy(frame + OUTPUT_HEADER_SIZE, st->buf + st->head + st->sent, n);
  outq_commit(s, OUTPUT_HEADER_SIZE + n);
  st->sent += n;
  c->credit -= n;
  stream_settle(s, st);
}

/** Bytes on their way from a pipe to a stream's buffer. */
static uint8_t scratch[MAX_OUTPUT];

/** One read of at most `want` bytes, kept, and sent at once when a daemon is attached. */
static void stream_read(struct shim *s, struct stream *st, uint32_t want) {
  struct child *c = st->child;
  ssize_t n = read(st->fd, scratch, want);
  if (n > 0) {
    stream_keep(st, scratch, (uint32_t)n);
    c->quiet_since_ns = mono_ns();
    // A pipe read returns what the pipe holds: short means empty, and the next write is an edge.
    if ((uint32_t)n < want && !st->hup) st->ready = 0;
    // Everything before was sent (read_room), and `want` was within the credit.
    if (attached(s)) stream_send(s, st);
  } else if (n == 0) {
    stream_close(s, st);
  } else if (errno == EAGAIN) {
    st->ready = 0;
  } else if (errno != EINTR) {
    warnx_shim("reading the output of %s (id %u): %s", c->name, c->id, strerror(errno));
    stream_close(s, st);
  }
}

/** One step of a queued stream: kept bytes go out before the pipe is read again. */
static void stream_step(struct shim *s, struct stream *st) {
  struct child *c = st->child;
  uint32_t room;
  if (can_send(s, st))
    stream_send(s, st);
  else if ((room = read_room(s, st)) > 0)
    stream_read(s, st, room);
  stream_schedule(s, st);
  child_settle(s, c);
}

void pipes_pump(struct shim *s) {
  // One step per queued stream and pass: a flooding child cannot starve the others.
  // (A step may free its child, so the pass counts rather than remembering the tail.)
  for (size_t n = s->runq_len; n > 0 && s->runq_head != NULL && outq_has_room(s); n--) {
    struct stream *st = s->runq_head;
    runq_remove(s, st);
    stream_step(s, st);
  }
}

/* ---- daemons coming and going ---- */

static void child_detach(struct shim *s, struct child *c) {
  for (int i = 0; i < 2; i++) {
    // The old daemon's unacknowledged bytes go to the next one again, and so do the EOFs.
    c->out[i].sent = 0;
    c->out[i].eof_sent = 0;
    runq_remove(s, &c->out[i]);
  }
  // So does its EXITED, queued, written or not: the reap is the next daemon's news too.
  if (c->reaped && c->exit_state != EXIT_PENDING) pending_add(s, c);
  for (int i = 0; i < 2; i++) stream_schedule(s, &c->out[i]);
}

void children_detach(struct shim *s) {
  s->written_head = s->written_tail = NULL;
  children_each(s, child_detach);
}

static const char *child_memo(const struct child *c) {
  return c->name + strlen(c->name) + 1;
}

static void child_inventory(struct shim *s, struct child *c) {
  struct child_report r = {
      .id = c->id,
      .pid = c->exit.pid,
      .start_time = c->start_time,
      .flags = c->reaped ? CHILD_REAPED : 0,
      .name = c->name,
      .memo = child_memo(c),
      .name_n = (uint32_t)strlen(c->name),
      .memo_n = c->memo_n,
  };
  size_t size = CHILD_FRAME_SIZE((size_t)r.name_n, (size_t)r.memo_n);
  outq_commit(s, encode_child(outq_reserve(s, size), &r));
}

static void child_attach(struct shim *s, struct child *c) {
  c->credit = CREDIT_INITIAL;
  // Its clocks start with the daemon: until now its output had nowhere to go.
  c->quiet_since_ns = mono_ns();
  if (c->reaped) c->reaped_at_ns = c->quiet_since_ns;
  for (int i = 0; i < 2; i++) {
    stream_schedule(s, &c->out[i]);
    stream_settle(s, &c->out[i]);
  }
  child_settle(s, c);
}

void children_attach(struct shim *s) {
  children_each(s, child_inventory);
  children_each(s, child_attach);
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
  struct child *c = calloc(1, sizeof *c + m->name.n + 1 + m->memo.n);
  if (c == NULL) return NULL;
  c->id = m->id;
  c->credit = CREDIT_INITIAL;
  if (m->name.n > 0) memcpy(c->name, m->name.p, m->name.n);
  if (m->memo.n > 0) memcpy(c->name + m->name.n + 1, m->memo.p, m->memo.n);
  c->memo_n = (uint16_t)m->memo.n;
  for (int i = 0; i < 2; i++) c->out[i] = (struct stream){.child = c, .fd = -1, .which = (uint8_t)(i + 1)};
  return c;
}

void child_spawn(struct shim *s, const struct msg_spawn *m) {
  if (child_by_id(s, m->id) != NULL) {
    protocol_error(s, "SPAWN: id %u is in use", m->id);
    return;
  }
  struct child *c = child_new(m);
  struct spawn_strings str;
  if (c == NULL || spawn_strings_build(m, &str) != 0) {
    free(c);
    answer_failed(s, m->id, ENOMEM, STAGE_PIPES);
    return;
  }
  struct spawn_request req = {&str, m->flags, m->uid, m->gid, s->devnull, s->pid};
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
  c->start_time = proc_stat_read(res.pid, &st) == 0 ? st.start_time : 0;
  encode_spawned(outq_reserve(s, SPAWNED_FRAME_SIZE), c->id, (uint32_t)res.pid, c->start_time);
  outq_commit(s, SPAWNED_FRAME_SIZE);
}

void child_credit(struct shim *s, uint32_t id, uint8_t stream, uint32_t bytes) {
  struct child *c = child_by_id(s, id);
  if (c == NULL) return;
  struct stream *st = &c->out[stream - 1];
  if (bytes > st->sent) {
    protocol_error(s, "CREDIT: %u bytes of id %u stream %u acknowledged, %u sent unacknowledged",
                   bytes, id, stream, st->sent);
    return;
  }
  stream_ack(st, bytes);
  uint32_t before = c->credit;
  c->credit = bytes > UINT32_MAX - before ? UINT32_MAX : before + bytes;
  if (before == 0 && c->credit > 0) {
    // Its silence before counted for nothing: it could not be read.
    c->quiet_since_ns = mono_ns();
    for (int i = 0; i < 2; i++) stream_schedule(s, &c->out[i]);
  }
  child_settle(s, c);
}

static int is_spawned(void *ctx, pid_t pid) {
  return child_by_pid(ctx, pid) != NULL;
}

static void signal_child(struct shim *s, struct child *c, int signo, int scope) {
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

void child_signal(struct shim *s, uint32_t id, int signo, int scope) {
  struct child *c = child_by_id(s, id);
  // Reaped, its pid may be anyone's by now.
  if (c != NULL && !c->reaped) signal_child(s, c, signo, scope);
}

static void child_kill(struct shim *s, struct child *c) {
  if (!c->reaped) signal_child(s, c, SIGKILL, 1);
}

void children_kill(struct shim *s) {
  children_each(s, child_kill);
  children_turn_end(s);
}

void children_turn_end(struct shim *s) {
  proc_scan_free(s->scan);
  s->scan = NULL;
  s->scanned = 0;
}
