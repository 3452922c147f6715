/*
 * maps.c - the generic lookup-table layer: "type:name" specs, lists of
 * tables (*_maps parameters), Postfix's address lookup order, and small
 * helpers the backends share (in-memory table, bounded file reading).
 *
 * Called by every daemon that resolves or checks addresses (smtpd, qmgr,
 * lmtpd, authd) and by facteur-map.  The backends (lib/maps_*.c) plug in
 * through struct map_ops; this file knows them only through map_types[].
 * Specs come from main.cf, which the administrator wrote: they are still
 * bounded (MAP_SPEC_MAX) and checked, and a bad one is an error, never a
 * crash.  A table that cannot answer makes a lookup return MAP_ERROR so
 * the caller defers instead of bouncing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

static const struct map_ops *const map_types[] = {
    &map_ops_hash, &map_ops_btree, &map_ops_texthash, &map_ops_inline,
    &map_ops_static, &map_ops_regexp, &map_ops_unix,
};

struct maps {
    struct map **list;
    size_t count;
};

void map_fold(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static const struct map_ops *map_find_type(const char *type, size_t len)
{
    for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++)
        if (strlen(map_types[i]->type) == len
            && memcmp(map_types[i]->type, type, len) == 0)
            return map_types[i];
    return NULL;
}

struct map *map_open(const char *spec, int flags, struct strbuf *why)
{
    const struct map_ops *ops;
    const char *colon;
    struct map *m;
    size_t tlen, slen = strlen(spec);
    int typed = 1;

    if (slen == 0) {
        strbuf_set(why, "empty table name");
        return NULL;
    }
    if (slen > MAP_SPEC_MAX) {
        strbuf_printf(why, "table name longer than %d bytes", MAP_SPEC_MAX);
        return NULL;
    }
    /* "type:" is letters, digits and '_' before the first ':'; anything
     * else (a path) is a hash: table, as postmap's default type. */
    colon = strchr(spec, ':');
    tlen = colon ? (size_t)(colon - spec) : 0;
    if (colon == NULL || tlen == 0 || strspn(spec, "abcdefghijklmnopqrstuvwxyz"
                                             "0123456789_") != tlen)
        typed = 0;
    if (typed) {
        if ((ops = map_find_type(spec, tlen)) == NULL) {
            strbuf_printf(why, "unsupported table type \"%.*s\" in \"%s\"",
                          (int)tlen, spec, spec);
            return NULL;
        }
    } else {
        ops = &map_ops_hash;
        tlen = strlen(ops->type);
    }
    m = xcalloc(1, sizeof(*m));
    m->ops = ops;
    m->flags = flags;
    m->spec = typed ? xstrdup(spec) : xasprintf("hash:%s", spec);
    m->name = m->spec + tlen + 1;
    if (*m->name == 0 && ops != &map_ops_static) {
        strbuf_printf(why, "missing table name in \"%s\"", spec);
        free(m->spec);
        free(m);
        return NULL;
    }
    if (ops->open(m, why) < 0) {
        free(m->spec);
        free(m);
        return NULL;
    }
    return m;
}

int map_lookup(struct map *m, const char *key, struct strbuf *value_r,
               struct strbuf *why)
{
    char *folded;
    int rc;

    if (!m->ops->fixed || (m->flags & MAP_FLAG_NOFOLD))
        return m->ops->lookup(m, key, value_r, why);
    /* Fold a copy: keys come from callers that keep them (addresses in
     * a queue file, SMTP arguments). */
    folded = xstrdup(key);
    map_fold(folded);
    rc = m->ops->lookup(m, folded, value_r, why);
    free(folded);
    return rc;
}

void map_close(struct map **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    (*mp)->ops->close(*mp);
    free((*mp)->spec);
    free(*mp);
    *mp = NULL;
}

const char *map_spec(const struct map *m)
{
    return m->spec;
}

const char *map_type(const struct map *m)
{
    return m->ops->type;
}

bool map_is_fixed(const struct map *m)
{
    return m->ops->fixed;
}

int map_iterate(struct map *m, map_iter_fn *fn, void *ctx, struct strbuf *why)
{
    if (m->ops->iterate == NULL) {
        strbuf_printf(why, "table type %s cannot list its entries",
                      m->ops->type);
        return -1;
    }
    return m->ops->iterate(m, fn, ctx, why);
}

/* ---- Lists ---- */

#define MAPS_SEP(c) ((c) == ',' || (c) == ' ' || (c) == '\t' || \
                     (c) == '\r' || (c) == '\n')

struct maps *maps_open(const char *list, int flags, struct strbuf *why)
{
    struct maps *ms = xcalloc(1, sizeof(*ms));
    const char *p = list, *start;
    char *spec;
    struct map *m;
    int depth;

