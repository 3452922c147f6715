/*
 * fuzz_mastercf.c - libFuzzer target for the master.cf parser.
 *
 * Calls mastercf_parse(), the entry point mastercf_load() uses, on the raw
 * bytes; on success walks the table (comparisons used by master's reload)
 * so every field is touched, then frees everything.  No state is kept.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mastercf.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(128);
    struct mastercf *cf = NULL;

    if (mastercf_parse("fuzz/master.cf", (const char *)data, size, &cf, why) == 0) {
        for (size_t i = 0; i < cf->count; i++) {
            const struct mastercf_entry *e = &cf->entries[i];
            if (mastercf_find(cf, e->name, e->type) != e)
                __builtin_trap();
            if (!mastercf_entry_same(e, e) || !mastercf_entry_same_listener(e, e))
                __builtin_trap();
            if (i > 0)
                (void)mastercf_entry_same(e, &cf->entries[i - 1]);
            (void)strlen(mastercf_type_name(e->type));
        }
    } else if (strbuf_len(why) == 0) {
        __builtin_trap();
    }
    mastercf_free(&cf);
    strbuf_free(&why);
    return 0;
}
