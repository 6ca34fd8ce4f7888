/* Exocore apps in C: the app ABI of spec/apps.md as a header (no libc needed).
 *
 * Build an app with clang and lld:
 *   clang --target=wasm32 -O2 -nostdlib -ffreestanding -Wl,--no-entry -o app.wasm app.c
 * An app defines the exports EXO_EXPORT("init") and, as it needs them, "on_timer",
 * "alloc" and "on_message" (see spec/apps.md section 2.2). Requests and events are the
 * wire's bincode (little-endian, u64 lengths, u32 enum variants; spec/apps.md section 3);
 * the helpers below write the common requests and read the events' headers. */
#ifndef EXOCORE_APP_H
#define EXOCORE_APP_H

#include <stddef.h>
#include <stdint.h>

#define EXO_IMPORT(name) __attribute__((import_module("exo"), import_name(name)))
#define EXO_EXPORT(name) __attribute__((export_name(name)))

/* Host functions (spec/apps.md section 2.1). */
EXO_IMPORT("log") void exo_log(int32_t level, const void *ptr, size_t len);
EXO_IMPORT("now_us") int64_t exo_now_us(void);
EXO_IMPORT("set_timer") void exo_set_timer(int64_t delay_ms);
EXO_IMPORT("send") int32_t exo_send(const void *ptr, size_t len);

enum { EXO_ERROR = 1, EXO_WARN = 2, EXO_INFO = 3, EXO_DEBUG = 4 };
/* send statuses */
enum { EXO_ACCEPTED = 0, EXO_MALFORMED = 1, EXO_BUSY = 2, EXO_TOO_LARGE = 3, EXO_DUPLICATE = 4 };
/* AppEvent variants */
enum { EXO_REPLY = 0, EXO_FAILED = 1, EXO_WATCHED = 2, EXO_DONE = 3 };
/* StoreResponse variants */
enum { EXO_MUTATED = 0, EXO_RESULTS = 1, EXO_ENTITY = 2 };

static inline size_t exo_strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static inline void exo_log_str(int32_t level, const char *text) {
  exo_log(level, text, exo_strlen(text));
}

/* A bincode writer over a caller's buffer; `overflow` is set when it is too small. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int overflow;
} exo_writer;

static inline void exo_put(exo_writer *w, const void *bytes, size_t n) {
  if (w->len + n > w->cap) { w->overflow = 1; return; }
  for (size_t i = 0; i < n; i++) w->buf[w->len + i] = ((const uint8_t *)bytes)[i];
  w->len += n;
}
static inline void exo_put_u32(exo_writer *w, uint32_t v) {
  uint8_t b[4] = {v, v >> 8, v >> 16, v >> 24};
  exo_put(w, b, 4);
}
static inline void exo_put_u64(exo_writer *w, uint64_t v) {
  exo_put_u32(w, (uint32_t)v);
  exo_put_u32(w, (uint32_t)(v >> 32));
}
static inline void exo_put_str(exo_writer *w, const char *s) {
  size_t n = exo_strlen(s);
  exo_put_u64(w, n);
  exo_put(w, s, n);
}

/* Sends AppRequest { id, Store(QueryText { text }) }; returns the send status. */
static inline int32_t exo_send_query_text(uint32_t id, const char *text) {
  uint8_t buf[512];
  exo_writer w = {buf, 0, sizeof buf, 0};
  exo_put_u32(&w, id);
  exo_put_u32(&w, 0); /* AppRequestBody::Store */
  exo_put_u32(&w, 2); /* StoreRequest::QueryText */
  exo_put_str(&w, text);
  return w.overflow ? EXO_TOO_LARGE : exo_send(buf, w.len);
}

/* Sends AppRequest { id, Store(Mutate) } putting one trait with one string field:
 * Entry::Mutations [PutTrait { entity, Trait { trait_id, type, [field = value] } }]. */
static inline int32_t exo_send_put_string(uint32_t id, const char *entity, const char *trait_id,
                                          const char *type, const char *field, const char *value) {
  uint8_t entry[1024];
  exo_writer e = {entry, 0, sizeof entry, 0};
  exo_put_u32(&e, 0); /* Entry::Mutations */
  exo_put_u64(&e, 1);
  exo_put_u32(&e, 0); /* Mutation::PutTrait */
  exo_put_str(&e, entity);
  exo_put_str(&e, trait_id);
  exo_put_str(&e, type);
  exo_put_u64(&e, 1); /* fields */
  exo_put_str(&e, field);
  exo_put_u32(&e, 0); /* Value::String */
  exo_put_str(&e, value);
  uint8_t buf[1100];
  exo_writer w = {buf, 0, sizeof buf, 0};
  exo_put_u32(&w, id);
  exo_put_u32(&w, 0); /* AppRequestBody::Store */
  exo_put_u32(&w, 0); /* StoreRequest::Mutate */
  exo_put_u64(&w, e.len);
  exo_put(&w, entry, e.len);
  return (e.overflow || w.overflow) ? EXO_TOO_LARGE : exo_send(buf, w.len);
}

static inline uint32_t exo_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t exo_get_u64(const uint8_t *p) {
  return (uint64_t)exo_get_u32(p) | (uint64_t)exo_get_u32(p + 4) << 32;
}

/* An event's header: its variant, the request id, and what follows. */
typedef struct {
  uint32_t kind, id;
  const uint8_t *body;
  size_t body_len;
} exo_event;

/* Reads the header of the event in (ptr, len); 0 if it is too short. */
static inline int exo_event_read(const uint8_t *ptr, size_t len, exo_event *out) {
  if (len < 8) return 0;
  out->kind = exo_get_u32(ptr);
  out->id = exo_get_u32(ptr + 4);
  out->body = ptr + 8;
  out->body_len = len - 8;
  return 1;
}

/* The number of entities of a Reply or Watched carrying Results, or -1. */
static inline int64_t exo_event_result_count(const exo_event *e) {
  if ((e->kind != EXO_REPLY && e->kind != EXO_WATCHED) || e->body_len < 12) return -1;
  if (exo_get_u32(e->body) != EXO_RESULTS) return -1;
  return (int64_t)exo_get_u64(e->body + 4);
}

/* The message of a Failed event (ErrorBody: u16 code, then the text), or a null pointer. */
static inline const char *exo_event_error(const exo_event *e, size_t *len) {
  if (e->kind != EXO_FAILED || e->body_len < 10) return 0;
  uint64_t n = exo_get_u64(e->body + 2);
  if (n > e->body_len - 10) return 0;
  *len = (size_t)n;
  return (const char *)e->body + 10;
}

#endif
