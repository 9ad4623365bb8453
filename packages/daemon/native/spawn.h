// Starting one child: the pipes, the clone, and the child's side up to execve.
#ifndef PROCMON_SPAWN_H
#define PROCMON_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

/** The call that failed, as SPAWN_FAILED's `stage` names it. */
enum spawn_stage {
  STAGE_PIPES = 0,
  STAGE_CLONE = 1,
  STAGE_SETSID = 2,
  STAGE_SETGROUPS = 3,
  STAGE_SETRESGID = 4,
  STAGE_SETRESUID = 5,
  STAGE_CHDIR = 6,
  STAGE_FDS = 7,
  STAGE_EXECVE = 8,
};

struct spawn_request {
  const struct spawn_strings *str;
  uint32_t flags, uid, gid;
  int devnull;
  pid_t shim_pid; /* the child's parent: if that is not its parent any more, the shim died */
};

struct spawn_result {
  pid_t pid;
  int out_fd, err_fd; /* read ends, non-blocking, close-on-exec */
  int error; /* errno of the failed call, 0 on success */
  uint8_t stage;
};

/** Starts the child; on failure nothing of it is left (its zombie is reaped). */
int spawn_start(const struct spawn_request *req, struct spawn_result *res);

#endif
