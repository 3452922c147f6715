/*
 * test_dns.c - lib/dns without the network: record data parsing (good,
 * truncated, over-long, compressed, trailing bytes), names, reversed
 * addresses, and lookups answered from local zones of the libunbound
 * context (MX order, null MX, NXDOMAIN, no data, TXT, TLSA, PTR).  The
 * context forwards to 127.0.0.1 port 1, where nothing answers, so no
 * query can leave the host.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dns.h"
#include "strbuf.h"

struct rr_case {
    const char *name;
    uint16_t type;
    const char *data;
    size_t len;
    const char *text;       /* NULL: parse error */
    unsigned pref;
};

#define D(s) s, sizeof(s) - 1

static const struct rr_case rr_cases[] = {
    {"a", DNS_T_A, D("\x7f\x00\x00\x02"), "127.0.0.2", 0},
    {"a short", DNS_T_A, D("\x7f\x00\x00"), NULL, 0},
    {"a long", DNS_T_A, D("\x7f\x00\x00\x02\x01"), NULL, 0},
    {"aaaa", DNS_T_AAAA, D("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"), "2001:db8::1", 0},
    {"aaaa short", DNS_T_AAAA, D("\x20\x01"), NULL, 0},
    {"mx", DNS_T_MX, D("\x00\x0a\x02mx\x07" "example\x03org\x00"), "mx.example.org", 10},
    {"mx null", DNS_T_MX, D("\x00\x00\x00"), "", 0},
    {"mx pref only", DNS_T_MX, D("\x00\x0a"), NULL, 0},
    {"mx trailing", DNS_T_MX, D("\x00\x0a\x02mx\x00\x01"), NULL, 0},
    {"mx unterminated", DNS_T_MX, D("\x00\x0a\x02mx"), NULL, 0},
    {"mx label past end", DNS_T_MX, D("\x00\x0a\x09mx\x00"), NULL, 0},
    {"mx compressed", DNS_T_MX, D("\x00\x0a\xc0\x0c"), NULL, 0},
    {"mx reserved label", DNS_T_MX, D("\x00\x0a\x41" "a"), NULL, 0},
    {"ptr escaped", DNS_T_PTR, D("\x03" "a b\x01\n\x00"), "a\\032b.\\010", 0},
    {"ptr root", DNS_T_PTR, D("\x00"), "", 0},
    {"ptr empty", DNS_T_PTR, D(""), NULL, 0},
    {"cname", DNS_T_CNAME, D("\x01" "c\x00"), "c", 0},
    {"txt", DNS_T_TXT, D("\x05hello\x06 world"), "hello world", 0},
    {"txt control bytes", DNS_T_TXT, D("\x03" "a\r\n"), "a??", 0},
    {"txt empty string", DNS_T_TXT, D("\x00"), "", 0},
    {"txt empty", DNS_T_TXT, D(""), NULL, 0},
    {"txt past end", DNS_T_TXT, D("\x05" "abc"), NULL, 0},
    {"tlsa", DNS_T_TLSA, D("\x03\x01\x01\xab\xcd"), "abcd", 0},
    {"tlsa short", DNS_T_TLSA, D("\x03\x01\x01"), NULL, 0},
    {"unknown type", 99, D("\x01\xff"), "01ff", 0},
};

static void test_rr_parse(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(rr_cases) / sizeof(rr_cases[0]); i++) {
        const struct rr_case *c = &rr_cases[i];
        struct dns_rr rr;
        int rc = dns_rr_parse(c->type, (const unsigned char *)c->data, c->len, &rr, why);

        if (c->text == NULL) {
            if (rc != -1)
                fail_msg("case %s: parsed as \"%s\"", c->name, rr.text);
            assert_null(rr.text);
            assert_true(strbuf_len(why) > 0);
            strbuf_reset(why);
            continue;
        }
        if (rc != 0)
            fail_msg("case %s: %s", c->name, strbuf_str(why));
        assert_string_equal(rr.text, c->text);
        assert_int_equal(rr.pref, c->pref);
        assert_int_equal(rr.type, c->type);
        dns_rr_clear(&rr);
    }
    strbuf_free(&why);
}

