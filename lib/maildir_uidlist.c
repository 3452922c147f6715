/*
 * maildir_uidlist.c - the dovecot-uidlist file: read, lock, sync, write.
 *
 * Owns the UID <-> base name map of one Maildir, kept in Dovecot's own
 * file so that Dovecot and facteur can serve the same mailbox.  Used by
 * imapd and pop3d (UIDs, UIDVALIDITY) and facteur-maildir.
 *
 * The file is written by other programs and may be truncated or damaged:
 * the parser is bounded (line length, record count, file size), accepts
 * only strictly increasing UIDs, and a broken file is replaced by a new
 * list with a larger UIDVALIDITY (clients then resynchronise), never
 * partly believed.  Dovecot appends lines in place; facteur always
 * rewrites the whole file through dovecot-uidlist.tmp and rename(), under
 * dovecot-uidlist.lock, so a crash at any point leaves a complete list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir_uidlist.h"
#include "mem.h"

struct maildir_uidlist {
    char *dir;
    char *path;                 /* dir/dovecot-uidlist */
    uint32_t uidvalidity;
    uint32_t next_uid;
    uint32_t old_uidvalidity;   /* from a broken or replaced list */
    char guid[33];
    char *hdr_ext;              /* unknown header fields, kept as they are */
    struct maildir_uidlist_rec *recs;   /* UID order */
    size_t n, cap;
    size_t *hash;               /* index + 1 into recs, 0 = free slot */
    size_t hash_size;
    bool exists, broken;
    int lock_fd;                /* -1: not locked */
    bool have_st;
    struct stat st;             /* of the file last read */
};

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void hash_rebuild(struct maildir_uidlist *ul)
{
    size_t i, size = 16;

    while (size < ul->n * 2 + 1)
        size *= 2;
    free(ul->hash);
    ul->hash = xcalloc(size, sizeof(size_t));
    ul->hash_size = size;
    for (i = 0; i < ul->n; i++) {
        const char *name = ul->recs[i].name;
        size_t slot = name_hash(name, strlen(name)) & (size - 1);

        while (ul->hash[slot] != 0)
            slot = (slot + 1) & (size - 1);
        ul->hash[slot] = i + 1;
    }
}

static void recs_clear(struct maildir_uidlist *ul)
{
    size_t i;

    for (i = 0; i < ul->n; i++) {
        free(ul->recs[i].name);
        free(ul->recs[i].ext);
    }
    ul->n = 0;
    free(ul->hash);
    ul->hash = NULL;
    ul->hash_size = 0;
}

static void rec_add(struct maildir_uidlist *ul, uint32_t uid, const char *name,
                    size_t name_len, const char *ext, size_t ext_len)
{
    struct maildir_uidlist_rec *r;

    if (ul->n == ul->cap) {
        ul->cap = ul->cap == 0 ? 64 : ul->cap * 2;
        ul->recs = xreallocarray(ul->recs, ul->cap, sizeof(*ul->recs));
    }
    r = &ul->recs[ul->n++];
    r->uid = uid;
    r->name = xstrndup(name, name_len);
    r->ext = ext_len > 0 ? xstrndup(ext, ext_len) : NULL;
}

struct maildir_uidlist *maildir_uidlist_new(const char *dir)
{
    struct maildir_uidlist *ul = xcalloc(1, sizeof(*ul));

    ul->dir = xstrdup(dir);
    ul->path = xasprintf("%s/%s", dir, MAILDIR_UIDLIST_NAME);
    ul->next_uid = 1;
    ul->lock_fd = -1;
    return ul;
}

void maildir_uidlist_free(struct maildir_uidlist **ulp)
{
    struct maildir_uidlist *ul = *ulp;

    if (ul == NULL)
        return;
    if (ul->lock_fd >= 0)
        maildir_uidlist_unlock(ul);
    recs_clear(ul);
    free(ul->recs);
    free(ul->hdr_ext);
    free(ul->dir);
    free(ul->path);
    free(ul);
    *ulp = NULL;
}