    if (strlen(list) > MAP_SPEC_MAX) {
        strbuf_printf(why, "table list longer than %d bytes", MAP_SPEC_MAX);
        free(ms);
        return NULL;
    }
    for (;;) {
        while (*p && MAPS_SEP(*p))
            p++;
        if (*p == 0)
            break;
        /* A spec ends at a separator outside braces. */
        start = p;
        depth = 0;
        while (*p && (depth > 0 || !MAPS_SEP(*p))) {
            if (*p == '{')
                depth++;
            else if (*p == '}' && --depth < 0)
                break;
            p++;
        }
        if (depth != 0) {
            strbuf_printf(why, "unbalanced braces in table list \"%s\"",
                          list);
            maps_close(&ms);
            return NULL;
        }
        spec = xstrndup(start, (size_t)(p - start));
        m = map_open(spec, flags, why);
        free(spec);
        if (m == NULL) {
            maps_close(&ms);
            return NULL;
        }
        ms->list = xreallocarray(ms->list, ms->count + 1, sizeof(*ms->list));
        ms->list[ms->count++] = m;
    }
    return ms;
}

static int maps_find(struct maps *ms, const char *key, bool fixed_only,
                     struct strbuf *value_r, struct strbuf *why)
{
    int rc;

    for (size_t i = 0; i < ms->count; i++) {
        if (fixed_only && !map_is_fixed(ms->list[i]))
            continue;
        rc = map_lookup(ms->list[i], key, value_r, why);
        if (rc != MAP_NOTFOUND)
            return rc;
    }
    return MAP_NOTFOUND;
}

int maps_lookup(struct maps *ms, const char *key, struct strbuf *value_r,
                struct strbuf *why)
{
    return maps_find(ms, key, false, value_r, why);
}

int maps_lookup_addr(struct maps *ms, const char *addr, const char *delims,
                     int flags, struct strbuf *value_r, struct strbuf *ext_r,
                     struct strbuf *why)
{
    const char *at = strrchr(addr, '@');
    size_t llen = at ? (size_t)(at - addr) : strlen(addr);
    size_t ulen = llen;         /* length of "user" without extension */
    struct strbuf *key;
    int rc;

    if (ext_r != NULL)
        strbuf_reset(ext_r);
    if (delims != NULL && *delims != 0 && llen > 1) {
        for (size_t i = 1; i < llen; i++)
            if (strchr(delims, addr[i]) != NULL) {
                ulen = i;
                break;
            }
    }

    /* 1. The address as given. */
    if ((rc = maps_find(ms, addr, false, value_r, why)) != MAP_NOTFOUND)
        return rc;
    key = strbuf_new(strlen(addr) + 2);

    /* 2. Without the extension. */
    if (ulen < llen) {
        strbuf_setn(key, addr, ulen);
        if (at != NULL)
            strbuf_append(key, at);
        if ((rc = maps_find(ms, strbuf_str(key), false, value_r, why))
            != MAP_NOTFOUND)
            goto found_stripped;
    }
    if (at == NULL)
        goto done;

    /* 3., 4. The localpart alone, for local domains. */
    if (flags & MAPS_ADDR_LOCALPART) {
        strbuf_setn(key, addr, llen);
        if ((rc = maps_find(ms, strbuf_str(key), true, value_r, why))
            != MAP_NOTFOUND)
            goto done;
        if (ulen < llen) {
            strbuf_setn(key, addr, ulen);
            if ((rc = maps_find(ms, strbuf_str(key), true, value_r, why))
                != MAP_NOTFOUND)
                goto found_stripped;
        }
    }

    /* 5. The catch-all "@domain". */
    if (!(flags & MAPS_ADDR_NODOMAIN)) {
        strbuf_set(key, at);
        if ((rc = maps_find(ms, strbuf_str(key), true, value_r, why))
            != MAP_NOTFOUND)
            goto found_stripped;
    }
    rc = MAP_NOTFOUND;
    goto done;

found_stripped:
    if (rc == MAP_FOUND && ext_r != NULL && ulen < llen)
        strbuf_setn(ext_r, addr + ulen + 1, llen - ulen - 1);
done:
    strbuf_free(&key);
    return rc;
}

size_t maps_count(const struct maps *ms)
{
    return ms->count;
}

struct map *maps_get(const struct maps *ms, size_t i)
{
    return i < ms->count ? ms->list[i] : NULL;
}

void maps_close(struct maps **msp)
{
    struct maps *ms;

    if (msp == NULL || (ms = *msp) == NULL)
        return;
    for (size_t i = 0; i < ms->count; i++)
        map_close(&ms->list[i]);
    free(ms->list);
    free(ms);
    *msp = NULL;
}

/* ---- In-memory table: open addressing, insertion order kept. ---- */

struct memtab_entry {
    char *key;
    char *value;
};

struct map_memtab {
    struct memtab_entry *entries;   /* insertion order */
    size_t count, alloc;
    uint32_t *slots;                /* index + 1 into entries; 0 = empty */
    size_t nslots;                  /* power of two */
};

