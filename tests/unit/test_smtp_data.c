/*
 * test_smtp_data.c - the DATA/BDAT decoder: end of data only at
 * CRLF.CRLF (smuggling variants with bare LF and bare CR), dot-unstuffing,
 * bare LF/CR/NUL flags, over-long lines split into pieces, BDAT chunks
 * with lines spanning chunks and a last line without terminator, octet
 * counts, and bytes after the end left unused.  Every case is fed whole,
 * at every split point into two feeds, and one byte at a time, and must
 * give the same lines each way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_data.h"
#include "strbuf.h"

#define S(lit) lit, sizeof(lit) - 1

/* Lines are rendered as content followed by a mark: '$' a whole line,
 * '+' a piece, '~' a line ended by a bare LF, '%' a last line without
 * terminator; then a newline. */
static int render_line(const char *line, size_t len, unsigned flags, void *ctx)
{
    struct strbuf *out = ctx;

    strbuf_appendn(out, line, len);
    if (flags & SMTP_DATA_LINE_PARTIAL)
        strbuf_appendc(out, '+');
    else if (flags & SMTP_DATA_LINE_BARE_LF)
        strbuf_appendc(out, '~');
    else if (flags & SMTP_DATA_LINE_NO_EOL)
        strbuf_appendc(out, '%');
    else
        strbuf_appendc(out, '$');
    strbuf_appendc(out, '\n');
    return 0;
}

struct dot_case {
    const char *name;
    const char *in;
    size_t len;
    size_t line_max;
    bool end;               /* the end of data is in the input */
    size_t used;            /* bytes used when end */
    const char *lines;      /* rendered lines */
    unsigned flags;
    uint64_t octets;
};

static const struct dot_case dot_cases[] = {
    {"empty message", S(".\r\n"), 100, true, 3, "", 0, 0},
    {"one line", S("a\r\n.\r\n"), 100, true, 6, "a$\n", 0, 3},
    {"pipelined rest unused", S("a\r\n.\r\nQUIT\r\n"), 100, true, 6, "a$\n", 0, 3},
    {"dot unstuffed", S("..x\r\n.\r\n"), 100, true, 8, ".x$\n", 0, 5},
    {"double dot line", S("..\r\n.\r\n"), 100, true, 7, ".$\n", 0, 4},
    {"dot text", S(".hidden\r\n.\r\n"), 100, true, 12, "hidden$\n", 0, 9},
    {"empty lines", S("\r\n\r\n.\r\n"), 100, true, 7, "$\n$\n", 0, 4},
    {"no end yet", S("a\r\nb\r\n"), 100, false, 0, "a$\nb$\n", 0, 6},
    {"no end: cr pending", S("a\r\n.\r"), 100, false, 0, "a$\n", 0, 5},
    {"smuggle lf.lf", S("a\n.\nMAIL FROM:<x>\r\n.\r\n"), 100, true, 22,
     "a~\n.~\nMAIL FROM:<x>$\n", SMTP_DATA_SAW_BARE_LF, 19},
    {"smuggle crlf.lf", S("a\r\n.\nb\r\n.\r\n"), 100, true, 11, "a$\n.~\nb$\n",
     SMTP_DATA_SAW_BARE_LF, 8},
    {"smuggle lf.crlf", S("a\n.\r\nb\r\n.\r\n"), 100, true, 11, "a~\n.$\nb$\n",
     SMTP_DATA_SAW_BARE_LF, 8},
    {"end after lf-ended line needs crlf", S("a\n.\r\n.\r\n"), 100, true, 8,
     "a~\n.$\n", SMTP_DATA_SAW_BARE_LF, 5},
    {"smuggle cr.cr", S("a\r.\rb\r\n.\r\n"), 100, true, 10, "a\r.\rb$\n",
     SMTP_DATA_SAW_BARE_CR, 7},
    {"smuggle crlf.cr", S("a\r\n.\rb\r\n.\r\n"), 100, true, 11, "a$\n\rb$\n",
     SMTP_DATA_SAW_BARE_CR, 8},
    {"bare cr before crlf", S("a\r\r\n.\r\n"), 100, true, 7, "a\r$\n",
     SMTP_DATA_SAW_BARE_CR, 4},
    {"nul byte", S("a\0b\r\n.\r\n"), 100, true, 8, "a\0b$\n", SMTP_DATA_SAW_NUL, 5},
    {"exact line_max", S("0123456789abcdef\r\n.\r\n"), 16, true, 21,
     "0123456789abcdef$\n", 0, 18},
    {"split long line", S("0123456789abcdefXY\r\n.\r\n"), 16, true, 23,
     "0123456789abcdef+\nXY$\n", SMTP_DATA_SAW_SPLIT, 20},
    {"split keeps dot of piece", S("..23456789abcdef.Y\r\n.\r\n"), 16, true, 23,
     ".23456789abcdef+\n.Y$\n", SMTP_DATA_SAW_SPLIT, 20},
    {"split then dot line is end", S("0123456789abcdefX\r\n.\r\n"), 16, true, 22,
     "0123456789abcdef+\nX$\n", SMTP_DATA_SAW_SPLIT, 19},
    {"piece ending in cr", S("0123456789abcdef\r\r\n.\r\n"), 16, true, 22,
     "0123456789abcdef+\n\r$\n", SMTP_DATA_SAW_SPLIT | SMTP_DATA_SAW_BARE_CR, 19},
    {"dot space is content", S(". \r\n.\r\n"), 100, true, 7, " $\n", 0, 4},
    {"dot alone with lf", S(".\n.\r\n"), 100, false, 0, ".~\n.$\n", SMTP_DATA_SAW_BARE_LF, 5},
};