/* Parse "digits" (1..10) as a uint32 in [1, UINT32_MAX - 1]; -1 if not. */
static int parse_u32(const char *s, size_t len, uint32_t *v)
{
    uint64_t n = 0;
    size_t i;

    if (len == 0 || len > 10)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (n == 0 || n >= UINT32_MAX)
        return -1;
    *v = (uint32_t)n;
    return 0;
}

static bool is_hex32(const char *s, size_t len)
{
    size_t i;

    if (len != 32)
        return false;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

/* The header line (without '\n').  Returns the version (1 or 3) or -1. */
static int parse_header(struct maildir_uidlist *ul, const char *p, size_t len,
                        struct strbuf *why)
{
    const char *end = p + len, *fe = p;
    struct strbuf *ext;

    if (len < 2 || p[1] != ' ' || (p[0] != '1' && p[0] != '3')) {
        maildir_why(why, "unsupported or corrupt header");
        return -1;
    }
    if (p[0] == '1') {
        /* "1 <uidvalidity> <nextuid>" (Courier's courierimapuiddb). */
        const char *a = p + 2, *sp = memchr(a, ' ', (size_t)(end - a));

        if (sp == NULL || parse_u32(a, (size_t)(sp - a), &ul->uidvalidity) < 0 ||
            parse_u32(sp + 1, (size_t)(end - sp - 1), &ul->next_uid) < 0) {
            maildir_why(why, "corrupt version 1 header");
            return -1;
        }
        return 1;
    }
    ext = strbuf_new(64);
    p += 2;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t vlen;

        fe = sp != NULL ? sp : end;
        vlen = (size_t)(fe - p) - 1;
        if (fe == p) {
            p++;
            continue;
        }
        switch (p[0]) {
        case 'V':
            if (parse_u32(p + 1, vlen, &ul->uidvalidity) < 0)
                goto bad;
            break;
        case 'N':
            if (parse_u32(p + 1, vlen, &ul->next_uid) < 0)
                goto bad;
            break;
        case 'G':
            if (!is_hex32(p + 1, vlen))
                goto bad;
            memcpy(ul->guid, p + 1, 32);
            ul->guid[32] = '\0';
            break;
        default:
            if (strbuf_len(ext) > 0)
                strbuf_appendc(ext, ' ');
            strbuf_appendn(ext, p, (size_t)(fe - p));
            break;
        }
        p = fe;
    }
    if (ul->uidvalidity == 0 || ul->next_uid == 0) {
        maildir_why(why, "header lacks V or N");
        strbuf_free(&ext);
        return -1;
    }
    free(ul->hdr_ext);
    ul->hdr_ext = strbuf_len(ext) > 0 ? strbuf_steal(&ext) : NULL;
    strbuf_free(&ext);
    return 3;
bad:
    maildir_why(why, "bad header field \"%.*s\"", (int)(fe - p), p);
    strbuf_free(&ext);
    return -1;
}

