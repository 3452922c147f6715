/*
 * queue_scan.c - the queue commands' shared logic: listings, mailq and
 * JSON summaries, defer logs, moves between queues, flush.
 *
 * Callers: facteur-queue (mailq, flush), facteur-super (delete, hold,
 * release, requeue, repair), facteur-cat (finding a file) and facteur
 * flush.  They run as root or mail_owner beside a live qmgr, so every
 * step tolerates a file vanishing or moving between the listing and the
 * action, and every change is a rename (atomic) made durable by a
 * directory fsync before the call returns.
 *
 * Trust: directory entries, queue files and defer logs are spool data,
 * written by daemons that may have crashed or been confused: names must be
 * valid queue IDs before they become paths, queue files go through
 * qfile_open()'s validation, and defer logs are parsed with bounds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileops.h"
#include "mem.h"
#include "qfile.h"
#include "queue_scan.h"
#include "trigger.h"

const char *const queue_scan_queues[] = {
    "maildrop", "incoming", "active", "deferred", "hold", "corrupt", NULL,
};

bool queue_scan_is_queue(const char *name)
{
    for (const char *const *q = queue_scan_queues; *q != NULL; q++)
        if (strcmp(*q, name) == 0)
            return true;
    return false;
}

static const char *queue_static_name(const char *name)
{
    for (const char *const *q = queue_scan_queues; *q != NULL; q++)
        if (strcmp(*q, name) == 0)
            return *q;
    return NULL;
}

void queue_scan_path(struct strbuf *out, const char *queue_dir, const char *queue,
                     const char *qid)
{
    strbuf_printf(out, "%s/%s/%s", queue_dir, queue, qid);
}

static int queue_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct queue_entry *)a)->qid, ((const struct queue_entry *)b)->qid);
}

int queue_scan_list(const char *queue_dir, const char *queue, struct queue_entry **list_r,
                    size_t *n_r, struct strbuf *why)
{
    const char *name = queue_static_name(queue);
    struct strbuf *dir = strbuf_new(128);
    struct dirent *de;
    size_t first = *n_r, count = 0;
    DIR *d;

    if (name == NULL) {
        strbuf_printf(why, "unknown queue name: %s", queue);
        strbuf_free(&dir);
        errno = EINVAL;
        return -1;
    }
    strbuf_printf(dir, "%s/%s", queue_dir, queue);
    if ((d = opendir(strbuf_str(dir))) == NULL) {
        int err = errno;

        if (err == ENOENT) {
            strbuf_free(&dir);
            return 0;
        }
        strbuf_printf(why, "cannot read queue directory %s: %s", strbuf_str(dir),
                      strerror(err));
        strbuf_free(&dir);
        errno = err;
        return -1;
    }
    while ((de = readdir(d)) != NULL && count < QUEUE_SCAN_MAX) {
        if (!qid_valid(de->d_name))
            continue;
        *list_r = xreallocarray(*list_r, *n_r + 1, sizeof(**list_r));
        strcpy((*list_r)[*n_r].qid, de->d_name);
        (*list_r)[*n_r].queue = name;
        (*n_r)++;
        count++;
    }
    closedir(d);
    if (count > 1)
        qsort(*list_r + first, count, sizeof(**list_r), queue_entry_cmp);
    strbuf_free(&dir);
    return 0;
}

const char *queue_scan_find(const char *queue_dir, const char *qid)
{
    struct strbuf *path = strbuf_new(128);
    const char *found = NULL;
    struct stat st;

    if (!qid_valid(qid)) {
        strbuf_free(&path);
        return NULL;
    }
    for (const char *const *q = queue_scan_queues; *q != NULL && found == NULL; q++) {
        queue_scan_path(path, queue_dir, *q, qid);
        if (lstat(strbuf_str(path), &st) == 0 && S_ISREG(st.st_mode))
            found = *q;
    }
    strbuf_free(&path);
    return found;
}

/* ---- defer logs ------------------------------------------------------- */

int queue_defer_parse(const char *text, size_t len, queue_defer_fn *fn, void *ctx)
{
    static const char rkey[] = "recipient=", skey[] = " reason=";
    const char *p = text, *end = text + len;
    char *line = NULL;
    int count = 0;

    if (len > QUEUE_DEFER_FILE_MAX)
        return -1;
    while (p < end && count < QUEUE_DEFER_ENTRIES_MAX) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        char *sep;

        if (n <= QUEUE_DEFER_LINE_MAX && n > sizeof(rkey) - 1
            && memcmp(p, rkey, sizeof(rkey) - 1) == 0 && memchr(p, '\0', n) == NULL) {
            line = xrealloc(line, n + 1);
            memcpy(line, p, n);
            line[n] = 0;
            /* An address holds no control character, but a quoted local
             * part may hold " reason=": the first separator is taken, as
             * the writer put the address first. */
            if ((sep = strstr(line + sizeof(rkey) - 1, skey)) != NULL
                && sep > line + sizeof(rkey) - 1) {
                *sep = 0;
                fn(line + sizeof(rkey) - 1, sep + sizeof(skey) - 1, ctx);
                count++;
            }
        }
        p = nl ? nl + 1 : end;
    }
    free(line);
    return count;
}

