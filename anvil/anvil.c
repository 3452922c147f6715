/*
 * anvil.c - the connection and rate counting service (Postfix anvil(8)).
 *
 * A SERVER_MULTI daemon on private/anvil.  Each client (an smtpd process)
 * keeps a connection open and sends attribute requests (lib/attr.h):
 *   request=connect|disconnect|message|recipient|lookup, ident=service:addr
 * and gets one reply each: status (0 ok, 1 refused) plus the counters that
 * request type reports (see man/anvil.8; lib/anvil_client.c is the other
 * end).  The counting itself lives in anvil_table.c.
 *
 * Trust: clients are local daemons, but a request is still parsed strictly
 * with small limits; a malformed message is a peer bug: it is logged with
 * the peer's pid and that connection is dropped.  An ident that is too
 * long or not printable gets status 1.  Each connection remembers the
 * idents it reported open, so when an smtpd dies its connections are
 * closed for it and counts never leak.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "anvil.h"
#include "attr.h"
#include "conf.h"
#include "events.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "server.h"
#include "strbuf.h"
#include "stream.h"

#define ANVIL_CONN_IDENTS_MAX 1000  /* open idents remembered per client */
#define ANVIL_READ_CHUNK 4096

static const struct attr_limits anvil_limits = {
    .max_attrs = 2,
    .max_name = 16,
    .max_value = ANVIL_IDENT_MAX + 1,
    .max_message = 512,
};

static const struct attr_spec anvil_request_spec[] = {
    {"request", ATTR_STR, 0},
    {"ident", ATTR_STR, 0},
    {NULL, 0, 0},
};

/* Request names, their table event, and which counters the reply has. */
#define REPLY_COUNT 1
#define REPLY_RATE 2
#define REPLY_MESSAGE 4
#define REPLY_RECIPIENT 8
static const struct anvil_request {
    const char *name;
    enum anvil_event ev;
    int reply;
} anvil_requests[] = {
    {"connect", ANVIL_EV_CONNECT, REPLY_COUNT | REPLY_RATE},
    {"disconnect", ANVIL_EV_DISCONNECT, 0},
    {"message", ANVIL_EV_MESSAGE, REPLY_RATE},
    {"recipient", ANVIL_EV_RECIPIENT, REPLY_RATE},
    {"lookup", ANVIL_EV_LOOKUP, REPLY_COUNT | REPLY_RATE | REPLY_MESSAGE | REPLY_RECIPIENT},
};

/* An ident this client reported open, and how many times. */
struct anvil_open {
    char *ident;
    long n;
};

struct anvil_conn {
    int fd;
    long peer_pid;
    struct stream *stream;
    struct strbuf *in;          /* bytes not yet parsed */
    struct attr_list *req;
    struct attr_list *rep;
    struct anvil_open *open;
    size_t nopen, capopen;
    bool dropped_tracking;      /* warned once about ANVIL_CONN_IDENTS_MAX */
};

static struct anvil_table *anvil_table;
static struct timer *anvil_expire_timer;
static struct timer *anvil_stats_timer;

/* ---- per-connection bookkeeping of open idents ------------------------- */

static void anvil_conn_note(struct anvil_conn *c, const char *ident, long delta)
{
    for (size_t i = 0; i < c->nopen; i++) {
        if (strcmp(c->open[i].ident, ident) == 0) {
            c->open[i].n += delta;
            if (c->open[i].n <= 0) {
                free(c->open[i].ident);
                c->open[i] = c->open[--c->nopen];
            }
            return;
        }
    }
    if (delta <= 0)
        return;
    if (c->nopen >= ANVIL_CONN_IDENTS_MAX) {
        if (!c->dropped_tracking)
            log_warn("client pid %ld has more than %d open idents; not tracking more",
                     c->peer_pid, ANVIL_CONN_IDENTS_MAX);
        c->dropped_tracking = true;
        return;
    }
    if (c->nopen == c->capopen) {
        c->capopen = c->capopen ? c->capopen * 2 : 4;
        c->open = xreallocarray(c->open, c->capopen, sizeof(*c->open));
    }
    c->open[c->nopen].ident = xstrdup(ident);
    c->open[c->nopen].n = delta;
    c->nopen++;
}

