/*
 * stream.c - buffered stream over a descriptor or a pair of strbufs.
 *
 * Owns an input buffer (bytes read but not yet consumed) and an output
 * buffer (bytes written but not yet sent).  Every wait goes through
 * stream_wait(), the one place that applies the per-call timeout and the
 * whole-exchange deadline (extended by the minimum data rate), so a slow
 * or silent peer can hold a process only as long as the daemon allows.
 *
 * Blocking mode does not rely on the descriptor's O_NONBLOCK flag: sockets
 * are read with MSG_DONTWAIT first and polled only on EAGAIN; other
 * descriptors are polled first.  Replaced I/O functions (TLS) on a socket
 * are called first and polled on EAGAIN, so stream_set_io() puts a socket
 * in non-blocking mode: a TLS layer that has decrypted bytes buffered must
 * be asked before the kernel is.  Replaced I/O on a pipe is polled first.  Writes use send(MSG_NOSIGNAL); on pipes the
 * fallback to write(2) blocks SIGPIPE around the call and swallows a
 * SIGPIPE it caused, so EPIPE is an error return and never a signal.
 *
 * Input is untrusted: line reads are bounded by the caller's max, and the
 * input buffer never grows past that bound plus one read chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "stream.h"

#define STREAM_CHUNK 4096           /* least free space before a read */
#define STREAM_OUT_FLUSH 16384      /* blocking mode flushes past this */

struct stream {
    int fd;                         /* -1 for memory streams */
    bool nonblock;
    bool custom_io;                 /* stream_set_io was called */
    int sock;                       /* 1 socket, 0 not, -1 not known yet,
                                       2 regular file (never blocks, no SIGPIPE) */
    struct strbuf *mem_in;          /* memory streams only */
    struct strbuf *mem_out;
    stream_read_fn *rd;
    stream_write_fn *wr;
    void *ctx;

    char *ibuf;                     /* unread input is ibuf[ipos..ilen) */
    size_t ipos, ilen, isize;
    bool eof;                       /* the read side returned 0 */

    char *obuf;                     /* unsent output is obuf[opos..olen) */
    size_t opos, olen, osize;

    int timeout_ms;                 /* per wait; 0: forever */
    uint64_t dl_start;              /* deadline start (ms), 0: none */
    uint64_t dl_ms;
    size_t dl_rate;                 /* bytes per second, 0: fixed deadline */
    size_t dl_bytes0;               /* bytes moved when the deadline was set */

    enum stream_err err;
    int err_errno;
    size_t bytes_in, bytes_out;
    char errtext[160];
};

static uint64_t stream_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void stream_fail(struct stream *s, enum stream_err err, int errnum)
{
    /* The first failure is the one worth reporting. */
    if (s->err == STREAM_ERR_NONE || s->err == STREAM_ERR_TOOLONG) {
        s->err = err;
        s->err_errno = errnum;
    }
}

/* True if the stream can no longer move bytes (TOOLONG does not count). */
static bool stream_dead(const struct stream *s)
{
    return s->err != STREAM_ERR_NONE && s->err != STREAM_ERR_TOOLONG;
}

/* Default I/O over a descriptor. */
static ssize_t stream_fd_read(void *ctx, void *buf, size_t len)
{
    struct stream *s = ctx;
    ssize_t n;

    if (s->sock == 2)
        return read(s->fd, buf, len);
    if (s->sock != 0) {
        n = recv(s->fd, buf, len, MSG_DONTWAIT);
        if (n >= 0 || errno != ENOTSOCK)
            return n;
        /* Not a socket after all: from now on poll before reading. */
        s->sock = 0;
        if (!s->nonblock && !s->custom_io) {
            errno = EAGAIN;
            return -1;
        }
    }
    return read(s->fd, buf, len);
}

static ssize_t stream_pipe_write(int fd, const void *buf, size_t len)
{
    sigset_t block, old, pending;
    bool was_pending;
    ssize_t n;
    int saved;

    /* Block SIGPIPE so a closed reader gives EPIPE, then take back the
     * SIGPIPE this write raised (not one that was already pending). */
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    n = write(fd, buf, len);
    saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&block, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

static ssize_t stream_fd_write(void *ctx, const void *buf, size_t len)
{
    struct stream *s = ctx;
    ssize_t n;

    if (s->sock == 2)
        return write(s->fd, buf, len);
    if (s->sock != 0) {
        n = send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0 || errno != ENOTSOCK)
            return n;
        s->sock = 0;
        if (!s->nonblock && !s->custom_io) {
            errno = EAGAIN;
            return -1;
        }
    }
    return stream_pipe_write(s->fd, buf, len);
}

