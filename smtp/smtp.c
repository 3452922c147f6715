/*
 * smtp.c - the SMTP/LMTP client delivery agent: main, request, outcome.
 *
 * master runs one binary for the "smtp", "relay" and LMTP services
 * (SERVER_SINGLE, one delivery request per connection from qmgr, lib/
 * deliver_proto).  Each request is SMTP or LMTP: LMTP when the service
 * name begins with "lmtp" (Postfix's lmtp is its smtp client under
 * another name), or when the next hop is "unix:path" or "inet:host:port"
 * (local_transport = local:unix:private/lmtp reaches lmtpd through the
 * "local" smtp service); smtp_dest_parse decides.  For a request
 * this file takes the shared lock on the queue file that tells a
 * restarted qmgr the file is still being delivered (and drops the
 * request if the qmgr that sent it has died meanwhile), opens it (read-write
 * when qmgr asks us to write the done mark of each recipient the moment
 * its 250 arrives: the window in which a kill of this process or of qmgr
 * makes the recipient go out twice shrinks to that instant; qmgr still
 * marks and syncs from our reply), resolves the next hop
 * (smtp_connect.c), tries hosts in order while recipients remain open
 * (connection failures and 4xx replies move on to the next MX, up to
 * smtp_mx_session_limit sessions), then logs one Postfix line per
 * recipient and answers qmgr.  The request is checked strictly by
 * deliver_request_parse; a malformed one is logged and the connection
 * dropped (qmgr then defers everything it asked for).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "attr.h"
#include "conf.h"
#include "deliver_proto.h"
#include "dns.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "server.h"
#include "smtp.h"
#include "tls.h"

#define DNS_TIMEOUT_MS 10000

struct smtp_globals smtp_g;

long smtp_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long)tv.tv_sec * 1000000L + tv.tv_usec;
}

/* ---- recipient outcomes --------------------------------------------- */

void smtp_rcpt_set(struct smtp_delivery *d, size_t i, bool final, int status, const char *dsn,
                   const char *text)
{
    struct smtp_rcpt_state *r = &d->rs[i];
    char want = status == DELIVER_SENT ? '2' : status == DELIVER_BOUNCE ? '5' : '4';

    r->final = final;
    r->status = status;
    if (final && status == DELIVER_SENT && d->req.mark_sent && d->qf != NULL) {
        struct strbuf *why = strbuf_new(64);
        if (qfile_rcpt_set(d->qf, (size_t)d->req.rcpts[i].index, QFILE_RCPT_SENT, why) < 0)
            log_warn("%s: cannot mark <%s> done: %s", d->req.qid, d->req.rcpts[i].addr,
                     strbuf_str(why));
        strbuf_free(&why);
    }
    /* The enhanced code must be valid and of the outcome's class
     * (deliver_reply_parse checks it): a 5.x.x reply that only defers
     * becomes 4.x.x. */
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn && *dsn ? dsn : "4.0.0");
    r->dsn[0] = want;
    if (!deliver_dsn_valid(r->dsn))
        snprintf(r->dsn, sizeof(r->dsn), "%c.0.0", want);
    strbuf_set(r->text, text && *text ? text : "delivery status unknown");
}

void smtp_rcpt_set_open(struct smtp_delivery *d, bool final, int status, const char *dsn,
                        const char *text)
{
    for (size_t i = 0; i < d->req.nrcpt; i++)
        if (!d->rs[i].final)
            smtp_rcpt_set(d, i, final, status, dsn, text);
}

size_t smtp_rcpt_open_count(const struct smtp_delivery *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->req.nrcpt; i++)
        n += !d->rs[i].final;
    return n;
}

/* ---- one request -------------------------------------------------------- */

static void try_hosts(struct smtp_delivery *d, struct smtp_dest *dest, enum smtp_tls_level level)
{
    struct smtp_host *hosts = NULL;
    struct strbuf *why = strbuf_new(256);
    const char *dsn = "4.0.0";
    int status = DELIVER_DEFER;
    int n = smtp_resolve(dest, &hosts, &status, &dsn, why);
    long sessions = 0;
    int timeout = (int)(dest->lmtp ? var_lmtp_connect_timeout : var_smtp_connect_timeout);

    if (n < 0) {
        smtp_rcpt_set_open(d, true, status, dsn, strbuf_str(why));
        strbuf_free(&why);
        return;
    }
    for (int i = 0; i < n && smtp_rcpt_open_count(d) > 0; i++) {
        bool plain = false;
        if (var_smtp_mx_session_limit > 0 && sessions >= var_smtp_mx_session_limit)
            break;
again:;
        int fd = smtp_connect_host(&hosts[i], dest->port, timeout, why);
        if (fd < 0) {
            log_info("%s", strbuf_str(why));
            smtp_rcpt_set_open(d, false, DELIVER_DEFER, "4.4.1", strbuf_str(why));
            d->throttle = true;
            continue;
        }
        struct smtp_session ss = { .d = d, .dest = dest, .host = &hosts[i], .tls_level = level,
                                   .tls_plain_retry = plain };
        ss.peer = xasprintf("%s[%s]", hosts[i].name, hosts[i].addr);
        ss.relay = dest->is_unix ? xstrdup(ss.peer)
                                 : xasprintf("%s[%s]:%u", hosts[i].name, hosts[i].addr, dest->port);
        d->conn_us = smtp_now_us();
        free(d->relay);
        d->relay = xstrdup(ss.relay);
        enum smtp_sess_result res = smtp_session_run(&ss, fd);
        smtp_session_free(&ss);
        sessions++;
        if (res == SMTP_SESS_PLAIN && !plain) {
            plain = true;
            goto again;
        }
    }
    smtp_hosts_free(&hosts, (size_t)n);
    strbuf_free(&why);
}