/* Feed in[0..len) in pieces of the given sizes (the last piece takes the
 * rest); check lines, end, used and flags. */
static void dot_run(const struct dot_case *c, const size_t *cuts, size_t ncuts,
                    const char *how)
{
    struct strbuf *out = strbuf_new(64);
    struct smtp_data *d = smtp_data_new(c->line_max, render_line, out);
    size_t pos = 0, total_used = 0, used;
    enum smtp_data_status st = SMTP_DATA_MORE;

    smtp_data_begin(d, SMTP_DATA_MODE_DOT);
    for (size_t k = 0; k <= ncuts && st == SMTP_DATA_MORE; k++) {
        size_t end = k < ncuts ? cuts[k] : c->len;
        if (end < pos)
            end = pos;
        st = smtp_data_feed(d, c->in + pos, end - pos, &used);
        total_used += used;
        if (st == SMTP_DATA_MORE && used != end - pos)
            fail_msg("%s (%s): MORE used %zu of %zu", c->name, how, used, end - pos);
        pos = end;
    }
    if ((st == SMTP_DATA_END) != c->end)
        fail_msg("%s (%s): end %d", c->name, how, st == SMTP_DATA_END);
    if (c->end && total_used != c->used)
        fail_msg("%s (%s): used %zu, want %zu", c->name, how, total_used, c->used);
    if (strbuf_len(out) != strlen(c->lines) || memcmp(strbuf_str(out), c->lines,
                                                      strbuf_len(out)) != 0)
        fail_msg("%s (%s): lines [%s]", c->name, how, strbuf_str(out));
    if (smtp_data_flags(d) != c->flags)
        fail_msg("%s (%s): flags %#x want %#x", c->name, how, smtp_data_flags(d), c->flags);
    if (smtp_data_octets(d) != c->octets)
        fail_msg("%s (%s): octets %llu want %llu", c->name, how,
                 (unsigned long long)smtp_data_octets(d), (unsigned long long)c->octets);
    if (smtp_data_done(d) != c->end)
        fail_msg("%s (%s): done", c->name, how);
    smtp_data_free(&d);
    strbuf_free(&out);
}

/* The "nul byte" case has a NUL in its expected lines: compare lengths by
 * the rendered size, so give that one case its true length. */
static void test_dot_cases(void **state)
{
    for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
        struct dot_case c = dot_cases[i];
        size_t *cuts = calloc(c.len + 1, sizeof(*cuts));

        if (strcmp(c.name, "nul byte") == 0) {
            /* strlen would stop at the NUL: check this one by hand. */
            struct strbuf *out = strbuf_new(16);
            struct smtp_data *d = smtp_data_new(100, render_line, out);
            size_t used;
            assert_int_equal(smtp_data_feed(d, c.in, c.len, &used), SMTP_DATA_END);
            assert_int_equal(used, c.used);
            assert_int_equal(strbuf_len(out), 5);
            assert_memory_equal(strbuf_str(out), "a\0b$\n", 5);
            assert_int_equal(smtp_data_flags(d), SMTP_DATA_SAW_NUL);
            smtp_data_free(&d);
            strbuf_free(&out);
            free(cuts);
            continue;
        }
        dot_run(&c, NULL, 0, "whole");
        for (size_t cut = 0; cut <= c.len; cut++) {
            char how[32];
            snprintf(how, sizeof(how), "split at %zu", cut);
            cuts[0] = cut;
            dot_run(&c, cuts, 1, how);
        }
        for (size_t k = 0; k < c.len; k++)
            cuts[k] = k + 1;
        dot_run(&c, cuts, c.len, "bytewise");
        free(cuts);
    }
}

