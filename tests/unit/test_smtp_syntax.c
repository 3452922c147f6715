/*
 * test_smtp_syntax.c - RFC 5321 syntax: line framing (CRLF, bare LF/CR,
 * NUL, over-long, every split point), command verbs and argument rules,
 * MAIL/RCPT paths (quoted local parts, address literals, source routes,
 * <>, <Postmaster>, the four address tricks, 8-bit with and without
 * SMTPUTF8), every ESMTP parameter, xtext, replies (multi-line, enhanced
 * codes, malformed) and the reply table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_syntax.h"
#include "strbuf.h"

#define S(lit) lit, sizeof(lit) - 1

/* ------------------------------------------------------------------ */

struct line_case {
    const char *in;
    size_t len;
    enum smtp_line_status st;
    size_t content;
};

static const struct line_case line_cases[] = {
    {S("QUIT\r\n"), SMTP_LINE_CRLF, 4},
    {S("\r\n"), SMTP_LINE_CRLF, 0},
    {S("QUIT\n"), SMTP_LINE_BARE_LF, 4},
    {S("\n"), SMTP_LINE_BARE_LF, 0},
    {S("QU\rIT\r\n"), SMTP_LINE_BARE_CR, 5},
    {S("QUIT\r\r\n"), SMTP_LINE_BARE_CR, 5},
    {S("QUIT\r"), SMTP_LINE_BARE_CR, 5},
    {S("QU\0IT\r\n"), SMTP_LINE_NUL, 5},
    {S("\0\n"), SMTP_LINE_NUL, 1},
    {S("QUIT"), SMTP_LINE_NO_EOL, 4},
    {S(""), SMTP_LINE_NO_EOL, 0},
};

static void test_line_check(void **state)
{
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];
        size_t content = 99;
        enum smtp_line_status st = smtp_line_check(c->in, c->len, &content);
        if (st != c->st || content != c->content)
            fail_msg("case %zu: status %d content %zu", i, st, content);
    }
}

struct find_case {
    const char *in;
    size_t len, max;
    enum smtp_find_status st;
    size_t line_len;
};

static const struct find_case find_cases[] = {
    {S("NOOP\r\nQUIT\r\n"), 512, SMTP_FIND_LINE, 6},
    {S("NOOP\r"), 512, SMTP_FIND_NEED_MORE, 0},
    {S(""), 512, SMTP_FIND_NEED_MORE, 0},
    {S("NOOP"), 4, SMTP_FIND_TOOLONG, 0},
    {S("NOO\n"), 4, SMTP_FIND_LINE, 4},
    {S("NOOP\n"), 4, SMTP_FIND_TOOLONG, 0},        /* LF past max */
    {S("\n"), 1, SMTP_FIND_LINE, 1},
};

static void test_line_find(void **state)
{
    for (size_t i = 0; i < sizeof(find_cases) / sizeof(find_cases[0]); i++) {
        const struct find_case *c = &find_cases[i];
        size_t n = 99;
        enum smtp_find_status st = smtp_line_find(c->in, c->len, c->max, &n);
        if (st != c->st || n != c->line_len)
            fail_msg("case %zu: status %d len %zu", i, st, n);
    }
}

/* A pipelined buffer fed at every split point yields the same lines. */
static void test_line_find_splits(void **state)
{
    static const char input[] = "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";
    static const char *const want[] = {"EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"};
    size_t total = sizeof(input) - 1;

    for (size_t split = 0; split <= total; split++) {
        size_t avail = split, pos = 0, got = 0;
        for (int rounds = 0; rounds < 20 && got < 4; rounds++) {
            size_t n, content;
            enum smtp_find_status st = smtp_line_find(input + pos, avail - pos, 512, &n);
            if (st == SMTP_FIND_NEED_MORE) {
                assert_true(avail < total);
                avail = total;
                continue;
            }
            assert_int_equal(st, SMTP_FIND_LINE);
            assert_int_equal(smtp_line_check(input + pos, n, &content), SMTP_LINE_CRLF);
            assert_int_equal(content, strlen(want[got]));
            assert_memory_equal(input + pos, want[got], content);
            pos += n;
            got++;
        }
        assert_int_equal(got, 4);
        assert_int_equal(pos, total);
    }
}

/* ------------------------------------------------------------------ */

struct cmd_case {
    const char *line;
    size_t len;
    enum smtp_reply_id want;
    enum smtp_verb verb;
    const char *args;
};

