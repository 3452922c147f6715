/*
 * resolve.c - recipient rewriting (canonical, virtual aliases, local
 * aliases) and the transport decision; contract in resolve.h.
 *
 * Owns the tables named by canonical_maps, sender_/recipient_canonical_maps,
 * virtual_alias_maps, alias_maps, transport_maps and the domain lists
 * (mydestination, virtual_alias_domains, virtual_mailbox_domains,
 * relay_domains), opened once.  Called by qmgr per recipient.
 *
 * Expansion is a depth-first walk with three bounds: the depth (the
 * smaller of virtual_alias_recursion_limit and RESOLVE_DEPTH_MAX), the
 * number of final addresses (virtual_alias_expansion_limit) and the chain
 * of names being expanded: a name met again inside its own expansion is
 * final (Postfix's "user: user, backup" self-reference), which also ends
 * alias loops a -> b -> a at a.  :include: files are read with a size
 * bound and parsed like an alias value.
 *
 * Rights for |command and /file targets: the owner of the file the entry
 * came from (alias table file, read once at resolve_new; :include: file,
 * read when included), root and file-less sources replaced by
 * default_privs, so no target ever carries uid 0.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "conf.h"
#include "fileops.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "privs.h"
#include "resolve.h"

#define RESOLVE_STEPS_MAX 100000   /* expansion calls for one recipient */
#define RESOLVE_STR2(x) #x
#define RESOLVE_STR(x) RESOLVE_STR2(x)

/* A domain list: names, ".parent" patterns and tables. */
struct resolve_dlist {
    char **names;
    struct map **maps;
    size_t nmaps;
    bool subdomains;        /* "example.org" also matches "a.example.org" */
};

/* Whose rights a |command or /file target runs with. */
struct resolve_owner {
    bool known;             /* the file owner's (else default_privs) */
    uid_t uid;
    gid_t gid;
};

struct resolve {
    struct maps *canonical, *sender_canonical, *rcpt_canonical;
    struct maps *virtual_alias, *alias, *transport;
    struct resolve_dlist mydest, valias_dom, vmbox_dom, relay_dom;
    char *local_transport, *local_nexthop;
    char *virtual_transport, *virtual_nexthop;
    char *relay_transport, *relay_nexthop;
    char *default_transport, *default_nexthop;
    bool prop_canonical, prop_virtual;  /* propagate_unmatched_extensions */
    bool cmd_alias, cmd_include;        /* allow_mail_to_commands */
    bool file_alias, file_include;      /* allow_mail_to_files */
    struct resolve_owner *alias_owner;  /* one per alias_maps table */
    struct resolve_owner dflt;          /* default_privs */
    bool dflt_ok;                       /* default_privs names a user */
    struct strbuf *tmp;
};

static bool resolve_listed(const char *value, const char *what);

/* ---- alias value parsing ---------------------------------------- */

static bool resolve_is_sep(int c)
{
    return c == ',' || c == '\n' || c == ' ' || c == '\t' || c == '\r';
}

int resolve_alias_parse(const char *text, size_t len, resolve_item_fn *fn, void *ctx,
                        struct strbuf *why)
{
    struct strbuf *item = strbuf_new(64);
    size_t i = 0, count = 0;
    int rc = 0;

    strbuf_set_max(item, RESOLVE_ADDR_MAX);
    while (i < len) {
        bool quoted = false;
        enum resolve_item_kind kind;
        const char *v;

        while (i < len && resolve_is_sep((unsigned char)text[i]))
            i++;
        if (i >= len)
            break;
        if (text[i] == '#' && (i == 0 || text[i - 1] == '\n')) {
            while (i < len && text[i] != '\n')
                i++;
            continue;
        }
        strbuf_reset(item);
        if (text[i] == '"') {
            quoted = true;
            for (i++; i < len && text[i] != '"'; i++) {
                if (text[i] == '\\' && i + 1 < len)
                    i++;
                if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
                    strbuf_printf(why, "control character in quoted alias entry");
                    rc = -1;
                    goto out;
                }
                if (strbuf_appendc(item, text[i]) < 0)
                    goto toolong;
            }
            if (i >= len) {
                strbuf_printf(why, "unterminated quote in alias entry");
                rc = -1;
                goto out;
            }
            i++;
        }
        /* Unquoted text (or what follows a closing quote) up to a separator. */
        for (; i < len && !resolve_is_sep((unsigned char)text[i]); i++) {
            if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
                strbuf_printf(why, "control character in alias entry");
                rc = -1;
                goto out;
            }
            if (strbuf_appendc(item, text[i]) < 0)
                goto toolong;
        }
        if (strbuf_len(item) == 0 && !quoted)
            continue;
        if (++count > RESOLVE_ITEMS_MAX) {
            strbuf_printf(why, "more than %d alias entries", RESOLVE_ITEMS_MAX);
            rc = -1;
            goto out;
        }
        v = strbuf_str(item);
        if (v[0] == '|') {
            kind = RESOLVE_ITEM_PIPE;
            v++;
        } else if (v[0] == '/') {
            kind = RESOLVE_ITEM_FILE;
        } else if (strncasecmp(v, ":include:", 9) == 0) {
            kind = RESOLVE_ITEM_INCLUDE;
            v += 9;
        } else {
            kind = RESOLVE_ITEM_ADDR;
        }
        if (v[0] == '\0') {
            strbuf_printf(why, "empty %s alias entry",
                          kind == RESOLVE_ITEM_PIPE ? "command" : kind == RESOLVE_ITEM_INCLUDE
                          ? ":include:" : "");
            rc = -1;
            goto out;
        }
        if ((rc = fn(kind, v, ctx)) != 0)
            goto out;
    }
    goto out;