static void test_rr_bounds(void **state)
{
    struct strbuf *why = strbuf_new(64), *buf = strbuf_new(8192);
    struct dns_rr rr;

    /* A name of 4 labels of 63 bytes is 257 wire bytes: too long. */
    for (int l = 0; l < 4; l++) {
        strbuf_appendc(buf, 63);
        for (int i = 0; i < 63; i++)
            strbuf_appendc(buf, 'a');
    }
    strbuf_appendc(buf, 0);
    assert_int_equal(dns_rr_parse(DNS_T_PTR, (const unsigned char *)strbuf_str(buf),
                                  strbuf_len(buf), &rr, why), -1);
    assert_non_null(strstr(strbuf_str(why), "255"));
    /* 3 labels of 63 and one of 61: 255 bytes exactly is fine. */
    strbuf_truncate(buf, 3 * 64);
    strbuf_appendc(buf, 61);
    for (int i = 0; i < 61; i++)
        strbuf_appendc(buf, 'b');
    strbuf_appendc(buf, 0);
    assert_int_equal(strbuf_len(buf), 255);
    assert_int_equal(dns_rr_parse(DNS_T_PTR, (const unsigned char *)strbuf_str(buf),
                                  strbuf_len(buf), &rr, why), 0);
    assert_int_equal(strlen(rr.text), 253);
    dns_rr_clear(&rr);
    /* TXT over DNS_TXT_MAX. */
    strbuf_reset(buf);
    for (int s = 0; s < 17; s++) {
        strbuf_appendc(buf, (char)255);
        for (int i = 0; i < 255; i++)
            strbuf_appendc(buf, 't');
    }
    assert_int_equal(dns_rr_parse(DNS_T_TXT, (const unsigned char *)strbuf_str(buf),
                                  strbuf_len(buf), &rr, why), -1);
    /* TLSA data over DNS_TLSA_MAX. */
    strbuf_reset(buf);
    for (int i = 0; i < DNS_TLSA_MAX + 4; i++)
        strbuf_appendc(buf, 1);
    assert_int_equal(dns_rr_parse(DNS_T_TLSA, (const unsigned char *)strbuf_str(buf),
                                  strbuf_len(buf), &rr, why), -1);
    dns_rr_clear(NULL);
    strbuf_free(&why);
    strbuf_free(&buf);
}

struct name_case {
    const char *name;
    bool valid, valid_us;
};

static const struct name_case name_cases[] = {
    {"example.org", true, true},
    {"example.org.", true, true},
    {"a", true, true},
    {"_25._tcp.mx.example.org", false, true},
    {"", false, false},
    {".", false, false},
    {"a..b", false, false},
    {".a", false, false},
    {"-a.b", false, false},
    {"a-.b", false, false},
    {"a.b-", false, false},
    {"a b", false, false},
    {"xn--bcher-kva.example", true, true},
    {"a123456789012345678901234567890123456789012345678901234567890123.b", false, false},
    {"a12345678901234567890123456789012345678901234567890123456789012.b", true, true},
};

static void test_names(void **state)
{
    struct strbuf *out = strbuf_new(64);

    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        assert_int_equal(dns_name_valid(name_cases[i].name, false), name_cases[i].valid);
        assert_int_equal(dns_name_valid(name_cases[i].name, true), name_cases[i].valid_us);
    }
    assert_int_equal(dns_reverse_name("127.0.0.2", "rbl.test", out), 0);
    assert_string_equal(strbuf_str(out), "2.0.0.127.rbl.test");
    assert_int_equal(dns_reverse_name("192.0.2.10", NULL, out), 0);
    assert_string_equal(strbuf_str(out), "10.2.0.192.in-addr.arpa");
    assert_int_equal(dns_reverse_name("2001:db8::1", NULL, out), 0);
    assert_string_equal(strbuf_str(out),
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_int_equal(dns_reverse_name("::ffff:10.1.2.3", "x", out), 0);
    assert_string_equal(strbuf_str(out), "3.2.1.10.x");
    assert_int_equal(dns_reverse_name("not-an-address", NULL, out), -1);
    assert_int_equal(dns_reverse_name(NULL, NULL, out), -1);
    assert_string_equal(dns_type_name(DNS_T_TLSA), "TLSA");
    assert_null(dns_type_name(999));
    assert_int_equal(dns_type_lookup("mx"), DNS_T_MX);
    assert_int_equal(dns_type_lookup("bogus"), 0);
    assert_string_equal(dns_status_str(DNS_NULLMX), "null MX");
    strbuf_free(&out);
}

