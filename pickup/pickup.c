/*
 * pickup - move locally submitted mail from maildrop/ into the queue.
 *
 * A SERVER_TRIGGER daemon (one process, master.cf "pickup unix n - y 60
 * 1 pickup"): woken by master every 60 s and by facteur-drop through
 * public/pickup, it scans maildrop/ and runs each file through lib/cleanup
 * (Received: "by myhostname (facteur, from userid UID)", Message-ID:,
 * Date:, From: when missing, Bcc: removed, header/body checks), which
 * commits a new queue file into incoming/; then it removes the maildrop
 * file and wakes qmgr.
 *
 * Trust: a maildrop file is written by facteur-drop for any local user,
 * so it is validated whole (qfile_open) before use; a file that fails goes
 * to corrupt/ and is logged, never ends the process.  The sender's
 * identity for "from userid" is the file's owner, not anything inside it.
 * Only the full_name attribute is taken from the file.
 *
 * Durability and duplicates: the maildrop file is removed only after the
 * new queue file is durable.  A backlog shares syncs: up to
 * PICKUP_GROUP_MAX files are prepared into incoming/ (qfile group commit),
 * incoming/ is synced once, then their maildrop files go and maildrop/ is
 * synced once.  A crash between the two leaves both: the next scan queues
 * the message again, a duplicate with the same content and a different
 * Message-ID only if the message had none.  Nothing is ever lost.
 * A message that cleanup refuses for good (header_checks REJECT, too
 * big, too many hops) is returned to its sender with a bounce
 * (lib/bounce) before its file is removed; a temporary failure leaves it
 * for the next scan.
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

#include "bounce.h"
#include "cleanup.h"
#include "fileops.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "qid.h"
#include "server.h"
#include "strbuf.h"
#include "trigger.h"

#define PICKUP_BATCH_MAX    1000        /* files handled per wakeup */
#define PICKUP_LINE_MAX     (1UL << 20) /* longer lines are cut into pieces */
#define PICKUP_TMP_AGE      3600        /* seconds before a drop temp file is stale */

/* The skeleton (and pre_jail) leave us in the queue directory, inside or
 * outside a chroot: every path is relative to it. */
static const char queue_dir[] = ".";

/* PICKUP_QUEUED: in incoming/ but durable only after the batch's group
 * sync; the maildrop file goes after that sync.  PICKUP_DONE: nothing
 * more to wait for (bounced, discarded, already gone); it goes now. */
enum pickup_result { PICKUP_QUEUED, PICKUP_DONE, PICKUP_RETRY, PICKUP_CORRUPT };

#define PICKUP_GROUP_MAX    100         /* files sharing one sync of incoming/ */

/* Move maildrop/<name> to corrupt/<name> (no replace) and sync both. */
static void to_corrupt(const char *name, const char *why)
{
    char *from = xasprintf("maildrop/%s", name), *to = xasprintf("corrupt/%s", name);
    struct strbuf *err = strbuf_new(64);

    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
        log_warn("maildrop/%s: corrupt file (%s); cannot move it to corrupt/: %m; removed",
                 name, why);
        unlink(from);
    } else {
        log_warn("maildrop/%s: corrupt file (%s): moved to corrupt/", name, why);
        if (fileops_fsync_dir("corrupt", err) < 0)
            log_warn("%s", strbuf_str(err));
    }
    if (fileops_fsync_dir("maildrop", err) < 0)
        log_warn("%s", strbuf_str(err));
    strbuf_free(&err);
    free(from);
    free(to);
}

/* Feed the file's content to cleanup line by line. */
static int feed_content(struct qfile *qf, struct cleanup *c, struct strbuf *why)
{
    struct strbuf *line = strbuf_new(4096);
    char buf[65536];
    ssize_t n;
    int rc = 0;

    while (rc == 0 && (n = qfile_content_read(qf, buf, sizeof(buf), why)) > 0) {
        const char *p = buf, *end = buf + n;

        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

            strbuf_appendn(line, p, len);
            p += len;
            if (nl != NULL || strbuf_len(line) >= PICKUP_LINE_MAX) {
                if (nl != NULL)
                    p++;
                if (strbuf_len(line) > 0 && line->data[strbuf_len(line) - 1] == '\r')
                    strbuf_truncate(line, strbuf_len(line) - 1);
                if (cleanup_line(c, strbuf_str(line), strbuf_len(line)) < 0)
                    rc = 1;         /* doomed: cleanup_finish says why */
                strbuf_reset(line);
                if (rc != 0)
                    break;
            }
        }
    }
    if (rc == 0 && n < 0)
        rc = -1;
    if (rc == 0 && strbuf_len(line) > 0 && cleanup_line(c, strbuf_str(line), strbuf_len(line)) < 0)
        rc = 1;
    strbuf_free(&line);
    return rc < 0 ? -1 : 0;
}

