/*
 * authd_conn.c - one client connection speaking the Dovecot auth protocol.
 *
 * A client is smtpd, imapd, pop3d, lmtpd (through lib/auth_client) or an
 * unmodified Postfix smtpd (smtpd_sasl_type = dovecot).  On connect authd
 * sends the handshake (VERSION, MECH..., SPID, CUID, COOKIE, DONE); then
 * the client sends VERSION and CPID, and any number of AUTH/CONT requests
 * and USER lookups, several in flight at once, each named by its id.
 *
 * Everything a client sends is untrusted: lines are bounded
 * (AUTH_PROTO_LINE_MAX), requests per connection are bounded
 * (CONN_REQUESTS_MAX), every parse error is answered with FAIL for that
 * id (id 0 when none can be read) and logged; nothing ends the process.
 * A failed login is answered only after the penalty delay (a timer, so
 * other clients are served meanwhile); a locked-out client+user pair
 * fails without its password being checked.  Output goes through a
 * non-blocking lib/stream, flushed when the socket is writable.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth_proto.h"
#include "authd.h"
#include "base64.h"
#include "conf.h"
#include "events.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "sasl.h"
#include "server.h"
#include "stream.h"

#define CONN_REQUESTS_MAX 16        /* AUTH requests in flight per connection */
#define CONN_OUT_MAX (256 * 1024)   /* unsent output before we drop a client */

struct conn;

struct request {
    struct request *next;
    struct conn *conn;
    unsigned id;
    struct sasl_mech *mech;
    char *service, *rip, *lip;
    bool secured;
    struct timer *delay;        /* pending delayed FAIL */
    struct worker_job *job;     /* password check in a worker */
    char *user;                 /* normalised name while the check runs */
    const char *mech_name;      /* for logs after the mechanism is freed */
    char *fail_line;            /* the FAIL line sent when delay fires */
};

struct conn {
    int fd;
    struct stream *s;
    struct strbuf *line, *out;
    struct request *requests;
    unsigned nrequests;
    bool version_ok;
    bool skipping;              /* discarding the rest of an over-long line */
    bool dead;
    bool reading;               /* inside conn_read: it destroys, not callees */
    unsigned long pid;          /* CPID, for logs */
};

static unsigned conn_cuid;

static void conn_destroy(struct conn *c);

/* ---- output ---- */

static void conn_write_ready(int fd, int events, void *ctx)
{
    struct conn *c = ctx;
    int r = stream_flush(c->s);

    if (r == 0)
        event_disable_write(c->fd);
    else if (r < 0) {
        log_warn("auth client pid %lu: write: %s", c->pid, stream_strerror(c->s));
        conn_destroy(c);
    }
}

/* Queue the formatted line(s) in c->out and try to send them. */
static void conn_send(struct conn *c, struct strbuf *out)
{
    int r;

    stream_write(c->s, strbuf_str(out), strbuf_len(out));
    strbuf_reset(out);
    r = stream_flush(c->s);
    if (r == STREAM_AGAIN) {
        if (stream_out_pending(c->s) > CONN_OUT_MAX) {
            log_warn("auth client pid %lu: does not read its answers; disconnecting", c->pid);
            c->dead = true;
            return;
        }
        event_write(c->fd, conn_write_ready, c);
    } else if (r < 0) {
        c->dead = true;
    }
}

/* ---- requests ---- */

