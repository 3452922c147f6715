/*
 * test_stream.c - unit tests for lib/stream.c.
 *
 * Memory streams and replaced I/O for line splitting at every split point,
 * over-long lines and EOF; socketpairs and pipes for the timeout, deadline,
 * non-blocking and broken-pipe cases (a silent peer, timeouts of 100-200 ms).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream.h"
#include "strbuf.h"

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Replaced I/O: hand out the input at most `chunk` bytes per call. */
struct chunked {
    const char *data;
    size_t len, pos, chunk;
    struct strbuf *out;
    int calls;
};

static ssize_t chunked_read(void *ctx, void *buf, size_t len)
{
    struct chunked *c = ctx;
    size_t n = c->len - c->pos;

    c->calls++;
    if (n > c->chunk)
        n = c->chunk;
    if (n > len)
        n = len;
    memcpy(buf, c->data + c->pos, n);
    c->pos += n;
    return (ssize_t)n;
}

/* Output through the replaced writer is upper-cased, two bytes a call. */
static ssize_t chunked_write(void *ctx, const void *buf, size_t len)
{
    struct chunked *c = ctx;
    const char *p = buf;
    size_t n = len < 2 ? len : 2;

    c->calls++;
    for (size_t i = 0; i < n; i++)
        strbuf_appendc(c->out, (p[i] >= 'a' && p[i] <= 'z') ? p[i] - 32 : p[i]);
    return (ssize_t)n;
}

/* Read every line of a stream into one "|"-joined strbuf; "<E>" marks EOF. */
static void read_all_lines(struct stream *s, size_t max, struct strbuf *got)
{
    struct strbuf *line = strbuf_new(16);
    int r;

    for (int i = 0; i < 100; i++) {
        r = stream_read_line(s, line, max);
        if (r == 1) {
            strbuf_appendn(got, strbuf_str(line), strbuf_len(line));
            strbuf_append(got, "|");
        } else if (r == 0) {
            strbuf_append(got, "<E>");
            break;
        } else if (r == -1 && stream_error(s) == STREAM_ERR_TOOLONG) {
            strbuf_append(got, "<L>|");
            r = stream_skip_line(s, 0);
            if (r != 1) {
                strbuf_append(got, r == 0 ? "<E>" : "<S>");
                break;
            }
        } else {
            strbuf_appendf(got, "<R%d>", r);
            break;
        }
    }
    strbuf_free(&line);
}

struct line_case {
    const char *name;
    const char *input;
    size_t max;
    const char *expect;
    size_t inlen, explen;   /* 0: strlen (set for cases holding a NUL) */
};

static const struct line_case line_cases[] = {
    { "empty", "", 64, "<E>", 0, 0 },
    { "one crlf", "HELO x\r\n", 64, "HELO x\r\n|<E>", 0, 0 },
    { "two lines", "a\nbb\n", 64, "a\n|bb\n|<E>", 0, 0 },
    { "eof mid line", "abc\ndef", 64, "abc\n|def|<E>", 0, 0 },
    { "empty lines", "\n\n\r\n", 64, "\n|\n|\r\n|<E>", 0, 0 },
    { "exactly max", "abc\nxy\n", 4, "abc\n|xy\n|<E>", 0, 0 },
    { "one over max", "abcd\nxy\n", 4, "<L>|xy\n|<E>", 0, 0 },
    { "far over max", "abcdefghijklmnopqrstuvwxyz\nok\n", 4, "<L>|ok\n|<E>", 0, 0 },
    { "max at eof", "abcd", 4, "abcd|<E>", 0, 0 },
    { "over max at eof", "abcde", 4, "<L>|<E>", 0, 0 },
    { "long then short", "0123456789\n01\n0123456789\n", 5, "<L>|01\n|<L>|<E>", 0, 0 },
    { "nul inside", "a\0b\n", 64, "a\0b\n|<E>", 4, 8 },
};

