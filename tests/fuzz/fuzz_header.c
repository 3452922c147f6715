/*
 * fuzz_header.c - libFuzzer target for lib/header: the header parser,
 * unfolding, the address-list reader (sendmail -t; with insertion points
 * for local header rewriting) and Message-ID
 * extraction, the entry points cleanup and sendmail call.
 *
 * The first byte sets the size and count bounds; the rest is a message
 * split into lines at LF.  Checks: no delivered header exceeds the size
 * bound, no more headers than the count bound, every raw header starts
 * with its valid name, every extracted address fits HEADER_ADDR_MAX, and
 * insertion points stay inside the value in order.
 * Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "header.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    size_t size_max;
    size_t count;
    struct strbuf *tmp;
};

static int on_addr(const char *addr, void *ctx)
{
    (void)ctx;
    if (strlen(addr) == 0 || strlen(addr) > HEADER_ADDR_MAX)
        __builtin_trap();
    return 0;
}

struct pos_check {
    size_t len;
    size_t last;
};

/* Insertion points lie inside the value and never go backwards. */
static int on_pos(const char *addr, size_t end, void *ctx)
{
    struct pos_check *pc = ctx;

    if (strlen(addr) == 0 || end > pc->len || end < pc->last)
        __builtin_trap();
    pc->last = end;
    return 0;
}

static int on_header(const struct header *h, void *ctx)
{
    struct sink *k = ctx;

    k->count++;
    if (h->raw_len > k->size_max || !header_name_valid(h->name, h->name_len) ||
        h->name != h->raw || h->value + h->value_len != h->raw + h->raw_len)
        __builtin_trap();
    header_value_unfold(h->value, h->value_len, k->tmp);
    if (memchr(strbuf_str(k->tmp), '\n', strbuf_len(k->tmp)) != NULL)
        __builtin_trap();
    header_addr_list(h->value, h->value_len, 100, on_addr, NULL);
    {
        struct pos_check pc = {h->value_len, 0};

        header_addr_list_pos(h->value, h->value_len, 100, on_pos, &pc);
    }
    header_msgid(h->value, h->value_len, k->tmp);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sink k;
    struct header_parser *p;
    const char *s, *end;
    size_t count_max;
    int rc = HEADER_IN;

    if (size < 1)
        return 0;
    k.size_max = 16 + (size_t)(data[0] & 0x0f) * 64;
    count_max = 1 + (data[0] >> 4);
    k.count = 0;
    k.tmp = strbuf_new(64);
    p = header_parser_new(k.size_max, count_max);
    s = (const char *)data + 1;
    end = (const char *)data + size;
    while (s < end && rc == HEADER_IN) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

        rc = header_parser_line(p, s, len, on_header, &k);
        s += len + (nl != NULL);
    }
    if (rc == HEADER_IN)
        rc = header_parser_finish(p, on_header, &k);
    if (k.count > count_max || header_parser_count(p) != k.count)
        __builtin_trap();
    /* The whole input as one address list too. */
    header_addr_list((const char *)data, size, 1000, on_addr, NULL);
    header_parser_free(&p);
    strbuf_free(&k.tmp);
    return 0;
}