toolong:
    strbuf_printf(why, "alias entry longer than %d bytes", RESOLVE_ADDR_MAX);
    rc = -1;
out:
    strbuf_free(&item);
    return rc;
}

/* ---- setup ------------------------------------------------------ */

static int resolve_dlist_open(struct resolve_dlist *d, const char *value, bool subdomains,
                              struct strbuf *why)
{
    char **items = conf_list_split(value);
    size_t nn = 0;

    d->subdomains = subdomains;
    d->names = xcalloc(1, sizeof(char *));
    for (size_t i = 0; items[i] != NULL; i++) {
        const char *colon = strchr(items[i], ':');
        const char *brace = strchr(items[i], '{');

        if (colon != NULL && (brace == NULL || colon < brace)) {
            struct map *m = map_open(items[i], 0, why);
            if (m == NULL) {
                conf_list_free(&items);
                return -1;
            }
            d->maps = xreallocarray(d->maps, d->nmaps + 1, sizeof(*d->maps));
            d->maps[d->nmaps++] = m;
        } else {
            d->names = xreallocarray(d->names, nn + 2, sizeof(char *));
            d->names[nn] = xstrdup(items[i]);
            map_fold(d->names[nn]);
            d->names[++nn] = NULL;
        }
    }
    conf_list_free(&items);
    return 0;
}

/* The rights for targets read from path: its owner unless root (or the
 * file cannot be examined), then default_privs. */
static void resolve_file_owner(const struct resolve *r, const char *path,
                               struct resolve_owner *o)
{
    struct stat st;

    *o = r->dflt;
    if (path == NULL || stat(path, &st) < 0 || st.st_uid == 0)
        return;
    o->known = true;
    o->uid = st.st_uid;
    o->gid = st.st_gid;
}

/* The file behind an alias table, or NULL when it has none. */
static void resolve_map_owner(const struct resolve *r, struct map *m, struct resolve_owner *o)
{
    const char *type = map_type(m);
    struct strbuf *path;

    if (strcmp(type, "hash") == 0 || strcmp(type, "btree") == 0) {
        path = strbuf_new(64);
        strbuf_printf(path, "%s.db", m->name);
        resolve_file_owner(r, strbuf_str(path), o);
        strbuf_free(&path);
    } else if (strcmp(type, "texthash") == 0 || strcmp(type, "regexp") == 0) {
        resolve_file_owner(r, m->name, o);
    } else {
        resolve_file_owner(r, NULL, o);
    }
}

static void resolve_dlist_close(struct resolve_dlist *d)
{
    if (d->names != NULL)
        for (size_t i = 0; d->names[i] != NULL; i++)
            free(d->names[i]);
    free(d->names);
    for (size_t i = 0; i < d->nmaps; i++)
        map_close(&d->maps[i]);
    free(d->maps);
    memset(d, 0, sizeof(*d));
}

