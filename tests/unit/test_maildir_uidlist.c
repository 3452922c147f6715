/*
 * test_maildir_uidlist.c - the dovecot-uidlist file: real Dovecot samples
 * (version 3 with extensions and in-place appends, Courier-style version
 * 1), malformed and over-long input, UID assignment in arrival order,
 * persistence across reopen, expunges, lock exclusion between processes,
 * a truncated or garbage file rebuilt with a larger UIDVALIDITY, and a
 * crash mid-write (tmp file and lock left behind) that keeps the old list.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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
#include "maildir_uidlist.h"
#include "strbuf.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static char *maildir_new(void)
{
    char tmpl[] = "/tmp/test_uidlist.XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    assert_int_equal(maildir_create(d, NULL), 0);
    return strdup(d);
}

static void maildir_free(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static void write_file(const char *dir, const char *name, const char *data)
{
    char *p;
    int fd;

    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
    free(p);
}

static char *read_file(const char *dir, const char *name)
{
    struct strbuf *sb = strbuf_new(256);
    char buf[4096], *p;
    ssize_t n;
    int fd;

    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        strbuf_appendn(sb, buf, (size_t)n);
    close(fd);
    free(p);
    return strbuf_steal(&sb);
}

/* ---------------------------------------------------------------- */

struct parse_case {
    const char *name;
    const char *data;
    int ok;
    uint32_t uidvalidity, next_uid;
    size_t count;
    uint32_t last_uid;
    const char *last_name;
    const char *last_ext;   /* NULL: none */
};

