/*
 * test_queue_scan.c - the queue commands' shared logic: the defer-log
 * parser (well-formed, malformed, over-long, NUL, too big, every split
 * point), JSON quoting (escapes, UTF-8 and broken UTF-8), the mailq and
 * JSON layouts against golden text, site matching, and, on a queue
 * directory in /tmp built with lib/qfile: listing, finding, loading with
 * done recipients and delay reasons, corrupt files, moves, deletion,
 * kicking one message and flushing through a FIFO door.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "queue_scan.h"
#include "strbuf.h"

static char dir[64];

/* ---- defer logs ------------------------------------------------------ */

struct collected {
    struct strbuf *text;
};

static void collect(const char *addr, const char *reason, void *ctx)
{
    struct collected *c = ctx;

    strbuf_appendf(c->text, "[%s|%s]", addr, reason);
}

struct defer_case {
    const char *name;
    const char *input;
    size_t len;                 /* 0: strlen(input) */
    int count;
    const char *expect;
};

static const struct defer_case defer_cases[] = {
    {"one", "recipient=a@b reason=host down\n", 0, 1, "[a@b|host down]"},
    {"two", "recipient=a@b reason=x\nrecipient=c@d reason=y z\n", 0, 2, "[a@b|x][c@d|y z]"},
    {"no final newline", "recipient=a@b reason=late", 0, 1, "[a@b|late]"},
    {"empty reason", "recipient=a@b reason=\n", 0, 1, "[a@b|]"},
    {"empty", "", 0, 0, ""},
    {"blank lines", "\n\n\n", 0, 0, ""},
    {"no reason key", "recipient=a@b\n", 0, 0, ""},
    {"no recipient key", "rcpt=a@b reason=x\n", 0, 0, ""},
    {"empty address", "recipient= reason=x\n", 0, 0, ""},
    {"reason in reason", "recipient=a@b reason=x reason=y\n", 0, 1, "[a@b|x reason=y]"},
    {"quoted space", "recipient=\"a b\"@c reason=r\n", 0, 1, "[\"a b\"@c|r]"},
    {"garbage then good", "\x01\x02zz\nrecipient=a@b reason=ok\n", 0, 1, "[a@b|ok]"},
    {"NUL skipped", "recipient=a\0b reason=x\nrecipient=c@d reason=y\n", 46, 1, "[c@d|y]"},
    {"CRLF kept in reason", "recipient=a@b reason=x\r\n", 0, 1, "[a@b|x\r]"},
};

static void test_defer_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(defer_cases) / sizeof(defer_cases[0]); i++) {
        const struct defer_case *tc = &defer_cases[i];
        size_t len = tc->len ? tc->len : strlen(tc->input);
        struct collected c = {strbuf_new(64)};
        int n = queue_defer_parse(tc->input, len, collect, &c);

        if (n != tc->count || strcmp(strbuf_str(c.text), tc->expect) != 0)
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", tc->name, n, strbuf_str(c.text),
                     tc->count, tc->expect);
        strbuf_free(&c.text);
    }
}

/* Each split point of a two-line log: the first part alone parses its
 * whole lines; the parser never reads past len. */
static void test_defer_parse_splits(void **state)
{
    static const char text[] = "recipient=a@b reason=one\nrecipient=c@d reason=two\n";
    (void)state;
    for (size_t cut = 0; cut <= sizeof(text) - 1; cut++) {
        char *copy = xmalloc(cut ? cut : 1);
        struct collected c = {strbuf_new(64)};
        int n;

        memcpy(copy, text, cut);
        n = queue_defer_parse(copy, cut, collect, &c);
        assert_true(n >= 0 && n <= 2);
        if (cut >= 26)
            assert_memory_equal(strbuf_str(c.text), "[a@b|one]", 9);
        if (cut == sizeof(text) - 1)
            assert_string_equal(strbuf_str(c.text), "[a@b|one][c@d|two]");
        strbuf_free(&c.text);
        free(copy);
    }
}

