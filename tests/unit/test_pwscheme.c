/*
 * test_pwscheme.c - password schemes against hashes made by other tools
 * (openssl passwd -5/-6, mkpasswd -m yescrypt/bcrypt, doveadm pw), good
 * and bad passwords, malformed stored values, and hash/verify round trips.
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
#include "strbuf.h"

struct verify_case {
    const char *name;
    const char *stored;
    const char *password;
    int expect;             /* 1 match, 0 mismatch, -1 error */
};

static const struct verify_case verify_cases[] = {
    {"sha512 openssl good", "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1", "secret", 1},
    {"sha512 openssl bad", "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1", "secreT", 0},
    {"sha512 no prefix default crypt", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1", "secret", 1},
    {"sha256 openssl good", "{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA", "secret", 1},
    {"sha256 lowercase scheme", "{sha256-crypt}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA", "secret", 1},
    {"sha256 bad", "{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA", "", 0},
    {"yescrypt mkpasswd good", "{YESCRYPT}$y$j9T$ppADu/gvVcO2PAYbxFjPQ.$gr94.LKbW8.ACTplhHbneKoPMcBbXGuouDC3RFbZfT6", "secret", 1},
    {"yescrypt mkpasswd bad", "$y$j9T$ppADu/gvVcO2PAYbxFjPQ.$gr94.LKbW8.ACTplhHbneKoPMcBbXGuouDC3RFbZfT6", "secrets", 0},
    {"bcrypt 2b mkpasswd good", "{BLF-CRYPT}$2b$05$QHh.BsTgJG6Ovm.Mcg8HHe2VvpKZd0lG6B28QNAsAd0UuJgBHDSFW", "secret", 1},
    {"bcrypt 2y doveadm good", "{BLF-CRYPT}$2y$05$Z2jGrQFufSbJCPOzpTtLJOfH.Q52SaTD0yar26wOFtqd02fy9of12", "secret", 1},
    {"bcrypt 2y doveadm bad", "{BLF-CRYPT}$2y$05$Z2jGrQFufSbJCPOzpTtLJOfH.Q52SaTD0yar26wOFtqd02fy9of12", "Secret", 0},
    {"scram doveadm good", "{SCRAM-SHA-256}4096,BSgij5+51BqKoNPPpWRH8Q==,f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=,Q6bxtpDM0PfwAd4qRsfaLL4TSXlyoaws2013T2pq/mA=", "secret", 1},
    {"scram doveadm bad", "{SCRAM-SHA-256}4096,BSgij5+51BqKoNPPpWRH8Q==,f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=,Q6bxtpDM0PfwAd4qRsfaLL4TSXlyoaws2013T2pq/mA=", "secret2", 0},
    {"scram truncated", "{SCRAM-SHA-256}4096,BSgij5+51BqKoNPPpWRH8Q==,f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=", "secret", -1},
    {"scram low iterations", "{SCRAM-SHA-256}10,BSgij5+51BqKoNPPpWRH8Q==,f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=,Q6bxtpDM0PfwAd4qRsfaLL4TSXlyoaws2013T2pq/mA=", "secret", -1},
    {"scram bad base64", "{SCRAM-SHA-256}4096,BSgij5+51BqKoNPPpWRH8Q=,f9ESzNdPzYsCQfkQlQPzhpYpW9m0fLN6Lkrol/BjRVQ=,Q6bxtpDM0PfwAd4qRsfaLL4TSXlyoaws2013T2pq/mA=", "secret", -1},
    {"plain good", "{PLAIN}secret", "secret", 1},
    {"cleartext good", "{CLEARTEXT}secret", "secret", 1},
    {"plain bad", "{PLAIN}secret", "secret ", 0},
    {"plain prefix of stored", "{PLAIN}secret", "secre", 0},
    {"unknown scheme", "{MD5-FANCY}abc", "secret", -1},
    {"unterminated prefix", "{SHA512-CRYPT$6$abc", "secret", -1},
    {"empty prefix", "{}abc", "secret", -1},
    {"overlong prefix", "{AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}x", "secret", -1},
    {"locked crypt", "{SHA512-CRYPT}!$6$saltsalt$TVLl", "secret", -1},
    {"empty crypt", "{CRYPT}", "", -1},
    {"garbage crypt", "{CRYPT}$9$abc", "secret", -1},
    {"empty-salt sha512 never matches", "{CRYPT}$6$", "secret", 0},
};

static void test_verify_table(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(verify_cases) / sizeof(verify_cases[0]); i++) {
        const struct verify_case *c = &verify_cases[i];
        int got = pwscheme_verify(c->password, c->stored, "CRYPT", why);
        if (got != c->expect)
            fail_msg("case '%s': got %d, want %d (%s)", c->name, got, c->expect,
                     strbuf_str(why));
    }
    strbuf_free(&why);
}

