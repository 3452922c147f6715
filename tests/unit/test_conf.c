/*
 * test_conf.c - main.cf parsing, expansion and checks, from tables: lines,
 * continuations and comments, $name / ${name} / $(name) with ?text and
 * :text, loops, undefined names, syntax, type and range errors with their
 * exact "file, line N:" text, overrides, over-long input; then
 * conf_list_split, the value parsers, conf_check_unknown, conf_load on a
 * real directory, and every prefix of a sample file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "conf.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"

struct load_case {
    const char *label;
    const char *input;
    const char *override;   /* NULL or "name=value" */
    const char *name;       /* parameter to check on success */
    const char *want;       /* its expanded value; NULL: expect an error */
    const char *error;      /* exact error text (prefix up to the end) */
};

#define OK(label, input, name, want) { label, input, NULL, name, want, NULL }
#define OKO(label, input, ovr, name, want) { label, input, ovr, name, want, NULL }
#define BAD(label, input, error) { label, input, NULL, NULL, NULL, error }
#define BADO(label, input, ovr, error) { label, input, ovr, NULL, NULL, error }

static const struct load_case load_cases[] = {
    /* plain settings, white space, comments, continuations */
    OK("simple", "smtpd_banner = hello\n", "smtpd_banner", "hello"),
    OK("no spaces", "smtpd_banner=hello", "smtpd_banner", "hello"),
    OK("tab separators", "relayhost\t=\tr\n", "relayhost", "r"),
    OK("trailing blanks trimmed", "relayhost =   [a.example]:587   \t\n", "relayhost",
       "[a.example]:587"),
    OK("empty value", "relayhost =\n", "relayhost", ""),
    OK("crlf line", "relayhost = a.example\r\n", "relayhost", "a.example"),
    OK("continuation", "mydestination = a,\n  b,\n\tc\n", "mydestination", "a, b, c"),
    OK("comment inside continuation", "mydestination = a,\n# note\n  b\n", "mydestination",
       "a, b"),
    OK("blank line inside continuation", "mydestination = a,\n\n  b\n", "mydestination",
       "a, b"),
    OK("indented comment", "   # comment\nrelayhost = r\n", "relayhost", "r"),
    OK("hash inside value kept", "smtpd_banner = a # b\n", "smtpd_banner", "a # b"),
    OK("later setting wins", "relayhost = a\nrelayhost = b\n", "relayhost", "b"),
    OK("no final newline", "relayhost = z", "relayhost", "z"),
    OK("default kept", "# nothing\n", "default_transport", "smtp"),
    /* expansion */
    OK("dollar name", "mydomain = example.org\nmyorigin = $mydomain\n", "myorigin",
       "example.org"),
    OK("braces", "mydomain = ex.org\nsmtpd_banner = x${mydomain}y\n", "smtpd_banner",
       "xex.orgy"),
    OK("parentheses", "mydomain = ex.org\nsmtpd_banner = x$(mydomain)y\n", "smtpd_banner",
       "xex.orgy"),
    OK("recursive", "a = $b\nb = $c\nc = deep\nsmtpd_banner = [$a]\n", "smtpd_banner",
       "[deep]"),
    OK("forward reference", "smtpd_banner = $later\nlater = v\n", "smtpd_banner", "v"),
    OK("default refers to main.cf", "myhostname = mx.example.net\n", "smtp_helo_name",
       "mx.example.net"),
    OK("mydomain from myhostname", "myhostname = mx.example.net\n", "mydomain",
       "example.net"),
    OK("default chain", "default_destination_concurrency_limit = 7\n",
       "smtp_destination_concurrency_limit", "7"),
    OK("undefined is empty", "smtpd_banner = <$nosuch>\n", "smtpd_banner", "<>"),
    OK("double dollar", "smtpd_banner = cost $$5\n", "smtpd_banner", "cost $5"),
    OK("lone dollar", "smtpd_banner = a $ b $\n", "smtpd_banner", "a $ b $"),
    OK("?text when set", "x = 1\nsmtpd_banner = ${x?yes}\n", "smtpd_banner", "yes"),
    OK("?text when empty", "x =\nsmtpd_banner = [${x?yes}]\n", "smtpd_banner", "[]"),
    OK("?text when undefined", "smtpd_banner = [${x?yes}]\n", "smtpd_banner", "[]"),
    OK(":text when undefined", "smtpd_banner = ${x:fallback}\n", "smtpd_banner", "fallback"),
    OK(":text when set", "x = v\nsmtpd_banner = [${x:fallback}]\n", "smtpd_banner", "[]"),
    OK("?text expands", "x = 1\ny = why\nsmtpd_banner = ${x?$y!}\n", "smtpd_banner",
       "why!"),
    OK("?{text}", "x = 1\nsmtpd_banner = ${x?{a b}}\n", "smtpd_banner", "a b"),
    OK("?{a}:{b} true", "x = 1\nsmtpd_banner = ${x?{A}:{B}}\n", "smtpd_banner", "A"),
    OK("?{a}:{b} false", "smtpd_banner = ${x?{A} : {B}}\n", "smtpd_banner", "B"),
    OK(":{text}", "smtpd_banner = ${x:{fb}}\n", "smtpd_banner", "fb"),
    OK("nested conditionals", "a = 1\nsmtpd_banner = ${a?${b:inner}}\n", "smtpd_banner",
       "inner"),
    OK("postfix style default", "mynetworks = 10.0.0.0/8\n",
       "smtpd_client_event_limit_exceptions", "10.0.0.0/8"),
    /* typed values */
    OK("time suffix m", "smtpd_timeout = 5m\n", "smtpd_timeout", "5m"),
    OK("time bare seconds", "smtpd_timeout = 45\n", "smtpd_timeout", "45"),
    OK("postfix unit days", "maximal_queue_lifetime = 3\nbounce_queue_lifetime = 2\n"
       "delay_warning_time = 4\n", "maximal_queue_lifetime", "3"),
    OK("size suffix k", "message_size_limit = 100k\n", "message_size_limit", "100k"),
    OK("bool any case", "smtpd_sasl_auth_enable = YES\n", "smtpd_sasl_auth_enable", "YES"),
    /* overrides */
    OKO("override wins", "relayhost = a\n", "relayhost=b", "relayhost", "b"),
    OKO("override with spaces", "", "relayhost = [c]:25 \t", "relayhost", "[c]:25"),
    OKO("override sets macro", "smtpd_banner = $m\n", "m=via", "smtpd_banner", "via"),
    OKO("override refers to main.cf", "m = mac\n", "smtpd_banner=$m", "smtpd_banner", "mac"),
    /* syntax errors */
    BAD("missing equals", "\n\nrelayhost a\n", "t/main.cf, line 3: missing '=' after parameter name"),
    BAD("name only", "relayhost\n", "t/main.cf, line 1: missing '=' after parameter name"),
    BAD("missing name", "x = 1\n= value\n", "t/main.cf, line 2: missing parameter name before '='"),
    BAD("bad name", "my-host = 1\n", "t/main.cf, line 1: invalid parameter name \"my-host\""),
    BAD("leading continuation", "  relayhost = a\n",
        "t/main.cf, line 1: line starts with white space but no parameter precedes it"),
    BAD("error after continuation", "a = 1,\n  2\nb\n", "t/main.cf, line 3: missing '='"),
    BAD("NUL byte", "a = 1\nb = x\0y\n", "t/main.cf, line 2: NUL byte in line"),
    BAD("unbalanced brace", "x = 1\nsmtpd_banner = ${x\n",
        "t/main.cf, line 2: parameter smtpd_banner: unbalanced '{'"),
    BAD("unbalanced paren", "smtpd_banner = $(x\n",
        "t/main.cf, line 1: parameter smtpd_banner: unbalanced '('"),
    BAD("empty braces", "smtpd_banner = ${}\n",
        "t/main.cf, line 1: parameter smtpd_banner: missing name after '${'"),
    BAD("junk after name", "smtpd_banner = ${x!y}\n",
        "t/main.cf, line 1: parameter smtpd_banner: unexpected character after a name"),
    BAD("junk after braces", "smtpd_banner = ${x?{a}b}\n",
        "t/main.cf, line 1: parameter smtpd_banner: unexpected text after '}'"),
    BAD("self loop", "smtpd_banner = $smtpd_banner\n",
        "t/main.cf, line 1: parameter smtpd_banner: expansion loop: $smtpd_banner -> $smtpd_banner"),
    BAD("loop of three", "a = $b\nb = $c\nc = x$a\n",
        "t/main.cf, line 3: parameter c: expansion loop: $a -> $b -> $c -> $a"),
    BAD("loop through braces", "a = ${b:x}\nb = ${a}\n",
        "t/main.cf, line 2: parameter b: expansion loop: $a -> $b -> $a"),
    BAD("conditional on itself", "a = ${a?x}\n",
        "t/main.cf, line 1: parameter a: expansion loop: $a -> $a"),
    BAD("loop through default", "myhostname = $mydomain\n",
        "default of mydomain: parameter mydomain: expansion loop"),
    /* type and range errors name the parameter and its line */
    BAD("bad time", "\nsmtpd_timeout = 5x\n",
        "t/main.cf, line 2: parameter smtpd_timeout: invalid time value \"5x\""),
    BAD("time two suffixes", "smtpd_timeout = 5ms\n",
        "t/main.cf, line 1: parameter smtpd_timeout: invalid time value \"5ms\""),
    BAD("negative time", "smtpd_timeout = -5\n",
        "t/main.cf, line 1: parameter smtpd_timeout: invalid time value"),
    BAD("time over max", "smtpd_timeout = 2h\n",
        "t/main.cf, line 1: parameter smtpd_timeout: value 7200s is more than the maximum 3600s"),
    BAD("time under min", "smtpd_timeout = 0\n",
        "t/main.cf, line 1: parameter smtpd_timeout: value 0s is less than the minimum 1s"),
    BAD("bad int", "smtpd_recipient_limit = ten\n",
        "t/main.cf, line 1: parameter smtpd_recipient_limit: invalid number \"ten\""),
    BAD("int under min", "smtpd_recipient_limit = 0\n",
        "t/main.cf, line 1: parameter smtpd_recipient_limit: value 0 is less than the minimum 1"),
    BAD("int overflow", "smtpd_recipient_limit = 99999999999999999999999\n",
        "t/main.cf, line 1: parameter smtpd_recipient_limit: invalid number"),
    BAD("empty int", "smtpd_recipient_limit =\n",
        "t/main.cf, line 1: parameter smtpd_recipient_limit: invalid number \"\""),
    BAD("bad size", "message_size_limit = 10q\n",
        "t/main.cf, line 1: parameter message_size_limit: invalid size \"10q\""),
    BAD("size over max", "message_size_limit = 8g\n",
        "t/main.cf, line 1: parameter message_size_limit: value 8589934592 is more than the maximum"),
    BAD("bad bool", "smtpd_sasl_auth_enable = maybe\n",
        "t/main.cf, line 1: parameter smtpd_sasl_auth_enable: invalid boolean \"maybe\""),
    BAD("bad value through macro", "t = soon\nsmtpd_timeout = $t\n",
        "t/main.cf, line 2: parameter smtpd_timeout: invalid time value \"soon\""),
    BAD("bad mynetworks_style", "mynetworks_style = galaxy\n",
        "t/main.cf, line 1: parameter mynetworks_style: unknown value \"galaxy\""),
    BADO("bad override value", "", "smtpd_timeout=never",
         "override \"smtpd_timeout=never\": parameter smtpd_timeout: invalid time value"),
};

