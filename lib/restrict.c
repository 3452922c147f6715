/*
 * restrict.c - restriction lists and their evaluation (smtpd_*_restrictions).
 *
 * Owns struct restrictions: the parsed lists, classes, tables, mynetworks and
 * codes, built once from the var_ globals by restrict_new().  Called by
 * smtpd/smtpd_check.c at each SMTP stage.  The names, their order of
 * evaluation, the reply texts and codes are Postfix's, so existing main.cf
 * files and log readers (pflogsumm, fail2ban) keep working.
 *
 * Trust: the lists come from main.cf (an unknown name is a startup error,
 * and a configuration that cannot refuse relaying is refused, as Postfix
 * does); client data (HELO, addresses, client name) is untrusted and only
 * compared, looked up and quoted back inside <...>.  Address tricks that
 * could route mail elsewhere after a local hop (user%other@local,
 * "user@other"@local, user@other@local, other!user@local) never count as
 * an authorized destination unless their inner target is one too.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "conf.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "restrict.h"
#include "restrict_int.h"
#include "smtp_syntax.h"

static const struct restrict_op_desc restrict_ops[] = {
    {"check_client_access", RX_CHECK_CLIENT, RX_ARG_TABLE},
    {"check_helo_access", RX_CHECK_HELO, RX_ARG_TABLE},
    {"check_policy_service", RX_CHECK_POLICY, RX_ARG_WORD},
    {"check_recipient_access", RX_CHECK_RECIPIENT, RX_ARG_TABLE},
    {"check_sender_access", RX_CHECK_SENDER, RX_ARG_TABLE},
    {"defer", RX_DEFER, RX_ARG_NONE},
    {"defer_if_permit", RX_DEFER_IF_PERMIT, RX_ARG_NONE},
    {"defer_if_reject", RX_DEFER_IF_REJECT, RX_ARG_NONE},
    {"defer_unauth_destination", RX_DEFER_UNAUTH_DEST, RX_ARG_NONE},
    {"permit", RX_PERMIT, RX_ARG_NONE},
    {"permit_auth_destination", RX_PERMIT_AUTH_DEST, RX_ARG_NONE},
    {"permit_mynetworks", RX_PERMIT_MYNETWORKS, RX_ARG_NONE},
    {"permit_sasl_authenticated", RX_PERMIT_SASL, RX_ARG_NONE},
    {"reject", RX_REJECT, RX_ARG_NONE},
    {"reject_authenticated_sender_login_mismatch", RX_REJECT_AUTH_LOGIN_MISMATCH, RX_ARG_NONE},
    {"reject_invalid_helo_hostname", RX_REJECT_INVALID_HELO, RX_ARG_NONE},
    {"reject_invalid_hostname", RX_REJECT_INVALID_HELO, RX_ARG_NONE},
    {"reject_multi_recipient_bounce", RX_REJECT_MULTI_BOUNCE, RX_ARG_NONE},
    {"reject_non_fqdn_helo_hostname", RX_REJECT_NON_FQDN_HELO, RX_ARG_NONE},
    {"reject_non_fqdn_hostname", RX_REJECT_NON_FQDN_HELO, RX_ARG_NONE},
    {"reject_non_fqdn_recipient", RX_REJECT_NON_FQDN_RCPT, RX_ARG_NONE},
    {"reject_non_fqdn_sender", RX_REJECT_NON_FQDN_SENDER, RX_ARG_NONE},
    {"reject_rbl_client", RX_REJECT_RBL_CLIENT, RX_ARG_WORD},
    {"reject_rhsbl_client", RX_REJECT_RHSBL_CLIENT, RX_ARG_WORD},
    {"reject_rhsbl_helo", RX_REJECT_RHSBL_HELO, RX_ARG_WORD},
    {"reject_rhsbl_recipient", RX_REJECT_RHSBL_RECIPIENT, RX_ARG_WORD},
    {"reject_rhsbl_reverse_client", RX_REJECT_RHSBL_CLIENT, RX_ARG_WORD},
    {"reject_rhsbl_sender", RX_REJECT_RHSBL_SENDER, RX_ARG_WORD},
    {"reject_sender_login_mismatch", RX_REJECT_LOGIN_MISMATCH, RX_ARG_NONE},
    {"reject_unauth_destination", RX_REJECT_UNAUTH_DEST, RX_ARG_NONE},
    {"reject_unauth_pipelining", RX_UNAUTH_PIPELINING, RX_ARG_NONE},
    {"reject_unauthenticated_sender_login_mismatch", RX_REJECT_UNAUTH_LOGIN_MISMATCH, RX_ARG_NONE},
    {"reject_unknown_client", RX_REJECT_UNKNOWN_CLIENT, RX_ARG_NONE},
    {"reject_unknown_client_hostname", RX_REJECT_UNKNOWN_CLIENT, RX_ARG_NONE},
    {"reject_unknown_helo_hostname", RX_REJECT_UNKNOWN_HELO, RX_ARG_NONE},
    {"reject_unknown_hostname", RX_REJECT_UNKNOWN_HELO, RX_ARG_NONE},
    {"reject_unknown_recipient_domain", RX_REJECT_UNKNOWN_RCPT_DOMAIN, RX_ARG_NONE},
    {"reject_unknown_reverse_client_hostname", RX_REJECT_UNKNOWN_REVERSE, RX_ARG_NONE},
    {"reject_unknown_sender_domain", RX_REJECT_UNKNOWN_SENDER_DOMAIN, RX_ARG_NONE},
    {"reject_unlisted_recipient", RX_REJECT_UNLISTED_RCPT, RX_ARG_NONE},
    {"reject_unlisted_sender", RX_REJECT_UNLISTED_SENDER, RX_ARG_NONE},
    {"warn_if_reject", RX_WARN_IF_REJECT, RX_ARG_NONE},
};

static const struct restrict_op_desc *restrict_op_find(const char *name)
{
    size_t lo = 0, hi = sizeof(restrict_ops) / sizeof(restrict_ops[0]);

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcasecmp(name, restrict_ops[mid].name);

        if (c == 0)
            return &restrict_ops[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- parsing lists ---- */

