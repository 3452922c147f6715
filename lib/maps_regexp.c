/*
 * maps_regexp.c - regexp: tables, POSIX regular expressions in Postfix
 * regexp_table(5) syntax.
 *
 *   /pattern/flags result       first matching rule wins
 *   !/pattern/flags result      matches when the pattern does not
 *   if /pattern/flags ... endif rules inside apply only if it matches
 *   $1..$9, ${n}, $(n), $$      substitution of parenthesised matches
 * Flags toggle: i (ignore case, on by default), x (extended syntax, on by
 * default), m (multi-line mode, REG_NEWLINE, off by default).  Logical
 * lines follow maps_text.c (white space at the start continues a line).
 *
 * The table file is the administrator's, but its errors must not take a
 * daemon down: every problem is reported as "file:line: ..." and the
 * table fails to open.  Bounds: MAP_LINE_MAX per line, REGEXP_PATTERN_MAX
 * per pattern, repetition counts at most 255 and an estimate of the
 * compiled size (glibc would otherwise build huge automata, see
 * regexp_check_cost), MAP_REGEXP_RULES_MAX rules, MAP_REGEXP_DEPTH_MAX
 * nested ifs.  Lookup keys are matched as given (no case folding here).
 */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

#define REGEXP_PATTERN_MAX 4096
#define REGEXP_REPEAT_MAX 255
#define REGEXP_REFS_MAX 99

enum regexp_kind { RULE_MATCH, RULE_IF, RULE_ENDIF };

struct regexp_rule {
    enum regexp_kind kind;
    bool negate;
    bool compiled;
    regex_t re;
    char *result;               /* RULE_MATCH */
    int max_ref;                /* highest $n in result; 0: none */
    size_t skip_to;             /* RULE_IF: index of its endif */
};

struct regexp_table {
    struct regexp_rule *rules;
    size_t count, alloc;
};

void map_regexp_free(void *p)
{
    struct regexp_table *t = p;

    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        if (t->rules[i].compiled)
            regfree(&t->rules[i].re);
        free(t->rules[i].result);
    }
    free(t->rules);
    free(t);
}

/* Check the $ syntax of a result; *max_ref_r gets the highest index. */
static const char *regexp_scan_result(const char *s, int *max_ref_r)
{
    long n;
    char close;

    *max_ref_r = 0;
    for (; *s; s++) {
        if (*s != '$')
            continue;
        s++;
        if (*s == '$')
            continue;
        close = *s == '{' ? '}' : *s == '(' ? ')' : 0;
        if (close)
            s++;
        if (!isdigit((unsigned char)*s))
            return *s == 0 || close || !(isalpha((unsigned char)*s)
                                         || *s == '_')
                ? "'$' not followed by a number (write $$ for a '$')"
                : "non-numeric replacement index";
        for (n = 0; isdigit((unsigned char)*s) && n <= REGEXP_REFS_MAX; s++)
            n = n * 10 + (*s - '0');
        if (n > REGEXP_REFS_MAX || n < 1)
            return "replacement index out of range";
        if (close) {
            if (*s != close)
                return "missing closing bracket after replacement index";
        } else if (isalpha((unsigned char)*s) || *s == '_') {
            return "non-numeric replacement index";
        } else {
            s--;
        }
        if (n > *max_ref_r)
            *max_ref_r = (int)n;
    }
    return NULL;
}

/*
 * glibc's regcomp() copies a subexpression once per repetition it may
 * need, so nested repetitions ("((a{1,255}){1,255}){1,255}", "a+++++...")
 * take exponential time and memory.  Estimate the size of the compiled
 * expression before compiling: every atom costs 1, times the factor of
 * each repetition around it ('*' and '?' 2, '+' 3, "{n,m}" max(n,m) + 1).
 * The estimate errs high; REGEXP_COST_MAX keeps regcomp under about 0.2 s.
 * In basic syntax (flag x) "\(", "\)", "\{", "\}", "\+", "\?" are the
 * operators; the plain characters are then literals, which only makes the
 * estimate higher.  The same walk refuses back-references (exponential
 * matching) and empty alternatives (see below).
 */
#define REGEXP_COST_MAX 10000
#define REGEXP_GROUPS_MAX 100

