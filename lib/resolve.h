/*
 * resolve.h - recipient rewriting and routing: canonical maps, virtual
 * aliases, local aliases (with :include: files, |commands and /files),
 * and the transport decision (transport_maps, mydestination,
 * virtual_mailbox_domains, relay_domains, relayhost, default_transport).
 *
 * Used by qmgr for every recipient it schedules, and by smtpd and
 * facteur-queue when they need to know whether an address exists or
 * where it would go.  The tables named by the parameters (var_ globals
 * after conf_load) are opened once by resolve_new(); every lookup failure
 * of a table is temporary (MAP_ERROR): the caller defers, never bounces.
 *
 * Trust: table content and :include: files are administrator data but
 * are parsed with bounds (RESOLVE_* limits); addresses come from queue
 * files and are treated as untrusted text (never a format, never a
 * shell: a |command target is only reported, its delivery is the pipe
 * transport's business).
 */
#ifndef FACTEUR_RESOLVE_H
#define FACTEUR_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

#define RESOLVE_ADDR_MAX        2048        /* bytes of one address */
#define RESOLVE_INCLUDE_MAX     (1 << 20)   /* bytes of one :include: file */
#define RESOLVE_ITEMS_MAX       10000       /* entries in one alias value or include file */
#define RESOLVE_DEPTH_MAX       100         /* nesting, whatever the recursion limit says */

/* Where an alias entry came from, for allow_mail_to_commands/files. */
enum resolve_source { RESOLVE_SRC_ALIAS, RESOLVE_SRC_INCLUDE };

/* One entry of an alias value or :include: file. */
enum resolve_item_kind {
    RESOLVE_ITEM_ADDR,      /* an address (or a bare local name) */
    RESOLVE_ITEM_PIPE,      /* |command: the text after '|' */
    RESOLVE_ITEM_FILE,      /* /absolute/path */
    RESOLVE_ITEM_INCLUDE,   /* :include:/path: the path */
};

typedef int resolve_item_fn(enum resolve_item_kind kind, const char *value, void *ctx);

/* Split an aliases(5) right-hand side (or an :include: file's content)
 * into entries: separated by commas and/or newlines (and white space
 * around them), "double quoted" entries keep their commas and spaces
 * (with \" and \\ escapes), lines starting with '#' are comments (files
 * only matter here).  Calls fn for each entry; fn returning non-zero stops
 * the walk with that value.  Returns 0, the value fn stopped with, or -1
 * with why for an unterminated quote, an entry longer than
 * RESOLVE_ADDR_MAX, more than RESOLVE_ITEMS_MAX entries, a control
 * character, or ":include:" without a path. */
int resolve_alias_parse(const char *text, size_t len, resolve_item_fn *fn, void *ctx,
                        struct strbuf *why);

/* What one recipient finally resolves to. */
enum resolve_kind {
    RESOLVE_DELIVER,    /* hand to transport/nexthop */
    RESOLVE_PIPE,       /* |command from an alias (addr holds the command) */
    RESOLVE_FILE,       /* /file from an alias (addr holds the path) */
    RESOLVE_BOUNCE,     /* undeliverable: dsn and text say why */
    RESOLVE_DISCARD,    /* transport "discard": drop silently (logged) */
};

struct resolve_target {
    enum resolve_kind kind;
    char *addr;         /* final address (or command / path) */
    char *transport;    /* RESOLVE_DELIVER: master.cf service name */
    char *nexthop;      /* RESOLVE_DELIVER: "domain", "[host]:port", "unix:path" */
    char *dsn;          /* RESOLVE_BOUNCE, and PIPE/FILE refused: "5.1.1" */
    char *text;         /* RESOLVE_BOUNCE/DISCARD: reason for the log and DSN */
    bool allowed;       /* PIPE/FILE: permitted by allow_mail_to_* */
    /* PIPE/FILE: the rights the delivery runs with: the owner of the
     * alias table file that held the entry (PATH.db for hash:/btree:, the
     * file for texthash:/regexp:) or of the innermost :include: file.  A
     * root-owned source, a source without a file (inline:, static:,
     * virtual_alias_maps) or one that cannot be examined gives the
     * default_privs user instead, so owner_uid is never 0.  owner_known
     * is true when the rights are the file owner's own. */
    bool owner_known;
    uid_t owner_uid;
    gid_t owner_gid;
};

struct resolve_result {
    struct resolve_target *t;
    size_t n;
    bool expanded;      /* an alias or virtual alias was applied */
};

struct resolve;

/* Open every table named by the parameters (after conf_load).  NULL with
 * why if one cannot be opened.  The owners of the alias_maps files are
 * read here (stat), once. */
struct resolve *resolve_new(struct strbuf *why);
void resolve_free(struct resolve **rp);

/* Flags for resolve_rcpt. */
#define RESOLVE_FL_NOEXPAND 0x01    /* route only: no canonical, virtual or alias
                                     * rewriting (a message made of an expansion) */

/*
 * Resolve one recipient: recipient_canonical_maps and canonical_maps,
 * then virtual_alias_maps (recursively, self-references kept, at most
 * virtual_alias_recursion_limit deep and virtual_alias_expansion_limit
 * addresses), then for local domains alias_maps (recursively, with
 * :include:, |command and /file entries), then the transport decision
 * for each final address.  Duplicate final addresses are kept once.
 * res is filled (cleared first) with one target or more.
 * Returns 0, or -1 with why for a temporary failure (a table lookup
 * failed, an :include: file unreadable): the caller defers.
 */
int resolve_rcpt(struct resolve *r, const char *addr, int flags, struct resolve_result *res,
                 struct strbuf *why);

/* Only the transport decision for one final address (res gets one
 * target).  Returns 0 or -1 with why (temporary). */
int resolve_route(struct resolve *r, const char *addr, struct resolve_result *res,
                  struct strbuf *why);

/* Rewrite a sender address with sender_canonical_maps and canonical_maps
 * into out ("" stays ""); out gets addr unchanged when nothing matches.
 * Returns 0 or -1 with why (temporary). */
int resolve_sender(struct resolve *r, const char *addr, struct strbuf *out, struct strbuf *why);

/* True if the domain of addr (or a bare name) is delivered locally
 * (mydestination, or no domain).  -1 with why on a table failure. */
int resolve_is_local(struct resolve *r, const char *addr, struct strbuf *why);

/* Free the targets and empty res. */
void resolve_result_clear(struct resolve_result *res);

#endif
