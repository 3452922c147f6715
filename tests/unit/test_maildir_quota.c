/*
 * test_maildir_quota.c - Maildir++ maildirsize: definitions and files
 * (malformed, truncated and overflowing ones included), the limit check,
 * appended updates, and every recalculation rule (no file, 5120 bytes,
 * another definition, a broken file, a stale over-quota file) counted
 * over INBOX and folders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "maildir_quota.h"
#include "strbuf.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static char *root_new(void)
{
    char tmpl[] = "/tmp/test_quota.XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    assert_int_equal(maildir_create(d, NULL), 0);
    return strdup(d);
}

static void root_free(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static char *quota_path(const char *root)
{
    char *p;

    assert_true(asprintf(&p, "%s/%s", root, MAILDIR_QUOTA_FILE) > 0);
    return p;
}

static void write_quota(const char *root, const char *data)
{
    char *p = quota_path(root);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
    free(p);
}

static off_t quota_size(const char *root)
{
    char *p = quota_path(root);
    struct stat st;

    assert_int_equal(stat(p, &st), 0);
    free(p);
    return st.st_size;
}

/* ---------------------------------------------------------------- */

static const struct {
    const char *def;
    int ok;
    uint64_t bytes, count;
} def_cases[] = {
    { "1000S,10C", 1, 1000, 10 },
    { "10C,1000S", 1, 1000, 10 },
    { "1000S", 1, 1000, 0 },
    { "10C", 1, 0, 10 },
    { "", 1, 0, 0 },
    { "0S,0C", 1, 0, 0 },
    { "9223372036854775807S", 1, 9223372036854775807ull, 0 },
    { "S", 0, 0, 0 },
    { "10X", 0, 0, 0 },
    { "1000S,", 0, 0, 0 },
    { ",10C", 0, 0, 0 },
    { "-5S", 0, 0, 0 },
    { "1 000S", 0, 0, 0 },
    { "99999999999999999999S", 0, 0, 0 },
    { "1000s", 0, 0, 0 },
};

static void test_definitions(void **state)
{
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);
    uint64_t b, c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(def_cases) / sizeof(def_cases[0]); i++) {
        int r = maildir_quota_parse_def(def_cases[i].def, strlen(def_cases[i].def), &b, &c, why);

        if ((r == 0) != def_cases[i].ok)
            fail_msg("def case \"%s\": %d", def_cases[i].def, r);
        if (r == 0) {
            assert_true(b == def_cases[i].bytes);
            assert_true(c == def_cases[i].count);
        }
    }
    maildir_quota_format_def(out, 1000, 10);
    assert_string_equal(strbuf_str(out), "1000S,10C");
    maildir_quota_format_def(out, 0, 10);
    assert_string_equal(strbuf_str(out), "10C");
    maildir_quota_format_def(out, 5, 0);
    assert_string_equal(strbuf_str(out), "5S");
    maildir_quota_format_def(out, 0, 0);
    assert_string_equal(strbuf_str(out), "");
    strbuf_free(&why);
    strbuf_free(&out);
}

static const struct {
    const char *data;
    int ok;
    uint64_t lb, lc;
    int64_t bytes, count;
} file_cases[] = {
    { "1000S,10C\n", 1, 1000, 10, 0, 0 },
    { "1000S,10C\n300 3\n", 1, 1000, 10, 300, 3 },
    { "1000S,10C\n300 3\n-100 -1\n  5   1\n", 1, 1000, 10, 205, 3 },
    { "\n10 1\n", 1, 0, 0, 10, 1 },
    { "", 0, 0, 0, 0, 0 },
    { "1000S,10C", 0, 0, 0, 0, 0 },
    { "1000S,10C\n300 3", 0, 0, 0, 0, 0 },
    { "1000S,10C\n300\n", 0, 0, 0, 0, 0 },
    { "1000S,10C\nx 3\n", 0, 0, 0, 0, 0 },
    { "1000S,10C\n3 y\n", 0, 0, 0, 0, 0 },
    { "1000S,10C\n--3 1\n", 0, 0, 0, 0, 0 },
    { "bogus\n1 1\n", 0, 0, 0, 0, 0 },
    { "1S\n9223372036854775807 1\n1 1\n", 0, 0, 0, 0, 0 },
    { "1S\n99999999999999999999 1\n", 0, 0, 0, 0, 0 },
};