struct regexp_cost_frame {
    unsigned long total;        /* finished items of this group */
    unsigned long last;         /* the item a repetition would apply to */
};

static unsigned long regexp_mul(unsigned long a, unsigned long b)
{
    return a > REGEXP_COST_MAX || b > REGEXP_COST_MAX ? REGEXP_COST_MAX + 1
        : a * b;
}

/* Skip a bracket expression; p is at '['.  Returns the last ']' or NULL. */
static const char *regexp_skip_bracket(const char *p)
{
    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    for (; *p && *p != ']'; p++) {
        if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            char kind = p[1];
            const char *end = p + 2;
            while (*end && !(end[0] == kind && end[1] == ']'))
                end++;
            if (*end == 0)
                return NULL;
            p = end + 1;
        }
    }
    return *p == ']' ? p : NULL;
}

static const char *regexp_check_cost(const char *pat, bool extended)
{
    struct regexp_cost_frame stack[REGEXP_GROUPS_MAX + 1], *f = stack;
    unsigned long factor, group;
    const char *p;
    bool esc, alt_start = true;
    char c;

    f->total = f->last = 0;
    for (p = pat; *p; p++) {
        esc = *p == '\\' && p[1] != 0;
        c = esc ? *++p : *p;
        if (esc && c >= '1' && c <= '9')
            return "back-references (\\1 ... \\9) are not supported";
        if (!esc && c == '[') {
            const char *end = regexp_skip_bracket(p);
            if (end == NULL)
                return NULL;    /* regcomp reports the syntax error */
            p = end;
            c = 'a';            /* one atom */
        }
        /* Empty alternatives and groups ("a||b", "(|a)", "()") are
         * undefined in POSIX and send glibc's regexec into an endless
         * loop with some keys: refuse them. */
        if (esc != extended && (c == '|' || c == ')') && alt_start)
            return "empty alternative or group";
        alt_start = esc != extended && (c == '(' || c == '|');
        if (esc != extended && c == '(') {
            if (f - stack >= REGEXP_GROUPS_MAX)
                return "too many nested groups";
            f->total += f->last;
            f->last = 0;
            f++;
            f->total = f->last = 0;
        } else if (esc != extended && c == ')' && f > stack) {
            group = f->total + f->last;
            f--;
            f->total += f->last;
            f->last = group ? group : 1;
        } else if (esc != extended && c == '|') {
            f->total += f->last;
            f->last = 0;
        } else if ((!esc && c == '*') || (esc != extended && (c == '+'
                                                              || c == '?'))) {
            f->last = regexp_mul(f->last, c == '+' ? 3 : 2);
        } else if (esc != extended && c == '{') {
            factor = 0;
            for (int part = 0; part < 2; part++) {
                unsigned long n = 0;
                while (p[1] >= '0' && p[1] <= '9') {
                    n = n * 10 + (unsigned long)(*++p - '0');
                    if (n > REGEXP_REPEAT_MAX)
                        return "repetition count above 255";
                }
                if (n > factor)
                    factor = n;
                if (p[1] != ',')
                    break;
                p++;
            }
            f->last = regexp_mul(f->last, factor + 1);
        } else {
            f->total += f->last;
            f->last = 1;
        }
        if (f->total > REGEXP_COST_MAX || f->last > REGEXP_COST_MAX)
            return "pattern too complex (nested repetitions)";
    }
    if (f > stack)
        return NULL;            /* unbalanced: regcomp reports it */
    if (alt_start && *pat != 0)
        return "empty alternative or group";
    if (f->total + f->last > REGEXP_COST_MAX)
        return "pattern too complex (nested repetitions)";
    return NULL;
}

/* Parse "[!]<delim>pattern<delim>flags" at *pp into pat, rule->negate and
 * *cflags_r; leave *pp at the text after the flags and white space. */
static const char *regexp_split(const char **pp, struct regexp_rule *rule,
                                struct strbuf *pat, int *cflags_r)
{
    const char *p = *pp, *start;
    char delim;

