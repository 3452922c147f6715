/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP client's reply parser.
 *
 * The first byte chooses the line bound; the rest is a server's byte
 * stream, cut at each LF and fed to smtp_reply_feed() line by line, as the
 * smtp client does, starting a new reply after each complete or malformed
 * one.  Checks the parser's promises (code range, line count, text size).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_syntax.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    struct smtp_reply r;
    size_t pos = 1;

    if (size == 0) {
        strbuf_free(&why);
        return 0;
    }
    smtp_reply_init(&r, (size_t)data[0] * 8);
    while (pos < size) {
        const char *buf = (const char *)data + pos;
        const char *nl = memchr(buf, '\n', size - pos);
        size_t n = nl == NULL ? size - pos : (size_t)(nl - buf) + 1;
        enum smtp_reply_status st = smtp_reply_feed(&r, buf, n, why);

        pos += n;
        if (st == SMTP_REPLY_MORE)
            continue;
        if (st == SMTP_REPLY_DONE) {
            if (r.code < 200 || r.code > 559 || r.nlines == 0 || r.nlines > SMTP_REPLY_LINES_MAX
                || strbuf_len(r.text) > SMTP_REPLY_TOTAL_MAX)
                __builtin_trap();
            if (r.esc[0] != 0)
                (void)smtp_esc_describe(r.esc);
        } else if (strbuf_len(why) == 0) {
            __builtin_trap();
        }
        smtp_reply_reset(&r);
    }
    smtp_reply_free(&r);
    strbuf_free(&why);
    return 0;
}
