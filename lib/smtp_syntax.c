/*
 * smtp_syntax.c - RFC 5321 command lines, paths and ESMTP parameters.
 *
 * Owns the verb table and the server-side parsers smtpd and lmtpd call for
 * every command; the reply side of smtp_syntax.h (the reply table and the
 * client's reply parser) is in smtp_reply.c.
 *
 * Trust: every byte parsed here comes from a network peer.  Nothing is
 * read past the length given, every item has a bound (see smtp_syntax.h),
 * and nothing here logs or exits: errors come back as a reply id and a
 * short text in `why` for the caller's log line.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_syntax.h"

/* ------------------------------------------------------------------ */
/* Lines and commands.                                                 */

enum smtp_find_status smtp_line_find(const char *buf, size_t len, size_t max, size_t *len_r)
{
    size_t scan = len < max ? len : max;
    const char *nl = memchr(buf, '\n', scan);

    if (nl != NULL) {
        *len_r = (size_t)(nl - buf) + 1;
        return SMTP_FIND_LINE;
    }
    *len_r = 0;
    return len >= max ? SMTP_FIND_TOOLONG : SMTP_FIND_NEED_MORE;
}

enum smtp_line_status smtp_line_check(const char *line, size_t len, size_t *content_len_r)
{
    enum smtp_line_status st;
    size_t clen;

    if (len == 0 || line[len - 1] != '\n') {
        st = SMTP_LINE_NO_EOL;
        clen = len;
    } else if (len >= 2 && line[len - 2] == '\r') {
        st = SMTP_LINE_CRLF;
        clen = len - 2;
    } else {
        st = SMTP_LINE_BARE_LF;
        clen = len - 1;
    }
    *content_len_r = clen;
    if (memchr(line, 0, clen) != NULL)
        return SMTP_LINE_NUL;
    if (memchr(line, '\r', clen) != NULL)
        return SMTP_LINE_BARE_CR;
    return st;
}

static const struct {
    const char *name;
    int args;
} verb_table[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = {"", 0},
    [SMTP_VERB_HELO] = {"HELO", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_EHLO] = {"EHLO", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_LHLO] = {"LHLO", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_MAIL] = {"MAIL", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_RCPT] = {"RCPT", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_DATA] = {"DATA", SMTP_ARGS_NONE},
    [SMTP_VERB_BDAT] = {"BDAT", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_RSET] = {"RSET", SMTP_ARGS_NONE},
    [SMTP_VERB_NOOP] = {"NOOP", SMTP_ARGS_OPTIONAL},
    [SMTP_VERB_QUIT] = {"QUIT", SMTP_ARGS_NONE},
    [SMTP_VERB_VRFY] = {"VRFY", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_EXPN] = {"EXPN", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_HELP] = {"HELP", SMTP_ARGS_OPTIONAL},
    [SMTP_VERB_STARTTLS] = {"STARTTLS", SMTP_ARGS_NONE},
    [SMTP_VERB_AUTH] = {"AUTH", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_XCLIENT] = {"XCLIENT", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_XFORWARD] = {"XFORWARD", SMTP_ARGS_REQUIRED},
    [SMTP_VERB_ETRN] = {"ETRN", SMTP_ARGS_REQUIRED},
};

const char *smtp_verb_name(enum smtp_verb verb)
{
    if (verb <= SMTP_VERB_UNKNOWN || verb >= SMTP_VERB_COUNT)
        return NULL;
    return verb_table[verb].name;
}

enum smtp_verb smtp_verb_lookup(const char *name, size_t len)
{
    for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++)
        if (strlen(verb_table[v].name) == len && strncasecmp(verb_table[v].name, name, len) == 0)
            return (enum smtp_verb)v;
    return SMTP_VERB_UNKNOWN;
}

static bool is_alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

enum smtp_reply_id smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
                                  struct strbuf *why)
{
    size_t vlen = 0, a, e;

