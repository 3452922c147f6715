/*
 * smtp_tls.c - TLS policy of the SMTP client.
 *
 * Decides the level for a destination (smtp_tls_policy_maps first: keys
 * the next hop as given, its host or domain, then each parent domain as
 * ".parent"; then smtp_tls_security_level, or lmtp_tls_security_level for
 * an LMTP request, see smtp_dest_parse), runs STARTTLS through lib/tls (which discards anything the
 * server pipelined before the handshake), checks the certificate as the
 * level requires, and logs Postfix's "Anonymous/Untrusted/Trusted/Verified
 * TLS connection established to host[addr]:port: ..." line.
 *
 *   none      never STARTTLS
 *   may       STARTTLS when offered; a refused STARTTLS continues in
 *             clear, a failed handshake reconnects in clear (once)
 *   encrypt   STARTTLS required, any certificate
 *   dane      TLSA-authenticated TLS when the MX and TLSA answers are
 *             DNSSEC-secure; without secure TLSA records it acts as may
 *   verify    encrypt + a certificate chain valid under smtp_tls_CAfile
 *             (or the system store) naming the MX host
 *   secure    as verify, but the name must be the next-hop domain, so a
 *             forged MX answer cannot redirect the mail
 * A failure at a mandatory level defers (4.7.x) and tries the next host.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "smtp.h"
#include "tls.h"

static int fail(struct smtp_session *ss, enum smtp_sess_result *res_r, const char *dsn);

static const struct {
    const char *name;
    enum smtp_tls_level level;
} tls_levels[] = {
    { "none", SMTP_TLS_NONE },
    { "may", SMTP_TLS_MAY },
    { "encrypt", SMTP_TLS_ENCRYPT },
    { "dane", SMTP_TLS_DANE },
    { "dane-only", SMTP_TLS_DANE },
    { "verify", SMTP_TLS_VERIFY },
    { "secure", SMTP_TLS_SECURE },
};

const char *smtp_tls_level_name(enum smtp_tls_level level)
{
    for (size_t i = 0; i < sizeof(tls_levels) / sizeof(tls_levels[0]); i++)
        if (tls_levels[i].level == level)
            return tls_levels[i].name;
    return "none";
}

static int level_parse(const char *word, size_t len, enum smtp_tls_level *level_r)
{
    if (len == 0) {
        *level_r = SMTP_TLS_NONE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(tls_levels) / sizeof(tls_levels[0]); i++)
        if (strlen(tls_levels[i].name) == len && strncasecmp(tls_levels[i].name, word, len) == 0) {
            *level_r = tls_levels[i].level;
            return 0;
        }
    return -1;
}

int smtp_tls_level_for(const struct smtp_dest *dest, enum smtp_tls_level *level_r,
                       struct strbuf *why)
{
    const char *def = dest->lmtp ? var_lmtp_tls_security_level : var_smtp_tls_security_level;

    if (dest->is_unix) {
        *level_r = SMTP_TLS_NONE;
        return 0;
    }
    if (smtp_g.tls_policy) {
        struct strbuf *val = strbuf_new(64), *key = strbuf_new(64);
        int r = maps_lookup(smtp_g.tls_policy, dest->nexthop, val, why);
        if (r == MAP_NOTFOUND)
            r = maps_lookup(smtp_g.tls_policy, dest->domain, val, why);
        for (const char *p = strchr(dest->domain, '.'); r == MAP_NOTFOUND && p && p[1];
             p = strchr(p + 1, '.')) {
            strbuf_set(key, p);
            r = maps_lookup(smtp_g.tls_policy, strbuf_str(key), val, why);
        }
        if (r == MAP_FOUND) {
            const char *v = strbuf_str(val);
            v += strspn(v, " \t");
            size_t n = strcspn(v, " \t");
            if (level_parse(v, n, level_r) < 0) {
                strbuf_printf(why, "unknown TLS level \"%.*s\" in smtp_tls_policy_maps for %s",
                              (int)(n > 40 ? 40 : n), v, dest->nexthop);
                r = MAP_ERROR;
            }
        } else if (r == MAP_ERROR) {
            strbuf_printf(key, "TLS policy lookup for %s failed: %s", dest->nexthop,
                          strbuf_str(why));
            strbuf_set(why, strbuf_str(key));
        }
        strbuf_free(&val);
        strbuf_free(&key);
        if (r == MAP_FOUND)
            return 0;
        if (r == MAP_ERROR)
            return -1;
    }
    if (level_parse(def, strlen(def), level_r) < 0) {
        strbuf_printf(why, "unknown TLS security level \"%s\"", def);
        return -1;
    }
    return 0;
}

/* Number of TLSA records RFC 7672 3.1.3 lets us use (DANE-TA, DANE-EE). */
static int dane_usable(const struct dns_answer *tlsa)
{
    int n = 0;

    for (size_t i = 0; i < tlsa->count; i++) {
        const struct dns_rr *rr = &tlsa->rr[i];
        if (rr->type == DNS_T_TLSA && (rr->usage == 2 || rr->usage == 3) && rr->selector <= 1
            && rr->mtype <= 2 && rr->data_len > 0)
            n++;
    }
    return n;
}