static void test_defer_parse_limits(void **state)
{
    struct collected c = {strbuf_new(64)};
    struct strbuf *big = strbuf_new(QUEUE_DEFER_LINE_MAX + 64);
    char *huge;
    (void)state;

    /* A line over QUEUE_DEFER_LINE_MAX is skipped, the next one kept. */
    strbuf_append(big, "recipient=a@b reason=");
    while (strbuf_len(big) <= QUEUE_DEFER_LINE_MAX)
        strbuf_appendc(big, 'x');
    strbuf_append(big, "\nrecipient=c@d reason=short\n");
    assert_int_equal(queue_defer_parse(strbuf_str(big), strbuf_len(big), collect, &c), 1);
    assert_string_equal(strbuf_str(c.text), "[c@d|short]");
    /* A log over QUEUE_DEFER_FILE_MAX is refused whole. */
    huge = xcalloc(QUEUE_DEFER_FILE_MAX + 1, 1);
    memcpy(huge, "recipient=a@b reason=x\n", 23);
    strbuf_reset(c.text);
    assert_int_equal(queue_defer_parse(huge, QUEUE_DEFER_FILE_MAX + 1, collect, &c), -1);
    assert_int_equal(strbuf_len(c.text), 0);
    free(huge);
    strbuf_free(&big);
    strbuf_free(&c.text);
}

/* ---- output ---------------------------------------------------------- */

struct quote_case {
    const char *name;
    const char *input;
    const char *expect;
};

static const struct quote_case quote_cases[] = {
    {"plain", "a@b.example", "a@b.example"},
    {"quote and backslash", "\"x\\y\"", "\\\"x\\\\y\\\""},
    {"named controls", "\b\f\n\r\t", "\\b\\f\\n\\r\\t"},
    {"other controls", "\x01\x1f\x7f", "\\u0001\\u001F\\u007F"},
    {"utf-8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa8"},
    {"lone continuation", "a\x80z", "a?z"},
    {"overlong", "\xc0\xaf", "??"},
    {"surrogate", "\xed\xa0\x80", "???"},
    {"past U+10FFFF", "\xf4\x90\x80\x80", "????"},
    {"cut at the end", "ok\xe2\x82", "ok??"},
    {"empty", "", ""},
};

static void test_json_quote_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(quote_cases) / sizeof(quote_cases[0]); i++) {
        struct strbuf *out = strbuf_new(64);

        queue_json_quote(out, quote_cases[i].input);
        if (strcmp(strbuf_str(out), quote_cases[i].expect) != 0)
            fail_msg("%s: got \"%s\"", quote_cases[i].name, strbuf_str(out));
        strbuf_free(&out);
    }
}

static struct queue_msg_rcpt golden_rcpts[] = {
    {"r1@example.com", "connect to mx.example.com[192.0.2.1]:25: Connection refused"},
    {"r2@example.com", "connect to mx.example.com[192.0.2.1]:25: Connection refused"},
    {"r3@example.net", ""},
};

static struct queue_msg golden_msg = {
    .qid = "1xW1Ua3cBPk3oG",
    .queue = "deferred",
    .arrival = 1795564862,      /* Wed Nov 25 00:01:02 2026 UTC */
    .size = 1234,
    .sender = "sender@example.org",
    .rcpts = golden_rcpts,
    .nrcpt = 3,
};

static void test_mailq_layout(void **state)
{
    struct strbuf *out = strbuf_new(512);
    struct queue_msg m = golden_msg;
    (void)state;

    queue_format_heading(out);
    queue_format_mailq(out, &m);
    assert_string_equal(strbuf_str(out),
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
        "1xW1Ua3cBPk3oG    1234 Wed Nov 25 00:01:02  sender@example.org\n"
        "                 (connect to mx.example.com[192.0.2.1]:25: Connection refused)\n"
        "                                         r1@example.com\n"
        "                                         r2@example.com\n"
        "                                                          (reason unavailable)\n"
        "                                         r3@example.net\n");
    /* Active gets '*', hold '!', the null sender shows as MAILER-DAEMON,
     * and with no reason at all there is no reason line. */
    strbuf_reset(out);
    m.queue = "active";
    m.sender = "";
    m.nrcpt = 1;
    golden_rcpts[0].reason = "";
    queue_format_mailq(out, &m);
    assert_string_equal(strbuf_str(out),
        "1xW1Ua3cBPk3oG*    1234 Wed Nov 25 00:01:02  MAILER-DAEMON\n"
        "                                         r1@example.com\n");
    strbuf_reset(out);
    m.queue = "hold";
    m.qid[11] = 0;
    m.arrival = 1793836862;     /* Thu Nov  5 00:01:02 2026: a padded day */
    queue_format_mailq(out, &m);
    assert_string_equal(strbuf_str(out),
        "1xW1Ua3cBPk!    1234 Thu Nov  5 00:01:02  MAILER-DAEMON\n"
        "                                         r1@example.com\n");
    golden_rcpts[0].reason = "connect to mx.example.com[192.0.2.1]:25: Connection refused";
    strbuf_free(&out);
}

