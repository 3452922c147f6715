/*
 * maildir_deliver.c - writing a message into a Maildir, durably and once.
 *
 * The durability rule (DESIGN.md): the message is written to tmp/, fsynced,
 * linked into new/ (cur/ for APPEND/COPY with flags), and the directory is
 * fsynced before anyone reports success.  The directory sync is a separate
 * call (maildir_deliver_sync) so lmtpd can cover several deliveries with
 * one sync (group commit).  A file still in tmp/ is never delivered; the
 * janitor in maildir.c removes it after 36 hours.
 *
 * Exactly once: a delivery with an idempotency key gets a base name derived
 * from the key, and leaves a marker in DIR/facteur-keys/: "BASE.pending"
 * before it writes, renamed to "BASE.done" once its link is in new/.  So
 * a later attempt costs one or two stat() calls: "done" means delivered
 * (answer success, write nothing); no marker means never attempted (no
 * directory scan); only "pending" (an attempt died around its link) makes
 * it look through new/ and cur/ for that base with any flags.  Should two
 * attempts both link, the later check removes its own copy when the other
 * is in cur/ or has the smaller name, so both agree on which to drop and
 * one copy always remains.  Markers are removed after a week by
 * maildir_clean_tmp; facteur-keys is no Maildir++ folder (no leading
 * dot), so Dovecot and MUAs ignore it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "mem.h"

/* Write buffer size: one write(2) per 64 KB of message. */
#define DELIVER_BUFSIZE 65536
/* Slack for the "cur/ unchanged since arrival" shortcut (clock steps). */
#define DELIVER_CLOCK_SLACK 120

struct maildir_delivery {
    char *dir;
    int fd;
    struct strbuf *tmp_path;    /* dir/tmp/UNIQUE */
    struct strbuf *base;        /* base name without S=/W= */
    struct strbuf *buf;         /* pending output */
    bool keyed;
    bool scanned;               /* an earlier attempt was pending: checked */
    bool made_pending;          /* this attempt created BASE.pending */
    time_t arrival;             /* opts->arrival (in a keyed base name) */
    bool linked;                /* the message is in new/ or cur/ */
    struct strbuf *marker;      /* DIR/facteur-keys/BASE (keyed only) */
    bool to_cur;
    unsigned flags;
    uint32_t keywords;
    time_t mtime;
    uint64_t size;
    uint64_t vsize;             /* size with every bare LF counted as CRLF */
    char last;                  /* last byte written (for bare-LF counting) */
    struct timespec cur_mtime;  /* cur/ mtime at the check before writing */
};

/* Does a directory entry have this base (followed by ',', ':' or end)? */
static bool name_has_base(const char *name, const char *base, size_t base_len)
{
    return strncmp(name, base, base_len) == 0 &&
           (name[base_len] == '\0' || name[base_len] == ',' || name[base_len] == ':');
}

/*
 * Look in dir/sub for a file with this base other than skip (may be NULL).
 * found_r (may be NULL) gets the first match.  Returns 1, 0, or -1.
 */
static int key_scan(const char *dir, const char *sub, const char *base,
                    const char *skip, struct strbuf *found_r, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    size_t base_len = strlen(base);
    struct dirent *de;
    DIR *d;
    int found = 0;

    maildir_path(path, dir, sub, NULL);
    d = opendir(strbuf_str(path));
    if (d == NULL) {
        maildir_why(why, "opendir %s: %m", strbuf_str(path));
        strbuf_free(&path);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!name_has_base(de->d_name, base, base_len))
            continue;
        if (skip != NULL && strcmp(de->d_name, skip) == 0)
            continue;
        if (found_r == NULL || found == 0 || strcmp(de->d_name, strbuf_str(found_r)) < 0) {
            if (found_r != NULL)
                strbuf_set(found_r, de->d_name);
        }
        found = 1;
    }
    closedir(d);
    strbuf_free(&path);
    return found;
}

static int stat_cur(const char *dir, struct timespec *ts, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    struct stat st;
    int ret = 0;

    maildir_path(path, dir, "cur", NULL);
    if (stat(strbuf_str(path), &st) < 0) {
        maildir_why(why, "stat %s: %m", strbuf_str(path));
        ret = -1;
    } else {
        *ts = st.st_mtim;
    }
    strbuf_free(&path);
    return ret;
}