/* DANE: the host's TLSA records, when DNSSEC-validated and usable.
 * 1 found (ans filled), 0 none (act as may), -1 temporary failure. */
static int dane_tlsa_lookup(const struct smtp_session *ss, struct dns_answer *ans,
                            struct strbuf *why)
{
    struct strbuf *name;
    int r = 0;

    memset(ans, 0, sizeof(*ans));
    if (smtp_g.dns == NULL || !smtp_g.dnssec || !ss->host->secure)
        return 0;
    name = strbuf_new(64);
    strbuf_printf(name, "_%u._tcp.%s", ss->dest->port, ss->host->name);
    enum dns_status st = dns_lookup(smtp_g.dns, strbuf_str(name), DNS_T_TLSA, ans, why);
    if (st == DNS_OK && ans->secure && dane_usable(ans) > 0)
        r = 1;
    else if (st == DNS_TEMPFAIL)
        r = -1;
    strbuf_free(&name);
    return r;
}

/* STARTTLS authenticated by TLSA records: mandatory once records exist. */
static int dane_negotiate(struct smtp_session *ss, const struct dns_answer *tlsa,
                          enum smtp_sess_result *res_r)
{
    struct strbuf *why;

    if (!(ss->feat & SMTP_FEAT_STARTTLS)) {
        strbuf_printf(ss->why, "TLS is required, but was not offered by host %s", ss->peer);
        return fail(ss, res_r, "4.7.4");
    }
    if (smtp_chat(ss, "STARTTLS", (int)var_smtp_helo_timeout, "sending STARTTLS") < 0) {
        smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, "4.4.2", strbuf_str(ss->why));
        *res_r = SMTP_SESS_NEXT;
        return -1;
    }
    if (ss->reply.code != 220) {
        strbuf_printf(ss->why, "TLS is required, but host %s refused to start TLS: ",
                      ss->peer);
        smtp_reply_oneline(ss, ss->why);
        return fail(ss, res_r, "4.7.5");
    }
    if (smtp_g.tls == NULL) {
        strbuf_printf(ss->why, "TLS is required for %s, but TLS support is not available "
                      "(see the TLS warning at startup)", ss->peer);
        return fail(ss, res_r, "4.7.5");
    }
    struct tls_dane_rr *rrs = xcalloc(tlsa->count ? tlsa->count : 1, sizeof(*rrs));
    size_t n = 0;
    for (size_t i = 0; i < tlsa->count; i++) {
        const struct dns_rr *rr = &tlsa->rr[i];
        if (rr->type != DNS_T_TLSA)
            continue;
        rrs[n++] = (struct tls_dane_rr){ .usage = rr->usage, .selector = rr->selector,
                                         .mtype = rr->mtype, .data = rr->data,
                                         .len = rr->data_len };
    }
    why = strbuf_new(128);
    int rc = tls_client_start_dane(smtp_g.tls, ss->s, (int)var_smtp_starttls_timeout * 1000,
                                   ss->host->name, rrs, n, &ss->tls, why);
    free(rrs);
    if (rc < 0) {
        strbuf_printf(ss->why, "Cannot start TLS with %s: %s (level dane)", ss->peer,
                      strbuf_str(why));
        strbuf_free(&why);
        ss->lost = true;
        return fail(ss, res_r, "4.7.5");
    }
    strbuf_free(&why);
    log_info("Verified TLS connection established to %s: %s (DANE)", ss->relay,
             tls_conn_summary(ss->tls));
    return 0;
}

