/*
 * test_maildir.c - lib/maildir: file names and info flags (malformed and
 * over-long included), durable delivery, idempotent redelivery, a crash
 * between write and link, concurrent deliveries from several processes,
 * flag changes racing another process's rename, expunge, copy (hard link
 * and, across file systems, bytes), append and the dot lock.  Folders and
 * subscriptions are in test_maildir_folder.c.
 *
 * Every test works in its own mkdtemp() directory, removed at the end;
 * forked helpers are bounded in count and always reaped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "strbuf.h"

/* ---------------------------------------------------------------- */
/* helpers                                                            */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/test_maildir.XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    return strdup(d);
}

static void tmpdir_free(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static char *path2(const char *a, const char *b)
{
    char *p;

    assert_true(asprintf(&p, "%s/%s", a, b) > 0);
    return p;
}

/* Number of non-dot entries of dir/sub. */
static int count_files(const char *dir, const char *sub)
{
    char *p = path2(dir, sub);
    DIR *d = opendir(p);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    free(p);
    return n;
}

/* The only file in dir/sub (asserts there is exactly one). */
static char *only_file(const char *dir, const char *sub)
{
    char *p = path2(dir, sub), *name = NULL;
    DIR *d = opendir(p);
    struct dirent *de;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        assert_null(name);
        name = strdup(de->d_name);
    }
    closedir(d);
    free(p);
    assert_non_null(name);
    return name;
}

static char *read_all(const char *path)
{
    struct strbuf *sb = strbuf_new(64);
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        strbuf_appendn(sb, buf, (size_t)n);
    close(fd);
    return strbuf_steal(&sb);
}