static void run_load_case(const struct load_case *c)
{
    struct strbuf *why = strbuf_new(128);
    int rc;

    conf_unload();
    if (c->override && conf_override(c->override, why) < 0)
        fail_msg("%s: override refused: %s", c->label, strbuf_str(why));
    rc = conf_load_buffer("t/main.cf", c->input, strlen(c->input) +
                          (strcmp(c->label, "NUL byte") == 0 ? 3 : 0), why);
    if (c->error) {
        if (rc != -1)
            fail_msg("%s: expected an error", c->label);
        if (strncmp(strbuf_str(why), c->error, strlen(c->error)) != 0)
            fail_msg("%s: error \"%s\", want \"%s\"", c->label, strbuf_str(why), c->error);
    } else {
        if (rc != 0)
            fail_msg("%s: %s", c->label, strbuf_str(why));
        if (c->name && strcmp(conf_get(c->name), c->want) != 0)
            fail_msg("%s: %s = \"%s\", want \"%s\"", c->label, c->name, conf_get(c->name),
                     c->want);
    }
    strbuf_free(&why);
}

static void test_load_table(void **state)
{
    for (size_t i = 0; i < sizeof(load_cases) / sizeof(load_cases[0]); i++)
        run_load_case(&load_cases[i]);
    conf_unload();
}