    cmd->verb = SMTP_VERB_UNKNOWN;
    cmd->name = "";
    cmd->args = line + len;
    cmd->args_len = 0;
    if (memchr(line, 0, len) != NULL) {
        strbuf_set(why, "NUL byte in command line");
        return SMTP_R_NUL_BYTE;
    }
    while (vlen < len && is_alpha((unsigned char)line[vlen]))
        vlen++;
    if (vlen == 0 || (vlen < len && line[vlen] != ' ' && line[vlen] != '\t')) {
        strbuf_set(why, len == 0 ? "empty command line" : "malformed command verb");
        return SMTP_R_BAD_CMD;
    }
    cmd->verb = smtp_verb_lookup(line, vlen);
    if (cmd->verb == SMTP_VERB_UNKNOWN) {
        strbuf_set(why, "unknown command");
        return SMTP_R_BAD_CMD;
    }
    cmd->name = verb_table[cmd->verb].name;
    for (a = vlen; a < len && (line[a] == ' ' || line[a] == '\t'); a++)
        ;
    for (e = len; e > a && (line[e - 1] == ' ' || line[e - 1] == '\t'); e--)
        ;
    cmd->args = line + a;
    cmd->args_len = e - a;
    if ((verb_table[cmd->verb].args & SMTP_ARGS_NONE) && cmd->args_len > 0) {
        strbuf_printf(why, "%s takes no argument", cmd->name);
        return SMTP_R_SYNTAX_ARGS;
    }
    if ((verb_table[cmd->verb].args & SMTP_ARGS_REQUIRED) && cmd->args_len == 0) {
        strbuf_printf(why, "%s needs an argument", cmd->name);
        return SMTP_R_SYNTAX_ARGS;
    }
    return SMTP_R_NONE;
}

enum smtp_reply_id smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r,
                                   bool *last_r, struct strbuf *why)
{
    uint64_t size = 0;
    size_t i = 0;

    while (i < len && is_digit((unsigned char)args[i])) {
        uint64_t d = (uint64_t)(args[i] - '0');
        if (i >= 20 || size > (UINT64_MAX - d) / 10) {
            strbuf_set(why, "BDAT chunk size too large");
            return SMTP_R_SYNTAX_ARGS;
        }
        size = size * 10 + d;
        i++;
    }
    if (i == 0) {
        strbuf_set(why, "BDAT needs a chunk size");
        return SMTP_R_SYNTAX_ARGS;
    }
    *last_r = false;
    if (i < len) {
        if (len - i != 5 || args[i] != ' ' || strncasecmp(args + i + 1, "LAST", 4) != 0) {
            strbuf_set(why, "malformed BDAT arguments");
            return SMTP_R_SYNTAX_ARGS;
        }
        *last_r = true;
    }
    *size_r = size;
    return SMTP_R_NONE;
}

