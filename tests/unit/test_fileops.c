/*
 * test_fileops.c - unit tests for lib/fileops.c.
 *
 * Works in a fresh mkdtemp directory under $TMPDIR (or /tmp) and removes
 * it at the end: atomic replace, refusal of symlinks, FIFOs and foreign
 * owners, bounded reads, mkdir -p, OFD locks and the pid lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileops.h"
#include "strbuf.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int n;

    n = (n + 1) % 4;
    snprintf(buf[n], sizeof(buf[n]), "%s/%s", tmpdir, name);
    return buf[n];
}

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/test_fileops.%s", base && *base ? base : "/tmp",
             "XX" "XX" "XX");   /* mkdtemp template, spelled apart */
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[600];

    /* tmpdir is ours, made by mkdtemp. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_open_new(void **state)
{
    struct strbuf *why = strbuf_new(64);
    int fd;

    fd = fileops_open_new(tpath("new"), O_WRONLY, 0600, why);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    /* The name is taken. */
    assert_int_equal(fileops_open_new(tpath("new"), O_WRONLY, 0600, why), -1);
    assert_int_equal(errno, EEXIST);
    assert_non_null(strstr(strbuf_str(why), "new"));
    /* A dangling symlink is not followed into creating its target. */
    assert_int_equal(symlink(tpath("target"), tpath("dangling")), 0);
    assert_int_equal(fileops_open_new(tpath("dangling"), O_RDWR, 0600, why), -1);
    assert_int_equal(access(tpath("target"), F_OK), -1);
    strbuf_free(&why);
}

static void test_safe_open_read(void **state)
{
    struct strbuf *why = strbuf_new(64);
    int fd;

    assert_int_equal(fileops_write_atomic(tpath("plain"), "hello", 5, 0600, why), 0);
    fd = fileops_safe_open_read(tpath("plain"), (uid_t)-1, why);
    assert_true(fd >= 0);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
    fd = fileops_safe_open_read(tpath("plain"), getuid(), why);
    assert_true(fd >= 0);
    close(fd);

    struct {
        const char *name;
        const char *file;
        uid_t owner;
        const char *why;
    } cases[] = {
        { "symlink", "link", (uid_t)-1, "symbolic link" },
        { "fifo", "fifo", (uid_t)-1, "not a regular file" },
        { "directory", "dir", (uid_t)-1, "not a regular file" },
        { "missing", "missing", (uid_t)-1, "No such file" },
        { "other owner", "plain", getuid() + 1, "expected uid" },
        { "group writable", "gw", getuid(), "writable by group" },
    };
    assert_int_equal(symlink(tpath("plain"), tpath("link")), 0);
    assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
    assert_int_equal(mkdir(tpath("dir"), 0700), 0);
    assert_int_equal(fileops_write_atomic(tpath("gw"), "x", 1, 0620, why), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(why);
        fd = fileops_safe_open_read(tpath(cases[i].file), cases[i].owner, why);
        if (fd >= 0)
            fail_msg("case %s: opened", cases[i].name);
        if (strstr(strbuf_str(why), cases[i].why) == NULL)
            fail_msg("case %s: why \"%s\", want \"%s\"", cases[i].name, strbuf_str(why), cases[i].why);
    }
    strbuf_free(&why);
}

