/*
 * authd_userdb.c - user databases: where a user's mail lives and as whom
 * it is written.  Backends, tried in the order auth_userdb lists them:
 *   passwd              the system user database (getpwnam_r)
 *   passwd-file:PATH    Dovecot's format; extra fields userdb_mail=,
 *                       userdb_quota_rule=, userdb_home=, userdb_uid=,
 *                       userdb_gid= override the columns
 *   hash:PATH           Berkeley DB; value as a passwd-file line without
 *                       the user field
 *   static:ARGS         uid=U gid=G home=TEMPLATE [mail=TEMPLATE]
 *                       [quota_rule=R] [allow_all_users=yes]: one
 *                       virtual-mail owner for every user, home from a
 *                       template such as /var/mail/vhosts/%d/%n.  The
 *                       arguments may follow as separate list items
 *                       ("static:uid=vmail gid=vmail home=...").
 * The first backend that knows the user answers; one that fails ends the
 * lookup with a temporary failure.  lmtpd and the post-login processes ask
 * through the USER request.  A
 * user name reaches here normalised and checked (no '/', no control
 * characters); templates refuse parts that are empty, "." or "..", so a
 * crafted name cannot point a home outside its tree.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "authd.h"
#include "conf.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"

enum userdb_kind { UDB_PASSWD, UDB_PASSWD_FILE, UDB_HASH, UDB_STATIC };

struct userdb {
    enum userdb_kind kind;
    char *arg;                  /* path or map spec */
    struct map *map;
    /* static */
    uid_t uid;
    gid_t gid;
    char *home, *mail, *quota_rule;
    bool allow_all;
    bool have_uid, have_gid;
};

#define USERDB_MAX 8

static struct userdb userdbs[USERDB_MAX];
static int userdb_count;

static int parse_id(const char *s, bool group, long *id_r)
{
    char *end;
    long v;

    if (*s == 0)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end == 0 && errno == 0 && v >= 0 && v < 0x7fffffffL) {
        *id_r = v;
        return 0;
    }
    if (group) {
        struct group *gr = getgrnam(s);
        if (gr == NULL)
            return -1;
        *id_r = (long)gr->gr_gid;
    } else {
        struct passwd *pw = getpwnam(s);
        if (pw == NULL)
            return -1;
        *id_r = (long)pw->pw_uid;
    }
    return 0;
}

static int static_arg(struct userdb *d, const char *kv, struct strbuf *why)
{
    const char *eq = strchr(kv, '=');
    long id;

    if (eq == NULL) {
        strbuf_printf(why, "auth_userdb static: \"%s\" is not name=value", kv);
        return -1;
    }
    if (strncmp(kv, "uid=", 4) == 0) {
        if (parse_id(eq + 1, false, &id) < 0)
            goto bad;
        d->uid = (uid_t)id;
        d->have_uid = true;
    } else if (strncmp(kv, "gid=", 4) == 0) {
        if (parse_id(eq + 1, true, &id) < 0)
            goto bad;
        d->gid = (gid_t)id;
        d->have_gid = true;
    } else if (strncmp(kv, "home=", 5) == 0) {
        free(d->home);
        d->home = xstrdup(eq + 1);
    } else if (strncmp(kv, "mail=", 5) == 0) {
        free(d->mail);
        d->mail = xstrdup(eq + 1);
    } else if (strncmp(kv, "quota_rule=", 11) == 0) {
        free(d->quota_rule);
        d->quota_rule = xstrdup(eq + 1);
    } else if (strncmp(kv, "allow_all_users=", 16) == 0) {
        d->allow_all = strcmp(eq + 1, "yes") == 0;
    } else {
        strbuf_printf(why, "auth_userdb static: unknown argument \"%s\"", kv);
        return -1;
    }
    return 0;
bad:
    strbuf_printf(why, "auth_userdb static: unknown user or group in \"%s\"", kv);
    return -1;
}

static bool is_static_arg(const char *item)
{
    static const char *const keys[] = {"uid=", "gid=", "home=", "mail=", "quota_rule=",
                                       "allow_all_users="};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strncmp(item, keys[i], strlen(keys[i])) == 0)
            return true;
    return false;
}

