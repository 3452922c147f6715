/*
 * fuzz_anvil_client.c - libFuzzer target for the anvil client's reply
 * reader.
 *
 * The input is what "anvil" answers: it is fed through a memory stream to
 * the real lib/anvil_client calls (one of each request type, in an order
 * chosen by the first byte), so every strict check on replies runs on
 * arbitrary bytes.  A result must be OK or UNKNOWN, an OK must carry
 * counts in range, and an UNKNOWN must say why.  Nothing is kept.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "anvil_client.h"
#include "log.h"
#include "strbuf.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(struct anvil_client *ac, enum anvil_result r, const struct anvil_client_counts *c)
{
    if (r == ANVIL_OK) {
        if (c != NULL && (c->count > ANVIL_CLIENT_COUNT_MAX || c->rate > ANVIL_CLIENT_COUNT_MAX ||
                          c->message_rate > ANVIL_CLIENT_COUNT_MAX ||
                          c->recipient_rate > ANVIL_CLIENT_COUNT_MAX))
            __builtin_trap();
    } else if (r != ANVIL_UNKNOWN || anvil_client_error(ac)[0] == 0) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *in = strbuf_new(size + 1), *out = strbuf_new(256);
    struct anvil_client *ac;
    struct anvil_client_counts c;
    unsigned order = size > 0 ? data[0] : 0;

    log_init("fuzz_anvil_client", 0);
    if (size > 0)
        strbuf_setn(in, data + 1, size - 1);
    ac = anvil_client_new_stream(stream_memopen(in, out), 100);
    for (unsigned i = 0; i < 5; i++) {
        switch ((order + i) % 5) {
        case 0:
            check(ac, anvil_client_connect(ac, "smtp", "192.0.2.1", &c), &c);
            break;
        case 1:
            check(ac, anvil_client_disconnect(ac, "smtp", "192.0.2.1"), NULL);
            break;
        case 2:
            check(ac, anvil_client_message(ac, "smtp", "192.0.2.1", &c), &c);
            break;
        case 3:
            check(ac, anvil_client_recipient(ac, "smtp", "192.0.2.1", &c), &c);
            break;
        case 4:
            check(ac, anvil_client_lookup(ac, "smtp", "192.0.2.1", &c), &c);
            break;
        }
    }
    anvil_client_free(&ac);
    strbuf_free(&in);
    strbuf_free(&out);
    return 0;
}