bool smtp_line_is_http(const char *line, size_t len)
{
    static const char *const methods[] = {
        "GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ", "DELETE ", "PATCH ",
    };

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t n = strlen(methods[i]);
        if (len >= n && memcmp(line, methods[i], n) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Addresses.                                                          */

/* RFC 5322 atext, ASCII part. */
static bool is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong, surrogate, past U+10FFFF */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void smtp_addr_init(struct smtp_addr *addr)
{
    addr->local = strbuf_new(64);
    addr->domain = strbuf_new(64);
    addr->addr = strbuf_new(128);
    addr->flags = 0;
}

void smtp_addr_free(struct smtp_addr *addr)
{
    strbuf_free(&addr->local);
    strbuf_free(&addr->domain);
    strbuf_free(&addr->addr);
    addr->flags = 0;
}

static void addr_reset(struct smtp_addr *addr)
{
    strbuf_reset(addr->local);
    strbuf_reset(addr->domain);
    strbuf_reset(addr->addr);
    addr->flags = 0;
}

bool smtp_literal_valid(const char *s, size_t len, bool *ipv6_r)
{
    char tmp[64];
    unsigned char bin[16];
    bool v6 = false;

    if (len < 3 || s[0] != '[' || s[len - 1] != ']')
        return false;
    s++;
    len -= 2;
    if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
        v6 = true;
        s += 5;
        len -= 5;
    }
    if (len == 0 || len >= sizeof(tmp) || memchr(s, 0, len) != NULL)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    /* inet_pton is stricter than RFC 5321 nowhere that matters here and
     * rejects every General-address-literal, which we cannot route. */
    if (inet_pton(v6 ? AF_INET6 : AF_INET, tmp, bin) != 1)
        return false;
    if (ipv6_r != NULL)
        *ipv6_r = v6;
    return true;
}

bool smtp_domain_valid(const char *s, size_t len, bool utf8)
{
    size_t label = 0;

    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            /* empty label or a label ending in '-' */
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8 ? utf8_seq((const unsigned char *)s + i, len - i) : 0;
            if (n == 0)
                return false;
            i += n;
            label += n;
        } else if (is_alpha(c) || is_digit(c) || (c == '-' && label > 0)) {
            i++;
            label++;
        } else {
            return false;
        }
        if (label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

bool smtp_helo_valid(const char *args, size_t len, bool utf8)
{
    if (len > 0 && args[0] == '[')
        return smtp_literal_valid(args, len, NULL);
    return smtp_domain_valid(args, len, utf8);
}

/* Dot-string check of a local part (ASCII atext, UTF-8 allowed, '@'
 * allowed when at_ok); sets *flags for '%', '!', '@', 8-bit. */
static bool dot_string_valid(const char *s, size_t len, bool at_ok, unsigned *flags)
{
    bool prev_dot = true;

    if (len == 0 || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (prev_dot)
                return false;
            prev_dot = true;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)s + i, len - i);
            if (n == 0)
                return false;
            *flags |= SMTP_ADDR_8BIT;
            i += n;
        } else if (c == '@' && at_ok) {
            *flags |= SMTP_ADDR_LOCAL_AT;
            i++;
            /* each '@'-separated piece is a dot-string of its own */
            if (prev_dot || i == len || s[i] == '.')
                return false;
            prev_dot = true;
            continue;
        } else if (is_atext(c)) {
            if (c == '%')
                *flags |= SMTP_ADDR_PERCENT;
            else if (c == '!')
                *flags |= SMTP_ADDR_BANG;
            i++;
        } else {
            return false;
        }
        prev_dot = false;
    }
    return true;
}

/* Append local in external form: as is when a dot-string, else quoted. */
static void local_external(struct strbuf *out, const char *s, size_t len)
{
    unsigned dummy = 0;

    if (dot_string_valid(s, len, false, &dummy)) {
        strbuf_appendn(out, s, len);
        return;
    }
    strbuf_appendc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            strbuf_appendc(out, '\\');
        strbuf_appendc(out, s[i]);
    }
    strbuf_appendc(out, '"');
}

int smtp_mailbox_parse(const char *s, size_t len, int opts, struct smtp_addr *addr,
                       struct strbuf *why)
{
    size_t at, i;
    unsigned flags = 0;
    bool ipv6 = false;
    const char *dom;
    size_t dlen;

