/*
 * maps_texthash.c - texthash: tables, the postmap text format read into
 * memory when the table is opened.
 *
 * "texthash:/etc/facteur/virtual" reads the same file facteur-map would
 * turn into virtual.db, so a small table needs no build step (Postfix
 * texthash:).  With MAP_FLAG_ALIASES the file is in aliases(5) format.
 * The file is parsed by maps_text.c (bounded lines, file:line errors); a
 * duplicate key keeps the first value and logs a warning.  Changes to the
 * file are seen when the table is opened again (daemon restart or reload).
 */
#include <stdlib.h>

#include "log.h"
#include "maps.h"
#include "strbuf.h"

struct texthash_load {
    struct map_memtab *tab;
    const char *path;
};

static int texthash_add(const char *key, const char *value, long lineno,
                        void *ctx, struct strbuf *why)
{
    struct texthash_load *ld = ctx;
    int rc = map_memtab_add(ld->tab, key, value, why);

    if (rc < 0) {
        strbuf_printf(why, "%s:%ld: more than %d entries", ld->path, lineno,
                      MAP_ENTRIES_MAX);
        return -1;
    }
    if (rc == 0)
        log_warn("%s:%ld: duplicate entry: \"%s\" (first value kept)",
                 ld->path, lineno, key);
    return 0;
}

static int texthash_open(struct map *m, struct strbuf *why)
{
    struct strbuf *buf = strbuf_new(4096);
    struct texthash_load ld = { map_memtab_new(), m->name };
    long n = -1;

    if (map_read_file(m->name, MAP_FILE_MAX, buf, why) == 0)
        n = map_text_parse(m->name, strbuf_str(buf), strbuf_len(buf),
                           m->flags, texthash_add, &ld, why);
    strbuf_free(&buf);
    if (n < 0) {
        map_memtab_free(&ld.tab);
        return -1;
    }
    m->priv = ld.tab;
    return 0;
}

const struct map_ops map_ops_texthash = {
    .type = "texthash",
    .fixed = true,
    .open = texthash_open,
    .lookup = map_memtab_ops_lookup,
    .iterate = map_memtab_ops_iterate,
    .close = map_memtab_ops_close,
};
