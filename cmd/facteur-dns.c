/*
 * facteur-dns - ask DNS what facteur's daemons would see.
 *
 *   facteur-dns [-c confdir] [-r resolver] [-t timeout] [-T anchor_file]
 *               mx|a|aaaa|txt|tlsa|ptr|cname|ns NAME
 *
 * Uses lib/dns exactly as smtpd and smtp do: the resolver is
 * smtp_dns_resolver_address from main.cf unless -r gives one ("addr" or
 * "addr@port"), else /etc/resolv.conf.  With -T (or with
 * smtp_dns_support_level = dnssec, the anchor smtp_dns_trust_anchor_file)
 * answers are validated and marked "secure" or "insecure".  Prints one
 * record a line, MX in the order the SMTP client would try them;
 * "ptr" takes an IP address.  Exit 0 when records were found, 1 for
 * NXDOMAIN, no data or a null MX, 2 for a temporary failure, 3 for usage
 * or setup errors.  A debugging tool for administrators.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "params.h"
#include "strbuf.h"

static void usage(void)
{
    fprintf(stderr, "usage: facteur-dns [-c confdir] [-r resolver[@port]] [-t seconds] "
            "[-T trust_anchor_file] mx|a|aaaa|txt|tlsa|ptr|cname|ns name\n");
    exit(3);
}

static void print_rr(const struct dns_rr *rr)
{
    const char *tname = dns_type_name(rr->type);

    switch (rr->type) {
    case DNS_T_MX:
        printf("MX %u %s\n", rr->pref, rr->text[0] ? rr->text : ".");
        break;
    case DNS_T_TXT:
        printf("TXT \"%s\"\n", rr->text);
        break;
    case DNS_T_TLSA:
        printf("TLSA %u %u %u %s\n", rr->usage, rr->selector, rr->mtype, rr->text);
        break;
    default:
        printf("%s %s\n", tname ? tname : "?", rr->text);
        break;
    }
}

int main(int argc, char **argv)
{
    const char *confdir = NULL, *resolver = NULL, *anchor = NULL;
    long timeout = 10;
    int ch, rc;
    struct strbuf *why = strbuf_new(128);
    struct dns *d;
    struct dns_answer ans;
    enum dns_status st;
    uint16_t type;

    log_init("facteur-dns", LOG_DEST_STDERR);
    while ((ch = getopt(argc, argv, "c:r:t:T:")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'r':
            resolver = optarg;
            break;
        case 't':
            if (conf_parse_time(optarg, &timeout, why) < 0 || timeout < 1 || timeout > 600) {
                fprintf(stderr, "facteur-dns: bad timeout \"%s\"\n", optarg);
                exit(3);
            }
            break;
        case 'T':
            anchor = optarg;
            break;
        default:
            usage();
        }
    }
    if (argc - optind != 2)
        usage();
    if ((type = dns_type_lookup(argv[optind])) == 0) {
        fprintf(stderr, "facteur-dns: unknown record type \"%s\"\n", argv[optind]);
        usage();
    }
    if (conf_load(confdir, why) < 0) {
        fprintf(stderr, "facteur-dns: %s\n", strbuf_str(why));
        exit(3);
    }
    if (resolver == NULL)
        resolver = var_smtp_dns_resolver_address;
    if (anchor == NULL && var_smtp_dns_support_level
        && strcasecmp(var_smtp_dns_support_level, "dnssec") == 0)
        anchor = var_smtp_dns_trust_anchor_file;
    if ((d = dns_new(resolver, anchor, (int)timeout * 1000, why)) == NULL) {
        fprintf(stderr, "facteur-dns: %s\n", strbuf_str(why));
        exit(3);
    }
    strbuf_reset(why);
    if (type == DNS_T_MX)
        st = dns_lookup_mx(d, argv[optind + 1], &ans, why);
    else if (type == DNS_T_PTR)
        st = dns_lookup_ptr(d, argv[optind + 1], &ans, why);
    else
        st = dns_lookup(d, argv[optind + 1], type, &ans, why);
    if (anchor && *anchor && (st == DNS_OK || st == DNS_NULLMX))
        printf(";; %s\n", ans.secure ? "secure" : "insecure");
    if (ans.canonname && strcasecmp(ans.canonname, argv[optind + 1]) != 0)
        printf(";; canonical name %s\n", ans.canonname);
    switch (st) {
    case DNS_OK:
        for (size_t i = 0; i < ans.count; i++)
            print_rr(&ans.rr[i]);
        rc = 0;
        break;
    case DNS_NULLMX:
        printf(";; null MX: the domain accepts no mail (RFC 7505)\n");
        rc = 1;
        break;
    case DNS_NXDOMAIN:
    case DNS_NODATA:
        printf(";; %s\n", dns_status_str(st));
        rc = 1;
        break;
    case DNS_INVALID:
        fprintf(stderr, "facteur-dns: %s\n", strbuf_str(why));
        rc = 3;
        break;
    default:
        fprintf(stderr, "facteur-dns: %s: %s\n", dns_status_str(st), strbuf_str(why));
        rc = 2;
        break;
    }
    dns_answer_free(&ans);
    dns_free(&d);
    strbuf_free(&why);
    conf_unload();
    return rc;
}
