/*
 * restrict_eval.c - the restrictions themselves: what each name in an
 * smtpd_*_restrictions list checks and what it answers.
 *
 * Called by restrict.c through restrict_eval_list().  Each restriction
 * returns RXS_DUNNO (no decision), RXS_PERMIT, RXS_REJECT or RXS_DEFER
 * with the reply in e->reply.  Reply texts, codes and lookup orders follow
 * Postfix (smtpd_check.c semantics, access(5) lookup order).  Client data
 * is untrusted: addresses are split here only to find a domain to look
 * up, and everything echoed back sits inside <...> after the SMTP parser
 * already refused CR, LF and NUL.  A table or resolver failure is a 4xx,
 * never a 5xx and never a permit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "restrict.h"
#include "restrict_int.h"
#include "smtp_syntax.h"

/* ---- replies ---- */

/* Length of a leading enhanced status code "d.ddd.ddd" followed by space
 * or end in text, or 0. */
static size_t rx_esc_len(const char *t)
{
    size_t i = 0, n;

    if (t[0] < '2' || t[0] > '5' || t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        n = strspn(t + i, "0123456789");
        if (n < 1 || n > 3)
            return 0;
        i += n;
        if (part == 0) {
            if (t[i] != '.')
                return 0;
            i++;
        }
    }
    return t[i] == 0 || t[i] == ' ' ? i : 0;
}

/* Set the final reply "CODE X.Y.Z text" (the class digit of esc follows
 * the code) and return RXS_REJECT or RXS_DEFER, after warn_if_reject
 * and defer_if_reject had their say. */
