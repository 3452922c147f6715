/*
 * lmtpd_deliver.c - recipients and Maildir delivery for lmtpd.
 *
 * Owns the userdb side (authd's USER lookup over lib/auth_client, kept
 * open across sessions), the mail location ("maildir:~/Maildir" with
 * %u %n %d %h and ~), quota rules (Dovecot's "*:storage=1G:messages=N",
 * else mailbox_size_limit) and the write itself through lib/maildir.
 *
 * Privileges: run by master as root (master.cf unpriv=n), lmtpd switches
 * its file-system identity (setfsuid/setfsgid, and the group list) to the
 * recipient's uid and gid around every file operation on that mailbox, so
 * it never writes into a user's home as root; uid 0 is refused.  Not run
 * as root (tests, `make run`), it writes as itself.
 *
 * Durability: each file is fsynced and linked into new/ by
 * maildir_deliver_finish(); then every distinct new/ directory of the
 * transaction is fsynced once (group commit) and only then does a
 * recipient count as delivered.  With an XQID from facteur's own LMTP
 * client, the Maildir name derives from queue ID + recipient + folder, so
 * a retry after a lost reply finds its own file (exactly once).
 *
 * Trust: addresses come from the network; user names are checked before
 * they reach authd, and a mail location from the userdb is refused when
 * it is not absolute or has "." or ".." components.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "conf.h"
#include "lmtpd.h"
#include "log.h"
#include "maildir.h"
#include "maildir_quota.h"
#include "maps.h"
#include "mem.h"
#include "params.h"
#include "privs.h"
#include "qid.h"
#include "smtp_syntax.h"

/* Groups of the process before any switch, restored after each. */
#define LMTPD_GROUPS_MAX 64
static gid_t saved_groups[LMTPD_GROUPS_MAX];
static int saved_ngroups;
static bool deliver_as_root;

static struct auth_client *deliver_auth;
static char **mydest_names;         /* literal mydestination entries */
static struct maps *mydest_maps;    /* its type:name entries */

void lmtpd_deliver_init(void)
{
    struct strbuf *tables = strbuf_new(64), *why = strbuf_new(64);

    deliver_as_root = privs_is_root();
    if (deliver_as_root) {
        saved_ngroups = getgroups(LMTPD_GROUPS_MAX, saved_groups);
        if (saved_ngroups < 0)
            log_fatal("getgroups: %m");
    }
    mydest_names = conf_list_split(var_mydestination);
    for (char **p = mydest_names; *p; p++)
        if (strchr(*p, ':') != NULL) {
            if (strbuf_len(tables))
                strbuf_appendc(tables, ' ');
            strbuf_append(tables, *p);
        }
    if (strbuf_len(tables) && (mydest_maps = maps_open(strbuf_str(tables), 0, why)) == NULL)
        log_fatal("mydestination: %s", strbuf_str(why));
    strbuf_free(&tables);
    strbuf_free(&why);
}

/* ---- replies ----------------------------------------------------- */

/* A reply line from the table, without its CRLF. */
static void reply_set(struct strbuf *out, enum smtp_reply_id id, const char *detail)
{
    smtp_reply_format(out, id, detail);
    strbuf_rtrim(out);
}

/* ---- privileges -------------------------------------------------- */

/* Become the mailbox owner for file access.  Returns 0 or -1 (why). */
static int priv_enter(const struct lmtpd_rcpt *r, struct strbuf *why)
{
    if (!deliver_as_root)
        return 0;
    if (r->uid == 0) {
        strbuf_printf(why, "refusing to deliver as root for %s", r->user);
        return -1;
    }
    if (setgroups(1, &r->gid) < 0) {
        strbuf_printf(why, "setgroups %lu: %m", (unsigned long)r->gid);
        return -1;
    }
    setfsgid(r->gid);
    setfsuid(r->uid);
    /* setfsuid() reports no error: read the values back. */
    if ((uid_t)setfsuid((uid_t)-1) != r->uid || (gid_t)setfsgid((gid_t)-1) != r->gid)
        log_fatal("cannot switch file-system identity to %lu:%lu", (unsigned long)r->uid,
                  (unsigned long)r->gid);
    return 0;
}

