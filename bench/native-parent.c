/*
 * native-parent: the "native floor" of bench/restart-latency.mjs.
 *
 * Usage: native-parent STAMP FIFO COUNT PREFIX
 *
 * Keeps COUNT copies of the stamp program alive, as procmond and the Node baseline do (each in its
 * own session, stdin /dev/null, stdout and stderr on pipes the parent holds), and respawns each
 * one as soon as it dies. It differs in how: posix_spawn(3), which glibc implements with
 * clone(CLONE_VM|CLONE_VFORK) (no copy of the parent's page tables, unlike libuv's fork()), and
 * one waitpid(-1) loop per SIGCHLD instead of one waitpid() per live child. Prints "ready" once
 * the COUNT children are spawned; on SIGTERM or SIGINT it stops respawning, sends SIGTERM to every
 * child's group, reaps them and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct slot {
  pid_t pid;
  int out, err; /* read ends of the child's stdout and stderr */
  char tag[32];
};

static const char *stamp, *fifo;
static struct slot *slots;
static long count;
static sigset_t handled;

static void close_pipes(struct slot *s) {
  if (s->out >= 0) close(s->out);
  if (s->err >= 0) close(s->err);
  s->out = s->err = -1;
}

static int start(struct slot *s) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) < 0) return -1;
  if (pipe2(err, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &handled);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {(char *)stamp, (char *)fifo, s->tag, NULL};
  int rc = posix_spawn(&s->pid, stamp, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    fprintf(stderr, "native-parent: posix_spawn %s: %s\n", s->tag, strerror(rc));
    s->pid = 0;
    return -1;
  }
  s->out = out[0];
  s->err = err[0];
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: native-parent STAMP FIFO COUNT PREFIX\n");
    return 2;
  }
  stamp = argv[1];
  fifo = argv[2];
  count = strtol(argv[3], NULL, 10);
  if (count <= 0) return 2;
  slots = calloc((size_t)count, sizeof *slots);
  if (!slots) return 1;

  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigprocmask(SIG_BLOCK, &handled, NULL);
  int sfd = signalfd(-1, &handled, SFD_CLOEXEC);
  if (sfd < 0) {
    perror("native-parent: signalfd");
    return 1;
  }

  for (long i = 0; i < count; i++) {
    snprintf(slots[i].tag, sizeof slots[i].tag, "%s%04ld", argv[4], i);
    slots[i].out = slots[i].err = -1;
    if (start(&slots[i]) < 0) return 1;
  }
  printf("ready\n");
  fflush(stdout);

  int stopping = 0;
  long live = count;
  for (;;) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof si);
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof si) return 1;
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      if (!stopping) {
        stopping = 1;
        for (long i = 0; i < count; i++)
          if (slots[i].pid > 0) kill(-slots[i].pid, SIGTERM);
      }
    }
    /* SIGCHLDs coalesce: reap everything that has exited. */
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (long i = 0; i < count; i++) {
        if (slots[i].pid != pid) continue;
        close_pipes(&slots[i]);
        slots[i].pid = 0;
        if (stopping || start(&slots[i]) < 0) live--;
        break;
      }
    }
    if (stopping && live <= 0) return 0;
  }
}
