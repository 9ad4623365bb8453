// The wire format of PROTOCOL.md: frame constants, the decoder of what the
// daemon sends and the encoders of what the shim answers. Nothing here does
// I/O or keeps state, so the fuzz target links this file alone.
#ifndef PROCMON_FRAME_H
#define PROCMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define SHIM_PROTOCOL_VERSION 2
#define HELLO_MAGIC 0x534d5250u
#define MAX_FRAME 1048576u
#define MAX_LIST 65536u
#define CREDIT_INITIAL 262144u
#define MAX_OUTPUT 65536u
/** The longest SPAWN `name`: the daemon's names are 1 to 128 characters. */
#define MAX_NAME 255u
/** The longest SPAWN `memo`: what a later daemon needs to take the run over. */
#define MAX_MEMO 4096u
/** The u32 length before every frame. */
#define FRAME_HEADER 4u

enum frame_type {
  T_HELLO = 1,
  T_SPAWN = 2,
  T_SIGNAL = 3,
  T_CREDIT = 4,
  T_SPAWNED = 5,
  T_SPAWN_FAILED = 6,
  T_OUTPUT = 7,
  T_EOF = 8,
  T_EXITED = 9,
  T_ERROR = 10,
  T_CHILD = 11,
  T_EXIT = 12,
};

#define SPAWN_SET_UID 1u
#define SPAWN_SET_GID 2u

/** Bytes inside the frame being decoded: never NUL-terminated. */
struct str_view {
  const uint8_t *p;
  uint32_t n;
};

/** An encoded list<str>, already checked: `count` items from `p`. */
struct str_list {
  const uint8_t *p;
  uint32_t count;
};

struct msg_hello {
  uint32_t magic;
  uint16_t version;
};

struct msg_spawn {
  uint32_t id, flags, uid, gid;
  struct str_view name, path, cwd, memo;
  struct str_list argv, env;
};

struct msg_signal {
  uint32_t id;
  int32_t signo;
  uint8_t scope;
};

struct msg_credit {
  uint32_t id, bytes;
  uint8_t stream; /* 1 stdout, 2 stderr */
};

/** One decoded daemon-to-shim frame; its views point into the frame. */
struct message {
  uint8_t type;
  union {
    struct msg_hello hello;
    struct msg_spawn spawn;
    struct msg_signal signal;
    struct msg_credit credit;
  } u;
};

/** The outcome of looking for a frame at the start of received bytes. */
enum split_result { SPLIT_MORE, SPLIT_FRAME, SPLIT_BAD };

/**
 * Checks the length field at `buf` (`n` bytes received): SPLIT_FRAME sets
 * `*body` to the bytes after the length field (type and payload), SPLIT_MORE
 * asks for more bytes, SPLIT_BAD writes the reason into `err`.
 */
enum split_result frame_split(const uint8_t *buf, size_t n, uint32_t *body, char *err,
                              size_t errlen);

/**
 * Decodes one frame body (`len` bytes: type then payload) into `m`. Every
 * length and count is checked against the bytes present; returns 0, or -1
 * with the reason in `err`. A HELLO of another version is decoded from its
 * magic and version alone (the rest is that version's business).
 */
int message_decode(const uint8_t *body, uint32_t len, struct message *m, char *err, size_t errlen);

/** A SPAWN's strings as execve wants them, in one allocation. */
struct spawn_strings {
  char *path, *cwd, *name;
  char **argv, **env;
  void *block;
};

/**
 * Copies the strings of a decoded SPAWN into NUL-terminated form. Its size
 * is bounded by the frame's (each item takes at least 4 bytes there).
 * Returns 0, or -1 (ENOMEM).
 */
int spawn_strings_build(const struct msg_spawn *s, struct spawn_strings *out);
void spawn_strings_free(struct spawn_strings *s);

/** Sizes of the shim's frames, length field included. */
#define HELLO_FRAME_SIZE (FRAME_HEADER + 1 + 4 + 2 + 2 + 4 + 4)
#define SPAWNED_FRAME_SIZE (FRAME_HEADER + 1 + 4 + 4 + 8)
#define SPAWN_FAILED_FRAME_SIZE (FRAME_HEADER + 1 + 4 + 4 + 1)
#define OUTPUT_HEADER_SIZE (FRAME_HEADER + 1 + 4 + 1)
#define EOF_FRAME_SIZE (FRAME_HEADER + 1 + 4 + 1)
#define EXITED_FRAME_SIZE (FRAME_HEADER + 1 + 4 + 4 + 4 + 8 * 4)
#define ERROR_FRAME_MAX (FRAME_HEADER + 1 + 4 + 256)
/** A CHILD frame with a name of `name_n` and a memo of `memo_n` bytes. */
#define CHILD_FRAME_SIZE(name_n, memo_n) (FRAME_HEADER + 1 + 4 + 4 + 8 + 1 + 4 + (name_n) + 4 + (memo_n))
#define CHILD_REAPED 1u

struct exit_report {
  uint32_t id, pid;
  int32_t status;
  int64_t time_ns, utime_us, stime_us, maxrss_kib;
};

/** Each writes one whole frame at `dst` (room for its size) and returns its size. */
/** `held`: the number of CHILD frames that follow it. */
size_t encode_hello(uint8_t *dst, uint32_t shim_pid, uint32_t held);

/** What a CHILD frame says of one held child. */
struct child_report {
  uint32_t id, pid;
  uint64_t start_time;
  uint8_t flags;
  const char *name, *memo;
  uint32_t name_n, memo_n;
};

size_t encode_child(uint8_t *dst, const struct child_report *r);
size_t encode_spawned(uint8_t *dst, uint32_t id, uint32_t pid, uint64_t start_time);
size_t encode_spawn_failed(uint8_t *dst, uint32_t id, int32_t err, uint8_t stage);
/** The header of an OUTPUT frame whose `n` data bytes follow it. */
size_t encode_output_header(uint8_t *dst, uint32_t id, uint8_t stream, uint32_t n);
size_t encode_eof(uint8_t *dst, uint32_t id, uint8_t stream);
size_t encode_exited(uint8_t *dst, const struct exit_report *r);
/** `message` is cut at 256 bytes. */
size_t encode_error(uint8_t *dst, const char *message);

#endif
