/*
 * smtp_sasl.c - SASL client authentication to a relay (AUTH PLAIN, LOGIN).
 *
 * With smtp_sasl_auth_enable, the "user:password" for a session comes
 * from smtp_sasl_password_maps, looked up as Postfix does: the next hop as
 * given ("[smtp.example.com]:587"), then its host or domain, then the name
 * of the host we are connected to.  The mechanism is the first of PLAIN,
 * LOGIN that the server offers, smtp_sasl_mechanism_filter allows, and
 * the security options (smtp_sasl_security_options without TLS,
 * smtp_sasl_tls_security_options with it: "noplaintext" forbids both)
 * permit.  A server that offers no AUTH is used without authentication; a
 * refused AUTH defers and tries the next host, as Postfix.  The password
 * never reaches a log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "conf.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "smtp.h"

static bool list_has(const char *list, const char *word)
{
    char **items = conf_list_split(list);
    bool found = false;

    for (char **p = items; *p && !found; p++)
        found = strcasecmp(*p, word) == 0;
    conf_list_free(&items);
    return found;
}

static bool mech_usable(const struct smtp_session *ss, const char *mech)
{
    const char *opts = ss->tls ? var_smtp_sasl_tls_security_options
                               : var_smtp_sasl_security_options;

    if (!list_has(strbuf_str(ss->auth_mechs), mech))
        return false;
    if (*var_smtp_sasl_mechanism_filter && !list_has(var_smtp_sasl_mechanism_filter, mech))
        return false;
    /* PLAIN and LOGIN both send the password in the clear. */
    return !list_has(opts, "noplaintext");
}

/* user:password for this session: 1 found, 0 none, -1 lookup error. */
static int find_password(const struct smtp_session *ss, struct strbuf *val, struct strbuf *why)
{
    const char *keys[3] = { ss->dest->nexthop, ss->dest->domain, ss->host->name };
    int r = MAP_NOTFOUND;

    for (size_t i = 0; i < 3 && r == MAP_NOTFOUND; i++)
        r = maps_lookup(smtp_g.sasl_passwd, keys[i], val, why);
    return r == MAP_FOUND ? 1 : r == MAP_ERROR ? -1 : 0;
}

static int fail(struct smtp_session *ss, const char *dsn)
{
    smtp_rcpt_set_open(ss->d, false, DELIVER_DEFER, dsn, strbuf_str(ss->why));
    return -1;
}

int smtp_sasl_authenticate(struct smtp_session *ss)
{
    struct strbuf *val, *why, *tok;
    const char *mech;
    int r;

    if (!var_smtp_sasl_auth_enable || smtp_g.sasl_passwd == NULL || !(ss->feat & SMTP_FEAT_AUTH))
        return 0;
    val = strbuf_new(64);
    why = strbuf_new(64);
    r = find_password(ss, val, why);
    if (r <= 0) {
        if (r < 0)
            strbuf_printf(ss->why, "SASL password lookup for %s failed: %s", ss->dest->nexthop,
                          strbuf_str(why));
        strbuf_free(&val);
        strbuf_free(&why);
        return r < 0 ? fail(ss, "4.3.0") : 0;
    }
    strbuf_free(&why);
    char *pw = strchr(strbuf_str(val), ':');
    if (pw == NULL) {
        strbuf_printf(ss->why, "malformed SASL password entry for %s (want user:password)",
                      ss->dest->nexthop);
        strbuf_free(&val);
        return fail(ss, "4.3.0");
    }
    *pw++ = 0;
    char *user = xstrdup(strbuf_str(val));
    if (mech_usable(ss, "PLAIN"))
        mech = "PLAIN";
    else if (mech_usable(ss, "LOGIN"))
        mech = "LOGIN";
    else {
        strbuf_printf(ss->why, "SASL authentication failed: server %s offered no compatible "
                      "authentication mechanisms for this type of connection security",
                      ss->peer);
        free(user);
        strbuf_free(&val);
        return fail(ss, "4.7.0");
    }

    tok = strbuf_new(128);
    if (strcmp(mech, "PLAIN") == 0) {
        struct strbuf *raw = strbuf_new(128);
        strbuf_appendc(raw, 0);
        strbuf_append(raw, user);
        strbuf_appendc(raw, 0);
        strbuf_append(raw, pw);
        strbuf_set(tok, "AUTH PLAIN ");
        base64_encode(tok, strbuf_str(raw), strbuf_len(raw));
        memset(raw->data, 0, raw->len);
        strbuf_free(&raw);
        r = smtp_chat(ss, strbuf_str(tok), (int)var_smtp_helo_timeout, "sending AUTH");
    } else {
        r = smtp_chat(ss, "AUTH LOGIN", (int)var_smtp_helo_timeout, "sending AUTH");
        if (r == 0 && ss->reply.code == 334) {
            strbuf_reset(tok);
            base64_encode(tok, user, strlen(user));
            r = smtp_chat(ss, strbuf_str(tok), (int)var_smtp_helo_timeout, "sending AUTH");
        }
        if (r == 0 && ss->reply.code == 334) {
            strbuf_reset(tok);
            base64_encode(tok, pw, strlen(pw));
            r = smtp_chat(ss, strbuf_str(tok), (int)var_smtp_helo_timeout, "sending AUTH");
        }
    }
    memset(tok->data, 0, tok->len);
    strbuf_free(&tok);
    memset(val->data, 0, val->len);
    strbuf_free(&val);
    if (r < 0) {
        free(user);
        return fail(ss, "4.4.2");
    }
    if (ss->reply.code / 100 != 2) {
        strbuf_printf(ss->why, "SASL authentication failed; server %s said: ", ss->peer);
        smtp_reply_oneline(ss, ss->why);
        free(user);
        if (ss->reply.code == 334)
            ss->lost = true;    /* mid-exchange: the session cannot go on */
        return fail(ss, "4.7.0");
    }
    log_info("%s: SASL authentication to %s as %s succeeded with %s", ss->d->req.qid, ss->peer,
             user, mech);
    free(user);
    return 0;
}
