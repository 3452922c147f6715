/*
 * fuzz_regexp_table.c - libFuzzer target for the regexp: table parser.
 *
 * Input: the first line is a lookup key, the rest a regexp_table(5)
 * source.  Calls map_regexp_parse(), the entry point regexp: map_open()
 * uses after reading the file, then map_regexp_match() with the key so the
 * if/endif jumps and $n expansion run too.  Frees everything, keeps no
 * state.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t klen = nl ? (size_t)(nl - (const char *)data) : 0;
    size_t off = nl ? klen + 1 : 0;
    struct strbuf *why = strbuf_new(128), *value = strbuf_new(128);
    char *key = xstrndup((const char *)data, klen);
    void *rules;

    rules = map_regexp_parse("fuzz", (const char *)data + off, size - off, why);
    if (rules != NULL) {
        int rc = map_regexp_match(rules, key, value, why);
        if (rc != MAP_FOUND && rc != MAP_NOTFOUND)
            __builtin_trap();
        (void)map_regexp_match(rules, "", value, why);
        map_regexp_free(rules);
    } else if (strncmp(strbuf_str(why), "fuzz:", 5) != 0) {
        /* Every parse error names the source and line. */
        __builtin_trap();
    }
    free(key);
    strbuf_free(&why);
    strbuf_free(&value);
    return 0;
}