static void priv_leave(void)
{
    if (!deliver_as_root)
        return;
    setfsuid(0);
    setfsgid(getegid());
    if ((uid_t)setfsuid((uid_t)-1) != 0)
        log_fatal("cannot switch file-system identity back to root");
    if (setgroups((size_t)saved_ngroups, saved_groups) < 0)
        log_fatal("setgroups: %m");
}

/* ---- recipients -------------------------------------------------- */

static bool domain_is_local(const char *domain)
{
    struct strbuf *val, *why;
    int rc = MAP_NOTFOUND;

    if (*domain == 0)
        return true;
    for (char **p = mydest_names; *p; p++)
        if (strchr(*p, ':') == NULL && strcasecmp(*p, domain) == 0)
            return true;
    if (mydest_maps == NULL)
        return false;
    val = strbuf_new(32);
    why = strbuf_new(32);
    rc = maps_lookup(mydest_maps, domain, val, why);
    if (rc == MAP_ERROR)
        log_warn("mydestination lookup of %s: %s", domain, strbuf_str(why));
    strbuf_free(&val);
    strbuf_free(&why);
    return rc == MAP_FOUND;
}

/* Ask authd; reconnects once per lookup when the connection broke.
 * Returns 1 found, 0 unknown, -1 temporary failure. */
static int user_lookup(const char *user, struct auth_client_user *u, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(64);
    int rc;

    if (deliver_auth == NULL) {
        if (var_lmtpd_auth_path[0] == '/')
            strbuf_set(path, var_lmtpd_auth_path);
        else
            strbuf_printf(path, "%s/%s", var_queue_directory, var_lmtpd_auth_path);
        deliver_auth = auth_client_connect(strbuf_str(path), (int)(var_ipc_timeout > 60 ? 60000
                                                                   : var_ipc_timeout * 1000),
                                           why);
    }
    strbuf_free(&path);
    if (deliver_auth == NULL)
        return -1;
    rc = auth_client_lookup(deliver_auth, user, "lmtp", u, why);
    return rc;
}

/*
 * Expand a mail location: "maildir:" prefix, then a path up to the first
 * ':' (Dovecot options such as :INDEX= follow), with ~ (home at the
 * start), %u (user), %n (user before '@'), %d (after '@'), %h (home),
 * %% and the L modifier (lower case).  Returns 0 or -1 (why).
 */
static int location_expand(const char *loc, const char *user, const char *home,
                           struct strbuf *out, struct strbuf *why)
{
    const char *at = strchr(user, '@');
    const char *p = loc;

    strbuf_reset(out);
    if (strncmp(p, "maildir:", 8) == 0) {
        p += 8;
    } else {
        const char *colon = strchr(p, ':'), *slash = strchr(p, '/');

        if (colon != NULL && (slash == NULL || colon < slash)) {
            strbuf_printf(why, "unsupported mail location \"%.40s\"", loc);
            return -1;
        }
    }
    if (*p == '~' && (p[1] == '/' || p[1] == 0 || p[1] == ':')) {
        if (*home != '/') {
            strbuf_printf(why, "mail location needs a home, and %s has none", user);
            return -1;
        }
        strbuf_append(out, home);
        p++;
    }
    for (; *p && *p != ':'; p++) {
        if (*p != '%') {
            strbuf_appendc(out, *p);
            continue;
        }
        bool lower = false;
        const char *v = NULL;
        size_t vlen = 0;

        p++;
        if (*p == 'L') {
            lower = true;
            p++;
        }
        switch (*p) {
        case '%':
            v = "%";
            vlen = 1;
            break;
        case 'u':
            v = user;
            vlen = strlen(user);
            break;
        case 'n':
            v = user;
            vlen = at ? (size_t)(at - user) : strlen(user);
            break;
        case 'd':
            v = at ? at + 1 : "";
            vlen = strlen(v);
            break;
        case 'h':
            v = home;
            vlen = strlen(home);
            break;
        default:
            strbuf_printf(why, "unknown variable in mail location \"%.40s\"", loc);
            return -1;
        }
        size_t start = strbuf_len(out);

        strbuf_appendn(out, v, vlen);
        if (lower)
            for (size_t i = start; i < strbuf_len(out); i++)
                if (out->data[i] >= 'A' && out->data[i] <= 'Z')
                    out->data[i] = (char)(out->data[i] - 'A' + 'a');
    }
    /* Absolute, and no component that climbs out of the tree. */
    const char *s = strbuf_str(out);