void restrict_list_free(struct restrict_list **lp)
{
    struct restrict_list *l;

    if (lp == NULL || *lp == NULL)
        return;
    l = *lp;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].arg);
        map_close(&l->items[i].map);
    }
    free(l->items);
    free(l->name);
    free(l);
    *lp = NULL;
}

/* Find a class by name (classes are parsed before the lists). */
static struct restrict_list *restrict_class_find(struct restrictions *r, const char *name)
{
    for (size_t i = 0; i < r->nclasses; i++)
        if (strcasecmp(r->classes[i]->name, name) == 0)
            return r->classes[i];
    return NULL;
}

struct restrict_list *restrict_list_parse(struct restrictions *r, const char *name,
                                          const char *value, struct strbuf *why)
{
    struct restrict_list *l = xcalloc(1, sizeof(*l));
    char **words = conf_list_split(value ? value : "");

    l->name = xstrdup(name);
    for (size_t i = 0; words[i]; i++) {
        const struct restrict_op_desc *op = restrict_op_find(words[i]);
        struct restrict_item it = {0};

        if (l->n >= RESTRICT_ITEMS_MAX) {
            strbuf_printf(why, "%s: more than %d restrictions", name, RESTRICT_ITEMS_MAX);
            goto fail;
        }
        it.name = xstrdup(words[i]);
        if (op == NULL) {
            it.cls = restrict_class_find(r, words[i]);
            if (it.cls == NULL) {
                strbuf_printf(why, "%s: unknown restriction \"%.100s\"", name, words[i]);
                free(it.name);
                goto fail;
            }
            it.op = RX_CLASS;
        } else {
            it.op = op->op;
            if (op->arg != RX_ARG_NONE) {
                if (words[i + 1] == NULL) {
                    strbuf_printf(why, "%s: restriction %s needs an argument", name,
                                  op->name);
                    free(it.name);
                    goto fail;
                }
                it.arg = xstrdup(words[++i]);
                if (op->arg == RX_ARG_TABLE && (it.map = map_open(it.arg, 0, why)) == NULL) {
                    free(it.name);
                    free(it.arg);
                    goto fail;
                }
            }
        }
        l->items = xreallocarray(l->items, l->n + 1, sizeof(*l->items));
        l->items[l->n++] = it;
    }
    conf_list_free(&words);
    return l;
fail:
    conf_list_free(&words);
    restrict_list_free(&l);
    return NULL;
}

/* True if evaluating l can end in a reject or defer of relaying, as
 * Postfix demands of smtpd_relay_restrictions + recipient restrictions. */
