/*
 * smtp_connect.c - from a next hop to connected sockets.
 *
 * Owns the next-hop syntax qmgr hands us ("[host]:port" without MX
 * lookup, "domain[:port]" with one, "unix:path" and "inet:host:port" for
 * LMTP, which also select LMTP for the request), the address
 * list (MX records in preference order, random among equals as lib/dns
 * returns them; the domain itself as implicit MX when it has none; A and
 * AAAA per inet_protocols and smtp_address_preference; at most
 * smtp_mx_address_limit addresses) and the connect with a time limit.
 * DNS answers come through lib/dns, which bounds and parses them; a null
 * MX (RFC 7505) and a name that does not exist bounce, a temporary DNS
 * failure defers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "smtp.h"

#define SMTP_PORT_DEFAULT 25
#define LMTP_PORT_DEFAULT 24
#define SMTP_HOSTS_MAX    100     /* addresses kept before the limit applies */

void smtp_dest_free(struct smtp_dest *dest)
{
    free(dest->nexthop);
    free(dest->domain);
    free(dest->path);
    memset(dest, 0, sizeof(*dest));
}

static int parse_port(const char *s, unsigned *port_r)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > 65535)
        return -1;
    *port_r = (unsigned)v;
    return 0;
}

int smtp_dest_parse(const char *nexthop, bool service_lmtp, struct smtp_dest *dest,
                    struct strbuf *why)
{
    const char *p = nexthop;
    const char *host_end, *port = NULL;

    memset(dest, 0, sizeof(*dest));
    dest->nexthop = xstrdup(nexthop);
    /* "unix:" and "inet:" are Postfix's LMTP next-hop syntax (an SMTP
     * next hop is a domain or [host] and never has them): such a request
     * is LMTP whatever service carried it, so local_transport =
     * local:unix:private/lmtp works through an smtp service. */
    dest->lmtp = service_lmtp || strncmp(p, "unix:", 5) == 0 || strncmp(p, "inet:", 5) == 0;
    dest->port = dest->lmtp ? LMTP_PORT_DEFAULT : SMTP_PORT_DEFAULT;
    if (strncmp(p, "unix:", 5) == 0) {
        if (p[5] == 0 || strlen(p + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            strbuf_printf(why, "bad unix socket next hop \"%s\"", nexthop);
            return -1;
        }
        dest->is_unix = true;
        dest->literal = true;
        dest->path = xstrdup(p + 5);
        dest->domain = xstrdup(p + 5);
        return 0;
    }
    if (strncmp(p, "inet:", 5) == 0)
        p += 5;
    /* LMTP never looks up MX records (Postfix: lmtp next hops are hosts). */
    dest->literal = dest->lmtp;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL || host_end == p + 1) {
            strbuf_printf(why, "bad next hop \"%s\": unbalanced [", nexthop);
            return -1;
        }
        dest->literal = true;
        dest->domain = xstrndup(p + 1, (size_t)(host_end - p - 1));
        if (strncasecmp(dest->domain, "ipv6:", 5) == 0)
            memmove(dest->domain, dest->domain + 5, strlen(dest->domain + 5) + 1);
        if (host_end[1] == ':')
            port = host_end + 2;
        else if (host_end[1] != 0) {
            strbuf_printf(why, "bad next hop \"%s\": junk after ]", nexthop);
            return -1;
        }
    } else {
        host_end = strrchr(p, ':');
        if (host_end && strchr(p, ':') != host_end) {
            strbuf_printf(why, "bad next hop \"%s\": IPv6 addresses need [brackets]", nexthop);
            return -1;
        }
        if (host_end) {
            dest->domain = xstrndup(p, (size_t)(host_end - p));
            port = host_end + 1;
        } else {
            dest->domain = xstrdup(p);
        }
    }
    if (port && parse_port(port, &dest->port) < 0) {
        strbuf_printf(why, "bad port in next hop \"%s\"", nexthop);
        return -1;
    }
    size_t dl = strlen(dest->domain);
    if (dl > 0 && dest->domain[dl - 1] == '.')
        dest->domain[dl - 1] = 0;
    struct in6_addr a6;
    if (*dest->domain == 0 || (!dns_name_valid(dest->domain, false)
                               && inet_pton(AF_INET6, dest->domain, &a6) != 1)) {
        strbuf_printf(why, "bad host name in next hop \"%s\"", nexthop);
        return -1;
    }
    return 0;
}