/*
 * Create the marker file path.  A hard link to one shared empty file
 * (facteur-keys/.marker) costs a directory entry only, where creating a
 * file also allocates an inode (several times slower on ext4); when that
 * file has too many links, a file of its own is created instead.  Linked
 * markers share one mtime, so they are used only when the name carries
 * the arrival time the janitor ages them by (shared is false otherwise).
 * Returns 1 if created, 0 if it existed already, -1.
 */
static int marker_create(const char *dir, const char *path, bool shared,
                         struct strbuf *why)
{
    struct strbuf *proto = strbuf_new(256);
    int attempt, fd, ret = -1;

    maildir_path(proto, dir, MAILDIR_KEYS_DIR, ".marker");
    for (attempt = 0; shared && attempt < 3; attempt++) {
        if (link(strbuf_str(proto), path) == 0) {
            ret = 1;
            break;
        }
        if (errno == EEXIST) {
            ret = 0;    /* another attempt made it */
            break;
        }
        if (errno == ENOENT) {
            /* No facteur-keys/ or no .marker yet: make them. */
            struct strbuf *kd = strbuf_new(256);

            maildir_path(kd, dir, MAILDIR_KEYS_DIR, NULL);
            if (mkdir(strbuf_str(kd), 0700) < 0 && errno != EEXIST)
                log_warn("maildir: mkdir %s: %m", strbuf_str(kd));
            strbuf_free(&kd);
            fd = open(strbuf_str(proto), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
            continue;
        }
        break;      /* EMLINK and the like: a file of its own */
    }
    if (ret < 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT) {
            struct strbuf *kd = strbuf_new(256);

            maildir_path(kd, dir, MAILDIR_KEYS_DIR, NULL);
            if (mkdir(strbuf_str(kd), 0700) < 0 && errno != EEXIST)
                log_warn("maildir: mkdir %s: %m", strbuf_str(kd));
            strbuf_free(&kd);
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        }
        if (fd >= 0) {
            close(fd);
            ret = 1;
        } else if (errno == EEXIST) {
            ret = 0;
        } else {
            maildir_why(why, "create %s: %m", path);
        }
    }
    strbuf_free(&proto);
    return ret;
}

/* The message with this key is in the Maildir: "pending" becomes "done". */
static void key_mark_done(struct maildir_delivery *d)
{
    struct strbuf *from = strbuf_new(256), *to = strbuf_new(256);

    strbuf_printf(from, "%s.pending", strbuf_str(d->marker));
    strbuf_printf(to, "%s.done", strbuf_str(d->marker));
    if (rename(strbuf_str(from), strbuf_str(to)) < 0 &&
        marker_create(d->dir, strbuf_str(to), d->arrival > 0, NULL) < 0) {
        /* No pending marker (found by a scan) and none can be made: a
         * later retry scans and still finds the copy. */
        log_warn("maildir: create %s: %m", strbuf_str(to));
    }
    strbuf_free(&from);
    strbuf_free(&to);
}

/* Before writing: is the keyed message already there?  1 yes, 0 no, -1. */
static int key_check_before(struct maildir_delivery *d, time_t arrival,
                            struct strbuf *why)
{
    const char *base = strbuf_str(d->base);
    struct strbuf *path = strbuf_new(256);
    struct stat st;
    int r = -1;

