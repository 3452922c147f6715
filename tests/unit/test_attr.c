/*
 * test_attr.c - unit tests for lib/attr.c.
 *
 * Round trips through attr_format/attr_parse and attr_write/attr_read,
 * a table of malformed and over-limit messages, strict checks against a
 * spec, and every message fed to attr_parse cut at every split point.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "attr.h"
#include "stream.h"
#include "strbuf.h"

#define MSG(s) s, sizeof(s) - 1

static const struct attr_limits small = { 3, 8, 6, 40 };

static const struct attr_spec anvil_spec[] = {
    { "request", ATTR_STR, 0 },
    { "count", ATTR_LONG, 0 },
    { "blob", ATTR_DATA, ATTR_OPTIONAL },
    { NULL, 0, 0 },
};

struct parse_case {
    const char *name;
    const char *msg;
    size_t len;
    const struct attr_spec *spec;       /* NULL: no strict check */
    const struct attr_limits *limits;   /* NULL: defaults */
    int expect;                         /* attr_parse on the whole input */
    const char *why;                    /* substring of the reason, or NULL */
};

static const struct parse_case parse_cases[] = {
    /* Well-formed. */
    { "empty message", MSG("\0"), NULL, NULL, 1, NULL },
    { "one string", MSG("Srequest\0connect\0\0"), NULL, NULL, 1, NULL },
    { "all types", MSG("Srequest\0x\0Lcount\0-12\0Dblob\0" "3\0a\0b\0"), anvil_spec, NULL, 1, NULL },
    { "optional absent", MSG("Lcount\0" "0\0Srequest\0\0\0"), anvil_spec, NULL, 1, NULL },
    { "empty data", MSG("Dd\0" "0\0\0"), NULL, NULL, 1, NULL },
    { "long min", MSG("Ln\0-9223372036854775808\0\0"), NULL, NULL, 1, NULL },
    { "long max", MSG("Ln\0" "9223372036854775807\0\0"), NULL, NULL, 1, NULL },
    { "name chars", MSG("Sa-b.c_9\0v\0\0"), NULL, NULL, 1, NULL },
    { "at the limits", MSG("Sabcdefgh\0" "123456\0Lb\0" "1\0Dc\0" "6\0xxxxxx\0"), NULL, &small, 1, NULL },
    /* Incomplete: need more. */
    { "nothing", "", 0, NULL, NULL, 0, NULL },
    { "type only", MSG("S"), NULL, NULL, 0, NULL },
    { "missing end", MSG("Sa\0b\0"), NULL, NULL, 0, NULL },
    { "truncated data", MSG("Da\0" "5\0hel"), NULL, NULL, 0, NULL },
    /* Malformed. */
    { "bad type", MSG("Xa\0b\0\0"), NULL, NULL, -1, "bad type byte 0x58" },
    { "lower-case type", MSG("sa\0b\0\0"), NULL, NULL, -1, "bad type" },
    { "empty name", MSG("S\0x\0\0"), NULL, NULL, -1, "empty name" },
    { "upper-case name", MSG("SA\0x\0\0"), NULL, NULL, -1, "bad byte 0x41 in name" },
    { "space in name", MSG("Sa b\0x\0\0"), NULL, NULL, -1, "in name" },
    { "name too long", MSG("Sabcdefghi\0x\0\0"), NULL, &small, -1, "name longer than 8" },
    { "string too long", MSG("Sa\0" "1234567\0\0"), NULL, &small, -1, "value longer than 6" },
    { "data too long", MSG("Da\0" "7\0" "1234567\0"), NULL, &small, -1, "value longer than 6" },
    { "data length huge", MSG("Da\0" "9999999999\0"), NULL, NULL, -1, "value longer" },
    { "data length overflow", MSG("Da\0" "999999999999999999999\0"), NULL, NULL, -1, "malformed data length" },
    { "data length zero pad", MSG("Da\0" "05\0hello\0"), NULL, NULL, -1, "malformed data length" },
    { "data length empty", MSG("Da\0\0\0"), NULL, NULL, -1, "malformed data length" },
    { "data length sign", MSG("Da\0-1\0\0"), NULL, NULL, -1, "malformed data length" },
    { "too many attributes", MSG("La\0" "1\0Lb\0" "2\0Lc\0" "3\0Ld\0" "4\0\0"), NULL, &small, -1, "more than 3 attributes" },
    { "message too long", MSG("Saaaaaaaa\0" "123456\0Sbbbbbbbb\0" "123456\0Scccccccc\0" "123456\0\0"), NULL, &small, -1, "message longer than 40" },
    { "data past message", MSG("Da\0" "6\0xxxxxx\0"), NULL, &(struct attr_limits){ 3, 8, 6, 9 }, -1, "message longer than 9" },
    { "duplicate", MSG("Sa\0x\0Sa\0y\0\0"), NULL, NULL, -1, "duplicate attribute \"a\"" },
    { "duplicate other type", MSG("Sa\0x\0La\0" "1\0\0"), NULL, NULL, -1, "duplicate" },
    { "long letters", MSG("La\0abc\0\0"), NULL, NULL, -1, "malformed or out-of-range long" },
    { "long empty", MSG("La\0\0\0"), NULL, NULL, -1, "malformed" },
    { "long minus only", MSG("La\0-\0\0"), NULL, NULL, -1, "malformed" },
    { "long minus zero", MSG("La\0-0\0\0"), NULL, NULL, -1, "malformed" },
    { "long leading zero", MSG("La\0" "01\0\0"), NULL, NULL, -1, "malformed" },
    { "long plus", MSG("La\0+1\0\0"), NULL, NULL, -1, "malformed" },
    { "long double minus", MSG("La\0--1\0\0"), NULL, NULL, -1, "malformed" },
    { "long overflow", MSG("La\0" "9223372036854775808\0\0"), NULL, NULL, -1, "out-of-range" },
    { "long underflow", MSG("La\0-9223372036854775809\0\0"), NULL, NULL, -1, "out-of-range" },
    { "long too many digits", MSG("La\0" "1234567890123456789012\0\0"), NULL, NULL, -1, "out-of-range" },
    /* Strict checks. */
    { "wrong type", MSG("Srequest\0x\0Scount\0" "1\0\0"), anvil_spec, NULL, -1, "attribute \"count\": expected long, got string" },
    { "missing expected", MSG("Srequest\0x\0\0"), anvil_spec, NULL, -1, "missing attribute \"count\"" },
    { "extra unexpected", MSG("Srequest\0x\0Lcount\0" "1\0Lother\0" "1\0\0"), anvil_spec, NULL, -1, "unexpected attribute \"other\"" },
    { "optional wrong type", MSG("Srequest\0x\0Lcount\0" "1\0Sblob\0x\0\0"), anvil_spec, NULL, -1, "expected data, got string" },
};

