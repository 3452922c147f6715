/*
 * test_qfile.c - queue files: writer/reader round trip with every record
 * type, a table of corrupt files (truncated at every length, wrong
 * lengths, unknown types, order, bounds, missing END, trailing data),
 * done flags updated in place, commit durability (nothing in incoming/
 * under a queue ID before commit; a child killed half-way leaves only a
 * temp file), group commit, and writer misuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qfile.h"
#include "smtp_syntax.h"
#include "strbuf.h"

struct fixture {
    char dir[64];
    struct strbuf *why;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char sub[128];

    strcpy(f->dir, "/tmp/test_qfile.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(sub, sizeof(sub), "%s/incoming", f->dir);
    if (mkdir(sub, 0700) < 0)
        return -1;
    f->why = strbuf_new(128);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char sub[128];
    struct dirent *de;
    DIR *d;

    snprintf(sub, sizeof(sub), "%s/incoming", f->dir);
    d = opendir(sub);
    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[512];
        if (de->d_name[0] == '.' && (de->d_name[1] == 0 || strcmp(de->d_name, "..") == 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", sub, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/file", f->dir);
    unlink(sub);
    rmdir(f->dir);
    strbuf_free(&f->why);
    free(f);
    return 0;
}

/* Count entries of incoming/: valid queue IDs and writer temp files. */
static void count_incoming(const struct fixture *f, int *qids, int *tmps)
{
    char sub[128];
    struct dirent *de;
    DIR *d;

    *qids = *tmps = 0;
    snprintf(sub, sizeof(sub), "%s/incoming", f->dir);
    d = opendir(sub);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (qid_valid(de->d_name))
            (*qids)++;
        else if (qfile_is_tmp_name(de->d_name))
            (*tmps)++;
    }
    closedir(d);
}

/* Deterministic content with every byte value and odd line lengths. */
static void make_content(struct strbuf *sb, size_t n)
{
    strbuf_reset(sb);
    for (size_t i = 0; i < n; i++)
        strbuf_appendc(sb, (i % 71 == 70) ? '\n' : (int)((i * 7 + i / 256) & 0xff));
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct strbuf *content = strbuf_new(300000), *path = strbuf_new(128), *back = strbuf_new(300000);
    struct timeval tv = {.tv_sec = 1764000000, .tv_usec = 123456};
    struct qfile_writer *w;
    struct qfile *qf;
    const struct qfile_env *env;
    char qid[QID_BUFSIZE], buf[7777];
    bool corrupt = true;
    size_t off;
    ssize_t n;

    make_content(content, 3 * QFILE_CHUNK_MAX + 12345);
    w = qfile_create(f->dir, f->why);
    assert_non_null(w);
    assert_true(qid_valid(qfile_writer_qid(w)));
    strcpy(qid, qfile_writer_qid(w));
    assert_int_equal(qfile_add_time(w, &tv), 0);
    assert_int_equal(qfile_add_sender(w, "sender@example.org"), 0);
    assert_int_equal(qfile_add_rcpt(w, "a@example.org", "rfc822;A@Example.org",
                                    QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE), 0);
    assert_int_equal(qfile_add_rcpt(w, "\"b c\"@example.org", NULL, 0), 0);
    assert_int_equal(qfile_add_rcpt(w, "j\xc3\xb6rg@example.org", "", QFILE_NOTIFY_NEVER), 0);
    assert_int_equal(qfile_add_ret(w, 'H'), 0);
    assert_int_equal(qfile_add_envid(w, "QQ314159"), 0);
    assert_int_equal(qfile_add_flags(w, QFILE_FL_SMTPUTF8 | QFILE_FL_8BITMIME), 0);
    assert_int_equal(qfile_add_attr(w, QFILE_ATTR_CLIENT_NAME, "mail.example.net"), 0);
    assert_int_equal(qfile_add_attr(w, QFILE_ATTR_CLIENT_ADDR, "192.0.2.7"), 0);
    assert_int_equal(qfile_add_attr(w, QFILE_ATTR_SASL_USER, ""), 0);
    /* content in uneven pieces: small, exact chunk, large */
    off = 0;
    static const size_t pieces[] = {1, 70, QFILE_CHUNK_MAX, 5000, 2 * QFILE_CHUNK_MAX + 100};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        assert_int_equal(qfile_add_content(w, strbuf_str(content) + off, pieces[i]), 0);
        off += pieces[i];
    }
    assert_int_equal(qfile_add_content(w, strbuf_str(content) + off, strbuf_len(content) - off), 0);
    assert_int_equal(qfile_writer_rcpt_count(w), 3);
    assert_true(qfile_writer_content_size(w) == strbuf_len(content));
    assert_int_equal(qfile_commit(w, f->why), 0);
    qid_path(path, f->dir, "incoming", qid, 0);
    assert_string_equal(qfile_writer_path(w), strbuf_str(path));
    qfile_writer_free(&w);
    assert_null(w);

    qf = qfile_open(strbuf_str(path), 0, &corrupt, f->why);
    if (qf == NULL)
        fail_msg("open: %s", strbuf_str(f->why));
    assert_false(corrupt);
    assert_string_equal(qfile_qid(qf), qid);
    env = qfile_env(qf);
    assert_int_equal(env->arrival.tv_sec, tv.tv_sec);
    assert_int_equal(env->arrival.tv_usec, tv.tv_usec);
    assert_string_equal(env->sender, "sender@example.org");
    assert_int_equal(env->nrcpt, 3);
    assert_string_equal(env->rcpts[0].addr, "a@example.org");
    assert_string_equal(env->rcpts[0].orcpt, "rfc822;A@Example.org");
    assert_int_equal(env->rcpts[0].notify, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE);
    assert_string_equal(env->rcpts[1].addr, "\"b c\"@example.org");
    assert_string_equal(env->rcpts[1].orcpt, "");
    assert_string_equal(env->rcpts[2].addr, "j\xc3\xb6rg@example.org");
    assert_int_equal(env->rcpts[2].notify, QFILE_NOTIFY_NEVER);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(env->rcpts[i].status, QFILE_RCPT_OPEN);
    assert_int_equal(env->ret, 'H');
    assert_string_equal(env->envid, "QQ314159");
    assert_int_equal(env->flags, QFILE_FL_SMTPUTF8 | QFILE_FL_8BITMIME);
    assert_int_equal(env->nattr, 3);
    assert_string_equal(qfile_attr(qf, QFILE_ATTR_CLIENT_NAME), "mail.example.net");
    assert_string_equal(qfile_attr(qf, QFILE_ATTR_CLIENT_ADDR), "192.0.2.7");
    assert_string_equal(qfile_attr(qf, QFILE_ATTR_SASL_USER), "");
    assert_null(qfile_attr(qf, QFILE_ATTR_TLS));
    assert_true(env->content_size == strbuf_len(content));
    assert_false(qfile_all_done(qf));

    /* content, twice, with different buffer sizes */
    for (int round = 0; round < 2; round++) {
        size_t bs = sizeof(buf);
        strbuf_reset(back);
        for (int guard = 0; guard < 400000; guard++) {
            static const size_t sizes[] = {1, 13, sizeof(buf)};
            n = qfile_content_read(qf, buf, round == 0 ? bs : sizes[guard % 3], f->why);
            assert_true(n >= 0);
            if (n == 0)
                break;
            strbuf_appendn(back, buf, (size_t)n);
        }
        assert_int_equal(strbuf_len(back), strbuf_len(content));
        assert_memory_equal(strbuf_str(back), strbuf_str(content), strbuf_len(content));
        assert_int_equal(qfile_content_read(qf, buf, sizeof(buf), f->why), 0);
        qfile_content_rewind(qf);
    }
    qfile_close(&qf);
    assert_null(qf);
    strbuf_free(&content);
    strbuf_free(&back);
    strbuf_free(&path);
}