    *cflags_r = REG_EXTENDED | REG_ICASE;
    if (*p == '!') {
        rule->negate = true;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    delim = *p;
    if (delim == 0 || isalnum((unsigned char)delim)
        || isspace((unsigned char)delim) || delim == '\\')
        return "expected /pattern/";
    start = ++p;
    while (*p && *p != delim) {
        if (*p == '\\' && p[1] != 0)
            p++;
        p++;
    }
    if (*p != delim)
        return "missing closing delimiter after pattern";
    if (p - start > REGEXP_PATTERN_MAX)
        return "pattern too long";
    strbuf_setn(pat, start, (size_t)(p - start));
    for (p++; *p && !isspace((unsigned char)*p); p++) {
        switch (*p) {
        case 'i':
            *cflags_r ^= REG_ICASE;
            break;
        case 'x':
            *cflags_r ^= REG_EXTENDED;
            break;
        case 'm':
            *cflags_r ^= REG_NEWLINE;
            break;
        default:
            return "unknown flag after pattern (expected i, x or m)";
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    *pp = p;
    return regexp_check_cost(strbuf_str(pat),
                             (*cflags_r & REG_EXTENDED) != 0);
}

/* Compile pat into rule->re; the message goes to why. */
static const char *regexp_compile(struct regexp_rule *rule,
                                  const struct strbuf *pat, int cflags,
                                  struct strbuf *why)
{
    char msg[256];
    int rc;

    if (rule->kind == RULE_IF || rule->max_ref == 0)
        cflags |= REG_NOSUB;
    if ((rc = regcomp(&rule->re, strbuf_str(pat), cflags)) != 0) {
        regerror(rc, &rule->re, msg, sizeof(msg));
        strbuf_printf(why, "bad regular expression /%s/: %s",
                      strbuf_str(pat), msg);
        return strbuf_str(why);
    }
    rule->compiled = true;
    return NULL;
}

/* True if line starts with the keyword word (any case), as Postfix. */
static bool regexp_keyword(const char *line, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(line, word, n) == 0
        && !isalnum((unsigned char)line[n]) && line[n] != '_';
}

/* Parse one logical line into a new rule; errors without file:line. */
static const char *regexp_line(struct regexp_table *t, const char *line,
                               size_t *stack, size_t *depth,
                               struct strbuf *pat, struct strbuf *why)
{
    struct regexp_rule *rule;
    const char *p = line, *err;
    int cflags;

    if (t->count >= MAP_REGEXP_RULES_MAX)
        return "too many rules";
    if (t->count == t->alloc) {
        t->alloc = t->alloc ? t->alloc * 2 : 16;
        t->rules = xreallocarray(t->rules, t->alloc, sizeof(*t->rules));
    }
    rule = &t->rules[t->count];
    memset(rule, 0, sizeof(*rule));

    if (regexp_keyword(p, "endif")) {
        for (p += 5; isspace((unsigned char)*p); p++)
            ;
        if (*p != 0)
            return "text after endif";
        if (*depth == 0)
            return "endif without if";
        rule->kind = RULE_ENDIF;
        t->rules[stack[--*depth]].skip_to = t->count;
        t->count++;
        return NULL;
    }
    if (regexp_keyword(p, "if")) {
        if (*depth >= MAP_REGEXP_DEPTH_MAX)
            return "if nested too deeply";
        rule->kind = RULE_IF;
        for (p += 2; isspace((unsigned char)*p); p++)
            ;
        if ((err = regexp_split(&p, rule, pat, &cflags)) != NULL)
            return err;
        if (*p != 0)
            return "text after if pattern";
        if ((err = regexp_compile(rule, pat, cflags, why)) != NULL)
            return err;
        t->count++;
        stack[(*depth)++] = t->count - 1;
        return NULL;
    }

    rule->kind = RULE_MATCH;
    if ((err = regexp_split(&p, rule, pat, &cflags)) != NULL)
        return err;
    if (*p == 0)
        return "missing result after pattern";
    if ((err = regexp_scan_result(p, &rule->max_ref)) != NULL)
        return err;
    if (rule->negate && rule->max_ref > 0)
        return "$number in the result of a negated pattern";
    if ((err = regexp_compile(rule, pat, cflags, why)) != NULL)
        return err;
    t->count++;
    if ((size_t)rule->max_ref > rule->re.re_nsub)
        return "replacement index out of range";
    rule->result = xstrdup(p);
    return NULL;
}

void *map_regexp_parse(const char *name, const char *data, size_t len,
                       struct strbuf *why)
{
    struct regexp_table *t = xcalloc(1, sizeof(*t));
    size_t stack[MAP_REGEXP_DEPTH_MAX], depth = 0;
    long stack_line[MAP_REGEXP_DEPTH_MAX];
    struct map_text_reader r;
    struct strbuf *line = strbuf_new(256), *err = strbuf_new(64);
    struct strbuf *pat = strbuf_new(64);
    const char *msg;
    long lineno;
    int rc;

    map_text_reader_init(&r, name, data, len);
    while ((rc = map_text_next_line(&r, line, &lineno, why)) > 0) {
        size_t before = depth;
        if ((msg = regexp_line(t, strbuf_str(line), stack, &depth, pat, err))
            != NULL) {
            strbuf_printf(why, "%s:%ld: %s", name, lineno, msg);
            rc = -1;
            break;
        }
        if (depth > before)
            stack_line[depth - 1] = lineno;
    }
    if (rc == 0 && depth > 0) {
        strbuf_printf(why, "%s:%ld: if without endif", name,
                      stack_line[depth - 1]);
        rc = -1;
    }
    strbuf_free(&line);
    strbuf_free(&err);
    strbuf_free(&pat);
    if (rc < 0) {
        map_regexp_free(t);
        return NULL;
    }
    return t;
}

/* Expand $n in rule->result with the matches of key. */
static void regexp_expand(const struct regexp_rule *rule, const char *key,
                          const regmatch_t *m, struct strbuf *out)
{
    const char *s = rule->result;
    char close;
    int n;

    strbuf_reset(out);
    for (; *s; s++) {
        if (*s != '$') {
            strbuf_appendc(out, *s);
            continue;
        }
        s++;
        if (*s == '$') {
            strbuf_appendc(out, '$');
            continue;
        }
        /* The syntax was checked at parse time. */
        close = *s == '{' || *s == '(';
        if (close)
            s++;
        for (n = 0; isdigit((unsigned char)*s); s++)
            n = n * 10 + (*s - '0');
        if (!close)
            s--;
        if (m[n].rm_so >= 0 && m[n].rm_eo >= m[n].rm_so)
            strbuf_appendn(out, key + m[n].rm_so,
                           (size_t)(m[n].rm_eo - m[n].rm_so));
    }
}

int map_regexp_match(void *rules, const char *key, struct strbuf *value_r,
                     struct strbuf *why)
{
    struct regexp_table *t = rules;
    regmatch_t m[REGEXP_REFS_MAX + 1];
    size_t i = 0;

    while (i < t->count) {
        struct regexp_rule *rule = &t->rules[i];
        size_t nmatch = rule->kind == RULE_MATCH && rule->max_ref > 0
            ? (size_t)rule->max_ref + 1 : 0;
        bool hit;

        if (rule->kind == RULE_ENDIF) {
            i++;
            continue;
        }
        hit = (regexec(&rule->re, key, nmatch, nmatch ? m : NULL, 0) == 0)
            != rule->negate;
        if (rule->kind == RULE_IF) {
            i = hit ? i + 1 : rule->skip_to + 1;
            continue;
        }
        if (hit) {
            if (rule->max_ref > 0)
                regexp_expand(rule, key, m, value_r);
            else
                strbuf_set(value_r, rule->result);
            return MAP_FOUND;
        }
        i++;
    }
    return MAP_NOTFOUND;
}

static int regexp_open(struct map *m, struct strbuf *why)
{
    struct strbuf *buf = strbuf_new(4096);

    if (map_read_file(m->name, MAP_FILE_MAX, buf, why) == 0)
        m->priv = map_regexp_parse(m->name, strbuf_str(buf), strbuf_len(buf),
                                   why);
    strbuf_free(&buf);
    return m->priv ? 0 : -1;
}

static int regexp_lookup(struct map *m, const char *key,
                         struct strbuf *value_r, struct strbuf *why)
{
    return map_regexp_match(m->priv, key, value_r, why);
}

static void regexp_close(struct map *m)
{
    map_regexp_free(m->priv);
}

const struct map_ops map_ops_regexp = {
    .type = "regexp",
    .fixed = false,
    .open = regexp_open,
    .lookup = regexp_lookup,
    .iterate = NULL,
    .close = regexp_close,
};