static void test_summary(void **state)
{
    static const struct { uint64_t size; size_t count; const char *expect; } cases[] = {
        {0, 0, "Mail queue is empty\n"},
        {1234, 1, "\n-- 1 Kbytes in 1 Request.\n"},
        {1023, 2, "\n-- 0 Kbytes in 2 Requests.\n"},
        {10u * 1024 * 1024, 300, "\n-- 10240 Kbytes in 300 Requests.\n"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf *out = strbuf_new(64);

        queue_format_summary(out, cases[i].size, cases[i].count);
        assert_string_equal(strbuf_str(out), cases[i].expect);
        strbuf_free(&out);
    }
}

static void test_json_layout(void **state)
{
    struct strbuf *out = strbuf_new(512);
    struct queue_msg m = golden_msg;
    (void)state;

    m.nrcpt = 3;
    m.sender = "\"odd\\\"\"@example.org";
    queue_format_json(out, &m);
    assert_string_equal(strbuf_str(out),
        "{\"queue_name\": \"deferred\", \"queue_id\": \"1xW1Ua3cBPk3oG\", "
        "\"arrival_time\": 1795564862, \"message_size\": 1234, \"forced_expire\": false, "
        "\"sender\": \"\\\"odd\\\\\\\"\\\"@example.org\", \"recipients\": ["
        "{\"address\": \"r1@example.com\", \"delay_reason\": "
        "\"connect to mx.example.com[192.0.2.1]:25: Connection refused\"}, "
        "{\"address\": \"r2@example.com\", \"delay_reason\": "
        "\"connect to mx.example.com[192.0.2.1]:25: Connection refused\"}, "
        "{\"address\": \"r3@example.net\"}]}\n");
    strbuf_reset(out);
    m.nrcpt = 0;
    m.sender = "";
    queue_format_json(out, &m);
    assert_non_null(strstr(strbuf_str(out), "\"sender\": \"\", \"recipients\": []}\n"));
    strbuf_free(&out);
}

static void test_site_match(void **state)
{
    static struct queue_msg_rcpt rcpts[] = {
        {"a@Example.COM", ""}, {"b@mail.example.net", ""}, {"no-domain", ""},
    };
    static const struct { const char *site; bool match; } cases[] = {
        {"example.com", true}, {"EXAMPLE.com", true}, {"mail.example.net", true},
        {".example.net", true}, {".example.com", false}, {"example.net", false},
        {"xample.com", false}, {"", false}, {".", false}, {"no-domain", false},
    };
    struct queue_msg m = {.rcpts = rcpts, .nrcpt = 3};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (queue_msg_matches_site(&m, cases[i].site) != cases[i].match)
            fail_msg("site \"%s\": want %d", cases[i].site, cases[i].match);
}

/* ---- on a queue directory --------------------------------------------- */

static void path_of(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", dir, rel);
}

/* Queue a message with lib/qfile into incoming/, then move it to queue
 * with a plain rename (the state under test is the starting point). */
static void make_msg(const char *queue, const char *sender, const char *const *rcpts,
                     char qid[QID_BUFSIZE])
{
    struct strbuf *why = strbuf_new(64);
    struct qfile_writer *w = qfile_create(dir, why);
    char from[256], to[256];

    assert_non_null(w);
    qfile_add_sender(w, sender);
    for (; *rcpts != NULL; rcpts++)
        qfile_add_rcpt(w, *rcpts, NULL, 0);
    qfile_add_content(w, "Subject: t\n\nbody\n", 17);
    if (qfile_commit(w, why) < 0)
        fail_msg("commit: %s", strbuf_str(why));
    strcpy(qid, qfile_writer_qid(w));
    qfile_writer_free(&w);
    if (strcmp(queue, "incoming") != 0) {
        snprintf(from, sizeof(from), "%s/incoming/%s", dir, qid);
        snprintf(to, sizeof(to), "%s/%s/%s", dir, queue, qid);
        assert_int_equal(rename(from, to), 0);
    }
    strbuf_free(&why);
}

static void write_text(const char *rel, const char *text)
{
    char p[256];
    FILE *f;

    path_of(p, sizeof(p), rel);
    assert_non_null(f = fopen(p, "w"));
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *queue, const char *qid)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s/%s", dir, queue, qid);
    return access(p, F_OK) == 0;
}