/* ------------------------------------------------------------------ */
/* Hand-built files for the corruption table.                          */

static void rec(struct strbuf *sb, int type, const void *data, size_t len)
{
    unsigned char h[5] = {(unsigned char)type, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    strbuf_appendn(sb, h, 5);
    strbuf_appendn(sb, data, len);
}

static void rec_s(struct strbuf *sb, int type, const char *s)
{
    rec(sb, type, s, strlen(s));
}

static void rec_time(struct strbuf *sb, uint32_t usec)
{
    unsigned char t[12] = {0, 0, 0, 0, 0x69, 0x24, 0x4a, 0x00,
                           (unsigned char)(usec >> 24), (unsigned char)(usec >> 16),
                           (unsigned char)(usec >> 8), (unsigned char)usec};
    rec(sb, QFILE_REC_TIME, t, sizeof(t));
}

static void rec_rcpt(struct strbuf *sb, int status, int notify, const char *addr, const char *orcpt)
{
    struct strbuf *d = strbuf_new(64);
    size_t alen = strlen(addr);
    strbuf_appendc(d, status);
    strbuf_appendc(d, notify);
    strbuf_appendc(d, (int)(alen >> 8));
    strbuf_appendc(d, (int)(alen & 0xff));
    strbuf_append(d, addr);
    strbuf_append(d, orcpt);
    rec(sb, QFILE_REC_RCPT, strbuf_str(d), strbuf_len(d));
    strbuf_free(&d);
}

static void rec_end(struct strbuf *sb, uint64_t clen, uint32_t nrcpt)
{
    unsigned char e[12];
    for (int i = 0; i < 8; i++)
        e[i] = (unsigned char)(clen >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        e[8 + i] = (unsigned char)(nrcpt >> (24 - 8 * i));
    rec(sb, QFILE_REC_END, e, sizeof(e));
}

/* What a corruption case changes in the standard file. */
enum mutation {
    MUT_NONE, MUT_NO_VERSION, MUT_BAD_VERSION, MUT_TWO_VERSIONS, MUT_UNKNOWN_TYPE,
    MUT_NO_END, MUT_RCPT_AFTER_CONTENT, MUT_OVERLONG_SENDER, MUT_LENGTH_PAST_EOF,
    MUT_TWO_TIMES, MUT_BAD_USEC, MUT_BAD_STATUS, MUT_BAD_NOTIFY, MUT_ALEN_ZERO,
    MUT_ALEN_PAST_RECORD, MUT_END_COUNT, MUT_END_SIZE, MUT_AFTER_END, MUT_EMPTY,
    MUT_ATTR_NO_NUL, MUT_ATTR_DUP, MUT_ATTR_BAD_NAME, MUT_SENDER_CTL, MUT_EMPTY_CHUNK,
    MUT_BIG_CHUNK, MUT_NO_RCPT, MUT_NO_SENDER, MUT_NO_TIME, MUT_BAD_RET, MUT_LONG_ENVID,
    MUT_BAD_FLAGS, MUT_END_SHORT, MUT_TWO_SENDERS, MUT_OVERLONG_ORCPT, MUT_RCPT_SHORT,
};

static void build(struct strbuf *sb, enum mutation m)
{
    strbuf_reset(sb);
    if (m == MUT_EMPTY)
        return;
    if (m == MUT_BAD_VERSION)
        rec_s(sb, QFILE_REC_VERSION, "facteur-queue 9");
    else if (m != MUT_NO_VERSION)
        rec_s(sb, QFILE_REC_VERSION, QFILE_VERSION);
    if (m == MUT_TWO_VERSIONS)
        rec_s(sb, QFILE_REC_VERSION, QFILE_VERSION);
    if (m != MUT_NO_TIME)
        rec_time(sb, m == MUT_BAD_USEC ? 1000000 : 5);
    if (m == MUT_TWO_TIMES)
        rec_time(sb, 6);
    if (m == MUT_OVERLONG_SENDER) {
        struct strbuf *big = strbuf_new(4000);
        for (int i = 0; i < QFILE_ADDR_MAX + 1; i++)
            strbuf_appendc(big, 'x');
        rec(sb, QFILE_REC_SENDER, strbuf_str(big), strbuf_len(big));
        strbuf_free(&big);
    } else if (m == MUT_SENDER_CTL) {
        rec_s(sb, QFILE_REC_SENDER, "a\r\nb@c");
    } else if (m != MUT_NO_SENDER) {
        rec_s(sb, QFILE_REC_SENDER, "s@example.org");
    }
    if (m == MUT_TWO_SENDERS)
        rec_s(sb, QFILE_REC_SENDER, "t@example.org");
    if (m == MUT_UNKNOWN_TYPE)
        rec_s(sb, 'Z', "what");
    if (m == MUT_BAD_STATUS)
        rec_rcpt(sb, 'Q', 0, "r@example.org", "");
    else if (m == MUT_BAD_NOTIFY)
        rec_rcpt(sb, QFILE_RCPT_OPEN, 0x10, "r@example.org", "");
    else if (m == MUT_ALEN_ZERO)
        rec_rcpt(sb, QFILE_RCPT_OPEN, 0, "", "rfc822;x");
    else if (m == MUT_ALEN_PAST_RECORD)
        rec(sb, QFILE_REC_RCPT, "T\0\0\x20" "short", 9);
    else if (m == MUT_RCPT_SHORT)
        rec(sb, QFILE_REC_RCPT, "T\0\0", 3);
    else if (m == MUT_OVERLONG_ORCPT) {
        struct strbuf *big = strbuf_new(2000);
        strbuf_append(big, "rfc822;");
        while (strbuf_len(big) <= QFILE_ORCPT_MAX)
            strbuf_appendc(big, 'o');
        rec_rcpt(sb, QFILE_RCPT_OPEN, 0, "r@example.org", strbuf_str(big));
        strbuf_free(&big);
    } else if (m != MUT_NO_RCPT && m != MUT_RCPT_AFTER_CONTENT)
        rec_rcpt(sb, QFILE_RCPT_OPEN, QFILE_NOTIFY_DELAY, "r@example.org", "rfc822;r@example.org");
    rec(sb, QFILE_REC_RET, m == MUT_BAD_RET ? "X" : "F", 1);
    if (m == MUT_LONG_ENVID)
        rec_s(sb, QFILE_REC_ENVID, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    else
        rec_s(sb, QFILE_REC_ENVID, "env1");
    rec(sb, QFILE_REC_FLAGS, m == MUT_BAD_FLAGS ? "\0\0\0\x10" : "\0\0\0\x01", 4);
    if (m == MUT_ATTR_NO_NUL)
        rec_s(sb, QFILE_REC_ATTR, "client_name");
    else if (m == MUT_ATTR_BAD_NAME)
        rec(sb, QFILE_REC_ATTR, "Client\0x", 8);
    else
        rec(sb, QFILE_REC_ATTR, "client_name\0mx.example", 22);
    if (m == MUT_ATTR_DUP)
        rec(sb, QFILE_REC_ATTR, "client_name\0mx.example", 22);
    if (m == MUT_EMPTY_CHUNK)
        rec(sb, QFILE_REC_CONTENT, "", 0);
    if (m == MUT_BIG_CHUNK) {
        struct strbuf *big = strbuf_new(QFILE_CHUNK_MAX + 2);
        for (int i = 0; i <= QFILE_CHUNK_MAX; i++)
            strbuf_appendc(big, 'b');
        rec(sb, QFILE_REC_CONTENT, strbuf_str(big), strbuf_len(big));
        strbuf_free(&big);
    }
    rec_s(sb, QFILE_REC_CONTENT, "Subject: x\n\n");
    rec_s(sb, QFILE_REC_CONTENT, "body\n");
    if (m == MUT_RCPT_AFTER_CONTENT)
        rec_rcpt(sb, QFILE_RCPT_OPEN, 0, "r@example.org", "");
    if (m == MUT_LENGTH_PAST_EOF) {
        /* a content record that claims 1000 bytes where 3 follow */
        strbuf_appendn(sb, "M\0\0\x03\xe8" "abc", 8);
        return;
    }
    if (m == MUT_NO_END)
        return;
    if (m == MUT_END_SHORT) {
        rec(sb, QFILE_REC_END, "\0\0\0\0", 4);
        return;
    }
    rec_end(sb, m == MUT_END_SIZE ? 18 : (m == MUT_BIG_CHUNK ? QFILE_CHUNK_MAX + 1 + 17 : 17),
            m == MUT_END_COUNT ? 2 : (m == MUT_NO_RCPT ? 0 : 1));
    if (m == MUT_AFTER_END)
        strbuf_append(sb, "x");
}

struct corrupt_case {
    enum mutation m;
    const char *why;        /* substring expected in the reason */
};

static const struct corrupt_case corrupt_cases[] = {
    {MUT_EMPTY, "no end record"},
    {MUT_NO_VERSION, "no version record"},
    {MUT_BAD_VERSION, "unsupported queue file version"},
    {MUT_TWO_VERSIONS, "repeated version"},
    {MUT_UNKNOWN_TYPE, "unknown record type 0x5a"},
    {MUT_NO_END, "no end record"},
    {MUT_RCPT_AFTER_CONTENT, "after message content"},
    {MUT_OVERLONG_SENDER, "sender"},
    {MUT_LENGTH_PAST_EOF, "past the end of the file"},
    {MUT_TWO_TIMES, "arrival time"},
    {MUT_BAD_USEC, "arrival time out of range"},
    {MUT_BAD_STATUS, "recipient status"},
    {MUT_BAD_NOTIFY, "NOTIFY"},
    {MUT_ALEN_ZERO, "address length"},
    {MUT_ALEN_PAST_RECORD, "address length"},
    {MUT_RCPT_SHORT, "too short"},
    {MUT_OVERLONG_ORCPT, "ORCPT too long"},
    {MUT_END_COUNT, "recipient count"},
    {MUT_END_SIZE, "content length"},
    {MUT_AFTER_END, "data after the end record"},
    {MUT_ATTR_NO_NUL, "attribute"},
    {MUT_ATTR_DUP, "duplicate attribute"},
    {MUT_ATTR_BAD_NAME, "attribute name"},
    {MUT_SENDER_CTL, "sender"},
    {MUT_EMPTY_CHUNK, "content record length"},
    {MUT_BIG_CHUNK, "content record length"},
    {MUT_NO_RCPT, "no recipient"},
    {MUT_NO_SENDER, "no sender"},
    {MUT_NO_TIME, "no arrival time"},
    {MUT_BAD_RET, "RET"},
    {MUT_LONG_ENVID, "ENVID"},
    {MUT_BAD_FLAGS, "flags"},
    {MUT_END_SHORT, "end record length"},
    {MUT_TWO_SENDERS, "sender"},
};

static struct qfile *open_bytes(struct fixture *f, const struct strbuf *sb, int flags, bool *corrupt)
{
    char path[128];
    int fd;

    snprintf(path, sizeof(path), "%s/file", f->dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, strbuf_str(sb), strbuf_len(sb)), (ssize_t)strbuf_len(sb));
    close(fd);
    strbuf_reset(f->why);
    return qfile_open(path, flags, corrupt, f->why);
}

static void test_corrupt(void **state)
{
    struct fixture *f = *state;
    struct strbuf *sb = strbuf_new(1024), *good = strbuf_new(1024);
    struct qfile *qf;
    bool corrupt;

    /* the unmutated file is fine */
    build(good, MUT_NONE);
    qf = open_bytes(f, good, 0, &corrupt);
    if (qf == NULL)
        fail_msg("good file: %s", strbuf_str(f->why));
    assert_int_equal(qfile_env(qf)->nrcpt, 1);
    assert_true(qfile_env(qf)->content_size == 17);
    assert_string_equal(qfile_qid(qf), "");
    qfile_close(&qf);

    for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
        const struct corrupt_case *c = &corrupt_cases[i];
        build(sb, c->m);
        corrupt = false;
        qf = open_bytes(f, sb, 0, &corrupt);
        if (qf != NULL)
            fail_msg("case %zu (mutation %d) accepted", i, c->m);
        assert_true(corrupt);
        if (strstr(strbuf_str(f->why), c->why) == NULL)
            fail_msg("case %zu: why \"%s\" lacks \"%s\"", i, strbuf_str(f->why), c->why);
    }

    /* truncated at every length: never accepted */
    for (size_t len = 0; len < strbuf_len(good); len++) {
        strbuf_setn(sb, strbuf_str(good), len);
        corrupt = false;
        qf = open_bytes(f, sb, 0, &corrupt);
        if (qf != NULL)
            fail_msg("truncated at %zu accepted", len);
        assert_true(corrupt);
    }
    /* every single-byte change in a record header is caught or harmless */
    for (size_t pos = 0; pos < strbuf_len(good); pos++) {
        strbuf_setn(sb, strbuf_str(good), strbuf_len(good));
        sb->data[pos] ^= 0x40;
        qf = open_bytes(f, sb, 0, &corrupt);
        if (qf != NULL) {
            /* accepted only if the change stayed inside a data field */
            assert_int_equal(qfile_env(qf)->nrcpt, 1);
            qfile_close(&qf);
        } else {
            assert_true(corrupt);
        }
    }
    strbuf_free(&sb);
    strbuf_free(&good);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    char path[160];
    bool corrupt = true;

    snprintf(path, sizeof(path), "%s/nonexistent", f->dir);
    assert_null(qfile_open(path, 0, &corrupt, f->why));
    assert_false(corrupt);
    assert_non_null(strstr(strbuf_str(f->why), "No such file"));
    snprintf(path, sizeof(path), "%s/incoming", f->dir);
    assert_null(qfile_open(path, 0, &corrupt, f->why));
    assert_true(corrupt);
    assert_null(qfile_create("/nonexistent-facteur-dir", f->why));
    assert_non_null(strstr(strbuf_str(f->why), "/nonexistent-facteur-dir/incoming/"));
}

static char *write_simple(struct fixture *f, int nrcpt, const char *body)
{
    struct qfile_writer *w = qfile_create(f->dir, f->why);
    char *path;

    assert_non_null(w);
    qfile_add_sender(w, "");
    for (int i = 0; i < nrcpt; i++) {
        char a[32];
        snprintf(a, sizeof(a), "r%d@example.org", i);
        qfile_add_rcpt(w, a, NULL, 0);
    }
    qfile_add_content(w, body, strlen(body));
    if (qfile_commit(w, f->why) < 0)
        fail_msg("commit: %s", strbuf_str(f->why));
    path = strdup(qfile_writer_path(w));
    qfile_writer_free(&w);
    return path;
}

static void test_done_flags(void **state)
{
    struct fixture *f = *state;
    char *path = write_simple(f, 4, "hello\n");
    struct qfile *qf;
    bool corrupt;
    int fd;
    char byte;

    qf = qfile_open(path, 0, &corrupt, f->why);
    assert_non_null(qf);
    assert_string_equal(qfile_env(qf)->sender, "");
    assert_int_equal(qfile_rcpt_set(qf, 0, QFILE_RCPT_SENT, f->why), -1);   /* read-only */
    qfile_close(&qf);

    qf = qfile_open(path, QFILE_OPEN_RDWR, &corrupt, f->why);
    assert_non_null(qf);
    assert_int_equal(qfile_rcpt_mark(qf, 1, QFILE_RCPT_SENT, f->why), 0);
    assert_int_equal(qfile_rcpt_mark(qf, 3, QFILE_RCPT_BOUNCED, f->why), 0);
    assert_int_equal(qfile_rcpt_mark(qf, 4, QFILE_RCPT_SENT, f->why), -1);  /* no such rcpt */
    assert_int_equal(qfile_rcpt_mark(qf, 0, 'Q', f->why), -1);              /* bad status */
    assert_int_equal(qfile_env(qf)->rcpts[1].status, QFILE_RCPT_SENT);
    /* the byte is on disk at the advertised offset */
    fd = open(path, O_RDONLY);
    assert_int_equal(pread(fd, &byte, 1, qfile_env(qf)->rcpts[1].status_off), 1);
    assert_int_equal(byte, QFILE_RCPT_SENT);
    close(fd);
    qfile_close(&qf);

    qf = qfile_open(path, QFILE_OPEN_RDWR, &corrupt, f->why);
    assert_non_null(qf);
    assert_int_equal(qfile_env(qf)->rcpts[0].status, QFILE_RCPT_OPEN);
    assert_int_equal(qfile_env(qf)->rcpts[1].status, QFILE_RCPT_SENT);
    assert_int_equal(qfile_env(qf)->rcpts[2].status, QFILE_RCPT_OPEN);
    assert_int_equal(qfile_env(qf)->rcpts[3].status, QFILE_RCPT_BOUNCED);
    assert_false(qfile_all_done(qf));
    assert_int_equal(qfile_rcpt_set(qf, 0, QFILE_RCPT_DROPPED, f->why), 0);
    assert_int_equal(qfile_rcpt_set(qf, 2, QFILE_RCPT_SENT, f->why), 0);
    assert_int_equal(qfile_sync(qf, f->why), 0);
    assert_true(qfile_all_done(qf));
    qfile_close(&qf);
    qf = qfile_open(path, 0, &corrupt, f->why);
    assert_non_null(qf);
    assert_true(qfile_all_done(qf));
    assert_int_equal(qfile_env(qf)->rcpts[0].status, QFILE_RCPT_DROPPED);
    qfile_close(&qf);
    free(path);
}

static void test_durability(void **state)
{
    struct fixture *f = *state;
    struct qfile_writer *w;
    int qids, tmps, status;
    pid_t pid;

    /* before commit the file exists only under its temp name */
    w = qfile_create(f->dir, f->why);
    assert_non_null(w);
    qfile_add_sender(w, "s@example.org");
    qfile_add_rcpt(w, "r@example.org", NULL, 0);
    qfile_add_content(w, "x\n", 2);
    count_incoming(f, &qids, &tmps);
    assert_int_equal(qids, 0);
    assert_int_equal(tmps, 1);
    assert_true(qfile_is_tmp_name(strrchr(qfile_writer_path(w), '/') + 1));
    assert_int_equal(qfile_commit_prepare(w, f->why), 0);
    count_incoming(f, &qids, &tmps);
    assert_int_equal(qids, 1);
    assert_int_equal(tmps, 0);
    assert_int_equal(qfile_sync_dir(f->dir, f->why), 0);
    /* adding after commit fails */
    assert_int_equal(qfile_add_content(w, "y", 1), -1);
    assert_int_equal(qfile_commit(w, f->why), -1);
    assert_non_null(strstr(strbuf_str(f->why), "already committed"));
    qfile_writer_free(&w);

    /* a writer that dies half-way leaves no queue ID behind */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct strbuf *why = strbuf_new(16);
        struct qfile_writer *cw = qfile_create(f->dir, why);
        char big[100000];
        if (cw == NULL)
            _exit(2);
        memset(big, 'h', sizeof(big));
        qfile_add_sender(cw, "s@example.org");
        qfile_add_rcpt(cw, "r@example.org", NULL, 0);
        qfile_add_content(cw, big, sizeof(big));
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    count_incoming(f, &qids, &tmps);
    assert_int_equal(qids, 1);
    assert_int_equal(tmps, 1);
    /* too young to purge */
    assert_int_equal(qfile_purge_tmp(f->dir, 3600, f->why), 0);
    /* the dead child's file goes; our own writer, still running, stays */
    struct qfile_writer *live = qfile_create(f->dir, f->why);
    assert_non_null(live);
    assert_int_equal(qfile_purge_tmp(f->dir, 0, f->why), 1);
    assert_int_equal(access(qfile_writer_path(live), F_OK), 0);
    qfile_writer_free(&live);
    count_incoming(f, &qids, &tmps);
    assert_int_equal(qids, 1);
    assert_int_equal(tmps, 0);
    assert_int_equal(qfile_purge_tmp("/nonexistent-facteur-dir", 0, f->why), -1);
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct qfile_group g;
    struct qfile_writer *w[5];
    uint64_t seq[6];
    int qids, tmps;

    qfile_group_init(&g, f->dir);
    assert_int_equal(qfile_group_sync(&g, f->why), 0);      /* nothing pending */
    for (int i = 0; i < 5; i++) {
        w[i] = qfile_create(f->dir, f->why);
        assert_non_null(w[i]);
        qfile_add_sender(w[i], "s@example.org");
        qfile_add_rcpt(w[i], "r@example.org", NULL, 0);
        qfile_add_content(w[i], "m\n", 2);
    }
    /* five IDs, all different */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < i; j++)
            assert_string_not_equal(qfile_writer_qid(w[i]), qfile_writer_qid(w[j]));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(qfile_group_prepare(&g, w[i], &seq[i], f->why), 0);
        assert_false(qfile_group_done(&g, seq[i]));
    }
    assert_int_equal(qfile_group_sync(&g, f->why), 0);
    for (int i = 0; i < 5; i++)
        assert_true(qfile_group_done(&g, seq[i]));
    count_incoming(f, &qids, &tmps);
    assert_int_equal(qids, 5);
    assert_int_equal(tmps, 0);
    /* a file prepared after the sync waits for the next one */
    struct qfile_writer *late = qfile_create(f->dir, f->why);
    qfile_add_sender(late, "s@example.org");
    qfile_add_rcpt(late, "r@example.org", NULL, 0);
    assert_int_equal(qfile_group_prepare(&g, late, &seq[5], f->why), 0);
    assert_false(qfile_group_done(&g, seq[5]));
    assert_true(qfile_group_done(&g, seq[4]));
    assert_int_equal(qfile_group_sync(&g, f->why), 0);
    assert_true(qfile_group_done(&g, seq[5]));
    assert_false(qfile_group_done(&g, 0));
    qfile_writer_free(&late);
    for (int i = 0; i < 5; i++)
        qfile_writer_free(&w[i]);
    qfile_group_free(&g);
}