    if (*s != '/') {
        strbuf_printf(why, "mail location of %s is not absolute", user);
        return -1;
    }
    for (const char *c = s; *c;) {
        while (*c == '/')
            c++;
        const char *e = strchrnul(c, '/');

        if ((e - c == 1 && c[0] == '.') || (e - c == 2 && c[0] == '.' && c[1] == '.')) {
            strbuf_printf(why, "mail location of %s has a \".\" or \"..\" component", user);
            return -1;
        }
        c = e;
    }
    while (strbuf_len(out) > 1 && out->data[strbuf_len(out) - 1] == '/')
        strbuf_truncate(out, strbuf_len(out) - 1);
    return 0;
}

/* A size with an optional unit (B, K, M, G, T; "KB" style too), the
 * number in unit_default bytes when no unit is given. */
static int quota_size(const char *s, size_t len, uint64_t unit_default, uint64_t *v_r)
{
    uint64_t v = 0, mul = unit_default;
    size_t i = 0;

    if (len == 0)
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return -1;
    if (i < len) {
        switch (s[i] | 0x20) {
        case 'b': mul = 1; break;
        case 'k': mul = 1ULL << 10; break;
        case 'm': mul = 1ULL << 20; break;
        case 'g': mul = 1ULL << 30; break;
        case 't': mul = 1ULL << 40; break;
        default: return -1;
        }
        i++;
        if (i < len && (s[i] | 0x20) == 'b' && mul != 1)
            i++;
        if (i != len)
            return -1;
    }
    if (mul != 0 && v > UINT64_MAX / mul)
        return -1;
    *v_r = v * mul;
    return 0;
}

/*
 * The maildirsize definition for a userdb quota_rule (Dovecot syntax; only
 * the "*" rule applies to the whole Maildir), or mailbox_size_limit when
 * the userdb gives none.  Returns 0 or -1 for a rule that cannot be read.
 */
static int quota_def(const char *rule, struct strbuf *def, struct strbuf *why)
{
    uint64_t bytes = 0, count = 0;
    const char *p;

    strbuf_reset(def);
    if (*rule == 0 || strncmp(rule, "*:", 2) != 0) {
        if (*rule != 0)
            log_warn("quota_rule \"%.60s\" is not a \"*\" rule: ignored", rule);
        if (var_mailbox_size_limit > 0)
            maildir_quota_format_def(def, (uint64_t)var_mailbox_size_limit, 0);
        return 0;
    }
    for (p = rule + 2; *p;) {
        const char *e = strchrnul(p, ':');
        size_t n = (size_t)(e - p);

        if (n == 6 && strncmp(p, "ignore", 6) == 0) {
            return 0;
        } else if (n > 8 && strncmp(p, "storage=", 8) == 0) {
            if (quota_size(p + 8, n - 8, 1024, &bytes) < 0)
                goto bad;
        } else if (n > 6 && strncmp(p, "bytes=", 6) == 0) {
            if (quota_size(p + 6, n - 6, 1, &bytes) < 0)
                goto bad;
        } else if (n > 9 && strncmp(p, "messages=", 9) == 0) {
            if (quota_size(p + 9, n - 9, 1, &count) < 0)
                goto bad;
        } else if (n != 0) {
            goto bad;
        }
        p = *e ? e + 1 : e;
    }
    if (bytes || count)
        maildir_quota_format_def(def, bytes, count);
    return 0;
bad:
    strbuf_printf(why, "cannot read quota_rule \"%.60s\"", rule);
    return -1;
}

