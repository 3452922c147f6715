/*
 * test_mastercf.c - master.cf parser: columns, defaults, continuation
 * lines, -o overrides and "{ }" groups, inet addresses, and every kind of
 * malformed or over-long input, from one table; plus mastercf_load on a
 * file, entry comparison for reload, and feeding the parser every prefix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "mastercf.h"
#include "mem.h"
#include "strbuf.h"

struct want_entry {
    const char *name;
    enum mastercf_type type;
    const char *host;       /* NULL: none */
    const char *port;       /* NULL: none */
    bool is_private, unpriv, chroot;
    int wakeup;
    bool wakeup_if_used;
    int maxproc;
    const char *command;
    const char *args;       /* joined with "|" */
    const char *overrides;  /* joined with "|" */
    int line;
};

struct parse_case {
    const char *label;
    const char *input;
    int count;              /* -1: expect an error */
    const char *error;      /* substring of the message */
    struct want_entry first;
};

#define OK(label, input, count, ...) { label, input, count, NULL, __VA_ARGS__ }
#define BAD(label, input, error) { label, input, -1, error, { 0 } }

static const struct parse_case cases[] = {
    OK("empty file", "", 0, { 0 }),
    OK("only comments", "# nothing\n\n   \n  # indented comment\n", 0, { 0 }),
    OK("postfix smtp line", "smtp      inet  n       -       y       -       -       smtpd\n", 1,
       { "smtp", MASTERCF_INET, NULL, "smtp", false, true, true, 0, false, -1,
         "smtpd", "", "", 1 }),
    OK("unix defaults", "lmtp unix - - - - - lmtpd", 1,
       { "lmtp", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, -1,
         "lmtpd", "", "", 1 }),
    OK("public fifo wakeup", "pickup fifo n - n 60 1 pickup", 1,
       { "pickup", MASTERCF_FIFO, NULL, NULL, false, true, false, 60, false, 1,
         "pickup", "", "", 1 }),
    OK("wakeup if used", "qmgr unix n n n 300? 1 qmgr", 1,
       { "qmgr", MASTERCF_UNIX, NULL, NULL, false, false, false, 300, true, 1,
         "qmgr", "", "", 1 }),
    OK("pass type", "smtpd pass - - y - - smtpd", 1,
       { "smtpd", MASTERCF_PASS, NULL, NULL, true, true, true, 0, false, -1,
         "smtpd", "", "", 1 }),
    OK("maxproc zero is unlimited", "anvil unix - - - - 0 anvil", 1,
       { "anvil", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, 0,
         "anvil", "", "", 1 }),
    OK("ipv4 host port", "127.0.0.1:2525 inet n - n - 4 smtpd", 1,
       { "127.0.0.1:2525", MASTERCF_INET, "127.0.0.1", "2525", false, true, false, 0, false, 4,
         "smtpd", "", "", 1 }),
    OK("ipv6 host port", "[::1]:2525 inet n - n - - smtpd", 1,
       { "[::1]:2525", MASTERCF_INET, "::1", "2525", false, true, false, 0, false, -1,
         "smtpd", "", "", 1 }),
    OK("star host", "*:submission inet n - n - - smtpd", 1,
       { "*:submission", MASTERCF_INET, NULL, "submission", false, true, false, 0, false, -1,
         "smtpd", "", "", 1 }),
    OK("hostname host", "localhost:25 inet n - n - - smtpd", 1,
       { "localhost:25", MASTERCF_INET, "localhost", "25", false, true, false, 0, false, -1,
         "smtpd", "", "", 1 }),
    OK("overrides and args",
       "submission inet n - y - - smtpd\n"
       "  -o syslog_name=facteur/submission\n"
       "  -o smtpd_tls_security_level=encrypt -v\n"
       "# a comment between continuation lines\n"
       "  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n"
       "  -o smtpd_sasl_auth_enable=\n"
       "  -omilter_macro_daemon_name=ORIGINATING\n", 1,
       { "submission", MASTERCF_INET, NULL, "submission", false, true, true, 0, false, -1,
         "smtpd", "-v",
         "syslog_name=facteur/submission|smtpd_tls_security_level=encrypt|"
         "smtpd_client_restrictions=permit_sasl_authenticated, reject|smtpd_sasl_auth_enable=|"
         "milter_macro_daemon_name=ORIGINATING", 1 }),
    OK("group argument", "pipe unix - n n - - pipe flags=R { argv=/x y }", 1,
       { "pipe", MASTERCF_UNIX, NULL, NULL, true, false, false, 0, false, -1,
         "pipe", "flags=R|argv=/x y", "", 1 }),
    OK("nested group", "x unix - - - - - x { a { b } c }", 1,
       { "x", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, -1,
         "x", "a { b } c", "", 1 }),
    OK("crlf lines and tabs", "# c\r\nx\tunix\t-\t-\t-\t-\t-\tx\r\n\t-o a=b\r\n", 1,
       { "x", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, -1, "x", "", "a=b", 2 }),
    BAD("tab continuation first", "# c\r\n\tx\tunix\t-\t-\t-\t-\t-\tx\r\n", "line 2: continuation"),
    OK("second entry line number",
       "# header\n\nsmtp inet n - n - - smtpd\n\nlmtp unix - - n - - lmtpd\n", 2,
       { "smtp", MASTERCF_INET, NULL, "smtp", false, true, false, 0, false, -1,
         "smtpd", "", "", 3 }),
    OK("same name different type", "x unix - - - - - x\nx fifo - - - - - x\n", 2,
       { "x", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, -1, "x", "", "", 1 }),
    OK("no final newline", "x unix - - - - - x", 1,
       { "x", MASTERCF_UNIX, NULL, NULL, true, true, false, 0, false, -1, "x", "", "", 1 }),

    BAD("bad type", "smtp tcp n - n - - smtpd", "line 1: bad type \"tcp\""),
    BAD("missing columns", "smtp inet n - n", "line 1: missing wakeup field"),
    BAD("missing command", "smtp inet n - n - -", "line 1: missing command field"),
    BAD("bad private", "smtp inet x - n - - smtpd", "bad private field \"x\""),
    BAD("bad unpriv", "smtp inet n yes n - - smtpd", "bad unpriv field \"yes\""),
    BAD("bad chroot", "smtp inet n - 1 - - smtpd", "bad chroot field \"1\""),
    BAD("private inet", "smtp inet y - n - - smtpd", "inet service cannot be private"),
    BAD("bad maxproc letters", "smtp inet n - n - many smtpd", "bad maxproc field \"many\""),
    BAD("bad maxproc negative", "smtp inet n - n - -1 smtpd", "bad maxproc field \"-1\""),
    BAD("bad maxproc huge", "smtp inet n - n - 99999999999999999999 smtpd", "bad maxproc"),
    BAD("bad wakeup", "qmgr unix n - n 5m 1 qmgr", "bad wakeup field \"5m\""),
    BAD("bad wakeup question only", "qmgr unix n - n ? 1 qmgr", "bad wakeup field \"?\""),
    BAD("bad wakeup too long", "qmgr unix n - n 99999999 1 qmgr", "bad wakeup"),
    BAD("bad port zero", "0 inet n - n - - smtpd", "line 1: bad inet address \"0\""),
    BAD("bad port too big", "65536 inet n - n - - smtpd", "bad inet address"),
    BAD("bad port chars", "sm/tp inet n - n - - smtpd", "bad inet address"),
    BAD("bare ipv6", "::1:25 inet n - n - - smtpd", "must be written [addr]:port"),
    BAD("bad bracket", "[::1]25 inet n - n - - smtpd", "bad inet address"),
    BAD("bad bracket addr", "[nothost]:25 inet n - n - - smtpd", "bad inet address"),
    BAD("empty host", ":25 inet n - n - - smtpd", "bad inet address"),
    BAD("empty port", "localhost: inet n - n - - smtpd", "bad inet address"),
    BAD("bad unix name", "pri/vate unix - - n - - x", "bad service name"),
    BAD("dot unix name", "..x unix - - n - - x", "bad service name"),
    BAD("bad command slash", "x unix - - n - - /bin/sh", "bad command name \"/bin/sh\""),
    BAD("bad command dotdot", "x unix - - n - - ..", "bad command name"),
    BAD("o without value", "x unix - - n - - x -o", "-o without name=value"),
    BAD("o without equals", "x unix - - n - - x -o foo", "bad -o override \"foo\""),
    BAD("o bad name", "x unix - - n - - x -o f-o=1", "bad -o override"),
    BAD("o empty name", "x unix - - n - - x -o =1", "bad -o override"),
    BAD("o group without equals", "x unix - - n - - x -o { a b }", "bad -o override"),
    BAD("duplicate service",
        "smtp inet n - n - - smtpd\nx unix - - - - - x\nsmtp inet n - n - - smtpd\n",
        "line 3: duplicate service \"smtp\" type inet (first defined at line 1)"),
    BAD("continuation first", "  smtp inet n - n - - smtpd", "line 1: continuation line"),
    BAD("unterminated group", "x unix - - n - - x { a", "missing \"}\""),
    BAD("text after group", "x unix - - n - - x {a}b", "text after \"}\""),
    BAD("group in column", "{x} unix - - n - - x", "not allowed in the service field"),
    BAD("too deep groups", "x unix - - - - - x {{{{{{{{{{{{ }}}}}}}}}}}}", "nested too deeply"),
    BAD("control chars quoted", "x \x01\x7f - - n - - x", "bad type \"\\x01\\x7f\""),
    BAD("nul byte", "x unix - - n - - x\n", "x"),
    BAD("error on later line", "x unix - - n - - x\n\n\ny bad - - n - - y\n", "line 4: bad type"),
};

