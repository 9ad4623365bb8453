// The children's indexes: by id (the daemon's frames), by pid (wait4's
// answers) and, for their pipes, by fd (epoll's events).
#include <stdlib.h>
#include <string.h>

#include "shim.h"

static uint32_t key_of(const struct child_index *ix, const struct child *c) {
  return ix->key == 0 ? c->id : (uint32_t)c->pid;
}

/** An integer hash (lowbias32): ids and pids come in runs, which plain masking would bunch. */
static uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

static int index_init(struct child_index *ix, int key) {
  ix->key = key;
  ix->mask = 63;
  ix->count = 0;
  ix->buckets = calloc(ix->mask + 1, sizeof *ix->buckets);
  return ix->buckets == NULL ? -1 : 0;
}

/** Doubles the buckets; if memory is short the chains only grow longer. */
static void index_grow(struct child_index *ix) {
  uint32_t mask = ix->mask * 2 + 1;
  struct child **buckets = calloc((size_t)mask + 1, sizeof *buckets);
  if (buckets == NULL) return;
  for (uint32_t i = 0; i <= ix->mask; i++) {
    struct child *c = ix->buckets[i], *next;
    for (; c != NULL; c = next) {
      next = c->link[ix->key];
      struct child **b = &buckets[mix(key_of(ix, c)) & mask];
      c->link[ix->key] = *b;
      *b = c;
    }
  }
  free(ix->buckets);
  ix->buckets = buckets;
  ix->mask = mask;
}

void index_add(struct child_index *ix, struct child *c) {
  if (ix->count > ix->mask) index_grow(ix);
  struct child **b = &ix->buckets[mix(key_of(ix, c)) & ix->mask];
  c->link[ix->key] = *b;
  *b = c;
  ix->count++;
}

static struct child *index_find(const struct child_index *ix, uint32_t key) {
  struct child *c = ix->buckets[mix(key) & ix->mask];
  while (c != NULL && key_of(ix, c) != key) c = c->link[ix->key];
  return c;
}

void index_remove(struct child_index *ix, struct child *c) {
  struct child **p = &ix->buckets[mix(key_of(ix, c)) & ix->mask];
  while (*p != NULL && *p != c) p = &(*p)->link[ix->key];
  if (*p == NULL) return;
  *p = c->link[ix->key];
  ix->count--;
}

int children_init(struct shim *s) {
  return index_init(&s->by_id, 0) == 0 && index_init(&s->by_pid, 1) == 0 ? 0 : -1;
}

struct child *child_by_id(struct shim *s, uint32_t id) {
  return index_find(&s->by_id, id);
}

struct child *child_by_pid(struct shim *s, pid_t pid) {
  return index_find(&s->by_pid, (uint32_t)pid);
}

int by_fd_set(struct shim *s, int fd, struct stream *st) {
  if ((size_t)fd >= s->by_fd_cap) {
    size_t cap = s->by_fd_cap ? s->by_fd_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    struct stream **t = realloc(s->by_fd, cap * sizeof *t);
    if (t == NULL) return -1;
    memset(t + s->by_fd_cap, 0, (cap - s->by_fd_cap) * sizeof *t);
    s->by_fd = t;
    s->by_fd_cap = cap;
  }
  s->by_fd[fd] = st;
  return 0;
}

void children_each(struct shim *s, void (*fn)(struct shim *, struct child *)) {
  const struct child_index *ix = &s->by_id;
  for (uint32_t i = 0; i <= ix->mask; i++) {
    struct child *c = ix->buckets[i], *next;
    // The next one is taken first: `fn` may free (and unlink) the child it gets.
    for (; c != NULL; c = next) {
      next = c->link[0];
      fn(s, c);
    }
  }
}