    strbuf_reset(addr->local);
    strbuf_reset(addr->domain);
    strbuf_reset(addr->addr);
    if (len == 0) {
        strbuf_set(why, "empty address");
        return -1;
    }
    if (s[0] == '"') {
        /* Quoted-string: qtextSMTP / quoted-pairSMTP, UTF-8 allowed */
        flags |= SMTP_ADDR_QUOTED;
        for (i = 1; i < len && s[i] != '"';) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\') {
                if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126) {
                    strbuf_set(why, "bad quoted pair in local part");
                    return -1;
                }
                strbuf_appendc(addr->local, s[i + 1]);
                i += 2;
            } else if (c >= 0x80) {
                size_t n = utf8_seq((const unsigned char *)s + i, len - i);
                if (n == 0) {
                    strbuf_set(why, "invalid UTF-8 in local part");
                    return -1;
                }
                flags |= SMTP_ADDR_8BIT;
                strbuf_appendn(addr->local, s + i, n);
                i += n;
            } else if (c >= 32 && c <= 126) {
                strbuf_appendc(addr->local, c);
                i++;
            } else {
                strbuf_set(why, "control character in quoted local part");
                return -1;
            }
            if (strbuf_len(addr->local) > SMTP_LOCAL_MAX) {
                strbuf_set(why, "local part too long");
                return -1;
            }
        }
        if (i >= len) {
            strbuf_set(why, "unterminated quoted local part");
            return -1;
        }
        at = i + 1;
        if (at >= len || s[at] != '@') {
            strbuf_set(why, "missing @domain after quoted local part");
            return -1;
        }
        const char *l = strbuf_str(addr->local);
        if (memchr(l, '@', strbuf_len(addr->local)) != NULL)
            flags |= SMTP_ADDR_LOCAL_AT;
        if (memchr(l, '%', strbuf_len(addr->local)) != NULL)
            flags |= SMTP_ADDR_PERCENT;
        if (memchr(l, '!', strbuf_len(addr->local)) != NULL)
            flags |= SMTP_ADDR_BANG;
    } else {
        const char *last = NULL;
        for (i = 0; i < len; i++)
            if (s[i] == '@')
                last = s + i;
        if (last == NULL) {
            strbuf_set(why, "missing @domain");
            return -1;
        }
        at = (size_t)(last - s);
        if (at > SMTP_LOCAL_MAX) {
            strbuf_set(why, "local part too long");
            return -1;
        }
        if (!dot_string_valid(s, at, !(opts & SMTP_OPT_STRICT), &flags)) {
            strbuf_set(why, "malformed local part");
            return -1;
        }
        if (flags & SMTP_ADDR_LOCAL_AT)
            flags |= SMTP_ADDR_LENIENT;
        strbuf_appendn(addr->local, s, at);
    }
    if ((opts & SMTP_OPT_STRICT) && strbuf_len(addr->local) > SMTP_LOCAL_STRICT_MAX) {
        strbuf_set(why, "local part longer than 64 octets");
        return -1;
    }
    dom = s + at + 1;
    dlen = len - at - 1;
    if (dlen > 0 && dom[0] == '[') {
        if (!smtp_literal_valid(dom, dlen, &ipv6)) {
            strbuf_set(why, "malformed address literal");
            return -1;
        }
        flags |= SMTP_ADDR_LITERAL | (ipv6 ? SMTP_ADDR_LITERAL6 : 0);
    } else {
        if (!smtp_domain_valid(dom, dlen, true)) {
            strbuf_set(why, "malformed domain");
            return -1;
        }
        for (i = 0; i < dlen; i++)
            if ((unsigned char)dom[i] >= 0x80)
                flags |= SMTP_ADDR_8BIT;
    }
    strbuf_appendn(addr->domain, dom, dlen);
    local_external(addr->addr, strbuf_str(addr->local), strbuf_len(addr->local));
    strbuf_appendc(addr->addr, '@');
    strbuf_appendn(addr->addr, dom, dlen);
    addr->flags |= flags;
    return 0;
}

/* Skip a source route "@a,@b:" at the start of s; returns the bytes it
 * takes (0 if none), or -1 if malformed. */
static long route_span(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || s[0] != '@')
        return 0;
    for (;;) {
        size_t start;
        if (i >= len || s[i] != '@')
            return -1;
        start = ++i;
        while (i < len && s[i] != ',' && s[i] != ':')
            i++;
        if (i >= len)
            return -1;
        bool v6;
        if (!smtp_domain_valid(s + start, i - start, true)
            && !smtp_literal_valid(s + start, i - start, &v6))
            return -1;
        if (s[i++] == ':')
            return (long)i;
    }
}

/* Parse the inside of a path (between < and >, or the bare lenient form). */
static int path_parse(const char *s, size_t len, bool is_rcpt, int opts,
                      struct smtp_addr *addr, struct strbuf *why)
{
    long r;

