/*
 * authd.h - what the parts of authd share: the backend interfaces
 * (passdb, userdb), passwd-file parsing, the failure penalty table and the
 * connection entry point.  Only the files of authd include it.
 */
#ifndef FACTEUR_AUTHD_H
#define FACTEUR_AUTHD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pwscheme.h"
#include "strbuf.h"

/* ---- connections (authd_conn.c) ---- */

/* A new client on fd (from server_main's accept); authd owns fd. */
void authd_conn_accept(int fd);

/* ---- user names (authd_passdb.c) ---- */

/* Normalise a user name as auth_username_format, auth_default_realm and
 * auth_username_chars say.  Returns 0 with the name in out, -1 if the name
 * has characters outside auth_username_chars or is malformed. */
int authd_user_normalize(const char *in, struct strbuf *out);

/* ---- passwd-file (authd_pwfile.c) ---- */

#define PWFILE_LINE_MAX 4096

/* One line "user:password:uid:gid:gecos:home:shell:extra fields".  Fields
 * point into buf (owned); missing trailing fields are "". */
struct pwfile_entry {
    char *buf;
    const char *user, *password, *uid, *gid, *gecos, *home, *shell, *extra;
};

/* Split one line (no newline) into e.  Returns 0, or -1 for a line without
 * user name (comments and blank lines are -1 too). */
int pwfile_parse_line(const char *line, struct pwfile_entry *e);
/* Find user in the file at path: 1 found (e set), 0 not found, -1 with why
 * if the file cannot be read.  Over-long lines are skipped with a warning. */
int pwfile_lookup(const char *path, const char *user, struct pwfile_entry *e,
                  struct strbuf *why);
void pwfile_entry_free(struct pwfile_entry *e);
/* The value of key in space-separated "k=v" extra fields, copied into out;
 * returns true if present. */
bool pwfile_extra(const char *extra, const char *key, struct strbuf *out);

/* ---- passdb (authd_passdb.c) ---- */

enum passdb_result {
    PASSDB_OK,
    PASSDB_MISMATCH,    /* the user exists, the password is wrong */
    PASSDB_NOUSER,      /* no backend knows the user */
    PASSDB_TEMPFAIL,    /* a backend could not answer: retry later */
};

/* Open the backends listed in auth_passdb (pre_jail: PAM and root-only
 * files still reachable).  Returns 0 or -1 with why. */
int passdb_init(struct strbuf *why);
/* Check a password in this process (workers call it; authd_conn goes
 * through worker_verify).  rip is the client address for logs and PAM ("" if
 * unknown).  Each failure is logged in the fail2ban-visible form
 * "BACKEND(user,rip): Password mismatch" / ": unknown user". */
enum passdb_result passdb_verify_inline(const char *user, const char *password,
                                        const char *rip, const char *service);
/* SCRAM credentials for user (from SCRAM-SHA-256 or PLAIN entries). */
enum passdb_result passdb_scram(const char *user, const char *rip, struct pwscheme_scram *sc);
/* Whether some lookup-capable backend knows user: 1 yes, 0 no, -1 error;
 * 1 as well when no configured backend can enumerate users (pam). */
int passdb_exists(const char *user);
/* Log a failure the way passdb_verify does (used for lockouts and SCRAM). */
void passdb_log_failure(const char *backend, const char *user, const char *rip,
                        const char *what);

/* ---- password-check workers (authd_worker.c) ---- */

struct worker_job;
typedef void worker_done_fn(void *ctx, enum passdb_result res);

/* Fork n (at most 4) worker processes; call before listening.  Failures
 * are logged and leave fewer workers (none: checks run inline). */
void worker_pool_start(int n);
/* Check a password in a worker; fn(ctx, result) runs later from the event
 * loop.  *job_r is the handle for worker_job_cancel, or NULL when the
 * check ran at once (no worker left): fn has then already run, and it
 * may have freed the memory job_r points into. */
void worker_verify(const char *user, const char *password, const char *rip,
                   const char *service, worker_done_fn *fn, void *ctx,
                   struct worker_job **job_r);
/* The requester is gone: fn will not run.  NULLs *jp; NULL allowed. */
void worker_job_cancel(struct worker_job **jp);

/* ---- userdb (authd_userdb.c) ---- */

struct userdb_reply {
    uid_t uid;
    gid_t gid;
    struct strbuf *home, *mail, *quota_rule;
};

enum userdb_result { USERDB_FOUND, USERDB_NOTFOUND, USERDB_TEMPFAIL };

int userdb_init(struct strbuf *why);
/* Look user up in the auth_userdb backends in order; r's strbufs must be
 * allocated by the caller.  why says what failed for TEMPFAIL. */
enum userdb_result userdb_lookup(const char *user, struct userdb_reply *r, struct strbuf *why);

/* Expand %u (user), %n (local part), %d (domain), %% in a template into
 * out.  Fails (-1) if a part would be empty, "." or "..". */
int userdb_expand(const char *tmpl, const char *user, struct strbuf *out);

/* ---- failure penalties (authd_penalty.c) ---- */

#define PENALTY_TABLE_MAX 4096

/* Times in milliseconds; now from event_now(). */
struct penalty_conf {
    long base_ms, max_ms;       /* auth_failure_delay, auth_failure_delay_max */
    long lockout_threshold;     /* failures of one client+user pair; 0: never */
    long lockout_ms;            /* auth_lockout_time */
};

void penalty_configure(const struct penalty_conf *pc);
/* True if the rip+user pair is locked out at now. */
bool penalty_locked(const char *rip, const char *user, uint64_t now);
/* Record a failure; returns the delay (ms) before the FAIL answer. */
long penalty_failure(const char *rip, const char *user, uint64_t now);
/* A success forgets the pair's and the user's failures. */
void penalty_success(const char *rip, const char *user);
/* Entries in the table (tests, logs). */
unsigned penalty_count(void);

#endif