/* 1 if domain (lower case) is in the list, 0 if not, -1 with why. */
static int resolve_dlist_match(struct resolve *r, const struct resolve_dlist *d,
                               const char *domain, struct strbuf *why)
{
    size_t dl = strlen(domain);

    for (size_t i = 0; d->names[i] != NULL; i++) {
        const char *n = d->names[i];
        size_t nl = strlen(n);

        if (n[0] == '.') {
            if (dl > nl && strcmp(domain + dl - nl, n) == 0)
                return 1;
        } else if (strcmp(domain, n) == 0) {
            return 1;
        } else if (d->subdomains && dl > nl + 1 && domain[dl - nl - 1] == '.'
                   && strcmp(domain + dl - nl, n) == 0) {
            return 1;
        }
    }
    for (size_t i = 0; i < d->nmaps; i++) {
        int rc = map_lookup(d->maps[i], domain, r->tmp, why);
        if (rc != MAP_NOTFOUND)
            return rc == MAP_FOUND ? 1 : -1;
    }
    return 0;
}

/* "transport:nexthop" -> the two parts (either may be empty). */
static void resolve_split_transport(const char *spec, char **transport_r, char **nexthop_r)
{
    const char *colon = strchr(spec, ':');

    if (colon == NULL) {
        *transport_r = xstrdup(spec);
        *nexthop_r = xstrdup("");
    } else {
        *transport_r = xstrndup(spec, (size_t)(colon - spec));
        *nexthop_r = xstrdup(colon + 1);
    }
}

static int resolve_open_maps(struct maps **ms, const char *value, int flags, struct strbuf *why)
{
    *ms = maps_open(value != NULL ? value : "", flags, why);
    return *ms != NULL ? 0 : -1;
}

struct resolve *resolve_new(struct strbuf *why)
{
    struct resolve *r = xcalloc(1, sizeof(*r));

    r->tmp = strbuf_new(256);
    if (resolve_open_maps(&r->canonical, var_canonical_maps, 0, why) < 0
        || resolve_open_maps(&r->sender_canonical, var_sender_canonical_maps, 0, why) < 0
        || resolve_open_maps(&r->rcpt_canonical, var_recipient_canonical_maps, 0, why) < 0
        || resolve_open_maps(&r->virtual_alias, var_virtual_alias_maps, 0, why) < 0
        || resolve_open_maps(&r->alias, var_alias_maps, 0, why) < 0
        || resolve_open_maps(&r->transport, var_transport_maps, 0, why) < 0
        || resolve_dlist_open(&r->mydest, var_mydestination, false, why) < 0
        || resolve_dlist_open(&r->valias_dom, var_virtual_alias_domains, false, why) < 0
        || resolve_dlist_open(&r->vmbox_dom, var_virtual_mailbox_domains, false, why) < 0
        || resolve_dlist_open(&r->relay_dom, var_relay_domains, true, why) < 0) {
        resolve_free(&r);
        return NULL;
    }
    if (var_default_privs != NULL && var_default_privs[0] != '\0'
        && privs_user_lookup(var_default_privs, &r->dflt.uid, &r->dflt.gid, r->tmp) == 0
        && r->dflt.uid != 0)
        r->dflt_ok = true;
    else
        log_warn("default_privs user \"%s\" is unknown or root: deliveries to commands and "
                 "files from root-owned aliases will be deferred",
                 var_default_privs != NULL ? var_default_privs : "");
    r->alias_owner = xcalloc(maps_count(r->alias) + 1, sizeof(*r->alias_owner));
    for (size_t i = 0; i < maps_count(r->alias); i++)
        resolve_map_owner(r, maps_get(r->alias, i), &r->alias_owner[i]);
    r->prop_canonical = resolve_listed(var_propagate_unmatched_extensions, "canonical");
    r->prop_virtual = resolve_listed(var_propagate_unmatched_extensions, "virtual");
    r->cmd_alias = resolve_listed(var_allow_mail_to_commands, "alias");
    r->cmd_include = resolve_listed(var_allow_mail_to_commands, "include");
    r->file_alias = resolve_listed(var_allow_mail_to_files, "alias");
    r->file_include = resolve_listed(var_allow_mail_to_files, "include");
    resolve_split_transport(var_local_transport, &r->local_transport, &r->local_nexthop);
    resolve_split_transport(var_virtual_transport, &r->virtual_transport, &r->virtual_nexthop);
    resolve_split_transport(var_relay_transport, &r->relay_transport, &r->relay_nexthop);
    resolve_split_transport(var_default_transport, &r->default_transport,
                            &r->default_nexthop);
    return r;
}

