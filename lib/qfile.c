/*
 * qfile.c - queue file writer and commit (format and rules in qfile.h).
 *
 * Called by smtpd, pickup and qmgr (bounces) to queue a message.  The
 * writer goes through a struct stream whose errors are sticky, keeps its
 * own first error as well (order and bound violations), and checks both
 * once, at qfile_commit_prepare(): that function is the durability point,
 * and 250 is sent only after it and a covering qfile_sync_dir() return 0.
 *
 * Arguments come from smtpd, which got them from the network: they are
 * bounded and checked here again so that a reader never finds a record
 * the writer should not have written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileops.h"
#include "log.h"
#include "mem.h"
#include "qfile.h"
#include "stream.h"

#define TMP_PREFIX ".tmp."

enum writer_state { W_ENVELOPE, W_CONTENT, W_PREPARED, W_FAILED };

struct qfile_writer {
    char *queue_dir;
    char *queue;                /* "incoming", "maildrop" */
    struct strbuf *path;        /* temp path, then final path */
    char qid[QID_BUFSIZE];
    struct stream *st;
    enum writer_state state;
    struct strbuf *err;         /* first error */
    struct timeval created;
    bool have_time, have_sender, have_ret, have_envid, have_flags;
    size_t nrcpt, nattr;
    char attr_names[QFILE_ATTRS_MAX][QFILE_ATTR_NAME_MAX + 1];
    uint64_t content_len;
    struct strbuf *chunk;       /* content not yet written as an M record */
};

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* Record the first failure; later calls return -1 at once. */
static int writer_fail(struct qfile_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int writer_fail(struct qfile_writer *w, const char *fmt, ...)
{
    va_list ap;

    if (w->state != W_FAILED && w->state != W_PREPARED) {
        va_start(ap, fmt);
        strbuf_reset(w->err);
        strbuf_vappendf(w->err, fmt, ap);
        va_end(ap);
        w->state = W_FAILED;
    }
    return -1;
}

static int writer_usable(struct qfile_writer *w, bool envelope)
{
    if (w->state == W_FAILED)
        return -1;
    /* never W_FAILED after commit: qfile_writer_free() would remove the
     * queued file */
    if (w->state == W_PREPARED)
        return -1;
    if (envelope && w->state != W_ENVELOPE)
        return writer_fail(w, "envelope record after message content");
    return 0;
}

/* One record: header and the concatenation of up to two data parts. */
static int write_record(struct qfile_writer *w, int type, const void *a, size_t alen,
                        const void *b, size_t blen)
{
    unsigned char hdr[QFILE_REC_HDR];

    hdr[0] = (unsigned char)type;
    put_be32(hdr + 1, (uint32_t)(alen + blen));
    if (stream_write(w->st, hdr, sizeof(hdr)) < 0 || stream_write(w->st, a, alen) < 0
        || stream_write(w->st, b, blen) < 0)
        return writer_fail(w, "write queue file: %s", stream_strerror(w->st));
    return 0;
}

/* Text that will reach log lines: no control bytes, no DEL. */
static bool text_clean(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

struct qfile_writer *qfile_create(const char *queue_dir, struct strbuf *why)
{
    return qfile_create_in(queue_dir, "incoming", why);
}

struct qfile_writer *qfile_create_in(const char *queue_dir, const char *queue,
                                     struct strbuf *why)
{
    static unsigned counter;
    struct qfile_writer *w;
    struct stat st;
    int fd = -1;

    w = xcalloc(1, sizeof(*w));
    w->queue_dir = xstrdup(queue_dir);
    w->queue = xstrdup(queue);
    w->path = strbuf_new(256);
    w->err = strbuf_new(64);
    w->chunk = strbuf_new(QFILE_CHUNK_MAX);
    for (int tries = 0; tries < 10 && fd < 0; tries++) {
        gettimeofday(&w->created, NULL);
        strbuf_printf(w->path, "%s/%s/" TMP_PREFIX "%ld.%u.%06ld", queue_dir, queue,
                      (long)getpid(), counter++, (long)w->created.tv_usec);
        fd = fileops_open_new(strbuf_str(w->path), O_WRONLY, 0600, why);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        goto fail;
    if (fstat(fd, &st) < 0) {
        strbuf_printf(why, "fstat %s: %m", strbuf_str(w->path));
        goto fail_unlink;
    }
    if (qid_make(w->qid, &w->created, (uint64_t)st.st_ino) < 0) {
        strbuf_printf(why, "system time out of range for a queue ID");
        goto fail_unlink;
    }
    w->st = stream_fdopen(fd);
    w->state = W_ENVELOPE;
    write_record(w, QFILE_REC_VERSION, QFILE_VERSION, strlen(QFILE_VERSION), NULL, 0);
    return w;

fail_unlink:
    unlink(strbuf_str(w->path));
    close(fd);
fail:
    free(w->queue_dir);
    free(w->queue);
    strbuf_free(&w->path);
    strbuf_free(&w->err);
    strbuf_free(&w->chunk);
    free(w);
    return NULL;
}

const char *qfile_writer_qid(const struct qfile_writer *w)
{
    return w->qid;
}

const char *qfile_writer_path(const struct qfile_writer *w)
{
    return strbuf_str(w->path);
}

size_t qfile_writer_rcpt_count(const struct qfile_writer *w)
{
    return w->nrcpt;
}

uint64_t qfile_writer_content_size(const struct qfile_writer *w)
{
    return w->content_len;
}

int qfile_add_time(struct qfile_writer *w, const struct timeval *tv)
{
    unsigned char data[12];

    if (writer_usable(w, true) < 0)
        return -1;
    if (w->have_time)
        return writer_fail(w, "arrival time given twice");
    if (tv->tv_usec < 0 || tv->tv_usec >= 1000000)
        return writer_fail(w, "bad arrival time");
    put_be64(data, (uint64_t)(int64_t)tv->tv_sec);
    put_be32(data + 8, (uint32_t)tv->tv_usec);
    w->have_time = true;
    return write_record(w, QFILE_REC_TIME, data, sizeof(data), NULL, 0);
}

int qfile_add_sender(struct qfile_writer *w, const char *addr)
{
    size_t len = strlen(addr);

    if (writer_usable(w, true) < 0)
        return -1;
    if (w->have_sender)
        return writer_fail(w, "sender given twice");
    if (len > QFILE_ADDR_MAX || !text_clean(addr, len))
        return writer_fail(w, "bad sender address");
    w->have_sender = true;
    return write_record(w, QFILE_REC_SENDER, addr, len, NULL, 0);
}

int qfile_add_rcpt(struct qfile_writer *w, const char *addr, const char *orcpt, unsigned notify)
{
    size_t alen = strlen(addr), olen = orcpt == NULL ? 0 : strlen(orcpt);
    unsigned char fixed[4];

    if (writer_usable(w, true) < 0)
        return -1;
    if (w->nrcpt >= QFILE_RCPT_MAX)
        return writer_fail(w, "too many recipients");
    if (alen == 0 || alen > QFILE_ADDR_MAX || !text_clean(addr, alen))
        return writer_fail(w, "bad recipient address");
    if (olen > QFILE_ORCPT_MAX || !text_clean(orcpt == NULL ? "" : orcpt, olen))
        return writer_fail(w, "bad ORCPT");
    if (notify & ~QFILE_NOTIFY_MASK)
        return writer_fail(w, "bad NOTIFY bits");
    fixed[0] = QFILE_RCPT_OPEN;
    fixed[1] = (unsigned char)notify;
    fixed[2] = (unsigned char)(alen >> 8);
    fixed[3] = (unsigned char)alen;
    /* address and orcpt go in one record: header, fixed part, then both */
    unsigned char hdr[QFILE_REC_HDR];
    hdr[0] = QFILE_REC_RCPT;
    put_be32(hdr + 1, (uint32_t)(sizeof(fixed) + alen + olen));
    if (stream_write(w->st, hdr, sizeof(hdr)) < 0 || stream_write(w->st, fixed, sizeof(fixed)) < 0
        || stream_write(w->st, addr, alen) < 0 || stream_write(w->st, orcpt, olen) < 0)
        return writer_fail(w, "write queue file: %s", stream_strerror(w->st));
    w->nrcpt++;
    return 0;
}

int qfile_add_ret(struct qfile_writer *w, char ret)
{
    if (writer_usable(w, true) < 0)
        return -1;
    if (w->have_ret)
        return writer_fail(w, "DSN RET given twice");
    if (ret != 'F' && ret != 'H')
        return writer_fail(w, "bad DSN RET");
    w->have_ret = true;
    return write_record(w, QFILE_REC_RET, &ret, 1, NULL, 0);
}

int qfile_add_envid(struct qfile_writer *w, const char *envid)
{
    size_t len = strlen(envid);

    if (writer_usable(w, true) < 0)
        return -1;
    if (w->have_envid)
        return writer_fail(w, "ENVID given twice");
    if (len == 0 || len > QFILE_ENVID_MAX || !text_clean(envid, len))
        return writer_fail(w, "bad ENVID");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)envid[i] > 0x7e)
            return writer_fail(w, "bad ENVID");
    w->have_envid = true;
    return write_record(w, QFILE_REC_ENVID, envid, len, NULL, 0);
}

int qfile_add_flags(struct qfile_writer *w, unsigned flags)
{
    unsigned char data[4];

    if (writer_usable(w, true) < 0)
        return -1;
    if (w->have_flags)
        return writer_fail(w, "flags given twice");
    if (flags & ~QFILE_FL_MASK)
        return writer_fail(w, "bad message flags");
    put_be32(data, flags);
    w->have_flags = true;
    return write_record(w, QFILE_REC_FLAGS, data, sizeof(data), NULL, 0);
}

int qfile_add_attr(struct qfile_writer *w, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);

    if (writer_usable(w, true) < 0)
        return -1;
    if (nlen == 0 || nlen > QFILE_ATTR_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != nlen)
        return writer_fail(w, "bad attribute name");
    if (vlen > QFILE_ATTR_VALUE_MAX || !text_clean(value, vlen))
        return writer_fail(w, "bad value for attribute %s", name);
    if (w->nattr >= QFILE_ATTRS_MAX)
        return writer_fail(w, "too many attributes");
    for (size_t i = 0; i < w->nattr; i++)
        if (strcmp(w->attr_names[i], name) == 0)
            return writer_fail(w, "attribute %s given twice", name);
    memcpy(w->attr_names[w->nattr++], name, nlen + 1);
    return write_record(w, QFILE_REC_ATTR, name, nlen + 1, value, vlen);
}