static void test_parse_files(void **state)
{
    struct strbuf *why = strbuf_new(64), *big = strbuf_new(1 << 17);
    struct maildir_quota q;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
        int r = maildir_quota_parse(file_cases[i].data, strlen(file_cases[i].data), &q, why);

        if ((r == 0) != file_cases[i].ok)
            fail_msg("file case %zu: %d (%s)", i, r, strbuf_str(why));
        if (r < 0)
            continue;
        assert_true(q.limit_bytes == file_cases[i].lb);
        assert_true(q.limit_count == file_cases[i].lc);
        assert_true(q.bytes == file_cases[i].bytes);
        assert_true(q.count == file_cases[i].count);
    }
    /* More than 10,000 lines is refused. */
    strbuf_set(big, "1S\n");
    for (i = 0; i < 10001; i++)
        strbuf_append(big, "1 1\n");
    assert_int_equal(maildir_quota_parse(strbuf_str(big), strbuf_len(big), &q, why), -1);
    strbuf_free(&why);
    strbuf_free(&big);
}

static void test_exceeded(void **state)
{
    struct maildir_quota q = { .limit_bytes = 1000, .limit_count = 3, .bytes = 900, .count = 2 };

    (void)state;
    assert_false(maildir_quota_exceeded(&q, 100, 1));
    assert_true(maildir_quota_exceeded(&q, 101, 1));
    assert_true(maildir_quota_exceeded(&q, 1, 2));
    assert_false(maildir_quota_exceeded(&q, 0, 0));
    q.count = 3;
    assert_true(maildir_quota_exceeded(&q, 0, 0));
    q.limit_bytes = 0;
    q.limit_count = 0;
    assert_false(maildir_quota_exceeded(&q, UINT64_MAX / 2, 1000));
    /* Negative sums (expunges counted twice) never wrap to "over". */
    q.limit_bytes = 10;
    q.bytes = -500;
    q.count = -5;
    assert_false(maildir_quota_exceeded(&q, 10, 0));
}

/* ---------------------------------------------------------------- */

static void test_recalc_and_update(void **state)
{
    char *root = root_new(), *sent;
    struct strbuf *why = strbuf_new(64);
    struct maildir_quota q;

    (void)state;
    /* No file and no configured limit: no quota, no file made. */
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.limit_bytes == 0 && q.limit_count == 0 && q.bytes == 0);
    assert_int_equal(maildir_quota_update(root, 10, 1, why), 0);
    {
        char *p = quota_path(root);

        assert_int_equal(access(p, F_OK), -1);
        free(p);
    }
    /* Messages in INBOX (S= in the name, or stat) and in a folder. */
    assert_int_equal(maildir_deliver(root, NULL, "12345\n", 6, NULL, why), 0);
    {
        char *p;
        int fd;

        assert_true(asprintf(&p, "%s/cur/nosize:2,S", root) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "abc", 3), 3);
        close(fd);
        free(p);
    }
    assert_int_equal(maildir_folder_create(root, "Sent", why), 0);
    assert_true(asprintf(&sent, "%s/.Sent", root) > 0);
    assert_int_equal(maildir_deliver(sent, NULL, "0123456789\n", 11, NULL, why), 0);
    /* A configured limit and no file: counted and written. */
    assert_int_equal(maildir_quota_get(root, "1000S,10C", &q, why), 0);
    assert_true(q.limit_bytes == 1000 && q.limit_count == 10);
    assert_true(q.bytes == 6 + 3 + 11 && q.count == 3);
    /* A delivery appends a line; the sums follow. */
    assert_int_equal(maildir_quota_update(root, 100, 1, why), 0);
    assert_int_equal(maildir_quota_update(root, -3, -1, why), 0);
    assert_int_equal(maildir_quota_get(root, "1000S,10C", &q, why), 0);
    assert_true(q.bytes == 20 + 100 - 3 && q.count == 3);
    /* The file's definition is used when none is configured. */
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.limit_bytes == 1000);
    /* A new configured definition: recalculated with it (the appended
     * +100 was never a real file, so it goes). */
    assert_int_equal(maildir_quota_get(root, "5000S", &q, why), 0);
    assert_true(q.limit_bytes == 5000 && q.limit_count == 0);
    assert_true(q.bytes == 20 && q.count == 3);
    /* A bad configured definition is an error, not a silent no-quota. */
    assert_int_equal(maildir_quota_get(root, "lots", &q, why), -1);
    free(sent);
    strbuf_free(&why);
    root_free(root);
}

