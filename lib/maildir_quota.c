/*
 * maildir_quota.c - the Maildir++ "maildirsize" quota file.
 *
 * Reads, recalculates and appends to ROOT/maildirsize.  lmtpd checks the
 * quota before a delivery and appends "+size +1" after it; imapd and
 * pop3d append "-size -1" for expunges; facteur-maildir prints it.
 *
 * The file lives in the user's Maildir, so the user may have written it:
 * it is read with a size bound, parsed strictly (numbers bounded, sums
 * checked for overflow), and anything odd makes us recalculate from the
 * messages rather than trust it.  The recalculated file replaces the old
 * one by rename(), so readers never see half a file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "maildir_quota.h"
#include "mem.h"

#define QUOTA_MAX_LINES 10000
/* Read at most this much: past MAILDIR_QUOTA_RECALC_BYTES we recount. */
#define QUOTA_READ_MAX (MAILDIR_QUOTA_RECALC_BYTES * 4)

static int parse_num(const char *s, size_t len, bool sign, int64_t *v)
{
    bool neg = false;
    uint64_t n = 0;
    size_t i = 0;

    if (sign && len > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (n > INT64_MAX)
        return -1;
    *v = neg ? -(int64_t)n : (int64_t)n;
    return 0;
}

int maildir_quota_parse_def(const char *s, size_t len, uint64_t *bytes_r,
                            uint64_t *count_r, struct strbuf *why)
{
    const char *p = s, *end = s + len;

    *bytes_r = 0;
    *count_r = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *fe = comma != NULL ? comma : end;
        int64_t v;

        if (fe - p < 2 || parse_num(p, (size_t)(fe - p - 1), false, &v) < 0 ||
            (fe[-1] != 'S' && fe[-1] != 'C') || (comma != NULL && comma + 1 == end)) {
            maildir_why(why, "bad quota definition \"%.*s\"", (int)(len > 100 ? 100 : len), s);
            return -1;
        }
        if (fe[-1] == 'S')
            *bytes_r = (uint64_t)v;
        else
            *count_r = (uint64_t)v;
        p = comma != NULL ? comma + 1 : end;
    }
    return 0;
}

void maildir_quota_format_def(struct strbuf *out, uint64_t bytes, uint64_t count)
{
    strbuf_reset(out);
    if (bytes > 0)
        strbuf_appendf(out, "%lluS", (unsigned long long)bytes);
    if (count > 0)
        strbuf_appendf(out, "%s%lluC", bytes > 0 ? "," : "", (unsigned long long)count);
}

int maildir_quota_parse(const char *data, size_t len, struct maildir_quota *q,
                        struct strbuf *why)
{
    const char *p = data, *end = data + len;
    size_t line = 0;

    memset(q, 0, sizeof(*q));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *sp;
        int64_t b, c;

        if (nl == NULL) {
            maildir_why(why, "maildirsize: truncated line %zu", line + 1);
            return -1;
        }
        if (++line > QUOTA_MAX_LINES) {
            maildir_why(why, "maildirsize: more than %d lines", QUOTA_MAX_LINES);
            return -1;
        }
        if (line == 1) {
            if (maildir_quota_parse_def(p, (size_t)(nl - p), &q->limit_bytes,
                                        &q->limit_count, why) < 0)
                return -1;
            p = nl + 1;
            continue;
        }
        /* "<bytes> <count>", spaces around them tolerated. */
        while (p < nl && *p == ' ')
            p++;
        sp = memchr(p, ' ', (size_t)(nl - p));
        if (sp == NULL || parse_num(p, (size_t)(sp - p), true, &b) < 0) {
            maildir_why(why, "maildirsize: bad line %zu", line);
            return -1;
        }
        while (sp < nl && *sp == ' ')
            sp++;
        {
            const char *ce = sp;

            while (ce < nl && *ce != ' ')
                ce++;
            if (parse_num(sp, (size_t)(ce - sp), true, &c) < 0) {
                maildir_why(why, "maildirsize: bad line %zu", line);
                return -1;
            }
        }
        if (__builtin_add_overflow(q->bytes, b, &q->bytes) ||
            __builtin_add_overflow(q->count, c, &q->count)) {
            maildir_why(why, "maildirsize: sums overflow at line %zu", line);
            return -1;
        }
        p = nl + 1;
    }
    if (line == 0) {
        maildir_why(why, "maildirsize: empty");
        return -1;
    }
    return 0;
}

/* Sum the messages of one Maildir; returns 0 or -1. */
static int count_maildir(const char *dir, bool stat_only, int64_t *bytes, int64_t *count,
                         struct timespec *newest, struct strbuf *why)
{
    static const char *const subs[] = { "new", "cur" };
    struct strbuf *path = strbuf_new(256);
    struct maildir_info info;
    struct dirent *de;
    struct stat st;
    size_t i;

