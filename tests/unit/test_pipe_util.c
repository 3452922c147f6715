/*
 * test_pipe_util.c - unit tests for lib/pipe_util.c.
 *
 * Tables: wait statuses to outcomes (sysexits, other codes, signals),
 * command output to reply text (binary, blank lines, over-long), alias
 * commands with and without shell metacharacters, mbox quoting fed at
 * every split point, From_ lines, and recipient parts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "pipe_util.h"
#include "strbuf.h"

/* Wait statuses built as the kernel does: exit code << 8, or the signal. */
#define EXITED(c) ((c) << 8)
#define KILLED(s) (s)

struct exit_case {
    int wstatus;
    int want;
    const char *dsn;
    const char *text;
};

static const struct exit_case exit_cases[] = {
    { EXITED(0), PIPE_SENT, "2.0.0", "" },
    { EXITED(75), PIPE_DEFER, "4.3.0", "Command died with status 75 (temporary failure)" },
    { EXITED(71), PIPE_DEFER, "4.3.0", "Command died with status 71 (system resource problem)" },
    { EXITED(67), PIPE_BOUNCE, "5.1.1", "Command died with status 67 (user unknown)" },
    { EXITED(77), PIPE_BOUNCE, "5.7.0", "Command died with status 77 (permission denied)" },
    { EXITED(78), PIPE_BOUNCE, "5.3.5", "Command died with status 78 (local configuration error)" },
    { EXITED(1), PIPE_BOUNCE, "5.3.0", "Command died with status 1" },
    { EXITED(255), PIPE_BOUNCE, "5.3.0", "Command died with status 255" },
    { KILLED(9), PIPE_DEFER, "4.3.0", "Command died with signal 9" },
    { KILLED(15), PIPE_DEFER, "4.3.0", "Command died with signal 15" },
};

static void test_exit_status(void **state)
{
    struct strbuf *text = strbuf_new(64);
    char dsn[8];

    (void)state;
    for (size_t i = 0; i < sizeof(exit_cases) / sizeof(exit_cases[0]); i++) {
        const struct exit_case *c = &exit_cases[i];

        strbuf_set(text, "stale");
        assert_int_equal(pipe_exit_status(c->wstatus, dsn, text), c->want);
        assert_string_equal(dsn, c->dsn);
        assert_string_equal(strbuf_str(text), c->text);
    }
    strbuf_free(&text);
}

struct output_case {
    const char *out;
    size_t len;             /* 0: strlen */
    const char *want;
};

static const struct output_case output_cases[] = {
    { "no such user\n", 0, "x: no such user" },
    { "\n\n   \nsecond line\nthird\n", 0, "x: second line" },
    { "tabs\tand   spaces  \r\n", 0, "x: tabs and spaces" },
    { "bin\x01\x80" "ary", 0, "x: bin??ary" },
    { "", 0, "x" },
    { "\n\n\n", 0, "x" },
    { "\x01\x02\n", 0, "x" },
    { "nul\0after", 9, "x: nul?after" },
};

static void test_output_text(void **state)
{
    struct strbuf *text = strbuf_new(64), *big = strbuf_new(4096);

    (void)state;
    for (size_t i = 0; i < sizeof(output_cases) / sizeof(output_cases[0]); i++) {
        const struct output_case *c = &output_cases[i];

        strbuf_set(text, "x");
        pipe_output_text(text, c->out, c->len ? c->len : strlen(c->out));
        assert_string_equal(strbuf_str(text), c->want);
    }
    /* Over-long output is cut at PIPE_OUTPUT_MAX bytes. */
    for (int i = 0; i < 3000; i++)
        strbuf_appendc(big, 'a');
    strbuf_set(text, "x");
    pipe_output_text(text, strbuf_str(big), strbuf_len(big));
    assert_int_equal(strbuf_len(text), 3 + PIPE_OUTPUT_MAX + 3);
    assert_string_equal(strbuf_str(text) + strbuf_len(text) - 3, "...");
    /* A space falling at the limit does not push the text past it. */
    strbuf_reset(big);
    for (int i = 0; i < PIPE_OUTPUT_MAX - 1; i++)
        strbuf_appendc(big, 'a');
    strbuf_append(big, " b");
    strbuf_set(text, "x");
    pipe_output_text(text, strbuf_str(big), strbuf_len(big));
    assert_int_equal(strbuf_len(text), 3 + PIPE_OUTPUT_MAX - 1 + 3);
    strbuf_free(&text);
    strbuf_free(&big);
}

struct argv_case {
    const char *cmd;
    const char *want;       /* words joined by '|', NULL: needs a shell */
};

static const struct argv_case argv_cases[] = {
    { "/usr/bin/procmail", "/usr/bin/procmail" },
    { "  /usr/bin/procmail  -a  list-name\t-f x@y.example ", "/usr/bin/procmail|-a|list-name|-f|x@y.example" },
    { "/usr/lib/mailman/wrapper post list,a=b:c%d+e_f", "/usr/lib/mailman/wrapper|post|list,a=b:c%d+e_f" },
    { "/bin/cat > /tmp/x", NULL },
    { "/bin/echo $HOME", NULL },
    { "/bin/echo `id`", NULL },
    { "/bin/true; /bin/false", NULL },
    { "/bin/true && x", NULL },
    { "/bin/echo 'quoted'", NULL },
    { "/bin/echo \"quoted\"", NULL },
    { "/bin/ls *", NULL },
    { "/bin/ls ~", NULL },
    { "/bin/echo a\\b", NULL },
    { "(sub)", NULL },
    { "/bin/x # comment", NULL },
    { "/bin/x\n", NULL },
    { "", NULL },
    { "   ", NULL },
};

