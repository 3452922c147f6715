/*
 * test_trigger.c - trigger_send through every kind of door: a FIFO with
 * and without a reader, a listening UNIX socket, a socket nobody accepts
 * on any more, and doors that must be refused (missing, regular file,
 * symlink, bad service name, empty or over-long message).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "params.h"
#include "trigger.h"

static char dir[64];

static void door(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/public/%s", dir, name);
}

static int setup(void **state)
{
    char p[128];
    size_t n;
    (void)state;

    /* The six placeholder letters mkdtemp wants, made at run time. */
    n = (size_t)snprintf(dir, sizeof(dir), "/tmp/test_trigger.");
    memset(dir + n, 'X', 6);
    dir[n + 6] = '\0';
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(p, sizeof(p), "%s/public", dir);
    var_trigger_timeout = 2;
    log_init("test_trigger", LOG_DEST_STDERR);
    return mkdir(p, 0700);
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_fifo(void **state)
{
    char path[128], buf[16];
    int rd;
    (void)state;

    door(path, sizeof(path), "qmgr");
    assert_int_equal(mkfifo(path, 0622), 0);
    /* Nobody reads: ENXIO at once, never a hang. */
    assert_int_equal(trigger_send(dir, "qmgr", "I", 1), -1);
    rd = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    assert_int_equal(trigger_send(dir, "qmgr", "I", 1), 0);
    assert_int_equal(trigger_send(dir, "qmgr", "FA", 2), 0);
    assert_int_equal(read(rd, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "IFA", 3);
    close(rd);
}

static void test_socket(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char buf[16];
    int lfd, cfd;
    (void)state;

    door(sun.sun_path, sizeof(sun.sun_path), "pickup");
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(trigger_send(dir, "pickup", "W", 1), 0);
    cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    assert_int_equal(read(cfd, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'W');
    close(cfd);
    /* The listener is gone: connection refused, -1. */
    close(lfd);
    assert_int_equal(trigger_send(dir, "pickup", "W", 1), -1);
}

/* A service busy enough that its listen queue is full already has wake-ups
 * pending: the trigger succeeds quietly instead of failing. */
static void test_backlog_full(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd;
    (void)state;

    door(sun.sun_path, sizeof(sun.sun_path), "busy");
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    /* Never accepted: the first connects queue, later ones get EAGAIN. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(trigger_send(dir, "busy", "I", 1), 0);
    close(lfd);
}

static void test_refused(void **state)
{
    char path[128], big[TRIGGER_MSG_MAX + 1];
    int fd;
    (void)state;

    assert_int_equal(trigger_send(dir, "missing", "I", 1), -1);
    door(path, sizeof(path), "plain");
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(trigger_send(dir, "plain", "I", 1), -1);
    /* A symlink to a FIFO with a reader is still refused. */
    door(path, sizeof(path), "target");
    assert_int_equal(mkfifo(path, 0600), 0);
    fd = open(path, O_RDONLY | O_NONBLOCK);
    door(big, sizeof(big), "link");
    assert_int_equal(symlink(path, big), 0);
    assert_int_equal(trigger_send(dir, "link", "I", 1), -1);
    assert_int_equal(trigger_send(dir, "target", "I", 1), 0);
    close(fd);
    assert_int_equal(trigger_send(dir, "../public/target", "I", 1), -1);
    assert_int_equal(trigger_send(dir, "target", "", 0), -1);
    memset(big, 'x', sizeof(big));
    assert_int_equal(trigger_send(dir, "target", big, sizeof(big)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_socket),
        cmocka_unit_test(test_backlog_full),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
