/*
 * restrict_policy.c - check_policy_service: Postfix's policy delegation
 * protocol (SMTPD_POLICY_README), so postgrey, policyd-spf and the like
 * plug in unchanged.
 *
 * A query is "name=value" lines ending with an empty line; the answer is
 * "action=..." plus an empty line, the action being an access(5) result.
 * Connections ("unix:path", relative to queue_directory, or
 * "inet:host:port") are kept open between queries and reopened once after
 * an error.  Every query is bounded by smtpd_policy_service_timeout; a
 * server that fails, times out or answers garbage gets
 * smtpd_policy_service_default_action (a 451 by default), never a permit.
 * The answer is untrusted: bounded to RESTRICT_POLICY_MAX bytes and
 * parsed by restrict_policy_parse(), which needs exactly one action.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "params.h"
#include "restrict.h"
#include "restrict_int.h"

struct restrict_policy_conn {
    char *endpoint;
    int fd;
};

int restrict_policy_parse(const char *buf, size_t len, struct strbuf *action_r,
                          struct strbuf *why)
{
    size_t pos = 0;
    bool seen = false;

    strbuf_reset(action_r);
    while (pos < len) {
        const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t ll;

        if (nl == NULL) {
            strbuf_set(why, "answer does not end with an empty line");
            return -1;
        }
        ll = (size_t)(nl - line);
        pos += ll + 1;
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll == 0) {
            if (pos != len) {
                strbuf_set(why, "data after the end of the answer");
                return -1;
            }
            if (!seen) {
                strbuf_set(why, "answer without action=");
                return -1;
            }
            return 0;
        }
        if (memchr(line, 0, ll) != NULL) {
            strbuf_set(why, "NUL byte in the answer");
            return -1;
        }
        if (ll >= 7 && memcmp(line, "action=", 7) == 0) {
            if (seen) {
                strbuf_set(why, "more than one action=");
                return -1;
            }
            seen = true;
            strbuf_setn(action_r, line + 7, ll - 7);
            for (size_t i = 0; i < strbuf_len(action_r); i++)
                if ((unsigned char)action_r->data[i] < 0x20 && action_r->data[i] != '\t') {
                    strbuf_set(why, "control character in the action");
                    return -1;
                }
        } else if (memchr(line, '=', ll) == NULL) {
            strbuf_set(why, "answer line without '='");
            return -1;
        }
    }
    strbuf_set(why, "answer does not end with an empty line");
    return -1;
}

/* Connect to "unix:path" or "inet:host:port"; -1 with why. */
static int restrict_policy_connect(const char *endpoint, struct strbuf *why)
{
    int fd = -1;

    if (strncmp(endpoint, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        if (strlen(endpoint + 5) >= sizeof(sun.sun_path)) {
            strbuf_printf(why, "%s: path too long", endpoint);
            return -1;
        }
        strcpy(sun.sun_path, endpoint + 5);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
            || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            strbuf_printf(why, "connect to %s: %m", endpoint);
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    if (strncmp(endpoint, "inet:", 5) == 0) {
        char *host = xstrdup(endpoint + 5), *port = strrchr(host, ':');
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
        int rc;

        if (port == NULL || port == host) {
            strbuf_printf(why, "%s: expected inet:host:port", endpoint);
            free(host);
            return -1;
        }
        *port++ = 0;
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            host[strlen(host) - 1] = 0;
            memmove(host, host + 1, strlen(host));
        }
        if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
            strbuf_printf(why, "%s: %s", endpoint, gai_strerror(rc));
            free(host);
            return -1;
        }
        for (ai = res; ai; ai = ai->ai_next) {
            if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
                continue;
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
            close(fd);
            fd = -1;
        }
        if (fd < 0)
            strbuf_printf(why, "connect to %s: %m", endpoint);
        freeaddrinfo(res);
        free(host);
        return fd;
    }
    strbuf_printf(why, "%s: expected unix:path or inet:host:port", endpoint);
    return -1;
}

static long restrict_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write the request and read the answer on fd, within deadline. */
static int restrict_policy_exchange(int fd, const struct strbuf *req, long deadline,
                                    struct strbuf *answer, struct strbuf *why)
{
    size_t off = 0;
    char buf[1024];

    strbuf_reset(answer);
    while (off < strbuf_len(req)) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        long left = deadline - restrict_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            strbuf_set(why, "timeout sending the query");
            return -1;
        }
        n = send(fd, req->data + off, strbuf_len(req) - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            strbuf_printf(why, "send: %m");
            return -1;
        }
        off += (size_t)n;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = deadline - restrict_now_ms();
        ssize_t n;
        size_t len = strbuf_len(answer);

        if (len >= 2 && answer->data[len - 1] == '\n'
            && (answer->data[len - 2] == '\n'
                || (len >= 3 && answer->data[len - 2] == '\r' && answer->data[len - 3] == '\n')))
            return 0;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            strbuf_set(why, "timeout waiting for the answer");
            return -1;
        }
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            strbuf_printf(why, "recv: %m");
            return -1;
        }
        if (n == 0) {
            strbuf_set(why, "connection closed before the end of the answer");
            return -1;
        }
        if (len + (size_t)n > RESTRICT_POLICY_MAX) {
            strbuf_printf(why, "answer longer than %d bytes", RESTRICT_POLICY_MAX);
            return -1;
        }
        strbuf_appendn(answer, buf, (size_t)n);
    }
}

