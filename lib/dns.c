/*
 * dns.c - the resolver half of lib/dns: a libunbound context, bounded
 * lookups, MX ordering and null MX.
 *
 * Called by smtpd_check (reject_unknown_*_domain, reject_rbl_client), by
 * the smtp client (MX routing, DANE TLSA) and by facteur-dns.  The
 * context is configured in dns_new(): a forwarder (tests point it at a
 * local unbound) or /etc/resolv.conf, and a trust anchor read from a file
 * here, not by libunbound later, so lookups work after chroot.
 *
 * Each lookup runs asynchronously in libunbound's helper thread and the
 * caller polls its descriptor until the context's timeout, then cancels:
 * a dead name server costs one timeout, never libunbound's own retry
 * schedule.  Record data is parsed by dns_rr_parse (dns_rr.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "dns.h"
#include "log.h"
#include "mem.h"

struct dns {
    struct ub_ctx *ctx;
    int timeout_ms;
    bool validating;
};

/* State of one asynchronous query. */
struct dns_query {
    bool done;
    int err;
    struct ub_result *result;
};

static int dns_ub_error(struct strbuf *why, const char *what, int rc)
{
    strbuf_printf(why, "%s: %s", what, ub_strerror(rc));
    return -1;
}

/* Read DS/DNSKEY lines of a zone-format anchor file into the context. */
static int dns_read_anchors(struct ub_ctx *ctx, const char *path, struct strbuf *why)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    int n = 0, rc;

    if (fp == NULL) {
        strbuf_printf(why, "open trust anchor file %s: %m", path);
        return -1;
    }
    while (fgets(line, sizeof(line), fp)) {
        char *p = line + strspn(line, " \t");

        line[strcspn(line, "\r\n")] = 0;
        if (*p == 0 || *p == ';' || *p == '#')
            continue;
        if (strstr(p, " DS ") == NULL && strstr(p, "\tDS\t") == NULL
            && strstr(p, " DNSKEY ") == NULL && strstr(p, "\tDNSKEY\t") == NULL)
            continue;
        if ((rc = ub_ctx_add_ta(ctx, p)) != 0) {
            fclose(fp);
            return dns_ub_error(why, path, rc);
        }
        n++;
    }
    fclose(fp);
    if (n == 0) {
        strbuf_printf(why, "trust anchor file %s: no DS or DNSKEY record", path);
        return -1;
    }
    return 0;
}

struct dns *dns_new(const char *resolver, const char *trust_anchor_file,
                    int timeout_ms, struct strbuf *why)
{
    struct dns *d = xcalloc(1, sizeof(*d));
    int rc;

    d->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    if ((d->ctx = ub_ctx_create()) == NULL) {
        strbuf_set(why, "cannot create a libunbound context");
        free(d);
        return NULL;
    }
    /* The administrator chose these servers: a local one is fine. */
    if ((rc = ub_ctx_set_option(d->ctx, "do-not-query-localhost:", "no")) != 0) {
        dns_ub_error(why, "do-not-query-localhost", rc);
        goto fail;
    }
    if (resolver && *resolver) {
        if ((rc = ub_ctx_set_fwd(d->ctx, resolver)) != 0) {
            strbuf_printf(why, "resolver address \"%.100s\": %s", resolver, ub_strerror(rc));
            goto fail;
        }
    } else if ((rc = ub_ctx_resolvconf(d->ctx, NULL)) != 0) {
        dns_ub_error(why, "/etc/resolv.conf", rc);
        goto fail;
    }
    if (trust_anchor_file && *trust_anchor_file) {
        if (dns_read_anchors(d->ctx, trust_anchor_file, why) < 0)
            goto fail;
        d->validating = true;
    }
    if ((rc = ub_ctx_async(d->ctx, 1)) != 0) {
        dns_ub_error(why, "libunbound threads", rc);
        goto fail;
    }
    return d;
fail:
    ub_ctx_delete(d->ctx);
    free(d);
    return NULL;
}

void dns_free(struct dns **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    ub_ctx_delete((*dp)->ctx);
    free(*dp);
    *dp = NULL;
}

int dns_add_local_zone(struct dns *d, const char *zone, const char *zone_type,
                       struct strbuf *why)
{
    int rc = ub_ctx_zone_add(d->ctx, zone, zone_type);

    if (rc != 0) {
        strbuf_printf(why, "local zone \"%.100s\": %s", zone, ub_strerror(rc));
        return -1;
    }
    return 0;
}

int dns_add_local_data(struct dns *d, const char *rr, struct strbuf *why)
{
    int rc = ub_ctx_data_add(d->ctx, rr);

    if (rc != 0) {
        strbuf_printf(why, "local data \"%.200s\": %s", rr, ub_strerror(rc));
        return -1;
    }
    return 0;
}

static void dns_callback(void *arg, int err, struct ub_result *result)
{
    struct dns_query *q = arg;

    q->done = true;
    q->err = err;
    q->result = result;
}

static long dns_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run one query to the end or the timeout.  0 with *result_r, or -1 with
 * why (a temporary failure). */
static int dns_resolve(struct dns *d, const char *name, uint16_t type,
                       struct ub_result **result_r, struct strbuf *why)
{
    struct dns_query q = {0};
    long deadline = dns_now_ms() + d->timeout_ms;
    int id, rc;

