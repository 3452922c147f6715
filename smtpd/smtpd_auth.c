/*
 * smtpd_auth.c - SMTP AUTH (RFC 4954) through authd.
 *
 * smtpd holds no passwords and runs no mechanism: it relays the client's
 * base64 responses to authd over the Dovecot auth protocol
 * (lib/auth_client) and authd's challenges back as 334 lines.  authd is
 * connected at the first EHLO that may announce AUTH, once per session.
 * AUTH is announced and accepted only where the configuration allows it:
 * smtpd_sasl_auth_enable, not before STARTTLS with smtpd_tls_auth_only or
 * with smtpd_tls_security_level = encrypt, and plaintext mechanisms only
 * where smtpd_sasl_(tls_)security_options permit them.  A failure is
 * logged as Postfix does ("warning: name[addr]: SASL PLAIN authentication
 * failed: ...") because fail2ban's postfix filter reads that line.
 */
#include <stdlib.h>
#include <string.h>

#include "auth_client.h"
#include "cidr.h"
#include "log.h"
#include "params.h"
#include "smtpd.h"

#define AUTH_MECH_MAX 32        /* bytes of a mechanism name */

static struct strbuf *auth_mechs_buf;  /* the filtered list announced */
static struct strbuf *auth_all;         /* authd's list, kept from the handshake:
                                         * the client forgets it when a
                                         * cancelled login drops the connection */

/* True if the list (comma/space separated) names word. */
static bool auth_list_has(const char *list, const char *word)
{
    size_t n = strlen(word);

    while (list && *list) {
        size_t len;

        while (*list == ' ' || *list == ',' || *list == '\t')
            list++;
        len = strcspn(list, " ,\t");
        if (len == n && strncasecmp(list, word, n) == 0)
            return true;
        list += len;
    }
    return false;
}

static bool auth_mech_allowed(const struct smtpd_session *s, const char *mech)
{
    const char *opts = s->tls ? var_smtpd_sasl_tls_security_options
                              : var_smtpd_sasl_security_options;

    if (auth_list_has(opts, "noplaintext")
        && (strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0))
        return false;
    if (auth_list_has(opts, "noanonymous") && strcasecmp(mech, "ANONYMOUS") == 0)
        return false;
    return true;
}

const char *smtpd_auth_mechs(struct smtpd_session *s)
{
    const char *all, *p;

    if (!var_smtpd_sasl_auth_enable || smtpd_need_tls(s)
        || (var_smtpd_tls_auth_only && s->tls == NULL)
        || cidr_list_match(smtpd_g.sasl_exceptions, s->real_addr) == 1)
        return NULL;
    if (s->auth == NULL) {
        if (s->auth_failed_connect)
            return NULL;
        s->auth = auth_client_connect(var_smtpd_sasl_path, (int)var_smtpd_timeout * 1000,
                                      s->why);
        if (s->auth == NULL) {
            log_warn("SASL: connect to %s failed: %s", var_smtpd_sasl_path,
                     strbuf_str(s->why));
            s->auth_failed_connect = true;
            return NULL;
        }
        if (auth_all == NULL)
            auth_all = strbuf_new(64);
        strbuf_set(auth_all, auth_client_mechs(s->auth));
    }
    if (auth_mechs_buf == NULL)
        auth_mechs_buf = strbuf_new(64);
    strbuf_reset(auth_mechs_buf);
    all = strbuf_str(auth_all);
    for (p = all; p && *p;) {
        char mech[AUTH_MECH_MAX + 1];
        size_t len;

        while (*p == ' ')
            p++;
        len = strcspn(p, " ");
        if (len > 0 && len <= AUTH_MECH_MAX) {
            memcpy(mech, p, len);
            mech[len] = 0;
            if (auth_mech_allowed(s, mech)) {
                if (strbuf_len(auth_mechs_buf))
                    strbuf_appendc(auth_mechs_buf, ' ');
                strbuf_append(auth_mechs_buf, mech);
            }
        }
        p += len;
    }
    return strbuf_len(auth_mechs_buf) ? strbuf_str(auth_mechs_buf) : NULL;
}

struct auth_exchange {
    struct smtpd_session *s;
    struct strbuf *line;
    bool cancelled;
    bool lost;
};

/* authd sent a challenge: relay it, read the client's answer. */
static int auth_cont(const char *challenge_b64, struct strbuf *resp_b64, void *ctx)
{
    struct auth_exchange *ax = ctx;
    struct smtpd_session *s = ax->s;
    enum smtp_line_status st;
    int r;

    smtpd_reply(s, "334 %s", challenge_b64);
    r = smtpd_read_line(s, ax->line, (size_t)var_smtpd_sasl_response_limit, &st);
    if (r == 0) {
        ax->lost = true;
        return -1;
    }
    if (r == 2 || st != SMTP_LINE_CRLF || strcmp(strbuf_str(ax->line), "*") == 0) {
        ax->cancelled = true;
        return -1;
    }
    strbuf_setn(resp_b64, strbuf_str(ax->line), strbuf_len(ax->line));
    return 0;
}