    if (stat_cur(d->dir, &d->cur_mtime, why) < 0)
        goto out;
    strbuf_printf(path, "%s.done", strbuf_str(d->marker));
    if (stat(strbuf_str(path), &st) == 0) {
        /* Delivered before.  The first attempt may have died before its
         * directory sync: sync again before answering. */
        r = maildir_deliver_sync(d->dir, true, why) < 0 ? -1 : 1;
        strbuf_free(&path);
        return r;
    }
    strbuf_printf(path, "%s.pending", strbuf_str(d->marker));
    if (stat(strbuf_str(path), &st) < 0) {
        /* Never attempted: mark the attempt, no need to look for copies. */
        r = marker_create(d->dir, strbuf_str(path), arrival > 0, why);
        if (r < 0)
            goto out;
        d->made_pending = r == 1;
        r = 0;
        goto out;
    }
    /* An attempt died around its link: look for its copy. */
    d->scanned = true;
    r = key_scan(d->dir, "new", base, NULL, NULL, why);
    if (r != 0) {
        if (r > 0 && maildir_fsync_dir(d->dir, "new", why) < 0)
            r = -1;
        goto out;
    }
    /* Files only enter cur/ by a rename there, which sets cur/'s mtime;
     * if cur/ has not changed since the message arrived, no copy of it
     * can be in cur/. */
    if (arrival > 0 && d->cur_mtime.tv_sec < arrival - DELIVER_CLOCK_SLACK) {
        r = 0;
        goto out;
    }
    r = key_scan(d->dir, "cur", base, NULL, NULL, why);
    if (r > 0 && maildir_fsync_dir(d->dir, "cur", why) < 0)
        r = -1;
out:
    if (r > 0)
        key_mark_done(d);
    strbuf_free(&path);
    return r;
}

int maildir_deliver_start(const char *dir, const struct maildir_deliver_opts *opts,
                          struct maildir_delivery **dp, struct strbuf *why)
{
    static const struct maildir_deliver_opts none;
    struct maildir_delivery *d;
    struct strbuf *tmpname;
    int r;

