/*
 * test_maps.c - lookup tables: text and aliases source parsing, static:,
 * inline:, texthash:, regexp: (flags, negation, if/endif, $n, errors with
 * file:line), hash: and btree: (build, lookup, NUL forms, a rebuilt .db
 * seen by an open map, missing file), lists of tables (order, error stops
 * the search), a .db unreachable after open (chroot) still answering,
 * unix: (system users and groups, the /etc/passwd snapshot a chrooted
 * daemon answers from, its line parser) and the address lookup order.  Cases are tables walked by
 * one function each; files live in a mkdtemp directory removed at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "maps.h"
#include "mem.h"
#include "strbuf.h"

/* mkdtemp template; setup_dir fills in the six trailing template bytes. */
static char tmpdir[] = "/tmp/test_maps.000000";

/* Write content (len bytes, or strlen if len is -1) to tmpdir/name. */
static char *write_file(const char *name, const char *content, long len)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t n = len < 0 ? strlen(content) : (size_t)len;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

/* ---- Text sources ---- */

struct text_case {
    const char *label;
    const char *input;
    int flags;
    const char *want;       /* "k=v|k=v@line" joined, or NULL for error */
    const char *error;      /* substring of why */
};

static int collect(const char *key, const char *value, long lineno,
                   void *ctx, struct strbuf *why)
{
    struct strbuf *out = ctx;

    if (strbuf_len(out))
        strbuf_append(out, "|");
    strbuf_appendf(out, "%s=%s@%ld", key, value, lineno);
    return 0;
}

static int collect_iter(const char *key, const char *value, void *ctx)
{
    strbuf_appendf(ctx, "[%s=%s]", key, value);
    return 0;
}

static const struct text_case text_cases[] = {
    { "empty", "", 0, "", NULL },
    { "comments and blanks", "# c\n\n   \n\t# x\n", 0, "", NULL },
    { "simple", "Key value\n", 0, "key=value@1", NULL },
    { "nofold", "Key Value\n", MAP_FLAG_NOFOLD, "Key=Value@1", NULL },
    { "value with spaces", "k  a b  c  \n", 0, "k=a b  c@1", NULL },
    { "no final newline", "a 1\nb 2", 0, "a=1@1|b=2@2", NULL },
    { "crlf", "a 1\r\nb 2\r\n", 0, "a=1@1|b=2@2", NULL },
    { "continuation", "a 1,\n  2\nb 3\n", 0, "a=1,  2@1|b=3@3", NULL },
    { "comment inside continuation", "a 1\n# c\n  2\n", 0, "a=1  2@1", NULL },
    { "blank inside continuation", "a 1\n\n  2\n", 0, "a=1  2@1", NULL },
    { "line numbers", "\n\na 1\n\nb 2\n", 0, "a=1@3|b=2@5", NULL },
    { "tab separator", "a\t1\n", 0, "a=1@1", NULL },
    { "missing value", "a 1\nlonely\n", 0, NULL, ":2: expected format" },
    { "key then spaces", "lonely   \n", 0, NULL, ":1: expected format" },
    { "leading space", "  a 1\n", 0, NULL, ":1: logical line must not start" },
    { "nul byte", "a 1\nb \0x\n", 0, NULL, ":2: NUL byte" },
    { "alias simple", "postmaster: root\n", MAP_FLAG_ALIASES,
      "postmaster=root@1", NULL },
    { "alias folded", "Root: Admin@Example.COM\n", MAP_FLAG_ALIASES,
      "root=Admin@Example.COM@1", NULL },
    { "alias continuation", "staff: a,\n  b,\n\tc\n", MAP_FLAG_ALIASES,
      "staff=a,  b,\tc@1", NULL },
    { "alias space before colon", "a : b\n", MAP_FLAG_ALIASES, "a=b@1", NULL },
    { "alias quoted", "\"John Doe\": jd\n", MAP_FLAG_ALIASES,
      "john doe=jd@1", NULL },
    { "alias quoted escape", "\"a\\\"b:c\" : x\n", MAP_FLAG_ALIASES,
      "a\"b:c=x@1", NULL },
    { "alias pipe value", "prog: \"|/usr/bin/x -y\"\n", MAP_FLAG_ALIASES,
      "prog=\"|/usr/bin/x -y\"@1", NULL },
    { "alias missing colon", "a b\n", MAP_FLAG_ALIASES, NULL,
      ":1: missing ':'" },
    { "alias space in name", "a b: c\n", MAP_FLAG_ALIASES, NULL,
      ":1: alias name with white space must be quoted" },
    { "alias empty name", ": c\n", MAP_FLAG_ALIASES, NULL, ":1: empty alias" },
    { "alias empty quoted", "\"\": c\n", MAP_FLAG_ALIASES, NULL,
      ":1: empty alias" },
    { "alias unterminated quote", "\"abc: d\n", MAP_FLAG_ALIASES, NULL,
      ":1: unterminated" },
    { "alias missing value", "x: y\na:\n", MAP_FLAG_ALIASES, NULL,
      ":2: missing alias value" },
    { "alias text after quote", "\"a\"b: c\n", MAP_FLAG_ALIASES, NULL,
      ":1: missing ':'" },
};

static void test_text_parse(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        const struct text_case *c = &text_cases[i];
        size_t len = strlen(c->input);
        long n;

        /* The NUL case carries a NUL inside its literal. */
        if (strcmp(c->label, "nul byte") == 0)
            len = 10;
        strbuf_reset(out);
        strbuf_reset(why);
        n = map_text_parse("src", c->input, len, c->flags, collect, out, why);
        if (c->want != NULL) {
            if (n < 0)
                fail_msg("%s: unexpected error %s", c->label, strbuf_str(why));
            if (strcmp(strbuf_str(out), c->want) != 0)
                fail_msg("%s: got \"%s\" want \"%s\"", c->label,
                         strbuf_str(out), c->want);
        } else {
            if (n >= 0)
                fail_msg("%s: parsed, expected an error", c->label);
            if (strstr(strbuf_str(why), c->error) == NULL
                || strncmp(strbuf_str(why), "src:", 4) != 0)
                fail_msg("%s: why \"%s\" lacks \"%s\"", c->label,
                         strbuf_str(why), c->error);
        }
    }
    strbuf_free(&out);
    strbuf_free(&why);
}

