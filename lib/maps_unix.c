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
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maps.h"
#include "mem.h"
#include "strbuf.h"

#define UNIX_BUF_MAX (1 << 20)  /* NSS buffer limit (huge groups) */

enum unix_kind { UNIX_PASSWD, UNIX_GROUP };

static int unix_open(struct map *m, struct strbuf *why)
{
    static enum unix_kind kinds[] = { UNIX_PASSWD, UNIX_GROUP };

    if (strcmp(m->name, "passwd.byname") == 0)
        m->priv = &kinds[0];
    else if (strcmp(m->name, "group.byname") == 0)
        m->priv = &kinds[1];
    else {
        strbuf_printf(why, "%s: unknown unix: table (expected "
                      "passwd.byname or group.byname)", m->spec);
        return -1;
    }
    return 0;
}

/* errno values from getpwnam_r/getgrnam_r that mean "no such entry". */
static bool unix_notfound(int err)
{
    return err == 0 || err == ENOENT || err == ESRCH || err == EBADF
        || err == EPERM;
}

static int unix_lookup(struct map *m, const char *key, struct strbuf *value_r,
                       struct strbuf *why)
{
    enum unix_kind kind = *(enum unix_kind *)m->priv;
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

static void unix_close(struct map *m)
{
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