static bool restrict_list_can_refuse(const struct restrict_list *l, int depth)
{
    if (l == NULL || depth > RESTRICT_DEPTH_MAX)
        return false;
    for (size_t i = 0; i < l->n; i++) {
        switch (l->items[i].op) {
        case RX_REJECT_UNAUTH_DEST:
        case RX_DEFER_UNAUTH_DEST:
        case RX_REJECT:
        case RX_DEFER:
        case RX_DEFER_IF_PERMIT:
            return true;
        case RX_CLASS:
            if (restrict_list_can_refuse(l->items[i].cls, depth + 1))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

/* Open a recipient table list; an "authd:PATH" entry is not a table but
 * authd's socket (relative to queue_directory), asked with a userdb
 * lookup when the tables do not know a recipient. */
static struct maps *restrict_rcpt_maps_open(const char *param, const char *value,
                                            char **authd_r, struct strbuf *why)
{
    char **items = conf_list_split(value ? value : "");
    struct strbuf *tables = strbuf_new(64);
    struct maps *ms;

    for (char **p = items; *p; p++) {
        if (strncmp(*p, "authd:", 6) == 0) {
            if ((*p)[6] == 0 || *authd_r != NULL) {
                strbuf_printf(why, "parameter %s: one authd:socket_path entry at most, "
                              "with a path", param);
                conf_list_free(&items);
                strbuf_free(&tables);
                return NULL;
            }
            *authd_r = xstrdup(*p + 6);
            continue;
        }
        strbuf_appendf(tables, "%s%s", strbuf_len(tables) ? " " : "", *p);
    }
    ms = maps_open(strbuf_str(tables), 0, why);
    conf_list_free(&items);
    strbuf_free(&tables);
    return ms;
}

int restrict_authd_lookup(struct restrictions *r, const char *path, const char *user,
                          struct strbuf *why)
{
    struct auth_client_user u;
    int rc;

    if (r->authd && strcmp(r->authd_path, path) != 0) {
        auth_client_close(&r->authd);
        free(r->authd_path);
        r->authd_path = NULL;
    }
    if (r->authd == NULL) {
        if ((r->authd = auth_client_connect(path, 10000, why)) == NULL)
            return -1;
        r->authd_path = xstrdup(path);
    }
    memset(&u, 0, sizeof(u));
    rc = auth_client_lookup(r->authd, user, "smtp", &u, why);
    if (rc == 1)
        auth_client_user_clear(&u);
    return rc;
}

static const char *const restrict_list_params[RESTRICT_NLISTS] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
    "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
};

static char *const *restrict_list_vars[RESTRICT_NLISTS] = {
    &var_smtpd_client_restrictions, &var_smtpd_helo_restrictions,
    &var_smtpd_sender_restrictions, &var_smtpd_relay_restrictions,
    &var_smtpd_recipient_restrictions, &var_smtpd_data_restrictions,
    &var_smtpd_end_of_data_restrictions,
};

struct restrictions *restrict_new(struct dns *dns, struct strbuf *why)
{
    struct restrictions *r = xcalloc(1, sizeof(*r));
    char **cls = conf_list_split(var_smtpd_restriction_classes ? var_smtpd_restriction_classes : "");

    r->dns = dns;
    r->delay_reject = var_smtpd_delay_reject;
    /* Classes: names first (a class may name another one defined later,
     * so all names exist before any list is parsed), then their lists. */
    for (size_t i = 0; cls[i]; i++) {
        if (r->nclasses >= RESTRICT_CLASSES_MAX) {
            strbuf_printf(why, "smtpd_restriction_classes: more than %d classes",
                          RESTRICT_CLASSES_MAX);
            goto fail;
        }
        if (restrict_op_find(cls[i]) || restrict_class_find(r, cls[i])) {
            strbuf_printf(why, "smtpd_restriction_classes: \"%.100s\" is a restriction "
                          "name or listed twice", cls[i]);
            goto fail;
        }
        r->classes = xreallocarray(r->classes, r->nclasses + 1, sizeof(*r->classes));
        r->classes[r->nclasses] = xcalloc(1, sizeof(struct restrict_list));
        r->classes[r->nclasses++]->name = xstrdup(cls[i]);
    }
    for (size_t i = 0; i < r->nclasses; i++) {
        const char *value = conf_get(r->classes[i]->name);
        struct restrict_list *parsed;

        if (value == NULL) {
            strbuf_printf(why, "restriction class %s has no definition in main.cf",
                          r->classes[i]->name);
            goto fail;
        }
        if ((parsed = restrict_list_parse(r, r->classes[i]->name, value, why)) == NULL)
            goto fail;
        /* Fill the placeholder in place: lists parsed later point to it. */
        r->classes[i]->items = parsed->items;
        r->classes[i]->n = parsed->n;
        parsed->items = NULL;
        parsed->n = 0;
        restrict_list_free(&parsed);
    }
    for (int i = 0; i < RESTRICT_NLISTS; i++) {
        r->lists[i] = restrict_list_parse(r, restrict_list_params[i],
                                          *restrict_list_vars[i], why);
        if (r->lists[i] == NULL)
            goto fail;
    }
    if (!restrict_list_can_refuse(r->lists[RESTRICT_L_RELAY], 0)
        && !restrict_list_can_refuse(r->lists[RESTRICT_L_RECIPIENT], 0)) {
        strbuf_set(why, "in parameter smtpd_relay_restrictions or "
                   "smtpd_recipient_restrictions, specify at least one working instance "
                   "of: reject_unauth_destination, defer_unauth_destination, reject, "
                   "defer or defer_if_permit");
        goto fail;
    }
    if ((r->mynetworks = cidr_list_parse(var_mynetworks, why)) == NULL) {
        struct strbuf *tmp = strbuf_new(128);

        strbuf_printf(tmp, "parameter mynetworks: %s", strbuf_str(why));
        strbuf_set(why, strbuf_str(tmp));
        strbuf_free(&tmp);
        goto fail;
    }
    if ((r->mydestination = restrict_domains_new(var_mydestination, false, why)) == NULL
        || (r->relay_domains = restrict_domains_new(var_relay_domains, true, why)) == NULL
        || (r->valias_domains = restrict_domains_new(var_virtual_alias_domains, false, why)) == NULL
        || (r->vmailbox_domains = restrict_domains_new(var_virtual_mailbox_domains, false, why)) == NULL)
        goto fail;
    if ((r->local_rcpt_maps = restrict_rcpt_maps_open("local_recipient_maps",
                                                      var_local_recipient_maps,
                                                      &r->local_authd, why)) == NULL
        || (r->valias_maps = maps_open(var_virtual_alias_maps, 0, why)) == NULL
        || (r->vmailbox_maps = restrict_rcpt_maps_open("virtual_mailbox_maps",
                                                       var_virtual_mailbox_maps,
                                                       &r->vmailbox_authd, why)) == NULL
        || (r->relay_rcpt_maps = maps_open(var_relay_recipient_maps, 0, why)) == NULL
        || (r->login_maps = maps_open(var_smtpd_sender_login_maps, 0, why)) == NULL)
        goto fail;
    conf_list_free(&cls);
    return r;
fail:
    conf_list_free(&cls);
    restrict_free(&r);
    return NULL;
}

void restrict_free(struct restrictions **rp)
{
    struct restrictions *r;

    if (rp == NULL || *rp == NULL)
        return;
    r = *rp;
    for (int i = 0; i < RESTRICT_NLISTS; i++)
        restrict_list_free(&r->lists[i]);
    for (size_t i = 0; i < r->nclasses; i++)
        restrict_list_free(&r->classes[i]);
    free(r->classes);
    cidr_list_free(&r->mynetworks);
    restrict_domains_free(&r->mydestination);
    restrict_domains_free(&r->relay_domains);
    restrict_domains_free(&r->valias_domains);
    restrict_domains_free(&r->vmailbox_domains);
    maps_close(&r->local_rcpt_maps);
    maps_close(&r->valias_maps);
    maps_close(&r->vmailbox_maps);
    maps_close(&r->relay_rcpt_maps);
    maps_close(&r->login_maps);
    restrict_policy_close_all(r);
    free(r->local_authd);
    free(r->vmailbox_authd);
    auth_client_close(&r->authd);
    free(r->authd_path);
    free(r);
    *rp = NULL;
}

int restrict_domain_class(struct restrictions *r, const char *domain, struct strbuf *why)
{
    int rc;

    if (domain == NULL || *domain == 0)
        return RESTRICT_CLASS_LOCAL;
    if ((rc = restrict_domains_match(r->mydestination, domain, why)) != 0)
        return rc < 0 ? -1 : RESTRICT_CLASS_LOCAL;
    if ((rc = restrict_domains_match(r->valias_domains, domain, why)) != 0)
        return rc < 0 ? -1 : RESTRICT_CLASS_VALIAS;
    if ((rc = restrict_domains_match(r->vmailbox_domains, domain, why)) != 0)
        return rc < 0 ? -1 : RESTRICT_CLASS_VMAILBOX;
    if ((rc = restrict_domains_match(r->relay_domains, domain, why)) != 0)
        return rc < 0 ? -1 : RESTRICT_CLASS_RELAY;
    return RESTRICT_CLASS_DEFAULT;
}

/* ---- log text ---- */

static const char *restrict_stage_verb(enum restrict_stage stage, const struct restrict_ctx *ctx)
{
    switch (stage) {
    case RESTRICT_CONNECT:
        return "CONNECT";
    case RESTRICT_HELO:
        return ctx->protocol && strncasecmp(ctx->protocol, "ESMTP", 5) == 0 ? "EHLO" : "HELO";
    case RESTRICT_MAIL:
        return "MAIL";
    case RESTRICT_RCPT:
        return "RCPT";
    case RESTRICT_DATA:
        return "DATA";
    case RESTRICT_EOD:
        return "END-OF-MESSAGE";
    }
    return "UNKNOWN";
}

void restrict_log_action(const char *action, enum restrict_stage stage,
                         const struct restrict_ctx *ctx, const char *reply,
                         struct strbuf *out)
{
    strbuf_printf(out, "%s: %s: %s from %s[%s]: %s;",
                  ctx->queue_id && *ctx->queue_id ? ctx->queue_id : "NOQUEUE", action,
                  restrict_stage_verb(stage, ctx),
                  ctx->client_name ? ctx->client_name : "unknown",
                  ctx->client_addr ? ctx->client_addr : "unknown", reply);
    if (ctx->sender)
        strbuf_appendf(out, " from=<%s>", ctx->sender);
    if (ctx->recipient)
        strbuf_appendf(out, " to=<%s>", ctx->recipient);
    if (ctx->protocol)
        strbuf_appendf(out, " proto=%s", ctx->protocol);
    if (ctx->helo)
        strbuf_appendf(out, " helo=<%s>", ctx->helo);
}

void restrict_log_text(enum restrict_stage stage, const struct restrict_ctx *ctx,
                       const char *reply, struct strbuf *out)
{
    restrict_log_action("reject", stage, ctx, reply, out);
}

/* ---- stages ---- */

int restrict_check(struct restrictions *r, enum restrict_stage stage,
                   const struct restrict_ctx *ctx, struct strbuf *reply_r)
{
    struct restrict_eval e = {.r = r, .stage = stage, .ctx = ctx, .reply = reply_r};
    int st = RXS_DUNNO;

    strbuf_reset(reply_r);
    e.pending = strbuf_new(64);
    switch (stage) {
    case RESTRICT_CONNECT:
    case RESTRICT_HELO:
    case RESTRICT_MAIL:
        if (!r->delay_reject)
            st = restrict_eval_list(&e, r->lists[stage == RESTRICT_CONNECT ? RESTRICT_L_CLIENT
                                                 : stage == RESTRICT_HELO ? RESTRICT_L_HELO
                                                                          : RESTRICT_L_SENDER],
                                    stage == RESTRICT_CONNECT ? RESTRICT_L_CLIENT
                                    : stage == RESTRICT_HELO ? RESTRICT_L_HELO
                                                             : RESTRICT_L_SENDER, 0);
        break;
    case RESTRICT_RCPT:
        if (r->delay_reject) {
            for (int l = RESTRICT_L_CLIENT; l <= RESTRICT_L_SENDER; l++) {
                st = restrict_eval_list(&e, r->lists[l], l, 0);
                if (st == RXS_REJECT || st == RXS_DEFER)
                    break;
            }
            if (st == RXS_REJECT || st == RXS_DEFER)
                break;
        }
        st = restrict_eval_list(&e, r->lists[RESTRICT_L_RELAY], RESTRICT_L_RELAY, 0);
        if (st == RXS_REJECT || st == RXS_DEFER)
            break;
        st = restrict_eval_list(&e, r->lists[RESTRICT_L_RECIPIENT], RESTRICT_L_RECIPIENT, 0);
        if (st == RXS_REJECT || st == RXS_DEFER)
            break;
        if (var_smtpd_reject_unlisted_recipient && ctx->recipient)
            st = restrict_unlisted(&e, ctx->recipient, false);
        if (st != RXS_REJECT && st != RXS_DEFER && var_smtpd_reject_unlisted_sender
            && ctx->sender && *ctx->sender)
            st = restrict_unlisted(&e, ctx->sender, true);
        break;
    case RESTRICT_DATA:
        st = restrict_eval_list(&e, r->lists[RESTRICT_L_DATA], RESTRICT_L_DATA, 0);
        break;
    case RESTRICT_EOD:
        st = restrict_eval_list(&e, r->lists[RESTRICT_L_EOD], RESTRICT_L_EOD, 0);
        break;
    }
    /* defer_if_permit: the request would have passed, so defer it. */
    if (st != RXS_REJECT && st != RXS_DEFER && strbuf_len(e.pending)) {
        strbuf_set(reply_r, strbuf_str(e.pending));
        st = RXS_DEFER;
    }
    strbuf_free(&e.pending);
    if (st == RXS_REJECT)
        return RESTRICT_REJECT;
    if (st == RXS_DEFER)
        return RESTRICT_DEFER;
    strbuf_reset(reply_r);
    return RESTRICT_OK;
}
