/*
 * log.c - logging to syslog, stderr and/or a file in Postfix's line format.
 *
 * One line is formatted once into a stack buffer and written with a single
 * write(2) to the file (O_APPEND, so lines from many processes interleave
 * whole), as pflogsumm and fail2ban expect.  errno is preserved across
 * calls so "%m" works and callers may log before inspecting errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static char log_name[64] = "facteur";
static char log_ident[80] = "facteur";
static int log_dest = LOG_DEST_STDERR;
static int log_fd = -1;
static bool log_verbose;
static void (*log_fatal_hook)(void);
static char log_host[256];

void log_init(const char *service, int dest)
{
    snprintf(log_name, sizeof(log_name), "%s", service);
    if (strncmp(service, "facteur", 7) == 0)
        snprintf(log_ident, sizeof(log_ident), "%s", service);
    else
        snprintf(log_ident, sizeof(log_ident), "facteur/%s", service);
    log_dest = dest;
    if (dest & LOG_DEST_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    if (gethostname(log_host, sizeof(log_host) - 1) < 0)
        strcpy(log_host, "localhost");
    log_host[sizeof(log_host) - 1] = 0;
    /* Postfix logs the short host name. */
    char *dot = strchr(log_host, '.');
    if (dot)
        *dot = 0;
}

int log_set_file(const char *path)
{
    int fd;

    if (log_fd >= 0 && log_fd != 2)
        close(log_fd);
    log_fd = -1;
    log_dest &= ~LOG_DEST_FILE;
    if (path == NULL || *path == 0)
        return 0;
    if (strcmp(path, "/dev/stderr") == 0) {
        fd = 2;
    } else {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0)
            return -1;
    }
    log_fd = fd;
    log_dest |= LOG_DEST_FILE;
    return 0;
}

void log_set_dest(int dest)
{
    log_dest = dest;
    if (log_fd < 0)
        log_dest &= ~LOG_DEST_FILE;
}

const char *log_service(void)
{
    return log_name;
}

void log_set_verbose(bool verbose)
{
    log_verbose = verbose;
}

void log_set_fatal_hook(void (*hook)(void))
{
    log_fatal_hook = hook;
}

static void log_emit(int prio, const char *prefix, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char text[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 512];
    int n;

    errno = saved_errno;
    vsnprintf(text, sizeof(text), fmt, ap);
    /* Keep one event on one line whatever the caller passed. */
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    if (log_dest & LOG_DEST_SYSLOG)
        syslog(prio, "%s%s", prefix, text);
    if (log_dest & LOG_DEST_STDERR) {
        n = snprintf(line, sizeof(line), "%s: %s%s\n", log_name, prefix, text);
        if (n > 0 && log_fd != 2)
            (void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    if ((log_dest & LOG_DEST_FILE) && log_fd >= 0) {
        struct timespec ts;
        struct tm tm;
        char stamp[64];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s\n", stamp,
                     log_host, log_ident, (long)getpid(), prefix, text);
        if (n > 0)
            (void)!write(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    errno = saved_errno;
}

#define LOG_FN(name, prio, prefix)                  \
    void name(const char *fmt, ...)                 \
    {                                               \
        va_list ap;                                 \
        va_start(ap, fmt);                          \
        log_emit(prio, prefix, fmt, ap);            \
        va_end(ap);                                 \
    }

LOG_FN(log_info, LOG_INFO, "")
LOG_FN(log_warn, LOG_WARNING, "warning: ")
LOG_FN(log_error, LOG_ERR, "error: ")

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!log_verbose)
        return;
    va_start(ap, fmt);
    log_emit(LOG_DEBUG, "", fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    static int dying;

    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    if (log_fatal_hook && !dying++)
        log_fatal_hook();
    exit(1);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(LOG_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}
