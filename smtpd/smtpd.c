/*
 * smtpd.c - the SMTP server: main, jail hooks, the session loop, replies.
 *
 * A thin main over the SERVER_SINGLE skeleton (lib/server.h): pre_jail
 * opens what needs privileges (TLS keys, smtpd_check's tables), the
 * session loop reads one bounded command line at a time under a deadline,
 * hands it to the command table (smtpd_cmd.c), and flushes replies only
 * when no more input is buffered, which is all PIPELINING needs.
 *
 * SECURITY: everything from the client is untrusted.  Lines are bounded
 * (SMTP_CMD_LINE_MAX at most), every read has a deadline, a first line
 * that looks like HTTP ends the session, errors past
 * smtpd_hard_error_limit end it too, and no client text reaches a format
 * string.  A 250 after DATA means the queue file is durable (cleanup.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "anvil_client.h"
#include "auth_client.h"
#include "cidr.h"
#include "cleanup.h"
#include "conf.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "server.h"
#include "smtp_data.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "tls.h"

struct smtpd_global smtpd_g;

/* ------------------------------------------------------------------ */
/* Replies.                                                            */

/* Expand smtpd_reject_footer into out.  The value is taken before main.cf
 * expansion (as Postfix keeps this parameter raw) so that the session
 * macros $client_address, $client_name, $client_port, $helo_name, $code
 * and $enhanced_code mean this client and this reply; any other $name or
 * ${name} is the main.cf parameter. */
static void smtpd_footer_expand(struct smtpd_session *s, const char *code, const char *esc,
                                struct strbuf *out)
{
    const char *p = conf_get_value("smtpd_reject_footer");

    if (p == NULL)
        p = var_smtpd_reject_footer;
    while (*p) {
        char name[65];
        size_t n = 0;
        bool braced;
        const char *v;

        if (*p != '$') {
            strbuf_appendc(out, *p++);
            continue;
        }
        braced = p[1] == '{';
        for (const char *q = p + 1 + braced;
             n < sizeof(name) - 1 && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')
                                      || (*q >= '0' && *q <= '9') || *q == '_');
             q++)
            name[n++] = *q;
        name[n] = 0;
        if (n == 0 || (braced && p[2 + n] != '}')) {
            strbuf_appendc(out, *p++);
            continue;
        }
        if (strcmp(name, "client_address") == 0)
            v = s->addr[0] ? s->addr : "unknown";
        else if (strcmp(name, "client_name") == 0)
            v = s->name;
        else if (strcmp(name, "client_port") == 0)
            v = s->port;
        else if (strcmp(name, "helo_name") == 0)
            v = strbuf_str(s->helo);
        else if (strcmp(name, "code") == 0)
            v = code;
        else if (strcmp(name, "enhanced_code") == 0)
            v = esc;
        else if ((v = conf_get(name)) == NULL)
            v = "";
        strbuf_append(out, v);
        p += 1 + n + (braced ? 2 : 0);
    }
}

#define SMTPD_FOOTER_LINES 20     /* footer lines sent at most */

/* A 4xx/5xx reply with smtpd_reject_footer (Postfix syntax: "\\n" starts a
 * new reply line, a leading "\\c" continues the reply's own line): the
 * footer lines repeat the code and the enhanced code. */