void resolve_free(struct resolve **rp)
{
    struct resolve *r;

    if (rp == NULL || (r = *rp) == NULL)
        return;
    maps_close(&r->canonical);
    maps_close(&r->sender_canonical);
    maps_close(&r->rcpt_canonical);
    maps_close(&r->virtual_alias);
    maps_close(&r->alias);
    maps_close(&r->transport);
    resolve_dlist_close(&r->mydest);
    resolve_dlist_close(&r->valias_dom);
    resolve_dlist_close(&r->vmbox_dom);
    resolve_dlist_close(&r->relay_dom);
    free(r->local_transport);
    free(r->local_nexthop);
    free(r->virtual_transport);
    free(r->virtual_nexthop);
    free(r->relay_transport);
    free(r->relay_nexthop);
    free(r->default_transport);
    free(r->default_nexthop);
    free(r->alias_owner);
    strbuf_free(&r->tmp);
    free(r);
    *rp = NULL;
}

/* ---- results ---------------------------------------------------- */

void resolve_result_clear(struct resolve_result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        free(res->t[i].addr);
        free(res->t[i].transport);
        free(res->t[i].nexthop);
        free(res->t[i].dsn);
        free(res->t[i].text);
    }
    free(res->t);
    memset(res, 0, sizeof(*res));
}