/* True when qmgr has closed its end: it died after sending the request. */
static bool smtp_qmgr_gone(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

/* Returns false when the request is dropped undelivered (qmgr is gone). */
static bool deliver(struct smtp_delivery *d, int qmgr_fd)
{
    struct strbuf *why = strbuf_new(128);
    struct smtp_dest dest;
    enum smtp_tls_level level;
    bool corrupt = false;

    d->lock_fd = deliver_lock_queue_file(d->req.path, why);
    if (d->lock_fd < 0) {
        log_warn("%s: %s", d->req.qid, strbuf_str(why));
        smtp_rcpt_set_open(d, true, DELIVER_DEFER, "4.3.0", "queue file read error");
        strbuf_free(&why);
        return true;
    }
    /* A qmgr started after the one that sent this request loads the file
     * unless our lock is on it: if it checked before we took the lock,
     * its predecessor is dead, and the request is its to make again. */
    if (smtp_qmgr_gone(qmgr_fd)) {
        log_info("%s: qmgr went away before the delivery started: request dropped",
                 d->req.qid);
        strbuf_free(&why);
        return false;
    }
    d->qf = qfile_open(d->req.path, d->req.mark_sent ? QFILE_OPEN_RDWR : 0, &corrupt, why);
    if (d->qf == NULL) {
        log_warn("%s: cannot open queue file %s: %s", d->req.qid, d->req.path, strbuf_str(why));
        smtp_rcpt_set_open(d, true, DELIVER_DEFER, "4.3.0", "queue file read error");
        strbuf_free(&why);
        return true;
    }
    d->env = qfile_env(d->qf);
    if (strcmp(qfile_qid(d->qf), d->req.qid) != 0) {
        log_warn("%s: queue file %s has queue ID \"%s\": request refused", d->req.qid,
                 d->req.path, qfile_qid(d->qf));
        smtp_rcpt_set_open(d, true, DELIVER_DEFER, "4.3.0", "queue file mismatch");
        strbuf_free(&why);
        return true;
    }
    if (smtp_dest_parse(d->req.nexthop, smtp_g.lmtp, &dest, why) < 0) {
        log_warn("%s: %s", d->req.qid, strbuf_str(why));
        smtp_rcpt_set_open(d, true, DELIVER_DEFER, "4.3.5", strbuf_str(why));
    } else if (smtp_tls_level_for(&dest, &level, why) < 0) {
        log_warn("%s: %s", d->req.qid, strbuf_str(why));
        smtp_rcpt_set_open(d, true, DELIVER_DEFER, "4.7.5", strbuf_str(why));
    } else {
        try_hosts(d, &dest, level);
    }
    smtp_dest_free(&dest);
    strbuf_free(&why);
    return true;
}

/* One Postfix line per recipient, and the reply to qmgr. */
static void finish(struct smtp_delivery *d, struct deliver_reply *rep)
{
    struct strbuf *line = strbuf_new(256);
    long now = smtp_now_us();
    bool any_answer = false;

    deliver_reply_init(rep, d->req.nrcpt);
    deliver_reply_set_relay(rep, d->relay ? d->relay : "none");
    for (size_t i = 0; i < d->req.nrcpt; i++) {
        struct smtp_rcpt_state *r = &d->rs[i];
        if (r->status != DELIVER_DEFER)
            any_answer = true;
        deliver_reply_set(rep, i, r->status, r->dsn, strbuf_str(r->text));
        strbuf_printf(line, "%s: to=<%s>, relay=%s, ", d->req.qid, d->req.rcpts[i].addr,
                      d->relay ? d->relay : "none");
        deliver_format_delays(line, d->req.arrival_us, d->req.active_us, d->start_us,
                              d->conn_us ? d->conn_us : d->start_us, now);
        strbuf_appendf(line, ", dsn=%s, status=%s (%s)", r->dsn,
                       deliver_status_name(r->status), strbuf_str(r->text));
        log_info("%s", strbuf_str(line));
    }
    rep->throttle = d->throttle && !any_answer;
    strbuf_free(&line);
}

static void smtp_service(struct stream *client)
{
    struct attr_list *l = attr_new();
    struct strbuf *why = strbuf_new(128);
    struct smtp_delivery d;
    struct deliver_reply rep;
    int r;

    memset(&d, 0, sizeof(d));
    d.lock_fd = -1;
    deliver_request_init(&d.req);
    stream_set_timeout(client, (int)var_qmgr_ipc_timeout * 1000);
    r = attr_read(client, l, NULL, &deliver_limits, why);
    if (r <= 0) {
        if (r < 0)
            log_warn("malformed delivery request from qmgr: %s", strbuf_str(why));
        goto out;
    }
    if (deliver_request_parse(l, &d.req, why) < 0) {
        log_warn("malformed delivery request from qmgr: %s", strbuf_str(why));
        goto out;
    }
    d.start_us = smtp_now_us();
    d.rs = xcalloc(d.req.nrcpt, sizeof(*d.rs));
    for (size_t i = 0; i < d.req.nrcpt; i++) {
        d.rs[i].text = strbuf_new(64);
        smtp_rcpt_set(&d, i, false, DELIVER_DEFER, "4.3.0", "delivery status unknown");
    }
    if (deliver(&d, stream_fd(client))) {
        finish(&d, &rep);
        deliver_reply_format(&rep, l);
        if (attr_write(client, l) < 0)
            log_warn("%s: cannot send the delivery reply to qmgr: %s", d.req.qid,
                     stream_strerror(client));
        deliver_reply_clear(&rep);
    }
    for (size_t i = 0; i < d.req.nrcpt; i++)
        strbuf_free(&d.rs[i].text);
    free(d.rs);
    qfile_close(&d.qf);
    /* Released only now: our marks are in the file and qmgr has the reply. */
    if (d.lock_fd >= 0)
        close(d.lock_fd);
    free(d.relay);
out:
    deliver_request_clear(&d.req);
    attr_free(&l);
    strbuf_free(&why);
}

/* A TLS security level other than none (and not empty). */
static bool tls_level_wanted(const char *level)
{
    return *level && strcasecmp(level, "none") != 0;
}

static void smtp_pre_jail(void)
{
    struct strbuf *why = strbuf_new(128);
    const char *svc = server_service_name();
    /* Any service may get an LMTP request (next hop unix: or inet:), and
     * an "lmtp..." service only LMTP ones: the client context is needed
     * when a level either mode can use asks for TLS. */
    smtp_g.lmtp = svc && strncmp(svc, "lmtp", 4) == 0;
    bool want_tls = tls_level_wanted(var_lmtp_tls_security_level)
                    || (!smtp_g.lmtp && tls_level_wanted(var_smtp_tls_security_level));

    /* DNS: libunbound, set up here because it reads resolv.conf and the
     * trust anchor, which a chroot hides. */
    char **lookup = conf_list_split(var_smtp_host_lookup);
    bool use_dns = false;
    for (char **p = lookup; *p; p++)
        use_dns |= strcasecmp(*p, "dns") == 0;
    conf_list_free(&lookup);
    if (strcasecmp(var_smtp_dns_support_level, "disabled") == 0)
        use_dns = false;
    smtp_g.dnssec = strcasecmp(var_smtp_dns_support_level, "dnssec") == 0;
    if (use_dns) {
        smtp_g.dns = dns_new(var_smtp_dns_resolver_address,
                             smtp_g.dnssec ? var_smtp_dns_trust_anchor_file : NULL,
                             DNS_TIMEOUT_MS, why);
        if (smtp_g.dns == NULL)
            log_fatal("cannot set up the DNS resolver: %s", strbuf_str(why));
    }

    if (*var_smtp_tls_policy_maps) {
        smtp_g.tls_policy = maps_open(var_smtp_tls_policy_maps, 0, why);
        if (smtp_g.tls_policy == NULL)
            log_fatal("smtp_tls_policy_maps: %s", strbuf_str(why));
    }
    if (var_smtp_sasl_auth_enable && *var_smtp_sasl_password_maps) {
        smtp_g.sasl_passwd = maps_open(var_smtp_sasl_password_maps, 0, why);
        if (smtp_g.sasl_passwd == NULL)
            log_fatal("smtp_sasl_password_maps: %s", strbuf_str(why));
    }
    if (smtp_g.tls_policy || want_tls) {
        struct tls_client_opts o = {
            .ca_file = var_smtp_tls_CAfile,
            .ca_path = var_smtp_tls_CApath,
            .protocols = var_smtp_tls_protocols,
            .cert_file = var_smtp_tls_cert_file,
            .key_file = var_smtp_tls_key_file,
        };
        smtp_g.tls = tls_client_ctx_new(&o, why);
        if (smtp_g.tls == NULL)
            log_warn("TLS disabled in the SMTP client: %s", strbuf_str(why));
    }
    strbuf_free(&why);
}

static const struct server_desc smtp_desc = {
    .name = "smtp",
    .kind = SERVER_SINGLE,
    .pre_jail = smtp_pre_jail,
    .service = smtp_service,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &smtp_desc);
}