/* Memory I/O: input consumed from the front of mem_in, output appended. */
static ssize_t stream_mem_read(void *ctx, void *buf, size_t len)
{
    struct stream *s = ctx;
    size_t n;

    if (s->mem_in == NULL)
        return 0;
    n = strbuf_len(s->mem_in) < len ? strbuf_len(s->mem_in) : len;
    memcpy(buf, strbuf_str(s->mem_in), n);
    strbuf_consume(s->mem_in, n);
    return (ssize_t)n;
}

static ssize_t stream_mem_write(void *ctx, const void *buf, size_t len)
{
    struct stream *s = ctx;

    if (s->mem_out == NULL)
        return (ssize_t)len;
    if (strbuf_appendn(s->mem_out, buf, len) < 0) {
        errno = ENOSPC;
        return -1;
    }
    return (ssize_t)len;
}

static struct stream *stream_alloc(int fd)
{
    struct stream *s = xcalloc(1, sizeof(*s));

    s->fd = fd;
    s->sock = -1;
    s->isize = STREAM_CHUNK;
    s->ibuf = xmalloc(s->isize);
    s->osize = STREAM_CHUNK;
    s->obuf = xmalloc(s->osize);
    s->ctx = s;
    return s;
}

struct stream *stream_fdopen(int fd)
{
    struct stream *s = stream_alloc(fd);
    struct stat st;

    /* Sockets are tried first with MSG_DONTWAIT; anything else is polled
     * first so a blocking read or write cannot outlive the deadline. */
    if (fstat(fd, &st) == 0)
        s->sock = S_ISSOCK(st.st_mode) ? 1 : S_ISREG(st.st_mode) ? 2 : 0;
    s->rd = stream_fd_read;
    s->wr = stream_fd_write;
    return s;
}

struct stream *stream_memopen(struct strbuf *in, struct strbuf *out)
{
    struct stream *s = stream_alloc(-1);

    s->mem_in = in;
    s->mem_out = out;
    s->sock = 0;
    s->rd = stream_mem_read;
    s->wr = stream_mem_write;
    return s;
}

void stream_release(struct stream **sp)
{
    struct stream *s;

    if (sp == NULL || *sp == NULL)
        return;
    s = *sp;
    free(s->ibuf);
    free(s->obuf);
    free(s);
    *sp = NULL;
}

void stream_close(struct stream **sp)
{
    struct stream *s;

    if (sp == NULL || *sp == NULL)
        return;
    s = *sp;
    if (s->olen > s->opos && !stream_dead(s)) {
        /* A non-blocking stream with a time limit may wait that long for
         * its last output; without one, a single attempt is all it gets. */
        if (s->nonblock && (s->timeout_ms > 0 || s->dl_start != 0))
            s->nonblock = false;
        (void)stream_flush(s);
    }
    if (s->fd >= 0)
        close(s->fd);
    stream_release(sp);
}

int stream_fd(const struct stream *s)
{
    return s->fd;
}

