/*
 * test_cleanup.c - message cleanup into queue files: a table of messages
 * (main.cf settings, envelope, lines) with the expected result, reply,
 * queue file content (Received: format, added Message-ID/Date/From, Bcc
 * removal, header_checks/body_checks actions) and log lines; then hop and
 * size limits, HOLD into hold/, DISCARD, misuse and group commit.  The
 * clock is injected (cleanup_set_time) and TZ is UTC so dates are fixed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "params.h"
#include "log.h"
#include "qfile.h"
#include "strbuf.h"

static char dir[64];
static char logpath[128];
static const struct timeval arrival = {1700000000, 0};
#define DATE "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)"

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The parameters cleanup reads, at their main.cf defaults, then the
 * "name = value" lines of extra (@DIR@ replaced by the test directory).
 * Set directly so the test depends on cleanup alone, not on the parser. */
static void load_conf(const char *extra)
{
    struct {
        const char *name;
        char **str;
        long *num;
        bool *flag;
        const char *def;
    } params[] = {
        {"myhostname", &var_myhostname, NULL, NULL, "mx.example.org"},
        {"myorigin", &var_myorigin, NULL, NULL, "example.org"},
        {"mail_name", &var_mail_name, NULL, NULL, "facteur"},
        {"header_checks", &var_header_checks, NULL, NULL, ""},
        {"body_checks", &var_body_checks, NULL, NULL, ""},
        {"always_bcc", &var_always_bcc, NULL, NULL, ""},
        {"sender_bcc_maps", &var_sender_bcc_maps, NULL, NULL, ""},
        {"recipient_bcc_maps", &var_recipient_bcc_maps, NULL, NULL, ""},
        {"recipient_delimiter", &var_recipient_delimiter, NULL, NULL, ""},
        {"header_size_limit", NULL, &var_header_size_limit, NULL, "102400"},
        {"hopcount_limit", NULL, &var_hopcount_limit, NULL, "50"},
        {"message_size_limit", NULL, &var_message_size_limit, NULL, "10240000"},
        {"body_checks_size_limit", NULL, &var_body_checks_size_limit, NULL, "51200"},
        {"trigger_timeout", NULL, &var_trigger_timeout, NULL, "10"},
        {"append_at_myorigin", NULL, NULL, &var_append_at_myorigin, "yes"},
        {"smtpd_sasl_authenticated_header", NULL, NULL, &var_smtpd_sasl_authenticated_header,
         "no"},
    };
    struct strbuf *text = strbuf_new(256);
    const char *s;

    for (s = extra; *s; s++) {
        if (strncmp(s, "@DIR@", 5) == 0) {
            strbuf_append(text, dir);
            s += 4;
        } else {
            strbuf_appendc(text, *s);
        }
    }
    cleanup_deinit();
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const char *value = params[i].def;
        char *found = NULL;
        size_t n = strlen(params[i].name);

        /* The last "name = value" line for this name wins. */
        for (s = strbuf_str(text); *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] != 0)) {
            if (strncmp(s, params[i].name, n) == 0 && strncmp(s + n, " = ", 3) == 0) {
                free(found);
                found = strndup(s + n + 3, strcspn(s + n + 3, "\n"));
            }
        }
        if (found != NULL)
            value = found;
        if (params[i].str != NULL) {
            free(*params[i].str);
            *params[i].str = strdup(value);
        } else if (params[i].num != NULL) {
            *params[i].num = atol(value);
        } else {
            *params[i].flag = strcmp(value, "yes") == 0;
        }
        free(found);
    }
    strbuf_free(&text);
}