static void test_text_long_lines(void **state)
{
    struct strbuf *src = strbuf_new(MAP_LINE_MAX + 64), *out = strbuf_new(64);
    struct strbuf *why = strbuf_new(64);

    /* Exactly MAP_LINE_MAX bytes in one logical line is accepted. */
    strbuf_append(src, "k ");
    while (strbuf_len(src) < MAP_LINE_MAX)
        strbuf_appendc(src, 'v');
    strbuf_append(src, "\nnext 1\n");
    assert_int_equal(map_text_parse("src", strbuf_str(src), strbuf_len(src),
                                    0, collect, out, why), 2);
    /* One more byte, spread over continuation lines, is refused. */
    strbuf_reset(src);
    strbuf_append(src, "first 1\nk ");
    for (int i = 0; i < MAP_LINE_MAX / 1000; i++) {
        for (int j = 0; j < 998; j++)
            strbuf_appendc(src, 'v');
        strbuf_append(src, "\n ");
    }
    for (int i = 0; i < 1000; i++)
        strbuf_appendc(src, 'w');
    strbuf_append(src, "\n");
    strbuf_reset(out);
    assert_int_equal(map_text_parse("src", strbuf_str(src), strbuf_len(src),
                                    0, collect, out, why), -1);
    assert_non_null(strstr(strbuf_str(why), "src:2: line longer than"));
    strbuf_free(&src);
    strbuf_free(&out);
    strbuf_free(&why);
}

/* ---- Table-driven lookups on any spec ---- */

struct lookup_case {
    const char *spec;       /* NULL: same table as the previous case */
    int flags;
    const char *key;
    int rc;                 /* MAP_FOUND / MAP_NOTFOUND */
    const char *value;
};

static void run_lookups(const struct lookup_case *cases, size_t n)
{
    struct strbuf *value = strbuf_new(64), *why = strbuf_new(64);
    struct map *m = NULL;

    for (size_t i = 0; i < n; i++) {
        const struct lookup_case *c = &cases[i];
        int rc;

        if (c->spec != NULL) {
            map_close(&m);
            m = map_open(c->spec, c->flags, why);
            if (m == NULL)
                fail_msg("%s: open failed: %s", c->spec, strbuf_str(why));
        }
        strbuf_set(value, "stale");
        rc = map_lookup(m, c->key, value, why);
        if (rc != c->rc)
            fail_msg("%s key \"%s\": rc %d want %d (%s)", map_spec(m), c->key,
                     rc, c->rc, strbuf_str(why));
        if (rc == MAP_FOUND && strcmp(strbuf_str(value), c->value) != 0)
            fail_msg("%s key \"%s\": \"%s\" want \"%s\"", map_spec(m), c->key,
                     strbuf_str(value), c->value);
    }
    map_close(&m);
    strbuf_free(&value);
    strbuf_free(&why);
}

static const struct lookup_case static_inline_cases[] = {
    { "static:relay", 0, "anything", MAP_FOUND, "relay" },
    { NULL, 0, "", MAP_FOUND, "relay" },
    { "static:{ text with  spaces }", 0, "x", MAP_FOUND, "text with  spaces" },
    { "static:{}", 0, "x", MAP_FOUND, "" },
    { "static:", 0, "x", MAP_FOUND, "" },
    { "inline:{ a=1, b=2 ,{ c = three four }, D=Five }", 0, "a", MAP_FOUND, "1" },
    { NULL, 0, "b", MAP_FOUND, "2" },
    { NULL, 0, "c", MAP_FOUND, "three four" },
    { NULL, 0, "C", MAP_FOUND, "three four" },
    { NULL, 0, "d", MAP_FOUND, "Five" },
    { NULL, 0, "e", MAP_NOTFOUND, NULL },
    { "inline:{ D=Five }", MAP_FLAG_NOFOLD, "d", MAP_NOTFOUND, NULL },
    { NULL, 0, "D", MAP_FOUND, "Five" },
    { "inline:{}", 0, "a", MAP_NOTFOUND, NULL },
    { "inline:{ {a=b,c} {x={y}} e= }", 0, "a", MAP_FOUND, "b,c" },
    { NULL, 0, "x", MAP_FOUND, "{y}" },
    { NULL, 0, "e", MAP_FOUND, "" },
};

static void test_static_inline(void **state)
{
    run_lookups(static_inline_cases,
                sizeof(static_inline_cases) / sizeof(static_inline_cases[0]));
}

struct open_error_case {
    const char *spec;
    const char *error;      /* substring of why */
};

static const struct open_error_case open_errors[] = {
    { "", "empty table name" },
    { "nosuch:x", "unsupported table type \"nosuch\"" },
    { "hash:", "missing table name" },
    { "static:{ x", "missing '}'" },
    { "inline:a=b", "expected inline:{" },
    { "inline:{a}", "missing '='" },
    { "inline:{ =b }", "missing key" },
    { "inline:{ a=b", "expected inline:{" },
    { "inline:{ {a=b}x }", "text after '}'" },
    { "inline:{ {a=b}{c=d} }", "text after '}'" },
    { "inline:{ a=b} }", "unbalanced" },
    { "inline:{ {a=b }", "unbalanced" },
    { "inline:{ a=1 A=2 }", "duplicate key" },
    { "texthash:/nonexistent/x", "open /nonexistent/x" },
    { "regexp:/nonexistent/x", "open /nonexistent/x" },
    { "hash:/nonexistent/x", "/nonexistent/x.db" },
    { "/nonexistent/y", "/nonexistent/y.db" },
};

static void test_open_errors(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct strbuf *big = strbuf_new(MAP_SPEC_MAX + 16);

    for (size_t i = 0; i < sizeof(open_errors) / sizeof(open_errors[0]); i++) {
        strbuf_reset(why);
        if (map_open(open_errors[i].spec, 0, why) != NULL)
            fail_msg("%s: opened, expected an error", open_errors[i].spec);
        if (strstr(strbuf_str(why), open_errors[i].error) == NULL)
            fail_msg("%s: why \"%s\" lacks \"%s\"", open_errors[i].spec,
                     strbuf_str(why), open_errors[i].error);
    }
    strbuf_append(big, "static:");
    while (strbuf_len(big) <= MAP_SPEC_MAX)
        strbuf_appendc(big, 'x');
    assert_null(map_open(strbuf_str(big), 0, why));
    assert_non_null(strstr(strbuf_str(why), "longer than"));
    strbuf_free(&big);
    strbuf_free(&why);
}

/* ---- texthash ---- */

