/*
 * test_strbuf.c - unit tests for lib/strbuf.c.
 *
 * Growth, binary content, the hard maximum (an append past it changes
 * nothing), printf with %m and long output, consume/truncate/rtrim, and
 * setting a buffer from a piece of its own content (strbuf_setn allows it;
 * the appends do not, so they are not tested that way).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

/* One edit applied to a buffer that starts as `start`. */
enum op { OP_APPEND, OP_SET, OP_CONSUME, OP_TRUNCATE, OP_RTRIM, OP_APPENDC };

struct edit_case {
    const char *name;
    const char *start;
    size_t max;             /* 0: none */
    enum op op;
    const char *arg;
    size_t n;
    int ret;
    const char *expect;
};

static const struct edit_case edit_cases[] = {
    { "append", "ab", 0, OP_APPEND, "cd", 0, 0, "abcd" },
    { "append empty", "ab", 0, OP_APPEND, "", 0, 0, "ab" },
    { "append to max", "ab", 4, OP_APPEND, "cd", 0, 0, "abcd" },
    { "append past max", "ab", 4, OP_APPEND, "cde", 0, -1, "ab" },
    { "appendc past max", "abcd", 4, OP_APPENDC, "e", 0, -1, "abcd" },
    { "appendc", "ab", 0, OP_APPENDC, "c", 0, 0, "abc" },
    { "set shorter", "abcdef", 0, OP_SET, "xy", 0, 0, "xy" },
    { "set past max", "ab", 3, OP_SET, "wxyz", 0, -1, "ab" },
    { "set at max", "ab", 4, OP_SET, "wxyz", 0, 0, "wxyz" },
    { "consume some", "abcdef", 0, OP_CONSUME, NULL, 2, 0, "cdef" },
    { "consume all", "abc", 0, OP_CONSUME, NULL, 3, 0, "" },
    { "consume more", "abc", 0, OP_CONSUME, NULL, 10, 0, "" },
    { "truncate", "abcdef", 0, OP_TRUNCATE, NULL, 2, 0, "ab" },
    { "truncate longer", "ab", 0, OP_TRUNCATE, NULL, 5, 0, "ab" },
    { "rtrim", "ab \t\r\n", 0, OP_RTRIM, NULL, 0, 0, "ab" },
    { "rtrim keeps inner", " a b ", 0, OP_RTRIM, NULL, 0, 0, " a b" },
    { "rtrim all", " \r\n", 0, OP_RTRIM, NULL, 0, 0, "" },
};

static void test_edits(void **state)
{
    for (size_t i = 0; i < sizeof(edit_cases) / sizeof(edit_cases[0]); i++) {
        const struct edit_case *c = &edit_cases[i];
        struct strbuf *sb = strbuf_new(1);
        int r = 0;

        assert_int_equal(strbuf_set(sb, c->start), 0);
        assert_int_equal(strbuf_set_max(sb, c->max), 0);
        switch (c->op) {
        case OP_APPEND:
            r = strbuf_append(sb, c->arg);
            break;
        case OP_SET:
            r = strbuf_set(sb, c->arg);
            break;
        case OP_CONSUME:
            strbuf_consume(sb, c->n);
            break;
        case OP_TRUNCATE:
            strbuf_truncate(sb, c->n);
            break;
        case OP_RTRIM:
            strbuf_rtrim(sb);
            break;
        case OP_APPENDC:
            r = strbuf_appendc(sb, c->arg[0]);
            break;
        }
        if (r != c->ret || strcmp(strbuf_str(sb), c->expect) != 0 || strbuf_len(sb) != strlen(c->expect))
            fail_msg("case %s: got %d \"%s\", want %d \"%s\"", c->name, r, strbuf_str(sb), c->ret, c->expect);
        strbuf_free(&sb);
        assert_null(sb);
    }
}