static void test_parse_table(void **state)
{
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t consumed = 12345;
        int r;

        strbuf_reset(why);
        r = attr_parse(c->msg, c->len, l, c->spec, c->limits, &consumed, why);
        if (r != c->expect)
            fail_msg("case %s: got %d (%s), want %d", c->name, r, strbuf_str(why), c->expect);
        if (r == 1 && consumed != c->len)
            fail_msg("case %s: consumed %zu of %zu", c->name, consumed, c->len);
        if (r != 1 && (consumed != 0 || attr_count(l) != 0))
            fail_msg("case %s: consumed %zu, %zu attributes left", c->name, consumed, attr_count(l));
        if (c->why != NULL && strstr(strbuf_str(why), c->why) == NULL)
            fail_msg("case %s: why \"%s\", want \"%s\"", c->name, strbuf_str(why), c->why);
        /* No reason kept is fine too. */
        assert_int_equal(attr_parse(c->msg, c->len, l, c->spec, c->limits, &consumed, NULL), r);
    }
    attr_free(&l);
    assert_null(l);
    strbuf_free(&why);
}

/* Every prefix of every case: a well-formed message needs more until its
 * last byte; a malformed one may fail early, and once failed stays failed. */
static void test_parse_every_split(void **state)
{
    struct attr_list *l = attr_new();

    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        bool failed = false;

        for (size_t cut = 0; cut < c->len; cut++) {
            size_t consumed;
            int r = attr_parse(c->msg, cut, l, c->spec, c->limits, &consumed, NULL);

            if (c->expect >= 0 && r != 0)
                fail_msg("case %s cut %zu: got %d, want need-more", c->name, cut, r);
            if (r == 1)
                fail_msg("case %s cut %zu: complete too early", c->name, cut);
            if (failed && r != -1)
                fail_msg("case %s cut %zu: recovered after failing", c->name, cut);
            failed = r == -1;
        }
    }
    attr_free(&l);
}

