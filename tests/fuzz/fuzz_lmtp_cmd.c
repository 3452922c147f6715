/*
 * fuzz_lmtp_cmd.c - libFuzzer target for lmtpd's LMTP session: the command
 * table and state machine, XQID extraction, pipelining, DATA and BDAT
 * through lib/smtp_data, per-recipient replies.
 *
 * lmtpd's session code is compiled in (it lives in lmtpd/, which the fuzz
 * build does not link) and runs lmtpd_session() on a memory stream holding
 * the input; the userdb and Maildir side is replaced by the fakes below,
 * which answer from the recipient's first letter: 'u' unknown (550), 't'
 * lookup failure (451), 'q' over quota, 'd' deferred at delivery, anything
 * else delivered.  The first input byte picks options (message size limit,
 * quota check at RCPT, SMTPUTF8); the rest is the client's byte stream.
 * Everything is freed per input; a second pass checks lmtpd_mail_xqid on
 * the raw input as MAIL arguments.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lmtpd/lmtpd_session.c"

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int lmtpd_rcpt_resolve(const char *addr, const char *local, const char *domain,
                       struct lmtpd_rcpt **rp, struct strbuf *reply_r)
{
    struct lmtpd_rcpt *r;

    if (local[0] == 'u' || local[0] == 'U') {
        strbuf_printf(reply_r, "550 5.1.1 <%s>: Recipient address rejected", addr);
        return 1;
    }
    if (local[0] == 't') {
        strbuf_set(reply_r, "451 4.3.0 Error: user lookup failed");
        return -1;
    }
    r = xcalloc(1, sizeof(*r));
    r->addr = xstrdup(addr);
    r->user = xstrdup(local);
    r->detail = xstrdup("");
    r->root = xstrdup("/nonexistent");
    r->folder = xstrdup("");
    r->quota_def = xstrdup(local[0] == 'q' ? "1S" : "");
    r->reply = strbuf_new(64);
    r->dir = strbuf_new(16);
    r->name = strbuf_new(16);
    *rp = r;
    return 0;
}

int lmtpd_rcpt_quota(struct lmtpd_rcpt *r, uint64_t size, struct strbuf *reply_r)
{
    if (r->quota_def[0] && size > 1) {
        strbuf_printf(reply_r, "552 5.2.2 <%s>: Mailbox full", r->addr);
        return 1;
    }
    return 0;
}

void lmtpd_deliver(const struct lmtpd_msg *m, struct lmtpd_rcpt **rcpts, size_t n)
{
    /* The message must be what the decoder produced: LF ends only where
     * a line ended, and bounded. */
    if (m->len > LMTPD_MSG_HARD_MAX || (m->len > 0 && m->data == NULL))
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        struct lmtpd_rcpt *r = rcpts[i];

        strbuf_reset(r->reply);
        if (r->quota_def[0] && m->len > 1) {
            r->status = 5;
            strbuf_printf(r->reply, "552 5.2.2 <%s>: Mailbox full", r->addr);
        } else if (r->user[0] == 'd') {
            r->status = 4;
            strbuf_set(r->reply, "451 4.3.0 Error: mailbox write error");
        } else {
            r->status = 0;
            strbuf_printf(r->reply, "250 2.0.0 <%s> Ok: %zu bytes from <%s>", r->addr, m->len,
                          m->sender);
        }
    }
}

void lmtpd_rcpt_free(struct lmtpd_rcpt **rp)
{
    struct lmtpd_rcpt *r = *rp;

    if (r == NULL)
        return;
    free(r->addr);
    free(r->user);
    free(r->detail);
    free(r->root);
    free(r->folder);
    free(r->quota_def);
    strbuf_free(&r->reply);
    strbuf_free(&r->dir);
    strbuf_free(&r->name);
    free(r);
    *rp = NULL;
}

static void fuzz_config(uint8_t opt)
{
    static const char *const sizes[] = {"0", "64", "4096", "10240000"};
    struct strbuf *cf = strbuf_new(256), *why = strbuf_new(64);

    strbuf_printf(cf, "myhostname = fuzz.example\nmessage_size_limit = %s\n"
                  "lmtp_rcpt_check_quota = %s\nsmtputf8_enable = %s\n"
                  "lmtpd_recipient_limit = %d\n",
                  sizes[opt & 3], (opt & 4) ? "yes" : "no", (opt & 8) ? "yes" : "no",
                  (opt & 16) ? 3 : 1000);
    if (conf_load_buffer("fuzz/main.cf", strbuf_str(cf), strbuf_len(cf), why) < 0)
        __builtin_trap();
    strbuf_free(&cf);
    strbuf_free(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *in, *out, *rest, *qid, *why;
    struct stream *s;

    if (size == 0)
        return 0;
    log_init("fuzz_lmtp_cmd", 0);
    fuzz_config(data[0]);
    in = strbuf_new(size);
    out = strbuf_new(1024);
    strbuf_appendn(in, data + 1, size - 1);
    s = stream_memopen(in, out);
    lmtpd_session(s);
    stream_close(&s);
    /* Every reply line the session wrote ends in CRLF. */
    if (strbuf_len(out) < 2 || memcmp(strbuf_str(out) + strbuf_len(out) - 2, "\r\n", 2) != 0)
        __builtin_trap();

    rest = strbuf_new(64);
    qid = strbuf_new(16);
    why = strbuf_new(32);
    if (lmtpd_mail_xqid((const char *)data + 1, size - 1, rest, qid, why) == 0) {
        if (strbuf_len(qid) && !qid_valid(strbuf_str(qid)))
            __builtin_trap();
        if (strbuf_len(rest) > size)
            __builtin_trap();
    }
    strbuf_free(&rest);
    strbuf_free(&qid);
    strbuf_free(&why);
    strbuf_free(&in);
    strbuf_free(&out);
    conf_unload();
    return 0;
}