/* Leave the envelope: the arrival time defaults to the creation time. */
static int enter_content(struct qfile_writer *w)
{
    if (w->state == W_ENVELOPE) {
        if (!w->have_time && qfile_add_time(w, &w->created) < 0)
            return -1;
        w->state = W_CONTENT;
    }
    return 0;
}

static int flush_chunk(struct qfile_writer *w)
{
    if (strbuf_len(w->chunk) == 0)
        return 0;
    if (write_record(w, QFILE_REC_CONTENT, strbuf_str(w->chunk), strbuf_len(w->chunk), NULL, 0) < 0)
        return -1;
    strbuf_reset(w->chunk);
    return 0;
}

int qfile_add_content(struct qfile_writer *w, const void *buf, size_t len)
{
    const char *p = buf;

    if (writer_usable(w, false) < 0 || enter_content(w) < 0)
        return -1;
    w->content_len += len;
    while (len > 0) {
        size_t room = QFILE_CHUNK_MAX - strbuf_len(w->chunk), n;
        /* whole chunks straight from the caller's buffer */
        if (strbuf_len(w->chunk) == 0 && len >= QFILE_CHUNK_MAX) {
            if (write_record(w, QFILE_REC_CONTENT, p, QFILE_CHUNK_MAX, NULL, 0) < 0)
                return -1;
            p += QFILE_CHUNK_MAX;
            len -= QFILE_CHUNK_MAX;
            continue;
        }
        n = len < room ? len : room;
        strbuf_appendn(w->chunk, p, n);
        p += n;
        len -= n;
        if (strbuf_len(w->chunk) == QFILE_CHUNK_MAX && flush_chunk(w) < 0)
            return -1;
    }
    return 0;
}