static const struct parse_case parse_cases[] = {
    { "dovecot doc sample",
      "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n"
      "25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n"
      "25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n",
      1, 1275660208, 25022, 2, 25017, "1276533073.M242911P3632.kurkku", "W2481" },
    { "dovecot 2.3 append past a stale N",
      "3 V1795566293 N4 G55a44e3c26770225a107f70672ea2824\n"
      "1 :1795566293.M658464P19743Q1R1049dd35f206c00a.vm,S=20,W=23\n"
      "2 :1795566293.M685641P19746Q1R387a660e7c5b9f5b.vm,S=20,W=23\n"
      "3 :1795566293.M701584P19749Q1R4724b7e6d9481629.vm,S=20,W=23\n"
      "4 :1795566296.M211786P19837.vm,S=22,W=25\n",
      1, 1795566293, 5, 4, 4, "1795566296.M211786P19837.vm,S=22,W=25", NULL },
    { "pastebin sample, header fields in any order",
      "3 N1 Gbe88b9389940ab62f7580b00ce89bbd1 V1655390361\n"
      "1 :1655390418.M100238P743770V0000000000000030I00000000081274AE_0.cp.example,S=3734\n",
      1, 1655390361, 2, 1, 1,
      "1655390418.M100238P743770V0000000000000030I00000000081274AE_0.cp.example,S=3734", NULL },
    { "unknown header fields and extensions kept",
      "3 V7 N3 G00000000000000000000000000000000 Xfuture\n2 W10 S9 :b\n",
      1, 7, 3, 1, 2, "b", "W10 S9" },
    { "header only",
      "3 V1 N1 Gffffffffffffffffffffffffffffffff\n", 1, 1, 1, 0, 0, NULL, NULL },
    { "courier version 1",
      "1 1234 10\n3 one\n9 two:2,S\n", 1, 1234, 10, 2, 9, "two", NULL },
    { "duplicate name: the later UID wins",
      "3 V5 N1 G0123456789abcdef0123456789abcdef\n1 :a\n2 :b\n3 :a\n",
      1, 5, 4, 2, 3, "a", NULL },
    { "empty file", "", 0, 0, 0, 0, 0, NULL, NULL },
    { "garbage", "garbage\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "version 2", "2 V1 N1\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "no V", "3 N5 G0123456789abcdef0123456789abcdef\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "V0", "3 V0 N5\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "bad guid", "3 V1 N2 Gxyz\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "huge V", "3 V99999999999 N2\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "truncated header", "3 V12", 0, 0, 0, 0, 0, NULL, NULL },
    { "truncated last line", "3 V1 N3\n1 :a\n2 :b", 0, 0, 0, 0, 0, NULL, NULL },
    { "UIDs out of order", "3 V1 N9\n5 :a\n3 :b\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "UID repeated", "3 V1 N9\n5 :a\n5 :b\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "UID zero", "3 V1 N9\n0 :a\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "UID too large", "3 V1 N9\n4294967295 :a\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "UID not a number", "3 V1 N9\nx1 :a\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "no colon", "3 V1 N9\n1 a\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "empty name", "3 V1 N9\n1 :\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "lower-case extension", "3 V1 N9\n1 w12 :a\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "slash in name", "3 V1 N9\n1 :../../etc/passwd\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "control char in name", "3 V1 N9\n1 :a\tb\n", 0, 0, 0, 0, 0, NULL, NULL },
    { "version 1 bad header", "1 1234\n", 0, 0, 0, 0, 0, NULL, NULL },
};

static void test_parse_table(void **state)
{
    struct maildir_uidlist *ul = maildir_uidlist_new("/nonexistent");
    struct strbuf *why = strbuf_new(64);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        int r = maildir_uidlist_parse(ul, c->data, strlen(c->data), why);
        const struct maildir_uidlist_rec *last;

        if ((r == 0) != c->ok)
            fail_msg("case \"%s\": got %d (%s)", c->name, r, strbuf_str(why));
        if (r < 0) {
            assert_true(maildir_uidlist_broken(ul));
            assert_int_equal(maildir_uidlist_count(ul), 0);
            assert_true(strbuf_len(why) > 0);
            continue;
        }
        assert_false(maildir_uidlist_broken(ul));
        assert_int_equal(maildir_uidlist_uidvalidity(ul), c->uidvalidity);
        assert_int_equal(maildir_uidlist_next_uid(ul), c->next_uid);
        assert_int_equal(maildir_uidlist_count(ul), c->count);
        if (c->count == 0)
            continue;
        last = maildir_uidlist_rec(ul, c->count - 1);
        assert_int_equal(last->uid, c->last_uid);
        assert_string_equal(last->name, c->last_name);
        if (c->last_ext == NULL)
            assert_null(last->ext);
        else
            assert_string_equal(last->ext, c->last_ext);
        assert_ptr_equal(maildir_uidlist_lookup_uid(ul, c->last_uid), last);
        assert_ptr_equal(maildir_uidlist_lookup_name(ul, c->last_name, strlen(c->last_name)),
                         last);
        assert_null(maildir_uidlist_lookup_uid(ul, c->last_uid + 1));
        assert_null(maildir_uidlist_rec(ul, c->count));
    }
    maildir_uidlist_free(&ul);
    assert_null(ul);
    strbuf_free(&why);
}