static int group_setup(void **state)
{
    static const char *const subs[] = {"incoming", "hold"};
    size_t n;
    (void)state;

    setenv("TZ", "UTC", 1);
    tzset();
    /* The six placeholder letters mkdtemp wants, made at run time. */
    n = (size_t)snprintf(dir, sizeof(dir), "/tmp/test_cleanup.");
    memset(dir + n, 'X', 6);
    dir[n + 6] = '\0';
    if (mkdtemp(dir) == NULL)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        char p[128];

        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        if (mkdir(p, 0700) < 0)
            return -1;
    }
    snprintf(logpath, sizeof(logpath), "%s/maillog", dir);
    log_init("test_cleanup", 0);
    if (log_set_file(logpath) < 0)
        return -1;
    write_file("header_checks",
               "/^Subject:.*buy spam/ REJECT no spam\n"
               "/^Subject:.*custom code/ REJECT 5.7.0 custom text\n"
               "/^Subject:.*deferme/ DEFER try later\n"
               "/^Subject:.*watch/ WARN watched\n"
               "/^Subject:.*quarantine/ HOLD held for review\n"
               "/^Subject:.*dropme/ DISCARD dropped\n"
               "/^X-Drop:/ IGNORE\n"
               "/^X-Mark:/ PREPEND X-Marked: yes\n"
               "/^X-Old: (.*)/ REPLACE X-New: $1\n"
               "/^X-Bad-Prepend:/ PREPEND not a header\n"
               "/^X-Funny:/ FROBNICATE\n");
    write_file("body_checks",
               "/^forbidden body/ REJECT body rejected\n"
               "/^secret/ REPLACE [redacted]\n"
               "/^noise/ IGNORE\n");
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;

    cleanup_deinit();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Empty the log file so each case sees only its own lines. */
static void log_reset(void)
{
    FILE *f = fopen(logpath, "w");

    if (f != NULL)
        fclose(f);
}

