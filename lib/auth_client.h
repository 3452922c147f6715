/*
 * auth_client.h - the client side of authd's Dovecot auth protocol, for
 * smtpd, imapd, pop3d, lmtpd and facteur-auth.
 *
 * One struct auth_client is one connection to authd (a UNIX socket path,
 * e.g. "private/auth" relative to queue_directory).  Calls block, each
 * bounded by the timeout given at connect (it must exceed authd's
 * auth_failure_delay_max, since a failed login is answered late).  After
 * an I/O error or timeout the connection is closed; the next call
 * reconnects once.  The parsing of authd's answers is separate from the
 * I/O (auth_client_feed), so a non-blocking driver on lib/events can reuse
 * it later.
 */
#ifndef FACTEUR_AUTH_CLIENT_H
#define FACTEUR_AUTH_CLIENT_H

#include <stdbool.h>

#include "strbuf.h"

struct auth_client;

enum auth_client_result {
    AUTH_CLIENT_OK = 0,         /* authenticated; user_r holds the name */
    AUTH_CLIENT_FAIL = 1,       /* wrong credentials or refused: 535 */
    AUTH_CLIENT_TEMPFAIL = 2,   /* authd unreachable or backend down: 454 */
};

/* Connect to authd at path and read its handshake, waiting at most
 * timeout_ms for each request later too.  NULL with why on failure. */
struct auth_client *auth_client_connect(const char *path, int timeout_ms, struct strbuf *why);
/* Close and free; NULL *cp.  cp or *cp may be NULL. */
void auth_client_close(struct auth_client **cp);

/* Mechanisms authd offers, space-separated, upper case ("PLAIN LOGIN"):
 * what smtpd puts after "250-AUTH".  Borrowed, valid until close. */
const char *auth_client_mechs(const struct auth_client *c);
/* True if authd offers mech (case-insensitive). */
bool auth_client_has_mech(const struct auth_client *c, const char *mech);

/* One login.  initial: the client's base64 initial response, "" for an
 * empty one ("=" in SMTP), NULL for none. */
struct auth_client_login {
    const char *mech;
    const char *initial;
    const char *service;        /* "smtp", "imap", "pop3" */
    const char *lip, *rip;      /* local and remote addresses ("" unknown) */
    unsigned lport, rport;
    bool secured;               /* TLS (or a local connection) */
    bool valid_client_cert;
};

/* A challenge from authd (base64 text): put the client's base64 answer
 * into resp_b64 and return 0, or return -1 when the client cancels
 * ("*"): the login then ends as AUTH_CLIENT_FAIL. */
typedef int auth_client_cont_fn(const char *challenge_b64, struct strbuf *resp_b64,
                                void *ctx);

/* Run a login to the end.  On AUTH_CLIENT_OK user_r is the authenticated
 * name; otherwise reason_r says why (authd's reason, safe to show). */
enum auth_client_result auth_client_login(struct auth_client *c,
                                          const struct auth_client_login *req,
                                          auth_client_cont_fn *cont, void *ctx,
                                          struct strbuf *user_r, struct strbuf *reason_r);

/* A userdb answer. */
struct auth_client_user {
    unsigned long uid, gid;
    struct strbuf *home, *mail, *quota_rule;    /* allocated by the call */
};

/* Look user up (USER request).  Returns 1 found (u filled; free with
 * auth_client_user_clear), 0 unknown user, -1 temporary failure (why). */
int auth_client_lookup(struct auth_client *c, const char *user, const char *service,
                       struct auth_client_user *u, struct strbuf *why);
void auth_client_user_clear(struct auth_client_user *u);

/* The I/O-free part: parse one line from authd (handshake or answer).
 * Returns 0 or -1 (protocol error, why).  Exposed for tests and for a
 * non-blocking driver. */
int auth_client_feed(struct auth_client *c, const char *line, size_t len, struct strbuf *why);
/* An unconnected client for auth_client_feed (tests). */
struct auth_client *auth_client_new_detached(void);
/* True once the handshake's DONE was read. */
bool auth_client_ready(const struct auth_client *c);

#endif