int queue_defer_remove(const char *queue_dir, const char *qid, bool all, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(128);
    int rc = 0;

    strbuf_printf(path, "%s/defer/%s", queue_dir, qid);
    if (unlink(strbuf_str(path)) < 0 && errno != ENOENT) {
        strbuf_printf(why, "remove %s: %s", strbuf_str(path), strerror(errno));
        rc = -1;
    }
    strbuf_printf(path, "%s/defer/%s.warned", queue_dir, qid);
    if (all && unlink(strbuf_str(path)) < 0 && errno != ENOENT && rc == 0) {
        strbuf_printf(why, "remove %s: %s", strbuf_str(path), strerror(errno));
        rc = -1;
    }
    strbuf_free(&path);
    return rc;
}

/* ---- one message ------------------------------------------------------- */

static void queue_msg_set_reason(const char *addr, const char *reason, void *ctx)
{
    struct queue_msg *m = ctx;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (strcmp(m->rcpts[i].addr, addr) == 0) {
            free(m->rcpts[i].reason);
            m->rcpts[i].reason = xstrdup(reason);
        }
}

static void queue_msg_read_defer(const char *queue_dir, struct queue_msg *m)
{
    struct strbuf *path = strbuf_new(128), *text = strbuf_new(256), *why = strbuf_new(64);

    strbuf_printf(path, "%s/defer/%s", queue_dir, m->qid);
    /* A missing, unreadable or over-long log only costs the reasons. */
    if (fileops_read_file(strbuf_str(path), text, QUEUE_DEFER_FILE_MAX, why) == 0)
        (void)queue_defer_parse(strbuf_str(text), strbuf_len(text), queue_msg_set_reason, m);
    strbuf_free(&path);
    strbuf_free(&text);
    strbuf_free(&why);
}

int queue_msg_load(const char *queue_dir, const char *queue, const char *qid,
                   struct queue_msg *m, bool *corrupt_r, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(128);
    const struct qfile_env *env;
    struct qfile *qf;
    bool corrupt = false;

    memset(m, 0, sizeof(*m));
    if (corrupt_r != NULL)
        *corrupt_r = false;
    if (!qid_valid(qid) || (m->queue = queue_static_name(queue)) == NULL) {
        strbuf_printf(why, "invalid queue ID or queue name");
        strbuf_free(&path);
        errno = EINVAL;
        return -1;
    }
    queue_scan_path(path, queue_dir, queue, qid);
    if ((qf = qfile_open(strbuf_str(path), 0, &corrupt, why)) == NULL) {
        int err = errno;

        if (corrupt_r != NULL)
            *corrupt_r = corrupt;
        strbuf_free(&path);
        errno = err;
        return -1;
    }
    env = qfile_env(qf);
    strcpy(m->qid, qid);
    m->arrival = env->arrival.tv_sec;
    m->size = env->content_size;
    m->sender = xstrdup(env->sender);
    m->rcpts = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*m->rcpts));
    for (size_t i = 0; i < env->nrcpt; i++) {
        if (env->rcpts[i].status != QFILE_RCPT_OPEN)
            continue;
        m->rcpts[m->nrcpt].addr = xstrdup(env->rcpts[i].addr);
        m->rcpts[m->nrcpt].reason = xstrdup("");
        m->nrcpt++;
    }
    qfile_close(&qf);
    queue_msg_read_defer(queue_dir, m);
    strbuf_free(&path);
    return 0;
}

void queue_msg_free(struct queue_msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].reason);
    }
    free(m->rcpts);
    free(m->sender);
    memset(m, 0, sizeof(*m));
}

bool queue_msg_matches_site(const struct queue_msg *m, const char *site)
{
    size_t slen = strlen(site);
    bool parent = slen > 1 && site[0] == '.';

    if (slen == 0)
        return false;
    for (size_t i = 0; i < m->nrcpt; i++) {
        const char *at = strrchr(m->rcpts[i].addr, '@');
        const char *dom;
        size_t dlen;

        if (at == NULL)
            continue;
        dom = at + 1;
        dlen = strlen(dom);
        if (!parent && strcasecmp(dom, site) == 0)
            return true;
        /* ".example.org" admits a.example.org, not example.org itself. */
        if (parent && dlen > slen && strcasecmp(dom + dlen - slen, site) == 0)
            return true;
    }
    return false;
}

/* ---- output ------------------------------------------------------------- */