static void empty_queues(void)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf %s/*/* %s/*/.tmp.* 2>/dev/null", dir, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_list_and_find(void **state)
{
    static const char *const r1[] = {"x@example.com", NULL};
    char a[QID_BUFSIZE], b[QID_BUFSIZE], c[QID_BUFSIZE], p[256];
    struct strbuf *why = strbuf_new(64);
    struct queue_entry *list = NULL;
    size_t n = 0;
    (void)state;

    empty_queues();
    make_msg("deferred", "s@example.org", r1, a);
    make_msg("deferred", "s@example.org", r1, b);
    make_msg("hold", "s@example.org", r1, c);
    write_text("deferred/not-a-qid", "x");
    write_text("deferred/.tmp.1.2.3", "x");
    assert_int_equal(queue_scan_list(dir, "deferred", &list, &n, why), 0);
    assert_int_equal(n, 2);
    assert_true(strcmp(list[0].qid, list[1].qid) < 0);
    assert_string_equal(list[0].queue, "deferred");
    /* Appending: hold's entry goes after the deferred ones. */
    assert_int_equal(queue_scan_list(dir, "hold", &list, &n, why), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[2].qid, c);
    free(list);
    list = NULL;
    n = 0;
    /* A queue directory that does not exist is empty; a name that is
     * not a queue is refused. */
    path_of(p, sizeof(p), "maildrop");
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(queue_scan_list(dir, "maildrop", &list, &n, why), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(queue_scan_list(dir, "../etc", &list, &n, why), -1);
    assert_int_equal(queue_scan_list(dir, "defer", &list, &n, why), -1);
    assert_string_equal(queue_scan_find(dir, a), "deferred");
    assert_string_equal(queue_scan_find(dir, c), "hold");
    assert_null(queue_scan_find(dir, "1xW1Ua3cBPk3zz"));
    assert_null(queue_scan_find(dir, "../../etc/passwd"));
    assert_null(queue_scan_find(dir, "not-a-qid"));
    assert_true(queue_scan_is_queue("corrupt"));
    assert_false(queue_scan_is_queue("defer"));
    free(list);
    strbuf_free(&why);
}

static void test_msg_load(void **state)
{
    static const char *const rcpts[] = {"a@example.com", "b@example.com", "c@example.net", NULL};
    char qid[QID_BUFSIZE], rel[64], p[256];
    struct strbuf *why = strbuf_new(64);
    struct queue_msg m;
    struct qfile *qf;
    bool corrupt;
    int fd;
    (void)state;

    empty_queues();
    make_msg("deferred", "s@example.org", rcpts, qid);
    /* b is done: mailq leaves it out. */
    snprintf(p, sizeof(p), "%s/deferred/%s", dir, qid);
    assert_non_null(qf = qfile_open(p, QFILE_OPEN_RDWR, NULL, why));
    assert_int_equal(qfile_rcpt_mark(qf, 1, QFILE_RCPT_SENT, why), 0);
    qfile_close(&qf);
    snprintf(rel, sizeof(rel), "defer/%s", qid);
    write_text(rel, "recipient=c@example.net reason=old\n"
               "recipient=a@example.com reason=451 try later\n"
               "recipient=c@example.net reason=mailbox full\n"
               "recipient=zz@nowhere reason=not ours\n");
    assert_int_equal(queue_msg_load(dir, "deferred", qid, &m, &corrupt, why), 0);
    assert_false(corrupt);
    assert_string_equal(m.qid, qid);
    assert_string_equal(m.queue, "deferred");
    assert_string_equal(m.sender, "s@example.org");
    assert_int_equal(m.size, 17);
    assert_int_equal(m.nrcpt, 2);
    assert_string_equal(m.rcpts[0].addr, "a@example.com");
    assert_string_equal(m.rcpts[0].reason, "451 try later");
    assert_string_equal(m.rcpts[1].addr, "c@example.net");
    assert_string_equal(m.rcpts[1].reason, "mailbox full");
    assert_true(queue_msg_matches_site(&m, "example.net"));
    queue_msg_free(&m);
    /* Gone: ENOENT, not corrupt. */
    assert_int_equal(queue_msg_load(dir, "hold", qid, &m, &corrupt, why), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(corrupt);
    /* Cut short: corrupt. */
    assert_true((fd = open(p, O_WRONLY)) >= 0);
    assert_int_equal(ftruncate(fd, 40), 0);
    close(fd);
    assert_int_equal(queue_msg_load(dir, "deferred", qid, &m, &corrupt, why), -1);
    assert_true(corrupt);
    /* Invalid names never become paths. */
    assert_int_equal(queue_msg_load(dir, "deferred", "../x", &m, &corrupt, why), -1);
    assert_int_equal(queue_msg_load(dir, "nope", qid, &m, &corrupt, why), -1);
    strbuf_free(&why);
}

static void test_move_delete(void **state)
{
    static const char *const r1[] = {"x@example.com", NULL};
    char a[QID_BUFSIZE], b[QID_BUFSIZE], rel[64], p[256];
    struct strbuf *why = strbuf_new(64);
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    struct stat st;
    (void)state;

    empty_queues();
    make_msg("deferred", "s@example.org", r1, a);
    make_msg("hold", "s@example.org", r1, b);
    snprintf(p, sizeof(p), "%s/deferred/%s", dir, a);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    /* A move without touch keeps the retry time; with touch it is now. */
    assert_int_equal(queue_move(dir, "deferred", "hold", a, false, why), 0);
    snprintf(p, sizeof(p), "%s/hold/%s", dir, a);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mtime, 1000);
    assert_int_equal(queue_move(dir, "hold", "deferred", a, true, why), 0);
    snprintf(p, sizeof(p), "%s/deferred/%s", dir, a);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_mtime >= time(NULL) - 5);
    /* Not there any more: ENOENT; a taken name is never replaced. */
    assert_int_equal(queue_move(dir, "hold", "deferred", a, false, why), -1);
    assert_int_equal(errno, ENOENT);
    snprintf(p, sizeof(p), "%s/deferred/%s", dir, b);
    write_text(strchr(p + strlen(dir), '/') + 1, "placeholder");
    assert_int_equal(queue_move(dir, "hold", "deferred", b, false, why), -1);
    assert_int_equal(errno, EEXIST);
    assert_true(exists("hold", b));
    assert_int_equal(queue_move(dir, "hold", "../x", b, false, why), -1);
    assert_int_equal(queue_move(dir, "hold", "deferred", "bad/id", false, why), -1);
    /* Delete takes the defer logs along. */
    snprintf(rel, sizeof(rel), "defer/%s", b);
    write_text(rel, "recipient=x@example.com reason=r\n");
    snprintf(rel, sizeof(rel), "defer/%s.warned", b);
    write_text(rel, "");
    assert_int_equal(queue_delete(dir, "hold", b, why), 0);
    assert_false(exists("hold", b));
    assert_false(exists("defer", b));
    snprintf(rel, sizeof(rel), "%s.warned", b);
    assert_false(exists("defer", rel));
    assert_int_equal(queue_delete(dir, "hold", b, why), -1);
    assert_int_equal(errno, ENOENT);
    /* queue_defer_remove without all keeps the warning mark. */
    snprintf(rel, sizeof(rel), "defer/%s", a);
    write_text(rel, "x");
    snprintf(rel, sizeof(rel), "defer/%s.warned", a);
    write_text(rel, "");
    assert_int_equal(queue_defer_remove(dir, a, false, why), 0);
    assert_false(exists("defer", a));
    snprintf(rel, sizeof(rel), "%s.warned", a);
    assert_true(exists("defer", rel));
    strbuf_free(&why);
}