void lmtpd_rcpt_free(struct lmtpd_rcpt **rp)
{
    struct lmtpd_rcpt *r = *rp;

    if (r == NULL)
        return;
    free(r->addr);
    free(r->user);
    free(r->detail);
    free(r->root);
    free(r->folder);
    free(r->quota_def);
    strbuf_free(&r->reply);
    strbuf_free(&r->dir);
    strbuf_free(&r->name);
    free(r);
    *rp = NULL;
}

int lmtpd_rcpt_resolve(const char *addr, const char *local, const char *domain,
                       struct lmtpd_rcpt **rp, struct strbuf *reply_r)
{
    struct strbuf *base = strbuf_new(64), *cand = strbuf_new(128), *why = strbuf_new(64);
    struct strbuf *root = strbuf_new(128), *def = strbuf_new(32);
    struct auth_client_user u;
    const char *detail = "";
    size_t blen = strlen(local);
    int rc = 0, ret = -1;

    memset(&u, 0, sizeof(u));
    /* user+detail: the extension starts at the first delimiter character
     * after the first byte, as Postfix's recipient_delimiter. */
    if (var_recipient_delimiter[0] && blen > 1) {
        size_t k = 1 + strcspn(local + 1, var_recipient_delimiter);

        if (k < blen) {
            detail = local + k + 1;
            blen = k;
        }
    }
    strbuf_setn(base, local, blen);
    for (int step = 0; step < 2 && rc == 0; step++) {
        if (step == 0) {
            if (*domain == 0)
                continue;
            strbuf_printf(cand, "%s@%s", strbuf_str(base), domain);
        } else {
            if (!domain_is_local(domain))
                break;
            strbuf_set(cand, strbuf_str(base));
        }
        if (!auth_proto_valid_user(strbuf_str(cand)))
            continue;
        strbuf_reset(why);
        rc = user_lookup(strbuf_str(cand), &u, why);
    }
    if (rc < 0) {
        log_warn("user lookup for <%s>: %s", addr, strbuf_str(why));
        reply_set(reply_r, SMTP_R_TEMP_LOCAL, "user lookup failed");
        goto out;
    }
    if (rc == 0) {
        /* Postfix's shape ("CODE ESC <addr>: text"), which pflogsumm reads. */
        const struct smtp_reply_desc *rd = smtp_reply_get(SMTP_R_USER_UNKNOWN);

        strbuf_printf(reply_r, "%d %s <%s>: %s", rd->code, rd->esc, addr, rd->text);
        ret = 1;
        goto out;
    }
    strbuf_reset(why);
    if (location_expand(strbuf_len(u.mail) ? strbuf_str(u.mail) : var_mail_location,
                        strbuf_str(cand), strbuf_str(u.home), root, why) < 0
        || quota_def(strbuf_str(u.quota_rule), def, why) < 0) {
        log_warn("user %s: %s", strbuf_str(cand), strbuf_str(why));
        reply_set(reply_r, SMTP_R_TEMP_LOCAL, "mailbox configuration error");
        goto out;
    }
    struct lmtpd_rcpt *r = xcalloc(1, sizeof(*r));

