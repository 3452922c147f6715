/*
 * restrict_int.h - internals shared by restrict.c (lists, stages) and
 * restrict_eval.c (the restrictions themselves).  Not for other modules.
 */
#ifndef FACTEUR_RESTRICT_INT_H
#define FACTEUR_RESTRICT_INT_H

#include "auth_client.h"
#include "cidr.h"
#include "maps.h"
#include "restrict.h"

enum restrict_op {
    RX_CLASS,
    RX_CHECK_POLICY,
    RX_CHECK_CLIENT, RX_CHECK_HELO, RX_CHECK_RECIPIENT, RX_CHECK_SENDER,
    RX_DEFER, RX_DEFER_IF_PERMIT, RX_DEFER_IF_REJECT, RX_DEFER_UNAUTH_DEST,
    RX_PERMIT, RX_PERMIT_AUTH_DEST, RX_PERMIT_MYNETWORKS, RX_PERMIT_SASL,
    RX_REJECT, RX_REJECT_AUTH_LOGIN_MISMATCH, RX_REJECT_INVALID_HELO,
    RX_REJECT_MULTI_BOUNCE, RX_REJECT_NON_FQDN_HELO, RX_REJECT_NON_FQDN_RCPT,
    RX_REJECT_NON_FQDN_SENDER, RX_REJECT_RBL_CLIENT, RX_REJECT_RHSBL_CLIENT,
    RX_REJECT_RHSBL_HELO, RX_REJECT_RHSBL_RECIPIENT, RX_REJECT_RHSBL_SENDER,
    RX_REJECT_LOGIN_MISMATCH,
    RX_REJECT_UNAUTH_DEST, RX_UNAUTH_PIPELINING, RX_REJECT_UNAUTH_LOGIN_MISMATCH,
    RX_REJECT_UNKNOWN_CLIENT, RX_REJECT_UNKNOWN_HELO, RX_REJECT_UNKNOWN_RCPT_DOMAIN,
    RX_REJECT_UNKNOWN_REVERSE, RX_REJECT_UNKNOWN_SENDER_DOMAIN,
    RX_REJECT_UNLISTED_RCPT, RX_REJECT_UNLISTED_SENDER, RX_WARN_IF_REJECT,
};

enum restrict_arg { RX_ARG_NONE, RX_ARG_TABLE, RX_ARG_WORD };

struct restrict_op_desc {
    const char *name;
    enum restrict_op op;
    enum restrict_arg arg;
};

struct restrict_list;

struct restrict_item {
    enum restrict_op op;
    char *name;                 /* as written */
    char *arg;                  /* table spec or DNSBL domain[=filter] */
    struct map *map;            /* check_*_access */
    struct restrict_list *cls;  /* RX_CLASS: borrowed from r->classes */
};

struct restrict_list {
    char *name;                 /* parameter or class name */
    struct restrict_item *items;
    size_t n;
};

/* The lists, in stage order. */
enum {
    RESTRICT_L_CLIENT, RESTRICT_L_HELO, RESTRICT_L_SENDER, RESTRICT_L_RELAY,
    RESTRICT_L_RECIPIENT, RESTRICT_L_DATA, RESTRICT_L_EOD, RESTRICT_NLISTS
};

struct restrictions {
    struct restrict_list *lists[RESTRICT_NLISTS];
    struct restrict_list **classes;
    size_t nclasses;
    struct cidr_list *mynetworks;
    struct restrict_domains *mydestination, *relay_domains, *valias_domains, *vmailbox_domains;
    struct maps *local_rcpt_maps, *valias_maps, *vmailbox_maps, *relay_rcpt_maps, *login_maps;
    struct dns *dns;
    bool delay_reject;
    /* "authd:PATH" entries of local_recipient_maps / virtual_mailbox_maps:
     * authd's userdb answers for those recipients (NULL: none).  The
     * connection is made at the first lookup (after chroot). */
    char *local_authd, *vmailbox_authd;
    struct auth_client *authd;
    char *authd_path;           /* what authd is connected to */
    struct restrict_policy_conn **policy;   /* check_policy_service servers */
    size_t npolicy;
};

/* Evaluation results of one restriction or list. */
enum { RXS_DUNNO = 0, RXS_PERMIT, RXS_REJECT, RXS_DEFER };

struct restrict_eval {
    struct restrictions *r;
    enum restrict_stage stage;
    const struct restrict_ctx *ctx;
    struct strbuf *reply;       /* the final reply */
    struct strbuf *pending;     /* defer_if_permit reply, or "" */
    bool defer_if_reject;       /* turn the next reject into a defer */
    bool warn_if_reject;        /* log the next reject only */
};

struct restrict_list *restrict_list_parse(struct restrictions *r, const char *name,
                                          const char *value, struct strbuf *why);
void restrict_list_free(struct restrict_list **lp);
int restrict_eval_list(struct restrict_eval *e, const struct restrict_list *l, int which,
                       int depth);
struct restrict_policy_conn;
/* Ask the policy server at endpoint; 0 with the action, -1 with why. */
int restrict_policy_query(struct restrictions *r, const char *endpoint,
                          enum restrict_stage stage, const struct restrict_ctx *ctx,
                          struct strbuf *action_r, struct strbuf *why);
void restrict_policy_close_all(struct restrictions *r);
int restrict_authd_lookup(struct restrictions *r, const char *path, const char *user,
                          struct strbuf *why);
int restrict_unlisted(struct restrict_eval *e, const char *addr, bool sender);
void restrict_log_action(const char *action, enum restrict_stage stage,
                         const struct restrict_ctx *ctx, const char *reply,
                         struct strbuf *out);

#endif
