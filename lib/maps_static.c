/*
 * maps_static.c - static: tables, where every key finds the same value.
 *
 * "static:relay" answers "relay"; "static:{ text with spaces }" answers
 * the text between the braces without its outer white space (Postfix 3.2
 * syntax).  Used for fallbacks such as virtual_uid_maps = static:5000.
 * The value comes from main.cf; it is only checked for balanced braces.
 */
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

static int static_open(struct map *m, struct strbuf *why)
{
    const char *s = m->name, *end;

    if (*s != '{') {
        m->priv = xstrdup(s);
        return 0;
    }
    end = s + strlen(s);
    if (end[-1] != '}' || end - s < 2) {
        strbuf_printf(why, "%s: missing '}' at the end", m->spec);
        return -1;
    }
    s++;
    end--;
    while (s < end && strchr(" \t\r\n", *s))
        s++;
    while (end > s && strchr(" \t\r\n", end[-1]))
        end--;
    m->priv = xstrndup(s, (size_t)(end - s));
    return 0;
}

static int static_lookup(struct map *m, const char *key,
                         struct strbuf *value_r, struct strbuf *why)
{
    strbuf_set(value_r, m->priv);
    return MAP_FOUND;
}

static void static_close(struct map *m)
{
    free(m->priv);
}

const struct map_ops map_ops_static = {
    .type = "static",
    .fixed = true,
    .open = static_open,
    .lookup = static_lookup,
    .iterate = NULL,
    .close = static_close,
};