int userdb_init(struct strbuf *why)
{
    char **list = conf_list_split(var_auth_userdb ? var_auth_userdb : "passwd");
    struct userdb *last_static = NULL;
    int ret = 0;

    userdb_count = 0;
    for (char **p = list; *p && ret == 0; p++) {
        struct userdb *d;

        /* "key=value" items continue the static backend before them. */
        if (last_static && is_static_arg(*p)) {
            ret = static_arg(last_static, *p, why);
            continue;
        }
        last_static = NULL;
        if (userdb_count == USERDB_MAX) {
            strbuf_printf(why, "auth_userdb: more than %d backends", USERDB_MAX);
            ret = -1;
            break;
        }
        d = &userdbs[userdb_count];
        memset(d, 0, sizeof(*d));
        if (strcmp(*p, "passwd") == 0) {
            d->kind = UDB_PASSWD;
        } else if (strncmp(*p, "passwd-file:", 12) == 0 && (*p)[12]) {
            d->kind = UDB_PASSWD_FILE;
            d->arg = xstrdup(*p + 12);
        } else if (strncmp(*p, "hash:", 5) == 0 || strncmp(*p, "btree:", 6) == 0) {
            d->kind = UDB_HASH;
            d->arg = xstrdup(*p);
            if ((d->map = map_open(*p, 0, why)) == NULL) {
                free(d->arg);
                ret = -1;
                break;
            }
        } else if (strncmp(*p, "static:", 7) == 0) {
            d->kind = UDB_STATIC;
            last_static = d;
            if ((*p)[7] && static_arg(d, *p + 7, why) < 0) {
                ret = -1;
                break;
            }
        } else {
            strbuf_printf(why, "auth_userdb: unknown backend \"%s\"", *p);
            ret = -1;
            break;
        }
        userdb_count++;
    }
    conf_list_free(&list);
    for (int i = 0; ret == 0 && i < userdb_count; i++) {
        struct userdb *d = &userdbs[i];
        if (d->kind == UDB_STATIC && (!d->have_uid || !d->have_gid || d->home == NULL)) {
            strbuf_set(why, "auth_userdb static: uid=, gid= and home= are required");
            ret = -1;
        }
    }
    if (ret == 0 && userdb_count == 0) {
        strbuf_set(why, "auth_userdb is empty");
        ret = -1;
    }
    return ret;
}

/* One path component taken from the user name must be a real name. */
static bool safe_part(const char *s, size_t n)
{
    return n > 0 && !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

int userdb_expand(const char *tmpl, const char *user, struct strbuf *out)
{
    const char *at = strrchr(user, '@');
    size_t nlen = at ? (size_t)(at - user) : strlen(user);
    const char *dom = at ? at + 1 : "";

    strbuf_reset(out);
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%') {
            strbuf_appendc(out, *p);
            continue;
        }
        switch (*++p) {
        case '%':
            strbuf_appendc(out, '%');
            break;
        case 'u':
            if (!safe_part(user, strlen(user)))
                return -1;
            strbuf_append(out, user);
            break;
        case 'n':
            if (!safe_part(user, nlen))
                return -1;
            strbuf_appendn(out, user, nlen);
            break;
        case 'd':
            if (!safe_part(dom, strlen(dom)))
                return -1;
            strbuf_append(out, dom);
            break;
        default:
            return -1;      /* unknown variable or a lone '%' at the end */
        }
    }
    return 0;
}

static void reply_reset(struct userdb_reply *r)
{
    r->uid = 0;
    r->gid = 0;
    strbuf_reset(r->home);
    strbuf_reset(r->mail);
    strbuf_reset(r->quota_rule);
}

static enum userdb_result from_entry(const struct pwfile_entry *e, struct userdb_reply *r,
                                     struct strbuf *why)
{
    struct strbuf *v = strbuf_new(64);
    const char *uid = e->uid, *gid = e->gid;
    long id;
    enum userdb_result res = USERDB_FOUND;

