/*
 * test_cidr.c - addresses, networks and network lists: IPv4, IPv6 with
 * and without brackets, mapped addresses, prefix bounds, host bits past
 * the prefix, negation, malformed and over-long entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "cidr.h"
#include "strbuf.h"

struct addr_case {
    const char *in;
    int family;         /* 0: not an address */
};

static const struct addr_case addr_cases[] = {
    {"192.0.2.1", AF_INET},
    {"[192.0.2.1]", AF_INET},
    {"2001:db8::1", AF_INET6},
    {"[2001:db8::1]", AF_INET6},
    {"::ffff:192.0.2.1", AF_INET},
    {"::1", AF_INET6},
    {"", 0},
    {"[]", 0},
    {"[", 0},
    {"192.0.2", 0},
    {"192.0.2.256", 0},
    {"192.0.2.1 ", 0},
    {"example.org", 0},
    {"2001:db8::1::2", 0},
    {"2001:db8:0:0:0:0:0:0:1", 0},
    {"1111111111111111111111111111111111111111111111111111111111111111", 0},
};

static void test_addr(void **state)
{
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];
        unsigned char a[16];
        int family = -1;
        int rc = cidr_addr_parse(c->in, strlen(c->in), &family, a);

        if (c->family == 0) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(family, c->family);
        }
    }
    /* Exact length: bytes past len are never read. */
    {
        unsigned char a[16];
        int family;

        assert_int_equal(cidr_addr_parse("10.0.0.1junk", 8, &family, a), 0);
        assert_int_equal(a[3], 1);
        assert_int_equal(cidr_addr_parse("10.0\0.0.1", 9, &family, a), -1);
    }
}

struct net_case {
    const char *in;
    const char *formatted;  /* NULL: parse error */
    const char *why_has;    /* part of the error text */
};

static const struct net_case net_cases[] = {
    {"192.0.2.0/24", "192.0.2.0/24", NULL},
    {"192.0.2.7", "192.0.2.7/32", NULL},
    {"0.0.0.0/0", "0.0.0.0/0", NULL},
    {"[2001:db8::]/32", "[2001:db8::]/32", NULL},
    {"2001:db8::/32", "[2001:db8::]/32", NULL},
    {"[::1]/128", "[::1]/128", NULL},
    {"::1", "[::1]/128", NULL},
    {"!10.0.0.0/8", "!10.0.0.0/8", NULL},
    {"[::ffff:192.0.2.0]/120", "192.0.2.0/24", NULL},
    {"192.0.2.1/24", NULL, "perhaps you should use \"192.0.2.0/24\""},
    {"[2001:db8::1]/32", NULL, "perhaps you should use \"[2001:db8::]/32\""},
    {"192.0.2.0/33", NULL, "bad prefix"},
    {"192.0.2.0/", NULL, "bad prefix"},
    {"192.0.2.0/-1", NULL, "bad prefix"},
    {"192.0.2.0/2x", NULL, "bad prefix"},
    {"[::]/129", NULL, "bad prefix"},
    {"[::ffff:192.0.2.0]/95", NULL, "bad prefix"},
    {"host.example.org", NULL, "not an IPv4 or IPv6"},
    {"hash:/etc/x", NULL, "not an IPv4 or IPv6"},
    {"", NULL, "not an IPv4"},
    {"!", NULL, "not an IPv4"},
    {"1111111111111111111111111111111111111111111111111111111111111111111111111111"
     "1111111111111111111111111111111111111111111111111", NULL, "longer than"},
};

static void test_net(void **state)
{
    struct strbuf *why = strbuf_new(64), *out = strbuf_new(64);

    for (size_t i = 0; i < sizeof(net_cases) / sizeof(net_cases[0]); i++) {
        const struct net_case *c = &net_cases[i];
        struct cidr net;
        int rc;

        strbuf_reset(why);
        rc = cidr_parse(c->in, strlen(c->in), &net, why);
        if (c->formatted == NULL) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(strbuf_str(why), c->why_has));
            continue;
        }
        assert_int_equal(rc, 0);
        strbuf_reset(out);
        cidr_format(&net, out);
        assert_string_equal(strbuf_str(out), c->formatted);
    }
    strbuf_free(&why);
    strbuf_free(&out);
}

struct match_case {
    const char *list;
    const char *addr;
    int want;
};

static const struct match_case match_cases[] = {
    {"127.0.0.0/8 [::1]/128", "127.0.0.1", 1},
    {"127.0.0.0/8 [::1]/128", "127.255.1.2", 1},
    {"127.0.0.0/8 [::1]/128", "128.0.0.1", 0},
    {"127.0.0.0/8 [::1]/128", "::1", 1},
    {"127.0.0.0/8 [::1]/128", "::2", 0},
    {"127.0.0.0/8, [::1]/128", "::ffff:127.0.0.1", 1},
    {"192.0.2.128/25", "192.0.2.127", 0},
    {"192.0.2.128/25", "192.0.2.128", 1},
    {"192.0.2.128/25", "192.0.2.255", 1},
    {"10.0.0.0/7", "11.255.255.255", 1},
    {"10.0.0.0/7", "12.0.0.0", 0},
    {"[2001:db8::]/33", "2001:db8:7fff::1", 1},
    {"[2001:db8::]/33", "2001:db8:8000::1", 0},
    {"!192.0.2.1 192.0.2.0/24", "192.0.2.1", 0},
    {"!192.0.2.1 192.0.2.0/24", "192.0.2.2", 1},
    {"192.0.2.0/24 !192.0.2.1", "192.0.2.1", 1},
    {"0.0.0.0/0", "203.0.113.9", 1},
    {"0.0.0.0/0", "2001:db8::1", 0},
    {"[::]/0", "2001:db8::1", 1},
    {"", "127.0.0.1", 0},
    {"127.0.0.0/8", "", 0},
    {"127.0.0.0/8", "localhost", 0},
    {"127.0.0.0/8", "127.0.0.1%lo", 0},
};

static void test_list(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        struct cidr_list *l = cidr_list_parse(c->list, why);

        assert_non_null(l);
        assert_int_equal(cidr_list_match(l, c->addr), c->want);
        cidr_list_free(&l);
        assert_null(l);
    }
    assert_int_equal(cidr_list_match(NULL, "127.0.0.1"), 0);
    strbuf_free(&why);
}

static void test_list_errors(void **state)
{
    struct strbuf *why = strbuf_new(64), *big = strbuf_new(1024);
    struct cidr_list *l;

    l = cidr_list_parse("127.0.0.0/8 mail.example.org", why);
    assert_null(l);
    assert_non_null(strstr(strbuf_str(why), "mail.example.org"));
    l = cidr_list_parse(NULL, why);
    assert_non_null(l);
    assert_int_equal(cidr_list_count(l), 0);
    cidr_list_free(&l);
    cidr_list_free(&l);
    cidr_list_free(NULL);
    /* The entry count is bounded. */
    for (int i = 0; i <= CIDR_LIST_MAX; i++)
        strbuf_appendf(big, "10.%d.%d.0/24 ", (i >> 8) & 255, i & 255);
    l = cidr_list_parse(strbuf_str(big), why);
    assert_null(l);
    assert_non_null(strstr(strbuf_str(why), "more than"));
    strbuf_free(&why);
    strbuf_free(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_net),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
