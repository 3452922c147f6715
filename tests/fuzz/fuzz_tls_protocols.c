/*
 * fuzz_tls_protocols.c - libFuzzer target for the Postfix protocol-list
 * parser in lib/tls (smtpd_tls_protocols, smtp_tls_protocols and the
 * protocols= attribute of TLS policy entries).
 *
 * Calls tls_parse_protocols(), the entry point both context constructors
 * use, on the bytes up to the first NUL, and checks its contract: success
 * gives a range inside TLSv1..TLSv1.3 with min <= max, failure says why.
 * No state is kept.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "strbuf.h"
#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    char *spec = malloc(size + 1);
    int min = 0, max = 0;

    if (spec == NULL)
        __builtin_trap();
    memcpy(spec, data, size);
    spec[size] = 0;
    if (tls_parse_protocols(spec, &min, &max, why) == 0) {
        if (min < TLS1_VERSION || max > TLS1_3_VERSION || min > max)
            __builtin_trap();
    } else if (strbuf_len(why) == 0) {
        __builtin_trap();
    }
    free(spec);
    strbuf_free(&why);
    return 0;
}
