/*
 * test_maildir_folder.c - lib/maildir_folder.c: Maildir++ folder names
 * (malformed and over-long included), create, list, rename with
 * subfolders, delete, and the subscriptions file in both of Dovecot's
 * versions (escapes, malformed and over-long lines, version kept on
 * rewrite, no lock left behind).
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
#include <unistd.h>

#include "maildir.h"
#include "strbuf.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/test_maildir_folder.XXXXXX";
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

/* ---------------------------------------------------------------- */
/* folders and subscriptions                                          */

static const struct {
    const char *name;
    int ok;
} folder_cases[] = {
    { "INBOX", 1 }, { "inbox", 1 }, { "Sent", 1 }, { "Archive.2024", 1 },
    { "a.b.c", 1 }, { "&AOk-t&AOk-", 1 }, { "with space", 1 },
    { "", 0 }, { ".a", 0 }, { "a.", 0 }, { "a..b", 0 }, { "a/b", 0 },
    { "x\ny", 0 }, { "tab\there", 0 }, { ".", 0 }, { "..", 0 },
};

static void test_folder_names(void **state)
{
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);
    char longname[MAILDIR_FOLDER_MAX + 2];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(folder_cases) / sizeof(folder_cases[0]); i++) {
        int r = maildir_folder_check(folder_cases[i].name, why);

        if ((r == 0) != folder_cases[i].ok)
            fail_msg("folder case %zu \"%s\": %d", i, folder_cases[i].name, r);
    }
    memset(longname, 'x', sizeof(longname));
    longname[MAILDIR_FOLDER_MAX] = '\0';
    assert_int_equal(maildir_folder_check(longname, why), 0);
    longname[MAILDIR_FOLDER_MAX] = 'x';
    longname[MAILDIR_FOLDER_MAX + 1] = '\0';
    assert_int_equal(maildir_folder_check(longname, why), -1);
    assert_int_equal(maildir_folder_path(out, "/m", "INBOX", why), 0);
    assert_string_equal(strbuf_str(out), "/m");
    assert_int_equal(maildir_folder_path(out, "/m", "Archive.2024", why), 0);
    assert_string_equal(strbuf_str(out), "/m/.Archive.2024");
    assert_int_equal(maildir_folder_path(out, "/m", "../x", why), -1);
    strbuf_free(&why);
    strbuf_free(&out);
}

static void test_folders(void **state)
{
    char *root = tmpdir_new(), **names;
    struct strbuf *why = strbuf_new(64);
    size_t n;

    (void)state;
    assert_int_equal(maildir_folder_create_defaults(root, why), 0);
    assert_int_equal(maildir_folder_create(root, "Sent", why), 1);
    assert_int_equal(maildir_folder_create(root, "INBOX", why), 1);
    assert_int_equal(maildir_folder_create(root, "Archive.2024", why), 0);
    assert_int_equal(maildir_folder_create(root, "Archive.2024.Q1", why), 0);
    assert_int_equal(maildir_folder_create(root, "a..b", why), -1);
    {
        char *marker = path2(root, ".Sent/maildirfolder");

        assert_int_equal(access(marker, F_OK), 0);
        free(marker);
    }
    assert_int_equal(maildir_folder_list(root, &names, &n, why), 0);
    assert_int_equal(n, 7);
    assert_string_equal(names[0], "Archive");
    assert_string_equal(names[1], "Archive.2024");
    assert_string_equal(names[2], "Archive.2024.Q1");
    assert_string_equal(names[6], "Trash");
    assert_null(names[7]);
    maildir_names_free(&names);
    assert_null(names);

    /* Rename carries the subfolders; an existing target refuses. */
    assert_int_equal(maildir_folder_rename(root, "Archive.2024", "Old", why), 0);
    assert_int_equal(maildir_folder_rename(root, "Old", "Sent", why), -1);
    assert_int_equal(maildir_folder_rename(root, "Old", "Old.Inner", why), -1);
    assert_int_equal(maildir_folder_rename(root, "INBOX", "X", why), -1);
    assert_int_equal(maildir_folder_list(root, &names, &n, why), 0);
    assert_int_equal(n, 7);
    assert_string_equal(names[3], "Old");
    assert_string_equal(names[4], "Old.Q1");
    maildir_names_free(&names);

    /* Delete: not with subfolders, never INBOX; messages go with it. */
    assert_int_equal(maildir_folder_delete(root, "Old", why), -1);
    assert_int_equal(maildir_folder_delete(root, "INBOX", why), -1);
    assert_int_equal(maildir_folder_delete(root, "Nope", why), -1);
    {
        char *dir = path2(root, ".Old.Q1");

        assert_int_equal(maildir_deliver(dir, NULL, "x\n", 2, NULL, why), 0);
        free(dir);
    }
    assert_int_equal(maildir_folder_delete(root, "Old.Q1", why), 0);
    assert_int_equal(maildir_folder_delete(root, "Old", why), 0);
    assert_int_equal(maildir_folder_list(root, &names, &n, why), 0);
    assert_int_equal(n, 5);
    maildir_names_free(&names);
    strbuf_free(&why);
    tmpdir_free(root);
}

