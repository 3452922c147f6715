/*
 * test_deliver_proto.c - unit tests for lib/deliver_proto.c.
 *
 * Round trips of requests and replies through attr_format/attr_parse, a
 * table of malformed requests and replies (missing, extra, mistyped,
 * out-of-range, control characters, wrong counts), status code syntax,
 * Postfix's delay formatting, the optional mark_sent request attribute
 * and the queue file lock between agents and qmgr.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "deliver_proto.h"
#include "qfile.h"
#include "strbuf.h"

#define QID "1iHmFu0aEx3Rq"

static void fill_request(struct deliver_request *req, size_t n)
{
    char addr[64];

    deliver_request_init(req);
    req->path = strdup("active/" QID);
    req->qid = strdup(QID);
    req->nexthop = strdup("[127.0.0.1]:2525");
    req->transport = strdup("smtp");
    req->sender = strdup("");
    req->arrival_us = 1700000000000000L;
    req->active_us = 1700000000500000L;
    for (size_t i = 0; i < n; i++) {
        snprintf(addr, sizeof(addr), "user%zu@example.org", i);
        deliver_request_add_rcpt(req, addr, (long)i * 2, i % 2 ? "rfc822;o@example.org" : NULL,
                                 QFILE_NOTIFY_FAILURE);
    }
}

/* Format, serialise, parse back. */
static int reparse_request(const struct deliver_request *in, struct deliver_request *out,
                           struct strbuf *why)
{
    struct attr_list *l = attr_new(), *back = attr_new();
    struct strbuf *wire = strbuf_new(256);
    size_t used = 0;
    int rc;

    deliver_request_format(in, l);
    attr_format(l, wire);
    rc = attr_parse(strbuf_str(wire), strbuf_len(wire), back, NULL, &deliver_limits, &used, why);
    assert_int_equal(rc, 1);
    assert_int_equal(used, strbuf_len(wire));
    deliver_request_init(out);
    rc = deliver_request_parse(back, out, why);
    attr_free(&l);
    attr_free(&back);
    strbuf_free(&wire);
    return rc;
}

static void test_request_round_trip(void **state)
{
    static const size_t counts[] = { 1, 2, 50, DELIVER_RCPT_MAX };
    struct strbuf *why = strbuf_new(64);

    (void)state;
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        struct deliver_request in, out;

        fill_request(&in, counts[c]);
        assert_int_equal(reparse_request(&in, &out, why), 0);
        assert_string_equal(out.path, in.path);
        assert_string_equal(out.qid, QID);
        assert_string_equal(out.nexthop, in.nexthop);
        assert_string_equal(out.transport, "smtp");
        assert_string_equal(out.sender, "");
        assert_int_equal(out.arrival_us, in.arrival_us);
        assert_int_equal(out.active_us, in.active_us);
        assert_int_equal(out.nrcpt, counts[c]);
        for (size_t i = 0; i < counts[c]; i++) {
            assert_string_equal(out.rcpts[i].addr, in.rcpts[i].addr);
            assert_int_equal(out.rcpts[i].index, in.rcpts[i].index);
            assert_string_equal(out.rcpts[i].orcpt, in.rcpts[i].orcpt);
            assert_int_equal(out.rcpts[i].notify, QFILE_NOTIFY_FAILURE);
        }
        deliver_request_clear(&in);
        deliver_request_clear(&out);
    }
    strbuf_free(&why);
}

/* Malformed requests: a valid one-recipient request edited by a step. */
enum edit { E_DEL, E_STR, E_LONG };
struct req_case {
    const char *name;
    enum edit op;
    const char *attr;
    const char *sval;
    long lval;
    const char *why;
};