    r->addr = xstrdup(addr);
    r->user = xstrdup(strbuf_str(cand));
    r->detail = xstrdup(detail);
    r->root = xstrdup(strbuf_str(root));
    r->folder = xstrdup(var_lmtp_save_to_detail_mailbox ? detail : "");
    r->quota_def = xstrdup(strbuf_str(def));
    r->uid = (uid_t)u.uid;
    r->gid = (gid_t)u.gid;
    r->reply = strbuf_new(64);
    r->dir = strbuf_new(128);
    r->name = strbuf_new(64);
    *rp = r;
    ret = 0;
out:
    auth_client_user_clear(&u);
    strbuf_free(&base);
    strbuf_free(&cand);
    strbuf_free(&why);
    strbuf_free(&root);
    strbuf_free(&def);
    return ret;
}

/* The "mailbox full" reply, permanent unless quota_full_tempfail. */
static void reply_full(struct strbuf *out, const char *addr)
{
    if (var_quota_full_tempfail)
        strbuf_printf(out, "452 4.2.2 <%s>: Mailbox full", addr);
    else
        strbuf_printf(out, "552 5.2.2 <%s>: Mailbox full", addr);
}

/* Read r's quota (as its owner); 0 fits, 1 over quota (reply set), -1
 * error (why).  A mailbox not created yet holds nothing. */
static int quota_check(struct lmtpd_rcpt *r, uint64_t size, struct strbuf *reply,
                       struct strbuf *why)
{
    struct maildir_quota q;

    if (r->quota_def[0] == 0)
        return 0;
    memset(&q, 0, sizeof(q));
    if (!maildir_exists(r->root)) {
        if (maildir_quota_parse_def(r->quota_def, strlen(r->quota_def), &q.limit_bytes,
                                    &q.limit_count, why) < 0)
            return -1;
    } else if (maildir_quota_get(r->root, r->quota_def, &q, why) < 0) {
        return -1;
    }
    if (maildir_quota_exceeded(&q, size, 1)) {
        reply_full(reply, r->addr);
        return 1;
    }
    return 0;
}

int lmtpd_rcpt_quota(struct lmtpd_rcpt *r, uint64_t size, struct strbuf *reply_r)
{
    struct strbuf *why = strbuf_new(64);
    int rc;

    if ((rc = priv_enter(r, why)) == 0) {
        rc = quota_check(r, size, reply_r, why);
        priv_leave();
    }
    if (rc < 0) {
        log_warn("quota of %s: %s", r->user, strbuf_str(why));
        reply_set(reply_r, SMTP_R_TEMP_LOCAL, "cannot read the mailbox quota");
    }
    strbuf_free(&why);
    return rc;
}

/* ---- delivery ---------------------------------------------------- */

/* How often a Maildir's tmp/ and delivery markers are swept. */
#define LMTPD_CLEAN_INTERVAL (8 * 3600)

/*
 * Now and then (Dovecot's rule: tmp/'s atime older than 8 hours, set again
 * after each sweep) remove what crashed deliveries left in tmp/ and the
 * expired markers of keyed deliveries, so neither grows for a user who
 * never opens the mailbox over IMAP.  Runs as the mailbox owner.
 */
static void deliver_sweep(const char *dir)
{
    struct strbuf *tmp = strbuf_new(128), *why = strbuf_new(64);
    struct timespec ts[2];
    struct stat st;
    time_t now = time(NULL);

    maildir_path(tmp, dir, "tmp", NULL);
    if (stat(strbuf_str(tmp), &st) == 0 && st.st_atime < now - LMTPD_CLEAN_INTERVAL) {
        if (maildir_clean_tmp(dir, now, MAILDIR_TMP_STALE_SECS, why) < 0)
            log_warn("clean %s: %s", dir, strbuf_str(why));
        ts[0].tv_sec = now;
        ts[0].tv_nsec = 0;
        ts[1].tv_sec = 0;
        ts[1].tv_nsec = UTIME_OMIT;
        if (utimensat(AT_FDCWD, strbuf_str(tmp), ts, 0) < 0)
            log_warn("utimensat %s: %m", strbuf_str(tmp));
    }
    strbuf_free(&tmp);
    strbuf_free(&why);
}

