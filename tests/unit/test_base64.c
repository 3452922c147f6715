/*
 * test_base64.c - strict base64: canonical encodings round-trip, every
 * non-canonical or garbage input fails and leaves the buffer untouched,
 * and the buffer maximum is respected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "strbuf.h"

struct b64_case {
    const char *name;
    const char *enc;
    int expect;
    const char *dec;
    size_t declen;
};

static const struct b64_case b64_cases[] = {
    {"empty", "", 0, "", 0},
    {"one byte", "YQ==", 0, "a", 1},
    {"two bytes", "YWI=", 0, "ab", 2},
    {"three bytes", "YWJj", 0, "abc", 3},
    {"plain nuls", "AGJvYgBzZWNyZXQ=", 0, "\0bob\0secret", 11},
    {"bad length", "YWJ", -1, NULL, 0},
    {"bad char", "YW!j", -1, NULL, 0},
    {"space", "YW j", -1, NULL, 0},
    {"pad in middle", "YQ==YWJj", -1, NULL, 0},
    {"pad then char", "YQ=j", -1, NULL, 0},
    {"three pads", "Y===", -1, NULL, 0},
    {"non-zero pad bits", "YR==", -1, NULL, 0},
    {"non-zero pad bits 2", "YWJ=", -1, NULL, 0},
    {"all pad", "====", -1, NULL, 0},
};

static void test_base64_table(void **state)
{
    struct strbuf *sb = strbuf_new(16), *enc = strbuf_new(16);

    for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
        const struct b64_case *c = &b64_cases[i];
        strbuf_set(sb, "keep");
        int got = base64_decode(sb, c->enc, strlen(c->enc));
        if (got != c->expect)
            fail_msg("case '%s': got %d", c->name, got);
        if (got == 0) {
            assert_int_equal(strbuf_len(sb), 4 + c->declen);
            assert_memory_equal(strbuf_str(sb) + 4, c->dec, c->declen);
            strbuf_reset(enc);
            base64_encode(enc, c->dec, c->declen);
            assert_string_equal(strbuf_str(enc), c->enc);
        } else {
            assert_string_equal(strbuf_str(sb), "keep");    /* untouched on error */
        }
    }
    /* The buffer maximum stops decoding and leaves the buffer as it was. */
    strbuf_reset(sb);
    strbuf_set_max(sb, 2);
    assert_int_equal(base64_decode(sb, "YWJj", 4), -1);
    assert_int_equal(strbuf_len(sb), 0);
    strbuf_free(&sb);
    strbuf_free(&enc);
}

static void test_split_points(void **state)
{
    /* Every length from 0 to 40 round-trips through encode and decode. */
    unsigned char data[40];
    struct strbuf *enc = strbuf_new(64), *dec = strbuf_new(64);

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(data); n++) {
        strbuf_reset(enc);
        strbuf_reset(dec);
        base64_encode(enc, data, n);
        assert_int_equal(strbuf_len(enc) % 4, 0);
        assert_int_equal(base64_decode(dec, strbuf_str(enc), strbuf_len(enc)), 0);
        assert_int_equal(strbuf_len(dec), n);
        assert_memory_equal(strbuf_str(dec), data, n);
        assert_true(strbuf_len(dec) <= base64_decoded_max(strbuf_len(enc)));
    }
    strbuf_free(&enc);
    strbuf_free(&dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_table),
        cmocka_unit_test(test_split_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
