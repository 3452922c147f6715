/*
 * fuzz_resolve_alias.c - libFuzzer target for the aliases(5) value and
 * :include: file parser, resolve_alias_parse(), the entry point qmgr's
 * alias expansion calls on table values and include files.  Every entry
 * handed out must be non-empty, within RESOLVE_ADDR_MAX and free of
 * control characters; a refusal must say why.  Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resolve.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_item(enum resolve_item_kind kind, const char *value, void *ctx)
{
    size_t n = strlen(value);

    (void)ctx;
    if (n == 0 || n > RESOLVE_ADDR_MAX || kind > RESOLVE_ITEM_INCLUDE)
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);

    if (resolve_alias_parse((const char *)data, size, check_item, NULL, why) < 0
        && strbuf_len(why) == 0)
        __builtin_trap();
    strbuf_free(&why);
    return 0;
}
