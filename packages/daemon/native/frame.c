// The frames of PROTOCOL.md. The decoder trusts nothing it reads: every read
// goes through `take`, which checks the bytes left first.
#include "frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** A cursor over one frame's payload; the first failure is kept in err. */
struct reader {
  const uint8_t *p;
  uint32_t left;
  const char *type;
  char *err;
  size_t errlen;
  int failed;
};

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...) {
  if (!r->failed) {
    int used = snprintf(r->err, r->errlen, "%s: ", r->type);
    if (used >= 0 && (size_t)used < r->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(r->err + used, r->errlen - (size_t)used, fmt, ap);
      va_end(ap);
    }
  }
  r->failed = 1;
  return -1;
}

/** Points `*at` to the next `n` bytes, or fails naming `field`. */
static int take(struct reader *r, uint32_t n, const char *field, const uint8_t **at) {
  *at = r->p;
  if (r->failed) return -1;
  if (n > r->left) return fail(r, "the frame ends inside %s", field);
  r->p += n;
  r->left -= n;
  return 0;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int get_u8(struct reader *r, const char *field, uint8_t *v) {
  const uint8_t *at;
  if (take(r, 1, field, &at) != 0) return -1;
  *v = at[0];
  return 0;
}

static int get_u16(struct reader *r, const char *field, uint16_t *v) {
  const uint8_t *at;
  if (take(r, 2, field, &at) != 0) return -1;
  *v = (uint16_t)(at[0] | at[1] << 8);
  return 0;
}

static int get_u32(struct reader *r, const char *field, uint32_t *v) {
  const uint8_t *at;
  if (take(r, 4, field, &at) != 0) return -1;
  *v = le32(at);
  return 0;
}

static int get_str(struct reader *r, const char *field, struct str_view *v) {
  uint32_t n;
  if (get_u32(r, field, &n) != 0 || take(r, n, field, &v->p) != 0) return -1;
  v->n = n;
  // execve and chdir take C strings: a NUL would cut the string silently.
  if (n > 0 && memchr(v->p, 0, n) != NULL) return fail(r, "%s holds a NUL byte", field);
  return 0;
}

static int get_str_list(struct reader *r, const char *field, struct str_list *l) {
  if (get_u32(r, field, &l->count) != 0) return -1;
  if (l->count > MAX_LIST) return fail(r, "%s has %u items, over %u", field, l->count, MAX_LIST);
  l->p = r->p;
  for (uint32_t i = 0; i < l->count; i++) {
    struct str_view item;
    if (get_str(r, field, &item) != 0) return -1;
  }
  return 0;
}

static int decode_hello(struct reader *r, struct msg_hello *h) {
  uint16_t reserved;
  if (get_u32(r, "magic", &h->magic) != 0 || get_u16(r, "version", &h->version) != 0) return -1;
  if (h->magic != HELLO_MAGIC) return fail(r, "magic 0x%08x is not 0x%08x", h->magic, HELLO_MAGIC);
  if (h->version != SHIM_PROTOCOL_VERSION) {
    // Another version's HELLO may be laid out otherwise: the version alone decides.
    r->left = 0;
    return 0;
  }
  if (get_u16(r, "reserved", &reserved) != 0) return -1;
  if (reserved != 0) return fail(r, "reserved is %u, not 0", reserved);
  return 0;
}

static int decode_spawn(struct reader *r, struct msg_spawn *s) {
  if (get_u32(r, "id", &s->id) != 0 || get_u32(r, "flags", &s->flags) != 0 ||
      get_u32(r, "uid", &s->uid) != 0 || get_u32(r, "gid", &s->gid) != 0 ||
      get_str(r, "name", &s->name) != 0 || get_str(r, "path", &s->path) != 0 ||
      get_str_list(r, "argv", &s->argv) != 0 || get_str_list(r, "env", &s->env) != 0 ||
      get_str(r, "cwd", &s->cwd) != 0 || get_str(r, "memo", &s->memo) != 0)
    return -1;
  if (s->name.n > MAX_NAME) return fail(r, "name is %u bytes, over %u", s->name.n, MAX_NAME);
  if (s->memo.n > MAX_MEMO) return fail(r, "memo is %u bytes, over %u", s->memo.n, MAX_MEMO);
  if ((s->flags & ~(SPAWN_SET_UID | SPAWN_SET_GID)) != 0)
    return fail(r, "flags 0x%x has unknown bits", s->flags);
  return 0;
}

static int decode_signal(struct reader *r, struct msg_signal *s) {
  uint32_t signo;
  if (get_u32(r, "id", &s->id) != 0 || get_u32(r, "signo", &signo) != 0 ||
      get_u8(r, "scope", &s->scope) != 0)
    return -1;
  s->signo = (int32_t)signo;
  if (s->signo < 1 || s->signo > 64) return fail(r, "signo %d is not 1 to 64", s->signo);
  if (s->scope > 1) return fail(r, "scope %u is not 0 or 1", s->scope);
  return 0;
}

static int decode_credit(struct reader *r, struct msg_credit *c) {
  if (get_u32(r, "id", &c->id) != 0 || get_u8(r, "stream", &c->stream) != 0 ||
      get_u32(r, "bytes", &c->bytes) != 0)
    return -1;
  if (c->stream != 1 && c->stream != 2) return fail(r, "stream %u is not 1 or 2", c->stream);
  return 0;
}

enum split_result frame_split(const uint8_t *buf, size_t n, uint32_t *body, char *err,
                              size_t errlen) {
  if (n < FRAME_HEADER) return SPLIT_MORE;
  uint32_t len = le32(buf);
  if (len == 0 || len > MAX_FRAME) {
    snprintf(err, errlen, "frame length %u is not 1 to %u", len, MAX_FRAME);
    return SPLIT_BAD;
  }
  if (n - FRAME_HEADER < len) return SPLIT_MORE;
  *body = len;
  return SPLIT_FRAME;
}

static const char *type_name(uint8_t type) {
  switch (type) {
  case T_HELLO:
    return "HELLO";
  case T_SPAWN:
    return "SPAWN";
  case T_SIGNAL:
    return "SIGNAL";
  case T_CREDIT:
    return "CREDIT";
  case T_EXIT:
    return "EXIT";
  default:
    return NULL;
  }
}

int message_decode(const uint8_t *body, uint32_t len, struct message *m, char *err,
                   size_t errlen) {
  memset(m, 0, sizeof *m);
  if (len < 1) {
    snprintf(err, errlen, "empty frame");
    return -1;
  }
  m->type = body[0];
  struct reader r = {body + 1, len - 1, type_name(m->type), err, errlen, 0};
  if (r.type == NULL) {
    snprintf(err, errlen, "unknown frame type %u", m->type);
    return -1;
  }
  int rc;
  switch (m->type) {
  case T_HELLO:
    rc = decode_hello(&r, &m->u.hello);
    break;
  case T_SPAWN:
    rc = decode_spawn(&r, &m->u.spawn);
    break;
  case T_SIGNAL:
    rc = decode_signal(&r, &m->u.signal);
    break;
  case T_CREDIT:
    rc = decode_credit(&r, &m->u.credit);
    break;
  default:
    rc = 0; /* EXIT: no fields, and nothing may follow */
    break;
  }
  if (rc == 0 && r.left != 0) rc = fail(&r, "%u bytes after its fields", r.left);
  return rc;
}

/** Reads the item at `*p` of a list already checked by get_str_list. */
static struct str_view next_item(const uint8_t **p) {
  struct str_view v = {*p + 4, le32(*p)};
  *p += 4 + v.n;
  return v;
}

static size_t list_bytes(const struct str_list *l) {
  size_t bytes = 0;
  const uint8_t *p = l->p;
  for (uint32_t i = 0; i < l->count; i++) bytes += next_item(&p).n + 1;
  return bytes;
}

static char *copy_str(char **chars, struct str_view v) {
  char *s = *chars;
  if (v.n > 0) memcpy(s, v.p, v.n);
  s[v.n] = '\0';
  *chars += v.n + 1;
  return s;
}

static void copy_list(char **chars, const struct str_list *l, char **items) {
  const uint8_t *p = l->p;
  for (uint32_t i = 0; i < l->count; i++) items[i] = copy_str(chars, next_item(&p));
  items[l->count] = NULL;
}

int spawn_strings_build(const struct msg_spawn *s, struct spawn_strings *out) {
  size_t slots = (size_t)s->argv.count + 1 + s->env.count + 1;
  size_t chars_size = (size_t)s->path.n + 1 + s->cwd.n + 1 + s->name.n + 1 + list_bytes(&s->argv) +
                      list_bytes(&s->env);
  void *block = malloc(slots * sizeof(char *) + chars_size);
  if (block == NULL) return -1;
  char **ptrs = block;
  char *chars = (char *)(ptrs + slots);
  out->block = block;
  out->argv = ptrs;
  out->env = ptrs + s->argv.count + 1;
  copy_list(&chars, &s->argv, out->argv);
  copy_list(&chars, &s->env, out->env);
  out->path = copy_str(&chars, s->path);
  out->cwd = copy_str(&chars, s->cwd);
  out->name = copy_str(&chars, s->name);
  return 0;
}

void spawn_strings_free(struct spawn_strings *s) {
  free(s->block);
  s->block = NULL;
}

static uint8_t *put_u8(uint8_t *p, uint8_t v) {
  *p = v;
  return p + 1;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
  return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
  return p + 8;
}

/** Writes the length field and type of a frame of `size` bytes in all. */
static uint8_t *put_header(uint8_t *p, size_t size, uint8_t type) {
  return put_u8(put_u32(p, (uint32_t)(size - FRAME_HEADER)), type);
}

size_t encode_hello(uint8_t *dst, uint32_t shim_pid, uint32_t held) {
  uint8_t *p = put_header(dst, HELLO_FRAME_SIZE, T_HELLO);
  p = put_u16(put_u32(p, HELLO_MAGIC), SHIM_PROTOCOL_VERSION);
  put_u32(put_u32(put_u16(p, 0), shim_pid), held);
  return HELLO_FRAME_SIZE;
}

static uint8_t *put_str(uint8_t *p, const char *s, uint32_t n) {
  p = put_u32(p, n);
  if (n > 0) memcpy(p, s, n);
  return p + n;
}

size_t encode_child(uint8_t *dst, const struct child_report *r) {
  size_t size = CHILD_FRAME_SIZE((size_t)r->name_n, (size_t)r->memo_n);
  uint8_t *p = put_header(dst, size, T_CHILD);
  p = put_u8(put_u64(put_u32(put_u32(p, r->id), r->pid), r->start_time), r->flags);
  put_str(put_str(p, r->name, r->name_n), r->memo, r->memo_n);
  return size;
}

size_t encode_spawned(uint8_t *dst, uint32_t id, uint32_t pid, uint64_t start_time) {
  uint8_t *p = put_header(dst, SPAWNED_FRAME_SIZE, T_SPAWNED);
  put_u64(put_u32(put_u32(p, id), pid), start_time);
  return SPAWNED_FRAME_SIZE;
}

size_t encode_spawn_failed(uint8_t *dst, uint32_t id, int32_t err, uint8_t stage) {
  uint8_t *p = put_header(dst, SPAWN_FAILED_FRAME_SIZE, T_SPAWN_FAILED);
  put_u8(put_u32(put_u32(p, id), (uint32_t)err), stage);
  return SPAWN_FAILED_FRAME_SIZE;
}

size_t encode_output_header(uint8_t *dst, uint32_t id, uint8_t stream, uint32_t n) {
  uint8_t *p = put_header(dst, OUTPUT_HEADER_SIZE + n, T_OUTPUT);
  put_u8(put_u32(p, id), stream);
  return OUTPUT_HEADER_SIZE;
}

size_t encode_eof(uint8_t *dst, uint32_t id, uint8_t stream) {
  uint8_t *p = put_header(dst, EOF_FRAME_SIZE, T_EOF);
  put_u8(put_u32(p, id), stream);
  return EOF_FRAME_SIZE;
}

size_t encode_exited(uint8_t *dst, const struct exit_report *r) {
  uint8_t *p = put_header(dst, EXITED_FRAME_SIZE, T_EXITED);
  p = put_u32(put_u32(put_u32(p, r->id), r->pid), (uint32_t)r->status);
  p = put_u64(put_u64(p, (uint64_t)r->time_ns), (uint64_t)r->utime_us);
  put_u64(put_u64(p, (uint64_t)r->stime_us), (uint64_t)r->maxrss_kib);
  return EXITED_FRAME_SIZE;
}

size_t encode_error(uint8_t *dst, const char *message) {
  size_t n = strnlen(message, 256);
  size_t size = FRAME_HEADER + 1 + 4 + n;
  uint8_t *p = put_u32(put_header(dst, size, T_ERROR), (uint32_t)n);
  memcpy(p, message, n);
  return size;
}
