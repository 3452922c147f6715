/*
 * fileops.c - safe file creation, atomic replace, directory syncs, locks.
 *
 * Used by master (pid lock), the queue and Maildir code (directory syncs),
 * the map builder and commands (atomic replace).  Paths come from the
 * configuration; the files they name may have been planted by a less
 * privileged user, so opens refuse symlinks and non-regular files and
 * check what was opened through the descriptor, never the name twice.
 *
 * Durability: a rename only survives a power loss once the directory that
 * holds the name is synced, hence fsync(file), rename, fsync(dir) in
 * fileops_write_atomic().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileops.h"
#include "mem.h"

/* Record "what path: strerror" in why; keeps errno. */
static int fileops_fail(struct strbuf *why, const char *what, const char *path)
{
    int saved = errno;

    if (why != NULL)
        strbuf_printf(why, "%s %s: %s", what, path, strerror(saved));
    errno = saved;
    return -1;
}

int fileops_open_new(const char *path, int extra_flags, mode_t mode, struct strbuf *why)
{
    int fd;

    if ((extra_flags & O_ACCMODE) == O_RDONLY)
        extra_flags |= O_WRONLY;
    fd = open(path, extra_flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0)
        return fileops_fail(why, "create", path);
    return fd;
}

int fileops_safe_open_read(const char *path, uid_t owner, struct strbuf *why)
{
    struct stat st;
    int fd;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP) {
            if (why != NULL)
                strbuf_printf(why, "open %s: refusing a symbolic link", path);
            errno = ELOOP;
            return -1;
        }
        return fileops_fail(why, "open", path);
    }
    if (fstat(fd, &st) < 0) {
        fileops_fail(why, "fstat", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        if (why != NULL)
            strbuf_printf(why, "open %s: not a regular file", path);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (owner != (uid_t)-1 && (st.st_uid != owner || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
        if (why != NULL) {
            if (st.st_uid != owner)
                strbuf_printf(why, "open %s: owned by uid %ld, expected uid %ld", path,
                              (long)st.st_uid, (long)owner);
            else
                strbuf_printf(why, "open %s: writable by group or others", path);
        }
        close(fd);
        errno = EPERM;
        return -1;
    }
    /* O_NONBLOCK only kept a FIFO from hanging the open. */
    if (fileops_set_nonblock(fd, false) < 0) {
        fileops_fail(why, "fcntl", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* The directory part of path, in dir ("." when there is none). */
static void fileops_dirname(const char *path, struct strbuf *dir)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        strbuf_set(dir, ".");
    else if (slash == path)
        strbuf_set(dir, "/");
    else
        strbuf_setn(dir, path, (size_t)(slash - path));
}

int fileops_fsync_dir(const char *dir, struct strbuf *why)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return fileops_fail(why, "open directory", dir);
    if (fsync(fd) < 0) {
        fileops_fail(why, "fsync directory", dir);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int fileops_fsync_parent(const char *path, struct strbuf *why)
{
    struct strbuf *dir = strbuf_new(64);
    int r;

    fileops_dirname(path, dir);
    r = fileops_fsync_dir(strbuf_str(dir), why);
    strbuf_free(&dir);
    return r;
}

static int fileops_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fileops_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct strbuf *why)
{
    struct strbuf *tmp = strbuf_new(strlen(path) + 32);
    int fd = -1;
    int saved;

    /* A random suffix in the same directory: rename(2) is atomic only
     * within one file system, and O_EXCL refuses anything planted there. */
    for (int tries = 0; tries < 16 && fd < 0; tries++) {
        unsigned long long r;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = (unsigned long long)getpid() * 1000003ULL + (unsigned long long)tries;
        strbuf_printf(tmp, "%s.tmp.%016llx", path, r);
        fd = open(strbuf_str(tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) {
            fileops_fail(why, "create", strbuf_str(tmp));
            strbuf_free(&tmp);
            return -1;
        }
    }
    if (fd < 0) {
        fileops_fail(why, "create", strbuf_str(tmp));
        strbuf_free(&tmp);
        return -1;
    }
    /* open() applied the umask; the caller asked for exactly mode. */
    if (fchmod(fd, mode) < 0) {
        fileops_fail(why, "chmod", strbuf_str(tmp));
        goto fail;
    }
    if (fileops_write_all(fd, data, len) < 0) {
        fileops_fail(why, "write", strbuf_str(tmp));
        goto fail;
    }
    if (fsync(fd) < 0) {
        fileops_fail(why, "fsync", strbuf_str(tmp));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        fileops_fail(why, "close", strbuf_str(tmp));
        goto fail;
    }
    fd = -1;
    if (rename(strbuf_str(tmp), path) < 0) {
        saved = errno;
        if (why != NULL)
            strbuf_printf(why, "rename %s to %s: %s", strbuf_str(tmp), path, strerror(saved));
        errno = saved;
        goto fail;
    }
    strbuf_free(&tmp);
    return fileops_fsync_parent(path, why);

fail:
    saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(strbuf_str(tmp));
    strbuf_free(&tmp);
    errno = saved;
    return -1;
}

int fileops_mkdir_p(const char *path, mode_t mode, struct strbuf *why)
{
    struct strbuf *p;
    struct stat st;
    size_t i, len = strlen(path);

    if (len == 0) {
        if (why != NULL)
            strbuf_set(why, "mkdir: empty path");
        errno = EINVAL;
        return -1;
    }
    p = strbuf_new(len);
    strbuf_set(p, path);
    /* Each prefix ending before a '/', then the whole path. */
    for (i = 1; i <= len; i++) {
        if (i < len && p->data[i] != '/')
            continue;
        if (i < len && p->data[i - 1] == '/')
            continue;           /* "a//b" */
        char saved = p->data[i];
        p->data[i] = 0;
        if (mkdir(p->data, mode) < 0) {
            if (errno != EEXIST || stat(p->data, &st) < 0 || !S_ISDIR(st.st_mode)) {
                if (errno == EEXIST)
                    errno = ENOTDIR;
                fileops_fail(why, "mkdir", p->data);
                strbuf_free(&p);
                return -1;
            }
        }
        p->data[i] = saved;
    }
    strbuf_free(&p);
    return 0;
}

int fileops_read_file(const char *path, struct strbuf *out, size_t max, struct strbuf *why)
{
    char buf[8192];
    struct stat st;
    ssize_t n;
    int fd;

    strbuf_reset(out);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fileops_fail(why, "open", path);
    if (fstat(fd, &st) < 0) {
        fileops_fail(why, "fstat", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        if (why != NULL)
            strbuf_printf(why, "read %s: not a regular file", path);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fileops_fail(why, "read", path);
            strbuf_reset(out);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        if (max != 0 && strbuf_len(out) + (size_t)n > max) {
            if (why != NULL)
                strbuf_printf(why, "read %s: longer than %zu bytes", path, max);
            strbuf_reset(out);
            close(fd);
            errno = EFBIG;
            return -1;
        }
        strbuf_appendn(out, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

int fileops_lock(int fd, enum fileops_lock_how how, struct strbuf *why)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = how == FILEOPS_LOCK_SHARED ? F_RDLCK
        : how == FILEOPS_LOCK_EXCLUSIVE ? F_WRLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int saved = errno;
        if (saved == EACCES)
            saved = EAGAIN;
        if (why != NULL)
            strbuf_printf(why, "lock descriptor %d: %s", fd,
                          saved == EAGAIN ? "held by another process" : strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

/* The pid in a pid file, 0 if there is none or it is not a number. */
static pid_t fileops_read_pid(int fd)
{
    char buf[32];
    ssize_t n;
    long v;
    char *end;

    n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    errno = 0;
    v = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || v <= 0 || v > INT_MAX)
        return 0;
    while (*end == ' ' || *end == '\n')
        end++;
    return *end == 0 ? (pid_t)v : 0;
}

int fileops_pidlock_update(int fd, struct strbuf *why)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%10ld\n", (long)getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int saved = errno;
        if (why != NULL)
            strbuf_printf(why, "write pid file: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

int fileops_pidlock(const char *path, pid_t *holder_r, struct strbuf *why)
{
    struct stat st;
    int fd;

    if (holder_r != NULL)
        *holder_r = 0;
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return fileops_fail(why, "open", path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (why != NULL)
            strbuf_printf(why, "open %s: not a regular file", path);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (fileops_lock(fd, FILEOPS_LOCK_EXCLUSIVE, NULL) < 0) {
        int saved = errno;
        pid_t holder = saved == EAGAIN ? fileops_read_pid(fd) : 0;

        if (holder_r != NULL)
            *holder_r = holder;
        if (why != NULL) {
            if (saved != EAGAIN)
                strbuf_printf(why, "lock %s: %s", path, strerror(saved));
            else if (holder > 0)
                strbuf_printf(why, "%s: locked by pid %ld", path, (long)holder);
            else
                strbuf_printf(why, "%s: locked by another process", path);
        }
        close(fd);
        errno = saved;
        return -1;
    }
    if (fileops_pidlock_update(fd, why) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int fileops_fdflag(int fd, int get, int set, int flag, bool on)
{
    int fl = fcntl(fd, get);

    if (fl < 0)
        return -1;
    if (on == ((fl & flag) != 0))
        return 0;
    return fcntl(fd, set, on ? fl | flag : fl & ~flag) < 0 ? -1 : 0;
}

int fileops_set_cloexec(int fd, bool on)
{
    return fileops_fdflag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

int fileops_set_nonblock(int fd, bool on)
{
    return fileops_fdflag(fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}