/* Return the message to its sender: cleanup refused it for good. */
static int pickup_bounce(struct qfile *qf, const char *reply, struct strbuf *why)
{
    const struct qfile_env *env = qfile_env(qf);
    struct strbuf *to = strbuf_new(64), *sender = strbuf_new(64);
    struct bounce_rcpt *r = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*r));
    char status[16] = "5.0.0", bqid[QID_BUFSIZE];
    const char *esc = strchr(reply, ' ');
    int rc = 0;

    /* "550 5.7.1 text": the enhanced code for Status. */
    if (esc != NULL && sscanf(esc + 1, "%15[0-9.]", status) != 1)
        snprintf(status, sizeof(status), "5.0.0");
    if (status[0] != '5')
        snprintf(status, sizeof(status), "5.0.0");
    /* The maildrop sender may be a bare login name: qualify it as cleanup
     * did for the queued copy. */
    char *orig = *env->sender != '\0' && strchr(env->sender, '@') == NULL &&
                         var_append_at_myorigin && *var_myorigin != '\0'
                     ? xasprintf("%s@%s", env->sender, var_myorigin)
                     : xstrdup(env->sender);

    if (!bounce_recipient(orig, to, sender)) {
        log_info("%s: bounce of a bounce dropped: %s", qfile_qid(qf), reply);
        goto out;
    }
    for (size_t i = 0; i < env->nrcpt; i++) {
        r[i].addr = env->rcpts[i].addr;
        r[i].orcpt = env->rcpts[i].orcpt;
        r[i].status = status;
        r[i].diag = reply;
    }
    struct bounce_msg m = {
        .kind = BOUNCE_FAILED, .qid = qfile_qid(qf), .orig_sender = orig,
        .to = strbuf_str(to), .env_sender = strbuf_str(sender), .envid = env->envid,
        .arrival = env->arrival, .ret = env->ret, .now = time(NULL),
        .hostname = var_myhostname, .size_limit = var_bounce_size_limit,
    };
    if ((rc = bounce_queue(queue_dir, &m, r, env->nrcpt, qf, bqid, why)) == 0)
        log_info("%s: sender non-delivery notification: %s", qfile_qid(qf), bqid);
out:
    free(orig);
    free(r);
    strbuf_free(&to);
    strbuf_free(&sender);
    return rc;
}

/* Queue one maildrop file through cleanup. */
static enum pickup_result pickup_file(const char *name, struct qfile_group *g,
                                      struct strbuf *why)
{
    char *path = xasprintf("maildrop/%s", name);
    struct strbuf *reply = strbuf_new(64);
    enum pickup_result res = PICKUP_RETRY;
    const struct qfile_env *env;
    struct cleanup *c = NULL;
    struct qfile *qf = NULL;
    bool corrupt = false;
    struct stat st;
    char uid[32];
    int fd, rc;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) {
            to_corrupt(name, "a symbolic link");
            res = PICKUP_CORRUPT;
        } else if (errno == ENOENT) {
            res = PICKUP_DONE;      /* taken by another pickup */
        } else {
            log_warn("%s: %m", path);
        }
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        to_corrupt(name, "not a regular file");
        res = PICKUP_CORRUPT;
        goto out;
    }
    if ((qf = qfile_open_fd(fd, 0, &corrupt, why)) == NULL) {
        if (corrupt) {
            to_corrupt(name, strbuf_str(why));
            res = PICKUP_CORRUPT;
        } else {
            log_warn("%s: %s", path, strbuf_str(why));
        }
        goto out;
    }
    env = qfile_env(qf);
    if ((c = cleanup_open(queue_dir, CLEANUP_FL_LOCAL, why)) == NULL) {
        log_warn("%s: %s", path, strbuf_str(why));
        goto out;
    }
    snprintf(uid, sizeof(uid), "%lu", (unsigned long)st.st_uid);
    /* No protocol or client: log lines say "from local" as Postfix's. */
    struct cleanup_received r = {.userid = uid};

    cleanup_set_time(c, &env->arrival);
    cleanup_set_attr(c, QFILE_ATTR_ORIGIN, "pickup");
    if (qfile_attr(qf, CLEANUP_ATTR_FULL_NAME) != NULL)
        cleanup_set_attr(c, CLEANUP_ATTR_FULL_NAME, qfile_attr(qf, CLEANUP_ATTR_FULL_NAME));
    cleanup_set_sender(c, env->sender);
    for (size_t i = 0; i < env->nrcpt; i++)
        cleanup_add_rcpt(c, env->rcpts[i].addr, env->rcpts[i].orcpt, env->rcpts[i].notify);
    if (env->ret)
        cleanup_set_ret(c, env->ret);
    if (env->envid != NULL)
        cleanup_set_envid(c, env->envid);
    if (env->flags)
        cleanup_set_flags(c, env->flags);
    cleanup_add_received(c, &r);
    log_info("%s: uid=%s from=<%s>", cleanup_qid(c), uid, env->sender);
    if (feed_content(qf, c, why) < 0) {
        log_warn("%s: read: %s", path, strbuf_str(why));
        goto out;
    }
    uint64_t seq;

    rc = cleanup_finish(c, g, &seq, reply);
    switch (rc) {
    case CLEANUP_OK:
        /* A held message is durable already (seq 0); others wait for the
         * group sync. */
        res = seq != 0 && !qfile_group_done(g, seq) ? PICKUP_QUEUED : PICKUP_DONE;
        break;
    case CLEANUP_DISCARDED:
        res = PICKUP_DONE;
        break;
    case CLEANUP_TEMPFAIL:
        log_warn("%s: %s: will retry", path, strbuf_str(reply));
        break;
    default:
        log_info("%s: %s", cleanup_qid(c), strbuf_str(reply));
        if (pickup_bounce(qf, strbuf_str(reply), why) < 0)
            log_warn("%s: cannot queue a bounce: %s: will retry", path, strbuf_str(why));
        else
            res = PICKUP_DONE;
        break;
    }
