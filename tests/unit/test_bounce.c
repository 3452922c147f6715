/*
 * test_bounce.c - unit tests for lib/bounce.c.
 *
 * Who a notice goes to (sender, postmaster for a bounce of a bounce,
 * nobody for a failed double bounce); the composed DSN for each kind and
 * RET (MIME structure, per-recipient fields, ORCPT, headers-only vs
 * full, size limit); and a notice queued as a real queue file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounce.h"
#include "conf.h"
#include "params.h"
#include "qfile.h"
#include "strbuf.h"

static char qdir[64];
static char orig_path[256];

static const char body[] =
    "From: sender@example.org\nTo: rcpt@remote.example\nSubject: hello\n\n"
    "line one of the body\nline two of the body\nSECRET-BODY-MARKER\n";

static int setup(void **state)
{
    struct strbuf *why = strbuf_new(64), *p = strbuf_new(64);
    static const char cf[] = "myhostname = mx.example.org\nmyorigin = example.org\n";
    struct qfile_writer *w;

    (void)state;
    conf_unload();
    assert_int_equal(conf_load_buffer("t/main.cf", cf, sizeof(cf) - 1, why), 0);
    snprintf(qdir, sizeof(qdir), "/tmp/test_bounce.%ld", (long)getpid());
    strbuf_printf(p, "%s/incoming", qdir);
    assert_int_equal(mkdir(qdir, 0700), 0);
    assert_int_equal(mkdir(strbuf_str(p), 0700), 0);
    w = qfile_create(qdir, why);
    assert_non_null(w);
    qfile_add_sender(w, "sender@example.org");
    qfile_add_rcpt(w, "rcpt@remote.example", "rfc822;orig@remote.example", QFILE_NOTIFY_FAILURE);
    qfile_add_content(w, body, sizeof(body) - 1);
    assert_int_equal(qfile_commit(w, why), 0);
    snprintf(orig_path, sizeof(orig_path), "%s", qfile_writer_path(w));
    qfile_writer_free(&w);
    strbuf_free(&why);
    strbuf_free(&p);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", qdir);
    assert_int_equal(system(cmd), 0);
    conf_unload();
    return 0;
}

static void test_recipient(void **state)
{
    static const struct {
        const char *sender;
        bool send;
        const char *to, *env;
    } cases[] = {
        { "joe@example.net", true, "joe@example.net", "" },
        { "", true, "postmaster@example.org", "double-bounce@example.org" },
        { "double-bounce@example.org", false, NULL, NULL },
        { "double-bounce", false, NULL, NULL },
        { "double-bouncer@example.org", true, "double-bouncer@example.org", "" },
    };
    struct strbuf *to = strbuf_new(64), *env = strbuf_new(64);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool send = bounce_recipient(cases[i].sender, to, env);
        if (send != cases[i].send)
            fail_msg("sender \"%s\": send %d", cases[i].sender, send);
        if (send) {
            assert_string_equal(strbuf_str(to), cases[i].to);
            assert_string_equal(strbuf_str(env), cases[i].env);
        }
    }
    strbuf_free(&to);
    strbuf_free(&env);
}

static void base_msg(struct bounce_msg *m, enum bounce_kind kind, char ret)
{
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->qid = "1iHmFu0aEx3Rq";
    m->orig_sender = "sender@example.org";
    m->to = "sender@example.org";
    m->env_sender = "";
    m->envid = "ENV123";
    m->arrival.tv_sec = 1700000000;
    m->ret = ret;
    m->retry_until = 1700000000 + 5 * 86400;
    m->now = 1700003600;
    m->hostname = "mx.example.org";
    m->size_limit = 50000;
}

struct compose_case {
    const char *name;
    enum bounce_kind kind;
    char ret;
    long limit;
    const char *must[8];
    const char *must_not[4];
};

static const struct compose_case compose_cases[] = {
    { "failed, RET unspecified: full message", BOUNCE_FAILED, 0, 50000,
      { "Subject: Undelivered Mail Returned to Sender", "report-type=delivery-status",
        "Action: failed", "Status: 5.1.1", "Original-Recipient: rfc822; orig@remote.example",
        "Content-Type: message/rfc822", "SECRET-BODY-MARKER", "Remote-MTA: dns; mx.remote.example" },
      { "Will-Retry-Until", NULL } },
    { "failed, RET=HDRS: headers only", BOUNCE_FAILED, 'H', 50000,
      { "Content-Type: text/rfc822-headers", "Subject: hello", "Original-Envelope-Id: ENV123",
        "Diagnostic-Code: smtp; 550 5.1.1 unknown user", NULL },
      { "SECRET-BODY-MARKER", "message/rfc822", NULL } },
    { "failed, size limit cuts the body", BOUNCE_FAILED, 'F', 70,
      { "Content-Type: message/rfc822", "Subject: hello", NULL },
      { "SECRET-BODY-MARKER", NULL } },
    { "delayed: warning with retry time, headers only", BOUNCE_DELAYED, 'F', 50000,
      { "Subject: Delayed Mail (still being retried)", "Action: delayed", "Will-Retry-Until: ",
        "THIS IS A WARNING ONLY", "5 days old", "text/rfc822-headers", NULL },
      { "SECRET-BODY-MARKER", NULL } },
    { "success report", BOUNCE_SUCCESS, 0, 50000,
      { "Subject: Successful Mail Delivery Report", "Action: delivered", NULL },
      { "SECRET-BODY-MARKER", NULL } },
};

static void test_compose(void **state)
{
    struct strbuf *out = strbuf_new(4096), *why = strbuf_new(64);
    struct qfile *qf = qfile_open(orig_path, 0, NULL, why);
    struct bounce_rcpt r = {
        "rcpt@remote.example", "rfc822;orig@remote.example", "5.1.1",
        "550 5.1.1 unknown user", "mx.remote.example",
    };

    (void)state;
    assert_non_null(qf);
    for (size_t i = 0; i < sizeof(compose_cases) / sizeof(compose_cases[0]); i++) {
        const struct compose_case *c = &compose_cases[i];
        struct bounce_msg m;
        const char *text;

        base_msg(&m, c->kind, c->ret);
        m.size_limit = c->limit;
        r.status = c->kind == BOUNCE_FAILED ? "5.1.1" : c->kind == BOUNCE_DELAYED ? "4.4.1"
                                                                                   : "2.0.0";
        assert_int_equal(bounce_compose(&m, &r, 1, qf, "1iHmFv0000ABC", out, why), 0);
        text = strbuf_str(out);
        for (size_t k = 0; k < 8 && c->must[k] != NULL; k++)
            if (strstr(text, c->must[k]) == NULL)
                fail_msg("%s: lacks \"%s\":\n%s", c->name, c->must[k], text);
        for (size_t k = 0; k < 4 && c->must_not[k] != NULL; k++)
            if (strstr(text, c->must_not[k]) != NULL)
                fail_msg("%s: has \"%s\"", c->name, c->must_not[k]);
        /* Three parts and the closing boundary; no CR anywhere. */
        assert_non_null(strstr(text, "--1iHmFv0000ABC.1700003600/mx.example.org--\n"));
        assert_null(strchr(text, '\r'));
        assert_non_null(strstr(text, "Message-Id: <1iHmFv0000ABC@mx.example.org>"));
    }
    qfile_close(&qf);
    strbuf_free(&out);
    strbuf_free(&why);
}