    if (len == 0) {
        if (is_rcpt) {
            strbuf_set(why, "null recipient address");
            return -1;
        }
        addr->flags |= SMTP_ADDR_NULL;
        return 0;
    }
    if (is_rcpt && len == 10 && strncasecmp(s, "postmaster", 10) == 0) {
        addr->flags |= SMTP_ADDR_POSTMASTER;
        strbuf_setn(addr->local, s, len);
        strbuf_set(addr->addr, "Postmaster");
        return 0;
    }
    r = route_span(s, len);
    if (r < 0) {
        strbuf_set(why, "malformed source route");
        return -1;
    }
    if (r > 0)
        addr->flags |= SMTP_ADDR_ROUTE;
    return smtp_mailbox_parse(s + r, len - (size_t)r, opts, addr, why);
}

/* End of the path that starts with '<' at s: index of the matching '>'
 * (quotes and quoted pairs respected), or -1. */
static long path_end(const char *s, size_t len)
{
    bool quoted = false;

    for (size_t i = 1; i < len; i++) {
        if (quoted && s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == '>') {
            return (long)i;
        } else if (!quoted && s[i] == '<') {
            return -1;
        }
    }
    return -1;
}

void smtp_params_init(struct smtp_params *p)
{
    memset(p, 0, sizeof(*p));
    p->envid = strbuf_new(32);
    p->auth = strbuf_new(32);
    p->orcpt_type = strbuf_new(16);
    p->orcpt = strbuf_new(64);
}

void smtp_params_reset(struct smtp_params *p)
{
    p->seen = 0;
    p->size = 0;
    p->body = SMTP_BODY_NONE;
    p->smtputf8 = false;
    p->ret = SMTP_RET_NONE;
    p->notify = 0;
    strbuf_reset(p->envid);
    strbuf_reset(p->auth);
    strbuf_reset(p->orcpt_type);
    strbuf_reset(p->orcpt);
}

void smtp_params_free(struct smtp_params *p)
{
    strbuf_free(&p->envid);
    strbuf_free(&p->auth);
    strbuf_free(&p->orcpt_type);
    strbuf_free(&p->orcpt);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int smtp_xtext_decode(const char *s, size_t len, struct strbuf *out, struct strbuf *why)
{
    strbuf_reset(out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            int hi, lo;
            if (i + 2 >= len) {
                strbuf_set(why, "truncated xtext escape");
                return -1;
            }
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) {
                strbuf_set(why, "bad xtext escape");
                return -1;
            }
            c = (unsigned char)(hi * 16 + lo);
            if (c < 32 || c == 127) {
                strbuf_set(why, "control character in xtext");
                return -1;
            }
            i += 2;
        } else if (c < '!' || c > '~' || c == '=') {
            strbuf_set(why, "bad character in xtext");
            return -1;
        }
        strbuf_appendc(out, c);
    }
    return 0;
}

void smtp_xtext_encode(const char *s, size_t len, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '!' || c > '~' || c == '+' || c == '=')
            strbuf_appendf(out, "+%02X", c);
        else
            strbuf_appendc(out, c);
    }
}