static void test_overlong_password(void **state)
{
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);
    char *pw = xmalloc(PWSCHEME_PASSWORD_MAX + 2);

    memset(pw, 'a', PWSCHEME_PASSWORD_MAX + 1);
    pw[PWSCHEME_PASSWORD_MAX + 1] = 0;
    assert_int_equal(pwscheme_hash("SHA512-CRYPT", pw, 0, out, why), -1);
    strbuf_set(out, "{PLAIN}");
    strbuf_append(out, pw);
    assert_int_equal(pwscheme_verify(pw, strbuf_str(out), NULL, why), 0);
    free(pw);
    strbuf_free(&why);
    strbuf_free(&out);
}

static void test_hash_roundtrip(void **state)
{
    static const struct {
        const char *scheme;
        const char *prefix;
    } schemes[] = {
        {"SHA512-CRYPT", "{SHA512-CRYPT}$6$"},
        {"SHA256-CRYPT", "{SHA256-CRYPT}$5$"},
        {"BLF-CRYPT", "{BLF-CRYPT}$2y$"},
        {"yescrypt", "{YESCRYPT}$y$"},
        {"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,"},
        {"PLAIN", "{PLAIN}pass word"},
    };
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        strbuf_reset(out);
        if (pwscheme_hash(schemes[i].scheme, "pass word", 0, out, why) < 0)
            fail_msg("hash %s: %s", schemes[i].scheme, strbuf_str(why));
        if (strncmp(strbuf_str(out), schemes[i].prefix, strlen(schemes[i].prefix)) != 0)
            fail_msg("hash %s gave %s", schemes[i].scheme, strbuf_str(out));
        assert_int_equal(pwscheme_verify("pass word", strbuf_str(out), NULL, why), 1);
        assert_int_equal(pwscheme_verify("pass words", strbuf_str(out), NULL, why), 0);
    }
    assert_int_equal(pwscheme_hash("CRYPT", "x", 0, out, why), -1);
    assert_int_equal(pwscheme_hash("NOPE", "x", 0, out, why), -1);
    strbuf_free(&why);
    strbuf_free(&out);
}

static void test_split(void **state)
{
    char scheme[32];
    const char *data;

    assert_int_equal(pwscheme_split("{plain}abc", "CRYPT", scheme, &data), 0);
    assert_string_equal(scheme, "PLAIN");
    assert_string_equal(data, "abc");
    assert_int_equal(pwscheme_split("abc", "sha512-crypt", scheme, &data), 0);
    assert_string_equal(scheme, "SHA512-CRYPT");
    assert_int_equal(pwscheme_split("{abc", "CRYPT", scheme, &data), -1);
    assert_true(pwscheme_known("blf-crypt"));
    assert_false(pwscheme_known("md5"));
}

/* RFC 7677 section 3: user "user", password "pencil". */
static void test_scram_rfc7677_keys(void **state)
{
    struct strbuf *why = strbuf_new(64), *sb = strbuf_new(64);
    struct pwscheme_scram sc, parsed;
    static const unsigned char salt[] = {
        0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
        0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};    /* W22ZaJ0SNY7soEsUEjb6gQ== */

    assert_int_equal(pwscheme_scram_derive("pencil", salt, sizeof(salt), 4096, &sc, why), 0);
    strbuf_set(sb, "{SCRAM-SHA-256}");
    assert_int_equal(pwscheme_hash("PLAIN", "pencil", 0, sb, why), 0);
    assert_int_equal(pwscheme_scram_from_stored(strbuf_str(sb), NULL, "user", &parsed, why), 1);
    assert_int_equal(pwscheme_scram_from_stored("{SHA512-CRYPT}$6$x$y", NULL, "user", &parsed, why), 0);
    assert_int_equal(pwscheme_scram_from_stored("{SCRAM-SHA-256}1", NULL, "user", &parsed, why), -1);
    /* Stored form written by us parses back to the same keys. */
    assert_int_equal(pwscheme_scram_parse("4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", &parsed, why), 0);
    assert_memory_equal(parsed.stored_key, sc.stored_key, 32);
    assert_memory_equal(parsed.server_key, sc.server_key, 32);
    strbuf_free(&why);
    strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_table),
        cmocka_unit_test(test_overlong_password),
        cmocka_unit_test(test_hash_roundtrip),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_scram_rfc7677_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