static struct request *request_find(struct conn *c, unsigned id)
{
    for (struct request *r = c->requests; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void request_free(struct conn *c, struct request *req)
{
    for (struct request **pp = &c->requests; *pp; pp = &(*pp)->next) {
        if (*pp == req) {
            *pp = req->next;
            c->nrequests--;
            break;
        }
    }
    timer_cancel(&req->delay);
    worker_job_cancel(&req->job);
    free(req->user);
    sasl_mech_free(&req->mech);
    free(req->service);
    free(req->rip);
    free(req->lip);
    free(req->fail_line);
    free(req);
}

/* Answer FAIL for id at once (protocol errors: no penalty, no request). */
static void send_fail_now(struct conn *c, unsigned id, const char *reason, bool temp)
{
    auth_proto_begin(c->out, "FAIL");
    auth_proto_addf(c->out, "%u", id);
    auth_proto_add_kv(c->out, "reason", reason);
    if (temp)
        auth_proto_add(c->out, "temp");
    auth_proto_end(c->out);
    conn_send(c, c->out);
}

static void delayed_fail_fire(void *ctx)
{
    struct request *req = ctx;
    struct conn *c = req->conn;

    req->delay = NULL;      /* the handle is gone once the timer fired */
    strbuf_set(c->out, req->fail_line);
    request_free(c, req);
    conn_send(c, c->out);
    if (c->dead)
        conn_destroy(c);
}

/* An authentication failure: penalise, then answer after the delay.
 * user may be NULL when the mechanism never produced one. */
static void request_fail(struct request *req, const char *user, const char *reason, bool temp)
{
    struct conn *c = req->conn;
    struct strbuf *line = strbuf_new(128);
    long delay = 0;

    auth_proto_begin(line, "FAIL");
    auth_proto_addf(line, "%u", req->id);
    auth_proto_add_kv(line, "reason", reason);
    if (user)
        auth_proto_add_kv(line, "user", user);
    if (temp)
        auth_proto_add(line, "temp");
    auth_proto_end(line);
    if (!temp)
        delay = penalty_failure(req->rip, user ? user : "", event_now());
    sasl_mech_free(&req->mech);
    req->fail_line = strbuf_steal(&line);
    if (delay <= 0) {
        strbuf_set(c->out, req->fail_line);
        request_free(c, req);
        conn_send(c, c->out);
        return;
    }
    req->delay = timer_add(delay, delayed_fail_fire, req);
}

static void request_ok(struct request *req, const char *user)
{
    struct conn *c = req->conn;

    penalty_success(req->rip, user);
    log_info("%s(%s,%s): login succeeded, method=%s, service=%s", "auth", user,
             *req->rip ? req->rip : "unknown", req->mech_name, req->service);
    auth_proto_begin(c->out, "OK");
    auth_proto_addf(c->out, "%u", req->id);
    auth_proto_add_kv(c->out, "user", user);
    auth_proto_end(c->out);
    request_free(c, req);
    conn_send(c, c->out);
}

static void request_cont(struct request *req, const struct strbuf *challenge)
{
    struct conn *c = req->conn;
    struct strbuf *b64 = strbuf_new(strbuf_len(challenge) * 4 / 3 + 8);

    base64_encode(b64, strbuf_str(challenge), strbuf_len(challenge));
    auth_proto_begin(c->out, "CONT");
    auth_proto_addf(c->out, "%u", req->id);
    auth_proto_add(c->out, strbuf_str(b64));
    auth_proto_end(c->out);
    strbuf_free(&b64);
    conn_send(c, c->out);
}

/* The mechanism produced a user name: normalise it and check lockouts.
 * Returns the normalised name (owned) or NULL after answering FAIL. */
static char *request_user(struct request *req)
{
    struct strbuf *user = strbuf_new(64);
    const char *raw = sasl_mech_user(req->mech);

    if (authd_user_normalize(raw, user) < 0) {
        log_info("auth(?,%s): user name with forbidden characters, method=%s",
                 *req->rip ? req->rip : "unknown", req->mech_name);
        strbuf_free(&user);
        request_fail(req, NULL, "Invalid user name", false);
        return NULL;
    }
    if (penalty_locked(req->rip, strbuf_str(user), event_now())) {
        passdb_log_failure("auth", strbuf_str(user), req->rip,
                           "Password mismatch (locked out after repeated failures)");
        request_fail(req, strbuf_str(user), "Authentication failed", false);
        strbuf_free(&user);
        return NULL;
    }
    return strbuf_steal(&user);
}

/* A worker answered the password check. */
static void request_checked(void *ctx, enum passdb_result res)
{
    struct request *req = ctx;
    struct conn *c = req->conn;
    char *user = req->user;

    req->job = NULL;
    req->user = NULL;
    switch (res) {
    case PASSDB_OK:
        request_ok(req, user);
        break;
    case PASSDB_MISMATCH:
    case PASSDB_NOUSER:
        request_fail(req, user, "Authentication failed", false);
        break;
    case PASSDB_TEMPFAIL:
        request_fail(req, user, "Temporary authentication failure", true);
        break;
    }
    free(user);
    if (c->dead && !c->reading)
        conn_destroy(c);
}

static void request_check_password(struct request *req)
{
    char *user = request_user(req);

    if (user == NULL)
        return;
    /* The mechanism is done: forget it (and its copy of the password)
     * while the worker checks; CONT for this id is refused meanwhile. */
    req->user = user;
    struct sasl_mech *m = req->mech;
    req->mech = NULL;
    worker_verify(user, sasl_mech_password(m), req->rip, req->service, request_checked, req,
                  &req->job);
    sasl_mech_free(&m);
}

static void request_need_scram(struct request *req, struct strbuf *out, struct strbuf *why)
{
    struct pwscheme_scram sc;
    char *user = request_user(req);

    if (user == NULL)
        return;
    switch (passdb_scram(user, req->rip, &sc)) {
    case PASSDB_OK:
        break;
    case PASSDB_TEMPFAIL:
        request_fail(req, user, "Temporary authentication failure", true);
        free(user);
        return;
    default:
        /* Unknown user or a scheme that cannot serve SCRAM: go on with
         * random keys so the answer looks like a wrong password. */
        memset(&sc, 0, sizeof(sc));
        sc.iter = 4096;
        sc.salt_len = 16;
        if (getrandom(sc.salt, sc.salt_len, 0) < 0 || getrandom(sc.stored_key, 32, 0) < 0
            || getrandom(sc.server_key, 32, 0) < 0)
            log_warn("getrandom: %m");
        break;
    }
    if (sasl_mech_scram_creds(req->mech, &sc, out, why) == SASL_STEP_CHALLENGE)
        request_cont(req, out);
    else
        request_fail(req, user, "Authentication failed", false);
    explicit_bzero(&sc, sizeof(sc));
    free(user);
}

/* Feed a decoded response (in == NULL: none) to the mechanism. */
static void request_step(struct request *req, const char *in, size_t len)
{
    struct strbuf *out = strbuf_new(128), *why = strbuf_new(64);
    enum sasl_step st = sasl_mech_step(req->mech, in, len, out, why);
    struct strbuf *user;

    switch (st) {
    case SASL_STEP_CHALLENGE:
        request_cont(req, out);
        break;
    case SASL_STEP_CHECK_PASSWORD:
        request_check_password(req);
        break;
    case SASL_STEP_NEED_SCRAM:
        request_need_scram(req, out, why);
        break;
    case SASL_STEP_DONE:
        user = strbuf_new(64);
        if (authd_user_normalize(sasl_mech_user(req->mech), user) == 0)
            request_ok(req, strbuf_str(user));
        else
            request_fail(req, NULL, "Invalid user name", false);
        strbuf_free(&user);
        break;
    case SASL_STEP_FAIL:
        if (strcmp(strbuf_str(why), "Password mismatch") == 0 && sasl_mech_user(req->mech)) {
            user = strbuf_new(64);
            authd_user_normalize(sasl_mech_user(req->mech), user);
            passdb_log_failure("scram", strbuf_str(user), req->rip, "Password mismatch");
            request_fail(req, strbuf_str(user), "Authentication failed", false);
            strbuf_free(&user);
        } else {
            log_info("auth(?,%s): %s failed: %s", *req->rip ? req->rip : "unknown",
                     req->mech_name, strbuf_str(why));
            request_fail(req, NULL, "Authentication failed", false);
        }
        break;
    }
    strbuf_free(&out);
    strbuf_free(&why);
}

/* Decode base64 data from the client; FAIL the request on garbage. */
static int request_decode(struct request *req, const char *b64, struct strbuf *dec)
{
    size_t n = strlen(b64);

    if (n > base64_decoded_max(SASL_RESPONSE_MAX) * 4 / 3 + 4
        || base64_decode(dec, b64, n) < 0) {
        log_info("auth(?,%s): invalid base64 data in %s response",
                 *req->rip ? req->rip : "unknown", req->mech_name);
        request_fail(req, NULL, "Invalid base64 data in response", false);
        return -1;
    }
    return 0;
}

static bool rip_is_local(const char *rip, const char *lip)
{
    return strcmp(rip, "127.0.0.1") == 0 || strcmp(rip, "::1") == 0
        || strncmp(rip, "127.", 4) == 0 || (*rip && strcmp(rip, lip) == 0);
}

static bool mech_offered(const char *name)
{
    char **list = conf_list_split(var_auth_mechanisms ? var_auth_mechanisms : "plain login");
    bool found = false;

    for (char **p = list; *p && !found; p++)
        found = strcasecmp(*p, name) == 0 && sasl_mech_supported(name);
    conf_list_free(&list);
    return found;
}

static void handle_auth(struct conn *c, const struct auth_proto_line *l)
{
    struct strbuf *why = strbuf_new(64);
    struct auth_proto_auth a;
    struct request *req;

    if (auth_proto_parse_auth(l, &a, why) < 0) {
        unsigned id = 0;
        if (l->argc > 1)
            (void)auth_proto_parse_id(l->argv[1], &id);
        log_warn("auth client pid %lu: malformed AUTH request: %s", c->pid, strbuf_str(why));
        send_fail_now(c, id, "Malformed request", false);
        strbuf_free(&why);
        return;
    }
    strbuf_free(&why);
    if (request_find(c, a.id) != NULL) {
        log_warn("auth client pid %lu: AUTH id %u already in use", c->pid, a.id);
        send_fail_now(c, a.id, "Duplicate request id", false);
        return;
    }
    if (c->nrequests >= CONN_REQUESTS_MAX) {
        log_warn("auth client pid %lu: more than %d requests in flight", c->pid,
                 CONN_REQUESTS_MAX);
        send_fail_now(c, a.id, "Too many requests", true);
        return;
    }
    if (!mech_offered(a.mech)) {
        log_info("auth(?,%s): unsupported authentication mechanism %s",
                 *a.rip ? a.rip : "unknown", a.mech);
        send_fail_now(c, a.id, "Unsupported authentication mechanism", false);
        return;
    }
    if (sasl_mech_is_plaintext(a.mech) && !a.secured && !var_auth_allow_cleartext
        && !rip_is_local(a.rip, a.lip)) {
        log_info("auth(?,%s): %s refused: plaintext authentication disallowed on "
                 "non-secure connections", *a.rip ? a.rip : "unknown", a.mech);
        send_fail_now(c, a.id, "Plaintext authentication disallowed on non-secure (SSL/TLS) "
                      "connections", false);
        return;
    }
    req = xcalloc(1, sizeof(*req));
    req->conn = c;
    req->id = a.id;
    req->mech = sasl_mech_new(a.mech);
    req->mech_name = sasl_mech_name(req->mech);
    req->service = xstrdup(a.service);
    req->rip = xstrdup(a.rip);
    req->lip = xstrdup(a.lip);
    req->secured = a.secured;
    req->next = c->requests;
    c->requests = req;
    c->nrequests++;

    if (a.resp == NULL) {
        request_step(req, NULL, 0);
    } else {
        struct strbuf *dec = strbuf_new(strlen(a.resp));
        if (request_decode(req, a.resp, dec) == 0)
            request_step(req, strbuf_str(dec), strbuf_len(dec));
        explicit_bzero(dec->data, dec->size);
        strbuf_free(&dec);
    }
}

static void handle_cont(struct conn *c, const struct auth_proto_line *l)
{
    struct strbuf *why = strbuf_new(64), *dec;
    struct request *req;
    const char *data;
    unsigned id;

    if (auth_proto_parse_cont(l, &id, &data, why) < 0) {
        log_warn("auth client pid %lu: malformed CONT: %s", c->pid, strbuf_str(why));
        send_fail_now(c, 0, "Malformed request", false);
        strbuf_free(&why);
        return;
    }
    strbuf_free(&why);
    if ((req = request_find(c, id)) == NULL || req->mech == NULL) {
        /* Unknown id, or one whose password is being checked or whose
         * delayed FAIL is pending: its answer is on the way. */
        if (req == NULL) {
            log_warn("auth client pid %lu: CONT for unknown request %u", c->pid, id);
            send_fail_now(c, id, "Unknown request", false);
        }
        return;
    }
    dec = strbuf_new(strlen(data));
    if (request_decode(req, data, dec) == 0)
        request_step(req, strbuf_str(dec), strbuf_len(dec));
    explicit_bzero(dec->data, dec->size);
    strbuf_free(&dec);
}

static void handle_user(struct conn *c, const struct auth_proto_line *l)
{
    struct strbuf *why = strbuf_new(64), *user = strbuf_new(64);
    struct userdb_reply r = {0, 0, strbuf_new(64), strbuf_new(64), strbuf_new(32)};
    const char *raw, *service;
    unsigned id = 0;

    if (auth_proto_parse_user(l, &id, &raw, &service, why) < 0
        || authd_user_normalize(raw, user) < 0) {
        if (l->argc > 1)
            (void)auth_proto_parse_id(l->argv[1], &id);
        log_warn("auth client pid %lu: malformed USER request: %s", c->pid,
                 strbuf_len(why) ? strbuf_str(why) : "bad user name");
        send_fail_now(c, id, "Malformed request", false);
        goto out;
    }
    strbuf_reset(why);
    switch (userdb_lookup(strbuf_str(user), &r, why)) {
    case USERDB_FOUND:
        auth_proto_begin(c->out, "USER");
        auth_proto_addf(c->out, "%u", id);
        auth_proto_add(c->out, strbuf_str(user));
        auth_proto_addf(c->out, "uid=%lu", (unsigned long)r.uid);
        auth_proto_addf(c->out, "gid=%lu", (unsigned long)r.gid);
        auth_proto_add_kv(c->out, "home", strbuf_str(r.home));
        if (strbuf_len(r.mail))
            auth_proto_add_kv(c->out, "mail", strbuf_str(r.mail));
        if (strbuf_len(r.quota_rule))
            auth_proto_add_kv(c->out, "quota_rule", strbuf_str(r.quota_rule));
        auth_proto_end(c->out);
        conn_send(c, c->out);
        break;
    case USERDB_NOTFOUND:
        if (var_auth_verbose)
            log_info("userdb(%s): unknown user (service=%s)", strbuf_str(user), service);
        auth_proto_begin(c->out, "NOTFOUND");
        auth_proto_addf(c->out, "%u", id);
        auth_proto_end(c->out);
        conn_send(c, c->out);
        break;
    case USERDB_TEMPFAIL:
        send_fail_now(c, id, "Temporary user lookup failure", true);
        break;
    }
out:
    strbuf_free(&why);
    strbuf_free(&user);
    strbuf_free(&r.home);
    strbuf_free(&r.mail);
    strbuf_free(&r.quota_rule);
}

static void handle_line(struct conn *c, const char *text, size_t len)
{
    struct strbuf *why = strbuf_new(64);
    struct auth_proto_line l;
    const char *cmd;

    if (auth_proto_parse(&l, text, len, why) < 0) {
        log_warn("auth client pid %lu: malformed line: %s", c->pid, strbuf_str(why));
        send_fail_now(c, 0, "Malformed request", false);
        strbuf_free(&why);
        return;
    }
    strbuf_free(&why);
    cmd = l.argv[0];
    if (strcmp(cmd, "VERSION") == 0) {
        if (l.argc < 3 || strcmp(l.argv[1], "1") != 0) {
            log_warn("auth client pid %lu: protocol version mismatch (%s)", c->pid,
                     l.argc > 1 ? l.argv[1] : "none");
            c->dead = true;
        }
        c->version_ok = true;
    } else if (!c->version_ok) {
        log_warn("auth client: %s before VERSION; disconnecting", cmd);
        c->dead = true;
    } else if (strcmp(cmd, "CPID") == 0) {
        if (l.argc >= 2)
            c->pid = strtoul(l.argv[1], NULL, 10);
    } else if (strcmp(cmd, "AUTH") == 0) {
        handle_auth(c, &l);
    } else if (strcmp(cmd, "CONT") == 0) {
        handle_cont(c, &l);
    } else if (strcmp(cmd, "USER") == 0) {
        handle_user(c, &l);
    } else {
        log_warn("auth client pid %lu: unknown command %.32s", c->pid, cmd);
        send_fail_now(c, 0, "Unknown command", false);
    }
    auth_proto_line_free(&l);
}

/* Answer an over-long AUTH or CONT by the id at its start, if readable. */
static void handle_toolong(struct conn *c)
{
    const char *p = strbuf_str(c->line);
    unsigned id = 0;

    if (strncmp(p, "AUTH\t", 5) == 0 || strncmp(p, "CONT\t", 5) == 0) {
        char idbuf[12];
        size_t n = strcspn(p + 5, "\t");
        if (n < sizeof(idbuf)) {
            memcpy(idbuf, p + 5, n);
            idbuf[n] = 0;
            (void)auth_proto_parse_id(idbuf, &id);
        }
    }
    log_warn("auth client pid %lu: line longer than %d bytes", c->pid, AUTH_PROTO_LINE_MAX);
    struct request *req = id ? request_find(c, id) : NULL;
    if (req != NULL && req->mech != NULL)
        request_fail(req, NULL, "Request too long", false);
    else if (req == NULL)
        send_fail_now(c, id, "Request too long", false);
}

static void conn_read(int fd, int events, void *ctx)
{
    struct conn *c = ctx;
    int r;

    c->reading = true;
    for (;;) {
        if (c->skipping) {
            r = stream_skip_line(c->s, (size_t)-1);
            if (r == STREAM_AGAIN)
                break;
            if (r <= 0) {
                c->dead = true;
                break;
            }
            c->skipping = false;
        }
        r = stream_read_line(c->s, c->line, AUTH_PROTO_LINE_MAX);
        if (r == STREAM_AGAIN)
            break;
        if (r == 0) {
            c->dead = true;
            break;
        }
        if (r < 0) {
            if (stream_error(c->s) == STREAM_ERR_TOOLONG) {
                /* The line is still unread: take its start to find the
                 * request id, then skip the rest. */
                char head[48];
                ssize_t n;

                stream_clear_toolong(c->s);
                n = stream_read(c->s, head, sizeof(head));
                strbuf_setn(c->line, head, n > 0 ? (size_t)n : 0);
                handle_toolong(c);
                c->skipping = true;
                continue;
            }
            c->dead = true;
            break;
        }
        handle_line(c, strbuf_str(c->line), strbuf_len(c->line));
        if (c->dead)
            break;
    }
    c->reading = false;
    if (c->dead)
        conn_destroy(c);
}

static void conn_destroy(struct conn *c)
{
    while (c->requests)
        request_free(c, c->requests);
    event_disable(c->fd);
    stream_close(&c->s);
    strbuf_free(&c->line);
    strbuf_free(&c->out);
    free(c);
    server_disconnect();
}

void authd_conn_accept(int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    char **mechs;
    unsigned char cookie[16];

    c->fd = fd;
    c->s = stream_fdopen(fd);
    stream_set_nonblock(c->s, true);
    c->line = strbuf_new(256);
    c->out = strbuf_new(512);

    /* The handshake: everything a Postfix or Dovecot client waits for. */
    auth_proto_begin(c->out, "VERSION");
    auth_proto_addf(c->out, "%d", AUTH_PROTO_MAJOR);
    auth_proto_addf(c->out, "%d", AUTH_PROTO_MINOR);
    auth_proto_end(c->out);
    mechs = conf_list_split(var_auth_mechanisms ? var_auth_mechanisms : "plain login");
    for (char **p = mechs; *p; p++) {
        if (!sasl_mech_supported(*p))
            continue;
        struct sasl_mech *m = sasl_mech_new(*p);
        auth_proto_begin(c->out, "MECH");
        auth_proto_add(c->out, sasl_mech_name(m));
        if (sasl_mech_is_plaintext(*p))
            auth_proto_add(c->out, "plaintext");
        else
            auth_proto_add(c->out, "mutual-auth");
        auth_proto_end(c->out);
        sasl_mech_free(&m);
    }
    conf_list_free(&mechs);
    auth_proto_begin(c->out, "SPID");
    auth_proto_addf(c->out, "%ld", (long)getpid());
    auth_proto_end(c->out);
    auth_proto_begin(c->out, "CUID");
    auth_proto_addf(c->out, "%u", ++conn_cuid);
    auth_proto_end(c->out);
    if (getrandom(cookie, sizeof(cookie), 0) != (ssize_t)sizeof(cookie))
        memset(cookie, 0, sizeof(cookie));
    strbuf_append(c->out, "COOKIE\t");
    for (size_t i = 0; i < sizeof(cookie); i++)
        strbuf_appendf(c->out, "%02x", cookie[i]);
    auth_proto_end(c->out);
    auth_proto_begin(c->out, "DONE");
    auth_proto_end(c->out);
    conn_send(c, c->out);
    if (c->dead) {
        conn_destroy(c);
        return;
    }
    event_read(fd, conn_read, c);
}