static const struct req_case req_cases[] = {
    { "no path", E_DEL, "path", NULL, 0, "\"path\"" },
    { "no qid", E_DEL, "qid", NULL, 0, "\"qid\"" },
    { "no sender", E_DEL, "sender", NULL, 0, "\"sender\"" },
    { "no nrcpt", E_DEL, "nrcpt", NULL, 0, "\"nrcpt\"" },
    { "no rcpt", E_DEL, "rcpt_0", NULL, 0, "\"rcpt_0\"" },
    { "no index", E_DEL, "rcpt_0_index", NULL, 0, "rcpt_0_index" },
    { "path escapes", E_STR, "path", "active/../../etc/passwd", 0, "is not active/" },
    { "path other queue", E_STR, "path", "deferred/" QID, 0, "is not active/" },
    { "bad qid", E_STR, "qid", "../x", 0, "invalid queue ID" },
    { "empty nexthop", E_STR, "nexthop", "", 0, "empty" },
    { "transport slash", E_STR, "transport", "../smtp", 0, "invalid transport" },
    { "control in sender", E_STR, "sender", "a\r\nb@c", 0, "control" },
    { "control in rcpt", E_STR, "rcpt_0", "x\x01@y", 0, "control" },
    { "zero nrcpt", E_LONG, "nrcpt", NULL, 0, "out of range" },
    { "huge nrcpt", E_LONG, "nrcpt", NULL, DELIVER_RCPT_MAX + 1, "out of range" },
    { "nrcpt too big for list", E_LONG, "nrcpt", NULL, 2, "\"rcpt_1\"" },
    { "negative index", E_LONG, "rcpt_0_index", NULL, -1, "out of range" },
    { "notify bits", E_LONG, "rcpt_0_notify", NULL, 0x10, "out of range" },
    { "negative time", E_LONG, "arrival_us", NULL, -5, "out of range" },
    { "extra attribute", E_STR, "bogus", "x", 0, "attributes for 1" },
    { "type mismatch", E_STR, "nrcpt", "1", 0, "non-numeric" },
};

/* Rebuild l from src with one edit applied. */
static void edit_list(const struct attr_list *src, const struct req_case *c,
                      struct attr_list *dst)
{
    bool done = false;

    attr_reset(dst);
    for (size_t i = 0; i < attr_count(src); i++) {
        const char *n = attr_name(src, i);
        long v;

        if (strcmp(n, c->attr) == 0) {
            done = true;
            if (c->op == E_STR)
                attr_add_str(dst, n, c->sval);
            else if (c->op == E_LONG)
                attr_add_long(dst, n, c->lval);
            continue;
        }
        if (attr_type_of(src, i) == ATTR_LONG) {
            assert_int_equal(attr_get_long(src, n, &v), 0);
            attr_add_long(dst, n, v);
        } else {
            attr_add_str(dst, n, attr_get_str(src, n));
        }
    }
    if (!done && c->op == E_STR)
        attr_add_str(dst, c->attr, c->sval);
    if (!done && c->op == E_LONG)
        attr_add_long(dst, c->attr, c->lval);
}

static void test_request_malformed(void **state)
{
    struct deliver_request req, out;
    struct attr_list *good = attr_new(), *bad = attr_new();
    struct strbuf *why = strbuf_new(64);

    (void)state;
    fill_request(&req, 1);
    deliver_request_format(&req, good);
    deliver_request_init(&out);
    assert_int_equal(deliver_request_parse(good, &out, why), 0);
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        const struct req_case *c = &req_cases[i];

        edit_list(good, c, bad);
        strbuf_reset(why);
        if (deliver_request_parse(bad, &out, why) != -1)
            fail_msg("case \"%s\" accepted", c->name);
        if (strstr(strbuf_str(why), c->why) == NULL)
            fail_msg("case \"%s\": reason \"%s\" lacks \"%s\"", c->name, strbuf_str(why), c->why);
        assert_int_equal(out.nrcpt, 0);
        assert_null(out.path);
    }
    deliver_request_clear(&req);
    attr_free(&good);
    attr_free(&bad);
    strbuf_free(&why);
}

/* Pipe targets: optional per recipient, all three attributes or none. */
static const struct req_case target_cases[] = {
    { "target not a command", E_STR, "rcpt_0_target", "bin/sh", 0, "neither" },
    { "empty command", E_STR, "rcpt_0_target", "|", 0, "neither" },
    { "control in target", E_STR, "rcpt_0_target", "|a\nb", 0, "control" },
    { "uid 0", E_LONG, "rcpt_0_uid", NULL, 0, "out of range" },
    { "negative gid", E_LONG, "rcpt_0_gid", NULL, -1, "out of range" },
    { "huge uid", E_LONG, "rcpt_0_uid", NULL, DELIVER_ID_MAX + 1, "out of range" },
    { "no uid", E_DEL, "rcpt_0_uid", NULL, 0, "rcpt_0_uid" },
    { "no gid", E_DEL, "rcpt_0_gid", NULL, 0, "rcpt_0_gid" },
    { "no target", E_DEL, "rcpt_0_target", NULL, 0, "attributes for 1" },
    { "uid as string", E_STR, "rcpt_0_uid", "1000", 0, "non-numeric" },
    { "target as number", E_LONG, "rcpt_0_target", NULL, 5, "attributes for 1" },
};