    for (i = 0; i < 2; i++) {
        DIR *d;

        maildir_path(path, dir, subs[i], NULL);
        if (stat(strbuf_str(path), &st) < 0)
            continue;   /* not a complete Maildir: nothing counted */
        if (st.st_mtim.tv_sec > newest->tv_sec ||
            (st.st_mtim.tv_sec == newest->tv_sec && st.st_mtim.tv_nsec > newest->tv_nsec))
            *newest = st.st_mtim;
        if (stat_only)
            continue;
        d = opendir(strbuf_str(path));
        if (d == NULL) {
            maildir_why(why, "opendir %s: %m", strbuf_str(path));
            strbuf_free(&path);
            return -1;
        }
        while ((de = readdir(d)) != NULL) {
            int64_t size;

            if (de->d_name[0] == '.')
                continue;
            if (maildir_name_parse(de->d_name, strlen(de->d_name), &info, NULL) == 0 &&
                info.has_size && info.size <= INT64_MAX) {
                size = (int64_t)info.size;
            } else if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
                size = st.st_size;
            } else {
                continue;
            }
            if (__builtin_add_overflow(*bytes, size, bytes))
                *bytes = INT64_MAX;
            (*count)++;
        }
        closedir(d);
    }
    strbuf_free(&path);
    return 0;
}

/* Count INBOX and every ".Folder" of root. */
static int count_all(const char *root, bool stat_only, int64_t *bytes, int64_t *count,
                     struct timespec *newest, struct strbuf *why)
{
    char **names = NULL;
    size_t i, n;
    struct strbuf *dir;
    int ret = 0;

    *bytes = 0;
    *count = 0;
    newest->tv_sec = 0;
    newest->tv_nsec = 0;
    if (count_maildir(root, stat_only, bytes, count, newest, why) < 0 ||
        maildir_folder_list(root, &names, &n, why) < 0)
        return -1;
    dir = strbuf_new(256);
    for (i = 0; i < n && ret == 0; i++) {
        strbuf_printf(dir, "%s/.%s", root, names[i]);
        ret = count_maildir(strbuf_str(dir), stat_only, bytes, count, newest, why);
    }
    strbuf_free(&dir);
    maildir_names_free(&names);
    return ret;
}

/* Read up to QUOTA_READ_MAX bytes of maildirsize.  1 read, 0 missing, -1. */
static int read_file(const char *path, struct strbuf *out, struct stat *st,
                     struct strbuf *why)
{
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    strbuf_reset(out);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        maildir_why(why, "open %s: %m", path);
        return -1;
    }
    if (fstat(fd, st) < 0) {
        maildir_why(why, "fstat %s: %m", path);
        close(fd);
        return -1;
    }
    while (strbuf_len(out) < QUOTA_READ_MAX && (n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            maildir_why(why, "read %s: %m", path);
            close(fd);
            return -1;
        }
        strbuf_appendn(out, buf, (size_t)n);
    }
    close(fd);
    return 1;
}

int maildir_quota_recalc(const char *root, const char *def, struct maildir_quota *q,
                         struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256), *tmp = strbuf_new(256);
    struct strbuf *data = strbuf_new(1024), *uniq = strbuf_new(128);
    struct timespec before, after;
    struct maildir_quota old;
    struct stat st;
    int attempt, fd, ret = -1;

    memset(q, 0, sizeof(*q));
    strbuf_printf(path, "%s/%s", root, MAILDIR_QUOTA_FILE);
    if (def != NULL) {
        if (maildir_quota_parse_def(def, strlen(def), &q->limit_bytes, &q->limit_count,
                                    why) < 0)
            goto out;
    } else if (read_file(strbuf_str(path), data, &st, NULL) > 0) {
        const char *nl = memchr(strbuf_str(data), '\n', strbuf_len(data));

        /* Keep the file's definition when it is readable. */
        if (nl != NULL && maildir_quota_parse_def(strbuf_str(data),
                                                  (size_t)(nl - strbuf_str(data)),
                                                  &old.limit_bytes, &old.limit_count,
                                                  NULL) == 0) {
            q->limit_bytes = old.limit_bytes;
            q->limit_count = old.limit_count;
        }
    }
    for (attempt = 0; attempt < 3; attempt++) {
        if (count_all(root, false, &q->bytes, &q->count, &before, why) < 0)
            goto out;
        /* The same newest directory mtime after counting: nothing was
         * added, removed or renamed while we counted. */
        if (count_all(root, true, &old.bytes, &old.count, &after, why) < 0)
            goto out;
        if (after.tv_sec == before.tv_sec && after.tv_nsec == before.tv_nsec)
            break;
    }
    maildir_quota_format_def(data, q->limit_bytes, q->limit_count);
    strbuf_appendf(data, "\n%lld %lld\n", (long long)q->bytes, (long long)q->count);
    maildir_name_unique(uniq);
    maildir_path(tmp, root, "tmp", strbuf_str(uniq));
    fd = open(strbuf_str(tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        maildir_why(why, "create %s: %m", strbuf_str(tmp));
        goto out;
    }
    if (write(fd, strbuf_str(data), strbuf_len(data)) != (ssize_t)strbuf_len(data) ||
        fsync(fd) < 0) {
        maildir_why(why, "write %s: %m", strbuf_str(tmp));
        close(fd);
        unlink(strbuf_str(tmp));
        goto out;
    }
    close(fd);
    if (rename(strbuf_str(tmp), strbuf_str(path)) < 0) {
        maildir_why(why, "rename %s: %m", strbuf_str(tmp));
        unlink(strbuf_str(tmp));
        goto out;
    }
    ret = 0;
out:
    strbuf_free(&path);
    strbuf_free(&tmp);
    strbuf_free(&data);
    strbuf_free(&uniq);
    return ret;
}

