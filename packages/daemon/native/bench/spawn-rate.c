// Spawns /bin/true N times with fork, vfork (clone CLONE_VM|CLONE_VFORK, as
// the shim does) or posix_spawn, waits for each, and prints spawns/s: the
// figures behind the choice in ../spawn.c. `touch_kib` dirties that much heap
// first, standing in for the shim's buffers (fork copies page tables).
//   cc -O2 -D_GNU_SOURCE -o /tmp/spawn-rate spawn-rate.c
//   /tmp/spawn-rate fork|vfork|posix_spawn [n] [touch_kib]
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static char *const true_argv[] = {"true", NULL};
static char child_stack[64 * 1024] __attribute__((aligned(16)));

static int child_exec(void *arg) {
  (void)arg;
  execve("/bin/true", true_argv, environ);
  _exit(127);
}

static pid_t spawn_one(const char *mode) {
  pid_t pid = -1;
  if (strcmp(mode, "fork") == 0) {
    pid = fork();
    if (pid == 0) child_exec(NULL);
  } else if (strcmp(mode, "vfork") == 0) {
    pid = clone(child_exec, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                NULL);
  } else if (posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ) != 0) {
    pid = -1;
  }
  return pid;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "vfork";
  long n = argc > 2 ? atol(argv[2]) : 2000;
  long touch_kib = argc > 3 ? atol(argv[3]) : 0;
  if (touch_kib > 0) memset(malloc((size_t)touch_kib * 1024), 1, (size_t)touch_kib * 1024);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    pid_t pid = spawn_one(mode);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
      perror(mode);
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%-11s touch %6ld KiB: %7.0f spawns/s (%ld in %.2f s)\n", mode, touch_kib, n / s, n, s);
  return 0;
}