static void test_request_target(void **state)
{
    struct deliver_request in, out;
    struct attr_list *good = attr_new(), *bad = attr_new();
    struct strbuf *why = strbuf_new(64);

    (void)state;
    fill_request(&in, 3);
    deliver_request_set_target(&in, 0, "|/usr/bin/procmail -a \"$EXTENSION\"", 1000, 100);
    deliver_request_set_target(&in, 2, "/var/mail/archive", 65534, 65534);
    assert_int_equal(reparse_request(&in, &out, why), 0);
    assert_string_equal(out.rcpts[0].target, "|/usr/bin/procmail -a \"$EXTENSION\"");
    assert_int_equal(out.rcpts[0].uid, 1000);
    assert_int_equal(out.rcpts[0].gid, 100);
    assert_null(out.rcpts[1].target);
    assert_string_equal(out.rcpts[2].target, "/var/mail/archive");
    assert_int_equal(out.rcpts[2].uid, 65534);
    deliver_request_clear(&in);
    deliver_request_clear(&out);

    fill_request(&in, 1);
    deliver_request_set_target(&in, 0, "|/bin/cat", 1000, 1000);
    deliver_request_format(&in, good);
    assert_int_equal(deliver_request_parse(good, &out, why), 0);
    for (size_t i = 0; i < sizeof(target_cases) / sizeof(target_cases[0]); i++) {
        const struct req_case *c = &target_cases[i];

        edit_list(good, c, bad);
        strbuf_reset(why);
        if (deliver_request_parse(bad, &out, why) != -1)
            fail_msg("case \"%s\" accepted", c->name);
        if (strstr(strbuf_str(why), c->why) == NULL)
            fail_msg("case \"%s\": reason \"%s\" lacks \"%s\"", c->name, strbuf_str(why), c->why);
        assert_int_equal(out.nrcpt, 0);
    }
    /* A uid and gid without a target: an unexpected attribute. */
    deliver_request_clear(&in);
    fill_request(&in, 1);
    deliver_request_format(&in, good);
    attr_add_long(good, "rcpt_0_uid", 1000);
    attr_add_long(good, "rcpt_0_gid", 1000);
    assert_int_equal(deliver_request_parse(good, &out, why), -1);
    deliver_request_clear(&in);
    attr_free(&good);
    attr_free(&bad);
    strbuf_free(&why);
}

/* mark_sent: optional, 0 or 1, absent means 0, counted in the total. */
static const struct req_case mark_cases[] = {
    { "mark 2", E_LONG, "mark_sent", NULL, 2, "out of range" },
    { "mark negative", E_LONG, "mark_sent", NULL, -1, "out of range" },
    { "mark as string", E_STR, "mark_sent", "1", 0, "non-numeric" },
};

static void test_request_mark_sent(void **state)
{
    struct deliver_request in, out;
    struct attr_list *good = attr_new(), *bad = attr_new();
    struct strbuf *why = strbuf_new(64);

    (void)state;
    fill_request(&in, 2);
    assert_int_equal(reparse_request(&in, &out, why), 0);
    assert_false(out.mark_sent);
    deliver_request_clear(&out);
    in.mark_sent = true;
    assert_int_equal(reparse_request(&in, &out, why), 0);
    assert_true(out.mark_sent);
    assert_int_equal(out.nrcpt, 2);
    deliver_request_clear(&out);
    deliver_request_format(&in, good);
    assert_true(attr_has(good, "mark_sent"));
    for (size_t i = 0; i < sizeof(mark_cases) / sizeof(mark_cases[0]); i++) {
        const struct req_case *c = &mark_cases[i];

        edit_list(good, c, bad);
        strbuf_reset(why);
        if (deliver_request_parse(bad, &out, why) != -1)
            fail_msg("case \"%s\" accepted", c->name);
        if (strstr(strbuf_str(why), c->why) == NULL)
            fail_msg("case \"%s\": reason \"%s\" lacks \"%s\"", c->name, strbuf_str(why), c->why);
        assert_false(out.mark_sent);
    }
    /* mark_sent 0 given explicitly is accepted; a second extra is not. */
    edit_list(good, &(struct req_case){ "mark 0", E_LONG, "mark_sent", NULL, 0, "" }, bad);
    assert_int_equal(deliver_request_parse(bad, &out, why), 0);
    assert_false(out.mark_sent);
    attr_add_str(bad, "bogus", "x");
    assert_int_equal(deliver_request_parse(bad, &out, why), -1);
    deliver_request_clear(&in);
    deliver_request_clear(&out);
    attr_free(&good);
    attr_free(&bad);
    strbuf_free(&why);
}