/* The typed var_ values behind some of the cases above. */
static void test_typed_vars(void **state)
{
    static const char text[] =
        "smtpd_timeout = 5m\nmaximal_queue_lifetime = 2w\nmessage_size_limit = 100k\n"
        "smtpd_sasl_auth_enable = Yes\nsmtpd_recipient_limit = 42\n"
        "mydestination = a, b,\n  c\n";
    struct strbuf *why = strbuf_new(64);

    conf_unload();
    assert_int_equal(conf_load_buffer("t/main.cf", text, sizeof(text) - 1, why), 0);
    assert_int_equal(var_smtpd_timeout, 300);
    assert_int_equal(var_maximal_queue_lifetime, 14 * 86400);
    assert_int_equal(var_message_size_limit, 102400);
    assert_true(var_smtpd_sasl_auth_enable);
    assert_int_equal(var_smtpd_recipient_limit, 42);
    assert_string_equal(var_mydestination, "a, b, c");

    /* Postfix's bare-number units: days for queue lifetimes, hours for
     * delay_warning_time; an explicit suffix always wins. */
    static const char units[] =
        "maximal_queue_lifetime = 3\nbounce_queue_lifetime = 2\ndelay_warning_time = 4\n"
        "smtpd_timeout = 60\n";
    assert_int_equal(conf_load_buffer("t/main.cf", units, sizeof(units) - 1, why), 0);
    assert_int_equal(var_maximal_queue_lifetime, 3 * 86400);
    assert_int_equal(var_bounce_queue_lifetime, 2 * 86400);
    assert_int_equal(var_delay_warning_time, 4 * 3600);
    assert_int_equal(var_smtpd_timeout, 60);
    static const char units2[] = "maximal_queue_lifetime = 3s\nbounce_queue_lifetime = 101\n";
    assert_int_equal(conf_load_buffer("t/main.cf", units2, sizeof(units2) - 1, why), -1);
    assert_non_null(strstr(strbuf_str(why), "line 2: parameter bounce_queue_lifetime: value "
                           "8726400s is more than the maximum 8640000s"));
    assert_int_equal(conf_load_buffer("t/main.cf", text, sizeof(text) - 1, why), 0);
    assert_string_equal(conf_get_raw("smtpd_timeout"), "5m");
    assert_null(conf_get_raw("relayhost"));
    assert_true(conf_is_set("smtpd_timeout"));
    assert_false(conf_is_set("relayhost"));
    assert_string_equal(conf_get_value("smtp_helo_name"), "$myhostname");
    assert_null(conf_get("no_such_name"));

    /* A failed reload leaves the old values in place. */
    assert_int_equal(conf_load_buffer("t/main.cf", "smtpd_timeout = x\n", 18, why), -1);
    assert_int_equal(var_smtpd_timeout, 300);
    assert_string_equal(conf_get("smtpd_timeout"), "5m");
    assert_string_equal(conf_get_raw("smtpd_timeout"), "5m");
    strbuf_free(&why);
    conf_unload();
    assert_null(var_mydestination);
}

