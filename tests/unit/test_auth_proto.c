/*
 * test_auth_proto.c - Dovecot auth protocol lines: splitting, escaping,
 * typed AUTH/CONT/USER parsing, formatting, malformed and over-long input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth_proto.h"
#include "mem.h"
#include "strbuf.h"

struct parse_case {
    const char *name;
    const char *line;
    int expect;             /* 0 ok, -1 error */
    unsigned argc;
    const char *arg_last;   /* expected last argument when ok */
};

static const struct parse_case parse_cases[] = {
    {"version", "VERSION\t1\t2\n", 0, 3, "2"},
    {"no newline", "CPID\t42", 0, 2, "42"},
    {"escaped tab", "AUTH\t1\tPLAIN\tservice=smtp\tx=a\001tb\n", 0, 5, "x=a\tb"},
    {"escaped 001 and lf", "X\t\0011\001n\001r", 0, 2, "\001\n\r"},
    {"empty args kept", "CONT\t1\t\n", 0, 3, ""},
    {"empty line", "\n", -1, 0, NULL},
    {"empty", "", -1, 0, NULL},
    {"empty command", "\tfoo\n", -1, 0, NULL},
    {"bad escape", "X\ta\001z\n", -1, 0, NULL},
    {"escaped nul", "X\ta\0010\n", -1, 0, NULL},
    {"escape at end", "X\ta\001", -1, 0, NULL},
    {"cr inside", "X\ta\rb\n", -1, 0, NULL},
    {"crlf", "X\ta\r\n", -1, 0, NULL},
    {"lf inside", "X\ta\nb\n", -1, 0, NULL},
};

static void test_parse_table(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct auth_proto_line l;
        int got = auth_proto_parse(&l, c->line, strlen(c->line), why);

        if (got != c->expect)
            fail_msg("case '%s': got %d want %d (%s)", c->name, got, c->expect, strbuf_str(why));
        if (got == 0) {
            if (l.argc != c->argc || strcmp(l.argv[l.argc - 1], c->arg_last) != 0)
                fail_msg("case '%s': argc %u last '%s'", c->name, l.argc, l.argv[l.argc - 1]);
            assert_null(l.argv[l.argc]);
            auth_proto_line_free(&l);
        }
    }
    strbuf_free(&why);
}

static void test_limits(void **state)
{
    struct strbuf *why = strbuf_new(64), *line = strbuf_new(AUTH_PROTO_LINE_MAX + 16);
    struct auth_proto_line l;

    /* A line of exactly the maximum passes; one byte more fails. */
    strbuf_append(line, "X\t");
    while (strbuf_len(line) < AUTH_PROTO_LINE_MAX - 1)
        strbuf_appendc(line, 'a');
    strbuf_appendc(line, '\n');
    assert_int_equal(auth_proto_parse(&l, strbuf_str(line), strbuf_len(line), why), 0);
    auth_proto_line_free(&l);
    strbuf_truncate(line, strbuf_len(line) - 1);
    strbuf_append(line, "a\n");
    assert_int_equal(auth_proto_parse(&l, strbuf_str(line), strbuf_len(line), why), -1);

    /* Argument count. */
    strbuf_set(line, "X");
    for (int i = 1; i < AUTH_PROTO_ARGS_MAX; i++)
        strbuf_append(line, "\ta");
    assert_int_equal(auth_proto_parse(&l, strbuf_str(line), strbuf_len(line), why), 0);
    assert_int_equal(l.argc, AUTH_PROTO_ARGS_MAX);
    auth_proto_line_free(&l);
    strbuf_append(line, "\ta");
    assert_int_equal(auth_proto_parse(&l, strbuf_str(line), strbuf_len(line), why), -1);

    /* Embedded NUL. */
    assert_int_equal(auth_proto_parse(&l, "X\ta\0b\n", 6, why), -1);
    strbuf_free(&why);
    strbuf_free(&line);
}

struct auth_case {
    const char *name;
    const char *line;
    int expect;
    const char *mech, *resp, *rip;
    bool secured;
};

static const struct auth_case auth_cases[] = {
    {"postfix style", "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tsecured\tresp=AGEAYg==",
     0, "PLAIN", "AGEAYg==", "192.0.2.7", true},
    {"no resp", "AUTH\t7\tLOGIN\tservice=imap\trip=::1", 0, "LOGIN", NULL, "::1", false},
    {"empty resp", "AUTH\t7\tPLAIN\tservice=imap\tresp=", 0, "PLAIN", "", "", false},
    {"no service", "AUTH\t1\tPLAIN\tresp=AGEAYg==", -1, NULL, NULL, NULL, false},
    {"bad id zero", "AUTH\t0\tPLAIN\tservice=smtp", -1, NULL, NULL, NULL, false},
    {"bad id leading zero", "AUTH\t01\tPLAIN\tservice=smtp", -1, NULL, NULL, NULL, false},
    {"bad id overflow", "AUTH\t4294967296\tPLAIN\tservice=smtp", -1, NULL, NULL, NULL, false},
    {"bad id alpha", "AUTH\t1a\tPLAIN\tservice=smtp", -1, NULL, NULL, NULL, false},
    {"max id", "AUTH\t4294967295\tPLAIN\tservice=smtp", 0, "PLAIN", NULL, "", false},
    {"no mech", "AUTH\t1", -1, NULL, NULL, NULL, false},
    {"bad mech chars", "AUTH\t1\tPL AIN\tservice=smtp", -1, NULL, NULL, NULL, false},
    {"bad rip", "AUTH\t1\tPLAIN\tservice=smtp\trip=foo.example", -1, NULL, NULL, NULL, false},
    {"bad port", "AUTH\t1\tPLAIN\tservice=smtp\trport=99999", -1, NULL, NULL, NULL, false},
    {"bad service", "AUTH\t1\tPLAIN\tservice=a/b", -1, NULL, NULL, NULL, false},
};

