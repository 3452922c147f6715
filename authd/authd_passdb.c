/*
 * authd_passdb.c - password databases: passwd-file, PAM, hash (Berkeley
 * DB through lib/maps), tried in the order auth_passdb lists them.
 *
 * Workers (authd_worker.c) call passdb_verify_inline for PLAIN and LOGIN;
 * authd_conn calls passdb_scram for SCRAM.  The first backend that knows the user decides; a backend that
 * cannot answer (file unreadable, PAM module error) makes the result
 * PASSDB_TEMPFAIL unless a later backend knows the user.  Every failure
 * is logged once as "BACKEND(user,rip): Password mismatch" or
 * "BACKEND(user,rip): unknown user", the form fail2ban's stock dovecot
 * filter matches.  PAM runs in the worker processes, with authd's
 * privileges: root when a pam passdb needs shadow (master.cf unpriv column
 * "n"); PAM's own failure delay is switched off since authd applies its
 * own, without blocking.
 */
#include <ctype.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

#include "auth_proto.h"
#include "authd.h"
#include "conf.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"

enum passdb_kind { PDB_PASSWD_FILE, PDB_PAM, PDB_HASH };

struct passdb {
    enum passdb_kind kind;
    char *arg;              /* path, PAM service or map spec */
    struct map *map;        /* PDB_HASH */
};

#define PASSDB_MAX 8

static struct passdb passdbs[PASSDB_MAX];
static int passdb_count;

static const char *passdb_name(const struct passdb *p)
{
    switch (p->kind) {
    case PDB_PASSWD_FILE: return "passwd-file";
    case PDB_PAM: return "pam";
    case PDB_HASH: return "hash";
    }
    return "passdb";
}

int authd_user_normalize(const char *in, struct strbuf *out)
{
    const char *chars = var_auth_username_chars ? var_auth_username_chars : "";
    bool lower = var_auth_username_format && strstr(var_auth_username_format, "%L") != NULL;

    strbuf_reset(out);
    for (const char *p = in; *p; p++) {
        if (*chars && strchr(chars, *p) == NULL)
            return -1;
        strbuf_appendc(out, lower ? tolower((unsigned char)*p) : *p);
    }
    if (strchr(strbuf_str(out), '@') == NULL && var_auth_default_realm
        && *var_auth_default_realm)
        strbuf_appendf(out, "@%s", var_auth_default_realm);
    return auth_proto_valid_user(strbuf_str(out)) ? 0 : -1;
}

void passdb_log_failure(const char *backend, const char *user, const char *rip,
                        const char *what)
{
    /* No "warning:" prefix: fail2ban's dovecot filter expects the
     * "backend(user,address): reason" text right after the process tag. */
    log_info("%s(%s,%s): %s", backend, user, *rip ? rip : "unknown", what);
}

int passdb_init(struct strbuf *why)
{
    char **list = conf_list_split(var_auth_passdb ? var_auth_passdb : "pam");
    int ret = 0;

    passdb_count = 0;
    for (char **p = list; *p && ret == 0; p++) {
        struct passdb *d;

        if (passdb_count == PASSDB_MAX) {
            strbuf_printf(why, "auth_passdb: more than %d backends", PASSDB_MAX);
            ret = -1;
            break;
        }
        d = &passdbs[passdb_count];
        memset(d, 0, sizeof(*d));
        if (strncmp(*p, "passwd-file:", 12) == 0 && (*p)[12]) {
            d->kind = PDB_PASSWD_FILE;
            d->arg = xstrdup(*p + 12);
        } else if (strcmp(*p, "pam") == 0 || strncmp(*p, "pam:", 4) == 0) {
            d->kind = PDB_PAM;
            d->arg = xstrdup((*p)[3] == ':' && (*p)[4] ? *p + 4
                             : (var_auth_pam_service && *var_auth_pam_service
                                ? var_auth_pam_service : "facteur"));
        } else if (strncmp(*p, "hash:", 5) == 0 || strncmp(*p, "btree:", 6) == 0) {
            d->kind = PDB_HASH;
            d->arg = xstrdup(*p);
            if ((d->map = map_open(*p, 0, why)) == NULL) {
                free(d->arg);
                ret = -1;
                break;
            }
        } else {
            strbuf_printf(why, "auth_passdb: unknown backend \"%s\"", *p);
            ret = -1;
            break;
        }
        passdb_count++;
    }
    conf_list_free(&list);
    if (ret == 0 && passdb_count == 0) {
        strbuf_set(why, "auth_passdb is empty");
        ret = -1;
    }
    return ret;
}