void smtp_hosts_free(struct smtp_host **hosts, size_t n)
{
    if (*hosts == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free((*hosts)[i].name);
    free(*hosts);
    *hosts = NULL;
}

/* Which families to use, in which order: 4 then 6, 6 then 4, or one. */
static void family_order(int order[2])
{
    bool v4 = false, v6 = false;
    char **protos = conf_list_split(var_inet_protocols);

    for (char **p = protos; *p; p++) {
        if (strcasecmp(*p, "all") == 0)
            v4 = v6 = true;
        else if (strcasecmp(*p, "ipv4") == 0)
            v4 = true;
        else if (strcasecmp(*p, "ipv6") == 0)
            v6 = true;
    }
    conf_list_free(&protos);
    if (!v4 && !v6)
        v4 = v6 = true;
    order[0] = order[1] = 0;
    if (v4 && v6) {
        bool six_first;
        if (strcasecmp(var_smtp_address_preference, "ipv6") == 0)
            six_first = true;
        else if (strcasecmp(var_smtp_address_preference, "ipv4") == 0)
            six_first = false;
        else {
            unsigned char r = 0;
            if (getrandom(&r, 1, GRND_NONBLOCK) != 1)
                r = (unsigned char)time(NULL);
            six_first = r & 1;
        }
        order[0] = six_first ? AF_INET6 : AF_INET;
        order[1] = six_first ? AF_INET : AF_INET6;
    } else {
        order[0] = v6 ? AF_INET6 : AF_INET;
    }
}

struct host_list {
    struct smtp_host *h;
    size_t n, cap;
    bool tempfail;              /* some address lookup failed temporarily */
    struct strbuf *last_error;  /* the last lookup failure, for the reply */
};

static void host_add(struct host_list *l, const char *name, int family, const void *addr,
                     unsigned port, bool secure)
{
    struct smtp_host *h;

    if (l->n >= SMTP_HOSTS_MAX)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->h = xreallocarray(l->h, l->cap, sizeof(*l->h));
    }
    h = &l->h[l->n++];
    memset(h, 0, sizeof(*h));
    h->name = xstrdup(name);
    h->secure = secure;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&h->sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, addr, 4);
        h->salen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->sa;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        memcpy(&sin6->sin6_addr, addr, 16);
        h->salen = sizeof(*sin6);
    }
    inet_ntop(family, addr, h->addr, sizeof(h->addr));
}

/* Addresses of one host name (or address literal) into l. */
static void host_lookup(struct host_list *l, const char *name, unsigned port, bool secure_in)
{
    unsigned char buf[16];
    int order[2];
    struct strbuf *why = strbuf_new(128);

    /* An address literal involves no DNS: nothing DNSSEC vouches for. */
    if (inet_pton(AF_INET, name, buf) == 1) {
        host_add(l, name, AF_INET, buf, port, false);
        strbuf_free(&why);
        return;
    }
    if (inet_pton(AF_INET6, name, buf) == 1) {
        host_add(l, name, AF_INET6, buf, port, false);
        strbuf_free(&why);
        return;
    }
    family_order(order);
    for (int k = 0; k < 2 && order[k]; k++) {
        int fam = order[k];
        if (smtp_g.dns) {
            struct dns_answer ans;
            uint16_t type = fam == AF_INET ? DNS_T_A : DNS_T_AAAA;
            enum dns_status st = dns_lookup(smtp_g.dns, name, type, &ans, why);
            if (st == DNS_OK) {
                for (size_t i = 0; i < ans.count; i++)
                    if (ans.rr[i].type == type)
                        host_add(l, name, fam, ans.rr[i].addr, port, secure_in && ans.secure);
            } else if (st != DNS_NODATA) {
                if (st == DNS_TEMPFAIL)
                    l->tempfail = true;
                strbuf_printf(l->last_error, "Name service error for name=%s type=%s: %s",
                              name, dns_type_name(type),
                              st == DNS_TEMPFAIL ? "Host not found, try again" : "Host not found");
            }
            dns_answer_free(&ans);
        } else {
            struct addrinfo hints = { .ai_family = fam, .ai_socktype = SOCK_STREAM };
            struct addrinfo *res = NULL;
            int r = getaddrinfo(name, NULL, &hints, &res);
            if (r == 0) {
                for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                    if (ai->ai_family == AF_INET)
                        host_add(l, name, AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
                                 port, false);
                    else if (ai->ai_family == AF_INET6)
                        host_add(l, name, AF_INET6,
                                 &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, port, false);
                }
                freeaddrinfo(res);
            } else if (r != EAI_NODATA && r != EAI_ADDRFAMILY) {
                if (r == EAI_AGAIN || r == EAI_SYSTEM || r == EAI_MEMORY)
                    l->tempfail = true;
                strbuf_printf(l->last_error, "Name service error for name=%s: %s", name,
                              gai_strerror(r));
            }
        }
    }
    strbuf_free(&why);
}

