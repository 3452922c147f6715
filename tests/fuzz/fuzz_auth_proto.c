/*
 * fuzz_auth_proto.c - libFuzzer target for the Dovecot auth protocol as
 * authd reads it.
 *
 * The input is split into lines; each goes through auth_proto_parse (the
 * entry point authd_conn uses) and the typed parsers for AUTH, CONT and
 * USER.  AUTH and CONT data are base64-decoded and fed to a fresh
 * mechanism (PLAIN, LOGIN, SCRAM-SHA-256 with fixed credentials, so no
 * PBKDF2 runs per input) for up to four steps, as authd would.  The
 * client's parser of authd's answers (auth_client_feed) sees every line
 * too.  Everything is freed; no state survives a call.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "base64.h"
#include "pwscheme.h"
#include "sasl.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_mech(const char *mech, const char *b64, struct strbuf *why)
{
    struct sasl_mech *m = sasl_mech_new(mech);
    struct strbuf *dec = strbuf_new(64), *out = strbuf_new(64);
    struct pwscheme_scram sc;
    enum sasl_step st;

    if (m == NULL)
        goto done;
    memset(&sc, 0x5a, sizeof(sc));
    sc.iter = 4096;
    sc.salt_len = 16;
    if (b64 != NULL && base64_decode(dec, b64, strlen(b64)) < 0)
        goto done;
    st = sasl_mech_step(m, b64 ? strbuf_str(dec) : NULL, strbuf_len(dec), out, why);
    for (int i = 0; i < 4 && st != SASL_STEP_FAIL && st != SASL_STEP_DONE
                    && st != SASL_STEP_CHECK_PASSWORD; i++) {
        if (st == SASL_STEP_NEED_SCRAM) {
            if (!auth_proto_valid_user(sasl_mech_user(m)))
                __builtin_trap();
            st = sasl_mech_scram_creds(m, &sc, out, why);
            continue;
        }
        /* Feed the same response again: exercises every later state. */
        st = sasl_mech_step(m, strbuf_str(dec), strbuf_len(dec), out, why);
    }
    if (st == SASL_STEP_CHECK_PASSWORD && (sasl_mech_user(m) == NULL
                                           || sasl_mech_password(m) == NULL))
        __builtin_trap();
done:
    sasl_mech_free(&m);
    strbuf_free(&dec);
    strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    struct auth_client *client = auth_client_new_detached();
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl + 1 : end) - p);
        struct auth_proto_line l;

        (void)auth_client_feed(client, p, len, why);
        if (auth_proto_parse(&l, p, len, why) == 0) {
            struct auth_proto_auth a;
            const char *d, *u, *svc;
            unsigned id;

            if (auth_proto_parse_auth(&l, &a, why) == 0) {
                if (!auth_proto_valid_ip(a.rip) || a.id == 0)
                    __builtin_trap();
                run_mech(a.mech, a.resp, why);
            }
            if (auth_proto_parse_cont(&l, &id, &d, why) == 0) {
                run_mech("PLAIN", d, why);
                run_mech("LOGIN", d, why);
                run_mech("SCRAM-SHA-256", d, why);
            }
            if (auth_proto_parse_user(&l, &id, &u, &svc, why) == 0 && !auth_proto_valid_user(u))
                __builtin_trap();
            /* Formatting what was parsed and parsing it again gives the same
             * (the command word is written as is, so only a plain one). */
            struct strbuf *again = strbuf_new(len + 16);
            struct auth_proto_line l2;
            auth_proto_begin(again, l.argv[0]);
            for (unsigned i = 1; i < l.argc; i++)
                auth_proto_add(again, l.argv[i]);
            auth_proto_end(again);
            if (strpbrk(l.argv[0], "\001\t\n\r") == NULL) {
                if (auth_proto_parse(&l2, strbuf_str(again), strbuf_len(again), why) != 0
                    || l2.argc != l.argc)
                    __builtin_trap();
                for (unsigned i = 0; i < l.argc; i++)
                    if (strcmp(l.argv[i], l2.argv[i]) != 0)
                        __builtin_trap();
                auth_proto_line_free(&l2);
            }
            strbuf_free(&again);
            auth_proto_line_free(&l);
        }
        p += len;
    }
    auth_client_close(&client);
    strbuf_free(&why);
    return 0;
}
