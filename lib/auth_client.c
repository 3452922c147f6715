/*
 * auth_client.c - talk to authd (or any Dovecot auth server) as a client.
 *
 * Used by smtpd, imapd, pop3d and lmtpd through auth_client.h, and by
 * facteur-auth.  authd is trusted more than a network peer but its lines
 * are still parsed with lib/auth_proto's bounds; an answer that makes no
 * sense is a temporary failure, never a success.  Blocking I/O over
 * lib/stream with a timeout per read and write; after any I/O error the
 * connection is dropped and the next request reconnects once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "mem.h"
#include "stream.h"

#define AUTH_CLIENT_MECHS_MAX 32
#define AUTH_CLIENT_HANDSHAKE_LINES 200

struct auth_client {
    char *path;
    int timeout_ms;
    struct stream *s;
    struct strbuf *mechs;       /* " PLAIN LOGIN" with a leading space */
    unsigned nmechs;
    bool version_ok, ready;
    unsigned next_id;
    struct auth_proto_line reply;   /* last answer after the handshake */
    bool have_reply;
};

struct auth_client *auth_client_new_detached(void)
{
    struct auth_client *c = xcalloc(1, sizeof(*c));

    c->mechs = strbuf_new(64);
    return c;
}

bool auth_client_ready(const struct auth_client *c)
{
    return c->ready;
}

const char *auth_client_mechs(const struct auth_client *c)
{
    return strbuf_len(c->mechs) ? strbuf_str(c->mechs) + 1 : "";
}

bool auth_client_has_mech(const struct auth_client *c, const char *mech)
{
    const char *p = strbuf_str(c->mechs);
    size_t n = strlen(mech);

    while ((p = strchr(p, ' ')) != NULL) {
        p++;
        if (strncasecmp(p, mech, n) == 0 && (p[n] == ' ' || p[n] == 0))
            return true;
    }
    return false;
}

int auth_client_feed(struct auth_client *c, const char *line, size_t len, struct strbuf *why)
{
    struct auth_proto_line l;

    if (auth_proto_parse(&l, line, len, why) < 0)
        return -1;
    if (c->ready) {
        auth_proto_line_free(&c->reply);
        c->reply = l;
        c->have_reply = true;
        return 0;
    }
    if (strcmp(l.argv[0], "VERSION") == 0) {
        if (l.argc < 3 || strcmp(l.argv[1], "1") != 0) {
            strbuf_set(why, "authd speaks another protocol version");
            goto fail;
        }
        c->version_ok = true;
    } else if (!c->version_ok) {
        strbuf_printf(why, "authd sent %.32s before VERSION", l.argv[0]);
        goto fail;
    } else if (strcmp(l.argv[0], "MECH") == 0 && l.argc >= 2) {
        bool private = auth_proto_param(&l, 2, "private") != NULL;
        if (!private && c->nmechs < AUTH_CLIENT_MECHS_MAX && strlen(l.argv[1]) <= 32
            && strchr(l.argv[1], ' ') == NULL) {
            strbuf_appendc(c->mechs, ' ');
            for (const char *p = l.argv[1]; *p; p++)
                strbuf_appendc(c->mechs, *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
            c->nmechs++;
        }
    } else if (strcmp(l.argv[0], "DONE") == 0) {
        c->ready = true;
    }
    /* SPID, CUID, COOKIE and unknown lines are not needed here. */
    auth_proto_line_free(&l);
    return 0;
fail:
    auth_proto_line_free(&l);
    return -1;
}

static void client_disconnect(struct auth_client *c)
{
    stream_close(&c->s);
    strbuf_reset(c->mechs);
    c->nmechs = 0;
    c->version_ok = c->ready = false;
    auth_proto_line_free(&c->reply);
    c->have_reply = false;
}

/* Read one line from authd and feed it. */
static int client_read(struct auth_client *c, struct strbuf *why)
{
    struct strbuf *line = strbuf_new(256);
    int r = stream_read_line(c->s, line, AUTH_PROTO_LINE_MAX);

    if (r != 1) {
        strbuf_printf(why, "authd %s: %s", c->path,
                      r == 0 ? "connection closed" : stream_strerror(c->s));
        strbuf_free(&line);
        return -1;
    }
    r = auth_client_feed(c, strbuf_str(line), strbuf_len(line), why);
    strbuf_free(&line);
    return r;
}

static int client_open(struct auth_client *c, struct strbuf *why)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(c->path) >= sizeof(sun.sun_path)) {
        strbuf_printf(why, "authd socket path too long: %s", c->path);
        return -1;
    }
    memcpy(sun.sun_path, c->path, strlen(c->path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        strbuf_printf(why, "socket: %m");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        strbuf_printf(why, "connect to authd %s: %m", c->path);
        close(fd);
        return -1;
    }
    c->s = stream_fdopen(fd);
    stream_set_timeout(c->s, c->timeout_ms);
    stream_printf(c->s, "VERSION\t%d\t%d\nCPID\t%ld\n", AUTH_PROTO_MAJOR, AUTH_PROTO_MINOR,
                  (long)getpid());
    if (stream_flush(c->s) < 0) {
        strbuf_printf(why, "authd %s: %s", c->path, stream_strerror(c->s));
        client_disconnect(c);
        return -1;
    }
    for (int i = 0; !c->ready; i++) {
        if (i == AUTH_CLIENT_HANDSHAKE_LINES) {
            strbuf_printf(why, "authd %s: handshake never ends", c->path);
            client_disconnect(c);
            return -1;
        }
        if (client_read(c, why) < 0) {
            client_disconnect(c);
            return -1;
        }
    }
    return 0;
}