/* Close and remove the temp file after a failure; the writer stays
 * W_FAILED and only qfile_writer_free() is left to call. */
static void writer_discard(struct qfile_writer *w)
{
    if (w->st != NULL) {
        int fd = stream_fd(w->st);
        stream_release(&w->st);
        close(fd);
    }
    if (strbuf_len(w->path) > 0) {
        unlink(strbuf_str(w->path));
        strbuf_reset(w->path);
    }
}

int qfile_writer_set_queue(struct qfile_writer *w, const char *queue, struct strbuf *why)
{
    size_t n = strlen(queue);

    if (w->state == W_PREPARED) {
        strbuf_set(why, "queue file already committed");
        return -1;
    }
    if (n == 0 || n > 16 || strspn(queue, "abcdefghijklmnopqrstuvwxyz") != n) {
        strbuf_printf(why, "bad queue name \"%.32s\"", queue);
        return -1;
    }
    free(w->queue);
    w->queue = xstrdup(queue);
    return 0;
}

int qfile_commit_prepare(struct qfile_writer *w, struct strbuf *why)
{
    unsigned char end[12];
    struct strbuf *final;
    int fd, rc;

    if (w->state == W_PREPARED) {
        strbuf_set(why, "queue file already committed");
        return -1;
    }
    if (writer_usable(w, false) == 0 && enter_content(w) == 0 && flush_chunk(w) == 0) {
        if (!w->have_sender)
            writer_fail(w, "no sender");
        else if (w->nrcpt == 0)
            writer_fail(w, "no recipients");
    }
    if (w->state == W_FAILED)
        goto fail;
    put_be64(end, w->content_len);
    put_be32(end + 8, (uint32_t)w->nrcpt);
    if (write_record(w, QFILE_REC_END, end, sizeof(end), NULL, 0) < 0)
        goto fail;
    if (stream_flush(w->st) < 0) {
        writer_fail(w, "write queue file: %s", stream_strerror(w->st));
        goto fail;
    }
    /* The data, then the name: the file is whole on disk before any
     * directory can show it under its queue ID. */
    fd = stream_fd(w->st);
    if (fdatasync(fd) < 0) {
        writer_fail(w, "fdatasync queue file: %m");
        goto fail;
    }
    final = strbuf_new(256);
    qid_path(final, w->queue_dir, w->queue, w->qid, 0);
    rc = renameat2(AT_FDCWD, strbuf_str(w->path), AT_FDCWD, strbuf_str(final), RENAME_NOREPLACE);
    if (rc < 0 && errno == EINVAL) {
        /* file system without RENAME_NOREPLACE: link never replaces either */
        rc = link(strbuf_str(w->path), strbuf_str(final));
        if (rc == 0)
            unlink(strbuf_str(w->path));
    }
    if (rc < 0) {
        writer_fail(w, "rename queue file to %s: %m", strbuf_str(final));
        strbuf_free(&final);
        goto fail;
    }
    strbuf_free(&w->path);
    w->path = final;
    stream_close(&w->st);
    w->state = W_PREPARED;
    return 0;

fail:
    strbuf_set(why, strbuf_str(w->err));
    writer_discard(w);
    return -1;
}

