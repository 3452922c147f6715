/*
 * conf.c - main.cf: read, parse, expand, type-check, and set the var_ globals.
 *
 * Owns the parsed configuration: one entry per name set in main.cf, set by
 * conf_override(), or declared in params.def (then holding its default).
 * Every daemon and command calls conf_load() once at start (and again on
 * reload); facteur-conf also reads values back with conf_get_value().
 *
 * main.cf is trusted no more than any file an administrator edits: every
 * line, name, value, expansion depth and expanded size is bounded, and every
 * error says where ("/etc/facteur/main.cf, line 12: ...").  Expansion is
 * lazy and memoised per name, so each value is expanded once; a name met
 * again while it is being expanded is a loop.  The var_ globals and what
 * conf_get() returns change only when a whole load succeeded, so a failed
 * reload leaves the old configuration in place.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "mem.h"

enum conf_src { CONF_SRC_DEFAULT, CONF_SRC_FILE, CONF_SRC_OVERRIDE };
enum conf_state { CONF_EXP_NONE, CONF_EXP_BUSY, CONF_EXP_DONE };

struct conf_entry {
    char *name;
    char *value;            /* effective raw value; NULL: default not computed yet */
    char *file_value;       /* as written in main.cf, or NULL */
    int line;               /* main.cf line of file_value */
    char *override;         /* "name=value" that set value, or NULL */
    enum conf_src src;
    const struct param_desc *desc;  /* NULL for a user macro */
    char *expanded;
    enum conf_state state;
    bool referenced;        /* some value mentions $name */
};

#define CONF_HASH_SIZE 8192     /* > 2 * (CONF_PARAMS_MAX + CONF_OVERRIDES_MAX + table) */

static struct {
    char *dir;
    char *path;
    struct conf_entry *ent;
    size_t count, cap;
    uint32_t *hash;             /* index + 1 into ent, 0 = empty */
    char **overrides;
    size_t noverrides;
    bool loaded;
} conf;

/* Expansion context: the chain of names being expanded, for loop messages. */
struct conf_exp {
    struct conf_entry *stack[CONF_EXPAND_DEPTH + 1];
    int depth;
    struct strbuf *why;
};

/* ---- small helpers -------------------------------------------------- */

static bool conf_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool conf_is_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_';
}

bool conf_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!conf_is_name_char((unsigned char)name[i]))
            return false;
    return true;
}

