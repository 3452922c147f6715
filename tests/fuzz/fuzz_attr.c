/*
 * fuzz_attr.c - libFuzzer target for the attribute-list parser.
 *
 * Feeds the input to attr_parse() (the entry point multi-client daemons
 * use on buffered input) with default, tight and strict settings, then to
 * attr_read() over a memory stream (the blocking daemons' entry point),
 * and checks what a parse returns: a complete message re-formats to the
 * exact bytes consumed, a refusal always says why, and "need more" holds
 * for every shorter prefix of a message that parsed.  Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attr.h"
#include "stream.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct attr_limits tight = { 4, 8, 16, 64 };

static const struct attr_spec spec[] = {
    { "request", ATTR_STR, 0 },
    { "count", ATTR_LONG, ATTR_OPTIONAL },
    { "body", ATTR_DATA, ATTR_OPTIONAL },
    { NULL, 0, 0 },
};

static void fuzz_one(const char *buf, size_t size, const struct attr_spec *sp,
                     const struct attr_limits *lim)
{
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(64), *again = strbuf_new(64);
    size_t consumed = 0;
    int r;

    r = attr_parse(buf, size, l, sp, lim, &consumed, why);
    if (r == 1) {
        /* The canonical form is the only form: re-formatting gives the
         * bytes that were consumed. */
        attr_format(l, again);
        if (consumed > size || strbuf_len(again) != consumed
            || memcmp(strbuf_str(again), buf, consumed) != 0)
            __builtin_trap();
        for (size_t i = 0; i < attr_count(l); i++) {
            const char *name = attr_name(l, i);
            size_t len;
            long v;
            switch (attr_type_of(l, i)) {
            case ATTR_STR:
                if (attr_get_str(l, name) == NULL)
                    __builtin_trap();
                break;
            case ATTR_LONG:
                if (attr_get_long(l, name, &v) != 0)
                    __builtin_trap();
                break;
            case ATTR_DATA:
                if (attr_get_data(l, name, &len) == NULL)
                    __builtin_trap();
                break;
            }
        }
        /* Each proper prefix needs more. */
        if (consumed < 256) {
            for (size_t cut = 0; cut < consumed; cut++) {
                size_t c2;
                if (attr_parse(buf, cut, l, sp, lim, &c2, NULL) != 0)
                    __builtin_trap();
            }
        }
    } else if (r == -1) {
        if (strbuf_len(why) == 0 || consumed != 0 || attr_count(l) != 0)
            __builtin_trap();
    } else if (r != 0 || consumed != 0) {
        __builtin_trap();
    }
    attr_free(&l);
    strbuf_free(&why);
    strbuf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct strbuf *in = strbuf_new(size), *why = strbuf_new(64);
    struct attr_list *l = attr_new();
    struct stream *s;

    fuzz_one(buf, size, NULL, NULL);
    fuzz_one(buf, size, NULL, &tight);
    fuzz_one(buf, size, spec, NULL);

    /* The stream reader: as many messages as the input holds. */
    strbuf_setn(in, buf, size);
    s = stream_memopen(in, NULL);
    for (int i = 0; i < 1000; i++) {
        int r = attr_read(s, l, NULL, &tight, why);
        if (r != 1) {
            if (r == -1 && strbuf_len(why) == 0)
                __builtin_trap();
            break;
        }
    }
    stream_close(&s);
    attr_free(&l);
    strbuf_free(&why);
    strbuf_free(&in);
    return 0;
}