static void test_auth_table(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(auth_cases) / sizeof(auth_cases[0]); i++) {
        const struct auth_case *c = &auth_cases[i];
        struct auth_proto_line l;
        struct auth_proto_auth a;
        int got;

        assert_int_equal(auth_proto_parse(&l, c->line, strlen(c->line), why), 0);
        got = auth_proto_parse_auth(&l, &a, why);
        if (got != c->expect)
            fail_msg("case '%s': got %d (%s)", c->name, got, strbuf_str(why));
        if (got == 0) {
            assert_string_equal(a.mech, c->mech);
            if (c->resp)
                assert_string_equal(a.resp, c->resp);
            else
                assert_null(a.resp);
            assert_string_equal(a.rip, c->rip);
            assert_int_equal(a.secured, c->secured);
        }
        auth_proto_line_free(&l);
    }
    strbuf_free(&why);
}

static void test_cont_user(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct auth_proto_line l;
    unsigned id;
    const char *data, *user, *svc;

    assert_int_equal(auth_proto_parse(&l, "CONT\t3\tYWJj", strlen("CONT\t3\tYWJj"), why), 0);
    assert_int_equal(auth_proto_parse_cont(&l, &id, &data, why), 0);
    assert_int_equal(id, 3);
    assert_string_equal(data, "YWJj");
    auth_proto_line_free(&l);
    assert_int_equal(auth_proto_parse(&l, "CONT\t3", strlen("CONT\t3"), why), 0);
    assert_int_equal(auth_proto_parse_cont(&l, &id, &data, why), 0);
    assert_string_equal(data, "");
    auth_proto_line_free(&l);
    assert_int_equal(auth_proto_parse(&l, "CONT\tx\ty", strlen("CONT\tx\ty"), why), 0);
    assert_int_equal(auth_proto_parse_cont(&l, &id, &data, why), -1);
    auth_proto_line_free(&l);

    assert_int_equal(auth_proto_parse(&l, "USER\t9\tbob@example.com\tservice=lmtp", strlen("USER\t9\tbob@example.com\tservice=lmtp"), why), 0);
    assert_int_equal(auth_proto_parse_user(&l, &id, &user, &svc, why), 0);
    assert_int_equal(id, 9);
    assert_string_equal(user, "bob@example.com");
    assert_string_equal(svc, "lmtp");
    auth_proto_line_free(&l);
    assert_int_equal(auth_proto_parse(&l, "USER\t9\t../etc", strlen("USER\t9\t../etc"), why), 0);
    assert_int_equal(auth_proto_parse_user(&l, &id, &user, &svc, why), -1);
    auth_proto_line_free(&l);
    assert_int_equal(auth_proto_parse(&l, "USER\t9", strlen("USER\t9"), why), 0);
    assert_int_equal(auth_proto_parse_user(&l, &id, &user, &svc, why), -1);
    auth_proto_line_free(&l);
    strbuf_free(&why);
}

static void test_format_roundtrip(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);
    struct auth_proto_line l;
    static const char nasty[] = "a\tb\nc\rd\001e";

    auth_proto_begin(out, "FAIL");
    auth_proto_addf(out, "%u", 12u);
    auth_proto_add_kv(out, "reason", nasty);
    auth_proto_add(out, "temp");
    auth_proto_end(out);
    assert_string_equal(strbuf_str(out), "FAIL\t12\treason=a\001tb\001nc\001rd\0011e\ttemp\n");
    assert_int_equal(auth_proto_parse(&l, strbuf_str(out), strbuf_len(out), why), 0);
    assert_int_equal(l.argc, 4);
    assert_string_equal(auth_proto_param(&l, 2, "reason"), nasty);
    assert_string_equal(auth_proto_param(&l, 2, "temp"), "");
    assert_null(auth_proto_param(&l, 2, "user"));
    auth_proto_line_free(&l);
    auth_proto_line_free(&l);   /* twice is safe */

    strbuf_reset(out);
    auth_proto_escape(out, "x\0y", 3);
    assert_memory_equal(strbuf_str(out), "x\0010y", 4);
    strbuf_free(&out);
    strbuf_free(&why);
}

static void test_validators(void **state)
{
    static const struct { const char *s; bool ok; } users[] = {
        {"bob", true}, {"bob@example.com", true}, {"", false}, {"a/b", false},
        {"a:b", false}, {"a\tb", false}, {"a\x7f", false}, {"é@x", true},
    };
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (auth_proto_valid_user(users[i].s) != users[i].ok)
            fail_msg("user '%s'", users[i].s);
    char *longuser = xmalloc(AUTH_PROTO_USER_MAX + 2);
    memset(longuser, 'u', AUTH_PROTO_USER_MAX + 1);
    longuser[AUTH_PROTO_USER_MAX + 1] = 0;
    assert_false(auth_proto_valid_user(longuser));
    longuser[AUTH_PROTO_USER_MAX] = 0;
    assert_true(auth_proto_valid_user(longuser));
    free(longuser);
    assert_true(auth_proto_valid_ip("2001:db8::1"));
    assert_true(auth_proto_valid_ip(""));
    assert_false(auth_proto_valid_ip("1.2.3.4.5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_auth_table),
        cmocka_unit_test(test_cont_user),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_validators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
