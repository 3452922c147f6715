/*
 * fuzz_smtp_data.c - libFuzzer target for the DATA/BDAT decoder.
 *
 * The first input byte picks the mode and line bound, the rest is the
 * message stream.  DATA mode: the input is decoded whole and again in two
 * feeds split at a point taken from the input, and both must give the
 * same lines, end position and flags; no delivered piece exceeds the
 * bound; the end, if any, is right after "\r\n.\r\n" (or ".\r\n" at the
 * start).  BDAT mode: chunk sizes come from the input bytes themselves.
 * Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_data.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    struct strbuf *out;
    size_t line_max;
};

static int sink_line(const char *line, size_t len, unsigned flags, void *ctx)
{
    struct sink *k = ctx;

    if (len > k->line_max)
        __builtin_trap();
    strbuf_appendn(k->out, line, len);
    strbuf_appendc(k->out, (char)('0' + (flags & 7)));
    return strbuf_len(k->out) > (1u << 22);     /* stop: bounded output */
}

static size_t dot_decode(const char *buf, size_t len, size_t line_max, size_t cut,
                         struct strbuf *out, unsigned *flags_r, bool *end_r)
{
    struct sink k = { out, line_max };
    struct smtp_data *d = smtp_data_new(line_max, sink_line, &k);
    size_t used1 = 0, used2 = 0;
    enum smtp_data_status st;

    if (cut > len)
        cut = len;
    st = smtp_data_feed(d, buf, cut, &used1);
    if (st == SMTP_DATA_MORE) {
        if (used1 != cut)
            __builtin_trap();
        st = smtp_data_feed(d, buf + cut, len - cut, &used2);
    }
    *end_r = st == SMTP_DATA_END;
    *flags_r = smtp_data_flags(d);
    if (*end_r != smtp_data_done(d))
        __builtin_trap();
    smtp_data_free(&d);
    return used1 + used2;
}

static void fuzz_dot(const char *buf, size_t len, size_t line_max, size_t cut)
{
    struct strbuf *a = strbuf_new(256), *b = strbuf_new(256);
    unsigned fa, fb;
    bool ea, eb;
    size_t ua = dot_decode(buf, len, line_max, len, a, &fa, &ea);
    size_t ub = dot_decode(buf, len, line_max, cut, b, &fb, &eb);

    if (ua != ub || fa != fb || ea != eb || strbuf_len(a) != strbuf_len(b)
        || memcmp(strbuf_str(a), strbuf_str(b), strbuf_len(a)) != 0)
        __builtin_trap();
    if (ea) {
        if (ua < 3 || memcmp(buf + ua - 3, ".\r\n", 3) != 0)
            __builtin_trap();
        if (ua > 3 && (ua < 5 || memcmp(buf + ua - 5, "\r\n", 2) != 0))
            __builtin_trap();
    } else if (ua != len) {
        __builtin_trap();
    }
    strbuf_free(&a);
    strbuf_free(&b);
}

static void fuzz_bdat(const char *buf, size_t len, size_t line_max)
{
    struct strbuf *out = strbuf_new(256);
    struct sink k = { out, line_max };
    struct smtp_data *d = smtp_data_new(line_max, sink_line, &k);
    size_t pos = 0, used;
    uint64_t total = 0;

    smtp_data_begin(d, SMTP_DATA_MODE_BDAT);
    while (pos < len) {
        size_t n = (unsigned char)buf[pos++] % 64;
        bool last = pos >= len || n == 63;
        enum smtp_data_status st;

        if (smtp_data_chunk(d, n, last) != 0)
            __builtin_trap();
        st = smtp_data_feed(d, buf + pos, len - pos, &used);
        if (used > n || (st != SMTP_DATA_MORE && used != n))
            __builtin_trap();
        pos += used;
        total += used;
        if (st == SMTP_DATA_END || st == SMTP_DATA_MORE)
            break;
    }
    if (smtp_data_octets(d) != total)
        __builtin_trap();
    smtp_data_free(&d);
    strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t line_max, cut;

    if (size < 2)
        return 0;
    line_max = SMTP_DATA_LINE_MIN + (data[0] & 0x3f);
    cut = data[1];
    if (data[0] & 0x80)
        fuzz_bdat((const char *)data + 2, size - 2, line_max);
    else
        fuzz_dot((const char *)data + 2, size - 2, line_max, cut);
    return 0;
}