static void test_kick(void **state)
{
    static const char *const r1[] = {"x@example.com", NULL};
    char d[QID_BUFSIZE], h[QID_BUFSIZE], i[QID_BUFSIZE];
    struct strbuf *why = strbuf_new(64);
    (void)state;

    empty_queues();
    make_msg("deferred", "s@example.org", r1, d);
    make_msg("hold", "s@example.org", r1, h);
    make_msg("incoming", "s@example.org", r1, i);
    assert_int_equal(queue_kick(dir, d, why), 1);
    assert_true(exists("incoming", d));
    assert_false(exists("deferred", d));
    assert_int_equal(queue_kick(dir, i, why), 0);
    assert_int_equal(queue_kick(dir, h, why), -1);
    assert_int_equal(errno, EPERM);
    assert_true(exists("hold", h));
    assert_int_equal(queue_kick(dir, "1xW1Ua3cBPk3zz", why), -1);
    assert_int_equal(errno, ENOENT);
    strbuf_free(&why);
}

static void test_flush(void **state)
{
    static const char *const r1[] = {"x@example.com", NULL};
    char a[QID_BUFSIZE], fifo[256], p[256], buf[16];
    struct strbuf *why = strbuf_new(64);
    struct timespec ts[2] = {{time(NULL) + 86400 * 365, 0}, {time(NULL) + 86400 * 365, 0}};
    struct stat st;
    int rfd;
    (void)state;

    empty_queues();
    make_msg("deferred", "s@example.org", r1, a);
    snprintf(p, sizeof(p), "%s/deferred/%s", dir, a);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    path_of(fifo, sizeof(fifo), "public/qmgr");
    /* No door: the files are still made due, and the caller told. */
    assert_int_equal(queue_flush_all(dir, why), -1);
    assert_non_null(strstr(strbuf_str(why), "qmgr is not running"));
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_mtime <= time(NULL) + 5);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_true((rfd = open(fifo, O_RDONLY | O_NONBLOCK)) >= 0);
    assert_int_equal(queue_flush_all(dir, why), 1);
    assert_int_equal(read(rfd, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "FAI", 3);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_mtime <= time(NULL) + 5 && st.st_mtime >= time(NULL) - 5);
    assert_int_equal(queue_wake_qmgr(dir, why), 0);
    assert_int_equal(read(rfd, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "FI", 2);
    close(rfd);
    /* A FIFO nobody reads: qmgr is down. */
    assert_int_equal(queue_wake_qmgr(dir, why), -1);
    unlink(fifo);
    strbuf_free(&why);
}

