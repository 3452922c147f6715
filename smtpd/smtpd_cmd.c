/*
 * smtpd_cmd.c - smtpd's command table and the envelope commands.
 *
 * smtpd_cmd_run() parses one command line (lib/smtp_syntax), finds the
 * verb's row in the table below (flags say where it is allowed), enforces
 * the session-wide rules (TLS required, HELO required, improper
 * pipelining, the junk command limit), runs the handler and counts the
 * outcome for the disconnect line.  HELO/EHLO, MAIL, RCPT, RSET, NOOP,
 * QUIT, VRFY, EXPN, HELP and ETRN live here; DATA/BDAT, AUTH, STARTTLS,
 * XCLIENT/XFORWARD in their own files.
 *
 * The queue file is opened at the first accepted RCPT (Postfix's
 * smtpd_delay_open_until_valid_rcpt), so its queue ID names the "client="
 * log line and later rejections.  Address tricks are refused for relaying
 * by smtpd_check; this file only parses.
 */
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "params.h"
#include "qfile.h"
#include "smtpd.h"
#include "smtpd_check.h"

/* Row flags. */
#define CMD_PRE_TLS     0x01    /* allowed before STARTTLS when TLS is required */
#define CMD_LAST        0x02    /* must end a pipelined group (RFC 2920) */
#define CMD_JUNK        0x04    /* counts toward smtpd_junk_command_limit */
#define CMD_NEED_HELO   0x08    /* only after HELO/EHLO (smtpd_helo_required) */
#define CMD_STICKY      0x10    /* gets a connect/HELO-stage rejection */

typedef int smtpd_cmd_fn(struct smtpd_session *s, const struct smtp_cmd *cmd);

struct smtpd_cmd_row {
    unsigned flags;
    smtpd_cmd_fn *fn;
};

static smtpd_cmd_fn cmd_helo, cmd_ehlo, cmd_mail, cmd_rcpt, cmd_rset, cmd_noop, cmd_quit,
    cmd_vrfy, cmd_expn, cmd_help, cmd_etrn, cmd_lhlo;

static const struct smtpd_cmd_row cmd_table[SMTP_VERB_COUNT] = {
    [SMTP_VERB_HELO] = {CMD_PRE_TLS | CMD_LAST, cmd_helo},
    [SMTP_VERB_EHLO] = {CMD_PRE_TLS | CMD_LAST, cmd_ehlo},
    [SMTP_VERB_LHLO] = {CMD_PRE_TLS, cmd_lhlo},
    [SMTP_VERB_MAIL] = {CMD_NEED_HELO | CMD_STICKY, cmd_mail},
    [SMTP_VERB_RCPT] = {CMD_NEED_HELO | CMD_STICKY, cmd_rcpt},
    [SMTP_VERB_DATA] = {CMD_NEED_HELO | CMD_STICKY, smtpd_data_cmd},
    [SMTP_VERB_BDAT] = {0, smtpd_bdat_cmd},       /* always consumes its chunk */
    [SMTP_VERB_RSET] = {CMD_PRE_TLS | CMD_JUNK, cmd_rset},
    [SMTP_VERB_NOOP] = {CMD_PRE_TLS | CMD_JUNK, cmd_noop},
    [SMTP_VERB_QUIT] = {CMD_PRE_TLS, cmd_quit},
    [SMTP_VERB_VRFY] = {CMD_JUNK | CMD_STICKY, cmd_vrfy},
    [SMTP_VERB_EXPN] = {CMD_JUNK, cmd_expn},
    [SMTP_VERB_HELP] = {CMD_PRE_TLS | CMD_JUNK, cmd_help},
    [SMTP_VERB_STARTTLS] = {CMD_PRE_TLS, smtpd_starttls_cmd},
    [SMTP_VERB_AUTH] = {CMD_STICKY, smtpd_auth_cmd},
    [SMTP_VERB_XCLIENT] = {CMD_PRE_TLS, smtpd_xclient_cmd},
    [SMTP_VERB_XFORWARD] = {CMD_PRE_TLS, smtpd_xforward_cmd},
    [SMTP_VERB_ETRN] = {CMD_JUNK | CMD_STICKY, cmd_etrn},
};

bool smtpd_need_tls(const struct smtpd_session *s)
{
    return smtpd_g.tls_level == 2 && s->tls == NULL;
}

