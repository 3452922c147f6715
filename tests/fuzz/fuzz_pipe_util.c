/*
 * fuzz_pipe_util.c - libFuzzer target for the byte handling of the pipe
 * agent (lib/pipe_util.c) on untrusted input: a command's output turned
 * into a reply text (pipe_output_text), message content put into mbox
 * form across an input-chosen buffer split (pipe_mbox_quote, which must
 * give the same bytes as one unsplit call), and recipient addresses cut
 * into the command environment (pipe_addr_split).  The first byte picks
 * the split point.  Checks the invariants the agent relies on; keeps no
 * state.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pipe_util.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *a = strbuf_new(256), *b = strbuf_new(256), *s1 = strbuf_new(64),
                  *s2 = strbuf_new(64), *s3 = strbuf_new(64), *s4 = strbuf_new(64);
    struct pipe_mbox_state st;
    const char *buf;
    size_t cut, len;

    if (size == 0)
        goto out;
    cut = data[0];
    buf = (const char *)data + 1;
    len = size - 1;
    if (cut > len)
        cut = len;

    /* Reply text: printable ASCII only, bounded. */
    strbuf_set(a, "x");
    pipe_output_text(a, buf, len);
    if (strbuf_len(a) > 1 + 2 + PIPE_OUTPUT_MAX + 3)
        __builtin_trap();
    for (size_t i = 0; i < strbuf_len(a); i++)
        if ((unsigned char)strbuf_str(a)[i] < 0x20 || (unsigned char)strbuf_str(a)[i] >= 0x7f)
            __builtin_trap();

    /* mbox: a split never changes the result; no unquoted "From " line. */
    strbuf_reset(a);
    pipe_mbox_init(&st);
    pipe_mbox_quote(a, buf, len, &st);
    pipe_mbox_end(a, &st);
    pipe_mbox_init(&st);
    pipe_mbox_quote(b, buf, cut, &st);
    pipe_mbox_quote(b, buf + cut, len - cut, &st);
    pipe_mbox_end(b, &st);
    if (strbuf_len(a) != strbuf_len(b) || memcmp(strbuf_str(a), strbuf_str(b), strbuf_len(a)) != 0)
        __builtin_trap();
    for (size_t i = 0; i + 5 <= strbuf_len(a); i++)
        if ((i == 0 || strbuf_str(a)[i - 1] == '\n') && memcmp(strbuf_str(a) + i, "From ", 5) == 0)
            __builtin_trap();

    /* Address parts: a C string made of the input. */
    strbuf_setn(b, buf, len);
    if (strlen(strbuf_str(b)) == strbuf_len(b)) {
        pipe_addr_split(strbuf_str(b), "+-", s1, s2, s3, s4);
        if (strbuf_len(s3) > strbuf_len(s1) || strbuf_len(s1) > strbuf_len(b))
            __builtin_trap();
    }
out:
    strbuf_free(&a);
    strbuf_free(&b);
    strbuf_free(&s1);
    strbuf_free(&s2);
    strbuf_free(&s3);
    strbuf_free(&s4);
    return 0;
}
