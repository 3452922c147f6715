/*
 * fileops.h - safe file creation, atomic replace, locks.
 *
 * Every function that can fail returns -1 and, when why is not NULL,
 * replaces its content with a reason that names the path ("open
 * /var/spool/facteur/pid/master.pid: Permission denied").  errno is left as
 * the failing call set it, so callers may test EEXIST, ENOENT, EAGAIN.
 * Descriptors returned are O_CLOEXEC.
 */
#ifndef FACTEUR_FILEOPS_H
#define FACTEUR_FILEOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

/* Create path, which must not exist (O_CREAT|O_EXCL|O_NOFOLLOW), opened
 * with extra_flags (O_WRONLY or O_RDWR, plus O_APPEND etc.) and mode
 * (umask applies).  Returns the descriptor, or -1 (errno EEXIST if the
 * name is taken, by a file or a symlink). */
int fileops_open_new(const char *path, int extra_flags, mode_t mode, struct strbuf *why);

/* Open an existing regular file read-only, refusing a symlink as the last
 * component, anything but a regular file, and (if owner is not
 * (uid_t)-1) a file owned by another user or writable by group or others.
 * The checks are made on the open descriptor (no race with a rename).
 * Returns the descriptor or -1. */
int fileops_safe_open_read(const char *path, uid_t owner, struct strbuf *why);

/* Replace path atomically with len bytes of data, created with mode:
 * write a temporary file in the same directory, fsync it, rename it over
 * path, fsync the directory.  A reader sees the old content or the new,
 * never a mix; after a return of 0 the new content survives a crash.  On
 * failure the temporary file is removed and path is unchanged. */
int fileops_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct strbuf *why);

/* fsync a directory, so renames and links in it survive a crash. */
int fileops_fsync_dir(const char *dir, struct strbuf *why);
/* fsync the directory that holds path ("a/b/c" -> "a/b", "c" -> "."). */
int fileops_fsync_parent(const char *path, struct strbuf *why);

/* Create a directory and its missing parents with mode (umask applies);
 * an existing directory is fine, an existing non-directory is an error. */
int fileops_mkdir_p(const char *path, mode_t mode, struct strbuf *why);

/* Read a whole regular file (symlinks followed) into out, replacing its
 * content; a file longer than max bytes is an error (errno EFBIG) and out
 * is left empty.  max == 0 means no limit (trusted files only). */
int fileops_read_file(const char *path, struct strbuf *out, size_t max, struct strbuf *why);

/* Non-blocking whole-file locks, owned by the open file description
 * (Linux OFD locks): a second open() of the same file, even in the same
 * process, conflicts; forked children share the holder's lock; closing any
 * other descriptor of the file does not release it. */
enum fileops_lock_how { FILEOPS_LOCK_SHARED, FILEOPS_LOCK_EXCLUSIVE, FILEOPS_UNLOCK };
/* Returns 0, or -1 with errno EAGAIN when another holder has it. */
int fileops_lock(int fd, enum fileops_lock_how how, struct strbuf *why);

/* The "one master per queue directory" lock: open or create path (mode
 * 0644, no symlink), take an exclusive lock and write our pid in it
 * ("%10d\n", as Postfix does).  Returns the descriptor, to keep open for
 * the life of the process (closing it releases the lock).  If another
 * process holds it: -1, errno EAGAIN, *holder_r set to the pid read from
 * the file (0 if unreadable) and why says "locked by pid N". */
int fileops_pidlock(const char *path, pid_t *holder_r, struct strbuf *why);
/* Rewrite the pid in a held pid lock (after a fork that keeps the lock). */
int fileops_pidlock_update(int fd, struct strbuf *why);

/* Set or clear FD_CLOEXEC / O_NONBLOCK; return 0 or -1 (errno). */
int fileops_set_cloexec(int fd, bool on);
int fileops_set_nonblock(int fd, bool on);

#endif
