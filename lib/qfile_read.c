/*
 * qfile_read.c - open, validate and read queue files; mark recipients done.
 *
 * Called by qmgr (scheduling, delivery bookkeeping), the delivery agents
 * (content), facteur-cat and facteur-queue (listing).  A queue file is
 * trusted no more than a peer: it may be truncated by a crash, damaged on
 * disk, or written by someone else.  qfile_open() checks every record
 * against the format in qfile.h before anyone uses the envelope; message
 * content is only walked (record headers), never loaded, so listing a
 * large queue stays cheap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"
#include "qfile.h"

#define RD_BUF_SIZE 65536   /* larger than any envelope record */

struct qfile {
    int fd;
    int flags;
    char qid[QID_BUFSIZE];
    off_t size;
    struct qfile_env env;
    /* read-ahead buffer for validation */
    unsigned char *buf;
    off_t buf_off;
    size_t buf_len;
    /* sequential content reading */
    off_t rd_off;           /* file offset of the next byte or header */
    size_t chunk_left;      /* data bytes left in the current M record */
    uint64_t content_done;  /* content bytes returned so far */
};

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* pread all of len bytes; -1 with errno, or the short count at EOF. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Make file bytes [off, off+n) available (n <= RD_BUF_SIZE, inside the
 * size checked by the caller), reading up to `ahead` bytes at once.
 * Returns a pointer into the buffer, or NULL with why. */
static const unsigned char *rd_get(struct qfile *qf, off_t off, size_t n, size_t ahead,
                                   struct strbuf *why)
{
    size_t want;
    ssize_t got;

    if (off >= qf->buf_off && (uint64_t)(off - qf->buf_off) + n <= qf->buf_len)
        return qf->buf + (off - qf->buf_off);
    want = ahead > n ? ahead : n;
    if (want > RD_BUF_SIZE)
        want = RD_BUF_SIZE;
    if ((off_t)want > qf->size - off)
        want = (size_t)(qf->size - off);
    got = pread_full(qf->fd, qf->buf, want, off);
    if (got < 0 || (size_t)got < n) {
        if (got < 0)
            strbuf_printf(why, "read queue file: %m");
        else
            strbuf_set(why, "queue file shrank while being read");
        qf->buf_len = 0;
        return NULL;
    }
    qf->buf_off = off;
    qf->buf_len = (size_t)got;
    return qf->buf;
}

