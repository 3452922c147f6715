/*
 * maildir.c - Maildir names, info flags, layout and dot locks.
 *
 * Owns the file-name grammar (BASE[:2,FLAGS[,EXTRA]], with ",S=" and ",W="
 * size fields in BASE), unique and key-derived names, creating a Maildir,
 * directory fsync, the tmp/ janitor and the Dovecot-compatible dot lock
 * used for dovecot-uidlist and subscriptions.  Used by the other
 * maildir_*.c files, lmtpd, imapd, pop3d and facteur-maildir.
 *
 * File names come from directories other programs write into: the parser
 * treats them as untrusted bytes, bounded by MAILDIR_NAME_MAX, and never
 * reads past len.  The key hash is SHA-256 (OpenSSL), truncated to 128
 * bits: names derived from two different keys must never collide.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fileops.h"
#include "log.h"
#include "maildir.h"
#include "mem.h"

/* Letters of the standard flags, in ASCII (and bit) order. */
static const char maildir_flag_letters[] = "DFPRST";

void maildir_why(struct strbuf *why, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL)
        return;
    strbuf_reset(why);
    va_start(ap, fmt);
    (void)strbuf_vappendf(why, fmt, ap);
    va_end(ap);
}

/* Parse up to 20 decimal digits into *v; returns the digit count or -1. */
static int parse_u64(const char *s, size_t len, uint64_t *v)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (i >= 20 || n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if (i == 0)
        return -1;
    *v = n;
    return (int)i;
}

int maildir_flags_parse(const char *s, size_t len, unsigned *flags_r,
                        uint32_t *keywords_r, struct strbuf *why)
{
    unsigned flags = 0;
    uint32_t kw = 0;
    size_t i;

    if (len > 64) {
        maildir_why(why, "too many flag letters (%zu)", len);
        return -1;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        const char *p;

        if (c >= 'a' && c <= 'z') {
            kw |= 1u << (c - 'a');
        } else if (c >= 'A' && c <= 'Z') {
            /* Unknown upper-case flags are ignored, as other readers do. */
            p = strchr(maildir_flag_letters, c);
            if (p != NULL)
                flags |= 1u << (p - maildir_flag_letters);
        } else {
            maildir_why(why, "bad flag character 0x%02x", (unsigned char)c);
            return -1;
        }
    }
    *flags_r = flags;
    *keywords_r = kw;
    return 0;
}

void maildir_flags_format(struct strbuf *out, unsigned flags, uint32_t keywords)
{
    int i;

    for (i = 0; maildir_flag_letters[i] != '\0'; i++)
        if (flags & (1u << i))
            (void)strbuf_appendc(out, maildir_flag_letters[i]);
    for (i = 0; i < 26; i++)
        if (keywords & (1u << i))
            (void)strbuf_appendc(out, 'a' + i);
}

