/*
 * fuzz_maildir_subs.c - libFuzzer target for the subscriptions parser.
 *
 * The subscriptions file is in the user's Maildir and may have been
 * written by Dovecot or by hand: the bytes go to maildir_subs_parse()
 * (what maildir_subs_read() and maildir_subs_set() call), and every name
 * it returns must be a bounded NUL-terminated string.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "maildir.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    char **names = NULL;
    size_t i, n;

    if (maildir_subs_parse((const char *)data, size, &names, &n, why) == 0) {
        for (i = 0; i < n; i++)
            if (names[i] == NULL || names[i][0] == '\0' ||
                strlen(names[i]) > 2 * MAILDIR_FOLDER_MAX)
                __builtin_trap();
        if (names[n] != NULL)
            __builtin_trap();
        (void)maildir_folder_check(n > 0 ? names[0] : "INBOX", why);
        maildir_names_free(&names);
    }
    strbuf_free(&why);
    return 0;
}