int qfile_sync_dir(const char *queue_dir, struct strbuf *why)
{
    return qfile_sync_queue(queue_dir, "incoming", why);
}

int qfile_sync_queue(const char *queue_dir, const char *queue, struct strbuf *why)
{
    struct strbuf *dir = strbuf_new(256);
    int rc;

    strbuf_printf(dir, "%s/%s", queue_dir, queue);
    rc = fileops_fsync_dir(strbuf_str(dir), why);
    strbuf_free(&dir);
    return rc;
}

int qfile_commit(struct qfile_writer *w, struct strbuf *why)
{
    if (qfile_commit_prepare(w, why) < 0)
        return -1;
    return qfile_sync_queue(w->queue_dir, w->queue, why);
}

void qfile_writer_free(struct qfile_writer **wp)
{
    struct qfile_writer *w = *wp;

    if (w == NULL)
        return;
    if (w->state != W_PREPARED && strbuf_len(w->path) > 0)
        unlink(strbuf_str(w->path));
    if (w->st != NULL) {
        int fd = stream_fd(w->st);
        stream_release(&w->st);
        close(fd);
    }
    free(w->queue_dir);
    free(w->queue);
    strbuf_free(&w->path);
    strbuf_free(&w->err);
    strbuf_free(&w->chunk);
    free(w);
    *wp = NULL;
}

