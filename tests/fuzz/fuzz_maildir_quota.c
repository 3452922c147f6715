/*
 * fuzz_maildir_quota.c - libFuzzer target for the maildirsize parser.
 *
 * maildirsize sits in the user's Maildir, so its content is untrusted:
 * the bytes go to maildir_quota_parse() (what maildir_quota_get() calls)
 * and, as a definition, to maildir_quota_parse_def(); a parsed definition
 * must survive maildir_quota_format_def() and a second parse unchanged.
 */
#include <stddef.h>
#include <stdint.h>

#include "maildir_quota.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64), *def = strbuf_new(64);
    struct maildir_quota q;
    uint64_t b, c, b2, c2;

    (void)maildir_quota_parse((const char *)data, size, &q, why);
    if (maildir_quota_parse_def((const char *)data, size, &b, &c, why) == 0) {
        (void)maildir_quota_exceeded(&q, b, c);
        maildir_quota_format_def(def, b, c);
        if (maildir_quota_parse_def(strbuf_str(def), strbuf_len(def), &b2, &c2, why) != 0 ||
            b2 != b || c2 != c)
            __builtin_trap();
    }
    strbuf_free(&why);
    strbuf_free(&def);
    return 0;
}
