/*
 * stamp: the child of bench/restart-latency.mjs.
 *
 * Usage: stamp FIFO TAG
 *
 * Its first instruction reads CLOCK_MONOTONIC; it then appends one line
 * "TAG PID NS\n" to FIFO (a single write of less than PIPE_BUF bytes, so lines
 * from many children never interleave) and sleeps in pause() until a signal
 * ends it. It writes nothing to stdout or stderr. Built at bench time with
 * `cc -O2 [-static] -o stamp stamp.c`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (argc < 3) return 2;
  char line[256];
  int n = snprintf(line, sizeof line, "%s %ld %lld\n", argv[2], (long)getpid(),
                   (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec);
  if (n <= 0 || n >= (int)sizeof line) return 3;
  int fd = open(argv[1], O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return 4;
  if (write(fd, line, (size_t)n) != n) return 5;
  close(fd);
  for (;;) pause();
}
