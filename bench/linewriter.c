/*
 * linewriter: the output-producing child of bench/events.mjs.
 *
 * Usage: linewriter SIZE COUNT RATE REPORT [hold]
 *
 *   SIZE    bytes per line, newline included (>= 16)
 *   COUNT   lines to write, then exit 0; 0 = forever (until a signal)
 *   RATE    lines per second, paced on CLOCK_MONOTONIC with absolute sleeps;
 *           0 = as fast as possible, in writes of up to 64 KiB of whole lines
 *           (what a stdio-buffered program does)
 *   REPORT  file to write "lines bytes elapsed_ns start_realtime_ns\n" to at
 *           the end, or "-" for none
 *   hold    after the last line and the report, sleep until a signal instead
 *           of exiting (so that a supervisor does not restart it)
 *
 * Each line is "L<12-digit number> " followed by 'x' padding and a newline, so
 * a reader can check order and completeness. It writes to stdout only; the
 * elapsed time runs from just before the first write to just after the last
 * write returned, so it measures how fast whatever is on the other end of
 * stdout lets it write. Built at bench time with `cc -O2 -o linewriter linewriter.c`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static long long now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(1, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static void format_line(char *line, long size, unsigned long long number) {
  char head[32];
  int n = snprintf(head, sizeof head, "L%012llu ", number);
  memset(line, 'x', (size_t)size - 1);
  memcpy(line, head, (size_t)n);
  line[size - 1] = '\n';
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: linewriter SIZE COUNT RATE REPORT [hold]\n");
    return 2;
  }
  long size = atol(argv[1]);
  unsigned long long count = strtoull(argv[2], NULL, 10);
  double rate = atof(argv[3]);
  const char *report = argv[4];
  if (size < 16 || size > CHUNK) return 2;

  long per_chunk = rate > 0 ? 1 : CHUNK / size;
  char *buf = malloc((size_t)(per_chunk * size));
  if (buf == NULL) return 3;

  long long start_real = now_ns(CLOCK_REALTIME);
  long long start = now_ns(CLOCK_MONOTONIC);
  unsigned long long written = 0;
  long long next = start;
  long long period = rate > 0 ? (long long)(1e9 / rate) : 0;
  while (count == 0 || written < count) {
    unsigned long long batch = (unsigned long long)per_chunk;
    if (count != 0 && count - written < batch) batch = count - written;
    for (unsigned long long i = 0; i < batch; i++) format_line(buf + i * size, size, written + i + 1);
    if (write_all(buf, (size_t)(batch * size)) != 0) return 4;
    written += batch;
    if (period > 0) {
      next += period;
      struct timespec ts = {next / 1000000000LL, next % 1000000000LL};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
      }
    }
  }
  long long elapsed = now_ns(CLOCK_MONOTONIC) - start;
  if (strcmp(report, "-") != 0) {
    FILE *f = fopen(report, "w");
    if (f == NULL) return 5;
    fprintf(f, "%llu %llu %lld %lld\n", written, written * (unsigned long long)size, elapsed,
            start_real);
    fclose(f);
  }
  if (argc > 5 && strcmp(argv[5], "hold") == 0) {
    for (;;) pause();
  }
  return 0;
}
