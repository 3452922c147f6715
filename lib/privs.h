/*
 * privs.h - the one place that chroots and drops privileges.
 *
 * A root process that is told to run as an unprivileged user resolves the
 * user first (the passwd database is not inside the chroot), then chroots,
 * then sets groups, gid and uid (real, effective and saved), and verifies
 * the result: every failure is fatal, because a daemon that believes it
 * dropped privileges and did not is worse than no daemon.
 *
 * A process that is not root does nothing (local mode: `make run`, tests):
 * everything runs as the invoking user, with no chroot.
 */
#ifndef FACTEUR_PRIVS_H
#define FACTEUR_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include "strbuf.h"

/* Look user up by name (or "#uid" / a decimal uid).  Returns 0 with its uid
 * and primary gid, or -1 with why (unknown user).  Safe to call anywhere. */
int privs_user_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, struct strbuf *why);

/* As root: resolve user, chroot into chroot_dir (NULL: none) and chdir
 * "/", then drop to user's uid and gid with no supplementary group but the
 * primary one, and check that root cannot be regained.  Any failure is
 * fatal (log_fatal).  user NULL with chroot_dir set: chroot only (stays
 * root).  Not root: no-op, returns 0.  Refuses to "drop" to uid 0. */
int privs_drop(const char *user, const char *chroot_dir);

/* As root, in a child about to deliver for a user (the pipe agent): set
 * the groups to gid alone, then gid and uid (real, effective, saved), and
 * check that root cannot be regained.  Returns 0, or -1 with why (the
 * caller must not go on: it exits).  uid 0 is refused.  Not root: does
 * nothing and returns 0 (local mode: everything runs as the invoking
 * user, as privs_drop). */
int privs_switch_user(uid_t uid, gid_t gid, struct strbuf *why);

/* True when the process runs with root privileges (effective uid 0). */
bool privs_is_root(void);

#endif
