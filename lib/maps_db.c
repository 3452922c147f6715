/*
 * maps_db.c - hash: and btree: tables in Berkeley DB 5.3 files, and the
 * builder facteur-map uses to make them.
 *
 * "hash:/etc/facteur/virtual" reads /etc/facteur/virtual.db, opened
 * read-only with no DB environment (no locks, no shared cache: readers
 * never write).  The builder never writes a live table: it fills
 * NAME.db.tmp, fsyncs it and renames it over NAME.db, so a reader sees the
 * old file or the new one, whole.  Before each lookup the reader compares
 * NAME.db's inode, size and mtime with the file it holds and re-opens on a
 * change, so a rebuilt table is used without a restart (one stat(2) per
 * lookup, much cheaper than the fork Postfix spends on a restart).  When
 * NAME.db cannot be reached any more (a daemon chrooted after the open, or
 * the file removed) the handle already open keeps answering.
 *
 * Format, chosen to match Postfix on Linux so either tool reads the
 * other's tables: keys and values are stored with a trailing NUL; a lookup
 * tries the key with the NUL, then without (then keeps whichever form
 * hit).  The file's content is not trusted: values are copied with their
 * stored length, and any DB error is a temporary MAP_ERROR.
 */
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "maps.h"
#include "mem.h"
#include "strbuf.h"

#define DB_BUILD_CACHE (16 << 20)   /* bytes of cache while building */

struct db_map {
    DB *db;                     /* NULL after a failed re-open */
    char *path;                 /* NAME.db */
    DBTYPE type;
    struct stat st;             /* of the file db reads */
    int nulflags;               /* MAP_FLAG_NUL / MAP_FLAG_NONUL */
};

/* Berkeley DB reports details ("unexpected file type or format") through
 * a callback, not through the return code: keep the last one to append to
 * why.  Daemons are single-threaded, so one buffer is enough. */
static char db_last_error[256];

static void db_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
    snprintf(db_last_error, sizeof(db_last_error), "%s", msg);
}

/* db_create plus the error callback. */
static int db_new(DB **dbp)
{
    int ret = db_create(dbp, NULL, 0);

    if (ret == 0)
        (*dbp)->set_errcall(*dbp, db_errcall);
    db_last_error[0] = 0;
    return ret;
}

static DBTYPE db_type_of(const char *type)
{
    return strcmp(type, "btree") == 0 ? DB_BTREE : DB_HASH;
}

static bool db_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino
        && a->st_size == b->st_size
        && a->st_mtim.tv_sec == b->st_mtim.tv_sec
        && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Open dm->path read-only and remember which file it is. */
static int db_reopen(struct db_map *dm, struct strbuf *why)
{
    DB *db;
    int ret, fd;

    if (dm->db != NULL) {
        dm->db->close(dm->db, 0);
        dm->db = NULL;
    }
    if ((ret = db_new(&db)) != 0) {
        strbuf_printf(why, "%s: db_create: %s", dm->path, db_strerror(ret));
        return -1;
    }
    if ((ret = db->open(db, NULL, dm->path, NULL, dm->type, DB_RDONLY, 0))
        != 0) {
        strbuf_printf(why, "open %s: %s%s%s%s", dm->path, db_strerror(ret),
                      db_last_error[0] ? " (" : "", db_last_error,
                      db_last_error[0] ? ")" : "");
        if (ret == EINVAL)
            strbuf_appendf(why, ": not a Berkeley DB %s file; rebuild it "
                           "with facteur-map", dm->type == DB_BTREE
                           ? "btree" : "hash");
        db->close(db, 0);
        return -1;
    }
    /* fstat the descriptor DB reads, not the name: a rename between the
     * open and a stat(2) would make us believe we hold the new file. */
    if ((ret = db->fd(db, &fd)) != 0 || fstat(fd, &dm->st) < 0) {
        strbuf_printf(why, "%s: cannot stat the open table: %s", dm->path,
                      ret ? db_strerror(ret) : strerror(errno));
        db->close(db, 0);
        return -1;
    }
    dm->db = db;
    return 0;
}

static int db_open(struct map *m, struct strbuf *why)
{
    struct db_map *dm = xcalloc(1, sizeof(*dm));
    struct stat src;

    dm->path = xasprintf("%s.db", m->name);
    dm->type = db_type_of(m->ops->type);
    dm->nulflags = m->flags & (MAP_FLAG_NUL | MAP_FLAG_NONUL);
    if (db_reopen(dm, why) < 0) {
        free(dm->path);
        free(dm);
        return -1;
    }
    if (stat(m->name, &src) == 0 && (src.st_mtim.tv_sec > dm->st.st_mtim.tv_sec
        || (src.st_mtim.tv_sec == dm->st.st_mtim.tv_sec
            && src.st_mtim.tv_nsec > dm->st.st_mtim.tv_nsec)))
        log_warn("%s: table is older than its source file %s: run "
                 "\"facteur-map %s\"", dm->path, m->name, m->spec);
    m->priv = dm;
    return 0;
}