static void expect_lines(const struct line_case *c, struct stream *s, const char *how)
{
    struct strbuf *got = strbuf_new(64);
    size_t explen = c->explen ? c->explen : strlen(c->expect);

    read_all_lines(s, c->max, got);
    if (strbuf_len(got) != explen || memcmp(strbuf_str(got), c->expect, explen) != 0)
        fail_msg("case %s (%s): got \"%s\", want \"%s\"", c->name, how, strbuf_str(got), c->expect);
    strbuf_free(&got);
}

static size_t case_len(const struct line_case *c)
{
    return c->inlen ? c->inlen : strlen(c->input);
}

static void test_lines_memory(void **state)
{
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];
        struct strbuf *in = strbuf_new(64);
        struct stream *s;

        strbuf_setn(in, c->input, case_len(c));
        s = stream_memopen(in, NULL);
        expect_lines(c, s, "memory");
        stream_close(&s);
        assert_null(s);
        strbuf_free(&in);
    }
}

/* Every chunk size, so each line boundary falls at every split point. */
static void test_lines_every_split(void **state)
{
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];
        size_t len = case_len(c);

        for (size_t chunk = 1; chunk <= len + 1; chunk++) {
            struct chunked ck = { c->input, len, 0, chunk, NULL, 0 };
            struct stream *s = stream_memopen(NULL, NULL);
            char how[32];

            stream_set_io(s, chunked_read, chunked_write, &ck);
            snprintf(how, sizeof(how), "chunk %zu", chunk);
            expect_lines(c, s, how);
            stream_close(&s);
        }
    }
}

/* Non-blocking socket: the first part of the input, then the rest, for
 * every split point; the reader sees AGAIN until the newline arrives. */
static void test_nonblock_split(void **state)
{
    const char *msg = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n";
    size_t len = strlen(msg);
    struct strbuf *line = strbuf_new(64);

    for (size_t cut = 0; cut <= len; cut++) {
        int sv[2];
        struct stream *s;
        int r;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        s = stream_fdopen(sv[0]);
        stream_set_nonblock(s, true);
        assert_int_equal(write(sv[1], msg, cut), (ssize_t)cut);
        r = stream_read_line(s, line, 64);
        if (cut < 17) {
            assert_int_equal(r, STREAM_AGAIN);
        } else {
            assert_int_equal(r, 1);
            assert_string_equal(strbuf_str(line), "MAIL FROM:<a@b>\r\n");
            r = stream_read_line(s, line, 64);
            assert_int_equal(r, cut == len ? 1 : STREAM_AGAIN);
        }
        assert_int_equal(write(sv[1], msg + cut, len - cut), (ssize_t)(len - cut));
        close(sv[1]);
        if (cut < 17) {
            assert_int_equal(stream_read_line(s, line, 64), 1);
            assert_string_equal(strbuf_str(line), "MAIL FROM:<a@b>\r\n");
        }
        if (cut < len) {
            assert_int_equal(stream_read_line(s, line, 64), 1);
            assert_string_equal(strbuf_str(line), "RCPT TO:<c@d>\r\n");
        }
        assert_int_equal(stream_read_line(s, line, 64), 0);
        assert_int_equal(stream_error(s), STREAM_ERR_NONE);
        stream_close(&s);
    }
    strbuf_free(&line);
}