/* True if the message's header block already has "Delivered-To: addr":
 * the mail came back round a forwarding loop (Postfix local(8) refuses it
 * the same way).  Only the header, up to the first empty line, is read. */
static bool header_has_delivered_to(const char *data, size_t len, const char *addr)
{
    size_t alen = strlen(addr);
    const char *p = data, *end = data + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);

        if (n == 0 || (n == 1 && *p == '\r'))
            break;
        if (n > 13 && strncasecmp(p, "Delivered-To:", 13) == 0) {
            const char *v = p + 13;

            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
                ve--;
            if ((size_t)(ve - v) == alen && strncasecmp(v, addr, alen) == 0)
                return true;
        }
        p = nl ? nl + 1 : end;
    }
    return false;
}

/* Write the message into r's mailbox (as its owner), link it into new/,
 * not yet synced.  Sets r->status / r->reply on failure; returns 0 when
 * the file is linked (or was there already), -1 otherwise. */
static int deliver_one(const struct lmtpd_msg *m, struct lmtpd_rcpt *r, struct strbuf *hdr,
                       struct strbuf *why)
{
    struct maildir_deliver_opts opts;
    struct maildir_delivery *d = NULL;
    struct strbuf *key = NULL;
    struct timeval arrival;
    uint64_t size;
    int rc;

    strbuf_reset(why);
    if (header_has_delivered_to(m->data, m->len, r->addr)) {
        r->status = 5;
        strbuf_printf(r->reply, "554 5.4.6 <%s>: mail forwarding loop", r->addr);
        return -1;
    }
    strbuf_printf(hdr, "Return-Path: <%s>\nDelivered-To: %s\n", m->sender, r->addr);
    size = strbuf_len(hdr) + m->len;
    if (priv_enter(r, why) < 0) {
        r->status = 4;
        log_warn("%s: %s", m->log_id, strbuf_str(why));
        return -1;
    }
    rc = -1;
    if (!maildir_exists(r->root) && maildir_create(r->root, why) < 0)
        goto fail;
    strbuf_set(r->dir, r->root);
    if (r->folder[0]) {
        /* Only an existing, well-formed folder; anything else gets INBOX
         * (the detail is the sender's choice, not the user's). */
        struct strbuf *fdir = strbuf_new(128);

        if (maildir_folder_check(r->folder, NULL) == 0
            && strcasecmp(r->folder, "INBOX") != 0
            && maildir_folder_path(fdir, r->root, r->folder, NULL) == 0
            && maildir_exists(strbuf_str(fdir)))
            strbuf_set(r->dir, strbuf_str(fdir));
        strbuf_free(&fdir);
    }
    switch (quota_check(r, size, r->reply, why)) {
    case 0:
        break;
    case 1:
        r->status = var_quota_full_tempfail ? 4 : 5;
        priv_leave();
        return -1;
    default:
        goto fail;
    }
    memset(&opts, 0, sizeof(opts));
    if (m->qid != NULL) {
        key = strbuf_new(128);
        strbuf_printf(key, "%s/%s/%s", m->qid, r->addr, strbuf_str(r->dir));
        opts.key = strbuf_str(key);
        if (qid_decode(m->qid, &arrival, NULL) == 0)
            opts.arrival = arrival.tv_sec;
    }
    rc = maildir_deliver_start(strbuf_str(r->dir), &opts, &d, why);
    if (rc == 0) {
        strbuf_set(r->name, "(already delivered)");
        r->linked = true;
        goto done;
    }
    if (rc < 0)
        goto fail;
    if (maildir_deliver_write(d, strbuf_str(hdr), strbuf_len(hdr), why) < 0
        || maildir_deliver_write(d, m->data, m->len, why) < 0) {
        maildir_deliver_abort(&d);
        goto fail;
    }
    rc = maildir_deliver_finish(&d, r->name, why);
    if (rc < 0)
        goto fail;
    if (rc == 0 && r->quota_def[0] && maildir_quota_update(r->root, (int64_t)size, 1, why) < 0)
        log_warn("%s: maildirsize of %s: %s", m->log_id, r->user, strbuf_str(why));
    r->linked = true;
    deliver_sweep(strbuf_str(r->dir));
done:
    strbuf_free(&key);
    priv_leave();
    return 0;
fail:
    strbuf_free(&key);
    priv_leave();
    r->status = 4;
    log_warn("%s: delivery to %s failed: %s", m->log_id, r->root, strbuf_str(why));
    return -1;
}