struct subs_case {
    const char *data;
    int ok;
    const char *joined;     /* names joined by '|' */
};

static const struct subs_case subs_cases[] = {
    { "", 1, "" },
    { "Sent\nArchive.2024\n", 1, "Sent|Archive.2024" },
    { "V\t2\n\nSent\nArchive\t2024\n", 1, "Sent|Archive.2024" },
    { "V\t2\n\nA\001tB\tC\n", 1, "A\tB.C" },
    { "V\t2\n\nA\0011\n", 1, "A\001" },
    { "V\t2\n\nno-newline", 1, "no-newline" },
    { "Sent\n\n\nDrafts\n", 1, "Sent|Drafts" },
    { "V\t2\n\nbad\001x\n", 0, NULL },
    { "V\t2\n\nbad\001", 0, NULL },
};

static void test_subscriptions(void **state)
{
    char *root = tmpdir_new(), **names, *p, *data;
    struct strbuf *why = strbuf_new(64), *joined = strbuf_new(64);
    size_t i, j, n;

    (void)state;
    for (i = 0; i < sizeof(subs_cases) / sizeof(subs_cases[0]); i++) {
        const struct subs_case *c = &subs_cases[i];
        int r = maildir_subs_parse(c->data, strlen(c->data), &names, &n, why);

        if ((r == 0) != c->ok)
            fail_msg("subs case %zu: %d %s", i, r, strbuf_str(why));
        if (r < 0)
            continue;
        strbuf_reset(joined);
        for (j = 0; j < n; j++)
            strbuf_appendf(joined, "%s%s", j ? "|" : "", names[j]);
        assert_string_equal(strbuf_str(joined), c->joined);
        maildir_names_free(&names);
    }
    /* An over-long line is refused. */
    {
        char *big = malloc(MAILDIR_FOLDER_MAX * 3 + 2);

        memset(big, 'a', MAILDIR_FOLDER_MAX * 3);
        big[MAILDIR_FOLDER_MAX * 3] = '\n';
        assert_int_equal(maildir_subs_parse(big, MAILDIR_FOLDER_MAX * 3 + 1, &names, &n, why), -1);
        free(big);
    }

    assert_int_equal(maildir_subs_read(root, &names, &n, why), 0);
    assert_int_equal(n, 0);
    maildir_names_free(&names);
    assert_int_equal(maildir_subs_set(root, "Sent", true, why), 1);
    assert_int_equal(maildir_subs_set(root, "Sent", true, why), 0);
    assert_int_equal(maildir_subs_set(root, "Archive.2024", true, why), 1);
    assert_int_equal(maildir_subs_set(root, "inbox", true, why), 1);
    assert_int_equal(maildir_subs_set(root, "bad..name", true, why), -1);
    p = path2(root, "subscriptions");
    data = read_all(p);
    assert_string_equal(data, "V\t2\n\nSent\nArchive\t2024\nINBOX\n");
    free(data);
    assert_int_equal(maildir_subs_set(root, "Sent", false, why), 1);
    assert_int_equal(maildir_subs_set(root, "Sent", false, why), 0);
    assert_int_equal(maildir_subs_read(root, &names, &n, why), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "Archive.2024");  /* file order kept */
    assert_string_equal(names[1], "INBOX");
    maildir_names_free(&names);
    /* A version 1 file stays version 1. */
    {
        int fd = open(p, O_WRONLY | O_TRUNC);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "Old.One\n", 8), 8);
        close(fd);
    }
    assert_int_equal(maildir_subs_set(root, "New", true, why), 1);
    data = read_all(p);
    assert_string_equal(data, "Old.One\nNew\n");
    free(data);
    /* No lock file is left behind. */
    {
        char *lock = path2(root, "subscriptions.lock");

        assert_int_equal(access(lock, F_OK), -1);
        free(lock);
    }
    free(p);
    strbuf_free(&why);
    strbuf_free(&joined);
    tmpdir_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_names),
        cmocka_unit_test(test_folders),
        cmocka_unit_test(test_subscriptions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