static const char *const local_data[] = {
    "example.test. 300 IN MX 20 mx2.example.test.",
    "example.test. 300 IN MX 10 mx1.example.test.",
    "example.test. 300 IN MX 10 mx1b.example.test.",
    "example.test. 300 IN MX 30 mx3.example.test.",
    "example.test. 300 IN TXT \"v=spf1\" \" -all\"",
    "mx1.example.test. 300 IN A 192.0.2.1",
    "mx1.example.test. 300 IN AAAA 2001:db8::1",
    "_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 00112233445566778899aabbccddeeff",
    "nomail.test. 300 IN MX 0 .",
    "1.2.0.192.in-addr.arpa. 300 IN PTR mx1.example.test.",
};

static void test_local_lookups(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct dns *d = dns_new("127.0.0.1@1", NULL, 500, why);
    struct dns_answer ans;
    unsigned seen_first[2] = {0, 0};

    assert_non_null(d);
    assert_int_equal(dns_add_local_zone(d, "test.", "static", why), 0);
    assert_int_equal(dns_add_local_zone(d, "2.0.192.in-addr.arpa.", "static", why), 0);
    for (size_t i = 0; i < sizeof(local_data) / sizeof(local_data[0]); i++)
        assert_int_equal(dns_add_local_data(d, local_data[i], why), 0);
    assert_int_equal(dns_add_local_data(d, "garbage here", why), -1);

    /* MX: sorted by preference; both orders of the two 10s show up. */
    for (int round = 0; round < 64; round++) {
        assert_int_equal(dns_lookup_mx(d, "example.test", &ans, why), DNS_OK);
        assert_int_equal(ans.count, 4);
        assert_int_equal(ans.rr[0].pref, 10);
        assert_int_equal(ans.rr[1].pref, 10);
        assert_int_equal(ans.rr[2].pref, 20);
        assert_string_equal(ans.rr[3].text, "mx3.example.test");
        seen_first[strcmp(ans.rr[0].text, "mx1.example.test") == 0]++;
        dns_answer_free(&ans);
    }
    assert_true(seen_first[0] > 0 && seen_first[1] > 0);

    assert_int_equal(dns_lookup_mx(d, "nomail.test", &ans, why), DNS_NULLMX);
    assert_int_equal(ans.count, 1);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup_mx(d, "absent.test", &ans, why), DNS_NXDOMAIN);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup_mx(d, "mx1.example.test", &ans, why), DNS_NODATA);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup(d, "mx1.example.test", DNS_T_A, &ans, why), DNS_OK);
    assert_string_equal(ans.rr[0].text, "192.0.2.1");
    assert_false(ans.secure);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup(d, "mx1.example.test.", DNS_T_AAAA, &ans, why), DNS_OK);
    assert_string_equal(ans.rr[0].text, "2001:db8::1");
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup(d, "example.test", DNS_T_TXT, &ans, why), DNS_OK);
    assert_string_equal(ans.rr[0].text, "v=spf1 -all");
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup(d, "_25._tcp.mx1.example.test", DNS_T_TLSA, &ans, why), DNS_OK);
    assert_int_equal(ans.rr[0].usage, 3);
    assert_int_equal(ans.rr[0].data_len, 16);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup_ptr(d, "192.0.2.1", &ans, why), DNS_OK);
    assert_string_equal(ans.rr[0].text, "mx1.example.test");
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup_ptr(d, "192.0.2.2", &ans, why), DNS_NXDOMAIN);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup_ptr(d, "nonsense", &ans, why), DNS_INVALID);
    dns_answer_free(&ans);
    assert_int_equal(dns_lookup(d, "bad..name", DNS_T_A, &ans, why), DNS_INVALID);
    dns_answer_free(&ans);
    /* Outside the local zones the query goes to 127.0.0.1:1: nobody
     * answers, so it fails temporarily (never permanently). */
    strbuf_reset(why);
    assert_int_equal(dns_lookup(d, "www.example.com", DNS_T_A, &ans, why), DNS_TEMPFAIL);
    assert_true(strbuf_len(why) > 0);
    dns_answer_free(&ans);
    dns_free(&d);
    dns_free(&d);
    strbuf_free(&why);
}

static void test_bad_setup(void **state)
{
    struct strbuf *why = strbuf_new(64);

    assert_null(dns_new("not an address", NULL, 1000, why));
    assert_true(strbuf_len(why) > 0);
    strbuf_reset(why);
    assert_null(dns_new("127.0.0.1", "/nonexistent/root.key", 1000, why));
    assert_non_null(strstr(strbuf_str(why), "root.key"));
    strbuf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rr_parse),
        cmocka_unit_test(test_rr_bounds),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_local_lookups),
        cmocka_unit_test(test_bad_setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