static void test_round_trip(void **state)
{
    static const char blob[] = { 'a', 0, 'b', '\n', (char)0xff, 0 };
    struct attr_list *out = attr_new(), *in = attr_new();
    struct strbuf *wire = strbuf_new(64), *why = strbuf_new(64);
    const long longs[] = { 0, -1, 1, LONG_MIN, LONG_MAX, 250, -4200000000L };
    char name[16];
    size_t consumed, len;
    const char *data;
    long v;

    attr_add_str(out, "request", "lookup");
    attr_add_str(out, "empty", "");
    attr_add_data(out, "blob", blob, sizeof(blob));
    attr_add_data(out, "nodata", "", 0);
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        snprintf(name, sizeof(name), "n%zu", i);
        attr_add_long(out, name, longs[i]);
    }
    attr_format(out, wire);
    /* Trailing bytes of a pipelined next message stay unconsumed. */
    strbuf_appendn(wire, "Sx", 2);
    assert_int_equal(attr_parse(strbuf_str(wire), strbuf_len(wire), in, NULL, NULL, &consumed, why), 1);
    assert_int_equal(consumed, strbuf_len(wire) - 2);
    assert_int_equal(attr_count(in), attr_count(out));
    for (size_t i = 0; i < attr_count(out); i++) {
        assert_string_equal(attr_name(in, i), attr_name(out, i));
        assert_int_equal(attr_type_of(in, i), attr_type_of(out, i));
    }
    assert_null(attr_name(in, attr_count(in)));
    assert_string_equal(attr_get_str(in, "request"), "lookup");
    assert_string_equal(attr_get_str(in, "empty"), "");
    data = attr_get_data(in, "blob", &len);
    assert_non_null(data);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(data, blob, sizeof(blob));
    data = attr_get_data(in, "nodata", &len);
    assert_non_null(data);
    assert_int_equal(len, 0);
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        snprintf(name, sizeof(name), "n%zu", i);
        assert_int_equal(attr_get_long(in, name, &v), 0);
        assert_true(v == longs[i]);
    }
    /* Lookups of the wrong type or a missing name. */
    assert_null(attr_get_str(in, "n0"));
    assert_null(attr_get_str(in, "blob"));
    assert_int_equal(attr_get_long(in, "request", &v), -1);
    assert_int_equal(attr_get_long(in, "absent", &v), -1);
    assert_null(attr_get_data(in, "request", &len));
    assert_true(attr_has(in, "empty"));
    assert_false(attr_has(in, "absent"));
    /* Reset and reuse. */
    attr_reset(in);
    assert_int_equal(attr_count(in), 0);
    assert_false(attr_has(in, "request"));
    attr_free(&out);
    attr_free(&in);
    attr_free(&in);     /* *NULL allowed */
    attr_free(NULL);
    strbuf_free(&wire);
    strbuf_free(&why);
}

/* Replaced stream input handing out at most `chunk` bytes per call. */
struct chunked {
    const char *data;
    size_t len, pos, chunk;
};

static ssize_t chunked_read(void *ctx, void *buf, size_t len)
{
    struct chunked *c = ctx;
    size_t n = c->len - c->pos;

    if (n > c->chunk)
        n = c->chunk;
    if (n > len)
        n = len;
    memcpy(buf, c->data + c->pos, n);
    c->pos += n;
    return (ssize_t)n;
}

static ssize_t null_write(void *ctx, const void *buf, size_t len)
{
    return (ssize_t)len;
}

