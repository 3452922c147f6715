/*
 * maps_text.c - text sources of lookup tables: logical lines, the postmap
 * "key value" format and the aliases(5) "name: value" format.
 *
 * Shared by texthash: (read at open), regexp: (logical lines only) and
 * facteur-map (building hash:/btree: tables).  The input is whatever an
 * administrator, or a careless script, left in the file: every line is
 * bounded by MAP_LINE_MAX, NUL bytes are refused, and every error names
 * the source and the line ("/etc/facteur/virtual:12: ...").  The parser
 * works on memory only; the callers read the file.
 */
#include <string.h>

#include "maps.h"
#include "strbuf.h"

#define IS_BLANK(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || \
                     (c) == '\f' || (c) == '\v' || (c) == '\n')

void map_text_reader_init(struct map_text_reader *r, const char *name,
                          const char *data, size_t len)
{
    r->name = name;
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->lineno = 0;
}

/* One physical line: [*start, *end) without the newline or a final CR. */
static void text_physical(struct map_text_reader *r, size_t *start,
                          size_t *end)
{
    const char *nl;

    *start = r->pos;
    nl = memchr(r->data + r->pos, '\n', r->len - r->pos);
    if (nl != NULL) {
        *end = (size_t)(nl - r->data);
        r->pos = *end + 1;
    } else {
        *end = r->len;
        r->pos = r->len;
    }
    r->lineno++;
    if (*end > *start && r->data[*end - 1] == '\r')
        (*end)--;
}

/* True if [start, end) is empty, white space only, or a comment. */
static int text_skippable(const char *p, size_t start, size_t end)
{
    while (start < end && IS_BLANK(p[start]))
        start++;
    return start == end || p[start] == '#';
}

int map_text_next_line(struct map_text_reader *r, struct strbuf *line,
                       long *lineno_r, struct strbuf *why)
{
    size_t start, end;
    int too_long = 0, has_nul = 0;

    strbuf_reset(line);
    *lineno_r = 0;
    while (r->pos < r->len) {
        /* A logical line ends where the next non-blank, non-comment line
         * starts with a non-blank character. */
        if (*lineno_r != 0) {
            char c = r->data[r->pos];
            if (c != '#' && !IS_BLANK(c))
                break;
        }
        text_physical(r, &start, &end);
        if (text_skippable(r->data, start, end))
            continue;
        if (*lineno_r == 0)
            *lineno_r = r->lineno;
        if (memchr(r->data + start, 0, end - start) != NULL)
            has_nul = 1;
        if (too_long || end - start > MAP_LINE_MAX - line->len)
            too_long = 1;
        else
            strbuf_appendn(line, r->data + start, end - start);
    }
    if (*lineno_r == 0)
        return 0;
    if (too_long) {
        strbuf_printf(why, "%s:%ld: line longer than %d bytes", r->name,
                      *lineno_r, MAP_LINE_MAX);
        strbuf_reset(line);
        return -1;
    }
    if (has_nul) {
        strbuf_printf(why, "%s:%ld: NUL byte in line", r->name, *lineno_r);
        strbuf_reset(line);
        return -1;
    }
    if (IS_BLANK(line->data[0])) {
        strbuf_printf(why, "%s:%ld: logical line must not start with "
                      "white space", r->name, *lineno_r);
        strbuf_reset(line);
        return -1;
    }
    strbuf_rtrim(line);
    return 1;
}

/* "key value": split line in place; NULL value if there is none. */
static int text_split_postmap(char *line, char **key_r, char **value_r)
{
    char *p = line;

    while (*p && !IS_BLANK(*p))
        p++;
    *key_r = line;
    if (*p == 0)
        return -1;
    *p++ = 0;
    while (*p && IS_BLANK(*p))
        p++;
    if (*p == 0)
        return -1;
    *value_r = p;
    return 0;
}

/* "name: value" or "\"quoted name\": value".  Unquotes the name in place.
 * Returns NULL or a constant error text. */
static const char *text_split_alias(char *line, char **key_r, char **value_r)
{
    char *p = line, *out, *name_end;

    if (*p == '"') {
        out = line;
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1] != 0)
                p++;
            *out++ = *p++;
        }
        if (*p != '"')
            return "unterminated quoted alias name";
        name_end = out;
        p++;
        while (*p && IS_BLANK(*p))
            p++;
        if (*p != ':')
            return "missing ':' after alias name";
    } else {
        while (*p && *p != ':' && !IS_BLANK(*p) && *p != '"')
            p++;
        name_end = p;
        while (*p && IS_BLANK(*p))
            p++;
        if (*p != ':')
            return strchr(p, ':') == NULL || *p == '"'
                ? "missing ':' after alias name"
                : "alias name with white space must be quoted";
    }
    *name_end = 0;
    if (name_end == line)
        return "empty alias name";
    p++;
    while (*p && IS_BLANK(*p))
        p++;
    if (*p == 0)
        return "missing alias value";
    *key_r = line;
    *value_r = p;
    return NULL;
}

long map_text_parse(const char *name, const char *data, size_t len,
                    int flags, map_text_fn *fn, void *ctx, struct strbuf *why)
{
    struct map_text_reader r;
    struct strbuf *line = strbuf_new(256);
    long lineno, count = 0;
    char *key, *value;
    const char *err;
    int rc;

    map_text_reader_init(&r, name, data, len);
    while ((rc = map_text_next_line(&r, line, &lineno, why)) > 0) {
        if (flags & MAP_FLAG_ALIASES) {
            if ((err = text_split_alias(line->data, &key, &value)) != NULL) {
                strbuf_printf(why, "%s:%ld: %s", name, lineno, err);
                rc = -1;
                break;
            }
        } else if (text_split_postmap(line->data, &key, &value) < 0) {
            strbuf_printf(why, "%s:%ld: expected format: key whitespace "
                          "value", name, lineno);
            rc = -1;
            break;
        }
        if (!(flags & MAP_FLAG_NOFOLD))
            map_fold(key);
        if (fn(key, value, lineno, ctx, why) < 0) {
            rc = -1;
            break;
        }
        count++;
    }
    strbuf_free(&line);
    return rc < 0 ? -1 : count;
}
