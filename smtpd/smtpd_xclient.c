/*
 * smtpd_xclient.c - XCLIENT and XFORWARD (Postfix's extensions) for
 * trusted clients only.
 *
 * XCLIENT lets a proxy or filter in front of smtpd say who the real client
 * is (name, address, HELO, login), so restrictions and logs apply to that
 * client; XFORWARD only tells smtpd what to record in the Received: header
 * and queue file of the next message.  Both are offered and accepted only
 * for clients whose own connection address is in
 * smtpd_authorized_xclient_hosts / smtpd_authorized_xforward_hosts (a
 * client cannot grant itself the right through XCLIENT).  Values are
 * xtext (RFC 3461), decoded, bounded, and checked before use; "[UNAVAILABLE]"
 * and "[TEMPUNAVAIL]" mean unknown.
 */
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "log.h"
#include "params.h"
#include "smtpd.h"
#include "smtpd_check.h"

#define XATTRS_MAX 16           /* attributes on one command */

static const char xclient_names[] = "NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT";
static const char xforward_names[] = "NAME ADDR PORT PROTO HELO IDENT SOURCE";

const char *smtpd_xclient_announce(const struct smtpd_session *s)
{
    return cidr_list_match(smtpd_g.xclient_hosts, s->real_addr) == 1 ? xclient_names : NULL;
}

const char *smtpd_xforward_announce(const struct smtpd_session *s)
{
    return cidr_list_match(smtpd_g.xforward_hosts, s->real_addr) == 1 ? xforward_names : NULL;
}

void smtpd_xforward_reset(struct smtpd_session *s)
{
    strbuf_reset(s->xf_name);
    strbuf_reset(s->xf_addr);
    strbuf_reset(s->xf_port);
    strbuf_reset(s->xf_proto);
    strbuf_reset(s->xf_helo);
    strbuf_reset(s->xf_ident);
}

/* One "NAME=value" of the argument list. */
struct xattr {
    char name[16];
    struct strbuf *value;       /* decoded; "" for [UNAVAILABLE] */
};

/* Split and decode args into at most XATTRS_MAX attributes.  Returns the
 * count, or -1 with why. */
static int xattr_parse(const char *args, size_t len, struct xattr *out, struct strbuf *why)
{
    size_t i = 0;
    int n = 0;

    while (i < len) {
        size_t start, eq, end;

        while (i < len && args[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (n == XATTRS_MAX) {
            strbuf_set(why, "too many attributes");
            return -1;
        }
        start = i;
        while (i < len && args[i] != ' ')
            i++;
        end = i;
        for (eq = start; eq < end && args[eq] != '='; eq++)
            ;
        if (eq == end || eq == start || eq - start >= sizeof(out[n].name)) {
            strbuf_set(why, "bad attribute syntax");
            return -1;
        }
        for (size_t k = start; k < eq; k++)
            out[n].name[k - start] = (char)(args[k] >= 'a' && args[k] <= 'z' ? args[k] - 32
                                                                              : args[k]);
        out[n].name[eq - start] = 0;
        if (smtp_xtext_decode(args + eq + 1, end - eq - 1, out[n].value, why) < 0)
            return -1;
        if (strbuf_len(out[n].value) > SMTPD_XATTR_MAX) {
            strbuf_printf(why, "%s value too long", out[n].name);
            return -1;
        }
        if (strcmp(strbuf_str(out[n].value), "[UNAVAILABLE]") == 0
            || strcmp(strbuf_str(out[n].value), "[TEMPUNAVAIL]") == 0)
            strbuf_reset(out[n].value);
        n++;
    }
    if (n == 0) {
        strbuf_set(why, "no attributes");
        return -1;
    }
    return n;
}

static bool xname_valid(const char *v)
{
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9')
              || *v == '.' || *v == '-' || *v == '_'))
            return false;
    return true;
}

/* An address value: "1.2.3.4", "IPV6:2001:db8::1" or "2001:db8::1". */
static bool xaddr_valid(struct strbuf *v)
{
    unsigned char a[16];
    int fam;

    if (strncasecmp(strbuf_str(v), "IPV6:", 5) == 0)
        strbuf_consume(v, 5);
    return strbuf_len(v) == 0 || cidr_addr_parse(strbuf_str(v), strbuf_len(v), &fam, a) == 0;
}

static bool xport_valid(const char *v)
{
    size_t n = strlen(v);

    return n <= 5 && strspn(v, "0123456789") == n;
}

static void xattrs_init(struct xattr *x)
{
    for (int i = 0; i < XATTRS_MAX; i++)
        x[i].value = strbuf_new(32);
}

static void xattrs_free(struct xattr *x)
{
    for (int i = 0; i < XATTRS_MAX; i++)
        strbuf_free(&x[i].value);
}

static int xbad(struct smtpd_session *s, struct xattr *x, const char *what)
{
    smtpd_reply_id(s, SMTP_R_SYNTAX_ARGS, what);
    xattrs_free(x);
    return SMTPD_CMD_ERR;
}