static uint32_t conf_hash_fn(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static struct conf_entry *conf_lookup_n(const char *name, size_t len)
{
    uint32_t slot;

    if (conf.hash == NULL)
        return NULL;
    slot = conf_hash_fn(name, len) & (CONF_HASH_SIZE - 1);
    while (conf.hash[slot]) {
        struct conf_entry *e = &conf.ent[conf.hash[slot] - 1];

        if (strncmp(e->name, name, len) == 0 && e->name[len] == 0)
            return e;
        slot = (slot + 1) & (CONF_HASH_SIZE - 1);
    }
    return NULL;
}

static struct conf_entry *conf_lookup(const char *name)
{
    return conf_lookup_n(name, strlen(name));
}

/* Add a new entry (the caller checked it is absent and within limits). */
static struct conf_entry *conf_add(const char *name, size_t len)
{
    struct conf_entry *e;
    uint32_t slot;

    if (conf.hash == NULL)
        conf.hash = xcalloc(CONF_HASH_SIZE, sizeof(*conf.hash));
    if (conf.count == conf.cap) {
        conf.cap = conf.cap ? conf.cap * 2 : 512;
        conf.ent = xreallocarray(conf.ent, conf.cap, sizeof(*conf.ent));
    }
    e = &conf.ent[conf.count++];
    memset(e, 0, sizeof(*e));
    e->name = xstrndup(name, len);
    e->desc = param_find(e->name);
    slot = conf_hash_fn(name, len) & (CONF_HASH_SIZE - 1);
    while (conf.hash[slot])
        slot = (slot + 1) & (CONF_HASH_SIZE - 1);
    conf.hash[slot] = (uint32_t)conf.count;
    return e;
}

static void conf_free_table(struct conf_entry *ent, size_t count, uint32_t *hash)
{
    for (size_t i = 0; i < count; i++) {
        free(ent[i].name);
        free(ent[i].value);
        free(ent[i].file_value);
        free(ent[i].override);
        free(ent[i].expanded);
    }
    free(ent);
    free(hash);
}

static void conf_clear_entries(void)
{
    conf_free_table(conf.ent, conf.count, conf.hash);
    conf.ent = NULL;
    conf.count = conf.cap = 0;
    conf.hash = NULL;
    conf.loaded = false;
}

/* "PATH, line N: " or "override "x=y": " or "default of x: " */
static void conf_where(struct strbuf *why, const struct conf_entry *e)
{
    if (e->src == CONF_SRC_OVERRIDE)
        strbuf_printf(why, "override \"%.200s\": ", e->override);
    else if (e->src == CONF_SRC_FILE)
        strbuf_printf(why, "%s, line %d: ", conf.path, e->line);
    else
        strbuf_printf(why, "default of %s: ", e->name);
}

/* ---- value syntax: numbers, times, sizes, booleans ------------------ */

/* Parse [+-]digits; *end_r is the first byte after them. */
static int conf_parse_number(const char *value, long *val_r, const char **end_r)
{
    const char *p = value;
    bool neg = false;
    unsigned long v = 0;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p++ - '0');

        if (v > ((unsigned long)LONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *val_r = neg ? -(long)v : (long)v;
    *end_r = p;
    return 0;
}

int conf_parse_long(const char *value, long *val_r, struct strbuf *why)
{
    const char *end;

    if (conf_parse_number(value, val_r, &end) < 0 || *end != 0) {
        strbuf_printf(why, "invalid number \"%.100s\"", value);
        return -1;
    }
    return 0;
}

static int conf_scale(long v, long unit, long *val_r)
{
    if (v > LONG_MAX / unit)
        return -1;
    *val_r = v * unit;
    return 0;
}

int conf_parse_time(const char *value, long *secs_r, struct strbuf *why)
{
    const char *end;
    long v, unit;

    if (conf_parse_number(value, &v, &end) < 0 || v < 0)
        goto bad;
    switch (*end) {
    case 0: case 's': case 'S': unit = 1; break;
    case 'm': case 'M': unit = 60; break;
    case 'h': case 'H': unit = 3600; break;
    case 'd': case 'D': unit = 86400; break;
    case 'w': case 'W': unit = 7 * 86400; break;
    default: goto bad;
    }
    if (*end && end[1] != 0)
        goto bad;
    if (conf_scale(v, unit, secs_r) < 0)
        goto bad;
    return 0;
bad:
    strbuf_printf(why, "invalid time value \"%.100s\" (a number with an optional "
                  "s, m, h, d or w suffix)", value);
    return -1;
}

int conf_parse_size(const char *value, long *val_r, struct strbuf *why)
{
    const char *end;
    long v, unit;

    if (conf_parse_number(value, &v, &end) < 0 || v < 0)
        goto bad;
    switch (*end) {
    case 0: unit = 1; break;
    case 'k': case 'K': unit = 1024; break;
    case 'm': case 'M': unit = 1024L * 1024; break;
    case 'g': case 'G': unit = 1024L * 1024 * 1024; break;
    default: goto bad;
    }
    if (*end && end[1] != 0)
        goto bad;
    if (conf_scale(v, unit, val_r) < 0)
        goto bad;
    return 0;
bad:
    strbuf_printf(why, "invalid size \"%.100s\" (bytes, with an optional k, m or g suffix)",
                  value);
    return -1;
}

int conf_parse_bool(const char *value, bool *val_r, struct strbuf *why)
{
    if (strcasecmp(value, "yes") == 0) {
        *val_r = true;
        return 0;
    }
    if (strcasecmp(value, "no") == 0) {
        *val_r = false;
        return 0;
    }
    strbuf_printf(why, "invalid boolean \"%.100s\" (yes or no)", value);
    return -1;
}

/* ---- lists ----------------------------------------------------------- */

static bool conf_is_list_sep(int c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Split on commas and white space, keeping a {...} group (with separators
 * inside, e.g. "inline:{a=1, b=2}") inside one item, as Postfix does. */
char **conf_list_split(const char *value)
{
    size_t n = 0, cap = 8;
    char **list = xmalloc(cap * sizeof(*list));
    const char *p = value ? value : "";

    for (;;) {
        const char *start;
        int level = 0;

        while (*p && conf_is_list_sep((unsigned char)*p))
            p++;
        if (*p == 0)
            break;
        start = p;
        while (*p && (level > 0 || !conf_is_list_sep((unsigned char)*p))) {
            if (*p == '{')
                level++;
            else if (*p == '}' && level > 0)
                level--;
            p++;
        }
        if (n + 2 > cap) {
            cap *= 2;
            list = xreallocarray(list, cap, sizeof(*list));
        }
        list[n++] = xstrndup(start, (size_t)(p - start));
    }
    list[n] = NULL;
    return list;
}

void conf_list_free(char ***listp)
{
    char **list;

    if (listp == NULL || *listp == NULL)
        return;
    list = *listp;
    for (size_t i = 0; list[i]; i++)
        free(list[i]);
    free(list);
    *listp = NULL;
}

/* ---- computed defaults: myhostname, mydomain, mynetworks ------------- */

static int conf_expand_entry(struct conf_exp *x, struct conf_entry *e, const char **val_r);

static char *conf_default_myhostname(void)
{
    char host[256];

    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = 0;
    if (strchr(host, '.') == NULL)
        return xasprintf("%s.localdomain", host);
    return xstrdup(host);
}

/* Append " item" unless the list already holds it (two addresses on one
 * subnet give one network). */
static void conf_net_add(struct strbuf *out, const char *item)
{
    size_t n = strlen(item);

    for (const char *p = strstr(strbuf_str(out), item); p; p = strstr(p + 1, item))
        if ((p == strbuf_str(out) || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return;
    strbuf_appendf(out, " %s", item);
}

/* Append addr/prefix for one interface address; mask from the netmask. */
static void conf_net_append(struct strbuf *out, const struct sockaddr *sa,
                            const struct sockaddr *mask, const char *style)
{
    char text[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 8];
    unsigned prefix = 0;

    if (sa->sa_family == AF_INET) {
        struct in_addr a = ((const struct sockaddr_in *)sa)->sin_addr;
        uint32_t h = ntohl(a.s_addr), m = 0xffffffffu;

        if ((h >> 24) == 127)
            return;             /* 127.0.0.0/8 is always listed */
        if (strcasecmp(style, "subnet") == 0 && mask)
            m = ntohl(((const struct sockaddr_in *)mask)->sin_addr.s_addr);
        else if (strcasecmp(style, "class") == 0)
            m = h < 0x80000000u ? 0xff000000u : h < 0xc0000000u ? 0xffff0000u : 0xffffff00u;
        for (uint32_t b = m; b & 0x80000000u; b <<= 1)
            prefix++;
        a.s_addr = htonl(h & (prefix ? 0xffffffffu << (32 - prefix) : 0));
        inet_ntop(AF_INET, &a, text, sizeof(text));
        snprintf(item, sizeof(item), "%s/%u", text, prefix);
        conf_net_add(out, item);
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;

        if (IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_LINKLOCAL(&a))
            return;
        prefix = 128;
        if (strcasecmp(style, "host") != 0 && mask) {
            const uint8_t *m = ((const struct sockaddr_in6 *)mask)->sin6_addr.s6_addr;

            prefix = 0;
            for (int i = 0; i < 16 && m[i] == 0xff; i++)
                prefix += 8;
            if (prefix < 128)
                for (uint8_t b = m[prefix / 8]; b & 0x80; b <<= 1)
                    prefix++;
        }
        for (unsigned i = 0; i < 16; i++) {
            unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0;

            if (keep < 8)
                a.s6_addr[i] &= (uint8_t)(0xff00 >> keep);
        }
        inet_ntop(AF_INET6, &a, text, sizeof(text));
        snprintf(item, sizeof(item), "[%s]/%u", text, prefix);
        conf_net_add(out, item);
    }
}

static int conf_default_mynetworks(struct conf_exp *x, char **value_r)
{
    struct conf_entry *style_e = conf_lookup("mynetworks_style");
    const char *style = "host";
    struct strbuf *out;
    struct ifaddrs *ifs = NULL;

    if (style_e && conf_expand_entry(x, style_e, &style) < 0)
        return -1;
    if (strcasecmp(style, "host") != 0 && strcasecmp(style, "subnet") != 0
        && strcasecmp(style, "class") != 0) {
        conf_where(x->why, style_e);
        strbuf_appendf(x->why, "parameter mynetworks_style: unknown value \"%.100s\" "
                       "(host, subnet or class)", style);
        return -1;
    }
    out = strbuf_new(128);
    strbuf_set(out, "127.0.0.0/8 [::1]/128");
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
            if (i->ifa_addr)
                conf_net_append(out, i->ifa_addr, i->ifa_netmask, style);
        freeifaddrs(ifs);
    }
    *value_r = strbuf_steal(&out);
    return 0;
}

/* Fill in e->value for a default that depends on the host. */
static int conf_compute_default(struct conf_exp *x, struct conf_entry *e)
{
    if (strcmp(e->name, "myhostname") == 0) {
        e->value = conf_default_myhostname();
    } else if (strcmp(e->name, "mydomain") == 0) {
        struct conf_entry *h = conf_lookup("myhostname");
        const char *host = "", *dot;

        if (h && conf_expand_entry(x, h, &host) < 0)
            return -1;
        dot = strchr(host, '.');
        e->value = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
    } else if (strcmp(e->name, "mynetworks") == 0) {
        if (conf_default_mynetworks(x, &e->value) < 0)
            return -1;
    } else {
        e->value = xstrdup(e->desc ? e->desc->def : "");
    }
    return 0;
}

static bool conf_default_is_computed(const char *name)
{
    return strcmp(name, "myhostname") == 0 || strcmp(name, "mydomain") == 0
           || strcmp(name, "mynetworks") == 0;
}

/* ---- expansion ------------------------------------------------------- */

static int conf_expand_text(struct conf_exp *x, const char *text, size_t len,
                            struct strbuf *out);

static int conf_exp_fail(struct conf_exp *x, const char *fmt, const char *arg)
{
    struct conf_entry *e = x->stack[x->depth > 0 ? x->depth - 1 : 0];

    conf_where(x->why, e);
    strbuf_appendf(x->why, "parameter %s: ", e->name);
    strbuf_appendf(x->why, fmt, arg);
    return -1;
}

static int conf_exp_append(struct conf_exp *x, struct strbuf *out, const char *p, size_t n)
{
    if (strbuf_appendn(out, p, n) < 0) {
        char limit[32];

        snprintf(limit, sizeof(limit), "%d", CONF_EXPAND_MAX);
        return conf_exp_fail(x, "expanded value longer than %s bytes", limit);
    }
    return 0;
}

/* The expanded value of a name, or "" (and *e_r NULL) if undefined. */
static int conf_expand_name(struct conf_exp *x, const char *name, size_t len,
                            const char **val_r)
{
    struct conf_entry *e = conf_lookup_n(name, len);

    *val_r = "";
    if (e == NULL)
        return 0;
    e->referenced = true;
    return conf_expand_entry(x, e, val_r);
}

/* Find the bracket that closes the one at text[0]; -1 if none. */
static long conf_match_close(const char *text, size_t len)
{
    char open = text[0], close = open == '{' ? '}' : ')';
    int level = 0;

    for (size_t i = 0; i < len; i++) {
        if (text[i] == open)
            level++;
        else if (text[i] == close && --level == 0)
            return (long)i;
    }
    return -1;
}

/* ${name?text}, ${name:text}, ${name?{text}}, ${name?{a}:{b}}, ${name:{text}}:
 * inner is what lies between the outer braces. */
static int conf_expand_braced(struct conf_exp *x, const char *inner, size_t len,
                              struct strbuf *out)
{
    size_t n = 0;
    const char *val;
    const char *yes = NULL, *no = NULL;
    size_t yes_len = 0, no_len = 0;
    char op;
    const char *rest;
    size_t rest_len;

    while (n < len && conf_is_name_char((unsigned char)inner[n]))
        n++;
    if (n == 0)
        return conf_exp_fail(x, "missing name after '%s'", "${");
    if (n > CONF_NAME_MAX)
        return conf_exp_fail(x, "name after '$' longer than %s bytes", "100");
    if (conf_expand_name(x, inner, n, &val) < 0)
        return -1;
    if (n == len)
        return conf_exp_append(x, out, val, strlen(val));
    op = inner[n];
    if (op != '?' && op != ':')
        return conf_exp_fail(x, "unexpected character after a name in ${...}: '%.1s'",
                             inner + n);
    rest = inner + n + 1;
    rest_len = len - n - 1;
    if (rest_len > 0 && rest[0] == '{') {
        /* Postfix 3 form: the text in braces, optionally a second branch. */
        long close = conf_match_close(rest, rest_len);
        size_t after;

        if (close < 0)
            return conf_exp_fail(x, "unbalanced '%s' in ${...}", "{");
        after = (size_t)close + 1;
        if (op == '?') {
            yes = rest + 1;
            yes_len = (size_t)close - 1;
        } else {
            no = rest + 1;
            no_len = (size_t)close - 1;
        }
        while (after < rest_len && conf_is_space((unsigned char)rest[after]))
            after++;
        if (after < rest_len) {
            if (op != '?' || rest[after] != ':')
                return conf_exp_fail(x, "unexpected text after '}' in ${...}: \"%.40s\"",
                                     rest + after);
            after++;
            while (after < rest_len && conf_is_space((unsigned char)rest[after]))
                after++;
            if (after >= rest_len || rest[after] != '{'
                || conf_match_close(rest + after, rest_len - after) != (long)(rest_len - after - 1))
                return conf_exp_fail(x, "expected {text} after ':' in %s", "${name?{a}:{b}}");
            no = rest + after + 1;
            no_len = rest_len - after - 2;
        }
    } else if (op == '?') {
        yes = rest;
        yes_len = rest_len;
    } else {
        no = rest;
        no_len = rest_len;
    }
    if (*val && yes)
        return conf_expand_text(x, yes, yes_len, out);
    if (*val == 0 && no)
        return conf_expand_text(x, no, no_len, out);
    return 0;
}

static int conf_expand_text(struct conf_exp *x, const char *text, size_t len,
                            struct strbuf *out)
{
    size_t i = 0;

    if (x->depth >= CONF_EXPAND_DEPTH)
        return conf_exp_fail(x, "expansion nested more than %s levels deep", "100");
    x->depth++;
    x->stack[x->depth - 1] = x->stack[x->depth > 1 ? x->depth - 2 : 0];
    while (i < len) {
        const char *dollar = memchr(text + i, '$', len - i);
        size_t plain = dollar ? (size_t)(dollar - (text + i)) : len - i;

        if (conf_exp_append(x, out, text + i, plain) < 0)
            goto fail;
        i += plain;
        if (i >= len)
            break;
        i++;                                        /* the '$' */
        if (i < len && text[i] == '$') {            /* $$ is a literal $ */
            if (conf_exp_append(x, out, "$", 1) < 0)
                goto fail;
            i++;
        } else if (i < len && (text[i] == '{' || text[i] == '(')) {
            long close = conf_match_close(text + i, len - i);

            if (close < 0) {
                char open[2] = { text[i], 0 };

                conf_exp_fail(x, "unbalanced '%s'", open);
                goto fail;
            }
            if (conf_expand_braced(x, text + i + 1, (size_t)close - 1, out) < 0)
                goto fail;
            i += (size_t)close + 1;
        } else {
            size_t n = 0;
            const char *val;

            while (i + n < len && conf_is_name_char((unsigned char)text[i + n]))
                n++;
            if (n == 0) {                           /* "$" before anything else stays */
                if (conf_exp_append(x, out, "$", 1) < 0)
                    goto fail;
                continue;
            }
            if (n > CONF_NAME_MAX) {
                conf_exp_fail(x, "name after '$' longer than %s bytes", "100");
                goto fail;
            }
            if (conf_expand_name(x, text + i, n, &val) < 0
                || conf_exp_append(x, out, val, strlen(val)) < 0)
                goto fail;
            i += n;
        }
    }
    x->depth--;
    return 0;
fail:
    x->depth--;
    return -1;
}

/* Expand e's value once; later calls return the memoised result. */
static int conf_expand_entry(struct conf_exp *x, struct conf_entry *e, const char **val_r)
{
    struct strbuf *out;
    int saved_depth = x->depth;
    int rc;

    if (e->state == CONF_EXP_DONE) {
        *val_r = e->expanded;
        return 0;
    }
    if (e->state == CONF_EXP_BUSY) {
        struct strbuf *chain = strbuf_new(64);
        int from = 0;

        for (int i = 0; i < x->depth; i++)
            if (x->stack[i] == e) {
                from = i;
                break;
            }
        for (int i = from; i < x->depth; i++)
            if (i == from || x->stack[i] != x->stack[i - 1])
                strbuf_appendf(chain, "$%s -> ", x->stack[i]->name);
        strbuf_appendf(chain, "$%s", e->name);
        conf_exp_fail(x, "expansion loop: %s", strbuf_str(chain));
        strbuf_free(&chain);
        return -1;
    }
    if (x->depth >= CONF_EXPAND_DEPTH)
        return conf_exp_fail(x, "expansion nested more than %s levels deep", "100");
    e->state = CONF_EXP_BUSY;
    x->stack[x->depth++] = e;
    rc = 0;
    if (e->value == NULL)
        rc = conf_compute_default(x, e);
    out = strbuf_new(e->value ? strlen(e->value) + 1 : 16);
    strbuf_set_max(out, CONF_EXPAND_MAX);
    if (rc == 0)
        rc = conf_expand_text(x, e->value, strlen(e->value), out);
    x->depth = saved_depth;
    if (rc < 0) {
        e->state = CONF_EXP_NONE;
        strbuf_free(&out);
        return -1;
    }
    e->expanded = strbuf_steal(&out);
    e->state = CONF_EXP_DONE;
    *val_r = e->expanded;
    return 0;
}

/* Mark every name that a value mentions, in any branch, as referenced. */
static void conf_mark_refs(const char *v)
{
    if (v == NULL)
        return;
    for (const char *p = strchr(v, '$'); p; p = strchr(p, '$')) {
        size_t n = 0;
        struct conf_entry *e;

        p++;
        if (*p == '$') {
            p++;
            continue;
        }
        if (*p == '{' || *p == '(')
            p++;
        while (conf_is_name_char((unsigned char)p[n]))
            n++;
        if (n && (e = conf_lookup_n(p, n)) != NULL)
            e->referenced = true;
        p += n;
    }
}

/* ---- main.cf syntax -------------------------------------------------- */

/* One logical line "name = value" (already joined and trimmed). */
static int conf_parse_logical(const char *text, size_t len, int line, struct strbuf *why)
{
    size_t n = 0, v;
    struct conf_entry *e;

    while (n < len && !conf_is_space((unsigned char)text[n]) && text[n] != '=')
        n++;
    if (n == 0) {
        strbuf_printf(why, "%s, line %d: missing parameter name before '='", conf.path, line);
        return -1;
    }
    v = n;
    while (v < len && conf_is_space((unsigned char)text[v]))
        v++;
    if (v >= len || text[v] != '=') {
        strbuf_printf(why, "%s, line %d: missing '=' after parameter name", conf.path, line);
        return -1;
    }
    if (!conf_name_valid(text, n)) {
        strbuf_printf(why, "%s, line %d: invalid parameter name \"%.*s\" (letters, digits "
                      "and '_', at most %d bytes)", conf.path, line,
                      (int)(n > 100 ? 100 : n), text, CONF_NAME_MAX);
        return -1;
    }
    v++;
    while (v < len && conf_is_space((unsigned char)text[v]))
        v++;
    e = conf_lookup_n(text, n);
    if (e == NULL) {
        if (conf.count >= CONF_PARAMS_MAX) {
            strbuf_printf(why, "%s, line %d: more than %d parameters", conf.path, line,
                          CONF_PARAMS_MAX);
            return -1;
        }
        e = conf_add(text, n);
    }
    /* A later setting of the same name wins, as in Postfix. */
    free(e->file_value);
    e->file_value = xstrndup(text + v, len - v);
    e->line = line;
    e->src = CONF_SRC_FILE;
    return 0;
}

static int conf_parse_text(const char *text, size_t len, struct strbuf *why)
{
    struct strbuf *logical = strbuf_new(256);
    int line = 0, start_line = 0;
    size_t pos = 0;
    int rc = 0;

    while (pos < len && rc == 0) {
        const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos, b = 0;

        pos += n + (nl ? 1 : 0);
        line++;
        if (n > CONF_LINE_MAX) {
            strbuf_printf(why, "%s, line %d: line longer than %d bytes", conf.path, line,
                          CONF_LINE_MAX);
            rc = -1;
            break;
        }
        if (memchr(p, 0, n)) {
            strbuf_printf(why, "%s, line %d: NUL byte in line", conf.path, line);
            rc = -1;
            break;
        }
        while (n > 0 && conf_is_space((unsigned char)p[n - 1]))
            n--;
        while (b < n && conf_is_space((unsigned char)p[b]))
            b++;
        if (b == n || p[b] == '#')
            continue;                   /* blank and comment lines end nothing */
        if (b > 0) {                    /* continuation of the logical line */
            if (start_line == 0) {
                strbuf_printf(why, "%s, line %d: line starts with white space but no "
                              "parameter precedes it", conf.path, line);
                rc = -1;
                break;
            }
            if (strbuf_len(logical) + 1 + (n - b) > CONF_LOGICAL_MAX) {
                strbuf_printf(why, "%s, line %d: parameter setting longer than %d bytes",
                              conf.path, start_line, CONF_LOGICAL_MAX);
                rc = -1;
                break;
            }
            strbuf_appendc(logical, ' ');
            strbuf_appendn(logical, p + b, n - b);
            continue;
        }
        if (start_line)
            rc = conf_parse_logical(strbuf_str(logical), strbuf_len(logical), start_line, why);
        strbuf_setn(logical, p, n);
        start_line = line;
    }
    if (rc == 0 && start_line)
        rc = conf_parse_logical(strbuf_str(logical), strbuf_len(logical), start_line, why);
    strbuf_free(&logical);
    return rc;
}

/* ---- overrides -------------------------------------------------------- */

/* Split "name = value" into a name length and a value start. */
static int conf_split_assignment(const char *a, size_t *name_len_r, const char **value_r)
{
    size_t n = 0;
    const char *v;

    while (a[n] && !conf_is_space((unsigned char)a[n]) && a[n] != '=')
        n++;
    v = a + n;
    while (conf_is_space((unsigned char)*v))
        v++;
    if (*v != '=' || !conf_name_valid(a, n))
        return -1;
    v++;
    while (conf_is_space((unsigned char)*v))
        v++;
    *name_len_r = n;
    *value_r = v;
    return 0;
}

int conf_override(const char *assignment, struct strbuf *why)
{
    size_t n;
    const char *v;

    if (conf_split_assignment(assignment, &n, &v) < 0) {
        strbuf_printf(why, "override \"%.200s\": expected name=value", assignment);
        return -1;
    }
    if (strchr(v, '\n') || strlen(v) > CONF_LOGICAL_MAX) {
        strbuf_printf(why, "override \"%.200s\": value has a newline or is too long",
                      assignment);
        return -1;
    }
    if (conf.noverrides >= CONF_OVERRIDES_MAX) {
        strbuf_printf(why, "more than %d overrides", CONF_OVERRIDES_MAX);
        return -1;
    }
    conf.overrides = xreallocarray(conf.overrides, conf.noverrides + 1,
                                   sizeof(*conf.overrides));
    conf.overrides[conf.noverrides++] = xstrdup(assignment);
    return 0;
}

void conf_override_clear(void)
{
    for (size_t i = 0; i < conf.noverrides; i++)
        free(conf.overrides[i]);
    free(conf.overrides);
    conf.overrides = NULL;
    conf.noverrides = 0;
}

/* ---- loading ---------------------------------------------------------- */

/* Postfix reads a bare number as days or hours for a few time parameters;
 * so does facteur, so that a main.cf carried over keeps its meaning. */
static char conf_time_unit(const char *name)
{
    if (strcmp(name, "maximal_queue_lifetime") == 0 || strcmp(name, "bounce_queue_lifetime") == 0)
        return 'd';
    if (strcmp(name, "delay_warning_time") == 0)
        return 'h';
    return 's';
}

static int conf_convert_time(const struct conf_entry *e, long *v, struct strbuf *err)
{
    const char *p = e->expanded;
    char unit = conf_time_unit(e->name);
    char *with_unit;
    int rc;

    while (*p >= '0' && *p <= '9')
        p++;
    if (unit == 's' || *p != 0 || p == e->expanded)
        return conf_parse_time(e->expanded, v, err);
    with_unit = xasprintf("%s%c", e->expanded, unit);
    rc = conf_parse_time(with_unit, v, err);
    free(with_unit);
    return rc;
}

/* Convert e's expanded value into *out (a var_ of e->desc's type). */
static int conf_convert(struct conf_entry *e, void *out, struct strbuf *why)
{
    const struct param_desc *d = e->desc;
    struct strbuf *err = strbuf_new(128);
    long v = 0;
    int rc = 0;

    switch (d->type) {
    case PARAM_STR:
    case PARAM_LIST:
        *(char **)out = e->expanded;        /* copied on assignment */
        break;
    case PARAM_BOOL:
        rc = conf_parse_bool(e->expanded, (bool *)out, err);
        break;
    case PARAM_INT:
        rc = conf_parse_long(e->expanded, &v, err);
        break;
    case PARAM_TIME:
        rc = conf_convert_time(e, &v, err);
        break;
    case PARAM_SIZE:
        rc = conf_parse_size(e->expanded, &v, err);
        break;
    }
    if (rc == 0 && (d->type == PARAM_INT || d->type == PARAM_TIME || d->type == PARAM_SIZE)) {
        const char *unit = d->type == PARAM_TIME ? "s" : "";

        if (v < d->min)
            rc = -1, strbuf_printf(err, "value %ld%s is less than the minimum %ld%s",
                                   v, unit, d->min, unit);
        else if (v > d->max)
            rc = -1, strbuf_printf(err, "value %ld%s is more than the maximum %ld%s",
                                   v, unit, d->max, unit);
        else
            *(long *)out = v;
    }
    if (rc < 0) {
        conf_where(why, e);
        strbuf_appendf(why, "parameter %s: %s", e->name, strbuf_str(err));
    }
    strbuf_free(&err);
    return rc;
}

union conf_val {
    char *s;
    long l;
    bool b;
};

static void conf_assign(const struct param_desc *d, const union conf_val *v)
{
    switch (d->type) {
    case PARAM_STR:
    case PARAM_LIST:
        free(*(char **)d->var);
        *(char **)d->var = xstrdup(v->s);
        break;
    case PARAM_BOOL:
        *(bool *)d->var = v->b;
        break;
    default:
        *(long *)d->var = v->l;
        break;
    }
}

int conf_load_buffer(const char *path, const char *text, size_t len, struct strbuf *why)
{
    struct conf_exp x;
    union conf_val *vals;
    /* The previous load stays whole until this one has succeeded. */
    struct conf_entry *old_ent = conf.ent;
    size_t old_count = conf.count, old_cap = conf.cap;
    uint32_t *old_hash = conf.hash;
    char *old_path = conf.path;
    bool old_loaded = conf.loaded;

    conf.ent = NULL;
    conf.count = conf.cap = 0;
    conf.hash = NULL;
    conf.loaded = false;
    conf.path = xstrdup(path);
    if (conf_parse_text(text, len, why) < 0)
        goto fail;

    for (size_t i = 0; i < conf.noverrides; i++) {
        const char *v;
        size_t n;
        struct conf_entry *e;

        if (conf_split_assignment(conf.overrides[i], &n, &v) < 0)
            continue;               /* conf_override checked it already */
        if ((e = conf_lookup_n(conf.overrides[i], n)) == NULL)
            e = conf_add(conf.overrides[i], n);
        free(e->value);
        free(e->override);
        n = strlen(v);
        while (n > 0 && conf_is_space((unsigned char)v[n - 1]))
            n--;
        e->value = xstrndup(v, n);
        e->override = xstrdup(conf.overrides[i]);
        e->src = CONF_SRC_OVERRIDE;
    }
    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        if (conf_lookup(d->name) == NULL) {
            struct conf_entry *e = conf_add(d->name, strlen(d->name));

            e->src = CONF_SRC_DEFAULT;
            e->value = conf_default_is_computed(d->name) ? NULL : xstrdup(d->def);
        }
    }
    for (size_t i = 0; i < conf.count; i++)
        if (conf.ent[i].src == CONF_SRC_FILE)
            conf.ent[i].value = xstrdup(conf.ent[i].file_value);

    /* Expand everything, in file order first, so the first error reported
     * is the earliest line. */
    memset(&x, 0, sizeof(x));
    x.why = why;
    for (size_t i = 0; i < conf.count; i++) {
        const char *val;

        x.depth = 0;
        if (conf_expand_entry(&x, &conf.ent[i], &val) < 0)
            goto fail;
    }

    /* Convert and check every parameter before any var_ changes. */
    vals = xcalloc(param_count, sizeof(*vals));
    for (size_t i = 0; i < conf.count; i++) {
        struct conf_entry *e = &conf.ent[i];

        if (e->desc && conf_convert(e, &vals[e->desc - param_table], why) < 0) {
            free(vals);
            goto fail;
        }
    }
    for (unsigned i = 0; i < param_count; i++)
        conf_assign(&param_table[i], &vals[i]);
    free(vals);

    for (size_t i = 0; i < conf.count; i++) {
        conf_mark_refs(conf.ent[i].value);
        conf_mark_refs(conf.ent[i].file_value);
    }
    conf.loaded = true;
    conf_free_table(old_ent, old_count, old_hash);
    free(old_path);
    return 0;
fail:
    conf_clear_entries();
    free(conf.path);
    conf.ent = old_ent;
    conf.count = old_count;
    conf.cap = old_cap;
    conf.hash = old_hash;
    conf.path = old_path;
    conf.loaded = old_loaded;
    return -1;
}

int conf_load(const char *confdir, struct strbuf *why)
{
    const char *dir = confdir;
    char *path;
    struct strbuf *text;
    int fd, rc;

    if (dir == NULL || *dir == 0)
        dir = getenv("FACTEUR_CONFIG_DIR");
    if (dir == NULL || *dir == 0)
        dir = CONF_DEFAULT_DIR;
    dir = xstrdup(dir);
    free(conf.dir);
    conf.dir = (char *)dir;
    path = xasprintf("%s/main.cf", dir);
    text = strbuf_new(8192);
    strbuf_set_max(text, CONF_FILE_MAX);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno != ENOENT) {
        strbuf_printf(why, "%s: cannot open: %m", path);
        rc = -1;
        goto out;
    }
    for (rc = 0; fd >= 0;) {
        char buf[65536];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            strbuf_printf(why, "%s: read error: %m", path);
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        if (strbuf_appendn(text, buf, (size_t)n) < 0) {
            strbuf_printf(why, "%s: file larger than %d bytes", path, CONF_FILE_MAX);
            rc = -1;
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        rc = conf_load_buffer(path, strbuf_str(text), strbuf_len(text), why);
out:
    strbuf_free(&text);
    free(path);
    return rc;
}

void conf_unload(void)
{
    conf_clear_entries();
    conf_override_clear();
    free(conf.path);
    free(conf.dir);
    conf.path = conf.dir = NULL;
    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        if (d->type == PARAM_STR || d->type == PARAM_LIST) {
            free(*(char **)d->var);
            *(char **)d->var = NULL;
        } else if (d->type == PARAM_BOOL) {
            *(bool *)d->var = false;
        } else {
            *(long *)d->var = 0;
        }
    }
}

/* ---- queries ---------------------------------------------------------- */

const char *conf_dir(void)
{
    return conf.dir ? conf.dir : CONF_DEFAULT_DIR;
}

const char *conf_get(const char *name)
{
    struct conf_entry *e = conf.loaded ? conf_lookup(name) : NULL;

    return e ? e->expanded : NULL;
}

const char *conf_get_raw(const char *name)
{
    struct conf_entry *e = conf.loaded ? conf_lookup(name) : NULL;

    return e ? e->file_value : NULL;
}

const char *conf_get_value(const char *name)
{
    struct conf_entry *e = conf.loaded ? conf_lookup(name) : NULL;

    return e ? e->value : NULL;
}

bool conf_is_set(const char *name)
{
    struct conf_entry *e = conf.loaded ? conf_lookup(name) : NULL;

    return e != NULL && e->src != CONF_SRC_DEFAULT;
}

static int conf_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **conf_names_set(void)
{
    char **names = xcalloc(conf.count + 1, sizeof(*names));
    size_t n = 0;

    for (size_t i = 0; conf.loaded && i < conf.count; i++)
        if (conf.ent[i].src != CONF_SRC_DEFAULT)
            names[n++] = xstrdup(conf.ent[i].name);
    qsort(names, n, sizeof(*names), conf_strcmp_p);
    return names;
}

/* Parameters whose names Postfix derives from a master.cf service name
 * (transport_destination_concurrency_limit ...): not "unused" when unknown. */
static bool conf_is_per_transport(const char *name)
{
    static const char *const suffixes[] = {
        "_destination_concurrency_limit", "_destination_recipient_limit",
        "_destination_rate_delay", "_destination_concurrency_failed_cohort_limit",
        "_initial_destination_concurrency", "_extra_recipient_limit",
        "_recipient_limit", "_time_limit", "_delivery_slot_cost",
    };
    size_t len = strlen(name);

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t sl = strlen(suffixes[i]);

        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0)
            return true;
    }
    return false;
}

/* Names listed in smtpd_restriction_classes count as used. */
static void conf_mark_classes(void)
{
    char **cls = conf_list_split(conf_get("smtpd_restriction_classes"));

    for (size_t i = 0; cls[i]; i++) {
        struct conf_entry *e = conf_lookup(cls[i]);

        if (e)
            e->referenced = true;
    }
    conf_list_free(&cls);
}

bool conf_is_known(const char *name)
{
    struct conf_entry *e;

    if (param_find(name))
        return true;
    if (!conf.loaded || (e = conf_lookup(name)) == NULL)
        return false;
    conf_mark_classes();
    return e->referenced || conf_is_per_transport(name);
}

int conf_check_unknown(void)
{
    int count = 0;

    if (!conf.loaded)
        return 0;
    conf_mark_classes();
    for (size_t i = 0; i < conf.count; i++) {
        struct conf_entry *e = &conf.ent[i];

        if (e->file_value == NULL || e->desc || e->referenced || conf_is_per_transport(e->name))
            continue;
        log_warn("%s, line %d: unused parameter: %s=%s", conf.path, e->line, e->name,
                 e->file_value);
        count++;
    }
    return count;
}
