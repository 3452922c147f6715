/*
 * dns.h - DNS lookups through libunbound: MX, A, AAAA, TXT, PTR, TLSA.
 *
 * A struct dns is one resolver context.  With a resolver address
 * ("192.0.2.53" or "127.0.0.1@5353", smtp_dns_resolver_address) every
 * query is forwarded there; without one the name servers of
 * /etc/resolv.conf are used.  With a trust anchor file the answers are
 * DNSSEC-validated and an answer says whether it is "secure" (DANE needs
 * that bit).  Files are read in dns_new(), so a daemon creates its
 * context in pre_jail and resolves after chroot.
 *
 * Lookups block for at most the context's timeout and tell the callers
 * what they need to decide: found, no such name or no data (permanent:
 * 5xx for reject_unknown_*), temporary (SERVFAIL, timeout, bogus: 4xx),
 * and for MX the null MX of RFC 7505 ("domain accepts no mail").
 *
 * Answers are bounded (DNS_RR_MAX records) and every record's data is
 * parsed with length checks by dns_rr_parse(): the bytes come from the
 * network, even through a validating library.
 */
#ifndef FACTEUR_DNS_H
#define FACTEUR_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Record types (RFC 1035, 3596, 6698). */
#define DNS_T_A     1
#define DNS_T_NS    2
#define DNS_T_CNAME 5
#define DNS_T_PTR   12
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28
#define DNS_T_TLSA  52

#define DNS_RR_MAX      100     /* records kept from one answer */
#define DNS_NAME_MAX    255     /* presentation form, no trailing dot */
#define DNS_TXT_MAX     4096    /* bytes of one TXT record's joined text */
#define DNS_TLSA_MAX    1024    /* bytes of TLSA association data */

enum dns_status {
    DNS_OK = 0,         /* records found (count > 0) */
    DNS_NXDOMAIN,       /* the name does not exist (permanent) */
    DNS_NODATA,         /* the name exists, no record of this type */
    DNS_NULLMX,         /* MX only: the domain has a null MX (RFC 7505) */
    DNS_TEMPFAIL,       /* SERVFAIL, REFUSED, timeout, DNSSEC bogus */
    DNS_INVALID,        /* the query name is not a valid domain name */
};

/* One parsed record.  Which fields are set depends on type:
 *   A, AAAA      addr (4 or 16 bytes), text = printable address
 *   MX           pref, text = exchange host (no trailing dot, "" = root)
 *   PTR, CNAME, NS  text = target name
 *   TXT          text = the character-strings joined without separator
 *   TLSA         usage, selector, mtype, data/data_len, text = hex data
 * Strings and data are owned by the record (dns_rr_clear frees them). */
struct dns_rr {
    uint16_t type;
    uint32_t ttl;
    unsigned pref;
    unsigned char addr[16];
    unsigned char usage, selector, mtype;
    unsigned char *data;
    size_t data_len;
    char *text;
};

struct dns_answer {
    enum dns_status status;
    bool secure;            /* DNSSEC validated (only with a trust anchor) */
    char *canonname;        /* name after CNAMEs, or NULL */
    size_t count;
    struct dns_rr *rr;
};

/*
 * Parse the wire-format data of one record of type type (len bytes,
 * domain names uncompressed, as libunbound returns them).  Returns 0, or
 * -1 with why for data that does not fit the type (wrong length, a label
 * past the end, a compression pointer, a name over 255 bytes, a TXT
 * over DNS_TXT_MAX ...).  rr is overwritten; clear it with dns_rr_clear.
 * Unknown types are kept as raw data with a hex text.
 */
int dns_rr_parse(uint16_t type, const unsigned char *data, size_t len,
                 struct dns_rr *rr, struct strbuf *why);
void dns_rr_clear(struct dns_rr *rr);

/* Append the presentation form of an uncompressed wire name at
 * data[0..len) to out ("mx.example.org", "" for the root).  Returns the
 * bytes used, or -1 with why. */
long dns_name_parse(const unsigned char *data, size_t len, struct strbuf *out,
                    struct strbuf *why);

struct dns;

/* A resolver context.  resolver: "addr" or "addr@port", NULL or "" for
 * /etc/resolv.conf.  trust_anchor_file: a file of DS/DNSKEY records in
 * zone format (e.g. /usr/share/dns/root.key), NULL for no validation.
 * timeout_ms bounds each lookup.  NULL with why on failure. */
struct dns *dns_new(const char *resolver, const char *trust_anchor_file,
                    int timeout_ms, struct strbuf *why);
void dns_free(struct dns **dp);

/* Serve answers for zone from local data instead of asking (unbound's
 * local-zone/local-data): zone_type "static" answers NXDOMAIN for names
 * absent from the data.  rr is one record in zone format ("mx.test. 300
 * IN A 192.0.2.1").  For tests and local overrides; call before the
 * first lookup.  -1 with why. */
int dns_add_local_zone(struct dns *d, const char *zone, const char *zone_type,
                       struct strbuf *why);
int dns_add_local_data(struct dns *d, const char *rr, struct strbuf *why);

/* Look name up (a domain name, trailing dot optional).  ans is
 * overwritten; free it with dns_answer_free even on failure.  Returns
 * ans->status; why says what went wrong for DNS_TEMPFAIL and
 * DNS_INVALID.  Records that fail dns_rr_parse are skipped with a
 * warning; if none is left the answer is DNS_TEMPFAIL. */
enum dns_status dns_lookup(struct dns *d, const char *name, uint16_t type,
                           struct dns_answer *ans, struct strbuf *why);

/* MX lookup: records sorted by preference, in random order among equal
 * preferences (RFC 5321 5.1).  A single MX with exchange "." is
 * DNS_NULLMX (count stays 1 so the caller can print it). */
enum dns_status dns_lookup_mx(struct dns *d, const char *domain,
                              struct dns_answer *ans, struct strbuf *why);

/* PTR lookup of an IPv4 or IPv6 address (text). */
enum dns_status dns_lookup_ptr(struct dns *d, const char *addr,
                               struct dns_answer *ans, struct strbuf *why);

void dns_answer_free(struct dns_answer *ans);

/* The reversed-address name of addr under suffix: "2.0.0.127.zen.example"
 * for 127.0.0.2, nibbles for IPv6; suffix "in-addr.arpa" / "ip6.arpa" for
 * PTR when suffix is NULL.  Replaces out.  -1 if addr is not an address. */
int dns_reverse_name(const char *addr, const char *suffix, struct strbuf *out);

/* True if name is a syntactically valid host/domain name (LDH labels of
 * 1-63 bytes, at most 253 bytes, one trailing dot allowed).  For DNSBL
 * and TXT names with '_' use underscore_ok. */
bool dns_name_valid(const char *name, bool underscore_ok);

/* "NXDOMAIN", "no data", "null MX", "temporary failure" ... */
const char *dns_status_str(enum dns_status st);
/* "A", "MX" ... or NULL; and back (case-insensitive), 0 if unknown. */
const char *dns_type_name(uint16_t type);
uint16_t dns_type_lookup(const char *name);

#endif