    strbuf_set(r->home, e->home);
    if (pwfile_extra(e->extra, "userdb_home", v))
        strbuf_set(r->home, strbuf_str(v));
    if (pwfile_extra(e->extra, "userdb_mail", v))
        strbuf_set(r->mail, strbuf_str(v));
    if (pwfile_extra(e->extra, "userdb_quota_rule", v))
        strbuf_set(r->quota_rule, strbuf_str(v));
    struct strbuf *u = strbuf_new(16), *g = strbuf_new(16);
    if (pwfile_extra(e->extra, "userdb_uid", u))
        uid = strbuf_str(u);
    if (pwfile_extra(e->extra, "userdb_gid", g))
        gid = strbuf_str(g);
    if (parse_id(uid, false, &id) < 0) {
        strbuf_printf(why, "user %s: bad uid \"%s\"", e->user, uid);
        res = USERDB_TEMPFAIL;
    } else {
        r->uid = (uid_t)id;
        if (parse_id(gid, true, &id) < 0) {
            strbuf_printf(why, "user %s: bad gid \"%s\"", e->user, gid);
            res = USERDB_TEMPFAIL;
        } else {
            r->gid = (gid_t)id;
        }
    }
    strbuf_free(&u);
    strbuf_free(&g);
    strbuf_free(&v);
    return res;
}

static enum userdb_result lookup_one(struct userdb *d, const char *user,
                                     struct userdb_reply *r, struct strbuf *why)
{
    struct pwfile_entry e;
    int rc;

    reply_reset(r);
    switch (d->kind) {
    case UDB_PASSWD: {
        struct passwd pw, *res = NULL;
        char buf[4096];

        rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
        if (rc != 0) {
            errno = rc;
            strbuf_printf(why, "getpwnam %s: %m", user);
            return USERDB_TEMPFAIL;
        }
        if (res == NULL)
            return USERDB_NOTFOUND;
        r->uid = pw.pw_uid;
        r->gid = pw.pw_gid;
        strbuf_set(r->home, pw.pw_dir);
        return USERDB_FOUND;
    }
    case UDB_PASSWD_FILE:
        rc = pwfile_lookup(d->arg, user, &e, why);
        if (rc <= 0)
            return rc == 0 ? USERDB_NOTFOUND : USERDB_TEMPFAIL;
        break;
    case UDB_HASH: {
        struct strbuf *val = strbuf_new(128), *line = strbuf_new(128);

        rc = map_lookup(d->map, user, val, why);
        if (rc == MAP_FOUND) {
            strbuf_printf(line, "%s:%s", user, strbuf_str(val));
            if (pwfile_parse_line(strbuf_str(line), &e) < 0) {
                strbuf_printf(why, "%s: malformed value for %s", d->arg, user);
                rc = MAP_ERROR;
            }
        }
        strbuf_free(&val);
        strbuf_free(&line);
        if (rc != MAP_FOUND)
            return rc == MAP_NOTFOUND ? USERDB_NOTFOUND : USERDB_TEMPFAIL;
        break;
    }
    case UDB_STATIC:
        if (!d->allow_all) {
            rc = passdb_exists(user);
            if (rc <= 0) {
                if (rc < 0)
                    strbuf_set(why, "passdb lookup failed");
                return rc == 0 ? USERDB_NOTFOUND : USERDB_TEMPFAIL;
            }
        }
        r->uid = d->uid;
        r->gid = d->gid;
        if (userdb_expand(d->home, user, r->home) < 0
            || (d->mail && userdb_expand(d->mail, user, r->mail) < 0)) {
            strbuf_printf(why, "user %s does not fit the static home template", user);
            return USERDB_NOTFOUND;
        }
        if (d->quota_rule)
            strbuf_set(r->quota_rule, d->quota_rule);
        return USERDB_FOUND;
    }
    enum userdb_result res = from_entry(&e, r, why);
    pwfile_entry_free(&e);
    return res;
}

enum userdb_result userdb_lookup(const char *user, struct userdb_reply *r, struct strbuf *why)
{
    for (int i = 0; i < userdb_count; i++) {
        enum userdb_result res = lookup_one(&userdbs[i], user, r, why);

        if (res == USERDB_FOUND)
            return res;
        if (res == USERDB_TEMPFAIL) {
            /* Stop here: a later backend (static, say) would give another
             * home, and mail must not go there because a file was briefly
             * unreadable. */
            log_warn("userdb(%s): %s", user, strbuf_str(why));
            return res;
        }
    }
    return USERDB_NOTFOUND;
}