static void test_recalc_rules(void **state)
{
    char *root = root_new(), *p;
    struct strbuf *why = strbuf_new(64);
    struct maildir_quota q;
    struct timespec old[2];
    int i;

    (void)state;
    assert_int_equal(maildir_deliver(root, NULL, "hello\n", 6, NULL, why), 0);
    /* 5120 bytes or more: recounted and rewritten small. */
    {
        struct strbuf *sb = strbuf_new(8192);

        strbuf_set(sb, "100S\n");
        for (i = 0; i < 1500; i++)
            strbuf_append(sb, "1 0\n");
        write_quota(root, strbuf_str(sb));
        strbuf_free(&sb);
    }
    assert_true(quota_size(root) >= MAILDIR_QUOTA_RECALC_BYTES);
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.bytes == 6 && q.count == 1 && q.limit_bytes == 100);
    assert_true(quota_size(root) < 64);

    /* A broken file: recounted, the definition kept if readable. */
    write_quota(root, "100S\n12 oops\n");
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.bytes == 6 && q.count == 1 && q.limit_bytes == 100);

    /* Over quota by a recent file: believed (no recount). */
    write_quota(root, "100S\n500 1\n");
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.bytes == 500);
    assert_true(maildir_quota_exceeded(&q, 0, 0));
    /* Over quota by a file older than 15 minutes: recounted first. */
    p = quota_path(root);
    old[0].tv_sec = old[1].tv_sec = time(NULL) - MAILDIR_QUOTA_STALE_SECS - 60;
    old[0].tv_nsec = old[1].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.bytes == 6);
    assert_false(maildir_quota_exceeded(&q, 0, 0));
    /* Under quota and old: left alone. */
    write_quota(root, "100S\n50 1\n");
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    assert_int_equal(maildir_quota_get(root, NULL, &q, why), 0);
    assert_true(q.bytes == 50);
    free(p);
    /* An explicit recount, and no tmp/ file left behind. */
    assert_int_equal(maildir_quota_recalc(root, "7C", &q, why), 0);
    assert_true(q.limit_count == 7 && q.limit_bytes == 0 && q.bytes == 6);
    {
        char *data, *qp = quota_path(root);
        char buf[64];
        int fd = open(qp, O_RDONLY);
        ssize_t n;

        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        assert_true(n > 0);
        buf[n] = '\0';
        data = buf;
        assert_string_equal(data, "7C\n6 1\n");
        free(qp);
    }
    {
        char *tmp;
        int n = 0;
        struct stat st;

        assert_true(asprintf(&tmp, "%s/tmp", root) > 0);
        assert_int_equal(stat(tmp, &st), 0);
        assert_int_equal(maildir_clean_tmp(root, time(NULL) + 10 * MAILDIR_TMP_STALE_SECS,
                                           MAILDIR_TMP_STALE_SECS, why), n);
        free(tmp);
    }
    assert_int_equal(maildir_quota_recalc("/nonexistent/root", NULL, &q, why), -1);
    strbuf_free(&why);
    root_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions),
        cmocka_unit_test(test_parse_files),
        cmocka_unit_test(test_exceeded),
        cmocka_unit_test(test_recalc_and_update),
        cmocka_unit_test(test_recalc_rules),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
