/*
 * test_restrict.c - lib/restrict: smtpd restriction lists evaluated on
 * session contexts, configured from main.cf text (conf_load_buffer) with
 * inline: tables and a resolver context answering from local zones only
 * (it forwards to 127.0.0.1 port 1, where nothing listens).
 *
 * Tables of cases: relay decisions and the address tricks, unlisted
 * recipients per address class, access tables (client, HELO, sender,
 * recipient: results, parent domains, address prefixes), non-FQDN and
 * invalid names, unknown domains (NXDOMAIN, null MX, timeout), DNSBL,
 * sender login maps, classes, warn_if_reject, defer_if_permit,
 * smtpd_delay_reject; then configuration errors, access values, DNSBL
 * filters, domain lists and the log line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "restrict.h"
#include "strbuf.h"

static const char main_cf[] =
    "myhostname = mx.local.example\n"
    "mydomain = local.example\n"
    "mydestination = local.example, localhost\n"
    "mynetworks = 192.0.2.0/24 [2001:db8::]/32\n"
    "relay_domains = relay.example\n"
    "virtual_alias_domains = valias.example\n"
    "virtual_alias_maps = inline:{ info@valias.example=bob, sales@local.example=alice }\n"
    "virtual_mailbox_domains = vbox.example\n"
    "virtual_mailbox_maps = inline:{ carol@vbox.example=carol/ }\n"
    "local_recipient_maps = inline:{ alice=1, bob=1, postmaster=1, blocked=1, tmp=1 }\n"
    "recipient_delimiter = +\n"
    "unknown_address_reject_code = 550\n"
    "smtpd_restriction_classes = strict\n"
    "strict = reject_unknown_sender_domain, reject_non_fqdn_sender\n"
    "smtpd_client_restrictions = check_client_access inline:{ 203.0.113.66=REJECT,"
    " { evil.example = REJECT listed here }, 203.0.114=OK, 198.51.101.99=DUNNO, 198.51.101=REJECT },"
    " reject_rbl_client rbl.example, reject_rbl_client rbl2.example=127.0.0.[3..4]\n"
    "smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\n"
    "smtpd_sender_restrictions = reject_sender_login_mismatch,"
    " check_sender_access inline:{ spammer@bad.example=REJECT, bad2.example=REJECT,"
    " picky.example=strict, <>=OK, { warn.example = WARN noted } },"
    " reject_non_fqdn_sender, reject_unknown_sender_domain\n"
    "smtpd_sender_login_maps = inline:{ alice@local.example=alice,"
    " { shared@local.example = alice bob } }\n"
    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,"
    " reject_unauth_destination\n"
    "smtpd_recipient_restrictions = check_recipient_access inline:{"
    " { blocked@local.example = REJECT go away }, tmp@local.example=DEFER,"
    " { coded@local.example = 550 5.1.6 moved elsewhere } },"
    " reject_non_fqdn_recipient, reject_unknown_recipient_domain\n"
    "smtpd_data_restrictions = reject_multi_recipient_bounce\n";

static const char *const zone_data[] = {
    "known.example. 300 IN MX 10 mx.known.example.",
    "hostonly.example. 300 IN A 192.0.2.80",
    "nullmx.example. 300 IN MX 0 .",
    "client.example. 300 IN A 198.51.100.7",
    "2.0.0.127.rbl.example. 300 IN A 127.0.0.2",
    "2.0.0.127.rbl.example. 300 IN TXT \"listed for testing\"",
    "3.0.0.127.rbl2.example. 300 IN A 127.0.0.3",
    "5.0.0.127.rbl2.example. 300 IN A 127.0.0.9",
    "spamdomain.example.dbl.example. 300 IN A 127.0.1.2",
    "spamdomain.example.dbl.example. 300 IN TXT \"bad domain\"",
};

struct fixture {
    struct dns *dns;
    struct restrictions *r;
};

static struct dns *test_dns(void)
{
    struct strbuf *why = strbuf_new(64);
    struct dns *d = dns_new("127.0.0.1@1", NULL, 300, why);

    assert_non_null(d);
    assert_int_equal(dns_add_local_zone(d, "example.", "static", why), 0);
    for (size_t i = 0; i < sizeof(zone_data) / sizeof(zone_data[0]); i++)
        assert_int_equal(dns_add_local_data(d, zone_data[i], why), 0);
    strbuf_free(&why);
    return d;
}

static struct restrictions *load(const char *text, struct dns *d, struct strbuf *why)
{
    strbuf_reset(why);
    if (conf_load_buffer("main.cf", text, strlen(text), why) < 0)
        fail_msg("main.cf: %s", strbuf_str(why));
    return restrict_new(d, why);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct strbuf *why = strbuf_new(64);

    log_init("test_restrict", LOG_DEST_STDERR);
    f->dns = test_dns();
    f->r = load(main_cf, f->dns, why);
    if (f->r == NULL)
        fail_msg("restrict_new: %s", strbuf_str(why));
    strbuf_free(&why);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    restrict_free(&f->r);
    dns_free(&f->dns);
    conf_unload();
    free(f);
    return 0;
}

struct check_case {
    const char *name;
    enum restrict_stage stage;
    const char *client_name, *client_addr, *helo, *sender, *recipient, *sasl_user;
    unsigned rcpt_count;
    int want;               /* RESTRICT_OK, _REJECT, _DEFER */
    const char *reply;      /* exact reply, or NULL for RESTRICT_OK */
};

#define OUT "client.example", "198.51.100.7", "client.example"
#define RCPT RESTRICT_RCPT