static int wait_child(pid_t pid)
{
    int st;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---------------------------------------------------------------- */
/* names and info                                                     */

struct name_case {
    const char *name;
    int ok;
    size_t base_len;
    unsigned flags;
    uint32_t keywords;
    int has_info;
    long long size;     /* -1: no S=; -2: S=UINT64_MAX */
    long long vsize;    /* -1: no W= */
    const char *extra;  /* NULL: none */
};

static const struct name_case name_cases[] = {
    { "1234.M1P2.host", 1, 14, 0, 0, 0, -1, -1, NULL },
    { "1234.M1P2.host:2,", 1, 14, 0, 0, 1, -1, -1, NULL },
    { "1234.M1P2.host:2,S", 1, 14, MAILDIR_FLAG_SEEN, 0, 1, -1, -1, NULL },
    { "1234.M1P2.host:2,DFPRST", 1, 14, MAILDIR_FLAGS_ALL, 0, 1, -1, -1, NULL },
    { "1234.M1P2.host:2,TSRPFD", 1, 14, MAILDIR_FLAGS_ALL, 0, 1, -1, -1, NULL },
    { "x:2,Sab", 1, 1, MAILDIR_FLAG_SEEN, 3, 1, -1, -1, NULL },
    { "x:2,az", 1, 1, 0, (1u << 25) | 1u, 1, -1, -1, NULL },
    { "x:2,SX", 1, 1, MAILDIR_FLAG_SEEN, 0, 1, -1, -1, NULL },     /* unknown flag ignored */
    { "x:2,SS", 1, 1, MAILDIR_FLAG_SEEN, 0, 1, -1, -1, NULL },     /* repeated */
    { "x:2,S,extra", 1, 1, MAILDIR_FLAG_SEEN, 0, 1, -1, -1, ",extra" },
    { "a.b,S=1355,W=1394:2,F", 1, 17, MAILDIR_FLAG_FLAGGED, 0, 1, 1355, 1394, NULL },
    { "a.b,W=7", 1, 7, 0, 0, 0, -1, 7, NULL },
    { "a.b,S=0", 1, 7, 0, 0, 0, 0, -1, NULL },
    { "a.b,other=1,S=5", 1, 15, 0, 0, 0, 5, -1, NULL },
    { "a.b,S=18446744073709551615", 1, 26, 0, 0, 0, -2, -1, NULL },
    /* malformed */
    { "", 0, 0, 0, 0, 0, 0, 0, NULL },
    { ":2,S", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "a/b", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "a\nb", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "a\x7f", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x:1,S", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x:2", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x:2S", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x:2,S1", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x:2,S:", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x,S=", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x,S=12a", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x,W=-1", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x,S=18446744073709551616", 0, 0, 0, 0, 0, 0, 0, NULL },
    { "x,S=000000000000000000001", 0, 0, 0, 0, 0, 0, 0, NULL },
};

static void test_name_parse(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct maildir_info info;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const struct name_case *c = &name_cases[i];
        int r = maildir_name_parse(c->name, strlen(c->name), &info, why);

        if (!c->ok) {
            if (r != -1)
                fail_msg("case %zu \"%s\" parsed", i, c->name);
            assert_true(strbuf_len(why) > 0);
            continue;
        }
        if (r != 0)
            fail_msg("case %zu \"%s\": %s", i, c->name, strbuf_str(why));
        assert_int_equal(info.base_len, c->base_len);
        assert_int_equal(info.flags, c->flags);
        assert_int_equal(info.keywords, c->keywords);
        assert_int_equal(info.has_info, c->has_info);
        if (c->size == -1) {
            assert_false(info.has_size);
        } else if (c->size == -2) {
            assert_true(info.has_size);
            assert_true(info.size == UINT64_MAX);
        } else {
            assert_true(info.has_size);
            assert_int_equal(info.size, c->size);
        }
        if (c->vsize == -1) {
            assert_false(info.has_vsize);
        } else {
            assert_true(info.has_vsize);
            assert_int_equal(info.vsize, c->vsize);
        }
        if (c->extra == NULL) {
            assert_int_equal(info.extra_len, 0);
        } else {
            assert_int_equal(info.extra_len, strlen(c->extra));
            assert_memory_equal(c->name + info.extra_off, c->extra, info.extra_len);
        }
    }
    strbuf_free(&why);
}

static void test_name_limits(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);
    struct maildir_info info;
    char longname[MAILDIR_NAME_MAX + 2];
    unsigned flags;
    uint32_t kw;

    (void)state;
    memset(longname, 'a', sizeof(longname));
    longname[MAILDIR_NAME_MAX] = '\0';
    assert_int_equal(maildir_name_parse(longname, MAILDIR_NAME_MAX, &info, why), 0);
    longname[MAILDIR_NAME_MAX] = 'a';
    longname[MAILDIR_NAME_MAX + 1] = '\0';
    assert_int_equal(maildir_name_parse(longname, MAILDIR_NAME_MAX + 1, &info, why), -1);
    /* The parser never reads past len: a prefix of a valid name. */
    assert_int_equal(maildir_name_parse("x:2,Sjunk", 5, &info, why), 0);
    assert_int_equal(info.flags, MAILDIR_FLAG_SEEN);
    assert_int_equal(info.keywords, 0);

    /* Format: ASCII order, keywords after. */
    maildir_flags_format(out, MAILDIR_FLAGS_ALL, (1u << 0) | (1u << 25));
    assert_string_equal(strbuf_str(out), "DFPRSTaz");
    strbuf_reset(out);
    maildir_flags_format(out, MAILDIR_FLAG_TRASHED | MAILDIR_FLAG_DRAFT, 0);
    assert_string_equal(strbuf_str(out), "DT");
    assert_int_equal(maildir_flags_parse("RSa", 3, &flags, &kw, why), 0);
    assert_int_equal(flags, MAILDIR_FLAG_REPLIED | MAILDIR_FLAG_SEEN);
    assert_int_equal(kw, 1);
    assert_int_equal(maildir_flags_parse("S-", 2, &flags, &kw, why), -1);
    memset(longname, 'S', 65);
    assert_int_equal(maildir_flags_parse(longname, 65, &flags, &kw, why), -1);

    /* Build keeps the extra part and refuses over-long results. */
    assert_int_equal(maildir_name_build(out, "base,S=5", 8, MAILDIR_FLAG_SEEN | MAILDIR_FLAG_FLAGGED,
                                        2, ",x", 2, why), 0);
    assert_string_equal(strbuf_str(out), "base,S=5:2,FSb,x");
    memset(longname, 'a', sizeof(longname));
    assert_int_equal(maildir_name_build(out, longname, 250, MAILDIR_FLAGS_ALL, 0, NULL, 0, why), -1);
    assert_int_equal(maildir_name_base_len("abc:2,S"), 3);
    assert_int_equal(maildir_name_base_len("abc"), 3);
    strbuf_free(&out);
    strbuf_free(&why);
}