static void log_read(struct strbuf *out)
{
    struct strbuf *why = strbuf_new(32);
    FILE *f = fopen(logpath, "r");
    char buf[4096];
    size_t n;

    strbuf_reset(out);
    while (f != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_appendn(out, buf, n);
    if (f != NULL)
        fclose(f);
    strbuf_free(&why);
}

/* Content of queue/qid with every occurrence of qid replaced by "QID". */
static int read_queued(const char *queue, const char *qid, struct strbuf *content,
                       const struct qfile_env **env_r, struct qfile **qf_r)
{
    struct strbuf *path = strbuf_new(128), *why = strbuf_new(64), *raw = strbuf_new(256);
    bool corrupt = false;
    struct qfile *qf;
    char buf[4096];
    ssize_t n;
    const char *s, *hit;

    strbuf_printf(path, "%s/%s/%s", dir, queue, qid);
    qf = qfile_open(strbuf_str(path), 0, &corrupt, why);
    strbuf_free(&path);
    if (qf == NULL) {
        strbuf_free(&why);
        strbuf_free(&raw);
        return -1;
    }
    while ((n = qfile_content_read(qf, buf, sizeof(buf), why)) > 0)
        strbuf_appendn(raw, buf, (size_t)n);
    strbuf_reset(content);
    for (s = strbuf_str(raw); (hit = strstr(s, qid)) != NULL; s = hit + strlen(qid)) {
        strbuf_appendn(content, s, (size_t)(hit - s));
        strbuf_append(content, "QID");
    }
    strbuf_append(content, s);
    *env_r = qfile_env(qf);
    *qf_r = qf;
    strbuf_free(&why);
    strbuf_free(&raw);
    return 0;
}

struct msg_case {
    const char *name;
    const char *conf;           /* extra main.cf lines */
    unsigned flags;
    bool received;              /* describe a remote client */
    bool local;                 /* describe local submission (uid 1000) */
    const char *sender;
    const char *rcpts;          /* comma-separated */
    const char *full_name;
    const char *lines;          /* message, LF-separated */
    int result;
    const char *reply;          /* expected reply prefix */
    const char *queue;          /* "incoming", "hold" or NULL: nothing queued */
    const char *content;        /* expected content (QID for the queue ID) */
    size_t nrcpt;
    const char *log;            /* substring expected in the log */
};

#define CHECKS "header_checks = regexp:@DIR@/header_checks\nbody_checks = regexp:@DIR@/body_checks\n"
#define RCVD "Received: from helo.example (client.example [192.0.2.1])\n" \
             "\tby mx.example.org (facteur) with ESMTP id QID\n\tfor <b@example.net>; " DATE "\n"
#define LOGCTX " from client.example[192.0.2.1]; from=<a@example.org> to=<b@example.net> " \
               "proto=ESMTP helo=<helo.example>"

static const struct msg_case cases[] = {
    {"smtp pass-through", "", 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: hi\nMessage-ID: <m1@x>\n\nbody\n.dot\n", CLEANUP_OK, "250 2.0.0 Ok: queued as",
     "incoming", RCVD "Subject: hi\nMessage-ID: <m1@x>\n\nbody\n.dot\n", 1,
     "QID: message-id=<m1@x>"},
    {"no message-id logged empty", "", 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: hi\n\nbody", CLEANUP_OK, "250 ", "incoming", RCVD "Subject: hi\n\nbody\n", 1,
     "QID: message-id=<>"},
    {"submission adds message-id and date", "", CLEANUP_FL_SUBMISSION, true, false,
     "a@example.org", "b@example.net", NULL, "Subject: hi\n\nbody", CLEANUP_OK, "250 ",
     "incoming",
     RCVD "Subject: hi\nMessage-ID: <20231114221320.QID@mx.example.org>\nDate: " DATE
          "\n\nbody\n", 1, "QID: message-id=<20231114221320.QID@mx.example.org>"},
    {"local: userid, From with full name, Bcc removed, qualified", "", CLEANUP_FL_LOCAL, false,
     true, "joe", "root,b@example.net", "Joe Q. User",
     "To: root\nBcc: secret@example.net\nResent-Bcc: x@y\n  folded\nDate: Mon, 1 Jan 2024\n\nhello",
     CLEANUP_OK, "250 ", "incoming",
     "Received: by mx.example.org (facteur, from userid 1000)\n\tid QID; " DATE "\n"
     "To: root@example.org\nDate: Mon, 1 Jan 2024\nMessage-ID: <20231114221320.QID@mx.example.org>\n"
     "From: \"Joe Q. User\" <joe@example.org>\n\nhello\n", 2, "message-id=<20231114221320."},
    {"local: header addresses qualified", "", CLEANUP_FL_LOCAL, false, false, "joe",
     "b@example.net", NULL,
     "To: root, Bob <bob>, carol@x (C), \"Doe, J\" <jd>, grp: a, b@c;\n"
     "Cc: undisclosed-recipients:;\nFrom: me (Me\n Myself)\nReply-To: <broken\n"
     "Subject: root\nX-To: root\nMessage-ID: <a@b>\nDate: x\n\nb",
     CLEANUP_OK, "250 ", "incoming",
     "To: root@example.org, Bob <bob@example.org>, carol@x (C), \"Doe, J\" <jd@example.org>, "
     "grp: a@example.org, b@c;\n"
     "Cc: undisclosed-recipients:;\nFrom: me@example.org (Me\n Myself)\nReply-To: <broken\n"
     "Subject: root\nX-To: root\nMessage-ID: <a@b>\nDate: x\n\nb\n", 1, NULL},
    {"smtp: header addresses left alone", "", 0, false, false, "joe@example.org",
     "b@example.net", NULL, "To: root\n\nb", CLEANUP_OK, "250 ", "incoming",
     "To: root\n\nb\n", 1, NULL},
    {"local: null sender", "", CLEANUP_FL_LOCAL, false, true, "", "b@example.net", NULL,
     "Subject: x\n\nb", CLEANUP_OK, "250 ", "incoming",
     "Received: by mx.example.org (facteur, from userid 1000)\n\tid QID; " DATE "\n"
     "Subject: x\nMessage-ID: <20231114221320.QID@mx.example.org>\nDate: " DATE
     "\nFrom: MAILER-DAEMON\n\nb\n", 1, NULL},
    {"body starts without empty line", "", 0, false, false, "a@example.org", "b@example.net",
     NULL, "Subject: x\nnot a header line\nmore", CLEANUP_OK, "250 ", "incoming",
     "Subject: x\n\nnot a header line\nmore\n", 1, NULL},
    {"empty message", "", 0, false, false, "a@example.org", "b@example.net", NULL, "",
     CLEANUP_OK, "250 ", "incoming", "", 1, NULL},
    {"reject", CHECKS, 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: buy spam now\n\nbody", CLEANUP_REJECT, "550 5.7.1 no spam", NULL, NULL, 0,
     "QID: reject: header Subject: buy spam now" LOGCTX ": 5.7.1 no spam"},
    {"reject with code", CHECKS, 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: custom code\n\nbody", CLEANUP_REJECT, "550 5.7.0 custom text", NULL, NULL, 0,
     ": 5.7.0 custom text"},
    {"defer", CHECKS, 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: deferme\n\nbody", CLEANUP_TEMPFAIL, "450 4.7.1 try later", NULL, NULL, 0,
     "QID: defer: header Subject: deferme"},
    {"warn", CHECKS, 0, false, false, "a@example.org", "b@example.net", NULL,
     "Subject: watch this\n\nbody", CLEANUP_OK, "250 ", "incoming",
     "Subject: watch this\n\nbody\n", 1,
     "QID: warning: header Subject: watch this from local; from=<a@example.org> "
     "to=<b@example.net>: watched"},
    {"hold", CHECKS, 0, false, false, "a@example.org", "b@example.net", NULL,
     "Subject: quarantine me\n\nbody", CLEANUP_OK, "250 ", "hold",
     "Subject: quarantine me\n\nbody\n", 1, "QID: hold: header Subject: quarantine me"},
    {"discard", CHECKS, 0, false, false, "a@example.org", "b@example.net", NULL,
     "Subject: dropme\n\nbody", CLEANUP_DISCARDED, "250 2.0.0 Ok: queued as", NULL, NULL, 0,
     "QID: discard: header Subject: dropme"},
    {"ignore prepend replace", CHECKS, 0, false, false, "a@example.org", "b@example.net", NULL,
     "X-Drop: 1\nX-Mark: 2\nX-Old: value\n  folded\nX-Bad-Prepend: 3\nX-Funny: 4\n\nb",
     CLEANUP_OK, "250 ", "incoming",
     "X-Marked: yes\nX-Mark: 2\nX-New: value\n  folded\nX-Bad-Prepend: 3\nX-Funny: 4\n\nb\n",
     1, "unsupported action \"FROBNICATE\""},
    {"body reject", CHECKS, 0, true, false, "a@example.org", "b@example.net", NULL,
     "Subject: x\n\nok line\nforbidden body here", CLEANUP_REJECT, "550 5.7.1 body rejected",
     NULL, NULL, 0, "QID: reject: body forbidden body here" LOGCTX ": 5.7.1 body rejected"},
    {"body replace ignore", CHECKS, 0, false, false, "a@example.org", "b@example.net", NULL,
     "Subject: x\n\nsecret stuff\nnoise\nkept", CLEANUP_OK, "250 ", "incoming",
     "Subject: x\n\n[redacted]\nkept\n", 1, NULL},
    {"body_checks_size_limit", CHECKS "body_checks_size_limit = 10\n", 0, false, false,
     "a@example.org", "b@example.net", NULL, "Subject: x\n\n0123456789\nforbidden body",
     CLEANUP_OK, "250 ", "incoming", "Subject: x\n\n0123456789\nforbidden body\n", 1, NULL},
    {"hops under the limit", "hopcount_limit = 5\n", 0, true, false, "a@example.org",
     "b@example.net", NULL, "Received: 1\nReceived: 2\nReceived: 3\n\nb", CLEANUP_OK, "250 ",
     "incoming", RCVD "Received: 1\nReceived: 2\nReceived: 3\n\nb\n", 1, NULL},
    {"too many hops", "hopcount_limit = 5\n", 0, true, false, "a@example.org",
     "b@example.net", NULL, "Received: 1\nReceived: 2\nReceived: 3\nReceived: 4\n\nb",
     CLEANUP_HOPS, "554 5.4.0 Error: too many hops", NULL, NULL, 0, NULL},
    {"header too long", "header_size_limit = 64\n", 0, false, false, "a@example.org",
     "b@example.net", NULL,
     "Subject: 0123456789012345678901234567890123456789\n  0123456789012345678901234567890\n\nb",
     CLEANUP_TOOBIG, "552 5.3.4", NULL, NULL, 0,
     "QID: reject: message header size exceeds safety limit"},
    {"message too big", "message_size_limit = 40\n", 0, false, false, "a@example.org",
     "b@example.net", NULL, "Subject: x\n\n0123456789\n0123456789\n0123456789\n",
     CLEANUP_TOOBIG, "552 5.3.4 Error: message file too big", NULL, NULL, 0, NULL},
    {"always_bcc and duplicates", "always_bcc = archive@example.org\n", 0, false, false,
     "a@example.org", "b@example.net,b@example.net,archive@example.org,c@example.net", NULL,
     "Subject: x\n\nb", CLEANUP_OK, "250 ", "incoming", "Subject: x\n\nb\n", 3, NULL},
    {"sender and recipient bcc maps",
     "sender_bcc_maps = inline:{a@example.org=sbcc@example.org}\n"
     "recipient_bcc_maps = inline:{b@example.net=rbcc@example.org}\n", 0, false, false,
     "a@example.org", "b@example.net", NULL, "Subject: x\n\nb", CLEANUP_OK, "250 ", "incoming",
     "Subject: x\n\nb\n", 3, NULL},
    {"no recipient", "", 0, false, false, "a@example.org", "", NULL, "Subject: x\n\nb",
     CLEANUP_TEMPFAIL, "451 4.3.0", NULL, NULL, 0, "message without recipients"},
};

static size_t count_files(const char *queue)
{
    char p[128];
    struct dirent *de;
    size_t n = 0;
    DIR *d;

    snprintf(p, sizeof(p), "%s/%s", dir, queue);
    d = opendir(p);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void remove_queued(const char *queue, const char *qid)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s/%s", dir, queue, qid);
    unlink(p);
}

static void run_case(const struct msg_case *mc)
{
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(64), *content = strbuf_new(256);
    struct strbuf *log = strbuf_new(256), *want = strbuf_new(256);
    struct cleanup *c;
    char qid[QID_BUFSIZE];
    const char *s;
    int rc;

    load_conf(mc->conf);
    log_reset();
    c = cleanup_open(dir, mc->flags, why);
    if (c == NULL)
        fail_msg("%s: open: %s", mc->name, strbuf_str(why));
    snprintf(qid, sizeof(qid), "%s", cleanup_qid(c));
    assert_int_equal(cleanup_set_time(c, &arrival), 0);
    if (mc->full_name != NULL)
        assert_int_equal(cleanup_set_attr(c, CLEANUP_ATTR_FULL_NAME, mc->full_name), 0);
    assert_int_equal(cleanup_set_sender(c, mc->sender), 0);
    for (s = mc->rcpts; *s;) {
        size_t n = strcspn(s, ",");
        char *r = strndup(s, n);

        assert_int_equal(cleanup_add_rcpt(c, r, NULL, 0), 0);
        free(r);
        s += n + (s[n] == ',');
    }
    if (mc->received) {
        struct cleanup_received r = {
            .helo = "helo.example", .client_name = "client.example",
            .client_addr = "192.0.2.1", .protocol = "ESMTP", .for_rcpt = "b@example.net",
        };
        assert_int_equal(cleanup_add_received(c, &r), 0);
    } else if (mc->local) {
        struct cleanup_received r = {.userid = "1000"};
        assert_int_equal(cleanup_add_received(c, &r), 0);
    }
    for (s = mc->lines; *s;) {
        size_t n = strcspn(s, "\n");

        if (cleanup_line(c, s, n) < 0)
            break;
        s += n + (s[n] == '\n');
    }
    rc = cleanup_finish(c, NULL, NULL, reply);
    cleanup_free(&c);
    assert_null(c);
    if (rc != mc->result || strncmp(strbuf_str(reply), mc->reply, strlen(mc->reply)) != 0)
        fail_msg("%s: result %d \"%s\" (want %d \"%s\")", mc->name, rc, strbuf_str(reply),
                 mc->result, mc->reply);
    log_read(log);
    if (mc->log != NULL) {
        /* "QID" in the expected log stands for the queue ID. */
        const char *p = mc->log, *q;

        strbuf_reset(want);
        while ((q = strstr(p, "QID")) != NULL) {
            strbuf_appendn(want, p, (size_t)(q - p));
            strbuf_append(want, qid);
            p = q + 3;
        }
        strbuf_append(want, p);
        if (strstr(strbuf_str(log), strbuf_str(want)) == NULL)
            fail_msg("%s: log lacks \"%s\":\n%s", mc->name, strbuf_str(want), strbuf_str(log));
    }
    if (mc->queue == NULL) {
        assert_int_equal(count_files("incoming"), 0);
        assert_int_equal(count_files("hold"), 0);
    } else {
        const struct qfile_env *env;
        struct qfile *qf;

        if (read_queued(mc->queue, qid, content, &env, &qf) < 0)
            fail_msg("%s: not in %s", mc->name, mc->queue);
        if (strcmp(strbuf_str(content), mc->content) != 0)
            fail_msg("%s: content\n%s\nwant\n%s", mc->name, strbuf_str(content), mc->content);
        if (env->nrcpt != mc->nrcpt)
            fail_msg("%s: %zu recipients (want %zu)", mc->name, env->nrcpt, mc->nrcpt);
        assert_int_equal(env->arrival.tv_sec, arrival.tv_sec);
        qfile_close(&qf);
        remove_queued(mc->queue, qid);
    }
    strbuf_free(&why);
    strbuf_free(&reply);
    strbuf_free(&content);
    strbuf_free(&log);
    strbuf_free(&want);
}

static void test_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

/* TLS summary, SASL user (only with smtpd_sasl_authenticated_header),
 * IPv6 address, several recipients: Postfix's layout. */
static void test_received_format(void **state)
{
    static const struct {
        const char *conf;
        struct cleanup_received r;
        const char *want;
    } cases[] = {
        {"", {.helo = "h", .client_name = "n", .client_addr = "::1", .protocol = "ESMTPSA",
              .tls_summary = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
              .sasl_user = "joe"},
         "Received: from h (n [IPv6:::1])\n"
         "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
         "\tby mx.example.org (facteur) with ESMTPSA id QID;\n\t" DATE "\n"},
        {"smtpd_sasl_authenticated_header = yes\n",
         {.helo = "h", .client_name = "n", .client_addr = "192.0.2.9", .protocol = "ESMTPA",
          .sasl_user = "joe", .for_rcpt = "x@y"},
         "Received: from h (n [192.0.2.9])\n\t(Authenticated sender: joe)\n"
         "\tby mx.example.org (facteur) with ESMTPA id QID\n\tfor <x@y>; " DATE "\n"},
        {"", {.client_name = "unknown", .client_addr = "192.0.2.9", .helo = "bad\r\nhelo"},
         "Received: from bad? helo (unknown [192.0.2.9])\n"
         "\tby mx.example.org (facteur) with SMTP id QID;\n\t" DATE "\n"},
    };
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(64), *content = strbuf_new(256);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct qfile_env *env;
        struct qfile *qf;
        struct cleanup *c;
        char qid[QID_BUFSIZE];

        load_conf(cases[i].conf);
        c = cleanup_open(dir, 0, why);
        assert_non_null(c);
        snprintf(qid, sizeof(qid), "%s", cleanup_qid(c));
        cleanup_set_time(c, &arrival);
        cleanup_set_sender(c, "a@b");
        cleanup_add_rcpt(c, "x@y", NULL, 0);
        cleanup_add_rcpt(c, "z@y", "rfc822;z@y", QFILE_NOTIFY_FAILURE);
        assert_int_equal(cleanup_add_received(c, &cases[i].r), 0);
        assert_int_equal(cleanup_add_received(c, &cases[i].r), -1);    /* only once */
        assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TEMPFAIL);
        cleanup_free(&c);
        /* Second try, valid. */
        c = cleanup_open(dir, 0, why);
        snprintf(qid, sizeof(qid), "%s", cleanup_qid(c));
        cleanup_set_time(c, &arrival);
        cleanup_set_sender(c, "a@b");
        cleanup_add_rcpt(c, "x@y", NULL, 0);
        cleanup_add_received(c, &cases[i].r);
        assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_OK);
        cleanup_free(&c);
        assert_int_equal(read_queued("incoming", qid, content, &env, &qf), 0);
        assert_string_equal(strbuf_str(content), cases[i].want);
        qfile_close(&qf);
        remove_queued("incoming", qid);
    }
    strbuf_free(&why);
    strbuf_free(&reply);
    strbuf_free(&content);
}