int smtp_resolve(struct smtp_dest *dest, struct smtp_host **hosts_r, int *status_r,
                 const char **dsn_r, struct strbuf *why)
{
    struct host_list l = { .last_error = strbuf_new(128) };

    *hosts_r = NULL;
    if (dest->is_unix) {
        struct sockaddr_un *sun;
        l.h = xcalloc(1, sizeof(*l.h));
        l.n = 1;
        l.h[0].name = xstrdup(var_myhostname && *var_myhostname ? var_myhostname : "localhost");
        snprintf(l.h[0].addr, sizeof(l.h[0].addr), "%s", dest->path);
        sun = (struct sockaddr_un *)&l.h[0].sa;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", dest->path);
        l.h[0].salen = sizeof(*sun);
        strbuf_free(&l.last_error);
        *hosts_r = l.h;
        return 1;
    }
    if (dest->literal || smtp_g.dns == NULL) {
        /* "[host]": the address answer alone decides DNSSEC security. */
        host_lookup(&l, dest->domain, dest->port, smtp_g.dns != NULL);
    } else {
        struct dns_answer ans;
        enum dns_status st = dns_lookup_mx(smtp_g.dns, dest->domain, &ans, why);
        switch (st) {
        case DNS_OK:
            dest->mx_secure = ans.secure;
            for (size_t i = 0; i < ans.count; i++)
                if (ans.rr[i].type == DNS_T_MX && ans.rr[i].text && *ans.rr[i].text)
                    host_lookup(&l, ans.rr[i].text, dest->port, ans.secure);
            break;
        case DNS_NODATA:
            /* No MX: the domain itself is the implicit MX (RFC 5321 5.1). */
            host_lookup(&l, dest->domain, dest->port, ans.secure);
            break;
        case DNS_NULLMX:
            strbuf_printf(why, "Domain %s does not accept mail (nullMX)", dest->domain);
            *status_r = DELIVER_BOUNCE;
            *dsn_r = "5.1.10";
            dns_answer_free(&ans);
            strbuf_free(&l.last_error);
            return -1;
        case DNS_NXDOMAIN:
        case DNS_INVALID:
            strbuf_printf(why, "Host or domain name not found. Name service error for "
                          "name=%s type=MX: Host not found", dest->domain);
            *status_r = DELIVER_BOUNCE;
            *dsn_r = "5.4.4";
            dns_answer_free(&ans);
            strbuf_free(&l.last_error);
            return -1;
        case DNS_TEMPFAIL:
        default:
            strbuf_printf(why, "Host or domain name not found. Name service error for "
                          "name=%s type=MX: Host not found, try again", dest->domain);
            *status_r = DELIVER_DEFER;
            *dsn_r = "4.4.3";
            dns_answer_free(&ans);
            strbuf_free(&l.last_error);
            return -1;
        }
        dns_answer_free(&ans);
    }
    if (l.n == 0) {
        strbuf_printf(why, "Host or domain name not found. %s",
                      strbuf_len(l.last_error) ? strbuf_str(l.last_error)
                                               : "No address records");
        *status_r = l.tempfail ? DELIVER_DEFER : DELIVER_BOUNCE;
        *dsn_r = l.tempfail ? "4.4.3" : "5.4.4";
        free(l.h);
        strbuf_free(&l.last_error);
        return -1;
    }
    if (var_smtp_mx_address_limit > 0 && l.n > (size_t)var_smtp_mx_address_limit) {
        for (size_t i = (size_t)var_smtp_mx_address_limit; i < l.n; i++)
            free(l.h[i].name);
        l.n = (size_t)var_smtp_mx_address_limit;
    }
    strbuf_free(&l.last_error);
    *hosts_r = l.h;
    return (int)l.n;
}

static void bind_source(int fd, int family)
{
    const char *src = family == AF_INET ? var_smtp_bind_address : var_smtp_bind_address6;
    union {
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa;
    socklen_t len;

    if (src == NULL || *src == 0)
        return;
    memset(&sa, 0, sizeof(sa));
    if (family == AF_INET && inet_pton(AF_INET, src, &sa.in.sin_addr) == 1) {
        sa.in.sin_family = AF_INET;
        len = sizeof(sa.in);
    } else if (family == AF_INET6 && inet_pton(AF_INET6, src, &sa.in6.sin6_addr) == 1) {
        sa.in6.sin6_family = AF_INET6;
        len = sizeof(sa.in6);
    } else {
        log_warn("ignoring malformed smtp_bind_address%s \"%s\"",
                 family == AF_INET6 ? "6" : "", src);
        return;
    }
    if (bind(fd, (struct sockaddr *)&sa, len) < 0)
        log_warn("bind %s: %m", src);
}

int smtp_connect_host(const struct smtp_host *h, unsigned port, int timeout_s, struct strbuf *why)
{
    int family = h->sa.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = 0;

    if (fd < 0) {
        strbuf_printf(why, "cannot create socket: %m");
        return -1;
    }
    if (family != AF_UNIX)
        bind_source(fd, family);
    if (connect(fd, (const struct sockaddr *)&h->sa, h->salen) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            int r;
            do {
                r = poll(&pfd, 1, timeout_s > 0 ? timeout_s * 1000 : 75000);
            } while (r < 0 && errno == EINTR);
            if (r == 0) {
                err = ETIMEDOUT;
            } else if (r < 0) {
                err = errno;
            } else {
                socklen_t len = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                    err = errno;
            }
        }
    }
    if (err) {
        if (family == AF_UNIX)
            strbuf_printf(why, "connect to %s[%s]: %s", h->name, h->addr, strerror(err));
        else
            strbuf_printf(why, "connect to %s[%s]:%u: %s", h->name, h->addr, port,
                          err == ETIMEDOUT ? "Connection timed out" : strerror(err));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        strbuf_printf(why, "fcntl: %m");
        close(fd);
        return -1;
    }
    return fd;
}
