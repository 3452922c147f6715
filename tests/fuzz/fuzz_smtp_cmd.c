/*
 * fuzz_smtp_cmd.c - libFuzzer target for the SMTP command-line parser.
 *
 * The first byte chooses the line bound and the MAIL/RCPT options; the
 * rest is a client's byte stream.  It is split into lines with
 * smtp_line_find() as smtpd does, each line classified with
 * smtp_line_check(), parsed with smtp_cmd_parse(), and MAIL/RCPT
 * arguments with smtp_parse_mail()/smtp_parse_rcpt(), BDAT with
 * smtp_parse_bdat(), HELO names with smtp_helo_valid(); every error reply is
 * formatted with its reason.  No state is kept between inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "smtp_syntax.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64), *reply = strbuf_new(128);
    struct smtp_addr addr;
    struct smtp_params params;
    size_t max, pos = 1;
    int opts;

    if (size == 0)
        goto out;
    max = (data[0] & 0x80) ? 2048 : SMTP_CMD_LINE_MIN;
    opts = data[0] & 0x7f;
    smtp_addr_init(&addr);
    smtp_params_init(&params);
    while (pos < size) {
        const char *buf = (const char *)data + pos;
        size_t n, content;
        struct smtp_cmd cmd;
        enum smtp_find_status fs = smtp_line_find(buf, size - pos, max, &n);
        enum smtp_reply_id r;

        if (fs == SMTP_FIND_TOOLONG) {
            /* smtpd skips to the next LF after a 500 reply */
            const char *nl = memchr(buf, '\n', size - pos);
            pos = nl == NULL ? size : (size_t)(nl - (const char *)data) + 1;
            continue;
        }
        if (fs == SMTP_FIND_NEED_MORE)
            n = size - pos;
        if (n > max)
            __builtin_trap();
        (void)smtp_line_check(buf, n, &content);
        (void)smtp_line_is_http(buf, n);
        /* an exact-size copy without NUL: ASan sees any read past len */
        char *exact = xmalloc(content > 0 ? content : 1);
        memcpy(exact, buf, content);
        pos += n;
        strbuf_reset(why);
        r = smtp_cmd_parse(exact, content, &cmd, why);
        if (r == SMTP_R_NONE && (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)) {
            r = (cmd.verb == SMTP_VERB_MAIL ? smtp_parse_mail : smtp_parse_rcpt)(
                cmd.args, cmd.args_len, opts, &addr, &params, why);
            if (r == SMTP_R_NONE) {
                /* invariants smtpd relies on */
                if ((addr.flags & SMTP_ADDR_NULL) && strbuf_len(addr.addr) != 0)
                    __builtin_trap();
                if ((opts & SMTP_OPT_STRICT) && (addr.flags & SMTP_ADDR_LENIENT))
                    __builtin_trap();
            }
        }
        if (r == SMTP_R_NONE && cmd.verb == SMTP_VERB_BDAT) {
            uint64_t chunk;
            bool last;
            r = smtp_parse_bdat(cmd.args, cmd.args_len, &chunk, &last, why);
        }
        if (r == SMTP_R_NONE && (cmd.verb == SMTP_VERB_HELO || cmd.verb == SMTP_VERB_EHLO
                                 || cmd.verb == SMTP_VERB_LHLO))
            (void)smtp_helo_valid(cmd.args, cmd.args_len, (opts & SMTP_OPT_SMTPUTF8) != 0);
        if (r != SMTP_R_NONE && strbuf_len(why) == 0)
            __builtin_trap();
        free(exact);
        smtp_reply_format(reply, r, strbuf_str(why));
        if (strbuf_len(reply) > SMTP_REPLY_LINE_MAX)
            __builtin_trap();
    }
    smtp_addr_free(&addr);
    smtp_params_free(&params);
out:
    strbuf_free(&why);
    strbuf_free(&reply);
    return 0;
}
