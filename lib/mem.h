/*
 * mem.h - allocation that never returns NULL.
 *
 * Every allocator here logs a fatal error and exits when memory runs out,
 * so callers never check (Postfix mymalloc, OpenSMTPD xmalloc).  The caller
 * that obtains memory owns it and frees it with free().
 */
#ifndef FACTEUR_MEM_H
#define FACTEUR_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
/* Reallocate p to n bytes; p may be NULL. */
void *xrealloc(void *p, size_t n);
/* Reallocate p to n * size bytes, failing on overflow. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Allocate a formatted string (asprintf that cannot fail). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
