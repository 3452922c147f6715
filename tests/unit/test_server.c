/*
 * test_server.c - the server skeletons under a fake master.
 *
 * Each case forks a child that gets what master would give it (a status
 * socketpair on descriptor 3, a listening UNIX socket or FIFO on 4) and
 * runs server_main() with a main.cf in a temporary directory.  The parent
 * plays master and client: it reads the busy/idle records, drives the
 * service, and checks how the child ends (max_use, max_idle, master gone).
 * Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "events.h"
#include "master_proto.h"
#include "server.h"
#include "strbuf.h"
#include "stream.h"

#define WAIT_MS 5000

static char dir[] = "/tmp/test_server.XXXXXX";
static char sock_path[128], wake_path[128], fifo_path[128];

/* ---- the daemons under test --------------------------------------- */

static void echo_service(struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    stream_printf(s, "hello %s\n", server_service_name());
    stream_flush(s);
    if (stream_read_line(s, line, 100) == 1) {
        stream_printf(s, "echo %s", strbuf_str(line));
        stream_flush(s);
    }
    strbuf_free(&line);
}

static void record_wake(const char *buf, size_t len)
{
    int fd = open(wake_path, O_WRONLY | O_APPEND | O_CREAT, 0600);

    if (fd >= 0) {
        (void)!write(fd, buf, len);
        (void)!write(fd, "|", 1);
        close(fd);
    }
}

static void multi_read(int fd, int events, void *ctx)
{
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n > 0) {
        (void)!write(fd, "multi ", 6);
        (void)!write(fd, buf, (size_t)n);
        return;
    }
    event_disable(fd);
    close(fd);
    server_disconnect();
}

static void multi_accept(int fd)
{
    event_read(fd, multi_read, NULL);
}

static const struct server_desc single_desc = {
    .name = "echo", .kind = SERVER_SINGLE, .service = echo_service,
};
static const struct server_desc trigger_desc = {
    .name = "trig", .kind = SERVER_TRIGGER, .wake_fn = record_wake,
};
static const struct server_desc multi_desc = {
    .name = "multi", .kind = SERVER_MULTI, .accept_fn = multi_accept,
};

/* ---- the fake master ------------------------------------------------ */

struct child {
    pid_t pid;
    int status_fd;          /* master's end */
};

static void write_main_cf(const char *extra)
{
    char path[160];
    FILE *f;

    snprintf(path, sizeof(path), "%s/main.cf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "queue_directory = %s\nmaillog_file = %s/log\nmax_idle = 100s\n%s", dir, dir,
            extra);
    fclose(f);
}

static int listen_unix(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    unlink(sock_path);
    strcpy(sun.sun_path, sock_path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 10), 0);
    return fd;
}

static struct child start(const struct server_desc *desc, int listen_fd, const char *type,
                          const char *opt)
{
    int sp[2];
    struct child c;
    char *argv[12];
    int n = 0;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
    c.pid = fork();
    assert_true(c.pid >= 0);
    if (c.pid == 0) {
        /* Park both first: either may sit on descriptor 3 or 4. */
        int st = fcntl(sp[1], F_DUPFD, 100), ls = fcntl(listen_fd, F_DUPFD, 100);

        close(sp[0]);
        if (dup2(st, MASTER_STATUS_FD) < 0 || dup2(ls, MASTER_LISTEN_FD) < 0)
            _exit(90);
        argv[n++] = "test_server";
        argv[n++] = "-c";
        argv[n++] = dir;
        argv[n++] = "-n";
        argv[n++] = "svc";
        argv[n++] = "-t";
        argv[n++] = (char *)type;
        if (opt) {
            argv[n++] = "-o";
            argv[n++] = (char *)opt;
        }
        argv[n] = NULL;
        _exit(server_main(n, argv, desc));
    }
    close(sp[1]);
    c.status_fd = sp[0];
    return c;
}

/* Next status record: MASTER_STAT_*, or -1 when none came in time. */
static int next_status(struct child *c, pid_t *pid_r)
{
    struct pollfd pfd = { .fd = c->status_fd, .events = POLLIN };
    struct master_status st;

    if (poll(&pfd, 1, WAIT_MS) != 1)
        return -1;
    if (recv(c->status_fd, &st, sizeof(st), 0) != (ssize_t)sizeof(st))
        return -1;
    if (pid_r)
        *pid_r = st.pid;
    return st.avail;
}

/* Exit status of the child, waiting at most ms; -1 if it is still alive
 * (then it is killed). */