static struct resolve_target *resolve_push(struct resolve_result *res, enum resolve_kind kind,
                                           const char *addr)
{
    struct resolve_target *t;

    res->t = xreallocarray(res->t, res->n + 1, sizeof(*res->t));
    t = &res->t[res->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->addr = xstrdup(addr);
    return t;
}

static void resolve_bounce(struct resolve_result *res, const char *addr, const char *dsn,
                           const char *text)
{
    struct resolve_target *t = resolve_push(res, RESOLVE_BOUNCE, addr);

    t->dsn = xstrdup(dsn);
    t->text = xstrdup(text);
}

/* ---- address helpers -------------------------------------------- */

/* The domain of addr, lower-cased, into out ("" for a bare name). */
static void resolve_domain(const char *addr, struct strbuf *out)
{
    const char *at = strrchr(addr, '@');

    strbuf_set(out, at != NULL ? at + 1 : "");
    map_fold(out->data);
}

int resolve_is_local(struct resolve *r, const char *addr, struct strbuf *why)
{
    struct strbuf *dom = strbuf_new(64);
    int rc;

    resolve_domain(addr, dom);
    rc = strbuf_len(dom) == 0 ? 1 : resolve_dlist_match(r, &r->mydest, strbuf_str(dom), why);
    strbuf_free(&dom);
    return rc;
}

/* A bare name gets @$myorigin (append_at_myorigin). */
static void resolve_qualify(const char *addr, struct strbuf *out)
{
    strbuf_set(out, addr);
    if (strchr(addr, '@') == NULL && var_append_at_myorigin && var_myorigin != NULL
        && var_myorigin[0] != '\0')
        strbuf_appendf(out, "@%s", var_myorigin);
}

/* True if the list parameter value names what (case-insensitive). */
static bool resolve_listed(const char *value, const char *what)
{
    char **list = conf_list_split(value);
    bool yes = false;

    for (size_t i = 0; list[i] != NULL; i++)
        if (strcasecmp(list[i], what) == 0)
            yes = true;
    conf_list_free(&list);
    return yes;
}

/* Put "+ext" back before the '@' of the address in out. */
static void resolve_add_ext(struct strbuf *out, const char *ext)
{
    const char *at = strrchr(strbuf_str(out), '@');
    size_t pos = at != NULL ? (size_t)(at - strbuf_str(out)) : strbuf_len(out);
    struct strbuf *tmp = strbuf_new(strbuf_len(out) + strlen(ext) + 2);

    if (ext == NULL || ext[0] == '\0' || var_recipient_delimiter == NULL
        || var_recipient_delimiter[0] == '\0') {
        strbuf_free(&tmp);
        return;
    }
    strbuf_setn(tmp, strbuf_str(out), pos);
    strbuf_appendc(tmp, var_recipient_delimiter[0]);
    strbuf_append(tmp, ext);
    strbuf_append(tmp, strbuf_str(out) + pos);
    if (strbuf_len(tmp) <= RESOLVE_ADDR_MAX)
        strbuf_set(out, strbuf_str(tmp));
    strbuf_free(&tmp);
}

/*
 * One canonical-style lookup of addr in ms.  A value "@domain" keeps the
 * local part; an unmatched extension is put back (propagate_unmatched_
 * extensions).  Returns 1 rewritten into out, 0 no match, -1 with why.
 */
static int resolve_canon_lookup(struct resolve *r, struct maps *ms, const char *addr,
                                struct strbuf *out, struct strbuf *why)
{
    struct strbuf *val = strbuf_new(128), *ext = strbuf_new(32);
    int local = 0, rc, flags = 0;

    if (maps_count(ms) == 0) {
        rc = 0;
        goto done;
    }
    if ((local = resolve_is_local(r, addr, why)) < 0) {
        rc = -1;
        goto done;
    }
    if (local && strchr(addr, '@') != NULL)
        flags |= MAPS_ADDR_LOCALPART;
    rc = maps_lookup_addr(ms, addr, var_recipient_delimiter, flags, val, ext, why);
    if (rc != MAP_FOUND) {
        rc = rc == MAP_NOTFOUND ? 0 : -1;
        goto done;
    }
    if (strbuf_str(val)[0] == '@') {
        const char *at = strrchr(addr, '@');
        strbuf_setn(out, addr, at != NULL ? (size_t)(at - addr) : strlen(addr));
        strbuf_append(out, strbuf_str(val));
    } else {
        strbuf_set(out, strbuf_str(val));
    }
    if (r->prop_canonical)
        resolve_add_ext(out, strbuf_str(ext));
    rc = strlen(strbuf_str(out)) > RESOLVE_ADDR_MAX ? 0 : 1;
done:
    strbuf_free(&val);
    strbuf_free(&ext);
    return rc;
}

/* Apply the listed tables in order into out (addr when none matches). */
static int resolve_canonical(struct resolve *r, struct maps *first, struct maps *second,
                             const char *addr, struct strbuf *out, struct strbuf *why)
{
    struct strbuf *step = strbuf_new(128);
    int rc;

    strbuf_set(out, addr);
    if ((rc = resolve_canon_lookup(r, first, addr, step, why)) < 0)
        goto done;
    if (rc == 1)
        strbuf_set(out, strbuf_str(step));
    if ((rc = resolve_canon_lookup(r, second, strbuf_str(out), step, why)) < 0)
        goto done;
    if (rc == 1)
        strbuf_set(out, strbuf_str(step));
    rc = 0;
done:
    strbuf_free(&step);
    return rc;
}

int resolve_sender(struct resolve *r, const char *addr, struct strbuf *out, struct strbuf *why)
{
    if (addr[0] == '\0') {
        strbuf_reset(out);
        return 0;
    }
    return resolve_canonical(r, r->sender_canonical, r->canonical, addr, out, why);
}

/* ---- routing ---------------------------------------------------- */

/* transport_maps: the address, the domain, then each parent ".domain". */
static int resolve_transport_lookup(struct resolve *r, const char *addr, const char *domain,
                                    struct strbuf *val, struct strbuf *why)
{
    int rc;

    if (maps_count(r->transport) == 0)
        return MAP_NOTFOUND;
    if ((rc = maps_lookup(r->transport, addr, val, why)) != MAP_NOTFOUND)
        return rc;
    if (domain[0] == '\0')
        return MAP_NOTFOUND;
    if ((rc = maps_lookup(r->transport, domain, val, why)) != MAP_NOTFOUND)
        return rc;
    for (const char *d = strchr(domain, '.'); d != NULL; d = strchr(d + 1, '.'))
        if ((rc = maps_lookup(r->transport, d, val, why)) != MAP_NOTFOUND)
            return rc;
    return MAP_NOTFOUND;
}

int resolve_route(struct resolve *r, const char *addr, struct resolve_result *res,
                  struct strbuf *why)
{
    struct strbuf *dom = strbuf_new(64), *val = strbuf_new(64);
    const char *transport, *nexthop;
    char *mt = NULL, *mn = NULL;
    struct resolve_target *t;
    int rc = 0, cls;

    resolve_domain(addr, dom);
    /* The class decides the defaults: 0 local, 1 virtual, 2 relay, 3 other. */
    if (strbuf_len(dom) == 0 || (rc = resolve_dlist_match(r, &r->mydest, strbuf_str(dom), why)) == 1)
        cls = 0;
    else if (rc < 0)
        goto fail;
    else if ((rc = resolve_dlist_match(r, &r->vmbox_dom, strbuf_str(dom), why)) != 0)
        cls = 1;
    else if ((rc = resolve_dlist_match(r, &r->relay_dom, strbuf_str(dom), why)) != 0)
        cls = 2;
    else
        cls = 3;
    if (rc < 0)
        goto fail;
    switch (cls) {
    case 0:
        transport = r->local_transport, nexthop = r->local_nexthop;
        break;
    case 1:
        transport = r->virtual_transport, nexthop = r->virtual_nexthop;
        break;
    case 2:
        transport = r->relay_transport, nexthop = r->relay_nexthop;
        break;
    default:
        transport = r->default_transport, nexthop = r->default_nexthop;
        break;
    }
    if (nexthop[0] == '\0' && cls >= 2 && var_relayhost != NULL && var_relayhost[0] != '\0')
        nexthop = var_relayhost;
    rc = resolve_transport_lookup(r, addr, strbuf_str(dom), val, why);
    if (rc == MAP_ERROR)
        goto fail;
    if (rc == MAP_FOUND) {
        resolve_split_transport(strbuf_str(val), &mt, &mn);
        if (mt[0] != '\0')
            transport = mt;
        if (mn[0] != '\0')
            nexthop = mn;
    }
    if (strcmp(transport, "error") == 0) {
        /* "error:5.1.1 text" or "error:text" */
        const char *text = mn != NULL && mn[0] != '\0' ? mn : "mail for this destination is refused";
        char dsn[16] = "5.0.0";
        if (strlen(text) > 6 && (text[0] == '4' || text[0] == '5') && text[1] == '.') {
            size_t n = strcspn(text, " ");
            if (n < sizeof(dsn)) {
                memcpy(dsn, text, n);
                dsn[n] = '\0';
                text += n + (text[n] == ' ');
            }
        }
        resolve_bounce(res, addr, dsn, text);
    } else if (strcmp(transport, "discard") == 0) {
        t = resolve_push(res, RESOLVE_DISCARD, addr);
        t->text = xstrdup(mn != NULL && mn[0] != '\0' ? mn : "discarded");
    } else {
        t = resolve_push(res, RESOLVE_DELIVER, addr);
        t->transport = xstrdup(transport);
        t->nexthop = xstrdup(nexthop[0] != '\0' ? nexthop
                             : strbuf_len(dom) > 0 ? strbuf_str(dom) : var_myhostname);
    }
    rc = 0;
    goto out;
fail:
    rc = -1;
out:
    free(mt);
    free(mn);
    strbuf_free(&dom);
    strbuf_free(&val);
    return rc;
}

/* ---- expansion -------------------------------------------------- */

struct resolve_walk {
    struct resolve *r;
    struct resolve_result *res;
    struct strbuf *why;
    const char **chain;     /* names being expanded, outermost first */
    size_t depth, max_depth;
    size_t limit;           /* final addresses allowed */
    size_t steps;           /* expansion calls so far (bounded) */
    enum resolve_source src;
    const char *ext;        /* extension to put back on alias targets, or NULL */
    struct resolve_owner owner; /* rights for targets of the current source */
    int rc;                 /* 0 ok, -1 temporary failure */
};

static int resolve_expand(struct resolve_walk *w, const char *addr);

static bool resolve_in_chain(const struct resolve_walk *w, const char *addr)
{
    for (size_t i = 0; i < w->depth; i++)
        if (strcasecmp(w->chain[i], addr) == 0)
            return true;
    return false;
}

static bool resolve_have(const struct resolve_result *res, enum resolve_kind kind,
                         const char *addr)
{
    for (size_t i = 0; i < res->n; i++)
        if (res->t[i].kind == kind && strcasecmp(res->t[i].addr, addr) == 0)
            return true;
    return false;
}

/* A final address: route it (once). */
static int resolve_final(struct resolve_walk *w, const char *addr)
{
    if (resolve_have(w->res, RESOLVE_DELIVER, addr))
        return 0;
    if (w->res->n >= w->limit) {
        resolve_result_clear(w->res);
        resolve_bounce(w->res, w->chain[0], "5.3.0",
                       "alias expansion yields too many addresses "
                       "(virtual_alias_expansion_limit)");
        return 1;
    }
    if (resolve_route(w->r, addr, w->res, w->why) < 0) {
        w->rc = -1;
        return 1;
    }
    return 0;
}

/* Pipe or file from an alias, with the allow_mail_to_* decision. */
static void resolve_special(struct resolve_walk *w, enum resolve_kind kind, const char *value)
{
    bool inc = w->src == RESOLVE_SRC_INCLUDE;
    struct resolve_target *t;
    bool ok = kind == RESOLVE_PIPE ? (inc ? w->r->cmd_include : w->r->cmd_alias)
                                   : (inc ? w->r->file_include : w->r->file_alias);

    if (resolve_have(w->res, kind, value))
        return;
    if (ok && !w->owner.known && !w->r->dflt_ok) {
        strbuf_printf(w->why, "default_privs user \"%s\" is unknown or root", var_default_privs);
        w->rc = -1;
        return;
    }
    t = resolve_push(w->res, kind, value);
    t->allowed = ok;
    t->owner_known = w->owner.known;
    t->owner_uid = w->owner.uid;
    t->owner_gid = w->owner.gid;
    t->dsn = xstrdup(ok ? "4.3.0" : "5.7.1");
    if (ok)
        t->text = xstrdup(kind == RESOLVE_PIPE ? "mail to command: pipe transport not available"
                                               : "mail to file: file delivery not available");
    else
        t->text = xstrdup(kind == RESOLVE_PIPE ? "mail to command is restricted"
                                               : "mail to file is restricted");
}

static int resolve_include(struct resolve_walk *w, const char *path);

static int resolve_item(enum resolve_item_kind kind, const char *value, void *ctx)
{
    struct resolve_walk *w = ctx;
    struct strbuf *q;
    int rc;

    switch (kind) {
    case RESOLVE_ITEM_PIPE:
        resolve_special(w, RESOLVE_PIPE, value);
        return w->rc < 0 ? 1 : 0;
    case RESOLVE_ITEM_FILE:
        resolve_special(w, RESOLVE_FILE, value);
        return w->rc < 0 ? 1 : 0;
    case RESOLVE_ITEM_INCLUDE:
        return resolve_include(w, value);
    case RESOLVE_ITEM_ADDR:
    default:
        q = strbuf_new(64);
        resolve_qualify(value, q);
        if (w->ext != NULL)
            resolve_add_ext(q, w->ext);
        {
            const char *saved = w->ext;
            w->ext = NULL;
            rc = resolve_expand(w, strbuf_str(q));
            w->ext = saved;
        }
        strbuf_free(&q);
        return rc;
    }
}

static int resolve_include(struct resolve_walk *w, const char *path)
{
    struct strbuf *data = strbuf_new(1024);
    enum resolve_source saved = w->src;
    struct resolve_owner saved_owner = w->owner;
    int rc;

    if (path[0] != '/') {
        strbuf_printf(w->why, ":include:%s: not an absolute path", path);
        w->rc = -1;
        strbuf_free(&data);
        return 1;
    }
    if (fileops_read_file(path, data, RESOLVE_INCLUDE_MAX, w->why) < 0) {
        w->rc = -1;
        strbuf_free(&data);
        return 1;
    }
    w->src = RESOLVE_SRC_INCLUDE;
    resolve_file_owner(w->r, path, &w->owner);
    rc = resolve_alias_parse(strbuf_str(data), strbuf_len(data), resolve_item, w, w->why);
    w->src = saved;
    w->owner = saved_owner;
    if (rc < 0) {
        w->rc = -1;
        rc = 1;
    }
    strbuf_free(&data);
    return rc;
}

/* The local part of addr without its extension, lower-cased. */
static void resolve_alias_key(const char *addr, struct strbuf *out)
{
    const char *at = strrchr(addr, '@');
    size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);
    const char *d = var_recipient_delimiter;

    strbuf_setn(out, addr, n);
    map_fold(out->data);
    if (d != NULL && d[0] != '\0' && strbuf_len(out) > 1) {
        size_t cut = strcspn(out->data + 1, d) + 1;
        if (cut < strbuf_len(out))
            strbuf_truncate(out, cut);
    }
}

