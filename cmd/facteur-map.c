/*
 * facteur-map - build and query lookup tables (postmap and postalias).
 *
 *   facteur-map [-a] [-f] [-N | -n] [-q key | -s] [type:]file ...
 *
 * Without -q or -s, builds FILE.db from FILE for each hash:/btree: table
 * (written to FILE.db.tmp and renamed, so daemons never see half a table)
 * and checks the syntax of the other types (texthash:, regexp:, inline:,
 * static:).  -q prints the first value found for key (exit 1 if none);
 * "-q -" reads keys from standard input and prints "key<TAB>value".  -s
 * prints every entry as "key<TAB>value".  -a: aliases(5) source format;
 * -f: keep key case; -N/-n: keys with/without a trailing NUL.
 *
 * Invoked as "newaliases" (a link to this program), it builds every table
 * in main.cf's alias_database from its aliases(5) source, as Postfix's
 * newaliases runs postalias.
 *
 * Run by the administrator; its input is a local file, parsed by
 * lib/maps_text.c with bounded lines.  Errors name file:line and exit 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "strbuf.h"

static void usage(void)
{
    fprintf(stderr, "usage: facteur-map [-a] [-f] [-N | -n] [-q key | -s] "
            "[type:]file ...\n");
    exit(1);
}

/* True for specs that name a source file to build into a .db file. */
static int spec_is_built(const char *spec)
{
    const char *colon = strchr(spec, ':'), *slash = strchr(spec, '/');

    return colon == NULL || (slash != NULL && slash < colon)
        || strncmp(spec, "hash:", 5) == 0 || strncmp(spec, "btree:", 6) == 0;
}

static struct map *open_or_die(const char *spec, int flags)
{
    struct strbuf *why = strbuf_new(128);
    struct map *m = map_open(spec, flags, why);

    if (m == NULL)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    return m;
}

/* Look key up in each table in order; 1 found (value printed), 0 not. */
static int query_one(struct map **maps, int nmaps, const char *key,
                     bool show_key)
{
    struct strbuf *value = strbuf_new(128), *why = strbuf_new(128);
    int rc = MAP_NOTFOUND;

    for (int i = 0; i < nmaps && rc == MAP_NOTFOUND; i++) {
        rc = map_lookup(maps[i], key, value, why);
        if (rc == MAP_ERROR)
            log_fatal("%s", strbuf_str(why));
    }
    if (rc == MAP_FOUND) {
        if (show_key)
            printf("%s\t%s\n", key, strbuf_str(value));
        else
            printf("%s\n", strbuf_str(value));
    }
    strbuf_free(&value);
    strbuf_free(&why);
    return rc == MAP_FOUND;
}

/* -q -: one key a line on stdin, bounded like a table line. */
static int query_stdin(struct map **maps, int nmaps)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int found = 0;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (n > MAP_LINE_MAX)
            log_fatal("stdin:%ld: key longer than %d bytes", lineno,
                      MAP_LINE_MAX);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if (memchr(line, 0, (size_t)n) != NULL)
            log_fatal("stdin:%ld: NUL byte in key", lineno);
        found |= query_one(maps, nmaps, line, true);
    }
    free(line);
    return found;
}

/* newaliases: build each alias_database table named in main.cf. */
static int newaliases(void)
{
    struct strbuf *why = strbuf_new(128);
    char **list;

    if (conf_load(NULL, why) < 0)
        log_fatal("%s", strbuf_str(why));
    list = conf_list_split(var_alias_database);
    for (size_t i = 0; list[i] != NULL; i++) {
        if (!spec_is_built(list[i]))
            continue;           /* texthash: and the like need no build */
        if (map_build(list[i], MAP_FLAG_ALIASES, why) < 0)
            log_fatal("%s", strbuf_str(why));
    }
    conf_list_free(&list);
    strbuf_free(&why);
    return 0;
}

static int dump_entry(const char *key, const char *value, void *ctx)
{
    printf("%s\t%s\n", key, value);
    return 0;
}

int main(int argc, char **argv)
{
    const char *query = NULL;
    int flags = 0, dump = 0, ch, nmaps, status = 0;
    struct strbuf *why;
    struct map **maps;

    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1
        : argv[0];

    if (strcmp(prog, "newaliases") == 0) {
        log_init("newaliases", LOG_DEST_STDERR);
        if (argc > 1)
            log_fatal("usage: newaliases");
        return newaliases();
    }
    log_init("facteur-map", LOG_DEST_STDERR);
    while ((ch = getopt(argc, argv, "afNnq:s")) != -1) {
        switch (ch) {
        case 'a':
            flags |= MAP_FLAG_ALIASES;
            break;
        case 'f':
            flags |= MAP_FLAG_NOFOLD;
            break;
        case 'N':
            flags = (flags & ~MAP_FLAG_NONUL) | MAP_FLAG_NUL;
            break;
        case 'n':
            flags = (flags & ~MAP_FLAG_NUL) | MAP_FLAG_NONUL;
            break;
        case 'q':
            query = optarg;
            break;
        case 's':
            dump = 1;
            break;
        default:
            usage();
        }
    }
    nmaps = argc - optind;
    if (nmaps < 1 || (query != NULL && dump))
        usage();
    argv += optind;

    if (query == NULL && !dump) {
        why = strbuf_new(128);
        for (int i = 0; i < nmaps; i++) {
            struct map *m;
            if (spec_is_built(argv[i])) {
                if (map_build(argv[i], flags, why) < 0)
                    log_fatal("%s", strbuf_str(why));
            } else if ((m = map_open(argv[i], flags, why)) == NULL) {
                log_fatal("%s", strbuf_str(why));
            } else {
                map_close(&m);
            }
        }
        strbuf_free(&why);
        return 0;
    }

    maps = xcalloc((size_t)nmaps, sizeof(*maps));
    for (int i = 0; i < nmaps; i++)
        maps[i] = open_or_die(argv[i], flags);
    if (dump) {
        why = strbuf_new(128);
        for (int i = 0; i < nmaps; i++)
            if (map_iterate(maps[i], dump_entry, NULL, why) < 0)
                log_fatal("%s", strbuf_str(why));
        strbuf_free(&why);
    } else if (strcmp(query, "-") == 0) {
        status = query_stdin(maps, nmaps) ? 0 : 1;
    } else {
        status = query_one(maps, nmaps, query, false) ? 0 : 1;
    }
    for (int i = 0; i < nmaps; i++)
        map_close(&maps[i]);
    free(maps);
    if (fflush(stdout) != 0 || ferror(stdout))
        log_fatal("write error on standard output: %m");
    return status;
}