static int child_exit(struct child *c, int ms)
{
    int status;

    for (int waited = 0; waited <= ms; waited += 10) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            close(c->status_fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    close(c->status_fd);
    return -1;
}

static int connect_unix(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    strcpy(sun.sun_path, sock_path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static void read_line(int fd, char *buf, size_t size)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    size_t n = 0;

    while (n < size - 1) {
        assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
        if (read(fd, buf + n, 1) != 1)
            break;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
}

static char *read_wakes(void)
{
    static char buf[256];
    int fd = open(wake_path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

/* ---- cases ---------------------------------------------------------- */

static void test_single_max_use(void **state)
{
    int lfd = listen_unix();
    struct child c;
    char line[128];
    pid_t pid;

    (void)state;
    write_main_cf("max_use = 2\n");
    c = start(&single_desc, lfd, "unix", NULL);
    for (int i = 0; i < 2; i++) {
        int fd = connect_unix();
        read_line(fd, line, sizeof(line));
        assert_string_equal(line, "hello svc\n");
        assert_int_equal(next_status(&c, &pid), MASTER_STAT_BUSY);
        assert_int_equal(pid, c.pid);
        assert_int_equal(write(fd, "ping\n", 5), 5);
        read_line(fd, line, sizeof(line));
        assert_string_equal(line, "echo ping\n");
        close(fd);
        if (i == 0)
            assert_int_equal(next_status(&c, NULL), MASTER_STAT_IDLE);
    }
    /* The second client used it up: exit 0 without another idle record. */
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    close(lfd);
}

static void test_single_override_and_master_gone(void **state)
{
    int lfd = listen_unix();
    struct child c;
    char line[128];
    int fd;

    (void)state;
    write_main_cf("max_use = 1\n");
    /* -o wins over main.cf: max_use 3, so one client does not end it. */
    c = start(&single_desc, lfd, "unix", "max_use=3");
    fd = connect_unix();
    read_line(fd, line, sizeof(line));
    close(fd);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_BUSY);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_IDLE);
    /* Master goes away: the child leaves. */
    shutdown(c.status_fd, SHUT_RDWR);
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    close(lfd);
}

static void test_single_max_idle(void **state)
{
    int lfd = listen_unix();
    struct child c;
    struct timespec t0, t1;
    long ms;

    (void)state;
    write_main_cf("max_idle = 1s\n");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    c = start(&single_desc, lfd, "unix", NULL);
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 900 && ms < WAIT_MS);
    close(lfd);
}

static void test_trigger_unix_and_fifo(void **state)
{
    int lfd = listen_unix();
    struct child c;
    int fd, ffd;

    (void)state;
    write_main_cf("max_use = 2\n");
    unlink(wake_path);
    c = start(&trigger_desc, lfd, "unix", NULL);
    fd = connect_unix();
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_BUSY);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_IDLE);
    fd = connect_unix();                        /* an empty trigger */
    close(fd);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_BUSY);
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    assert_string_equal(read_wakes(), "abc||");
    close(lfd);

    /* The same server on a FIFO. */
    unlink(wake_path);
    unlink(fifo_path);
    assert_int_equal(mkfifo(fifo_path, 0600), 0);
    ffd = open(fifo_path, O_RDWR | O_NONBLOCK);
    assert_true(ffd >= 0);
    write_main_cf("max_use = 1\n");
    c = start(&trigger_desc, ffd, "fifo", NULL);
    assert_int_equal(write(ffd, "W", 1), 1);
    assert_int_equal(next_status(&c, NULL), MASTER_STAT_BUSY);
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    assert_string_equal(read_wakes(), "W|");
    close(ffd);
}

static void test_multi(void **state)
{
    int lfd = listen_unix();
    struct child c;
    char line[128];
    int a, b;

    (void)state;
    write_main_cf("max_use = 2\n");
    c = start(&multi_desc, lfd, "unix", NULL);
    a = connect_unix();
    b = connect_unix();
    assert_int_equal(write(a, "one\n", 4), 4);
    assert_int_equal(write(b, "two\n", 4), 4);
    read_line(a, line, sizeof(line));
    assert_string_equal(line, "multi one\n");
    read_line(b, line, sizeof(line));
    assert_string_equal(line, "multi two\n");
    close(a);
    /* One client left, one still served: the process stays. */
    assert_int_equal(write(b, "three\n", 6), 6);
    read_line(b, line, sizeof(line));
    assert_string_equal(line, "multi three\n");
    close(b);
    assert_int_equal(child_exit(&c, WAIT_MS), 0);
    close(lfd);
}

static void test_standalone(void **state)
{
    int sp[2], status;
    char line[128];
    pid_t pid;

    (void)state;
    write_main_cf("");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = { "test_server", "-S", "-c", dir, NULL };
        dup2(sp[1], 0);
        dup2(sp[1], 1);
        close(sp[0]);
        _exit(server_main(4, argv, &single_desc));
    }
    close(sp[1]);
    read_line(sp[0], line, sizeof(line));
    assert_string_equal(line, "hello echo\n");
    assert_int_equal(write(sp[0], "x\n", 2), 2);
    read_line(sp[0], line, sizeof(line));
    assert_string_equal(line, "echo x\n");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sp[0]);
}

/* Malformed command lines end the process with status 1. */
static void test_bad_options(void **state)
{
    static char *bad[][8] = {
        { "t", "-t", "tcp", NULL },
        { "t", "-s", "0", NULL },
        { "t", "-s", "999", NULL },
        { "t", "-o", "novalue", NULL },
        { "t", "-x", NULL },
        { "t", NULL },          /* no master descriptors, no -S */
    };

    (void)state;
    write_main_cf("");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int status, argc = 0;
        char *argv[12];
        pid_t pid;

        for (int j = 0; bad[i][j]; j++)
            argv[argc++] = bad[i][j];
        argv[argc++] = "-c";
        argv[argc++] = dir;
        argv[argc] = NULL;
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 2);
            close(MASTER_STATUS_FD);
            close(MASTER_LISTEN_FD);
            _exit(server_main(argc, argv, &single_desc));
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
            fail_msg("case %zu: status %d", i, status);
    }
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
    snprintf(wake_path, sizeof(wake_path), "%s/wakes", dir);
    snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", dir);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int teardown(void **state)
{
    static const char *files[] = { "main.cf", "log", "sock", "wakes", "fifo" };
    char path[200];

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_max_use),
        cmocka_unit_test(test_single_override_and_master_gone),
        cmocka_unit_test(test_single_max_idle),
        cmocka_unit_test(test_trigger_unix_and_fifo),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_standalone),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