/* One record line (without '\n').  *prev is the last UID read. */
static int parse_record(struct maildir_uidlist *ul, int version, const char *p,
                        size_t len, uint32_t *prev, size_t *dups, struct strbuf *why)
{
    const char *end = p + len, *sp, *name, *ext = NULL;
    size_t ext_len = 0, name_len, i;
    uint32_t uid;

    sp = memchr(p, ' ', len);
    if (sp == NULL || parse_u32(p, (size_t)(sp - p), &uid) < 0) {
        maildir_why(why, "bad UID");
        return -1;
    }
    if (uid <= *prev) {
        maildir_why(why, "UIDs not in order (%u after %u)", uid, *prev);
        return -1;
    }
    *prev = uid;
    p = sp + 1;
    if (version == 3) {
        /* Extension fields "<KEY><value>" until the ':' of the name. */
        const char *colon = memchr(p, ':', (size_t)(end - p));

        if (colon == NULL) {
            maildir_why(why, "record without \":name\"");
            return -1;
        }
        for (sp = p; sp < colon;) {
            const char *fe = memchr(sp, ' ', (size_t)(colon - sp));

            if (fe == NULL)
                fe = colon;
            if (fe > sp && (sp[0] < 'A' || sp[0] > 'Z')) {
                maildir_why(why, "bad extension field");
                return -1;
            }
            sp = fe + 1;
        }
        ext = p;
        ext_len = (size_t)(colon - p);
        while (ext_len > 0 && ext[ext_len - 1] == ' ')
            ext_len--;
        while (ext_len > 0 && ext[0] == ' ') {
            ext++;
            ext_len--;
        }
        name = colon + 1;
    } else {
        name = p;
    }
    name_len = (size_t)(end - name);
    for (i = 0; i < name_len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == ':')
            break;      /* a last known ":2,..." suffix: not part of the base */
        if (c < 0x20 || c == 0x7f || c == '/') {
            maildir_why(why, "bad character in file name");
            return -1;
        }
    }
    name_len = i;
    if (name_len == 0 || name_len > MAILDIR_NAME_MAX) {
        maildir_why(why, "bad file name length");
        return -1;
    }
    if (maildir_uidlist_lookup_name(ul, name, name_len) != NULL) {
        /* The same file twice: the later UID wins, as in Dovecot.  Many
         * of them make the list broken rather than slow to read. */
        size_t j;

        if (++*dups > 1000) {
            maildir_why(why, "too many duplicate file names");
            return -1;
        }
        for (j = 0; j < ul->n; j++) {
            if (strlen(ul->recs[j].name) == name_len &&
                memcmp(ul->recs[j].name, name, name_len) == 0) {
                free(ul->recs[j].name);
                free(ul->recs[j].ext);
                memmove(&ul->recs[j], &ul->recs[j + 1], (ul->n - j - 1) * sizeof(*ul->recs));
                ul->n--;
                break;
            }
        }
        hash_rebuild(ul);
    }
    rec_add(ul, uid, name, name_len, ext, ext_len);
    if (ul->hash_size == 0 || ul->n * 2 >= ul->hash_size)
        hash_rebuild(ul);
    else {
        size_t slot = name_hash(name, name_len) & (ul->hash_size - 1);

        while (ul->hash[slot] != 0)
            slot = (slot + 1) & (ul->hash_size - 1);
        ul->hash[slot] = ul->n;
    }
    return 0;
}

int maildir_uidlist_parse(struct maildir_uidlist *ul, const char *data, size_t len,
                          struct strbuf *why)
{
    const char *p = data, *end = data + len;
    uint32_t prev = 0;
    size_t line = 0, dups = 0;
    int version = 0;

    /* Remember the UIDVALIDITY we knew: a rebuild must go above it. */
    if (ul->uidvalidity > ul->old_uidvalidity)
        ul->old_uidvalidity = ul->uidvalidity;
    recs_clear(ul);
    ul->uidvalidity = 0;
    ul->next_uid = 1;
    ul->guid[0] = '\0';
    free(ul->hdr_ext);
    ul->hdr_ext = NULL;
    ul->broken = false;
    if (len > MAILDIR_UIDLIST_MAX_BYTES) {
        maildir_why(why, "list larger than %u bytes", MAILDIR_UIDLIST_MAX_BYTES);
        goto broken;
    }
    if (len == 0) {
        maildir_why(why, "empty list");
        goto broken;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll;

        line++;
        if (nl == NULL) {
            maildir_why(why, "line %zu: truncated (no newline)", line);
            goto broken;
        }
        ll = (size_t)(nl - p);
        if (ll > MAILDIR_UIDLIST_MAX_LINE) {
            maildir_why(why, "line %zu: longer than %d bytes", line, MAILDIR_UIDLIST_MAX_LINE);
            goto broken;
        }
        if (line == 1) {
            version = parse_header(ul, p, ll, why);
            if (version < 0)
                goto broken;
        } else if (ul->n >= MAILDIR_UIDLIST_MAX_RECORDS) {
            maildir_why(why, "more than %d records", MAILDIR_UIDLIST_MAX_RECORDS);
            goto broken;
        } else if (parse_record(ul, version, p, ll, &prev, &dups, why) < 0) {
            if (why != NULL)
                strbuf_appendf(why, " at line %zu", line);
            goto broken;
        }
        p = nl + 1;
    }
    if (ul->next_uid <= prev)
        ul->next_uid = prev + 1;
    if (prev == UINT32_MAX - 1) {
        maildir_why(why, "UID space exhausted");
        goto broken;
    }
    return 0;
broken:
    if (ul->uidvalidity > ul->old_uidvalidity)
        ul->old_uidvalidity = ul->uidvalidity;
    recs_clear(ul);
    ul->uidvalidity = 0;
    ul->next_uid = 1;
    ul->guid[0] = '\0';
    ul->broken = true;
    return -1;
}

