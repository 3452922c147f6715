/*
 * smtpd_data.c - DATA and BDAT: message bytes into the queue file.
 *
 * The bytes are decoded by lib/smtp_data (dot-unstuffing, the one true
 * end of data CRLF.CRLF, bare CR/LF detection, bounded lines, chunk
 * accounting) and each line goes to lib/cleanup, which writes the queue
 * file.  Whatever goes wrong with the content (too big, rejected, a bare
 * newline), the message is read to its real end before the reply, so the
 * client and smtpd stay in step and no message text is ever taken for a
 * command.  The 250 goes out only after cleanup_finish() returned
 * CLEANUP_OK: the file is written, fsynced, renamed into incoming/ and the
 * directory synced; then qmgr is woken.
 *
 * A BDAT whose size cannot be parsed cannot be skipped, so it ends the
 * session; any other refused BDAT still consumes its chunk.
 */
#include <inttypes.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "params.h"
#include "smtp_data.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "tls.h"
#include "trigger.h"

#define DATA_READ_MAX 65536     /* bytes taken from the stream at a time */

/* A decoded line: into the queue file until something says stop. */
static int data_line(const char *line, size_t len, unsigned flags, void *ctx)
{
    struct smtpd_session *s = ctx;

    if (var_message_size_limit > 0
        && smtp_data_octets(s->data) + len > (uint64_t)var_message_size_limit) {
        s->data_toobig = true;
        return 1;
    }
    if (s->cleanup == NULL || cleanup_line(s->cleanup, line, len) < 0) {
        s->cleanup_failed = true;
        return 1;
    }
    return 0;
}

static void data_decoder(struct smtpd_session *s, enum smtp_data_mode mode)
{
    if (s->data == NULL)
        s->data = smtp_data_new((size_t)var_line_length_limit, data_line, s);
    smtp_data_begin(s->data, mode);
}

/* The Received: header, from the client or from what XFORWARD said. */
static void data_received(struct smtpd_session *s)
{
    struct cleanup_received r;
    bool xf = strbuf_len(s->xf_addr) > 0;

    memset(&r, 0, sizeof(r));
    r.helo = xf && strbuf_len(s->xf_helo) ? strbuf_str(s->xf_helo)
                                          : strbuf_len(s->helo) ? strbuf_str(s->helo) : NULL;
    r.client_name = xf && strbuf_len(s->xf_name) ? strbuf_str(s->xf_name) : s->name;
    r.client_addr = xf ? strbuf_str(s->xf_addr) : s->addr[0] ? s->addr : "unknown";
    r.protocol = xf && strbuf_len(s->xf_proto) ? strbuf_str(s->xf_proto) : smtpd_protocol(s);
    r.tls_summary = var_smtpd_tls_received_header ? smtpd_tls_summary(s) : NULL;
    r.sasl_user = strbuf_len(s->sasl_user) ? strbuf_str(s->sasl_user) : NULL;
    r.for_rcpt = s->rcpt_count == 1 ? strbuf_str(s->first_rcpt) : NULL;
    cleanup_add_received(s->cleanup, &r);
}

/* The data restrictions (DATA, or the first BDAT).  0 to go on. */
static int data_check(struct smtpd_session *s)
{
    struct smtpd_check_ctx ctx;

    smtpd_check_ctx_fill(s, &ctx);
    if (smtpd_check(SMTPD_CHECK_DATA, &ctx, s->reply) != 0) {
        smtpd_reply_line(s, strbuf_str(s->reply));
        return -1;
    }
    return 0;
}