/* Long diagnostics are folded: no line over 80 bytes in the report part. */
static void test_fold(void **state)
{
    struct strbuf *out = strbuf_new(4096), *why = strbuf_new(64), *diag = strbuf_new(512);
    struct qfile *qf = qfile_open(orig_path, 0, NULL, why);
    struct bounce_rcpt r = { "rcpt@remote.example", NULL, "5.0.0", NULL, NULL };
    struct bounce_msg m;
    const char *p, *end;

    (void)state;
    for (int i = 0; i < 40; i++)
        strbuf_append(diag, "word ");
    r.diag = strbuf_str(diag);
    base_msg(&m, BOUNCE_FAILED, 'H');
    assert_int_equal(bounce_compose(&m, &r, 1, qf, "1iHmFv0000ABC", out, why), 0);
    p = strstr(strbuf_str(out), "Diagnostic-Code:");
    assert_non_null(p);
    end = strstr(p, "\n\n");
    for (const char *l = p; l < end;) {
        const char *nl = strchr(l, '\n');
        assert_true(nl - l <= 80);
        l = nl + 1;
    }
    qfile_close(&qf);
    strbuf_free(&out);
    strbuf_free(&why);
    strbuf_free(&diag);
}

static void test_queue(void **state)
{
    struct strbuf *why = strbuf_new(64), *path = strbuf_new(64);
    struct qfile *orig = qfile_open(orig_path, 0, NULL, why), *qf;
    struct bounce_rcpt r = { "rcpt@remote.example", NULL, "5.1.1", "550 no", NULL };
    struct bounce_msg m;
    char qid[QID_BUFSIZE];
    const struct qfile_env *env;

    (void)state;
    base_msg(&m, BOUNCE_FAILED, 0);
    assert_int_equal(bounce_queue(qdir, &m, &r, 1, orig, qid, why), 0);
    strbuf_printf(path, "%s/incoming/%s", qdir, qid);
    qf = qfile_open(strbuf_str(path), 0, NULL, why);
    if (qf == NULL)
        fail_msg("%s: %s", strbuf_str(path), strbuf_str(why));
    env = qfile_env(qf);
    assert_string_equal(env->sender, "");
    assert_int_equal(env->nrcpt, 1);
    assert_string_equal(env->rcpts[0].addr, "sender@example.org");
    assert_int_equal(env->rcpts[0].notify, QFILE_NOTIFY_NEVER);
    assert_string_equal(qfile_attr(qf, QFILE_ATTR_ORIGIN), "bounce");
    assert_true(env->content_size > sizeof(body));
    qfile_close(&qf);
    qfile_close(&orig);
    /* A queue directory without incoming/: nothing queued, a reason. */
    orig = qfile_open(orig_path, 0, NULL, why);
    assert_int_equal(bounce_queue("/nonexistent-facteur-dir", &m, &r, 1, orig, qid, why), -1);
    assert_true(strbuf_len(why) > 0);
    qfile_close(&orig);
    strbuf_free(&why);
    strbuf_free(&path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipient),
        cmocka_unit_test(test_compose),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_queue),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