static int rx_reply(struct restrict_eval *e, int code, const char *esc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int rx_reply(struct restrict_eval *e, int code, const char *esc, const char *fmt, ...)
{
    va_list ap;
    struct strbuf *text = strbuf_new(128);

    va_start(ap, fmt);
    strbuf_vappendf(text, fmt, ap);
    va_end(ap);
    if (code >= 500 && e->defer_if_reject) {
        code = 450;
    }
    strbuf_printf(e->reply, "%d %c%s %s", code, '0' + code / 100, esc + 1, strbuf_str(text));
    strbuf_free(&text);
    if (code >= 500 && e->warn_if_reject) {
        struct strbuf *line = strbuf_new(256);

        restrict_log_action("reject_warning", e->stage, e->ctx, strbuf_str(e->reply), line);
        log_info("%s", strbuf_str(line));
        strbuf_free(&line);
        strbuf_reset(e->reply);
        return RXS_DUNNO;
    }
    return code >= 500 ? RXS_REJECT : RXS_DEFER;
}

/* 451 4.3.0 for a failed table or configuration: never decide on it. */
static int rx_tempfail(struct restrict_eval *e, const char *name, const char *why)
{
    log_warn("%s: %s", name, why);
    strbuf_printf(e->reply, "451 4.3.0 <%s>: Temporary lookup failure", name);
    return RXS_DEFER;
}

/* The name and class a list's generic replies speak of. */
static void rx_who(const struct restrict_eval *e, int which, struct strbuf *name_r,
                   const char **class_r)
{
    const struct restrict_ctx *c = e->ctx;

    switch (which) {
    case RESTRICT_L_CLIENT:
        strbuf_printf(name_r, "%s[%s]", c->client_name ? c->client_name : "unknown",
                      c->client_addr ? c->client_addr : "unknown");
        *class_r = "Client host";
        break;
    case RESTRICT_L_HELO:
        strbuf_set(name_r, c->helo ? c->helo : "");
        *class_r = "Helo command";
        break;
    case RESTRICT_L_SENDER:
        strbuf_set(name_r, c->sender ? c->sender : "");
        *class_r = "Sender address";
        break;
    case RESTRICT_L_RELAY:
    case RESTRICT_L_RECIPIENT:
        /* At DATA a recipient list item speaks of DATA, as Postfix. */
        if (c->recipient && e->stage == RESTRICT_RCPT) {
            strbuf_set(name_r, c->recipient);
            *class_r = "Recipient address";
            break;
        }
        /* fall through */
    case RESTRICT_L_DATA:
        strbuf_set(name_r, "DATA");
        *class_r = "Data command";
        break;
    default:
        strbuf_set(name_r, "END-OF-MESSAGE");
        *class_r = "End-of-data";
        break;
    }
}

/* "<name>: Class rejected: text" with code and esc, for a list. */
static int rx_reject_who(struct restrict_eval *e, int which, int code, const char *esc,
                         const char *text)
{
    struct strbuf *name = strbuf_new(64);
    const char *cls;
    int st;

    rx_who(e, which, name, &cls);
    st = rx_reply(e, code, esc, "<%s>: %s rejected: %s", strbuf_str(name), cls, text);
    strbuf_free(&name);
    return st;
}

/* ---- addresses ---- */

/* Split addr into local part and domain at its last '@' (domain "" when
 * there is none). */
static void rx_split(const char *addr, struct strbuf *local_r, struct strbuf *domain_r)
{
    const char *at = strrchr(addr, '@');

    if (at == NULL) {
        strbuf_set(local_r, addr);
        strbuf_reset(domain_r);
    } else {
        strbuf_setn(local_r, addr, (size_t)(at - addr));
        strbuf_set(domain_r, at + 1);
    }
}

/* The destination an address trick would reach after a local hop, or
 * NULL when the local part holds no routing: user%other, user@other
 * (quoted or doubled '@'), other!user. */
static bool rx_trick_target(const char *local, struct strbuf *target_r)
{
    const char *p;

    if ((p = strrchr(local, '@')) != NULL || (p = strrchr(local, '%')) != NULL) {
        strbuf_set(target_r, p + 1);
        return true;
    }
    if ((p = strchr(local, '!')) != NULL) {
        strbuf_setn(target_r, local, (size_t)(p - local));
        return true;
    }
    return false;
}

/* 1 if relaying to rcpt is authorized (our domain, no trick leading
 * elsewhere), 0 if not, -1 with why on a table failure. */
static int rx_auth_destination(struct restrictions *r, const char *rcpt, struct strbuf *why)
{
    struct strbuf *local = strbuf_new(64), *domain = strbuf_new(64), *target = strbuf_new(64);
    struct smtp_addr a;
    int cls, rc = 0;

    /* The SMTP parser's view (quotes removed: "user@other"@local has the
     * local part user@other); a bare "Postmaster" does not parse. */
    smtp_addr_init(&a);
    if (smtp_mailbox_parse(rcpt, strlen(rcpt), 0, &a, target) == 0) {
        strbuf_set(local, strbuf_str(a.local));
        strbuf_set(domain, strbuf_str(a.domain));
    } else {
        rx_split(rcpt, local, domain);
    }
    smtp_addr_free(&a);
    strbuf_reset(target);
    cls = restrict_domain_class(r, strbuf_str(domain), why);
    if (cls < 0) {
        rc = -1;
    } else if (cls != RESTRICT_CLASS_DEFAULT) {
        rc = 1;
        if (rx_trick_target(strbuf_str(local), target)) {
            cls = strbuf_len(target) ? restrict_domain_class(r, strbuf_str(target), why)
                                     : RESTRICT_CLASS_DEFAULT;
            rc = cls < 0 ? -1 : cls != RESTRICT_CLASS_DEFAULT;
        }
    }
    strbuf_free(&local);
    strbuf_free(&domain);
    strbuf_free(&target);
    return rc;
}

/* Ask authd's userdb for a recipient: the address, then (for local
 * domains) the bare local part, each without its extension.  Returns a
 * MAP_* result. */
static int rx_authd_user(struct restrictions *r, const char *path, const char *addr,
                         const char *local, const char *delim, struct strbuf *why)
{
    const char *keys[2] = {addr, local};
    int rc = MAP_NOTFOUND;

    for (int i = 0; i < 2 && rc == MAP_NOTFOUND; i++) {
        char *key;
        size_t cut;

        if (keys[i] == NULL || *keys[i] == 0)
            continue;
        key = xstrdup(keys[i]);
        /* user+ext@domain -> user@domain: authd knows mailboxes only. */
        if (delim && *delim && (cut = strcspn(key + 1, delim) + 1) < strcspn(key, "@")) {
            size_t at = strcspn(key, "@");

            memmove(key + cut, key + at, strlen(key + at) + 1);
        }
        switch (restrict_authd_lookup(r, path, key, why)) {
        case 1:
            rc = MAP_FOUND;
            break;
        case 0:
            break;
        default:
            rc = MAP_ERROR;
            break;
        }
        free(key);
    }
    return rc;
}

int restrict_unlisted(struct restrict_eval *e, const char *addr, bool sender)
{
    struct restrictions *r = e->r;
    struct strbuf *local = strbuf_new(64), *domain = strbuf_new(64), *why = strbuf_new(64);
    struct strbuf *val = strbuf_new(64);
    const char *table = NULL;
    long code = var_unknown_local_recipient_reject_code;
    int cls, rc, st = RXS_DUNNO;
    const char *delim = var_recipient_delimiter;

    if (*addr == 0)
        goto done;
    rx_split(addr, local, domain);
    if ((cls = restrict_domain_class(r, strbuf_str(domain), why)) < 0) {
        st = rx_tempfail(e, addr, strbuf_str(why));
        goto done;
    }
    if (cls == RESTRICT_CLASS_DEFAULT)
        goto done;
    /* Virtual aliases apply to every class. */
    rc = maps_lookup_addr(r->valias_maps, addr, delim, 0, val, NULL, why);
    if (rc == MAP_FOUND)
        goto done;
    if (rc == MAP_ERROR) {
        st = rx_tempfail(e, addr, strbuf_str(why));
        goto done;
    }
    switch (cls) {
    case RESTRICT_CLASS_LOCAL:
        if (maps_count(r->local_rcpt_maps) == 0 && r->local_authd == NULL)
            goto done;
        /* A bare "postmaster" has no domain: look its local part up. */
        rc = maps_lookup_addr(r->local_rcpt_maps, strbuf_len(domain) ? addr : strbuf_str(local),
                              delim, MAPS_ADDR_LOCALPART, val, NULL, why);
        if (rc == MAP_NOTFOUND && strbuf_len(domain))
            rc = maps_lookup_addr(r->local_rcpt_maps, strbuf_str(local), delim,
                                  MAPS_ADDR_LOCALPART, val, NULL, why);
        if (rc == MAP_NOTFOUND && r->local_authd)
            rc = rx_authd_user(r, r->local_authd, addr, strbuf_str(local), delim, why);
        table = "local recipient table";
        break;
    case RESTRICT_CLASS_VALIAS:
        rc = MAP_NOTFOUND;
        table = "virtual alias table";
        code = var_unknown_virtual_alias_reject_code;
        break;
    case RESTRICT_CLASS_VMAILBOX:
        rc = maps_lookup_addr(r->vmailbox_maps, addr, delim, 0, val, NULL, why);
        if (rc == MAP_NOTFOUND && r->vmailbox_authd)
            rc = rx_authd_user(r, r->vmailbox_authd, addr, NULL, delim, why);
        table = "virtual mailbox table";
        code = var_unknown_virtual_mailbox_reject_code;
        break;
    default:
        if (maps_count(r->relay_rcpt_maps) == 0)
            goto done;
        rc = maps_lookup_addr(r->relay_rcpt_maps, addr, delim, 0, val, NULL, why);
        table = "relay recipient table";
        code = var_unknown_relay_recipient_reject_code;
        break;
    }
    if (rc == MAP_ERROR)
        st = rx_tempfail(e, addr, strbuf_str(why));
    else if (rc == MAP_NOTFOUND)
        st = rx_reply(e, (int)code, sender ? "5.1.0" : "5.1.1",
                      "<%s>: %s address rejected: User unknown in %s", addr,
                      sender ? "Sender" : "Recipient", table);
done:
    strbuf_free(&local);
    strbuf_free(&domain);
    strbuf_free(&why);
    strbuf_free(&val);
    return st;
}

/* ---- access tables ---- */

/* Act on a value found in an access table for restriction it. */
static int rx_access_result(struct restrict_eval *e, const struct restrict_item *it, int kind,
                            const char *value, int which, int depth)
{
    struct strbuf *text = strbuf_new(64), *why = strbuf_new(64);
    struct restrict_list *nested;
    enum restrict_action act;
    int code, st = RXS_DUNNO;
    char esc[16] = "";
    const char *t;
    size_t el;

    act = restrict_access_parse(value, &code, text);
    t = strbuf_str(text);
    if ((el = rx_esc_len(t)) != 0) {
        memcpy(esc, t, el);
        esc[el] = 0;
        t += el + strspn(t + el, " ");
    }
    switch (act) {
    case RESTRICT_ACT_PERMIT:
        st = RXS_PERMIT;
        break;
    case RESTRICT_ACT_DUNNO:
        if (strncasecmp(value, "WARN", 4) == 0 || strncasecmp(value, "INFO", 4) == 0) {
            /* Postfix: "NOQUEUE: warn: RCPT from name[addr]: text; from=..." */
            struct strbuf *line = strbuf_new(256);
            const char *note = value + 4 + strspn(value + 4, " \t");

            restrict_log_action(strncasecmp(value, "WARN", 4) == 0 ? "warn" : "info",
                                e->stage, e->ctx, *note ? note : value, line);
            log_info("%s", strbuf_str(line));
            strbuf_free(&line);
        }
        break;
    case RESTRICT_ACT_REJECT:
    case RESTRICT_ACT_DEFER:
        if (code == 0)
            code = act == RESTRICT_ACT_REJECT ? (int)var_access_map_reject_code
                                              : (int)var_access_map_defer_code;
        st = rx_reject_who(e, kind, code, esc[0] ? esc : "5.7.1", *t ? t : "Access denied");
        break;
    case RESTRICT_ACT_DEFER_IF_PERMIT:
        if (strbuf_len(e->pending) == 0) {
            struct restrict_eval tmp = *e;

            tmp.reply = e->pending;
            tmp.warn_if_reject = tmp.defer_if_reject = false;
            rx_reject_who(&tmp, kind, (int)var_access_map_defer_code, esc[0] ? esc : "4.7.1",
                          *t ? t : "Service unavailable");
        }
        break;
    case RESTRICT_ACT_DEFER_IF_REJECT:
        e->defer_if_reject = true;
        break;
    case RESTRICT_ACT_UNSUPPORTED:
        /* postgrey answers PREPEND X-Greylist: ... on every pass. */
        if (strncasecmp(value, "PREPEND", 7) == 0) {
            log_info("%s %s: header not added (PREPEND is not supported): %.200s", it->name,
                     it->arg, value);
            break;
        }
        log_warn("%s %s: action \"%.100s\" is not supported by facteur's smtpd; ignored",
                 it->name, it->arg, value);
        break;
    case RESTRICT_ACT_RESTRICTIONS:
        nested = restrict_list_parse(e->r, it->arg, value, why);
        if (nested == NULL) {
            st = rx_tempfail(e, it->arg, strbuf_str(why));
            break;
        }
        st = restrict_eval_list(e, nested, which, depth + 1);
        restrict_list_free(&nested);
        break;
    }
    strbuf_free(&text);
    strbuf_free(&why);
    return st;
}

/* Look key up in it's table: 1 found (value_r), 0 not, -1 error. */
static int rx_lookup(const struct restrict_item *it, const char *key, bool partial,
                     struct strbuf *value_r, struct strbuf *why)
{
    if (partial && !map_is_fixed(it->map))
        return 0;
    return map_lookup(it->map, key, value_r, why);
}

/* Fill keys (a NULL-terminated array of owned strings) in access(5) order
 * for a restriction of kind op.  keys[0] is the whole key. */
static char **rx_access_keys(const struct restrict_eval *e, enum restrict_op op)
{
    const struct restrict_ctx *c = e->ctx;
    char **keys = xcalloc(300, sizeof(*keys));
    size_t n = 0;
    const char *p;

    switch (op) {
    case RX_CHECK_CLIENT:
        if (c->client_name && strcmp(c->client_name, "unknown") != 0) {
            keys[n++] = xstrdup(c->client_name);
            for (p = strchr(c->client_name, '.'); p && p[1] && n < 140; p = strchr(p + 1, '.'))
                keys[n++] = xstrdup(p + 1);
        }
        if (c->client_addr && *c->client_addr) {
            char *a = xstrdup(c->client_addr);
            char sep = strchr(a, ':') ? ':' : '.';
            char *q;

            keys[n++] = xstrdup(a);
            while (n < 290 && (q = strrchr(a, sep)) != NULL) {
                *q = 0;
                if (*a == 0)
                    break;
                keys[n++] = xstrdup(a);
            }
            free(a);
        }
        break;
    case RX_CHECK_HELO:
        if (c->helo && *c->helo) {
            keys[n++] = xstrdup(c->helo);
            if (c->helo[0] != '[')
                for (p = strchr(c->helo, '.'); p && p[1] && n < 290; p = strchr(p + 1, '.'))
                    keys[n++] = xstrdup(p + 1);
        }
        break;
    default: {
        const char *addr = op == RX_CHECK_SENDER ? c->sender : c->recipient;
        const char *at;
        size_t ext;

        if (addr == NULL)
            break;
        if (*addr == 0) {
            keys[n++] = xstrdup(var_smtpd_null_access_lookup_key);
            break;
        }
        /* access(5): user+ext@domain, user@domain, domain and its
         * parents, user+ext@, user@ (the extension starts at the first
         * recipient_delimiter character after the first byte). */
        at = strrchr(addr, '@');
        ext = var_recipient_delimiter && *var_recipient_delimiter && addr[0]
                  ? strcspn(addr + 1, var_recipient_delimiter) + 1 : 0;
        if (ext && ext >= (at ? (size_t)(at - addr) : strlen(addr)))
            ext = 0;
        keys[n++] = xstrdup(addr);
        if (ext)
            keys[n++] = xasprintf("%.*s%s", (int)ext, addr, at ? at : "");
        if (at != NULL) {
            keys[n++] = xstrdup(at + 1);
            for (p = strchr(at + 1, '.'); p && p[1] && n < 290; p = strchr(p + 1, '.'))
                keys[n++] = xstrdup(p + 1);
            keys[n++] = xstrndup(addr, (size_t)(at - addr) + 1);
            if (ext)
                keys[n++] = xasprintf("%.*s@", (int)ext, addr);
        }
        break;
    }
    }
    return keys;
}

static int rx_check_access(struct restrict_eval *e, const struct restrict_item *it, int which,
                           int depth)
{
    char **keys = rx_access_keys(e, it->op);
    struct strbuf *val = strbuf_new(64), *why = strbuf_new(64);
    int kind = it->op == RX_CHECK_CLIENT ? RESTRICT_L_CLIENT
               : it->op == RX_CHECK_HELO ? RESTRICT_L_HELO
               : it->op == RX_CHECK_SENDER ? RESTRICT_L_SENDER : RESTRICT_L_RECIPIENT;
    int st = RXS_DUNNO;

    for (size_t i = 0; keys[i]; i++) {
        int rc = rx_lookup(it, keys[i], i > 0, val, why);

        if (rc == MAP_ERROR) {
            st = rx_tempfail(e, keys[0], strbuf_str(why));
            break;
        }
        if (rc == MAP_FOUND) {
            /* A found key ends the search, whatever it says (DUNNO too). */
            st = rx_access_result(e, it, kind, strbuf_str(val), which, depth);
            break;
        }
    }
    for (size_t i = 0; keys[i]; i++)
        free(keys[i]);
    free(keys);
    strbuf_free(&val);
    strbuf_free(&why);
    return st;
}

/* ---- DNS ---- */

/* 1 the domain has MX, A or AAAA; 0 none (permanent); 2 null MX; -1
 * temporary failure. */
static int rx_domain_exists(struct restrictions *r, const char *domain)
{
    static const uint16_t types[] = {DNS_T_A, DNS_T_AAAA};
    struct dns_answer ans;
    struct strbuf *why = strbuf_new(64);
    enum dns_status st;
    int rc = 0;

    if (r->dns == NULL) {
        strbuf_free(&why);
        return -1;
    }
    st = dns_lookup_mx(r->dns, domain, &ans, why);
    dns_answer_free(&ans);
    if (st == DNS_OK || st == DNS_NULLMX || st == DNS_TEMPFAIL || st == DNS_INVALID) {
        strbuf_free(&why);
        return st == DNS_OK ? 1 : st == DNS_NULLMX ? 2 : st == DNS_INVALID ? 0 : -1;
    }
    if (st == DNS_NXDOMAIN) {
        strbuf_free(&why);
        return 0;
    }
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        st = dns_lookup(r->dns, domain, types[i], &ans, why);
        dns_answer_free(&ans);
        if (st == DNS_OK)
            rc = 1;
        else if (st == DNS_TEMPFAIL)
            rc = -1;
    }
    strbuf_free(&why);
    return rc;
}