/* After the end of the message: decide, queue, reply.  Returns SMTPD_CMD_*. */
static int data_finish(struct smtpd_session *s, const char *cmd)
{
    unsigned flags = smtp_data_flags(s->data);
    uint64_t octets = smtp_data_octets(s->data);
    struct smtpd_check_ctx ctx;
    uint64_t seq = 0;
    int res, ret = SMTPD_CMD_ERR;

    s->where = "END-OF-MESSAGE";
    if ((flags & (SMTP_DATA_SAW_BARE_LF | SMTP_DATA_SAW_BARE_CR))
        && smtpd_g.bare_nl == SMTPD_BARE_NL_REJECT && !s->bare_nl_exempt) {
        smtpd_reply_id(s, SMTP_R_BAD_DATA_END, NULL);
        smtpd_log_reject(s, cmd, strbuf_str(s->reply), NULL);
        smtpd_txn_reset(s);
        /* As Postfix: a client that sends bare newlines is not trusted to
         * frame the next command either. */
        return SMTPD_CMD_CLOSE;
    }
    if (s->data_toobig
        || (var_message_size_limit > 0 && octets > (uint64_t)var_message_size_limit)) {
        smtpd_reply_id(s, SMTP_R_MSG_TOO_BIG, NULL);
        smtpd_log_reject(s, cmd, strbuf_str(s->reply), NULL);
        smtpd_txn_reset(s);
        return SMTPD_CMD_ERR;
    }
    smtpd_check_ctx_fill(s, &ctx);
    ctx.msg_size = (long)octets;
    if (smtpd_check(SMTPD_CHECK_EOD, &ctx, s->reply) != 0) {
        smtpd_reply_line(s, strbuf_str(s->reply));
        smtpd_txn_reset(s);
        return SMTPD_CMD_ERR;
    }
    /* Durability point: with no group, cleanup_finish returns only once
     * the file is fsynced, renamed into incoming/ and incoming/ synced. */
    res = cleanup_finish(s->cleanup, NULL, &seq, s->reply);
    smtpd_reply_line(s, strbuf_str(s->reply));
    switch (res) {
    case CLEANUP_OK:
        trigger_send(smtpd_g.queue_dir, "qmgr", "I", 1);
        ret = SMTPD_CMD_OK;
        break;
    case CLEANUP_DISCARDED:
        ret = SMTPD_CMD_OK;
        break;
    default:
        break;
    }
    smtpd_txn_reset(s);
    return ret;
}

/* A stream failure while reading message bytes: the session ends. */
static int data_lost(struct smtpd_session *s, const char *cmd)
{
    if (stream_error(s->client) == STREAM_ERR_TIMEOUT) {
        smtpd_lost(s, cmd);
    } else {
        log_info("lost connection after %s (%" PRIu64 " bytes) from %s", cmd,
                 s->data ? smtp_data_octets(s->data) : 0, strbuf_str(s->namaddr));
        s->closing = true;
    }
    stream_set_deadline(s->client, 0, 0);
    smtpd_txn_reset(s);
    return SMTPD_CMD_CLOSE;
}

int smtpd_data_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct strbuf *buf;
    enum smtp_data_status st = SMTP_DATA_MORE;
    size_t used;
    int r;

    if (!s->in_mail) {
        smtpd_reply_id(s, SMTP_R_NEED_MAIL, NULL);
        return SMTPD_CMD_ERR;
    }
    if (s->bdat_active) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "DATA during BDAT");
        return SMTPD_CMD_ERR;
    }
    if (s->rcpt_count == 0 || s->cleanup == NULL) {
        smtpd_reply_id(s, SMTP_R_NEED_RCPT, NULL);
        return SMTPD_CMD_ERR;
    }
    if (s->mail_params.body == SMTP_BODY_BINARYMIME) {
        /* RFC 3030 3: BINARYMIME content can only travel in BDAT. */
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "BODY=BINARYMIME requires BDAT");
        return SMTPD_CMD_ERR;
    }
    if (data_check(s) < 0)
        return SMTPD_CMD_ERR;
    data_received(s);
    data_decoder(s, SMTP_DATA_MODE_DOT);
    smtpd_reply_id(s, SMTP_R_DATA_GO, NULL);
    if (smtpd_flush(s) < 0)
        return data_lost(s, "DATA");
    s->where = "DATA";
    /* The whole message within smtpd_timeout, extended at
     * smtpd_min_data_rate bytes per second. */
    stream_set_deadline(s->client, (int)var_smtpd_timeout * 1000,
                        (size_t)var_smtpd_min_data_rate);
    buf = strbuf_new(4096);
    while (st == SMTP_DATA_MORE) {
        r = stream_read_line(s->client, buf, DATA_READ_MAX);
        if (r == 1) {
            st = smtp_data_feed(s->data, strbuf_str(buf), strbuf_len(buf), &used);
            continue;
        }
        if (r < 0 && stream_error(s->client) == STREAM_ERR_TOOLONG) {
            /* A line past DATA_READ_MAX: its first bytes hold no LF, so
             * take them raw; the decoder splits them into pieces. */
            char chunk[4096];
            ssize_t n;

            stream_clear_toolong(s->client);
            n = stream_read(s->client, chunk, sizeof(chunk));
            if (n > 0) {
                st = smtp_data_feed(s->data, chunk, (size_t)n, &used);
                continue;
            }
        }
        strbuf_free(&buf);
        return data_lost(s, "DATA");
    }
    strbuf_free(&buf);
    stream_set_deadline(s->client, 0, 0);
    return data_finish(s, "END-OF-MESSAGE");
}

