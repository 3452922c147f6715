/*
 * fuzz_pwscheme.c - libFuzzer target for the stored-password parsers in
 * lib/pwscheme (what authd reads from passwd-file and hash: passdbs).
 *
 * The bytes up to the first NUL are a stored password: pwscheme_split
 * (the "{SCHEME}" prefix), pwscheme_scram_parse on the data of a
 * SCRAM-SHA-256 entry, and pwscheme_verify for the PLAIN and CLEARTEXT
 * schemes only: crypt(3) and PBKDF2 costs come from the data, and a fuzzer
 * must not spend seconds per input on them.  Checks the contracts (scheme
 * name bounded and upper-case, data inside the input, SCRAM fields inside
 * their limits).  No state is kept.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pwscheme.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    char *stored = malloc(size + 1);
    char scheme[32];
    const char *rest = NULL;

    if (stored == NULL)
        __builtin_trap();
    memcpy(stored, data, size);
    stored[size] = 0;
    if (pwscheme_split(stored, "CRYPT", scheme, &rest) == 0) {
        size_t n = strnlen(scheme, sizeof(scheme));

        if (n == sizeof(scheme) || rest < stored || rest > stored + strlen(stored))
            __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (scheme[i] >= 'a' && scheme[i] <= 'z')
                __builtin_trap();
        (void)pwscheme_known(scheme);
        if (strcasecmp(scheme, "SCRAM-SHA-256") == 0) {
            struct pwscheme_scram sc;

            if (pwscheme_scram_parse(rest, &sc, why) == 0) {
                if (sc.iter < PWSCHEME_SCRAM_ITER_MIN || sc.iter > PWSCHEME_SCRAM_ITER_MAX
                    || sc.salt_len > PWSCHEME_SCRAM_SALT_MAX)
                    __builtin_trap();
            } else if (strbuf_len(why) == 0) {
                __builtin_trap();
            }
        } else if (strcmp(scheme, "PLAIN") == 0 || strcmp(scheme, "CLEARTEXT") == 0) {
            int r = pwscheme_verify(rest, stored, "CRYPT", why);

            if (r != 1 && strlen(rest) <= PWSCHEME_PASSWORD_MAX)
                __builtin_trap();   /* its own password must match */
            (void)pwscheme_verify("x", stored, "CRYPT", why);
        }
    }
    free(stored);
    strbuf_free(&why);
    return 0;
}