static void test_unique_and_keyed(void **state)
{
    struct strbuf *a = strbuf_new(64), *b = strbuf_new(64);
    char **seen = calloc(1000, sizeof(char *));
    struct maildir_info info;
    size_t i, j;

    (void)state;
    for (i = 0; i < 1000; i++) {
        maildir_name_unique(a);
        assert_int_equal(maildir_name_parse(strbuf_str(a), strbuf_len(a), &info, NULL), 0);
        assert_false(info.has_info);
        assert_null(strchr(strbuf_str(a), '/'));
        assert_null(strchr(strbuf_str(a), ','));
        seen[i] = strdup(strbuf_str(a));
        for (j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
    for (i = 0; i < 1000; i++)
        free(seen[i]);
    free(seen);

    maildir_name_keyed(a, "4Xk9abc:alice@example.org:INBOX", 1700000000);
    maildir_name_keyed(b, "4Xk9abc:alice@example.org:INBOX", 1700000000);
    assert_string_equal(strbuf_str(a), strbuf_str(b));
    assert_int_equal(strncmp(strbuf_str(a), "1700000000.K", 12), 0);
    assert_int_equal(strbuf_len(a), 12 + 32);
    maildir_name_keyed(b, "4Xk9abc:bob@example.org:INBOX", 1700000000);
    assert_string_not_equal(strbuf_str(a), strbuf_str(b));
    maildir_name_keyed(b, "4Xk9abc:alice@example.org:INBOX", 0);
    assert_int_equal(strbuf_str(b)[0], 'K');
    strbuf_free(&a);
    strbuf_free(&b);
}

/* ---------------------------------------------------------------- */
/* delivery                                                           */

static void test_deliver_basic(void **state)
{
    char *dir = tmpdir_new(), *md = path2(dir, "Maildir"), *name, *p, *data;
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(64);
    static const char msg[] = "Subject: x\n\nline one\r\nline two\n";
    struct maildir_info info;

    (void)state;
    assert_false(maildir_exists(md));
    assert_int_equal(maildir_create(md, why), 0);
    assert_int_equal(maildir_create(md, why), 0);     /* existing is fine */
    assert_true(maildir_exists(md));
    assert_int_equal(maildir_deliver(md, NULL, msg, strlen(msg), got, why), 0);
    name = only_file(md, "new");
    assert_string_equal(name, strbuf_str(got));
    assert_int_equal(count_files(md, "tmp"), 0);
    assert_int_equal(maildir_name_parse(name, strlen(name), &info, why), 0);
    assert_true(info.has_size && info.size == strlen(msg));
    /* Three LFs, one of them after a CR: two count double in W=. */
    assert_true(info.has_vsize && info.vsize == strlen(msg) + 3);
    p = path2(md, "new");
    free(p);
    assert_true(asprintf(&p, "%s/new/%s", md, name) > 0);
    data = read_all(p);
    assert_string_equal(data, msg);
    free(data);
    free(p);
    free(name);

    /* Flags send an appended message to cur/ with its info and mtime. */
    assert_int_equal(maildir_append(md, MAILDIR_FLAG_SEEN, 4, 1600000000, "x\n", 2, got, why), 0);
    assert_non_null(strstr(strbuf_str(got), ":2,Sc"));
    name = only_file(md, "cur");
    assert_true(asprintf(&p, "%s/cur/%s", md, name) > 0);
    {
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mtime, 1600000000);
    }
    free(p);
    free(name);
    /* Not a Maildir: a clean failure. */
    assert_int_equal(maildir_deliver(dir, NULL, msg, 3, NULL, why), -1);
    assert_true(strbuf_len(why) > 0);
    strbuf_free(&why);
    strbuf_free(&got);
    free(md);
    tmpdir_free(dir);
}

static void test_deliver_large_streamed(void **state)
{
    char *dir = tmpdir_new(), *name, *p;
    struct strbuf *why = strbuf_new(64);
    struct maildir_delivery *d;
    char chunk[1000];
    struct stat st;
    int i;

    (void)state;
    assert_int_equal(maildir_create(dir, why), 0);
    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    assert_int_equal(maildir_deliver_start(dir, NULL, &d, why), 1);
    for (i = 0; i < 300; i++)
        assert_int_equal(maildir_deliver_write(d, chunk, sizeof(chunk), why), 0);
    {
        static char big[200000];

        memset(big, 'y', sizeof(big));
        assert_int_equal(maildir_deliver_write(d, big, sizeof(big), why), 0);
    }
    assert_int_equal(maildir_deliver_finish(&d, NULL, why), 0);
    assert_null(d);
    assert_int_equal(maildir_deliver_sync(dir, false, why), 0);
    name = only_file(dir, "new");
    assert_true(asprintf(&p, "%s/new/%s", dir, name) > 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 300 * 1000 + 200000);
    free(p);
    free(name);
    /* Abort leaves nothing behind. */
    assert_int_equal(maildir_deliver_start(dir, NULL, &d, why), 1);
    assert_int_equal(maildir_deliver_write(d, "abc", 3, why), 0);
    maildir_deliver_abort(&d);
    assert_null(d);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "new"), 1);
    strbuf_free(&why);
    tmpdir_free(dir);
}