static void anvil_conn_close(struct anvil_conn *c)
{
    struct anvil_counts ignored;

    /* Whatever this client still had open is closed now. */
    event_now_update();
    for (size_t i = 0; i < c->nopen; i++) {
        for (long k = 0; k < c->open[i].n; k++)
            anvil_table_event(anvil_table, c->open[i].ident, ANVIL_EV_DISCONNECT,
                              event_now(), &ignored);
        free(c->open[i].ident);
    }
    free(c->open);
    event_disable(c->fd);
    stream_close(&c->stream);
    strbuf_free(&c->in);
    attr_free(&c->req);
    attr_free(&c->rep);
    free(c);
    server_disconnect();
}

/* ---- one request --------------------------------------------------------- */

/* An ident is "service:addr": printable ASCII without space, with a colon
 * that is neither first nor last. */
static bool anvil_ident_ok(const char *ident)
{
    size_t len = strlen(ident);
    const char *colon = strchr(ident, ':');

    if (len == 0 || len > ANVIL_IDENT_MAX || colon == NULL || colon == ident ||
        colon[1] == 0)
        return false;
    for (const char *p = ident; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

/* Handle the request in c->req; -1 when the connection must be dropped. */
static int anvil_handle(struct anvil_conn *c)
{
    const char *name = attr_get_str(c->req, "request");
    const char *ident = attr_get_str(c->req, "ident");
    const struct anvil_request *r = NULL;
    struct anvil_counts counts = {0};
    long status = 0;

    for (size_t i = 0; i < sizeof(anvil_requests) / sizeof(anvil_requests[0]); i++)
        if (strcmp(name, anvil_requests[i].name) == 0)
            r = &anvil_requests[i];
    if (r == NULL) {
        log_warn("client pid %ld: unknown request \"%.40s\": disconnecting", c->peer_pid,
                 name);
        return -1;
    }
    event_now_update();
    if (!anvil_ident_ok(ident)) {
        log_warn("client pid %ld: %s request with a malformed ident", c->peer_pid, r->name);
        status = 1;
    } else if (anvil_table_event(anvil_table, ident, r->ev, event_now(), &counts) < 0) {
        log_warn("table full (%zu idents): %s for %s not counted",
                 anvil_table_size(anvil_table), r->name, ident);
        status = 1;
    } else if (r->ev == ANVIL_EV_CONNECT) {
        anvil_conn_note(c, ident, 1);
    } else if (r->ev == ANVIL_EV_DISCONNECT) {
        anvil_conn_note(c, ident, -1);
    }
    attr_reset(c->rep);
    attr_add_long(c->rep, "status", status);
    if (r->reply & REPLY_COUNT)
        attr_add_long(c->rep, "count", counts.count);
    if (r->reply & REPLY_RATE)
        attr_add_long(c->rep, "rate", r->ev == ANVIL_EV_MESSAGE ? counts.message_rate
                                    : r->ev == ANVIL_EV_RECIPIENT ? counts.recipient_rate
                                    : counts.rate);
    if (r->reply & REPLY_MESSAGE)
        attr_add_long(c->rep, "message_rate", counts.message_rate);
    if (r->reply & REPLY_RECIPIENT)
        attr_add_long(c->rep, "recipient_rate", counts.recipient_rate);
    return attr_write(c->stream, c->rep) < 0 ? -1 : 0;
}

/* ---- I/O ------------------------------------------------------------------ */

static void anvil_conn_read(int fd, int events, void *ctx);

static void anvil_conn_write(int fd, int events, void *ctx)
{
    struct anvil_conn *c = ctx;
    int rc = stream_flush(c->stream);

    if (rc == STREAM_AGAIN)
        return;
    event_disable_write(fd);
    if (rc < 0) {
        log_warn("client pid %ld: write: %s", c->peer_pid, stream_strerror(c->stream));
        anvil_conn_close(c);
        return;
    }
    /* Replies are out: take requests again. */
    event_read(fd, anvil_conn_read, c);
}

static void anvil_conn_read(int fd, int events, void *ctx)
{
    struct anvil_conn *c = ctx;
    char buf[ANVIL_READ_CHUNK];
    struct strbuf *why;
    ssize_t n;
    size_t used;
    int rc;

    n = stream_read(c->stream, buf, sizeof(buf));
    if (n == STREAM_AGAIN)
        return;
    if (n <= 0) {
        if (n < 0)
            log_warn("client pid %ld: read: %s", c->peer_pid, stream_strerror(c->stream));
        if (strbuf_len(c->in) > 0)
            log_warn("client pid %ld: disconnected in the middle of a request", c->peer_pid);
        anvil_conn_close(c);
        return;
    }
    if (strbuf_appendn(c->in, buf, (size_t)n) < 0) {
        log_warn("client pid %ld: request longer than %zu bytes: disconnecting", c->peer_pid,
                 anvil_limits.max_message);
        anvil_conn_close(c);
        return;
    }
    why = strbuf_new(128);
    while ((rc = attr_parse(strbuf_str(c->in), strbuf_len(c->in), c->req, anvil_request_spec,
                            &anvil_limits, &used, why)) == 1) {
        strbuf_consume(c->in, used);
        if (anvil_handle(c) < 0) {
            strbuf_free(&why);
            anvil_conn_close(c);
            return;
        }
    }
    if (rc < 0) {
        log_warn("client pid %ld: malformed request: %s: disconnecting", c->peer_pid,
                 strbuf_str(why));
        strbuf_free(&why);
        anvil_conn_close(c);
        return;
    }
    strbuf_free(&why);
    if ((rc = stream_flush(c->stream)) == STREAM_AGAIN) {
        /* A client that does not read its replies gets no more served:
         * pending output stays bounded by one read's worth of requests. */
        event_disable_read(fd);
        event_write(fd, anvil_conn_write, c);
    } else if (rc < 0) {
        log_warn("client pid %ld: write: %s", c->peer_pid, stream_strerror(c->stream));
        anvil_conn_close(c);
    }
}

static void anvil_accept(int fd)
{
    struct anvil_conn *c = xcalloc(1, sizeof(*c));
    struct ucred cred;
    socklen_t len = sizeof(cred);

    c->fd = fd;
    c->peer_pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : -1;
    c->stream = stream_fdopen(fd);
    stream_set_nonblock(c->stream, true);
    c->in = strbuf_new(256);
    /* Room for one whole message plus the start of the next. */
    strbuf_set_max(c->in, anvil_limits.max_message + ANVIL_READ_CHUNK);
    c->req = attr_new();
    c->rep = attr_new();
    event_read(fd, anvil_conn_read, c);
}

/* ---- timers ---------------------------------------------------------------- */

static void anvil_expire(void *ctx)
{
    event_now_update();
    anvil_table_expire(anvil_table, event_now());
    anvil_expire_timer = timer_add(var_anvil_rate_time_unit * 1000L, anvil_expire, NULL);
}

static void anvil_stats_log(const char *what, const struct anvil_peak *p, bool is_rate)
{
    if (p->value <= 0)
        return;
    if (is_rate)
        log_info("statistics: max %s %ld/%lds for (%s)", what, p->value,
                 var_anvil_rate_time_unit, p->ident);
    else
        log_info("statistics: max %s %ld for (%s)", what, p->value, p->ident);
}

static void anvil_stats(void *ctx)
{
    const struct anvil_peaks *p = anvil_table_peaks(anvil_table);

    anvil_stats_log("connection rate", &p->rate, true);
    anvil_stats_log("connection count", &p->count, false);
    anvil_stats_log("message rate", &p->message_rate, true);
    anvil_stats_log("recipient rate", &p->recipient_rate, true);
    if (anvil_table_size(anvil_table) > 0)
        log_info("statistics: cache size %zu", anvil_table_size(anvil_table));
    anvil_table_peaks_reset(anvil_table);
    anvil_stats_timer = timer_add(var_anvil_status_update_time * 1000L, anvil_stats, NULL);
}

static void anvil_post_jail(void)
{
    anvil_table = anvil_table_new((uint64_t)var_anvil_rate_time_unit * 1000, ANVIL_TABLE_MAX);
    anvil_expire_timer = timer_add(var_anvil_rate_time_unit * 1000L, anvil_expire, NULL);
    anvil_stats_timer = timer_add(var_anvil_status_update_time * 1000L, anvil_stats, NULL);
}

static const struct server_desc anvil_desc = {
    .name = "anvil",
    .kind = SERVER_MULTI,
    .post_jail = anvil_post_jail,
    .accept_fn = anvil_accept,
    /* The counters are the state: never exit for idleness or max_use. */
    .keep_running = true,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &anvil_desc);
}