static void smtpd_reply_footer(struct smtpd_session *s, const char *text, size_t len)
{
    struct strbuf *foot = strbuf_new(128), *first = strbuf_new(len + 64);
    const char *seg[SMTPD_FOOTER_LINES];
    size_t seglen[SMTPD_FOOTER_LINES];
    char code[4], esc[16] = "";
    const char *f, *end, *nl;
    bool more;
    int n = 0;

    memcpy(code, text, 3);
    code[3] = 0;
    if (len > 4) {
        size_t el = strspn(text + 4, "0123456789.");
        if (el >= 5 && el < sizeof(esc) && (4 + el == len || text[4 + el] == ' '))
            memcpy(esc, text + 4, el);
    }
    smtpd_footer_expand(s, code, esc, foot);
    f = strbuf_str(foot);
    end = f + strbuf_len(foot);
    strbuf_appendn(first, text, len);
    if (strncmp(f, "\\c", 2) == 0) {
        f += 2;
        nl = strstr(f, "\\n");
        strbuf_appendn(first, f, nl ? (size_t)(nl - f) : (size_t)(end - f));
        f = nl ? nl + 2 : end;
        more = nl != NULL;
    } else {
        more = f < end;
    }
    while (more && n < SMTPD_FOOTER_LINES) {
        nl = strstr(f, "\\n");
        seg[n] = f;
        seglen[n++] = nl ? (size_t)(nl - f) : (size_t)(end - f);
        f = nl ? nl + 2 : end;
        more = nl != NULL;
    }
    if (n == 0) {
        stream_write(s->client, strbuf_str(first), strbuf_len(first));
    } else {
        stream_printf(s->client, "%s-", code);
        if (strbuf_len(first) > 4)
            stream_write(s->client, strbuf_str(first) + 4, strbuf_len(first) - 4);
        for (int i = 0; i < n; i++) {
            stream_printf(s->client, "\r\n%s%c%s%s", code, i == n - 1 ? ' ' : '-', esc,
                          esc[0] ? " " : "");
            stream_write(s->client, seg[i], seglen[i]);
        }
    }
    stream_write(s->client, "\r\n", 2);
    strbuf_free(&foot);
    strbuf_free(&first);
}

static void smtpd_reply_write(struct smtpd_session *s, const char *text, size_t len)
{
    /* Error replies count; past the soft limit each one waits. */
    if (len > 0 && (text[0] == '4' || text[0] == '5')) {
        s->errors++;
        if (s->errors >= (unsigned)var_smtpd_soft_error_limit && var_smtpd_error_sleep_time > 0) {
            smtpd_flush(s);
            sleep((unsigned)var_smtpd_error_sleep_time);
        }
    }
    if (len >= 3 && (text[0] == '4' || text[0] == '5') && var_smtpd_reject_footer
        && *var_smtpd_reject_footer) {
        smtpd_reply_footer(s, text, len);
        return;
    }
    stream_write(s->client, text, len);
    stream_write(s->client, "\r\n", 2);
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;

    strbuf_reset(s->reply);
    va_start(ap, fmt);
    strbuf_vappendf(s->reply, fmt, ap);
    va_end(ap);
    smtpd_reply_write(s, strbuf_str(s->reply), strbuf_len(s->reply));
}

void smtpd_reply_id(struct smtpd_session *s, enum smtp_reply_id id, const char *detail)
{
    smtp_reply_format(s->reply, id, detail);
    strbuf_rtrim(s->reply);
    smtpd_reply_write(s, strbuf_str(s->reply), strbuf_len(s->reply));
}

void smtpd_reply_line(struct smtpd_session *s, const char *line)
{
    size_t len = strlen(line);

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    smtpd_reply_write(s, line, len);
}

int smtpd_flush(struct smtpd_session *s)
{
    return stream_flush(s->client);
}

const char *smtpd_protocol(const struct smtpd_session *s)
{
    if (!s->esmtp)
        return "SMTP";
    if (s->tls && strbuf_len(s->sasl_user))
        return "ESMTPSA";
    if (s->tls)
        return "ESMTPS";
    if (strbuf_len(s->sasl_user))
        return "ESMTPA";
    return "ESMTP";
}