static void test_parse_bounds(void **state)
{
    struct maildir_uidlist *ul = maildir_uidlist_new("/nonexistent");
    struct strbuf *sb = strbuf_new(1 << 16);
    size_t i;

    (void)state;
    /* A line past MAILDIR_UIDLIST_MAX_LINE. */
    strbuf_set(sb, "3 V1 N2\n1 :");
    for (i = 0; i < MAILDIR_UIDLIST_MAX_LINE; i++)
        strbuf_appendc(sb, 'a');
    strbuf_appendc(sb, '\n');
    assert_int_equal(maildir_uidlist_parse(ul, strbuf_str(sb), strbuf_len(sb), NULL), -1);
    /* A name past MAILDIR_NAME_MAX. */
    strbuf_set(sb, "3 V1 N2\n1 :");
    for (i = 0; i < MAILDIR_NAME_MAX + 1; i++)
        strbuf_appendc(sb, 'a');
    strbuf_appendc(sb, '\n');
    assert_int_equal(maildir_uidlist_parse(ul, strbuf_str(sb), strbuf_len(sb), NULL), -1);
    /* Thousands of records, looked up by name and UID. */
    strbuf_set(sb, "3 V9 N1 G0123456789abcdef0123456789abcdef\n");
    for (i = 1; i <= 5000; i++)
        strbuf_appendf(sb, "%zu :msg%zu,S=%zu\n", i * 2, i, i);
    assert_int_equal(maildir_uidlist_parse(ul, strbuf_str(sb), strbuf_len(sb), NULL), 0);
    assert_int_equal(maildir_uidlist_count(ul), 5000);
    assert_int_equal(maildir_uidlist_next_uid(ul), 10001);
    for (i = 1; i <= 5000; i += 97) {
        char name[64];
        const struct maildir_uidlist_rec *r;

        snprintf(name, sizeof(name), "msg%zu,S=%zu", i, i);
        r = maildir_uidlist_lookup_name(ul, name, strlen(name));
        assert_non_null(r);
        assert_int_equal(r->uid, i * 2);
        assert_ptr_equal(maildir_uidlist_lookup_uid(ul, (uint32_t)(i * 2)), r);
    }
    assert_null(maildir_uidlist_lookup_name(ul, "msg1", 4));
    /* Too many duplicates is a broken list, not a slow one. */
    strbuf_set(sb, "3 V9 N1\n");
    for (i = 1; i <= 1100; i++)
        strbuf_appendf(sb, "%zu :same\n", i);
    assert_int_equal(maildir_uidlist_parse(ul, strbuf_str(sb), strbuf_len(sb), NULL), -1);
    maildir_uidlist_free(&ul);
    strbuf_free(&sb);
}

/* ---------------------------------------------------------------- */

static void deliver_named(const char *dir, const char *name)
{
    char *p;
    int fd;

    assert_true(asprintf(&p, "%s/new/%s", dir, name) > 0);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    free(p);
}

static uint32_t uid_of(struct maildir_uidlist *ul, const char *name)
{
    const struct maildir_uidlist_rec *r = maildir_uidlist_lookup_name(ul, name, strlen(name));

    return r != NULL ? r->uid : 0;
}

