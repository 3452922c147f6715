/*
 * maps_unix.c - unix: tables, the system user and group databases.
 *
 * "unix:passwd.byname" finds a login name and answers its passwd(5) line
 * ("name:x:uid:gid:gecos:home:shell"); "unix:group.byname" answers the
 * group(5) line ("name:x:gid:member,member").  As in Postfix, the default
 * local_recipient_maps uses unix:passwd.byname to know which local users
 * exist.  Lookups go through NSS (getpwnam_r/getgrnam_r), so whatever
 * nsswitch.conf names answers; an NSS failure other than "no such entry"
 * is a temporary MAP_ERROR.  Keys are folded like any fixed table.
 *
 * Chroot: a daemon jailed in the queue directory (smtpd) has no
 * /etc/passwd, so NSS finds nobody there.  The table is opened before the
 * jail, so open reads /etc/passwd (or /etc/group) into a snapshot, and a
 * lookup that NSS does not answer is answered from it when the file is no
 * longer reachable.  The snapshot is the file's own content: NSS sources
 * other than files (LDAP, sssd) are not visible from a jail at all.  The
 * file is trusted only as far as its size and line format: malformed lines
 * are skipped, never fatal.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "maps.h"
#include "mem.h"
#include "strbuf.h"

#define UNIX_BUF_MAX (1 << 20)  /* NSS buffer limit (huge groups) */

enum unix_kind { UNIX_PASSWD, UNIX_GROUP };

struct unix_map {
    enum unix_kind kind;
    const char *path;           /* the file the snapshot came from */
    struct map_memtab *snap;    /* NULL when the file could not be read */
};

/* Where the snapshots come from; tests point these at their own files. */
static const char *unix_passwd_path = "/etc/passwd";
static const char *unix_group_path = "/etc/group";

void map_unix_set_files(const char *passwd_path, const char *group_path)
{
    unix_passwd_path = passwd_path != NULL ? passwd_path : "/etc/passwd";
    unix_group_path = group_path != NULL ? group_path : "/etc/group";
}