out:
    cleanup_free(&c);
    qfile_close(&qf);
    strbuf_free(&reply);
    free(path);
    return res;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove maildrop files whose queued copies are durable, then sync
 * maildrop/ once for all of them. */
static void remove_done(char **names, size_t n, struct strbuf *why)
{
    size_t removed = 0;

    for (size_t i = 0; i < n; i++) {
        char *path = xasprintf("maildrop/%s", names[i]);

        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("remove %s: %m", path);
        else
            removed++;
        free(path);
    }
    if (removed > 0 && fileops_fsync_dir("maildrop", why) < 0)
        log_warn("%s", strbuf_str(why));
}

/* Make the batch's queued files durable (one sync of incoming/), then
 * remove their maildrop files.  If the sync fails the maildrop files
 * stay: the next scan queues them again (a duplicate, never a loss). */
static void batch_flush(struct qfile_group *g, char **queued, size_t nq, char **done, size_t nd,
                        struct strbuf *why)
{
    if (nq > 0 && qfile_group_sync(g, why) < 0) {
        log_warn("%s: maildrop files kept", strbuf_str(why));
        nq = 0;
    }
    remove_done(queued, nq, why);
    remove_done(done, nd, why);
}

/* Scan maildrop/ once, oldest queue ID first. */
static void pickup_scan(void)
{
    struct strbuf *why = strbuf_new(128);
    char **names = NULL, **queued, **done;
    size_t n = 0, nq = 0, nd = 0, total = 0;
    struct qfile_group g;
    struct dirent *de;
    DIR *d;

    if (qfile_purge_tmp_in(queue_dir, "maildrop", PICKUP_TMP_AGE, why) < 0)
        log_warn("%s", strbuf_str(why));
    if ((d = opendir("maildrop")) == NULL) {
        log_warn("open maildrop: %m");
        strbuf_free(&why);
        return;
    }
    while ((de = readdir(d)) != NULL && n < PICKUP_BATCH_MAX) {
        if (de->d_name[0] == '.' || qfile_is_tmp_name(de->d_name))
            continue;
        if (!qid_valid(de->d_name)) {
            /* Not a name facteur-drop writes: set aside, never parsed. */
            to_corrupt(de->d_name, "unexpected file name");
            continue;
        }
        names = xreallocarray(names, n + 1, sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    /* Messages share syncs of incoming/ in groups (DESIGN: group commit);
     * a maildrop file is removed only after its group's sync. */
    qfile_group_init(&g, queue_dir);
    queued = xcalloc(PICKUP_GROUP_MAX, sizeof(*queued));
    done = xcalloc(PICKUP_GROUP_MAX, sizeof(*done));
    for (size_t i = 0; i < n; i++) {
        switch (pickup_file(names[i], &g, why)) {
        case PICKUP_QUEUED:
            queued[nq++] = names[i];
            total++;
            break;
        case PICKUP_DONE:
            done[nd++] = names[i];
            total++;
            break;
        default:
            break;
        }
        if (nq == PICKUP_GROUP_MAX || nd == PICKUP_GROUP_MAX || i + 1 == n) {
            batch_flush(&g, queued, nq, done, nd, why);
            nq = nd = 0;
        }
    }
    qfile_group_free(&g);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(queued);
    free(done);
    if (total > 0)
        trigger_send(queue_dir, "qmgr", "I", 1);
    strbuf_free(&why);
}

static void pickup_pre_jail(void)
{
    struct strbuf *why = strbuf_new(128);

    /* Stand-alone (-S) runs skip the skeleton's chdir. */
    if (chdir(var_queue_directory) < 0)
        log_fatal("chdir %s: %m", var_queue_directory);
    if (cleanup_init(why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
}

static void pickup_post_jail(void)
{
    /* Files dropped while no pickup ran. */
    pickup_scan();
}

static void pickup_wake(const char *buf, size_t len)
{
    (void)buf;
    (void)len;
    pickup_scan();
}

static const struct server_desc pickup_desc = {
    .name = "pickup",
    .kind = SERVER_TRIGGER,
    .pre_jail = pickup_pre_jail,
    .post_jail = pickup_post_jail,
    .wake_fn = pickup_wake,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &pickup_desc);
}