size_t maildir_name_base_len(const char *name)
{
    const char *colon = strchr(name, ':');

    return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

/* Read the ",S=" and ",W=" fields of a base name. */
static int parse_base_fields(const char *base, size_t len, struct maildir_info *info,
                             struct strbuf *why)
{
    const char *p = memchr(base, ',', len);
    const char *end = base + len;

    while (p != NULL && p < end) {
        const char *seg = p + 1;
        const char *next = memchr(seg, ',', (size_t)(end - seg));
        size_t seg_len = (size_t)((next != NULL ? next : end) - seg);
        uint64_t v = 0;

        if (seg_len >= 2 && (seg[0] == 'S' || seg[0] == 'W') && seg[1] == '=') {
            if (parse_u64(seg + 2, seg_len - 2, &v) != (int)(seg_len - 2)) {
                maildir_why(why, "malformed %c= field", seg[0]);
                return -1;
            }
            if (seg[0] == 'S') {
                info->has_size = true;
                info->size = v;
            } else {
                info->has_vsize = true;
                info->vsize = v;
            }
        }
        p = next;
    }
    return 0;
}

int maildir_name_parse(const char *name, size_t len, struct maildir_info *info,
                       struct strbuf *why)
{
    const char *colon, *flags, *comma;
    size_t i, flags_len;

    memset(info, 0, sizeof(*info));
    if (len == 0 || len > MAILDIR_NAME_MAX) {
        maildir_why(why, "file name length %zu out of range", len);
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c == 0x7f || c == '/') {
            maildir_why(why, "bad character 0x%02x in file name", c);
            return -1;
        }
    }
    colon = memchr(name, ':', len);
    info->base_len = colon != NULL ? (size_t)(colon - name) : len;
    if (info->base_len == 0) {
        maildir_why(why, "empty base name");
        return -1;
    }
    if (parse_base_fields(name, info->base_len, info, why) < 0)
        return -1;
    if (colon == NULL)
        return 0;
    if (len - info->base_len < 3 || colon[1] != '2' || colon[2] != ',') {
        maildir_why(why, "info part is not \":2,\"");
        return -1;
    }
    info->has_info = true;
    flags = colon + 3;
    comma = memchr(flags, ',', (size_t)(name + len - flags));
    flags_len = (size_t)((comma != NULL ? comma : name + len) - flags);
    if (maildir_flags_parse(flags, flags_len, &info->flags, &info->keywords, why) < 0)
        return -1;
    if (comma != NULL) {
        info->extra_off = (size_t)(comma - name);
        info->extra_len = (size_t)(name + len - comma);
    }
    return 0;
}

int maildir_name_build(struct strbuf *out, const char *base, size_t base_len,
                       unsigned flags, uint32_t keywords, const char *extra,
                       size_t extra_len, struct strbuf *why)
{
    strbuf_reset(out);
    (void)strbuf_appendn(out, base, base_len);
    (void)strbuf_append(out, ":2,");
    maildir_flags_format(out, flags, keywords);
    if (extra_len > 0)
        (void)strbuf_appendn(out, extra, extra_len);
    if (strbuf_len(out) > MAILDIR_NAME_MAX) {
        maildir_why(why, "file name would be %zu bytes long", strbuf_len(out));
        return -1;
    }
    return 0;
}

/* The host name with '/', ':' and ',' escaped as the Maildir spec says
 * ("\057", "\072"; ',' too, since readers look for ",S=" in the base). */
static const char *maildir_host(void)
{
    static char host[200];
    char raw[65];
    size_t i, o = 0;

    if (host[0] != '\0')
        return host;
    if (gethostname(raw, sizeof(raw) - 1) < 0 || raw[0] == '\0')
        strcpy(raw, "localhost");
    raw[sizeof(raw) - 1] = '\0';
    for (i = 0; raw[i] != '\0' && o + 5 < sizeof(host); i++) {
        unsigned char c = (unsigned char)raw[i];

        if (c == '/' || c == ':' || c == ',' || c == '\\' || c < 0x20 || c >= 0x7f) {
            snprintf(host + o, sizeof(host) - o, "\\%03o", c);
            o += 4;
        } else {
            host[o++] = (char)c;
        }
    }
    host[o] = '\0';
    return host;
}

void maildir_name_unique(struct strbuf *out)
{
    static unsigned long counter;
    struct timespec ts;
    uint64_t rnd = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    strbuf_printf(out, "%lld.M%06ldP%ldQ%luR%016llx.%s", (long long)ts.tv_sec,
                  ts.tv_nsec / 1000, (long)getpid(), ++counter,
                  (unsigned long long)rnd, maildir_host());
}

void maildir_name_keyed(struct strbuf *out, const char *key, time_t arrival)
{
    static const char domain[] = "facteur maildir key v1";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int i;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, domain, sizeof(domain)) != 1 ||
        EVP_DigestUpdate(ctx, key, strlen(key)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < 16)
        log_fatal("maildir: SHA-256 unavailable");
    EVP_MD_CTX_free(ctx);
    strbuf_reset(out);
    if (arrival > 0)
        strbuf_appendf(out, "%lld.", (long long)arrival);
    strbuf_appendc(out, 'K');
    for (i = 0; i < 16; i++)
        strbuf_appendf(out, "%02x", md[i]);
}

