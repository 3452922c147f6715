/*
 * test_qid.c - queue IDs: encoding, round trip, sort order = time order,
 * validation of untrusted IDs (alphabet, length, leading zero, usec range,
 * overflow), hashed paths, and IDs taken from paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qid.h"
#include "strbuf.h"

struct make_case {
    long sec, usec;
    uint64_t ino;
    const char *want;       /* NULL: qid_make fails */
};

static const struct make_case make_cases[] = {
    {0, 0, 0, "0000000000" "0"},
    {1, 1, 1, "0000010001" "1"},
    {61, 61, 61, "00000z000z" "z"},
    {62, 62, 62, "0000100010" "10"},
    {1764000000, 999999, 123456, "1vNYyu4C91" "W7E"},
    {1764000000, 0, UINT64_MAX, "1vNYyu0000" "LygHa16AHYF"},
    {56800235583L, 0, 5, "zzzzzz0000" "5"},     /* 62^6 - 1 */
    {56800235584L, 0, 5, NULL},                /* 62^6: does not fit */
    {-1, 0, 5, NULL},
    {5, 1000000, 5, NULL},
    {5, -1, 5, NULL},
};

static void test_make(void **state)
{
    char buf[QID_BUFSIZE];

    for (size_t i = 0; i < sizeof(make_cases) / sizeof(make_cases[0]); i++) {
        const struct make_case *c = &make_cases[i];
        struct timeval tv = {.tv_sec = c->sec, .tv_usec = c->usec}, back;
        uint64_t ino;
        int rc = qid_make(buf, &tv, c->ino);

        if (c->want == NULL) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(buf, c->want);
        assert_true(qid_valid(buf));
        assert_int_equal(qid_decode(buf, &back, &ino), 0);
        assert_int_equal(back.tv_sec, c->sec);
        assert_int_equal(back.tv_usec, c->usec);
        assert_true(ino == c->ino);
    }
}

static void test_sort_order(void **state)
{
    /* increasing times with inodes that sort the other way */
    static const long times[][2] = {
        {0, 0}, {0, 1}, {0, 61}, {0, 62}, {0, 999999}, {1, 0}, {61, 5},
        {62, 0}, {1700000000, 1}, {1700000000, 2}, {1700000001, 0}, {1764000000, 500000},
    };
    char prev[QID_BUFSIZE] = "", cur[QID_BUFSIZE];

    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        struct timeval tv = {.tv_sec = times[i][0], .tv_usec = times[i][1]};
        assert_int_equal(qid_make(cur, &tv, UINT64_MAX / (i + 1)), 0);
        if (i > 0)
            assert_true(strcmp(prev, cur) < 0);
        strcpy(prev, cur);
    }
}

struct valid_case {
    const char *s;
    bool ok;
};

static const struct valid_case valid_cases[] = {
    {"00000000001", true},
    {"1vNYyu4C91W7E", true},
    {"1vnwYm0000LygHa16AHYF", true},        /* 21 chars, UINT64_MAX */
    {"", false},
    {"0000000000", false},                  /* no inode part */
    {"1vnwYm0000LygHa16AHYG", false},       /* inode past UINT64_MAX */
    {"1vnwYm0000zzzzzzzzzzz", false},       /* 11 z: overflow */
    {"1vnwYm0000LygHa16AHYF0", false},      /* 22 chars */
    {"1vnwYm000001", false},                /* inode with leading zero */
    {"1vnwYm4C925", false},                 /* usec 1000000 */
    {"1vnwYm4C915", true},                  /* usec 999999 */
    {"1vnwYm4C7H-5", false},
    {"1vnwYm4C7H.5", false},
    {"../../etc/passwd", false},
    {"1vnwYm4C7H/5", false},
    {".tmp.123.4.5", false},
    {"1vnwYm4C7H 5", false},
    {"1vnwYm4C7H\xc3\xa9", false},
};

static void test_valid(void **state)
{
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        if (qid_valid(c->s) != c->ok)
            fail_msg("qid_valid(\"%s\") != %d", c->s, c->ok);
        assert_int_equal(qid_validn(c->s, strlen(c->s)), c->ok);
    }
    /* length-bounded form: no NUL needed, nothing read past len */
    assert_true(qid_validn("00000000001xyz", 11));
    assert_false(qid_validn("0000000000", 10));
    assert_int_equal(qid_decode("zz", NULL, NULL), -1);
}

static void test_path(void **state)
{
    struct strbuf *p = strbuf_new(64);
    char buf[QID_BUFSIZE], h1, h2;

    qid_path(p, "/var/spool/facteur", "incoming", "1vNYyu4C91W7E", 0);
    assert_string_equal(strbuf_str(p), "/var/spool/facteur/incoming/1vNYyu4C91W7E");
    h1 = qid_hash_char("1vNYyu4C91W7E", 1);
    h2 = qid_hash_char("1vNYyu4C91W7E", 2);
    assert_true(strchr("0123456789ABCDEF", h1) != NULL);
    assert_true(strchr("0123456789ABCDEF", h2) != NULL);
    qid_path(p, "/q", "deferred", "1vNYyu4C91W7E", 1);
    assert_int_equal(strbuf_len(p), strlen("/q/deferred/X/1vNYyu4C91W7E"));
    assert_int_equal(strbuf_str(p)[12], h1);
    qid_path(p, "/q", "deferred", "1vNYyu4C91W7E", 2);
    assert_int_equal(strbuf_str(p)[12], h1);
    assert_int_equal(strbuf_str(p)[14], h2);
    assert_string_equal(strbuf_str(p) + 16, "1vNYyu4C91W7E");
    /* depth is clamped */
    qid_path(p, "/q", "defer", "1vNYyu4C91W7E", 9);
    assert_int_equal(strbuf_len(p), strlen("/q/defer/X/Y/1vNYyu4C91W7E"));
    qid_path(p, "/q", "defer", "1vNYyu4C91W7E", -3);
    assert_string_equal(strbuf_str(p), "/q/defer/1vNYyu4C91W7E");
    /* the hash spreads: 200 consecutive IDs use every first-level dir */
    unsigned seen = 0;
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {.tv_sec = 1764000000, .tv_usec = i};
        assert_int_equal(qid_make(buf, &tv, 1000 + (uint64_t)i), 0);
        char c = qid_hash_char(buf, 1);
        seen |= 1u << (c <= '9' ? c - '0' : c - 'A' + 10);
    }
    assert_int_equal(seen, 0xffff);

    assert_int_equal(qid_from_path("/q/incoming/1vNYyu4C91W7E", buf), 0);
    assert_string_equal(buf, "1vNYyu4C91W7E");
    assert_int_equal(qid_from_path("1vNYyu4C91W7E", buf), 0);
    assert_int_equal(qid_from_path("/q/incoming/.tmp.1.2.3", buf), -1);
    assert_int_equal(qid_from_path("/q/incoming/", buf), -1);
    assert_int_equal(qid_from_path("/q/incoming/1vNYyu4C91W7E/", buf), -1);
    strbuf_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make),
        cmocka_unit_test(test_sort_order),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
