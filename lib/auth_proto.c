/*
 * auth_proto.c - Dovecot authentication protocol lines: parse and format.
 *
 * authd parses every line a client sends with auth_proto_parse and the
 * typed helpers below; auth_client parses authd's answers the same way.
 * Input is untrusted: the line length, the argument count and every escape
 * are checked, and a request that fails a check is refused as a whole
 * (the caller answers FAIL), never half-used.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth_proto.h"
#include "mem.h"

long auth_proto_unescape(char *s)
{
    char *r = s, *w = s;

    while (*r) {
        if (*r != '\001') {
            *w++ = *r++;
            continue;
        }
        switch (r[1]) {
        case '1': *w++ = '\001'; break;
        case 't': *w++ = '\t'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        default: return -1;     /* NUL ('0'), end of string, unknown */
        }
        r += 2;
    }
    *w = 0;
    return (long)(w - s);
}

void auth_proto_escape(struct strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\001': strbuf_appendn(out, "\0011", 2); break;
        case '\t': strbuf_appendn(out, "\001t", 2); break;
        case '\n': strbuf_appendn(out, "\001n", 2); break;
        case '\r': strbuf_appendn(out, "\001r", 2); break;
        case '\0': strbuf_appendn(out, "\0010", 2); break;
        default: strbuf_appendc(out, s[i]); break;
        }
    }
}

void auth_proto_line_free(struct auth_proto_line *l)
{
    free(l->buf);
    l->buf = NULL;
    l->argc = 0;
    l->argv[0] = NULL;
}

int auth_proto_parse(struct auth_proto_line *l, const char *line, size_t len,
                     struct strbuf *why)
{
    char *p;

    l->buf = NULL;
    l->argc = 0;
    l->argv[0] = NULL;
    if (len > AUTH_PROTO_LINE_MAX) {
        strbuf_printf(why, "line longer than %d bytes", AUTH_PROTO_LINE_MAX);
        return -1;
    }
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len == 0) {
        strbuf_set(why, "empty line");
        return -1;
    }
    if (memchr(line, '\0', len) != NULL || memchr(line, '\n', len) != NULL
        || memchr(line, '\r', len) != NULL) {
        strbuf_set(why, "NUL, CR or LF inside a line");
        return -1;
    }
    l->buf = xstrndup(line, len);
    for (p = l->buf;;) {
        char *tab = strchr(p, '\t');

        if (l->argc == AUTH_PROTO_ARGS_MAX) {
            strbuf_printf(why, "more than %d arguments", AUTH_PROTO_ARGS_MAX);
            goto fail;
        }
        if (tab)
            *tab = 0;
        if (auth_proto_unescape(p) < 0) {
            strbuf_set(why, "bad escape sequence");
            goto fail;
        }
        l->argv[l->argc++] = p;
        if (tab == NULL)
            break;
        p = tab + 1;
    }
    l->argv[l->argc] = NULL;
    if (l->argv[0][0] == 0) {
        strbuf_set(why, "empty command");
        goto fail;
    }
    return 0;
fail:
    auth_proto_line_free(l);
    return -1;
}

const char *auth_proto_param(const struct auth_proto_line *l, unsigned first,
                             const char *key)
{
    size_t klen = strlen(key);

    for (unsigned i = first; i < l->argc; i++) {
        const char *a = l->argv[i];
        if (strncmp(a, key, klen) == 0) {
            if (a[klen] == '=')
                return a + klen + 1;
            if (a[klen] == 0)
                return a + klen;
        }
    }
    return NULL;
}

int auth_proto_parse_id(const char *s, unsigned *id_r)
{
    unsigned long long v = 0;

    if (s[0] < '1' || s[0] > '9')
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s >= 10)
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 4294967295ULL)
        return -1;
    *id_r = (unsigned)v;
    return 0;
}

bool auth_proto_valid_ip(const char *s)
{
    unsigned char buf[16];

    if (s[0] == 0)
        return true;
    if (strlen(s) > 45)
        return false;
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool auth_proto_valid_user(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > AUTH_PROTO_USER_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ':' || *p == '/')
            return false;
    return true;
}