static void join(struct strbuf *sb, char **v, size_t n)
{
    strbuf_reset(sb);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_appendc(sb, '|');
        strbuf_append(sb, v[i]);
    }
}

static void check_entry(const struct want_entry *w, const struct mastercf_entry *e)
{
    struct strbuf *sb = strbuf_new(64);

    assert_string_equal(e->name, w->name);
    assert_int_equal(e->type, w->type);
    if (w->host)
        assert_string_equal(e->host, w->host);
    else
        assert_null(e->host);
    if (w->port)
        assert_string_equal(e->port, w->port);
    else
        assert_null(e->port);
    assert_int_equal(e->is_private, w->is_private);
    assert_int_equal(e->unpriv, w->unpriv);
    assert_int_equal(e->chroot, w->chroot);
    assert_int_equal(e->wakeup, w->wakeup);
    assert_int_equal(e->wakeup_if_used, w->wakeup_if_used);
    assert_int_equal(e->maxproc, w->maxproc);
    assert_string_equal(e->command, w->command);
    join(sb, e->args, e->nargs);
    assert_string_equal(strbuf_str(sb), w->args);
    assert_null(e->args[e->nargs]);
    join(sb, e->overrides, e->noverrides);
    assert_string_equal(strbuf_str(sb), w->overrides);
    assert_null(e->overrides[e->noverrides]);
    assert_int_equal(e->line, w->line);
    strbuf_free(&sb);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *c = &cases[i];
        struct strbuf *why = strbuf_new(64);
        struct mastercf *cf = NULL;
        size_t len = strlen(c->input);
        int rc;

        /* The "nul byte" case carries its NUL in the middle. */
        if (strcmp(c->label, "nul byte") == 0) {
            char buf[] = "x unix - - n - - x\0y\n";
            rc = mastercf_parse("/etc/master.cf", buf, sizeof(buf) - 1, &cf, why);
            assert_int_equal(rc, -1);
            assert_non_null(strstr(strbuf_str(why), "line 1: NUL byte"));
            strbuf_free(&why);
            continue;
        }
        rc = mastercf_parse("/etc/master.cf", c->input, len, &cf, why);
        if (c->count < 0) {
            if (rc != -1 || strstr(strbuf_str(why), c->error) == NULL ||
                strncmp(strbuf_str(why), "/etc/master.cf", 14) != 0)
                fail_msg("case \"%s\": rc %d, message \"%s\", wanted \"%s\"", c->label, rc,
                         strbuf_str(why), c->error);
            assert_null(cf);
        } else {
            if (rc != 0)
                fail_msg("case \"%s\": unexpected error \"%s\"", c->label, strbuf_str(why));
            assert_int_equal(cf->count, (size_t)c->count);
            if (c->count > 0)
                check_entry(&c->first, &cf->entries[0]);
        }
        mastercf_free(&cf);
        assert_null(cf);
        strbuf_free(&why);
    }
}

