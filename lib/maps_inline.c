/*
 * maps_inline.c - inline: tables written in the spec itself.
 *
 * "inline:{ key=value, { key = value with spaces } }": entries separated
 * by commas or white space; an entry in braces may hold white space and
 * commas; the key and value are trimmed.  Keys are folded unless
 * MAP_FLAG_NOFOLD.  The text comes from main.cf or master.cf -o; it is
 * bounded by MAP_SPEC_MAX (maps.c) and every malformed entry is an error
 * naming the entry.
 */
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

#define INLINE_SEP(c) ((c) == ',' || (c) == ' ' || (c) == '\t' || \
                       (c) == '\r' || (c) == '\n')
#define INLINE_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

/* Trim [*s, *e) in place. */
static void inline_trim(const char **s, const char **e)
{
    while (*s < *e && INLINE_WS(**s))
        (*s)++;
    while (*e > *s && INLINE_WS((*e)[-1]))
        (*e)--;
}

/* One entry [s, e), braces already removed. */
static int inline_entry(struct map *m, const char *s, const char *e,
                        struct strbuf *why)
{
    const char *eq, *ks = s, *ke, *vs, *ve = e;
    char *key, *value;
    int rc;

    inline_trim(&ks, &ve);
    eq = memchr(ks, '=', (size_t)(ve - ks));
    if (eq == NULL) {
        strbuf_printf(why, "inline: missing '=' in entry \"%.*s\"",
                      (int)(ve - ks), ks);
        return -1;
    }
    ke = eq;
    vs = eq + 1;
    inline_trim(&ks, &ke);
    inline_trim(&vs, &ve);
    if (ks == ke) {
        strbuf_printf(why, "inline: missing key in entry \"%.*s\"",
                      (int)(ve - s), s);
        return -1;
    }
    key = xstrndup(ks, (size_t)(ke - ks));
    value = xstrndup(vs, (size_t)(ve - vs));
    if (!(m->flags & MAP_FLAG_NOFOLD))
        map_fold(key);
    rc = map_memtab_add(m->priv, key, value, why);
    if (rc == 0)
        strbuf_printf(why, "inline: duplicate key \"%s\"", key);
    free(key);
    free(value);
    return rc == 1 ? 0 : -1;
}

/* The '}' that closes the '{' at s (the caller checked the balance). */
static const char *inline_group_end(const char *s)
{
    int depth = 0;

    for (;; s++) {
        if (*s == '{')
            depth++;
        else if (*s == '}' && --depth == 0)
            return s;
    }
}

static int inline_open(struct map *m, struct strbuf *why)
{
    const char *p = m->name, *end = p + strlen(p), *start;
    int depth;

    if (*p != '{' || end[-1] != '}' || end - p < 2) {
        strbuf_set(why, "inline: expected inline:{ key=value, ... }");
        return -1;
    }
    p++;
    end--;
    m->priv = map_memtab_new();
    for (;;) {
        while (p < end && INLINE_SEP(*p))
            p++;
        if (p >= end)
            break;
        start = p;
        depth = 0;
        while (p < end && (depth > 0 || !INLINE_SEP(*p))) {
            if (*p == '{')
                depth++;
            else if (*p == '}' && --depth < 0)
                break;
            p++;
        }
        if (depth != 0) {
            strbuf_set(why, "inline: unbalanced braces");
            goto fail;
        }
        if (*start == '{') {
            /* "{ key = value }": the group must be the whole entry. */
            if (inline_group_end(start) != p - 1) {
                strbuf_printf(why, "inline: text after '}' in entry \"%.*s\"",
                              (int)(p - start), start);
                goto fail;
            }
            if (inline_entry(m, start + 1, p - 1, why) < 0)
                goto fail;
        } else if (inline_entry(m, start, p, why) < 0) {
            goto fail;
        }
    }
    return 0;

fail:
    map_memtab_free((struct map_memtab **)&m->priv);
    return -1;
}

const struct map_ops map_ops_inline = {
    .type = "inline",
    .fixed = true,
    .open = inline_open,
    .lookup = map_memtab_ops_lookup,
    .iterate = map_memtab_ops_iterate,
    .close = map_memtab_ops_close,
};