void smtpd_check_ctx_fill(const struct smtpd_session *s, struct smtpd_check_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->service = s->service;
    ctx->client_name = s->name;
    ctx->client_addr = s->addr;
    ctx->client_port = s->port;
    ctx->helo = strbuf_len(s->helo) ? strbuf_str(s->helo) : NULL;
    ctx->sender = s->in_mail ? strbuf_str(s->sender) : NULL;
    ctx->sasl_user = strbuf_len(s->sasl_user) ? strbuf_str(s->sasl_user) : NULL;
    ctx->sasl_method = strbuf_len(s->sasl_method) ? strbuf_str(s->sasl_method) : NULL;
    ctx->protocol = smtpd_protocol(s);
    ctx->queue_id = s->cleanup ? cleanup_qid(s->cleanup) : "NOQUEUE";
    ctx->tls = s->tls != NULL;
    ctx->rcpt_count = s->rcpt_count;
    ctx->msg_size = s->in_mail && (s->mail_params.seen & SMTP_PARAM_SIZE)
                        ? (long)s->mail_params.size : 0;
}

void smtpd_txn_reset(struct smtpd_session *s)
{
    cleanup_free(&s->cleanup);
    s->in_mail = false;
    strbuf_reset(s->sender);
    strbuf_reset(s->first_rcpt);
    smtp_params_reset(&s->mail_params);
    s->rcpt_count = 0;
    s->rcpt_tries = 0;
    s->bdat_active = false;
    s->bdat_failed = false;
    s->data_stop = false;
    s->data_toobig = false;
    s->cleanup_failed = false;
    /* XFORWARD describes one transaction. */
    smtpd_xforward_reset(s);
}

int smtpd_cmd_run(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    enum smtp_reply_id id;
    const struct smtpd_cmd_row *row;
    int r;

    id = smtp_cmd_parse(line, len, &cmd, s->why);
    s->counts.total[cmd.verb]++;
    if (cmd.verb == SMTP_VERB_UNKNOWN) {
        s->where = "UNKNOWN";
        smtpd_reply_id(s, id, NULL);
        return SMTPD_CMD_ERR;
    }
    s->where = cmd.name;
    row = &cmd_table[cmd.verb];
    /* A BDAT with bad arguments is handled by its handler: it must know
     * whether it can still skip the chunk. */
    if (id != SMTP_R_NONE && cmd.verb != SMTP_VERB_BDAT) {
        smtpd_reply_id(s, id, strbuf_str(s->why));
        return SMTPD_CMD_ERR;
    }
    /* RFC 2920: a command that ends a group (or any command before EHLO
     * said PIPELINING) followed by more input is a client that does not
     * wait for replies: a spambot, or a smuggling attempt. */
    if (var_smtpd_forbid_unauth_pipelining && stream_pending(s->client) > 0
        && (!s->esmtp || (row->flags & CMD_LAST)) && cmd.verb != SMTP_VERB_STARTTLS
        && cmd.verb != SMTP_VERB_QUIT) {
        log_info("improper command pipelining after %s from %s", cmd.name,
                 strbuf_str(s->namaddr));
        smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
        return SMTPD_CMD_CLOSE;
    }
    /* BDAT checks TLS itself: a refused chunk must still be skipped. */
    if (smtpd_need_tls(s) && !(row->flags & CMD_PRE_TLS) && cmd.verb != SMTP_VERB_BDAT) {
        smtpd_reply_id(s, SMTP_R_TLS_REQUIRED, NULL);
        return SMTPD_CMD_ERR;
    }
    if ((row->flags & CMD_NEED_HELO) && var_smtpd_helo_required && strbuf_len(s->helo) == 0) {
        smtpd_reply_id(s, SMTP_R_NEED_HELO, NULL);
        return SMTPD_CMD_ERR;
    }
    if ((row->flags & CMD_STICKY) && strbuf_len(s->sticky_reject)) {
        smtpd_reply_line(s, strbuf_str(s->sticky_reject));
        return SMTPD_CMD_ERR;
    }
    if ((row->flags & CMD_JUNK) && ++s->junk > (unsigned)var_smtpd_junk_command_limit)
        s->errors++;
    r = row->fn(s, &cmd);
    if (r == SMTPD_CMD_OK)
        s->counts.ok[cmd.verb]++;
    return r;
}

/* ------------------------------------------------------------------ */