    if (opts == NULL)
        opts = &none;
    *dp = NULL;
    d = xcalloc(1, sizeof(*d));
    d->dir = xstrdup(dir);
    d->fd = -1;
    d->base = strbuf_new(128);
    d->tmp_path = strbuf_new(256);
    d->flags = opts->flags & MAILDIR_FLAGS_ALL;
    d->keywords = opts->keywords & 0x3ffffffu;
    d->to_cur = opts->to_cur || d->flags != 0 || d->keywords != 0;
    d->mtime = opts->mtime;
    if (opts->key != NULL) {
        d->keyed = true;
        d->arrival = opts->arrival;
        maildir_name_keyed(d->base, opts->key, opts->arrival);
        d->marker = strbuf_new(256);
        maildir_path(d->marker, dir, MAILDIR_KEYS_DIR, strbuf_str(d->base));
        r = key_check_before(d, opts->arrival, why);
        if (r != 0) {
            maildir_deliver_abort(&d);
            return r > 0 ? 0 : -1;
        }
    } else {
        maildir_name_unique(d->base);
    }
    /* The tmp/ name is always unique, even for a keyed delivery, so two
     * concurrent attempts never write into the same file. */
    tmpname = strbuf_new(128);
    maildir_name_unique(tmpname);
    maildir_path(d->tmp_path, dir, "tmp", strbuf_str(tmpname));
    strbuf_free(&tmpname);
    d->fd = open(strbuf_str(d->tmp_path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (d->fd < 0) {
        maildir_why(why, "create %s: %m", strbuf_str(d->tmp_path));
        strbuf_reset(d->tmp_path);
        maildir_deliver_abort(&d);
        return -1;
    }
    d->buf = strbuf_new(DELIVER_BUFSIZE);
    *dp = d;
    return 1;
}

static int write_all(struct maildir_delivery *d, const char *p, size_t left,
                     struct strbuf *why)
{
    while (left > 0) {
        ssize_t n = write(d->fd, p, left);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            maildir_why(why, "write %s: %m", strbuf_str(d->tmp_path));
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

static int deliver_flush(struct maildir_delivery *d, struct strbuf *why)
{
    if (write_all(d, strbuf_str(d->buf), strbuf_len(d->buf), why) < 0)
        return -1;
    strbuf_reset(d->buf);
    return 0;
}

int maildir_deliver_write(struct maildir_delivery *d, const void *p, size_t n,
                          struct strbuf *why)
{
    const char *s = p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '\n' && (i > 0 ? s[i - 1] : d->last) != '\r')
            d->vsize++;
    }
    if (n > 0)
        d->last = s[n - 1];
    d->size += n;
    d->vsize += n;
    if (strbuf_len(d->buf) + n > DELIVER_BUFSIZE) {
        if (deliver_flush(d, why) < 0)
            return -1;
        if (n >= DELIVER_BUFSIZE)
            return write_all(d, p, n, why);
    }
    strbuf_appendn(d->buf, p, n);
    return 0;
}

/* link() tmp to target; falls back to a no-replace rename on file systems
 * without hard links.  Returns 0, or -1 with errno (EEXIST: taken). */
static int link_into_place(const char *tmp, const char *target)
{
    if (link(tmp, target) == 0)
        return 0;
    if (errno == EPERM || errno == ENOTSUP || errno == ENOSYS)
        return renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_NOREPLACE);
    return -1;
}

/*
 * After a keyed link, when an earlier attempt was pending: did another
 * copy appear meanwhile?  Ours (name in sub) gives way to a copy in cur/,
 * to a smaller name in new/, or to any copy once "done" exists.
 * Returns 1 if ours must go, 0, or -1.
 */
static int key_check_after(struct maildir_delivery *d, const char *sub,
                           const char *name, struct strbuf *why)
{
    struct strbuf *other = strbuf_new(128), *done = strbuf_new(256);
    const char *base = strbuf_str(d->base);
    struct timespec ts;
    struct stat st;
    bool done_exists;
    int r, lose = 0;

    /* "done" appearing meanwhile: another attempt linked and kept its copy
     * (it never removes it afterwards), so ours is the one to drop. */
    strbuf_printf(done, "%s.done", strbuf_str(d->marker));
    done_exists = stat(strbuf_str(done), &st) == 0;
    r = key_scan(d->dir, "new", base, strcmp(sub, "new") == 0 ? name : NULL, other, why);
    if (r < 0)
        goto out;
    if (r > 0 && (done_exists ||
                  (strcmp(sub, "cur") != 0 && strcmp(strbuf_str(other), name) < 0)))
        lose = 1;
    if (!lose) {
        if (stat_cur(d->dir, &ts, why) < 0) {
            r = -1;
            goto out;
        }
        /* cur/ unchanged since the check before writing (which scanned it,
         * or skipped it as older than the arrival): nothing new there. */
        if (ts.tv_sec != d->cur_mtime.tv_sec || ts.tv_nsec != d->cur_mtime.tv_nsec ||
            strcmp(sub, "cur") == 0) {
            r = key_scan(d->dir, "cur", base, strcmp(sub, "cur") == 0 ? name : NULL,
                         other, why);
            if (r < 0)
                goto out;
            if (r > 0 && (done_exists || strcmp(sub, "new") == 0 ||
                          strcmp(strbuf_str(other), name) < 0))
                lose = 1;
        }
    }
    r = lose;
out:
    strbuf_free(&other);
    strbuf_free(&done);
    return r;
}

int maildir_deliver_finish(struct maildir_delivery **dp, struct strbuf *name_r,
                           struct strbuf *why)
{
    struct maildir_delivery *d = *dp;
    struct strbuf *name = strbuf_new(256);
    struct strbuf *target = strbuf_new(512);
    const char *sub = d->to_cur ? "cur" : "new";
    int attempt, ret = -1, r;