static void test_assign_and_persist(void **state)
{
    char *dir = maildir_new(), *data;
    struct strbuf *why = strbuf_new(64);
    struct maildir_uidlist *ul = maildir_uidlist_new(dir), *again;
    struct maildir_list *l;
    uint32_t validity;

    (void)state;
    /* No file yet: empty, not broken. */
    assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
    assert_false(maildir_uidlist_exists(ul));
    assert_false(maildir_uidlist_broken(ul));
    /* Sync needs the lock. */
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), -1);
    assert_int_equal(maildir_uidlist_write(ul, why), -1);

    /* Arrival order comes from the time at the start of the name. */
    deliver_named(dir, "1700000300.M2P2.host");
    deliver_named(dir, "1700000100.M9P9.host");
    deliver_named(dir, "1700000200.M1P1.host");
    assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
    assert_true(maildir_uidlist_locked(ul));
    assert_int_equal(maildir_uidlist_lock(ul, 0, why), -1);     /* not recursive */
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 3);
    assert_int_equal(uid_of(ul, "1700000100.M9P9.host"), 1);
    assert_int_equal(uid_of(ul, "1700000200.M1P1.host"), 2);
    assert_int_equal(uid_of(ul, "1700000300.M2P2.host"), 3);
    assert_int_equal(maildir_uidlist_next_uid(ul), 4);
    validity = maildir_uidlist_uidvalidity(ul);
    assert_true(validity > 0);
    assert_int_equal(strlen(maildir_uidlist_guid(ul)), 32);
    /* Nothing new: nothing assigned, nothing rewritten. */
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 0);
    maildir_uidlist_unlock(ul);
    assert_false(maildir_uidlist_locked(ul));
    data = read_file(dir, MAILDIR_UIDLIST_NAME);
    assert_int_equal(strncmp(data, "3 V", 3), 0);
    assert_non_null(strstr(data, "\n1 :1700000100.M9P9.host\n"));
    assert_non_null(strstr(data, "\n3 :1700000300.M2P2.host\n"));
    free(data);

    /* Reopen in a new object: the same UIDs. */
    again = maildir_uidlist_new(dir);
    assert_int_equal(maildir_uidlist_refresh(again, why), 0);
    assert_true(maildir_uidlist_exists(again));
    assert_int_equal(maildir_uidlist_uidvalidity(again), validity);
    assert_int_equal(uid_of(again, "1700000200.M1P1.host"), 2);
    assert_string_equal(maildir_uidlist_guid(again), maildir_uidlist_guid(ul));

    /* A message moved to cur/ with flags keeps its UID; an expunged one
     * leaves the list; a new one gets the next UID, never a reused one. */
    {
        char *a, *b;

        assert_true(asprintf(&a, "%s/new/1700000200.M1P1.host", dir) > 0);
        assert_true(asprintf(&b, "%s/cur/1700000200.M1P1.host:2,S", dir) > 0);
        assert_int_equal(rename(a, b), 0);
        free(a);
        free(b);
        assert_true(asprintf(&a, "%s/new/1700000300.M2P2.host", dir) > 0);
        assert_int_equal(unlink(a), 0);
        free(a);
    }
    deliver_named(dir, "1700000400.M3P3.host");
    assert_int_equal(maildir_uidlist_lock(again, 1000, why), 0);
    assert_int_equal(maildir_list_scan(dir, 0, &l, why), 0);
    assert_int_equal(maildir_uidlist_sync(again, l, why), 1);
    maildir_list_free(&l);
    maildir_uidlist_unlock(again);
    assert_int_equal(maildir_uidlist_count(again), 3);
    assert_int_equal(uid_of(again, "1700000200.M1P1.host"), 2);
    assert_int_equal(uid_of(again, "1700000300.M2P2.host"), 0);
    assert_int_equal(uid_of(again, "1700000400.M3P3.host"), 4);
    assert_int_equal(maildir_uidlist_uidvalidity(again), validity);

    /* The first object sees the change on refresh. */
    assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
    assert_int_equal(uid_of(ul, "1700000400.M3P3.host"), 4);
    assert_int_equal(maildir_uidlist_count(ul), 3);
    maildir_uidlist_free(&again);
    maildir_uidlist_free(&ul);
    strbuf_free(&why);
    maildir_free(dir);
}

