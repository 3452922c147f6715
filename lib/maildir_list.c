/*
 * maildir_list.c - listing a Maildir and changing its messages.
 *
 * Scans new/ and cur/ into a list sorted by base name, and changes
 * messages the Maildir way: flags by renaming (new/ -> cur/ on the first
 * change), expunge by unlink, copy by hard link, append through the
 * delivery path.  Used by imapd, pop3d, the uidlist sync and
 * facteur-maildir.
 *
 * Other programs (Dovecot, a MUA, another facteur process) rename files
 * at any moment: an operation that finds its file gone looks for the same
 * base name again in new/ and cur/ and retries, a bounded number of
 * times; only when the base is nowhere is the message reported expunged.
 * Directory entries are untrusted names: they go through the bounded
 * parser, and a name it rejects is still listed (flags 0), never lost.
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

/* How many times an operation chases a file renamed under it. */
#define LIST_RENAME_RETRIES 8

static int entry_cmp(const void *a, const void *b)
{
    const struct maildir_entry *x = a, *y = b;
    size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0)
        return c;
    if (x->base_len != y->base_len)
        return x->base_len < y->base_len ? -1 : 1;
    /* Same base twice (a crashed copy, or a file seen mid-move): cur/ first. */
    return (int)x->in_new - (int)y->in_new;
}

static int scan_sub(const char *dir, const char *sub, int opts, struct maildir_list *l,
                    struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    struct maildir_info info;
    struct dirent *de;
    struct stat st;
    DIR *d;

    maildir_path(path, dir, sub, NULL);
    d = opendir(strbuf_str(path));
    if (d == NULL) {
        maildir_why(why, "opendir %s: %m", strbuf_str(path));
        strbuf_free(&path);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        struct maildir_entry *e;
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' || de->d_type == DT_DIR)
            continue;
        if (l->n >= MAILDIR_SCAN_MAX) {
            maildir_why(why, "%s holds more than %d messages", strbuf_str(path),
                        MAILDIR_SCAN_MAX);
            closedir(d);
            strbuf_free(&path);
            return -1;
        }
        if (opts & MAILDIR_SCAN_STAT) {
            if (fstatat(dirfd(d), de->d_name, &st, 0) < 0)
                continue;   /* renamed or expunged meanwhile */
            if (!S_ISREG(st.st_mode))
                continue;
        }
        if (l->n == l->cap) {
            l->cap = l->cap == 0 ? 64 : l->cap * 2;
            l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
        }
        e = &l->v[l->n++];
        memset(e, 0, sizeof(*e));
        e->name = xstrdup(de->d_name);
        e->in_new = strcmp(sub, "new") == 0;
        if (maildir_name_parse(de->d_name, len, &info, NULL) == 0) {
            e->base_len = info.base_len;
            e->flags = info.flags;
            e->keywords = info.keywords;
            if (info.has_size)
                e->size = info.size;
        } else {
            e->base_len = maildir_name_base_len(de->d_name);
            if (e->base_len == 0)
                e->base_len = len;
        }
        if (opts & MAILDIR_SCAN_STAT) {
            e->mtime = st.st_mtime;
            if (!info.has_size)
                e->size = (uint64_t)st.st_size;
        }
    }
    closedir(d);
    strbuf_free(&path);
    return 0;
}

int maildir_list_scan(const char *dir, int opts, struct maildir_list **list_r,
                      struct strbuf *why)
{
    struct maildir_list *l = xcalloc(1, sizeof(*l));
    size_t i, o;

    /* new/ first: a file moving new/ -> cur/ during the scan is then seen
     * in cur/ at the latest. */
    if (scan_sub(dir, "new", opts, l, why) < 0 || scan_sub(dir, "cur", opts, l, why) < 0) {
        maildir_list_free(&l);
        return -1;
    }
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
    /* Keep one entry a base (the first, cur/ preferred). */
    for (i = 0, o = 0; i < l->n; i++) {
        if (o > 0 && l->v[o - 1].base_len == l->v[i].base_len &&
            memcmp(l->v[o - 1].name, l->v[i].name, l->v[i].base_len) == 0) {
            log_warn("maildir %s: %s and %s share a base name; listing the first",
                     dir, l->v[o - 1].name, l->v[i].name);
            free(l->v[i].name);
            continue;
        }
        l->v[o++] = l->v[i];
    }
    l->n = o;
    *list_r = l;
    return 0;
}

void maildir_list_free(struct maildir_list **listp)
{
    struct maildir_list *l = *listp;
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    free(l);
    *listp = NULL;
}