static int rx_unknown_domain(struct restrict_eval *e, const char *addr, bool sender)
{
    const char *at = strrchr(addr, '@'), *domain;
    struct strbuf *why;
    int cls, rc;

    if (*addr == 0 || at == NULL || at[1] == 0 || at[1] == '[')
        return RXS_DUNNO;
    domain = at + 1;
    why = strbuf_new(64);
    cls = restrict_domain_class(e->r, domain, why);
    if (cls < 0) {
        rc = rx_tempfail(e, addr, strbuf_str(why));
        strbuf_free(&why);
        return rc;
    }
    strbuf_free(&why);
    if (cls != RESTRICT_CLASS_DEFAULT)
        return RXS_DUNNO;
    switch (rx_domain_exists(e->r, domain)) {
    case 1:
        return RXS_DUNNO;
    case 2:
        return sender ? rx_reply(e, 550, "5.7.27", "<%s>: Sender address rejected: Domain %s "
                                 "does not accept mail (nullMX)", addr, domain)
                      : rx_reply(e, 556, "5.1.10", "<%s>: Recipient address rejected: "
                                 "Domain %s does not accept mail (nullMX)", addr, domain);
    case 0:
        return rx_reply(e, (int)var_unknown_address_reject_code, sender ? "5.1.8" : "5.1.2",
                        "<%s>: %s address rejected: Domain not found", addr,
                        sender ? "Sender" : "Recipient");
    default:
        return rx_reply(e, 450, sender ? "4.1.8" : "4.1.2",
                        "<%s>: %s address rejected: Domain not found", addr,
                        sender ? "Sender" : "Recipient");
    }
}