void maildir_path(struct strbuf *out, const char *dir, const char *sub,
                  const char *name)
{
    strbuf_set(out, dir);
    if (sub != NULL) {
        strbuf_appendc(out, '/');
        strbuf_append(out, sub);
    }
    if (name != NULL) {
        strbuf_appendc(out, '/');
        strbuf_append(out, name);
    }
}

int maildir_create(const char *dir, struct strbuf *why)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    struct strbuf *path = strbuf_new(256);
    size_t i;
    int ret = 0;

    if (fileops_mkdir_p(dir, 0700, why) < 0) {
        strbuf_free(&path);
        return -1;
    }
    for (i = 0; i < 3 && ret == 0; i++) {
        maildir_path(path, dir, subs[i], NULL);
        if (mkdir(strbuf_str(path), 0700) < 0 && errno != EEXIST) {
            maildir_why(why, "mkdir %s: %m", strbuf_str(path));
            ret = -1;
        }
    }
    strbuf_free(&path);
    return ret;
}

bool maildir_exists(const char *dir)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    struct strbuf *path = strbuf_new(256);
    struct stat st;
    bool ok = true;
    size_t i;

    for (i = 0; i < 3 && ok; i++) {
        maildir_path(path, dir, subs[i], NULL);
        ok = stat(strbuf_str(path), &st) == 0 && S_ISDIR(st.st_mode);
    }
    strbuf_free(&path);
    return ok;
}

int maildir_fsync_dir(const char *dir, const char *sub, struct strbuf *why)
{
    struct strbuf *path;
    int ret;

    if (sub == NULL)
        return fileops_fsync_dir(dir, why);
    path = strbuf_new(256);
    maildir_path(path, dir, sub, NULL);
    ret = fileops_fsync_dir(strbuf_str(path), why);
    strbuf_free(&path);
    return ret;
}

int maildir_clean_tmp(const char *dir, time_t now, time_t max_age,
                      struct strbuf *why)
{
    struct strbuf *path = strbuf_new(256);
    struct dirent *de;
    struct stat st;
    DIR *d;
    int removed = 0;

    maildir_path(path, dir, "tmp", NULL);
    d = opendir(strbuf_str(path));
    if (d == NULL) {
        maildir_why(why, "opendir %s: %m", strbuf_str(path));
        strbuf_free(&path);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;   /* removed meanwhile */
        if (!S_ISREG(st.st_mode) || st.st_mtime > now - max_age ||
            st.st_ctime > now - max_age)
            continue;
        /* A crash between write and link left it: it was never delivered
         * and never will be. */
        if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
            log_warn("maildir %s: removed stale tmp/%s (%lld bytes, left by an "
                     "interrupted delivery)", dir, de->d_name, (long long)st.st_size);
            removed++;
        }
    }
    closedir(d);
    /* Delivery markers outlive every retry of their message, then go. */
    maildir_path(path, dir, MAILDIR_KEYS_DIR, NULL);
    d = opendir(strbuf_str(path));
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        time_t born;
        char *end;

        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        /* "ARRIVAL.K...": markers that share one inode are aged by the
         * arrival time in their name, the others by their own mtime. */
        born = (time_t)strtoll(de->d_name, &end, 10);
        if (end == de->d_name || *end != '.')
            born = st.st_mtime;
        if (born <= now - MAILDIR_KEYS_STALE_SECS)
            (void)unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d != NULL)
        closedir(d);
    strbuf_free(&path);
    return removed;
}

/* ------------------------------------------------------------------ */
/* Dot locks, as Dovecot's file_dotlock with dotlock_use_excl = yes.   */

