/*
 * test_resolve.c - unit tests for lib/resolve.c.
 *
 * The alias value parser on a table of good, malformed and over-long
 * input; then a configuration of inline tables (aliases with :include:,
 * |commands and loops, virtual aliases with catch-all and several
 * targets, canonical maps, transport_maps, relay_domains, relayhost) and
 * a table of recipients with their expected targets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "params.h"
#include "resolve.h"
#include "strbuf.h"

/* ---- alias value parser ------------------------------------------ */

static int collect(enum resolve_item_kind kind, const char *value, void *ctx)
{
    struct strbuf *out = ctx;
    static const char tag[] = { 'A', 'P', 'F', 'I' };

    strbuf_appendf(out, "%c[%s]", tag[kind], value);
    return 0;
}

struct parse_case {
    const char *name;
    const char *in;
    int rc;
    const char *out;    /* items, or a substring of why when rc < 0 */
};

static const struct parse_case parse_cases[] = {
    { "one", "alice", 0, "A[alice]" },
    { "list", "alice, bob@example.org,carol", 0, "A[alice]A[bob@example.org]A[carol]" },
    { "spaces and lines", "  a \n b\n\n, c ", 0, "A[a]A[b]A[c]" },
    { "pipe quoted", "\"|/usr/bin/procmail -a x\", bob", 0, "P[/usr/bin/procmail -a x]A[bob]" },
    { "escaped quote", "\"a\\\"b\"", 0, "A[a\"b]" },
    { "file", "/var/mail/archive", 0, "F[/var/mail/archive]" },
    { "include", ":include:/etc/facteur/list", 0, "I[/etc/facteur/list]" },
    { "include case", ":INCLUDE:/x", 0, "I[/x]" },
    { "comment line", "# staff\nalice\n#bob\n", 0, "A[alice]" },
    { "empty", "", 0, "" },
    { "only commas", ",,, ,", 0, "" },
    { "unterminated", "\"|cmd", -1, "unterminated" },
    { "empty pipe", "|", -1, "empty command" },
    { "empty include", ":include:", -1, "empty :include:" },
    { "control", "a\001b", -1, "control" },
    { "control quoted", "\"a\001b\"", -1, "control" },
};

static void test_alias_parse(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);

    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        int rc;

        strbuf_reset(out);
        strbuf_reset(why);
        rc = resolve_alias_parse(c->in, strlen(c->in), collect, out, why);
        if (rc != c->rc)
            fail_msg("%s: rc %d, want %d (%s)", c->name, rc, c->rc, strbuf_str(why));
        if (rc == 0 && strcmp(strbuf_str(out), c->out) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", c->name, strbuf_str(out), c->out);
        if (rc < 0 && strstr(strbuf_str(why), c->out) == NULL)
            fail_msg("%s: why \"%s\" lacks \"%s\"", c->name, strbuf_str(why), c->out);
    }
    strbuf_free(&out);
    strbuf_free(&why);
}

static void test_alias_parse_limits(void **state)
{
    struct strbuf *in = strbuf_new(1 << 16), *out = strbuf_new(64), *why = strbuf_new(64);

    (void)state;
    /* An entry one byte over the bound. */
    for (int i = 0; i <= RESOLVE_ADDR_MAX; i++)
        strbuf_appendc(in, 'x');
    assert_int_equal(resolve_alias_parse(strbuf_str(in), strbuf_len(in), collect, out, why), -1);
    assert_non_null(strstr(strbuf_str(why), "longer than"));
    /* Too many entries. */
    strbuf_reset(in);
    for (int i = 0; i <= RESOLVE_ITEMS_MAX; i++)
        strbuf_append(in, "a,");
    strbuf_reset(out);
    assert_int_equal(resolve_alias_parse(strbuf_str(in), strbuf_len(in), collect, out, why), -1);
    assert_non_null(strstr(strbuf_str(why), "more than"));
    /* Without a terminating NUL: only len bytes count. */
    assert_int_equal(resolve_alias_parse("abc,def", 3, collect, (strbuf_reset(out), out), why), 0);
    assert_string_equal(strbuf_str(out), "A[abc]");
    strbuf_free(&in);
    strbuf_free(&out);
    strbuf_free(&why);
}

