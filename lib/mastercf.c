/*
 * mastercf.c - parse master.cf into a table of service entries.
 *
 * Owns the master.cf syntax: physical lines are joined into logical lines
 * (continuations start with white space; comment and blank lines may sit
 * between them), each logical line is split into tokens ("{ ... }" groups
 * are one token), and each column is checked.  Callers: master (at start
 * and on SIGHUP), facteur check, the fuzz target.
 *
 * The file is written by the administrator, but the parser still treats it
 * as arbitrary bytes: every length and count is bounded, text quoted back
 * in messages is made printable and cut short, and a failure leaves no
 * partial table behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mastercf.h"
#include "mem.h"

#define MASTERCF_COLUMNS 8          /* service .. command */
#define MASTERCF_QUOTE_MAX 60       /* bytes of bad text echoed in messages */
#define MASTERCF_GROUP_DEPTH 10

struct token {
    char *text;
    bool group;                     /* came from "{ ... }" */
};

struct tokens {
    struct token *v;
    size_t n;
};

static const char *column_names[MASTERCF_COLUMNS] = {
    "service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command",
};

/* Append s to why as a quoted, printable, bounded string. */
static void quote(struct strbuf *why, const char *s)
{
    size_t i;

    strbuf_appendc(why, '"');
    for (i = 0; s[i] && i < MASTERCF_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            strbuf_appendf(why, "\\x%02x", c);
        else
            strbuf_appendc(why, (int)c);
    }
    if (s[i])
        strbuf_append(why, "...");
    strbuf_appendc(why, '"');
}

