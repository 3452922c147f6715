/*
 * smtp.h - the SMTP/LMTP client delivery agent: shared state.
 *
 * One process serves one delivery request at a time (SERVER_SINGLE): qmgr
 * connects to private/smtp (or private/relay, private/local, ...), sends
 * a deliver_proto request, and reads one per-recipient reply.  Each
 * request is spoken in SMTP or LMTP (struct smtp_dest's lmtp): LMTP when
 * the master.cf service name begins with "lmtp", or when the next hop has
 * Postfix's LMTP syntax "unix:path" or "inet:host:port".  The request
 * is carried by a struct smtp_delivery; each connection to a remote host
 * is a struct smtp_session.  smtp.c orchestrates (hosts in order, final
 * outcomes, logging), smtp_connect.c turns the next hop into addresses and
 * sockets, smtp_proto.c speaks the protocol, smtp_tls.c decides and starts
 * TLS, smtp_sasl.c authenticates.
 *
 * A recipient's outcome is "final" once it is sent or bounced, or deferred
 * by the last host that can be tried; a 4xx from one host leaves it open
 * so the next MX host gets a chance (Postfix's backup-MX behaviour).
 */
#ifndef FACTEUR_SMTP_AGENT_H
#define FACTEUR_SMTP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver_proto.h"
#include "qfile.h"
#include "smtp_syntax.h"
#include "stream.h"
#include "strbuf.h"

struct dns;
struct dns_answer;
struct maps;
struct tls_ctx;
struct tls_conn;

/* ---- smtp.c: global state built in pre_jail ----------------------- */

struct smtp_globals {
    bool lmtp;                  /* the service name selects LMTP for every request */
    struct dns *dns;            /* NULL when DNS is disabled */
    bool dnssec;                /* smtp_dns_support_level = dnssec */
    struct tls_ctx *tls;        /* client context, NULL if TLS never used */
    struct maps *tls_policy;    /* smtp_tls_policy_maps, may be NULL */
    struct maps *sasl_passwd;   /* smtp_sasl_password_maps, may be NULL */
};
extern struct smtp_globals smtp_g;

/* Microseconds since the epoch (wall clock, for delays=). */
long smtp_now_us(void);

/* ---- per-request state --------------------------------------------- */

struct smtp_rcpt_state {
    bool final;                 /* outcome decided: no further host tries it */
    int status;                 /* DELIVER_*; DELIVER_DEFER while open */
    char dsn[12];
    struct strbuf *text;        /* reply text for qmgr and the log */
    /* per transaction */
    bool in_txn;                /* sent in the current transaction */
    bool accepted;              /* RCPT answered 2xx */
    bool again;                 /* 452 too many recipients: next transaction */
};

struct smtp_delivery {
    struct deliver_request req;
    struct qfile *qf;           /* read-write when req.mark_sent */
    int lock_fd;                /* shared lock on the queue file, or -1 */
    const struct qfile_env *env;
    struct smtp_rcpt_state *rs;
    long start_us;              /* request received */
    long conn_us;               /* last connection ready (0: none) */
    char *relay;                /* "host[addr]:port" of the last session, or NULL */
    bool throttle;              /* the destination itself failed */
    bool content_8bit;          /* content has bytes >= 0x80 (scanned lazily) */
    bool content_scanned;
};

/* Record an outcome for recipient i.  final false keeps it open for the
 * next host (a 4xx).  text is copied.  A final DELIVER_SENT is also
 * marked done in the queue file at once when qmgr asked for it
 * (req.mark_sent), so no kill after this point delivers it again. */
void smtp_rcpt_set(struct smtp_delivery *d, size_t i, bool final, int status, const char *dsn,
                   const char *text);
/* Give every recipient still open this outcome (final or not). */
void smtp_rcpt_set_open(struct smtp_delivery *d, bool final, int status, const char *dsn,
                        const char *text);
/* Number of recipients still open. */
size_t smtp_rcpt_open_count(const struct smtp_delivery *d);

/* ---- smtp_connect.c: next hop, addresses, sockets ----------------- */

struct smtp_host {
    char *name;                 /* MX host name, literal host, or unix path */
    char addr[128];             /* printable address, or the unix socket path */
    struct sockaddr_storage sa;
    socklen_t salen;
    bool secure;                /* MX and address answers DNSSEC-validated */
};

struct smtp_dest {
    char *nexthop;              /* as given by qmgr */
    char *domain;               /* host or domain without brackets and port */
    unsigned port;
    bool literal;               /* "[host]": no MX lookup */
    bool is_unix;               /* "unix:path" */
    bool lmtp;                  /* this request speaks LMTP (service or next hop) */
    char *path;                 /* for unix: the socket path */
    bool mx_secure;             /* the MX answer was DNSSEC-validated */
};

/* Parse a next hop ("[host]:port", "host", "host:port", "unix:path",
 * "inet:host:port").  dest->lmtp is set when service_lmtp (the service
 * name begins with "lmtp") or when the next hop begins with "unix:" or
 * "inet:", LMTP next-hop syntax no SMTP next hop uses; LMTP then means
 * port 24 by default, no MX lookup, LHLO and lmtp_* timeouts and TLS
 * level.  Returns 0 or -1 with why. */