static int helo_common(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct smtpd_check_ctx ctx;
    int r;

    if (cmd->args_len > SMTPD_HELO_MAX) {
        smtpd_reply_id(s, SMTP_R_SYNTAX_ARGS, "host name too long");
        return SMTPD_CMD_ERR;
    }
    smtpd_txn_reset(s);
    strbuf_setn(s->helo, cmd->args, cmd->args_len);
    smtpd_check_ctx_fill(s, &ctx);
    r = smtpd_check(SMTPD_CHECK_HELO, &ctx, s->reply);
    if (r != 0) {
        smtpd_reply_line(s, strbuf_str(s->reply));
        strbuf_reset(s->helo);
        return SMTPD_CMD_ERR;
    }
    return SMTPD_CMD_OK;
}

static int cmd_helo(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    if (helo_common(s, cmd) != SMTPD_CMD_OK)
        return SMTPD_CMD_ERR;
    s->esmtp = false;
    smtpd_reply(s, "250 %s", var_myhostname);
    return SMTPD_CMD_OK;
}

/* True unless smtpd_discard_ehlo_keywords names kw. */
static bool ehlo_keep(const char *kw)
{
    const char *p = var_smtpd_discard_ehlo_keywords;
    size_t n = strlen(kw);

    while (p && *p) {
        size_t len;

        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        len = strcspn(p, " ,\t");
        if (len == n && strncasecmp(p, kw, n) == 0)
            return false;
        p += len;
    }
    return true;
}

static int cmd_ehlo(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct strbuf *auth = strbuf_new(64), *xc = strbuf_new(64), *xf = strbuf_new(64);
    const char *kw[16];
    char size[64];
    const char *x;
    int n = 0;

    if (helo_common(s, cmd) != SMTPD_CMD_OK) {
        strbuf_free(&auth);
        strbuf_free(&xc);
        strbuf_free(&xf);
        return SMTPD_CMD_ERR;
    }
    s->esmtp = true;
    kw[n++] = var_myhostname;
    if (ehlo_keep("PIPELINING"))
        kw[n++] = "PIPELINING";
    if (ehlo_keep("SIZE")) {
        snprintf(size, sizeof(size), "SIZE %ld", var_message_size_limit);
        kw[n++] = size;
    }
    if (smtpd_g.tls && s->tls == NULL && ehlo_keep("STARTTLS"))
        kw[n++] = "STARTTLS";
    if ((x = smtpd_auth_mechs(s)) != NULL && ehlo_keep("AUTH")) {
        strbuf_printf(auth, "AUTH %s", x);
        kw[n++] = strbuf_str(auth);
    }
    if (ehlo_keep("ENHANCEDSTATUSCODES"))
        kw[n++] = "ENHANCEDSTATUSCODES";
    if (ehlo_keep("8BITMIME"))
        kw[n++] = "8BITMIME";
    if (ehlo_keep("DSN"))
        kw[n++] = "DSN";
    if (ehlo_keep("SMTPUTF8"))
        kw[n++] = "SMTPUTF8";
    if (ehlo_keep("CHUNKING"))
        kw[n++] = "CHUNKING";
    if ((x = smtpd_xclient_announce(s)) != NULL && ehlo_keep("XCLIENT")) {
        strbuf_printf(xc, "XCLIENT %s", x);
        kw[n++] = strbuf_str(xc);
    }
    if ((x = smtpd_xforward_announce(s)) != NULL && ehlo_keep("XFORWARD")) {
        strbuf_printf(xf, "XFORWARD %s", x);
        kw[n++] = strbuf_str(xf);
    }
    for (int i = 0; i < n; i++)
        stream_printf(s->client, "250%c%s\r\n", i == n - 1 ? ' ' : '-', kw[i]);
    strbuf_free(&auth);
    strbuf_free(&xc);
    strbuf_free(&xf);
    return SMTPD_CMD_OK;
}

static int cmd_lhlo(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_BAD_CMD, NULL);
    return SMTPD_CMD_ERR;
}