static void test_texthash(void **state)
{
    char *src = write_file("th", "# virtual\nUser@Example.com  u1\n"
                           "other@x   o1, o2\n  o3\nuser@example.com dup\n", -1);
    char *al = write_file("th_aliases", "Postmaster: root\n\"a b\": c\n", -1);
    char *bad = write_file("th_bad", "a 1\n\nb\n", -1);
    char *spec = xasprintf("texthash:%s", src);
    char *alspec = xasprintf("texthash:%s", al);
    char *badspec = xasprintf("texthash:%s", bad);
    char *want = xasprintf("%s:3: expected format", bad);
    const struct lookup_case cases[] = {
        { spec, 0, "user@example.com", MAP_FOUND, "u1" },
        { NULL, 0, "USER@EXAMPLE.COM", MAP_FOUND, "u1" },
        { NULL, 0, "other@x", MAP_FOUND, "o1, o2  o3" },
        { NULL, 0, "nobody", MAP_NOTFOUND, NULL },
        { spec, MAP_FLAG_NOFOLD, "user@example.com", MAP_FOUND, "dup" },
        { NULL, 0, "User@Example.com", MAP_FOUND, "u1" },
        { alspec, MAP_FLAG_ALIASES, "postmaster", MAP_FOUND, "root" },
        { NULL, 0, "a b", MAP_FOUND, "c" },
    };
    struct strbuf *why = strbuf_new(64);

    run_lookups(cases, sizeof(cases) / sizeof(cases[0]));
    assert_null(map_open(badspec, 0, why));
    assert_non_null(strstr(strbuf_str(why), want));
    free(src);
    free(al);
    free(bad);
    free(spec);
    free(alspec);
    free(badspec);
    free(want);
    strbuf_free(&why);
}

/* ---- regexp ---- */

static const char regexp_table[] =
    "# comment\n"
    "/^postmaster@/          root\n"
    "/^(.*)-owner@(.*)$/     owner-of-$1 at ${2} and $(1)$$\n"
    "/^CaseSensitive$/i      cs-hit\n"
    "/^casesensitive$/       ci-hit\n"
    "!/@/                    no-at-sign\n"
    "if /@example\\.com$/\n"
    "/^a(b)?c@/              inner:[$1]\n"
    "if !/^skip/\n"
    "/^deep/                 deep-hit\n"
    "endif\n"
    "/./                     example-catch\n"
    "ENDIF\n"
    "/^x y$/x                basic-syntax\n"
    "/^x+$/x                 basic-plus\n"
    "/^line2$/m              multiline\n"
    "/^long/                 a\n"
    "  continued\n"
    "#/slash/               commented\n"
    "|a/b|                   other-delim\n"
    "/^esc\\/aped@$/         escaped-slash\n";

static void test_regexp_lookups(void **state)
{
    char *path = write_file("re", regexp_table, -1);
    char *spec = xasprintf("regexp:%s", path);
    const struct lookup_case cases[] = {
        { spec, 0, "postmaster@anywhere", MAP_FOUND, "root" },
        { NULL, 0, "POSTMASTER@anywhere", MAP_FOUND, "root" },
        { NULL, 0, "list-owner@lists.org", MAP_FOUND,
          "owner-of-list at lists.org and list$" },
        { NULL, 0, "CaseSensitive", MAP_FOUND, "cs-hit" },
        { NULL, 0, "casesensitive", MAP_FOUND, "ci-hit" },
        { NULL, 0, "CASESENSITIVE", MAP_FOUND, "ci-hit" },
        { NULL, 0, "plainword", MAP_FOUND, "no-at-sign" },
        { NULL, 0, "abc@example.com", MAP_FOUND, "inner:[b]" },
        { NULL, 0, "ac@example.com", MAP_FOUND, "inner:[]" },
        { NULL, 0, "deep@example.com", MAP_FOUND, "deep-hit" },
        { NULL, 0, "skipdeep@example.com", MAP_FOUND, "example-catch" },
        { NULL, 0, "deep@other.org", MAP_NOTFOUND, NULL },
        { NULL, 0, "x@z", MAP_NOTFOUND, NULL },
        { NULL, 0, "x y", MAP_FOUND, "no-at-sign" },
        { NULL, 0, "a@b\nline2", MAP_FOUND, "multiline" },
        { NULL, 0, "a@b\nline2 ", MAP_NOTFOUND, NULL },
        { NULL, 0, "long@x", MAP_FOUND, "a  continued" },
        { NULL, 0, "a/b@c", MAP_FOUND, "other-delim" },
        { NULL, 0, "esc/aped@", MAP_FOUND, "escaped-slash" },
        { NULL, 0, "slash@", MAP_NOTFOUND, NULL },
    };

    run_lookups(cases, sizeof(cases) / sizeof(cases[0]));
    free(path);
    free(spec);
}