/* Stored password of user in a file-like backend: 1 found, 0 not, -1 error. */
static int passdb_stored(struct passdb *d, const char *user, struct pwfile_entry *e,
                         struct strbuf *why)
{
    if (d->kind == PDB_PASSWD_FILE)
        return pwfile_lookup(d->arg, user, e, why);

    struct strbuf *val = strbuf_new(128);
    int r = map_lookup(d->map, user, val, why);

    if (r == MAP_FOUND) {
        /* The value is a passwd-file line without its user field. */
        struct strbuf *line = strbuf_new(strbuf_len(val) + 64);
        strbuf_printf(line, "%s:%s", user, strbuf_str(val));
        r = pwfile_parse_line(strbuf_str(line), e) == 0 ? 1 : -1;
        if (r < 0)
            strbuf_printf(why, "%s: malformed value for %s", d->arg, user);
        explicit_bzero(line->data, line->size);
        strbuf_free(&line);
    } else {
        r = r == MAP_NOTFOUND ? 0 : -1;
    }
    explicit_bzero(val->data, val->size);
    strbuf_free(&val);
    return r;
}

/* ---- PAM ---- */

struct pam_ctx {
    const char *password;
};

static int pam_conv_fn(int n, const struct pam_message **msg, struct pam_response **resp,
                       void *appdata)
{
    struct pam_ctx *ctx = appdata;
    struct pam_response *r;

    if (n <= 0 || n > 32)
        return PAM_CONV_ERR;
    r = xcalloc((size_t)n, sizeof(*r));
    for (int i = 0; i < n; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON:
            r[i].resp = strdup(ctx->password);
            if (r[i].resp == NULL)
                goto fail;
            break;
        case PAM_ERROR_MSG:
        case PAM_TEXT_INFO:
            break;
        default:
            goto fail;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
fail:
    for (int i = 0; i < n; i++)
        if (r[i].resp) {
            explicit_bzero(r[i].resp, strlen(r[i].resp));
            free(r[i].resp);
        }
    free(r);
    return PAM_CONV_ERR;
}

/* PAM modules call this instead of sleeping after a failure. */
static void pam_no_delay(int retval, unsigned usec_delay, void *appdata)
{
}

static enum passdb_result pam_verify(struct passdb *d, const char *user, const char *password,
                                     const char *rip, const char *service)
{
    struct pam_ctx ctx = {password};
    struct pam_conv conv = {pam_conv_fn, &ctx};
    pam_handle_t *pamh = NULL;
    int r;

    if ((r = pam_start(d->arg, user, &conv, &pamh)) != PAM_SUCCESS) {
        log_warn("pam(%s,%s): pam_start(%s) failed: %s", user, rip, d->arg,
                 pam_strerror(NULL, r));
        return PASSDB_TEMPFAIL;
    }
    (void)pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)pam_no_delay);
    if (*rip)
        (void)pam_set_item(pamh, PAM_RHOST, rip);
    (void)pam_set_item(pamh, PAM_RUSER, user);
    (void)pam_set_item(pamh, PAM_TTY, service);
    r = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    if (r == PAM_SUCCESS)
        r = pam_acct_mgmt(pamh, PAM_SILENT);
    enum passdb_result res;
    switch (r) {
    case PAM_SUCCESS:
        res = PASSDB_OK;
        break;
    case PAM_USER_UNKNOWN:
        passdb_log_failure("pam", user, rip, "unknown user");
        res = PASSDB_NOUSER;
        break;
    case PAM_AUTH_ERR:
    case PAM_PERM_DENIED:
    case PAM_ACCT_EXPIRED:
    case PAM_NEW_AUTHTOK_REQD:
    case PAM_MAXTRIES:
        log_info("pam(%s,%s): pam_authenticate() failed: Authentication failure "
                 "(Password mismatch?)", user, *rip ? rip : "unknown");
        res = PASSDB_MISMATCH;
        break;
    default:
        log_warn("pam(%s,%s): PAM service %s failed: %s", user, *rip ? rip : "unknown",
                 d->arg, pam_strerror(pamh, r));
        res = PASSDB_TEMPFAIL;
        break;
    }
    pam_end(pamh, r);
    return res;
}

