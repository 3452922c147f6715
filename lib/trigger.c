/*
 * trigger.c - wake qmgr or pickup through queue_dir/public/<service>.
 *
 * Called by smtpd and pickup after a message is queued, and by
 * facteur-drop after a file lands in maildrop/.  The door is a FIFO or a
 * UNIX stream socket that master created; anything else (a symlink, a
 * regular file someone planted) is refused.  Nothing here blocks for long:
 * the FIFO is opened non-blocking and the socket write is bounded by
 * trigger_timeout, because the caller (often a client waiting for its 250)
 * must not hang on a busy or dead service.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "params.h"
#include "trigger.h"

/* Milliseconds left until deadline (CLOCK_MONOTONIC ms), at least 0. */
static int ms_left(long long deadline)
{
    struct timespec ts;
    long long now;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return now >= deadline ? 0 : (int)(deadline - now);
}

static int write_all(int fd, const char *msg, size_t len, long long deadline)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(fd, msg + done, len - done);

        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int left = ms_left(deadline);

            if (left == 0 || poll(&pfd, 1, left) <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            continue;
        }
        return -1;
    }
    return 0;
}

static int connect_socket(const char *path, long long deadline)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    if (errno == EAGAIN) {
        /* A UNIX socket's listen queue is full: the service has wake-ups
         * pending already, which is all a trigger asks for. */
        close(fd);
        errno = EAGAIN;
        return -1;
    }
    if (errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0, left = ms_left(deadline);
        socklen_t elen = sizeof(err);

        if (left > 0 && poll(&pfd, 1, left) > 0 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
            return fd;
        errno = err ? err : ETIMEDOUT;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int trigger_send(const char *queue_dir, const char *service, const char *msg, size_t len)
{
    char *path = xasprintf("%s/public/%s", queue_dir, service);
    struct timespec ts;
    long long deadline;
    struct stat st;
    long timeout = var_trigger_timeout > 0 ? var_trigger_timeout : 10;
    int fd = -1, rc = -1;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout * 1000;
    if (len == 0 || len > TRIGGER_MSG_MAX || strchr(service, '/') != NULL) {
        log_warn("trigger %s: bad trigger request (%zu bytes)", service, len);
        goto out;
    }
    if (lstat(path, &st) < 0) {
        log_warn("cannot wake up %s: %s: %m", service, path);
        goto out;
    }
    if (S_ISFIFO(st.st_mode)) {
        /* O_NONBLOCK: ENXIO at once when no process reads the FIFO. */
        fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    } else if (S_ISSOCK(st.st_mode)) {
        fd = connect_socket(path, deadline);
    } else {
        log_warn("cannot wake up %s: %s is neither a FIFO nor a socket", service, path);
        goto out;
    }
    if (fd < 0 && errno == EAGAIN && S_ISSOCK(st.st_mode)) {
        rc = 0;     /* backlog full: the service will wake up anyway */
        goto out;
    }
    if (fd < 0) {
        log_warn("cannot wake up %s: %s: %m", service, path);
        goto out;
    }
    if (write_all(fd, msg, len, deadline) < 0) {
        log_warn("cannot wake up %s: write %s: %m", service, path);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}