static void test_split_argv(void **state)
{
    struct strbuf *got = strbuf_new(64), *many = strbuf_new(1024);
    char **argv;

    (void)state;
    for (size_t i = 0; i < sizeof(argv_cases) / sizeof(argv_cases[0]); i++) {
        const struct argv_case *c = &argv_cases[i];

        argv = pipe_split_argv(c->cmd);
        if (c->want == NULL) {
            if (argv != NULL)
                fail_msg("\"%s\" split without a shell", c->cmd);
            continue;
        }
        if (argv == NULL)
            fail_msg("\"%s\" not split", c->cmd);
        strbuf_reset(got);
        for (size_t k = 0; argv[k] != NULL; k++)
            strbuf_appendf(got, "%s%s", k ? "|" : "", argv[k]);
        assert_string_equal(strbuf_str(got), c->want);
        pipe_argv_free(&argv);
        assert_null(argv);
    }
    /* Too many words: a shell decides (and PIPE_ARGV_MAX words do not). */
    strbuf_set(many, "/bin/echo");
    for (int i = 1; i < PIPE_ARGV_MAX; i++)
        strbuf_append(many, " w");
    argv = pipe_split_argv(strbuf_str(many));
    assert_non_null(argv);
    assert_null(argv[PIPE_ARGV_MAX]);
    pipe_argv_free(&argv);
    strbuf_append(many, " w");
    assert_null(pipe_split_argv(strbuf_str(many)));
    strbuf_free(&got);
    strbuf_free(&many);
}

struct mbox_case {
    const char *in;
    const char *want;
};

static const struct mbox_case mbox_cases[] = {
    { "Subject: x\n\nbody\n", "Subject: x\n\nbody\n\n" },
    { "Subject: x\n\nFrom here\nnot From there\n", "Subject: x\n\n>From here\nnot From there\n\n" },
    { "From \nFrom\nFrom:x\n>From y\n", ">From \nFrom\nFrom:x\n>From y\n\n" },
    { "a\r\nFrom b\r\n", "a\n>From b\n\n" },
    { "no newline at end", "no newline at end\n\n" },
    { "lone\rcr\n", "lone\rcr\n\n" },
    { "", "\n" },
    { "From", "From\n\n" },
    { "ends in cr\r", "ends in cr\r\n\n" },
};

static void test_mbox_quote(void **state)
{
    struct strbuf *out = strbuf_new(128);

    (void)state;
    for (size_t i = 0; i < sizeof(mbox_cases) / sizeof(mbox_cases[0]); i++) {
        const struct mbox_case *c = &mbox_cases[i];
        size_t len = strlen(c->in);

        /* Every split point, and every split in three. */
        for (size_t a = 0; a <= len; a++)
            for (size_t b = a; b <= len; b++) {
                struct pipe_mbox_state st;

                strbuf_reset(out);
                pipe_mbox_init(&st);
                pipe_mbox_quote(out, c->in, a, &st);
                pipe_mbox_quote(out, c->in + a, b - a, &st);
                pipe_mbox_quote(out, c->in + b, len - b, &st);
                pipe_mbox_end(out, &st);
                if (strcmp(strbuf_str(out), c->want) != 0)
                    fail_msg("case %zu split %zu/%zu: got \"%s\"", i, a, b, strbuf_str(out));
            }
    }
    strbuf_free(&out);
}

static void test_from_line(void **state)
{
    struct strbuf *out = strbuf_new(64);

    (void)state;
    pipe_mbox_from_line(out, "alice@example.org", 0);
    assert_string_equal(strbuf_str(out), "From alice@example.org Thu Jan  1 00:00:00 1970\n");
    pipe_mbox_from_line(out, "", 1700000000);
    assert_string_equal(strbuf_str(out), "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n");
    pipe_mbox_from_line(out, "\"odd sender\"@x", 0);
    assert_string_equal(strbuf_str(out), "From \"odd_sender\"@x Thu Jan  1 00:00:00 1970\n");
    strbuf_free(&out);
}

struct addr_case {
    const char *addr, *delims;
    const char *local, *domain, *user, *ext;
};

static const struct addr_case addr_cases[] = {
    { "prog+tag@example.org", "+", "prog+tag", "example.org", "prog", "tag" },
    { "prog@example.org", "+", "prog", "example.org", "prog", "" },
    { "+lead@x", "+", "+lead", "x", "+lead", "" },
    { "a-b+c@x", "+-", "a-b+c", "x", "a", "b+c" },
    { "bare", "+", "bare", "", "bare", "" },
    { "p+$(id)`x`@h", "+", "p+$(id)`x`", "h", "p", "$(id)`x`" },
    { "u+e@x", NULL, "u+e", "x", "u+e", "" },
    { "\"a@b\"@c", "+", "\"a@b\"", "c", "\"a@b\"", "" },
};

static void test_addr_split(void **state)
{
    struct strbuf *l = strbuf_new(16), *d = strbuf_new(16), *u = strbuf_new(16),
                  *e = strbuf_new(16);

    (void)state;
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];

        pipe_addr_split(c->addr, c->delims, l, d, u, e);
        assert_string_equal(strbuf_str(l), c->local);
        assert_string_equal(strbuf_str(d), c->domain);
        assert_string_equal(strbuf_str(u), c->user);
        assert_string_equal(strbuf_str(e), c->ext);
    }
    strbuf_free(&l);
    strbuf_free(&d);
    strbuf_free(&u);
    strbuf_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_output_text),
        cmocka_unit_test(test_split_argv),
        cmocka_unit_test(test_mbox_quote),
        cmocka_unit_test(test_from_line),
        cmocka_unit_test(test_addr_split),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