/* The queue file lock: agents share it, qmgr's check sees it. */
static void test_queue_file_lock(void **state)
{
    char path[] = "/tmp/test_deliver_lock.XXXXXX";
    struct strbuf *why = strbuf_new(64);
    int fd = mkstemp(path), a, b, ex;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(deliver_queue_file_busy(path, why), 0);
    a = deliver_lock_queue_file(path, why);
    assert_true(a >= 0);
    assert_int_equal(deliver_queue_file_busy(path, why), 1);
    b = deliver_lock_queue_file(path, why);     /* two agents, one message */
    assert_true(b >= 0);
    close(a);
    assert_int_equal(deliver_queue_file_busy(path, why), 1);
    close(b);
    assert_int_equal(deliver_queue_file_busy(path, why), 0);
    /* Held exclusively for longer than the agent waits: the agent gives up. */
    ex = open(path, O_RDONLY);
    assert_true(ex >= 0);
    assert_int_equal(flock(ex, LOCK_EX), 0);
    strbuf_reset(why);
    assert_int_equal(deliver_lock_queue_file(path, why), -1);
    assert_non_null(strstr(strbuf_str(why), "lock "));
    close(ex);
    unlink(path);
    strbuf_reset(why);
    assert_int_equal(deliver_queue_file_busy(path, why), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(deliver_lock_queue_file(path, why), -1);
    strbuf_free(&why);
}

static void test_reply_round_trip(void **state)
{
    struct deliver_reply rep, back;
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(64);

    (void)state;
    deliver_reply_init(&rep, 3);
    deliver_reply_set_relay(&rep, "mx.example.org[192.0.2.1]:25");
    rep.throttle = true;
    deliver_reply_set(&rep, 0, DELIVER_SENT, "2.0.0", "250 2.0.0 Ok: queued as X");
    deliver_reply_set(&rep, 2, DELIVER_BOUNCE, "5.1.1", "550 5.1.1 unknown user");
    deliver_reply_format(&rep, l);
    memset(&back, 0, sizeof(back));
    assert_int_equal(deliver_reply_parse(l, 3, &back, why), 0);
    assert_string_equal(back.relay, "mx.example.org[192.0.2.1]:25");
    assert_true(back.throttle);
    assert_int_equal(back.st[0].status, DELIVER_SENT);
    assert_string_equal(back.st[0].reply, "250 2.0.0 Ok: queued as X");
    /* Recipient 1 was never set: the default is a deferral. */
    assert_int_equal(back.st[1].status, DELIVER_DEFER);
    assert_string_equal(back.st[1].dsn, "4.3.0");
    assert_int_equal(back.st[2].status, DELIVER_BOUNCE);
    assert_string_equal(back.st[2].dsn, "5.1.1");
    /* Wrong expected count. */
    assert_int_equal(deliver_reply_parse(l, 2, &back, why), -1);
    assert_non_null(strstr(strbuf_str(why), "2 expected"));
    assert_null(back.st);
    deliver_reply_clear(&rep);
    deliver_reply_clear(&back);
    attr_free(&l);
    strbuf_free(&why);
}

struct reply_case {
    const char *name;
    long status;
    const char *dsn;
    const char *text;
    const char *why;
};

static const struct reply_case reply_cases[] = {
    { "ok", 0, "2.0.0", "250 ok", NULL },
    { "status 3", 3, "4.0.0", "x", "bad status" },
    { "status 9", 9, "4.0.0", "x", "out of range" },
    { "class mismatch", 0, "5.0.0", "x", "bad status code" },
    { "dsn garbage", 4, "4.x.0", "x", "bad status code" },
    { "dsn four digits", 4, "4.1234.0", "x", "bad status code" },
    { "dsn trailing", 5, "5.1.1 ", "x", "bad status code" },
    { "text with newline", 5, "5.1.1", "550 a\nb", "control" },
};

static void test_reply_malformed(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct attr_list *l = attr_new();
    struct deliver_reply back;

    (void)state;
    memset(&back, 0, sizeof(back));
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *c = &reply_cases[i];
        int rc;

        attr_reset(l);
        attr_add_str(l, "relay", "none");
        attr_add_long(l, "throttle", 0);
        attr_add_long(l, "nrcpt", 1);
        attr_add_long(l, "status_0", c->status);
        attr_add_str(l, "dsn_0", c->dsn);
        attr_add_str(l, "reply_0", c->text);
        strbuf_reset(why);
        rc = deliver_reply_parse(l, 1, &back, why);
        if (c->why == NULL) {
            if (rc != 0)
                fail_msg("case \"%s\" refused: %s", c->name, strbuf_str(why));
        } else {
            if (rc != -1)
                fail_msg("case \"%s\" accepted", c->name);
            if (strstr(strbuf_str(why), c->why) == NULL)
                fail_msg("case \"%s\": \"%s\" lacks \"%s\"", c->name, strbuf_str(why), c->why);
        }
    }
    /* Missing throttle, extra attribute. */
    attr_reset(l);
    attr_add_str(l, "relay", "none");
    attr_add_long(l, "nrcpt", 0);
    assert_int_equal(deliver_reply_parse(l, 0, &back, why), -1);
    attr_add_long(l, "throttle", 0);
    assert_int_equal(deliver_reply_parse(l, 0, &back, why), 0);
    attr_add_str(l, "extra", "x");
    assert_int_equal(deliver_reply_parse(l, 0, &back, why), -1);
    deliver_reply_clear(&back);
    attr_free(&l);
    strbuf_free(&why);
}

