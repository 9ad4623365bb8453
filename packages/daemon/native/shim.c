// procmon-shim: spawns, reaps and reads the children of one procmond, which
// drives it over a unix stream socket (PROTOCOL.md); with --listen it
// outlives that daemon and waits for the next on a socket of its own. One
// process, one thread, one epoll loop that sleeps until a pipe, the socket,
// the listening socket or a SIGCHLD wakes it, or (only while an exit waits
// for its output) an exit's grace ends.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define IN_CAP (FRAME_HEADER + MAX_FRAME)
/** How long the last frames (ERROR, a refusing HELLO, EXIT's) may take to leave before a close. */
#define LAST_FLUSH_MS 1000
/** --detached-output-buffer's default, and its largest value (buffer sizes stay in a u32). */
#define DETACHED_DEFAULT (1024u * 1024u)
#define DETACHED_MAX (1024u * 1024u * 1024u)

int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void warnx_shim(const char *fmt, ...) {
  char line[512];
  int n = snprintf(line, sizeof line, "procmon-shim: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = strlen(line);
  line[len++] = '\n';
  // One write, one line, even when the daemon reads stderr in chunks. SIGPIPE is blocked.
  ssize_t w = write(2, line, len);
  (void)w;
}

__attribute__((noreturn)) void die(const char *what) {
  warnx_shim("%s: %s", what, strerror(errno));
  exit(1);
}

/* ---- the queue of frames for the daemon ---- */

uint8_t *outq_reserve(struct shim *s, size_t n) {
  struct outq *q = &s->out;
  if (q->cap - q->tail >= n) return q->buf + q->tail;
  if (q->head > 0) {
    memmove(q->buf, q->buf + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
    if (q->cap - q->tail >= n) return q->buf + q->tail;
  }
  size_t cap = q->cap ? q->cap : 65536;
  while (cap - q->tail < n) cap *= 2;
  uint8_t *buf = realloc(q->buf, cap);
  if (buf == NULL) die("queueing a frame");
  q->buf = buf;
  q->cap = cap;
  return q->buf + q->tail;
}

void outq_commit(struct shim *s, size_t n) {
  s->out.tail += n;
  s->out.committed += n;
  if (!outq_has_room(s)) s->out_full = 1;
}

size_t outq_pending(const struct shim *s) {
  return s->out.tail - s->out.head;
}

int outq_has_room(const struct shim *s) {
  return outq_pending(s) + OUTPUT_HEADER_SIZE + MAX_OUTPUT <= OUTQ_LIMIT;
}

static void watch(struct shim *s, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
}

/** What was queued for a daemon that is gone: void, and its memory given back. */
static void outq_drop(struct shim *s) {
  free(s->out.buf);
  s->out.buf = NULL;
  s->out.head = s->out.tail = s->out.cap = 0;
  s->out.committed = s->out.written;
  s->out_full = 0;
}

/**
 * The daemon's socket is closed. Its children stay, their output is kept
 * for the next daemon, and the listening socket is watched again.
 */
static void detach(struct shim *s) {
  close(s->sock);
  s->sock = -1;
  s->accepted = s->handshaken = 0;
  s->sock_readable = s->sock_writable = 0;
  s->in_head = s->in_tail = 0;
  outq_drop(s);
  watch(s, s->listen_fd, EPOLLIN);
  children_detach(s);
}

/** The daemon is gone (end of file, or a failed write). Without --listen its children die with the shim. */
static void connection_lost(struct shim *s) {
  if (s->listen_fd < 0) exit(0);
  detach(s);
}

static void flush(struct shim *s) {
  struct outq *q = &s->out;
  while (s->sock >= 0 && s->sock_writable && q->tail > q->head) {
    ssize_t n = send(s->sock, q->buf + q->head, q->tail - q->head, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      q->head += (size_t)n;
      q->written += (uint64_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      s->sock_writable = 0;
    } else if (n < 0 && errno != EINTR) {
      connection_lost(s);
      return;
    }
  }
  if (q->head == q->tail) q->head = q->tail = 0;
  exits_written(s);
  if (s->out_full && outq_has_room(s)) {
    s->out_full = 0;
    exits_resume(s);
  }
}

/** Sends what is queued, for at most LAST_FLUSH_MS, blocking. */
static void last_flush(struct shim *s) {
  int64_t deadline = mono_ns() + (int64_t)LAST_FLUSH_MS * 1000000;
  while (s->sock >= 0) {
    s->sock_writable = 1;
    flush(s);
    int64_t left_ms = (deadline - mono_ns()) / 1000000;
    if (outq_pending(s) == 0 || left_ms <= 0 || s->sock < 0) break;
    struct pollfd p = {s->sock, POLLOUT, 0};
    poll(&p, 1, (int)left_ms);
  }
}

/** Sends what is queued, then exits; a shim that exits serves nothing on its path any more. */
__attribute__((noreturn)) static void close_and_exit(struct shim *s, int code) {
  last_flush(s);
  if (s->sock >= 0) close(s->sock);
  if (s->listen_fd >= 0) unlink(s->listen_path);
  exit(code);
}

/** Ends a connection after a refusal: the --fd one with the shim, an accepted one alone. */
static void connection_end(struct shim *s, int code) {
  if (!s->accepted) close_and_exit(s, code);
  last_flush(s);
  if (s->sock >= 0) detach(s);
}

void protocol_error(struct shim *s, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  warnx_shim("protocol error: %s", message);
  outq_commit(s, encode_error(outq_reserve(s, ERROR_FRAME_MAX), message));
  connection_end(s, 1);
}

/* ---- the daemon's frames ---- */

static void handshake(struct shim *s, const struct message *m) {
  if (m->type != T_HELLO) {
    protocol_error(s, "the first frame must be HELLO, not type %u", m->type);
    return;
  }
  int same = m->u.hello.version == SHIM_PROTOCOL_VERSION;
  // A daemon of another version gets no inventory: `held` says that none follows.
  uint32_t held = same ? s->by_id.count : 0;
  outq_commit(s, encode_hello(outq_reserve(s, HELLO_FRAME_SIZE), (uint32_t)s->pid, held));
  if (!same) {
    warnx_shim("the daemon speaks protocol %u, this shim %u: closing", m->u.hello.version,
               SHIM_PROTOCOL_VERSION);
    connection_end(s, 1);
    return;
  }
  s->handshaken = 1;
  children_attach(s);
}

/** EXIT: the daemon has stopped every process; what is left of the trees is killed. */
__attribute__((noreturn)) static void shim_exit(struct shim *s) {
  children_kill(s);
  close_and_exit(s, 0);
}

static void handle_frame(struct shim *s, const uint8_t *body, uint32_t len) {
  struct message m;
  char err[256];
  if (message_decode(body, len, &m, err, sizeof err) != 0) {
    protocol_error(s, "%s", err);
    return;
  }
  if (!s->handshaken) {
    handshake(s, &m);
    return;
  }
  switch (m.type) {
  case T_HELLO:
    protocol_error(s, "HELLO: the handshake is over");
    break;
  case T_SPAWN:
    child_spawn(s, &m.u.spawn);
    break;
  case T_SIGNAL:
    child_signal(s, m.u.signal.id, m.u.signal.signo, m.u.signal.scope);
    break;
  case T_CREDIT:
    child_credit(s, m.u.credit.id, m.u.credit.stream, m.u.credit.bytes);
    break;
  default:
    shim_exit(s);
  }
}

/** Reads what the socket holds into the input buffer, keeping a whole frame's room. */
static void socket_read(struct shim *s) {
  if (s->in_head == s->in_tail) {
    s->in_head = s->in_tail = 0;
  } else if (s->in_head > 0) {
    memmove(s->in, s->in + s->in_head, s->in_tail - s->in_head);
    s->in_tail -= s->in_head;
    s->in_head = 0;
  }
  ssize_t n = read(s->sock, s->in + s->in_tail, IN_CAP - s->in_tail);
  if (n > 0)
    s->in_tail += (size_t)n;
  else if (n == 0 || (errno != EAGAIN && errno != EINTR))
    connection_lost(s);
  else if (errno == EAGAIN)
    s->sock_readable = 0;
}

/** Handles the frames received, reading more while the queue has room. */
static void socket_frames(struct shim *s) {
  for (int handled = 0; handled < FRAMES_PER_TURN;) {
    // The daemon's frames make answers: none are taken while the answers cannot leave.
    // (And none once the connection is gone: a frame may have ended it.)
    if (s->sock < 0 || !outq_has_room(s)) return;
    uint32_t len;
    char err[128];
    size_t have = s->in_tail - s->in_head;
    switch (frame_split(s->in + s->in_head, have, &len, err, sizeof err)) {
    case SPLIT_BAD:
      protocol_error(s, "%s", err);
      return;
    case SPLIT_FRAME:
      s->in_head += FRAME_HEADER + len;
      handle_frame(s, s->in + s->in_head - len, len);
      handled++;
      break;
    case SPLIT_MORE:
      if (!s->sock_readable) return;
      socket_read(s);
      break;
    }
  }
}

static void socket_input(struct shim *s) {
  socket_frames(s);
  children_turn_end(s);
}

/**
 * Whether a turn has work without a new event: frames received or pipes
 * ready, and room for what they make. Asked after the turn's last flush,
 * which may be what made the room.
 */
static int work_waiting(const struct shim *s) {
  if (!outq_has_room(s)) return 0;
  if (s->runq_head != NULL || (s->sock >= 0 && s->sock_readable)) return 1;
  uint32_t len;
  char err[128];
  return frame_split(s->in + s->in_head, s->in_tail - s->in_head, &len, err, sizeof err) !=
         SPLIT_MORE;
}

/* ---- start-up ---- */

static int parse_fd(const char *text) {
  char *end;
  errno = 0;
  long fd = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || fd < 0 || fd > INT_MAX) return -1;
  return (int)fd;
}

struct options {
  int fd;
  const char *listen;
  uint32_t detached_limit;
};

__attribute__((noreturn)) static void usage(void) {
  fprintf(stderr, "usage: procmon-shim --fd N [--listen PATH] [--detached-output-buffer BYTES]"
                  " | --version\n");
  exit(2);
}

static uint32_t parse_bytes(const char *text) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || n > DETACHED_MAX) usage();
  return (uint32_t)n;
}