/* One DB get; 1 found, 0 not found, -1 error. */
static int db_get(struct db_map *dm, const char *key, size_t klen,
                  struct strbuf *value_r, struct strbuf *why)
{
    DBT k, v;
    int ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    ret = dm->db->get(dm->db, NULL, &k, &v, 0);
    if (ret == DB_NOTFOUND)
        return 0;
    if (ret != 0) {
        strbuf_printf(why, "%s: lookup failed: %s", dm->path,
                      db_strerror(ret));
        return -1;
    }
    if (v.size > 0 && ((const char *)v.data)[v.size - 1] == 0)
        v.size--;
    strbuf_setn(value_r, v.data, v.size);
    return 1;
}

static int db_lookup(struct map *m, const char *key, struct strbuf *value_r,
                     struct strbuf *why)
{
    struct db_map *dm = m->priv;
    size_t klen = strlen(key);
    struct stat st;
    int rc;

    if (stat(dm->path, &st) < 0) {
        /* A chrooted or unprivileged process cannot see the path it
         * opened before the jail: keep the handle it has (a rebuilt table
         * is picked up by the next process; master recycles daemons by
         * max_use and max_idle).  The same holds when the file was
         * removed: the open handle still reads the last table whole. */
        if (dm->db == NULL || (errno != ENOENT && errno != ENOTDIR
                               && errno != EACCES)) {
            strbuf_printf(why, "stat %s: %m", dm->path);
            return MAP_ERROR;
        }
    } else if ((dm->db == NULL || !db_same_file(&st, &dm->st))
               && db_reopen(dm, why) < 0)
        return MAP_ERROR;
    if (klen > 0xffffff)
        return MAP_NOTFOUND;
    /* Postfix's convention on Linux is a trailing NUL; a table built
     * elsewhere (or with -n) may lack it.  Stick to the form that hits. */
    if (!(dm->nulflags & MAP_FLAG_NONUL)) {
        if ((rc = db_get(dm, key, klen + 1, value_r, why)) != 0) {
            if (rc > 0)
                dm->nulflags = MAP_FLAG_NUL;
            return rc > 0 ? MAP_FOUND : MAP_ERROR;
        }
    }
    if (!(dm->nulflags & MAP_FLAG_NUL)) {
        if ((rc = db_get(dm, key, klen, value_r, why)) != 0) {
            if (rc > 0)
                dm->nulflags = MAP_FLAG_NONUL;
            return rc > 0 ? MAP_FOUND : MAP_ERROR;
        }
    }
    return MAP_NOTFOUND;
}

static int db_iterate(struct map *m, map_iter_fn *fn, void *ctx,
                      struct strbuf *why)
{
    struct db_map *dm = m->priv;
    struct strbuf *key, *value;
    DBC *cur;
    DBT k, v;
    int ret, rc = 0;

    if (dm->db == NULL && db_reopen(dm, why) < 0)
        return -1;
    if ((ret = dm->db->cursor(dm->db, NULL, &cur, 0)) != 0) {
        strbuf_printf(why, "%s: cursor: %s", dm->path, db_strerror(ret));
        return -1;
    }
    key = strbuf_new(64);
    value = strbuf_new(64);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    while ((ret = cur->get(cur, &k, &v, DB_NEXT)) == 0) {
        if (k.size > 0 && ((const char *)k.data)[k.size - 1] == 0)
            k.size--;
        if (v.size > 0 && ((const char *)v.data)[v.size - 1] == 0)
            v.size--;
        strbuf_setn(key, k.data, k.size);
        strbuf_setn(value, v.data, v.size);
        if ((rc = fn(strbuf_str(key), strbuf_str(value), ctx)) != 0)
            break;
    }
    if (rc == 0 && ret != DB_NOTFOUND) {
        strbuf_printf(why, "%s: reading: %s", dm->path, db_strerror(ret));
        rc = -1;
    }
    cur->close(cur);
    strbuf_free(&key);
    strbuf_free(&value);
    return rc;
}

static void db_close(struct map *m)
{
    struct db_map *dm = m->priv;

    if (dm->db != NULL)
        dm->db->close(dm->db, 0);
    free(dm->path);
    free(dm);
}

const struct map_ops map_ops_hash = {
    .type = "hash",
    .fixed = true,
    .open = db_open,
    .lookup = db_lookup,
    .iterate = db_iterate,
    .close = db_close,
};

const struct map_ops map_ops_btree = {
    .type = "btree",
    .fixed = true,
    .open = db_open,
    .lookup = db_lookup,
    .iterate = db_iterate,
    .close = db_close,
};

/* ---- Building ---- */

struct db_build {
    DB *db;
    const char *source;
    int flags;
    long count;
};

