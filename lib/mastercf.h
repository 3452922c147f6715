/*
 * mastercf.h - master.cf, the service table (Postfix master(5) syntax).
 *
 * One logical line a service:
 *   service type private unpriv chroot wakeup maxproc command [args...]
 * "#" starts a comment line, blank lines are ignored, a line starting with
 * white space continues the previous entry.  "-" in a column means the
 * default.  Command arguments "-o name=value" (or "-o { name = value with
 * spaces }") override main.cf parameters for that service only; any other
 * argument is passed to the daemon unchanged.  A "{ ... }" group is one
 * argument with its outer white space removed.
 *
 * Types: inet ("port", "host:port", "[v6addr]:port", "*:port"), unix,
 * pass and fifo (a name under queue_directory/private or /public).
 *
 * Errors name the file and line: "/etc/facteur/master.cf, line 12: ...".
 * The parser is bounded (MASTERCF_* limits below) and never reads a
 * descriptor itself except in mastercf_load, so it is safe on any bytes.
 */
#ifndef FACTEUR_MASTERCF_H
#define FACTEUR_MASTERCF_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define MASTERCF_FILE_MAX     (1024 * 1024)  /* bytes in master.cf */
#define MASTERCF_LINE_MAX     8192           /* bytes in one physical line */
#define MASTERCF_ENTRY_MAX    65536          /* bytes in one logical line */
#define MASTERCF_ENTRIES_MAX  1000           /* services */
#define MASTERCF_ARGS_MAX     256            /* arguments of one command */
#define MASTERCF_NAME_MAX     100            /* service name (socket path part) */
#define MASTERCF_MAXPROC_MAX  100000
#define MASTERCF_WAKEUP_MAX   (7 * 86400)

enum mastercf_type { MASTERCF_INET, MASTERCF_UNIX, MASTERCF_PASS, MASTERCF_FIFO };

struct mastercf_entry {
    char *name;             /* service column as written */
    enum mastercf_type type;
    /* inet only: host part (NULL: every inet_interfaces address; "*" is
     * taken as NULL) and port (number or services(5) name). */
    char *host;
    char *port;
    bool is_private;        /* unix/fifo/pass: private/ (y) or public/ (n) */
    bool unpriv;            /* drop to mail_owner (-u) */
    bool chroot;            /* chroot into queue_directory (-z) */
    int wakeup;             /* seconds between triggers; 0: none */
    bool wakeup_if_used;    /* "N?": only once the service has been used */
    int maxproc;            /* 0: unlimited; -1: "-" (default_process_limit) */
    char *command;          /* daemon name, relative to daemon_directory */
    char **args;            /* other arguments, NULL-terminated */
    size_t nargs;
    char **overrides;       /* "name=value", NULL-terminated */
    size_t noverrides;
    int line;               /* first line of the entry in the file */
};

struct mastercf {
    char *path;             /* as given to the parser, for messages */
    struct mastercf_entry *entries;
    size_t count;
};

/* Read and parse path.  Returns 0 and an owned table in *r, or -1 with
 * "path, line N: reason" (or "path: reason") in why; *r is then NULL. */
int mastercf_load(const char *path, struct mastercf **r, struct strbuf *why);

/* Parse len bytes of master.cf text; path is only used in messages.
 * Same results as mastercf_load (the fuzz target's entry point). */
int mastercf_parse(const char *path, const char *data, size_t len,
                   struct mastercf **r, struct strbuf *why);

/* Free the table and NULL *cfp; NULL and *NULL are allowed. */
void mastercf_free(struct mastercf **cfp);

/* The entry with this service name and type, or NULL. */
const struct mastercf_entry *mastercf_find(const struct mastercf *cf, const char *name,
                                           enum mastercf_type type);

/* True when two entries describe the same service in every column, argument
 * and override (the line number is not compared). */
bool mastercf_entry_same(const struct mastercf_entry *a, const struct mastercf_entry *b);

/* True when two entries of the same service listen on the same address
 * (same type, host, port, privacy): a reload may keep the listener. */
bool mastercf_entry_same_listener(const struct mastercf_entry *a,
                                  const struct mastercf_entry *b);

/* "inet", "unix", "pass", "fifo". */
const char *mastercf_type_name(enum mastercf_type type);

#endif