/* The pid in a lock file if it was written by this host, else -1. */
static pid_t dotlock_local_pid(const char *lock)
{
    char buf[256], host[256];
    char *colon, *end;
    ssize_t n;
    long pid;
    int fd = open(lock, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    colon = strchr(buf, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    if (gethostname(host, sizeof(host) - 1) < 0)
        return -1;
    host[sizeof(host) - 1] = '\0';
    if (strcmp(colon + 1, host) != 0)
        return -1;
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0' || end == buf || pid <= 0)
        return -1;
    return (pid_t)pid;
}

/* Remove the lock if it is stale; returns true if it was removed. */
static bool dotlock_break_stale(const char *path, const char *lock, int stale_secs)
{
    struct stat st, fst;
    time_t now = time(NULL);
    time_t changed;
    pid_t pid;

    if (lstat(lock, &st) < 0)
        return errno == ENOENT;
    if (st.st_mtime < now - 2) {
        pid = dotlock_local_pid(lock);
        if (pid > 0 && pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH) {
            log_warn("removing dead process %ld's lock %s", (long)pid, lock);
            return unlink(lock) == 0 || errno == ENOENT;
        }
    }
    /* mtime, not ctime: the holder refreshes a lock by touching it. */
    changed = st.st_mtime;
    /* The protected file changing means its owner is still at work. */
    if (stat(path, &fst) == 0 && fst.st_mtime > changed && fst.st_mtime <= now)
        changed = fst.st_mtime;
    if (stale_secs > 0 && now > changed + stale_secs) {
        log_warn("removing stale lock %s (unchanged for %lld s)", lock,
                 (long long)(now - changed));
        return unlink(lock) == 0 || errno == ENOENT;
    }
    return false;
}

int maildir_dotlock_take(const char *path, int timeout_ms, int stale_secs,
                         int *fd_r, struct strbuf *why)
{
    struct strbuf *lock = strbuf_new(256);
    struct timespec start, now, pause;
    char host[256], buf[300];
    int fd, len;
    long waited;

    strbuf_printf(lock, "%s.lock", path);
    if (gethostname(host, sizeof(host) - 1) < 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        fd = open(strbuf_str(lock), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            len = snprintf(buf, sizeof(buf), "%ld:%s", (long)getpid(), host);
            if (write(fd, buf, (size_t)len) != len && ftruncate(fd, 0) < 0) {
                maildir_why(why, "write %s: %m", strbuf_str(lock));
                close(fd);
                unlink(strbuf_str(lock));
                strbuf_free(&lock);
                return -1;
            }
            *fd_r = fd;
            strbuf_free(&lock);
            return 0;
        }
        if (errno != EEXIST) {
            maildir_why(why, "create %s: %m", strbuf_str(lock));
            strbuf_free(&lock);
            return -1;
        }
        if (dotlock_break_stale(path, strbuf_str(lock), stale_secs))
            continue;
        clock_gettime(CLOCK_MONOTONIC, &now);
        waited = (now.tv_sec - start.tv_sec) * 1000 +
                 (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited >= timeout_ms) {
            maildir_why(why, "timed out waiting for lock %s", strbuf_str(lock));
            strbuf_free(&lock);
            errno = EAGAIN;
            return -1;
        }
        /* 5..15 ms, randomised so waiters do not move in step. */
        pause.tv_sec = 0;
        pause.tv_nsec = (5 + (long)(now.tv_nsec % 11)) * 1000000L;
        nanosleep(&pause, NULL);
    }
}

void maildir_dotlock_release(const char *path, int fd)
{
    struct strbuf *lock = strbuf_new(256);

    strbuf_printf(lock, "%s.lock", path);
    if (unlink(strbuf_str(lock)) < 0 && errno != ENOENT)
        log_warn("unlink %s: %m", strbuf_str(lock));
    if (fd >= 0)
        close(fd);
    strbuf_free(&lock);
}

int maildir_dotlock_replace(const char *path, int fd, struct strbuf *why)
{
    struct strbuf *lock = strbuf_new(256);
    int ret = 0;

    strbuf_printf(lock, "%s.lock", path);
    if (fsync(fd) < 0) {
        maildir_why(why, "fsync %s: %m", strbuf_str(lock));
        ret = -1;
    } else if (rename(strbuf_str(lock), path) < 0) {
        maildir_why(why, "rename %s to %s: %m", strbuf_str(lock), path);
        ret = -1;
    }
    if (ret < 0)
        unlink(strbuf_str(lock));
    close(fd);
    strbuf_free(&lock);
    return ret;
}