static double tv_since(const struct timeval *t0)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_usec - t0->tv_usec) / 1e6;
}

void lmtpd_deliver(const struct lmtpd_msg *m, struct lmtpd_rcpt **rcpts, size_t n)
{
    struct strbuf *hdr = strbuf_new(256), *why = strbuf_new(128);
    struct timeval t0 = m->start;
    const char *folder;

    if (m->qid != NULL)
        (void)qid_decode(m->qid, &t0, NULL);
    for (size_t i = 0; i < n; i++) {
        rcpts[i]->status = 0;
        rcpts[i]->linked = false;
        strbuf_reset(rcpts[i]->reply);
        strbuf_reset(rcpts[i]->name);
        (void)deliver_one(m, rcpts[i], hdr, why);
    }
    /* Group commit: one fsync per distinct new/ directory, done as the
     * mailbox owner; each recipient is delivered only once its directory
     * is synced. */
    for (size_t i = 0; i < n; i++) {
        struct lmtpd_rcpt *r = rcpts[i];
        bool synced = false;
        int rc;

        if (!r->linked)
            continue;
        for (size_t j = 0; j < i; j++)
            if (rcpts[j]->linked && strcmp(strbuf_str(rcpts[j]->dir), strbuf_str(r->dir)) == 0) {
                synced = true;
                r->status = rcpts[j]->status;
                break;
            }
        if (synced)
            continue;
        strbuf_reset(why);
        rc = priv_enter(r, why);
        if (rc == 0) {
            rc = maildir_deliver_sync(strbuf_str(r->dir), false, why);
            priv_leave();
        }
        if (rc < 0) {
            log_warn("%s: %s", m->log_id, strbuf_str(why));
            r->status = 4;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct lmtpd_rcpt *r = rcpts[i];
        double delay = tv_since(&t0);

        folder = strcmp(strbuf_str(r->dir), r->root) == 0 ? "INBOX" : r->folder;
        /* Not Postfix's "to=<...>, relay=..., status=" shape: the LMTP
         * client (facteur's lmtp, or Postfix's) logs that line for the
         * same recipient, and pflogsumm would count the delivery twice. */
        if (r->status == 0) {
            strbuf_printf(r->reply, "250 2.0.0 <%s> Ok: delivered to %s", r->addr, folder);
            log_info("%s: saved mail to %s for <%s>: size=%zu, delay=%.2f, name=%s",
                     m->log_id, folder, r->addr, m->len, delay, strbuf_str(r->name));
            continue;
        }
        if (strbuf_len(r->reply) == 0)
            reply_set(r->reply, SMTP_R_TEMP_LOCAL, "mailbox write error");
        /* "452 4.2.2 text": the enhanced code is the second word. */
        const char *text = strbuf_str(r->reply);
        const char *esc = strlen(text) > 4 ? text + 4 : "";
        size_t esc_len = strcspn(esc, " ");

        log_info("%s: not saved for <%s>: delay=%.2f, dsn=%.*s, %s (%s)", m->log_id, r->addr,
                 delay, (int)esc_len, esc, r->status == 5 ? "bounced" : "deferred", text);
    }
    strbuf_free(&hdr);
    strbuf_free(&why);
}