static void test_regexp_basic_syntax(void **state)
{
    /* With x toggled off, "+" is a literal and \( \) group. */
    const char *src = "/^x+$/x plus-literal\n/^\\(a\\)b$/x grp-$1\n";
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    void *t = map_regexp_parse("mem", src, strlen(src), why);

    assert_non_null(t);
    assert_int_equal(map_regexp_match(t, "x+", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "plus-literal");
    assert_int_equal(map_regexp_match(t, "xx", value, why), MAP_NOTFOUND);
    assert_int_equal(map_regexp_match(t, "ab", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "grp-a");
    map_regexp_free(t);
    strbuf_free(&why);
    strbuf_free(&value);
}

struct regexp_error_case {
    const char *src;
    const char *error;      /* substring after "mem:" */
};

static const struct regexp_error_case regexp_errors[] = {
    { "/a/ ok\n/(/ bad\n", "mem:2: bad regular expression /(/" },
    { "/a[/ bad\n", "mem:1: bad regular expression" },
    { "/abc result\n", "mem:1: missing closing delimiter" },
    { "abc result\n", "mem:1: expected /pattern/" },
    { "/a/\n", "mem:1: missing result" },
    { "/a/q x\n", "mem:1: unknown flag" },
    { "/(a)/ $2\n", "mem:1: replacement index out of range" },
    { "/(a)/ $0\n", "mem:1: replacement index out of range" },
    { "/(a)/ $1000\n", "mem:1: replacement index out of range" },
    { "/(a)/ $x\n", "mem:1: non-numeric replacement index" },
    { "/(a)/ $1x\n", "mem:1: non-numeric replacement index" },
    { "/(a)/ ${1\n", "mem:1: missing closing bracket" },
    { "/(a)/ cost $\n", "mem:1: '$' not followed by a number" },
    { "/(a)/ ${x}\n", "mem:1: '$' not followed by a number" },
    { "!/(a)/ $1\n", "mem:1: $number in the result of a negated" },
    { "endif\n", "mem:1: endif without if" },
    { "if /a/\n/b/ c\n", "mem:1: if without endif" },
    { "if /a/\nif /b/\nendif\n", "mem:1: if without endif" },
    { "if /a/ text\nendif\n", "mem:1: text after if pattern" },
    { "if /a/\nendif x\n", "mem:2: text after endif" },
    { "/a{256}/ x\n", "mem:1: repetition count above 255" },
    { "/a{1,999}/ x\n", "mem:1: repetition count above 255" },
    { "/a\\{1,999\\}/x x\n", "mem:1: repetition count above 255" },
    { "/a+++++++++++++++++++++++++/ x\n", "mem:1: pattern too complex" },
    { "/^(||.||()x)*$/ x\n", "mem:1: empty alternative or group" },
    { "/(|a)/ x\n", "mem:1: empty alternative or group" },
    { "/(a|)/ x\n", "mem:1: empty alternative or group" },
    { "/a|/ x\n", "mem:1: empty alternative or group" },
    { "/|a/ x\n", "mem:1: empty alternative or group" },
    { "/a()b/ x\n", "mem:1: empty alternative or group" },
    { "/\\(a\\)\\(\\)/x x\n", "mem:1: empty alternative or group" },
    { "/(a)\\1/ x\n", "mem:1: back-references" },
    { "/((a{1,255}){1,255}){1,255}/ x\n", "mem:1: pattern too complex" },
    { "/((((((((((((((a*)*)*)*)*)*)*)*)*)*)*)*)*)*)*/ x\n",
      "mem:1: pattern too complex" },
    { "/\\(\\(a\\{1,200\\}\\)*\\)\\{1,200\\}/x x\n",
      "mem:1: pattern too complex" },
    { "/a/ x\n   \n\n  y\n\t/b/ c\n  \n z\n/(/ e\n", "mem:8: bad regular" },
    { " /a/ x\n", "mem:1: logical line must not start" },
    { "/a/ x\0\n", "mem:1: NUL byte" },
};

static void test_regexp_errors(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct strbuf *deep = strbuf_new(4096);

    for (size_t i = 0; i < sizeof(regexp_errors) / sizeof(regexp_errors[0]);
         i++) {
        const char *src = regexp_errors[i].src;
        size_t len = strlen(src);
        void *t;

        if (strstr(regexp_errors[i].error, "NUL") != NULL)
            len += 2;
        strbuf_reset(why);
        if ((t = map_regexp_parse("mem", src, len, why)) != NULL) {
            map_regexp_free(t);
            fail_msg("\"%s\": parsed, expected an error", src);
        }
        if (strstr(strbuf_str(why), regexp_errors[i].error) == NULL)
            fail_msg("\"%s\": why \"%s\" lacks \"%s\"", src, strbuf_str(why),
                     regexp_errors[i].error);
    }
    /* Groups are bounded, realistic patterns are not refused. */
    strbuf_reset(deep);
    strbuf_append(deep, "/");
    for (int i = 0; i <= 100; i++)
        strbuf_append(deep, "(");
    strbuf_append(deep, "a/ x\n");
    assert_null(map_regexp_parse("mem", strbuf_str(deep), strbuf_len(deep),
                                 why));
    assert_non_null(strstr(strbuf_str(why), "mem:1: too many nested groups"));
    {
        static const char ok[] =
            "/^\\[?([0-9]{1,3}(\\.[0-9]{1,3}){3})\\]?$/ ip $1\n"
            "/^[[:alpha:]]+(-[[:alnum:]]+)*@([a-z0-9-]+\\.)+[a-z]{2,63}$/ a\n"
            "/(a|b|c|d|e|f|g|h|i|j|k|l|m|n){1,255}/ alt\n"
            "/[]a{99}]{1,255}/ bracket\n"
            "/^.{1,255}$/ any\n"
            "/a\\|b|[|]|\\(|\\)/ literal-bars\n"
            "/a||b/x basic-bars\n";
        struct strbuf *value = strbuf_new(16);
        void *t = map_regexp_parse("mem", ok, strlen(ok), why);
        if (t == NULL)
            fail_msg("realistic table refused: %s", strbuf_str(why));
        assert_int_equal(map_regexp_match(t, "[192.0.2.1]", value, why),
                         MAP_FOUND);
        assert_string_equal(strbuf_str(value), "ip 192.0.2.1");
        map_regexp_free(t);
        strbuf_free(&value);
    }
    /* Nesting is bounded. */
    strbuf_reset(deep);
    for (int i = 0; i <= MAP_REGEXP_DEPTH_MAX; i++)
        strbuf_append(deep, "if /a/\n");
    assert_null(map_regexp_parse("mem", strbuf_str(deep), strbuf_len(deep),
                                 why));
    assert_non_null(strstr(strbuf_str(why), ":101: if nested too deeply"));
    /* A file error names the file and line. */
    {
        char *path = write_file("re_bad", "/ok/ 1\n/[z-a]/ 2\n", -1);
        char *spec = xasprintf("regexp:%s", path);
        char *want = xasprintf("%s:2: bad regular expression", path);
        assert_null(map_open(spec, 0, why));
        assert_non_null(strstr(strbuf_str(why), want));
        free(path);
        free(spec);
        free(want);
    }
    strbuf_free(&deep);
    strbuf_free(&why);
}

/* ---- hash and btree ---- */

static const char db_source[] =
    "# virtual\n"
    "User@Example.COM   Local1\n"
    "list@example.com   a@x, b@y,\n"
    "    c@z\n"
    "@example.org       catch\n"
    "user@example.com   duplicate\n";

static void test_db_build_lookup(void **state)
{
    static const char *const types[] = { "hash", "btree" };
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);
    char *src = write_file("virtual", db_source, -1);

    for (size_t t = 0; t < 2; t++) {
        char *spec = xasprintf("%s:%s", types[t], src);
        const struct lookup_case cases[] = {
            { spec, 0, "user@example.com", MAP_FOUND, "Local1" },
            { NULL, 0, "USER@example.com", MAP_FOUND, "Local1" },
            { NULL, 0, "list@example.com", MAP_FOUND, "a@x, b@y,    c@z" },
            { NULL, 0, "@example.org", MAP_FOUND, "catch" },
            { NULL, 0, "nobody@example.org", MAP_NOTFOUND, NULL },
            { NULL, 0, "", MAP_NOTFOUND, NULL },
            { spec, MAP_FLAG_NOFOLD, "USER@example.com", MAP_NOTFOUND, NULL },
            { spec, MAP_FLAG_NONUL, "user@example.com", MAP_NOTFOUND, NULL },
            { spec, MAP_FLAG_NUL, "user@example.com", MAP_FOUND, "Local1" },
        };
        struct map *m;

        assert_int_equal(map_build(spec, 0, why), 3);
        run_lookups(cases, sizeof(cases) / sizeof(cases[0]));

        /* -s order is storage order; count and content are what matter. */
        m = map_open(spec, 0, why);
        assert_non_null(m);
        strbuf_reset(out);
        assert_int_equal(map_iterate(m, collect_iter, out, why), 0);
        assert_non_null(strstr(strbuf_str(out), "[@example.org=catch]"));
        assert_non_null(strstr(strbuf_str(out), "[user@example.com=Local1]"));
        map_close(&m);

        /* Without NUL (-n): found only by the NUL-less form. */
        assert_int_equal(map_build(spec, MAP_FLAG_NONUL | MAP_FLAG_NOFOLD,
                                   why), 4);
        {
            const struct lookup_case nonul[] = {
                { spec, MAP_FLAG_NOFOLD, "User@Example.COM", MAP_FOUND,
                  "Local1" },
                { NULL, 0, "user@example.com", MAP_FOUND, "duplicate" },
                { spec, MAP_FLAG_NUL | MAP_FLAG_NOFOLD, "User@Example.COM",
                  MAP_NOTFOUND, NULL },
            };
            run_lookups(nonul, sizeof(nonul) / sizeof(nonul[0]));
        }
        free(spec);
    }
    /* A btree file is not a hash file. */
    {
        char *spec = xasprintf("hash:%s", src);
        assert_null(map_open(spec, 0, why));
        assert_non_null(strstr(strbuf_str(why), "not a Berkeley DB hash"));
        free(spec);
    }
    free(src);
    strbuf_free(&why);
    strbuf_free(&out);
}

static void test_db_rebuild_seen(void **state)
{
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    char *src = write_file("rebuilt", "k old\n", -1);
    char *spec = xasprintf("hash:%s", src);
    char *dbpath = xasprintf("%s.db", src);
    struct map *m;

    assert_int_equal(map_build(spec, 0, why), 1);
    m = map_open(spec, 0, why);
    assert_non_null(m);
    assert_int_equal(map_lookup(m, "k", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "old");
    assert_int_equal(map_lookup(m, "added", value, why), MAP_NOTFOUND);

    /* Rebuild under the open map: the next lookup sees the new table. */
    free(write_file("rebuilt", "k new\nadded yes\n", -1));
    assert_int_equal(map_build(spec, 0, why), 2);
    assert_int_equal(map_lookup(m, "k", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "new");
    assert_int_equal(map_lookup(m, "added", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "yes");

    /* The table disappears: the open handle keeps answering (this is
     * also what a chrooted daemon sees), until a real change. */
    assert_int_equal(unlink(dbpath), 0);
    assert_int_equal(map_lookup(m, "k", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "new");
    /* Garbage in its place: an error, and no crash. */
    free(write_file("rebuilt.db", "this is not a database", -1));
    assert_int_equal(map_lookup(m, "k", value, why), MAP_ERROR);
    assert_non_null(strstr(strbuf_str(why), "rebuild it with facteur-map"));
    /* Rebuilt again: back in service. */
    assert_int_equal(map_build(spec, 0, why), 2);
    assert_int_equal(map_lookup(m, "k", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "new");
    map_close(&m);
    map_close(&m);
    /* A table whose .db is gone before the open: a clear error. */
    assert_int_equal(unlink(dbpath), 0);
    assert_null(map_open(spec, 0, why));
    assert_non_null(strstr(strbuf_str(why), dbpath));
    free(src);
    free(spec);
    free(dbpath);
    strbuf_free(&why);
    strbuf_free(&value);
}

/* A daemon opens its tables, then chroots: the path no longer resolves.
 * Simulated by moving the directory (ENOENT) and by putting a file where
 * the directory was (ENOTDIR); lookups go on from the open handle, for
 * hash: and btree: alike, and a found and a missing key both answer. */
static void test_db_path_gone(void **state)
{
    static const char *const types[] = { "hash", "btree" };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
        char *dir = xasprintf("%s/jail-%s", tmpdir, types[i]);
        char *moved = xasprintf("%s/moved-%s", tmpdir, types[i]);
        char *src = xasprintf("%s/access", dir);
        char *spec = xasprintf("%s:%s", types[i], src);
        struct map *m;
        int fd;

        assert_int_equal(mkdir(dir, 0755), 0);
        fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "spammer@example.com REJECT go away\n", 35),
                         35);
        close(fd);
        assert_int_equal(map_build(spec, 0, why), 1);
        m = map_open(spec, 0, why);
        assert_non_null(m);
        assert_int_equal(rename(dir, moved), 0);
        for (int round = 0; round < 2; round++) {
            strbuf_reset(value);
            assert_int_equal(map_lookup(m, "spammer@example.com", value, why),
                             MAP_FOUND);
            assert_string_equal(strbuf_str(value), "REJECT go away");
            assert_int_equal(map_lookup(m, "friend@example.com", value, why),
                             MAP_NOTFOUND);
            if (round == 0) {
                /* Now a file where the directory was: ENOTDIR. */
                fd = open(dir, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                assert_true(fd >= 0);
                close(fd);
            }
        }
        map_close(&m);
        assert_int_equal(unlink(dir), 0);
        free(dir);
        free(moved);
        free(src);
        free(spec);
        strbuf_free(&why);
        strbuf_free(&value);
    }
}

static void test_db_build_errors(void **state)
{
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    char *bad = write_file("bad_src", "a 1\nb\n", -1);
    char *badspec = xasprintf("hash:%s", bad);
    char *baddb = xasprintf("%s.db", bad);
    char *badtmp = xasprintf("%s.db.tmp", bad);
    char *want = xasprintf("%s:2: expected format", bad);
    char *al = write_file("aliases", "# aliases\nPostmaster: root\n"
                          "\"John Doe\": jd,\n   jd@other\n", -1);
    char *alspec = xasprintf("btree:%s", al);
    struct map *m;
    struct stat st;

    assert_int_equal(map_build(badspec, 0, why), -1);
    assert_non_null(strstr(strbuf_str(why), want));
    /* Nothing published, nothing left behind. */
    assert_int_equal(stat(baddb, &st), -1);
    assert_int_equal(stat(badtmp, &st), -1);

    assert_int_equal(map_build("regexp:/x", 0, why), -1);
    assert_non_null(strstr(strbuf_str(why), "only hash: and btree:"));
    assert_int_equal(map_build("hash:/nonexistent/src", 0, why), -1);
    assert_non_null(strstr(strbuf_str(why), "open /nonexistent/src"));

    /* Aliases source. */
    assert_int_equal(map_build(alspec, MAP_FLAG_ALIASES, why), 2);
    m = map_open(alspec, 0, why);
    assert_non_null(m);
    assert_int_equal(map_lookup(m, "postmaster", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "root");
    assert_int_equal(map_lookup(m, "John Doe", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "jd,   jd@other");
    map_close(&m);

    free(bad);
    free(badspec);
    free(baddb);
    free(badtmp);
    free(want);
    free(al);
    free(alspec);
    strbuf_free(&why);
    strbuf_free(&value);
}

/* ---- Lists and address lookups ---- */

static void test_maps_list(void **state)
{
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    char *src = write_file("listdb", "k from-hash\n", -1);
    char *list = xasprintf("inline:{ a=1, { b = two words } },\thash:%s "
                           "static:{ fallback value }", src);
    char *badlist = xasprintf("inline:{a=1}, nosuch:%s", src);
    struct maps *ms;

    assert_int_equal(map_build(src, 0, why), 1);
    ms = maps_open(list, 0, why);
    assert_non_null(ms);
    assert_int_equal(maps_count(ms), 3);
    assert_string_equal(map_type(maps_get(ms, 0)), "inline");
    assert_string_equal(map_type(maps_get(ms, 1)), "hash");
    assert_string_equal(map_type(maps_get(ms, 2)), "static");
    assert_null(maps_get(ms, 3));
    assert_int_equal(maps_lookup(ms, "B", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "two words");
    assert_int_equal(maps_lookup(ms, "k", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "from-hash");
    assert_int_equal(maps_lookup(ms, "zzz", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value), "fallback value");
    /* A table that fails (garbage where its .db was) stops the search:
     * static: must not answer. */
    free(write_file("listdb.db", "not a database at all", -1));
    assert_int_equal(maps_lookup(ms, "zzz", value, why), MAP_ERROR);
    assert_int_equal(maps_lookup(ms, "a", value, why), MAP_FOUND);
    maps_close(&ms);
    maps_close(&ms);

    ms = maps_open(" ,, ", 0, why);
    assert_non_null(ms);
    assert_int_equal(maps_count(ms), 0);
    assert_int_equal(maps_lookup(ms, "a", value, why), MAP_NOTFOUND);
    maps_close(&ms);

    assert_null(maps_open(badlist, 0, why));
    assert_non_null(strstr(strbuf_str(why), "unsupported table type"));
    assert_null(maps_open("inline:{a=1", 0, why));
    assert_non_null(strstr(strbuf_str(why), "unbalanced"));
    assert_null(maps_open("inline:{a=1}}", 0, why));
    assert_non_null(strstr(strbuf_str(why), "unbalanced"));
    free(src);
    free(list);
    free(badlist);
    strbuf_free(&why);
    strbuf_free(&value);
}

struct addr_case {
    const char *addr;
    const char *delims;
    int flags;
    int rc;
    const char *value;
    const char *ext;
};

static const struct addr_case addr_cases[] = {
    /* Step 1: the full address wins over everything. */
    { "full+ext@d.org", "+", MAPS_ADDR_LOCALPART, MAP_FOUND, "k1", "" },
    /* Step 2: the address without its extension. */
    { "user+ext@d.org", "+", 0, MAP_FOUND, "k2", "ext" },
    { "user+ext@d.org", "", 0, MAP_FOUND, "catch", "" },
    { "user-x+y@d.org", "-+", 0, MAP_FOUND, "k2", "x+y" },
    /* Steps 3, 4: localpart keys only for local domains. */
    { "local+e@other.org", "+", MAPS_ADDR_LOCALPART, MAP_FOUND, "k3", "" },
    { "local+f@other.org", "+", MAPS_ADDR_LOCALPART, MAP_FOUND, "k4", "f" },
    { "local+f@other.org", "+", 0, MAP_NOTFOUND, NULL, "" },
    /* Step 5: the catch-all, with the extension handed back. */
    { "nobody+z@d.org", "+", MAPS_ADDR_LOCALPART, MAP_FOUND, "catch", "z" },
    { "nobody@d.org", "+", MAPS_ADDR_NODOMAIN, MAP_NOTFOUND, NULL, "" },
    /* A delimiter as the first byte is not an extension. */
    { "+local@nowhere", "+", MAPS_ADDR_LOCALPART, MAP_NOTFOUND, NULL, "" },
    /* Case folding is the tables' business. */
    { "USER+EXT@D.ORG", "+", 0, MAP_FOUND, "k2", "EXT" },
    /* Bare localparts. */
    { "local", "+", 0, MAP_FOUND, "k4", "" },
    { "local+q", "+", 0, MAP_FOUND, "k4", "q" },
    /* Pattern tables see whole addresses only (never "@domain"). */
    { "re+x@pattern.net", "+", MAPS_ADDR_LOCALPART, MAP_FOUND, "re-hit",
      "x" },
    { "other@pattern.net", "+", MAPS_ADDR_LOCALPART, MAP_NOTFOUND, NULL, "" },
};

static void test_maps_addr(void **state)
{
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    struct strbuf *ext = strbuf_new(64);
    char *re = write_file("addr_re", "/^re@pattern\\.net$/ re-hit\n"
                          "/^@pattern\\.net$/ never\n"
                          "/^other$/ never\n", -1);
    char *list = xasprintf("inline:{ full+ext@d.org=k1, user@d.org=k2, "
                           "local+e=k3, local=k4, @d.org=catch, "
                           "{ @pattern.net = never } }, regexp:%s", re);
    struct maps *ms = maps_open(list, 0, why);

    assert_non_null(ms);
    /* Remove the fixed "@pattern.net" entry's effect by asking the regexp
     * table alone for that domain below. */
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];
        struct maps *use = ms;
        int rc;

        if (strstr(c->addr, "pattern.net") != NULL) {
            char *spec = xasprintf("regexp:%s", re);
            use = maps_open(spec, 0, why);
            free(spec);
            assert_non_null(use);
        }
        strbuf_set(ext, "stale");
        rc = maps_lookup_addr(use, c->addr, c->delims, c->flags, value, ext,
                              why);
        if (rc != c->rc)
            fail_msg("%s: rc %d want %d", c->addr, rc, c->rc);
        if (rc == MAP_FOUND && strcmp(strbuf_str(value), c->value) != 0)
            fail_msg("%s: \"%s\" want \"%s\"", c->addr, strbuf_str(value),
                     c->value);
        if (strcmp(strbuf_str(ext), c->ext) != 0)
            fail_msg("%s: ext \"%s\" want \"%s\"", c->addr, strbuf_str(ext),
                     c->ext);
        if (use != ms)
            maps_close(&use);
    }
    /* NULL delimiters and NULL ext_r are allowed. */
    assert_int_equal(maps_lookup_addr(ms, "user@d.org", NULL, 0, value, NULL,
                                      why), MAP_FOUND);
    maps_close(&ms);
    free(re);
    free(list);
    strbuf_free(&why);
    strbuf_free(&value);
    strbuf_free(&ext);
}

static void test_memtab(void **state)
{
    struct map_memtab *t = map_memtab_new();
    struct strbuf *why = strbuf_new(64), *k = strbuf_new(16);
    struct strbuf *all = strbuf_new(64);

    for (int i = 0; i < 5000; i++) {
        strbuf_printf(k, "key%d", i);
        assert_int_equal(map_memtab_add(t, strbuf_str(k), "v", why), 1);
    }
    assert_int_equal(map_memtab_add(t, "key17", "other", why), 0);
    assert_int_equal(map_memtab_count(t), 5000);
    for (int i = 0; i < 5000; i++) {
        strbuf_printf(k, "key%d", i);
        assert_non_null(map_memtab_find(t, strbuf_str(k)));
    }
    assert_string_equal(map_memtab_find(t, "key17"), "v");
    assert_null(map_memtab_find(t, "key5000"));
    assert_int_equal(map_memtab_iterate(t, collect_iter, all), 0);
    assert_int_equal(strncmp(strbuf_str(all), "[key0=v][key1=v]", 16), 0);
    map_memtab_free(&t);
    map_memtab_free(&t);
    strbuf_free(&why);
    strbuf_free(&k);
    strbuf_free(&all);
}

static void test_unix(void **state)
{
    const struct lookup_case cases[] = {
        { "unix:passwd.byname", 0, "no-such-user-xyzzy", MAP_NOTFOUND, NULL },
        { "unix:group.byname", 0, "no-such-group-xyzzy", MAP_NOTFOUND, NULL },
    };
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    struct map *m;

    run_lookups(cases, sizeof(cases) / sizeof(cases[0]));
    m = map_open("unix:passwd.byname", 0, why);
    assert_non_null(m);
    assert_int_equal(map_lookup(m, "ROOT", value, why), MAP_FOUND);
    assert_int_equal(strncmp(strbuf_str(value), "root:", 5), 0);
    assert_non_null(strstr(strbuf_str(value), ":0:0:"));
    map_close(&m);
    m = map_open("unix:group.byname", 0, why);
    assert_non_null(m);
    assert_int_equal(map_lookup(m, "root", value, why), MAP_FOUND);
    assert_int_equal(strncmp(strbuf_str(value), "root:", 5), 0);
    assert_non_null(strstr(strbuf_str(value), ":0:"));
    map_close(&m);
    assert_null(map_open("unix:shadow.byname", 0, why));
    assert_non_null(strstr(strbuf_str(why), "unknown unix: table"));
    strbuf_free(&why);
    strbuf_free(&value);
}

/* ---- unix: snapshots (what a chrooted daemon answers from) ---- */

struct unix_parse_case {
    const char *label;
    const char *input;
    bool group;
    long count;             /* entries stored */
    const char *key;        /* looked up in the result, or NULL */
    const char *value;      /* its line, or NULL if it must be absent */
};

static const struct unix_parse_case unix_parse_cases[] = {
    { "one user", "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n",
      false, 1, "alice", "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash" },
    { "no final newline, CRLF before",
      "a:x:1:1::/:/bin/sh\r\nb:x:2:2::/:/bin/sh", false, 2, "b",
      "b:x:2:2::/:/bin/sh" },
    { "CR dropped", "a:x:1:1::/:/bin/sh\r\n", false, 1, "a",
      "a:x:1:1::/:/bin/sh" },
    { "name folded, line kept", "Bob:x:5:5::/home/Bob:/bin/sh\n", false, 1,
      "bob", "Bob:x:5:5::/home/Bob:/bin/sh" },
    { "first entry wins", "c:x:1:1::/a:/bin/sh\nc:x:2:2::/b:/bin/sh\n",
      false, 1, "c", "c:x:1:1::/a:/bin/sh" },
    { "too few fields", "d:x:1:1::/home/d\n", false, 0, "d", NULL },
    { "too many fields", "d:x:1:1::/home/d:/bin/sh:extra\n", false, 0, "d",
      NULL },
    { "uid not a number", "e:x:1a:1::/:/bin/sh\n", false, 0, "e", NULL },
    { "gid empty", "e:x:1::::/bin/sh\n", false, 0, "e", NULL },
    { "uid too long", "e:x:12345678901:1::/:/bin/sh\n", false, 0, "e", NULL },
    { "empty name", ":x:1:1::/:/bin/sh\n", false, 0, "", NULL },
    { "NIS plus", "+f:x:1:1::/:/bin/sh\n+\n", false, 0, "+f", NULL },
    { "NIS minus", "-g:x:1:1::/:/bin/sh\n", false, 0, "-g", NULL },
    { "comment", "#h:x:1:1::/:/bin/sh\n", false, 0, "#h", NULL },
    { "blank lines and junk", "\n\n   \n:::::::\nnot a line\n", false, 0,
      "not a line", NULL },
    { "bad line does not stop", "x\ni:x:9:9::/:/bin/sh\n", false, 1, "i",
      "i:x:9:9::/:/bin/sh" },
    { "group with members", "mail:x:8:alice,bob\n", true, 1, "mail",
      "mail:x:8:alice,bob" },
    { "group without members", "staff:x:50:\n", true, 1, "staff",
      "staff:x:50:" },
    { "group line as passwd", "staff:x:50:\n", false, 0, "staff", NULL },
    { "passwd line as group", "a:x:1:1::/:/bin/sh\n", true, 0, "a", NULL },
    { "group gid not a number", "g:x:-1:\n", true, 0, "g", NULL },
};

static void test_unix_parse(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(unix_parse_cases)
         / sizeof(unix_parse_cases[0]); i++) {
        const struct unix_parse_case *c = &unix_parse_cases[i];
        struct map_memtab *t = map_memtab_new();
        long n = map_unix_parse(c->input, strlen(c->input), c->group, t, why);
        const char *got = map_memtab_find(t, c->key);

        if (n != c->count)
            fail_msg("%s: %ld entries, want %ld", c->label, n, c->count);
        if (c->value == NULL ? got != NULL
            : got == NULL || strcmp(got, c->value) != 0)
            fail_msg("%s: \"%s\" -> \"%s\", want \"%s\"", c->label, c->key,
                     got ? got : "(none)", c->value ? c->value : "(none)");
        map_memtab_free(&t);
    }
    strbuf_free(&why);
}

/* Over-long lines and NUL bytes are skipped, the lines around them kept;
 * every split of a valid file parses its prefix without reading past. */
static void test_unix_parse_bounds(void **state)
{
    struct strbuf *why = strbuf_new(64), *in = strbuf_new(MAP_LINE_MAX + 64);
    static const char nul[] = "a:x:1:1::/:/bin/sh\nb:x:2\0:2::/:/bin/sh\n"
                              "c:x:3:3::/:/bin/sh\n";
    static const char two[] = "a:x:1:1::/:/bin/sh\nbb:x:2:2::/:/bin/sh\n";
    struct map_memtab *t = map_memtab_new();

    strbuf_set(in, "long:x:1:1:");
    for (size_t i = 0; i < MAP_LINE_MAX; i++)
        strbuf_append(in, "g");
    strbuf_append(in, ":/:/bin/sh\nshort:x:2:2::/:/bin/sh\n");
    assert_int_equal(map_unix_parse(strbuf_str(in), strbuf_len(in), false, t,
                                    why), 1);
    assert_null(map_memtab_find(t, "long"));
    assert_non_null(map_memtab_find(t, "short"));
    map_memtab_free(&t);

    t = map_memtab_new();
    assert_int_equal(map_unix_parse(nul, sizeof(nul) - 1, false, t, why), 2);
    assert_null(map_memtab_find(t, "b"));
    assert_non_null(map_memtab_find(t, "c"));
    map_memtab_free(&t);

    for (size_t cut = 0; cut <= sizeof(two) - 1; cut++) {
        /* A copy of exactly cut bytes, so ASan sees any over-read. */
        char *part = xstrndup(two, cut);
        char *exact = xmalloc(cut > 0 ? cut : 1);
        /* "a:x:1:1::/:" (11 bytes) is already a valid line with an empty
         * shell; so is "bb:x:2:2::/:", bytes 19 to 30. */
        long want = (cut >= 11) + (cut >= 31);

        memcpy(exact, part, cut);
        t = map_memtab_new();
        if (map_unix_parse(exact, cut, false, t, why) != want)
            fail_msg("cut %zu: want %ld entries", cut, want);
        map_memtab_free(&t);
        free(exact);
        free(part);
    }
    strbuf_free(&in);
    strbuf_free(&why);
}

/* The whole fallback through map_open/map_lookup: while the file exists
 * NSS is the only authority (a name only the snapshot knows is not
 * found); once it is gone, as in a chroot, the snapshot answers. */
static void test_unix_snapshot(void **state)
{
    struct strbuf *why = strbuf_new(64), *value = strbuf_new(64);
    char *pw = write_file("passwd",
                          "root:x:0:0:root:/root:/bin/bash\n"
                          "facteursnapuser:x:4242:4242:Snap:/home/s:/bin/sh\n"
                          "broken line\n", -1);
    char *gr = write_file("group", "facteursnapgroup:x:4243:facteursnapuser\n",
                          -1);
    char *big = xasprintf("%s/bigpasswd", tmpdir);
    struct map *mp, *mg, *mbig;
    int fd;

    map_unix_set_files(pw, gr);
    mp = map_open("unix:passwd.byname", 0, why);
    mg = map_open("unix:group.byname", 0, why);
    assert_non_null(mp);
    assert_non_null(mg);
    assert_int_equal(map_lookup(mp, "facteursnapuser", value, why),
                     MAP_NOTFOUND);
    assert_int_equal(map_lookup(mg, "facteursnapgroup", value, why),
                     MAP_NOTFOUND);

    assert_int_equal(unlink(pw), 0);
    assert_int_equal(unlink(gr), 0);
    assert_int_equal(map_lookup(mp, "FacteurSnapUser", value, why), MAP_FOUND);
    assert_string_equal(strbuf_str(value),
                        "facteursnapuser:x:4242:4242:Snap:/home/s:/bin/sh");
    assert_int_equal(map_lookup(mp, "nobody-here-xyzzy", value, why),
                     MAP_NOTFOUND);
    assert_int_equal(map_lookup(mp, "broken line", value, why), MAP_NOTFOUND);
    /* NSS still answers first: the real root, from the real /etc. */
    assert_int_equal(map_lookup(mp, "root", value, why), MAP_FOUND);
    assert_int_equal(map_lookup(mg, "facteursnapgroup", value, why),
                     MAP_FOUND);
    assert_string_equal(strbuf_str(value),
                        "facteursnapgroup:x:4243:facteursnapuser");

    /* Larger than MAP_UNIX_FILE_MAX: no snapshot (a warning), still open. */
    fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)MAP_UNIX_FILE_MAX + 1), 0);
    close(fd);
    map_unix_set_files(big, NULL);
    mbig = map_open("unix:passwd.byname", 0, why);
    assert_non_null(mbig);
    assert_int_equal(unlink(big), 0);
    assert_int_equal(map_lookup(mbig, "facteursnapuser", value, why),
                     MAP_NOTFOUND);

    /* A missing file at open: no snapshot, NSS only. */
    map_unix_set_files(pw, gr);
    map_close(&mbig);
    mbig = map_open("unix:passwd.byname", 0, why);
    assert_non_null(mbig);
    assert_int_equal(map_lookup(mbig, "facteursnapuser", value, why),
                     MAP_NOTFOUND);

    map_unix_set_files(NULL, NULL);
    map_close(&mbig);
    map_close(&mp);
    map_close(&mg);
    free(pw);
    free(gr);
    free(big);
    strbuf_free(&why);
    strbuf_free(&value);
}

static void test_iterate_unsupported(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct map *m = map_open("static:x", 0, why);

    assert_non_null(m);
    assert_false(map_is_fixed(m) == false);
    assert_int_equal(map_iterate(m, collect_iter, why, why), -1);
    assert_non_null(strstr(strbuf_str(why), "cannot list"));
    map_close(&m);
    strbuf_free(&why);
}

static int teardown_dir(void **state)
{
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    int rc = system(cmd);

    free(cmd);
    return rc == 0 ? 0 : -1;
}

static int setup_dir(void **state)
{
    log_init("test_maps", LOG_DEST_STDERR);
    memset(tmpdir + strlen(tmpdir) - 6, 'X', 6);
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_parse),
        cmocka_unit_test(test_text_long_lines),
        cmocka_unit_test(test_static_inline),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_texthash),
        cmocka_unit_test(test_regexp_lookups),
        cmocka_unit_test(test_regexp_basic_syntax),
        cmocka_unit_test(test_regexp_errors),
        cmocka_unit_test(test_db_build_lookup),
        cmocka_unit_test(test_db_rebuild_seen),
        cmocka_unit_test(test_db_path_gone),
        cmocka_unit_test(test_db_build_errors),
        cmocka_unit_test(test_maps_list),
        cmocka_unit_test(test_maps_addr),
        cmocka_unit_test(test_memtab),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_unix_parse),
        cmocka_unit_test(test_unix_parse_bounds),
        cmocka_unit_test(test_unix_snapshot),
        cmocka_unit_test(test_iterate_unsupported),
    };

    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