static uint32_t memtab_hash(const char *s)
{
    uint32_t h = 2166136261u;       /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct map_memtab *map_memtab_new(void)
{
    struct map_memtab *t = xcalloc(1, sizeof(*t));

    t->nslots = 64;
    t->slots = xcalloc(t->nslots, sizeof(*t->slots));
    return t;
}

static size_t memtab_slot(const struct map_memtab *t, const char *key)
{
    size_t mask = t->nslots - 1, i = memtab_hash(key) & mask;

    while (t->slots[i] != 0
           && strcmp(t->entries[t->slots[i] - 1].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

static void memtab_grow(struct map_memtab *t)
{
    size_t mask;

    free(t->slots);
    t->nslots *= 2;
    t->slots = xcalloc(t->nslots, sizeof(*t->slots));
    mask = t->nslots - 1;
    for (size_t e = 0; e < t->count; e++) {
        size_t i = memtab_hash(t->entries[e].key) & mask;
        while (t->slots[i] != 0)
            i = (i + 1) & mask;
        t->slots[i] = (uint32_t)(e + 1);
    }
}

int map_memtab_add(struct map_memtab *t, const char *key, const char *value,
                   struct strbuf *why)
{
    size_t i = memtab_slot(t, key);

    if (t->slots[i] != 0)
        return 0;
    if (t->count >= MAP_ENTRIES_MAX) {
        strbuf_printf(why, "more than %d entries", MAP_ENTRIES_MAX);
        return -1;
    }
    if (t->count == t->alloc) {
        t->alloc = t->alloc ? t->alloc * 2 : 16;
        t->entries = xreallocarray(t->entries, t->alloc, sizeof(*t->entries));
    }
    t->entries[t->count].key = xstrdup(key);
    t->entries[t->count].value = xstrdup(value);
    t->count++;
    t->slots[i] = (uint32_t)t->count;
    /* Keep the load at or below one half so probes stay short. */
    if (t->count * 2 > t->nslots)
        memtab_grow(t);
    return 1;
}

const char *map_memtab_find(const struct map_memtab *t, const char *key)
{
    size_t i = memtab_slot(t, key);

    return t->slots[i] ? t->entries[t->slots[i] - 1].value : NULL;
}

int map_memtab_iterate(const struct map_memtab *t, map_iter_fn *fn, void *ctx)
{
    int rc;

    for (size_t e = 0; e < t->count; e++)
        if ((rc = fn(t->entries[e].key, t->entries[e].value, ctx)) != 0)
            return rc;
    return 0;
}

size_t map_memtab_count(const struct map_memtab *t)
{
    return t->count;
}

void map_memtab_free(struct map_memtab **tp)
{
    struct map_memtab *t;

    if (tp == NULL || (t = *tp) == NULL)
        return;
    for (size_t e = 0; e < t->count; e++) {
        free(t->entries[e].key);
        free(t->entries[e].value);
    }
    free(t->entries);
    free(t->slots);
    free(t);
    *tp = NULL;
}

/* ---- Files ---- */

int map_read_file(const char *path, size_t max, struct strbuf *buf,
                  struct strbuf *why)
{
    struct stat st;
    ssize_t n;
    int fd;

    strbuf_reset(buf);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        strbuf_printf(why, "open %s: %m", path);
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        strbuf_printf(why, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((uintmax_t)st.st_size > max) {
        strbuf_printf(why, "%s: larger than %zu bytes", path, max);
        close(fd);
        return -1;
    }
    /* Read to EOF rather than trusting st_size: the file may grow while
     * we read; the bound still holds. */
    for (;;) {
        if (strbuf_reserve(buf, 65536) < 0) {
            strbuf_printf(why, "%s: too large for the buffer", path);
            close(fd);
            return -1;
        }
        n = read(fd, buf->data + buf->len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            strbuf_printf(why, "read %s: %m", path);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        if (buf->len + (size_t)n > max) {
            strbuf_printf(why, "%s: larger than %zu bytes", path, max);
            close(fd);
            return -1;
        }
        buf->len += (size_t)n;
        buf->data[buf->len] = 0;
    }
    close(fd);
    return 0;
}

int map_memtab_ops_lookup(struct map *m, const char *key, struct strbuf *value_r,
                          struct strbuf *why)
{
    const char *v = map_memtab_find(m->priv, key);

    if (v == NULL)
        return MAP_NOTFOUND;
    strbuf_set(value_r, v);
    return MAP_FOUND;
}

int map_memtab_ops_iterate(struct map *m, map_iter_fn *fn, void *ctx, struct strbuf *why)
{
    return map_memtab_iterate(m->priv, fn, ctx);
}

void map_memtab_ops_close(struct map *m)
{
    map_memtab_free((struct map_memtab **)&m->priv);
}