/* Expand addr: virtual aliases, then local aliases, else final.
 * Returns 0 to go on, 1 to stop the whole walk (w->rc says why). */
static int resolve_expand(struct resolve_walk *w, const char *addr)
{
    struct strbuf *val = strbuf_new(128), *ext = strbuf_new(32), *dom = strbuf_new(64);
    int rc, local, stop = 0;
    size_t i;
    bool self;

    if (++w->steps > RESOLVE_STEPS_MAX) {
        resolve_result_clear(w->res);
        resolve_bounce(w->res, w->chain[0], "5.3.0",
                       "alias expansion too large (more than " RESOLVE_STR(RESOLVE_STEPS_MAX)
                       " steps)");
        stop = 1;
        goto out;
    }
    self = resolve_in_chain(w, addr);
    if (self) {
        stop = resolve_final(w, addr);
        goto out;
    }
    if (w->depth >= w->max_depth) {
        resolve_result_clear(w->res);
        resolve_bounce(w->res, w->chain[0], "5.4.6",
                       "alias expansion too deep (virtual_alias_recursion_limit)");
        stop = 1;
        goto out;
    }
    if ((local = resolve_is_local(w->r, addr, w->why)) < 0)
        goto tempfail;
    resolve_domain(addr, dom);

    /* Virtual aliases. */
    rc = maps_lookup_addr(w->r->virtual_alias, addr, var_recipient_delimiter,
                          local && strchr(addr, '@') ? MAPS_ADDR_LOCALPART : 0, val, ext, w->why);
    if (rc == MAP_ERROR)
        goto tempfail;
    if (rc == MAP_NOTFOUND && strbuf_len(dom) > 0) {
        int vd = resolve_dlist_match(w->r, &w->r->valias_dom, strbuf_str(dom), w->why);
        if (vd < 0)
            goto tempfail;
        if (vd == 1 && !local) {
            resolve_bounce(w->res, addr, "5.1.1", "User unknown in virtual alias table");
            goto out;
        }
    }
    if (rc == MAP_FOUND) {
        const char *saved = w->ext;
        struct resolve_owner saved_owner = w->owner;
        w->res->expanded = true;
        /* Which table matched is not known here: default_privs. */
        resolve_file_owner(w->r, NULL, &w->owner);
        w->chain[w->depth++] = addr;
        w->ext = strbuf_len(ext) > 0 && w->r->prop_virtual ? strbuf_str(ext) : NULL;
        rc = resolve_alias_parse(strbuf_str(val), strbuf_len(val), resolve_item, w, w->why);
        w->ext = saved;
        w->owner = saved_owner;
        w->depth--;
        if (rc < 0)
            goto tempfail;
        stop = rc;
        goto out;
    }

    /* Local aliases. */
    if (local && maps_count(w->r->alias) > 0) {
        resolve_alias_key(addr, val);
        strbuf_set(ext, strbuf_str(val));
        /* maps_lookup's order by hand, to know which table answered. */
        rc = MAP_NOTFOUND;
        for (i = 0; i < maps_count(w->r->alias) && rc == MAP_NOTFOUND; i++)
            rc = map_lookup(maps_get(w->r->alias, i), strbuf_str(ext), val, w->why);
        if (rc == MAP_ERROR)
            goto tempfail;
        if (rc == MAP_FOUND) {
            enum resolve_source saved = w->src;
            struct resolve_owner saved_owner = w->owner;
            w->owner = w->r->alias_owner[i - 1];
            w->res->expanded = true;
            w->chain[w->depth++] = addr;
            w->src = RESOLVE_SRC_ALIAS;
            w->ext = NULL;
            rc = resolve_alias_parse(strbuf_str(val), strbuf_len(val), resolve_item, w, w->why);
            w->src = saved;
            w->owner = saved_owner;
            w->depth--;
            if (rc < 0)
                goto tempfail;
            stop = rc;
            goto out;
        }
    }
    stop = resolve_final(w, addr);
    goto out;

tempfail:
    w->rc = -1;
    stop = 1;
out:
    strbuf_free(&val);
    strbuf_free(&ext);
    strbuf_free(&dom);
    return stop;
}

