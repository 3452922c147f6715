/*
 * test_header.c - the RFC 5322 header parser (folding, end of header,
 * limits, every split point of a message), the address-list reader of
 * sendmail -t, and Message-ID extraction: tables of good, malformed and
 * over-long input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "header.h"
#include "strbuf.h"

/* Collects "name|raw" of every header, joined by "~". */
static int collect(const struct header *h, void *ctx)
{
    struct strbuf *out = ctx;

    if (strbuf_len(out) > 0)
        strbuf_append(out, "~");
    strbuf_appendn(out, h->name, h->name_len);
    strbuf_append(out, "|");
    strbuf_appendn(out, h->raw, h->raw_len);
    return 0;
}

struct parse_case {
    const char *name;
    const char *lines;          /* lines separated by '\n' */
    size_t size_max, count_max;
    int result;                 /* result of the line that ended it / finish */
    const char *headers;        /* collected */
    int end_line;               /* index of the line that got HEADER_END, -1 none */
};

static const struct parse_case parse_cases[] = {
    {"simple", "Subject: hi\nFrom: a@b\n\nbody", 1000, 100, HEADER_END,
     "Subject|Subject: hi~From|From: a@b", 2},
    {"folded", "Subject: one\n two\n\tthree\nTo: x\n", 1000, 100, HEADER_END,
     "Subject|Subject: one\n two\n\tthree~To|To: x", -1},
    {"space before colon", "Subject : x\n\n", 1000, 100, HEADER_END, "Subject|Subject : x", 1},
    {"no empty line, body text", "Subject: x\nthis is body\n", 1000, 100, HEADER_END,
     "Subject|Subject: x", 1},
    {"continuation first", " folded\nSubject: x\n", 1000, 100, HEADER_END, "", 0},
    {"empty message", "", 1000, 100, HEADER_END, "", -1},
    {"only headers (finish)", "A: 1\nB: 2", 1000, 100, HEADER_END, "A|A: 1~B|B: 2", -1},
    {"bad name char", "Sub ject: x\n", 1000, 100, HEADER_END, "", 0},
    {"colon first", ": x\n", 1000, 100, HEADER_END, "", 0},
    {"nul in value", "A: x\0y\n", 1000, 100, HEADER_END, "A|A: x", -1},
    {"too long one line", "Subject: 0123456789\n", 10, 100, HEADER_TOOLONG, "", 0},
    {"too long folded", "Subject: 0\n 123456789\n", 12, 100, HEADER_TOOLONG, "", 1},
    {"exactly at limit", "Subject: 0\n 1\n", 14, 100, HEADER_END, "Subject|Subject: 0\n 1", -1},
    {"too many", "A: 1\nB: 2\nC: 3\n", 100, 2, HEADER_TOOMANY, "A|A: 1~B|B: 2", 2},
    {"long name", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                  "AAAAAAAAAAAAA: x\n", 10000, 100, HEADER_END, "", 0},
    {"8bit value", "Subject: caf\xc3\xa9\n\n", 1000, 100, HEADER_END, "Subject|Subject: caf\xc3\xa9", 1},
};

/* Split s (n bytes) at '\n' into lines and feed them; the embedded NUL in
 * a case is kept because lengths are used. */
static void run_parse(const struct parse_case *c, size_t n)
{
    struct header_parser *p = header_parser_new(c->size_max, c->count_max);
    struct strbuf *got = strbuf_new(64);
    const char *s = c->lines, *end = s + n;
    int rc = HEADER_IN, idx = 0, end_idx = -1;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

        rc = header_parser_line(p, s, len, collect, got);
        if (rc != HEADER_IN) {
            end_idx = idx;
            break;
        }
        idx++;
        s += len + (nl ? 1 : 0);
    }
    if (rc == HEADER_IN)
        rc = header_parser_finish(p, collect, got);
    if (rc != c->result || strcmp(strbuf_str(got), c->headers) != 0 || end_idx != c->end_line)
        fail_msg("%s: rc %d (want %d) headers \"%s\" (want \"%s\") end %d (want %d)", c->name,
                 rc, c->result, strbuf_str(got), c->headers, end_idx, c->end_line);
    /* Sticky: another line gives the same answer without a callback. */
    assert_int_equal(header_parser_line(p, "X: y", 4, collect, got), rc);
    header_parser_free(&p);
    assert_null(p);
    strbuf_free(&got);
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        size_t n = strlen(parse_cases[i].lines);

        if (strcmp(parse_cases[i].name, "nul in value") == 0)
            n = 7;
        run_parse(&parse_cases[i], n);
    }
}