/* DNSBL (reject_rbl_client) and domain blocklists (reject_rhsbl_*): look
 * up "reversed-address.list" or "domain.list" (it->arg is list[=filter])
 * and reject when an A record matches the filter.  cls and what name the
 * listed thing in the reply, as Postfix: "Client host [192.0.2.1]",
 * "Sender address [example.com]". */
static int rx_dnsbl(struct restrict_eval *e, const struct restrict_item *it, bool reverse,
                    const char *key, const char *cls)
{
    char *domain = xstrdup(it->arg), *filter = strchr(domain, '=');
    struct strbuf *name = strbuf_new(128), *why = strbuf_new(64);
    struct dns_answer ans;
    enum dns_status st;
    int rc = RXS_DUNNO;
    bool listed = false;

    if (filter)
        *filter++ = 0;
    if (key == NULL || *key == 0)
        goto done;
    if (reverse) {
        if (dns_reverse_name(key, domain, name) < 0)
            goto done;
    } else {
        /* A domain that is no DNS name (a literal, garbage) is not listed. */
        if (!dns_name_valid(key, true))
            goto done;
        strbuf_printf(name, "%s.%s", key, domain);
        if (strbuf_str(name)[strbuf_len(name) - 1] == '.')
            strbuf_truncate(name, strbuf_len(name) - 1);
        if (!dns_name_valid(strbuf_str(name), true))
            goto done;
    }
    if (e->r->dns == NULL) {
        st = DNS_TEMPFAIL;
    } else {
        st = dns_lookup(e->r->dns, strbuf_str(name), DNS_T_A, &ans, why);
        for (size_t i = 0; st == DNS_OK && i < ans.count && !listed; i++)
            listed = restrict_rbl_filter_match(filter, ans.rr[i].text);
        dns_answer_free(&ans);
    }
    if (st == DNS_TEMPFAIL) {
        /* Postfix: defer only if the request would otherwise pass. */
        if (strbuf_len(e->pending) == 0)
            strbuf_printf(e->pending, "450 4.7.1 <%s>: %s rejected: unable to look up %s: "
                          "temporary failure", key, cls, domain);
        goto done;
    }
    if (listed) {
        struct strbuf *txt = strbuf_new(64);

        if (dns_lookup(e->r->dns, strbuf_str(name), DNS_T_TXT, &ans, why) == DNS_OK)
            strbuf_printf(txt, "; %.300s", ans.rr[0].text);
        dns_answer_free(&ans);
        rc = rx_reply(e, (int)var_maps_rbl_reject_code, "5.7.1", "Service unavailable; "
                      "%s [%s] blocked using %s%s", cls, key, domain, strbuf_str(txt));
        strbuf_free(&txt);
    }
done:
    free(domain);
    strbuf_free(&name);
    strbuf_free(&why);
    return rc;
}