/* One attribute line; values lose any CR/LF (the SMTP parser already
 * refuses them, this keeps the protocol safe whatever the caller does). */
static void restrict_policy_attr(struct strbuf *req, const char *name, const char *value)
{
    strbuf_appendf(req, "%s=", name);
    for (const char *p = value ? value : ""; *p; p++)
        strbuf_appendc(req, *p == '\n' || *p == '\r' ? ' ' : *p);
    strbuf_appendc(req, '\n');
}

void restrict_policy_request(enum restrict_stage stage, const struct restrict_ctx *c,
                             struct strbuf *req)
{
    static const char *const states[] = {"CONNECT", "EHLO", "MAIL", "RCPT", "DATA",
                                         "END-OF-MESSAGE"};
    char num[32];

    strbuf_reset(req);
    restrict_policy_attr(req, "request", "smtpd_access_policy");
    restrict_policy_attr(req, "protocol_state", states[stage]);
    restrict_policy_attr(req, "protocol_name", c->protocol ? c->protocol : "SMTP");
    restrict_policy_attr(req, "helo_name", c->helo);
    restrict_policy_attr(req, "queue_id", c->queue_id && strcmp(c->queue_id, "NOQUEUE") != 0
                                              ? c->queue_id : "");
    restrict_policy_attr(req, "sender", c->sender);
    restrict_policy_attr(req, "recipient", c->recipient);
    snprintf(num, sizeof(num), "%u", c->rcpt_count);
    restrict_policy_attr(req, "recipient_count", num);
    restrict_policy_attr(req, "client_address", c->client_addr);
    restrict_policy_attr(req, "client_name", c->client_name ? c->client_name : "unknown");
    restrict_policy_attr(req, "reverse_client_name", c->client_name ? c->client_name : "unknown");
    snprintf(num, sizeof(num), "%ld.%ld", (long)getpid(), (long)time(NULL));
    restrict_policy_attr(req, "instance", num);
    restrict_policy_attr(req, "sasl_method", c->sasl_user ? "PLAIN" : "");
    restrict_policy_attr(req, "sasl_username", c->sasl_user);
    restrict_policy_attr(req, "sasl_sender", "");
    snprintf(num, sizeof(num), "%ld", c->msg_size > 0 ? c->msg_size : 0);
    restrict_policy_attr(req, "size", num);
    restrict_policy_attr(req, "encryption_protocol", c->tls ? "TLS" : "");
    strbuf_appendc(req, '\n');
}

int restrict_policy_query(struct restrictions *r, const char *endpoint,
                          enum restrict_stage stage, const struct restrict_ctx *ctx,
                          struct strbuf *action_r, struct strbuf *why)
{
    struct restrict_policy_conn *pc = NULL;
    struct strbuf *req = strbuf_new(512), *answer = strbuf_new(256);
    long deadline = restrict_now_ms() + var_smtpd_policy_service_timeout * 1000;
    int rc = -1;

    for (size_t i = 0; i < r->npolicy; i++)
        if (strcmp(r->policy[i]->endpoint, endpoint) == 0)
            pc = r->policy[i];
    if (pc == NULL) {
        pc = xcalloc(1, sizeof(*pc));
        pc->endpoint = xstrdup(endpoint);
        pc->fd = -1;
        r->policy = xreallocarray(r->policy, r->npolicy + 1, sizeof(*r->policy));
        r->policy[r->npolicy++] = pc;
    }
    restrict_policy_request(stage, ctx, req);
    /* A kept connection may have been closed by the server meanwhile:
     * one retry on a fresh connection. */
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        bool fresh = pc->fd < 0;

        strbuf_reset(why);
        if (pc->fd < 0 && (pc->fd = restrict_policy_connect(endpoint, why)) < 0)
            break;
        if (restrict_policy_exchange(pc->fd, req, deadline, answer, why) == 0) {
            rc = restrict_policy_parse(answer->data, strbuf_len(answer), action_r, why);
            if (rc < 0) {
                close(pc->fd);
                pc->fd = -1;
                break;
            }
        } else {
            close(pc->fd);
            pc->fd = -1;
            if (fresh)
                break;
        }
    }
    strbuf_free(&req);
    strbuf_free(&answer);
    return rc;
}

void restrict_policy_close_all(struct restrictions *r)
{
    for (size_t i = 0; i < r->npolicy; i++) {
        if (r->policy[i]->fd >= 0)
            close(r->policy[i]->fd);
        free(r->policy[i]->endpoint);
        free(r->policy[i]);
    }
    free(r->policy);
    r->policy = NULL;
    r->npolicy = 0;
}