/* Every way of cutting a message into lines at its LFs gives the same
 * headers as reading it whole: fold at every position. */
static void test_fold_every_point(void **state)
{
    const char *value = "abcdefghijklmnopqrstuvwxyz";
    (void)state;

    for (size_t cut = 1; cut < strlen(value); cut++) {
        struct header_parser *p = header_parser_new(1000, 10);
        struct strbuf *got = strbuf_new(64), *line = strbuf_new(64), *unf = strbuf_new(64);

        strbuf_printf(line, "Subject: %.*s", (int)cut, value);
        assert_int_equal(header_parser_line(p, strbuf_str(line), strbuf_len(line), collect, got),
                         HEADER_IN);
        strbuf_printf(line, " %s", value + cut);
        assert_int_equal(header_parser_line(p, strbuf_str(line), strbuf_len(line), collect, got),
                         HEADER_IN);
        assert_int_equal(header_parser_line(p, "", 0, collect, got), HEADER_END);
        assert_int_equal(header_parser_count(p), 1);
        /* Unfolding removes only the line break. */
        const char *raw = strchr(strbuf_str(got), '|') + 1 + strlen("Subject:");
        header_value_unfold(raw, strlen(raw), unf);
        strbuf_printf(line, "%.*s %s", (int)cut, value, value + cut);
        assert_string_equal(strbuf_str(unf), strbuf_str(line));
        header_parser_free(&p);
        strbuf_free(&got);
        strbuf_free(&line);
        strbuf_free(&unf);
    }
}

static int stop_at_second(const struct header *h, void *ctx)
{
    int *n = ctx;

    (void)h;
    return ++*n == 2;
}

static void test_callback_stops(void **state)
{
    struct header_parser *p = header_parser_new(100, 10);
    int n = 0;
    (void)state;

    assert_int_equal(header_parser_line(p, "A: 1", 4, stop_at_second, &n), HEADER_IN);
    assert_int_equal(header_parser_line(p, "B: 2", 4, stop_at_second, &n), HEADER_IN);
    assert_int_equal(header_parser_line(p, "C: 3", 4, stop_at_second, &n), HEADER_STOPPED);
    assert_int_equal(header_parser_finish(p, stop_at_second, &n), HEADER_STOPPED);
    assert_int_equal(n, 2);
    header_parser_free(&p);
    header_parser_free(&p);
    header_parser_free(NULL);
}

static void test_names(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"Subject", true}, {"X-Spam-Flag", true}, {"a", true}, {"", false},
        {"Sub ject", false}, {"Sub:ject", false}, {"Sub\x7fject", false}, {"caf\xc3\xa9", false},
    };
    struct header h = {.name = "Message-ID", .name_len = 10};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (header_name_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("header_name_valid(\"%s\")", cases[i].s);
    assert_true(header_name_is(&h, "message-id"));
    assert_false(header_name_is(&h, "message-i"));
    assert_false(header_name_is(&h, "message-idx"));
}

static int collect_addr(const char *addr, void *ctx)
{
    struct strbuf *out = ctx;

    if (strbuf_len(out) > 0)
        strbuf_append(out, ",");
    strbuf_append(out, addr);
    return 0;
}

static void test_addr_list(void **state)
{
    static const struct {
        const char *in;
        size_t max;
        int count;
        const char *out;
    } cases[] = {
        {"a@b", 0, 1, "a@b"},
        {"a@b, c@d", 0, 2, "a@b,c@d"},
        {"Joe Q. Public <john.q.public@example.com>", 0, 1, "john.q.public@example.com"},
        {"\"Doe, John\" <jd@x.org>, other@y.org", 0, 2, "jd@x.org,other@y.org"},
        {"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 0, 1,
         "pete@silly.test"},
        {"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", 0, 3,
         "c@a.test,joe@where.test,jdoe@one.test"},
        {"Undisclosed recipients:;", 0, 0, ""},
        {"<@route1,@route2:user@final.test>", 0, 1, "user@final.test"},
        {"\"john doe\"@example.com", 0, 1, "\"john doe\"@example.com"},
        {"root", 0, 1, "root"},
        {"  a@b ,\n\t c@d  ", 0, 2, "a@b,c@d"},
        {"<>, a@b", 0, 1, "a@b"},
        {",,, a@b,,", 0, 1, "a@b"},
        {"a@b, c@d, e@f", 2, -1, NULL},
        {"Name <a@b", 0, -1, NULL},
        {"(unclosed comment a@b", 0, -1, NULL},
        {"\"unclosed quote a@b", 0, -1, NULL},
        {"", 0, 0, ""},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf *got = strbuf_new(64);
        int n = header_addr_list(cases[i].in, strlen(cases[i].in), cases[i].max, collect_addr,
                                 got);

        if (n != cases[i].count || (cases[i].out && strcmp(strbuf_str(got), cases[i].out) != 0))
            fail_msg("addr_list(\"%s\") = %d \"%s\"", cases[i].in, n, strbuf_str(got));
        strbuf_free(&got);
    }
}