static const char *rx_addr_domain(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;

    return at ? at + 1 : NULL;
}

static int rx_unknown_helo(struct restrict_eval *e)
{
    const char *h = e->ctx->helo;

    if (h == NULL || *h == 0 || h[0] == '[' || !dns_name_valid(h, false))
        return RXS_DUNNO;
    switch (rx_domain_exists(e->r, h)) {
    case 1:
    case 2:
        return RXS_DUNNO;
    case 0:
        return rx_reply(e, (int)var_unknown_hostname_reject_code, "5.7.1",
                        "<%s>: Helo command rejected: Host not found", h);
    default:
        return rx_reply(e, 450, "4.7.1", "<%s>: Helo command rejected: Host not found", h);
    }
}

/* ---- sender login ---- */

static bool rx_owner_listed(const char *owners, const char *user)
{
    char **list = conf_list_split(owners);
    bool found = false;

    for (char **p = list; *p && !found; p++)
        found = strcasecmp(*p, user) == 0;
    conf_list_free(&list);
    return found;
}

static int rx_login_mismatch(struct restrict_eval *e, bool authenticated, bool unauthenticated)
{
    const struct restrict_ctx *c = e->ctx;
    struct strbuf *val = strbuf_new(64), *why = strbuf_new(64);
    int rc, st = RXS_DUNNO;

    if (c->sender == NULL || *c->sender == 0)
        goto done;
    rc = maps_lookup_addr(e->r->login_maps, c->sender, var_recipient_delimiter, 0, val,
                          NULL, why);
    if (rc == MAP_ERROR) {
        st = rx_tempfail(e, c->sender, strbuf_str(why));
        goto done;
    }
    if (c->sasl_user && authenticated) {
        if (rc == MAP_NOTFOUND || !rx_owner_listed(strbuf_str(val), c->sasl_user))
            st = rx_reply(e, 553, "5.7.1", "<%s>: Sender address rejected: not owned by "
                          "user %s", c->sender, c->sasl_user);
    } else if (c->sasl_user == NULL && unauthenticated && rc == MAP_FOUND) {
        st = rx_reply(e, 553, "5.7.1", "<%s>: Sender address rejected: not logged in",
                      c->sender);
    }
done:
    strbuf_free(&val);
    strbuf_free(&why);
    return st;
}