static int db_build_put(const char *key, const char *value, long lineno,
                        void *ctx, struct strbuf *why)
{
    struct db_build *b = ctx;
    int nul = (b->flags & MAP_FLAG_NONUL) ? 0 : 1;
    DBT k, v;
    int ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)(strlen(key) + nul);
    v.data = (void *)value;
    v.size = (u_int32_t)(strlen(value) + nul);
    ret = b->db->put(b->db, NULL, &k, &v, DB_NOOVERWRITE);
    if (ret == DB_KEYEXIST) {
        log_warn("%s:%ld: duplicate entry: \"%s\" (first value kept)",
                 b->source, lineno, key);
        return 0;
    }
    if (ret != 0) {
        strbuf_printf(why, "%s:%ld: cannot store \"%s\": %s", b->source,
                      lineno, key, db_strerror(ret));
        return -1;
    }
    b->count++;
    return 0;
}

/* Open and lock NAME.db.tmp.  The lock keeps two builders apart; the
 * inode check makes sure the file we locked was not renamed into place
 * by a builder that finished meanwhile (we would truncate a live table). */
static int db_build_lock(const char *tmp, mode_t mode, struct strbuf *why)
{
    struct stat a, b;
    int fd;

    for (int tries = 0; tries < 3; tries++) {
        fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0) {
            strbuf_printf(why, "open %s: %m", tmp);
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            strbuf_printf(why, "%s: %s", tmp, errno == EWOULDBLOCK
                          ? "another facteur-map is building this table"
                          : strerror(errno));
            close(fd);
            return -1;
        }
        if (fstat(fd, &a) == 0 && stat(tmp, &b) == 0
            && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            if (ftruncate(fd, 0) < 0) {
                strbuf_printf(why, "truncate %s: %m", tmp);
                close(fd);
                return -1;
            }
            return fd;
        }
        close(fd);
    }
    strbuf_printf(why, "%s: keeps changing under us", tmp);
    return -1;
}

/* Make the rename durable: fsync the directory that holds path. */
static int db_sync_dir(const char *path, struct strbuf *why)
{
    char *copy = xstrdup(path);
    int fd, rc = 0;

    if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0
        || fsync(fd) < 0) {
        strbuf_printf(why, "fsync directory of %s: %m", path);
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

long map_build(const char *spec, int flags, struct strbuf *why)
{
    struct db_build b = { NULL, NULL, flags, 0 };
    struct strbuf *src = NULL;
    char *tmp = NULL, *dbpath = NULL;
    const char *name, *colon = strchr(spec, ':'), *slash = strchr(spec, '/');
    DBTYPE type = DB_HASH;
    struct stat st;
    long n = -1;
    int fd = -1, ret;

    if (colon != NULL && strncmp(spec, "hash:", 5) == 0) {
        name = colon + 1;
    } else if (colon != NULL && strncmp(spec, "btree:", 6) == 0) {
        name = colon + 1;
        type = DB_BTREE;
    } else if (colon == NULL || (slash != NULL && slash < colon)) {
        name = spec;            /* a bare path: hash, as postmap */
    } else {
        strbuf_printf(why, "%s: only hash: and btree: tables are built "
                      "from a source file", spec);
        return -1;
    }
    b.source = name;
    src = strbuf_new(4096);
    if (map_read_file(name, MAP_FILE_MAX, src, why) < 0 || stat(name, &st) < 0)
        goto out;
    dbpath = xasprintf("%s.db", name);
    tmp = xasprintf("%s.db.tmp", name);
    if ((fd = db_build_lock(tmp, st.st_mode & 0666, why)) < 0)
        goto out;
    if ((ret = db_new(&b.db)) != 0
        || (ret = b.db->set_cachesize(b.db, 0, DB_BUILD_CACHE, 0)) != 0
        || (ret = b.db->open(b.db, NULL, tmp, NULL, type,
                             DB_CREATE | DB_TRUNCATE, st.st_mode & 0666))
        != 0) {
        strbuf_printf(why, "create %s: %s", tmp, db_strerror(ret));
        goto fail;
    }
    if (map_text_parse(name, strbuf_str(src), strbuf_len(src), flags,
                       db_build_put, &b, why) < 0)
        goto fail;
    /* DB->close writes every dirty page; then make them durable before
     * the rename publishes the file. */
    ret = b.db->close(b.db, 0);
    b.db = NULL;
    if (ret != 0) {
        strbuf_printf(why, "write %s: %s", tmp, db_strerror(ret));
        goto fail;
    }
    if (fchmod(fd, st.st_mode & 0666) < 0
        || (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)) {
        strbuf_printf(why, "set owner and mode of %s: %m", tmp);
        goto fail;
    }
    if (fsync(fd) < 0) {
        strbuf_printf(why, "fsync %s: %m", tmp);
        goto fail;
    }
    if (rename(tmp, dbpath) < 0) {
        strbuf_printf(why, "rename %s to %s: %m", tmp, dbpath);
        goto fail;
    }
    if (db_sync_dir(dbpath, why) < 0)
        goto out;
    n = b.count;
    goto out;

fail:
    if (b.db != NULL)
        b.db->close(b.db, DB_NOSYNC);
    /* We still hold the lock on tmp, so it is ours to remove. */
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    strbuf_free(&src);
    free(tmp);
    free(dbpath);
    return n;
}
