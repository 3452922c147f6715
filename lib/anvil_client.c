/*
 * anvil_client.c - smtpd's side of anvil(8): one request, one strict reply.
 *
 * Owns one connection (a struct stream over an AF_UNIX socket) opened on
 * first use; any failure closes it and the next call reconnects.  Replies
 * come from our own anvil, but they are still checked strictly (lib/attr
 * spec per request type, numbers in range): a bad reply means "unknown",
 * never a wrong limit.  Every call is bounded by the client's timeout,
 * connect included, so a stuck anvil cannot stall an SMTP session.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "anvil_client.h"
#include "attr.h"
#include "log.h"
#include "mem.h"

struct anvil_client {
    char *path;                 /* NULL for a client over a given stream */
    int timeout_ms;
    struct stream *s;
    bool stream_dead;           /* a given stream failed: no reconnecting */
    struct attr_list *req, *rep;
    struct strbuf *err;
    time_t last_warn;
};

static const struct attr_limits anvil_client_limits = {
    .max_attrs = 5,
    .max_name = 16,
    .max_value = 24,
    .max_message = 256,
};

static const struct attr_spec spec_status[] = {
    {"status", ATTR_LONG, 0},
    {NULL, 0, 0},
};
static const struct attr_spec spec_count_rate[] = {
    {"status", ATTR_LONG, 0},
    {"count", ATTR_LONG, 0},
    {"rate", ATTR_LONG, 0},
    {NULL, 0, 0},
};
static const struct attr_spec spec_rate[] = {
    {"status", ATTR_LONG, 0},
    {"rate", ATTR_LONG, 0},
    {NULL, 0, 0},
};
static const struct attr_spec spec_lookup[] = {
    {"status", ATTR_LONG, 0},
    {"count", ATTR_LONG, 0},
    {"rate", ATTR_LONG, 0},
    {"message_rate", ATTR_LONG, 0},
    {"recipient_rate", ATTR_LONG, 0},
    {NULL, 0, 0},
};

static struct anvil_client *anvil_client_alloc(int timeout_ms)
{
    struct anvil_client *ac = xcalloc(1, sizeof(*ac));

    ac->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    ac->req = attr_new();
    ac->rep = attr_new();
    ac->err = strbuf_new(128);
    return ac;
}

struct anvil_client *anvil_client_new(const char *path, int timeout_ms)
{
    struct anvil_client *ac = anvil_client_alloc(timeout_ms);

    ac->path = xstrdup(path);
    return ac;
}

struct anvil_client *anvil_client_new_stream(struct stream *s, int timeout_ms)
{
    struct anvil_client *ac = anvil_client_alloc(timeout_ms);

    ac->s = s;
    return ac;
}

void anvil_client_free(struct anvil_client **acp)
{
    struct anvil_client *ac;

    if (acp == NULL || (ac = *acp) == NULL)
        return;
    stream_close(&ac->s);
    attr_free(&ac->req);
    attr_free(&ac->rep);
    strbuf_free(&ac->err);
    free(ac->path);
    free(ac);
    *acp = NULL;
}

const char *anvil_client_error(const struct anvil_client *ac)
{
    return strbuf_str(ac->err);
}

/* Connect within the timeout; 0 or -1 with ac->err set. */
static int anvil_client_open(struct anvil_client *ac)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd, fl;

    if (ac->s != NULL)
        return 0;
    if (ac->path == NULL || ac->stream_dead) {
        strbuf_set(ac->err, "connection to anvil lost");
        return -1;
    }
    if (strlen(ac->path) >= sizeof(sun.sun_path)) {
        strbuf_printf(ac->err, "socket path too long: %s", ac->path);
        return -1;
    }
    strcpy(sun.sun_path, ac->path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        strbuf_printf(ac->err, "socket: %m");
        return -1;
    }
    /* A UNIX connect completes at once or fails (EAGAIN: backlog full). */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        strbuf_printf(ac->err, "connect %s: %m", ac->path);
        close(fd);
        return -1;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        strbuf_printf(ac->err, "fcntl: %m");
        close(fd);
        return -1;
    }
    ac->s = stream_fdopen(fd);
    return 0;
}

/* Log a failure, at most once per ANVIL_CLIENT_WARN_INTERVAL. */
static void anvil_client_fail(struct anvil_client *ac)
{
    time_t now = time(NULL);

    if (ac->path != NULL)
        stream_close(&ac->s);
    else
        ac->stream_dead = true;
    if (now - ac->last_warn >= ANVIL_CLIENT_WARN_INTERVAL || ac->last_warn == 0) {
        log_warn("anvil: %s: not limiting clients meanwhile", strbuf_str(ac->err));
        ac->last_warn = now;
    }
}

