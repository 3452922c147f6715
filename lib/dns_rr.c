/*
 * dns_rr.c - parse the data of DNS resource records (the I/O-free half of
 * lib/dns), plus name and address helpers.
 *
 * Input is the wire-format RDATA of one record as libunbound hands it
 * back: names uncompressed.  It is untrusted (it came from the network):
 * every length is checked against the bytes left, names are bounded to
 * 255 bytes and 127 labels, compression pointers are refused, and the
 * printable forms escape anything that is not a safe host-name byte, so
 * a record can never inject text into a log line or an SMTP reply.
 * Fuzzed by tests/fuzz/fuzz_dns_rr.c.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "dns.h"
#include "mem.h"

static const struct {
    uint16_t type;
    const char *name;
} dns_types[] = {
    {DNS_T_A, "A"}, {DNS_T_NS, "NS"}, {DNS_T_CNAME, "CNAME"}, {DNS_T_PTR, "PTR"},
    {DNS_T_MX, "MX"}, {DNS_T_TXT, "TXT"}, {DNS_T_AAAA, "AAAA"}, {DNS_T_TLSA, "TLSA"},
};

const char *dns_type_name(uint16_t type)
{
    for (size_t i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
        if (dns_types[i].type == type)
            return dns_types[i].name;
    return NULL;
}

uint16_t dns_type_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
        if (strcasecmp(dns_types[i].name, name) == 0)
            return dns_types[i].type;
    return 0;
}

const char *dns_status_str(enum dns_status st)
{
    switch (st) {
    case DNS_OK:
        return "found";
    case DNS_NXDOMAIN:
        return "NXDOMAIN";
    case DNS_NODATA:
        return "no data";
    case DNS_NULLMX:
        return "null MX";
    case DNS_TEMPFAIL:
        return "temporary failure";
    case DNS_INVALID:
        return "invalid name";
    }
    return "unknown status";
}

/* Bytes a presentation name may show unescaped. */
static bool dns_label_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '-' || c == '_' || c == '*' || c == '/' || c == '+' || c == '=';
}

long dns_name_parse(const unsigned char *data, size_t len, struct strbuf *out,
                    struct strbuf *why)
{
    size_t pos = 0, wire = 0;
    unsigned labels = 0;

    for (;;) {
        unsigned ll;

        if (pos >= len) {
            strbuf_set(why, "domain name runs past the record data");
            return -1;
        }
        ll = data[pos];
        if (ll & 0xc0) {
            strbuf_set(why, ll >= 0xc0 ? "compressed name in record data"
                                       : "reserved label type");
            return -1;
        }
        pos++;
        wire += ll + 1;
        if (wire > 255) {
            strbuf_set(why, "domain name longer than 255 bytes");
            return -1;
        }
        if (ll == 0)
            return (long)pos;
        if (ll > len - pos) {
            strbuf_set(why, "label runs past the record data");
            return -1;
        }
        if (++labels > 127) {
            strbuf_set(why, "too many labels");
            return -1;
        }
        if (labels > 1)
            strbuf_appendc(out, '.');
        for (unsigned i = 0; i < ll; i++) {
            unsigned char c = data[pos + i];

            if (dns_label_char_ok(c))
                strbuf_appendc(out, c);
            else
                strbuf_appendf(out, "\\%03u", c);
        }
        pos += ll;
    }
}

static void dns_hex(const unsigned char *p, size_t n, struct strbuf *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        strbuf_appendc(out, hex[p[i] >> 4]);
        strbuf_appendc(out, hex[p[i] & 15]);
    }
}

void dns_rr_clear(struct dns_rr *rr)
{
    if (rr == NULL)
        return;
    free(rr->data);
    free(rr->text);
    memset(rr, 0, sizeof(*rr));
}

int dns_rr_parse(uint16_t type, const unsigned char *data, size_t len,
                 struct dns_rr *rr, struct strbuf *why)
{
    struct strbuf *text = strbuf_new(64);
    char abuf[INET6_ADDRSTRLEN];
    long used;

