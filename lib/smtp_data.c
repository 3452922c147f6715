/*
 * smtp_data.c - the DATA/BDAT byte-stream decoder of smtp_data.h.
 *
 * A byte-level state machine, so that every split of the input into
 * feeds gives the same lines: the only state carried between feeds is the
 * current line piece (at most line_max bytes), whether a CR is pending,
 * whether the piece is the first of its line, and the BDAT chunk count.
 * Runs of ordinary bytes are copied in bulk.  All input is untrusted; the
 * only memory is the one piece buffer allocated at creation.
 */
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "smtp_data.h"

struct smtp_data {
    smtp_data_line_fn *fn;
    void *ctx;
    size_t line_max;
    char *cur;              /* the current piece, line_max bytes allocated */
    size_t cur_len;
    bool first;             /* cur is the first piece of its line */
    bool after_crlf;        /* the line began at the start of data or after CR LF */
    bool pending_cr;        /* the last byte seen was a CR */
    enum smtp_data_mode mode;
    bool chunk_open;
    bool chunk_last;
    uint64_t chunk_left;
    bool done;
    unsigned flags;
    uint64_t octets;
};

struct smtp_data *smtp_data_new(size_t line_max, smtp_data_line_fn *fn, void *ctx)
{
    struct smtp_data *d = xcalloc(1, sizeof(*d));

    if (line_max < SMTP_DATA_LINE_MIN)
        line_max = SMTP_DATA_LINE_MIN;
    if (line_max > SMTP_DATA_LINE_MAX)
        line_max = SMTP_DATA_LINE_MAX;
    d->fn = fn;
    d->ctx = ctx;
    d->line_max = line_max;
    d->cur = xmalloc(line_max);
    smtp_data_begin(d, SMTP_DATA_MODE_DOT);
    return d;
}

void smtp_data_free(struct smtp_data **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    free((*dp)->cur);
    free(*dp);
    *dp = NULL;
}

void smtp_data_begin(struct smtp_data *d, enum smtp_data_mode mode)
{
    d->mode = mode;
    d->cur_len = 0;
    d->first = true;
    d->after_crlf = true;
    d->pending_cr = false;
    d->chunk_open = false;
    d->chunk_last = false;
    d->chunk_left = 0;
    d->done = false;
    d->flags = 0;
    d->octets = 0;
}

int smtp_data_chunk(struct smtp_data *d, uint64_t size, bool last)
{
    if (d->mode != SMTP_DATA_MODE_BDAT || d->chunk_open || d->done)
        return -1;
    d->chunk_open = true;
    d->chunk_last = last;
    d->chunk_left = size;
    return 0;
}

/* Hand the current piece to the callback (un-stuffing a first piece in
 * DATA mode) and start a new one. */
static void data_emit(struct smtp_data *d, unsigned lflags)
{
    const char *p = d->cur;
    size_t n = d->cur_len;

    if (d->mode == SMTP_DATA_MODE_DOT && d->first && n > 1 && p[0] == '.') {
        p++;
        n--;
    }
    if (!(d->flags & SMTP_DATA_STOPPED) && d->fn(p, n, lflags, d->ctx) != 0)
        d->flags |= SMTP_DATA_STOPPED;
    d->cur_len = 0;
    d->first = !(lflags & SMTP_DATA_LINE_PARTIAL);
    if (d->first)
        d->after_crlf = !(lflags & SMTP_DATA_LINE_BARE_LF);
}

/* Append content bytes, emitting a full piece before it would overflow:
 * a piece is emitted only when a byte past it arrives, so a line of exactly
 * line_max bytes is one whole line, not a piece and an empty line. */
static void data_append(struct smtp_data *d, const char *p, size_t n)
{
    while (n > 0) {
        size_t room, take;

        if (d->cur_len == d->line_max) {
            d->flags |= SMTP_DATA_SAW_SPLIT;
            data_emit(d, SMTP_DATA_LINE_PARTIAL);
        }
        room = d->line_max - d->cur_len;
        take = n < room ? n : room;
        if (memchr(p, '\0', take) != NULL)
            d->flags |= SMTP_DATA_SAW_NUL;
        memcpy(d->cur + d->cur_len, p, take);
        d->cur_len += take;
        p += take;
        n -= take;
    }
}

