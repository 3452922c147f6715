/*
 * header.c - RFC 5322 header parser, address-list reader, Message-ID.
 *
 * Called by lib/cleanup (every message smtpd and pickup queue) and by
 * sendmail -t.  Input is untrusted message text: every length is checked
 * against the limits the caller gave (header.h), nothing is assumed about
 * the bytes (NUL, CR, 8-bit) beyond what the grammar needs, and the
 * parser never reads a descriptor.  Memory is one buffer for the pending
 * header, bounded by size_max.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header.h"
#include "mem.h"

enum parser_state { ST_START, ST_IN, ST_DONE };

struct header_parser {
    size_t size_max;
    size_t count_max;
    size_t count;
    enum parser_state state;
    int final;                  /* sticky result once ST_DONE */
    struct strbuf *pending;     /* the header being collected */
    bool have_pending;
};

struct header_parser *header_parser_new(size_t size_max, size_t count_max)
{
    struct header_parser *p = xcalloc(1, sizeof(*p));

    p->size_max = size_max ? size_max : 1;
    p->count_max = count_max;
    p->pending = strbuf_new(256);
    p->state = ST_START;
    return p;
}

void header_parser_free(struct header_parser **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    strbuf_free(&(*pp)->pending);
    free(*pp);
    *pp = NULL;
}

size_t header_parser_count(const struct header_parser *p)
{
    return p->count;
}

bool header_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > HEADER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch < 33 || ch > 126 || ch == ':')
            return false;
    }
    return true;
}

/* Length of the name if line starts a header ("Name:" or "Name :"), else 0. */
static size_t header_start(const char *line, size_t len, size_t *colon_r)
{
    size_t n = 0, i;

    while (n < len && n <= HEADER_NAME_MAX) {
        unsigned char ch = (unsigned char)line[n];

        if (ch < 33 || ch > 126 || ch == ':')
            break;
        n++;
    }
    if (n == 0 || n > HEADER_NAME_MAX)
        return 0;
    for (i = n; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    if (i >= len || line[i] != ':')
        return 0;
    *colon_r = i;
    return n;
}

static int finish(struct header_parser *p, int rc)
{
    p->state = ST_DONE;
    p->final = rc;
    p->have_pending = false;
    strbuf_reset(p->pending);
    return rc;
}

/* Hand the pending header to fn. */
static int deliver(struct header_parser *p, header_fn *fn, void *ctx)
{
    struct header h;
    size_t colon = 0;
    const char *raw = strbuf_str(p->pending);
    size_t raw_len = strbuf_len(p->pending);

    if (!p->have_pending)
        return 0;
    p->have_pending = false;
    h.raw = raw;
    h.raw_len = raw_len;
    h.name = raw;
    h.name_len = header_start(raw, raw_len, &colon);
    h.value = raw + colon + 1;
    h.value_len = raw_len - colon - 1;
    p->count++;
    if (fn != NULL && fn(&h, ctx) != 0)
        return finish(p, HEADER_STOPPED);
    return 0;
}

int header_parser_line(struct header_parser *p, const char *line, size_t len,
                       header_fn *fn, void *ctx)
{
    size_t colon;

    if (p->state == ST_DONE)
        return p->final;
    if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        /* A continuation: only after a header. */
        if (!p->have_pending) {
            int rc = deliver(p, fn, ctx);

            return rc != 0 ? rc : finish(p, HEADER_END);
        }
        if (strbuf_len(p->pending) + 1 + len > p->size_max)
            return finish(p, HEADER_TOOLONG);
        strbuf_appendc(p->pending, '\n');
        strbuf_appendn(p->pending, line, len);
        return HEADER_IN;
    }
    /* Anything else completes the pending header first. */
    if (deliver(p, fn, ctx) != 0)
        return p->final;
    if (len == 0 || header_start(line, len, &colon) == 0)
        return finish(p, HEADER_END);
    if (p->count_max > 0 && p->count >= p->count_max)
        return finish(p, HEADER_TOOMANY);
    if (len > p->size_max)
        return finish(p, HEADER_TOOLONG);
    strbuf_setn(p->pending, line, len);
    p->have_pending = true;
    p->state = ST_IN;
    return HEADER_IN;
}

int header_parser_finish(struct header_parser *p, header_fn *fn, void *ctx)
{
    if (p->state == ST_DONE)
        return p->final;
    if (deliver(p, fn, ctx) != 0)
        return p->final;
    return finish(p, HEADER_END);
}

bool header_name_is(const struct header *h, const char *name)
{
    size_t n = strlen(name);

    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

void header_value_unfold(const char *value, size_t len, struct strbuf *out)
{
    size_t start = 0, end = len;

    strbuf_reset(out);
    while (start < end && (value[start] == ' ' || value[start] == '\t' ||
                           value[start] == '\n' || value[start] == '\r'))
        start++;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t' ||
                           value[end - 1] == '\n' || value[end - 1] == '\r'))
        end--;
    for (size_t i = start; i < end; i++) {
        /* RFC 5322 unfolding removes the CRLF (here LF), keeps the WSP. */
        if (value[i] == '\n' || value[i] == '\r')
            continue;
        strbuf_appendc(out, value[i]);
    }
}

/* ---- Address lists. ---- */