    memset(rr, 0, sizeof(*rr));
    rr->type = type;
    switch (type) {
    case DNS_T_A:
    case DNS_T_AAAA:
        if (len != (type == DNS_T_A ? 4u : 16u)) {
            strbuf_printf(why, "%s record of %zu bytes", dns_type_name(type), len);
            goto bad;
        }
        memcpy(rr->addr, data, len);
        inet_ntop(type == DNS_T_A ? AF_INET : AF_INET6, data, abuf, sizeof(abuf));
        strbuf_set(text, abuf);
        break;
    case DNS_T_MX:
        if (len < 3) {
            strbuf_printf(why, "MX record of %zu bytes", len);
            goto bad;
        }
        rr->pref = (unsigned)data[0] << 8 | data[1];
        if ((used = dns_name_parse(data + 2, len - 2, text, why)) < 0)
            goto bad;
        if ((size_t)used != len - 2) {
            strbuf_set(why, "bytes after the MX exchange name");
            goto bad;
        }
        break;
    case DNS_T_PTR:
    case DNS_T_CNAME:
    case DNS_T_NS:
        if ((used = dns_name_parse(data, len, text, why)) < 0)
            goto bad;
        if ((size_t)used != len) {
            strbuf_printf(why, "bytes after the %s name", dns_type_name(type));
            goto bad;
        }
        break;
    case DNS_T_TXT:
        if (len == 0) {
            strbuf_set(why, "empty TXT record");
            goto bad;
        }
        for (size_t pos = 0; pos < len;) {
            size_t sl = data[pos++];

            if (sl > len - pos) {
                strbuf_set(why, "TXT string runs past the record data");
                goto bad;
            }
            if (strbuf_len(text) + sl > DNS_TXT_MAX) {
                strbuf_printf(why, "TXT record longer than %d bytes", DNS_TXT_MAX);
                goto bad;
            }
            /* Control bytes become '?': the text may reach a log or reply. */
            for (size_t i = 0; i < sl; i++) {
                unsigned char c = data[pos + i];

                strbuf_appendc(text, c < 0x20 || c == 0x7f ? '?' : c);
            }
            pos += sl;
        }
        break;
    case DNS_T_TLSA:
        if (len < 4) {
            strbuf_printf(why, "TLSA record of %zu bytes", len);
            goto bad;
        }
        if (len - 3 > DNS_TLSA_MAX) {
            strbuf_printf(why, "TLSA data longer than %d bytes", DNS_TLSA_MAX);
            goto bad;
        }
        rr->usage = data[0];
        rr->selector = data[1];
        rr->mtype = data[2];
        rr->data_len = len - 3;
        rr->data = xmalloc(rr->data_len);
        memcpy(rr->data, data + 3, rr->data_len);
        dns_hex(rr->data, rr->data_len, text);
        break;
    default:
        if (len > DNS_TXT_MAX) {
            strbuf_printf(why, "record of type %u longer than %d bytes", type, DNS_TXT_MAX);
            goto bad;
        }
        rr->data_len = len;
        rr->data = xmalloc(len ? len : 1);
        memcpy(rr->data, data, len);
        dns_hex(data, len, text);
        break;
    }
    rr->text = strbuf_steal(&text);
    return 0;
bad:
    strbuf_free(&text);
    dns_rr_clear(rr);
    return -1;
}

bool dns_name_valid(const char *name, bool underscore_ok)
{
    size_t len = strlen(name), label = 0;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '.') {
            if (label == 0 || name[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || (c == '_' && underscore_ok)))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return name[len - 1] != '-';
}

int dns_reverse_name(const char *addr, const char *suffix, struct strbuf *out)
{
    unsigned char a[16];
    int family;
    static const char hex[] = "0123456789abcdef";

    if (addr == NULL || cidr_addr_parse(addr, strlen(addr), &family, a) < 0)
        return -1;
    strbuf_reset(out);
    if (family == AF_INET) {
        strbuf_printf(out, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0],
                      suffix ? suffix : "in-addr.arpa");
    } else {
        for (int i = 15; i >= 0; i--) {
            strbuf_appendc(out, hex[a[i] & 15]);
            strbuf_appendc(out, '.');
            strbuf_appendc(out, hex[a[i] >> 4]);
            strbuf_appendc(out, '.');
        }
        strbuf_append(out, suffix ? suffix : "ip6.arpa");
    }
    return 0;
}
