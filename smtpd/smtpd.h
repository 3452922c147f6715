/*
 * smtpd.h - the smtpd session, shared by the files of the smtpd daemon.
 *
 * One process serves one client at a time (SERVER_SINGLE); a session is
 * the state of that client from connect to disconnect: who it is, what it
 * announced (HELO, TLS, SASL), the transaction in progress, and counters
 * for limits and for the Postfix-style disconnect line.  The files:
 *   smtpd.c          main, pre/post jail, the session loop, replies, logs
 *   smtpd_cmd.c      the command table and HELO/EHLO/MAIL/RCPT/RSET/...
 *   smtpd_data.c     DATA and BDAT into lib/cleanup (queue file)
 *   smtpd_auth.c     AUTH through authd (lib/auth_client)
 *   smtpd_tls.c      STARTTLS and wrapper mode (lib/tls)
 *   smtpd_xclient.c  XCLIENT and XFORWARD for trusted clients
 *   smtpd_peer.c     client address and name, anvil limits
 */
#ifndef FACTEUR_SMTPD_H
#define FACTEUR_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_syntax.h"
#include "stream.h"
#include "strbuf.h"

struct cleanup;
struct tls_conn;
struct auth_client;
struct cidr_list;
struct smtp_data;
struct anvil_client;

#define SMTPD_NAME_MAX      256     /* client host name */
#define SMTPD_ADDR_MAX      64      /* printable client address */
#define SMTPD_HELO_MAX      255     /* HELO argument kept */
#define SMTPD_XATTR_MAX     255     /* one XCLIENT/XFORWARD value */

/* Bare newline handling (smtpd_forbid_bare_newline). */
enum smtpd_bare_nl { SMTPD_BARE_NL_NORMALIZE, SMTPD_BARE_NL_REJECT, SMTPD_BARE_NL_NO };

/* A handler's outcome. */
#define SMTPD_CMD_OK     0          /* success reply sent */
#define SMTPD_CMD_ERR    1          /* error reply sent (counted) */
#define SMTPD_CMD_CLOSE  2          /* reply sent; end the session now */

/* Process-wide state set up in pre_jail. */
struct smtpd_global {
    const char *queue_dir;          /* "." after chdir to queue_directory */
    struct tls_ctx *tls;            /* NULL: no certificate, no TLS */
    int tls_level;                  /* 0 none, 1 may, 2 encrypt */
    bool wrapper;                   /* smtpd_tls_wrappermode */
    enum smtpd_bare_nl bare_nl;
    struct cidr_list *bare_nl_exclusions;
    struct cidr_list *limit_exceptions;
    struct cidr_list *xclient_hosts;
    struct cidr_list *xforward_hosts;
    struct cidr_list *sasl_exceptions;  /* smtpd_sasl_exceptions_networks */
    struct anvil_client *anvil;
    bool check_ready;               /* smtpd_check_init succeeded */
};
extern struct smtpd_global smtpd_g;

/* Per verb counts for the disconnect line. */
struct smtpd_counts {
    unsigned ok[SMTP_VERB_COUNT + 1];   /* [SMTP_VERB_UNKNOWN] = unknown */
    unsigned total[SMTP_VERB_COUNT + 1];
};

struct smtpd_session {
    struct stream *client;
    const char *service;            /* master.cf service name */
    /* The client (XCLIENT may replace these). */
    char name[SMTPD_NAME_MAX];      /* verified name or "unknown" */
    char addr[SMTPD_ADDR_MAX];      /* printable, no brackets; "" unknown */
    char port[8];
    char laddr[SMTPD_ADDR_MAX], lport[8];
    char real_addr[SMTPD_ADDR_MAX]; /* the connection's own peer (XCLIENT rights) */
    struct strbuf *namaddr;         /* "name[addr]" for logs */
    bool anvil_counted;             /* anvil_client_connect succeeded */
    bool limits_exempt;             /* in smtpd_client_event_limit_exceptions */
    /* Session. */
    struct strbuf *helo;            /* "" before HELO/EHLO */
    bool esmtp;
    struct tls_conn *tls;
    struct auth_client *auth;       /* connected at the first EHLO when offered */
    bool auth_failed_connect;       /* do not retry authd this session */
    struct strbuf *sasl_user;       /* "" when not authenticated */
    struct strbuf *sasl_method;
    struct strbuf *sticky_reject;   /* a CONNECT/HELO reject replayed to MAIL.. */
    bool bare_nl_exempt;
    /* XFORWARD attributes for the next transaction ("" unset). */
    struct strbuf *xf_name, *xf_addr, *xf_port, *xf_proto, *xf_helo, *xf_ident;
    /* Transaction. */
    bool in_mail;
    struct strbuf *sender;          /* external form, "" for <> */
    struct smtp_params mail_params;
    struct smtp_addr addr_tmp;      /* scratch for MAIL/RCPT parsing */
    struct smtp_params params_tmp;
    struct strbuf *first_rcpt;
    unsigned rcpt_count;            /* accepted */
    unsigned rcpt_tries;            /* RCPT commands in this transaction */
    struct cleanup *cleanup;        /* opened at the first accepted RCPT */
    struct smtp_data *data;
    bool bdat_active;               /* BDAT chunks in progress */
    bool bdat_failed;               /* a chunk failed: discard to LAST */
    bool data_stop;                 /* stop feeding cleanup */
    bool data_toobig;
    bool cleanup_failed;            /* cleanup_line said no */
    /* Counters. */
    unsigned errors;                /* error replies (soft/hard limits) */
    unsigned junk;                  /* NOOP/VRFY/ETRN/RSET */
    struct smtpd_counts counts;
    const char *where;              /* last command for "lost connection after X" */
    bool closing;
    struct strbuf *why;             /* scratch for errors */
    struct strbuf *reply;           /* scratch for replies */
};

