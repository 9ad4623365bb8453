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

/** One of a child's output pipes, read end. */
struct stream {
  struct child *child;
  int fd; /* -1 once at end of file */
  uint8_t which; /* 1 stdout, 2 stderr */
  uint8_t ready; /* epoll said readable, and no read has drained it since */
  uint8_t hup; /* the pipe has no writer left (there may still be bytes) */
  uint8_t queued; /* on the run queue */
  struct stream *prev, *next; /* run queue links */
};

/** A child the daemon spawned, from its spawn until its EXITED and both EOFs. */
struct child {
  uint32_t id;
  pid_t pid; /* 0 once reaped: the pid may be someone else's from then on */
  uint32_t credit;
  struct stream out[2];
  uint8_t reaped, reported;
  struct exit_report exit;
  int64_t reaped_at_ns, quiet_since_ns; /* CLOCK_MONOTONIC */
  struct child *link[2]; /* hash chains: by id, by pid */
  struct child *pending_prev, *pending_next; /* reaped, EXITED not yet sent */
  char name[]; /* NUL-terminated, at most MAX_NAME bytes */
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
};

struct shim {
  int sock, ep, sigfd, devnull;
  pid_t pid;
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
  /* The look at /proc that the scope 1 signals of this turn share (NULL if none yet). */
  struct proc_scan *scan;
  uint8_t scanned;
};

/* shim.c */
int64_t mono_ns(void);
/** Room for `n` more bytes at the queue's tail (the shim exits if memory is out). */
uint8_t *outq_reserve(struct shim *s, size_t n);
void outq_commit(struct shim *s, size_t n);
size_t outq_pending(const struct shim *s);
/** Whether one more full OUTPUT still fits under OUTQ_LIMIT. */
int outq_has_room(const struct shim *s);
void warnx_shim(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Reports a protocol error to the daemon (ERROR), closes the socket and exits. */
__attribute__((noreturn)) void protocol_error(struct shim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* index.c */
int children_init(struct shim *s);
struct child *child_by_id(struct shim *s, uint32_t id);
struct child *child_by_pid(struct shim *s, pid_t pid);
void index_add(struct child_index *ix, struct child *c);
void index_remove(struct child_index *ix, struct child *c);
/** Files `st` under its fd; -1 if memory is out. */
int by_fd_set(struct shim *s, int fd, struct stream *st);

/* children.c */
/** Starts the SPAWN's child and queues SPAWNED or SPAWN_FAILED. */
void child_spawn(struct shim *s, const struct msg_spawn *m);
void child_credit(struct shim *s, uint32_t id, uint32_t bytes);
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

#endif