int maildir_uidlist_refresh(struct maildir_uidlist *ul, struct strbuf *why)
{
    struct strbuf *data, *perr;
    struct stat st;
    char buf[65536];
    ssize_t n;
    int fd;

    fd = open(ul->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            maildir_why(why, "open %s: %m", ul->path);
            return -1;
        }
        if (ul->uidvalidity > ul->old_uidvalidity)
            ul->old_uidvalidity = ul->uidvalidity;
        recs_clear(ul);
        ul->exists = false;
        ul->broken = false;
        ul->have_st = false;
        ul->uidvalidity = 0;
        ul->next_uid = 1;
        ul->guid[0] = '\0';
        return 0;
    }
    if (fstat(fd, &st) < 0) {
        maildir_why(why, "fstat %s: %m", ul->path);
        close(fd);
        return -1;
    }
    if (ul->have_st && st.st_ino == ul->st.st_ino && st.st_dev == ul->st.st_dev &&
        st.st_size == ul->st.st_size && st.st_mtim.tv_sec == ul->st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == ul->st.st_mtim.tv_nsec) {
        close(fd);
        return 0;
    }
    data = strbuf_new(st.st_size > 0 && st.st_size < (1 << 24) ? (size_t)st.st_size + 1 : 65536);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            maildir_why(why, "read %s: %m", ul->path);
            close(fd);
            strbuf_free(&data);
            return -1;
        }
        if (strbuf_len(data) + (size_t)n > MAILDIR_UIDLIST_MAX_BYTES + 1)
            break;      /* the parser reports it as too large */
        strbuf_appendn(data, buf, (size_t)n);
    }
    close(fd);
    ul->exists = true;
    ul->st = st;
    ul->have_st = true;
    perr = strbuf_new(128);
    if (maildir_uidlist_parse(ul, strbuf_str(data), strbuf_len(data), perr) < 0)
        log_warn("maildir %s: broken %s: %s; it will be rebuilt with a new "
                 "UIDVALIDITY", ul->dir, MAILDIR_UIDLIST_NAME, strbuf_str(perr));
    strbuf_free(&perr);
    strbuf_free(&data);
    return 0;
}

int maildir_uidlist_lock(struct maildir_uidlist *ul, int timeout_ms, struct strbuf *why)
{
    if (ul->lock_fd >= 0) {
        maildir_why(why, "%s is already locked by this process", ul->path);
        return -1;
    }
    return maildir_dotlock_take(ul->path, timeout_ms, MAILDIR_UIDLIST_LOCK_STALE_SECS,
                                &ul->lock_fd, why);
}

void maildir_uidlist_unlock(struct maildir_uidlist *ul)
{
    if (ul->lock_fd < 0)
        return;
    maildir_dotlock_release(ul->path, ul->lock_fd);
    ul->lock_fd = -1;
}

bool maildir_uidlist_locked(const struct maildir_uidlist *ul)
{
    return ul->lock_fd >= 0;
}

/* Start a fresh list: a new UIDVALIDITY above any seen, a new GUID. */
static void uidlist_reset(struct maildir_uidlist *ul)
{
    uint32_t now = (uint32_t)time(NULL);
    unsigned char g[16];
    int i;

    recs_clear(ul);
    ul->uidvalidity = now > ul->old_uidvalidity ? now : ul->old_uidvalidity + 1;
    ul->old_uidvalidity = ul->uidvalidity;
    ul->next_uid = 1;
    if (getrandom(g, sizeof(g), 0) != (ssize_t)sizeof(g))
        log_fatal("getrandom: %m");
    for (i = 0; i < 16; i++)
        snprintf(ul->guid + 2 * i, 3, "%02x", g[i]);
    free(ul->hdr_ext);
    ul->hdr_ext = NULL;
    ul->broken = false;
}

