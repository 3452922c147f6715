/*
 * smtp_data.h - the SMTP/LMTP message byte-stream decoder (DATA and BDAT).
 *
 * An incremental, I/O-free parser shared by smtpd and lmtpd.  The daemon
 * reads bytes from its stream however it likes and feeds them here; the
 * decoder hands back message lines through a callback and says when the
 * message (DATA) or the chunk (BDAT) ends, and how many of the bytes fed
 * belonged to it, so pipelined commands after the end stay unread.
 *
 * DATA (RFC 5321 4.1.1.4, 4.5.2): only CR LF "." CR LF ends the message,
 * the start of the data counting as a line start.  A bare LF ends a line
 * for the line callback but never makes "." an end of data, and a bare CR
 * is content: this is what defeats SMTP smuggling, whatever the caller's
 * bare-newline policy.  A line that starts with "." and has more bytes
 * loses that first dot (un-stuffing).
 *
 * BDAT (RFC 3030): each chunk is exactly its announced size, raw (no
 * dot-stuffing, no end marker); lines may span chunks; after the LAST
 * chunk a final line without terminator is delivered with
 * SMTP_DATA_LINE_NO_EOL.
 *
 * Bounds: a line longer than line_max bytes is delivered in pieces of
 * line_max bytes, each but the last flagged SMTP_DATA_LINE_PARTIAL
 * (Postfix's line_length_limit); nothing grows with the input.  Anomalies
 * (bare LF, bare CR, NUL, a split line) are recorded as sticky flags, and
 * the caller decides after the end whether they make the message fail: it
 * must keep reading to the real end either way so that it stays in step
 * with the client.
 */
#ifndef FACTEUR_SMTP_DATA_H
#define FACTEUR_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_DATA_LINE_MIN      16          /* smallest line_max accepted */
#define SMTP_DATA_LINE_MAX      (1 << 20)   /* largest line_max accepted */

/* Per-line flags given to the callback. */
#define SMTP_DATA_LINE_PARTIAL  0x01    /* more of this line follows */
#define SMTP_DATA_LINE_BARE_LF  0x02    /* the line ended in LF without CR */
#define SMTP_DATA_LINE_NO_EOL   0x04    /* BDAT LAST: content ended mid-line */

/* Sticky per-message flags (smtp_data_flags). */
#define SMTP_DATA_SAW_BARE_LF   0x01    /* a LF not preceded by CR */
#define SMTP_DATA_SAW_BARE_CR   0x02    /* a CR not followed by LF */
#define SMTP_DATA_SAW_NUL       0x04    /* a NUL byte */
#define SMTP_DATA_SAW_SPLIT     0x08    /* a line longer than line_max */
#define SMTP_DATA_STOPPED       0x10    /* the callback asked for no more lines */

enum smtp_data_mode { SMTP_DATA_MODE_DOT, SMTP_DATA_MODE_BDAT };

enum smtp_data_status {
    SMTP_DATA_MORE = 0,         /* every byte fed was used: feed more */
    SMTP_DATA_CHUNK_DONE,       /* BDAT: this chunk is complete (not LAST) */
    SMTP_DATA_END,              /* the message is complete */
};

/* One line (or piece), without its terminator and un-dot-stuffed; valid
 * only during the call.  Return 0 to go on; non-zero makes the decoder
 * stop calling for this message (it still consumes bytes to the end and
 * sets SMTP_DATA_STOPPED). */
typedef int smtp_data_line_fn(const char *line, size_t len, unsigned flags, void *ctx);

struct smtp_data;

/* A decoder delivering lines of at most line_max bytes (clamped to
 * SMTP_DATA_LINE_MIN..SMTP_DATA_LINE_MAX) to fn. */
struct smtp_data *smtp_data_new(size_t line_max, smtp_data_line_fn *fn, void *ctx);
/* Free and NULL *dp; dp and *dp may be NULL. */
void smtp_data_free(struct smtp_data **dp);

/* Start a new message in mode: clears flags, octet count and line state.
 * DATA mode is ready for bytes at once; BDAT mode needs smtp_data_chunk. */
void smtp_data_begin(struct smtp_data *d, enum smtp_data_mode mode);
/* BDAT: the next chunk has size bytes; last for BDAT ... LAST.  Returns 0,
 * or -1 (a bug in the caller: not in BDAT mode, a chunk still open, or
 * the message already ended). */
int smtp_data_chunk(struct smtp_data *d, uint64_t size, bool last);

/* Feed len bytes.  *used_r gets how many belong to the message: all of
 * them for SMTP_DATA_MORE; for SMTP_DATA_END (DATA) the bytes through the
 * final ".\r\n", or for BDAT through the end of the chunk.  Feeding after
 * the end, or in BDAT mode without an open chunk, uses nothing and
 * returns SMTP_DATA_END or SMTP_DATA_CHUNK_DONE again. */
enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *buf, size_t len,
                                     size_t *used_r);

/* BDAT: bytes still expected in the open chunk (0 when none is open). */
uint64_t smtp_data_chunk_left(const struct smtp_data *d);
/* True once the message ended (DATA end line, or the LAST chunk). */
bool smtp_data_done(const struct smtp_data *d);
/* SMTP_DATA_SAW_* and SMTP_DATA_STOPPED for this message. */
unsigned smtp_data_flags(const struct smtp_data *d);
/* Bytes of this message on the wire so far (dots and line ends counted,
 * the final ".\r\n" not counted): what message_size_limit compares with. */
uint64_t smtp_data_octets(const struct smtp_data *d);

#endif