/* One parameter: keyword and value (value NULL if absent). */
static enum smtp_reply_id param_apply(const char *kw, size_t klen, const char *val, size_t vlen,
                                      bool has_val, bool is_rcpt, int opts,
                                      struct smtp_params *p, struct strbuf *why)
{
    unsigned bit = 0;
    int need = 0;
    static const struct {
        const char *name;
        unsigned bit;
        int opt;
        bool rcpt;
    } known[] = {
        {"SIZE", SMTP_PARAM_SIZE, SMTP_OPT_SIZE, false},
        {"BODY", SMTP_PARAM_BODY, SMTP_OPT_8BITMIME | SMTP_OPT_BINARYMIME, false},
        {"SMTPUTF8", SMTP_PARAM_SMTPUTF8, SMTP_OPT_SMTPUTF8, false},
        {"RET", SMTP_PARAM_RET, SMTP_OPT_DSN, false},
        {"ENVID", SMTP_PARAM_ENVID, SMTP_OPT_DSN, false},
        {"AUTH", SMTP_PARAM_AUTH, SMTP_OPT_AUTH, false},
        {"NOTIFY", SMTP_PARAM_NOTIFY, SMTP_OPT_DSN, true},
        {"ORCPT", SMTP_PARAM_ORCPT, SMTP_OPT_DSN, true},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].name) == klen && strncasecmp(known[i].name, kw, klen) == 0
            && known[i].rcpt == is_rcpt) {
            bit = known[i].bit;
            need = known[i].opt;
        }
    }
    if (bit == 0 || (opts & need) == 0) {
        strbuf_printf(why, "unsupported parameter \"%.*s\"", (int)(klen > 32 ? 32 : klen), kw);
        return SMTP_R_UNKNOWN_PARAM;
    }
    if (p->seen & bit) {
        strbuf_printf(why, "duplicate parameter %.*s", (int)klen, kw);
        return SMTP_R_SYNTAX_ARGS;
    }
    p->seen |= bit;
    if (bit == SMTP_PARAM_SMTPUTF8) {
        if (has_val) {
            strbuf_set(why, "SMTPUTF8 takes no value");
            return SMTP_R_SYNTAX_ARGS;
        }
        p->smtputf8 = true;
        return SMTP_R_NONE;
    }
    if (!has_val || vlen == 0) {
        strbuf_printf(why, "%.*s needs a value", (int)klen, kw);
        return SMTP_R_SYNTAX_ARGS;
    }
    switch (bit) {
    case SMTP_PARAM_SIZE:
        if (vlen > 20) {
            strbuf_set(why, "bad SIZE value");
            return SMTP_R_SYNTAX_ARGS;
        }
        p->size = 0;
        for (size_t i = 0; i < vlen; i++) {
            uint64_t d = (uint64_t)(val[i] - '0');
            if (!is_digit((unsigned char)val[i]) || p->size > (UINT64_MAX - d) / 10) {
                strbuf_set(why, "bad SIZE value");
                return SMTP_R_SYNTAX_ARGS;
            }
            p->size = p->size * 10 + d;
        }
        return SMTP_R_NONE;
    case SMTP_PARAM_BODY:
        if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
            p->body = SMTP_BODY_7BIT;
        else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0 && (opts & SMTP_OPT_8BITMIME))
            p->body = SMTP_BODY_8BITMIME;
        else if (vlen == 10 && strncasecmp(val, "BINARYMIME", 10) == 0 && (opts & SMTP_OPT_BINARYMIME))
            p->body = SMTP_BODY_BINARYMIME;
        else {
            strbuf_set(why, "unsupported BODY type");
            return SMTP_R_PARAM_NOT_IMPL;
        }
        return SMTP_R_NONE;
    case SMTP_PARAM_RET:
        if (vlen == 4 && strncasecmp(val, "FULL", 4) == 0)
            p->ret = SMTP_RET_FULL;
        else if (vlen == 4 && strncasecmp(val, "HDRS", 4) == 0)
            p->ret = SMTP_RET_HDRS;
        else {
            strbuf_set(why, "bad RET value");
            return SMTP_R_SYNTAX_ARGS;
        }
        return SMTP_R_NONE;
    case SMTP_PARAM_ENVID:
        if (smtp_xtext_decode(val, vlen, p->envid, why) < 0)
            return SMTP_R_SYNTAX_ARGS;
        if (strbuf_len(p->envid) > SMTP_ENVID_MAX) {
            strbuf_set(why, "ENVID too long");
            return SMTP_R_SYNTAX_ARGS;
        }
        return SMTP_R_NONE;
    case SMTP_PARAM_AUTH:
        if (smtp_xtext_decode(val, vlen, p->auth, why) < 0)
            return SMTP_R_SYNTAX_ARGS;
        if (strbuf_len(p->auth) > SMTP_ORCPT_MAX) {
            strbuf_set(why, "AUTH= value too long");
            return SMTP_R_SYNTAX_ARGS;
        }
        return SMTP_R_NONE;
    case SMTP_PARAM_NOTIFY: {
        size_t i = 0;
        while (i < vlen) {
            size_t j = i;
            unsigned f = 0;
            while (j < vlen && val[j] != ',')
                j++;
            if (j - i == 5 && strncasecmp(val + i, "NEVER", 5) == 0)
                f = SMTP_NOTIFY_NEVER;
            else if (j - i == 7 && strncasecmp(val + i, "SUCCESS", 7) == 0)
                f = SMTP_NOTIFY_SUCCESS;
            else if (j - i == 7 && strncasecmp(val + i, "FAILURE", 7) == 0)
                f = SMTP_NOTIFY_FAILURE;
            else if (j - i == 5 && strncasecmp(val + i, "DELAY", 5) == 0)
                f = SMTP_NOTIFY_DELAY;
            if (f == 0 || (p->notify & f) || (j == vlen - 1 && val[j] == ',')) {
                strbuf_set(why, "bad NOTIFY value");
                return SMTP_R_SYNTAX_ARGS;
            }
            p->notify |= f;
            i = j + 1;
        }
        /* RFC 3461 4.1: NEVER stands alone */
        if ((p->notify & SMTP_NOTIFY_NEVER) && p->notify != SMTP_NOTIFY_NEVER) {
            strbuf_set(why, "NOTIFY=NEVER combined with other values");
            return SMTP_R_SYNTAX_ARGS;
        }
        return SMTP_R_NONE;
    }
    case SMTP_PARAM_ORCPT: {
        const char *semi = memchr(val, ';', vlen);
        size_t tlen;
        if (semi == NULL || semi == val) {
            strbuf_set(why, "ORCPT needs addr-type;address");
            return SMTP_R_SYNTAX_ARGS;
        }
        tlen = (size_t)(semi - val);
        for (size_t i = 0; i < tlen; i++) {
            int c = (unsigned char)val[i];
            if (!is_alpha(c) && !is_digit(c) && c != '-') {
                strbuf_set(why, "bad ORCPT address type");
                return SMTP_R_SYNTAX_ARGS;
            }
        }
        if (tlen > 32) {
            strbuf_set(why, "bad ORCPT address type");
            return SMTP_R_SYNTAX_ARGS;
        }
        strbuf_setn(p->orcpt_type, val, tlen);
        if (smtp_xtext_decode(semi + 1, vlen - tlen - 1, p->orcpt, why) < 0)
            return SMTP_R_SYNTAX_ARGS;
        if (strbuf_len(p->orcpt) == 0 || strbuf_len(p->orcpt) > SMTP_ORCPT_MAX) {
            strbuf_set(why, "bad ORCPT address length");
            return SMTP_R_SYNTAX_ARGS;
        }
        return SMTP_R_NONE;
    }
    }
    log_panic("param_apply: unhandled parameter bit %u", bit);
}