int smtp_dest_parse(const char *nexthop, bool service_lmtp, struct smtp_dest *dest,
                    struct strbuf *why);
void smtp_dest_free(struct smtp_dest *dest);

/* Resolve dest into an ordered list of addresses (MX by preference,
 * smtp_address_preference, smtp_mx_address_limit).  Returns the count
 * (> 0), or -1 with the outcome for every recipient in *status_r
 * (DELIVER_DEFER or DELIVER_BOUNCE), *dsn_r and why. */
int smtp_resolve(struct smtp_dest *dest, struct smtp_host **hosts_r, int *status_r,
                 const char **dsn_r, struct strbuf *why);
void smtp_hosts_free(struct smtp_host **hosts, size_t n);

/* Connect to one address within timeout_s (0: system default).  Returns
 * a blocking descriptor, or -1 with why ("connect to h[a]:p: reason"). */
int smtp_connect_host(const struct smtp_host *h, unsigned port, int timeout_s, struct strbuf *why);

/* ---- smtp_proto.c: one session ------------------------------------- */

enum smtp_sess_result {
    SMTP_SESS_DONE,             /* every recipient of the session answered */
    SMTP_SESS_NEXT,             /* try the next host for open recipients */
    SMTP_SESS_PLAIN,            /* TLS handshake failed at level may: retry in clear */
};

#define SMTP_FEAT_PIPELINING 0x001
#define SMTP_FEAT_SIZE       0x002
#define SMTP_FEAT_8BITMIME   0x004
#define SMTP_FEAT_SMTPUTF8   0x008
#define SMTP_FEAT_DSN        0x010
#define SMTP_FEAT_STARTTLS   0x020
#define SMTP_FEAT_AUTH       0x040
#define SMTP_FEAT_XQID       0x080
#define SMTP_FEAT_ESMTP      0x100   /* EHLO/LHLO worked */

enum smtp_tls_level {
    SMTP_TLS_NONE = 0, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_DANE, SMTP_TLS_VERIFY,
    SMTP_TLS_SECURE,
};

struct smtp_session {
    struct smtp_delivery *d;
    const struct smtp_dest *dest;
    const struct smtp_host *host;
    struct stream *s;
    struct tls_conn *tls;       /* TLS through lib/tls (DANE included) */
    enum smtp_tls_level tls_level;
    bool tls_plain_retry;       /* level may, second attempt without TLS */
    char *peer;                 /* "host[addr]" for messages */
    char *relay;                /* "host[addr]:port" for the log */
    unsigned feat;              /* SMTP_FEAT_* */
    uint64_t size_max;          /* SIZE value (0: none given) */
    struct strbuf *auth_mechs;  /* AUTH mechanisms, space separated */
    struct smtp_reply reply;
    struct strbuf *line;
    struct strbuf *cmd;
    struct strbuf *why;
    bool lost;                  /* connection unusable (timeout, EOF, error) */
};

/* Run a session on a connected descriptor (taken over).  Outcomes go to
 * the delivery's recipients; the session's reason for SMTP_SESS_NEXT is
 * in ss->why and has already been given to the open recipients. */
enum smtp_sess_result smtp_session_run(struct smtp_session *ss, int fd);
/* Free the session's resources (closes the connection). */
void smtp_session_free(struct smtp_session *ss);

/* Send a command line (CRLF added) and read its reply into ss->reply.
 * Returns 0, or -1 when the connection failed (ss->lost, ss->why). */
int smtp_chat(struct smtp_session *ss, const char *cmd, int timeout_s, const char *stage);
/* Read one reply into ss->reply within timeout_s. */
int smtp_read_reply(struct smtp_session *ss, int timeout_s, const char *stage);
/* Append the current reply as one log-safe line, "CODE ESC text text"
 * (lines joined by spaces, control characters replaced by '?'). */
void smtp_reply_oneline(const struct smtp_session *ss, struct strbuf *out);
/* Format "host X said: CODE ESC TEXT (in reply to STAGE)" into out. */
void smtp_reply_describe(const struct smtp_session *ss, const char *stage, struct strbuf *out);
/* The enhanced code of the current reply, or a default for its class. */
const char *smtp_reply_dsn(const struct smtp_session *ss);

/* ---- smtp_tls.c ------------------------------------------------------ */

/* The TLS level for a destination: policy maps, then the level
 * parameter.  Returns -1 with why for a policy map failure or an unknown
 * level (the delivery defers). */
int smtp_tls_level_for(const struct smtp_dest *dest, enum smtp_tls_level *level_r,
                       struct strbuf *why);
/* After EHLO: STARTTLS as the level says.  Returns 0 (go on, with or
 * without TLS), or the session result to return at once (the reason is
 * set for the open recipients). */
int smtp_tls_negotiate(struct smtp_session *ss, enum smtp_sess_result *res_r);
const char *smtp_tls_level_name(enum smtp_tls_level level);


/* ---- smtp_sasl.c ----------------------------------------------------- */

/* Authenticate if smtp_sasl_auth_enable and a password is known for the
 * destination.  Returns 0 (authenticated or not needed), -1 when the
 * session must stop (reason given to the open recipients). */
int smtp_sasl_authenticate(struct smtp_session *ss);

#endif