/* Postfix's short-ID mailq layout (showq_compat.c), so scripts that cut
 * columns out of mailq output keep working; longer IDs push the line
 * right, as they do in Postfix. */
#define MAILQ_STRING_FORMAT "%-11s %7s %-20s %s\n"
#define MAILQ_REASON_WIDTH  76

void queue_format_heading(struct strbuf *out)
{
    strbuf_appendf(out, MAILQ_STRING_FORMAT, "-Queue ID-", "--Size--", "----Arrival Time----",
                   "-Sender/Recipient-------");
}

void queue_format_mailq(struct strbuf *out, const struct queue_msg *m)
{
    char id[QID_BUFSIZE + 1], date[32];
    const char *prev = "";
    struct tm tm;
    time_t t = m->arrival;

    strcpy(id, m->qid);
    if (strcmp(m->queue, "active") == 0)
        strcat(id, "*");
    else if (strcmp(m->queue, "hold") == 0)
        strcat(id, "!");
    if (localtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%a %b %e %H:%M:%S", &tm) == 0)
        strcpy(date, "?");
    /* asctime's day of month is space-padded, as %e is. */
    /* The null sender shows as Postfix shows it. */
    strbuf_appendf(out, "%-11s %7llu %-20.20s %s\n", id, (unsigned long long)m->size, date,
                   m->sender[0] ? m->sender : "MAILER-DAEMON");
    for (size_t i = 0; i < m->nrcpt; i++) {
        const char *reason = m->rcpts[i].reason;

        if (strcmp(prev, reason) != 0) {
            const char *show = *reason ? reason : "reason unavailable";
            int pad = MAILQ_REASON_WIDTH - (int)strlen(show);

            strbuf_appendf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", show);
            prev = reason;
        }
        strbuf_appendf(out, MAILQ_STRING_FORMAT, "", "", "", m->rcpts[i].addr);
    }
}

void queue_format_summary(struct strbuf *out, uint64_t total_size, size_t count)
{
    if (count == 0)
        strbuf_append(out, "Mail queue is empty\n");
    else
        strbuf_appendf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
                       (unsigned long long)(total_size / 1024), count, count == 1 ? "" : "s");
}

/* Length of the valid UTF-8 sequence at s (no overlongs, no surrogates,
 * at most U+10FFFF), or 0. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned c = s[0];

    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

void queue_json_quote(struct strbuf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned c = *p;
        size_t n;

        if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\b': strbuf_append(out, "\\b"); break;
            case '\f': strbuf_append(out, "\\f"); break;
            case '\n': strbuf_append(out, "\\n"); break;
            case '\r': strbuf_append(out, "\\r"); break;
            case '\t': strbuf_append(out, "\\t"); break;
            default: strbuf_appendf(out, "\\u%04X", c); break;
            }
            p++;
        } else if (c == '"' || c == '\\') {
            strbuf_appendc(out, '\\');
            strbuf_appendc(out, (int)c);
            p++;
        } else if (c < 0x80) {
            strbuf_appendc(out, (int)c);
            p++;
        } else if ((n = utf8_seq_len(p)) > 0) {
            /* utf8_seq_len never reads past a NUL: it fails on the
             * first byte that is not a continuation byte. */
            strbuf_appendn(out, p, n);
            p += n;
        } else {
            strbuf_appendc(out, '?');
            p++;
        }
    }
}

void queue_format_json(struct strbuf *out, const struct queue_msg *m)
{
    strbuf_append(out, "{\"queue_name\": \"");
    queue_json_quote(out, m->queue);
    strbuf_append(out, "\", \"queue_id\": \"");
    queue_json_quote(out, m->qid);
    strbuf_appendf(out, "\", \"arrival_time\": %lld, \"message_size\": %llu, "
                   "\"forced_expire\": false, \"sender\": \"",
                   (long long)m->arrival, (unsigned long long)m->size);
    queue_json_quote(out, m->sender);
    strbuf_append(out, "\", \"recipients\": [");
    for (size_t i = 0; i < m->nrcpt; i++) {
        strbuf_append(out, i ? ", {\"address\": \"" : "{\"address\": \"");
        queue_json_quote(out, m->rcpts[i].addr);
        strbuf_appendc(out, '"');
        if (m->rcpts[i].reason[0] != 0) {
            strbuf_append(out, ", \"delay_reason\": \"");
            queue_json_quote(out, m->rcpts[i].reason);
            strbuf_appendc(out, '"');
        }
        strbuf_appendc(out, '}');
    }
    strbuf_append(out, "]}\n");
}

/* ---- changes ------------------------------------------------------------ */

static int queue_sync(const char *queue_dir, const char *queue, struct strbuf *why)
{
    struct strbuf *dir = strbuf_new(128);
    int rc;

    strbuf_printf(dir, "%s/%s", queue_dir, queue);
    rc = fileops_fsync_dir(strbuf_str(dir), why);
    strbuf_free(&dir);
    return rc;
}

