/*
 * smtpd_peer.c - who the client is, and how much it may do.
 *
 * The client's address comes from the socket; its name from a reverse
 * lookup that must be confirmed by a forward lookup of that name giving
 * the address back (otherwise "unknown", as Postfix), unless
 * smtpd_peername_lookup is off.  The per-client limits
 * (smtpd_client_connection_count_limit, _connection_rate_limit,
 * _message_rate_limit, _recipient_rate_limit) are counted by anvil(8),
 * shared by every smtpd process; anvil is advisory: when it does not
 * answer, nothing is limited.  Clients in
 * smtpd_client_event_limit_exceptions are never limited.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "anvil_client.h"
#include "cidr.h"
#include "log.h"
#include "params.h"
#include "smtpd.h"

/* Printable address without IPv4-mapped prefix; port as text. */
static int peer_format(const struct sockaddr_storage *ss, char *addr, size_t alen,
                       char *port, size_t plen)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);

    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
        return -1;
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return -1;
    if (strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.') != NULL)
        memmove(host, host + 7, strlen(host + 7) + 1);
    smtpd_copy(addr, alen, host);
    smtpd_copy(port, plen, serv);
    return 0;
}

/* Reverse lookup, confirmed forward; "unknown" otherwise. */
static void peer_lookup_name(struct smtpd_session *s, const struct sockaddr_storage *ss)
{
    char host[NI_MAXHOST];
    struct addrinfo hints, *res = NULL, *ai;
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    bool ok = false;

    snprintf(s->name, sizeof(s->name), "unknown");
    if (!var_smtpd_peername_lookup)
        return;
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), NULL, 0,
                    NI_NAMEREQD) != 0)
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        log_warn("hostname %s does not resolve to address %s", host, s->addr);
        return;
    }
    for (ai = res; ai && !ok; ai = ai->ai_next) {
        char a[SMTPD_ADDR_MAX], p[8];
        struct sockaddr_storage tmp;

        memset(&tmp, 0, sizeof(tmp));
        memcpy(&tmp, ai->ai_addr, ai->ai_addrlen < sizeof(tmp) ? ai->ai_addrlen : sizeof(tmp));
        if (peer_format(&tmp, a, sizeof(a), p, sizeof(p)) == 0 && strcmp(a, s->addr) == 0)
            ok = true;
    }
    freeaddrinfo(res);
    if (ok)
        smtpd_copy(s->name, sizeof(s->name), host);
    else
        log_warn("hostname %s does not resolve to address %s", host, s->addr);
}

void smtpd_peer_prepare(void)
{
    struct sockaddr_in sin;
    char host[NI_MAXHOST];
    struct addrinfo hints, *res = NULL;

    if (!var_smtpd_peername_lookup)
        return;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)getnameinfo((struct sockaddr *)&sin, sizeof(sin), host, sizeof(host), NULL, 0,
                      NI_NAMEREQD);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo("localhost", NULL, &hints, &res) == 0)
        freeaddrinfo(res);
}

void smtpd_peer_namaddr(struct smtpd_session *s)
{
    strbuf_printf(s->namaddr, "%s[%s]", s->name, s->addr[0] ? s->addr : "unknown");
    if (var_smtpd_client_port_logging && s->port[0])
        strbuf_appendf(s->namaddr, ":%s", s->port);
}

void smtpd_peer_init(struct smtpd_session *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = stream_fd(s->client);

    snprintf(s->name, sizeof(s->name), "unknown");
    memset(&ss, 0, sizeof(ss));
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0
        && peer_format(&ss, s->addr, sizeof(s->addr), s->port, sizeof(s->port)) == 0) {
        struct sockaddr_storage ls;
        socklen_t llen = sizeof(ls);

        memset(&ls, 0, sizeof(ls));
        if (getsockname(fd, (struct sockaddr *)&ls, &llen) == 0)
            peer_format(&ls, s->laddr, sizeof(s->laddr), s->lport, sizeof(s->lport));
        peer_lookup_name(s, &ss);
    } else if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0
               && ss.ss_family == AF_UNIX) {
        /* A local socket (tests, a filter): a local client. */
        snprintf(s->name, sizeof(s->name), "localhost");
        snprintf(s->addr, sizeof(s->addr), "127.0.0.1");
    }
    smtpd_copy(s->real_addr, sizeof(s->real_addr), s->addr);
    s->limits_exempt = cidr_list_match(smtpd_g.limit_exceptions, s->addr) == 1;
    s->bare_nl_exempt = cidr_list_match(smtpd_g.bare_nl_exclusions, s->addr) == 1;
    smtpd_peer_namaddr(s);
}

int smtpd_peer_connect_limits(struct smtpd_session *s)
{
    struct anvil_client_counts c;

    if (smtpd_g.anvil == NULL || s->addr[0] == 0)
        return 0;
    if (var_smtpd_client_connection_count_limit == 0
        && var_smtpd_client_connection_rate_limit == 0 && var_smtpd_client_message_rate_limit == 0
        && var_smtpd_client_recipient_rate_limit == 0)
        return 0;
    if (anvil_client_connect(smtpd_g.anvil, s->service, s->addr, &c) != ANVIL_OK)
        return 0;
    s->anvil_counted = true;
    if (s->limits_exempt)
        return 0;
    if (var_smtpd_client_connection_count_limit > 0
        && c.count > var_smtpd_client_connection_count_limit) {
        log_warn("Connection concurrency limit exceeded: %ld from %s for service %s", c.count,
                 strbuf_str(s->namaddr), s->service);
        smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s", var_myhostname,
                    s->addr);
        return -1;
    }
    if (var_smtpd_client_connection_rate_limit > 0
        && c.rate > var_smtpd_client_connection_rate_limit) {
        log_warn("Connection rate limit exceeded: %ld from %s for service %s", c.rate,
                 strbuf_str(s->namaddr), s->service);
        smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s", var_myhostname,
                    s->addr);
        return -1;
    }
    return 0;
}

int smtpd_peer_message_limit(struct smtpd_session *s)
{
    struct anvil_client_counts c;

    if (!s->anvil_counted || s->limits_exempt || var_smtpd_client_message_rate_limit == 0)
        return 0;
    if (anvil_client_message(smtpd_g.anvil, s->service, s->addr, &c) != ANVIL_OK)
        return 0;
    if (c.message_rate > var_smtpd_client_message_rate_limit) {
        log_warn("Message delivery request rate limit exceeded: %ld from %s for service %s",
                 c.message_rate, strbuf_str(s->namaddr), s->service);
        smtpd_reply(s, "450 4.7.1 Error: too much mail from %s", s->addr);
        return -1;
    }
    return 0;
}

int smtpd_peer_rcpt_limit(struct smtpd_session *s)
{
    struct anvil_client_counts c;

    if (!s->anvil_counted || s->limits_exempt || var_smtpd_client_recipient_rate_limit == 0)
        return 0;
    if (anvil_client_recipient(smtpd_g.anvil, s->service, s->addr, &c) != ANVIL_OK)
        return 0;
    if (c.recipient_rate > var_smtpd_client_recipient_rate_limit) {
        log_warn("Recipient address rate limit exceeded: %ld from %s for service %s",
                 c.recipient_rate, strbuf_str(s->namaddr), s->service);
        smtpd_reply(s, "450 4.7.1 Error: too many recipients from %s", s->addr);
        return -1;
    }
    return 0;
}

void smtpd_peer_disconnect(struct smtpd_session *s)
{
    if (s->anvil_counted)
        anvil_client_disconnect(smtpd_g.anvil, s->service, s->real_addr);
    s->anvil_counted = false;
}
