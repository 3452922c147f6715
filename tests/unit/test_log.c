/*
 * test_log.c - unit tests for lib/log.c.
 *
 * Logs to a temporary file and checks each line against the Postfix
 * format pflogsumm and fail2ban parse:
 *   "Mon DD HH:MM:SS host facteur/SERVICE[PID]: warning: text"
 * plus the stderr form "SERVICE: text", one event per line, %m, errno
 * preserved, verbose gating, over-long text, and fatal/panic in children.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "strbuf.h"

static char logpath[256];

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");
    int fd;

    snprintf(logpath, sizeof(logpath), "%s/test_log.%s", base && *base ? base : "/tmp",
             "XX" "XX" "XX");   /* mkstemp template, spelled apart */
    fd = mkstemp(logpath);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    log_set_file(NULL);
    return unlink(logpath);
}

/* The file's content, emptied afterwards for the next case. */
static void take_log(struct strbuf *out)
{
    char buf[8192];
    ssize_t n;
    int fd = open(logpath, O_RDONLY);

    assert_true(fd >= 0);
    strbuf_reset(out);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        strbuf_appendn(out, buf, (size_t)n);
    close(fd);
    assert_int_equal(truncate(logpath, 0), 0);
}

/* Check one line "STAMP HOST IDENT[PID]: rest\n"; rest must equal want. */
static void check_line(const char *line, const char *ident, const char *want)
{
    char re_text[512], pid[32];
    regex_t re;
    regmatch_t m[3];
    const char *rest;

    snprintf(re_text, sizeof(re_text),
             "^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3][0-9] "
             "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [^ .]+ %s\\[([0-9]+)\\]: ", ident);
    assert_int_equal(regcomp(&re, re_text, REG_EXTENDED), 0);
    if (regexec(&re, line, 3, m, 0) != 0)
        fail_msg("line does not match the Postfix format: \"%s\"", line);
    regfree(&re);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    assert_int_equal((size_t)(m[2].rm_eo - m[2].rm_so), strlen(pid));
    assert_memory_equal(line + m[2].rm_so, pid, strlen(pid));
    rest = line + m[0].rm_eo;
    if (strcmp(rest, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", rest, want);
}

enum lvl { L_INFO, L_WARN, L_ERROR, L_DEBUG };

struct line_case {
    const char *name;
    enum lvl lvl;
    const char *text;       /* passed as "%s" argument */
    const char *want;       /* after "IDENT[PID]: " */
};

static const struct line_case line_cases[] = {
    { "info", L_INFO, "4Xk9: to=<a@b>, status=sent (250 ok)", "4Xk9: to=<a@b>, status=sent (250 ok)\n" },
    { "warning", L_WARN, "bad thing", "warning: bad thing\n" },
    { "error", L_ERROR, "worse thing", "error: worse thing\n" },
    { "newlines flattened", L_WARN, "two\nlines\r\n", "warning: two lines  \n" },
    { "empty", L_INFO, "", "\n" },
    { "percent is data", L_INFO, "100% %s %n", "100% %s %n\n" },
};

static void emit(enum lvl lvl, const char *text)
{
    switch (lvl) {
    case L_INFO:
        log_info("%s", text);
        break;
    case L_WARN:
        log_warn("%s", text);
        break;
    case L_ERROR:
        log_error("%s", text);
        break;
    case L_DEBUG:
        log_debug("%s", text);
        break;
    }
}

static void test_file_format(void **state)
{
    struct strbuf *got = strbuf_new(256);

    log_init("smtpd", LOG_DEST_FILE);
    assert_int_equal(log_set_file(logpath), 0);
    assert_string_equal(log_service(), "smtpd");
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        emit(line_cases[i].lvl, line_cases[i].text);
        take_log(got);
        check_line(strbuf_str(got), "facteur/smtpd", line_cases[i].want);
    }
    /* A service already named facteur-* is its own ident. */
    log_init("facteur-conf", LOG_DEST_FILE);
    assert_int_equal(log_set_file(logpath), 0);
    log_warn("x=%d", 5);
    take_log(got);
    check_line(strbuf_str(got), "facteur-conf", "warning: x=5\n");
    strbuf_free(&got);
}

static void test_errno_and_verbose(void **state)
{
    struct strbuf *got = strbuf_new(256);

    log_init("qmgr", LOG_DEST_FILE);
    assert_int_equal(log_set_file(logpath), 0);
    errno = ENOENT;
    log_warn("open %s: %m", "/x");
    /* errno survives logging. */
    assert_int_equal(errno, ENOENT);
    take_log(got);
    check_line(strbuf_str(got), "facteur/qmgr", "warning: open /x: No such file or directory\n");
    /* Debug lines only when verbose. */
    log_debug("hidden");
    take_log(got);
    assert_int_equal(strbuf_len(got), 0);
    log_set_verbose(true);
    log_debug("shown");
    take_log(got);
    check_line(strbuf_str(got), "facteur/qmgr", "shown\n");
    log_set_verbose(false);
    /* Over-long text: one line, truncated, still newline-terminated. */
    char *big = malloc(10000);
    memset(big, 'w', 9999);
    big[9999] = 0;
    log_info("%s", big);
    take_log(got);
    assert_true(strbuf_len(got) > 4000 && strbuf_len(got) < 5000);
    assert_int_equal(strbuf_str(got)[strbuf_len(got) - 1], '\n');
    assert_null(memchr(strbuf_str(got), '\n', strbuf_len(got) - 1));
    free(big);
    /* Stopping file logging: nothing more arrives. */
    assert_int_equal(log_set_file(NULL), 0);
    log_info("gone");
    take_log(got);
    assert_int_equal(strbuf_len(got), 0);
    assert_int_equal(log_set_file("/nonexistent-dir/x.log"), -1);
    strbuf_free(&got);
}

/* Children for fatal, panic and the stderr form. */
static int hook_fd = -1;

static void fatal_hook(void)
{
    (void)!write(hook_fd, "hook\n", 5);
}

static void child_fatal(void)
{
    log_init("master", LOG_DEST_STDERR);
    hook_fd = 2;
    log_set_fatal_hook(fatal_hook);
    log_fatal("cannot bind %s", "port 25");
}

static void child_panic(void)
{
    log_init("smtp", LOG_DEST_STDERR);
    log_panic("invariant %d broken", 7);
}

static void child_stderr(void)
{
    log_init("pickup", LOG_DEST_STDERR);
    log_warn("queue file %s", "X1");
    log_info("plain");
}

static void run_child(void (*fn)(void), struct strbuf *out, int *status)
{
    char buf[1024];
    int p[2];
    pid_t pid;
    ssize_t n;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        fn();
        _exit(0);
    }
    close(p[1]);
    strbuf_reset(out);
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        strbuf_appendn(out, buf, (size_t)n);
    close(p[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
}

static void test_fatal_panic_stderr(void **state)
{
    struct strbuf *out = strbuf_new(256);
    int status;

    run_child(child_fatal, out, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_string_equal(strbuf_str(out), "master: fatal: cannot bind port 25\nhook\n");

    run_child(child_panic, out, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(strbuf_str(out), "smtp: panic: invariant 7 broken\n"));

    run_child(child_stderr, out, &status);
    assert_true(WIFEXITED(status));
    assert_string_equal(strbuf_str(out), "pickup: warning: queue file X1\npickup: plain\n");
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_format),
        cmocka_unit_test(test_errno_and_verbose),
        cmocka_unit_test(test_fatal_panic_stderr),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
