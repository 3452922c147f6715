/*
 * maildir_folder.c - Maildir++ folders and the subscriptions file.
 *
 * Folders live beside INBOX in the Maildir root as ".Name" directories,
 * with '.' separating hierarchy levels (".Archive.2024"), each a Maildir
 * with an empty "maildirfolder" file, as Dovecot, Courier and maildrop
 * lay them out.  Names are IMAP mailbox names as stored on disk (mUTF-7);
 * converting from UTF-8 is imapd's job.  Subscriptions use Dovecot's
 * "subscriptions" file, read in both of its versions and rewritten under
 * Dovecot's dot lock, so facteur and Dovecot can share a Maildir.
 *
 * Callers: imapd (CREATE, DELETE, RENAME, LSUB), lmtpd (fileinto a
 * folder), facteur-maildir.  Names come from IMAP clients: they are
 * checked (length, characters, no empty level, no '/') before they touch
 * a path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "mem.h"

/* Bounds on the subscriptions file. */
#define SUBS_MAX_LINES 100000
#define SUBS_HEADER_V2 "V\t2\n\n"
/* Dovecot's SUBSCRIPTION_FILE_LOCK_TIMEOUT and _CHANGE_TIMEOUT. */
#define SUBS_LOCK_TIMEOUT_MS 120000
#define SUBS_LOCK_STALE_SECS 30
/* Bound on the number of folders one rename or list handles. */
#define FOLDER_MAX_COUNT 100000

static const char *const default_folders[] = {
    "Sent", "Drafts", "Junk", "Trash", "Archive",
};

static bool is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

int maildir_folder_check(const char *name, struct strbuf *why)
{
    size_t i, len = strlen(name);

    if (len == 0 || len > MAILDIR_FOLDER_MAX) {
        maildir_why(why, "folder name length %zu out of range", len);
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c == 0x7f || c == '/') {
            maildir_why(why, "bad character 0x%02x in folder name", c);
            return -1;
        }
        if (c == '.' && (i == 0 || i + 1 == len || name[i + 1] == '.')) {
            maildir_why(why, "empty level in folder name \"%s\"", name);
            return -1;
        }
    }
    return 0;
}

int maildir_folder_path(struct strbuf *out, const char *root, const char *name,
                        struct strbuf *why)
{
    if (maildir_folder_check(name, why) < 0)
        return -1;
    strbuf_set(out, root);
    if (!is_inbox(name)) {
        strbuf_append(out, "/.");
        strbuf_append(out, name);
    }
    return 0;
}

int maildir_folder_create(const char *root, const char *name, struct strbuf *why)
{
    struct strbuf *dir = strbuf_new(256), *marker = strbuf_new(256);
    int fd, ret = -1;

    if (maildir_folder_path(dir, root, name, why) < 0)
        goto out;
    if (is_inbox(name)) {
        ret = maildir_exists(root) ? 1 : maildir_create(root, why);
        goto out;
    }
    if (maildir_exists(strbuf_str(dir))) {
        ret = 1;
        goto out;
    }
    if (maildir_create(strbuf_str(dir), why) < 0)
        goto out;
    strbuf_printf(marker, "%s/maildirfolder", strbuf_str(dir));
    fd = open(strbuf_str(marker), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        maildir_why(why, "create %s: %m", strbuf_str(marker));
        goto out;
    }
    close(fd);
    if (maildir_fsync_dir(root, NULL, why) < 0)
        goto out;
    ret = 0;
out:
    strbuf_free(&dir);
    strbuf_free(&marker);
    return ret;
}

/* Remove a directory tree (depth bounded: a Maildir is two levels). */
static int remove_tree(int parent, const char *name, int depth, struct strbuf *why)
{
    struct dirent *de;
    DIR *d;
    int fd, ret = 0;

    if (depth > 4) {
        maildir_why(why, "unexpected nesting under %s", name);
        return -1;
    }
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        maildir_why(why, "open %s: %m", name);
        return -1;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        maildir_why(why, "fdopendir %s: %m", name);
        return -1;
    }
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
            continue;
        if (errno == EISDIR || errno == EPERM)
            ret = remove_tree(dirfd(d), de->d_name, depth + 1, why);
        else {
            maildir_why(why, "unlink %s/%s: %m", name, de->d_name);
            ret = -1;
        }
    }
    closedir(d);
    if (ret == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0) {
        maildir_why(why, "rmdir %s: %m", name);
        ret = -1;
    }
    return ret;
}