static void test_dovecot_file_synced(void **state)
{
    char *dir = maildir_new(), *data;
    struct strbuf *why = strbuf_new(64);
    struct maildir_uidlist *ul = maildir_uidlist_new(dir);

    (void)state;
    /* A list Dovecot wrote (with an in-place append and extensions). */
    deliver_named(dir, "1795566293.M1.vm,S=20,W=23");
    deliver_named(dir, "1795566296.M2.vm,S=22,W=25");
    write_file(dir, MAILDIR_UIDLIST_NAME,
               "3 V1795566293 N2 G55a44e3c26770225a107f70672ea2824 Zkeep\n"
               "7 W23 :1795566293.M1.vm,S=20,W=23\n"
               "8 :1795566296.M2.vm,S=22,W=25:2,S\n");
    deliver_named(dir, "1795566299.M3.vm,S=5");
    assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 1);
    maildir_uidlist_unlock(ul);
    assert_int_equal(maildir_uidlist_uidvalidity(ul), 1795566293u);
    assert_int_equal(uid_of(ul, "1795566293.M1.vm,S=20,W=23"), 7);
    assert_int_equal(uid_of(ul, "1795566296.M2.vm,S=22,W=25"), 8);
    assert_int_equal(uid_of(ul, "1795566299.M3.vm,S=5"), 9);
    data = read_file(dir, MAILDIR_UIDLIST_NAME);
    assert_string_equal(data,
                        "3 V1795566293 N10 G55a44e3c26770225a107f70672ea2824 Zkeep\n"
                        "7 W23 :1795566293.M1.vm,S=20,W=23\n"
                        "8 :1795566296.M2.vm,S=22,W=25\n"
                        "9 :1795566299.M3.vm,S=5\n");
    free(data);
    /* Version 1 (Courier) is upgraded to version 3 with the same UIDs. */
    write_file(dir, MAILDIR_UIDLIST_NAME, "1 4242 20\n15 1795566293.M1.vm,S=20,W=23\n");
    assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 2);
    maildir_uidlist_unlock(ul);
    assert_int_equal(maildir_uidlist_uidvalidity(ul), 4242);
    assert_int_equal(uid_of(ul, "1795566293.M1.vm,S=20,W=23"), 15);
    assert_int_equal(uid_of(ul, "1795566296.M2.vm,S=22,W=25"), 20);
    data = read_file(dir, MAILDIR_UIDLIST_NAME);
    assert_int_equal(strncmp(data, "3 V4242 N22 G", 13), 0);
    free(data);
    maildir_uidlist_free(&ul);
    strbuf_free(&why);
    maildir_free(dir);
}

static void test_broken_rebuilt(void **state)
{
    static const char *const broken[] = {
        "",                                         /* truncated to nothing */
        "3 V1795500000 N3 G0123456789abcdef0123456789abcdef\n1 :a\n2 :b",   /* cut */
        "\x7f" "ELF garbage\n",
        "3 V1795500000 N3\n2 :a\n1 :b\n",
    };
    struct strbuf *why = strbuf_new(64);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        char *dir = maildir_new();
        struct maildir_uidlist *ul = maildir_uidlist_new(dir);
        uint32_t old = 2000000000u;

        deliver_named(dir, "1700000001.a");
        /* First a good list with a UIDVALIDITY from the future. */
        write_file(dir, MAILDIR_UIDLIST_NAME,
                   "3 V2000000000 N5 G0123456789abcdef0123456789abcdef\n4 :1700000001.a\n");
        assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
        assert_int_equal(uid_of(ul, "1700000001.a"), 4);
        /* Then the damage. */
        write_file(dir, MAILDIR_UIDLIST_NAME, broken[i]);
        assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
        assert_true(maildir_uidlist_broken(ul));
        assert_int_equal(maildir_uidlist_count(ul), 0);
        assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
        assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 1);
        maildir_uidlist_unlock(ul);
        assert_false(maildir_uidlist_broken(ul));
        /* A new UIDVALIDITY, larger than any seen, so clients resync. */
        assert_true(maildir_uidlist_uidvalidity(ul) > old);
        assert_int_equal(uid_of(ul, "1700000001.a"), 1);
        maildir_uidlist_free(&ul);
        /* And it reads back whole. */
        ul = maildir_uidlist_new(dir);
        assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
        assert_false(maildir_uidlist_broken(ul));
        assert_int_equal(maildir_uidlist_count(ul), 1);
        maildir_uidlist_free(&ul);
        maildir_free(dir);
    }
    strbuf_free(&why);
}