static int fail(struct smtp_session *ss, enum smtp_sess_result *res_r, const char *dsn)
{
    smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, dsn, strbuf_str(ss->why));
    log_info("%s: %s", ss->d->req.qid, strbuf_str(ss->why));
    *res_r = SMTP_SESS_NEXT;
    return -1;
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int smtp_tls_negotiate(struct smtp_session *ss, enum smtp_sess_result *res_r)
{
    enum smtp_tls_level level = ss->tls_level;
    const char *sni = NULL, *verify_name = NULL;
    struct strbuf *why;

    if (ss->tls_plain_retry || ss->dest->is_unix)
        level = SMTP_TLS_NONE;
    if (level == SMTP_TLS_DANE) {
        struct dns_answer tlsa;
        why = strbuf_new(64);
        int t = dane_tlsa_lookup(ss, &tlsa, why);
        if (t < 0) {
            strbuf_printf(ss->why, "TLSA lookup error for %s:%u: %s", ss->host->name,
                          ss->dest->port, strbuf_str(why));
            strbuf_free(&why);
            dns_answer_free(&tlsa);
            return fail(ss, res_r, "4.7.5");
        }
        strbuf_free(&why);
        if (t > 0) {
            int r = dane_negotiate(ss, &tlsa, res_r);
            dns_answer_free(&tlsa);
            return r;
        }
        dns_answer_free(&tlsa);
        /* No secure TLSA records: opportunistic TLS (RFC 7672 2.2). */
        level = SMTP_TLS_MAY;
    }
    if (level == SMTP_TLS_NONE)
        return 0;
    if (smtp_g.tls == NULL) {
        if (level == SMTP_TLS_MAY)
            return 0;
        strbuf_printf(ss->why, "TLS is required for %s, but TLS support is not available "
                      "(see the TLS warning at startup)", ss->peer);
        return fail(ss, res_r, "4.7.5");
    }
    if (!(ss->feat & SMTP_FEAT_STARTTLS)) {
        if (level == SMTP_TLS_MAY)
            return 0;
        strbuf_printf(ss->why, "TLS is required, but was not offered by host %s", ss->peer);
        return fail(ss, res_r, "4.7.4");
    }
    if (smtp_chat(ss, "STARTTLS", (int)var_smtp_helo_timeout, "sending STARTTLS") < 0) {
        smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, "4.4.2", strbuf_str(ss->why));
        *res_r = SMTP_SESS_NEXT;
        return -1;
    }
    if (ss->reply.code != 220) {
        if (level == SMTP_TLS_MAY)
            return 0;
        strbuf_printf(ss->why, "TLS is required, but host %s refused to start TLS: ",
                      ss->peer);
        smtp_reply_oneline(ss, ss->why);
        return fail(ss, res_r, "4.7.5");
    }
    if (!is_ip_literal(ss->host->name))
        sni = ss->host->name;
    if (level == SMTP_TLS_VERIFY)
        verify_name = ss->host->name;
    else if (level == SMTP_TLS_SECURE)
        verify_name = ss->dest->domain;
    why = strbuf_new(128);
    if (tls_client_start(smtp_g.tls, ss->s, (int)var_smtp_starttls_timeout * 1000, sni,
                         verify_name, &ss->tls, why) < 0) {
        strbuf_printf(ss->why, "Cannot start TLS with %s: %s", ss->peer, strbuf_str(why));
        strbuf_free(&why);
        ss->lost = true;
        if (level == SMTP_TLS_MAY) {
            log_info("%s: %s; retrying without TLS", ss->d->req.qid, strbuf_str(ss->why));
            *res_r = SMTP_SESS_PLAIN;
            return -1;
        }
        return fail(ss, res_r, "4.7.5");
    }
    strbuf_free(&why);
    bool verified = tls_conn_peer_verified(ss->tls);
    const char *trust;
    if (level >= SMTP_TLS_VERIFY) {
        if (!verified) {
            strbuf_printf(ss->why, "Server certificate not verified: host %s, %s "
                          "(level %s)", ss->peer,
                          tls_conn_peer_cert(ss->tls) ? "certificate rejected"
                                                      : "no certificate",
                          smtp_tls_level_name(level));
            return fail(ss, res_r, "4.7.5");
        }
        trust = "Verified";
    } else if (!tls_conn_peer_cert(ss->tls)) {
        trust = "Anonymous";
    } else {
        trust = verified ? "Trusted" : "Untrusted";
    }
    log_info("%s TLS connection established to %s: %s", trust, ss->relay,
             tls_conn_summary(ss->tls));
    return 0;
}