static void test_toolong_sticky(void **state)
{
    struct strbuf *in = strbuf_new(64), *out = strbuf_new(64);
    struct strbuf *line = strbuf_new(64);
    struct stream *s;

    strbuf_set(in, "0123456789\nnext\n");
    s = stream_memopen(in, out);
    assert_int_equal(stream_read_line(s, line, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TOOLONG);
    assert_string_equal(stream_strerror(s), "line too long");
    assert_int_equal(strbuf_len(line), 0);
    /* The long line is still there, and reads fail until it is handled. */
    assert_int_equal(stream_pending(s), 16);
    assert_int_equal(stream_read_line(s, line, 64), -1);
    /* Writing the protocol's answer still works. */
    assert_int_equal(stream_puts(s, "500 too long\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_string_equal(strbuf_str(out), "500 too long\r\n");
    stream_clear_toolong(s);
    assert_int_equal(stream_error(s), STREAM_ERR_NONE);
    /* Cleared without skipping: the whole line is read with a larger max. */
    assert_int_equal(stream_read_line(s, line, 64), 1);
    assert_string_equal(strbuf_str(line), "0123456789\n");
    stream_close(&s);

    /* skip_line with a bound smaller than the rest of the line. */
    strbuf_set(in, "0123456789abcdef\nok\n");
    s = stream_memopen(in, NULL);
    assert_int_equal(stream_read_line(s, line, 4), -1);
    assert_int_equal(stream_skip_line(s, 5), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TOOLONG);
    assert_int_equal(stream_skip_line(s, 100), 1);
    assert_int_equal(stream_read_line(s, line, 4), 1);
    assert_string_equal(strbuf_str(line), "ok\n");
    /* skip_line at EOF. */
    assert_int_equal(stream_skip_line(s, 100), 0);
    stream_close(&s);

    strbuf_free(&in);
    strbuf_free(&out);
    strbuf_free(&line);
}

static void test_timeout(void **state)
{
    struct strbuf *line = strbuf_new(64);
    int sv[2];
    struct stream *s;
    uint64_t t0, dt;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_timeout(s, 100);
    assert_int_equal(write(sv[1], "partial", 7), 7);
    t0 = now_ms();
    assert_int_equal(stream_read_line(s, line, 64), -1);
    dt = now_ms() - t0;
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_string_equal(stream_strerror(s), "timeout");
    assert_true(dt >= 90 && dt < 2000);
    /* Sticky: every later call fails at once. */
    t0 = now_ms();
    assert_int_equal(stream_read_line(s, line, 64), -1);
    assert_int_equal(stream_puts(s, "x"), -1);
    assert_int_equal(stream_flush(s), -1);
    stream_clear_toolong(s);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 50);
    stream_close(&s);
    close(sv[1]);
    strbuf_free(&line);
}

static void test_deadline(void **state)
{
    char buf[300];
    int sv[2];
    struct stream *s;
    uint64_t t0, dt;

    /* A fixed deadline: 150 ms for the whole exchange, no per-call limit. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_deadline(s, 150, 0);
    t0 = now_ms();
    assert_int_equal(stream_read(s, buf, 1), -1);
    dt = now_ms() - t0;
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(dt >= 140 && dt < 2000);
    stream_close(&s);
    close(sv[1]);

    /* With a minimum rate of 1000 bytes/s, 200 bytes moved earn 200 ms. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    memset(buf, 'x', 200);
    assert_int_equal(write(sv[1], buf, 200), 200);
    t0 = now_ms();
    stream_set_deadline(s, 100, 1000);
    assert_int_equal(stream_read_exact(s, buf, 200), 1);
    assert_int_equal(stream_bytes_in(s), 200);
    assert_int_equal(stream_read(s, buf, 1), -1);
    dt = now_ms() - t0;
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(dt >= 280 && dt < 2000);
    stream_close(&s);
    close(sv[1]);

    /* Clearing the deadline: a per-call timeout alone applies again. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_deadline(s, 10, 0);
    stream_set_deadline(s, 0, 0);
    stream_set_timeout(s, 120);
    t0 = now_ms();
    assert_int_equal(stream_read(s, buf, 1), -1);
    assert_true(now_ms() - t0 >= 110);
    stream_close(&s);
    close(sv[1]);
}

static void test_nonblock_flush(void **state)
{
    static char big[1 << 16];
    char sink[1 << 16];
    int sv[2];
    struct stream *s;
    size_t total = 0, drained = 0;
    int r = 0;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_nonblock(s, true);
    memset(big, 'y', sizeof(big));
    /* Write until the kernel buffer is full; nothing fails for EAGAIN. */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(stream_write(s, big, sizeof(big)), 0);
        total += sizeof(big);
        r = stream_flush(s);
        if (r == STREAM_AGAIN)
            break;
        assert_int_equal(r, 0);
    }
    assert_int_equal(r, STREAM_AGAIN);
    assert_true(stream_out_pending(s) > 0);
    assert_int_equal(stream_error(s), STREAM_ERR_NONE);
    /* Drain from the other end until the stream has written everything. */
    for (int i = 0; i < 100000 && drained < total; i++) {
        ssize_t n = read(sv[1], sink, sizeof(sink));
        assert_true(n > 0);
        drained += (size_t)n;
        r = stream_flush(s);
        assert_true(r == 0 || r == STREAM_AGAIN);
    }
    assert_int_equal(drained, total);
    assert_int_equal(stream_out_pending(s), 0);
    assert_int_equal(stream_bytes_out(s), total);
    stream_close(&s);
    close(sv[1]);

    /* Closing a non-blocking stream with a timeout waits that long for
     * its last output: a silent peer costs the timeout, not forever. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_nonblock(s, true);
    stream_set_timeout(s, 100);
    for (int i = 0; i < 200 && stream_flush(s) != STREAM_AGAIN; i++)
        assert_int_equal(stream_write(s, big, sizeof(big)), 0);
    assert_true(stream_out_pending(s) > 0);
    uint64_t t0 = now_ms();
    stream_close(&s);
    assert_true(now_ms() - t0 >= 90 && now_ms() - t0 < 2000);
    close(sv[1]);
}

static void test_nonblock_exact(void **state)
{
    struct strbuf *sb = strbuf_new(16);
    char buf[8];
    int sv[2];
    struct stream *s;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_nonblock(s, true);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    /* Not enough yet: nothing is consumed. */
    assert_int_equal(stream_read_exact(s, buf, 5), STREAM_AGAIN);
    assert_int_equal(stream_pending(s), 3);
    assert_int_equal(write(sv[1], "defgh", 5), 5);
    assert_int_equal(stream_read_exact(s, buf, 5), 1);
    assert_memory_equal(buf, "abcde", 5);
    assert_int_equal(stream_read_into(s, sb, 4), STREAM_AGAIN);
    close(sv[1]);
    assert_int_equal(stream_read_into(s, sb, 4), 0);
    assert_int_equal(stream_error(s), STREAM_ERR_EOF);
    stream_close(&s);
    strbuf_free(&sb);
}

static void test_purge_and_reads(void **state)
{
    struct strbuf *in = strbuf_new(64), *sb = strbuf_new(8);
    struct strbuf *line = strbuf_new(8);
    struct stream *s;
    char buf[16];

    strbuf_set(in, "line1\nline2\nline3\n");
    s = stream_memopen(in, NULL);
    assert_int_equal(stream_read_line(s, line, 64), 1);
    assert_string_equal(strbuf_str(line), "line1\n");
    assert_int_equal(stream_pending(s), 12);
    stream_purge_input(s);
    assert_int_equal(stream_pending(s), 0);
    assert_int_equal(stream_read_line(s, line, 64), 0);
    stream_close(&s);

    strbuf_set(in, "0123456789");
    s = stream_memopen(in, NULL);
    assert_int_equal(stream_read(s, buf, 3), 3);
    assert_memory_equal(buf, "012", 3);
    assert_int_equal(stream_read_exact(s, buf, 4), 1);
    assert_memory_equal(buf, "3456", 4);
    assert_int_equal(stream_read_into(s, sb, 2), 1);
    assert_string_equal(strbuf_str(sb), "78");
    /* Two bytes left: exact 3 hits EOF in the middle. */
    assert_int_equal(stream_read_exact(s, buf, 3), 0);
    assert_int_equal(stream_error(s), STREAM_ERR_EOF);
    assert_int_equal(stream_read(s, buf, 1), -1);
    stream_close(&s);

    /* read_into refuses to pass the strbuf's maximum. */
    strbuf_set(in, "0123456789");
    strbuf_reset(sb);
    strbuf_set_max(sb, 4);
    s = stream_memopen(in, NULL);
    assert_int_equal(stream_read_into(s, sb, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TOOLONG);
    stream_close(&s);
    strbuf_free(&in);
    strbuf_free(&sb);
    strbuf_free(&line);
}

static void test_write_memory(void **state)
{
    struct strbuf *out = strbuf_new(8);
    struct stream *s = stream_memopen(NULL, out);
    char big[3000];

    assert_int_equal(stream_printf(s, "%d %s\r\n", 250, "ok"), 0);
    assert_int_equal(strbuf_len(out), 0);
    assert_int_equal(stream_out_pending(s), 8);
    assert_int_equal(stream_flush(s), 0);
    assert_string_equal(strbuf_str(out), "250 ok\r\n");
    memset(big, 'z', sizeof(big));
    /* printf longer than its stack buffer. */
    assert_int_equal(stream_printf(s, "%.*s", (int)sizeof(big), big), 0);
    stream_close(&s);   /* flushes */
    assert_int_equal(strbuf_len(out), 8 + sizeof(big));

    /* An output strbuf at its maximum is a sticky I/O error. */
    strbuf_reset(out);
    strbuf_set_max(out, 10);
    s = stream_memopen(NULL, out);
    assert_int_equal(stream_puts(s, "0123456789abc"), 0);
    assert_int_equal(stream_flush(s), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_IO);
    assert_int_equal(stream_errno(s), ENOSPC);
    assert_non_null(strstr(stream_strerror(s), "I/O error"));
    assert_int_equal(stream_puts(s, "x"), -1);
    stream_close(&s);
    strbuf_free(&out);
}

static void test_custom_io(void **state)
{
    struct strbuf *out = strbuf_new(8), *line = strbuf_new(8);
    struct chunked ck = { "abc\ndef\n", 8, 0, 3, out, 0 };
    struct stream *s = stream_memopen(NULL, NULL);

    stream_set_io(s, chunked_read, chunked_write, &ck);
    assert_int_equal(stream_read_line(s, line, 64), 1);
    assert_string_equal(strbuf_str(line), "abc\n");
    assert_int_equal(stream_puts(s, "hello, world"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_string_equal(strbuf_str(out), "HELLO, WORLD");
    assert_int_equal(stream_bytes_out(s), 12);
    assert_true(ck.calls >= 6 + 2);
    stream_close(&s);
    strbuf_free(&out);
    strbuf_free(&line);
}

/* Replaced I/O straight over a descriptor, as a TLS layer does. */
static ssize_t fd_read_fn(void *ctx, void *buf, size_t len)
{
    return read(*(int *)ctx, buf, len);
}

static ssize_t fd_write_fn(void *ctx, const void *buf, size_t len)
{
    return write(*(int *)ctx, buf, len);
}

static void test_custom_io_timeout(void **state)
{
    struct strbuf *line = strbuf_new(8);
    int sv[2], pfd[2];
    struct stream *s;
    uint64_t t0;

    /* A socket: the descriptor goes non-blocking, EAGAIN is polled with
     * the timeout. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    stream_set_io(s, fd_read_fn, fd_write_fn, &sv[0]);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    stream_set_timeout(s, 100);
    assert_int_equal(write(sv[1], "hi\n", 3), 3);
    assert_int_equal(stream_read_line(s, line, 8), 1);
    assert_string_equal(strbuf_str(line), "hi\n");
    t0 = now_ms();
    assert_int_equal(stream_read_line(s, line, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 90);
    stream_close(&s);
    close(sv[1]);

    /* A pipe keeps its flags (they are shared) and is polled first. */
    assert_int_equal(pipe(pfd), 0);
    s = stream_fdopen(pfd[0]);
    stream_set_io(s, fd_read_fn, fd_write_fn, &pfd[0]);
    assert_false(fcntl(pfd[0], F_GETFL) & O_NONBLOCK);
    stream_set_timeout(s, 100);
    t0 = now_ms();
    assert_int_equal(stream_read_line(s, line, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 90);
    stream_close(&s);
    close(pfd[1]);
    strbuf_free(&line);
}

static void test_broken_pipe(void **state)
{
    int pfd[2], sv[2];
    struct stream *s;

    /* A pipe with no reader: EPIPE, never a SIGPIPE that kills us. */
    assert_int_equal(pipe(pfd), 0);
    close(pfd[0]);
    s = stream_fdopen(pfd[1]);
    assert_int_equal(stream_puts(s, "hello\n"), 0);
    assert_int_equal(stream_flush(s), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_EOF);
    assert_int_equal(stream_errno(s), EPIPE);
    assert_non_null(strstr(stream_strerror(s), "lost connection"));
    stream_close(&s);

    /* The same on a socket whose peer is gone. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    s = stream_fdopen(sv[0]);
    assert_int_equal(stream_puts(s, "hello\n"), 0);
    assert_int_equal(stream_flush(s), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_EOF);
    stream_close(&s);

    /* No SIGPIPE left pending either. */
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
}

static void test_pipe_read(void **state)
{
    struct strbuf *line = strbuf_new(8);
    int pfd[2];
    struct stream *s;

    /* A pipe (not a socket) is polled first: the timeout still holds. */
    assert_int_equal(pipe(pfd), 0);
    s = stream_fdopen(pfd[0]);
    stream_set_timeout(s, 100);
    assert_int_equal(write(pfd[1], "x\n", 2), 2);
    assert_int_equal(stream_read_line(s, line, 8), 1);
    assert_string_equal(strbuf_str(line), "x\n");
    assert_int_equal(stream_read_line(s, line, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    stream_release(&s);
    assert_null(s);
    /* release left the descriptor open. */
    assert_true(fcntl(pfd[0], F_GETFD) >= 0);
    close(pfd[0]);
    close(pfd[1]);
    strbuf_free(&line);
}

/* The very first read or write on a pipe must honour the timeout too. */
static void test_pipe_first_call_timeout(void **state)
{
    static char chunk[65536];
    struct strbuf *line = strbuf_new(8);
    int pfd[2];
    struct stream *s;
    uint64_t t0;
    int r = 0;

    assert_int_equal(pipe(pfd), 0);
    s = stream_fdopen(pfd[0]);
    stream_set_timeout(s, 100);
    t0 = now_ms();
    assert_int_equal(stream_read_line(s, line, 8), -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 90);
    stream_release(&s);     /* the read end stays open, unread */

    /* Nobody reads: the pipe fills and the flush times out. */
    s = stream_fdopen(pfd[1]);
    stream_set_timeout(s, 100);
    for (int i = 0; i < 64 && r == 0; i++)
        r = stream_write(s, chunk, sizeof(chunk));
    if (r == 0)
        r = stream_flush(s);
    assert_int_equal(r, -1);
    assert_int_equal(stream_error(s), STREAM_ERR_TIMEOUT);
    stream_release(&s);
    close(pfd[0]);
    close(pfd[1]);
    strbuf_free(&line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_memory),
        cmocka_unit_test(test_lines_every_split),
        cmocka_unit_test(test_nonblock_split),
        cmocka_unit_test(test_toolong_sticky),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_nonblock_flush),
        cmocka_unit_test(test_nonblock_exact),
        cmocka_unit_test(test_purge_and_reads),
        cmocka_unit_test(test_write_memory),
        cmocka_unit_test(test_custom_io),
        cmocka_unit_test(test_custom_io_timeout),
        cmocka_unit_test(test_broken_pipe),
        cmocka_unit_test(test_pipe_read),
        cmocka_unit_test(test_pipe_first_call_timeout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