struct auth_client *auth_client_connect(const char *path, int timeout_ms, struct strbuf *why)
{
    struct auth_client *c = auth_client_new_detached();

    c->path = xstrdup(path);
    c->timeout_ms = timeout_ms;
    if (client_open(c, why) < 0) {
        auth_client_close(&c);
        return NULL;
    }
    return c;
}

void auth_client_close(struct auth_client **cp)
{
    struct auth_client *c;

    if (cp == NULL || (c = *cp) == NULL)
        return;
    client_disconnect(c);
    strbuf_free(&c->mechs);
    free(c->path);
    free(c);
    *cp = NULL;
}

/* Make sure a connection is up (reconnect once after an error). */
static int client_ensure(struct auth_client *c, struct strbuf *why)
{
    if (c->s != NULL && c->ready)
        return 0;
    if (c->path == NULL) {
        strbuf_set(why, "auth client is not connected");
        return -1;
    }
    client_disconnect(c);
    return client_open(c, why);
}

/* Send out, then read until an answer for id arrives. */
static int client_request(struct auth_client *c, const struct strbuf *out, unsigned id,
                          struct strbuf *why)
{
    unsigned got;

    stream_write(c->s, strbuf_str(out), strbuf_len(out));
    if (stream_flush(c->s) < 0) {
        strbuf_printf(why, "authd %s: %s", c->path, stream_strerror(c->s));
        client_disconnect(c);
        return -1;
    }
    for (;;) {
        c->have_reply = false;
        if (client_read(c, why) < 0) {
            client_disconnect(c);
            return -1;
        }
        if (c->reply.argc >= 2 && auth_proto_parse_id(c->reply.argv[1], &got) == 0
            && got == id)
            return 0;
        /* An answer to another id (an earlier, abandoned request): skip. */
    }
}

static void copy_reason(const struct auth_proto_line *l, struct strbuf *reason_r,
                        const char *dflt)
{
    const char *r = auth_proto_param(l, 2, "reason");

    strbuf_set(reason_r, r && *r ? r : dflt);
    /* Keep it printable: it may end up in an SMTP or IMAP reply. */
    for (size_t i = 0; i < strbuf_len(reason_r); i++)
        if ((unsigned char)reason_r->data[i] < 0x20 || reason_r->data[i] == 0x7f)
            reason_r->data[i] = '?';
}

enum auth_client_result auth_client_login(struct auth_client *c,
                                          const struct auth_client_login *req,
                                          auth_client_cont_fn *cont, void *ctx,
                                          struct strbuf *user_r, struct strbuf *reason_r)
{
    struct strbuf *out = strbuf_new(256), *resp = strbuf_new(256);
    enum auth_client_result res = AUTH_CLIENT_TEMPFAIL;
    unsigned id;

    if (client_ensure(c, reason_r) < 0)
        goto done;
    id = ++c->next_id;
    if (id == 0)
        id = c->next_id = 1;
    auth_proto_begin(out, "AUTH");
    auth_proto_addf(out, "%u", id);
    auth_proto_add(out, req->mech);
    auth_proto_add_kv(out, "service", req->service);
    auth_proto_add_kv(out, "lip", req->lip ? req->lip : "");
    auth_proto_add_kv(out, "rip", req->rip ? req->rip : "");
    if (req->lport)
        auth_proto_addf(out, "lport=%u", req->lport);
    if (req->rport)
        auth_proto_addf(out, "rport=%u", req->rport);
    if (req->secured)
        auth_proto_add(out, "secured");
    if (req->valid_client_cert)
        auth_proto_add(out, "valid-client-cert");
    if (req->initial)
        auth_proto_add_kv(out, "resp", req->initial);
    auth_proto_end(out);

