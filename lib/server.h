/*
 * server.h - the server skeletons every daemon's thin main uses.
 *
 * A daemon fills a struct server_desc and calls server_main().  The
 * skeleton parses master's arguments (master_proto.h), loads main.cf with
 * the -o overrides, opens logging, runs pre_jail (still privileged), chroots
 * and drops to mail_owner when master asked (-z, -u; lib/privs), runs
 * post_jail, then serves:
 *
 *   SERVER_SINGLE   one client at a time per process (smtpd, smtp, lmtpd,
 *                   pop3d): accept, report busy, call service() with a
 *                   blocking stream (deadline smtpd_timeout-style set by the
 *                   daemon), close, report idle.
 *   SERVER_MULTI    many clients per process (authd, imapd): accept and call
 *                   accept_fn(fd); the daemon drives the client with
 *                   lib/events and calls server_disconnect() when done.
 *   SERVER_TRIGGER  (qmgr, pickup): wake_fn(buf, len) for each trigger
 *                   message read from the listening FIFO/socket, plus the
 *                   daemon's own timers.
 *
 * All kinds exit when master goes away, after max_use clients
 * (var_max_use), and after max_idle seconds without a client (var_max_idle)
 * unless the daemon sets keep_running.  A daemon may also be run by hand
 * with -S (stand-alone): one session on stdin/stdout, for tests and fuzzing.
 */
#ifndef FACTEUR_SERVER_H
#define FACTEUR_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "stream.h"

enum server_kind { SERVER_SINGLE, SERVER_MULTI, SERVER_TRIGGER };

struct server_desc {
    const char *name;                       /* "smtpd": log name */
    enum server_kind kind;
    void (*pre_jail)(void);                 /* privileged setup; may be NULL */
    void (*post_jail)(void);                /* after chroot/setuid; may be NULL */
    /* SERVER_SINGLE: serve one client; the skeleton closes the stream. */
    void (*service)(struct stream *client);
    /* SERVER_MULTI: a new connection; the daemon owns fd from here. */
    void (*accept_fn)(int fd);
    /* SERVER_TRIGGER: a trigger message arrived (may be empty). */
    void (*wake_fn)(const char *buf, size_t len);
    bool keep_running;                      /* ignore max_idle (qmgr) */
};

/* Run the server; returns only on a normal exit (status for main). */
int server_main(int argc, char **argv, const struct server_desc *desc);

/* The master.cf service name (-n) this process runs as. */
const char *server_service_name(void);

/* SERVER_MULTI: a client the daemon drove is gone (counts toward max_use
 * and idleness).  The daemon closes fd itself. */
void server_disconnect(void);

#endif