/* Bytes that may reach log lines: none below 0x20, no DEL. */
static bool text_clean(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void env_free(struct qfile_env *env)
{
    free((char *)env->sender);
    free((char *)env->envid);
    for (size_t i = 0; i < env->nrcpt; i++) {
        free((char *)env->rcpts[i].addr);
        free((char *)env->rcpts[i].orcpt);
    }
    free(env->rcpts);
    for (size_t i = 0; i < env->nattr; i++) {
        free((char *)env->attrs[i].name);
        free((char *)env->attrs[i].value);
    }
    free(env->attrs);
    memset(env, 0, sizeof(*env));
}

/* Validation state across records. */
struct check {
    int phase;              /* 0: want V, 1: envelope, 2: content, 3: ended */
    bool have_time, have_sender, have_ret, have_envid, have_flags;
    size_t rcpt_alloc;
};

#define CORRUPT(...) do { strbuf_printf(why, __VA_ARGS__); return -1; } while (0)

static int parse_rcpt(struct qfile *qf, struct check *ck, off_t off, const unsigned char *d,
                      uint32_t len, struct strbuf *why)
{
    struct qfile_rcpt *r;
    size_t alen, olen;

    if (len < 5)
        CORRUPT("recipient record too short at offset %lld", (long long)off);
    if (d[0] != QFILE_RCPT_OPEN && d[0] != QFILE_RCPT_SENT && d[0] != QFILE_RCPT_BOUNCED
        && d[0] != QFILE_RCPT_DROPPED)
        CORRUPT("bad recipient status at offset %lld", (long long)off);
    if (d[1] & ~QFILE_NOTIFY_MASK)
        CORRUPT("bad NOTIFY bits at offset %lld", (long long)off);
    alen = (size_t)d[2] << 8 | d[3];
    if (alen == 0 || alen > QFILE_ADDR_MAX || 4 + alen > len)
        CORRUPT("bad recipient address length at offset %lld", (long long)off);
    olen = len - 4 - alen;
    if (olen > QFILE_ORCPT_MAX)
        CORRUPT("ORCPT too long at offset %lld", (long long)off);
    if (!text_clean(d + 4, alen + olen))
        CORRUPT("control character in recipient at offset %lld", (long long)off);
    if (qf->env.nrcpt >= QFILE_RCPT_MAX)
        CORRUPT("too many recipients");
    if (qf->env.nrcpt == ck->rcpt_alloc) {
        ck->rcpt_alloc = ck->rcpt_alloc ? ck->rcpt_alloc * 2 : 8;
        qf->env.rcpts = xreallocarray(qf->env.rcpts, ck->rcpt_alloc, sizeof(*qf->env.rcpts));
    }
    r = &qf->env.rcpts[qf->env.nrcpt++];
    r->addr = xstrndup((const char *)d + 4, alen);
    r->orcpt = xstrndup((const char *)d + 4 + alen, olen);
    r->notify = d[1];
    r->status = d[0];
    r->status_off = off + QFILE_REC_HDR;
    return 0;
}

static int parse_attr(struct qfile *qf, off_t off, const unsigned char *d, uint32_t len,
                      struct strbuf *why)
{
    const unsigned char *nul = memchr(d, 0, len);
    size_t nlen, vlen;

    if (nul == NULL)
        CORRUPT("attribute without name terminator at offset %lld", (long long)off);
    nlen = (size_t)(nul - d);
    vlen = len - nlen - 1;
    if (nlen == 0 || nlen > QFILE_ATTR_NAME_MAX)
        CORRUPT("bad attribute name length at offset %lld", (long long)off);
    for (size_t i = 0; i < nlen; i++)
        if (!((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= '0' && d[i] <= '9') || d[i] == '_'))
            CORRUPT("bad attribute name at offset %lld", (long long)off);
    if (vlen > QFILE_ATTR_VALUE_MAX || !text_clean(nul + 1, vlen))
        CORRUPT("bad attribute value at offset %lld", (long long)off);
    if (qf->env.nattr >= QFILE_ATTRS_MAX)
        CORRUPT("too many attributes");
    for (size_t i = 0; i < qf->env.nattr; i++)
        if (strlen(qf->env.attrs[i].name) == nlen && memcmp(qf->env.attrs[i].name, d, nlen) == 0)
            CORRUPT("duplicate attribute at offset %lld", (long long)off);
    if (qf->env.nattr == 0)
        qf->env.attrs = xcalloc(QFILE_ATTRS_MAX, sizeof(*qf->env.attrs));
    qf->env.attrs[qf->env.nattr].name = xstrndup((const char *)d, nlen);
    qf->env.attrs[qf->env.nattr].value = xstrndup((const char *)nul + 1, vlen);
    qf->env.nattr++;
    return 0;
}

/* One envelope record (type already known to be an envelope type). */
static int parse_envelope(struct qfile *qf, struct check *ck, int type, off_t off,
                          const unsigned char *d, uint32_t len, struct strbuf *why)
{
    switch (type) {
    case QFILE_REC_TIME: {
        uint64_t sec;
        uint32_t usec;
        if (ck->have_time || len != 12)
            CORRUPT("bad or repeated arrival time record");
        sec = get_be64(d);
        usec = get_be32(d + 8);
        if ((int64_t)sec < 0 || usec >= 1000000)
            CORRUPT("arrival time out of range");
        qf->env.arrival.tv_sec = (time_t)sec;
        qf->env.arrival.tv_usec = (suseconds_t)usec;
        ck->have_time = true;
        return 0;
    }
    case QFILE_REC_SENDER:
        if (ck->have_sender || len > QFILE_ADDR_MAX || !text_clean(d, len))
            CORRUPT("bad or repeated sender record");
        qf->env.sender = xstrndup((const char *)d, len);
        ck->have_sender = true;
        return 0;
    case QFILE_REC_RCPT:
        return parse_rcpt(qf, ck, off, d, len, why);
    case QFILE_REC_RET:
        if (ck->have_ret || len != 1 || (d[0] != 'F' && d[0] != 'H'))
            CORRUPT("bad or repeated DSN RET record");
        qf->env.ret = (char)d[0];
        ck->have_ret = true;
        return 0;
    case QFILE_REC_ENVID:
        if (ck->have_envid || len == 0 || len > QFILE_ENVID_MAX || !text_clean(d, len))
            CORRUPT("bad or repeated ENVID record");
        for (uint32_t i = 0; i < len; i++)
            if (d[i] > 0x7e)
                CORRUPT("non-ASCII ENVID");
        qf->env.envid = xstrndup((const char *)d, len);
        ck->have_envid = true;
        return 0;
    case QFILE_REC_FLAGS:
        if (ck->have_flags || len != 4 || (get_be32(d) & ~(uint32_t)QFILE_FL_MASK))
            CORRUPT("bad or repeated flags record");
        qf->env.flags = get_be32(d);
        ck->have_flags = true;
        return 0;
    case QFILE_REC_ATTR:
        return parse_attr(qf, off, d, len, why);
    }
    CORRUPT("unknown record type");
}

static bool is_envelope_type(int type)
{
    return type == QFILE_REC_TIME || type == QFILE_REC_SENDER || type == QFILE_REC_RCPT
        || type == QFILE_REC_RET || type == QFILE_REC_ENVID || type == QFILE_REC_FLAGS
        || type == QFILE_REC_ATTR;
}

/* Walk and check every record; fills qf->env.  Returns 0, -1 corrupt,
 * -2 I/O error (why says which). */
static int qfile_validate(struct qfile *qf, struct strbuf *why)
{
    struct check ck = {0};
    off_t off = 0;

    while (off < qf->size && ck.phase != 3) {
        const unsigned char *h, *d = NULL;
        int type;
        uint32_t len;

        if (qf->size - off < QFILE_REC_HDR)
            CORRUPT("truncated record header at offset %lld", (long long)off);
        h = rd_get(qf, off, QFILE_REC_HDR, ck.phase == 2 ? QFILE_REC_HDR : RD_BUF_SIZE, why);
        if (h == NULL)
            return -2;
        type = h[0];
        len = get_be32(h + 1);
        if ((uint64_t)len > (uint64_t)(qf->size - off - QFILE_REC_HDR))
            CORRUPT("record at offset %lld extends past the end of the file", (long long)off);
        if (ck.phase == 0 && type != QFILE_REC_VERSION)
            CORRUPT("not a queue file (no version record)");
        if (is_envelope_type(type)) {
            if (ck.phase != 1)
                CORRUPT("envelope record '%c' after message content", type);
            /* the largest envelope record: a recipient with both maxima */
            if (len > 4 + QFILE_ADDR_MAX + QFILE_ORCPT_MAX)
                CORRUPT("over-long record '%c' at offset %lld", type, (long long)off);
            d = rd_get(qf, off + QFILE_REC_HDR, len, RD_BUF_SIZE, why);
            if (d == NULL)
                return -2;
            if (parse_envelope(qf, &ck, type, off, d, len, why) < 0)
                return -1;
        } else if (type == QFILE_REC_VERSION) {
            if (ck.phase != 0 || len != strlen(QFILE_VERSION))
                CORRUPT("bad or repeated version record");
            d = rd_get(qf, off + QFILE_REC_HDR, len, RD_BUF_SIZE, why);
            if (d == NULL)
                return -2;
            if (memcmp(d, QFILE_VERSION, len) != 0)
                CORRUPT("unsupported queue file version");
            ck.phase = 1;
        } else if (type == QFILE_REC_CONTENT) {
            if (len == 0 || len > QFILE_CHUNK_MAX)
                CORRUPT("bad content record length at offset %lld", (long long)off);
            if (ck.phase == 1)
                qf->env.content_off = off;
            ck.phase = 2;
            qf->env.content_size += len;
        } else if (type == QFILE_REC_END) {
            if (len != 12)
                CORRUPT("bad end record length");
            d = rd_get(qf, off + QFILE_REC_HDR, len, QFILE_REC_HDR + 12, why);
            if (d == NULL)
                return -2;
            if (ck.phase == 1)
                qf->env.content_off = off;
            if (get_be64(d) != qf->env.content_size)
                CORRUPT("content length does not match the end record");
            if (get_be32(d + 8) != qf->env.nrcpt)
                CORRUPT("recipient count does not match the end record");
            if (off + QFILE_REC_HDR + (off_t)len != qf->size)
                CORRUPT("data after the end record");
            ck.phase = 3;
        } else {
            CORRUPT("unknown record type 0x%02x at offset %lld", type, (long long)off);
        }
        off += QFILE_REC_HDR + (off_t)len;
    }
    if (ck.phase != 3)
        CORRUPT("incomplete queue file (no end record)");
    if (!ck.have_time)
        CORRUPT("no arrival time record");
    if (!ck.have_sender)
        CORRUPT("no sender record");
    if (qf->env.nrcpt == 0)
        CORRUPT("no recipient record");
    return 0;
}

struct qfile *qfile_open_fd(int fd, int flags, bool *corrupt_r, struct strbuf *why)
{
    struct qfile *qf;
    struct stat st;
    int rc;

    if (corrupt_r != NULL)
        *corrupt_r = false;
    if (fstat(fd, &st) < 0) {
        strbuf_printf(why, "fstat queue file: %m");
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        strbuf_set(why, "queue file is not a regular file");
        close(fd);
        if (corrupt_r != NULL)
            *corrupt_r = true;
        return NULL;
    }
    qf = xcalloc(1, sizeof(*qf));
    qf->fd = fd;
    qf->flags = flags;
    qf->size = st.st_size;
    qf->buf = xmalloc(RD_BUF_SIZE);
    rc = qfile_validate(qf, why);
    if (rc < 0) {
        if (corrupt_r != NULL)
            *corrupt_r = rc == -1;
        qfile_close(&qf);
        return NULL;
    }
    qfile_content_rewind(qf);
    return qf;
}

struct qfile *qfile_open(const char *path, int flags, bool *corrupt_r, struct strbuf *why)
{
    struct qfile *qf;
    char qid[QID_BUFSIZE];
    int fd;

    if (corrupt_r != NULL)
        *corrupt_r = false;
    fd = open(path, ((flags & QFILE_OPEN_RDWR) ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        strbuf_printf(why, "open %s: %m", path);
        return NULL;
    }
    qf = qfile_open_fd(fd, flags, corrupt_r, why);
    if (qf != NULL && qid_from_path(path, qid) == 0)
        memcpy(qf->qid, qid, sizeof(qid));
    return qf;
}

void qfile_close(struct qfile **qfp)
{
    struct qfile *qf = *qfp;

    if (qf == NULL)
        return;
    close(qf->fd);
    env_free(&qf->env);
    free(qf->buf);
    free(qf);
    *qfp = NULL;
}

const struct qfile_env *qfile_env(const struct qfile *qf)
{
    return &qf->env;
}

const char *qfile_qid(const struct qfile *qf)
{
    return qf->qid;
}

const char *qfile_attr(const struct qfile *qf, const char *name)
{
    for (size_t i = 0; i < qf->env.nattr; i++)
        if (strcmp(qf->env.attrs[i].name, name) == 0)
            return qf->env.attrs[i].value;
    return NULL;
}

bool qfile_all_done(const struct qfile *qf)
{
    for (size_t i = 0; i < qf->env.nrcpt; i++)
        if (qf->env.rcpts[i].status == QFILE_RCPT_OPEN)
            return false;
    return true;
}

void qfile_content_rewind(struct qfile *qf)
{
    qf->rd_off = qf->env.content_off;
    qf->chunk_left = 0;
    qf->content_done = 0;
}

ssize_t qfile_content_read(struct qfile *qf, void *buf, size_t len, struct strbuf *why)
{
    ssize_t got;
    size_t n;

    if (len == 0)
        return 0;
    while (qf->chunk_left == 0) {
        unsigned char h[QFILE_REC_HDR];
        uint32_t clen;
        if (qf->content_done == qf->env.content_size)
            return 0;
        got = pread_full(qf->fd, h, sizeof(h), qf->rd_off);
        if (got < 0) {
            strbuf_printf(why, "read queue file: %m");
            return -1;
        }
        clen = get_be32(h + 1);
        /* validated at open: anything else means the file changed */
        if (got != (ssize_t)sizeof(h) || h[0] != QFILE_REC_CONTENT || clen == 0
            || clen > QFILE_CHUNK_MAX || clen > qf->env.content_size - qf->content_done) {
            strbuf_set(why, "queue file changed while being read");
            return -1;
        }
        qf->chunk_left = clen;
        qf->rd_off += QFILE_REC_HDR;
    }
    n = len < qf->chunk_left ? len : qf->chunk_left;
    got = pread_full(qf->fd, buf, n, qf->rd_off);
    if (got < 0) {
        strbuf_printf(why, "read queue file: %m");
        return -1;
    }
    if ((size_t)got != n) {
        strbuf_set(why, "queue file changed while being read");
        return -1;
    }
    qf->rd_off += (off_t)n;
    qf->chunk_left -= n;
    qf->content_done += n;
    return (ssize_t)n;
}

int qfile_rcpt_set(struct qfile *qf, size_t i, int status, struct strbuf *why)
{
    unsigned char b = (unsigned char)status;
    ssize_t n;

    if (!(qf->flags & QFILE_OPEN_RDWR)) {
        strbuf_set(why, "queue file not open for update");
        return -1;
    }
    if (i >= qf->env.nrcpt) {
        strbuf_printf(why, "no recipient #%zu", i);
        return -1;
    }
    if (status != QFILE_RCPT_OPEN && status != QFILE_RCPT_SENT && status != QFILE_RCPT_BOUNCED
        && status != QFILE_RCPT_DROPPED) {
        strbuf_printf(why, "bad recipient status %d", status);
        return -1;
    }
    do
        n = pwrite(qf->fd, &b, 1, qf->env.rcpts[i].status_off);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        strbuf_printf(why, "update queue file: %m");
        return -1;
    }
    qf->env.rcpts[i].status = status;
    return 0;
}

int qfile_sync(struct qfile *qf, struct strbuf *why)
{
    if (fdatasync(qf->fd) < 0) {
        strbuf_printf(why, "fdatasync queue file: %m");
        return -1;
    }
    return 0;
}

int qfile_rcpt_mark(struct qfile *qf, size_t i, int status, struct strbuf *why)
{
    if (qfile_rcpt_set(qf, i, status, why) < 0)
        return -1;
    return qfile_sync(qf, why);
}

int qfile_walk(int fd, qfile_record_fn *fn, void *ctx, struct strbuf *why)
{
    unsigned char *buf;
    struct stat st;
    off_t off = 0;
    int rc = 0;

    if (fstat(fd, &st) < 0) {
        strbuf_printf(why, "fstat queue file: %m");
        return -1;
    }
    buf = xmalloc(QFILE_CHUNK_MAX);
    for (;;) {
        unsigned char h[QFILE_REC_HDR];
        ssize_t got = pread_full(fd, h, sizeof(h), off);
        uint32_t len;
        const unsigned char *data = NULL;

        if (got == 0)
            break;
        if (got < 0 || got != (ssize_t)sizeof(h)) {
            if (got < 0)
                strbuf_printf(why, "read queue file: %m");
            else
                strbuf_printf(why, "truncated record header at offset %lld", (long long)off);
            rc = -1;
            break;
        }
        len = get_be32(h + 1);
        if ((uint64_t)len > (uint64_t)(st.st_size - off - QFILE_REC_HDR)) {
            strbuf_printf(why, "record at offset %lld cut short", (long long)off);
            rc = -1;
            break;
        }
        if (len <= QFILE_CHUNK_MAX) {
            got = pread_full(fd, buf, len, off + QFILE_REC_HDR);
            if (got < 0 || (size_t)got != len) {
                if (got < 0)
                    strbuf_printf(why, "read queue file: %m");
                else
                    strbuf_printf(why, "record at offset %lld cut short", (long long)off);
                rc = -1;
                break;
            }
            data = buf;
        }
        rc = fn(h[0], off, data, len, ctx);
        if (rc != 0)
            break;
        off += QFILE_REC_HDR + (off_t)len;
    }
    free(buf);
    return rc;
}
