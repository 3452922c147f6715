/*
 * log.h - the one logging API.
 *
 * Lines follow Postfix's format because pflogsumm and fail2ban read them:
 *   syslog:  ident "facteur/SERVICE", LOG_PID, facility mail
 *   file:    "Mon DD HH:MM:SS host facteur/SERVICE[PID]: text"
 * log_warn/log_error/log_fatal/log_panic prefix "warning: ", "error: ",
 * "fatal: ", "panic: " as Postfix does.  Formats are printf-checked; %m is
 * the errno text.  Never pass untrusted text as a format.
 *
 * log_fatal is for startup problems and a broken environment (exits 1);
 * log_panic is for a broken invariant (aborts).  Untrusted input must never
 * reach either: it gets a protocol error instead.
 */
#ifndef FACTEUR_LOG_H
#define FACTEUR_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_dest {
    LOG_DEST_SYSLOG = 1,    /* syslog(3), facility mail */
    LOG_DEST_STDERR = 2,    /* "SERVICE: text" on stderr (commands) */
    LOG_DEST_FILE = 4,      /* maillog_file, Postfix file format */
};

/* Set the service name ("smtpd") and destinations.  Call first in main;
 * before it, lines go to stderr under the name "facteur". */
void log_init(const char *service, int dest);
/* Also (or instead, for "/dev/stderr") log to a file; NULL or "" stops
 * file logging.  Returns -1 if the file cannot be opened (errno set). */
int log_set_file(const char *path);
/* Send later lines to exactly these destinations. */
void log_set_dest(int dest);
/* The service name given to log_init. */
const char *log_service(void);
/* Emit debug lines (log_debug) only when verbose is set. */
void log_set_verbose(bool verbose);
/* Called by log_fatal before exit (e.g. to remove a pid file); may be NULL. */
void log_set_fatal_hook(void (*hook)(void));

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