/* Computed mynetworks: loopback first, then one network per address. */
static void test_mynetworks_styles(void **state)
{
    static const char *const styles[] = { "host", "subnet", "class", "HOST" };
    struct strbuf *why = strbuf_new(64), *in = strbuf_new(64);

    for (size_t i = 0; i < sizeof(styles) / sizeof(styles[0]); i++) {
        char **list;

        conf_unload();
        strbuf_printf(in, "mynetworks_style = %s\n", styles[i]);
        assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), 0);
        assert_string_equal(conf_get("mynetworks"), conf_get_value("mynetworks"));
        list = conf_list_split(var_mynetworks);
        assert_string_equal(list[0], "127.0.0.0/8");
        assert_string_equal(list[1], "[::1]/128");
        for (size_t j = 0; list[j]; j++) {
            const char *slash = strrchr(list[j], '/');
            long prefix;

            assert_non_null(slash);
            assert_int_equal(conf_parse_long(slash + 1, &prefix, why), 0);
            assert_true(prefix >= 0 && prefix <= (list[j][0] == '[' ? 128 : 32));
            if (strcasecmp(styles[i], "host") == 0)
                assert_true(prefix == 32 || prefix == 128 || j < 2);
            for (size_t k = 0; k < j; k++)
                assert_string_not_equal(list[k], list[j]);      /* no duplicates */
        }
        conf_list_free(&list);
    }
    /* An explicit mynetworks is used as written. */
    assert_int_equal(conf_load_buffer("t/main.cf", "mynetworks = 10.0.0.0/8\n", 24, why), 0);
    assert_string_equal(var_mynetworks, "10.0.0.0/8");
    strbuf_free(&why);
    strbuf_free(&in);
    conf_unload();
}