static enum smtp_reply_id mail_rcpt_parse(const char *args, size_t len, bool is_rcpt, int opts,
                                          struct smtp_addr *addr, struct smtp_params *p,
                                          struct strbuf *why)
{
    const char *prefix = is_rcpt ? "TO:" : "FROM:";
    size_t plen = strlen(prefix), i, pstart, pend;
    enum smtp_reply_id bad = is_rcpt ? SMTP_R_BAD_RCPT_SYNTAX : SMTP_R_BAD_SENDER_SYNTAX;
    unsigned nparams = 0;
    bool utf8_ok;

    addr_reset(addr);
    smtp_params_reset(p);
    if (memchr(args, 0, len) != NULL) {
        strbuf_set(why, "NUL byte in command");
        return SMTP_R_SYNTAX_ARGS;
    }
    if (len < plen || strncasecmp(args, prefix, plen) != 0) {
        strbuf_printf(why, "expected %s<address>", prefix);
        return SMTP_R_SYNTAX_ARGS;
    }
    i = plen;
    if (i < len && args[i] == ' ') {
        if (opts & SMTP_OPT_STRICT) {
            strbuf_set(why, "space after colon");
            return bad;
        }
        addr->flags |= SMTP_ADDR_LENIENT;
        while (i < len && args[i] == ' ')
            i++;
    }
    if (i < len && args[i] == '<') {
        long e = path_end(args + i, len - i);
        if (e < 0) {
            strbuf_set(why, "unterminated <address>");
            return bad;
        }
        pstart = i + 1;
        pend = i + (size_t)e;
        i = pend + 1;
    } else {
        if (opts & SMTP_OPT_STRICT) {
            strbuf_set(why, "address not in <>");
            return bad;
        }
        pstart = i;
        while (i < len && args[i] != ' ')
            i++;
        pend = i;
        if (pend == pstart) {
            strbuf_set(why, "missing address");
            return bad;
        }
        addr->flags |= SMTP_ADDR_LENIENT;
    }
    if (i < len && args[i] != ' ') {
        strbuf_set(why, "garbage after address");
        return bad;
    }
    if (path_parse(args + pstart, pend - pstart, is_rcpt, opts, addr, why) < 0)
        return bad;