bool qfile_is_tmp_name(const char *name)
{
    return strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
}

/* The writer's pid is in its temp name (".tmp.<pid>.<n>.<usec>"): a file
 * whose writer still runs is a message still arriving, however slowly.
 * EPERM means the process exists under another user. */
static bool tmp_writer_alive(const char *name)
{
    const char *p = name + strlen(TMP_PREFIX);
    char *end;
    long pid = strtol(p, &end, 10);

    if (end == p || *end != '.' || pid <= 0 || pid > INT32_MAX)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int qfile_purge_tmp(const char *queue_dir, time_t min_age, struct strbuf *why)
{
    return qfile_purge_tmp_in(queue_dir, "incoming", min_age, why);
}

int qfile_purge_tmp_in(const char *queue_dir, const char *queue, time_t min_age,
                       struct strbuf *why)
{
    struct strbuf *dir = strbuf_new(256);
    struct dirent *de;
    struct stat st;
    time_t now = time(NULL);
    int dfd, removed = 0;
    DIR *d;

    strbuf_printf(dir, "%s/%s", queue_dir, queue);
    d = opendir(strbuf_str(dir));
    if (d == NULL) {
        strbuf_printf(why, "open directory %s: %m", strbuf_str(dir));
        strbuf_free(&dir);
        return -1;
    }
    dfd = dirfd(d);
    while ((de = readdir(d)) != NULL) {
        if (!qfile_is_tmp_name(de->d_name))
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (now - st.st_mtime < min_age || tmp_writer_alive(de->d_name))
            continue;
        if (unlinkat(dfd, de->d_name, 0) == 0) {
            log_warn("removed incomplete queue file %s/%s", strbuf_str(dir), de->d_name);
            removed++;
        }
    }
    closedir(d);
    strbuf_free(&dir);
    return removed;
}

void qfile_group_init(struct qfile_group *g, const char *queue_dir)
{
    g->queue_dir = xstrdup(queue_dir);
    g->prepared = 0;
    g->synced = 0;
}

void qfile_group_free(struct qfile_group *g)
{
    free(g->queue_dir);
    g->queue_dir = NULL;
}

int qfile_group_prepare(struct qfile_group *g, struct qfile_writer *w, uint64_t *seq_r,
                        struct strbuf *why)
{
    if (qfile_commit_prepare(w, why) < 0)
        return -1;
    *seq_r = ++g->prepared;
    return 0;
}

int qfile_group_sync(struct qfile_group *g, struct strbuf *why)
{
    /* Everything prepared before this point is covered by the sync that
     * starts now; a prepare that happens later needs another sync. */
    uint64_t covers = g->prepared;

    if (covers == g->synced)
        return 0;
    if (qfile_sync_dir(g->queue_dir, why) < 0)
        return -1;
    g->synced = covers;
    return 0;
}

bool qfile_group_done(const struct qfile_group *g, uint64_t seq)
{
    return seq != 0 && seq <= g->synced;
}