/* Send request for service:addr and read its reply against spec. */
static enum anvil_result anvil_client_call(struct anvil_client *ac, const char *request,
                                           const char *service, const char *addr,
                                           const struct attr_spec *spec,
                                           struct anvil_client_counts *counts)
{
    struct strbuf *ident;
    long status = -1;
    int rc;

    strbuf_reset(ac->err);
    if (counts != NULL)
        counts->count = counts->rate = counts->message_rate = counts->recipient_rate = -1;
    if (strlen(service) + 1 + strlen(addr) > ANVIL_CLIENT_IDENT_MAX) {
        strbuf_printf(ac->err, "ident %.40s:%.40s... too long", service, addr);
        return ANVIL_UNKNOWN;       /* a caller's problem, not anvil's: keep the link */
    }
    if (ac->stream_dead || anvil_client_open(ac) < 0) {
        if (strbuf_len(ac->err) == 0)
            strbuf_set(ac->err, "connection to anvil lost");
        anvil_client_fail(ac);
        return ANVIL_UNKNOWN;
    }
    ident = strbuf_new(64);
    strbuf_printf(ident, "%s:%s", service, addr);
    attr_reset(ac->req);
    attr_add_str(ac->req, "request", request);
    attr_add_str(ac->req, "ident", strbuf_str(ident));
    strbuf_free(&ident);
    stream_set_deadline(ac->s, ac->timeout_ms, 0);
    if (attr_write(ac->s, ac->req) < 0) {
        strbuf_printf(ac->err, "%s request: %s", request, stream_strerror(ac->s));
        anvil_client_fail(ac);
        return ANVIL_UNKNOWN;
    }
    rc = attr_read(ac->s, ac->rep, spec, &anvil_client_limits, ac->err);
    if (rc <= 0) {
        if (rc == 0)
            strbuf_printf(ac->err, "%s request: anvil closed the connection", request);
        anvil_client_fail(ac);
        return ANVIL_UNKNOWN;
    }
    stream_set_deadline(ac->s, 0, 0);
    if (attr_get_long(ac->rep, "status", &status) < 0 || status != 0) {
        strbuf_printf(ac->err, "%s request refused (status %ld)", request, status);
        /* A refusal (full table, bad ident) is not a broken link. */
        return ANVIL_UNKNOWN;
    }
    for (size_t i = 0; spec[i].name != NULL; i++) {
        long v;
        if (attr_get_long(ac->rep, spec[i].name, &v) < 0 || v < 0 ||
            v > ANVIL_CLIENT_COUNT_MAX) {
            strbuf_printf(ac->err, "%s reply: %s out of range", request, spec[i].name);
            anvil_client_fail(ac);
            return ANVIL_UNKNOWN;
        }
        if (counts == NULL || strcmp(spec[i].name, "status") == 0)
            continue;
        if (strcmp(spec[i].name, "count") == 0)
            counts->count = v;
        else if (strcmp(spec[i].name, "rate") == 0)
            *(strcmp(request, "message") == 0 ? &counts->message_rate
              : strcmp(request, "recipient") == 0 ? &counts->recipient_rate
              : &counts->rate) = v;
        else if (strcmp(spec[i].name, "message_rate") == 0)
            counts->message_rate = v;
        else if (strcmp(spec[i].name, "recipient_rate") == 0)
            counts->recipient_rate = v;
    }
    return ANVIL_OK;
}

enum anvil_result anvil_client_connect(struct anvil_client *ac, const char *service,
                                       const char *addr, struct anvil_client_counts *counts)
{
    return anvil_client_call(ac, "connect", service, addr, spec_count_rate, counts);
}

enum anvil_result anvil_client_disconnect(struct anvil_client *ac, const char *service,
                                          const char *addr)
{
    return anvil_client_call(ac, "disconnect", service, addr, spec_status, NULL);
}

enum anvil_result anvil_client_message(struct anvil_client *ac, const char *service,
                                       const char *addr, struct anvil_client_counts *counts)
{
    return anvil_client_call(ac, "message", service, addr, spec_rate, counts);
}

enum anvil_result anvil_client_recipient(struct anvil_client *ac, const char *service,
                                         const char *addr, struct anvil_client_counts *counts)
{
    return anvil_client_call(ac, "recipient", service, addr, spec_rate, counts);
}

enum anvil_result anvil_client_lookup(struct anvil_client *ac, const char *service,
                                      const char *addr, struct anvil_client_counts *counts)
{
    return anvil_client_call(ac, "lookup", service, addr, spec_lookup, counts);
}