static const struct check_case check_cases[] = {
    /* Relaying. */
    {"local user", RCPT, OUT, "x@known.example", "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"local user, extension", RCPT, OUT, "x@known.example", "alice+tag@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"local user, case", RCPT, OUT, "x@known.example", "Alice@LOCAL.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"bare postmaster", RCPT, OUT, "x@known.example", "Postmaster", NULL, 0, RESTRICT_OK, NULL},
    {"relay from outside", RCPT, OUT, "x@known.example", "x@elsewhere.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <x@elsewhere.example>: Relay access denied"},
    {"relay from mynetworks", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "x@known.example", NULL, 0, RESTRICT_OK, NULL},
    {"relay from mynetworks v6", RCPT, "unknown", "2001:db8::5", "h.example", "x@known.example",
     "x@known.example", NULL, 0, RESTRICT_OK, NULL},
    {"relay when authenticated", RCPT, OUT, "shared@local.example", "x@known.example", "bob", 0,
     RESTRICT_OK, NULL},
    {"relay domain", RCPT, OUT, "x@known.example", "any@relay.example", NULL, 0, RESTRICT_OK, NULL},
    {"relay subdomain", RCPT, OUT, "x@known.example", "any@sub.relay.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"mydestination has no subdomains", RCPT, OUT, "x@known.example", "x@sub.local.example",
     NULL, 0, RESTRICT_REJECT, "554 5.7.1 <x@sub.local.example>: Relay access denied"},
    /* Address tricks. */
    {"percent hack", RCPT, OUT, "x@known.example", "user%elsewhere.example@local.example", NULL,
     0, RESTRICT_REJECT, "554 5.7.1 <user%elsewhere.example@local.example>: Relay access denied"},
    {"quoted at", RCPT, OUT, "x@known.example", "\"user@elsewhere.example\"@local.example", NULL,
     0, RESTRICT_REJECT,
     "554 5.7.1 <\"user@elsewhere.example\"@local.example>: Relay access denied"},
    {"double at", RCPT, OUT, "x@known.example", "user@elsewhere.example@local.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <user@elsewhere.example@local.example>: Relay access denied"},
    {"bang path", RCPT, OUT, "x@known.example", "elsewhere.example!user@local.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <elsewhere.example!user@local.example>: Relay access denied"},
    {"percent to a relay domain", RCPT, OUT, "x@known.example", "user%relay.example@local.example",
     NULL, 0, RESTRICT_REJECT, "550 5.1.1 <user%relay.example@local.example>: Recipient address "
     "rejected: User unknown in local recipient table"},
    {"trick from mynetworks", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "user%elsewhere.example@local.example", NULL, 0, RESTRICT_REJECT,
     "550 5.1.1 <user%elsewhere.example@local.example>: Recipient address rejected: "
     "User unknown in local recipient table"},
    /* Unlisted recipients, per class. */
    {"unknown local", RCPT, OUT, "x@known.example", "nobody@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.1 <nobody@local.example>: Recipient address rejected: "
     "User unknown in local recipient table"},
    {"virtual alias of a local domain", RCPT, OUT, "x@known.example", "sales@local.example",
     NULL, 0, RESTRICT_OK, NULL},
    {"virtual alias", RCPT, OUT, "x@known.example", "info@valias.example", NULL, 0, RESTRICT_OK,
     NULL},
    {"unknown virtual alias", RCPT, OUT, "x@known.example", "nope@valias.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.1 <nope@valias.example>: Recipient address rejected: "
     "User unknown in virtual alias table"},
    {"virtual mailbox", RCPT, OUT, "x@known.example", "carol@vbox.example", NULL, 0, RESTRICT_OK,
     NULL},
    {"unknown virtual mailbox", RCPT, OUT, "x@known.example", "dave@vbox.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.1 <dave@vbox.example>: Recipient address rejected: "
     "User unknown in virtual mailbox table"},
    /* Recipient access table. */
    {"recipient REJECT text", RCPT, OUT, "x@known.example", "blocked@local.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <blocked@local.example>: Recipient address rejected: go away"},
    {"recipient REJECT, extension", RCPT, OUT, "x@known.example", "blocked+x@local.example",
     NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <blocked+x@local.example>: Recipient address rejected: go away"},
    {"recipient DEFER", RCPT, OUT, "x@known.example", "tmp@local.example", NULL, 0,
     RESTRICT_DEFER, "450 4.7.1 <tmp@local.example>: Recipient address rejected: Access denied"},
    {"recipient 550 with enhanced code", RCPT, OUT, "x@known.example", "coded@local.example",
     NULL, 0, RESTRICT_REJECT,
     "550 5.1.6 <coded@local.example>: Recipient address rejected: moved elsewhere"},
    {"non-fqdn recipient", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "user@nodots", NULL, 0, RESTRICT_REJECT,
     "504 5.5.2 <user@nodots>: Recipient address rejected: need fully-qualified address"},
    {"unknown recipient domain", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "user@nxdomain.example", NULL, 0, RESTRICT_REJECT,
     "550 5.1.2 <user@nxdomain.example>: Recipient address rejected: Domain not found"},
    {"null MX recipient", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "user@nullmx.example", NULL, 0, RESTRICT_REJECT, "556 5.1.10 <user@nullmx.example>: "
     "Recipient address rejected: Domain nullmx.example does not accept mail (nullMX)"},
    /* Sender restrictions (delayed to RCPT). */
    {"sender REJECT", RCPT, OUT, "spammer@bad.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <spammer@bad.example>: Sender address rejected: Access denied"},
    {"sender parent domain", RCPT, OUT, "x@deep.sub.bad2.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT,
     "554 5.7.1 <x@deep.sub.bad2.example>: Sender address rejected: Access denied"},
    {"null sender", RCPT, OUT, "", "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"sender WARN goes on", RCPT, OUT, "x@warn.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.8 <x@warn.example>: Sender address rejected: Domain not found"},
    {"sender class via table", RCPT, OUT, "x@picky.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.8 <x@picky.example>: Sender address rejected: Domain not found"},
    {"non-fqdn sender", RCPT, OUT, "alice@localhost", "alice@local.example", NULL, 0,
     RESTRICT_REJECT,
     "504 5.5.2 <alice@localhost>: Sender address rejected: need fully-qualified address"},
    {"sender without domain", RCPT, OUT, "alice", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "504 5.5.2 <alice>: Sender address rejected: need fully-qualified address"},
    {"unknown sender domain", RCPT, OUT, "x@nxdomain.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.8 <x@nxdomain.example>: Sender address rejected: Domain not found"},
    {"sender domain with A only", RCPT, OUT, "x@hostonly.example", "alice@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"null MX sender", RCPT, OUT, "x@nullmx.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.7.27 <x@nullmx.example>: Sender address rejected: "
     "Domain nullmx.example does not accept mail (nullMX)"},
    {"sender domain lookup times out", RCPT, OUT, "x@timeout.facteur-test.com",
     "alice@local.example", NULL, 0, RESTRICT_DEFER,
     "450 4.1.8 <x@timeout.facteur-test.com>: Sender address rejected: Domain not found"},
    {"sender of a literal", RCPT, OUT, "x@[192.0.2.1]", "alice@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    /* Sender login maps. */
    {"login owns sender", RCPT, OUT, "alice@local.example", "bob@local.example", "alice", 0,
     RESTRICT_OK, NULL},
    {"login shares sender", RCPT, OUT, "shared@local.example", "bob@local.example", "bob", 0,
     RESTRICT_OK, NULL},
    {"login does not own sender", RCPT, OUT, "alice@local.example", "bob@local.example", "bob", 0,
     RESTRICT_REJECT, "553 5.7.1 <alice@local.example>: Sender address rejected: "
     "not owned by user bob"},
    {"login sends as unlisted sender", RCPT, OUT, "x@known.example", "x@elsewhere.example", "bob",
     0, RESTRICT_REJECT, "553 5.7.1 <x@known.example>: Sender address rejected: "
     "not owned by user bob"},
    {"owned sender without login", RCPT, OUT, "alice@local.example", "bob@local.example", NULL, 0,
     RESTRICT_REJECT, "553 5.7.1 <alice@local.example>: Sender address rejected: not logged in"},
    /* Client restrictions (delayed to RCPT). */
    {"client address REJECT", RCPT, "client.example", "203.0.113.66", "client.example",
     "x@known.example", "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <client.example[203.0.113.66]>: Client host rejected: Access denied"},
    {"client name parent REJECT", RCPT, "mail.evil.example", "198.51.100.8", "client.example",
     "x@known.example", "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <mail.evil.example[198.51.100.8]>: Client host rejected: listed here"},
    {"client prefix OK skips the client list only", RCPT, "client.example", "203.0.114.9",
     "client.example", "x@known.example", "x@elsewhere.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <x@elsewhere.example>: Relay access denied"},
    {"client DUNNO stops the table", RCPT, "client.example", "198.51.101.99",
     "client.example", "x@known.example", "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"client address prefix REJECT", RCPT, "client.example", "198.51.101.98",
     "client.example", "x@known.example", "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <client.example[198.51.101.98]>: Client host rejected: Access denied"},
    {"DNSBL listed", RCPT, "unknown", "127.0.0.2", "client.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_REJECT, "554 5.7.1 Service unavailable; "
     "Client host [127.0.0.2] blocked using rbl.example; listed for testing"},
    {"DNSBL not listed", RCPT, "unknown", "127.0.0.4", "client.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"DNSBL filter match", RCPT, "unknown", "127.0.0.3", "client.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using rbl2.example"},
    {"DNSBL filter mismatch", RCPT, "unknown", "127.0.0.5", "client.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    /* HELO restrictions (delayed to RCPT). */
    {"invalid HELO", RCPT, "client.example", "198.51.100.7", "bad..helo", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "501 5.5.2 <bad..helo>: Helo command rejected: Invalid name"},
    {"non-fqdn HELO", RCPT, "client.example", "198.51.100.7", "localhelo", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "504 5.5.2 <localhelo>: Helo command rejected: need fully-qualified hostname"},
    {"HELO literal", RCPT, "client.example", "198.51.100.7", "[198.51.100.7]", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    /* Delayed: nothing is refused before RCPT. */
    {"connect delayed", RESTRICT_CONNECT, "client.example", "203.0.113.66", NULL, NULL, NULL,
     NULL, 0, RESTRICT_OK, NULL},
    {"helo delayed", RESTRICT_HELO, OUT, NULL, NULL, NULL, 0, RESTRICT_OK, NULL},
    {"mail delayed", RESTRICT_MAIL, OUT, "spammer@bad.example", NULL, NULL, 0, RESTRICT_OK, NULL},
    /* DATA. */
    {"single-recipient bounce", RESTRICT_DATA, OUT, "", NULL, NULL, 1, RESTRICT_OK, NULL},
    {"multi-recipient bounce", RESTRICT_DATA, OUT, "", NULL, NULL, 2, RESTRICT_REJECT,
     "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"},
    {"eod empty list", RESTRICT_EOD, OUT, "", NULL, NULL, 2, RESTRICT_OK, NULL},
};

static void run_cases(struct restrictions *r, const struct check_case *cases, size_t n)
{
    struct strbuf *reply = strbuf_new(64);

    for (size_t i = 0; i < n; i++) {
        const struct check_case *c = &cases[i];
        struct restrict_ctx ctx = {
            .client_name = c->client_name, .client_addr = c->client_addr, .helo = c->helo,
            .sender = c->sender, .recipient = c->recipient, .sasl_user = c->sasl_user,
            .protocol = "ESMTP", .queue_id = "NOQUEUE", .rcpt_count = c->rcpt_count,
        };
        int st = restrict_check(r, c->stage, &ctx, reply);

        if (st != c->want)
            fail_msg("case \"%s\": result %d, want %d (%s)", c->name, st, c->want,
                     strbuf_str(reply));
        if (c->reply == NULL ? strbuf_len(reply) != 0 : strcmp(strbuf_str(reply), c->reply) != 0)
            fail_msg("case \"%s\": reply \"%s\", want \"%s\"", c->name, strbuf_str(reply),
                     c->reply ? c->reply : "");
    }
    strbuf_free(&reply);
}

static void test_checks(void **state)
{
    struct fixture *f = *state;

    run_cases(f->r, check_cases, sizeof(check_cases) / sizeof(check_cases[0]));
}

/* Variations of the configuration, each with its own cases. */
static const struct check_case nodelay_cases[] = {
    {"connect rejected at once", RESTRICT_CONNECT, "client.example", "203.0.113.66", NULL, NULL,
     NULL, NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <client.example[203.0.113.66]>: Client host rejected: Access denied"},
    {"helo rejected at once", RESTRICT_HELO, "client.example", "198.51.100.7", "bad..helo", NULL,
     NULL, NULL, 0, RESTRICT_REJECT, "501 5.5.2 <bad..helo>: Helo command rejected: Invalid name"},
    {"sender rejected at once", RESTRICT_MAIL, OUT, "spammer@bad.example", NULL, NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <spammer@bad.example>: Sender address rejected: Access denied"},
    {"rcpt does not re-run the sender list", RCPT, OUT, "spammer@bad.example",
     "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
};

static const struct check_case warn_cases[] = {
    {"warn_if_reject lets it through", RCPT, OUT, "x@known.example", "nobody@elsewhere.example",
     NULL, 0, RESTRICT_REJECT, "554 5.7.1 <nobody@elsewhere.example>: Relay access denied"},
    {"warned reject is only logged", RCPT, OUT, "x@known.example", "alice@local.example", NULL,
     0, RESTRICT_OK, NULL},
};

static const struct check_case defer_cases[] = {
    {"defer_if_permit then permit", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_DEFER,
     "450 4.7.1 <alice@local.example>: Recipient address rejected: Service unavailable"},
    {"defer_if_permit then reject", RCPT, OUT, "x@known.example", "x@elsewhere.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <x@elsewhere.example>: Relay access denied"},
    {"defer_if_reject turns a reject into a defer", RCPT, OUT, "x@known.example",
     "blocked@local.example", NULL, 0, RESTRICT_DEFER,
     "450 4.7.1 <blocked@local.example>: Recipient address rejected: Access denied"},
    {"defer_unauth_destination", RCPT, "unknown", "192.0.2.5", "h.example", "x@known.example",
     "x@other.example", NULL, 0, RESTRICT_DEFER, "454 4.7.1 <x@other.example>: Relay access denied"},
};

static const char more_cf[] =
    "smtpd_client_restrictions = reject_unknown_client_hostname\n"
    "smtpd_helo_restrictions = check_helo_access inline:{ badhelo.example=REJECT },"
    " reject_rhsbl_helo dbl.example, reject_unknown_helo_hostname\n"
    "smtpd_sender_restrictions = reject_unlisted_sender,"
    " reject_authenticated_sender_login_mismatch, reject_rhsbl_sender dbl.example=127.0.1.2\n"
    "smtpd_relay_restrictions =\n"
    "smtpd_recipient_restrictions = permit_auth_destination, reject\n";

static const struct check_case more_cases[] = {
    {"unknown client name", RCPT, "unknown", "198.51.100.7", "client.example", "x@known.example",
     "alice@local.example", NULL, 0, RESTRICT_DEFER,
     "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"},
    {"known HELO host", RCPT, OUT, "x@known.example", "alice@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"HELO access", RCPT, "client.example", "198.51.100.7", "host.badhelo.example",
     "x@known.example", "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 <host.badhelo.example>: Helo command rejected: Access denied"},
    {"unknown HELO host", RCPT, "client.example", "198.51.100.7", "nx.example",
     "x@known.example", "alice@local.example", NULL, 0, RESTRICT_DEFER,
     "450 4.7.1 <nx.example>: Helo command rejected: Host not found"},
    {"unlisted local sender", RCPT, OUT, "nobody@local.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.1.0 <nobody@local.example>: Sender address rejected: "
     "User unknown in local recipient table"},
    {"owned sender, not authenticated, authenticated-only check", RCPT, OUT,
     "alice@local.example", "alice@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"authenticated, not the owner", RCPT, OUT, "alice@local.example", "alice@local.example",
     "bob", 0, RESTRICT_REJECT,
     "553 5.7.1 <alice@local.example>: Sender address rejected: not owned by user bob"},
    {"sender domain blocklisted", RCPT, OUT, "x@spamdomain.example", "alice@local.example", NULL,
     0, RESTRICT_REJECT, "554 5.7.1 Service unavailable; Sender address [spamdomain.example] "
     "blocked using dbl.example; bad domain"},
    {"HELO domain blocklisted", RCPT, "client.example", "198.51.100.7", "spamdomain.example",
     "x@known.example", "alice@local.example", NULL, 0, RESTRICT_REJECT,
     "554 5.7.1 Service unavailable; Helo command [spamdomain.example] blocked using "
     "dbl.example; bad domain"},
    {"not an authorized destination", RCPT, OUT, "x@known.example", "x@known.example", NULL, 0,
     RESTRICT_REJECT, "554 5.7.1 <x@known.example>: Recipient address rejected: Access denied"},
};

/* The default local_recipient_maps: system users, then aliases. */
static const struct check_case unix_cases[] = {
    {"system user", RCPT, OUT, "x@known.example", "root@local.example", NULL, 0, RESTRICT_OK,
     NULL},
    {"system user with extension", RCPT, OUT, "x@known.example", "root+x@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"alias", RCPT, OUT, "x@known.example", "abuse@local.example", NULL, 0, RESTRICT_OK, NULL},
    {"no such system user", RCPT, OUT, "x@known.example", "no-such-user-x9@local.example", NULL,
     0, RESTRICT_REJECT, "550 5.1.1 <no-such-user-x9@local.example>: Recipient address "
     "rejected: User unknown in local recipient table"},
};

static void test_variants(void **state)
{
    struct fixture *f = *state;
    struct strbuf *text = strbuf_new(4096), *why = strbuf_new(64);
    struct restrictions *r;

    strbuf_printf(text, "%s%s", main_cf, more_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, more_cases, sizeof(more_cases) / sizeof(more_cases[0]));
    restrict_free(&r);

    strbuf_printf(text, "%slocal_recipient_maps = unix:passwd.byname $alias_maps\n"
                  "alias_maps = inline:{ abuse=root }\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, unix_cases, sizeof(unix_cases) / sizeof(unix_cases[0]));
    restrict_free(&r);

    strbuf_printf(text, "%ssmtpd_delay_reject = no\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, nodelay_cases, sizeof(nodelay_cases) / sizeof(nodelay_cases[0]));
    restrict_free(&r);

    strbuf_printf(text, "%ssmtpd_recipient_restrictions = warn_if_reject reject_unlisted_recipient"
                  ", warn_if_reject, reject\nsmtpd_reject_unlisted_recipient = no\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, warn_cases, sizeof(warn_cases) / sizeof(warn_cases[0]));
    restrict_free(&r);

    strbuf_printf(text, "%ssmtpd_relay_restrictions = defer_if_permit, permit_mynetworks,"
                  " reject_unauth_destination\nsmtpd_recipient_restrictions =\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, defer_cases, 2);
    restrict_free(&r);

    strbuf_printf(text, "%ssmtpd_recipient_restrictions = defer_if_reject,"
                  " check_recipient_access inline:{ blocked@local.example=REJECT }\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, defer_cases + 2, 1);
    restrict_free(&r);

    strbuf_printf(text, "%ssmtpd_relay_restrictions = permit_sasl_authenticated,"
                  " defer_unauth_destination\n", main_cf);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, defer_cases + 3, 1);
    restrict_free(&r);

    strbuf_free(&text);
    strbuf_free(&why);
}

struct config_error_case {
    const char *extra;
    const char *why_has;
};

static const struct config_error_case config_errors[] = {
    {"smtpd_relay_restrictions = permit_mynetworks\nsmtpd_recipient_restrictions = permit\n",
     "specify at least one working instance"},
    {"smtpd_client_restrictions = permit_mynetwork\n", "unknown restriction \"permit_mynetwork\""},
    {"smtpd_client_restrictions = check_client_access\n", "needs an argument"},
    {"smtpd_client_restrictions = check_client_access nosuchtype:/x\n", "nosuchtype"},
    {"smtpd_restriction_classes = permit\n", "is a restriction name"},
    {"smtpd_restriction_classes = undefinedclass\n", "no definition"},
    {"mynetworks = 192.0.2.1/24\n", "perhaps you should use \"192.0.2.0/24\""},
    {"mynetworks = mail.example.org\n", "parameter mynetworks"},
    {"local_recipient_maps = authd:\n", "one authd:socket_path entry at most"},
    {"virtual_mailbox_maps = authd:/a authd:/b\n", "one authd:socket_path entry at most"},
};

static void test_config_errors(void **state)
{
    struct fixture *f = *state;
    struct strbuf *text = strbuf_new(4096), *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(config_errors) / sizeof(config_errors[0]); i++) {
        struct restrictions *r;

        strbuf_printf(text, "%s%s", main_cf, config_errors[i].extra);
        r = load(strbuf_str(text), f->dns, why);
        if (r != NULL)
            fail_msg("config %zu accepted", i);
        if (strstr(strbuf_str(why), config_errors[i].why_has) == NULL)
            fail_msg("config %zu: \"%s\" lacks \"%s\"", i, strbuf_str(why),
                     config_errors[i].why_has);
    }
    /* A class that names itself fails at run time, not forever. */
    strbuf_printf(text, "%ssmtpd_restriction_classes = loop\nloop = loop\n"
                  "smtpd_client_restrictions = loop\n", main_cf);
    {
        struct restrictions *r = load(strbuf_str(text), f->dns, why);
        struct strbuf *reply = strbuf_new(64);
        struct restrict_ctx ctx = {.client_name = "a.example", .client_addr = "198.51.100.1",
                                   .recipient = "alice@local.example", .sender = ""};

        assert_non_null(r);
        assert_int_equal(restrict_check(r, RESTRICT_RCPT, &ctx, reply), RESTRICT_DEFER);
        assert_string_equal(strbuf_str(reply), "451 4.3.5 Server configuration error");
        restrict_free(&r);
        strbuf_free(&reply);
    }
    /* An authd entry is asked only for recipients the tables lack; when
     * authd cannot be reached the answer is 4xx, never "unknown". */
    strbuf_printf(text, "%slocal_recipient_maps = authd:/nonexistent/auth inline:{ alice=1 }\n",
                  main_cf);
    {
        struct restrictions *r = load(strbuf_str(text), f->dns, why);
        struct strbuf *reply = strbuf_new(64);
        struct restrict_ctx ctx = {.client_name = "client.example", .client_addr = "198.51.100.7",
                                   .helo = "client.example", .sender = "x@known.example",
                                   .recipient = "alice@local.example"};

        assert_non_null(r);
        assert_int_equal(restrict_check(r, RESTRICT_RCPT, &ctx, reply), RESTRICT_OK);
        ctx.recipient = "nobody+x@local.example";
        assert_int_equal(restrict_check(r, RESTRICT_RCPT, &ctx, reply), RESTRICT_DEFER);
        assert_string_equal(strbuf_str(reply),
                            "451 4.3.0 <nobody+x@local.example>: Temporary lookup failure");
        restrict_free(&r);
        strbuf_free(&reply);
    }
    /* Without a resolver, DNS restrictions defer, never accept or reject. */
    {
        struct restrictions *r = load(main_cf, NULL, why);
        struct strbuf *reply = strbuf_new(64);
        struct restrict_ctx ctx = {.client_name = "client.example", .client_addr = "198.51.100.7",
                                   .helo = "client.example", .sender = "x@known.example",
                                   .recipient = "alice@local.example"};

        assert_non_null(r);
        assert_int_equal(restrict_check(r, RESTRICT_RCPT, &ctx, reply), RESTRICT_DEFER);
        restrict_free(&r);
        strbuf_free(&reply);
    }
    restrict_free(NULL);
    strbuf_free(&text);
    strbuf_free(&why);
}

struct access_case {
    const char *value;
    enum restrict_action act;
    int code;
    const char *text;
};

static const struct access_case access_cases[] = {
    {"OK", RESTRICT_ACT_PERMIT, 0, ""},
    {"ok", RESTRICT_ACT_PERMIT, 0, ""},
    {"PERMIT", RESTRICT_ACT_PERMIT, 0, ""},
    {"12345", RESTRICT_ACT_PERMIT, 0, ""},
    {"REJECT", RESTRICT_ACT_REJECT, 0, ""},
    {"REJECT  go away", RESTRICT_ACT_REJECT, 0, "go away"},
    {"reject\tno", RESTRICT_ACT_REJECT, 0, "no"},
    {"REJECTED", RESTRICT_ACT_RESTRICTIONS, 0, ""},
    {"DEFER later", RESTRICT_ACT_DEFER, 0, "later"},
    {"DEFER_IF_PERMIT x", RESTRICT_ACT_DEFER_IF_PERMIT, 0, "x"},
    {"DEFER_IF_REJECT", RESTRICT_ACT_DEFER_IF_REJECT, 0, ""},
    {"DUNNO", RESTRICT_ACT_DUNNO, 0, ""},
    {"WARN something", RESTRICT_ACT_DUNNO, 0, ""},
    {"", RESTRICT_ACT_DUNNO, 0, ""},
    {"550 5.1.1 gone", RESTRICT_ACT_REJECT, 550, "5.1.1 gone"},
    {"450 busy", RESTRICT_ACT_DEFER, 450, "busy"},
    {"250 fine", RESTRICT_ACT_PERMIT, 250, "fine"},
    {"5500 x", RESTRICT_ACT_RESTRICTIONS, 0, ""},
    {"550x", RESTRICT_ACT_RESTRICTIONS, 0, ""},
    {"HOLD", RESTRICT_ACT_UNSUPPORTED, 0, ""},
    {"DISCARD spam", RESTRICT_ACT_UNSUPPORTED, 0, ""},
    {"REDIRECT a@b", RESTRICT_ACT_UNSUPPORTED, 0, ""},
    {"permit_mynetworks, reject", RESTRICT_ACT_RESTRICTIONS, 0, ""},
};

static void test_access_parse(void **state)
{
    struct strbuf *text = strbuf_new(32);

    for (size_t i = 0; i < sizeof(access_cases) / sizeof(access_cases[0]); i++) {
        const struct access_case *c = &access_cases[i];
        int code = -1;
        enum restrict_action act = restrict_access_parse(c->value, &code, text);

        if (act != c->act || code != c->code || strcmp(strbuf_str(text), c->text) != 0)
            fail_msg("\"%s\": action %d code %d text \"%s\"", c->value, act, code,
                     strbuf_str(text));
    }
    strbuf_free(&text);
}

struct rbl_case {
    const char *filter, *addr;
    bool want;
};

static const struct rbl_case rbl_cases[] = {
    {"", "127.0.0.2", true},
    {NULL, "127.0.0.9", true},
    {"127.0.0.2", "127.0.0.2", true},
    {"127.0.0.2", "127.0.0.3", false},
    {"127.0.0.[2..11]", "127.0.0.11", true},
    {"127.0.0.[2..11]", "127.0.0.12", false},
    {"127.0.[0;1].[2..4;10]", "127.0.1.10", true},
    {"127.0.[0;1].[2..4;10]", "127.0.2.3", false},
    {"127.0.0.[2..", "127.0.0.2", false},
    {"127.0.0", "127.0.0.2", false},
    {"127.0.0.2.5", "127.0.0.2", false},
    {"127.0.0.[x]", "127.0.0.2", false},
    {"127.0.0.2", "127.0.0.2x", false},
    {"127.0.0.2", "::1", false},
};

static void test_rbl_filter(void **state)
{
    for (size_t i = 0; i < sizeof(rbl_cases) / sizeof(rbl_cases[0]); i++)
        if (restrict_rbl_filter_match(rbl_cases[i].filter, rbl_cases[i].addr) != rbl_cases[i].want)
            fail_msg("filter \"%s\" addr %s", rbl_cases[i].filter ? rbl_cases[i].filter : "(null)",
                     rbl_cases[i].addr);
}

struct domain_case {
    const char *list;
    bool subdomains;
    const char *domain;
    int want;
};

static const struct domain_case domain_cases[] = {
    {"example.org", false, "example.org", 1},
    {"example.org", false, "EXAMPLE.ORG.", 1},
    {"example.org", false, "sub.example.org", 0},
    {"example.org", true, "sub.example.org", 1},
    {"example.org", true, "badexample.org", 0},
    {".example.org", false, "sub.example.org", 1},
    {".example.org", false, "example.org", 0},
    {"inline:{ example.net=1 }", false, "example.net", 1},
    {"inline:{ example.net=1 }", false, "a.example.net", 0},
    {"inline:{ example.net=1 }", true, "a.example.net", 1},
    {"inline:{ .example.net=1 }", false, "a.b.example.net", 1},
    {"a.example, b.example inline:{ c.example=1 }", false, "c.example", 1},
    {"", false, "example.org", 0},
    {"example.org", false, "", 0},
};

static void test_domains(void **state)
{
    struct strbuf *why = strbuf_new(32);

    for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]); i++) {
        const struct domain_case *c = &domain_cases[i];
        struct restrict_domains *d = restrict_domains_new(c->list, c->subdomains, why);

        assert_non_null(d);
        if (restrict_domains_match(d, c->domain, why) != c->want)
            fail_msg("list \"%s\" domain \"%s\"", c->list, c->domain);
        restrict_domains_free(&d);
    }
    assert_null(restrict_domains_new("nosuchtype:/x", false, why));
    strbuf_free(&why);
}

static void test_classes_and_log(void **state)
{
    struct fixture *f = *state;
    struct strbuf *why = strbuf_new(32), *out = strbuf_new(128);
    struct restrict_ctx ctx = {.client_name = "client.example", .client_addr = "198.51.100.7",
                               .helo = "client.example", .sender = "a@b.example",
                               .recipient = "x@elsewhere.example", .protocol = "ESMTP"};

    assert_int_equal(restrict_domain_class(f->r, "local.example", why), RESTRICT_CLASS_LOCAL);
    assert_int_equal(restrict_domain_class(f->r, "", why), RESTRICT_CLASS_LOCAL);
    assert_int_equal(restrict_domain_class(f->r, "valias.example", why), RESTRICT_CLASS_VALIAS);
    assert_int_equal(restrict_domain_class(f->r, "vbox.example", why), RESTRICT_CLASS_VMAILBOX);
    assert_int_equal(restrict_domain_class(f->r, "x.relay.example", why), RESTRICT_CLASS_RELAY);
    assert_int_equal(restrict_domain_class(f->r, "elsewhere.example", why),
                     RESTRICT_CLASS_DEFAULT);
    restrict_log_text(RESTRICT_RCPT, &ctx, "554 5.7.1 <x@elsewhere.example>: Relay access denied",
                      out);
    assert_string_equal(strbuf_str(out), "NOQUEUE: reject: RCPT from client.example[198.51.100.7]:"
                        " 554 5.7.1 <x@elsewhere.example>: Relay access denied;"
                        " from=<a@b.example> to=<x@elsewhere.example> proto=ESMTP"
                        " helo=<client.example>");
    ctx.helo = ctx.sender = ctx.recipient = NULL;
    ctx.protocol = "SMTP";
    ctx.queue_id = "4Xk9";
    restrict_log_text(RESTRICT_CONNECT, &ctx, "554 5.7.1 no", out);
    assert_string_equal(strbuf_str(out), "4Xk9: reject: CONNECT from client.example[198.51.100.7]:"
                        " 554 5.7.1 no; proto=SMTP");
    restrict_log_text(RESTRICT_HELO, &ctx, "501 x", out);
    assert_non_null(strstr(strbuf_str(out), ": reject: HELO from"));
    restrict_log_text(RESTRICT_EOD, &ctx, "550 x", out);
    assert_non_null(strstr(strbuf_str(out), ": reject: END-OF-MESSAGE from"));
    strbuf_free(&why);
    strbuf_free(&out);
}

struct policy_parse_case {
    const char *in;
    const char *action;     /* NULL: error */
};

static const struct policy_parse_case policy_parse_cases[] = {
    {"action=DUNNO\n\n", "DUNNO"},
    {"action=DEFER_IF_PERMIT Greylisted\r\n\r\n", "DEFER_IF_PERMIT Greylisted"},
    {"foo=bar\naction=OK\n\n", "OK"},
    {"action=\n\n", ""},
    {"action=OK\n", NULL},
    {"action=OK", NULL},
    {"\n", NULL},
    {"", NULL},
    {"foo=bar\n\n", NULL},
    {"action=OK\naction=REJECT\n\n", NULL},
    {"action=OK\n\nmore", NULL},
    {"action=OK\nnoequals\n\n", NULL},
    {"action=RE\x01JECT\n\n", NULL},
};

static void test_policy_parse(void **state)
{
    struct strbuf *action = strbuf_new(32), *why = strbuf_new(32), *req = strbuf_new(256);
    struct restrict_ctx ctx = {.client_name = "c.example", .client_addr = "192.0.2.9",
                               .helo = "h\r\nx=1", .sender = "", .recipient = "a@b.example",
                               .protocol = "ESMTP", .queue_id = "NOQUEUE", .rcpt_count = 2};

    for (size_t i = 0; i < sizeof(policy_parse_cases) / sizeof(policy_parse_cases[0]); i++) {
        const struct policy_parse_case *c = &policy_parse_cases[i];
        int rc = restrict_policy_parse(c->in, strlen(c->in), action, why);

        if (c->action == NULL ? rc != -1 : rc != 0 || strcmp(strbuf_str(action), c->action))
            fail_msg("policy answer %zu: rc %d action \"%s\" (%s)", i, rc, strbuf_str(action),
                     strbuf_str(why));
    }
    /* Exact length: nothing past len is read. */
    assert_int_equal(restrict_policy_parse("action=OK\n\nX", 11, action, why), 0);
    restrict_policy_request(RESTRICT_RCPT, &ctx, req);
    assert_non_null(strstr(strbuf_str(req), "request=smtpd_access_policy\nprotocol_state=RCPT\n"
                                            "protocol_name=ESMTP\nhelo_name=h  x=1\n"));
    assert_non_null(strstr(strbuf_str(req), "\nsender=\nrecipient=a@b.example\n"
                                            "recipient_count=2\nclient_address=192.0.2.9\n"));
    assert_non_null(strstr(strbuf_str(req), "\nqueue_id=\n"));
    assert_int_equal(strbuf_str(req)[strbuf_len(req) - 1], '\n');
    assert_int_equal(strbuf_str(req)[strbuf_len(req) - 2], '\n');
    strbuf_free(&action);
    strbuf_free(&why);
    strbuf_free(&req);
}

/* A policy server in a child process: answers by recipient, keeps the
 * connection for several queries, exits after a bounded number. */
static void policy_server(int lfd)
{
    /* Never outlive the test, even when a failed case skips the kill. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(30);
    for (int conns = 0; conns < 20; conns++) {
        int fd = accept(lfd, NULL, NULL);
        char buf[8192];
        size_t len = 0;

        if (fd < 0)
            _exit(1);
        for (int q = 0; q < 50;) {
            ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
            char *end;

            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = 0;
            while ((end = strstr(buf, "\n\n")) != NULL) {
                const char *ans = "action=DUNNO\n\n";

                *end = 0;
                if (strstr(buf, "sender=greylist@"))
                    ans = "action=DEFER_IF_PERMIT Greylisted, try again later\n\n";
                else if (strstr(buf, "sender=reject@"))
                    ans = "action=550 5.7.1 policy says no\n\n";
                else if (strstr(buf, "sender=prepend@"))
                    ans = "action=PREPEND X-Greylist: passed\n\n";
                else if (strstr(buf, "sender=garbage@"))
                    ans = "nonsense\n\n";
                if (write(fd, ans, strlen(ans)) < 0)
                    break;
                len -= (size_t)(end + 2 - buf);
                memmove(buf, end + 2, len + 1);
                q++;
            }
        }
        close(fd);
    }
    _exit(0);
}

static const struct check_case policy_cases[] = {
    {"policy DUNNO", RCPT, OUT, "x@known.example", "alice@local.example", NULL, 0, RESTRICT_OK,
     NULL},
    {"policy greylist", RCPT, OUT, "greylist@known.example", "alice@local.example", NULL, 0,
     RESTRICT_DEFER, "450 4.7.1 <alice@local.example>: Recipient address rejected: "
     "Greylisted, try again later"},
    {"policy greylist, then unknown user", RCPT, OUT, "greylist@known.example",
     "nobody@local.example", NULL, 0, RESTRICT_REJECT, "550 5.1.1 <nobody@local.example>: "
     "Recipient address rejected: User unknown in local recipient table"},
    {"policy reject", RCPT, OUT, "reject@known.example", "alice@local.example", NULL, 0,
     RESTRICT_REJECT, "550 5.7.1 <alice@local.example>: Recipient address rejected: "
     "policy says no"},
    {"policy PREPEND passes", RCPT, OUT, "prepend@known.example", "alice@local.example", NULL, 0,
     RESTRICT_OK, NULL},
    {"policy garbage: default action", RCPT, OUT, "garbage@known.example", "alice@local.example",
     NULL, 0, RESTRICT_DEFER, "451 4.3.5 <alice@local.example>: Recipient address rejected: "
     "Server configuration problem"},
    {"policy after garbage: reconnects", RCPT, OUT, "x@known.example", "alice@local.example",
     NULL, 0, RESTRICT_OK, NULL},
};

static const struct check_case policy_down_cases[] = {
    {"policy server down: default action", RCPT, OUT, "x@known.example", "alice@local.example",
     NULL, 0, RESTRICT_DEFER, "451 4.3.5 <alice@local.example>: Recipient address rejected: "
     "Server configuration problem"},
};

static void test_policy_service(void **state)
{
    struct fixture *f = *state;
    struct strbuf *text = strbuf_new(4096), *why = strbuf_new(64);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char dir[] = "/tmp/test_restrict.??????";
    struct restrictions *r;
    int lfd, status;
    pid_t pid;

    /* mkdtemp's template, made here so the source holds no marker. */
    memset(strchr(dir, '?'), 'X', 6);
    assert_non_null(mkdtemp(dir));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/policy", dir);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        policy_server(lfd);
    close(lfd);
    strbuf_printf(text, "%ssmtpd_policy_service_timeout = 5s\n"
                  "smtpd_recipient_restrictions = check_policy_service unix:%s\n",
                  main_cf, sun.sun_path);
    assert_non_null(r = load(strbuf_str(text), f->dns, why));
    run_cases(r, policy_cases, sizeof(policy_cases) / sizeof(policy_cases[0]));
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(sun.sun_path);
    run_cases(r, policy_down_cases, 1);
    restrict_free(&r);
    rmdir(dir);
    strbuf_free(&text);
    strbuf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_access_parse),
        cmocka_unit_test(test_rbl_filter),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_classes_and_log),
        cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_policy_service),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