/* ---- resolution --------------------------------------------------- */

static char include_path[64];
static struct resolve *res_ctx;

static int setup(void **state)
{
    struct strbuf *cf = strbuf_new(1024), *why = strbuf_new(64);
    FILE *f;
    int fd;

    (void)state;
    snprintf(include_path, sizeof(include_path), "/tmp/test_resolve.%ld", (long)getpid());
    fd = open(include_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fprintf(f, "# the list\ncarol\ndave@remote.example, \"|/bin/true\"\n");
    fclose(f);
    strbuf_printf(cf,
        "myhostname = mx.example.org\n"
        "mydomain = example.org\n"
        "myorigin = example.org\n"
        "mydestination = example.org, localhost\n"
        "recipient_delimiter = +\n"
        "virtual_mailbox_domains = vmail.example\n"
        "virtual_alias_domains = valias.example\n"
        "relay_domains = relayed.example\n"
        "relayhost = [smart.example]:587\n"
        "allow_mail_to_commands = alias\n"
        "alias_maps = inline:{ {postmaster = root}, {team = alice, bob}, {self = self, backup},"
        " {list = :include:%s}, {prog = \"|/usr/bin/filter\"}, {loop1 = loop2},"
        " {loop2 = loop1}, {deep = deep2}, {deep2 = deep3}, {deep3 = deep4}, {deep4 = deep5}}\n"
        "virtual_alias_maps = inline:{ {info@valias.example = alice@example.org},"
        " {@catch.example = sink@example.org}, {multi@vmail.example = a@vmail.example,"
        " b@vmail.example}, {ext@example.org = extended@example.org} }\n"
        "canonical_maps = inline:{ {old@example.org = new@example.org} }\n"
        "sender_canonical_maps = inline:{ {@internal.example = @example.org} }\n"
        "transport_maps = inline:{ {special.example = smtp:[10.0.0.1]:2525},"
        " {.sub.example = relay:}, {blocked.example = error:5.7.1 go away},"
        " {void.example = discard:}, {who@example.org = local:unix:private/other} }\n"
        "virtual_alias_recursion_limit = 3\n",
        include_path);
    conf_unload();
    assert_int_equal(conf_load_buffer("t/main.cf", strbuf_str(cf), strbuf_len(cf), why), 0);
    res_ctx = resolve_new(why);
    if (res_ctx == NULL)
        fail_msg("resolve_new: %s", strbuf_str(why));
    strbuf_free(&cf);
    strbuf_free(&why);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    resolve_free(&res_ctx);
    conf_unload();
    unlink(include_path);
    return 0;
}

/* Targets written as "kind:addr>transport:nexthop" (deliver),
 * "B:addr:dsn" (bounce), "D:addr" (discard), "P:cmd:allowed", "F:path",
 * joined with " ". */
static void describe(const struct resolve_result *res, struct strbuf *out)
{
    strbuf_reset(out);
    for (size_t i = 0; i < res->n; i++) {
        const struct resolve_target *t = &res->t[i];
        if (i > 0)
            strbuf_append(out, " ");
        switch (t->kind) {
        case RESOLVE_DELIVER:
            strbuf_appendf(out, "%s>%s:%s", t->addr, t->transport, t->nexthop);
            break;
        case RESOLVE_BOUNCE:
            strbuf_appendf(out, "B:%s:%s", t->addr, t->dsn);
            break;
        case RESOLVE_DISCARD:
            strbuf_appendf(out, "D:%s", t->addr);
            break;
        case RESOLVE_PIPE:
            strbuf_appendf(out, "P:%s:%d", t->addr, t->allowed);
            break;
        case RESOLVE_FILE:
            strbuf_appendf(out, "F:%s:%d", t->addr, t->allowed);
            break;
        }
    }
}

struct rcpt_case {
    const char *in;
    int flags;
    const char *want;
};

static const struct rcpt_case rcpt_cases[] = {
    /* Plain routing. */
    { "alice@example.org", 0, "alice@example.org>local:unix:private/lmtp" },
    { "Alice@EXAMPLE.org", 0, "Alice@EXAMPLE.org>local:unix:private/lmtp" },
    { "bare", 0, "bare@example.org>local:unix:private/lmtp" },
    { "u@vmail.example", 0, "u@vmail.example>local:unix:private/lmtp" },
    { "u@relayed.example", 0, "u@relayed.example>relay:[smart.example]:587" },
    { "u@a.relayed.example", 0, "u@a.relayed.example>relay:[smart.example]:587" },
    { "u@elsewhere.example", 0, "u@elsewhere.example>smtp:[smart.example]:587" },
    /* transport_maps: domain, parent pattern, address, error, discard. */
    { "u@special.example", 0, "u@special.example>smtp:[10.0.0.1]:2525" },
    { "u@x.sub.example", 0, "u@x.sub.example>relay:[smart.example]:587" },
    { "u@blocked.example", 0, "B:u@blocked.example:5.7.1" },
    { "u@void.example", 0, "D:u@void.example" },
    { "who@example.org", 0, "who@example.org>local:unix:private/other" },
    /* Local aliases. */
    { "postmaster@example.org", 0, "root@example.org>local:unix:private/lmtp" },
    { "team@example.org", 0,
      "alice@example.org>local:unix:private/lmtp bob@example.org>local:unix:private/lmtp" },
    { "team+news@example.org", 0,
      "alice@example.org>local:unix:private/lmtp bob@example.org>local:unix:private/lmtp" },
    { "self@example.org", 0,
      "self@example.org>local:unix:private/lmtp backup@example.org>local:unix:private/lmtp" },
    { "list@localhost", 0,
      "carol@example.org>local:unix:private/lmtp dave@remote.example>smtp:[smart.example]:587 "
      "P:/bin/true:0" },
    { "prog@example.org", 0, "P:/usr/bin/filter:1" },
    { "loop1@example.org", 0, "loop1@example.org>local:unix:private/lmtp" },
    { "deep@example.org", 0, "B:deep@example.org:5.4.6" },
    /* Not local: aliases do not apply. */
    { "team@elsewhere.example", 0, "team@elsewhere.example>smtp:[smart.example]:587" },
    /* Virtual aliases. */
    { "info@valias.example", 0, "alice@example.org>local:unix:private/lmtp" },
    { "nobody@valias.example", 0, "B:nobody@valias.example:5.1.1" },
    { "anyone@catch.example", 0, "sink@example.org>local:unix:private/lmtp" },
    { "multi@vmail.example", 0,
      "a@vmail.example>local:unix:private/lmtp b@vmail.example>local:unix:private/lmtp" },
    { "ext+tag@example.org", 0, "extended+tag@example.org>local:unix:private/lmtp" },
    /* Canonical. */
    { "old@example.org", 0, "new@example.org>local:unix:private/lmtp" },
    /* Route only. */
    { "team@example.org", RESOLVE_FL_NOEXPAND, "team@example.org>local:unix:private/lmtp" },
};

static void test_rcpt(void **state)
{
    struct resolve_result res = { 0 };
    struct strbuf *got = strbuf_new(128), *why = strbuf_new(64);

    (void)state;
    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        const struct rcpt_case *c = &rcpt_cases[i];

        if (resolve_rcpt(res_ctx, c->in, c->flags, &res, why) != 0)
            fail_msg("%s: temporary failure: %s", c->in, strbuf_str(why));
        describe(&res, got);
        if (strcmp(strbuf_str(got), c->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", c->in, strbuf_str(got), c->want);
    }
    /* The expanded flag. */
    assert_int_equal(resolve_rcpt(res_ctx, "team@example.org", 0, &res, why), 0);
    assert_true(res.expanded);
    assert_int_equal(resolve_rcpt(res_ctx, "alice@example.org", 0, &res, why), 0);
    assert_false(res.expanded);
    resolve_result_clear(&res);
    strbuf_free(&got);
    strbuf_free(&why);
}

static void test_sender_and_local(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);

    (void)state;
    assert_int_equal(resolve_sender(res_ctx, "", out, why), 0);
    assert_string_equal(strbuf_str(out), "");
    assert_int_equal(resolve_sender(res_ctx, "joe@internal.example", out, why), 0);
    assert_string_equal(strbuf_str(out), "joe@example.org");
    assert_int_equal(resolve_sender(res_ctx, "old@example.org", out, why), 0);
    assert_string_equal(strbuf_str(out), "new@example.org");
    assert_int_equal(resolve_sender(res_ctx, "joe@other.example", out, why), 0);
    assert_string_equal(strbuf_str(out), "joe@other.example");
    assert_int_equal(resolve_is_local(res_ctx, "x@LOCALHOST", why), 1);
    assert_int_equal(resolve_is_local(res_ctx, "x", why), 1);
    assert_int_equal(resolve_is_local(res_ctx, "x@vmail.example", why), 0);
    strbuf_free(&out);
    strbuf_free(&why);
}

/* The rights of |command targets: the :include: file's owner, or
 * default_privs for a root-owned or file-less source (never uid 0). */
static const struct resolve_target *find_pipe(const struct resolve_result *res)
{
    for (size_t i = 0; i < res->n; i++)
        if (res->t[i].kind == RESOLVE_PIPE)
            return &res->t[i];
    fail_msg("no pipe target");
    return NULL;
}

static void test_owner(void **state)
{
    struct resolve_result res = { 0 };
    struct strbuf *why = strbuf_new(64);
    const struct resolve_target *t;
    struct passwd *pw = getpwnam("nobody");
    uid_t want_uid = geteuid() == 0 ? 12345 : geteuid();

    (void)state;
    assert_non_null(pw);
    /* inline: has no file: default_privs. */
    assert_int_equal(resolve_rcpt(res_ctx, "prog@example.org", 0, &res, why), 0);
    t = find_pipe(&res);
    assert_false(t->owner_known);
    assert_int_equal(t->owner_uid, pw->pw_uid);
    assert_int_equal(t->owner_gid, pw->pw_gid);
    /* An :include: file owned by someone: that owner. */
    if (geteuid() == 0)
        assert_int_equal(chown(include_path, 12345, 12346), 0);
    assert_int_equal(resolve_rcpt(res_ctx, "list@example.org", 0, &res, why), 0);
    t = find_pipe(&res);
    assert_true(t->owner_known);
    assert_int_equal(t->owner_uid, want_uid);
    if (geteuid() == 0) {
        assert_int_equal(t->owner_gid, 12346);
        /* Owned by root: default_privs again. */
        assert_int_equal(chown(include_path, 0, 0), 0);
        assert_int_equal(resolve_rcpt(res_ctx, "list@example.org", 0, &res, why), 0);
        t = find_pipe(&res);
        assert_false(t->owner_known);
        assert_int_equal(t->owner_uid, pw->pw_uid);
    }
    resolve_result_clear(&res);
    strbuf_free(&why);
}

/* An unreadable :include: file is a temporary failure, not a bounce. */
static void test_include_missing(void **state)
{
    struct resolve_result res = { 0 };
    struct strbuf *why = strbuf_new(64);

    (void)state;
    unlink(include_path);
    assert_int_equal(resolve_rcpt(res_ctx, "list@example.org", 0, &res, why), -1);
    assert_non_null(strstr(strbuf_str(why), include_path));
    assert_int_equal(res.n, 0);
    strbuf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias_parse),
        cmocka_unit_test(test_alias_parse_limits),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_sender_and_local),
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_include_missing),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
