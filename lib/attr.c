/*
 * attr.c - typed attribute lists: build, format, parse strictly, read.
 *
 * Owns struct attr_list and the wire format described in attr.h.  Used by
 * every daemon that talks to another over a UNIX socket (qmgr, smtp,
 * lmtpd, anvil, authd's userdb, trigger senders).
 *
 * Trust: the bytes come from another facteur process, which may be
 * compromised or buggy, so the parser checks everything against the
 * limits as it goes (a peer never makes it buffer more than the limits
 * allow) and never trusts a length before checking it.  One byte-driven
 * state machine serves both attr_parse() (buffered input of multi-client
 * daemons) and attr_read() (blocking streams, which it never reads past
 * the end marker, so pipelined messages stay in the stream).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "log.h"
#include "mem.h"

const struct attr_limits attr_default_limits = {
    .max_attrs = 64,
    .max_name = 64,
    .max_value = 65536,
    .max_message = 1 << 20,
};

#define ATTR_NUM_MAX 20     /* digits in a long or a length */

struct attr_item {
    char *name;
    enum attr_type type;
    long lval;
    char *val;              /* string or data, NUL-terminated */
    size_t len;
};

struct attr_list {
    struct attr_item *items;
    size_t count, size;
};

struct attr_list *attr_new(void)
{
    return xcalloc(1, sizeof(struct attr_list));
}

void attr_reset(struct attr_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].name);
        free(l->items[i].val);
    }
    l->count = 0;
}

void attr_free(struct attr_list **lp)
{
    if (lp == NULL || *lp == NULL)
        return;
    attr_reset(*lp);
    free((*lp)->items);
    free(*lp);
    *lp = NULL;
}

