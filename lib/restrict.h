/*
 * restrict.h - Postfix-style access restrictions, without the daemon.
 *
 * The decision logic behind smtpd's smtpd_*_restrictions: restriction
 * lists parsed from main.cf (names and semantics as Postfix), access-table
 * results (OK, REJECT text, DEFER, DUNNO, 4xx/5xx text, nested
 * restrictions), the address classes (mydestination, virtual alias and
 * mailbox domains, relay_domains with parent-domain matching, other),
 * recipient validation, DNS checks through lib/dns and mynetworks through
 * lib/cidr.  smtpd/smtpd_check.c is the glue to the SMTP session.
 *
 * Everything is configured from the var_ globals of the last conf_load():
 * restrict_new() reads them once.  Nothing here does SMTP I/O; DNS
 * lookups block for at most the resolver's timeout.  Logging: only
 * warn_if_reject's reject_warning lines, WARN/INFO table results and
 * table failures; the caller logs the final reject.
 */
#ifndef FACTEUR_RESTRICT_H
#define FACTEUR_RESTRICT_H

#include <stdbool.h>

#include "dns.h"
#include "strbuf.h"

#define RESTRICT_ITEMS_MAX  1000    /* restrictions in one list */
#define RESTRICT_DEPTH_MAX  100     /* nested lists (classes, table results) */
#define RESTRICT_CLASSES_MAX 1000

enum restrict_stage {
    RESTRICT_CONNECT,
    RESTRICT_HELO,
    RESTRICT_MAIL,
    RESTRICT_RCPT,
    RESTRICT_DATA,
    RESTRICT_EOD,
};

/* What the session knows (see smtpd_check.h; the same fields). */
struct restrict_ctx {
    const char *client_name, *client_addr, *helo, *sender, *recipient;
    const char *sasl_user, *protocol, *queue_id;
    bool tls;
    unsigned rcpt_count;
    long msg_size;
};

/* Results of restrict_check(). */
#define RESTRICT_OK      0      /* go on */
#define RESTRICT_REJECT  1      /* 5xx in reply_r */
#define RESTRICT_DEFER   (-1)   /* 4xx in reply_r */

struct restrictions;

/*
 * Build the restriction state from the var_ globals: the seven
 * smtpd_*_restrictions lists, smtpd_restriction_classes (each class's
 * list is conf_get(name)), mynetworks, the domain lists and recipient
 * tables, smtpd_sender_login_maps and the reply codes.  dns (borrowed,
 * may be NULL: DNS restrictions then fail temporarily) serves
 * reject_unknown_* and reject_rbl_client.  An unknown restriction name,
 * a missing argument, a restriction where Postfix would refuse it, a bad
 * network or a table that cannot be opened is an error: NULL with why.
 */
struct restrictions *restrict_new(struct dns *dns, struct strbuf *why);
void restrict_free(struct restrictions **rp);

/*
 * Evaluate one stage.  Returns RESTRICT_OK, RESTRICT_REJECT or
 * RESTRICT_DEFER with the reply line (no CRLF) in reply_r.  At
 * RESTRICT_RCPT: with smtpd_delay_reject the client, HELO and sender
 * lists first (a permit ends only its own list), then
 * smtpd_relay_restrictions, then smtpd_recipient_restrictions, then the
 * implicit reject_unlisted_recipient of smtpd_reject_unlisted_recipient.
 * A table or DNS failure is RESTRICT_DEFER "451 4.3.0 ..." (or Postfix's
 * 450 for an unknown domain), never a reject.  Logs nothing.
 */
int restrict_check(struct restrictions *r, enum restrict_stage stage,
                   const struct restrict_ctx *ctx, struct strbuf *reply_r);

/* Postfix's rejection log text for a reply:
 * "NOQUEUE: reject: RCPT from name[addr]: REPLY; from=<s> to=<r>
 * proto=ESMTP helo=<h>" (fields known at that stage only).  Replaces out. */
void restrict_log_text(enum restrict_stage stage, const struct restrict_ctx *ctx,
                       const char *reply, struct strbuf *out);

/* ---- Pieces exposed for unit tests ---- */

/* What an access table's value says. */
enum restrict_action {
    RESTRICT_ACT_DUNNO,     /* DUNNO or a value to ignore (WARN, INFO ...) */
    RESTRICT_ACT_PERMIT,    /* OK, PERMIT, or a numeric 2xx/"all digits" */
    RESTRICT_ACT_REJECT,    /* REJECT [text], 5NN text */
    RESTRICT_ACT_DEFER,     /* DEFER [text], 4NN text */
    RESTRICT_ACT_DEFER_IF_PERMIT,
    RESTRICT_ACT_DEFER_IF_REJECT,
    RESTRICT_ACT_RESTRICTIONS,  /* anything else: a restriction list */
    RESTRICT_ACT_UNSUPPORTED,   /* HOLD, DISCARD, FILTER, REDIRECT ... */
};

/* Classify an access table value.  For REJECT/DEFER with a code (or
 * "REJECT text"), *code_r is the code (0: use the default) and text_r the
 * text after it (enhanced code included if given), else emptied. */
enum restrict_action restrict_access_parse(const char *value, int *code_r,
                                           struct strbuf *text_r);

/* Address classes (Postfix ADDRESS CLASSES). */
enum restrict_class {
    RESTRICT_CLASS_LOCAL,       /* mydestination, or no domain */
    RESTRICT_CLASS_VALIAS,      /* virtual_alias_domains */
    RESTRICT_CLASS_VMAILBOX,    /* virtual_mailbox_domains */
    RESTRICT_CLASS_RELAY,       /* relay_domains (and subdomains) */
    RESTRICT_CLASS_DEFAULT,     /* anything else: relaying */
};

/* The class of a domain ("" for none); -1 with why on a table failure. */
int restrict_domain_class(struct restrictions *r, const char *domain, struct strbuf *why);

/* Is domain in a domain list (names, ".parent" patterns and type:table
 * entries)?  subdomains: a name also matches its subdomains (Postfix's
 * parent_domain_matches_subdomains).  1, 0, or -1 with why. */
struct restrict_domains;
struct restrict_domains *restrict_domains_new(const char *list, bool subdomains,
                                              struct strbuf *why);
int restrict_domains_match(struct restrict_domains *d, const char *domain,
                           struct strbuf *why);
void restrict_domains_free(struct restrict_domains **dp);

/* check_policy_service (Postfix SMTPD_POLICY_README).  The request a
 * stage sends, replacing req ("name=value" lines and an empty line). */
#define RESTRICT_POLICY_MAX 8192    /* bytes of one policy answer */
void restrict_policy_request(enum restrict_stage stage, const struct restrict_ctx *ctx,
                             struct strbuf *req);
/* Parse a whole answer of len bytes ("action=...\n" plus optional other
 * attributes, then an empty line): 0 with the action, -1 with why. */
int restrict_policy_parse(const char *buf, size_t len, struct strbuf *action_r,
                          struct strbuf *why);

/* True if a DNSBL reply address (text) matches a filter "127.0.0.2",
 * "127.0.0.[2..11]", "127.0.[0;1].[2..4;10]"; an empty filter matches
 * any 127.x.x.x-style answer. */
bool restrict_rbl_filter_match(const char *filter, const char *addr);

#endif