int maildir_uidlist_write(struct maildir_uidlist *ul, struct strbuf *why)
{
    struct strbuf *tmp = strbuf_new(256), *out = strbuf_new(65536);
    size_t i;
    int fd = -1, ret = -1;

    if (ul->lock_fd < 0) {
        maildir_why(why, "writing %s without its lock", ul->path);
        goto out;
    }
    if (ul->uidvalidity == 0) {
        /* Records cannot outlive their UIDVALIDITY. */
        uidlist_reset(ul);
    } else if (ul->guid[0] == '\0') {
        /* A version 1 list has no GUID: give it one, keeping the UIDs. */
        unsigned char g[16];
        int k;

        if (getrandom(g, sizeof(g), 0) != (ssize_t)sizeof(g))
            log_fatal("getrandom: %m");
        for (k = 0; k < 16; k++)
            snprintf(ul->guid + 2 * k, 3, "%02x", g[k]);
    }
    strbuf_printf(tmp, "%s.tmp", ul->path);
    strbuf_printf(out, "3 V%u N%u G%s", ul->uidvalidity, ul->next_uid, ul->guid);
    if (ul->hdr_ext != NULL)
        strbuf_appendf(out, " %s", ul->hdr_ext);
    strbuf_appendc(out, '\n');
    for (i = 0; i < ul->n; i++) {
        strbuf_appendf(out, "%u", ul->recs[i].uid);
        if (ul->recs[i].ext != NULL)
            strbuf_appendf(out, " %s", ul->recs[i].ext);
        strbuf_appendf(out, " :%s\n", ul->recs[i].name);
    }
    /* Under the lock nobody else writes the .tmp file. */
    fd = open(strbuf_str(tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        maildir_why(why, "create %s: %m", strbuf_str(tmp));
        goto out;
    }
    if (write(fd, strbuf_str(out), strbuf_len(out)) != (ssize_t)strbuf_len(out) ||
        fsync(fd) < 0) {
        maildir_why(why, "write %s: %m", strbuf_str(tmp));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        maildir_why(why, "close %s: %m", strbuf_str(tmp));
        goto fail;
    }
    fd = -1;
    /* The atomic switch: readers see the old list or the new one. */
    if (rename(strbuf_str(tmp), ul->path) < 0) {
        maildir_why(why, "rename %s: %m", strbuf_str(tmp));
        goto fail;
    }
    if (maildir_fsync_dir(ul->dir, NULL, why) < 0)
        goto out;
    ul->exists = true;
    ul->broken = false;
    ul->have_st = stat(ul->path, &ul->st) == 0;
    ret = 0;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(strbuf_str(tmp));
out:
    strbuf_free(&tmp);
    strbuf_free(&out);
    return ret;
}

/* The arrival time at the start of a Maildir name ("1234567890.M..."). */
static uint64_t name_time(const char *name)
{
    uint64_t t = 0;
    int i;

    for (i = 0; i < 20 && name[i] >= '0' && name[i] <= '9'; i++)
        t = t * 10 + (uint64_t)(name[i] - '0');
    return t;
}

static int new_cmp(const void *a, const void *b)
{
    const struct maildir_entry *x = *(struct maildir_entry *const *)a;
    const struct maildir_entry *y = *(struct maildir_entry *const *)b;
    uint64_t tx = name_time(x->name), ty = name_time(y->name);

    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(x->name, y->name);
}

int maildir_uidlist_sync(struct maildir_uidlist *ul, struct maildir_list *list,
                         struct strbuf *why)
{
    struct maildir_list *own = NULL, *second = NULL;
    struct maildir_entry **fresh = NULL;
    size_t i, o, nfresh = 0;
    bool changed = false;
    int ret = -1;

    if (ul->lock_fd < 0) {
        maildir_why(why, "sync of %s without its lock", ul->path);
        return -1;
    }
    if (maildir_uidlist_refresh(ul, why) < 0)
        return -1;
    if (!ul->exists || ul->broken || ul->uidvalidity == 0) {
        uidlist_reset(ul);
        changed = true;
    }
    if (list == NULL) {
        if (maildir_list_scan(ul->dir, 0, &own, why) < 0)
            return -1;
        list = own;
    }
    /* Drop records whose file is gone, after a second look for any that
     * seem gone (readdir can miss a file renamed during the scan). */
    for (i = 0, o = 0; i < ul->n; i++) {
        struct maildir_uidlist_rec *r = &ul->recs[i];
        size_t len = strlen(r->name);

        if (maildir_list_find(list, r->name, len) == NULL) {
            if (second == NULL && maildir_list_scan(ul->dir, 0, &second, why) < 0)
                goto out;
            if (maildir_list_find(second, r->name, len) == NULL) {
                free(r->name);
                free(r->ext);
                changed = true;
                continue;
            }
        }
        ul->recs[o++] = *r;
    }
    ul->n = o;
    hash_rebuild(ul);
    fresh = xcalloc(list->n + 1, sizeof(*fresh));
    for (i = 0; i < list->n; i++)
        if (maildir_uidlist_lookup_name(ul, list->v[i].name, list->v[i].base_len) == NULL)
            fresh[nfresh++] = &list->v[i];
    if (nfresh > 1)
        qsort(fresh, nfresh, sizeof(*fresh), new_cmp);
    if (ul->n + nfresh > MAILDIR_UIDLIST_MAX_RECORDS ||
        (uint64_t)ul->next_uid + nfresh >= UINT32_MAX) {
        maildir_why(why, "%s: too many messages for the UID list", ul->dir);
        goto out;
    }
    for (i = 0; i < nfresh; i++)
        rec_add(ul, ul->next_uid++, fresh[i]->name, fresh[i]->base_len, NULL, 0);
    if (nfresh > 0) {
        hash_rebuild(ul);
        changed = true;
    }
    if (changed && maildir_uidlist_write(ul, why) < 0)
        goto out;
    ret = (int)nfresh;
out:
    free(fresh);
    maildir_list_free(&own);
    maildir_list_free(&second);
    return ret;
}

bool maildir_uidlist_exists(const struct maildir_uidlist *ul) { return ul->exists; }
bool maildir_uidlist_broken(const struct maildir_uidlist *ul) { return ul->broken; }
uint32_t maildir_uidlist_uidvalidity(const struct maildir_uidlist *ul) { return ul->uidvalidity; }
uint32_t maildir_uidlist_next_uid(const struct maildir_uidlist *ul) { return ul->next_uid; }
const char *maildir_uidlist_guid(const struct maildir_uidlist *ul) { return ul->guid; }
size_t maildir_uidlist_count(const struct maildir_uidlist *ul) { return ul->n; }

const struct maildir_uidlist_rec *maildir_uidlist_rec(const struct maildir_uidlist *ul,
                                                      size_t i)
{
    return i < ul->n ? &ul->recs[i] : NULL;
}

const struct maildir_uidlist_rec *maildir_uidlist_lookup_uid(const struct maildir_uidlist *ul,
                                                             uint32_t uid)
{
    size_t lo = 0, hi = ul->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ul->recs[mid].uid == uid)
            return &ul->recs[mid];
        if (ul->recs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct maildir_uidlist_rec *maildir_uidlist_lookup_name(const struct maildir_uidlist *ul,
                                                              const char *base,
                                                              size_t base_len)
{
    size_t slot;

    if (ul->hash_size == 0)
        return NULL;
    slot = name_hash(base, base_len) & (ul->hash_size - 1);
    while (ul->hash[slot] != 0) {
        const struct maildir_uidlist_rec *r = &ul->recs[ul->hash[slot] - 1];

        if (strncmp(r->name, base, base_len) == 0 && r->name[base_len] == '\0')
            return r;
        slot = (slot + 1) & (ul->hash_size - 1);
    }
    return NULL;
}