static void test_addr_too_long(void **state)
{
    struct strbuf *in = strbuf_new(HEADER_ADDR_MAX + 16), *got = strbuf_new(64);
    (void)state;

    for (size_t i = 0; i < HEADER_ADDR_MAX; i++)
        strbuf_appendc(in, 'a');
    strbuf_append(in, "@b");
    assert_int_equal(header_addr_list(strbuf_str(in), strbuf_len(in), 0, collect_addr, got), -1);
    strbuf_printf(in, "<");
    for (size_t i = 0; i < HEADER_ADDR_MAX; i++)
        strbuf_appendc(in, 'a');
    strbuf_append(in, "@b>");
    assert_int_equal(header_addr_list(strbuf_str(in), strbuf_len(in), 0, collect_addr, got), -1);
    /* Exactly at the bound is fine. */
    strbuf_reset(in);
    for (size_t i = 0; i < HEADER_ADDR_MAX - 2; i++)
        strbuf_appendc(in, 'a');
    strbuf_append(in, "@b");
    assert_int_equal(header_addr_list(strbuf_str(in), strbuf_len(in), 0, collect_addr, got), 1);
    strbuf_free(&in);
    strbuf_free(&got);
}

/* Collects "addr@end" for header_addr_list_pos. */
static int collect_pos(const char *addr, size_t end, void *ctx)
{
    struct strbuf *out = ctx;

    strbuf_appendf(out, "%s%s@%zu", strbuf_len(out) ? "," : "", addr, end);
    return 0;
}

static void test_addr_positions(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"root", "root@4"},
        {"root (Root User), bob", "root@4,bob@21"},
        {"Bob <bob>", "bob@8"},
        {"\"Doe, J\" <jd> (x)", "jd@12"},
        {"grp: a, b;", "a@6,b@9"},
        {"\"john doe\"", "\"john doe\"@10"},
        {"  spaced  ,x", "spaced@8,x@12"},
        {"a@b.c", "a@b.c@5"},
    };
    struct strbuf *got = strbuf_new(64);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(got);
        header_addr_list_pos(cases[i].in, strlen(cases[i].in), 0, collect_pos, got);
        if (strcmp(strbuf_str(got), cases[i].out) != 0)
            fail_msg("positions(\"%s\") = \"%s\" (want \"%s\")", cases[i].in, strbuf_str(got),
                     cases[i].out);
    }
    strbuf_free(&got);
}

static void test_msgid(void **state)
{
    static const struct {
        const char *in;
        int rc;
        const char *out;
    } cases[] = {
        {" <abc@example.org>", 0, "abc@example.org"},
        {"<a@b> <c@d>", 0, "a@b"},
        {"(comment) <x.y@z>", 0, "x.y@z"},
        {"no brackets", -1, ""},
        {"<>", -1, ""},
        {"<unclosed", -1, ""},
        {"<bad\x01id>", -1, ""},
    };
    struct strbuf *out = strbuf_new(32);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = header_msgid(cases[i].in, strlen(cases[i].in), out);

        if (rc != cases[i].rc || strcmp(strbuf_str(out), cases[i].out) != 0)
            fail_msg("msgid(\"%s\") = %d \"%s\"", cases[i].in, rc, strbuf_str(out));
    }
    strbuf_free(&out);
}

static void test_unfold(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" hello", "hello"}, {" a\n b", "a b"}, {"\t a\n\tb  ", "a\tb"}, {"", ""}, {" \n ", ""},
    };
    struct strbuf *out = strbuf_new(16);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        header_value_unfold(cases[i].in, strlen(cases[i].in), out);
        assert_string_equal(strbuf_str(out), cases[i].out);
    }
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_fold_every_point),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_addr_list),
        cmocka_unit_test(test_addr_too_long),
        cmocka_unit_test(test_addr_positions),
        cmocka_unit_test(test_msgid),
        cmocka_unit_test(test_unfold),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