/* Misuse and malformed input: envelope after content, LF inside a line,
 * bad addresses, finish twice; nothing is ever queued. */
static void test_misuse(void **state)
{
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(64);
    struct cleanup *c;
    (void)state;

    load_conf("");
    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    cleanup_add_rcpt(c, "x@y", NULL, 0);
    assert_int_equal(cleanup_line(c, "Subject: x", 10), 0);
    assert_int_equal(cleanup_add_rcpt(c, "late@y", NULL, 0), -1);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TEMPFAIL);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TEMPFAIL);
    cleanup_free(&c);

    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    cleanup_add_rcpt(c, "x@y", NULL, 0);
    assert_int_equal(cleanup_line(c, "Subject: a\nb", 12), -1);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_REJECT);
    cleanup_free(&c);

    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    assert_int_equal(cleanup_set_sender(c, "b@c"), -1);
    cleanup_free(&c);

    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    assert_int_equal(cleanup_add_rcpt(c, "", NULL, 0), -1);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_REJECT);
    cleanup_free(&c);

    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "bad\001sender");
    cleanup_add_rcpt(c, "x@y", NULL, 0);
    cleanup_line(c, "", 0);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TEMPFAIL);
    cleanup_free(&c);
    cleanup_free(&c);
    cleanup_free(NULL);
    assert_int_equal(count_files("incoming"), 0);

    /* A table that cannot be opened fails cleanup_open. */
    load_conf("header_checks = regexp:/nonexistent/header_checks\n");
    assert_null(cleanup_open(dir, 0, why));
    assert_non_null(strstr(strbuf_str(why), "header_checks"));
    load_conf("");
    strbuf_free(&why);
    strbuf_free(&reply);
}