static struct options parse_args(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    printf("procmon-shim %d\n", SHIM_PROTOCOL_VERSION);
    exit(0);
  }
  struct options o = {-1, NULL, DETACHED_DEFAULT};
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--fd") == 0 && o.fd < 0 && (o.fd = parse_fd(argv[i + 1])) >= 0)
      continue;
    if (strcmp(argv[i], "--listen") == 0 && o.listen == NULL && argv[i + 1][0] != '\0') {
      o.listen = argv[i + 1];
      continue;
    }
    if (strcmp(argv[i], "--detached-output-buffer") == 0) {
      o.detached_limit = parse_bytes(argv[i + 1]);
      continue;
    }
    usage();
  }
  if (o.fd < 0) usage();
  return o;
}

/** Gives fds 0 to 2 a file if they have none, so that no pipe of a child lands on them. */
static void hold_std_fds(void) {
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int null = open("/dev/null", O_RDWR);
    if (null != fd) die("opening /dev/null for a missing standard fd");
  }
}

/*
 * Every disposition to its default, once: the children inherit them through
 * execve (the shim never installs a handler or ignores a signal). SIGCHLD is
 * read from a signalfd; SIGPIPE blocked makes a broken stderr an EPIPE. The
 * child clears the mask, and a child starts with no pending signal.
 */
