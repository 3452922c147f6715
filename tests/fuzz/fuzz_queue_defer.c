/*
 * fuzz_queue_defer.c - libFuzzer target for the defer-log reader of the
 * queue commands (lib/queue_scan.c): queue_defer_parse over the bytes as
 * facteur-queue reads a defer/QID file, then every parsed address and
 * reason through queue_json_quote, as facteur-queue -j prints them.
 *
 * Checks: the parser never passes more than QUEUE_DEFER_ENTRIES_MAX
 * entries nor an address or reason longer than a line; the JSON text it
 * yields holds no raw control character and no unescaped quote.  Keeps
 * no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "queue_scan.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const char *s)
{
    struct strbuf *out = strbuf_new(64);
    const char *p;

    queue_json_quote(out, s);
    for (p = strbuf_str(out); *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            __builtin_trap();
        if (*p == '\\') {
            if (p[1] == 0)
                __builtin_trap();
            p++;
        } else if (*p == '"') {
            __builtin_trap();
        }
    }
    strbuf_free(&out);
}

static void entry(const char *addr, const char *reason, void *ctx)
{
    int *count = ctx;

    if (++*count > QUEUE_DEFER_ENTRIES_MAX || *addr == 0
        || strlen(addr) + strlen(reason) > QUEUE_DEFER_LINE_MAX)
        __builtin_trap();
    check_json(addr);
    check_json(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int count = 0;
    int n = queue_defer_parse((const char *)data, size, entry, &count);

    if (size > QUEUE_DEFER_FILE_MAX ? n != -1 : n != count)
        __builtin_trap();
    return 0;
}