int smtpd_xclient_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct xattr x[XATTRS_MAX];
    int n;

    if (smtpd_xclient_announce(s) == NULL) {
        smtpd_reply(s, "550 5.7.0 Error: insufficient authorization");
        return SMTPD_CMD_ERR;
    }
    if (s->in_mail) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "MAIL transaction in progress");
        return SMTPD_CMD_ERR;
    }
    xattrs_init(x);
    if ((n = xattr_parse(cmd->args, cmd->args_len, x, s->why)) < 0)
        return xbad(s, x, strbuf_str(s->why));
    /* Check everything before changing anything. */
    for (int i = 0; i < n; i++) {
        const char *v = strbuf_str(x[i].value);

        if (strcmp(x[i].name, "NAME") == 0 || strcmp(x[i].name, "HELO") == 0) {
            if (!xname_valid(v))
                return xbad(s, x, "bad NAME or HELO value");
        } else if (strcmp(x[i].name, "ADDR") == 0 || strcmp(x[i].name, "DESTADDR") == 0) {
            if (!xaddr_valid(x[i].value))
                return xbad(s, x, "bad address value");
        } else if (strcmp(x[i].name, "PORT") == 0 || strcmp(x[i].name, "DESTPORT") == 0) {
            if (!xport_valid(v))
                return xbad(s, x, "bad port value");
        } else if (strcmp(x[i].name, "PROTO") == 0) {
            if (strcasecmp(v, "SMTP") != 0 && strcasecmp(v, "ESMTP") != 0 && *v)
                return xbad(s, x, "bad PROTO value");
        } else if (strcmp(x[i].name, "LOGIN") != 0) {
            return xbad(s, x, "unknown attribute");
        }
    }
    for (int i = 0; i < n; i++) {
        const char *v = strbuf_str(x[i].value);

        if (strcmp(x[i].name, "NAME") == 0)
            smtpd_copy(s->name, sizeof(s->name), *v ? v : "unknown");
        else if (strcmp(x[i].name, "ADDR") == 0)
            smtpd_copy(s->addr, sizeof(s->addr), v);
        else if (strcmp(x[i].name, "PORT") == 0)
            smtpd_copy(s->port, sizeof(s->port), v);
        else if (strcmp(x[i].name, "LOGIN") == 0) {
            strbuf_set(s->sasl_user, v);
            strbuf_set(s->sasl_method, *v ? "XCLIENT" : "");
        } else if (strcmp(x[i].name, "DESTADDR") == 0)
            smtpd_copy(s->laddr, sizeof(s->laddr), v);
        else if (strcmp(x[i].name, "DESTPORT") == 0)
            smtpd_copy(s->lport, sizeof(s->lport), v);
        else if (strcmp(x[i].name, "HELO") == 0)
            strbuf_set(s->helo, v);
    }
    xattrs_free(x);
    smtpd_peer_namaddr(s);
    /* As a new connection from that client: a fresh greeting, EHLO again. */
    smtpd_txn_reset(s);
    s->esmtp = false;
    strbuf_reset(s->sticky_reject);
    log_info("xclient: now %s", strbuf_str(s->namaddr));
    {
        struct smtpd_check_ctx ctx;

        smtpd_check_ctx_fill(s, &ctx);
        if (smtpd_check(SMTPD_CHECK_CONNECT, &ctx, s->reply) != 0)
            strbuf_setn(s->sticky_reject, strbuf_str(s->reply), strbuf_len(s->reply));
    }
    smtpd_banner(s);
    return SMTPD_CMD_OK;
}

int smtpd_xforward_cmd(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
    struct xattr x[XATTRS_MAX];
    int n;

    if (smtpd_xforward_announce(s) == NULL) {
        smtpd_reply(s, "550 5.7.0 Error: insufficient authorization");
        return SMTPD_CMD_ERR;
    }
    if (s->in_mail) {
        smtpd_reply_id(s, SMTP_R_BAD_SEQUENCE, "MAIL transaction in progress");
        return SMTPD_CMD_ERR;
    }
    xattrs_init(x);
    if ((n = xattr_parse(cmd->args, cmd->args_len, x, s->why)) < 0)
        return xbad(s, x, strbuf_str(s->why));
    for (int i = 0; i < n; i++) {
        const char *v = strbuf_str(x[i].value);

        if (strcmp(x[i].name, "NAME") == 0 || strcmp(x[i].name, "HELO") == 0
            || strcmp(x[i].name, "IDENT") == 0) {
            if (!xname_valid(v))
                return xbad(s, x, "bad NAME, HELO or IDENT value");
        } else if (strcmp(x[i].name, "ADDR") == 0) {
            if (!xaddr_valid(x[i].value))
                return xbad(s, x, "bad ADDR value");
        } else if (strcmp(x[i].name, "PORT") == 0) {
            if (!xport_valid(v))
                return xbad(s, x, "bad PORT value");
        } else if (strcmp(x[i].name, "PROTO") == 0) {
            if (!xname_valid(v))
                return xbad(s, x, "bad PROTO value");
        } else if (strcmp(x[i].name, "SOURCE") == 0) {
            if (strcasecmp(v, "LOCAL") != 0 && strcasecmp(v, "REMOTE") != 0 && *v)
                return xbad(s, x, "bad SOURCE value");
        } else {
            return xbad(s, x, "unknown attribute");
        }
    }
    for (int i = 0; i < n; i++) {
        const char *v = strbuf_str(x[i].value);

        if (strcmp(x[i].name, "NAME") == 0)
            strbuf_set(s->xf_name, v);
        else if (strcmp(x[i].name, "ADDR") == 0)
            strbuf_set(s->xf_addr, v);
        else if (strcmp(x[i].name, "PORT") == 0)
            strbuf_set(s->xf_port, v);
        else if (strcmp(x[i].name, "PROTO") == 0)
            strbuf_set(s->xf_proto, v);
        else if (strcmp(x[i].name, "HELO") == 0)
            strbuf_set(s->xf_helo, v);
        else if (strcmp(x[i].name, "IDENT") == 0)
            strbuf_set(s->xf_ident, v);
    }
    xattrs_free(x);
    smtpd_reply_id(s, SMTP_R_OK, NULL);
    return SMTPD_CMD_OK;
}