/* True if s is a non-empty string of decimal digits. */
static bool unix_is_number(const char *s, size_t len)
{
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Check one line (no newline) and add it; malformed lines are skipped. */
static int unix_parse_line(const char *line, size_t len, bool group,
                           struct map_memtab *t, struct strbuf *why)
{
    char *key;
    int rc;

    const char *field[7];
    size_t flen[7], nfields = group ? 4 : 7, n = 0;
    const char *p = line, *end = line + len, *colon;

    if (len == 0 || memchr(line, 0, len) != NULL)
        return 0;
    while (n < nfields) {
        colon = n + 1 < nfields ? memchr(p, ':', (size_t)(end - p)) : NULL;
        field[n] = p;
        flen[n] = (colon != NULL ? colon : end) - p;
        n++;
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    /* The last field runs to the end of the line: a colon in it means
     * too many fields. */
    if (n != nfields || memchr(field[n - 1], ':', flen[n - 1]) != NULL)
        return 0;
    /* "+name"/"-name" are NIS compat entries, not users. */
    if (flen[0] == 0 || field[0][0] == '+' || field[0][0] == '-'
        || field[0][0] == '#')
        return 0;
    if (!unix_is_number(field[2], flen[2])
        || (!group && !unix_is_number(field[3], flen[3])))
        return 0;
    key = xstrndup(field[0], flen[0]);
    map_fold(key);
    rc = map_memtab_add(t, key, line, why);
    free(key);
    return rc < 0 ? -1 : rc;
}

long map_unix_parse(const char *data, size_t len, bool group,
                    struct map_memtab *t, struct strbuf *why)
{
    struct strbuf *line = strbuf_new(256);
    const char *p = data, *end = data + len, *nl;
    long count = 0;
    int rc;

    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (nl != NULL ? nl : end) - p;

        if (l > 0 && p[l - 1] == '\r')
            l--;
        if (l <= MAP_LINE_MAX) {
            strbuf_setn(line, p, l);
            if ((rc = unix_parse_line(strbuf_str(line), l, group, t,
                                      why)) < 0) {
                count = -1;
                break;
            }
            count += rc;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    strbuf_free(&line);
    return count;
}

/* Read the snapshot; a missing or unreadable file just means none (the
 * process keeps its /etc, or has no files source to mirror). */
static void unix_snapshot(struct unix_map *um)
{
    struct strbuf *buf = strbuf_new(4096), *why = strbuf_new(128);

    if (access(um->path, F_OK) < 0) {
        /* nothing to mirror */
    } else if (map_read_file(um->path, MAP_UNIX_FILE_MAX, buf, why) < 0) {
        log_warn("unix: table snapshot of %s: %s (a chrooted process will "
                 "not find its entries)", um->path, strbuf_str(why));
    } else {
        um->snap = map_memtab_new();
        if (map_unix_parse(strbuf_str(buf), strbuf_len(buf),
                           um->kind == UNIX_GROUP, um->snap, why) < 0) {
            log_warn("unix: table snapshot of %s: %s", um->path,
                     strbuf_str(why));
            map_memtab_free(&um->snap);
        }
    }
    strbuf_free(&buf);
    strbuf_free(&why);
}

static int unix_open(struct map *m, struct strbuf *why)
{
    struct unix_map *um;
    enum unix_kind kind;

    if (strcmp(m->name, "passwd.byname") == 0)
        kind = UNIX_PASSWD;
    else if (strcmp(m->name, "group.byname") == 0)
        kind = UNIX_GROUP;
    else {
        strbuf_printf(why, "%s: unknown unix: table (expected "
                      "passwd.byname or group.byname)", m->spec);
        return -1;
    }
    um = xcalloc(1, sizeof(*um));
    um->kind = kind;
    um->path = kind == UNIX_PASSWD ? unix_passwd_path : unix_group_path;
    unix_snapshot(um);
    m->priv = um;
    return 0;
}

/* errno values from getpwnam_r/getgrnam_r that mean "no such entry". */
static bool unix_notfound(int err)
{
    return err == 0 || err == ENOENT || err == ESRCH || err == EBADF
        || err == EPERM;
}

/* NSS lookup: MAP_FOUND, MAP_NOTFOUND or MAP_ERROR. */
static int unix_nss_lookup(struct map *m, enum unix_kind kind,
                           const char *key, struct strbuf *value_r,
                           struct strbuf *why)
{
    size_t size = 4096;
    char *buf = NULL;
    int err, rc = MAP_NOTFOUND;

    for (;;) {
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;

        buf = xrealloc(buf, size);
        if (kind == UNIX_PASSWD)
            err = getpwnam_r(key, &pw, buf, size, &pwp);
        else
            err = getgrnam_r(key, &gr, buf, size, &grp);
        if (err == ERANGE && size < UNIX_BUF_MAX) {
            size *= 2;
            continue;
        }
        if (pwp != NULL) {
            strbuf_printf(value_r, "%s:%s:%lu:%lu:%s:%s:%s", pw.pw_name,
                          pw.pw_passwd, (unsigned long)pw.pw_uid,
                          (unsigned long)pw.pw_gid, pw.pw_gecos, pw.pw_dir,
                          pw.pw_shell);
            rc = MAP_FOUND;
        } else if (grp != NULL) {
            strbuf_printf(value_r, "%s:%s:%lu:", gr.gr_name, gr.gr_passwd,
                          (unsigned long)gr.gr_gid);
            for (char **mem = gr.gr_mem; *mem != NULL; mem++)
                strbuf_appendf(value_r, "%s%s", mem == gr.gr_mem ? "" : ",",
                               *mem);
            rc = MAP_FOUND;
        } else if (!unix_notfound(err)) {
            errno = err;
            strbuf_printf(why, "%s: lookup of \"%s\" failed: %m", m->spec,
                          key);
            rc = MAP_ERROR;
        }
        break;
    }
    free(buf);
    return rc;
}

static int unix_lookup(struct map *m, const char *key, struct strbuf *value_r,
                       struct strbuf *why)
{
    struct unix_map *um = m->priv;
    const char *value;
    int rc = unix_nss_lookup(m, um->kind, key, value_r, why);

    /* NSS reads the file itself while it is there; only a process that
     * lost it (chroot) falls back to what the file said at open. */
    if (rc != MAP_FOUND && um->snap != NULL && access(um->path, F_OK) < 0
        && (errno == ENOENT || errno == ENOTDIR)) {
        if ((value = map_memtab_find(um->snap, key)) == NULL)
            return MAP_NOTFOUND;
        strbuf_set(value_r, value);
        return MAP_FOUND;
    }
    return rc;
}

static void unix_close(struct map *m)
{
    struct unix_map *um = m->priv;

    if (um != NULL) {
        map_memtab_free(&um->snap);
        free(um);
    }
    m->priv = NULL;
}

const struct map_ops map_ops_unix = {
    .type = "unix",
    .fixed = true,
    .open = unix_open,
    .lookup = unix_lookup,
    .iterate = NULL,
    .close = unix_close,
};