/* Every prefix of every case must parse or fail cleanly (no crash, no leak
 * under ASan), as a truncated file would. */
static void test_every_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].input);
        for (size_t cut = 0; cut <= len; cut++) {
            struct strbuf *why = strbuf_new(64);
            struct mastercf *cf = NULL;
            int rc = mastercf_parse("p", cases[i].input, cut, &cf, why);
            assert_true(rc == 0 ? cf != NULL : cf == NULL && strbuf_len(why) > 0);
            mastercf_free(&cf);
            strbuf_free(&why);
        }
    }
}

static void test_limits(void **state)
{
    struct strbuf *in = strbuf_new(1024);
    struct strbuf *why = strbuf_new(64);
    struct mastercf *cf = NULL;

    (void)state;
    /* A physical line over the limit. */
    strbuf_set(in, "x unix - - n - - x ");
    while (strbuf_len(in) <= MASTERCF_LINE_MAX)
        strbuf_append(in, "a ");
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "line 1: line too long"));

    /* A logical line over the limit, made of many short continuations. */
    strbuf_set(in, "x unix - - n - - x\n");
    while (strbuf_len(in) <= 2 * MASTERCF_ENTRY_MAX)
        strbuf_append(in, " -o a=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n");
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), -1);
    if (strstr(strbuf_str(why), "line 1: entry too long") == NULL)
        fail_msg("got %s", strbuf_str(why));

    /* Too many arguments. */
    strbuf_set(in, "x unix - - n - - x");
    for (int i = 0; i < MASTERCF_ARGS_MAX + 1; i++)
        strbuf_append(in, " a");
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "too many command arguments"));

    /* Exactly the limit of arguments is fine. */
    strbuf_set(in, "x unix - - n - - x");
    for (int i = 0; i < MASTERCF_ARGS_MAX; i++)
        strbuf_append(in, " a");
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), 0);
    assert_int_equal(cf->entries[0].nargs, MASTERCF_ARGS_MAX);
    mastercf_free(&cf);

    /* Too many services. */
    strbuf_reset(in);
    for (int i = 0; i <= MASTERCF_ENTRIES_MAX; i++)
        strbuf_appendf(in, "s%d unix - - n - - x\n", i);
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "too many services"));

    /* A service name over the limit. */
    strbuf_reset(in);
    for (int i = 0; i <= MASTERCF_NAME_MAX; i++)
        strbuf_appendc(in, 'n');
    strbuf_append(in, " unix - - n - - x\n");
    assert_int_equal(mastercf_parse("p", strbuf_str(in), strbuf_len(in), &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "bad service name"));
    /* ... and the quoted text in the message is cut short. */
    assert_non_null(strstr(strbuf_str(why), "...\""));

    /* A whole file over the limit. */
    assert_int_equal(mastercf_parse("p", "", MASTERCF_FILE_MAX + 1, &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "p: file too large"));

    strbuf_free(&in);
    strbuf_free(&why);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/test_mastercf.XXXXXX";
    const char *text = "smtp inet n - n - - smtpd\n  -o a=b\nbad line here\n";
    struct strbuf *why = strbuf_new(64);
    struct mastercf *cf = NULL;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(mastercf_load(path, &cf, why), -1);
    strbuf_printf(why, "%s, line 3: missing", path);
    {
        struct strbuf *got = strbuf_new(64);
        assert_int_equal(mastercf_load(path, &cf, got), -1);
        assert_non_null(strstr(strbuf_str(got), strbuf_str(why)));
        strbuf_free(&got);
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    text = "smtp inet n - n - - smtpd\n  -o a=b\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(mastercf_load(path, &cf, why), 0);
    assert_string_equal(cf->path, path);
    assert_string_equal(cf->entries[0].overrides[0], "a=b");
    assert_non_null(mastercf_find(cf, "smtp", MASTERCF_INET));
    assert_null(mastercf_find(cf, "smtp", MASTERCF_UNIX));
    mastercf_free(&cf);
    unlink(path);

    assert_int_equal(mastercf_load(path, &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "No such file"));
    assert_int_equal(mastercf_load("/tmp", &cf, why), -1);
    assert_non_null(strstr(strbuf_str(why), "not a regular file"));
    strbuf_free(&why);
}

