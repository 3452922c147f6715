/*
 * smtpd_tls.c - STARTTLS (RFC 3207) and wrapper mode (port 465, RFC 8314).
 *
 * The handshake itself is lib/tls.  What this file guarantees: nothing the
 * client sent before the handshake is read after it (tls_server_start
 * purges the stream's input, so a command pipelined after STARTTLS is
 * dropped, never executed as if it came over TLS: the STARTTLS command
 * injection class), and after STARTTLS the session forgets everything it
 * learned in clear text (HELO, SASL, transaction), as RFC 3207 4.2 says.
 */
#include <string.h>

#include "log.h"
#include "params.h"
#include "smtpd.h"
#include "tls.h"

static void tls_log_established(struct smtpd_session *s)
{
    /* Postfix's words: a client certificate makes it Untrusted, or
     * Trusted when it verified against smtpd_tls_CAfile. */
    const char *kind = !tls_conn_peer_cert(s->tls) ? "Anonymous"
                       : tls_conn_peer_verified(s->tls) ? "Trusted" : "Untrusted";

    log_info("%s TLS connection established from %s: %s", kind, strbuf_str(s->namaddr),
             tls_conn_summary(s->tls));
}

int smtpd_tls_wrapper(struct smtpd_session *s)
{
    if (tls_server_start(smtpd_g.tls, s->client, (int)var_smtpd_starttls_timeout * 1000,
                         &s->tls, s->why) < 0) {
        log_info("SSL_accept error from %s: %s", strbuf_str(s->namaddr), strbuf_str(s->why));
        log_info("lost connection after CONNECT from %s", strbuf_str(s->namaddr));
        s->closing = true;
        return -1;
    }
    tls_log_established(s);
    return 0;
}

int smtpd_starttls_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    size_t dropped;

    if (s->tls != NULL) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "TLS already active");
        return SMTPD_CMD_ERR;
    }
    if (smtpd_g.tls == NULL) {
        smtpd_reply_id(s, SMTP_R_NOT_IMPLEMENTED, NULL);
        return SMTPD_CMD_ERR;
    }
    if (!s->esmtp) {
        smtpd_reply_id(s, SMTP_R_NEED_HELO, "send EHLO first");
        return SMTPD_CMD_ERR;
    }
    if (s->in_mail) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "MAIL transaction in progress");
        return SMTPD_CMD_ERR;
    }
    dropped = stream_pending(s->client);
    if (dropped > 0)
        log_info("%s: discarding %zu bytes sent after STARTTLS", strbuf_str(s->namaddr),
                 dropped);
    smtpd_reply_id(s, SMTP_R_TLS_GO, NULL);
    if (smtpd_flush(s) < 0) {
        smtpd_lost(s, "STARTTLS");
        return SMTPD_CMD_CLOSE;
    }
    /* tls_server_start drops buffered input before the handshake. */
    if (tls_server_start(smtpd_g.tls, s->client, (int)var_smtpd_starttls_timeout * 1000,
                         &s->tls, s->why) < 0) {
        log_info("SSL_accept error from %s: %s", strbuf_str(s->namaddr), strbuf_str(s->why));
        log_info("lost connection after STARTTLS from %s", strbuf_str(s->namaddr));
        s->closing = true;
        return SMTPD_CMD_CLOSE;
    }
    tls_log_established(s);
    /* RFC 3207 4.2: discard knowledge obtained from the client. */
    smtpd_txn_reset(s);
    strbuf_reset(s->helo);
    s->esmtp = false;
    strbuf_reset(s->sasl_user);
    strbuf_reset(s->sasl_method);
    return SMTPD_CMD_OK;
}

const char *smtpd_tls_summary(const struct smtpd_session *s)
{
    return s->tls ? tls_conn_summary(s->tls) : NULL;
}

void smtpd_tls_end(struct smtpd_session *s)
{
    tls_conn_free(&s->tls);
}