static const struct cmd_case cmd_cases[] = {
    {S("HELO example.org"), SMTP_R_NONE, SMTP_VERB_HELO, "example.org"},
    {S("ehlo example.org"), SMTP_R_NONE, SMTP_VERB_EHLO, "example.org"},
    {S("LHLO lmtp.example"), SMTP_R_NONE, SMTP_VERB_LHLO, "lmtp.example"},
    {S("MAIL FROM:<a@b.c>"), SMTP_R_NONE, SMTP_VERB_MAIL, "FROM:<a@b.c>"},
    {S("RCPT TO:<a@b.c>  "), SMTP_R_NONE, SMTP_VERB_RCPT, "TO:<a@b.c>"},
    {S("DATA"), SMTP_R_NONE, SMTP_VERB_DATA, ""},
    {S("DATA "), SMTP_R_NONE, SMTP_VERB_DATA, ""},
    {S("BDAT 100 LAST"), SMTP_R_NONE, SMTP_VERB_BDAT, "100 LAST"},
    {S("RSET"), SMTP_R_NONE, SMTP_VERB_RSET, ""},
    {S("NOOP"), SMTP_R_NONE, SMTP_VERB_NOOP, ""},
    {S("NOOP anything at all"), SMTP_R_NONE, SMTP_VERB_NOOP, "anything at all"},
    {S("QUIT"), SMTP_R_NONE, SMTP_VERB_QUIT, ""},
    {S("VRFY postmaster"), SMTP_R_NONE, SMTP_VERB_VRFY, "postmaster"},
    {S("EXPN list"), SMTP_R_NONE, SMTP_VERB_EXPN, "list"},
    {S("HELP"), SMTP_R_NONE, SMTP_VERB_HELP, ""},
    {S("HELP MAIL"), SMTP_R_NONE, SMTP_VERB_HELP, "MAIL"},
    {S("StartTLS"), SMTP_R_NONE, SMTP_VERB_STARTTLS, ""},
    {S("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q="), SMTP_R_NONE, SMTP_VERB_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q="},
    {S("XCLIENT ADDR=192.0.2.1"), SMTP_R_NONE, SMTP_VERB_XCLIENT, "ADDR=192.0.2.1"},
    {S("XFORWARD NAME=x"), SMTP_R_NONE, SMTP_VERB_XFORWARD, "NAME=x"},
    {S("ETRN example.org"), SMTP_R_NONE, SMTP_VERB_ETRN, "example.org"},
    {S("HELO\texample.org"), SMTP_R_NONE, SMTP_VERB_HELO, "example.org"},
    {S(""), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S(" HELO x"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("FOO bar"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("MAILX FROM:<>"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("MAIL:FROM:<>"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("HEL"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("H\xc3\xa9LO x"), SMTP_R_BAD_CMD, SMTP_VERB_UNKNOWN, ""},
    {S("HELO"), SMTP_R_SYNTAX_ARGS, SMTP_VERB_HELO, ""},
    {S("HELO   "), SMTP_R_SYNTAX_ARGS, SMTP_VERB_HELO, ""},
    {S("MAIL"), SMTP_R_SYNTAX_ARGS, SMTP_VERB_MAIL, ""},
    {S("DATA now"), SMTP_R_SYNTAX_ARGS, SMTP_VERB_DATA, "now"},
    {S("QUIT please"), SMTP_R_SYNTAX_ARGS, SMTP_VERB_QUIT, "please"},
    {S("STARTTLS x"), SMTP_R_SYNTAX_ARGS, SMTP_VERB_STARTTLS, "x"},
    {S("HELO a\0b"), SMTP_R_NUL_BYTE, SMTP_VERB_UNKNOWN, ""},
};

static void test_cmd_parse(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *c = &cmd_cases[i];
        struct smtp_cmd cmd;
        char *copy = malloc(c->len + 1);
        memcpy(copy, c->line, c->len);
        copy[c->len] = 0;
        strbuf_reset(why);
        enum smtp_reply_id r = smtp_cmd_parse(copy, c->len, &cmd, why);
        if (r != c->want || cmd.verb != c->verb)
            fail_msg("case %zu (%s): reply %d verb %d", i, c->line, r, cmd.verb);
        if (r != SMTP_R_NONE)
            assert_true(strbuf_len(why) > 0);
        if (r == SMTP_R_NONE || r == SMTP_R_SYNTAX_ARGS) {
            assert_int_equal(cmd.args_len, strlen(c->args));
            assert_memory_equal(cmd.args, c->args, cmd.args_len);
            assert_string_equal(cmd.name, smtp_verb_name(cmd.verb));
        }
        free(copy);
    }
    assert_null(smtp_verb_name(SMTP_VERB_UNKNOWN));
    assert_null(smtp_verb_name(SMTP_VERB_COUNT));
    for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
        const char *n = smtp_verb_name((enum smtp_verb)v);
        assert_int_equal(smtp_verb_lookup(n, strlen(n)), v);
    }
    strbuf_free(&why);
}

struct bdat_case {
    const char *args;
    enum smtp_reply_id want;
    uint64_t size;
    bool last;
};

static const struct bdat_case bdat_cases[] = {
    {"0", SMTP_R_NONE, 0, false},
    {"1000", SMTP_R_NONE, 1000, false},
    {"1000 LAST", SMTP_R_NONE, 1000, true},
    {"0 last", SMTP_R_NONE, 0, true},
    {"18446744073709551615 LAST", SMTP_R_NONE, UINT64_MAX, true},
    {"18446744073709551616", SMTP_R_SYNTAX_ARGS, 0, false},
    {"000000000000000000001", SMTP_R_SYNTAX_ARGS, 0, false},
    {"", SMTP_R_SYNTAX_ARGS, 0, false},
    {"LAST", SMTP_R_SYNTAX_ARGS, 0, false},
    {"-1", SMTP_R_SYNTAX_ARGS, 0, false},
    {"10 LAS", SMTP_R_SYNTAX_ARGS, 0, false},
    {"10 LASTX", SMTP_R_SYNTAX_ARGS, 0, false},
    {"10  LAST", SMTP_R_SYNTAX_ARGS, 0, false},
    {"10x", SMTP_R_SYNTAX_ARGS, 0, false},
    {"10 MORE", SMTP_R_SYNTAX_ARGS, 0, false},
};

static void test_bdat_helo(void **state)
{
    struct strbuf *why = strbuf_new(32);

    for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        const struct bdat_case *c = &bdat_cases[i];
        uint64_t size = 7;
        bool last = true;
        enum smtp_reply_id r = smtp_parse_bdat(c->args, strlen(c->args), &size, &last, why);
        if (r != c->want)
            fail_msg("case %zu (%s): reply %d", i, c->args, r);
        if (r == SMTP_R_NONE) {
            assert_true(size == c->size);
            assert_int_equal(last, c->last);
        }
    }
    assert_true(smtp_helo_valid(S("mail.example.org"), false));
    assert_true(smtp_helo_valid(S("[192.0.2.1]"), false));
    assert_true(smtp_helo_valid(S("[IPv6:::1]"), false));
    assert_true(smtp_helo_valid(S("b\xc3\xbc" "cher.example"), true));
    assert_false(smtp_helo_valid(S("b\xc3\xbc" "cher.example"), false));
    assert_false(smtp_helo_valid(S("192.0.2.1]"), false));
    assert_false(smtp_helo_valid(S("[localhost]"), false));
    assert_false(smtp_helo_valid(S("host name"), false));
    assert_false(smtp_helo_valid(S(""), false));
    strbuf_free(&why);
}

static void test_http(void **state)
{
    assert_true(smtp_line_is_http(S("GET / HTTP/1.1")));
    assert_true(smtp_line_is_http(S("POST /x HTTP/1.0")));
    assert_true(smtp_line_is_http(S("CONNECT a:25 HTTP/1.1")));
    assert_false(smtp_line_is_http(S("GET")));
    assert_false(smtp_line_is_http(S("EHLO GET")));
    assert_false(smtp_line_is_http(S("get / HTTP/1.1")));
}

/* ------------------------------------------------------------------ */

#define ALL SMTP_OPT_ALL_EXT
#define STRICT (SMTP_OPT_ALL_EXT | SMTP_OPT_STRICT)

struct path_case {
    bool rcpt;
    const char *args;
    int opts;
    enum smtp_reply_id want;
    const char *addr, *local, *domain;      /* checked when want == NONE */
    unsigned flags;
};

static const struct path_case path_cases[] = {
    /* plain forms */
    {false, "FROM:<user@example.org>", ALL, SMTP_R_NONE, "user@example.org", "user", "example.org", 0},
    {false, "from:<user@example.org>", STRICT, SMTP_R_NONE, "user@example.org", "user", "example.org", 0},
    {false, "FROM:<>", STRICT, SMTP_R_NONE, "", "", "", SMTP_ADDR_NULL},
    {true, "TO:<first.last@sub.example.org>", STRICT, SMTP_R_NONE, "first.last@sub.example.org", "first.last", "sub.example.org", 0},
    {true, "TO:<Postmaster>", STRICT, SMTP_R_NONE, "Postmaster", "Postmaster", "", SMTP_ADDR_POSTMASTER},
    {true, "TO:<postMASTER>", STRICT, SMTP_R_NONE, "Postmaster", "postMASTER", "", SMTP_ADDR_POSTMASTER},
    {true, "TO:<postmaster@example.org>", STRICT, SMTP_R_NONE, "postmaster@example.org", "postmaster", "example.org", 0},
    {false, "FROM:<Postmaster>", ALL, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<a+tag=x/y{z}@example.org>", STRICT, SMTP_R_NONE, "a+tag=x/y{z}@example.org", "a+tag=x/y{z}", "example.org", 0},
    {true, "TO:<u@localhost>", STRICT, SMTP_R_NONE, "u@localhost", "u", "localhost", 0},
    {true, "TO:<u@x-y.example>", STRICT, SMTP_R_NONE, "u@x-y.example", "u", "x-y.example", 0},
    /* quoted local parts */
    {true, "TO:<\"john doe\"@example.org>", STRICT, SMTP_R_NONE, "\"john doe\"@example.org", "john doe", "example.org", SMTP_ADDR_QUOTED},
    {true, "TO:<\"a\\\"b\\\\c\"@example.org>", STRICT, SMTP_R_NONE, "\"a\\\"b\\\\c\"@example.org", "a\"b\\c", "example.org", SMTP_ADDR_QUOTED},
    {true, "TO:<\"plain\"@example.org>", STRICT, SMTP_R_NONE, "plain@example.org", "plain", "example.org", SMTP_ADDR_QUOTED},
    {true, "TO:<\"a>b\"@example.org>", STRICT, SMTP_R_NONE, "\"a>b\"@example.org", "a>b", "example.org", SMTP_ADDR_QUOTED},
    {true, "TO:<\"unterminated@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<\"ctl\x01\"@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<\"x\"y@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    /* address literals */
    {true, "TO:<u@[192.0.2.1]>", STRICT, SMTP_R_NONE, "u@[192.0.2.1]", "u", "[192.0.2.1]", SMTP_ADDR_LITERAL},
    {true, "TO:<u@[IPv6:2001:db8::1]>", STRICT, SMTP_R_NONE, "u@[IPv6:2001:db8::1]", "u", "[IPv6:2001:db8::1]", SMTP_ADDR_LITERAL | SMTP_ADDR_LITERAL6},
    {true, "TO:<u@[192.0.2.256]>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<u@[2001:db8::1]>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<u@[IPv6:192.0.2.1]>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<u@[x-tag:abc]>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<u@[]>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    /* source routes: accepted and stripped */
    {true, "TO:<@relay.example:user@example.org>", STRICT, SMTP_R_NONE, "user@example.org", "user", "example.org", SMTP_ADDR_ROUTE},
    {true, "TO:<@a.example,@b.example:user@example.org>", STRICT, SMTP_R_NONE, "user@example.org", "user", "example.org", SMTP_ADDR_ROUTE},
    {true, "TO:<@a.example,b.example:user@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<@:user@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<@a.example>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    /* the four address tricks of issue 4, plus the bang path */
    {true, "TO:<user%other.example@local.example>", STRICT, SMTP_R_NONE, "user%other.example@local.example", "user%other.example", "local.example", SMTP_ADDR_PERCENT},
    {true, "TO:<\"user@other.example\"@local.example>", STRICT, SMTP_R_NONE, "\"user@other.example\"@local.example", "user@other.example", "local.example", SMTP_ADDR_QUOTED | SMTP_ADDR_LOCAL_AT},
    {true, "TO:<@local.example:user@other.example>", STRICT, SMTP_R_NONE, "user@other.example", "user", "other.example", SMTP_ADDR_ROUTE},
    {true, "TO:<user@other.example@local.example>", ALL, SMTP_R_NONE, "\"user@other.example\"@local.example", "user@other.example", "local.example", SMTP_ADDR_LOCAL_AT | SMTP_ADDR_LENIENT},
    {true, "TO:<user@other.example@local.example>", STRICT, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<other!user@local.example>", STRICT, SMTP_R_NONE, "other!user@local.example", "other!user", "local.example", SMTP_ADDR_BANG},
    {true, "TO:<\"a%b!c\"@local.example>", STRICT, SMTP_R_NONE, "a%b!c@local.example", "a%b!c", "local.example", SMTP_ADDR_QUOTED | SMTP_ADDR_PERCENT | SMTP_ADDR_BANG},
    /* lenient forms and their strict refusals */
    {false, "FROM: <user@example.org>", ALL, SMTP_R_NONE, "user@example.org", "user", "example.org", SMTP_ADDR_LENIENT},
    {false, "FROM: <user@example.org>", STRICT, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {false, "FROM:user@example.org", ALL, SMTP_R_NONE, "user@example.org", "user", "example.org", SMTP_ADDR_LENIENT},
    {false, "FROM:user@example.org", STRICT, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>", ALL, SMTP_R_NONE, NULL, NULL, "example.org", 0},
    {true, "TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>", STRICT, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    /* malformed paths */
    {false, "FROM:", ALL, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {false, "FROM", ALL, SMTP_R_SYNTAX_ARGS, NULL, NULL, NULL, 0},
    {false, "TO:<a@b.c>", ALL, SMTP_R_SYNTAX_ARGS, NULL, NULL, NULL, 0},
    {true, "FROM:<a@b.c>", ALL, SMTP_R_SYNTAX_ARGS, NULL, NULL, NULL, 0},
    {false, "FROM:<user@example.org", ALL, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {false, "FROM:<user@example.org>x", ALL, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {false, "FROM:<<user@example.org>>", ALL, SMTP_R_BAD_SENDER_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<.user@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user.@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<us..er@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<us er@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<us(er@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@example.org.>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@.example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@exa..mple.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@-example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@example-.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@exa_mple.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<user@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    /* 8-bit: only with SMTPUTF8 (MAIL parameter / transaction flag) */
    {false, "FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", ALL, SMTP_R_NONE, "j\xc3\xb6rg@example.org", "j\xc3\xb6rg", "example.org", SMTP_ADDR_8BIT},
    {false, "FROM:<j\xc3\xb6rg@example.org>", ALL, SMTP_R_NEED_SMTPUTF8, NULL, NULL, NULL, 0},
    {false, "FROM:<u@b\xc3\xbc" "cher.example> SMTPUTF8", ALL, SMTP_R_NONE, "u@b\xc3\xbc" "cher.example", "u", "b\xc3\xbc" "cher.example", SMTP_ADDR_8BIT},
    {false, "FROM:<u@b\xc3\xbc" "cher.example>", ALL, SMTP_R_NEED_SMTPUTF8, NULL, NULL, NULL, 0},
    {true, "TO:<j\xc3\xb6rg@example.org>", ALL, SMTP_R_NONE, "j\xc3\xb6rg@example.org", "j\xc3\xb6rg", "example.org", SMTP_ADDR_8BIT},
    {true, "TO:<j\xc3\xb6rg@example.org>", ALL & ~SMTP_OPT_SMTPUTF8, SMTP_R_NEED_SMTPUTF8, NULL, NULL, NULL, 0},
    {true, "TO:<\"j\xc3\xb6 rg\"@example.org>", ALL, SMTP_R_NONE, "\"j\xc3\xb6 rg\"@example.org", "j\xc3\xb6 rg", "example.org", SMTP_ADDR_8BIT | SMTP_ADDR_QUOTED},
    {true, "TO:<j\xb6rg@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<j\xc0\xafrg@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<j\xed\xa0\x80rg@example.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {true, "TO:<u@ex\xffmple.org>", ALL, SMTP_R_BAD_RCPT_SYNTAX, NULL, NULL, NULL, 0},
    {false, "FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", ALL & ~SMTP_OPT_SMTPUTF8, SMTP_R_UNKNOWN_PARAM, NULL, NULL, NULL, 0},
};

static void test_paths(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct smtp_addr addr;
    struct smtp_params params;

    smtp_addr_init(&addr);
    smtp_params_init(&params);
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        enum smtp_reply_id r;
        strbuf_reset(why);
        r = (c->rcpt ? smtp_parse_rcpt : smtp_parse_mail)(c->args, strlen(c->args), c->opts,
                                                          &addr, &params, why);
        if (r != c->want)
            fail_msg("case %zu (%s): reply %d, want %d (%s)", i, c->args, r, c->want, strbuf_str(why));
        if (r != SMTP_R_NONE) {
            assert_true(strbuf_len(why) > 0);
            continue;
        }
        if (c->addr != NULL)
            assert_string_equal(strbuf_str(addr.addr), c->addr);
        if (c->local != NULL)
            assert_string_equal(strbuf_str(addr.local), c->local);
        assert_string_equal(strbuf_str(addr.domain), c->domain);
        if (addr.flags != c->flags)
            fail_msg("case %zu (%s): flags %#x want %#x", i, c->args, addr.flags, c->flags);
    }
    smtp_addr_free(&addr);
    smtp_params_free(&params);
    strbuf_free(&why);
}

/* ------------------------------------------------------------------ */

struct param_case {
    bool rcpt;
    const char *args;
    int opts;
    enum smtp_reply_id want;
    unsigned seen;
    uint64_t size;
    enum smtp_body body;
    enum smtp_ret ret;
    const char *envid, *auth;
    unsigned notify;
    const char *orcpt_type, *orcpt;
};

#define M(args, opts, want, seen) false, args, opts, want, seen
#define R(args, opts, want, seen) true, args, opts, want, seen

static const struct param_case param_cases[] = {
    {M("FROM:<a@b.c> SIZE=12345", ALL, SMTP_R_NONE, SMTP_PARAM_SIZE), 12345, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> size=0", ALL, SMTP_R_NONE, SMTP_PARAM_SIZE), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=18446744073709551615", ALL, SMTP_R_NONE, SMTP_PARAM_SIZE), UINT64_MAX, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=18446744073709551616", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=12a", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=1 SIZE=2", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SIZE=1", ALL & ~SMTP_OPT_SIZE, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=8BITMIME", ALL, SMTP_R_NONE, SMTP_PARAM_BODY), 0, SMTP_BODY_8BITMIME, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=7bit", ALL, SMTP_R_NONE, SMTP_PARAM_BODY), 0, SMTP_BODY_7BIT, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=BINARYMIME", ALL, SMTP_R_NONE, SMTP_PARAM_BODY), 0, SMTP_BODY_BINARYMIME, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=BINARYMIME", SMTP_OPT_8BITMIME, SMTP_R_PARAM_NOT_IMPL, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=9BIT", ALL, SMTP_R_PARAM_NOT_IMPL, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> BODY=8BITMIME", 0, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SMTPUTF8", ALL, SMTP_R_NONE, SMTP_PARAM_SMTPUTF8), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SMTPUTF8=yes", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> RET=FULL", ALL, SMTP_R_NONE, SMTP_PARAM_RET), 0, 0, SMTP_RET_FULL, "", "", 0, "", ""},
    {M("FROM:<a@b.c> RET=hdrs", ALL, SMTP_R_NONE, SMTP_PARAM_RET), 0, 0, SMTP_RET_HDRS, "", "", 0, "", ""},
    {M("FROM:<a@b.c> RET=BODY", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> RET=FULL", ALL & ~SMTP_OPT_DSN, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> ENVID=QQ314159+2B+3Dx", ALL, SMTP_R_NONE, SMTP_PARAM_ENVID), 0, 0, 0, "QQ314159+=x", "", 0, "", ""},
    {M("FROM:<a@b.c> ENVID=bad+2", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> ENVID=a+0Db", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
       ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> AUTH=<>", ALL, SMTP_R_NONE, SMTP_PARAM_AUTH), 0, 0, 0, "", "<>", 0, "", ""},
    {M("FROM:<a@b.c> AUTH=e+3Dmc2@example.com", ALL, SMTP_R_NONE, SMTP_PARAM_AUTH), 0, 0, 0, "", "e=mc2@example.com", 0, "", ""},
    {M("FROM:<a@b.c> AUTH=<>", ALL & ~SMTP_OPT_AUTH, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> NOTIFY=NEVER", ALL, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> X-FOO=bar", ALL, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> =bar", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> -X=1", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> SI_ZE=1", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> AUTH=a=b", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c> AUTH=a\x01", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {M("FROM:<a@b.c>  SIZE=5   BODY=8BITMIME  SMTPUTF8 RET=HDRS ENVID=e1 AUTH=<>  ", ALL, SMTP_R_NONE,
       SMTP_PARAM_SIZE | SMTP_PARAM_BODY | SMTP_PARAM_SMTPUTF8 | SMTP_PARAM_RET | SMTP_PARAM_ENVID | SMTP_PARAM_AUTH),
     5, SMTP_BODY_8BITMIME, SMTP_RET_HDRS, "e1", "<>", 0, "", ""},
    {M("FROM:<a@b.c> A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9 J=10 K=11 L=12 M=13 N=14 O=15 P=16 Q=17", ALL,
       SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=SUCCESS,FAILURE,DELAY", ALL, SMTP_R_NONE, SMTP_PARAM_NOTIFY), 0, 0, 0, "", "",
     SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, "", ""},
    {R("TO:<a@b.c> NOTIFY=never", ALL, SMTP_R_NONE, SMTP_PARAM_NOTIFY), 0, 0, 0, "", "", SMTP_NOTIFY_NEVER, "", ""},
    {R("TO:<a@b.c> NOTIFY=NEVER,SUCCESS", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=SUCCESS,", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=,SUCCESS", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=SOMETIMES", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> ORCPT=rfc822;a+2Bb@example.org", ALL, SMTP_R_NONE, SMTP_PARAM_ORCPT), 0, 0, 0, "", "", 0, "rfc822", "a+b@example.org"},
    {R("TO:<a@b.c> ORCPT=utf-8;j\\x{00F6}rg@example.org", ALL, SMTP_R_NONE, SMTP_PARAM_ORCPT), 0, 0, 0, "", "", 0, "utf-8", "j\\x{00F6}rg@example.org"},
    {R("TO:<a@b.c> ORCPT=a@example.org", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> ORCPT=;a@example.org", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> ORCPT=rfc822;", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> ORCPT=rfc_822;a@b", ALL, SMTP_R_SYNTAX_ARGS, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> ORCPT=rfc822;a@b", ALL & ~SMTP_OPT_DSN, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> SIZE=10", ALL, SMTP_R_UNKNOWN_PARAM, 0), 0, 0, 0, "", "", 0, "", ""},
    {R("TO:<a@b.c> NOTIFY=FAILURE ORCPT=rfc822;x@y", ALL, SMTP_R_NONE, SMTP_PARAM_NOTIFY | SMTP_PARAM_ORCPT), 0, 0, 0, "", "",
     SMTP_NOTIFY_FAILURE, "rfc822", "x@y"},
};

static void test_params(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct smtp_addr addr;
    struct smtp_params p;

    smtp_addr_init(&addr);
    smtp_params_init(&p);
    for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        const struct param_case *c = &param_cases[i];
        enum smtp_reply_id r;
        strbuf_reset(why);
        r = (c->rcpt ? smtp_parse_rcpt : smtp_parse_mail)(c->args, strlen(c->args), c->opts,
                                                          &addr, &p, why);
        if (r != c->want)
            fail_msg("case %zu (%s): reply %d, want %d (%s)", i, c->args, r, c->want, strbuf_str(why));
        if (r != SMTP_R_NONE)
            continue;
        assert_int_equal(p.seen, c->seen);
        assert_true(p.size == c->size);
        assert_int_equal(p.body, c->body);
        assert_int_equal(p.ret, c->ret);
        assert_int_equal(p.smtputf8, (c->seen & SMTP_PARAM_SMTPUTF8) != 0);
        assert_string_equal(strbuf_str(p.envid), c->envid);
        assert_string_equal(strbuf_str(p.auth), c->auth);
        assert_int_equal(p.notify, c->notify);
        assert_string_equal(strbuf_str(p.orcpt_type), c->orcpt_type);
        assert_string_equal(strbuf_str(p.orcpt), c->orcpt);
    }
    smtp_addr_free(&addr);
    smtp_params_free(&p);
    strbuf_free(&why);
}

struct xtext_case {
    const char *in;
    const char *out;    /* NULL: error */
};

static const struct xtext_case xtext_cases[] = {
    {"", ""},
    {"plain", "plain"},
    {"a+2Bb", "a+b"},
    {"a+2bb", "a+b"},
    {"+3D+20+7E", "= ~"},
    {"+C3+B6", "\xc3\xb6"},
    {"a+", NULL},
    {"a+2", NULL},
    {"a+G0", NULL},
    {"a=b", NULL},
    {"a b", NULL},
    {"a+00", NULL},
    {"a+0A", NULL},
    {"a+7F", NULL},
    {"\xc3\xb6", NULL},
};

static void test_xtext(void **state)
{
    struct strbuf *out = strbuf_new(16), *why = strbuf_new(16), *enc = strbuf_new(16);

    for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
        const struct xtext_case *c = &xtext_cases[i];
        int rc = smtp_xtext_decode(c->in, strlen(c->in), out, why);
        if (c->out == NULL) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(strbuf_str(out), c->out);
        /* encoding then decoding gives the same bytes back */
        strbuf_reset(enc);
        smtp_xtext_encode(strbuf_str(out), strbuf_len(out), enc);
        assert_int_equal(smtp_xtext_decode(strbuf_str(enc), strbuf_len(enc), out, why), 0);
        assert_string_equal(strbuf_str(out), c->out);
    }
    strbuf_reset(enc);
    smtp_xtext_encode(S("a+b=c d\x01"), enc);
    assert_string_equal(strbuf_str(enc), "a+2Bb+3Dc+20d+01");
    strbuf_free(&out);
    strbuf_free(&why);
    strbuf_free(&enc);
}

/* Over-long pieces at run time: long local part, long domain, long line. */
static void test_overlong(void **state)
{
    struct strbuf *args = strbuf_new(1024), *why = strbuf_new(64);
    struct smtp_addr addr;
    struct smtp_params p;
    size_t n;

    smtp_addr_init(&addr);
    smtp_params_init(&p);
    strbuf_set(args, "TO:<");
    for (int i = 0; i < SMTP_LOCAL_MAX + 1; i++)
        strbuf_appendc(args, 'a');
    strbuf_append(args, "@example.org>");
    assert_int_equal(smtp_parse_rcpt(strbuf_str(args), strbuf_len(args), ALL, &addr, &p, why),
                     SMTP_R_BAD_RCPT_SYNTAX);
    strbuf_set(args, "TO:<\"");
    for (int i = 0; i < SMTP_LOCAL_MAX + 1; i++)
        strbuf_appendc(args, 'a');
    strbuf_append(args, "\"@example.org>");
    assert_int_equal(smtp_parse_rcpt(strbuf_str(args), strbuf_len(args), ALL, &addr, &p, why),
                     SMTP_R_BAD_RCPT_SYNTAX);
    strbuf_set(args, "TO:<u@");
    for (int i = 0; i < 5; i++)
        strbuf_append(args, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
    strbuf_append(args, "org>");
    assert_int_equal(smtp_parse_rcpt(strbuf_str(args), strbuf_len(args), ALL, &addr, &p, why),
                     SMTP_R_BAD_RCPT_SYNTAX);
    /* a 1000-byte line without LF is too long for 512 */
    strbuf_reset(args);
    for (int i = 0; i < 1000; i++)
        strbuf_appendc(args, 'x');
    assert_int_equal(smtp_line_find(strbuf_str(args), strbuf_len(args), SMTP_CMD_LINE_MIN, &n),
                     SMTP_FIND_TOOLONG);
    assert_int_equal(smtp_line_find(strbuf_str(args), strbuf_len(args), 2048, &n),
                     SMTP_FIND_NEED_MORE);
    assert_false(smtp_domain_valid("", 0, false));
    smtp_addr_free(&addr);
    smtp_params_free(&p);
    strbuf_free(&args);
    strbuf_free(&why);
}

/* ------------------------------------------------------------------ */

struct reply_case {
    const char *lines;      /* lines separated by "\n" as they arrive, CRLF added */
    enum smtp_reply_status last;
    int code;
    const char *esc;
    const char *text;
    unsigned nlines;
};

static const struct reply_case reply_cases[] = {
    {"250 ok", SMTP_REPLY_DONE, 250, "", "ok", 1},
    {"250", SMTP_REPLY_DONE, 250, "", "", 1},
    {"250 ", SMTP_REPLY_DONE, 250, "", "", 1},
    {"250 2.1.5 Ok", SMTP_REPLY_DONE, 250, "2.1.5", "Ok", 1},
    {"250 2.0.0", SMTP_REPLY_DONE, 250, "2.0.0", "", 1},
    {"550 5.1.1 <x@y>: Recipient address rejected", SMTP_REPLY_DONE, 550, "5.1.1", "<x@y>: Recipient address rejected", 1},
    {"450 5.1.1 class mismatch", SMTP_REPLY_DONE, 450, "", "5.1.1 class mismatch", 1},
    {"250 2.1.1234 too many digits", SMTP_REPLY_DONE, 250, "", "2.1.1234 too many digits", 1},
    {"250 2.1.5x not a code", SMTP_REPLY_DONE, 250, "", "2.1.5x not a code", 1},
    {"250-mx.example\n250-PIPELINING\n250-SIZE 10240000\n250 8BITMIME", SMTP_REPLY_DONE, 250, "",
     "mx.example\nPIPELINING\nSIZE 10240000\n8BITMIME", 4},
    {"550-5.7.1 first\n550-5.7.1 second\n550 5.7.1 third", SMTP_REPLY_DONE, 550, "5.7.1", "first\nsecond\nthird", 3},
    {"550-5.7.1 first\n550-no code here\n550 5.7.1 third", SMTP_REPLY_DONE, 550, "5.7.1", "first\nno code here\nthird", 3},
    {"220 mx.example ESMTP \xc3\xa9t\xc3\xa9", SMTP_REPLY_DONE, 220, "", "mx.example ESMTP \xc3\xa9t\xc3\xa9", 1},
    {"250-first\n251 second", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"250-first\n250+second", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"250x", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"25", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"ABC ok", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"150 ok", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"260 ok", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"600 ok", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"25a ok", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"250 bare\rcr", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},
    {"250-ok\n250-ok\n", SMTP_REPLY_ERROR, 0, NULL, NULL, 0},    /* empty line after */
};

static void test_reply_parse(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct smtp_reply r;

    smtp_reply_init(&r, 0);
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *c = &reply_cases[i];
        const char *p = c->lines;
        enum smtp_reply_status st = SMTP_REPLY_MORE;
        char line[600];

        smtp_reply_reset(&r);
        for (int guard = 0; guard < 10 && st == SMTP_REPLY_MORE; guard++) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            memcpy(line, p, n);
            memcpy(line + n, "\r\n", 2);
            st = smtp_reply_feed(&r, line, n + 2, why);
            p = nl ? nl + 1 : p + n;
        }
        if (st != c->last)
            fail_msg("case %zu: status %d want %d (%s)", i, st, c->last, strbuf_str(why));
        if (st != SMTP_REPLY_DONE)
            continue;
        assert_int_equal(r.code, c->code);
        assert_string_equal(r.esc, c->esc);
        assert_string_equal(strbuf_str(r.text), c->text);
        assert_int_equal(r.nlines, c->nlines);
        /* a finished reply takes no more lines until reset */
        assert_int_equal(smtp_reply_feed(&r, S("250 ok\r\n"), why), SMTP_REPLY_ERROR);
    }
    /* NUL inside a line */
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, S("250 o\0k\r\n"), why), SMTP_REPLY_ERROR);
    /* bare LF terminator is tolerated from servers */
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, S("250 ok\n"), why), SMTP_REPLY_DONE);
    smtp_reply_free(&r);
    strbuf_free(&why);
}

static void test_reply_bounds(void **state)
{
    struct strbuf *why = strbuf_new(64), *line = strbuf_new(1024);
    struct smtp_reply r;
    enum smtp_reply_status st = SMTP_REPLY_MORE;
    unsigned fed = 0;

    /* too many continuation lines */
    smtp_reply_init(&r, 0);
    while (st == SMTP_REPLY_MORE && fed < 1000) {
        st = smtp_reply_feed(&r, S("250-x\r\n"), why);
        fed++;
    }
    assert_int_equal(st, SMTP_REPLY_ERROR);
    assert_int_equal(fed, SMTP_REPLY_LINES_MAX);
    /* exactly the limit, ending with a last line, is fine */
    smtp_reply_reset(&r);
    for (unsigned i = 0; i + 1 < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(smtp_reply_feed(&r, S("250-x\r\n"), why), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&r, S("250 x\r\n"), why), SMTP_REPLY_DONE);
    assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);
    /* an over-long line */
    smtp_reply_reset(&r);
    strbuf_set(line, "250 ");
    while (strbuf_len(line) < SMTP_REPLY_LINE_MAX)
        strbuf_appendc(line, 'y');
    strbuf_append(line, "\r\n");
    assert_int_equal(smtp_reply_feed(&r, strbuf_str(line), strbuf_len(line), why), SMTP_REPLY_ERROR);
    smtp_reply_free(&r);
    /* a larger configured bound accepts it, and the total is bounded */
    smtp_reply_init(&r, 4096);
    assert_int_equal(smtp_reply_feed(&r, strbuf_str(line), strbuf_len(line), why), SMTP_REPLY_DONE);
    smtp_reply_free(&r);
    smtp_reply_init(&r, SMTP_CMD_LINE_MAX * 4);
    assert_int_equal(r.line_max, SMTP_CMD_LINE_MAX);
    strbuf_set(line, "250-");
    while (strbuf_len(line) < 20000)
        strbuf_appendc(line, 'z');
    st = SMTP_REPLY_MORE;
    for (fed = 0; st == SMTP_REPLY_MORE && fed < 10; fed++)
        st = smtp_reply_feed(&r, strbuf_str(line), strbuf_len(line), why);
    assert_int_equal(st, SMTP_REPLY_ERROR);
    assert_int_equal(fed, 4);
    smtp_reply_free(&r);
    strbuf_free(&line);
    strbuf_free(&why);
}

static void test_reply_table(void **state)
{
    struct strbuf *out = strbuf_new(64);

    for (int id = SMTP_R_NONE; id < SMTP_R_COUNT; id++) {
        const struct smtp_reply_desc *d = smtp_reply_get((enum smtp_reply_id)id);
        assert_true(d->code >= 200 && d->code <= 554 + 1);
        assert_non_null(d->text);
        assert_non_null(d->sep);
        /* the enhanced code's class matches the reply code's first digit */
        if (d->esc[0] != 0) {
            assert_int_equal(d->esc[0], '0' + d->code / 100);
            assert_non_null(smtp_esc_describe(d->esc));
        }
    }
    smtp_reply_format(out, SMTP_R_QUEUED, "1vNYyu4C91W7E");
    assert_string_equal(strbuf_str(out), "250 2.0.0 Ok: queued as 1vNYyu4C91W7E\r\n");
    smtp_reply_format(out, SMTP_R_RELAY_DENIED, NULL);
    assert_string_equal(strbuf_str(out), "554 5.7.1 Relay access denied\r\n");
    smtp_reply_format(out, SMTP_R_DATA_GO, NULL);
    assert_string_equal(strbuf_str(out), "354 End data with <CR><LF>.<CR><LF>\r\n");
    smtp_reply_format(out, SMTP_R_BAD_RCPT_SYNTAX, "bad\r\ninjected");
    assert_string_equal(strbuf_str(out), "501 5.1.3 Bad recipient address syntax: bad  injected\r\n");
    /* a huge detail is cut so the line stays within 512 */
    char big[2000];
    memset(big, 'd', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    smtp_reply_format(out, SMTP_R_REJECTED, big);
    assert_int_equal(strbuf_len(out), SMTP_REPLY_LINE_MAX);
    assert_string_equal(strbuf_str(out) + strbuf_len(out) - 2, "\r\n");

    assert_string_equal(smtp_esc_describe("5.1.1"), "Bad destination mailbox address");
    assert_string_equal(smtp_esc_describe("4.1.1"), "Bad destination mailbox address");
    assert_string_equal(smtp_esc_describe("2.0.0"), "Other undefined Status");
    assert_string_equal(smtp_esc_describe("5.7.27"), "Sender address has null MX");
    assert_null(smtp_esc_describe("3.1.1"));
    assert_null(smtp_esc_describe("5.9.9"));
    assert_null(smtp_esc_describe("5.1.1 "));
    assert_null(smtp_esc_describe("5.1"));
    assert_null(smtp_esc_describe("5.1111.1"));
    assert_null(smtp_esc_describe(""));
    assert_null(smtp_esc_describe(NULL));
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_check),
        cmocka_unit_test(test_line_find),
        cmocka_unit_test(test_line_find_splits),
        cmocka_unit_test(test_cmd_parse),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_bdat_helo),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_reply_parse),
        cmocka_unit_test(test_reply_bounds),
        cmocka_unit_test(test_reply_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