static bool attr_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static const struct attr_item *attr_find(const struct attr_list *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

/* Append without checks (the callers checked). */
static struct attr_item *attr_push(struct attr_list *l, const char *name, size_t nlen,
                                   enum attr_type type)
{
    struct attr_item *it;

    if (l->count == l->size) {
        l->size = l->size ? l->size * 2 : 8;
        l->items = xreallocarray(l->items, l->size, sizeof(*l->items));
    }
    it = &l->items[l->count++];
    it->name = xstrndup(name, nlen);
    it->type = type;
    it->lval = 0;
    it->val = NULL;
    it->len = 0;
    return it;
}

static struct attr_item *attr_add_checked(struct attr_list *l, const char *name, enum attr_type type)
{
    size_t n = strlen(name);

    if (n == 0 || n > attr_default_limits.max_name)
        log_panic("attr_add: bad attribute name length %zu", n);
    for (size_t i = 0; i < n; i++)
        if (!attr_name_char((unsigned char)name[i]))
            log_panic("attr_add: bad attribute name \"%s\"", name);
    if (attr_find(l, name) != NULL)
        log_panic("attr_add: duplicate attribute \"%s\"", name);
    return attr_push(l, name, n, type);
}

void attr_add_str(struct attr_list *l, const char *name, const char *value)
{
    struct attr_item *it = attr_add_checked(l, name, ATTR_STR);

    it->len = strlen(value);
    it->val = xstrndup(value, it->len);
}

void attr_add_long(struct attr_list *l, const char *name, long value)
{
    struct attr_item *it = attr_add_checked(l, name, ATTR_LONG);

    it->lval = value;
}

void attr_add_data(struct attr_list *l, const char *name, const void *data, size_t len)
{
    struct attr_item *it = attr_add_checked(l, name, ATTR_DATA);

    it->val = xmalloc(len + 1);
    if (len)
        memcpy(it->val, data, len);
    it->val[len] = 0;
    it->len = len;
}

size_t attr_count(const struct attr_list *l)
{
    return l->count;
}

const char *attr_name(const struct attr_list *l, size_t i)
{
    return i < l->count ? l->items[i].name : NULL;
}

enum attr_type attr_type_of(const struct attr_list *l, size_t i)
{
    return i < l->count ? l->items[i].type : (enum attr_type)0;
}

bool attr_has(const struct attr_list *l, const char *name)
{
    return attr_find(l, name) != NULL;
}

const char *attr_get_str(const struct attr_list *l, const char *name)
{
    const struct attr_item *it = attr_find(l, name);

    return it != NULL && it->type == ATTR_STR ? it->val : NULL;
}

int attr_get_long(const struct attr_list *l, const char *name, long *value_r)
{
    const struct attr_item *it = attr_find(l, name);

    if (it == NULL || it->type != ATTR_LONG)
        return -1;
    *value_r = it->lval;
    return 0;
}

const void *attr_get_data(const struct attr_list *l, const char *name, size_t *len_r)
{
    const struct attr_item *it = attr_find(l, name);

    if (it == NULL || it->type != ATTR_DATA)
        return NULL;
    *len_r = it->len;
    return it->val;
}

void attr_format(const struct attr_list *l, struct strbuf *out)
{
    for (size_t i = 0; i < l->count; i++) {
        const struct attr_item *it = &l->items[i];

        strbuf_appendc(out, (int)it->type);
        strbuf_appendn(out, it->name, strlen(it->name) + 1);
        switch (it->type) {
        case ATTR_STR:
            strbuf_appendn(out, it->val, it->len + 1);
            break;
        case ATTR_LONG:
            strbuf_appendf(out, "%ld", it->lval);
            strbuf_appendc(out, 0);
            break;
        case ATTR_DATA:
            strbuf_appendf(out, "%zu", it->len);
            strbuf_appendc(out, 0);
            strbuf_appendn(out, it->val, it->len);
            break;
        }
    }
    strbuf_appendc(out, 0);
}

int attr_write(struct stream *s, const struct attr_list *l)
{
    struct strbuf *buf = strbuf_new(256);
    int r;

    attr_format(l, buf);
    r = stream_write(s, strbuf_str(buf), strbuf_len(buf));
    strbuf_free(&buf);
    if (r < 0)
        return -1;
    r = stream_flush(s);
    return r == STREAM_AGAIN ? 0 : r;
}

static const char *attr_type_name(enum attr_type t)
{
    switch (t) {
    case ATTR_STR:
        return "string";
    case ATTR_LONG:
        return "long";
    case ATTR_DATA:
        return "data";
    }
    return "unknown";
}

int attr_check(const struct attr_list *l, const struct attr_spec *spec, struct strbuf *why)
{
    for (size_t i = 0; i < l->count; i++) {
        const struct attr_item *it = &l->items[i];
        const struct attr_spec *sp;

        for (sp = spec; sp->name != NULL; sp++)
            if (strcmp(sp->name, it->name) == 0)
                break;
        if (sp->name == NULL) {
            if (why != NULL)
                strbuf_printf(why, "unexpected attribute \"%s\"", it->name);
            return -1;
        }
        if (sp->type != it->type) {
            if (why != NULL)
                strbuf_printf(why, "attribute \"%s\": expected %s, got %s", it->name,
                              attr_type_name(sp->type), attr_type_name(it->type));
            return -1;
        }
    }
    for (const struct attr_spec *sp = spec; sp->name != NULL; sp++) {
        if (!(sp->flags & ATTR_OPTIONAL) && attr_find(l, sp->name) == NULL) {
            if (why != NULL)
                strbuf_printf(why, "missing attribute \"%s\"", sp->name);
            return -1;
        }
    }
    return 0;
}

/* The parser: fed bytes, it builds the list as attributes complete. */
enum attr_state { AP_TYPE, AP_NAME, AP_STR, AP_LONG, AP_DLEN, AP_DATA, AP_DONE };

struct attr_parser {
    const struct attr_limits *lim;
    struct attr_list *l;
    enum attr_state st;
    enum attr_type type;
    char name[256];         /* limits beyond this are clamped */
    size_t nlen;
    size_t name_max;
    struct strbuf *val;
    char num[ATTR_NUM_MAX + 2];
    size_t numlen;
    size_t need;            /* data bytes still to come */
    size_t total;           /* message bytes so far */
};

static void attr_parser_init(struct attr_parser *p, struct attr_list *l,
                             const struct attr_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = lim != NULL ? lim : &attr_default_limits;
    p->l = l;
    p->st = AP_TYPE;
    p->name_max = p->lim->max_name < sizeof(p->name) - 1 ? p->lim->max_name : sizeof(p->name) - 1;
    p->val = strbuf_new(64);
    attr_reset(l);
}

static void attr_parser_done(struct attr_parser *p)
{
    strbuf_free(&p->val);
}

/* How many bytes the parser can take without reading past the message. */
static size_t attr_parser_want(const struct attr_parser *p)
{
    return p->st == AP_DATA ? p->need : 1;
}

/* Parse an unsigned decimal without leading zeros; -1 if malformed. */
static int attr_parse_num(const char *s, size_t len, uintmax_t *v_r)
{
    uintmax_t v = 0;

    if (len == 0 || len > ATTR_NUM_MAX || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (UINTMAX_MAX - (uintmax_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uintmax_t)(s[i] - '0');
    }
    *v_r = v;
    return 0;
}

/* Finish the current attribute; -1 with why if its value is malformed. */
static int attr_parser_finish(struct attr_parser *p, struct strbuf *why)
{
    struct attr_item *it;
    uintmax_t v;

    switch (p->st) {
    case AP_STR:
    case AP_DATA:
        it = attr_push(p->l, p->name, p->nlen, p->type);
        it->len = strbuf_len(p->val);
        it->val = xmalloc(it->len + 1);
        memcpy(it->val, strbuf_str(p->val), it->len + 1);
        break;
    case AP_LONG: {
        bool neg = p->numlen > 0 && p->num[0] == '-';
        size_t off = neg ? 1 : 0;
        long lv;

        if (attr_parse_num(p->num + off, p->numlen - off, &v) < 0
            || (neg && v == 0)
            || (!neg && v > (uintmax_t)LONG_MAX)
            || (neg && v > (uintmax_t)LONG_MAX + 1)) {
            strbuf_printf(why, "attribute \"%s\": malformed or out-of-range long", p->name);
            return -1;
        }
        lv = neg ? (v == (uintmax_t)LONG_MAX + 1 ? LONG_MIN : -(long)v) : (long)v;
        it = attr_push(p->l, p->name, p->nlen, ATTR_LONG);
        it->lval = lv;
        break;
    }
    default:
        log_panic("attr_parser_finish: state %d", (int)p->st);
    }
    p->st = AP_TYPE;
    return 0;
}

/* Feed len bytes; *used_r says how many were taken.  Returns 1 when the
 * end marker was taken, 0 when all were taken and more are needed, -1
 * with why. */
static int attr_parser_feed(struct attr_parser *p, const char *buf, size_t len,
                            size_t *used_r, struct strbuf *why)
{
    const struct attr_limits *lim = p->lim;
    size_t i = 0;

    while (i < len) {
        if (p->st == AP_DATA) {
            size_t n = len - i < p->need ? len - i : p->need;
            if (p->total + n > lim->max_message)
                goto toobig;
            strbuf_appendn(p->val, buf + i, n);
            p->total += n;
            p->need -= n;
            i += n;
            if (p->need == 0 && attr_parser_finish(p, why) < 0)
                goto fail;
            continue;
        }
        unsigned char c = (unsigned char)buf[i++];
        if (++p->total > lim->max_message)
            goto toobig;
        switch (p->st) {
        case AP_TYPE:
            if (c == 0) {
                p->st = AP_DONE;
                *used_r = i;
                return 1;
            }
            if (c != ATTR_STR && c != ATTR_LONG && c != ATTR_DATA) {
                strbuf_printf(why, "attribute %zu: bad type byte 0x%02x", p->l->count + 1, c);
                goto fail;
            }
            if (p->l->count >= lim->max_attrs) {
                strbuf_printf(why, "more than %zu attributes", lim->max_attrs);
                goto fail;
            }
            p->type = (enum attr_type)c;
            p->nlen = 0;
            p->st = AP_NAME;
            break;
        case AP_NAME:
            if (c != 0) {
                if (!attr_name_char(c)) {
                    strbuf_printf(why, "attribute %zu: bad byte 0x%02x in name", p->l->count + 1, c);
                    goto fail;
                }
                if (p->nlen >= p->name_max) {
                    strbuf_printf(why, "attribute %zu: name longer than %zu bytes",
                                  p->l->count + 1, p->name_max);
                    goto fail;
                }
                p->name[p->nlen++] = (char)c;
                break;
            }
            if (p->nlen == 0) {
                strbuf_printf(why, "attribute %zu: empty name", p->l->count + 1);
                goto fail;
            }
            p->name[p->nlen] = 0;
            if (attr_find(p->l, p->name) != NULL) {
                strbuf_printf(why, "duplicate attribute \"%s\"", p->name);
                goto fail;
            }
            strbuf_reset(p->val);
            p->numlen = 0;
            p->st = p->type == ATTR_STR ? AP_STR : p->type == ATTR_LONG ? AP_LONG : AP_DLEN;
            break;
        case AP_STR:
            if (c == 0) {
                if (attr_parser_finish(p, why) < 0)
                    goto fail;
                break;
            }
            if (strbuf_len(p->val) >= lim->max_value) {
                strbuf_printf(why, "attribute \"%s\": value longer than %zu bytes", p->name,
                              lim->max_value);
                goto fail;
            }
            strbuf_appendc(p->val, c);
            break;
        case AP_LONG:
            if (c == 0) {
                if (attr_parser_finish(p, why) < 0)
                    goto fail;
                break;
            }
            if (!((c >= '0' && c <= '9') || (c == '-' && p->numlen == 0))
                || p->numlen > ATTR_NUM_MAX) {
                strbuf_printf(why, "attribute \"%s\": malformed or out-of-range long", p->name);
                goto fail;
            }
            p->num[p->numlen++] = (char)c;
            break;
        case AP_DLEN: {
            uintmax_t v;

            if (c != 0) {
                if (c < '0' || c > '9' || p->numlen >= ATTR_NUM_MAX) {
                    strbuf_printf(why, "attribute \"%s\": malformed data length", p->name);
                    goto fail;
                }
                p->num[p->numlen++] = (char)c;
                break;
            }
            if (attr_parse_num(p->num, p->numlen, &v) < 0) {
                strbuf_printf(why, "attribute \"%s\": malformed data length", p->name);
                goto fail;
            }
            if (v > lim->max_value) {
                strbuf_printf(why, "attribute \"%s\": value longer than %zu bytes", p->name,
                              lim->max_value);
                goto fail;
            }
            if (p->total + v > lim->max_message)
                goto toobig;
            p->need = (size_t)v;
            p->st = AP_DATA;
            if (p->need == 0 && attr_parser_finish(p, why) < 0)
                goto fail;
            break;
        }
        case AP_DATA:
        case AP_DONE:
            log_panic("attr_parser_feed: state %d", (int)p->st);
        }
    }
    *used_r = i;
    return 0;

toobig:
    strbuf_printf(why, "message longer than %zu bytes", lim->max_message);
fail:
    *used_r = i;
    attr_reset(p->l);
    return -1;
}

int attr_parse(const char *buf, size_t len, struct attr_list *l, const struct attr_spec *spec,
               const struct attr_limits *limits, size_t *consumed, struct strbuf *why)
{
    struct strbuf *scratch = why == NULL ? strbuf_new(64) : NULL;
    struct attr_parser p;
    size_t used = 0;
    int r;

    if (why == NULL)
        why = scratch;
    *consumed = 0;
    attr_parser_init(&p, l, limits);
    r = attr_parser_feed(&p, buf, len, &used, why);
    attr_parser_done(&p);
    if (r == 0) {
        attr_reset(l);
    } else if (r > 0 && spec != NULL && attr_check(l, spec, why) < 0) {
        attr_reset(l);
        r = -1;
    } else if (r > 0) {
        *consumed = used;
    }
    strbuf_free(&scratch);
    return r;
}

int attr_read(struct stream *s, struct attr_list *l, const struct attr_spec *spec,
              const struct attr_limits *limits, struct strbuf *why)
{
    struct strbuf *scratch = why == NULL ? strbuf_new(64) : NULL;
    struct attr_parser p;
    char buf[4096];
    size_t want, used;
    ssize_t n;
    int r = 0;

    if (why == NULL)
        why = scratch;
    attr_parser_init(&p, l, limits);
    while (r == 0) {
        want = attr_parser_want(&p);
        if (want > sizeof(buf))
            want = sizeof(buf);
        n = stream_read(s, buf, want);
        if (n == 0) {
            if (p.total == 0) {
                attr_parser_done(&p);
                strbuf_free(&scratch);
                return 0;
            }
            strbuf_printf(why, "connection closed inside a message after %zu bytes", p.total);
            r = -1;
            break;
        }
        if (n < 0) {
            strbuf_printf(why, "read: %s", n == STREAM_AGAIN ? "would block" : stream_strerror(s));
            r = -1;
            break;
        }
        r = attr_parser_feed(&p, buf, (size_t)n, &used, why);
    }
    attr_parser_done(&p);
    if (r > 0 && spec != NULL && attr_check(l, spec, why) < 0)
        r = -1;
    if (r < 0)
        attr_reset(l);
    strbuf_free(&scratch);
    return r;
}