static void test_deliver_idempotent(void **state)
{
    char *dir = tmpdir_new();
    struct strbuf *why = strbuf_new(64), *name = strbuf_new(64);
    struct maildir_deliver_opts opts = { .key = "QID42:bob@example.org:INBOX",
                                         .arrival = time(NULL) };
    struct maildir_list *l;

    (void)state;
    assert_int_equal(maildir_create(dir, why), 0);
    assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, name, why), 0);
    /* The retry finds its earlier delivery and writes nothing. */
    assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);
    assert_int_equal(count_files(dir, "new"), 1);
    assert_int_equal(count_files(dir, "tmp"), 0);
    /* Read and flagged by a client (moved to cur/): still answered. */
    assert_int_equal(maildir_list_scan(dir, 0, &l, why), 0);
    assert_int_equal(l->n, 1);
    assert_int_equal(maildir_entry_set_flags(dir, &l->v[0], MAILDIR_FLAG_SEEN | MAILDIR_FLAG_REPLIED,
                                             0, why), 0);
    maildir_list_free(&l);
    assert_int_equal(count_files(dir, "new"), 0);
    assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);
    assert_int_equal(count_files(dir, "cur"), 1);
    assert_int_equal(count_files(dir, "new"), 0);
    /* A retry whose content changed size (a new Received: line) is still
     * the same delivery. */
    assert_int_equal(maildir_deliver(dir, &opts, "m1 longer\n", 10, NULL, why), 1);
    assert_int_equal(count_files(dir, "cur") + count_files(dir, "new"), 1);
    /* Another recipient's key is another message. */
    opts.key = "QID42:carol@example.org:INBOX";
    assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 0);
    assert_int_equal(count_files(dir, "new"), 1);
    /* Concurrent attempts that both get past the first check: the one
     * that links second finds the first and steps back. */
    {
        struct maildir_delivery *a, *b;

        opts.key = "QID43:dave@example.org:INBOX";
        assert_int_equal(maildir_deliver_start(dir, &opts, &a, why), 1);
        assert_int_equal(maildir_deliver_start(dir, &opts, &b, why), 1);
        assert_int_equal(maildir_deliver_write(a, "same\n", 5, why), 0);
        assert_int_equal(maildir_deliver_write(b, "same!\n", 6, why), 0);
        assert_int_equal(maildir_deliver_finish(&a, NULL, why), 0);
        assert_int_equal(maildir_deliver_finish(&b, NULL, why), 1);
        assert_int_equal(count_files(dir, "new"), 2);
        assert_int_equal(count_files(dir, "tmp"), 0);
    }
    /* Markers: "done" answers at once; without markers nothing is scanned;
     * "pending" (an attempt died around its link) makes it look. */
    {
        char *keys = path2(dir, MAILDIR_KEYS_DIR), *p;
        struct strbuf *base = strbuf_new(64);
        struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
        struct maildir_delivery *d;
        int fd;

        /* Abort of a first attempt removes its pending marker. */
        opts.key = "QID45:gina@example.org:INBOX";
        opts.arrival = 1700000000;
        maildir_name_keyed(base, opts.key, opts.arrival);
        assert_int_equal(maildir_deliver_start(dir, &opts, &d, why), 1);
        assert_true(asprintf(&p, "%s/%s.pending", keys, strbuf_str(base)) > 0);
        assert_int_equal(access(p, F_OK), 0);
        maildir_deliver_abort(&d);
        assert_int_equal(access(p, F_OK), -1);

        /* An attempt that linked into new/ and died before "done". */
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_true(asprintf(&p, "%s/new/%s,S=3,W=4", dir, strbuf_str(base)) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);
        assert_true(asprintf(&p, "%s/%s.done", keys, strbuf_str(base)) > 0);
        assert_int_equal(access(p, F_OK), 0);
        free(p);

        /* The same with its copy already moved to cur/ by a client. */
        opts.key = "QID46:hugo@example.org:INBOX";
        maildir_name_keyed(base, opts.key, opts.arrival);
        assert_true(asprintf(&p, "%s/%s.pending", keys, strbuf_str(base)) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_true(asprintf(&p, "%s/cur/%s,S=3:2,RS", dir, strbuf_str(base)) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);

        /* The arrival shortcut: files only enter cur/ by a rename that
         * sets cur/'s mtime, so a cur/ older than the arrival is not
         * scanned.  A copy planted behind an old mtime shows the skip. */
        opts.key = "QID47:ines@example.org:INBOX";
        maildir_name_keyed(base, opts.key, opts.arrival);
        assert_true(asprintf(&p, "%s/%s.pending", keys, strbuf_str(base)) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_true(asprintf(&p, "%s/cur/%s,S=3:2,S", dir, strbuf_str(base)) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        p = path2(dir, "cur");
        assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
        free(p);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 0);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);

        /* Markers are pruned once their message arrived more than
         * MAILDIR_KEYS_STALE_SECS ago (the arrival is in the name); those
         * without an arrival by their own mtime. */
        assert_int_equal(maildir_clean_tmp(dir, time(NULL), MAILDIR_TMP_STALE_SECS, why), 0);
        fd = count_files(dir, MAILDIR_KEYS_DIR);   /* the recent ones above */
        opts.key = "QID48:jo@example.org:INBOX";
        opts.arrival = time(NULL);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 0);
        opts.key = "QID49:jo@example.org:INBOX";
        opts.arrival = 0;
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 0);
        assert_int_equal(maildir_clean_tmp(dir, time(NULL), MAILDIR_TMP_STALE_SECS, why), 0);
        assert_int_equal(count_files(dir, MAILDIR_KEYS_DIR), fd + 2);
        assert_int_equal(maildir_deliver(dir, &opts, "m1\n", 3, NULL, why), 1);
        assert_int_equal(maildir_clean_tmp(dir, time(NULL) + MAILDIR_KEYS_STALE_SECS + 60,
                                           MAILDIR_TMP_STALE_SECS, why), 0);
        assert_int_equal(count_files(dir, MAILDIR_KEYS_DIR), 0);
        free(keys);
        strbuf_free(&base);
    }
    strbuf_free(&why);
    strbuf_free(&name);
    tmpdir_free(dir);
}

