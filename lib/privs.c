/*
 * privs.c - chroot and privilege drop, written once (STYLE.md section 11).
 *
 * Called by the server skeleton (lib/server.c) between a daemon's pre_jail
 * and post_jail hooks, and by any command that must shed root.  The order
 * matters: getpwnam before chroot (no /etc/passwd inside the jail), chroot
 * before setuid (chroot needs root), setgroups and setresgid before
 * setresuid (they need root too).  After the drop the result is read back
 * and setuid(0) must fail; anything unexpected ends the process.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

bool privs_is_root(void)
{
    return geteuid() == 0;
}

int privs_user_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, struct strbuf *why)
{
    struct passwd *pw;
    const char *num = user[0] == '#' ? user + 1 : user;
    char *end;
    unsigned long v;

    if ((pw = getpwnam(user)) != NULL) {
        *uid_r = pw->pw_uid;
        *gid_r = pw->pw_gid;
        return 0;
    }
    /* A numeric uid must still exist, so that its primary gid is known. */
    if (*num >= '0' && *num <= '9') {
        errno = 0;
        v = strtoul(num, &end, 10);
        if (*end == 0 && errno == 0 && v < (unsigned long)(uid_t)-1 &&
            (pw = getpwuid((uid_t)v)) != NULL) {
            *uid_r = pw->pw_uid;
            *gid_r = pw->pw_gid;
            return 0;
        }
    }
    /* getpwnam leaves errno in no reliable state for "not found". */
    strbuf_printf(why, "unknown user: %s", user);
    return -1;
}

int privs_drop(const char *user, const char *chroot_dir)
{
    struct strbuf *why;
    uid_t uid = 0, ruid, euid, suid;
    gid_t gid = 0, rgid, egid, sgid;

    if (!privs_is_root())
        return 0;
    if (user != NULL) {
        why = strbuf_new(64);
        if (privs_user_lookup(user, &uid, &gid, why) < 0)
            log_fatal("%s", strbuf_str(why));
        strbuf_free(&why);
        if (uid == 0)
            log_fatal("unprivileged user %s has uid 0: refusing to run as root", user);
    }
    if (chroot_dir != NULL && *chroot_dir != 0) {
        if (chdir(chroot_dir) < 0)
            log_fatal("chdir %s: %m", chroot_dir);
        if (chroot(".") < 0)
            log_fatal("chroot %s: %m", chroot_dir);
        if (chdir("/") < 0)
            log_fatal("chdir / in chroot %s: %m", chroot_dir);
    }
    if (user == NULL)
        return 0;
    if (setgroups(1, &gid) < 0)
        log_fatal("setgroups(%ld): %m", (long)gid);
    if (setresgid(gid, gid, gid) < 0)
        log_fatal("setresgid(%ld): %m", (long)gid);
    if (setresuid(uid, uid, uid) < 0)
        log_fatal("setresuid(%ld): %m", (long)uid);

    /* Trust nothing: read it all back, and root must be gone for good. */
    if (getresuid(&ruid, &euid, &suid) < 0 || ruid != uid || euid != uid || suid != uid)
        log_fatal("privilege drop to %s: uid not changed", user);
    if (getresgid(&rgid, &egid, &sgid) < 0 || rgid != gid || egid != gid || sgid != gid)
        log_fatal("privilege drop to %s: gid not changed", user);
    if (setuid(0) == 0 || seteuid(0) == 0)
        log_fatal("privilege drop to %s: root privileges could be regained", user);
    if (getgroups(0, NULL) != 1)
        log_fatal("privilege drop to %s: supplementary groups remain", user);
    return 0;
}

int privs_switch_user(uid_t uid, gid_t gid, struct strbuf *why)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (uid == 0) {
        strbuf_set(why, "refusing to switch to uid 0");
        return -1;
    }
    if (!privs_is_root())
        return 0;
    if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0
        || setresuid(uid, uid, uid) < 0) {
        strbuf_printf(why, "cannot switch to uid %ld gid %ld: %m", (long)uid, (long)gid);
        return -1;
    }
    if (getresuid(&ruid, &euid, &suid) < 0 || ruid != uid || euid != uid || suid != uid
        || getresgid(&rgid, &egid, &sgid) < 0 || rgid != gid || egid != gid || sgid != gid
        || setuid(0) == 0 || seteuid(0) == 0) {
        strbuf_printf(why, "switch to uid %ld gid %ld did not hold", (long)uid, (long)gid);
        return -1;
    }
    return 0;
}
