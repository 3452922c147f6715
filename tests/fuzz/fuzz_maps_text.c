/*
 * fuzz_maps_text.c - libFuzzer target for the postmap and aliases(5)
 * source parser.
 *
 * The first byte picks the flags (aliases format, case folding); the rest
 * goes to map_text_parse(), the entry point texthash: and facteur-map use,
 * with a callback that stores entries in an in-memory table (as texthash:
 * does) and checks each against the bounds the parser promises.  With bit
 * 2 of the first byte, the rest is instead the body of an inline:{...}
 * table (and then a static:{...} one) given to map_open(), which parses
 * main.cf table specs the same way.  Frees everything, keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_entry(const char *key, const char *value, long lineno,
                      void *ctx, struct strbuf *why)
{
    if (*key == 0 || *value == 0 || lineno < 1
        || strlen(key) + strlen(value) > MAP_LINE_MAX)
        __builtin_trap();
    return map_memtab_add(ctx, key, value, why) < 0 ? -1 : 0;
}

/* data as the body of inline:{ } and static:{ }. */
static void fuzz_spec(const char *data, size_t size)
{
    static const char *const types[] = { "inline", "static" };
    struct strbuf *why = strbuf_new(128), *value = strbuf_new(64);

    if (memchr(data, 0, size) != NULL || size > MAP_SPEC_MAX)
        goto out;
    for (size_t t = 0; t < 2; t++) {
        char *spec = xasprintf("%s:{%.*s}", types[t], (int)size, data);
        struct map *m = map_open(spec, 0, why);
        if (m != NULL) {
            (void)map_lookup(m, "a", value, why);
            (void)map_lookup(m, spec + 8, value, why);
            map_close(&m);
        } else if (strbuf_len(why) == 0) {
            __builtin_trap();
        }
        free(spec);
    }
out:
    strbuf_free(&why);
    strbuf_free(&value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(128);
    struct map_memtab *tab = map_memtab_new();
    int flags = 0;
    long n;

    if (size > 0) {
        flags = (data[0] & 1 ? MAP_FLAG_ALIASES : 0)
            | (data[0] & 2 ? MAP_FLAG_NOFOLD : 0);
        data++;
        size--;
        if (data[-1] & 4) {
            fuzz_spec((const char *)data, size);
            map_memtab_free(&tab);
            strbuf_free(&why);
            return 0;
        }
    }
    n = map_text_parse("fuzz", (const char *)data, size, flags, fuzz_entry,
                       tab, why);
    if (n < 0 ? strncmp(strbuf_str(why), "fuzz:", 5) != 0
        : (size_t)n < map_memtab_count(tab))
        __builtin_trap();
    map_memtab_free(&tab);
    strbuf_free(&why);
    return 0;
}