static int cmd_mail(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct smtpd_check_ctx ctx;
    struct smtp_params tmp;
    enum smtp_reply_id id;
    int opts = s->esmtp ? SMTP_OPT_ALL_EXT : 0;
    int r;

    if (s->in_mail) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "nested MAIL command");
        return SMTPD_CMD_ERR;
    }
    id = smtp_parse_mail(cmd->args, cmd->args_len, opts, &s->addr_tmp, &s->params_tmp, s->why);
    if (id != SMTP_R_NONE) {
        smtpd_reply_id(s, id, strbuf_str(s->why));
        return SMTPD_CMD_ERR;
    }
    if (var_message_size_limit > 0 && (s->params_tmp.seen & SMTP_PARAM_SIZE)
        && s->params_tmp.size > (uint64_t)var_message_size_limit) {
        smtpd_reply_id(s, SMTP_R_MSG_TOO_BIG, NULL);
        smtpd_log_reject(s, "MAIL", strbuf_str(s->reply), NULL);
        return SMTPD_CMD_ERR;
    }
    if (smtpd_peer_message_limit(s) < 0)
        return SMTPD_CMD_ERR;
    /* The sender is known to the checks during MAIL. */
    strbuf_setn(s->sender, strbuf_str(s->addr_tmp.addr), strbuf_len(s->addr_tmp.addr));
    s->in_mail = true;
    smtpd_check_ctx_fill(s, &ctx);
    ctx.msg_size = (s->params_tmp.seen & SMTP_PARAM_SIZE) ? (long)s->params_tmp.size : 0;
    r = smtpd_check(SMTPD_CHECK_MAIL, &ctx, s->reply);
    if (r != 0) {
        s->in_mail = false;
        strbuf_reset(s->sender);
        smtpd_reply_line(s, strbuf_str(s->reply));
        return SMTPD_CMD_ERR;
    }
    /* Keep the parameters: swap with the scratch set. */
    tmp = s->mail_params;
    s->mail_params = s->params_tmp;
    s->params_tmp = tmp;
    smtpd_reply_id(s, SMTP_R_SENDER_OK, NULL);
    return SMTPD_CMD_OK;
}

/* Open the queue file at the first accepted recipient. */
static int rcpt_open_queue(struct smtpd_session *s)
{
    const struct smtp_params *p = &s->mail_params;
    unsigned fl = 0;

    s->cleanup = cleanup_open(smtpd_g.queue_dir,
                              strbuf_len(s->sasl_user) ? CLEANUP_FL_SUBMISSION : 0, s->why);
    if (s->cleanup == NULL) {
        log_warn("%s: queue file: %s", strbuf_str(s->namaddr), strbuf_str(s->why));
        return -1;
    }
    {
        struct strbuf *l = strbuf_new(128);

        strbuf_printf(l, "%s: client=%s", cleanup_qid(s->cleanup), strbuf_str(s->namaddr));
        if (strbuf_len(s->sasl_user))
            strbuf_appendf(l, ", sasl_method=%s, sasl_username=%s", strbuf_str(s->sasl_method),
                           strbuf_str(s->sasl_user));
        /* XFORWARD: the client the forwarder got the message from. */
        if (strbuf_len(s->xf_addr))
            strbuf_appendf(l, ", orig_client=%s[%s]",
                           strbuf_len(s->xf_name) ? strbuf_str(s->xf_name) : "unknown",
                           strbuf_str(s->xf_addr));
        log_info("%s", strbuf_str(l));
        strbuf_free(&l);
    }
    cleanup_set_sender(s->cleanup, strbuf_str(s->sender));
    if (p->ret == SMTP_RET_FULL)
        cleanup_set_ret(s->cleanup, 'F');
    else if (p->ret == SMTP_RET_HDRS)
        cleanup_set_ret(s->cleanup, 'H');
    if ((p->seen & SMTP_PARAM_ENVID) && strbuf_len(p->envid))
        cleanup_set_envid(s->cleanup, strbuf_str(p->envid));
    if (p->smtputf8)
        fl |= QFILE_FL_SMTPUTF8;
    if (p->body == SMTP_BODY_8BITMIME)
        fl |= QFILE_FL_8BITMIME;
    else if (p->body == SMTP_BODY_BINARYMIME)
        fl |= QFILE_FL_BINARYMIME;
    else if (p->body == SMTP_BODY_7BIT)
        fl |= QFILE_FL_7BIT;
    if (fl)
        cleanup_set_flags(s->cleanup, fl);
    cleanup_set_attr(s->cleanup, QFILE_ATTR_ORIGIN, "smtpd");
    if (s->port[0])
        cleanup_set_attr(s->cleanup, QFILE_ATTR_CLIENT_PORT, s->port);
    if (strbuf_len(s->sasl_method))
        cleanup_set_attr(s->cleanup, QFILE_ATTR_SASL_METHOD, strbuf_str(s->sasl_method));
    return 0;
}

