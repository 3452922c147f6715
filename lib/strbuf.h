/*
 * strbuf.h - the one growable string buffer.
 *
 * A strbuf holds bytes (binary-safe) and is always NUL-terminated, so
 * strbuf_str() can be passed to C string functions when the content has no
 * NUL.  Growth doubles the allocation; a buffer may have a hard maximum
 * (strbuf_set_max) so a peer cannot make it grow without bound: an append
 * that would pass the maximum appends nothing and returns -1.
 *
 * WARNING: any append may move the data; pointers from strbuf_str() are
 * valid only until the next change to the buffer.
 *
 * Allocation failure is fatal (mem.h), so only the maximum can make an
 * append fail.
 */
#ifndef FACTEUR_STRBUF_H
#define FACTEUR_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *data;     /* always NUL-terminated */
    size_t len;     /* bytes used, not counting the NUL */
    size_t size;    /* bytes allocated */
    size_t max;     /* 0: no limit; else the largest len allowed */
};

/* A new empty buffer with room for about hint bytes. */
struct strbuf *strbuf_new(size_t hint);
/* Free the buffer and set *sbp to NULL; NULL and *NULL are allowed. */
void strbuf_free(struct strbuf **sbp);
/* Take the data out (caller frees it with free()) and free the buffer. */
char *strbuf_steal(struct strbuf **sbp);

/* Limit len to max bytes (0: no limit).  Returns -1 if already longer. */
int strbuf_set_max(struct strbuf *sb, size_t max);

/* These return 0, or -1 if the maximum would be exceeded (nothing changed).
 * The source may point into the buffer itself. */
int strbuf_set(struct strbuf *sb, const char *s);
int strbuf_setn(struct strbuf *sb, const void *p, size_t n);
int strbuf_append(struct strbuf *sb, const char *s);
int strbuf_appendn(struct strbuf *sb, const void *p, size_t n);
int strbuf_appendc(struct strbuf *sb, int c);
/* printf replaces the content; appendf appends.  %m works (errno text). */
int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Empty the buffer (keeps the allocation). */
void strbuf_reset(struct strbuf *sb);
/* Shorten to len bytes (no-op if already shorter). */
void strbuf_truncate(struct strbuf *sb, size_t len);
/* Remove the first n bytes (all of them if n >= len). */
void strbuf_consume(struct strbuf *sb, size_t n);
/* Make room for n more bytes without changing len; returns -1 past max. */
int strbuf_reserve(struct strbuf *sb, size_t n);
/* Remove trailing white space (space, tab, CR, LF). */
void strbuf_rtrim(struct strbuf *sb);

static inline const char *strbuf_str(const struct strbuf *sb) { return sb->data; }
static inline size_t strbuf_len(const struct strbuf *sb) { return sb->len; }

#endif