static void test_dsn_valid(void **state)
{
    static const struct { const char *s; bool ok; } cases[] = {
        { "2.0.0", true }, { "4.4.1", true }, { "5.7.1", true }, { "5.123.456", true },
        { "3.0.0", false }, { "5.0", false }, { "5..0", false }, { "5.0.", false },
        { "", false }, { "5", false }, { "5.1.1x", false }, { "x.1.1", false },
        { "5.1234.1", false }, { "5.1.1234", false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (deliver_dsn_valid(cases[i].s) != cases[i].ok)
            fail_msg("\"%s\" should be %s", cases[i].s, cases[i].ok ? "valid" : "invalid");
}

static void test_delays(void **state)
{
    static const struct {
        long arr, act, start, conn, now;
        const char *expect;
    } cases[] = {
        { 0, 0, 0, 0, 0, "delay=0, delays=0/0/0/0" },
        { 0, 100000, 120000, 720000, 1200000, "delay=1.2, delays=0.1/0.02/0.6/0.48" },
        { 0, 0, 0, 0, 12500000, "delay=12, delays=0/0/0/12" },
        { 0, 5000, 5000, 5000, 3456789, "delay=3.4, delays=0/0/0/3.4" },
        /* A clock step backwards never prints a negative number. */
        { 1000000, 0, 0, 0, 0, "delay=0, delays=0/0/0/0" },
    };
    struct strbuf *out = strbuf_new(64);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(out);
        deliver_format_delays(out, cases[i].arr, cases[i].act, cases[i].start, cases[i].conn,
                              cases[i].now);
        assert_string_equal(strbuf_str(out), cases[i].expect);
    }
    assert_string_equal(deliver_status_name(DELIVER_SENT), "sent");
    assert_string_equal(deliver_status_name(DELIVER_DEFER), "deferred");
    assert_string_equal(deliver_status_name(DELIVER_BOUNCE), "bounced");
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_target),
        cmocka_unit_test(test_request_mark_sent),
        cmocka_unit_test(test_queue_file_lock),
        cmocka_unit_test(test_reply_round_trip),
        cmocka_unit_test(test_reply_malformed),
        cmocka_unit_test(test_dsn_valid),
        cmocka_unit_test(test_delays),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
