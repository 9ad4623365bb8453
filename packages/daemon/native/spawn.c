// Starting one child.
//
// The primitive: clone(CLONE_VM | CLONE_VFORK), vfork on a stack of its own,
// as glibc's posix_spawn does. posix_spawn itself cannot switch to a uid with
// setgroups/setresgid/setresuid nor say which call failed; fork copies the
// shim's page tables, a cost that grows with its buffers. Measured with
// bench/spawn-rate.c on this machine (2 shared cores, Linux 6.18, glibc 2.36):
// spawns/s of /bin/true, spawn + wait in a loop, median of 3 runs (3,000
// spawns each; 1,000 at 64 MiB)
//   heap touched   fork   vfork (clone)   posix_spawn
//   0 KiB           889        1,074           887
//   2 MiB           724        1,015           928
//   64 MiB          182        1,374         1,164
// (The machine is shared and noisy; the order held in every run. The shim's
// RSS is 1.2 MiB idle; under load its buffers hold the output not yet
// acknowledged, up to --detached-output-buffer a child.) The
// shim itself, 1,000 SPAWNs of /bin/true sent at once from Node: 1,100
// spawns and exits a second.
//
// Between the clone and execve the child shares the shim's memory: it calls
// only async-signal-safe functions, touches no heap, and reports a failure
// through a close-on-exec pipe (errno and stage) before _exit.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The child code runs on a stack the sanitizers know nothing of, sharing the
 * shim's memory: instrumenting it would only produce false reports.
 */
#define CHILD_SIDE __attribute__((no_sanitize("address", "undefined")))

/** The child's stack: one suffices, the shim waits in clone until execve. */
static uint8_t child_stack[64 * 1024] __attribute__((aligned(16)));

struct child_args {
  const struct spawn_request *req;
  int out_w, err_w, report_w;
  /** Where the close loop stops when the kernel lacks close_range. */
  int fd_limit;
};

struct failure_report {
  int32_t error;
  int32_t stage;
};

CHILD_SIDE __attribute__((noreturn)) static void child_fail(const struct child_args *a,
                                                            enum spawn_stage stage) {
  struct failure_report r = {errno, (int32_t)stage};
  // A pipe write under PIPE_BUF is whole or nothing; nothing more can be done if it fails.
  ssize_t n = write(a->report_w, &r, sizeof r);
  (void)n;
  _exit(127);
}

/** Closes every fd from 3 on but `keep` (the report pipe, close-on-exec itself). */
CHILD_SIDE static void close_others(const struct child_args *a) {
  int keep = a->report_w;
#ifdef SYS_close_range
  if ((keep == 3 || syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u) == 0) &&
      syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
    return;
#endif
  // Before Linux 5.9: the shim's own fds are all close-on-exec, this catches the rest.
  for (int fd = 3; fd < a->fd_limit; fd++)
    if (fd != keep) close(fd);
}

/*
 * setgroups and the setres*id calls as raw syscalls: glibc's wrappers would
 * try to broadcast the change to the other threads of the process, and this
 * child shares the shim's memory without being one of its threads.
 */
CHILD_SIDE static void switch_ids(const struct child_args *a) {
  const struct spawn_request *q = a->req;
  if ((q->flags & (SPAWN_SET_UID | SPAWN_SET_GID)) == 0) return;
  if (syscall(SYS_setgroups, 0, NULL) != 0) child_fail(a, STAGE_SETGROUPS);
  if ((q->flags & SPAWN_SET_GID) && syscall(SYS_setresgid, q->gid, q->gid, q->gid) != 0)
    child_fail(a, STAGE_SETRESGID);
  if ((q->flags & SPAWN_SET_UID) && syscall(SYS_setresuid, q->uid, q->uid, q->uid) != 0)
    child_fail(a, STAGE_SETRESUID);
}

CHILD_SIDE static int child_main(void *arg) {
  const struct child_args *a = arg;
  const struct spawn_strings *str = a->req->str;
  if (setsid() < 0) child_fail(a, STAGE_SETSID);
  switch_ids(a);
  // The child dies with the shim. Set after the id switch, which clears it; and
  // a shim that died before it was set has left this child to init already.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != a->req->shim_pid) _exit(127);
  if (str->cwd[0] != '\0' && chdir(str->cwd) != 0) child_fail(a, STAGE_CHDIR);
  if (dup2(a->req->devnull, 0) < 0 || dup2(a->out_w, 1) < 0 || dup2(a->err_w, 2) < 0)
    child_fail(a, STAGE_FDS);
  close_others(a);
  // The shim keeps every disposition at its default (main resets them), so
  // only the mask, where SIGCHLD waits for the signalfd, is the child's to clear.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(str->path, str->argv, str->env);
  child_fail(a, STAGE_EXECVE);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/** Both ends close-on-exec; the shim's read end non-blocking, the child's blocking. */
static int output_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0) return 0;
  int saved = errno;
  close_fd(&fds[0]);
  close_fd(&fds[1]);
  errno = saved;
  return -1;
}

static int fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur > 65536) return 65536;
  return (int)rl.rlim_cur;
}

static int fail_with(struct spawn_result *res, int error, enum spawn_stage stage) {
  res->error = error;
  res->stage = (uint8_t)stage;
  return -1;
}

/** Reads the child's failure report, if it wrote one before _exit. */
static int read_report(int fd, struct failure_report *r) {
  ssize_t n;
  do n = read(fd, r, sizeof *r);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)sizeof *r;
}

int spawn_start(const struct spawn_request *req, struct spawn_result *res) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  res->pid = -1;
  res->out_fd = res->err_fd = -1;
  res->error = 0;
  if (output_pipe(out) != 0 || output_pipe(err) != 0 || pipe2(report, O_CLOEXEC) != 0) {
    int saved = errno;
    close_fd(&out[0]), close_fd(&out[1]), close_fd(&err[0]), close_fd(&err[1]);
    return fail_with(res, saved, STAGE_PIPES);
  }
  struct child_args args = {req, out[1], err[1], report[1], fd_limit()};
  pid_t pid = clone(child_main, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                    &args);
  int saved = errno;
  // The child has run execve or _exit by now: its ends are its own business.
  close_fd(&out[1]), close_fd(&err[1]), close_fd(&report[1]);
  struct failure_report r;
  if (pid < 0) {
    r.error = saved;
    r.stage = STAGE_CLONE;
  } else if (!read_report(report[0], &r)) {
    close_fd(&report[0]);
    res->pid = pid;
    res->out_fd = out[0];
    res->err_fd = err[0];
    return 0;
  } else {
    // Its zombie, reaped here so that the loop's wait4 never sees an unknown pid of ours.
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(&report[0]), close_fd(&out[0]), close_fd(&err[0]);
  return fail_with(res, r.error, (enum spawn_stage)r.stage);
}