/* Writer misuse: each makes the commit fail and removes the temp file. */
enum misuse {
    MIS_ENV_AFTER_CONTENT, MIS_NO_SENDER, MIS_NO_RCPT, MIS_SENDER_CRLF, MIS_RCPT_EMPTY,
    MIS_TWO_SENDERS, MIS_ATTR_DUP, MIS_ATTR_NAME, MIS_ATTR_LONG, MIS_BAD_RET, MIS_ENVID_LONG,
    MIS_BAD_FLAGS, MIS_BAD_NOTIFY, MIS_BAD_TIME, MIS_ORCPT_LONG, MIS_COUNT
};

static const char *const misuse_why[MIS_COUNT] = {
    "envelope record after message content", "no sender", "no recipients", "bad sender",
    "bad recipient", "sender given twice", "attribute client_name given twice",
    "bad attribute name", "bad value for attribute", "bad DSN RET", "bad ENVID",
    "bad message flags", "bad NOTIFY", "bad arrival time", "bad ORCPT",
};

static void test_writer_misuse(void **state)
{
    struct fixture *f = *state;
    char longv[QFILE_ATTR_VALUE_MAX + 2];

    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    for (int m = 0; m < MIS_COUNT; m++) {
        struct qfile_writer *w = qfile_create(f->dir, f->why);
        struct timeval bad = {.tv_sec = 1, .tv_usec = 1000000};
        int qids, tmps;

        assert_non_null(w);
        if (m != MIS_NO_SENDER && m != MIS_SENDER_CRLF)
            qfile_add_sender(w, "s@example.org");
        if (m != MIS_NO_RCPT && m != MIS_ENV_AFTER_CONTENT)
            qfile_add_rcpt(w, "r@example.org", NULL, 0);
        switch (m) {
        case MIS_ENV_AFTER_CONTENT:
            qfile_add_content(w, "x", 1);
            assert_int_equal(qfile_add_rcpt(w, "r@example.org", NULL, 0), -1);
            break;
        case MIS_SENDER_CRLF: assert_int_equal(qfile_add_sender(w, "s@x\r\nRCPT"), -1); break;
        case MIS_RCPT_EMPTY: assert_int_equal(qfile_add_rcpt(w, "", NULL, 0), -1); break;
        case MIS_TWO_SENDERS: assert_int_equal(qfile_add_sender(w, "t@example.org"), -1); break;
        case MIS_ATTR_DUP:
            qfile_add_attr(w, "client_name", "a");
            assert_int_equal(qfile_add_attr(w, "client_name", "b"), -1);
            break;
        case MIS_ATTR_NAME: assert_int_equal(qfile_add_attr(w, "Client-Name", "a"), -1); break;
        case MIS_ATTR_LONG: assert_int_equal(qfile_add_attr(w, "tls_info", longv), -1); break;
        case MIS_BAD_RET: assert_int_equal(qfile_add_ret(w, 'Z'), -1); break;
        case MIS_ENVID_LONG: assert_int_equal(qfile_add_envid(w, longv), -1); break;
        case MIS_BAD_FLAGS: assert_int_equal(qfile_add_flags(w, 0x100), -1); break;
        case MIS_BAD_NOTIFY: assert_int_equal(qfile_add_rcpt(w, "x@y", NULL, 0x20), -1); break;
        case MIS_BAD_TIME: assert_int_equal(qfile_add_time(w, &bad), -1); break;
        case MIS_ORCPT_LONG: assert_int_equal(qfile_add_rcpt(w, "x@y", longv, 0), -1); break;
        default: break;
        }
        /* sticky: later calls fail too (except for the commit-time checks) */
        if (m != MIS_NO_SENDER && m != MIS_NO_RCPT)
            assert_int_equal(qfile_add_content(w, "more", 4), -1);
        strbuf_reset(f->why);
        assert_int_equal(qfile_commit(w, f->why), -1);
        if (strstr(strbuf_str(f->why), misuse_why[m]) == NULL)
            fail_msg("misuse %d: why \"%s\"", m, strbuf_str(f->why));
        count_incoming(f, &qids, &tmps);
        assert_int_equal(qids, 0);
        assert_int_equal(tmps, 0);
        qfile_writer_free(&w);
    }
    /* free without commit removes the temp file (abort) */
    struct qfile_writer *w = qfile_create(f->dir, f->why);
    int qids, tmps;
    count_incoming(f, &qids, &tmps);
    assert_int_equal(tmps, 1);
    qfile_writer_free(&w);
    count_incoming(f, &qids, &tmps);
    assert_int_equal(tmps, 0);
}