static void test_crash_between_write_and_link(void **state)
{
    char *dir = tmpdir_new();
    struct strbuf *why = strbuf_new(64);
    struct maildir_deliver_opts opts = { .key = "QID7:erin@example.org:INBOX" };
    struct maildir_list *l;
    pid_t pid;

    (void)state;
    assert_int_equal(maildir_create(dir, why), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct maildir_delivery *d;

        static char body[70000];

        /* Write the whole message (past the write buffer, so it reaches
         * the file), then die before finish. */
        memset(body, 'z', sizeof(body));
        if (maildir_deliver_start(dir, &opts, &d, NULL) != 1 ||
            maildir_deliver_write(d, body, sizeof(body), NULL) < 0)
            _exit(1);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
    /* The tmp/ file was never delivered. */
    assert_int_equal(count_files(dir, "tmp"), 1);
    assert_int_equal(maildir_list_scan(dir, 0, &l, why), 0);
    assert_int_equal(l->n, 0);
    maildir_list_free(&l);
    /* The retry delivers exactly once. */
    assert_int_equal(maildir_deliver(dir, &opts, "lost?\n", 6, NULL, why), 0);
    assert_int_equal(maildir_deliver(dir, &opts, "lost?\n", 6, NULL, why), 1);
    assert_int_equal(count_files(dir, "new"), 1);
    /* Fresh tmp files stay; stale ones (36 h) go. */
    assert_int_equal(maildir_clean_tmp(dir, time(NULL), MAILDIR_TMP_STALE_SECS, why), 0);
    assert_int_equal(count_files(dir, "tmp"), 1);
    assert_int_equal(maildir_clean_tmp(dir, time(NULL) + MAILDIR_TMP_STALE_SECS + 60,
                                       MAILDIR_TMP_STALE_SECS, why), 1);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "new"), 1);
    assert_int_equal(maildir_clean_tmp("/nonexistent/maildir", time(NULL), 1, why), -1);
    strbuf_free(&why);
    tmpdir_free(dir);
}

#define PROCS 4
#define PER_PROC 50

static void test_concurrent_deliveries(void **state)
{
    char *dir = tmpdir_new();
    struct strbuf *why = strbuf_new(64);
    struct maildir_list *l;
    pid_t pids[PROCS];
    size_t i;
    int p;

    (void)state;
    assert_int_equal(maildir_create(dir, why), 0);
    for (p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            char msg[64];
            int k;

            for (k = 0; k < PER_PROC; k++) {
                int n = snprintf(msg, sizeof(msg), "From proc %d msg %d\n", p, k);

                if (maildir_deliver(dir, NULL, msg, (size_t)n, NULL, NULL) != 0)
                    _exit(1);
            }
            /* And the same 10 keyed messages from every process. */
            for (k = 0; k < 10; k++) {
                struct maildir_deliver_opts o = { .arrival = 1700000000 };
                char key[32];

                snprintf(key, sizeof(key), "QIDX:rcpt%d", k);
                o.key = key;
                if (maildir_deliver(dir, &o, "shared\n", 7, NULL, NULL) < 0)
                    _exit(2);
            }
            _exit(0);
        }
    }
    for (p = 0; p < PROCS; p++)
        assert_int_equal(wait_child(pids[p]), 0);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "new"), PROCS * PER_PROC + 10);
    assert_int_equal(maildir_list_scan(dir, MAILDIR_SCAN_STAT, &l, why), 0);
    assert_int_equal(l->n, PROCS * PER_PROC + 10);
    for (i = 1; i < l->n; i++)
        assert_true(strcmp(l->v[i - 1].name, l->v[i].name) < 0);
    maildir_list_free(&l);
    strbuf_free(&why);
    tmpdir_free(dir);
}