enum passdb_result passdb_verify_inline(const char *user, const char *password,
                                        const char *rip, const char *service)
{
    struct strbuf *why = strbuf_new(128);
    enum passdb_result res = PASSDB_NOUSER;
    bool tempfail = false;

    for (int i = 0; i < passdb_count; i++) {
        struct passdb *d = &passdbs[i];
        struct pwfile_entry e;
        int r;

        if (d->kind == PDB_PAM) {
            res = pam_verify(d, user, password, rip, service);
            if (res == PASSDB_NOUSER)
                continue;
            if (res == PASSDB_TEMPFAIL) {
                tempfail = true;
                continue;
            }
            break;
        }
        strbuf_reset(why);
        r = passdb_stored(d, user, &e, why);
        if (r < 0) {
            log_warn("%s(%s,%s): %s", passdb_name(d), user, *rip ? rip : "unknown",
                     strbuf_str(why));
            tempfail = true;
            continue;
        }
        if (r == 0)
            continue;
        r = e.password[0] ? pwscheme_verify(password, e.password,
                                            var_auth_default_pass_scheme, why)
                          : 0;
        pwfile_entry_free(&e);
        if (r < 0) {
            log_warn("%s(%s,%s): bad stored password: %s", passdb_name(d), user,
                     *rip ? rip : "unknown", strbuf_str(why));
            tempfail = true;
            continue;
        }
        if (r == 0)
            passdb_log_failure(passdb_name(d), user, rip, "Password mismatch");
        res = r == 1 ? PASSDB_OK : PASSDB_MISMATCH;
        break;
    }
    if (res == PASSDB_NOUSER) {
        if (tempfail)
            res = PASSDB_TEMPFAIL;
        else if (passdb_count > 0 && passdbs[passdb_count - 1].kind != PDB_PAM)
            passdb_log_failure(passdb_name(&passdbs[passdb_count - 1]), user, rip,
                               "unknown user");
    }
    strbuf_free(&why);
    return res;
}

enum passdb_result passdb_scram(const char *user, const char *rip, struct pwscheme_scram *sc)
{
    struct strbuf *why = strbuf_new(128);
    enum passdb_result res = PASSDB_NOUSER;
    bool tempfail = false;

    for (int i = 0; i < passdb_count; i++) {
        struct passdb *d = &passdbs[i];
        struct pwfile_entry e;
        int r;

        if (d->kind == PDB_PAM)
            continue;       /* PAM cannot give credentials */
        strbuf_reset(why);
        r = passdb_stored(d, user, &e, why);
        if (r < 0) {
            log_warn("%s(%s,%s): %s", passdb_name(d), user, *rip ? rip : "unknown",
                     strbuf_str(why));
            tempfail = true;
            continue;
        }
        if (r == 0)
            continue;
        r = pwscheme_scram_from_stored(e.password, var_auth_default_pass_scheme, user, sc, why);
        pwfile_entry_free(&e);
        if (r < 0) {
            log_warn("%s(%s,%s): bad stored password: %s", passdb_name(d), user,
                     *rip ? rip : "unknown", strbuf_str(why));
            tempfail = true;
            continue;
        }
        if (r == 0) {
            log_info("%s(%s,%s): stored scheme cannot serve SCRAM-SHA-256", passdb_name(d),
                     user, *rip ? rip : "unknown");
            res = PASSDB_MISMATCH;
        } else {
            res = PASSDB_OK;
        }
        break;
    }
    if (res == PASSDB_NOUSER && tempfail)
        res = PASSDB_TEMPFAIL;
    strbuf_free(&why);
    return res;
}

int passdb_exists(const char *user)
{
    struct strbuf *why = strbuf_new(128);
    bool can_tell = false;
    int found = 0;

    for (int i = 0; i < passdb_count && found == 0; i++) {
        struct pwfile_entry e;
        int r;

        if (passdbs[i].kind == PDB_PAM)
            continue;
        can_tell = true;
        r = passdb_stored(&passdbs[i], user, &e, why);
        if (r < 0) {
            log_warn("%s: %s", passdb_name(&passdbs[i]), strbuf_str(why));
            found = -1;
        } else if (r == 1) {
            pwfile_entry_free(&e);
            found = 1;
        }
    }
    strbuf_free(&why);
    return can_tell ? found : 1;
}