static int cmd_rcpt(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct smtpd_check_ctx ctx;
    struct strbuf *orcpt = NULL;
    enum smtp_reply_id id;
    int opts = s->esmtp ? SMTP_OPT_ALL_EXT : 0;
    int r;

    if (!s->in_mail) {
        smtpd_reply_id(s, SMTP_R_NEED_MAIL, NULL);
        return SMTPD_CMD_ERR;
    }
    if (s->bdat_active) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "RCPT during BDAT");
        return SMTPD_CMD_ERR;
    }
    s->rcpt_tries++;
    if (!s->mail_params.smtputf8)
        opts &= ~SMTP_OPT_SMTPUTF8;
    id = smtp_parse_rcpt(cmd->args, cmd->args_len, opts, &s->addr_tmp, &s->params_tmp, s->why);
    if (id != SMTP_R_NONE) {
        smtpd_reply_id(s, id, strbuf_str(s->why));
        return SMTPD_CMD_ERR;
    }
    if (s->rcpt_count >= (unsigned)var_smtpd_recipient_limit) {
        smtpd_reply_id(s, SMTP_R_TOO_MANY_RCPTS, NULL);
        /* Only the overshoot counts as client errors (Postfix). */
        if (s->rcpt_tries <= (unsigned)(var_smtpd_recipient_limit
                                        + var_smtpd_recipient_overshoot_limit))
            s->errors--;
        smtpd_log_reject(s, "RCPT", strbuf_str(s->reply), strbuf_str(s->addr_tmp.addr));
        return SMTPD_CMD_ERR;
    }
    if (smtpd_peer_rcpt_limit(s) < 0)
        return SMTPD_CMD_ERR;
    smtpd_check_ctx_fill(s, &ctx);
    ctx.recipient = strbuf_str(s->addr_tmp.addr);
    r = smtpd_check(SMTPD_CHECK_RCPT, &ctx, s->reply);
    if (r != 0) {
        smtpd_reply_line(s, strbuf_str(s->reply));
        return SMTPD_CMD_ERR;
    }
    if (s->cleanup == NULL && rcpt_open_queue(s) < 0) {
        smtpd_reply_id(s, SMTP_R_TEMP_LOCAL, NULL);
        return SMTPD_CMD_ERR;
    }
    if (s->params_tmp.seen & SMTP_PARAM_ORCPT) {
        orcpt = strbuf_new(64);
        strbuf_printf(orcpt, "%s;%s", strbuf_str(s->params_tmp.orcpt_type),
                      strbuf_str(s->params_tmp.orcpt));
    }
    if (cleanup_add_rcpt(s->cleanup, strbuf_str(s->addr_tmp.addr),
                         orcpt ? strbuf_str(orcpt) : NULL, s->params_tmp.notify) < 0) {
        strbuf_free(&orcpt);
        smtpd_reply_id(s, SMTP_R_TEMP_LOCAL, NULL);
        return SMTPD_CMD_ERR;
    }
    strbuf_free(&orcpt);
    if (s->rcpt_count == 0)
        strbuf_setn(s->first_rcpt, strbuf_str(s->addr_tmp.addr), strbuf_len(s->addr_tmp.addr));
    s->rcpt_count++;
    smtpd_reply_id(s, SMTP_R_RCPT_OK, NULL);
    return SMTPD_CMD_OK;
}

static int cmd_rset(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_txn_reset(s);
    smtpd_reply_id(s, SMTP_R_OK, NULL);
    return SMTPD_CMD_OK;
}

static int cmd_noop(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_OK, NULL);
    return SMTPD_CMD_OK;
}

static int cmd_quit(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_BYE, NULL);
    s->counts.ok[SMTP_VERB_QUIT]++;
    return SMTPD_CMD_CLOSE;
}

static int cmd_vrfy(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    if (var_disable_vrfy_command) {
        smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
        return SMTPD_CMD_ERR;
    }
    smtpd_reply_id(s, SMTP_R_VRFY_CANNOT, NULL);
    return SMTPD_CMD_OK;
}

static int cmd_expn(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_NOT_IMPLEMENTED, NULL);
    return SMTPD_CMD_ERR;
}

static int cmd_help(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_HELP, NULL);
    return SMTPD_CMD_OK;
}

static int cmd_etrn(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    smtpd_reply_id(s, SMTP_R_NOT_IMPLEMENTED, NULL);
    return SMTPD_CMD_ERR;
}