static void test_overrides(void **state)
{
    static const char *const bad[] = {
        "", "=x", "noequals", "bad-name=1", "a b=1", "x=line\nbreak",
    };
    struct strbuf *why = strbuf_new(64);
    char **names;

    conf_unload();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strbuf_reset(why);
        assert_int_equal(conf_override(bad[i], why), -1);
        assert_non_null(strstr(strbuf_str(why), "override"));
    }
    assert_int_equal(conf_override("relayhost=x", why), 0);
    assert_int_equal(conf_override("relayhost=y", why), 0);    /* the later one wins */
    assert_int_equal(conf_load_buffer("t/main.cf", "relayhost = f\nmine = 1\n", 23, why), 0);
    assert_string_equal(var_relayhost, "y");
    assert_string_equal(conf_get_raw("relayhost"), "f");
    names = conf_names_set();
    assert_string_equal(names[0], "mine");
    assert_string_equal(names[1], "relayhost");
    assert_null(names[2]);
    conf_list_free(&names);
    assert_null(names);

    /* Overrides persist across loads until cleared. */
    assert_int_equal(conf_load_buffer("t/main.cf", "", 0, why), 0);
    assert_string_equal(var_relayhost, "y");
    conf_override_clear();
    assert_int_equal(conf_load_buffer("t/main.cf", "", 0, why), 0);
    assert_string_equal(var_relayhost, "");

    for (int i = 0; i < CONF_OVERRIDES_MAX; i++)
        assert_int_equal(conf_override("a=1", why), 0);
    assert_int_equal(conf_override("a=1", why), -1);
    strbuf_free(&why);
    conf_unload();
}