static void test_growth_binary(void **state)
{
    struct strbuf *sb = strbuf_new(0);
    char bin[256];

    for (int i = 0; i < 256; i++)
        bin[i] = (char)i;
    /* Many doublings; content stays intact and NUL-terminated. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(strbuf_appendn(sb, bin, sizeof(bin)), 0);
    assert_int_equal(strbuf_len(sb), 256000);
    assert_memory_equal(strbuf_str(sb) + 255 * 256, bin, sizeof(bin));
    assert_int_equal(strbuf_str(sb)[strbuf_len(sb)], 0);
    assert_true(sb->size > sb->len);
    strbuf_reset(sb);
    assert_int_equal(strbuf_len(sb), 0);
    assert_string_equal(strbuf_str(sb), "");
    /* A reservation does not change the content. */
    assert_int_equal(strbuf_reserve(sb, 100000), 0);
    assert_true(sb->size >= 100001);
    assert_int_equal(strbuf_len(sb), 0);
    /* An absurd reservation fails instead of overflowing. */
    assert_int_equal(strbuf_reserve(sb, (size_t)-1), -1);
    strbuf_free(&sb);
    strbuf_free(&sb);      /* *NULL allowed */
    strbuf_free(NULL);
}

static void test_max(void **state)
{
    struct strbuf *sb = strbuf_new(4);

    assert_int_equal(strbuf_set(sb, "hello"), 0);
    /* Already longer than the new maximum. */
    assert_int_equal(strbuf_set_max(sb, 3), -1);
    assert_int_equal(strbuf_set_max(sb, 8), 0);
    assert_int_equal(strbuf_append(sb, "!!!"), 0);
    assert_int_equal(strbuf_append(sb, "?"), -1);
    assert_int_equal(strbuf_reserve(sb, 1), -1);
    assert_string_equal(strbuf_str(sb), "hello!!!");
    /* printf past the maximum appends nothing. */
    assert_int_equal(strbuf_appendf(sb, "%d", 42), -1);
    assert_string_equal(strbuf_str(sb), "hello!!!");
    assert_int_equal(strbuf_printf(sb, "%s", "0123456789"), -1);
    assert_int_equal(strbuf_len(sb), 0);
    assert_int_equal(strbuf_printf(sb, "%s", "01234567"), 0);
    assert_string_equal(strbuf_str(sb), "01234567");
    /* Lifting the maximum. */
    assert_int_equal(strbuf_set_max(sb, 0), 0);
    assert_int_equal(strbuf_append(sb, "89"), 0);
    strbuf_free(&sb);
}

static void test_printf(void **state)
{
    struct strbuf *sb = strbuf_new(2);
    char *big = malloc(5001);

    memset(big, 'q', 5000);
    big[5000] = 0;
    assert_int_equal(strbuf_printf(sb, "%s=%d", "n", -7), 0);
    assert_string_equal(strbuf_str(sb), "n=-7");
    assert_int_equal(strbuf_appendf(sb, " %s", big), 0);
    assert_int_equal(strbuf_len(sb), 4 + 1 + 5000);
    errno = ENOENT;
    assert_int_equal(strbuf_printf(sb, "open: %m"), 0);
    assert_string_equal(strbuf_str(sb), "open: No such file or directory");
    /* errno survives the call. */
    errno = EACCES;
    strbuf_appendf(sb, "%s", big);
    assert_int_equal(errno, EACCES);
    free(big);
    strbuf_free(&sb);
}

static void test_self_set_and_steal(void **state)
{
    struct strbuf *sb = strbuf_new(8);
    char *p;

    strbuf_set(sb, "prefix:value");
    /* Set from a piece of its own content. */
    assert_int_equal(strbuf_setn(sb, strbuf_str(sb) + 7, 5), 0);
    assert_string_equal(strbuf_str(sb), "value");
    /* Appending copies, growing through several doublings. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(strbuf_append(sb, "value"), 0);
    assert_int_equal(strbuf_len(sb), 5 * 7);
    assert_memory_equal(strbuf_str(sb) + 5 * 6, "value", 5);
    p = strbuf_steal(&sb);
    assert_null(sb);
    assert_int_equal(strlen(p), 5 * 7);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edits),
        cmocka_unit_test(test_growth_binary),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_self_set_and_steal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
