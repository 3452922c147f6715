/*
 * test_privs.c - user lookup and the privilege drop.
 *
 * Lookups run anywhere.  The drop itself runs in forked children (it is
 * irreversible): as root they chroot and drop to nobody and report what
 * they see through their exit status; as an ordinary user the drop must
 * be a no-op.  A failed drop must end the child with status 1 (log_fatal).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "privs.h"
#include "strbuf.h"

struct lookup_case {
    const char *user;
    int rc;
    long uid;               /* -1: do not check */
};

static const struct lookup_case lookups[] = {
    { "root", 0, 0 },
    { "0", 0, 0 },
    { "#0", 0, 0 },
    { "nobody", 0, 65534 },
    { "no-such-user-facteur-test", -1, -1 },
    { "", -1, -1 },
    { "#", -1, -1 },
    { "12x", -1, -1 },
    { "99999999999999999999", -1, -1 },
    { "#4294967295", -1, -1 },
};

static void test_lookup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
        struct strbuf *why = strbuf_new(64);
        uid_t uid = 12345;
        gid_t gid = 12345;
        int rc = privs_user_lookup(lookups[i].user, &uid, &gid, why);

        if (rc != lookups[i].rc)
            fail_msg("user \"%s\": rc %d, wanted %d", lookups[i].user, rc, lookups[i].rc);
        if (rc == 0 && lookups[i].uid >= 0)
            assert_int_equal((long)uid, lookups[i].uid);
        if (rc < 0)
            assert_true(strbuf_len(why) > 0);
        strbuf_free(&why);
    }
}

/* Run fn in a child; return its exit status (or 100 + signal). */
static int in_child(int (*fn)(const char *), const char *arg)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        log_init("test_privs", LOG_DEST_STDERR);
        _exit(fn(arg));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* Exit codes: 0 all good, 2.. which check failed. */
static int drop_and_check(const char *jail)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;
    char cwd[256];

    privs_drop("nobody", jail);
    if (getresuid(&r, &e, &s) < 0 || r != 65534 || e != 65534 || s != 65534)
        return 2;
    if (getresgid(&rg, &eg, &sg) < 0 || rg != eg || eg != sg)
        return 3;
    if (setuid(0) == 0)
        return 4;
    if (getgroups(0, NULL) != 1)
        return 5;
    if (jail != NULL) {
        if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
            return 6;
        if (access("/marker", F_OK) != 0)   /* the jail's own file */
            return 7;
    }
    return 0;
}

static int drop_to_root(const char *arg)
{
    privs_drop("root", NULL);
    return 0;                               /* must not get here */
}

static int drop_unknown(const char *arg)
{
    privs_drop("no-such-user-facteur-test", NULL);
    return 0;
}

static int drop_bad_jail(const char *arg)
{
    privs_drop("nobody", "/nonexistent/facteur/jail");
    return 0;
}

/* As a non-root user the drop does nothing and returns 0. */
static int drop_as_user(const char *arg)
{
    uid_t before;

    if (privs_is_root()) {
        privs_drop("nobody", NULL);
        if (privs_is_root())
            return 2;
    }
    before = getuid();
    if (privs_drop("root", "/nonexistent/facteur/jail") != 0)
        return 3;
    return getuid() == before ? 0 : 4;
}

static void test_drop(void **state)
{
    char jail[] = "/tmp/test_privs.XXXXXX";
    char marker[64];
    FILE *f;

    (void)state;
    assert_int_equal(in_child(drop_as_user, NULL), 0);
    if (!privs_is_root()) {
        /* Without root only the no-op path can be checked. */
        assert_false(privs_is_root());
        return;
    }
    assert_int_equal(in_child(drop_and_check, NULL), 0);
    assert_non_null(mkdtemp(jail));
    snprintf(marker, sizeof(marker), "%s/marker", jail);
    assert_non_null(f = fopen(marker, "w"));
    fclose(f);
    assert_int_equal(chmod(jail, 0755), 0);
    assert_int_equal(in_child(drop_and_check, jail), 0);
    unlink(marker);
    rmdir(jail);

    assert_int_equal(in_child(drop_to_root, NULL), 1);
    assert_int_equal(in_child(drop_unknown, NULL), 1);
    assert_int_equal(in_child(drop_bad_jail, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