/* With a group, the file is in incoming/ after finish and durable after
 * the group sync. */
static void test_group_commit(void **state)
{
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(64);
    struct qfile_group g;
    uint64_t seq[3];
    (void)state;

    load_conf("");
    qfile_group_init(&g, dir);
    for (int i = 0; i < 3; i++) {
        struct cleanup *c = cleanup_open(dir, CLEANUP_FL_SUBMISSION, why);

        cleanup_set_sender(c, "a@b");
        cleanup_add_rcpt(c, "x@y", NULL, 0);
        cleanup_line(c, "Subject: group", 14);
        assert_int_equal(cleanup_finish(c, &g, &seq[i], reply), CLEANUP_OK);
        assert_false(qfile_group_done(&g, seq[i]));
        assert_int_equal(cleanup_rcpt_count(c), 1);
        assert_true(cleanup_size(c) > 14);
        cleanup_free(&c);
    }
    assert_int_equal(qfile_group_sync(&g, why), 0);
    for (int i = 0; i < 3; i++)
        assert_true(qfile_group_done(&g, seq[i]));
    assert_int_equal(count_files("incoming"), 3);
    qfile_group_free(&g);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -f %s/incoming/*", dir);
        assert_int_equal(system(cmd), 0);
    }
    strbuf_free(&why);
    strbuf_free(&reply);
}

/* A header over header_size_limit in many small folds, and too many
 * headers: rejected without growing memory past the limit. */
static void test_header_bounds(void **state)
{
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(64);
    struct cleanup *c;
    int i, rc = 0;
    (void)state;

    load_conf("header_size_limit = 1000\n");
    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    cleanup_add_rcpt(c, "x@y", NULL, 0);
    cleanup_line(c, "Subject: x", 10);
    for (i = 0; i < 1000 && rc == 0; i++)
        rc = cleanup_line(c, " 0123456789", 11);
    assert_int_equal(rc, -1);
    assert_true(i < 100);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TOOBIG);
    cleanup_free(&c);

    c = cleanup_open(dir, 0, why);
    cleanup_set_sender(c, "a@b");
    cleanup_add_rcpt(c, "x@y", NULL, 0);
    for (i = 0, rc = 0; i < CLEANUP_HEADERS_MAX + 10 && rc == 0; i++)
        rc = cleanup_line(c, "X-A: b", 6);
    assert_int_equal(rc, -1);
    assert_int_equal(i, CLEANUP_HEADERS_MAX + 1);
    assert_int_equal(cleanup_finish(c, NULL, NULL, reply), CLEANUP_TOOBIG);
    assert_string_equal(strbuf_str(reply), "552 5.3.4 Error: too many message headers");
    cleanup_free(&c);
    assert_int_equal(count_files("incoming"), 0);
    strbuf_free(&why);
    strbuf_free(&reply);
}


