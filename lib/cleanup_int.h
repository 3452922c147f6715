/*
 * cleanup_int.h - cleanup's private state, shared by cleanup.c (envelope,
 * commit) and cleanup_headers.c (Received:, header/body checks, missing
 * headers).  Not for callers outside lib/cleanup*.c: use cleanup.h.
 */
#ifndef FACTEUR_CLEANUP_INT_H
#define FACTEUR_CLEANUP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "cleanup.h"
#include "header.h"
#include "qfile.h"
#include "strbuf.h"

#define CLEANUP_BCC_LOOKUPS_MAX 1000    /* recipients looked up in recipient_bcc_maps */
#define CLEANUP_LOG_TEXT_MAX    200     /* bytes of a header/body line in a log line */
#define CLEANUP_QUALIFY_MAX     1000    /* addresses qualified in one local header */

enum cleanup_state { CL_ENVELOPE, CL_HEADER, CL_BODY, CL_FINISHED };

struct cleanup_rkey {
    uint64_t hash;
    char *addr;                 /* NULL: free slot */
    char *orcpt;
};

struct cleanup {
    char *queue_dir;
    unsigned flags;             /* CLEANUP_FL_* */
    struct qfile_writer *w;
    char qid[QID_BUFSIZE];
    struct timeval arrival;
    enum cleanup_state state;
    int result;                 /* CLEANUP_OK until doomed */
    struct strbuf *reply;       /* the reply for result */
    bool committed;
    bool discard;               /* DISCARD action: 250, nothing queued */
    bool hold;                  /* HOLD action: into hold/ */
    bool checks_done;           /* OK action or a final one: no more checks */

    char *sender;               /* NULL until set */
    size_t nrcpt;
    char *first_rcpt;           /* for log lines */
    struct cleanup_rkey *rset;  /* open-addressing set, power-of-2 size */
    size_t rset_size;
    size_t rset_count;
    char **rcpt_bcc;            /* recipients to look up in recipient_bcc_maps */
    size_t rcpt_bcc_n;

    bool have_received;
    struct cleanup_received recv;   /* owned copies */
    char *client_name, *client_addr, *helo, *protocol;  /* for log lines */
    bool have_sasl_attr, have_tls_attr;
    char *full_name;

    struct header_parser *hp;
    unsigned hops;
    bool have_msgid, have_date, have_from;
    uint64_t size;              /* content bytes written */
    uint64_t body_checked;      /* body bytes seen by body_checks */
    struct strbuf *scratch;
};

/* cleanup.c */
void cleanup_fail(struct cleanup *c, int result, const char *reply);
int cleanup_write_line(struct cleanup *c, const char *line, size_t len);
/* The tables cleanup_init() opened (borrowed; NULL before it). */
struct maps *cleanup_header_checks(void);
struct maps *cleanup_body_checks(void);

/* cleanup_headers.c */
/* Postfix mail_date format "Wed, 25 Nov 2026 00:43:37 +0000 (UTC)". */
void cleanup_date(time_t when, struct strbuf *out);
/* The Received: header for c (folded with LF + tab), into out. */
void cleanup_received_format(struct cleanup *c, struct strbuf *out);
/* Write a header given as text with LF folds. */
void cleanup_write_header_text(struct cleanup *c, const char *text, size_t len);
/* One complete primary header: count, check, write. */
void cleanup_header(struct cleanup *c, const struct header *h);
/* End of the primary header: Message-ID:, Date:, From: if missing. */
void cleanup_add_missing(struct cleanup *c);
/* One body line: body_checks, write.  Returns -1 once doomed. */
int cleanup_body(struct cleanup *c, const char *line, size_t len);

#endif