/* ---------------------------------------------------------------- */
/* listing and changes                                                */

static void rename_behind(const char *dir, const char *from_sub, const char *from,
                          const char *to_sub, const char *to)
{
    char *a, *b;

    assert_true(asprintf(&a, "%s/%s/%s", dir, from_sub, from) > 0);
    assert_true(asprintf(&b, "%s/%s/%s", dir, to_sub, to) > 0);
    assert_int_equal(rename(a, b), 0);
    free(a);
    free(b);
}

static void test_flags_race(void **state)
{
    char *dir = tmpdir_new(), *base, *other;
    struct strbuf *why = strbuf_new(64), *name = strbuf_new(64);
    struct maildir_list *l;
    struct maildir_entry *e;
    pid_t pid;

    (void)state;
    assert_int_equal(maildir_create(dir, why), 0);
    assert_int_equal(maildir_deliver(dir, NULL, "a\n", 2, name, why), 0);
    assert_int_equal(maildir_list_scan(dir, MAILDIR_SCAN_STAT, &l, why), 0);
    assert_int_equal(l->n, 1);
    e = &l->v[0];
    assert_true(e->in_new);
    assert_int_equal(e->size, 2);
    base = strndup(e->name, e->base_len);
    assert_non_null(maildir_list_find(l, base, strlen(base)));
    assert_null(maildir_list_find(l, "nope", 4));

    /* Another process moves it to cur/ with \Seen between our scan and
     * our rename. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *to;

        if (asprintf(&to, "%s:2,S", base) < 0)
            _exit(1);
        rename_behind(dir, "new", strbuf_str(name), "cur", to);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(maildir_entry_set_flags(dir, e, MAILDIR_FLAG_FLAGGED | MAILDIR_FLAG_SEEN, 1, why), 0);
    assert_false(e->in_new);
    other = only_file(dir, "cur");
    assert_string_equal(other, e->name);
    assert_int_equal(strncmp(other, base, strlen(base)), 0);
    assert_string_equal(other + strlen(base), ":2,FSa");
    free(other);
    assert_int_equal(count_files(dir, "new"), 0);

    /* Renamed again behind our back, with a ",extra" part we must keep. */
    other = strdup(e->name);
    {
        char *to;

        assert_true(asprintf(&to, "%s:2,T,x", base) > 0);
        rename_behind(dir, "cur", other, "cur", to);
        free(to);
    }
    free(other);
    assert_int_equal(maildir_entry_set_flags(dir, e, MAILDIR_FLAG_SEEN, 0, why), 0);
    other = only_file(dir, "cur");
    assert_string_equal(other + strlen(base), ":2,S,x");
    free(other);

    /* Setting the same flags again changes nothing. */
    assert_int_equal(maildir_entry_set_flags(dir, e, MAILDIR_FLAG_SEEN, 0, why), 0);
    /* Opening follows a rename too. */
    {
        char *to;
        int fd;

        assert_true(asprintf(&to, "%s:2,RS,x", base) > 0);
        rename_behind(dir, "cur", e->name, "cur", to);
        free(to);
        fd = maildir_entry_open(dir, e, why);
        assert_true(fd >= 0);
        close(fd);
        assert_non_null(strstr(e->name, ":2,RS,x"));
    }
    /* Expunged elsewhere: flag changes and open report it gone. */
    {
        char *p;

        assert_true(asprintf(&p, "%s/cur/%s", dir, e->name) > 0);
        assert_int_equal(unlink(p), 0);
        free(p);
    }
    assert_int_equal(maildir_entry_set_flags(dir, e, MAILDIR_FLAG_SEEN, 0, why), 1);
    assert_int_equal(maildir_entry_open(dir, e, why), -2);
    assert_int_equal(maildir_entry_expunge(dir, e, why), 1);
    free(base);
    maildir_list_free(&l);
    strbuf_free(&why);
    strbuf_free(&name);
    tmpdir_free(dir);
}