/* The drop format: each case is a sequence of records, the index of the
 * first refused one (-1: all accepted) and whether the message ended. */
struct drop_rec {
    int type;
    const char *data;
    size_t len;             /* 0: strlen(data) */
};

static void test_drop_format(void **state)
{
    static const struct {
        const char *name;
        struct drop_rec recs[8];
        int refused;
        bool ended;
    } cases[] = {
        {"good", {{'S', "joe", 0}, {'R', "\x04" "a@b", 0}, {'M', "Subject: x\n\nb\n", 0},
                  {'E', "", 0}}, -1, true},
        {"null sender and DSN", {{'S', "", 0}, {'R', "\x06" "a@b", 0}, {'N', "H", 0},
                                 {'I', "env-1", 0}, {'A', "full_name\0Joe", 13}, {'E', "", 0}},
         -1, true},
        {"two senders", {{'S', "a", 0}, {'S', "b", 0}}, 1, false},
        {"no recipient at end", {{'S', "a", 0}, {'E', "", 0}}, 1, false},
        {"content first", {{'M', "x\n", 0}}, 0, false},
        {"envelope after content", {{'S', "a", 0}, {'R', "\0b", 2}, {'M', "x", 0},
                                    {'R', "\0c", 2}}, 3, false},
        {"empty recipient", {{'S', "a", 0}, {'R', "\0", 1}}, 1, false},
        {"bad notify", {{'S', "a", 0}, {'R', "\x10" "b", 0}}, 1, false},
        {"control char sender", {{'S', "a\nb", 0}}, 0, false},
        {"DEL in recipient", {{'S', "a", 0}, {'R', "\0b\x7f", 3}}, 1, false},
        {"bad RET", {{'N', "X", 0}}, 0, false},
        {"ENVID with space", {{'I', "a b", 0}}, 0, false},
        {"empty ENVID", {{'I', "", 0}}, 0, false},
        {"forged attribute", {{'A', "client_address\0x", 16}}, 0, false},
        {"attribute without NUL", {{'A', "full_name", 0}}, 0, false},
        {"full name with newline", {{'A', "full_name\0a\nb", 13}}, 0, false},
        {"too big", {{'S', "a", 0}, {'R', "\0b", 2}, {'M', "0123456789", 0},
                     {'M', "0123456789", 0}}, 3, false},
        {"after the end", {{'S', "a", 0}, {'R', "\0b", 2}, {'E', "", 0}, {'M', "x", 0}},
         3, true},
    };
    struct strbuf *why = strbuf_new(64), *frame = strbuf_new(64);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cleanup_drop d;
        int refused = -1;

        cleanup_drop_init(&d, 15);
        for (int j = 0; j < 8 && cases[i].recs[j].type != 0; j++) {
            const struct drop_rec *r = &cases[i].recs[j];
            size_t len = r->len ? r->len : strlen(r->data);
            int type;
            uint32_t flen;

            /* Through the framing, as facteur-drop reads it. */
            strbuf_reset(frame);
            cleanup_drop_frame(frame, r->type, r->data, len);
            if (cleanup_drop_header(&d, (const unsigned char *)strbuf_str(frame), &type, &flen,
                                    why) < 0 ||
                cleanup_drop_check(&d, type, strbuf_str(frame) + CLEANUP_DROP_HDR, flen,
                                   why) < 0) {
                refused = j;
                break;
            }
            assert_int_equal(flen, len);
        }
        if (refused != cases[i].refused || d.ended != cases[i].ended)
            fail_msg("drop %s: refused at %d (want %d), ended %d: %s", cases[i].name, refused,
                     cases[i].refused, d.ended, strbuf_str(why));
    }
    /* Headers alone: unknown type, over-long record. */
    {
        struct cleanup_drop d;
        const unsigned char unknown[5] = {'Z', 0, 0, 0, 1}, huge[5] = {'M', 0, 1, 0, 1},
                            longaddr[5] = {'S', 0, 0, 0x08, 0x01};
        int type;
        uint32_t len;

        cleanup_drop_init(&d, 0);
        assert_int_equal(cleanup_drop_header(&d, unknown, &type, &len, why), -1);
        assert_int_equal(cleanup_drop_header(&d, huge, &type, &len, why), -1);
        assert_int_equal(cleanup_drop_header(&d, longaddr, &type, &len, why), -1);
    }
    strbuf_free(&why);
    strbuf_free(&frame);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_received_format),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_header_bounds),
        cmocka_unit_test(test_drop_format),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
