/*
 * maps.h - lookup tables named "type:name", and lists of them.
 *
 * A table is opened from a spec such as "hash:/etc/facteur/virtual",
 * "regexp:/etc/facteur/header_checks", "inline:{ a=b, { c = d e } }" or
 * "static:relay".  Types (facteur-tables(5) documents each):
 *   hash:PATH, btree:PATH  Berkeley DB 5.3 file PATH.db built by facteur-map
 *                          from the text file PATH; read-only, no DB
 *                          environment, re-opened when PATH.db changes on
 *                          disk (facteur-map replaces it by rename).
 *   texthash:PATH          the same text format read into memory at open.
 *   inline:{...}           entries written in the spec itself.
 *   static:VALUE           every lookup finds VALUE; static:{ v w } for
 *                          a value with spaces.
 *   regexp:PATH            POSIX extended regexps, regexp_table(5) syntax.
 *   unix:passwd.byname     the system users (and unix:group.byname the
 *                          groups), through NSS, as Postfix's unix: type;
 *                          a chrooted process answers from a snapshot of
 *                          /etc/passwd (/etc/group) taken at open.
 *
 * A lookup answers MAP_FOUND with the value, MAP_NOTFOUND, or MAP_ERROR: a
 * temporary failure (file unreadable, database being replaced, a network
 * backend down) with the reason in why.  A caller must defer (4xx), never
 * bounce, on MAP_ERROR.  This is what lets networked backends (pgsql:,
 * ldap:) fit: they open their connection lazily, reuse it, time out, and
 * report MAP_ERROR; see "Backend interface" below.
 *
 * Keys of fixed-string tables (hash, btree, texthash, inline) are folded to
 * lower case (ASCII) before lookup unless MAP_FLAG_NOFOLD is given, as
 * facteur-map lowercases them when it builds a table.  regexp: sees the key
 * as given and decides case with its own flags.
 *
 * Nothing here trusts a table's content to be well formed: text sources
 * are parsed with bounded lines (maps_text.h) and errors name file:line.
 */
#ifndef FACTEUR_MAPS_H
#define FACTEUR_MAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Lookup results. */
#define MAP_FOUND 1
#define MAP_NOTFOUND 0
#define MAP_ERROR (-1)

/* Open flags. */
#define MAP_FLAG_NOFOLD   (1 << 0)  /* keep key case (facteur-map -f) */
#define MAP_FLAG_ALIASES  (1 << 1)  /* texthash source in aliases(5) format */
#define MAP_FLAG_NUL      (1 << 2)  /* DB keys carry a trailing NUL only (-N) */
#define MAP_FLAG_NONUL    (1 << 3)  /* DB keys carry no trailing NUL (-n) */

/* Bounds on table content (text lines, keys, values, entries). */
#define MAP_LINE_MAX    65536       /* one logical text line, joined */
#define MAP_ENTRIES_MAX 10000000    /* entries in one in-memory table */
#define MAP_SPEC_MAX    65536       /* one "type:name" spec */
#define MAP_FILE_MAX    (256UL << 20) /* a text source read into memory */

struct map;
struct maps;

/* Open one table.  spec is "type:name"; a spec without "type:" is a
 * hash: table (Postfix's default_database_type).  flags: MAP_FLAG_*.
 * Returns NULL with why ("path:line: ..." for a bad source) on failure.
 * The spec string is copied. */
struct map *map_open(const char *spec, int flags, struct strbuf *why);

/* Look key up.  On MAP_FOUND the value replaces value_r's content; on
 * MAP_ERROR why says why (temporary: defer).  value_r and why may be the
 * same buffer only if the caller does not need the value on error. */
int map_lookup(struct map *m, const char *key, struct strbuf *value_r,
               struct strbuf *why);

/* Close the table and set *mp to NULL; NULL and *NULL are allowed. */
void map_close(struct map **mp);

/* The spec as given to map_open, and its type ("hash"); borrowed, valid
 * until map_close. */
const char *map_spec(const struct map *m);
const char *map_type(const struct map *m);

/* True if the table matches whole keys (hash, btree, texthash, inline,
 * static): such tables also get the partial address lookups below.
 * Pattern tables (regexp) see only whole addresses. */
bool map_is_fixed(const struct map *m);

/* Call fn for every entry in storage order, stopping when fn returns
 * non-zero (that value is returned).  Returns 0 at the end, -1 with why
 * if the type cannot list its entries (regexp, static) or on error. */
typedef int map_iter_fn(const char *key, const char *value, void *ctx);
int map_iterate(struct map *m, map_iter_fn *fn, void *ctx, struct strbuf *why);

/* ---- Lists of tables: the value of a *_maps parameter. ---- */

/* Open every spec in list, separated by commas and/or white space; braces
 * group ("inline:{ a=b, c=d }, hash:/x" is two specs).  An empty list
 * gives an empty set that finds nothing.  NULL with why if any spec fails
 * to open (why names that spec). */