/* Limits: long lines, long logical lines, many names, deep and huge expansion. */
static void test_limits(void **state)
{
    struct strbuf *in = strbuf_new(1 << 20), *why = strbuf_new(128);

    conf_unload();
    strbuf_set(in, "relayhost = ");
    for (int i = 0; i < CONF_LINE_MAX; i++)
        strbuf_appendc(in, 'a');
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_string_equal(strbuf_str(why), "t/main.cf, line 1: line longer than 8192 bytes");

    /* A line of exactly CONF_LINE_MAX bytes is fine. */
    strbuf_truncate(in, CONF_LINE_MAX);
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), 0);
    assert_int_equal(strlen(var_relayhost), CONF_LINE_MAX - 12);

    strbuf_set(in, "# start\nrelayhost = a\n");
    for (int i = 0; i < 20; i++) {
        strbuf_append(in, "  ");
        for (int j = 0; j < 4000; j++)
            strbuf_appendc(in, 'b');
        strbuf_append(in, "\n");
    }
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_string_equal(strbuf_str(why),
                        "t/main.cf, line 2: parameter setting longer than 65536 bytes");

    strbuf_reset(in);
    for (int i = 0; i <= CONF_PARAMS_MAX; i++)
        strbuf_appendf(in, "user_%d = %d\n", i, i);
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_string_equal(strbuf_str(why), "t/main.cf, line 2001: more than 2000 parameters");

    strbuf_set(in, "nn");
    for (int i = 0; i < CONF_NAME_MAX; i++)
        strbuf_appendc(in, 'n');
    strbuf_append(in, " = 1\n");
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_non_null(strstr(strbuf_str(why), "line 1: invalid parameter name"));

    /* A chain of 150 names nests too deeply. */
    strbuf_reset(in);
    for (int i = 0; i < 150; i++)
        strbuf_appendf(in, "m%d = $m%d\n", i, i + 1);
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_non_null(strstr(strbuf_str(why), "expansion nested more than 100 levels deep"));

    /* Doubling at every level: 2^30 bytes if nothing stopped it. */
    strbuf_reset(in);
    for (int i = 0; i < 30; i++)
        strbuf_appendf(in, "d%d = $d%d$d%d\n", i, i + 1, i + 1);
    strbuf_append(in, "d30 = x\n");
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_non_null(strstr(strbuf_str(why), "expanded value longer than 262144 bytes"));

    /* Deeply nested braces. */
    strbuf_set(in, "smtpd_banner = ");
    for (int i = 0; i < 200; i++)
        strbuf_append(in, "${a:");
    for (int i = 0; i < 200; i++)
        strbuf_append(in, "}");
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(in), strbuf_len(in), why), -1);
    assert_non_null(strstr(strbuf_str(why), "nested more than 100 levels"));

    strbuf_free(&in);
    strbuf_free(&why);
    conf_unload();
}

static const struct {
    const char *input;
    const char *want;       /* items joined with "|" */
} split_cases[] = {
    { "", "" },
    { " , ,\t", "" },
    { "a", "a" },
    { "a,b c\td\n e", "a|b|c|d|e" },
    { "  a ,, b  ", "a|b" },
    { "permit_mynetworks, reject_unauth_destination", "permit_mynetworks|reject_unauth_destination" },
    { "inline:{a=1, b=2}, hash:/x", "inline:{a=1, b=2}|hash:/x" },
    { "{ x y } z", "{ x y }|z" },
    { "a{b{c d}e}f g", "a{b{c d}e}f|g" },
    { "unbalanced{ a b", "unbalanced{ a b" },
    { "close} a", "close}|a" },
};

static void test_list_split(void **state)
{
    for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
        char **list = conf_list_split(split_cases[i].input);
        struct strbuf *got = strbuf_new(64);

        for (size_t j = 0; list[j]; j++)
            strbuf_appendf(got, "%s%s", j ? "|" : "", list[j]);
        if (strcmp(strbuf_str(got), split_cases[i].want) != 0)
            fail_msg("split \"%s\": \"%s\", want \"%s\"", split_cases[i].input,
                     strbuf_str(got), split_cases[i].want);
        conf_list_free(&list);
        strbuf_free(&got);
    }
    char **empty = conf_list_split(NULL);
    assert_null(empty[0]);
    conf_list_free(&empty);
    conf_list_free(NULL);
}

enum kind { K_TIME, K_LONG, K_SIZE, K_BOOL };