static void stream_fd_nonblock(int fd, bool on)
{
    int fl;

    if (fd < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
        return;
    if (on && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    else if (!on && (fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

void stream_set_nonblock(struct stream *s, bool on)
{
    s->nonblock = on;
    /* Pipes ignore MSG_DONTWAIT; replaced I/O on a socket keeps the
     * descriptor non-blocking whatever the mode (see the file header). */
    if (on || !(s->custom_io && s->sock == 1))
        stream_fd_nonblock(s->fd, on);
}

void stream_set_timeout(struct stream *s, int ms)
{
    s->timeout_ms = ms > 0 ? ms : 0;
}

void stream_set_deadline(struct stream *s, int ms, size_t min_bytes_per_s)
{
    if (ms <= 0) {
        s->dl_start = 0;
        return;
    }
    s->dl_start = stream_now();
    s->dl_ms = (uint64_t)ms;
    s->dl_rate = min_bytes_per_s;
    s->dl_bytes0 = s->bytes_in + s->bytes_out;
}

/* Milliseconds the deadline still allows (may be <= 0); INT64_MAX if none. */
static int64_t stream_deadline_left(const struct stream *s, uint64_t now)
{
    uint64_t end;

    if (s->dl_start == 0)
        return INT64_MAX;
    end = s->dl_start + s->dl_ms;
    if (s->dl_rate > 0) {
        uint64_t moved = s->bytes_in + s->bytes_out - s->dl_bytes0;
        end += moved * 1000 / s->dl_rate;
    }
    return (int64_t)end - (int64_t)now;
}

/* Wait until fd is ready for events or the time allowed runs out.
 * Returns 0 ready, -1 failed (error recorded). */
static int stream_wait(struct stream *s, short events)
{
    uint64_t start = stream_now(), now = start;
    struct pollfd pfd;
    int64_t left;
    int r, ms;

    if (s->fd < 0) {
        /* Replaced I/O without a descriptor: nothing to wait on. */
        stream_fail(s, STREAM_ERR_IO, EAGAIN);
        return -1;
    }
    for (;;) {
        left = stream_deadline_left(s, now);
        if (s->timeout_ms > 0) {
            int64_t t = (int64_t)start + s->timeout_ms - (int64_t)now;
            if (t < left)
                left = t;
        }
        if (left <= 0) {
            stream_fail(s, STREAM_ERR_TIMEOUT, ETIMEDOUT);
            return -1;
        }
        ms = left == INT64_MAX ? -1 : left > INT32_MAX ? INT32_MAX : (int)left;
        pfd.fd = s->fd;
        pfd.events = events;
        pfd.revents = 0;
        r = poll(&pfd, 1, ms);
        if (r > 0)
            return 0;           /* errors and hangups show in the I/O call */
        if (r < 0 && errno != EINTR) {
            stream_fail(s, STREAM_ERR_IO, errno);
            return -1;
        }
        now = stream_now();
    }
}

/* Whether to try the I/O call before polling (see the file header). */
static bool stream_try_first(const struct stream *s)
{
    return s->nonblock || s->sock == 1 || s->sock == 2 || s->fd < 0;
}

/* Read more input into ibuf.  Returns bytes read, 0 EOF, -1 error,
 * STREAM_AGAIN. */
static ssize_t stream_fill(struct stream *s)
{
    bool poll_first;
    ssize_t n;

    if (stream_dead(s))
        return -1;
    if (s->eof)
        return 0;
    if (s->ipos == s->ilen) {
        s->ipos = s->ilen = 0;
    } else if (s->isize - s->ilen < STREAM_CHUNK && s->ipos > 0) {
        memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
        s->ilen -= s->ipos;
        s->ipos = 0;
    }
    if (s->isize - s->ilen < STREAM_CHUNK) {
        s->isize = s->isize * 2 >= s->ilen + STREAM_CHUNK ? s->isize * 2 : s->ilen + STREAM_CHUNK;
        s->ibuf = xrealloc(s->ibuf, s->isize);
    }
    poll_first = !stream_try_first(s);
    for (;;) {
        if (poll_first && stream_wait(s, POLLIN) < 0)
            return -1;
        n = s->rd(s->ctx, s->ibuf + s->ilen, s->isize - s->ilen);
        if (n > 0) {
            s->ilen += (size_t)n;
            s->bytes_in += (size_t)n;
            return n;
        }
        if (n == 0) {
            s->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (s->nonblock)
                return STREAM_AGAIN;
            poll_first = true;
            continue;
        }
        stream_fail(s, errno == ECONNRESET ? STREAM_ERR_EOF : STREAM_ERR_IO, errno);
        return -1;
    }
}

int stream_read_line(struct stream *s, struct strbuf *line, size_t max)
{
    size_t avail, look;
    const char *nl;
    ssize_t r;

    strbuf_reset(line);
    if (s->err != STREAM_ERR_NONE)
        return -1;
    if (max == 0)
        max = SIZE_MAX - 1;
    for (;;) {
        avail = s->ilen - s->ipos;
        look = avail < max ? avail : max;
        nl = memchr(s->ibuf + s->ipos, '\n', look);
        if (nl != NULL) {
            size_t n = (size_t)(nl - (s->ibuf + s->ipos)) + 1;
            if (strbuf_setn(line, s->ibuf + s->ipos, n) < 0) {
                stream_fail(s, STREAM_ERR_TOOLONG, EMSGSIZE);
                return -1;
            }
            s->ipos += n;
            return 1;
        }
        if (avail > max) {
            /* The line stays unread for stream_skip_line(). */
            stream_fail(s, STREAM_ERR_TOOLONG, EMSGSIZE);
            return -1;
        }
        r = stream_fill(s);
        if (r > 0)
            continue;
        if (r == 0) {
            if (avail == 0)
                return 0;
            if (strbuf_setn(line, s->ibuf + s->ipos, avail) < 0) {
                stream_fail(s, STREAM_ERR_TOOLONG, EMSGSIZE);
                return -1;
            }
            s->ipos += avail;
            return 1;
        }
        return (int)r;
    }
}

int stream_skip_line(struct stream *s, size_t max)
{
    size_t avail, take;
    const char *nl;
    ssize_t r;

    if (stream_dead(s))
        return -1;
    /* The caller has answered the over-long line: reading goes on. */
    s->err = STREAM_ERR_NONE;
    s->err_errno = 0;
    if (max == 0)
        max = SIZE_MAX;
    for (;;) {
        avail = s->ilen - s->ipos;
        take = avail < max ? avail : max;
        nl = memchr(s->ibuf + s->ipos, '\n', take);
        if (nl != NULL) {
            s->ipos += (size_t)(nl - (s->ibuf + s->ipos)) + 1;
            return 1;
        }
        s->ipos += take;
        max -= take;
        if (max == 0) {
            /* Still no newline: the line goes on past what we may drop. */
            stream_fail(s, STREAM_ERR_TOOLONG, EMSGSIZE);
            return -1;
        }
        r = stream_fill(s);
        if (r <= 0)
            return (int)r;
    }
}

ssize_t stream_read(struct stream *s, void *buf, size_t len)
{
    size_t avail;
    ssize_t r;

    if (s->err != STREAM_ERR_NONE)
        return -1;
    if (len == 0)
        return 0;
    if (s->ilen == s->ipos) {
        r = stream_fill(s);
        if (r <= 0)
            return r;
    }
    avail = s->ilen - s->ipos;
    if (avail > len)
        avail = len;
    memcpy(buf, s->ibuf + s->ipos, avail);
    s->ipos += avail;
    return (ssize_t)avail;
}

/* Non-blocking streams: buffer len bytes before consuming any, so a
 * caller that gets STREAM_AGAIN can call again with nothing lost.
 * Returns 1, 0 EOF, -1 error, STREAM_AGAIN. */
static int stream_need(struct stream *s, size_t len)
{
    ssize_t r;

    while (s->ilen - s->ipos < len) {
        r = stream_fill(s);
        if (r == 0 && s->ilen > s->ipos)
            stream_fail(s, STREAM_ERR_EOF, 0);
        if (r <= 0)
            return (int)r;
    }
    return 1;
}

int stream_read_exact(struct stream *s, void *buf, size_t len)
{
    size_t done = 0;
    ssize_t r;

    if (s->err != STREAM_ERR_NONE)
        return -1;
    if (s->nonblock) {
        if ((r = stream_need(s, len)) != 1)
            return (int)r;
    }
    while (done < len) {
        r = stream_read(s, (char *)buf + done, len - done);
        if (r == 0) {
            if (done > 0)
                stream_fail(s, STREAM_ERR_EOF, 0);
            return 0;
        }
        if (r < 0)
            return (int)r;
        done += (size_t)r;
    }
    return 1;
}

int stream_read_into(struct stream *s, struct strbuf *sb, size_t n)
{
    size_t avail;
    ssize_t r;

    if (s->err != STREAM_ERR_NONE)
        return -1;
    if (strbuf_reserve(sb, n) < 0) {
        stream_fail(s, STREAM_ERR_TOOLONG, EMSGSIZE);
        return -1;
    }
    if (s->nonblock) {
        if ((r = stream_need(s, n)) != 1)
            return (int)r;
    }
    while (n > 0) {
        if (s->ilen == s->ipos) {
            r = stream_fill(s);
            if (r == 0)
                stream_fail(s, STREAM_ERR_EOF, 0);
            if (r <= 0)
                return (int)r;
        }
        avail = s->ilen - s->ipos;
        if (avail > n)
            avail = n;
        strbuf_appendn(sb, s->ibuf + s->ipos, avail);
        s->ipos += avail;
        n -= avail;
    }
    return 1;
}

size_t stream_pending(const struct stream *s)
{
    return s->ilen - s->ipos;
}

void stream_purge_input(struct stream *s)
{
    s->ipos = s->ilen = 0;
}

int stream_flush(struct stream *s)
{
    bool poll_first;
    ssize_t n;

    if (stream_dead(s))
        return -1;
    poll_first = !stream_try_first(s);
    while (s->opos < s->olen) {
        if (poll_first && stream_wait(s, POLLOUT) < 0)
            return -1;
        n = s->wr(s->ctx, s->obuf + s->opos, s->olen - s->opos);
        if (n > 0) {
            s->opos += (size_t)n;
            s->bytes_out += (size_t)n;
            poll_first = !stream_try_first(s);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (s->nonblock) {
                if (s->opos > 0 && s->opos * 2 >= s->olen) {
                    memmove(s->obuf, s->obuf + s->opos, s->olen - s->opos);
                    s->olen -= s->opos;
                    s->opos = 0;
                }
                return STREAM_AGAIN;
            }
            poll_first = true;
            continue;
        }
        if (n == 0 || errno == EPIPE || errno == ECONNRESET)
            stream_fail(s, STREAM_ERR_EOF, n == 0 ? 0 : errno);
        else
            stream_fail(s, STREAM_ERR_IO, errno);
        return -1;
    }
    s->opos = s->olen = 0;
    return 0;
}

int stream_write(struct stream *s, const void *buf, size_t len)
{
    size_t need;

    if (stream_dead(s))
        return -1;
    if (len == 0)
        return 0;
    if (s->opos > 0 && s->osize - s->olen < len) {
        memmove(s->obuf, s->obuf + s->opos, s->olen - s->opos);
        s->olen -= s->opos;
        s->opos = 0;
    }
    need = s->olen + len;
    if (need > s->osize) {
        size_t size = s->osize;
        while (size < need)
            size *= 2;
        s->obuf = xrealloc(s->obuf, size);
        s->osize = size;
    }
    memcpy(s->obuf + s->olen, buf, len);
    s->olen += len;
    if (!s->nonblock && s->olen - s->opos >= STREAM_OUT_FLUSH)
        return stream_flush(s) < 0 ? -1 : 0;
    return 0;
}

int stream_puts(struct stream *s, const char *str)
{
    return stream_write(s, str, strlen(str));
}

int stream_printf(struct stream *s, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;
    int r;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        stream_fail(s, STREAM_ERR_IO, EINVAL);
        return -1;
    }
    if ((size_t)n < sizeof(small))
        return stream_write(s, small, (size_t)n);
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r = stream_write(s, big, (size_t)n);
    free(big);
    return r;
}

size_t stream_out_pending(const struct stream *s)
{
    return s->olen - s->opos;
}

enum stream_err stream_error(const struct stream *s)
{
    return s->err;
}

int stream_errno(const struct stream *s)
{
    return s->err_errno;
}

const char *stream_strerror(const struct stream *s)
{
    struct stream *w = (struct stream *)s;

    switch (s->err) {
    case STREAM_ERR_NONE:
        return "no error";
    case STREAM_ERR_TIMEOUT:
        return "timeout";
    case STREAM_ERR_TOOLONG:
        return "line too long";
    case STREAM_ERR_EOF:
        if (s->err_errno == 0)
            return "lost connection";
        snprintf(w->errtext, sizeof(w->errtext), "lost connection: %s", strerror(s->err_errno));
        return w->errtext;
    case STREAM_ERR_IO:
        snprintf(w->errtext, sizeof(w->errtext), "I/O error: %s", strerror(s->err_errno));
        return w->errtext;
    }
    return "unknown error";
}

void stream_clear_toolong(struct stream *s)
{
    if (s->err == STREAM_ERR_TOOLONG) {
        s->err = STREAM_ERR_NONE;
        s->err_errno = 0;
    }
}

void stream_set_io(struct stream *s, stream_read_fn *rd, stream_write_fn *wr, void *ctx)
{
    s->rd = rd;
    s->wr = wr;
    s->ctx = ctx;
    s->custom_io = true;
    /* Only a socket: a pipe or terminal shares its flags with other
     * processes (stdin of a stand-alone daemon), and is polled first. */
    if (s->sock == 1)
        stream_fd_nonblock(s->fd, true);
}

size_t stream_bytes_in(const struct stream *s)
{
    return s->bytes_in;
}

size_t stream_bytes_out(const struct stream *s)
{
    return s->bytes_out;
}