/* ---- one restriction, one list ---- */

static bool rx_fqdn(const char *domain)
{
    bool v6;

    if (domain[0] == '[')
        return smtp_literal_valid(domain, strlen(domain), &v6);
    return strchr(domain, '.') != NULL && dns_name_valid(domain, false);
}

static int rx_non_fqdn_addr(struct restrict_eval *e, const char *addr, bool sender)
{
    const char *at;

    if (addr == NULL || *addr == 0)
        return RXS_DUNNO;
    /* RFC 5321 4.5.1: <Postmaster> needs no domain. */
    if (!sender && strcasecmp(addr, "postmaster") == 0)
        return RXS_DUNNO;
    at = strrchr(addr, '@');
    if (at && rx_fqdn(at + 1))
        return RXS_DUNNO;
    return rx_reply(e, (int)var_non_fqdn_reject_code, "5.5.2", "<%s>: %s address rejected: "
                    "need fully-qualified address", addr, sender ? "Sender" : "Recipient");
}

static int rx_one(struct restrict_eval *e, const struct restrict_item *it, int which, int depth)
{
    const struct restrict_ctx *c = e->ctx;
    struct strbuf *why;
    int rc;

    switch (it->op) {
    case RX_CLASS:
        return restrict_eval_list(e, it->cls, which, depth + 1);
    case RX_PERMIT:
        return RXS_PERMIT;
    case RX_REJECT:
        return rx_reject_who(e, which, (int)var_reject_code, "5.7.1", "Access denied");
    case RX_DEFER:
        return rx_reject_who(e, which, (int)var_defer_code, "4.7.1", "Access denied");
    case RX_DEFER_IF_PERMIT:
        if (strbuf_len(e->pending) == 0) {
            struct restrict_eval tmp = *e;

            tmp.reply = e->pending;
            tmp.warn_if_reject = tmp.defer_if_reject = false;
            rx_reject_who(&tmp, which, (int)var_defer_code, "4.7.1", "Service unavailable");
        }
        return RXS_DUNNO;
    case RX_DEFER_IF_REJECT:
        e->defer_if_reject = true;
        return RXS_DUNNO;
    case RX_WARN_IF_REJECT:
        e->warn_if_reject = true;
        return RXS_DUNNO;
    case RX_PERMIT_MYNETWORKS:
        return cidr_list_match(e->r->mynetworks, c->client_addr) ? RXS_PERMIT : RXS_DUNNO;
    case RX_PERMIT_SASL:
        return c->sasl_user && *c->sasl_user ? RXS_PERMIT : RXS_DUNNO;
    case RX_PERMIT_AUTH_DEST:
    case RX_REJECT_UNAUTH_DEST:
    case RX_DEFER_UNAUTH_DEST:
        if (c->recipient == NULL || e->stage != RESTRICT_RCPT)
            return RXS_DUNNO;
        why = strbuf_new(64);
        rc = rx_auth_destination(e->r, c->recipient, why);
        if (rc < 0)
            rc = rx_tempfail(e, c->recipient, strbuf_str(why));
        else if (it->op == RX_PERMIT_AUTH_DEST)
            rc = rc ? RXS_PERMIT : RXS_DUNNO;
        else if (rc)
            rc = RXS_DUNNO;
        else if (it->op == RX_REJECT_UNAUTH_DEST)
            rc = rx_reply(e, (int)var_relay_domains_reject_code, "5.7.1",
                          "<%s>: Relay access denied", c->recipient);
        else
            rc = rx_reply(e, 454, "4.7.1", "<%s>: Relay access denied", c->recipient);
        strbuf_free(&why);
        return rc;
    case RX_REJECT_UNLISTED_RCPT:
        return c->recipient && e->stage == RESTRICT_RCPT ? restrict_unlisted(e, c->recipient, false)
                                                         : RXS_DUNNO;
    case RX_REJECT_UNLISTED_SENDER:
        return c->sender ? restrict_unlisted(e, c->sender, true) : RXS_DUNNO;
    case RX_REJECT_NON_FQDN_SENDER:
        return rx_non_fqdn_addr(e, c->sender, true);
    case RX_REJECT_NON_FQDN_RCPT:
        return e->stage == RESTRICT_RCPT ? rx_non_fqdn_addr(e, c->recipient, false) : RXS_DUNNO;
    case RX_REJECT_INVALID_HELO:
        if (c->helo == NULL || smtp_helo_valid(c->helo, strlen(c->helo), true))
            return RXS_DUNNO;
        return rx_reply(e, (int)var_invalid_hostname_reject_code, "5.5.2",
                        "<%s>: Helo command rejected: Invalid name", c->helo);
    case RX_REJECT_NON_FQDN_HELO:
        if (c->helo == NULL || rx_fqdn(c->helo))
            return RXS_DUNNO;
        return rx_reply(e, (int)var_non_fqdn_reject_code, "5.5.2",
                        "<%s>: Helo command rejected: need fully-qualified hostname", c->helo);
    case RX_REJECT_UNKNOWN_HELO:
        return rx_unknown_helo(e);
    case RX_REJECT_UNKNOWN_SENDER_DOMAIN:
        return c->sender ? rx_unknown_domain(e, c->sender, true) : RXS_DUNNO;
    case RX_REJECT_UNKNOWN_RCPT_DOMAIN:
        return c->recipient && e->stage == RESTRICT_RCPT ? rx_unknown_domain(e, c->recipient, false)
                                                         : RXS_DUNNO;
    case RX_REJECT_UNKNOWN_CLIENT:
    case RX_REJECT_UNKNOWN_REVERSE:
        if (c->client_name && *c->client_name && strcmp(c->client_name, "unknown") != 0)
            return RXS_DUNNO;
        return rx_reply(e, (int)var_unknown_client_reject_code, "5.7.25",
                        "Client host rejected: cannot find your %shostname, [%s]",
                        it->op == RX_REJECT_UNKNOWN_REVERSE ? "reverse " : "",
                        c->client_addr ? c->client_addr : "unknown");
    case RX_CHECK_POLICY: {
        struct strbuf *action = strbuf_new(64);

        why = strbuf_new(64);
        if (restrict_policy_query(e->r, it->arg, e->stage, c, action, why) < 0) {
            log_warn("policy service %s: %s; using smtpd_policy_service_default_action",
                     it->arg, strbuf_str(why));
            strbuf_set(action, var_smtpd_policy_service_default_action);
        }
        rc = rx_access_result(e, it, which, strbuf_str(action), which, depth);
        strbuf_free(&action);
        strbuf_free(&why);
        return rc;
    }
    case RX_REJECT_RBL_CLIENT:
        return rx_dnsbl(e, it, true, c->client_addr, "Client host");
    case RX_REJECT_RHSBL_CLIENT:
        return c->client_name && strcmp(c->client_name, "unknown") != 0
                   ? rx_dnsbl(e, it, false, c->client_name, "Client host") : RXS_DUNNO;
    case RX_REJECT_RHSBL_HELO:
        return rx_dnsbl(e, it, false, c->helo, "Helo command");
    case RX_REJECT_RHSBL_SENDER:
        return rx_dnsbl(e, it, false, rx_addr_domain(c->sender), "Sender address");
    case RX_REJECT_RHSBL_RECIPIENT:
        return e->stage == RESTRICT_RCPT
                   ? rx_dnsbl(e, it, false, rx_addr_domain(c->recipient), "Recipient address")
                   : RXS_DUNNO;
    case RX_CHECK_CLIENT:
    case RX_CHECK_HELO:
    case RX_CHECK_SENDER:
    case RX_CHECK_RECIPIENT:
        return rx_check_access(e, it, which, depth);
    case RX_REJECT_LOGIN_MISMATCH:
        return rx_login_mismatch(e, true, true);
    case RX_REJECT_AUTH_LOGIN_MISMATCH:
        return rx_login_mismatch(e, true, false);
    case RX_REJECT_UNAUTH_LOGIN_MISMATCH:
        return rx_login_mismatch(e, false, true);
    case RX_REJECT_MULTI_BOUNCE:
        if (c->sender == NULL || *c->sender != 0)
            return RXS_DUNNO;
        if (e->stage == RESTRICT_RCPT ? c->rcpt_count < 1 : c->rcpt_count < 2)
            return RXS_DUNNO;
        return rx_reject_who(e, which, 550, "5.5.3", "Multi-recipient bounce");
    case RX_UNAUTH_PIPELINING:
        /* smtpd enforces this itself (smtpd_forbid_unauth_pipelining). */
        return RXS_DUNNO;
    }
    return RXS_DUNNO;
}

int restrict_eval_list(struct restrict_eval *e, const struct restrict_list *l, int which,
                       int depth)
{
    if (l == NULL)
        return RXS_DUNNO;
    if (depth > RESTRICT_DEPTH_MAX) {
        log_warn("%s: restriction nesting deeper than %d (a class that names itself?)",
                 l->name, RESTRICT_DEPTH_MAX);
        strbuf_set(e->reply, "451 4.3.5 Server configuration error");
        return RXS_DEFER;
    }
    for (size_t i = 0; i < l->n; i++) {
        bool warn = e->warn_if_reject;
        int st = rx_one(e, &l->items[i], which, depth);

        /* warn_if_reject covers exactly the restriction after it. */
        if (warn && l->items[i].op != RX_WARN_IF_REJECT)
            e->warn_if_reject = false;
        if (st != RXS_DUNNO)
            return st;
    }
    return RXS_DUNNO;
}