static void test_write_atomic(void **state)
{
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(64);
    struct stat st;
    int fd;

    assert_int_equal(fileops_write_atomic(tpath("cfg"), "one\n", 4, 0640, why), 0);
    assert_int_equal(stat(tpath("cfg"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* A reader holding the old file keeps the old content. */
    fd = open(tpath("cfg"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fileops_write_atomic(tpath("cfg"), "two, longer\n", 12, 0600, why), 0);
    char old[16] = { 0 };
    assert_int_equal(read(fd, old, sizeof(old) - 1), 4);
    assert_string_equal(old, "one\n");
    close(fd);
    assert_int_equal(fileops_read_file(tpath("cfg"), got, 100, why), 0);
    assert_string_equal(strbuf_str(got), "two, longer\n");
    /* Empty content. */
    assert_int_equal(fileops_write_atomic(tpath("cfg"), "", 0, 0600, why), 0);
    assert_int_equal(fileops_read_file(tpath("cfg"), got, 100, why), 0);
    assert_int_equal(strbuf_len(got), 0);
    /* No temporary file left behind. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q '\\.tmp\\.'", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    /* A directory that does not exist: error naming the path. */
    assert_int_equal(fileops_write_atomic(tpath("nodir/cfg"), "x", 1, 0600, why), -1);
    assert_non_null(strstr(strbuf_str(why), "nodir"));
    /* Replacing a symlink replaces the link, not its target. */
    assert_int_equal(fileops_write_atomic(tpath("victim"), "safe", 4, 0600, why), 0);
    assert_int_equal(symlink(tpath("victim"), tpath("alias")), 0);
    assert_int_equal(fileops_write_atomic(tpath("alias"), "new", 3, 0600, why), 0);
    assert_int_equal(fileops_read_file(tpath("victim"), got, 100, why), 0);
    assert_string_equal(strbuf_str(got), "safe");
    assert_int_equal(lstat(tpath("alias"), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(fileops_fsync_dir(tmpdir, why), 0);
    assert_int_equal(fileops_fsync_parent(tpath("cfg"), why), 0);
    assert_int_equal(fileops_fsync_dir(tpath("missing-dir"), why), -1);
    strbuf_free(&why);
    strbuf_free(&got);
}

static void test_read_file(void **state)
{
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(4);
    static const char data[] = "line one\nline\0two\n";

    assert_int_equal(fileops_write_atomic(tpath("data"), data, sizeof(data) - 1, 0600, why), 0);
    assert_int_equal(fileops_read_file(tpath("data"), got, 0, why), 0);
    assert_int_equal(strbuf_len(got), sizeof(data) - 1);
    assert_memory_equal(strbuf_str(got), data, sizeof(data) - 1);
    /* Exactly at the bound, then one byte over. */
    assert_int_equal(fileops_read_file(tpath("data"), got, sizeof(data) - 1, why), 0);
    assert_int_equal(fileops_read_file(tpath("data"), got, sizeof(data) - 2, why), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(strbuf_len(got), 0);
    assert_non_null(strstr(strbuf_str(why), "longer than"));
    assert_int_equal(fileops_read_file(tpath("absent"), got, 10, why), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mkfifo(tpath("rfifo"), 0600), 0);
    assert_int_equal(fileops_read_file(tpath("rfifo"), got, 10, why), -1);
    strbuf_free(&why);
    strbuf_free(&got);
}

static void test_mkdir_p(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct stat st;

    assert_int_equal(fileops_mkdir_p(tpath("a/b//c/"), 0750, why), 0);
    assert_int_equal(stat(tpath("a/b/c"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* Again: already there is fine. */
    assert_int_equal(fileops_mkdir_p(tpath("a/b/c"), 0750, why), 0);
    /* A file in the way. */
    assert_int_equal(fileops_write_atomic(tpath("a/file"), "x", 1, 0600, why), 0);
    assert_int_equal(fileops_mkdir_p(tpath("a/file/d"), 0750, why), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_non_null(strstr(strbuf_str(why), "a/file"));
    assert_int_equal(fileops_mkdir_p("", 0750, why), -1);
    strbuf_free(&why);
}

static void test_locks(void **state)
{
    struct strbuf *why = strbuf_new(64);
    int a, b;

    a = open(tpath("lockfile"), O_RDWR | O_CREAT, 0600);
    b = open(tpath("lockfile"), O_RDWR);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(fileops_lock(a, FILEOPS_LOCK_EXCLUSIVE, why), 0);
    /* Held twice fails, even from the same process. */
    assert_int_equal(fileops_lock(b, FILEOPS_LOCK_EXCLUSIVE, why), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fileops_lock(b, FILEOPS_LOCK_SHARED, why), -1);
    assert_int_equal(fileops_lock(a, FILEOPS_UNLOCK, why), 0);
    /* Shared locks coexist; exclusive waits for none. */
    assert_int_equal(fileops_lock(a, FILEOPS_LOCK_SHARED, why), 0);
    assert_int_equal(fileops_lock(b, FILEOPS_LOCK_SHARED, why), 0);
    assert_int_equal(fileops_lock(b, FILEOPS_LOCK_EXCLUSIVE, why), -1);
    close(a);
    assert_int_equal(fileops_lock(b, FILEOPS_LOCK_EXCLUSIVE, why), 0);
    close(b);
    assert_int_equal(fileops_lock(-1, FILEOPS_LOCK_SHARED, why), -1);
    assert_int_equal(errno, EBADF);
    strbuf_free(&why);
}

static void test_pidlock(void **state)
{
    struct strbuf *why = strbuf_new(64), *got = strbuf_new(64);
    pid_t holder = -1, child;
    int fd, fd2, status;
    char want[32];

    fd = fileops_pidlock(tpath("master.pid"), &holder, why);
    assert_true(fd >= 0);
    assert_int_equal(holder, 0);
    snprintf(want, sizeof(want), "%10ld\n", (long)getpid());
    assert_int_equal(fileops_read_file(tpath("master.pid"), got, 64, why), 0);
    assert_string_equal(strbuf_str(got), want);
    /* A second master (same process, another open) is refused and told
     * who holds the lock. */
    fd2 = fileops_pidlock(tpath("master.pid"), &holder, why);
    assert_int_equal(fd2, -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(holder, getpid());
    assert_non_null(strstr(strbuf_str(why), "locked by pid"));
    /* So is another process. */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pid_t h = 0;
        int r = fileops_pidlock(tpath("master.pid"), &h, NULL);
        _exit(r == -1 && h == getppid() ? 0 : 1);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(fileops_pidlock_update(fd, why), 0);
    /* Released by close: the next one gets it. */
    close(fd);
    fd = fileops_pidlock(tpath("master.pid"), &holder, why);
    assert_true(fd >= 0);
    close(fd);
    /* A symlink is not a pid file. */
    assert_int_equal(symlink(tpath("master.pid"), tpath("evil.pid")), 0);
    assert_int_equal(fileops_pidlock(tpath("evil.pid"), &holder, why), -1);
    /* Garbage in a locked file: holder unknown (0). */
    fd = fileops_pidlock(tpath("garbage.pid"), NULL, why);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "not a pid\n", 10, 0), 10);
    assert_int_equal(fileops_pidlock(tpath("garbage.pid"), &holder, why), -1);
    assert_int_equal(holder, 0);
    assert_non_null(strstr(strbuf_str(why), "another process"));
    close(fd);
    strbuf_free(&why);
    strbuf_free(&got);
}

static void test_fd_flags(void **state)
{
    int p[2];

    assert_int_equal(pipe(p), 0);
    assert_int_equal(fileops_set_cloexec(p[0], true), 0);
    assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fileops_set_cloexec(p[0], false), 0);
    assert_false(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fileops_set_nonblock(p[0], true), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(fileops_set_nonblock(p[0], true), 0);
    assert_int_equal(fileops_set_nonblock(p[0], false), 0);
    assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    close(p[0]);
    close(p[1]);
    assert_int_equal(fileops_set_nonblock(p[0], true), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_new),
        cmocka_unit_test(test_safe_open_read),
        cmocka_unit_test(test_write_atomic),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_pidlock),
        cmocka_unit_test(test_fd_flags),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