int maildir_quota_get(const char *root, const char *def, struct maildir_quota *q,
                      struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256), *data = strbuf_new(1024);
    struct strbuf *perr = strbuf_new(128);
    uint64_t db = 0, dc = 0;
    struct stat st;
    int r, ret = -1;
    bool recalc = false;

    memset(q, 0, sizeof(*q));
    if (def != NULL && maildir_quota_parse_def(def, strlen(def), &db, &dc, why) < 0)
        goto out;
    strbuf_printf(path, "%s/%s", root, MAILDIR_QUOTA_FILE);
    r = read_file(strbuf_str(path), data, &st, why);
    if (r < 0)
        goto out;
    if (r == 0) {
        if (def == NULL) {
            ret = 0;    /* no file, no configured limit: no quota */
            goto out;
        }
        recalc = true;
    } else if (st.st_size >= MAILDIR_QUOTA_RECALC_BYTES) {
        recalc = true;
    } else if (maildir_quota_parse(strbuf_str(data), strbuf_len(data), q, perr) < 0) {
        log_warn("maildir %s: %s; recalculating", root, strbuf_str(perr));
        recalc = true;
    } else if (def != NULL && (q->limit_bytes != db || q->limit_count != dc)) {
        recalc = true;
    } else if (maildir_quota_exceeded(q, 0, 0) &&
               st.st_mtime < time(NULL) - MAILDIR_QUOTA_STALE_SECS) {
        recalc = true;
    }
    ret = recalc ? maildir_quota_recalc(root, def, q, why) : 0;
out:
    strbuf_free(&path);
    strbuf_free(&data);
    strbuf_free(&perr);
    return ret;
}

bool maildir_quota_exceeded(const struct maildir_quota *q, uint64_t bytes,
                            uint64_t count)
{
    int64_t b = q->bytes < 0 ? 0 : q->bytes;
    int64_t c = q->count < 0 ? 0 : q->count;

    if (q->limit_bytes > 0 && (uint64_t)b + bytes > q->limit_bytes)
        return true;
    if (q->limit_count > 0 && (uint64_t)c + count > q->limit_count)
        return true;
    /* "over quota" with nothing added means at or past the limit. */
    if (bytes == 0 && count == 0 &&
        ((q->limit_bytes > 0 && (uint64_t)b >= q->limit_bytes) ||
         (q->limit_count > 0 && (uint64_t)c >= q->limit_count)))
        return true;
    return false;
}

int maildir_quota_update(const char *root, int64_t bytes, int64_t count,
                         struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    char line[64];
    int fd, len, ret = 0;

    strbuf_printf(path, "%s/%s", root, MAILDIR_QUOTA_FILE);
    fd = open(strbuf_str(path), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            maildir_why(why, "open %s: %m", strbuf_str(path));
            ret = -1;
        }
        strbuf_free(&path);
        return ret;
    }
    len = snprintf(line, sizeof(line), "%lld %lld\n", (long long)bytes, (long long)count);
    /* One write with O_APPEND: concurrent writers never interleave. */
    if (write(fd, line, (size_t)len) != len) {
        maildir_why(why, "write %s: %m", strbuf_str(path));
        ret = -1;
    }
    close(fd);
    strbuf_free(&path);
    return ret;
}