struct maps *maps_open(const char *list, int flags, struct strbuf *why);

/* Try each table in order; the first MAP_FOUND wins.  A MAP_ERROR stops
 * the search at once (a later table must not answer for one that is
 * down) and is returned with why naming the table. */
int maps_lookup(struct maps *ms, const char *key, struct strbuf *value_r,
                struct strbuf *why);

/* Address lookup in Postfix's virtual(5)/canonical(5) order.  addr is
 * "localpart@domain" (or a bare localpart); delims is the set of
 * recipient_delimiter characters ("" or NULL: no extensions).  The
 * extension starts at the first delimiter character after the first byte
 * of the localpart.  Keys tried, in this order, each against every table
 * before the next key:
 *   1. user+ext@domain   all tables
 *   2. user@domain       all tables (only if there is an extension)
 *   3. user+ext          fixed tables, only with MAPS_ADDR_LOCALPART
 *   4. user              fixed tables, only with MAPS_ADDR_LOCALPART and
 *                        an extension
 *   5. @domain           fixed tables
 * The caller sets MAPS_ADDR_LOCALPART when the domain is local (Postfix
 * virtual(5): "user" keys apply to $myorigin, $mydestination and
 * interface domains), and MAPS_ADDR_NODOMAIN to skip step 5 (access(5)
 * style callers do their own domain walk).  A bare localpart tries steps
 * 1, 2 only (it has no domain: steps 3-4 would repeat them).
 * If ext_r is not NULL it receives the extension (without delimiter) when
 * the match came from a key without it (steps 2, 4, 5: the caller may
 * propagate it, Postfix propagate_unmatched_extensions), else is emptied.
 * Returns as maps_lookup. */
#define MAPS_ADDR_LOCALPART (1 << 0)
#define MAPS_ADDR_NODOMAIN  (1 << 1)
int maps_lookup_addr(struct maps *ms, const char *addr, const char *delims,
                     int flags, struct strbuf *value_r, struct strbuf *ext_r,
                     struct strbuf *why);

/* Number of tables, and the i-th one (borrowed). */
size_t maps_count(const struct maps *ms);
struct map *maps_get(const struct maps *ms, size_t i);

/* Close all tables and set *msp to NULL; NULL and *NULL allowed. */
void maps_close(struct maps **msp);

/* ---- Building Berkeley DB tables (facteur-map, newaliases). ---- */

/* Build PATH.db for spec "hash:PATH" or "btree:PATH" from the text file
 * PATH (postmap format, or aliases(5) with MAP_FLAG_ALIASES): keys are
 * lowercased unless MAP_FLAG_NOFOLD; keys and values are stored with a
 * trailing NUL (Postfix's default on Linux, so Postfix reads the table)
 * unless MAP_FLAG_NONUL.  A duplicate key keeps the first value and logs
 * a warning naming file:line.  The table is written to PATH.db.tmp
 * (locked against a concurrent build), fsynced, renamed over PATH.db and
 * the directory fsynced, so readers see the old or the new table whole.
 * The .db file gets the source file's permission bits (and owner, when
 * run as root).  Returns the number of entries, or -1 with why. */
long map_build(const char *spec, int flags, struct strbuf *why);

/* ---- Backend interface (lib/maps_*.c and future network types). ---- */

struct map_ops {
    const char *type;           /* "hash" */
    bool fixed;                 /* whole-key table (see map_is_fixed) */
    /* Set m->priv from m->name; -1 with why.  A network backend may defer
     * connecting to its first lookup. */
    int (*open)(struct map *m, struct strbuf *why);
    /* key is already case-folded if the type is fixed and folding is on. */
    int (*lookup)(struct map *m, const char *key, struct strbuf *value_r,
                  struct strbuf *why);
    /* NULL if the type cannot list entries. */
    int (*iterate)(struct map *m, map_iter_fn *fn, void *ctx,
                   struct strbuf *why);
    void (*close)(struct map *m);
};

struct map {
    const struct map_ops *ops;
    char *spec;                 /* "hash:/etc/facteur/virtual" */
    const char *name;           /* points into spec, after "type:" */
    int flags;                  /* MAP_FLAG_* */
    void *priv;                 /* backend state */
};

extern const struct map_ops map_ops_hash;
extern const struct map_ops map_ops_btree;
extern const struct map_ops map_ops_texthash;
extern const struct map_ops map_ops_inline;
extern const struct map_ops map_ops_static;
extern const struct map_ops map_ops_regexp;
extern const struct map_ops map_ops_unix;

/* An in-memory table (texthash:, inline:): a hash table that keeps
 * insertion order for map_memtab_iterate.  A duplicate key keeps the
 * first value: map_memtab_add returns 0 for it, 1 when stored, -1 with
 * why past MAP_ENTRIES_MAX entries.  Keys and values are copied. */
struct map_memtab;
struct map_memtab *map_memtab_new(void);
int map_memtab_add(struct map_memtab *t, const char *key, const char *value,
                   struct strbuf *why);