    for (int round = 0; round < 16; round++) {
        const char *cmd;

        if (client_request(c, out, id, reason_r) < 0)
            goto done;
        cmd = c->reply.argv[0];
        if (strcmp(cmd, "OK") == 0) {
            const char *user = auth_proto_param(&c->reply, 2, "user");
            if (user == NULL || !auth_proto_valid_user(user)) {
                strbuf_set(reason_r, "authd answered OK without a valid user name");
                goto done;
            }
            strbuf_set(user_r, user);
            res = AUTH_CLIENT_OK;
            goto done;
        }
        if (strcmp(cmd, "FAIL") == 0) {
            copy_reason(&c->reply, reason_r, "Authentication failed");
            res = auth_proto_param(&c->reply, 2, "temp") ? AUTH_CLIENT_TEMPFAIL
                                                          : AUTH_CLIENT_FAIL;
            goto done;
        }
        if (strcmp(cmd, "CONT") != 0 || cont == NULL) {
            strbuf_printf(reason_r, "unexpected answer %.16s from authd", cmd);
            goto done;
        }
        strbuf_reset(resp);
        if (cont(c->reply.argc >= 3 ? c->reply.argv[2] : "", resp, ctx) < 0) {
            /* The protocol has no abort: drop the connection so authd
             * forgets the request; the next call reconnects. */
            client_disconnect(c);
            strbuf_set(reason_r, "Authentication cancelled");
            res = AUTH_CLIENT_FAIL;
            goto done;
        }
        strbuf_reset(out);
        auth_proto_begin(out, "CONT");
        auth_proto_addf(out, "%u", id);
        auth_proto_add(out, strbuf_str(resp));
        auth_proto_end(out);
    }
    strbuf_set(reason_r, "too many authentication rounds");
    client_disconnect(c);
    res = AUTH_CLIENT_FAIL;
done:
    explicit_bzero(out->data, out->size);
    explicit_bzero(resp->data, resp->size);
    strbuf_free(&out);
    strbuf_free(&resp);
    return res;
}

void auth_client_user_clear(struct auth_client_user *u)
{
    strbuf_free(&u->home);
    strbuf_free(&u->mail);
    strbuf_free(&u->quota_rule);
    u->uid = u->gid = 0;
}

static int parse_ulong(const char *s, unsigned long *v)
{
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *v = strtoul(s, &end, 10);
    return *end || errno ? -1 : 0;
}

int auth_client_lookup(struct auth_client *c, const char *user, const char *service,
                       struct auth_client_user *u, struct strbuf *why)
{
    struct strbuf *out = strbuf_new(128);
    const char *cmd, *v;
    unsigned id;
    int ret = -1;

    memset(u, 0, sizeof(*u));
    if (!auth_proto_valid_user(user)) {
        strbuf_set(why, "invalid user name");
        goto done;
    }
    if (client_ensure(c, why) < 0)
        goto done;
    id = ++c->next_id;
    if (id == 0)
        id = c->next_id = 1;
    auth_proto_begin(out, "USER");
    auth_proto_addf(out, "%u", id);
    auth_proto_add(out, user);
    auth_proto_add_kv(out, "service", service);
    auth_proto_end(out);
    if (client_request(c, out, id, why) < 0)
        goto done;
    cmd = c->reply.argv[0];
    if (strcmp(cmd, "NOTFOUND") == 0) {
        ret = 0;
    } else if (strcmp(cmd, "USER") == 0) {
        if (parse_ulong(auth_proto_param(&c->reply, 3, "uid"), &u->uid) < 0
            || parse_ulong(auth_proto_param(&c->reply, 3, "gid"), &u->gid) < 0
            || (v = auth_proto_param(&c->reply, 3, "home")) == NULL) {
            strbuf_set(why, "authd USER answer without valid uid, gid and home");
            goto done;
        }
        u->home = strbuf_new(64);
        u->mail = strbuf_new(64);
        u->quota_rule = strbuf_new(32);
        strbuf_set(u->home, v);
        if ((v = auth_proto_param(&c->reply, 3, "mail")) != NULL)
            strbuf_set(u->mail, v);
        if ((v = auth_proto_param(&c->reply, 3, "quota_rule")) != NULL)
            strbuf_set(u->quota_rule, v);
        ret = 1;
    } else if (strcmp(cmd, "FAIL") == 0) {
        copy_reason(&c->reply, why, "user lookup failed");
    } else {
        strbuf_printf(why, "unexpected answer %.16s from authd", cmd);
    }
done:
    strbuf_free(&out);
    return ret;
}