/* Call fn for every ".Name" directory entry of root; stops on -1. */
static int each_folder_dir(const char *root, int (*fn)(const char *name, void *ctx),
                           void *ctx, struct strbuf *why)
{
    struct dirent *de;
    DIR *d = opendir(root);
    int ret = 0, count = 0;

    if (d == NULL) {
        maildir_why(why, "opendir %s: %m", root);
        return -1;
    }
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' || de->d_name[1] == '\0' || de->d_name[1] == '.')
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (maildir_folder_check(de->d_name + 1, NULL) < 0)
            continue;
        if (++count > FOLDER_MAX_COUNT) {
            maildir_why(why, "more than %d folders in %s", FOLDER_MAX_COUNT, root);
            ret = -1;
            break;
        }
        ret = fn(de->d_name + 1, ctx);
    }
    closedir(d);
    return ret;
}

struct name_vec {
    char **v;
    size_t n, cap;
    const char *prefix;     /* only names under this folder (NULL: all) */
    const char *root;
};

static void vec_push(struct name_vec *nv, const char *s, size_t len)
{
    if (nv->n + 1 >= nv->cap) {
        nv->cap = nv->cap == 0 ? 16 : nv->cap * 2;
        nv->v = xreallocarray(nv->v, nv->cap, sizeof(char *));
    }
    nv->v[nv->n++] = xstrndup(s, len);
    nv->v[nv->n] = NULL;
}

static int collect_folder(const char *name, void *ctx)
{
    struct name_vec *nv = ctx;
    size_t plen;

    if (nv->prefix != NULL) {
        plen = strlen(nv->prefix);
        if (strncmp(name, nv->prefix, plen) != 0 || name[plen] != '.')
            return 0;
    } else {
        struct strbuf *dir = strbuf_new(256);
        bool ok;

        strbuf_printf(dir, "%s/.%s", nv->root, name);
        ok = maildir_exists(strbuf_str(dir));
        strbuf_free(&dir);
        if (!ok)
            return 0;
    }
    vec_push(nv, name, strlen(name));
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void maildir_names_free(char ***namesp)
{
    char **v = *namesp;
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
    *namesp = NULL;
}

static char **vec_finish(struct name_vec *nv, bool sort, size_t *n_r)
{
    if (nv->v == NULL) {
        nv->v = xcalloc(1, sizeof(char *));
    } else if (sort && nv->n > 1) {
        qsort(nv->v, nv->n, sizeof(char *), str_cmp);
    }
    *n_r = nv->n;
    return nv->v;
}

int maildir_folder_list(const char *root, char ***names_r, size_t *n_r,
                        struct strbuf *why)
{
    struct name_vec nv = { .root = root };

    if (each_folder_dir(root, collect_folder, &nv, why) < 0) {
        maildir_names_free(&nv.v);
        return -1;
    }
    *names_r = vec_finish(&nv, true, n_r);
    return 0;
}

int maildir_folder_delete(const char *root, const char *name, struct strbuf *why)
{
    struct name_vec kids = { .root = root, .prefix = name };
    struct strbuf *dir = strbuf_new(256), *hidden = strbuf_new(256);
    struct strbuf *uniq = strbuf_new(128);
    int rootfd = -1, ret = -1;

    if (maildir_folder_path(dir, root, name, why) < 0)
        goto out;
    if (is_inbox(name)) {
        maildir_why(why, "INBOX cannot be deleted");
        goto out;
    }
    if (!maildir_exists(strbuf_str(dir))) {
        maildir_why(why, "no folder \"%s\"", name);
        goto out;
    }
    if (each_folder_dir(root, collect_folder, &kids, why) < 0)
        goto out;
    if (kids.n > 0) {
        maildir_why(why, "folder \"%s\" has subfolders", name);
        goto out;
    }
    /* Out of sight first: "..name" is no valid folder, so no reader lists
     * a half-deleted folder, and a crash leaves only a hidden leftover. */
    maildir_name_unique(uniq);
    strbuf_printf(hidden, "%s/..deleted.%s", root, strbuf_str(uniq));
    if (rename(strbuf_str(dir), strbuf_str(hidden)) < 0) {
        maildir_why(why, "rename %s: %m", strbuf_str(dir));
        goto out;
    }
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        maildir_why(why, "open %s: %m", root);
        goto out;
    }
    if (fsync(rootfd) < 0) {
        maildir_why(why, "fsync %s: %m", root);
        goto out;
    }
    ret = remove_tree(rootfd, strrchr(strbuf_str(hidden), '/') + 1, 0, why);
out:
    if (rootfd >= 0)
        close(rootfd);
    maildir_names_free(&kids.v);
    strbuf_free(&dir);
    strbuf_free(&hidden);
    strbuf_free(&uniq);
    return ret;
}

