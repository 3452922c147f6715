/*
 * strbuf.c - growable, binary-safe, NUL-terminated string buffer.
 *
 * Used for every variable-length string in facteur, including bytes from
 * the network: the optional maximum is how a reader bounds a peer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"

struct strbuf *strbuf_new(size_t hint)
{
    struct strbuf *sb = xmalloc(sizeof(*sb));

    sb->size = hint < 16 ? 16 : hint + 1;
    sb->data = xmalloc(sb->size);
    sb->data[0] = 0;
    sb->len = 0;
    sb->max = 0;
    return sb;
}

void strbuf_free(struct strbuf **sbp)
{
    if (sbp == NULL || *sbp == NULL)
        return;
    free((*sbp)->data);
    free(*sbp);
    *sbp = NULL;
}

char *strbuf_steal(struct strbuf **sbp)
{
    char *p = (*sbp)->data;

    free(*sbp);
    *sbp = NULL;
    return p;
}

int strbuf_set_max(struct strbuf *sb, size_t max)
{
    if (max != 0 && sb->len > max)
        return -1;
    sb->max = max;
    return 0;
}

int strbuf_reserve(struct strbuf *sb, size_t n)
{
    size_t need;

    if (n > (size_t)-1 / 2 - sb->len)
        return -1;
    if (sb->max != 0 && sb->len + n > sb->max)
        return -1;
    need = sb->len + n + 1;
    if (need > sb->size) {
        size_t size = sb->size * 2;
        while (size < need)
            size *= 2;
        sb->data = xrealloc(sb->data, size);
        sb->size = size;
    }
    return 0;
}

int strbuf_appendn(struct strbuf *sb, const void *p, size_t n)
{
    const char *c = p;

    /* Appending a piece of our own content: growth moves it. */
    if (c >= sb->data && c < sb->data + sb->size) {
        size_t off = (size_t)(c - sb->data);
        if (strbuf_reserve(sb, n) < 0)
            return -1;
        c = sb->data + off;
    } else if (strbuf_reserve(sb, n) < 0) {
        return -1;
    }
    if (n)
        memmove(sb->data + sb->len, c, n);
    sb->len += n;
    sb->data[sb->len] = 0;
    return 0;
}

int strbuf_append(struct strbuf *sb, const char *s)
{
    return strbuf_appendn(sb, s, strlen(s));
}

int strbuf_appendc(struct strbuf *sb, int c)
{
    char ch = (char)c;

    return strbuf_appendn(sb, &ch, 1);
}

int strbuf_setn(struct strbuf *sb, const void *p, size_t n)
{
    const char *c = p;

    if (sb->max != 0 && n > sb->max)
        return -1;
    if (c >= sb->data && c < sb->data + sb->size) {
        /* A piece of our own content: it already fits. */
        memmove(sb->data, c, n);
    } else {
        sb->len = 0;
        if (strbuf_reserve(sb, n) < 0)
            return -1;
        if (n)
            memcpy(sb->data, c, n);
    }
    sb->len = n;
    sb->data[n] = 0;
    return 0;
}

int strbuf_set(struct strbuf *sb, const char *s)
{
    return strbuf_setn(sb, s, strlen(s));
}

int strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    va_list aq;
    int n;

    va_copy(aq, ap);
    errno = saved_errno;
    n = vsnprintf(sb->data + sb->len, sb->size - sb->len, fmt, aq);
    va_end(aq);
    if (n < 0)
        return -1;
    if ((size_t)n >= sb->size - sb->len) {
        if (strbuf_reserve(sb, (size_t)n) < 0) {
            sb->data[sb->len] = 0;
            return -1;
        }
        errno = saved_errno;
        vsnprintf(sb->data + sb->len, sb->size - sb->len, fmt, ap);
    } else if (sb->max != 0 && sb->len + (size_t)n > sb->max) {
        sb->data[sb->len] = 0;
        return -1;
    }
    sb->len += (size_t)n;
    return 0;
}

int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
    return r;
}

int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int r;

    strbuf_reset(sb);
    va_start(ap, fmt);
    r = strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
    return r;
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->data[0] = 0;
}

void strbuf_truncate(struct strbuf *sb, size_t len)
{
    if (len < sb->len) {
        sb->len = len;
        sb->data[len] = 0;
    }
}

void strbuf_consume(struct strbuf *sb, size_t n)
{
    if (n >= sb->len) {
        strbuf_reset(sb);
        return;
    }
    memmove(sb->data, sb->data + n, sb->len - n);
    sb->len -= n;
    sb->data[sb->len] = 0;
}

void strbuf_rtrim(struct strbuf *sb)
{
    while (sb->len > 0 && strchr(" \t\r\n", sb->data[sb->len - 1]) != NULL)
        sb->len--;
    sb->data[sb->len] = 0;
}