int smtpd_auth_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct auth_client_login req;
    struct auth_exchange ax = { s, NULL, false, false };
    struct strbuf *user, *reason;
    char mech[AUTH_MECH_MAX + 1];
    const char *mechs, *initial = NULL, *sp;
    size_t mlen;
    enum auth_client_result res;
    int ret;

    if (!var_smtpd_sasl_auth_enable) {
        smtpd_reply_id(s, SMTP_R_NOT_IMPLEMENTED, "authentication not enabled");
        return SMTPD_CMD_ERR;
    }
    if (var_smtpd_tls_auth_only && s->tls == NULL) {
        smtpd_reply_id(s, SMTP_R_TLS_REQUIRED, NULL);
        return SMTPD_CMD_ERR;
    }
    if (!s->esmtp) {
        smtpd_reply_id(s, SMTP_R_NEED_HELO, "send EHLO first");
        return SMTPD_CMD_ERR;
    }
    if (strbuf_len(s->sasl_user)) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "already authenticated");
        return SMTPD_CMD_ERR;
    }
    if (s->in_mail) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "MAIL transaction in progress");
        return SMTPD_CMD_ERR;
    }
    sp = memchr(cmd->args, ' ', cmd->args_len);
    mlen = sp ? (size_t)(sp - cmd->args) : cmd->args_len;
    if (mlen == 0 || mlen > AUTH_MECH_MAX) {
        smtpd_reply_id(s, SMTP_R_SYNTAX_ARGS, "bad mechanism name");
        return SMTPD_CMD_ERR;
    }
    memcpy(mech, cmd->args, mlen);
    mech[mlen] = 0;
    for (size_t i = 0; i < mlen; i++)
        if (mech[i] >= 'a' && mech[i] <= 'z')
            mech[i] = (char)(mech[i] - 32);
    if (sp) {
        while (*sp == ' ')
            sp++;
        initial = strcmp(sp, "=") == 0 ? "" : sp;
    }
    mechs = smtpd_auth_mechs(s);
    if (mechs == NULL) {
        smtpd_reply_id(s, SMTP_R_AUTH_TEMP, NULL);
        return SMTPD_CMD_ERR;
    }
    if (!auth_list_has(mechs, mech)) {
        smtpd_reply(s, "504 5.5.4 Unsupported authentication mechanism");
        return SMTPD_CMD_ERR;
    }
    memset(&req, 0, sizeof(req));
    req.mech = mech;
    req.initial = initial;
    req.service = "smtp";
    req.lip = s->laddr;
    req.rip = s->addr;
    req.lport = (unsigned)atoi(s->lport);
    req.rport = (unsigned)atoi(s->port);
    req.secured = s->tls != NULL;
    user = strbuf_new(64);
    reason = strbuf_new(64);
    ax.line = strbuf_new(256);
    res = auth_client_login(s->auth, &req, auth_cont, &ax, user, reason);
    if (ax.lost) {
        ret = SMTPD_CMD_CLOSE;
    } else if (res == AUTH_CLIENT_OK) {
        strbuf_setn(s->sasl_user, strbuf_str(user), strbuf_len(user));
        strbuf_set(s->sasl_method, mech);
        smtpd_reply_id(s, SMTP_R_AUTH_OK, NULL);
        ret = SMTPD_CMD_OK;
    } else if (ax.cancelled) {
        smtpd_reply(s, "501 5.7.0 Authentication aborted");
        ret = SMTPD_CMD_ERR;
    } else if (res == AUTH_CLIENT_FAIL) {
        log_warn("%s: SASL %s authentication failed: %s", strbuf_str(s->namaddr), mech,
                 strbuf_len(reason) ? strbuf_str(reason) : "authentication failure");
        smtpd_reply_id(s, SMTP_R_AUTH_FAILED, strbuf_len(reason) ? strbuf_str(reason) : NULL);
        ret = SMTPD_CMD_ERR;
    } else {
        log_warn("%s: SASL %s authentication failed: temporary failure: %s",
                 strbuf_str(s->namaddr), mech, strbuf_str(reason));
        smtpd_reply_id(s, SMTP_R_AUTH_TEMP, NULL);
        ret = SMTPD_CMD_ERR;
    }
    strbuf_free(&user);
    strbuf_free(&reason);
    strbuf_free(&ax.line);
    return ret;
}