void smtpd_log_reject(struct smtpd_session *s, const char *cmd, const char *reply,
                      const char *rcpt)
{
    struct strbuf *l = strbuf_new(256);

    strbuf_printf(l, "%s: reject: %s from %s: %s;",
                  s->cleanup ? cleanup_qid(s->cleanup) : "NOQUEUE", cmd,
                  strbuf_str(s->namaddr), reply);
    if (s->in_mail)
        strbuf_appendf(l, " from=<%s>", strbuf_str(s->sender));
    if (rcpt)
        strbuf_appendf(l, " to=<%s>", rcpt);
    strbuf_appendf(l, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
    if (strbuf_len(s->helo))
        strbuf_appendf(l, " helo=<%s>", strbuf_str(s->helo));
    log_info("%s", strbuf_str(l));
    strbuf_free(&l);
}

void smtpd_lost(struct smtpd_session *s, const char *where)
{
    if (stream_error(s->client) == STREAM_ERR_TIMEOUT) {
        log_info("timeout after %s from %s", where, strbuf_str(s->namaddr));
        /* The stream's error is sticky, so the 421 goes straight to the
         * socket, best effort and without waiting; over TLS it cannot
         * (the record layer is the stream's), and the close says enough. */
        if (s->tls == NULL && stream_out_pending(s->client) == 0) {
            smtp_reply_format(s->reply, SMTP_R_TIMEOUT, NULL);
            (void)send(stream_fd(s->client), strbuf_str(s->reply), strbuf_len(s->reply),
                       MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    } else {
        log_info("lost connection after %s from %s", where, strbuf_str(s->namaddr));
    }
    s->closing = true;
}

int smtpd_read_line(struct smtpd_session *s, struct strbuf *line, size_t max,
                    enum smtp_line_status *st_r)
{
    size_t content;
    int r;

    *st_r = SMTP_LINE_CRLF;
    /* PIPELINING: replies wait while the client has sent more; they go
     * out when we would wait for the client. */
    if (stream_pending(s->client) == 0 && smtpd_flush(s) < 0) {
        smtpd_lost(s, s->where);
        return 0;
    }
    stream_set_deadline(s->client, (int)var_smtpd_timeout * 1000, 0);
    r = stream_read_line(s->client, line, max);
    stream_set_deadline(s->client, 0, 0);
    if (r == 1) {
        *st_r = smtp_line_check(strbuf_str(line), strbuf_len(line), &content);
        if (*st_r == SMTP_LINE_NO_EOL) {
            /* The client closed in the middle of a line. */
            smtpd_lost(s, s->where);
            return 0;
        }
        strbuf_truncate(line, content);
        return 1;
    }
    if (r < 0 && stream_error(s->client) == STREAM_ERR_TOOLONG) {
        stream_clear_toolong(s->client);
        if (stream_skip_line(s->client, SMTP_CMD_LINE_MAX * 16) != 1) {
            smtpd_lost(s, s->where);
            return 0;
        }
        *st_r = SMTP_LINE_CRLF;
        strbuf_set(line, "");
        return 2;
    }
    smtpd_lost(s, s->where);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The session.                                                        */

static void smtpd_disconnect_log(struct smtpd_session *s)
{
    static const enum smtp_verb order[] = {
        SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
        SMTP_VERB_XCLIENT, SMTP_VERB_XFORWARD, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
        SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_VRFY,
        SMTP_VERB_EXPN, SMTP_VERB_ETRN, SMTP_VERB_HELP, SMTP_VERB_QUIT, SMTP_VERB_LHLO,
        SMTP_VERB_UNKNOWN,
    };
    struct strbuf *l = strbuf_new(200);
    unsigned ok = 0, total = 0;

    strbuf_printf(l, "disconnect from %s", strbuf_str(s->namaddr));
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        enum smtp_verb v = order[i];
        const char *name = v == SMTP_VERB_UNKNOWN ? "unknown" : smtp_verb_name(v);
        char lower[16];
        size_t k;

        if (s->counts.total[v] == 0)
            continue;
        for (k = 0; name[k] && k < sizeof(lower) - 1; k++)
            lower[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
        lower[k] = 0;
        if (s->counts.ok[v] == s->counts.total[v])
            strbuf_appendf(l, " %s=%u", lower, s->counts.ok[v]);
        else
            strbuf_appendf(l, " %s=%u/%u", lower, s->counts.ok[v], s->counts.total[v]);
        ok += s->counts.ok[v];
        total += s->counts.total[v];
    }
    if (ok == total)
        strbuf_appendf(l, " commands=%u", ok);
    else
        strbuf_appendf(l, " commands=%u/%u", ok, total);
    log_info("%s", strbuf_str(l));
    strbuf_free(&l);
}

static struct smtpd_session *smtpd_session_new(struct stream *client)
{
    struct smtpd_session *s = xcalloc(1, sizeof(*s));

    s->client = client;
    s->service = server_service_name();
    s->namaddr = strbuf_new(64);
    s->helo = strbuf_new(64);
    s->sasl_user = strbuf_new(32);
    s->sasl_method = strbuf_new(16);
    s->sticky_reject = strbuf_new(0);
    s->xf_name = strbuf_new(0);
    s->xf_addr = strbuf_new(0);
    s->xf_port = strbuf_new(0);
    s->xf_proto = strbuf_new(0);
    s->xf_helo = strbuf_new(0);
    s->xf_ident = strbuf_new(0);
    s->sender = strbuf_new(64);
    s->first_rcpt = strbuf_new(64);
    smtp_params_init(&s->mail_params);
    smtp_params_init(&s->params_tmp);
    smtp_addr_init(&s->addr_tmp);
    s->why = strbuf_new(128);
    s->reply = strbuf_new(128);
    s->where = "CONNECT";
    return s;
}

static void smtpd_session_free(struct smtpd_session **sp)
{
    struct smtpd_session *s = *sp;

    smtpd_txn_reset(s);
    smtp_data_free(&s->data);
    auth_client_close(&s->auth);
    smtpd_tls_end(s);
    strbuf_free(&s->namaddr);
    strbuf_free(&s->helo);
    strbuf_free(&s->sasl_user);
    strbuf_free(&s->sasl_method);
    strbuf_free(&s->sticky_reject);
    strbuf_free(&s->xf_name);
    strbuf_free(&s->xf_addr);
    strbuf_free(&s->xf_port);
    strbuf_free(&s->xf_proto);
    strbuf_free(&s->xf_helo);
    strbuf_free(&s->xf_ident);
    strbuf_free(&s->sender);
    strbuf_free(&s->first_rcpt);
    smtp_params_free(&s->mail_params);
    smtp_params_free(&s->params_tmp);
    smtp_addr_free(&s->addr_tmp);
    strbuf_free(&s->why);
    strbuf_free(&s->reply);
    free(s);
    *sp = NULL;
}

/* The connect-time checks; 0 to go on with the banner. */
static int smtpd_connect_checks(struct smtpd_session *s)
{
    struct smtpd_check_ctx ctx;
    int r;

    if (smtpd_peer_connect_limits(s) < 0)
        return -1;
    smtpd_check_ctx_fill(s, &ctx);
    r = smtpd_check(SMTPD_CHECK_CONNECT, &ctx, s->reply);
    if (r != 0) {
        /* As Postfix without smtpd_delay_reject: the client may still
         * say QUIT; everything else gets this reply. */
        strbuf_setn(s->sticky_reject, strbuf_str(s->reply), strbuf_len(s->reply));
    }
    return 0;
}

void smtpd_banner(struct smtpd_session *s)
{
    smtpd_reply(s, "220 %s", var_smtpd_banner);
}

/* A command line that did not end in plain CRLF: 0 to run it anyway
 * (normalize), -1 when refused (reply sent; closing set for "reject"). */
static int smtpd_bare_newline(struct smtpd_session *s, enum smtp_line_status st)
{
    switch (st) {
    case SMTP_LINE_CRLF:
        return 0;
    case SMTP_LINE_BARE_LF:
        if (smtpd_g.bare_nl != SMTPD_BARE_NL_REJECT || s->bare_nl_exempt)
            return 0;
        log_info("disallowed bare <LF> received from %s after %s", strbuf_str(s->namaddr),
                 s->where);
        smtpd_reply_id(s, SMTP_R_BARE_NEWLINE, NULL);
        s->closing = true;
        return -1;
    case SMTP_LINE_BARE_CR:
        smtpd_reply_id(s, SMTP_R_BARE_NEWLINE, NULL);
        if (smtpd_g.bare_nl == SMTPD_BARE_NL_REJECT && !s->bare_nl_exempt) {
            log_info("disallowed bare <CR> received from %s after %s", strbuf_str(s->namaddr),
                     s->where);
            s->closing = true;
        }
        return -1;
    case SMTP_LINE_NUL:
        smtpd_reply_id(s, SMTP_R_NUL_BYTE, NULL);
        return -1;
    case SMTP_LINE_NO_EOL:
        break;
    }
    return -1;
}

static void smtpd_service(struct stream *client)
{
    struct smtpd_session *s = smtpd_session_new(client);
    struct strbuf *line = strbuf_new(512);
    size_t max = (size_t)var_line_length_limit;
    bool first = true;

    if (max < SMTP_CMD_LINE_MIN)
        max = SMTP_CMD_LINE_MIN;
    if (max > SMTP_CMD_LINE_MAX)
        max = SMTP_CMD_LINE_MAX;
    stream_set_timeout(client, (int)var_smtpd_timeout * 1000);
    smtpd_peer_init(s);
    log_info("connect from %s", strbuf_str(s->namaddr));

    if (smtpd_g.wrapper && smtpd_tls_wrapper(s) < 0)
        goto done;
    if (smtpd_connect_checks(s) < 0)
        goto done;
    smtpd_banner(s);

    while (!s->closing) {
        enum smtp_line_status st;
        int r = smtpd_read_line(s, line, max, &st);

        if (r == 0)
            break;
        if (r == 2) {
            smtpd_reply_id(s, SMTP_R_LINE_TOO_LONG, NULL);
            s->counts.total[SMTP_VERB_UNKNOWN]++;
        } else if (first && smtp_line_is_http(strbuf_str(line), strbuf_len(line))) {
            log_warn("non-SMTP command from %s: %.100s", strbuf_str(s->namaddr),
                     strbuf_str(line));
            smtpd_reply(s, "521 5.5.1 %s Error: I can break rules, too. Goodbye.",
                        var_myhostname);
            s->counts.total[SMTP_VERB_UNKNOWN]++;
            break;
        } else if (smtpd_bare_newline(s, st) < 0) {
            s->counts.total[SMTP_VERB_UNKNOWN]++;
            if (s->closing)
                break;
        } else {
            r = smtpd_cmd_run(s, strbuf_str(line), strbuf_len(line));
            if (r == SMTPD_CMD_CLOSE || s->closing)
                break;
        }
        first = false;
        if (s->errors >= (unsigned)var_smtpd_hard_error_limit) {
            log_info("too many errors after %s from %s", s->where, strbuf_str(s->namaddr));
            smtpd_reply_id(s, SMTP_R_TOO_MANY_ERRORS, NULL);
            break;
        }
    }
done:
    smtpd_flush(s);
    smtpd_peer_disconnect(s);
    smtpd_disconnect_log(s);
    strbuf_free(&line);
    smtpd_session_free(&s);
}

/* ------------------------------------------------------------------ */
/* Process setup.                                                      */

static struct cidr_list *smtpd_cidr(const char *name, const char *value)
{
    struct strbuf *why = strbuf_new(64);
    struct cidr_list *l = cidr_list_parse(value ? value : "", why);

    if (l == NULL)
        log_fatal("%s: %s", name, strbuf_str(why));
    strbuf_free(&why);
    return l;
}

static void smtpd_tls_setup(void)
{
    struct tls_server_opts o = { 0 };
    struct strbuf *why;
    const char *level = var_smtpd_tls_security_level ? var_smtpd_tls_security_level : "";

    if (strcmp(level, "") == 0 || strcmp(level, "none") == 0)
        smtpd_g.tls_level = 0;
    else if (strcmp(level, "may") == 0)
        smtpd_g.tls_level = 1;
    else if (strcmp(level, "encrypt") == 0)
        smtpd_g.tls_level = 2;
    else
        log_fatal("smtpd_tls_security_level: unknown level \"%s\" (none, may, encrypt)", level);
    smtpd_g.wrapper = var_smtpd_tls_wrappermode;
    if (smtpd_g.tls_level == 0 && !smtpd_g.wrapper)
        return;
    if (var_smtpd_tls_cert_file == NULL || *var_smtpd_tls_cert_file == 0) {
        if (smtpd_g.tls_level == 1) {
            log_warn("smtpd_tls_security_level = may without smtpd_tls_cert_file: "
                     "TLS is not offered");
            smtpd_g.tls_level = 0;
            return;
        }
        log_fatal("TLS is required (%s) but smtpd_tls_cert_file is empty",
                  smtpd_g.wrapper ? "smtpd_tls_wrappermode" : "smtpd_tls_security_level");
    }
    why = strbuf_new(128);
    o.cert_file = var_smtpd_tls_cert_file;
    o.key_file = var_smtpd_tls_key_file && *var_smtpd_tls_key_file ? var_smtpd_tls_key_file
                                                                    : var_smtpd_tls_cert_file;
    o.protocols = smtpd_g.tls_level == 2 || smtpd_g.wrapper ? var_smtpd_tls_mandatory_protocols
                                                             : var_smtpd_tls_protocols;
    /* Postfix cipher grades mean "the default list" here: facteur's
     * default is forward-secret AEAD only, stronger than any grade. */
    o.ciphers = NULL;
    o.ca_file = var_smtpd_tls_CAfile && *var_smtpd_tls_CAfile ? var_smtpd_tls_CAfile : NULL;
    o.ask_client_cert = var_smtpd_tls_ask_ccert;
    smtpd_g.tls = tls_server_ctx_new(&o, why);
    if (smtpd_g.tls == NULL)
        log_fatal("TLS server setup: %s", strbuf_str(why));
    strbuf_free(&why);
}

static void smtpd_pre_jail(void)
{
    struct strbuf *why = strbuf_new(128);
    const char *nl = var_smtpd_forbid_bare_newline ? var_smtpd_forbid_bare_newline : "";

    /* Relative paths from here on work the same inside and outside a
     * chroot into the queue directory (and in -S mode). */
    if (chdir(var_queue_directory) < 0)
        log_fatal("chdir %s: %m", var_queue_directory);
    smtpd_g.queue_dir = ".";
    smtpd_peer_prepare();
    smtpd_tls_setup();
    if (strcmp(nl, "reject") == 0)
        smtpd_g.bare_nl = SMTPD_BARE_NL_REJECT;
    else if (strcmp(nl, "normalize") == 0 || strcmp(nl, "yes") == 0)
        smtpd_g.bare_nl = SMTPD_BARE_NL_NORMALIZE;
    else if (strcmp(nl, "no") == 0)
        smtpd_g.bare_nl = SMTPD_BARE_NL_NO;
    else
        log_fatal("smtpd_forbid_bare_newline: unknown value \"%s\" (normalize, reject, no)", nl);
    smtpd_g.bare_nl_exclusions = smtpd_cidr("smtpd_forbid_bare_newline_exclusions",
                                            var_smtpd_forbid_bare_newline_exclusions);
    smtpd_g.limit_exceptions = smtpd_cidr("smtpd_client_event_limit_exceptions",
                                          var_smtpd_client_event_limit_exceptions);
    smtpd_g.xclient_hosts = smtpd_cidr("smtpd_authorized_xclient_hosts",
                                       var_smtpd_authorized_xclient_hosts);
    smtpd_g.xforward_hosts = smtpd_cidr("smtpd_authorized_xforward_hosts",
                                        var_smtpd_authorized_xforward_hosts);
    smtpd_g.sasl_exceptions = smtpd_cidr("smtpd_sasl_exceptions_networks",
                                         var_smtpd_sasl_exceptions_networks);
    if (smtpd_check_init(why) < 0)
        log_fatal("%s", strbuf_str(why));
    smtpd_g.check_ready = true;
    if (cleanup_init(why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
}

static void smtpd_post_jail(void)
{
    smtpd_g.anvil = anvil_client_new("private/anvil", 2000);
}

static const struct server_desc smtpd_desc = {
    .name = "smtpd",
    .kind = SERVER_SINGLE,
    .pre_jail = smtpd_pre_jail,
    .post_jail = smtpd_post_jail,
    .service = smtpd_service,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &smtpd_desc);
}