static void test_lock_exclusion(void **state)
{
    char *dir = maildir_new();
    struct strbuf *why = strbuf_new(64);
    struct maildir_uidlist *ul = maildir_uidlist_new(dir);
    int to_child[2], from_child[2];
    char c;
    pid_t pid;
    int st;

    (void)state;
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct maildir_uidlist *cul = maildir_uidlist_new(dir);

        if (maildir_uidlist_lock(cul, 1000, NULL) < 0)
            _exit(1);
        if (write(from_child[1], "L", 1) != 1)
            _exit(2);
        /* Hold the lock until the parent says so (bounded by EOF). */
        if (read(to_child[0], &c, 1) < 0)
            _exit(3);
        maildir_uidlist_unlock(cul);
        maildir_uidlist_free(&cul);
        if (write(from_child[1], "U", 1) != 1)
            _exit(4);
        _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    assert_int_equal(read(from_child[0], &c, 1), 1);
    assert_int_equal(c, 'L');
    /* A live holder excludes us (as it would exclude Dovecot). */
    assert_int_equal(maildir_uidlist_lock(ul, 100, why), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(write(to_child[1], "go", 1), 1);
    assert_int_equal(read(from_child[0], &c, 1), 1);
    assert_int_equal(c, 'U');
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
    maildir_uidlist_free(&ul);     /* releases the lock */
    {
        char *lock;

        assert_true(asprintf(&lock, "%s/%s.lock", dir, MAILDIR_UIDLIST_NAME) > 0);
        assert_int_equal(access(lock, F_OK), -1);
        free(lock);
    }
    close(to_child[1]);
    close(from_child[0]);
    strbuf_free(&why);
    maildir_free(dir);
}

static void test_crash_mid_write(void **state)
{
    char *dir = maildir_new();
    struct strbuf *why = strbuf_new(64);
    struct maildir_uidlist *ul = maildir_uidlist_new(dir);
    uint32_t validity;
    pid_t pid;
    int st;

    (void)state;
    deliver_named(dir, "1700000001.one");
    deliver_named(dir, "1700000002.two");
    assert_int_equal(maildir_uidlist_lock(ul, 1000, why), 0);
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 2);
    maildir_uidlist_unlock(ul);
    validity = maildir_uidlist_uidvalidity(ul);

    /* A writer takes the lock, writes half a new list into the tmp file
     * and dies (no unlock, no rename). */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct maildir_uidlist *cul = maildir_uidlist_new(dir);
        char *tmp;
        int fd;

        if (maildir_uidlist_lock(cul, 1000, NULL) < 0 ||
            asprintf(&tmp, "%s/%s.tmp", dir, MAILDIR_UIDLIST_NAME) < 0)
            _exit(1);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, "3 V1 N7\n1 :half", 15) != 15)
            _exit(2);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Readers see the old list, whole. */
    maildir_uidlist_free(&ul);
    ul = maildir_uidlist_new(dir);
    assert_int_equal(maildir_uidlist_refresh(ul, why), 0);
    assert_false(maildir_uidlist_broken(ul));
    assert_int_equal(maildir_uidlist_uidvalidity(ul), validity);
    assert_int_equal(maildir_uidlist_count(ul), 2);
    /* The dead writer's lock is broken once it is 2 s old (as Dovecot
     * does for a lock whose pid is gone); age it instead of sleeping. */
    {
        char *lock;
        struct timespec old[2] = { { time(NULL) - 5, 0 }, { time(NULL) - 5, 0 } };

        assert_true(asprintf(&lock, "%s/%s.lock", dir, MAILDIR_UIDLIST_NAME) > 0);
        assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
        free(lock);
    }
    deliver_named(dir, "1700000003.three");
    assert_int_equal(maildir_uidlist_lock(ul, 2000, why), 0);
    assert_int_equal(maildir_uidlist_sync(ul, NULL, why), 1);
    maildir_uidlist_unlock(ul);
    assert_int_equal(maildir_uidlist_uidvalidity(ul), validity);
    assert_int_equal(uid_of(ul, "1700000001.one"), 1);
    assert_int_equal(uid_of(ul, "1700000003.three"), 3);
    maildir_uidlist_free(&ul);
    strbuf_free(&why);
    maildir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_assign_and_persist),
        cmocka_unit_test(test_dovecot_file_synced),
        cmocka_unit_test(test_broken_rebuilt),
        cmocka_unit_test(test_lock_exclusion),
        cmocka_unit_test(test_crash_mid_write),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