/* A file truncated after open: content reading notices. */
static void test_changed_under_reader(void **state)
{
    struct fixture *f = *state;
    struct strbuf *body = strbuf_new(200000);
    char buf[4096];
    char *path;
    struct qfile *qf;
    bool corrupt;
    ssize_t n = 1;

    for (int i = 0; i < 150000; i++)
        strbuf_appendc(body, i % 80 == 79 ? '\n' : 'a' + i % 26);
    path = write_simple(f, 1, strbuf_str(body));
    qf = qfile_open(path, 0, &corrupt, f->why);
    assert_non_null(qf);
    assert_int_equal(truncate(path, 70000), 0);
    for (int guard = 0; guard < 100 && n > 0; guard++)
        n = qfile_content_read(qf, buf, sizeof(buf), f->why);
    assert_int_equal(n, -1);
    assert_non_null(strstr(strbuf_str(f->why), "changed"));
    qfile_close(&qf);
    free(path);
    strbuf_free(&body);
}

struct walk_log {
    char types[64];
    size_t n;
    int stop_at;            /* stop (return 7) at this record index, -1 never */
};

static int walk_fn(int type, off_t off, const unsigned char *data, uint32_t len, void *ctx)
{
    struct walk_log *log = ctx;

    if (data == NULL && len <= QFILE_CHUNK_MAX)
        return 99;
    if (log->n + 1 < sizeof(log->types))
        log->types[log->n] = (char)type;
    if ((int)log->n++ == log->stop_at)
        return 7;
    return 0;
}