struct same_case {
    const char *a, *b;
    bool same, same_listener;
};

static const struct same_case same_cases[] = {
    { "smtp inet n - n - - smtpd", "smtp   inet n - n - -   smtpd", true, true },
    { "smtp inet n - n - - smtpd", "smtp inet n - n - 5 smtpd", false, true },
    { "smtp inet n - n - - smtpd", "smtp inet n - n - - smtpd -o a=b", false, true },
    { "smtp inet n - n - - smtpd -v", "smtp inet n - n - - smtpd", false, true },
    { "smtp inet n - n - - smtpd", "smtp inet n - n - - other", false, true },
    { "x unix - - n - - x", "x unix n - n - - x", false, false },
    { "x unix - - n - - x", "x fifo - - n - - x", false, false },
    { "1.2.3.4:25 inet n - n - - x", "1.2.3.4:25 inet n - y - - x", false, true },
    { "x unix - - n 5 - x", "x unix - - n 5? - x", false, true },
};

static void test_same(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(same_cases) / sizeof(same_cases[0]); i++) {
        struct strbuf *why = strbuf_new(64);
        struct mastercf *a = NULL, *b = NULL;

        assert_int_equal(mastercf_parse("a", same_cases[i].a, strlen(same_cases[i].a), &a, why), 0);
        assert_int_equal(mastercf_parse("b", same_cases[i].b, strlen(same_cases[i].b), &b, why), 0);
        assert_int_equal(mastercf_entry_same(&a->entries[0], &b->entries[0]), same_cases[i].same);
        assert_int_equal(mastercf_entry_same_listener(&a->entries[0], &b->entries[0]),
                         same_cases[i].same_listener);
        mastercf_free(&a);
        mastercf_free(&b);
        strbuf_free(&why);
    }
    assert_string_equal(mastercf_type_name(MASTERCF_INET), "inet");
    assert_string_equal(mastercf_type_name(MASTERCF_UNIX), "unix");
    assert_string_equal(mastercf_type_name(MASTERCF_PASS), "pass");
    assert_string_equal(mastercf_type_name(MASTERCF_FIFO), "fifo");
    mastercf_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