/* Copy src into dst[size], cut to fit, always NUL-terminated. */
static inline void smtpd_copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* smtpd.c: replies.  A reply line is buffered; smtpd's loop flushes when
 * no more input is pending (PIPELINING).  4xx/5xx replies count as errors
 * and are delayed by smtpd_error_sleep_time past the soft limit. */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A reply from the smtp_syntax table, with an optional detail. */
void smtpd_reply_id(struct smtpd_session *s, enum smtp_reply_id id, const char *detail);
/* A full reply line (from smtpd_check or cleanup) as is, CRLF added. */
void smtpd_reply_line(struct smtpd_session *s, const char *line);
/* Write everything buffered now (before a blocking exchange). */
int smtpd_flush(struct smtpd_session *s);
/* Log Postfix's "QID|NOQUEUE: reject: CMD from name[addr]: REPLY; from=<>
 * to=<> proto=ESMTP helo=<h>" for a refusal decided by smtpd itself. */
void smtpd_log_reject(struct smtpd_session *s, const char *cmd, const char *reply,
                      const char *rcpt);
/* "ESMTPSA" and friends for this session. */
const char *smtpd_protocol(const struct smtpd_session *s);
/* Flush replies unless more input is buffered (PIPELINING), then read one
 * command/response line of at most max bytes
 * within smtpd_timeout into line, its terminator removed; *st_r says how
 * it ended (smtp_line_check).  Returns 1 for a line, 2 for a line that was
 * too long (skipped; line is empty; the caller replies), or 0 when the
 * session must end (EOF, timeout or I/O error: logged, and a timeout
 * answered). */
int smtpd_read_line(struct smtpd_session *s, struct strbuf *line, size_t max,
                    enum smtp_line_status *st_r);
/* Send the 220 greeting (at connect, and again after XCLIENT). */
void smtpd_banner(struct smtpd_session *s);
/* Log the end of the session because of a stream error during `where`. */
void smtpd_lost(struct smtpd_session *s, const char *where);

/* smtpd_cmd.c */
/* Run one command line (content without CRLF).  Returns SMTPD_CMD_*. */
int smtpd_cmd_run(struct smtpd_session *s, const char *line, size_t len);
/* Forget the transaction (RSET, after DATA, after HELO). */
void smtpd_txn_reset(struct smtpd_session *s);
/* Fill a smtpd_check context from the session. */
struct smtpd_check_ctx;
void smtpd_check_ctx_fill(const struct smtpd_session *s, struct smtpd_check_ctx *ctx);
/* True when TLS is required and not active: refuse most commands. */
bool smtpd_need_tls(const struct smtpd_session *s);

/* smtpd_data.c */
int smtpd_data_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);
int smtpd_bdat_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);

/* smtpd_auth.c */
int smtpd_auth_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);
/* The mechanisms to announce after "250-AUTH " now, or NULL for none. */
const char *smtpd_auth_mechs(struct smtpd_session *s);

/* smtpd_tls.c */
int smtpd_starttls_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);
/* Wrapper mode: handshake before the banner.  0, or -1 (logged). */
int smtpd_tls_wrapper(struct smtpd_session *s);
/* "TLSv1.3 with cipher ..." or NULL. */
const char *smtpd_tls_summary(const struct smtpd_session *s);
void smtpd_tls_end(struct smtpd_session *s);

/* smtpd_xclient.c */
int smtpd_xclient_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);
int smtpd_xforward_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd);
/* XCLIENT / XFORWARD attribute names to announce, or NULL if not allowed. */
const char *smtpd_xclient_announce(const struct smtpd_session *s);
const char *smtpd_xforward_announce(const struct smtpd_session *s);
void smtpd_xforward_reset(struct smtpd_session *s);

/* smtpd_peer.c */
/* Before the jail: load the resolver and NSS modules, which a chrooted
 * process could no longer find. */
void smtpd_peer_prepare(void);
/* Fill name, addr, port, laddr, lport, namaddr from the socket. */
void smtpd_peer_init(struct smtpd_session *s);
/* Rebuild namaddr after the name or address changed. */
void smtpd_peer_namaddr(struct smtpd_session *s);
/* Connection count and rate limits at connect.  0 go on, -1 refused
 * (421 sent and logged). */
int smtpd_peer_connect_limits(struct smtpd_session *s);
/* Message (at MAIL) and recipient (at RCPT) rate limits: 0 or -1 (the
 * 450 reply sent and logged). */
int smtpd_peer_message_limit(struct smtpd_session *s);
int smtpd_peer_rcpt_limit(struct smtpd_session *s);
void smtpd_peer_disconnect(struct smtpd_session *s);

#endif