static void err_line(struct strbuf *why, const char *path, int line, const char *msg)
{
    strbuf_printf(why, "%s, line %d: %s", path, line, msg);
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void tokens_free(struct tokens *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].text);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static char *trimmed_dup(const char *s, size_t len)
{
    while (len > 0 && is_space((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space((unsigned char)s[len - 1]))
        len--;
    return xstrndup(s, len);
}

/* Split a logical line into tokens.  Returns 0 or -1 with why. */
static int tokenize(const char *path, int line, const char *s, struct tokens *t,
                    struct strbuf *why)
{
    size_t cap = 0;

    t->v = NULL;
    t->n = 0;
    for (;;) {
        const char *start;
        struct token tok;

        while (is_space((unsigned char)*s))
            s++;
        if (*s == 0)
            return 0;
        if (t->n >= MASTERCF_COLUMNS + MASTERCF_ARGS_MAX) {
            err_line(why, path, line, "too many command arguments");
            strbuf_appendf(why, " (limit %d)", MASTERCF_ARGS_MAX);
            tokens_free(t);
            return -1;
        }
        if (*s == '{') {
            int depth = 1;

            start = ++s;
            for (; *s && depth > 0; s++) {
                if (*s == '{' && ++depth > MASTERCF_GROUP_DEPTH)
                    break;
                if (*s == '}')
                    depth--;
            }
            if (depth != 0) {
                err_line(why, path, line, depth > MASTERCF_GROUP_DEPTH ?
                         "\"{\" groups nested too deeply" : "missing \"}\"");
                tokens_free(t);
                return -1;
            }
            if (*s && !is_space((unsigned char)*s)) {
                err_line(why, path, line, "text after \"}\": ");
                quote(why, s);
                tokens_free(t);
                return -1;
            }
            tok.text = trimmed_dup(start, (size_t)(s - 1 - start));
            tok.group = true;
        } else {
            start = s;
            while (*s && !is_space((unsigned char)*s))
                s++;
            tok.text = xstrndup(start, (size_t)(s - start));
            tok.group = false;
        }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 16;
            t->v = xreallocarray(t->v, cap, sizeof(*t->v));
        }
        t->v[t->n++] = tok;
    }
}

static int parse_bool(const char *path, int line, const char *col, const char *s,
                      bool def, bool *r, struct strbuf *why)
{
    if (strcmp(s, "-") == 0)
        *r = def;
    else if (strcmp(s, "y") == 0)
        *r = true;
    else if (strcmp(s, "n") == 0)
        *r = false;
    else {
        strbuf_printf(why, "%s, line %d: bad %s field ", path, line, col);
        quote(why, s);
        strbuf_append(why, ": expected y, n or -");
        return -1;
    }
    return 0;
}

/* Decimal number of at most max; returns -1 if not one. */
static long parse_number(const char *s, long max)
{
    long v = 0;

    if (*s == 0)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    return v;
}

static bool valid_chars(const char *s, const char *extra)
{
    if (*s == 0)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

static bool valid_port(const char *p)
{
    long n = parse_number(p, 65535);

    if (n > 0)
        return true;
    if (n == 0 || (*p >= '0' && *p <= '9'))
        return false;
    return strlen(p) <= 32 && valid_chars(p, "-_");
}

static bool valid_hostname(const char *h)
{
    size_t len = strlen(h);

    return len <= 253 && h[0] != '-' && h[0] != '.' && valid_chars(h, "-.");
}

/* inet service column: [host:]port, [v6]:port, *:port. */
static int parse_inet(const char *path, int line, struct mastercf_entry *e,
                      struct strbuf *why)
{
    const char *name = e->name;
    const char *colon;
    char *host = NULL;
    const char *port;
    unsigned char addr[16];

    if (name[0] == '[') {
        const char *close = strchr(name, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        host = xstrndup(name + 1, (size_t)(close - name - 1));
        if (inet_pton(AF_INET6, host, addr) != 1 && inet_pton(AF_INET, host, addr) != 1)
            goto bad;
        port = close + 2;
    } else if ((colon = strrchr(name, ':')) != NULL) {
        if (strchr(name, ':') != colon) {
            err_line(why, path, line, "bad inet address ");
            quote(why, name);
            strbuf_append(why, ": an IPv6 address must be written [addr]:port");
            return -1;
        }
        host = xstrndup(name, (size_t)(colon - name));
        if (strcmp(host, "*") == 0) {
            free(host);
            host = NULL;
        } else if (!valid_hostname(host)) {
            goto bad;
        }
        port = colon + 1;
    } else {
        port = name;
    }
    if (!valid_port(port))
        goto bad;
    e->host = host;
    e->port = xstrdup(port);
    return 0;

bad:
    free(host);
    err_line(why, path, line, "bad inet address ");
    quote(why, name);
    strbuf_append(why, ": expected port, host:port or [ipv6]:port");
    return -1;
}

/* "name=value" (group: white space around "=" and the value dropped). */
static int parse_override(const char *path, int line, const struct token *tok,
                          struct mastercf_entry *e, struct strbuf *why)
{
    const char *eq = strchr(tok->text, '=');
    char *name;
    const char *value;

    if (eq == NULL)
        goto bad;
    name = trimmed_dup(tok->text, (size_t)(eq - tok->text));
    if (!valid_chars(name, "_") || strlen(name) > MASTERCF_NAME_MAX) {
        free(name);
        goto bad;
    }
    value = eq + 1;
    if (tok->group)
        while (is_space((unsigned char)*value))
            value++;
    e->overrides[e->noverrides++] = xasprintf("%s=%s", name, value);
    free(name);
    return 0;

bad:
    err_line(why, path, line, "bad -o override ");
    quote(why, tok->text);
    strbuf_append(why, ": expected name=value");
    return -1;
}

static void entry_clear(struct mastercf_entry *e)
{
    free(e->name);
    free(e->host);
    free(e->port);
    free(e->command);
    for (size_t i = 0; i < e->nargs; i++)
        free(e->args[i]);
    free(e->args);
    for (size_t i = 0; i < e->noverrides; i++)
        free(e->overrides[i]);
    free(e->overrides);
    memset(e, 0, sizeof(*e));
}

static int parse_columns(const char *path, int line, struct tokens *t,
                         struct mastercf_entry *e, struct strbuf *why)
{
    const char *type;
    long n;
    size_t i;

    memset(e, 0, sizeof(*e));
    e->line = line;
    for (i = 0; i < MASTERCF_COLUMNS; i++) {
        if (i >= t->n) {
            strbuf_printf(why, "%s, line %d: missing %s field", path, line, column_names[i]);
            return -1;
        }
        if (t->v[i].group) {
            strbuf_printf(why, "%s, line %d: \"{\" not allowed in the %s field",
                          path, line, column_names[i]);
            return -1;
        }
    }

    e->name = xstrdup(t->v[0].text);
    type = t->v[1].text;
    if (strcmp(type, "inet") == 0) {
        e->type = MASTERCF_INET;
        if (parse_inet(path, line, e, why) < 0)
            return -1;
    } else {
        if (strcmp(type, "unix") == 0)
            e->type = MASTERCF_UNIX;
        else if (strcmp(type, "pass") == 0)
            e->type = MASTERCF_PASS;
        else if (strcmp(type, "fifo") == 0)
            e->type = MASTERCF_FIFO;
        else {
            err_line(why, path, line, "bad type ");
            quote(why, type);
            strbuf_append(why, ": expected inet, unix, pass or fifo");
            return -1;
        }
        if (strlen(e->name) > MASTERCF_NAME_MAX || e->name[0] == '.' ||
            !valid_chars(e->name, "-_.")) {
            err_line(why, path, line, "bad service name ");
            quote(why, e->name);
            strbuf_append(why, ": letters, digits, \"-\", \"_\" and \".\" only");
            return -1;
        }
    }

    if (parse_bool(path, line, "private", t->v[2].text, e->type != MASTERCF_INET,
                   &e->is_private, why) < 0)
        return -1;
    if (e->type == MASTERCF_INET && e->is_private) {
        err_line(why, path, line, "an inet service cannot be private");
        return -1;
    }
    if (parse_bool(path, line, "unpriv", t->v[3].text, true, &e->unpriv, why) < 0 ||
        parse_bool(path, line, "chroot", t->v[4].text, false, &e->chroot, why) < 0)
        return -1;

    if (strcmp(t->v[5].text, "-") != 0) {
        char *w = t->v[5].text;
        size_t wl = strlen(w);
        if (wl > 1 && w[wl - 1] == '?') {
            e->wakeup_if_used = true;
            w[wl - 1] = 0;
        }
        if ((n = parse_number(w, MASTERCF_WAKEUP_MAX)) < 0) {
            if (e->wakeup_if_used)
                w[wl - 1] = '?';
            err_line(why, path, line, "bad wakeup field ");
            quote(why, t->v[5].text);
            strbuf_appendf(why, ": expected seconds (at most %d), N? or -",
                           MASTERCF_WAKEUP_MAX);
            return -1;
        }
        e->wakeup = (int)n;
    }

    e->maxproc = -1;
    if (strcmp(t->v[6].text, "-") != 0) {
        if ((n = parse_number(t->v[6].text, MASTERCF_MAXPROC_MAX)) < 0) {
            err_line(why, path, line, "bad maxproc field ");
            quote(why, t->v[6].text);
            strbuf_appendf(why, ": expected a number from 0 to %d or -",
                           MASTERCF_MAXPROC_MAX);
            return -1;
        }
        e->maxproc = (int)n;
    }

    if (strlen(t->v[7].text) > MASTERCF_NAME_MAX || t->v[7].text[0] == '.' ||
        !valid_chars(t->v[7].text, "-_.")) {
        err_line(why, path, line, "bad command name ");
        quote(why, t->v[7].text);
        strbuf_append(why, ": a program name in daemon_directory, without \"/\"");
        return -1;
    }
    e->command = xstrdup(t->v[7].text);

    /* At most t->n - 8 of each; both arrays stay NULL-terminated. */
    e->args = xcalloc(t->n - MASTERCF_COLUMNS + 1, sizeof(char *));
    e->overrides = xcalloc(t->n - MASTERCF_COLUMNS + 1, sizeof(char *));
    for (i = MASTERCF_COLUMNS; i < t->n; i++) {
        const struct token *tok = &t->v[i];

        if (!tok->group && strcmp(tok->text, "-o") == 0) {
            if (++i >= t->n) {
                err_line(why, path, line, "-o without name=value");
                return -1;
            }
            if (parse_override(path, line, &t->v[i], e, why) < 0)
                return -1;
        } else if (!tok->group && strncmp(tok->text, "-o", 2) == 0) {
            struct token attached = { tok->text + 2, false };
            if (parse_override(path, line, &attached, e, why) < 0)
                return -1;
        } else {
            e->args[e->nargs++] = xstrdup(tok->text);
        }
    }
    return 0;
}

static int finish_entry(const char *path, int line, struct strbuf *logical,
                        struct mastercf *cf, size_t *cap, struct strbuf *why)
{
    struct tokens t;
    struct mastercf_entry e;
    int rc;

    if (tokenize(path, line, strbuf_str(logical), &t, why) < 0)
        return -1;
    rc = parse_columns(path, line, &t, &e, why);
    tokens_free(&t);
    if (rc < 0) {
        entry_clear(&e);
        return -1;
    }
    for (size_t i = 0; i < cf->count; i++) {
        if (cf->entries[i].type == e.type && strcmp(cf->entries[i].name, e.name) == 0) {
            strbuf_printf(why, "%s, line %d: duplicate service ", path, line);
            quote(why, e.name);
            strbuf_appendf(why, " type %s (first defined at line %d)",
                           mastercf_type_name(e.type), cf->entries[i].line);
            entry_clear(&e);
            return -1;
        }
    }
    if (cf->count >= MASTERCF_ENTRIES_MAX) {
        strbuf_printf(why, "%s, line %d: too many services (limit %d)", path, line,
                      MASTERCF_ENTRIES_MAX);
        entry_clear(&e);
        return -1;
    }
    if (cf->count == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        cf->entries = xreallocarray(cf->entries, *cap, sizeof(*cf->entries));
    }
    cf->entries[cf->count++] = e;
    return 0;
}

int mastercf_parse(const char *path, const char *data, size_t len,
                   struct mastercf **r, struct strbuf *why)
{
    struct mastercf *cf = xcalloc(1, sizeof(*cf));
    struct strbuf *logical = strbuf_new(256);
    size_t cap = 0, pos = 0;
    int line = 0, entry_line = 0;
    bool have = false;

    *r = NULL;
    cf->path = xstrdup(path);
    strbuf_set_max(logical, MASTERCF_ENTRY_MAX);
    if (len > MASTERCF_FILE_MAX) {
        strbuf_printf(why, "%s: file too large (limit %d bytes)", path, MASTERCF_FILE_MAX);
        goto fail;
    }
    while (pos < len) {
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        size_t i = 0;

        pos += n + (nl != NULL);
        line++;
        if (n > MASTERCF_LINE_MAX) {
            strbuf_printf(why, "%s, line %d: line too long (limit %d bytes)", path, line,
                          MASTERCF_LINE_MAX);
            goto fail;
        }
        if (memchr(p, 0, n) != NULL) {
            err_line(why, path, line, "NUL byte in line");
            goto fail;
        }
        while (i < n && is_space((unsigned char)p[i]))
            i++;
        if (i == n || p[i] == '#')
            continue;                       /* blank or comment line */
        if (i > 0) {
            if (!have) {
                err_line(why, path, line, "continuation line without a service entry");
                goto fail;
            }
            if (strbuf_appendc(logical, ' ') < 0 || strbuf_appendn(logical, p + i, n - i) < 0) {
                strbuf_printf(why, "%s, line %d: entry too long (limit %d bytes)", path,
                              entry_line, MASTERCF_ENTRY_MAX);
                goto fail;
            }
            continue;
        }
        if (have && finish_entry(path, entry_line, logical, cf, &cap, why) < 0)
            goto fail;
        strbuf_setn(logical, p, n);
        entry_line = line;
        have = true;
    }
    if (have && finish_entry(path, entry_line, logical, cf, &cap, why) < 0)
        goto fail;
    strbuf_free(&logical);
    *r = cf;
    return 0;

fail:
    strbuf_free(&logical);
    mastercf_free(&cf);
    return -1;
}

int mastercf_load(const char *path, struct mastercf **r, struct strbuf *why)
{
    struct strbuf *data;
    struct stat st;
    char buf[8192];
    ssize_t n;
    int fd, rc;

    *r = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        strbuf_printf(why, "%s: open: %m", path);
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        strbuf_printf(why, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    data = strbuf_new((size_t)st.st_size < MASTERCF_FILE_MAX ? (size_t)st.st_size : 0);
    strbuf_set_max(data, MASTERCF_FILE_MAX);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            strbuf_printf(why, "%s: read: %m", path);
            goto fail;
        }
        if (strbuf_appendn(data, buf, (size_t)n) < 0) {
            strbuf_printf(why, "%s: file too large (limit %d bytes)", path, MASTERCF_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    rc = mastercf_parse(path, strbuf_str(data), strbuf_len(data), r, why);
    strbuf_free(&data);
    return rc;

fail:
    close(fd);
    strbuf_free(&data);
    return -1;
}

void mastercf_free(struct mastercf **cfp)
{
    struct mastercf *cf;

    if (cfp == NULL || (cf = *cfp) == NULL)
        return;
    for (size_t i = 0; i < cf->count; i++)
        entry_clear(&cf->entries[i]);
    free(cf->entries);
    free(cf->path);
    free(cf);
    *cfp = NULL;
}

const struct mastercf_entry *mastercf_find(const struct mastercf *cf, const char *name,
                                           enum mastercf_type type)
{
    for (size_t i = 0; i < cf->count; i++)
        if (cf->entries[i].type == type && strcmp(cf->entries[i].name, name) == 0)
            return &cf->entries[i];
    return NULL;
}

static bool str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool vec_same(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

bool mastercf_entry_same_listener(const struct mastercf_entry *a,
                                  const struct mastercf_entry *b)
{
    return a->type == b->type && strcmp(a->name, b->name) == 0 &&
           str_same(a->host, b->host) && str_same(a->port, b->port) &&
           a->is_private == b->is_private;
}

bool mastercf_entry_same(const struct mastercf_entry *a, const struct mastercf_entry *b)
{
    return mastercf_entry_same_listener(a, b) && a->unpriv == b->unpriv &&
           a->chroot == b->chroot && a->wakeup == b->wakeup &&
           a->wakeup_if_used == b->wakeup_if_used && a->maxproc == b->maxproc &&
           strcmp(a->command, b->command) == 0 &&
           vec_same(a->args, a->nargs, b->args, b->nargs) &&
           vec_same(a->overrides, a->noverrides, b->overrides, b->noverrides);
}

const char *mastercf_type_name(enum mastercf_type type)
{
    switch (type) {
    case MASTERCF_INET: return "inet";
    case MASTERCF_UNIX: return "unix";
    case MASTERCF_PASS: return "pass";
    case MASTERCF_FIFO: return "fifo";
    }
    return "unknown";
}