struct addr_state {
    struct strbuf *text;        /* current address outside angles */
    struct strbuf *angle;       /* content of <...> */
    bool have_angle;
    size_t text_end;            /* offset after the address's last byte */
    size_t angle_end;           /* offset of the closing '>' */
    size_t count;
    size_t max_count;
    header_addr_fn *fn;
    header_addr_pos_fn *pos_fn;
    void *ctx;
};

/* Emit the current address (if any); -1 when a bound is hit or fn stops. */
static int addr_emit(struct addr_state *st)
{
    struct strbuf *a = st->have_angle ? st->angle : st->text;
    const char *s = strbuf_str(a);
    const char *colon;
    int rc = 0;

    /* Source route "@a,@b:user@dom": keep what follows the last ':'
     * outside quotes. */
    if (st->have_angle && s[0] == '@' && (colon = strrchr(s, ':')) != NULL)
        s = colon + 1;
    if (*s != '\0') {
        size_t end = st->have_angle ? st->angle_end : st->text_end;

        if (st->max_count > 0 && st->count >= st->max_count)
            rc = -1;
        else if (st->fn != NULL && st->fn(s, st->ctx) != 0)
            rc = -1;
        else if (st->pos_fn != NULL && st->pos_fn(s, end, st->ctx) != 0)
            rc = -1;
        else
            st->count++;
    }
    strbuf_reset(st->text);
    strbuf_reset(st->angle);
    st->have_angle = false;
    return rc;
}

static int addr_list(const char *value, size_t len, size_t max_count, header_addr_fn *fn,
                     header_addr_pos_fn *pos_fn, void *ctx)
{
    struct addr_state st = {
        .text = strbuf_new(64), .angle = strbuf_new(64),
        .max_count = max_count, .fn = fn, .pos_fn = pos_fn, .ctx = ctx,
    };
    bool in_angle = false;
    int rc = 0;

    /* Both buffers hold at most one address: a longer one is an error. */
    strbuf_set_max(st.text, HEADER_ADDR_MAX);
    strbuf_set_max(st.angle, HEADER_ADDR_MAX);
    for (size_t i = 0; i < len && rc == 0; i++) {
        char ch = value[i];
        struct strbuf *cur = in_angle ? st.angle : st.text;

        if (ch == '(') {
            /* Comment, nested, with quoted pairs: dropped. */
            int depth = 1;

            for (i++; i < len && depth > 0; i++) {
                if (value[i] == '\\' && i + 1 < len)
                    i++;
                else if (value[i] == '(')
                    depth++;
                else if (value[i] == ')')
                    depth--;
            }
            if (depth > 0)
                rc = -1;
            i--;
        } else if (ch == '"') {
            /* Quoted string, kept with its quotes (a quoted local part). */
            bool closed = false;

            rc = strbuf_appendc(cur, '"');
            for (i++; i < len && rc == 0; i++) {
                if (value[i] == '\\' && i + 1 < len) {
                    rc = strbuf_appendn(cur, value + i, 2);
                    i++;
                } else if (value[i] == '"') {
                    closed = true;
                    break;
                } else if (value[i] != '\n' && value[i] != '\r') {
                    rc = strbuf_appendc(cur, value[i]);
                }
            }
            if (rc == 0 && (!closed || strbuf_appendc(cur, '"') < 0))
                rc = -1;
            if (!in_angle && !st.have_angle)
                st.text_end = i + 1;
        } else if (ch == '<' && !in_angle) {
            /* The display name collected so far is not the address. */
            in_angle = true;
            st.have_angle = true;
            strbuf_reset(st.angle);
        } else if (ch == '>' && in_angle) {
            in_angle = false;
            st.angle_end = i;
        } else if (in_angle) {
            if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
                rc = strbuf_appendc(st.angle, ch);
        } else if (ch == ',' || ch == ';') {
            rc = addr_emit(&st);
        } else if (ch == ':') {
            /* Group "name: a, b;": the name is not an address. */
            strbuf_reset(st.text);
        } else if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            /* Text after an angle address is a stray phrase: ignored. */
            if (!st.have_angle) {
                rc = strbuf_appendc(st.text, ch);
                st.text_end = i + 1;
            }
        }
    }
    if (rc == 0 && in_angle)
        rc = -1;
    if (rc == 0)
        rc = addr_emit(&st);
    strbuf_free(&st.text);
    strbuf_free(&st.angle);
    return rc < 0 ? -1 : (int)st.count;
}

int header_addr_list(const char *value, size_t len, size_t max_count,
                     header_addr_fn *fn, void *ctx)
{
    return addr_list(value, len, max_count, fn, NULL, ctx);
}

int header_addr_list_pos(const char *value, size_t len, size_t max_count,
                         header_addr_pos_fn *fn, void *ctx)
{
    return addr_list(value, len, max_count, NULL, fn, ctx);
}

int header_msgid(const char *value, size_t len, struct strbuf *out)
{
    const char *lt = memchr(value, '<', len);
    const char *gt;

    strbuf_reset(out);
    if (lt == NULL)
        return -1;
    gt = memchr(lt, '>', len - (size_t)(lt - value));
    if (gt == NULL || gt == lt + 1 || (size_t)(gt - lt - 1) > HEADER_ADDR_MAX)
        return -1;
    for (const char *s = lt + 1; s < gt; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return -1;
    strbuf_setn(out, lt + 1, (size_t)(gt - lt - 1));
    return 0;
}