static const struct {
    enum kind kind;
    const char *input;
    int rc;
    long want;
} value_cases[] = {
    { K_TIME, "0", 0, 0 }, { K_TIME, "30", 0, 30 }, { K_TIME, "30s", 0, 30 },
    { K_TIME, "5m", 0, 300 }, { K_TIME, "2h", 0, 7200 }, { K_TIME, "1d", 0, 86400 },
    { K_TIME, "1w", 0, 604800 }, { K_TIME, "3D", 0, 259200 }, { K_TIME, "", -1, 0 },
    { K_TIME, "s", -1, 0 }, { K_TIME, "1x", -1, 0 }, { K_TIME, "1 s", -1, 0 },
    { K_TIME, "-1", -1, 0 }, { K_TIME, "1ss", -1, 0 }, { K_TIME, "1.5h", -1, 0 },
    { K_TIME, "99999999999999999w", -1, 0 }, { K_TIME, "9223372036854775807", 0, 9223372036854775807L },
    { K_TIME, "9223372036854775808", -1, 0 },
    { K_LONG, "0", 0, 0 }, { K_LONG, "-12", 0, -12 }, { K_LONG, "+7", 0, 7 },
    { K_LONG, "12a", -1, 0 }, { K_LONG, "", -1, 0 }, { K_LONG, "-", -1, 0 },
    { K_LONG, " 1", -1, 0 }, { K_LONG, "0x10", -1, 0 },
    { K_SIZE, "1024", 0, 1024 }, { K_SIZE, "10k", 0, 10240 }, { K_SIZE, "2M", 0, 2097152 },
    { K_SIZE, "1g", 0, 1073741824 }, { K_SIZE, "1t", -1, 0 }, { K_SIZE, "-1", -1, 0 },
    { K_SIZE, "1kb", -1, 0 }, { K_SIZE, "99999999999999999g", -1, 0 },
    { K_BOOL, "yes", 0, 1 }, { K_BOOL, "No", 0, 0 }, { K_BOOL, "YES", 0, 1 },
    { K_BOOL, "true", -1, 0 }, { K_BOOL, "", -1, 0 }, { K_BOOL, "yes ", -1, 0 },
};

static void test_value_parsers(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
        long v = -999;
        bool b = false;
        int rc = -2;

        strbuf_reset(why);
        switch (value_cases[i].kind) {
        case K_TIME: rc = conf_parse_time(value_cases[i].input, &v, why); break;
        case K_LONG: rc = conf_parse_long(value_cases[i].input, &v, why); break;
        case K_SIZE: rc = conf_parse_size(value_cases[i].input, &v, why); break;
        case K_BOOL: rc = conf_parse_bool(value_cases[i].input, &b, why); v = b; break;
        }
        if (rc != value_cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d", i, value_cases[i].input, rc);
        if (rc == 0 && v != value_cases[i].want)
            fail_msg("case %zu \"%s\": %ld, want %ld", i, value_cases[i].input, v,
                     value_cases[i].want);
        if (rc < 0 && strbuf_len(why) == 0)
            fail_msg("case %zu \"%s\": no reason given", i, value_cases[i].input);
    }
    strbuf_free(&why);
}

static void test_name_valid(void **state)
{
    char longname[CONF_NAME_MAX + 2];

    assert_true(conf_name_valid("smtpd_timeout", 13));
    assert_true(conf_name_valid("smtp_tls_CAfile", 15));
    assert_true(conf_name_valid("x1", 2));
    assert_false(conf_name_valid("", 0));
    assert_false(conf_name_valid("a-b", 3));
    assert_false(conf_name_valid("a b", 3));
    assert_false(conf_name_valid("a$", 2));
    memset(longname, 'x', sizeof(longname));
    assert_true(conf_name_valid(longname, CONF_NAME_MAX));
    assert_false(conf_name_valid(longname, CONF_NAME_MAX + 1));
}

/* prefix followed by the six placeholder letters mkstemp and mkdtemp want. */
static char *tmp_template(char *buf, size_t size, const char *prefix)
{
    size_t n = strlen(prefix);

    assert_true(n + 7 <= size);
    memcpy(buf, prefix, n);
    memset(buf + n, 'X', 6);
    buf[n + 6] = 0;
    return buf;
}