struct maildir_entry *maildir_list_find(struct maildir_list *list, const char *base,
                                        size_t base_len)
{
    size_t lo = 0, hi = list->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct maildir_entry *e = &list->v[mid];
        size_t n = e->base_len < base_len ? e->base_len : base_len;
        int c = memcmp(e->name, base, n);

        if (c == 0 && e->base_len != base_len)
            c = e->base_len < base_len ? -1 : 1;
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/*
 * Find the entry's file again by base name after it was renamed under us.
 * Returns 1 (e->name, e->in_new updated), 0 if it is nowhere, -1.
 */
static int entry_refind(const char *dir, struct maildir_entry *e, struct strbuf *why)
{
    static const char *const subs[] = { "cur", "new" };
    struct strbuf *path = strbuf_new(256);
    struct dirent *de;
    size_t i;
    int found = 0;

    for (i = 0; i < 2 && !found; i++) {
        DIR *d;

        maildir_path(path, dir, subs[i], NULL);
        d = opendir(strbuf_str(path));
        if (d == NULL) {
            maildir_why(why, "opendir %s: %m", strbuf_str(path));
            strbuf_free(&path);
            return -1;
        }
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, e->name, e->base_len) != 0 ||
                (de->d_name[e->base_len] != '\0' && de->d_name[e->base_len] != ':'))
                continue;
            if (strcmp(de->d_name, e->name) != 0) {
                char *old = e->name;

                /* e->name's base is compared above, so free it only now. */
                e->name = xstrdup(de->d_name);
                free(old);
            }
            e->in_new = i == 1;
            found = 1;
            break;
        }
        closedir(d);
    }
    strbuf_free(&path);
    return found;
}

static void entry_path(struct strbuf *out, const char *dir, const struct maildir_entry *e)
{
    maildir_path(out, dir, e->in_new ? "new" : "cur", e->name);
}

/* Rename e to cur/ with these flags.  0, 1 (gone) or -1. */
static int entry_rename(const char *dir, struct maildir_entry *e, unsigned flags,
                        uint32_t keywords, struct strbuf *why)
{
    struct strbuf *from = strbuf_new(256), *to = strbuf_new(256), *name = strbuf_new(256);
    struct maildir_info info;
    int attempt, r, ret = -1;

    for (attempt = 0; attempt < LIST_RENAME_RETRIES; attempt++) {
        const char *extra = NULL;
        size_t extra_len = 0;

        if (maildir_name_parse(e->name, strlen(e->name), &info, NULL) == 0 &&
            info.extra_len > 0) {
            extra = e->name + info.extra_off;
            extra_len = info.extra_len;
        }
        if (maildir_name_build(name, e->name, e->base_len, flags, keywords, extra,
                               extra_len, why) < 0)
            goto out;
        if (!e->in_new && strcmp(strbuf_str(name), e->name) == 0) {
            ret = 0;
            goto out;
        }
        entry_path(from, dir, e);
        maildir_path(to, dir, "cur", strbuf_str(name));
        if (rename(strbuf_str(from), strbuf_str(to)) == 0) {
            free(e->name);
            e->name = strbuf_steal(&name);
            e->in_new = false;
            e->flags = flags;
            e->keywords = keywords;
            ret = 0;
            goto out;
        }
        if (errno != ENOENT) {
            maildir_why(why, "rename %s to %s: %m", strbuf_str(from), strbuf_str(to));
            goto out;
        }
        /* Renamed (flags changed, moved to cur/) by someone else: chase it. */
        r = entry_refind(dir, e, why);
        if (r <= 0) {
            ret = r < 0 ? -1 : 1;
            goto out;
        }
    }
    maildir_why(why, "%s keeps being renamed; giving up", e->name);
out:
    strbuf_free(&from);
    strbuf_free(&to);
    strbuf_free(&name);
    return ret;
}

int maildir_entry_set_flags(const char *dir, struct maildir_entry *e,
                            unsigned flags, uint32_t keywords, struct strbuf *why)
{
    return entry_rename(dir, e, flags & MAILDIR_FLAGS_ALL, keywords & 0x3ffffffu, why);
}

int maildir_entry_to_cur(const char *dir, struct maildir_entry *e, struct strbuf *why)
{
    if (!e->in_new)
        return 0;
    return entry_rename(dir, e, e->flags, e->keywords, why);
}

int maildir_entry_expunge(const char *dir, struct maildir_entry *e, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    int attempt, r, ret = -1;

    for (attempt = 0; attempt < LIST_RENAME_RETRIES; attempt++) {
        entry_path(path, dir, e);
        if (unlink(strbuf_str(path)) == 0) {
            ret = 0;
            goto out;
        }
        if (errno != ENOENT) {
            maildir_why(why, "unlink %s: %m", strbuf_str(path));
            goto out;
        }
        r = entry_refind(dir, e, why);
        if (r <= 0) {
            ret = r < 0 ? -1 : 1;
            goto out;
        }
    }
    maildir_why(why, "%s keeps being renamed; giving up", e->name);
out:
    strbuf_free(&path);
    return ret;
}

