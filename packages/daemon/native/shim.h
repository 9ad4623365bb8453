// The shim's state and the functions its files share: shim.c (the loop, the
// socket, the daemon's frames), children.c (child records, their pipes and
// exits), index.c (finding them), spawn.c (starting one child) and proc.c
// (/proc and tree signals).
#ifndef PROCMON_SHIM_H
#define PROCMON_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

/** Frames queued on the socket past which no pipe and no daemon frame is read. */
#define OUTQ_LIMIT (1024u * 1024u)
/** Daemon frames handled per turn of the loop, so that a stream of them cannot starve the pipes. */
#define FRAMES_PER_TURN 64
/** A child's pipes may stay silent this long after its reap before EXITED. */
#define EXIT_QUIET_NS (100 * 1000000LL)
/** EXITED comes at the latest this long after the reap. */
#define EXIT_LATEST_NS (1000 * 1000000LL)

struct child;
struct proc_scan;

/**
 * One of a child's output pipes, read end, and what was read from it and not
 * yet acknowledged: buf[head, tail). The first `sent` of those bytes are
 * queued for (or written to) the current daemon; the rest wait for credit.
 */
struct stream {
  struct child *child;
  int fd; /* -1 once at end of file */
  uint8_t which; /* 1 stdout, 2 stderr */
  uint8_t ready; /* epoll said readable, and no read has drained it since */
  uint8_t hup; /* the pipe has no writer left (there may still be bytes) */
  uint8_t queued; /* on the run queue */
  uint8_t eof_sent; /* EOF is queued for the current daemon */
  struct stream *prev, *next; /* run queue links */
  uint8_t *buf; /* NULL while nothing is unacknowledged: idle children stay small */
  uint32_t head, tail, cap, sent;
};

/** Where a reaped child's EXITED stands with the current daemon. */
enum exit_state {
  EXIT_NONE, /* not reaped */
  EXIT_PENDING, /* reaped, on the pending list: EXITED not queued */
  EXIT_QUEUED, /* queued, on the written list until the socket took it */
  EXIT_WRITTEN, /* written to the socket */
};

/** A child the daemon spawned, from its spawn until its EXITED, both EOFs and every acknowledgment. */
struct child {
  uint32_t id;
  pid_t pid; /* 0 once reaped: the pid may be someone else's from then on */
  uint32_t credit;
  uint64_t start_time; /* of SPAWNED, for CHILD */
  struct stream out[2];
  uint8_t reaped, exit_state;
  uint16_t memo_n;
  struct exit_report exit;
  int64_t reaped_at_ns, quiet_since_ns; /* CLOCK_MONOTONIC */
  uint64_t exit_mark; /* EXIT_QUEUED: the queue's byte count once its EXITED is written */
  struct child *link[2]; /* hash chains: by id, by pid */
  struct child *pending_prev, *pending_next; /* EXIT_PENDING list */
  struct child *written_next; /* EXIT_QUEUED list, in queue order */
  char name[]; /* NUL-terminated, at most MAX_NAME bytes; the memo follows its NUL */
};

/** A chained hash of children by id (`key` 0) or by pid (`key` 1). */
struct child_index {
  struct child **buckets;
  uint32_t mask;
  uint32_t count;
  int key;
};

/** Bytes waiting to be written on the socket. */
struct outq {
  uint8_t *buf;
  size_t head, tail, cap;
  /* Bytes ever queued and ever written: an EXITED is written once `written` passes its end. */
  uint64_t committed, written;
};

struct shim {
  int sock, ep, sigfd, devnull;
  pid_t pid;
  /* --listen: the socket's path and fd (-1 without), and whether `sock` was accepted there. */
  const char *listen_path;
  int listen_fd;
  uint8_t accepted;
  uint32_t detached_limit; /* --detached-output-buffer */
  uint8_t *in;
  size_t in_head, in_tail;
  uint8_t sock_readable, sock_writable, handshaken, out_full;
  struct outq out;
  struct child_index by_id, by_pid;
  struct stream **by_fd; /* a pipe's stream by its fd */
  size_t by_fd_cap;
  struct stream *runq_head, *runq_tail;
  size_t runq_len;
  struct child *pending;
  struct child *written_head, *written_tail;
  /* The look at /proc that the scope 1 signals of this turn share (NULL if none yet). */
  struct proc_scan *scan;
  uint8_t scanned;
};

/** A daemon is attached: its HELLO came, and frames for it may be queued. */
static inline int attached(const struct shim *s) {
  return s->sock >= 0 && s->handshaken;
}

/* shim.c */
int64_t mono_ns(void);
/** Room for `n` more bytes at the queue's tail (the shim exits if memory is out). */
uint8_t *outq_reserve(struct shim *s, size_t n);
void outq_commit(struct shim *s, size_t n);
size_t outq_pending(const struct shim *s);
/** Whether one more full OUTPUT still fits under OUTQ_LIMIT. */
int outq_has_room(const struct shim *s);
void warnx_shim(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void die(const char *what);
/**
 * Reports a protocol error to the daemon (ERROR) and closes the socket: the
 * shim exits if it was the --fd one, and detaches if it was accepted on
 * --listen's. Callers return at once: the connection is gone.
 */
void protocol_error(struct shim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* index.c */
int children_init(struct shim *s);
struct child *child_by_id(struct shim *s, uint32_t id);
struct child *child_by_pid(struct shim *s, pid_t pid);
void index_add(struct child_index *ix, struct child *c);
void index_remove(struct child_index *ix, struct child *c);
/** Files `st` under its fd; -1 if memory is out. */
int by_fd_set(struct shim *s, int fd, struct stream *st);
/** Calls `fn` for every held child; `fn` may free the child it is given. */
void children_each(struct shim *s, void (*fn)(struct shim *, struct child *));

/* children.c */
/** Starts the SPAWN's child and queues SPAWNED or SPAWN_FAILED. */
void child_spawn(struct shim *s, const struct msg_spawn *m);
/** CREDIT: acknowledges `bytes` more of `stream` and gives them back as credit. */
void child_credit(struct shim *s, uint32_t id, uint8_t stream, uint32_t bytes);
void child_signal(struct shim *s, uint32_t id, int signo, int scope);
/** The turn's frames are handled: its look at /proc is out of date. */
void children_turn_end(struct shim *s);
/** An epoll event for one of the pipes. */
void pipe_event(struct shim *s, int fd, uint32_t events);
/** Reads the ready pipes once each, as credit and the queue allow. */
void pipes_pump(struct shim *s);
/** Reaps every child that has exited; the known ones become pending exits. */
void children_reap(struct shim *s);
/** Sends the EXITED that are due; returns ms until the next is, or -1. */
int exits_due(struct shim *s);
/** The queue fell under its limit: silent pipes count from now. */
void exits_resume(struct shim *s);
/** The socket took more bytes: the EXITED among them are written. */
void exits_written(struct shim *s);
/** The daemon is gone: what was queued for it is void, and each child waits for the next. */
void children_detach(struct shim *s);
/** A daemon attached: queues the CHILD inventory and starts each held child over for it. */
void children_attach(struct shim *s);
/** EXIT: SIGKILL to the tree of every held child not yet reaped. */
void children_kill(struct shim *s);

#endif