    if (deliver_flush(d, why) < 0)
        goto out;
    if (d->mtime > 0) {
        struct timespec times[2] = { { d->mtime, 0 }, { d->mtime, 0 } };

        if (futimens(d->fd, times) < 0) {
            maildir_why(why, "futimens %s: %m", strbuf_str(d->tmp_path));
            goto out;
        }
    }
    /* Durability point 1: the bytes are on disk before any link names them. */
    if (fsync(d->fd) < 0) {
        maildir_why(why, "fsync %s: %m", strbuf_str(d->tmp_path));
        goto out;
    }
    if (close(d->fd) < 0) {
        d->fd = -1;
        maildir_why(why, "close %s: %m", strbuf_str(d->tmp_path));
        goto out;
    }
    d->fd = -1;
    for (attempt = 0; attempt < 3; attempt++) {
        strbuf_printf(name, "%s,S=%llu,W=%llu", strbuf_str(d->base),
                      (unsigned long long)d->size, (unsigned long long)d->vsize);
        if (d->to_cur) {
            strbuf_append(name, ":2,");
            maildir_flags_format(name, d->flags, d->keywords);
        }
        if (strbuf_len(name) > MAILDIR_NAME_MAX) {
            maildir_why(why, "file name too long");
            goto out;
        }
        maildir_path(target, d->dir, sub, strbuf_str(name));
        if (link_into_place(strbuf_str(d->tmp_path), strbuf_str(target)) == 0)
            break;
        if (errno != EEXIST) {
            maildir_why(why, "link %s to %s: %m", strbuf_str(d->tmp_path),
                        strbuf_str(target));
            goto out;
        }
        if (d->keyed) {
            /* The same key and content: an earlier attempt got there. */
            key_mark_done(d);
            ret = 1;
            goto out;
        }
        /* A unique name that exists means a broken clock or host name. */
        log_warn("maildir %s: %s already exists, choosing another name",
                 d->dir, strbuf_str(target));
        maildir_name_unique(d->base);
    }
    if (attempt == 3) {
        maildir_why(why, "could not find a free name in %s/%s", d->dir, sub);
        goto out;
    }
    d->linked = true;
    if (d->keyed && d->scanned) {
        r = key_check_after(d, sub, strbuf_str(name), why);
        if (r < 0) {
            /* Keep the link: a duplicate is better than a loss. */
            log_warn("maildir %s: %s", d->dir, why != NULL ? strbuf_str(why) : "");
        } else if (r > 0) {
            if (unlink(strbuf_str(target)) < 0)
                log_warn("maildir: unlink %s: %m", strbuf_str(target));
            ret = 1;
            goto out;
        }
    }
    /* Only after the decision to keep our copy: from now on a later
     * attempt answers "already delivered" at its first stat(). */
    if (d->keyed)
        key_mark_done(d);
    if (name_r != NULL)
        strbuf_set(name_r, strbuf_str(name));
    ret = 0;
out:
    strbuf_free(&name);
    strbuf_free(&target);
    maildir_deliver_abort(dp);
    return ret;
}

void maildir_deliver_abort(struct maildir_delivery **dp)
{
    struct maildir_delivery *d = *dp;

    if (d == NULL)
        return;
    if (d->fd >= 0)
        close(d->fd);
    if (strbuf_len(d->tmp_path) > 0 && unlink(strbuf_str(d->tmp_path)) < 0 &&
        errno != ENOENT)
        log_warn("maildir: unlink %s: %m", strbuf_str(d->tmp_path));
    if (d->made_pending && !d->linked) {
        /* Nothing of ours reached new/: back to "never attempted". */
        struct strbuf *pending = strbuf_new(256);

        strbuf_printf(pending, "%s.pending", strbuf_str(d->marker));
        (void)unlink(strbuf_str(pending));
        strbuf_free(&pending);
    }
    strbuf_free(&d->marker);
    strbuf_free(&d->tmp_path);
    strbuf_free(&d->base);
    strbuf_free(&d->buf);
    free(d->dir);
    free(d);
    *dp = NULL;
}

int maildir_deliver_sync(const char *dir, bool cur, struct strbuf *why)
{
    if (maildir_fsync_dir(dir, "new", why) < 0)
        return -1;
    if (cur && maildir_fsync_dir(dir, "cur", why) < 0)
        return -1;
    return 0;
}

int maildir_deliver(const char *dir, const struct maildir_deliver_opts *opts,
                    const void *msg, size_t len, struct strbuf *name_r,
                    struct strbuf *why)
{
    struct maildir_delivery *d;
    bool cur = opts != NULL && (opts->to_cur || opts->flags != 0 || opts->keywords != 0);
    int r;

    r = maildir_deliver_start(dir, opts, &d, why);
    if (r <= 0)
        return r < 0 ? -1 : 1;
    if (maildir_deliver_write(d, msg, len, why) < 0) {
        maildir_deliver_abort(&d);
        return -1;
    }
    r = maildir_deliver_finish(&d, name_r, why);
    if (r < 0)
        return -1;
    /* Durability point 2: the link survives a power loss only once its
     * directory is synced. */
    if (cur ? maildir_fsync_dir(dir, "cur", why) < 0
            : maildir_fsync_dir(dir, "new", why) < 0)
        return -1;
    return r;
}
