/*
 * fuzz_dns_rr.c - libFuzzer target for lib/dns's record data parser.
 *
 * The first byte picks the record type (A, AAAA, MX, PTR, CNAME, NS, TXT,
 * TLSA or an unknown type); the rest is the RDATA handed to
 * dns_rr_parse(), the entry point dns_lookup() uses on every record
 * libunbound returns.  The data is copied to an exact-size buffer so ASan
 * sees any read past it.  Checks the parser's promises: a parsed name is
 * at most 4 x 255 printable bytes (escapes included) with no control
 * byte, TXT text is bounded and control-free, TLSA data is bounded; an
 * error always says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t types[] = {
    DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_PTR, DNS_T_CNAME, DNS_T_NS, DNS_T_TXT, DNS_T_TLSA, 99,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why;
    struct dns_rr rr;
    unsigned char *copy;
    uint16_t type;

    if (size == 0)
        return 0;
    type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data + 1, size - 1);
    why = strbuf_new(64);
    if (dns_rr_parse(type, copy, size - 1, &rr, why) == 0) {
        size_t tl = strlen(rr.text);

        if (rr.type != type)
            __builtin_trap();
        for (size_t i = 0; i < tl; i++)
            if ((unsigned char)rr.text[i] < 0x20 || rr.text[i] == 0x7f)
                __builtin_trap();
        if ((type == DNS_T_MX || type == DNS_T_PTR) && tl > 4 * 255)
            __builtin_trap();
        if (type == DNS_T_TXT && tl > DNS_TXT_MAX)
            __builtin_trap();
        if (type == DNS_T_TLSA && (rr.data_len > DNS_TLSA_MAX || tl != 2 * rr.data_len))
            __builtin_trap();
        dns_rr_clear(&rr);
    } else if (strbuf_len(why) == 0 || rr.text != NULL) {
        __builtin_trap();
    }
    free(copy);
    strbuf_free(&why);
    return 0;
}