int resolve_rcpt(struct resolve *r, const char *addr, int flags, struct resolve_result *res,
                 struct strbuf *why)
{
    struct strbuf *canon = strbuf_new(128);
    struct resolve_walk w;
    int rc;

    resolve_result_clear(res);
    if (flags & RESOLVE_FL_NOEXPAND) {
        rc = resolve_route(r, addr, res, why);
        strbuf_free(&canon);
        return rc;
    }
    resolve_qualify(addr, canon);
    strbuf_set(r->tmp, strbuf_str(canon));
    if (resolve_canonical(r, r->rcpt_canonical, r->canonical, strbuf_str(r->tmp), canon, why) < 0) {
        strbuf_free(&canon);
        return -1;
    }
    memset(&w, 0, sizeof(w));
    w.r = r;
    w.res = res;
    w.why = why;
    w.max_depth = var_virtual_alias_recursion_limit < RESOLVE_DEPTH_MAX
                  ? (size_t)var_virtual_alias_recursion_limit : RESOLVE_DEPTH_MAX;
    w.limit = (size_t)var_virtual_alias_expansion_limit;
    w.chain = xcalloc(w.max_depth + 1, sizeof(char *));
    w.src = RESOLVE_SRC_ALIAS;
    resolve_file_owner(r, NULL, &w.owner);
    w.chain[0] = strbuf_str(canon);
    resolve_expand(&w, strbuf_str(canon));
    free(w.chain);
    strbuf_free(&canon);
    if (w.rc < 0) {
        resolve_result_clear(res);
        return -1;
    }
    return 0;
}
