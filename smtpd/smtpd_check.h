/*
 * smtpd_check.h - smtpd's access restrictions (smtpd_*_restrictions).
 *
 * smtpd fills a struct smtpd_check_ctx from its session at each stage and
 * asks smtpd_check() whether to go on.  The restriction lists, their
 * names and their semantics are Postfix's: smtpd_client_restrictions,
 * smtpd_helo_restrictions, smtpd_sender_restrictions,
 * smtpd_relay_restrictions then smtpd_recipient_restrictions,
 * smtpd_data_restrictions, smtpd_end_of_data_restrictions.  With
 * smtpd_delay_reject (the default) the client, HELO and sender lists are
 * evaluated at RCPT TO, once per recipient, as Postfix does.
 *
 * The decision logic that does not need the session lives in lib/restrict
 * (list parsing, access-map results, address classes), lib/cidr
 * (mynetworks) and lib/dns (unknown domains, DNS blocklists).
 */
#ifndef FACTEUR_SMTPD_CHECK_H
#define FACTEUR_SMTPD_CHECK_H

#include <stdbool.h>

#include "strbuf.h"

/* What smtpd knows about the session when it asks.  All strings are
 * borrowed for the duration of the call; NULL means "not known yet". */
struct smtpd_check_ctx {
    const char *service;      /* master.cf service name, e.g. "smtpd" */
    const char *client_name;  /* verified client name or "unknown" */
    const char *client_addr;  /* printable address, IPv6 without brackets */
    const char *client_port;
    const char *helo;         /* HELO/EHLO argument, NULL before HELO */
    const char *sender;       /* NULL before MAIL, "" for <> */
    const char *recipient;    /* RCPT TO address at RCPT, else NULL */
    const char *sasl_user;    /* NULL if not authenticated */
    const char *sasl_method;
    const char *protocol;     /* "SMTP", "ESMTP", "ESMTPA", ... */
    const char *queue_id;     /* "NOQUEUE" before a queue file exists */
    bool tls;                 /* STARTTLS done (or wrapper mode) */
    unsigned rcpt_count;      /* recipients accepted so far */
    long msg_size;            /* SIZE= at MAIL, bytes at EOD, else 0 */
};

enum smtpd_check_stage {
    SMTPD_CHECK_CONNECT,      /* smtpd_client_restrictions */
    SMTPD_CHECK_HELO,         /* smtpd_helo_restrictions */
    SMTPD_CHECK_MAIL,         /* smtpd_sender_restrictions */
    SMTPD_CHECK_RCPT,         /* relay, then recipient restrictions */
    SMTPD_CHECK_DATA,         /* smtpd_data_restrictions */
    SMTPD_CHECK_EOD,          /* smtpd_end_of_data_restrictions */
};

/*
 * Call in smtpd's pre_jail hook, after the configuration is read: parses
 * every restriction list (an unknown restriction name is an error, as a
 * typo must not silently open a relay), opens the lookup tables they name
 * (check_*_access, smtpd_sender_login_maps, relay_domains,
 * virtual_mailbox_domains, local_recipient_maps, virtual_alias_maps,
 * virtual_mailbox_maps, relay_recipient_maps), parses mynetworks and
 * creates the DNS resolver context.  Returns 0, or -1 with why set (the
 * caller exits with a fatal error).  Calling it again replaces the state.
 */
int smtpd_check_init(struct strbuf *why);

/* Free what smtpd_check_init() built (at exit; also for leak checks). */
void smtpd_check_deinit(void);

/*
 * Evaluate the restrictions of one stage.  Returns:
 *    0  accept: go on with the command;
 *    1  reject: reply_r holds the whole reply line without CRLF, e.g.
 *       "554 5.7.1 <x@y>: Relay access denied"; the rejection is already
 *       logged as Postfix does: "NOQUEUE: reject: RCPT from name[addr]:
 *       554 5.7.1 <x@y>: Relay access denied; from=<a> to=<x@y>
 *       proto=ESMTP helo=<h>";
 *   -1  temporary: reply_r holds a 4xx reply ("451 4.3.0 ..." for a
 *       table or resolver failure, or a 450 from a defer restriction or
 *       a DNS temporary failure), already logged the same way.
 * With smtpd_delay_reject = yes, the CONNECT, HELO and MAIL stages always
 * accept (unless a list is broken) and their lists are evaluated at RCPT.
 * A "permit" in the client list at RCPT skips only the rest of the
 * client list; the relay and recipient lists decide relaying.
 * An empty or NULL client_addr is treated as not in mynetworks.
 */
int smtpd_check(enum smtpd_check_stage stage, const struct smtpd_check_ctx *ctx,
                struct strbuf *reply_r);

#endif