/* conf_check_unknown warns about names nothing uses, with their line. */
static void test_check_unknown(void **state)
{
    static const char text[] =
        "relayhost = r\n"
        "used_macro = x\n"
        "smtpd_banner = $used_macro\n"
        "unused_one = 1\n"
        "cond_only = 1\n"
        "mydestination = ${nothing?$cond_only}\n"
        "smtpd_restriction_classes = myclass\n"
        "myclass = reject\n"
        "custom_destination_concurrency_limit = 2\n"
        "#commented = 1\n"
        "unused_two = 2\n";
    struct strbuf *why = strbuf_new(64);
    char path[64];
    int fd = mkstemp(tmp_template(path, sizeof(path), "/tmp/test_conf_log."));
    char buf[4096];
    ssize_t n;

    assert_true(fd >= 0);
    conf_unload();
    assert_int_equal(conf_load_buffer("t/main.cf", text, sizeof(text) - 1, why), 0);
    log_init("test_conf", 0);
    assert_int_equal(log_set_file(path), 0);
    assert_int_equal(conf_check_unknown(), 2);
    assert_true(conf_is_known("relayhost"));
    assert_true(conf_is_known("smtpd_timeout"));           /* declared, not set */
    assert_true(conf_is_known("used_macro"));
    assert_true(conf_is_known("cond_only"));
    assert_true(conf_is_known("myclass"));
    assert_true(conf_is_known("custom_destination_concurrency_limit"));
    assert_false(conf_is_known("unused_one"));
    assert_false(conf_is_known("commented"));
    assert_false(conf_is_known("nothing"));
    log_set_file(NULL);
    log_init("test_conf", LOG_DEST_STDERR);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_non_null(strstr(buf, "warning: t/main.cf, line 4: unused parameter: unused_one=1"));
    assert_non_null(strstr(buf, "warning: t/main.cf, line 11: unused parameter: unused_two=2"));
    assert_null(strstr(buf, "used_macro"));
    assert_null(strstr(buf, "cond_only"));
    assert_null(strstr(buf, "myclass"));
    close(fd);
    unlink(path);
    strbuf_free(&why);
    conf_unload();
}

/* conf_load on a directory: a missing main.cf means defaults; a real one
 * is read; errors carry the full path. */
static void test_load_dir(void **state)
{
    char dir[64];
    char *path;
    struct strbuf *why = strbuf_new(64);
    FILE *f;

    assert_non_null(mkdtemp(tmp_template(dir, sizeof(dir), "/tmp/test_conf_dir.")));
    path = xasprintf("%s/main.cf", dir);
    conf_unload();
    assert_int_equal(conf_load(dir, why), 0);
    assert_string_equal(conf_dir(), dir);
    assert_string_equal(var_default_transport, "smtp");

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("# test\nqueue_directory = /q\n\nmail_owner = m\n  # trailing comment\n", f);
    fclose(f);
    assert_int_equal(conf_load(dir, why), 0);
    assert_string_equal(var_queue_directory, "/q");
    assert_string_equal(var_mail_owner, "m");

    setenv("FACTEUR_CONFIG_DIR", dir, 1);
    conf_unload();
    assert_int_equal(conf_load(NULL, why), 0);
    assert_string_equal(var_queue_directory, "/q");
    unsetenv("FACTEUR_CONFIG_DIR");

    f = fopen(path, "a");
    fputs("max_use = lots\n", f);
    fclose(f);
    assert_int_equal(conf_load(dir, why), -1);
    char *want = xasprintf("%s, line 6: parameter max_use: invalid number \"lots\"", path);
    assert_string_equal(strbuf_str(why), want);
    free(want);
    assert_string_equal(var_queue_directory, "/q");     /* old values kept */

    /* An unreadable main.cf (a directory here) is an error, not defaults. */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    strbuf_reset(why);
    assert_int_equal(conf_load(dir, why), -1);
    assert_non_null(strstr(strbuf_str(why), "main.cf"));
    rmdir(path);
    rmdir(dir);
    free(path);
    strbuf_free(&why);
    conf_unload();
}

/* Every prefix of a sample parses or fails cleanly (run under ASan). */
static void test_every_prefix(void **state)
{
    static const char text[] =
        "# sample\nmyhostname = mx.example.org\nmydestination = $myhostname,\n"
        "    localhost.$mydomain, ${x?{a}:{b}}\nsmtpd_timeout = 5m\n"
        "smtpd_banner = $(myhostname) ESMTP ${mail_name:facteur}\n";
    struct strbuf *why = strbuf_new(64);

    for (size_t len = 0; len <= sizeof(text) - 1; len++) {
        char *copy = xmalloc(len ? len : 1);

        memcpy(copy, text, len);
        strbuf_reset(why);
        if (conf_load_buffer("t/main.cf", copy, len, why) < 0)
            assert_non_null(strstr(strbuf_str(why), "t/main.cf, line "));
        free(copy);
    }
    strbuf_free(&why);
    conf_unload();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_table),
        cmocka_unit_test(test_typed_vars),
        cmocka_unit_test(test_mynetworks_styles),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_list_split),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_check_unknown),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_every_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
