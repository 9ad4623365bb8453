// libFuzzer target: arbitrary bytes as what the daemon sends, through the
// shim's own frame_split, message_decode and spawn_strings_build (frame.c,
// linked as it is). Built by `node build.mjs --fuzz`, run by fuzz/run.sh.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../frame.h"

/** What a decoded SPAWN must satisfy for execve: every string ends within the frame. */
static void check_spawn(const struct msg_spawn *m, uint32_t frame_len) {
  struct spawn_strings s;
  if (spawn_strings_build(m, &s) != 0) return;
  size_t total = strlen(s.path) + strlen(s.cwd) + strlen(s.name);
  uint32_t i;
  for (i = 0; s.argv[i] != NULL; i++) total += strlen(s.argv[i]);
  if (i != m->argv.count) __builtin_trap();
  for (i = 0; s.env[i] != NULL; i++) total += strlen(s.env[i]);
  if (i != m->env.count || total + m->memo.n > frame_len || m->name.n > MAX_NAME ||
      m->memo.n > MAX_MEMO)
    __builtin_trap();
  spawn_strings_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  size_t at = 0;
  for (;;) {
    uint32_t len;
    if (frame_split(data + at, size - at, &len, err, sizeof err) != SPLIT_FRAME) break;
    // The frame alone, in a buffer of its own size: a read past it is ASan's to see.
    uint8_t *body = malloc(len);
    if (body == NULL) return 0;
    memcpy(body, data + at + FRAME_HEADER, len);
    struct message m;
    err[sizeof err - 1] = 'x';
    if (message_decode(body, len, &m, err, sizeof err) != 0) {
      if (memchr(err, '\0', sizeof err) == NULL) __builtin_trap();
    } else if (m.type == T_SPAWN) {
      check_spawn(&m.u.spawn, len);
    } else if (m.type == T_CREDIT && m.u.credit.stream != 1 && m.u.credit.stream != 2) {
      __builtin_trap();
    } else if (m.type == T_EXIT && len != 1) {
      __builtin_trap();
    }
    free(body);
    at += FRAME_HEADER + len;
  }
  return 0;
}