static void test_walk(void **state)
{
    struct fixture *f = *state;
    struct strbuf *sb = strbuf_new(1024);
    char path[128];
    struct walk_log log;
    int fd;

    build(sb, MUT_NONE);
    snprintf(path, sizeof(path), "%s/file", f->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, strbuf_str(sb), strbuf_len(sb)), (ssize_t)strbuf_len(sb));

    memset(&log, 0, sizeof(log));
    log.stop_at = -1;
    assert_int_equal(qfile_walk(fd, walk_fn, &log, f->why), 0);
    assert_string_equal(log.types, "VTSRNIFAMME");
    memset(&log, 0, sizeof(log));
    log.stop_at = 2;
    assert_int_equal(qfile_walk(fd, walk_fn, &log, f->why), 7);
    assert_int_equal(log.n, 3);
    /* damaged: cut inside the last record, the walk shows what precedes */
    assert_int_equal(ftruncate(fd, (off_t)strbuf_len(sb) - 3), 0);
    memset(&log, 0, sizeof(log));
    log.stop_at = -1;
    assert_int_equal(qfile_walk(fd, walk_fn, &log, f->why), -1);
    assert_string_equal(log.types, "VTSRNIFAMM");
    assert_non_null(strstr(strbuf_str(f->why), "cut short"));
    /* a header that claims more than the file holds */
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, "M\x7f\xff\xff\xffxyz", 8, 0), 8);
    memset(&log, 0, sizeof(log));
    assert_int_equal(qfile_walk(fd, walk_fn, &log, f->why), -1);
    assert_int_equal(log.n, 0);
    /* a header cut short */
    assert_int_equal(ftruncate(fd, 3), 0);
    assert_int_equal(qfile_walk(fd, walk_fn, &log, f->why), -1);
    assert_non_null(strstr(strbuf_str(f->why), "truncated record header"));
    close(fd);
    strbuf_free(&sb);
}