static int signals_init(void) {
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGPIPE);
  if (sigprocmask(SIG_SETMASK, &set, NULL) != 0) die("sigprocmask");
  sigdelset(&set, SIGPIPE);
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) die("signalfd");
  return fd;
}

static void socket_init(struct shim *s, int fd) {
  int type;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    warnx_shim("fd %d is not a stream socket", fd);
    exit(2);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
    die("setting up the socket");
  s->sock = fd;
  s->sock_writable = 1;
}

/**
 * Binds --listen's socket, 0600 from the start (bind makes the file by the
 * umask, which the children get back as it was). PATH must not exist: a
 * stale one is the daemon's to remove, a live one another shim's.
 */
static int listen_init(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    warnx_shim("--listen %s: longer than a socket path may be", path);
    exit(2);
  }
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  mode_t umask_was = umask(0177);
  int rc = bind(fd, (const struct sockaddr *)&addr, sizeof addr);
  umask(umask_was);
  if (rc != 0) {
    warnx_shim("binding %s: %s", path, strerror(errno));
    exit(1);
  }
  if (listen(fd, 16) != 0) die("listen");
  return fd;
}

static void shim_init(struct shim *s, const struct options *o) {
  hold_std_fds();
  s->pid = getpid();
  s->sigfd = signals_init();
  socket_init(s, o->fd);
  s->detached_limit = o->detached_limit;
  s->listen_fd = -1;
  if (o->listen != NULL) {
    s->listen_fd = listen_init(o->listen);
    s->listen_path = o->listen;
  }
  // Orphans of the children's trees come to the shim, which can then find and reap them.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    warnx_shim("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  s->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (s->devnull < 0) die("opening /dev/null");
  s->in = malloc(IN_CAP);
  if (s->in == NULL || children_init(s) != 0) die("allocating");
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  if (s->ep < 0) die("epoll_create1");
  watch(s, s->sock, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  watch(s, s->sigfd, EPOLLIN);
}

/* ---- the loop ---- */

/** Whether the peer is the shim's own uid or root: no one else may drive its children. */
static int peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.uid == geteuid() || cred.uid == 0;
}