    if ((rc = ub_resolve_async(d->ctx, name, type, 1, &q, dns_callback, &id)) != 0)
        return dns_ub_error(why, "resolve", rc);
    while (!q.done) {
        struct pollfd pfd = {.fd = ub_fd(d->ctx), .events = POLLIN};
        long left = deadline - dns_now_ms();

        if (left <= 0) {
            ub_cancel(d->ctx, id);
            strbuf_printf(why, "timeout after %d ms", d->timeout_ms);
            return -1;
        }
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR) {
            ub_cancel(d->ctx, id);
            strbuf_printf(why, "poll: %m");
            return -1;
        }
        if (rc > 0 && (rc = ub_process(d->ctx)) != 0) {
            ub_cancel(d->ctx, id);
            return dns_ub_error(why, "process", rc);
        }
    }
    if (q.err != 0) {
        ub_resolve_free(q.result);
        return dns_ub_error(why, "resolve", q.err);
    }
    *result_r = q.result;
    return 0;
}

void dns_answer_free(struct dns_answer *ans)
{
    if (ans == NULL)
        return;
    for (size_t i = 0; i < ans->count; i++)
        dns_rr_clear(&ans->rr[i]);
    free(ans->rr);
    free(ans->canonname);
    memset(ans, 0, sizeof(*ans));
}

enum dns_status dns_lookup(struct dns *d, const char *name, uint16_t type,
                           struct dns_answer *ans, struct strbuf *why)
{
    struct ub_result *res = NULL;
    struct strbuf *rwhy;
    size_t n = 0, bad = 0;

    memset(ans, 0, sizeof(*ans));
    if (name == NULL || !dns_name_valid(name, true)) {
        strbuf_printf(why, "invalid domain name \"%.100s\"", name ? name : "");
        return ans->status = DNS_INVALID;
    }
    if (dns_resolve(d, name, type, &res, why) < 0)
        return ans->status = DNS_TEMPFAIL;
    if (res->bogus) {
        strbuf_printf(why, "DNSSEC validation failed: %.200s",
                      res->why_bogus ? res->why_bogus : "bogus answer");
        ub_resolve_free(res);
        return ans->status = DNS_TEMPFAIL;
    }
    ans->secure = d->validating && res->secure;
    if (res->canonname)
        ans->canonname = xstrdup(res->canonname);
    if (res->rcode == 3 || res->nxdomain) {
        ub_resolve_free(res);
        return ans->status = DNS_NXDOMAIN;
    }
    if (res->rcode != 0) {
        strbuf_printf(why, "server answered rcode %d%s", res->rcode,
                      res->rcode == 2 ? " (SERVFAIL)" : res->rcode == 5 ? " (REFUSED)" : "");
        ub_resolve_free(res);
        return ans->status = DNS_TEMPFAIL;
    }
    if (!res->havedata || res->data == NULL || res->data[0] == NULL) {
        ub_resolve_free(res);
        return ans->status = DNS_NODATA;
    }
    while (res->data[n] && n < DNS_RR_MAX)
        n++;
    ans->rr = xcalloc(n, sizeof(*ans->rr));
    rwhy = strbuf_new(64);
    for (size_t i = 0; i < n; i++) {
        if (res->len[i] < 0
            || dns_rr_parse(type, (const unsigned char *)res->data[i], (size_t)res->len[i],
                            &ans->rr[ans->count], rwhy) < 0) {
            log_warn("dns: %s %s: malformed record skipped: %s", name,
                     dns_type_name(type) ? dns_type_name(type) : "?", strbuf_str(rwhy));
            strbuf_reset(rwhy);
            bad++;
            continue;
        }
        ans->rr[ans->count++].ttl = (uint32_t)(res->ttl > 0 ? res->ttl : 0);
    }
    strbuf_free(&rwhy);
    ub_resolve_free(res);
    if (ans->count == 0) {
        strbuf_printf(why, "all %zu records malformed", bad);
        return ans->status = DNS_TEMPFAIL;
    }
    return ans->status = DNS_OK;
}

static int dns_mx_cmp(const void *a, const void *b)
{
    const struct dns_rr *x = a, *y = b;

    return x->pref < y->pref ? -1 : x->pref > y->pref;
}

enum dns_status dns_lookup_mx(struct dns *d, const char *domain,
                              struct dns_answer *ans, struct strbuf *why)
{
    if (dns_lookup(d, domain, DNS_T_MX, ans, why) != DNS_OK)
        return ans->status;
    /* RFC 7505: one MX, preference 0 by convention, exchange the root. */
    if (ans->count == 1 && ans->rr[0].text[0] == 0)
        return ans->status = DNS_NULLMX;
    /* Shuffle first, then a stable sort keeps the shuffle among equals
     * (qsort is not stable: do insertion sort, answers are small). */
    for (size_t i = ans->count; i > 1; i--) {
        size_t j = arc4random_uniform((uint32_t)i);
        struct dns_rr t = ans->rr[i - 1];

        ans->rr[i - 1] = ans->rr[j];
        ans->rr[j] = t;
    }
    for (size_t i = 1; i < ans->count; i++) {
        struct dns_rr t = ans->rr[i];
        size_t j = i;

        while (j > 0 && dns_mx_cmp(&ans->rr[j - 1], &t) > 0) {
            ans->rr[j] = ans->rr[j - 1];
            j--;
        }
        ans->rr[j] = t;
    }
    return DNS_OK;
}

enum dns_status dns_lookup_ptr(struct dns *d, const char *addr,
                               struct dns_answer *ans, struct strbuf *why)
{
    struct strbuf *name = strbuf_new(80);
    enum dns_status st;

    if (dns_reverse_name(addr, NULL, name) < 0) {
        memset(ans, 0, sizeof(*ans));
        strbuf_printf(why, "\"%.100s\" is not an IP address", addr ? addr : "");
        strbuf_free(&name);
        return ans->status = DNS_INVALID;
    }
    st = dns_lookup(d, strbuf_str(name), DNS_T_PTR, ans, why);
    strbuf_free(&name);
    return st;
}