int maildir_folder_rename(const char *root, const char *from, const char *to,
                          struct strbuf *why)
{
    struct name_vec kids = { .root = root, .prefix = from };
    struct strbuf *a = strbuf_new(256), *b = strbuf_new(256);
    size_t i, flen = strlen(from);
    int ret = -1;

    if (maildir_folder_check(from, why) < 0 || maildir_folder_check(to, why) < 0)
        goto out;
    if (is_inbox(from) || is_inbox(to)) {
        maildir_why(why, "INBOX cannot be renamed here");
        goto out;
    }
    if (strncmp(to, from, flen) == 0 && to[flen] == '.') {
        maildir_why(why, "cannot move \"%s\" under itself", from);
        goto out;
    }
    if (each_folder_dir(root, collect_folder, &kids, why) < 0)
        goto out;
    /* Check every target first, so the rename is all or nothing unless
     * the disk fails midway. */
    for (i = 0; i <= kids.n; i++) {
        const char *rest = i < kids.n ? kids.v[i] + flen : "";

        strbuf_printf(b, "%s/.%s%s", root, to, rest);
        if (strlen(to) + strlen(rest) > MAILDIR_FOLDER_MAX) {
            maildir_why(why, "folder name too long");
            goto out;
        }
        if (access(strbuf_str(b), F_OK) == 0) {
            maildir_why(why, "folder \"%s%s\" already exists", to, rest);
            goto out;
        }
    }
    strbuf_printf(a, "%s/.%s", root, from);
    strbuf_printf(b, "%s/.%s", root, to);
    if (renameat2(AT_FDCWD, strbuf_str(a), AT_FDCWD, strbuf_str(b), RENAME_NOREPLACE) < 0) {
        maildir_why(why, "rename %s to %s: %m", strbuf_str(a), strbuf_str(b));
        goto out;
    }
    for (i = 0; i < kids.n; i++) {
        strbuf_printf(a, "%s/.%s", root, kids.v[i]);
        strbuf_printf(b, "%s/.%s%s", root, to, kids.v[i] + flen);
        if (renameat2(AT_FDCWD, strbuf_str(a), AT_FDCWD, strbuf_str(b),
                      RENAME_NOREPLACE) < 0) {
            maildir_why(why, "rename %s to %s: %m", strbuf_str(a), strbuf_str(b));
            goto out;
        }
    }
    ret = maildir_fsync_dir(root, NULL, why);
out:
    maildir_names_free(&kids.v);
    strbuf_free(&a);
    strbuf_free(&b);
    return ret;
}

int maildir_folder_create_defaults(const char *root, struct strbuf *why)
{
    size_t i;

    if (maildir_create(root, why) < 0)
        return -1;
    for (i = 0; i < sizeof(default_folders) / sizeof(default_folders[0]); i++) {
        if (maildir_folder_create(root, default_folders[i], why) < 0 ||
            maildir_subs_set(root, default_folders[i], true, why) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* subscriptions                                                        */

/* Dovecot's tab escaping: \001 + '1', 't', 'r', 'n' for \001 TAB CR LF. */
static int unescape_level(struct strbuf *out, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] != '\001') {
            strbuf_appendc(out, s[i]);
            continue;
        }
        if (++i == len)
            return -1;
        switch (s[i]) {
        case '1': strbuf_appendc(out, '\001'); break;
        case 't': strbuf_appendc(out, '\t'); break;
        case 'r': strbuf_appendc(out, '\r'); break;
        case 'n': strbuf_appendc(out, '\n'); break;
        default: return -1;
        }
    }
    return 0;
}

int maildir_subs_parse(const char *data, size_t len, char ***names_r, size_t *n_r,
                       struct strbuf *why)
{
    struct name_vec nv = { 0 };
    struct strbuf *name = strbuf_new(256);
    const char *p = data, *end = data + len;
    bool v2 = false;
    size_t lines = 0;

    if (len >= sizeof(SUBS_HEADER_V2) - 1 &&
        memcmp(data, SUBS_HEADER_V2, sizeof(SUBS_HEADER_V2) - 1) == 0) {
        v2 = true;
        p += sizeof(SUBS_HEADER_V2) - 1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        const char *q = p;

        if (++lines > SUBS_MAX_LINES || (size_t)(le - p) > MAILDIR_FOLDER_MAX * 2) {
            maildir_why(why, "subscriptions: too many or too long lines");
            goto fail;
        }
        strbuf_reset(name);
        if (v2) {
            while (q <= le) {
                const char *tab = memchr(q, '\t', (size_t)(le - q));
                const char *lend = tab != NULL ? tab : le;

                if (unescape_level(name, q, (size_t)(lend - q)) < 0) {
                    maildir_why(why, "subscriptions: bad escape");
                    goto fail;
                }
                if (tab == NULL)
                    break;
                strbuf_appendc(name, '.');
                q = tab + 1;
            }
        } else {
            strbuf_appendn(name, p, (size_t)(le - p));
        }
        if (strbuf_len(name) > 0 && memchr(strbuf_str(name), '\0', strbuf_len(name)) == NULL)
            vec_push(&nv, strbuf_str(name), strbuf_len(name));
        p = nl != NULL ? nl + 1 : end;
    }
    strbuf_free(&name);
    *names_r = vec_finish(&nv, false, n_r);
    return 0;
fail:
    strbuf_free(&name);
    maildir_names_free(&nv.v);
    return -1;
}