/* A smuggling attempt gives one message whose content holds the would-be
 * second transaction, and nothing after the real end is used. */
static void test_smuggle_one_message(void **state)
{
    static const char in[] = "Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\n"
                             "RCPT TO:<v@y>\r\nDATA\r\n\r\nevil\r\n.\r\nQUIT\r\n";
    struct strbuf *out = strbuf_new(64);
    struct smtp_data *d = smtp_data_new(1000, render_line, out);
    size_t used;

    assert_int_equal(smtp_data_feed(d, in, sizeof(in) - 1, &used), SMTP_DATA_END);
    assert_string_equal(strbuf_str(out), "Subject: a$\n$\nbody~\n.~\nMAIL FROM:<evil@x>$\n"
                        "RCPT TO:<v@y>$\nDATA$\n$\nevil$\n");
    assert_string_equal(in + used, "QUIT\r\n");
    assert_true(smtp_data_flags(d) & SMTP_DATA_SAW_BARE_LF);
    /* Feeding after the end uses nothing. */
    assert_int_equal(smtp_data_feed(d, "x\r\n", 3, &used), SMTP_DATA_END);
    assert_int_equal(used, 0);
    smtp_data_free(&d);
    strbuf_free(&out);
}

struct bdat_case {
    const char *name;
    const char *chunks[4];      /* NULL-terminated; the last is LAST */
    const char *lines;
    unsigned flags;
};

static const struct bdat_case bdat_cases[] = {
    {"one chunk", {"a\r\nb\r\n", NULL}, "a$\nb$\n", 0},
    {"no dot handling", {".\r\n..x\r\n", NULL}, ".$\n..x$\n", 0},
    {"line spans chunks", {"ab", "c\r", "\nd", NULL}, "abc$\nd%\n", 0},
    {"last without eol", {"abc", NULL}, "abc%\n", 0},
    {"cr at the very end", {"abc\r", NULL}, "abc\r%\n", SMTP_DATA_SAW_BARE_CR},
    {"empty last", {"a\r\n", "", NULL}, "a$\n", 0},
    {"bare lf", {"a\nb\r\n", NULL}, "a~\nb$\n", SMTP_DATA_SAW_BARE_LF},
    {"long line", {"0123456789", "abcdefXY\r\n", NULL}, "0123456789abcdef+\nXY$\n",
     SMTP_DATA_SAW_SPLIT},
};

static void bdat_run(const struct bdat_case *c, size_t step)
{
    struct strbuf *out = strbuf_new(64);
    struct smtp_data *d = smtp_data_new(16, render_line, out);
    uint64_t total = 0;
    size_t used;

    smtp_data_begin(d, SMTP_DATA_MODE_BDAT);
    for (size_t k = 0; c->chunks[k] != NULL; k++) {
        const char *ch = c->chunks[k];
        size_t len = strlen(ch), pos = 0;
        bool last = c->chunks[k + 1] == NULL;
        enum smtp_data_status st;
        static const char trailer[] = "BDAT";
        char *buf = malloc(len + sizeof(trailer));

        /* The chunk is followed by the next command: never used. */
        memcpy(buf, ch, len);
        memcpy(buf + len, trailer, sizeof(trailer));
        assert_int_equal(smtp_data_chunk(d, len, last), 0);
        assert_int_equal(smtp_data_chunk(d, 1, false), -1);     /* one at a time */
        do {
            size_t n = step == 0 ? len + sizeof(trailer) - 1 - pos : step;
            if (pos + n > len + sizeof(trailer) - 1)
                n = len + sizeof(trailer) - 1 - pos;
            st = smtp_data_feed(d, buf + pos, n, &used);
            pos += used;
        } while (st == SMTP_DATA_MORE);
        if (pos != len)
            fail_msg("%s step %zu chunk %zu: used %zu of %zu", c->name, step, k, pos, len);
        if (st != (last ? SMTP_DATA_END : SMTP_DATA_CHUNK_DONE))
            fail_msg("%s step %zu chunk %zu: status %d", c->name, step, k, st);
        total += len;
        free(buf);
    }
    if (strcmp(strbuf_str(out), c->lines) != 0)
        fail_msg("%s step %zu: lines [%s]", c->name, step, strbuf_str(out));
    if (smtp_data_flags(d) != c->flags)
        fail_msg("%s step %zu: flags %#x", c->name, step, smtp_data_flags(d));
    assert_int_equal(smtp_data_octets(d), total);
    assert_true(smtp_data_done(d));
    assert_int_equal(smtp_data_chunk(d, 1, true), -1);       /* after LAST */
    smtp_data_free(&d);
    strbuf_free(&out);
}

