/*
 * restrict_addr.c - the table-and-domain half of lib/restrict: access
 * table values, domain lists with parent-domain matching, DNSBL reply
 * filters.
 *
 * Called by restrict.c.  Access table values come from the
 * administrator's tables (trusted, but a typo must not open anything:
 * an unknown word is treated as a restriction name and fails loudly in
 * restrict.c).  Domains come from the client (untrusted): they are only
 * compared and looked up, never parsed further here.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "maps.h"
#include "mem.h"
#include "restrict.h"

/* "WORD" or "WORD text" (case-insensitive word). */
static bool restrict_word(const char *value, const char *word, const char **rest_r)
{
    size_t n = strlen(word);

    if (strncasecmp(value, word, n) != 0 || (value[n] != 0 && value[n] != ' ' && value[n] != '\t'))
        return false;
    *rest_r = value + n + strspn(value + n, " \t");
    return true;
}

enum restrict_action restrict_access_parse(const char *value, int *code_r,
                                           struct strbuf *text_r)
{
    const char *rest;
    static const char *const unsupported[] = {
        "HOLD", "DISCARD", "FILTER", "REDIRECT", "PREPEND", "BCC", "SHUTDOWN",
    };

    *code_r = 0;
    strbuf_reset(text_r);
    value += strspn(value, " \t");
    if (restrict_word(value, "OK", &rest) || restrict_word(value, "PERMIT", &rest))
        return RESTRICT_ACT_PERMIT;
    if (restrict_word(value, "DUNNO", &rest) || restrict_word(value, "WARN", &rest)
        || restrict_word(value, "INFO", &rest))
        return RESTRICT_ACT_DUNNO;
    if (restrict_word(value, "REJECT", &rest)) {
        strbuf_set(text_r, rest);
        return RESTRICT_ACT_REJECT;
    }
    if (restrict_word(value, "DEFER", &rest)) {
        strbuf_set(text_r, rest);
        return RESTRICT_ACT_DEFER;
    }
    if (restrict_word(value, "DEFER_IF_PERMIT", &rest)) {
        strbuf_set(text_r, rest);
        return RESTRICT_ACT_DEFER_IF_PERMIT;
    }
    if (restrict_word(value, "DEFER_IF_REJECT", &rest)) {
        strbuf_set(text_r, rest);
        return RESTRICT_ACT_DEFER_IF_REJECT;
    }
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        if (restrict_word(value, unsupported[i], &rest))
            return RESTRICT_ACT_UNSUPPORTED;
    /* "NNN text": a 4xx or 5xx reply; all digits: OK (Postfix: a number
     * alone means OK, as in old access tables). */
    if (isdigit((unsigned char)value[0])) {
        size_t nd = strspn(value, "0123456789");

        if (value[nd] == 0)
            return RESTRICT_ACT_PERMIT;
        if (nd == 3 && (value[3] == ' ' || value[3] == '\t')) {
            *code_r = atoi(value);
            strbuf_set(text_r, value + 3 + strspn(value + 3, " \t"));
            if (value[0] == '4')
                return RESTRICT_ACT_DEFER;
            if (value[0] == '5')
                return RESTRICT_ACT_REJECT;
            if (value[0] == '2')
                return RESTRICT_ACT_PERMIT;
        }
        *code_r = 0;
        strbuf_reset(text_r);
    }
    if (*value == 0)
        return RESTRICT_ACT_DUNNO;
    return RESTRICT_ACT_RESTRICTIONS;
}

/* ---- domain lists ---- */

struct restrict_domains {
    char **names;           /* lower case; ".parent" patterns keep the dot */
    size_t n;
    struct maps *maps;      /* the type:table entries, in one set */
    bool subdomains;
};

struct restrict_domains *restrict_domains_new(const char *list, bool subdomains,
                                              struct strbuf *why)
{
    struct restrict_domains *d = xcalloc(1, sizeof(*d));
    char **items = conf_list_split(list ? list : "");
    struct strbuf *tables = strbuf_new(64);

    d->subdomains = subdomains;
    for (char **p = items; *p; p++) {
        if (strchr(*p, ':') && **p != '[') {
            strbuf_appendf(tables, "%s%s", strbuf_len(tables) ? " " : "", *p);
            continue;
        }
        if (d->n >= 100000) {
            strbuf_set(why, "more than 100000 domains in one list");
            goto fail;
        }
        d->names = xreallocarray(d->names, d->n + 1, sizeof(*d->names));
        d->names[d->n] = xstrdup(*p);
        map_fold(d->names[d->n++]);
    }
    if (strbuf_len(tables) && (d->maps = maps_open(strbuf_str(tables), 0, why)) == NULL)
        goto fail;
    conf_list_free(&items);
    strbuf_free(&tables);
    return d;
fail:
    conf_list_free(&items);
    strbuf_free(&tables);
    restrict_domains_free(&d);
    return NULL;
}