static int setup(void **state)
{
    static const char *const subdirs[] = {"maildrop", "incoming", "active", "deferred", "hold",
                                          "corrupt", "defer", "public", NULL};
    char p[128];
    size_t n;
    (void)state;

    n = (size_t)snprintf(dir, sizeof(dir), "/tmp/test_queue_scan.");
    memset(dir + n, 'X', 6);
    dir[n + 6] = '\0';
    if (mkdtemp(dir) == NULL)
        return -1;
    for (const char *const *s = subdirs; *s != NULL; s++) {
        snprintf(p, sizeof(p), "%s/%s", dir, *s);
        if (mkdir(p, 0700) < 0)
            return -1;
    }
    var_trigger_timeout = 2;
    /* Golden mailq lines are in UTC. */
    setenv("TZ", "UTC", 1);
    tzset();
    log_init("test_queue_scan", LOG_DEST_STDERR);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defer_parse_table),
        cmocka_unit_test(test_defer_parse_splits),
        cmocka_unit_test(test_defer_parse_limits),
        cmocka_unit_test(test_json_quote_table),
        cmocka_unit_test(test_mailq_layout),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_json_layout),
        cmocka_unit_test(test_site_match),
        cmocka_unit_test(test_list_and_find),
        cmocka_unit_test(test_msg_load),
        cmocka_unit_test(test_move_delete),
        cmocka_unit_test(test_kick),
        cmocka_unit_test(test_flush),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
