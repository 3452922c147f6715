/*
 * fuzz_drop.c - libFuzzer target for the drop format facteur-drop reads
 * on stdin (lib/cleanup_drop.c): the same header decode and record checks
 * facteur-drop runs, over a byte stream, as it reads it.
 *
 * Checks: an accepted record never exceeds its type's bound; a message
 * is "ended" only with a sender and a recipient; nothing is accepted after
 * the end; re-framing the accepted records with cleanup_drop_frame and
 * checking them again gives the same verdicts.  Keeps no state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cleanup.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walk buf as facteur-drop does; accepted records go to out (framed). */
static int walk(const uint8_t *buf, size_t size, struct strbuf *out, struct strbuf *why,
                struct cleanup_drop *d)
{
    size_t pos = 0;
    int accepted = 0;

    cleanup_drop_init(d, 4096);
    while (pos + CLEANUP_DROP_HDR <= size) {
        int type;
        uint32_t len;

        if (cleanup_drop_header(d, buf + pos, &type, &len, why) < 0)
            break;
        if (len > QFILE_CHUNK_MAX)
            __builtin_trap();
        pos += CLEANUP_DROP_HDR;
        if (len > size - pos)
            break;
        if (cleanup_drop_check(d, type, (const char *)buf + pos, len, why) < 0)
            break;
        if (out != NULL)
            cleanup_drop_frame(out, type, buf + pos, len);
        accepted++;
        pos += len;
        if (d->ended && (!d->have_sender || d->nrcpt == 0))
            __builtin_trap();
    }
    return accepted;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *out = strbuf_new(size + 16), *why = strbuf_new(64);
    struct cleanup_drop d1, d2;
    int n1, n2;

    n1 = walk(data, size, out, why, &d1);
    n2 = walk((const uint8_t *)strbuf_str(out), strbuf_len(out), NULL, why, &d2);
    if (n1 != n2 || d1.ended != d2.ended || d1.nrcpt != d2.nrcpt || d1.content != d2.content)
        __builtin_trap();
    strbuf_free(&out);
    strbuf_free(&why);
    return 0;
}
