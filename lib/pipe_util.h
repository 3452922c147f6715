/*
 * pipe_util.h - the pure parts of delivery to |commands and /files (the
 * pipe delivery agent, pipe/pipe.c): how a command's exit status maps to
 * a delivery outcome, how its output becomes a bounded reply text, when
 * an alias command can run without a shell, and mbox framing (From_ line,
 * >From quoting) for /file deliveries.
 *
 * No I/O, no process handling: everything here takes bytes and returns
 * bytes, so it is unit-tested alone (tests/unit/test_pipe_util.c).
 */
#ifndef FACTEUR_PIPE_UTIL_H
#define FACTEUR_PIPE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "strbuf.h"

#define PIPE_OUTPUT_MAX     512     /* bytes of command output in a reply text */
#define PIPE_ARGV_MAX       64      /* words of a command run without a shell */

/* Outcome classes, as deliver_proto.h's DELIVER_SENT/DEFER/BOUNCE. */
#define PIPE_SENT   0
#define PIPE_DEFER  4
#define PIPE_BOUNCE 5

/*
 * Map a command's wait status (waitpid) to an outcome, as Postfix
 * local(8) and pipe(8) do: exit 0 sent (2.0.0); sysexits(3) codes with
 * their enhanced status (EX_TEMPFAIL 75 and EX_OSERR 71 deferred 4.3.0,
 * EX_NOUSER 67 bounced 5.1.1, EX_NOPERM 77 5.7.0, EX_CONFIG 78 5.3.5 ...);
 * any other exit code bounced 5.3.0; death by a signal deferred 4.3.0.
 * dsn_r gets "X.Y.Z"; text_r gets "Command died with status 67 (user
 * unknown)" or "Command died with signal 9" (nothing for success).
 * Returns PIPE_SENT, PIPE_DEFER or PIPE_BOUNCE.
 */
int pipe_exit_status(int wstatus, char dsn_r[8], struct strbuf *text_r);

/* Append to text ": " and the first non-empty line of a command's output
 * (out, len bytes, possibly binary), with control bytes and non-ASCII
 * replaced by '?', white space runs kept single, at most PIPE_OUTPUT_MAX
 * bytes (then "..."); nothing when there is no printable line. */
void pipe_output_text(struct strbuf *text, const char *out, size_t len);

/*
 * Split an alias command into words when it needs no shell: only
 * letters, digits, spaces and tabs, and the bytes "_-+./,:@%=" (in the
 * spirit of Postfix's test for shell metacharacters), at most
 * PIPE_ARGV_MAX words.  Returns a
 * NULL-terminated argv (free with pipe_argv_free), or NULL when a shell
 * is needed (quotes, $, `, ;, |, &, <, >, *, ?, [, ~, #, (, ), \, { ...)
 * or the command is empty.
 */
char **pipe_split_argv(const char *cmd);
void pipe_argv_free(char ***argvp);

/* The mbox "From " line for a message: "From sender Www Mmm dd hh:mm:ss
 * yyyy\n" (UTC, asctime layout), sender "" written MAILER-DAEMON and any
 * white space in it replaced by '_'.  Replaces out's content. */
void pipe_mbox_from_line(struct strbuf *out, const char *sender, time_t when);

/*
 * Copy message content into out in mbox form, incrementally: lines that
 * start with "From " get a '>' in front (quoting, as Postfix local(8)),
 * CRLF line ends become LF.  The state carries a line start and up to
 * four held bytes across calls, so a "From " or a CRLF split between two
 * buffers is still seen.  pipe_mbox_end() flushes what is held, adds a
 * newline if the content did not end with one, and the empty line that
 * separates messages.
 */
struct pipe_mbox_state {
    bool bol;               /* at the start of a line */
    char held[8];
    size_t nheld;
};
void pipe_mbox_init(struct pipe_mbox_state *st);
void pipe_mbox_quote(struct strbuf *out, const char *buf, size_t len,
                     struct pipe_mbox_state *st);
void pipe_mbox_end(struct strbuf *out, struct pipe_mbox_state *st);

/* The parts of a recipient for the command environment: the local part
 * (text left of the rightmost '@'), the domain (right of it, "" if none),
 * the user (local part up to the first delimiter character after its
 * first byte) and the extension (after that delimiter, "" if none).
 * delims NULL or "" means no extensions.  Each out-buffer is replaced. */
void pipe_addr_split(const char *addr, const char *delims, struct strbuf *local_r,
                     struct strbuf *domain_r, struct strbuf *user_r, struct strbuf *ext_r);

#endif
