/*
 * cidr.c - address and network parsing and matching (mynetworks).
 *
 * Owns struct cidr and struct cidr_list.  Called by smtpd_check (through
 * lib/restrict) for permit_mynetworks and by anything that matches a
 * client address against a network list.  Entries come from main.cf
 * (trusted but maybe mistyped: errors are reported, never guessed at);
 * addresses come from the kernel or from XCLIENT (untrusted: a string
 * that is not an address simply matches nothing).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "mem.h"

struct cidr_list {
    struct cidr *v;
    size_t n;
};

int cidr_addr_parse(const char *s, size_t len, int *family_r, unsigned char addr_r[16])
{
    char buf[INET6_ADDRSTRLEN + 8];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (strlen(buf) != len)
        return -1;                      /* NUL inside */
    memset(addr_r, 0, 16);
    if (strchr(buf, ':') == NULL) {
        if (inet_pton(AF_INET, buf, addr_r) != 1)
            return -1;
        *family_r = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, addr_r) != 1)
        return -1;
    if (memcmp(addr_r, mapped, sizeof(mapped)) == 0) {
        memmove(addr_r, addr_r + 12, 4);
        memset(addr_r + 4, 0, 12);
        *family_r = AF_INET;
        return 0;
    }
    *family_r = AF_INET6;
    return 0;
}

/* Parse the prefix digits; -1 if malformed or over max. */
static int cidr_prefix_parse(const char *s, size_t len, unsigned max, unsigned *prefix_r)
{
    unsigned v = 0;

    if (len == 0 || len > 3)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *prefix_r = v;
    return 0;
}

int cidr_parse(const char *s, size_t len, struct cidr *c, struct strbuf *why)
{
    const char *slash;
    size_t alen;
    unsigned bits;

    memset(c, 0, sizeof(*c));
    if (len > CIDR_ENTRY_MAX) {
        strbuf_printf(why, "network entry longer than %d bytes", CIDR_ENTRY_MAX);
        return -1;
    }
    if (len > 0 && s[0] == '!') {
        c->negate = true;
        s++;
        len--;
    }
    slash = memchr(s, '/', len);
    alen = slash ? (size_t)(slash - s) : len;
    if (cidr_addr_parse(s, alen, &c->family, c->addr) < 0) {
        strbuf_printf(why, "\"%.*s\" is not an IPv4 or IPv6 address or network",
                      (int)len, s);
        return -1;
    }
    bits = c->family == AF_INET ? 32 : 128;
    /* A mapped IPv6 prefix counts the 96 bits of ::ffff: in front. */
    if (slash && c->family == AF_INET && memchr(s, ':', alen)) {
        unsigned p;

        if (cidr_prefix_parse(slash + 1, len - alen - 1, 128, &p) < 0 || p < 96) {
            strbuf_printf(why, "bad prefix length in \"%.*s\"", (int)len, s);
            return -1;
        }
        c->prefix = p - 96;
    } else if (slash) {
        if (cidr_prefix_parse(slash + 1, len - alen - 1, bits, &c->prefix) < 0) {
            strbuf_printf(why, "bad prefix length in \"%.*s\"", (int)len, s);
            return -1;
        }
    } else {
        c->prefix = bits;
    }
    for (unsigned i = c->prefix; i < bits; i++) {
        if (c->addr[i / 8] & (0x80 >> (i % 8))) {
            struct cidr fixed = *c;
            struct strbuf *tmp = strbuf_new(64);

            for (unsigned j = c->prefix; j < bits; j++)
                fixed.addr[j / 8] &= (unsigned char)~(0x80 >> (j % 8));
            fixed.negate = false;
            cidr_format(&fixed, tmp);
            strbuf_printf(why, "non-null host address bits in \"%.*s\", "
                          "perhaps you should use \"%s\" instead",
                          (int)len, s, strbuf_str(tmp));
            strbuf_free(&tmp);
            return -1;
        }
    }
    return 0;
}

bool cidr_contains(const struct cidr *c, int family, const unsigned char addr[16])
{
    unsigned full, rest;

    if (family != c->family)
        return false;
    full = c->prefix / 8;
    rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));

        if ((c->addr[full] & mask) != (addr[full] & mask))
            return false;
    }
    return true;
}

void cidr_format(const struct cidr *c, struct strbuf *out)
{
    char text[INET6_ADDRSTRLEN];

    inet_ntop(c->family, c->addr, text, sizeof(text));
    if (c->family == AF_INET6)
        strbuf_appendf(out, "%s[%s]/%u", c->negate ? "!" : "", text, c->prefix);
    else
        strbuf_appendf(out, "%s%s/%u", c->negate ? "!" : "", text, c->prefix);
}

struct cidr_list *cidr_list_parse(const char *list, struct strbuf *why)
{
    struct cidr_list *l = xcalloc(1, sizeof(*l));
    const char *p = list ? list : "";
    size_t cap = 0;

    for (;;) {
        size_t len;

        p += strspn(p, ", \t\r\n");
        if (*p == 0)
            break;
        len = strcspn(p, ", \t\r\n");
        if (l->n >= CIDR_LIST_MAX) {
            strbuf_printf(why, "more than %d network entries", CIDR_LIST_MAX);
            cidr_list_free(&l);
            return NULL;
        }
        if (l->n == cap) {
            cap = cap ? cap * 2 : 8;
            l->v = xreallocarray(l->v, cap, sizeof(*l->v));
        }
        if (cidr_parse(p, len, &l->v[l->n], why) < 0) {
            cidr_list_free(&l);
            return NULL;
        }
        l->n++;
        p += len;
    }
    return l;
}

int cidr_list_match(const struct cidr_list *l, const char *addr)
{
    unsigned char a[16];
    int family;

    if (l == NULL || addr == NULL || cidr_addr_parse(addr, strlen(addr), &family, a) < 0)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (cidr_contains(&l->v[i], family, a))
            return l->v[i].negate ? 0 : 1;
    return 0;
}

size_t cidr_list_count(const struct cidr_list *l)
{
    return l ? l->n : 0;
}

void cidr_list_free(struct cidr_list **lp)
{
    if (lp == NULL || *lp == NULL)
        return;
    free((*lp)->v);
    free(*lp);
    *lp = NULL;
}