/* Bytes up to the next CR or LF. */
static size_t data_run(const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len && buf[i] != '\r' && buf[i] != '\n')
        i++;
    return i;
}

/* Decode buf[0..len); stops after the end-of-data line in DATA mode.
 * Returns the bytes used and sets *end when the end line was seen. */
static size_t data_decode(struct smtp_data *d, const char *buf, size_t len, bool *end)
{
    size_t i = 0;

    *end = false;
    while (i < len) {
        char c = buf[i];

        if (d->pending_cr) {
            d->pending_cr = false;
            if (c == '\n') {
                i++;
                if (d->mode == SMTP_DATA_MODE_DOT && d->first && d->after_crlf
                    && d->cur_len == 1 && d->cur[0] == '.') {
                    /* CR LF "." CR LF: the only end of data (LF "." CR LF
                     * is not one either). */
                    d->cur_len = 0;
                    *end = true;
                    return i;
                }
                data_emit(d, 0);
                continue;
            }
            /* A CR not followed by LF is content. */
            d->flags |= SMTP_DATA_SAW_BARE_CR;
            data_append(d, "\r", 1);
            continue;       /* c is looked at again */
        }
        if (c == '\r') {
            d->pending_cr = true;
            i++;
            continue;
        }
        if (c == '\n') {
            /* A bare LF ends the line, never the data. */
            d->flags |= SMTP_DATA_SAW_BARE_LF;
            data_emit(d, SMTP_DATA_LINE_BARE_LF);
            i++;
            continue;
        }
        size_t run = data_run(buf + i, len - i);
        data_append(d, buf + i, run);
        i += run;
    }
    return i;
}

/* BDAT LAST: whatever is left of the last line. */
static void data_flush_last(struct smtp_data *d)
{
    if (d->pending_cr) {
        d->pending_cr = false;
        d->flags |= SMTP_DATA_SAW_BARE_CR;
        data_append(d, "\r", 1);
    }
    if (d->cur_len > 0)
        data_emit(d, SMTP_DATA_LINE_NO_EOL);
}

enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *buf, size_t len,
                                     size_t *used_r)
{
    bool end;
    size_t used;

    *used_r = 0;
    if (d->done)
        return SMTP_DATA_END;
    if (d->mode == SMTP_DATA_MODE_DOT) {
        used = data_decode(d, buf, len, &end);
        d->octets += used;
        *used_r = used;
        if (end) {
            /* The ".\r\n" is the terminator, not message bytes. */
            d->octets -= d->octets >= 3 ? 3 : d->octets;
            d->done = true;
            return SMTP_DATA_END;
        }
        return SMTP_DATA_MORE;
    }
    if (!d->chunk_open)
        return SMTP_DATA_CHUNK_DONE;
    used = len < d->chunk_left ? len : (size_t)d->chunk_left;
    if (used > 0)
        (void)data_decode(d, buf, used, &end);
    d->chunk_left -= used;
    d->octets += used;
    *used_r = used;
    if (d->chunk_left > 0)
        return SMTP_DATA_MORE;
    d->chunk_open = false;
    if (!d->chunk_last)
        return SMTP_DATA_CHUNK_DONE;
    data_flush_last(d);
    d->done = true;
    return SMTP_DATA_END;
}

uint64_t smtp_data_chunk_left(const struct smtp_data *d)
{
    return d->chunk_open ? d->chunk_left : 0;
}

bool smtp_data_done(const struct smtp_data *d)
{
    return d->done;
}

unsigned smtp_data_flags(const struct smtp_data *d)
{
    return d->flags;
}

uint64_t smtp_data_octets(const struct smtp_data *d)
{
    return d->octets;
}