static void test_bdat_cases(void **state)
{
    for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++)
        for (size_t step = 0; step <= 3; step++)
            bdat_run(&bdat_cases[i], step);
}

static void test_bdat_misuse(void **state)
{
    struct strbuf *out = strbuf_new(16);
    struct smtp_data *d = smtp_data_new(0, render_line, out);      /* clamped */
    size_t used;

    /* DATA mode refuses chunks. */
    assert_int_equal(smtp_data_chunk(d, 5, false), -1);
    smtp_data_begin(d, SMTP_DATA_MODE_BDAT);
    /* No open chunk: nothing is used. */
    assert_int_equal(smtp_data_feed(d, "abc", 3, &used), SMTP_DATA_CHUNK_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(smtp_data_chunk_left(d), 0);
    /* A huge announced chunk is just a count. */
    assert_int_equal(smtp_data_chunk(d, UINT64_MAX, true), 0);
    assert_int_equal(smtp_data_feed(d, "abc", 3, &used), SMTP_DATA_MORE);
    assert_int_equal(used, 3);
    assert_int_equal(smtp_data_chunk_left(d), UINT64_MAX - 3);
    smtp_data_free(&d);
    smtp_data_free(&d);         /* NULL is fine */
    strbuf_free(&out);
}

static int stop_after_one(const char *line, size_t len, unsigned flags, void *ctx)
{
    int *calls = ctx;

    (*calls)++;
    return 1;
}

static void test_stop(void **state)
{
    int calls = 0;
    struct smtp_data *d = smtp_data_new(100, stop_after_one, &calls);
    size_t used;

    assert_int_equal(smtp_data_feed(d, S("a\r\nb\r\nc\r\n.\r\nX"), &used), SMTP_DATA_END);
    assert_int_equal(used, 12);
    assert_int_equal(calls, 1);
    assert_true(smtp_data_flags(d) & SMTP_DATA_STOPPED);
    /* A new message starts clean. */
    smtp_data_begin(d, SMTP_DATA_MODE_DOT);
    assert_int_equal(smtp_data_flags(d), 0);
    assert_false(smtp_data_done(d));
    smtp_data_free(&d);
}

/* Over-long input: megabytes without a line end stay within one piece
 * buffer and come out as pieces. */
static int count_pieces(const char *line, size_t len, unsigned flags, void *ctx)
{
    size_t *n = ctx;

    if (len > 1000)
        fail_msg("piece of %zu bytes", len);
    (*n)++;
    return 0;
}

static void test_overlong(void **state)
{
    size_t pieces = 0, used;
    struct smtp_data *d = smtp_data_new(1000, count_pieces, &pieces);
    char *big = malloc(1 << 20);

    memset(big, 'x', 1 << 20);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(smtp_data_feed(d, big, 1 << 20, &used), SMTP_DATA_MORE);
        assert_int_equal(used, 1 << 20);
    }
    assert_int_equal(smtp_data_feed(d, S("\r\n.\r\n"), &used), SMTP_DATA_END);
    assert_int_equal(pieces, (4u << 20) / 1000 + 1);
    assert_true(smtp_data_flags(d) & SMTP_DATA_SAW_SPLIT);
    smtp_data_free(&d);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_cases),
        cmocka_unit_test(test_smuggle_one_message),
        cmocka_unit_test(test_bdat_cases),
        cmocka_unit_test(test_bdat_misuse),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_overlong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