static void test_to_cur_expunge_copy(void **state)
{
    char *dir = tmpdir_new(), *src = path2(dir, "src"), *dst = path2(dir, "dst");
    char *name, *p1, *p2;
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(64);
    struct maildir_list *l;
    struct stat s1, s2;

    (void)state;
    assert_int_equal(maildir_create(src, why), 0);
    assert_int_equal(maildir_create(dst, why), 0);
    assert_int_equal(maildir_deliver(src, NULL, "one\n", 4, NULL, why), 0);
    assert_int_equal(maildir_deliver(src, NULL, "two\n", 4, NULL, why), 0);
    assert_int_equal(maildir_list_scan(src, 0, &l, why), 0);
    assert_int_equal(l->n, 2);
    /* new/ -> cur/ keeping (no) flags: ":2," appended. */
    assert_int_equal(maildir_entry_to_cur(src, &l->v[0], why), 0);
    assert_false(l->v[0].in_new);
    assert_non_null(strstr(l->v[0].name, ":2,"));
    assert_int_equal(maildir_entry_to_cur(src, &l->v[0], why), 0);
    /* Copy: a hard link with a new base and the given flags, S= kept. */
    assert_int_equal(maildir_entry_copy(src, &l->v[0], dst, MAILDIR_FLAG_SEEN, 0, got, why), 0);
    assert_non_null(strstr(strbuf_str(got), ",S=4,"));
    assert_non_null(strstr(strbuf_str(got), ":2,S"));
    name = only_file(dst, "cur");
    assert_string_equal(name, strbuf_str(got));
    assert_true(asprintf(&p1, "%s/cur/%s", src, l->v[0].name) > 0);
    assert_true(asprintf(&p2, "%s/cur/%s", dst, name) > 0);
    assert_int_equal(stat(p1, &s1), 0);
    assert_int_equal(stat(p2, &s2), 0);
    assert_true(s1.st_ino == s2.st_ino);
    free(p1);
    free(p2);
    free(name);
    /* Copy of a message renamed meanwhile still works. */
    rename_behind(src, "new", l->v[1].name, "cur", "renamed-elsewhere:2,F");
    free(l->v[1].name);
    l->v[1].name = strdup("renamed-elsewhere:2,F");
    l->v[1].base_len = strlen("renamed-elsewhere");
    l->v[1].in_new = true;
    assert_int_equal(maildir_entry_copy(src, &l->v[1], dst, 0, 0, NULL, why), 0);
    assert_int_equal(count_files(dst, "cur"), 2);
    /* Copy into something that is not a Maildir fails cleanly. */
    assert_int_equal(maildir_entry_copy(src, &l->v[1], dir, 0, 0, NULL, why), -1);
    /* Expunge, then expunge again: already gone. */
    assert_int_equal(maildir_entry_expunge(src, &l->v[0], why), 0);
    assert_int_equal(maildir_entry_expunge(src, &l->v[0], why), 1);
    assert_int_equal(maildir_entry_copy(src, &l->v[0], dst, 0, 0, NULL, why), 1);
    maildir_list_free(&l);
    assert_int_equal(maildir_list_scan(src, 0, &l, why), 0);
    assert_int_equal(l->n, 1);
    maildir_list_free(&l);
    /* Odd names are listed, never dropped; dot files are skipped. */
    {
        char *p;
        int fd;

        assert_true(asprintf(&p, "%s/cur/weird:9,zz", src) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
        assert_true(asprintf(&p, "%s/new/.hidden", src) > 0);
        fd = open(p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(p);
    }
    assert_int_equal(maildir_list_scan(src, MAILDIR_SCAN_STAT, &l, why), 0);
    assert_int_equal(l->n, 2);
    assert_non_null(maildir_list_find(l, "weird", 5));
    maildir_list_free(&l);
    assert_int_equal(maildir_list_scan("/nonexistent", 0, &l, why), -1);
    strbuf_free(&why);
    strbuf_free(&got);
    free(src);
    free(dst);
    tmpdir_free(dir);
}

/* Copy to another file system (/dev/shm is tmpfs here): link() fails with
 * EXDEV and the bytes are copied through tmp/, mtime and flags kept. */
static void test_copy_across_filesystems(void **state)
{
    char *dir = tmpdir_new(), *name, *p, *data;
    char shm_tmpl[] = "/dev/shm/test_maildir.XXXXXX";
    char *dst = mkdtemp(shm_tmpl);
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(64);
    struct maildir_list *l;
    struct stat a, b;

    (void)state;
    if (dst == NULL || stat(dir, &a) < 0 || stat(dst, &b) < 0 || a.st_dev == b.st_dev) {
        if (dst != NULL)
            rmdir(dst);
        tmpdir_free(dir);
        strbuf_free(&why);
        strbuf_free(&got);
        skip();
    }
    dst = strdup(dst);
    assert_int_equal(maildir_create(dir, why), 0);
    assert_int_equal(maildir_create(dst, why), 0);
    assert_int_equal(maildir_append(dir, MAILDIR_FLAG_SEEN, 0, 1500000000, "bytes\n", 6, NULL, why), 0);
    assert_int_equal(maildir_list_scan(dir, 0, &l, why), 0);
    assert_int_equal(l->n, 1);
    assert_int_equal(maildir_entry_copy(dir, &l->v[0], dst, MAILDIR_FLAG_FLAGGED, 2, got, why), 0);
    maildir_list_free(&l);
    name = only_file(dst, "cur");
    assert_string_equal(name, strbuf_str(got));
    assert_non_null(strstr(name, ":2,Fb"));
    assert_int_equal(count_files(dst, "tmp"), 0);
    assert_true(asprintf(&p, "%s/cur/%s", dst, name) > 0);
    assert_int_equal(stat(p, &b), 0);
    assert_int_equal(b.st_mtime, 1500000000);
    assert_int_equal(b.st_nlink, 1);
    data = read_all(p);
    assert_string_equal(data, "bytes\n");
    free(data);
    free(p);
    free(name);
    tmpdir_free(dst);
    strbuf_free(&why);
    strbuf_free(&got);
    tmpdir_free(dir);
}

static void test_dotlock(void **state)
{
    char *dir = tmpdir_new(), *path = path2(dir, "file"), *lock = path2(dir, "file.lock");
    struct strbuf *why = strbuf_new(64);
    char host[256], buf[300];
    struct timespec old[2];
    int fd, fd2, len;
    pid_t pid;

    (void)state;
    assert_int_equal(maildir_dotlock_take(path, 0, 120, &fd, why), 0);
    {
        char *content = read_all(lock);

        assert_int_equal(gethostname(host, sizeof(host)), 0);
        snprintf(buf, sizeof(buf), "%ld:%s", (long)getpid(), host);
        assert_string_equal(content, buf);
        free(content);
    }
    /* Held (by a live process): a second taker times out. */
    assert_int_equal(maildir_dotlock_take(path, 50, 120, &fd2, why), -1);
    assert_int_equal(errno, EAGAIN);
    maildir_dotlock_release(path, fd);
    assert_int_equal(access(lock, F_OK), -1);

    /* A lock left by a dead process on this host is broken at once. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(wait_child(pid), 0);
    fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    len = snprintf(buf, sizeof(buf), "%ld:%s", (long)pid, host);
    assert_int_equal(write(fd, buf, (size_t)len), len);
    close(fd);
    old[0].tv_sec = old[1].tv_sec = time(NULL) - 10;
    old[0].tv_nsec = old[1].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
    assert_int_equal(maildir_dotlock_take(path, 1000, 120, &fd, why), 0);
    /* Replace: the lock file becomes the file. */
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(write(fd, "new content\n", 12), 12);
    assert_int_equal(maildir_dotlock_replace(path, fd, why), 0);
    {
        char *content = read_all(path);

        assert_string_equal(content, "new content\n");
        free(content);
    }
    assert_int_equal(access(lock, F_OK), -1);

    /* A lock from another host, unchanged past the stale time, is broken;
     * a younger one is respected. */
    fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "1:elsewhere.example", 19), 19);
    close(fd);
    assert_int_equal(maildir_dotlock_take(path, 30, 120, &fd, why), -1);
    old[0].tv_sec = old[1].tv_sec = time(NULL) - 600;
    assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    assert_int_equal(maildir_dotlock_take(path, 1000, 120, &fd, why), 0);
    maildir_dotlock_release(path, fd);
    free(path);
    free(lock);
    strbuf_free(&why);
    tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_parse),
        cmocka_unit_test(test_name_limits),
        cmocka_unit_test(test_unique_and_keyed),
        cmocka_unit_test(test_deliver_basic),
        cmocka_unit_test(test_deliver_large_streamed),
        cmocka_unit_test(test_deliver_idempotent),
        cmocka_unit_test(test_crash_between_write_and_link),
        cmocka_unit_test(test_concurrent_deliveries),
        cmocka_unit_test(test_flags_race),
        cmocka_unit_test(test_to_cur_expunge_copy),
        cmocka_unit_test(test_copy_across_filesystems),
        cmocka_unit_test(test_dotlock),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