static void test_stream_read(void **state)
{
    struct attr_list *out = attr_new(), *in = attr_new();
    struct strbuf *wire = strbuf_new(64), *why = strbuf_new(64), *line = strbuf_new(64);
    struct stream *s;
    long v;

    /* Two messages written back to back, then a text line. */
    s = stream_memopen(NULL, wire);
    attr_add_str(out, "request", "connect");
    attr_add_long(out, "count", 7);
    assert_int_equal(attr_write(s, out), 0);
    attr_reset(out);
    attr_add_str(out, "request", "disconnect");
    attr_add_long(out, "count", 0);
    attr_add_data(out, "blob", "xyz", 3);
    assert_int_equal(attr_write(s, out), 0);
    assert_int_equal(stream_puts(s, "tail\n"), 0);
    stream_close(&s);

    for (size_t chunk = 1; chunk <= strbuf_len(wire); chunk++) {
        struct chunked ck = { strbuf_str(wire), strbuf_len(wire), 0, chunk };

        s = stream_memopen(NULL, NULL);
        stream_set_io(s, chunked_read, null_write, &ck);
        assert_int_equal(attr_read(s, in, anvil_spec, NULL, why), 1);
        assert_string_equal(attr_get_str(in, "request"), "connect");
        assert_int_equal(attr_get_long(in, "count", &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(attr_read(s, in, anvil_spec, NULL, why), 1);
        assert_string_equal(attr_get_str(in, "request"), "disconnect");
        assert_true(attr_has(in, "blob"));
        /* attr_read did not read past the second end marker. */
        assert_int_equal(stream_read_line(s, line, 64), 1);
        assert_string_equal(strbuf_str(line), "tail\n");
        assert_int_equal(attr_read(s, in, anvil_spec, NULL, why), 0);
        stream_close(&s);
    }

    /* EOF inside a message, and a strict failure, through a stream. */
    struct {
        const char *name;
        const char *msg;
        size_t len;
        const char *why;
    } bad[] = {
        { "eof inside", MSG("Srequest\0conn"), "closed inside a message" },
        { "missing end", MSG("Srequest\0x\0Lcount\0" "1\0"), "closed inside a message" },
        { "unexpected", MSG("Srequest\0x\0Lcount\0" "1\0Lz\0" "1\0\0"), "unexpected attribute \"z\"" },
        { "over limit", MSG("Sabcdefghi\0x\0\0"), "name longer than 8" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct strbuf *inbuf = strbuf_new(64);

        strbuf_setn(inbuf, bad[i].msg, bad[i].len);
        s = stream_memopen(inbuf, NULL);
        strbuf_reset(why);
        assert_int_equal(attr_read(s, in, anvil_spec, &small, why), -1);
        if (strstr(strbuf_str(why), bad[i].why) == NULL)
            fail_msg("case %s: why \"%s\", want \"%s\"", bad[i].name, strbuf_str(why), bad[i].why);
        assert_int_equal(attr_count(in), 0);
        stream_close(&s);
        strbuf_free(&inbuf);
    }

    /* A stream already in error: read and write fail. */
    {
        struct strbuf *full = strbuf_new(8);

        strbuf_set_max(full, 2);
        s = stream_memopen(NULL, full);
        assert_int_equal(attr_write(s, out), -1);
        strbuf_reset(why);
        assert_int_equal(attr_read(s, in, NULL, NULL, why), -1);
        assert_non_null(strstr(strbuf_str(why), "read:"));
        assert_int_equal(attr_read(s, in, NULL, NULL, NULL), -1);
        stream_close(&s);
        strbuf_free(&full);
    }
    attr_free(&out);
    attr_free(&in);
    strbuf_free(&wire);
    strbuf_free(&why);
    strbuf_free(&line);
}

static void test_check_direct(void **state)
{
    static const struct attr_spec none[] = { { NULL, 0, 0 } };
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(16);

    assert_int_equal(attr_check(l, none, why), 0);
    assert_int_equal(attr_check(l, anvil_spec, why), -1);
    assert_string_equal(strbuf_str(why), "missing attribute \"request\"");
    attr_add_str(l, "request", "x");
    attr_add_long(l, "count", 3);
    assert_int_equal(attr_check(l, anvil_spec, why), 0);
    assert_int_equal(attr_check(l, none, NULL), -1);
    attr_free(&l);
    strbuf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_every_split),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_stream_read),
        cmocka_unit_test(test_check_direct),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