    /* ESMTP parameters: SP keyword ["=" value] ...; count them first so
     * that an over-long list is refused as such, whatever it holds */
    for (size_t j = i; j < len; j++)
        if (args[j] != ' ' && (j == i || args[j - 1] == ' '))
            nparams++;
    if (nparams > SMTP_PARAMS_MAX) {
        strbuf_set(why, "too many parameters");
        return SMTP_R_SYNTAX_ARGS;
    }
    while (i < len) {
        size_t k, ke, v, ve;
        bool has_val = false;
        enum smtp_reply_id r;

        while (i < len && args[i] == ' ')
            i++;
        if (i >= len)
            break;
        k = i;
        while (i < len && (is_alpha((unsigned char)args[i]) || is_digit((unsigned char)args[i])
                           || (args[i] == '-' && i > k)))
            i++;
        ke = i;
        if (ke == k || (i < len && args[i] != '=' && args[i] != ' ')) {
            strbuf_set(why, "malformed parameter keyword");
            return SMTP_R_SYNTAX_ARGS;
        }
        v = ve = i;
        if (i < len && args[i] == '=') {
            has_val = true;
            v = ++i;
            while (i < len && args[i] != ' ') {
                unsigned char c = (unsigned char)args[i];
                if (c < 33 || c > 126 || c == '=') {
                    strbuf_set(why, "bad character in parameter value");
                    return SMTP_R_SYNTAX_ARGS;
                }
                i++;
            }
            ve = i;
        }
        r = param_apply(args + k, ke - k, args + v, ve - v, has_val, is_rcpt, opts, p, why);
        if (r != SMTP_R_NONE)
            return r;
    }

    utf8_ok = is_rcpt ? (opts & SMTP_OPT_SMTPUTF8) != 0 : p->smtputf8;
    if ((addr->flags & SMTP_ADDR_8BIT) && !utf8_ok) {
        strbuf_set(why, "non-ASCII address without SMTPUTF8");
        return SMTP_R_NEED_SMTPUTF8;
    }
    return SMTP_R_NONE;
}

enum smtp_reply_id smtp_parse_mail(const char *args, size_t len, int opts,
                                   struct smtp_addr *addr, struct smtp_params *params,
                                   struct strbuf *why)
{
    return mail_rcpt_parse(args, len, false, opts, addr, params, why);
}

enum smtp_reply_id smtp_parse_rcpt(const char *args, size_t len, int opts,
                                   struct smtp_addr *addr, struct smtp_params *params,
                                   struct strbuf *why)
{
    return mail_rcpt_parse(args, len, true, opts, addr, params, why);
}

