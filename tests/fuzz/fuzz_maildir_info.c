/*
 * fuzz_maildir_info.c - libFuzzer target for the Maildir file-name parser.
 *
 * Feeds the raw bytes to maildir_name_parse() (what every directory scan
 * calls on names other programs wrote) and maildir_flags_parse(); when a
 * name parses, rebuilds it with maildir_name_build() and checks that the
 * rebuilt name parses to the same base, flags and keywords.  No state is
 * kept between runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "maildir.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *name = (const char *)data;
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(300);
    struct maildir_info info, again;
    unsigned flags;
    uint32_t kw;

    (void)maildir_flags_parse(name, size, &flags, &kw, why);
    if (maildir_name_parse(name, size, &info, why) == 0) {
        if (info.base_len == 0 || info.base_len > size ||
            info.extra_off + info.extra_len > size)
            __builtin_trap();
        if (maildir_name_build(out, name, info.base_len, info.flags, info.keywords,
                               info.extra_len > 0 ? name + info.extra_off : NULL,
                               info.extra_len, why) == 0) {
            if (maildir_name_parse(strbuf_str(out), strbuf_len(out), &again, why) != 0 ||
                again.base_len != info.base_len || again.flags != info.flags ||
                again.keywords != info.keywords || again.extra_len != info.extra_len ||
                memcmp(strbuf_str(out), name, info.base_len) != 0)
                __builtin_trap();
        }
    }
    strbuf_free(&why);
    strbuf_free(&out);
    return 0;
}
