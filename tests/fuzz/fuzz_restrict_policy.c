/*
 * fuzz_restrict_policy.c - libFuzzer target for the answer parser of
 * check_policy_service (lib/restrict_policy.c).
 *
 * The input is a policy server's answer as smtpd reads it (at most
 * RESTRICT_POLICY_MAX bytes), copied to an exact-size buffer so ASan sees
 * any read past it, and handed to restrict_policy_parse(), the function
 * smtpd calls.  Checks its promises: on success the action holds no
 * control character but tab and is shorter than the input; on failure
 * why says something.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "restrict.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *action, *why;
    char *copy;

    if (size > RESTRICT_POLICY_MAX)
        return 0;
    copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    action = strbuf_new(64);
    why = strbuf_new(64);
    if (restrict_policy_parse(copy, size, action, why) == 0) {
        if (strbuf_len(action) >= size)
            __builtin_trap();
        for (size_t i = 0; i < strbuf_len(action); i++)
            if ((unsigned char)action->data[i] < 0x20 && action->data[i] != '\t')
                __builtin_trap();
    } else if (strbuf_len(why) == 0) {
        __builtin_trap();
    }
    free(copy);
    strbuf_free(&action);
    strbuf_free(&why);
    return 0;
}