void restrict_domains_free(struct restrict_domains **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    for (size_t i = 0; i < (*dp)->n; i++)
        free((*dp)->names[i]);
    free((*dp)->names);
    maps_close(&(*dp)->maps);
    free(*dp);
    *dp = NULL;
}

/* One key against the names and tables. */
static int restrict_domains_key(struct restrict_domains *d, const char *key, bool parent,
                                struct strbuf *why)
{
    struct strbuf *val;
    int rc;

    for (size_t i = 0; i < d->n; i++) {
        const char *nm = d->names[i];

        if (nm[0] == '.') {
            /* ".example.org" matches strict subdomains only. */
            if (parent && strcmp(nm + 1, key) == 0)
                return 1;
        } else if (strcmp(nm, key) == 0 && (!parent || d->subdomains)) {
            return 1;
        }
    }
    if (d->maps == NULL)
        return 0;
    val = strbuf_new(32);
    rc = MAP_NOTFOUND;
    if (!parent || d->subdomains)
        rc = maps_lookup(d->maps, key, val, why);
    if (rc == MAP_NOTFOUND && parent) {
        /* Tables may list ".parent" keys for subdomains, as Postfix. */
        char *dotted = xasprintf(".%s", key);

        rc = maps_lookup(d->maps, dotted, val, why);
        free(dotted);
    }
    strbuf_free(&val);
    return rc == MAP_FOUND ? 1 : rc == MAP_ERROR ? -1 : 0;
}

int restrict_domains_match(struct restrict_domains *d, const char *domain,
                           struct strbuf *why)
{
    char *key;
    int rc;
    const char *p;

    if (d == NULL || domain == NULL || *domain == 0)
        return 0;
    key = xstrdup(domain);
    map_fold(key);
    if (key[0] && key[strlen(key) - 1] == '.')
        key[strlen(key) - 1] = 0;
    rc = restrict_domains_key(d, key, false, why);
    /* Then each parent domain: a.b.c -> b.c -> c. */
    for (p = strchr(key, '.'); rc == 0 && p && p[1]; p = strchr(p + 1, '.'))
        rc = restrict_domains_key(d, p + 1, true, why);
    free(key);
    return rc;
}

/* ---- DNSBL reply filters ---- */

/* One octet pattern "N", "[a..b]", "[a;b;c..d]" against value v. */
static bool restrict_octet_match(const char *pat, size_t len, unsigned v)
{
    char buf[128];
    char *save = NULL;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, pat, len);
    buf[len] = 0;
    if (buf[0] != '[') {
        char *end;
        unsigned long n = strtoul(buf, &end, 10);

        return *end == 0 && n == v;
    }
    if (buf[len - 1] != ']')
        return false;
    buf[len - 1] = 0;
    for (char *tok = strtok_r(buf + 1, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *dots = strstr(tok, ".."), *end;
        unsigned long lo = strtoul(tok, &end, 10), hi = lo;

        if (end == tok)
            return false;
        if (dots) {
            if (end != dots)
                return false;
            hi = strtoul(dots + 2, &end, 10);
        }
        if (*end != 0)
            return false;
        if (v >= lo && v <= hi)
            return true;
    }
    return false;
}

bool restrict_rbl_filter_match(const char *filter, const char *addr)
{
    unsigned oct[4];
    char extra;

    if (sscanf(addr, "%u.%u.%u.%u%c", &oct[0], &oct[1], &oct[2], &oct[3], &extra) != 4)
        return false;
    if (filter == NULL || *filter == 0)
        return true;
    for (int i = 0; i < 4; i++) {
        size_t len;
        const char *end;

        if (*filter == 0)
            return false;
        /* An octet pattern ends at a '.' outside brackets. */
        if (*filter == '[') {
            end = strchr(filter, ']');
            if (end == NULL)
                return false;
            end++;
        } else {
            end = filter + strcspn(filter, ".");
        }
        len = (size_t)(end - filter);
        if (!restrict_octet_match(filter, len, oct[i]))
            return false;
        filter = end;
        if (i < 3) {
            if (*filter != '.')
                return false;
            filter++;
        }
    }
    return *filter == 0;
}