/* facteur-drop's side: the same format in maildrop/. */
static void test_maildrop(void **state)
{
    struct fixture *f = *state;
    char sub[128];
    struct qfile_writer *w;
    struct qfile *qf;
    bool corrupt;

    snprintf(sub, sizeof(sub), "%s/maildrop", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    w = qfile_create_in(f->dir, "maildrop", f->why);
    assert_non_null(w);
    assert_non_null(strstr(qfile_writer_path(w), "/maildrop/.tmp."));
    qfile_add_sender(w, "user@localhost");
    qfile_add_rcpt(w, "root@localhost", NULL, 0);
    qfile_add_attr(w, QFILE_ATTR_ORIGIN, "sendmail");
    qfile_add_content(w, "Subject: t\n\nx\n", 15);
    assert_int_equal(qfile_commit(w, f->why), 0);
    assert_non_null(strstr(qfile_writer_path(w), "/maildrop/"));
    assert_true(qid_valid(strrchr(qfile_writer_path(w), '/') + 1));
    qf = qfile_open(qfile_writer_path(w), 0, &corrupt, f->why);
    assert_non_null(qf);
    assert_string_equal(qfile_attr(qf, QFILE_ATTR_ORIGIN), "sendmail");
    assert_string_equal(qfile_qid(qf), qfile_writer_qid(w));
    qfile_close(&qf);
    unlink(qfile_writer_path(w));
    qfile_writer_free(&w);
    /* purge in maildrop: a live writer's file stays, a dead one's goes */
    w = qfile_create_in(f->dir, "maildrop", f->why);
    assert_non_null(w);
    char dead[192];
    snprintf(dead, sizeof(dead), "%s/.tmp.999999999.0.000000", sub);
    int fd = open(dead, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(qfile_purge_tmp_in(f->dir, "maildrop", 0, f->why), 1);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(qfile_writer_path(w), F_OK), 0);
    qfile_writer_free(&w);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(qfile_sync_queue(f->dir, "maildrop", f->why), 0);
    assert_int_equal(qfile_sync_queue(f->dir, "nonexistent", f->why), -1);
    assert_int_equal(rmdir(sub), 0);
}

static void test_constants(void **state)
{
    assert_int_equal(QFILE_NOTIFY_NEVER, SMTP_NOTIFY_NEVER);
    assert_int_equal(QFILE_NOTIFY_SUCCESS, SMTP_NOTIFY_SUCCESS);
    assert_int_equal(QFILE_NOTIFY_FAILURE, SMTP_NOTIFY_FAILURE);
    assert_int_equal(QFILE_NOTIFY_DELAY, SMTP_NOTIFY_DELAY);
    assert_true(QFILE_ENVID_MAX >= SMTP_ENVID_MAX);
    assert_false(qfile_is_tmp_name("1vNYyu4C91W7E"));
    assert_false(qid_valid(".tmp.1.2.000003"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_under_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildrop, setup, teardown),
        cmocka_unit_test(test_constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