int maildir_entry_open(const char *dir, struct maildir_entry *e, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    int attempt, fd = -1, r;

    for (attempt = 0; attempt < LIST_RENAME_RETRIES; attempt++) {
        entry_path(path, dir, e);
        fd = open(strbuf_str(path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            goto out;
        if (errno != ENOENT) {
            maildir_why(why, "open %s: %m", strbuf_str(path));
            goto out;
        }
        r = entry_refind(dir, e, why);
        if (r <= 0) {
            fd = r < 0 ? -1 : -2;
            goto out;
        }
    }
    maildir_why(why, "%s keeps being renamed; giving up", e->name);
    fd = -1;
out:
    strbuf_free(&path);
    return fd;
}

/* Copy by bytes, for when a hard link is impossible. */
static int copy_bytes(const char *dir, struct maildir_entry *e, const char *dst,
                      unsigned flags, uint32_t keywords, struct strbuf *name_r,
                      struct strbuf *why)
{
    struct maildir_deliver_opts opts = { .flags = flags, .keywords = keywords, .to_cur = true };
    struct maildir_delivery *d;
    char buf[65536];
    struct stat st;
    ssize_t n;
    int fd, r;

    fd = maildir_entry_open(dir, e, why);
    if (fd < 0)
        return fd == -2 ? 1 : -1;
    if (fstat(fd, &st) == 0)
        opts.mtime = st.st_mtime;   /* INTERNALDATE travels with the copy */
    if (maildir_deliver_start(dst, &opts, &d, why) < 0) {
        close(fd);
        return -1;
    }
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            maildir_why(why, "read %s: %m", e->name);
            break;
        }
        if (maildir_deliver_write(d, buf, (size_t)n, why) < 0)
            break;
    }
    close(fd);
    if (n != 0) {
        maildir_deliver_abort(&d);
        return -1;
    }
    r = maildir_deliver_finish(&d, name_r, why);
    if (r < 0)
        return -1;
    return maildir_fsync_dir(dst, "cur", why);
}

int maildir_entry_copy(const char *dir, struct maildir_entry *e, const char *dst,
                       unsigned flags, uint32_t keywords, struct strbuf *name_r,
                       struct strbuf *why)
{
    struct strbuf *from = strbuf_new(256), *to = strbuf_new(256);
    struct strbuf *base = strbuf_new(128), *name = strbuf_new(256);
    const char *fields;
    int attempt, r, ret = -1;

    for (attempt = 0; attempt < LIST_RENAME_RETRIES; attempt++) {
        /* A new base, keeping the source's ",S=...,W=..." fields. */
        maildir_name_unique(base);
        fields = memchr(e->name, ',', e->base_len);
        if (fields != NULL)
            strbuf_appendn(base, fields, e->base_len - (size_t)(fields - e->name));
        if (maildir_name_build(name, strbuf_str(base), strbuf_len(base),
                               flags & MAILDIR_FLAGS_ALL, keywords & 0x3ffffffu, NULL, 0,
                               why) < 0)
            goto out;
        entry_path(from, dir, e);
        maildir_path(to, dst, "cur", strbuf_str(name));
        if (link(strbuf_str(from), strbuf_str(to)) == 0) {
            if (maildir_fsync_dir(dst, "cur", why) < 0)
                goto out;
            if (name_r != NULL)
                strbuf_set(name_r, strbuf_str(name));
            ret = 0;
            goto out;
        }
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) {
            ret = copy_bytes(dir, e, dst, flags, keywords, name_r, why);
            goto out;
        }
        if (errno != ENOENT && errno != EEXIST) {
            maildir_why(why, "link %s to %s: %m", strbuf_str(from), strbuf_str(to));
            goto out;
        }
        if (errno == ENOENT) {
            if (!maildir_exists(dst)) {
                maildir_why(why, "%s is not a Maildir", dst);
                goto out;
            }
            r = entry_refind(dir, e, why);
            if (r <= 0) {
                ret = r < 0 ? -1 : 1;
                goto out;
            }
        }
    }
    maildir_why(why, "%s keeps being renamed; giving up", e->name);
out:
    strbuf_free(&from);
    strbuf_free(&to);
    strbuf_free(&base);
    strbuf_free(&name);
    return ret;
}

int maildir_append(const char *dir, unsigned flags, uint32_t keywords, time_t mtime,
                   const void *msg, size_t len, struct strbuf *name_r,
                   struct strbuf *why)
{
    struct maildir_deliver_opts opts = {
        .flags = flags, .keywords = keywords, .to_cur = true, .mtime = mtime,
    };

    return maildir_deliver(dir, &opts, msg, len, name_r, why) < 0 ? -1 : 0;
}