/* Borrowed value (valid until map_memtab_free) or NULL. */
const char *map_memtab_find(const struct map_memtab *t, const char *key);
int map_memtab_iterate(const struct map_memtab *t, map_iter_fn *fn, void *ctx);
size_t map_memtab_count(const struct map_memtab *t);
void map_memtab_free(struct map_memtab **tp);
/* map_ops members for a backend whose m->priv is a struct map_memtab
 * loaded at open (inline:, texthash:). */
int map_memtab_ops_lookup(struct map *m, const char *key, struct strbuf *value_r,
                          struct strbuf *why);
int map_memtab_ops_iterate(struct map *m, map_iter_fn *fn, void *ctx, struct strbuf *why);
void map_memtab_ops_close(struct map *m);

/* Read a whole regular file (at most max bytes) into buf; -1 with why. */
int map_read_file(const char *path, size_t max, struct strbuf *buf,
                  struct strbuf *why);

/* Lowercase ASCII letters of s in place. */
void map_fold(char *s);

/* ---- Text sources (maps_text.c): postmap and aliases(5) formats. ---- */

/* Logical lines, as Postfix readlline: a line that starts with white space
 * continues the previous one (the newline is dropped, the white space
 * kept); empty lines, white-space-only lines and lines whose first
 * non-blank character is '#' are skipped, also inside a continuation.
 * A trailing CR is dropped from each physical line.  The reader works on
 * memory and never reads a descriptor. */
struct map_text_reader {
    const char *name;           /* for errors: "name:line: ..." */
    const char *data;
    size_t len;
    size_t pos;
    long lineno;                /* physical lines consumed */
};
void map_text_reader_init(struct map_text_reader *r, const char *name,
                          const char *data, size_t len);
/* Next logical line into line (no trailing white space); *lineno_r is the
 * number of its first physical line.  Returns 1, 0 at the end, or -1 with
 * why for a line longer than MAP_LINE_MAX, a NUL byte, or a continuation
 * with nothing to continue; the reader can go on after an error. */
int map_text_next_line(struct map_text_reader *r, struct strbuf *line,
                       long *lineno_r, struct strbuf *why);

/* Called for each entry; key is folded unless MAP_FLAG_NOFOLD.  Return 0
 * to go on, -1 with why to stop the parse. */
typedef int map_text_fn(const char *key, const char *value, long lineno,
                        void *ctx, struct strbuf *why);

/* Parse a whole source held in memory.  Postmap format: "key value", the
 * key ends at the first white space, the value is the rest with outer
 * white space removed.  With MAP_FLAG_ALIASES, aliases(5): "name: value",
 * the name unquoted if written "...", the value the right-hand side as
 * written.  Returns the number of entries passed to fn, or -1 with why
 * ("name:line: ...") at the first malformed line. */
long map_text_parse(const char *name, const char *data, size_t len,
                    int flags, map_text_fn *fn, void *ctx, struct strbuf *why);

/* ---- regexp: tables (maps_regexp.c) ---- */

/* Bounds on one regexp table. */
#define MAP_REGEXP_RULES_MAX 100000
#define MAP_REGEXP_DEPTH_MAX 100    /* nested if/endif */

/* Compile a regexp_table(5) source held in memory, as map_open does for
 * "regexp:name" after reading the file.  Returns the backend state for
 * struct map.priv, or NULL with why ("name:line: ...").  Exposed for the
 * fuzz target; free with map_regexp_free. */
void *map_regexp_parse(const char *name, const char *data, size_t len,
                       struct strbuf *why);
/* Match key against parsed rules: as map_lookup. */
int map_regexp_match(void *rules, const char *key, struct strbuf *value_r,
                     struct strbuf *why);
void map_regexp_free(void *rules);

/* ---- unix: tables (maps_unix.c) ---- */

/* Largest /etc/passwd or /etc/group read into the open-time snapshot. */
#define MAP_UNIX_FILE_MAX (16UL << 20)

/* Parse passwd(5) text (group: group(5) text) held in memory into t: the
 * key is the folded login (group) name, the value the whole line without
 * its newline.  Lines with the wrong number of fields, a non-numeric uid
 * or gid, an empty or NIS "+"/"-" name, a NUL byte, or longer than
 * MAP_LINE_MAX are skipped; the first line of a name wins, as getpwnam.
 * Returns the number of entries stored, -1 with why past
 * MAP_ENTRIES_MAX. */
long map_unix_parse(const char *data, size_t len, bool group,
                    struct map_memtab *t, struct strbuf *why);

/* Test hook: read the snapshots of tables opened from now on from these
 * files instead of /etc/passwd and /etc/group (NULL: the default).  The
 * strings are borrowed and must outlive those tables.  A lookup uses the
 * snapshot when NSS does not find the key and the file no longer exists. */
void map_unix_set_files(const char *passwd_path, const char *group_path);

#endif
