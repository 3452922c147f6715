/*
 * test_sasl.c - SASL mechanisms as state machines (PLAIN, LOGIN, and
 * SCRAM-SHA-256 with the RFC 7677 test vector): good exchanges, wrong
 * order, malformed and over-long responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mem.h"
#include "pwscheme.h"
#include "sasl.h"
#include "strbuf.h"

/* One step of a scripted exchange. */
struct step {
    const char *in;         /* NULL: no response */
    size_t len;             /* 0: strlen(in) */
    enum sasl_step expect;
    const char *out;        /* expected challenge, or NULL */
};

struct mech_case {
    const char *name;
    const char *mech;
    struct step steps[4];
    unsigned nsteps;
    const char *user, *password;
};

#define S(str) str, sizeof(str) - 1

static const struct mech_case mech_cases[] = {
    {"plain initial", "PLAIN", {{S("\0bob\0secret"), SASL_STEP_CHECK_PASSWORD, NULL}}, 1, "bob", "secret"},
    {"plain authzid same", "PLAIN", {{S("bob\0bob\0pw"), SASL_STEP_CHECK_PASSWORD, NULL}}, 1, "bob", "pw"},
    {"plain empty password", "plain", {{S("\0bob\0"), SASL_STEP_CHECK_PASSWORD, NULL}}, 1, "bob", ""},
    {"plain no initial", "PLAIN", {{NULL, 0, SASL_STEP_CHALLENGE, ""},
                                   {S("\0al@x.org\0p w"), SASL_STEP_CHECK_PASSWORD, NULL}}, 2, "al@x.org", "p w"},
    {"plain authzid other", "PLAIN", {{S("root\0bob\0pw"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain one nul", "PLAIN", {{S("bob\0pw"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain three nuls", "PLAIN", {{S("\0bob\0pw\0x"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain empty user", "PLAIN", {{S("\0\0pw"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain empty", "PLAIN", {{S(""), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain bad user", "PLAIN", {{S("\0a/b\0pw"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"plain after done", "PLAIN", {{S("\0bob\0pw"), SASL_STEP_CHECK_PASSWORD, NULL},
                                   {S("\0bob\0pw"), SASL_STEP_FAIL, NULL}}, 2, "bob", "pw"},
    {"login", "LOGIN", {{NULL, 0, SASL_STEP_CHALLENGE, "Username:"},
                        {S("bob"), SASL_STEP_CHALLENGE, "Password:"},
                        {S("secret"), SASL_STEP_CHECK_PASSWORD, NULL}}, 3, "bob", "secret"},
    {"login initial user", "LOGIN", {{S("bob"), SASL_STEP_CHALLENGE, "Password:"},
                                     {S("secret"), SASL_STEP_CHECK_PASSWORD, NULL}}, 2, "bob", "secret"},
    {"login nul in user", "LOGIN", {{NULL, 0, SASL_STEP_CHALLENGE, "Username:"},
                                    {S("b\0b"), SASL_STEP_FAIL, NULL}}, 2, NULL, NULL},
    {"login empty user", "LOGIN", {{NULL, 0, SASL_STEP_CHALLENGE, "Username:"},
                                   {S(""), SASL_STEP_FAIL, NULL}}, 2, NULL, NULL},
    {"login nul in password", "LOGIN", {{S("bob"), SASL_STEP_CHALLENGE, "Password:"},
                                        {S("p\0w"), SASL_STEP_FAIL, NULL}}, 2, NULL, NULL},
    {"scram channel binding", "SCRAM-SHA-256", {{S("p=tls-unique,,n=user,r=abc"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram no nonce", "SCRAM-SHA-256", {{S("n,,n=user"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram bad saslname", "SCRAM-SHA-256", {{S("n,,n=us=er,r=abc"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram mandatory ext", "SCRAM-SHA-256", {{S("n,,n=user,r=abc,m=x"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram bad header", "SCRAM-SHA-256", {{S("x,,n=user,r=abc"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram authzid differs", "SCRAM-SHA-256", {{S("n,a=root,n=user,r=abc"), SASL_STEP_FAIL, NULL}}, 1, NULL, NULL},
    {"scram escaped name", "SCRAM-SHA-256", {{S("n,,n=a=2Cb=3D,r=abc"), SASL_STEP_NEED_SCRAM, NULL}}, 1, "a,b=", NULL},
    {"scram no initial", "SCRAM-SHA-256", {{NULL, 0, SASL_STEP_CHALLENGE, ""},
                                          {S("y,,n=user,r=abc"), SASL_STEP_NEED_SCRAM, NULL}}, 2, "user", NULL},
};

static void test_mech_table(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(mech_cases) / sizeof(mech_cases[0]); i++) {
        const struct mech_case *c = &mech_cases[i];
        struct sasl_mech *m = sasl_mech_new(c->mech);
        enum sasl_step got = SASL_STEP_FAIL;

        assert_non_null(m);
        for (unsigned k = 0; k < c->nsteps; k++) {
            const struct step *s = &c->steps[k];
            got = sasl_mech_step(m, s->in, s->len, out, why);
            if (got != s->expect)
                fail_msg("case '%s' step %u: got %d want %d (%s)", c->name, k, got,
                         s->expect, strbuf_str(why));
            if (s->out != NULL && strcmp(strbuf_str(out), s->out) != 0)
                fail_msg("case '%s' step %u: challenge '%s'", c->name, k, strbuf_str(out));
        }
        if (c->user)
            assert_string_equal(sasl_mech_user(m), c->user);
        if (c->password)
            assert_string_equal(sasl_mech_password(m), c->password);
        sasl_mech_free(&m);
        assert_null(m);
    }
    assert_null(sasl_mech_new("CRAM-MD5"));
    assert_true(sasl_mech_is_plaintext("login"));
    assert_false(sasl_mech_is_plaintext("SCRAM-SHA-256"));
    assert_false(sasl_mech_supported("GSSAPI"));
    strbuf_free(&out);
    strbuf_free(&why);
}

static void test_overlong_response(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);
    char *big = xcalloc(1, SASL_RESPONSE_MAX + 1);
    struct sasl_mech *m = sasl_mech_new("PLAIN");

    assert_int_equal(sasl_mech_step(m, big, SASL_RESPONSE_MAX + 1, out, why), SASL_STEP_FAIL);
    sasl_mech_free(&m);
    free(big);
    strbuf_free(&out);
    strbuf_free(&why);
}

/* RFC 7677 section 3. */
#define CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define SFIRST "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define CFINAL "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static enum sasl_step scram_run(const char *stored, const char *cfinal, const char *sfirst,
                                struct strbuf *out)
{
    struct strbuf *why = strbuf_new(64);
    struct sasl_mech *m = sasl_mech_new("SCRAM-SHA-256");
    struct pwscheme_scram sc;
    enum sasl_step r;

    sasl_mech_set_nonce(m, SNONCE);
    assert_int_equal(sasl_mech_step(m, CFIRST, strlen(CFIRST), out, why), SASL_STEP_NEED_SCRAM);
    assert_string_equal(sasl_mech_user(m), "user");
    assert_int_equal(pwscheme_scram_from_stored(stored, NULL, "user", &sc, why), 1);
    assert_int_equal(sasl_mech_scram_creds(m, &sc, out, why), SASL_STEP_CHALLENGE);
    if (sfirst != NULL)
        assert_string_equal(strbuf_str(out), sfirst);
    r = sasl_mech_step(m, cfinal, strlen(cfinal), out, why);
    if (r == SASL_STEP_CHALLENGE) {
        assert_string_equal(strbuf_str(out), SFINAL);
        r = sasl_mech_step(m, "", 0, out, why);
    }
    sasl_mech_free(&m);
    strbuf_free(&why);
    return r;
}

static void test_scram_rfc7677(void **state)
{
    struct strbuf *out = strbuf_new(64), *why = strbuf_new(64);
    struct pwscheme_scram sc;
    static const char good[] = "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    static const char other[] = "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
        "f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=,Q6bxtpDM0PfwAd4qRsfaLL4TSXlyoaws2013T2pq/mA=";
    static const char *bad_finals[] = {
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "",
    };

    assert_int_equal(scram_run(good, CFINAL, SFIRST, out), SASL_STEP_DONE);
    /* A PLAIN passdb entry derives the same keys only with the same salt,
     * so here the proof must fail. */
    assert_int_equal(scram_run("{PLAIN}pencil", CFINAL, NULL, out), SASL_STEP_FAIL);
    assert_int_equal(scram_run(other, CFINAL, SFIRST, out), SASL_STEP_FAIL);
    for (size_t i = 0; i < sizeof(bad_finals) / sizeof(bad_finals[0]); i++)
        if (scram_run(good, bad_finals[i], SFIRST, out) != SASL_STEP_FAIL)
            fail_msg("bad final %zu accepted", i);

    /* Credentials out of order. */
    struct sasl_mech *m = sasl_mech_new("SCRAM-SHA-256");
    assert_int_equal(pwscheme_scram_from_stored(good, NULL, "user", &sc, why), 1);
    assert_int_equal(sasl_mech_scram_creds(m, &sc, out, why), SASL_STEP_FAIL);
    sasl_mech_free(&m);
    strbuf_free(&out);
    strbuf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mech_table),
        cmocka_unit_test(test_overlong_response),
        cmocka_unit_test(test_scram_rfc7677),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