static bool valid_port(const char *s)
{
    size_t n = strlen(s);

    if (n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n == 0 || atoi(s) <= 65535;
}

static bool valid_token(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int auth_proto_parse_auth(const struct auth_proto_line *l, struct auth_proto_auth *a,
                          struct strbuf *why)
{
    const char *v;

    memset(a, 0, sizeof(*a));
    if (l->argc < 3 || strcmp(l->argv[0], "AUTH") != 0) {
        strbuf_set(why, "AUTH needs an id and a mechanism");
        return -1;
    }
    if (auth_proto_parse_id(l->argv[1], &a->id) < 0) {
        strbuf_set(why, "bad AUTH request id");
        return -1;
    }
    a->mech = l->argv[2];
    if (!valid_token(a->mech, 32)) {
        strbuf_set(why, "bad mechanism name");
        return -1;
    }
    a->service = auth_proto_param(l, 3, "service");
    if (a->service == NULL || !valid_token(a->service, 32)) {
        strbuf_set(why, "AUTH without a valid service=");
        return -1;
    }
    a->resp = auth_proto_param(l, 3, "resp");
    a->lip = (v = auth_proto_param(l, 3, "lip")) ? v : "";
    a->rip = (v = auth_proto_param(l, 3, "rip")) ? v : "";
    a->lport = (v = auth_proto_param(l, 3, "lport")) ? v : "";
    a->rport = (v = auth_proto_param(l, 3, "rport")) ? v : "";
    if (!auth_proto_valid_ip(a->lip) || !auth_proto_valid_ip(a->rip)) {
        strbuf_set(why, "lip or rip is not an IP address");
        return -1;
    }
    if (!valid_port(a->lport) || !valid_port(a->rport)) {
        strbuf_set(why, "lport or rport is not a port number");
        return -1;
    }
    a->secured = auth_proto_param(l, 3, "secured") != NULL;
    a->valid_client_cert = auth_proto_param(l, 3, "valid-client-cert") != NULL;
    a->nologin = auth_proto_param(l, 3, "nologin") != NULL;
    return 0;
}

int auth_proto_parse_cont(const struct auth_proto_line *l, unsigned *id_r,
                          const char **data_r, struct strbuf *why)
{
    if (l->argc < 2 || l->argc > 3 || strcmp(l->argv[0], "CONT") != 0) {
        strbuf_set(why, "CONT needs an id and data");
        return -1;
    }
    if (auth_proto_parse_id(l->argv[1], id_r) < 0) {
        strbuf_set(why, "bad CONT request id");
        return -1;
    }
    *data_r = l->argc == 3 ? l->argv[2] : "";
    return 0;
}

int auth_proto_parse_user(const struct auth_proto_line *l, unsigned *id_r,
                          const char **user_r, const char **service_r,
                          struct strbuf *why)
{
    const char *svc;

    if (l->argc < 3 || strcmp(l->argv[0], "USER") != 0) {
        strbuf_set(why, "USER needs an id and a user name");
        return -1;
    }
    if (auth_proto_parse_id(l->argv[1], id_r) < 0) {
        strbuf_set(why, "bad USER request id");
        return -1;
    }
    if (!auth_proto_valid_user(l->argv[2])) {
        strbuf_set(why, "bad user name");
        return -1;
    }
    *user_r = l->argv[2];
    svc = auth_proto_param(l, 3, "service");
    *service_r = svc && valid_token(svc, 32) ? svc : "";
    return 0;
}

void auth_proto_begin(struct strbuf *out, const char *cmd)
{
    strbuf_append(out, cmd);
}

void auth_proto_add(struct strbuf *out, const char *arg)
{
    strbuf_appendc(out, '\t');
    auth_proto_escape(out, arg, strlen(arg));
}

void auth_proto_add_kv(struct strbuf *out, const char *key, const char *value)
{
    strbuf_appendc(out, '\t');
    strbuf_append(out, key);
    strbuf_appendc(out, '=');
    auth_proto_escape(out, value, strlen(value));
}

void auth_proto_addf(struct strbuf *out, const char *fmt, ...)
{
    struct strbuf *tmp = strbuf_new(64);
    va_list ap;

    va_start(ap, fmt);
    strbuf_vappendf(tmp, fmt, ap);
    va_end(ap);
    strbuf_appendc(out, '\t');
    auth_proto_escape(out, strbuf_str(tmp), strbuf_len(tmp));
    strbuf_free(&tmp);
}

void auth_proto_end(struct strbuf *out)
{
    strbuf_appendc(out, '\n');
}