int queue_touch(const char *queue_dir, const char *queue, const char *qid, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(128);
    int rc = 0;

    queue_scan_path(path, queue_dir, queue, qid);
    /* NULL times: now, which the owner or root may set. */
    if (utimensat(AT_FDCWD, strbuf_str(path), NULL, AT_SYMLINK_NOFOLLOW) < 0) {
        int err = errno;

        strbuf_printf(why, "set the time of %s: %s", strbuf_str(path), strerror(err));
        errno = err;
        rc = -1;
    }
    strbuf_free(&path);
    return rc;
}

int queue_move(const char *queue_dir, const char *from, const char *to, const char *qid,
               bool touch, struct strbuf *why)
{
    struct strbuf *src = strbuf_new(128), *dst = strbuf_new(128);
    int rc = -1, err;

    if (!qid_valid(qid) || !queue_scan_is_queue(from) || !queue_scan_is_queue(to)) {
        strbuf_printf(why, "invalid queue ID or queue name");
        errno = EINVAL;
        goto out;
    }
    queue_scan_path(src, queue_dir, from, qid);
    queue_scan_path(dst, queue_dir, to, qid);
    /* The mtime first: a scanner of the target queue must never see the
     * file with its old retry time. */
    if (touch && queue_touch(queue_dir, from, qid, why) < 0)
        goto out;
    /* RENAME_NOREPLACE: a file of the same name in the target (there
     * should be none: IDs are unique) is never overwritten. */
    if (renameat2(AT_FDCWD, strbuf_str(src), AT_FDCWD, strbuf_str(dst), RENAME_NOREPLACE) < 0) {
        err = errno;
        strbuf_printf(why, "rename %s to %s: %s", strbuf_str(src), strbuf_str(dst), strerror(err));
        errno = err;
        goto out;
    }
    if (queue_sync(queue_dir, to, why) < 0 || queue_sync(queue_dir, from, why) < 0)
        goto out;
    rc = 0;
out:
    strbuf_free(&src);
    strbuf_free(&dst);
    return rc;
}

int queue_delete(const char *queue_dir, const char *queue, const char *qid, struct strbuf *why)
{
    struct strbuf *path = strbuf_new(128);
    int rc = -1, err;

    if (!qid_valid(qid) || !queue_scan_is_queue(queue)) {
        strbuf_printf(why, "invalid queue ID or queue name");
        errno = EINVAL;
        goto out;
    }
    queue_scan_path(path, queue_dir, queue, qid);
    if (unlink(strbuf_str(path)) < 0) {
        err = errno;
        strbuf_printf(why, "remove %s: %s", strbuf_str(path), strerror(err));
        errno = err;
        goto out;
    }
    if (queue_defer_remove(queue_dir, qid, true, why) < 0 || queue_sync(queue_dir, queue, why) < 0)
        goto out;
    rc = 0;
out:
    strbuf_free(&path);
    return rc;
}

int queue_wake_qmgr(const char *queue_dir, struct strbuf *why)
{
    if (trigger_send(queue_dir, "qmgr", "FI", 2) < 0) {
        strbuf_printf(why, "qmgr is not running or cannot be reached through %s/public/qmgr", queue_dir);
        return -1;
    }
    return 0;
}

int queue_flush_all(const char *queue_dir, struct strbuf *why)
{
    struct queue_entry *list = NULL;
    size_t n = 0;
    int touched = 0;

    if (queue_scan_list(queue_dir, "deferred", &list, &n, why) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        /* A file qmgr took meanwhile (ENOENT) needs no retry time. */
        if (queue_touch(queue_dir, "deferred", list[i].qid, why) == 0)
            touched++;
    free(list);
    strbuf_reset(why);
    if (trigger_send(queue_dir, "qmgr", "FAI", 3) < 0) {
        strbuf_printf(why, "qmgr is not running or cannot be reached through %s/public/qmgr", queue_dir);
        return -1;
    }
    return touched;
}

int queue_kick(const char *queue_dir, const char *qid, struct strbuf *why)
{
    const char *queue = queue_scan_find(queue_dir, qid);

    if (queue == NULL) {
        strbuf_printf(why, "%s: no such message in the queue", qid);
        errno = ENOENT;
        return -1;
    }
    if (strcmp(queue, "incoming") == 0 || strcmp(queue, "active") == 0
        || strcmp(queue, "maildrop") == 0)
        return 0;
    if (strcmp(queue, "deferred") != 0) {
        strbuf_printf(why, "%s: message is in the %s queue", qid, queue);
        errno = EPERM;
        return -1;
    }
    if (queue_move(queue_dir, "deferred", "incoming", qid, true, why) < 0)
        return -1;
    return 1;
}
