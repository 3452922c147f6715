/*
 * qid.c - make, check and place queue IDs (format in qid.h).
 *
 * Called by qfile (naming a new queue file), qmgr and the queue commands
 * (scanning directories, taking IDs from the command line).  IDs from
 * directory listings and users are untrusted: everything that decodes one
 * validates it first.
 */
#include <string.h>

#include "log.h"
#include "qid.h"

static const char alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int digit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

/* Write v in base 62 over exactly width digits; -1 if it does not fit. */
static int put_fixed(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = alphabet[v % 62];
        v /= 62;
    }
    return v == 0 ? 0 : -1;
}

int qid_make(char buf[QID_BUFSIZE], const struct timeval *tv, uint64_t ino)
{
    char tmp[16];
    int n = 0;

    if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)
        return -1;
    if (put_fixed(buf, (uint64_t)tv->tv_sec, QID_SEC_DIGITS) < 0)
        return -1;
    put_fixed(buf + QID_SEC_DIGITS, (uint64_t)tv->tv_usec, QID_USEC_DIGITS);
    do {
        tmp[n++] = alphabet[ino % 62];
        ino /= 62;
    } while (ino != 0);
    for (int i = 0; i < n; i++)
        buf[QID_SEC_DIGITS + QID_USEC_DIGITS + i] = tmp[n - 1 - i];
    buf[QID_SEC_DIGITS + QID_USEC_DIGITS + n] = 0;
    return 0;
}

/* Decode len digits at s; -1 on a character outside the alphabet. */
static int get_digits(const char *s, size_t len, uint64_t *v_r)
{
    uint64_t v = 0;

    for (size_t i = 0; i < len; i++) {
        int d = digit_value((unsigned char)s[i]);
        if (d < 0)
            return -1;
        /* 11 digits of base 62 exceed 2^64; refuse what would wrap */
        if (v > (UINT64_MAX - (uint64_t)d) / 62)
            return -1;
        v = v * 62 + (uint64_t)d;
    }
    *v_r = v;
    return 0;
}

static int decoden(const char *s, size_t len, struct timeval *tv_r, uint64_t *ino_r)
{
    uint64_t sec, usec, ino;
    const char *ip = s + QID_SEC_DIGITS + QID_USEC_DIGITS;
    size_t ilen;

    if (len < QID_LEN_MIN || len > QID_LEN_MAX)
        return -1;
    ilen = len - QID_SEC_DIGITS - QID_USEC_DIGITS;
    if (get_digits(s, QID_SEC_DIGITS, &sec) < 0
        || get_digits(s + QID_SEC_DIGITS, QID_USEC_DIGITS, &usec) < 0
        || get_digits(ip, ilen, &ino) < 0)
        return -1;
    /* one spelling per ID: no leading zero in the inode part */
    if (usec >= 1000000 || (ilen > 1 && ip[0] == '0'))
        return -1;
    if (tv_r != NULL) {
        tv_r->tv_sec = (time_t)sec;
        tv_r->tv_usec = (suseconds_t)usec;
    }
    if (ino_r != NULL)
        *ino_r = ino;
    return 0;
}

bool qid_validn(const char *s, size_t len)
{
    return decoden(s, len, NULL, NULL) == 0;
}

bool qid_valid(const char *s)
{
    size_t len = strnlen(s, QID_LEN_MAX + 1);

    return qid_validn(s, len);
}

int qid_decode(const char *qid, struct timeval *tv_r, uint64_t *ino_r)
{
    return decoden(qid, strnlen(qid, QID_LEN_MAX + 1), tv_r, ino_r);
}

char qid_hash_char(const char *qid, int level)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)qid; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return "0123456789ABCDEF"[(h >> (4 * (level - 1))) & 0xf];
}

void qid_path(struct strbuf *out, const char *queue_dir, const char *queue,
              const char *qid, int depth)
{
    if (!qid_valid(qid))
        log_panic("qid_path: invalid queue ID");
    if (depth < 0)
        depth = 0;
    if (depth > QID_HASH_DEPTH_MAX)
        depth = QID_HASH_DEPTH_MAX;
    strbuf_printf(out, "%s/%s/", queue_dir, queue);
    for (int level = 1; level <= depth; level++) {
        strbuf_appendc(out, qid_hash_char(qid, level));
        strbuf_appendc(out, '/');
    }
    strbuf_append(out, qid);
}

int qid_from_path(const char *path, char buf[QID_BUFSIZE])
{
    const char *base = strrchr(path, '/');
    size_t len;

    base = base == NULL ? path : base + 1;
    len = strlen(base);
    if (!qid_validn(base, len))
        return -1;
    memcpy(buf, base, len + 1);
    return 0;
}
