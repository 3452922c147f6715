/*
 * stream.h - the one buffered stream, with deadlines.
 *
 * A stream wraps a descriptor (or a pair of strbufs, for tests) with an input
 * and an output buffer.  Every read and flush waits at most until the
 * stream's deadline; errors are sticky: once a stream has failed, every
 * later call fails at once and stream_error() says why, so a writer may
 * issue many writes and check once at its commit point.
 *
 * Blocking mode (the default; single-client daemons and commands) uses
 * poll(2) internally to honour the deadline.  Non-blocking mode (multi-client
 * daemons under lib/events) never waits: a call that would block returns
 * STREAM_AGAIN and the caller waits for the descriptor with events.h.
 *
 * I/O functions can be replaced (stream_set_io) so TLS plugs in below the
 * buffers; call stream_purge_input() first so nothing read before STARTTLS
 * is processed after it.
 *
 * Details callers rely on:
 * - After STREAM_ERR_TOOLONG reads stay blocked until stream_skip_line or
 *   stream_clear_toolong, but writes still work (to send "500 too long").
 * - max == 0 means no limit for stream_read_line and stream_skip_line.
 * - On a non-blocking stream stream_read_exact and stream_read_into return
 *   STREAM_AGAIN and consume nothing until all the bytes are buffered.
 * - stream_set_io on a socket sets O_NONBLOCK (the deadline is kept by
 *   polling on EAGAIN); pipes keep their flags.
 * - stream_close on a stream with a timeout or deadline waits up to that
 *   limit for its remaining output.
 */
#ifndef FACTEUR_STREAM_H
#define FACTEUR_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

struct stream;

enum stream_err {
    STREAM_ERR_NONE = 0,
    STREAM_ERR_TIMEOUT,     /* deadline passed */
    STREAM_ERR_IO,          /* read/write failed (errno kept in stream_errno) */
    STREAM_ERR_TOOLONG,     /* a line longer than the caller's max */
    STREAM_ERR_EOF,         /* peer closed while a write was pending or a read needed more */
};

/* Return values of the read functions. */
#define STREAM_AGAIN (-2)   /* non-blocking stream: would block, call again later */

/* Low-level I/O, replaceable for TLS.  Same contract as read(2)/write(2):
 * return bytes moved, 0 for EOF (read), -1 with errno (EAGAIN allowed). */
typedef ssize_t stream_read_fn(void *ctx, void *buf, size_t len);
typedef ssize_t stream_write_fn(void *ctx, const void *buf, size_t len);

/* A stream over fd; the stream owns fd and closes it in stream_close(). */
struct stream *stream_fdopen(int fd);
/* A stream reading from `in` (consumed from the front) and appending its
 * output to `out`; either may be NULL.  The caller keeps ownership of both. */
struct stream *stream_memopen(struct strbuf *in, struct strbuf *out);
/* Flush (best effort, within the deadline), close the fd, free, NULL *sp. */
void stream_close(struct stream **sp);
/* Free without flushing or closing the descriptor (after fork, or when the
 * fd was passed on); NULLs *sp. */
void stream_release(struct stream **sp);

int stream_fd(const struct stream *s);
void stream_set_nonblock(struct stream *s, bool on);

/* Each single read or flush may wait at most ms milliseconds (0: forever). */
void stream_set_timeout(struct stream *s, int ms);
/* A deadline for a whole exchange: from now, at most ms milliseconds, and
 * if min_bytes_per_s > 0 the deadline is extended by each byte moved at
 * that rate (Postfix smtpd_min_data_rate).  ms == 0 clears the deadline. */
void stream_set_deadline(struct stream *s, int ms, size_t min_bytes_per_s);

/* Read one line of at most max bytes, terminator included, into `line`
 * (replacing its content).  The line ends with "\n" (callers check for
 * "\r\n" themselves); a last line without newline before EOF is returned
 * as is.  Returns 1 for a line, 0 for EOF with nothing read, -1 for an
 * error (timeout, I/O, or STREAM_ERR_TOOLONG: more than max bytes before
 * the newline; the rest of that line is still unread), STREAM_AGAIN. */
int stream_read_line(struct stream *s, struct strbuf *line, size_t max);
/* After STREAM_ERR_TOOLONG: discard input through the next newline (or
 * up to max bytes).  Returns 1 done, 0 EOF, -1 error, STREAM_AGAIN. */
int stream_skip_line(struct stream *s, size_t max);
/* Read up to len bytes (at least 1 unless EOF): returns bytes, 0 EOF,
 * -1 error, STREAM_AGAIN. */
ssize_t stream_read(struct stream *s, void *buf, size_t len);
/* Read exactly len bytes: 1 done, 0 EOF before len, -1 error. */
int stream_read_exact(struct stream *s, void *buf, size_t len);
/* Append exactly n bytes of input to sb: 1 done, 0 EOF, -1 error. */
int stream_read_into(struct stream *s, struct strbuf *sb, size_t n);
/* Bytes already buffered for reading (pipelined input). */
size_t stream_pending(const struct stream *s);
/* Drop all buffered input (before STARTTLS takes over the descriptor). */
void stream_purge_input(struct stream *s);

/* Buffered output; return 0 or -1 (sticky error).  In non-blocking mode a
 * write never fails for EAGAIN: output is kept until stream_flush(). */
int stream_write(struct stream *s, const void *buf, size_t len);
int stream_puts(struct stream *s, const char *str);
int stream_printf(struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Write out buffered output: 0 done, -1 error, STREAM_AGAIN (non-blocking,
 * some output remains: wait for writability and call again). */
int stream_flush(struct stream *s);
/* Bytes of output not yet written. */
size_t stream_out_pending(const struct stream *s);

/* Sticky error state; stream_strerror() names it for logs. */
enum stream_err stream_error(const struct stream *s);
int stream_errno(const struct stream *s);
const char *stream_strerror(const struct stream *s);
/* Clear STREAM_ERR_TOOLONG only (the protocol answered and goes on). */
void stream_clear_toolong(struct stream *s);

/* Replace the I/O functions (TLS); ctx is passed to them. */
void stream_set_io(struct stream *s, stream_read_fn *rd, stream_write_fn *wr, void *ctx);

/* Bytes read and written so far (for logging and rate limits). */
size_t stream_bytes_in(const struct stream *s);
size_t stream_bytes_out(const struct stream *s);

#endif