/* Read a whole small file (at most max bytes) into out.  0 (missing: empty
 * and *exists false), or -1. */
static int read_small(const char *path, size_t max, struct strbuf *out, bool *exists,
                      struct strbuf *why)
{
    char buf[8192];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    strbuf_reset(out);
    *exists = fd >= 0;
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        maildir_why(why, "open %s: %m", path);
        return -1;
    }
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || strbuf_len(out) + (size_t)n > max) {
            maildir_why(why, n < 0 ? "read %s: %m" : "%s is too large", path);
            close(fd);
            return -1;
        }
        strbuf_appendn(out, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

#define SUBS_MAX_BYTES (SUBS_MAX_LINES * 64)

int maildir_subs_read(const char *root, char ***names_r, size_t *n_r,
                      struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256), *data = strbuf_new(1024);
    bool exists;
    int ret;

    strbuf_printf(path, "%s/subscriptions", root);
    ret = read_small(strbuf_str(path), SUBS_MAX_BYTES, data, &exists, why);
    if (ret == 0)
        ret = maildir_subs_parse(strbuf_str(data), strbuf_len(data), names_r, n_r, why);
    strbuf_free(&path);
    strbuf_free(&data);
    return ret;
}

/* One name as a subscriptions line in the file's version. */
static void subs_line(struct strbuf *out, const char *name, bool v2)
{
    const char *p;

    for (p = name; *p != '\0'; p++) {
        if (!v2 || *p != '.')
            strbuf_appendc(out, *p);
        else
            strbuf_appendc(out, '\t');
    }
    strbuf_appendc(out, '\n');
}

int maildir_subs_set(const char *root, const char *name, bool subscribed,
                     struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256), *data = strbuf_new(1024);
    struct strbuf *out = strbuf_new(1024);
    char **names = NULL;
    size_t i, n = 0;
    bool exists, v2, found = false;
    int fd = -1, ret = -1;

    if (maildir_folder_check(name, why) < 0)
        goto out;
    if (is_inbox(name))
        name = "INBOX";
    strbuf_printf(path, "%s/subscriptions", root);
    if (maildir_dotlock_take(strbuf_str(path), SUBS_LOCK_TIMEOUT_MS, SUBS_LOCK_STALE_SECS,
                             &fd, why) < 0)
        goto out;
    if (read_small(strbuf_str(path), SUBS_MAX_BYTES, data, &exists, why) < 0 ||
        maildir_subs_parse(strbuf_str(data), strbuf_len(data), &names, &n, why) < 0)
        goto unlock;
    /* Keep the version the file has; a new file gets version 2, which
     * every Dovecot since 2.2 reads. */
    v2 = !exists || (strbuf_len(data) >= sizeof(SUBS_HEADER_V2) - 1 &&
                     memcmp(strbuf_str(data), SUBS_HEADER_V2,
                            sizeof(SUBS_HEADER_V2) - 1) == 0);
    if (v2)
        strbuf_append(out, SUBS_HEADER_V2);
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            bool dup = found;

            found = true;
            if (dup || !subscribed)
                continue;
        }
        subs_line(out, names[i], v2);
    }
    if (subscribed && !found)
        subs_line(out, name, v2);
    if (subscribed == found) {
        ret = 0;    /* already so: leave the file alone */
        goto unlock;
    }
    /* The lock file holds "pid:host"; it becomes the new file. */
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
        write(fd, strbuf_str(out), strbuf_len(out)) != (ssize_t)strbuf_len(out)) {
        maildir_why(why, "write %s.lock: %m", strbuf_str(path));
        goto unlock;
    }
    ret = maildir_dotlock_replace(strbuf_str(path), fd, why);
    fd = -1;
    if (ret == 0)
        ret = maildir_fsync_dir(root, NULL, why) < 0 ? -1 : 1;
    goto out;
unlock:
    maildir_dotlock_release(strbuf_str(path), fd);
out:
    maildir_names_free(&names);
    strbuf_free(&path);
    strbuf_free(&data);
    strbuf_free(&out);
    return ret;
}
