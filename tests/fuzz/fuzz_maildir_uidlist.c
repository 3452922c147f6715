/*
 * fuzz_maildir_uidlist.c - libFuzzer target for the dovecot-uidlist parser.
 *
 * Calls maildir_uidlist_parse(), the function maildir_uidlist_refresh()
 * uses on the file, on the raw bytes; on success checks the invariants
 * the rest of facteur relies on (UIDs strictly increasing and below
 * next_uid, every record found again by UID and by name) and frees
 * everything.  No state is kept between runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "maildir_uidlist.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct maildir_uidlist *ul = maildir_uidlist_new("/nonexistent/fuzz");
    struct strbuf *why = strbuf_new(64);
    uint32_t prev = 0;
    size_t i;

    if (maildir_uidlist_parse(ul, (const char *)data, size, why) == 0) {
        if (maildir_uidlist_uidvalidity(ul) == 0)
            __builtin_trap();
        for (i = 0; i < maildir_uidlist_count(ul); i++) {
            const struct maildir_uidlist_rec *r = maildir_uidlist_rec(ul, i);

            if (r->uid <= prev || r->uid >= maildir_uidlist_next_uid(ul) ||
                maildir_uidlist_lookup_uid(ul, r->uid) != r ||
                maildir_uidlist_lookup_name(ul, r->name, strlen(r->name)) != r)
                __builtin_trap();
            prev = r->uid;
        }
    } else if (!maildir_uidlist_broken(ul) || maildir_uidlist_count(ul) != 0) {
        __builtin_trap();
    }
    maildir_uidlist_free(&ul);
    strbuf_free(&why);
    return 0;
}