/**
 * Takes the next daemon's connection. The listening socket is not watched
 * while it is attached: a second daemon waits in the backlog.
 */
static void accept_daemon(struct shim *s) {
  for (;;) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
    if (fd < 0) {
      if (errno != EAGAIN) warnx_shim("accepting on %s: %s", s->listen_path, strerror(errno));
      return;
    }
    if (!peer_allowed(fd)) {
      warnx_shim("refused a connection on %s: its peer is neither this uid nor root",
                 s->listen_path);
      close(fd);
      continue;
    }
    if (epoll_ctl(s->ep, EPOLL_CTL_DEL, s->listen_fd, NULL) != 0) die("epoll_ctl");
    s->sock = fd;
    s->accepted = 1;
    s->sock_readable = s->sock_writable = 1;
    watch(s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    return;
  }
}

static void dispatch(struct shim *s, const struct epoll_event *ev, int *reap) {
  if (ev->data.fd == s->listen_fd) {
    if (s->sock < 0) accept_daemon(s);
  } else if (s->sock >= 0 && ev->data.fd == s->sock) {
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->sock_readable = 1;
    if (ev->events & EPOLLOUT) s->sock_writable = 1;
  } else if (ev->data.fd == s->sigfd) {
    *reap = 1;
  } else {
    pipe_event(s, ev->data.fd, ev->events);
  }
}

static void run(struct shim *s) {
  struct epoll_event ev[64];
  for (;;) {
    int due = exits_due(s);
    flush(s);
    int n = epoll_wait(s->ep, ev, 64, work_waiting(s) ? 0 : due);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int reap = 0;
    for (int i = 0; i < n; i++) dispatch(s, &ev[i], &reap);
    if (reap) children_reap(s);
    socket_input(s);
    pipes_pump(s);
    flush(s);
  }
}

int main(int argc, char **argv) {
  static struct shim s;
  struct options o = parse_args(argc, argv);
  shim_init(&s, &o);
  run(&s);
}