/* Read and drop size bytes (a refused chunk).  0, or -1 on a stream error. */
static int bdat_skip(struct smtpd_session *s, uint64_t size)
{
    char chunk[8192];

    stream_set_deadline(s->client, (int)var_smtpd_timeout * 1000,
                        (size_t)var_smtpd_min_data_rate);
    while (size > 0) {
        ssize_t n = stream_read(s->client, chunk, size < sizeof(chunk) ? (size_t)size
                                                                       : sizeof(chunk));
        if (n <= 0)
            return -1;
        size -= (uint64_t)n;
    }
    stream_set_deadline(s->client, 0, 0);
    return 0;
}

/* Refuse a chunk whose size is known: skip it, reply, and remember the
 * failure until LAST. */
static int bdat_refuse(struct smtpd_session *s, uint64_t size, bool last,
                       enum smtp_reply_id id, const char *line)
{
    if (bdat_skip(s, size) < 0)
        return data_lost(s, "BDAT");
    if (line)
        smtpd_reply_line(s, line);
    else
        smtpd_reply_id(s, id, NULL);
    if (s->bdat_active && !last)
        s->bdat_failed = true;
    if (last)
        smtpd_txn_reset(s);
    return SMTPD_CMD_ERR;
}

int smtpd_bdat_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    uint64_t size;
    bool last;
    enum smtp_reply_id id;
    enum smtp_data_status st;

    id = smtp_parse_bdat(cmd->args, cmd->args_len, &size, &last, s->why);
    if (id != SMTP_R_NONE) {
        /* Without a size, the chunk cannot be skipped: stop here. */
        smtpd_reply_id(s, id, strbuf_str(s->why));
        log_info("malformed BDAT from %s: closing", strbuf_str(s->namaddr));
        smtpd_txn_reset(s);
        return SMTPD_CMD_CLOSE;
    }
    if (var_message_size_limit > 0
        && (size > (uint64_t)var_message_size_limit
            || (s->data && s->bdat_active
                && smtp_data_octets(s->data) + size > (uint64_t)var_message_size_limit))) {
        /* Reading gigabytes to stay in step is pointless: refuse and end. */
        smtpd_reply_id(s, SMTP_R_MSG_TOO_BIG, NULL);
        smtpd_log_reject(s, "BDAT", strbuf_str(s->reply), NULL);
        smtpd_txn_reset(s);
        return SMTPD_CMD_CLOSE;
    }
    if (smtpd_need_tls(s))
        return bdat_refuse(s, size, last, SMTP_R_TLS_REQUIRED, NULL);
    if (strbuf_len(s->sticky_reject))
        return bdat_refuse(s, size, last, SMTP_R_NONE, strbuf_str(s->sticky_reject));
    if (s->bdat_failed)
        return bdat_refuse(s, size, last, SMTP_R_BAD_SEQUENCE, NULL);
    if (!s->in_mail)
        return bdat_refuse(s, size, last, SMTP_R_NEED_MAIL, NULL);
    if (s->rcpt_count == 0 || s->cleanup == NULL)
        return bdat_refuse(s, size, last, SMTP_R_NEED_RCPT, NULL);
    if (!s->bdat_active) {
        struct smtpd_check_ctx ctx;

        smtpd_check_ctx_fill(s, &ctx);
        if (smtpd_check(SMTPD_CHECK_DATA, &ctx, s->reply) != 0) {
            struct strbuf *line = strbuf_new(strbuf_len(s->reply) + 1);
            int r;

            strbuf_setn(line, strbuf_str(s->reply), strbuf_len(s->reply));
            s->bdat_active = true;
            r = bdat_refuse(s, size, last, SMTP_R_NONE, strbuf_str(line));
            strbuf_free(&line);
            return r;
        }
        data_received(s);
        data_decoder(s, SMTP_DATA_MODE_BDAT);
        s->bdat_active = true;
    }
    s->where = "BDAT";
    if (smtp_data_chunk(s->data, size, last) < 0)
        log_panic("BDAT: decoder refused a chunk in state bdat_active");
    stream_set_deadline(s->client, (int)var_smtpd_timeout * 1000,
                        (size_t)var_smtpd_min_data_rate);
    st = smtp_data_feed(s->data, "", 0, &(size_t){0});
    while (st == SMTP_DATA_MORE) {
        char chunk[8192];
        uint64_t left = smtp_data_chunk_left(s->data);
        size_t used;
        ssize_t n = stream_read(s->client, chunk, left < sizeof(chunk) ? (size_t)left
                                                                      : sizeof(chunk));
        if (n <= 0)
            return data_lost(s, "BDAT");
        st = smtp_data_feed(s->data, chunk, (size_t)n, &used);
    }
    stream_set_deadline(s->client, 0, 0);
    if (st == SMTP_DATA_CHUNK_DONE) {
        smtpd_reply(s, "250 2.0.0 Ok: %" PRIu64 " bytes", size);
        return SMTPD_CMD_OK;
    }
    return data_finish(s, "BDAT");
}
