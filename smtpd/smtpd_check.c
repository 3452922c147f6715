/*
 * smtpd_check.c - smtpd's access restrictions: the glue between the SMTP
 * session (struct smtpd_check_ctx) and lib/restrict.
 *
 * Owns the process-wide restriction state and resolver context, built in
 * smtpd's pre_jail hook (tables and /etc/resolv.conf are opened before
 * chroot) and used for every session of the process.  The decisions, the
 * reply texts and the lookup orders live in lib/restrict (unit-tested
 * there); this file adds the one thing a daemon must do on a refusal:
 * log Postfix's "NOQUEUE: reject: ..." line, which pflogsumm and
 * fail2ban read.
 */
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "params.h"
#include "restrict.h"
#include "smtpd_check.h"
#include "strbuf.h"

/* Bound on one DNS lookup made for a restriction (unknown domains,
 * DNSBLs): a slow resolver delays one SMTP reply, not the session. */
#define SMTPD_CHECK_DNS_TIMEOUT_MS 10000

static struct restrictions *smtpd_restrictions;
static struct dns *smtpd_dns;

int smtpd_check_init(struct strbuf *why)
{
    struct strbuf *dwhy = strbuf_new(64);
    struct restrictions *r;
    struct dns *d;

    d = dns_new(var_smtp_dns_resolver_address, NULL, SMTPD_CHECK_DNS_TIMEOUT_MS, dwhy);
    if (d == NULL)
        log_warn("DNS resolver unavailable, DNS-based restrictions will defer: %s",
                 strbuf_str(dwhy));
    strbuf_free(&dwhy);
    if ((r = restrict_new(d, why)) == NULL) {
        dns_free(&d);
        return -1;
    }
    smtpd_check_deinit();
    smtpd_restrictions = r;
    smtpd_dns = d;
    return 0;
}

void smtpd_check_deinit(void)
{
    restrict_free(&smtpd_restrictions);
    dns_free(&smtpd_dns);
}

int smtpd_check(enum smtpd_check_stage stage, const struct smtpd_check_ctx *ctx,
                struct strbuf *reply_r)
{
    static const enum restrict_stage stages[] = {
        [SMTPD_CHECK_CONNECT] = RESTRICT_CONNECT, [SMTPD_CHECK_HELO] = RESTRICT_HELO,
        [SMTPD_CHECK_MAIL] = RESTRICT_MAIL, [SMTPD_CHECK_RCPT] = RESTRICT_RCPT,
        [SMTPD_CHECK_DATA] = RESTRICT_DATA, [SMTPD_CHECK_EOD] = RESTRICT_EOD,
    };
    struct restrict_ctx rc = {
        .client_name = ctx->client_name, .client_addr = ctx->client_addr,
        .helo = ctx->helo, .sender = ctx->sender, .recipient = ctx->recipient,
        .sasl_user = ctx->sasl_user, .protocol = ctx->protocol, .queue_id = ctx->queue_id,
        .tls = ctx->tls, .rcpt_count = ctx->rcpt_count, .msg_size = ctx->msg_size,
    };
    struct strbuf *line;
    int st;

    if ((unsigned)stage >= sizeof(stages) / sizeof(stages[0]))
        log_panic("smtpd_check: bad stage %d", (int)stage);
    if (smtpd_restrictions == NULL) {
        /* Never accept unchecked: init failed or was not called. */
        log_warn("smtpd_check: restrictions are not initialized");
        strbuf_set(reply_r, "451 4.3.5 Server configuration error");
        return -1;
    }
    st = restrict_check(smtpd_restrictions, stages[stage], &rc, reply_r);
    if (st == RESTRICT_OK)
        return 0;
    line = strbuf_new(256);
    restrict_log_text(stages[stage], &rc, strbuf_str(reply_r), line);
    log_info("%s", strbuf_str(line));
    strbuf_free(&line);
    return st == RESTRICT_REJECT ? 1 : -1;
}
