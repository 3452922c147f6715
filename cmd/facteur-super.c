/*
 * facteur-super.c - queue maintenance: facteur-super [-c DIR] [-v] [-s]
 * [-p] [-d ID] [-h ID] [-H ID] [-r ID] [queue...].  The counterpart of
 * postsuper(1): delete, hold, release and requeue messages (ID is a queue
 * ID, ALL, or - to read IDs from standard input), purge temporary files
 * and check and repair the queue structure.
 *
 * It runs as root (or mail_owner) beside a live mail system: every change
 * is a rename or unlink followed by a directory fsync (lib/queue_scan), so
 * qmgr sees a message in one queue or the other, never half moved, and
 * tolerates one that vanished.  Each message changed is logged to the
 * mail log as Postfix does ("QID: removed", "placed on hold", "released
 * from hold", "requeued"); the totals go to stderr.
 *
 * Trust: queue IDs from the command line or stdin must be valid IDs
 * (qid.h) before they name a file; stdin lines are bounded.  Queue files
 * are validated with qfile_open; files are opened without following
 * symbolic links before their mode or owner is changed, so a hostile
 * mail_owner cannot aim root's chmod at another file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "fileops.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "qid.h"
#include "queue_scan.h"
#include "strbuf.h"

#define STDIN_LINE_MAX 256      /* bytes of one queue ID line on stdin */

/* One kind of change: which queues it applies to by default, and what it
 * does to one message. */
enum super_op { OP_DELETE, OP_RELEASE, OP_HOLD, OP_REQUEUE, OP_COUNT };

struct super_op_desc {
    const char *flag;
    const char *const *queues;      /* default queues, NULL-terminated */
    const char *log_text;           /* per message, in the mail log */
    const char *summary;            /* total, on stderr */
};

static const char *const q_delete[] = {"hold", "incoming", "active", "deferred", NULL};
static const char *const q_release[] = {"hold", NULL};
static const char *const q_hold[] = {"incoming", "active", "deferred", NULL};
/* Not active/: qmgr is delivering those, and a copy back in incoming/
 * would be loaded a second time beside the first. */
static const char *const q_requeue[] = {"hold", "incoming", "deferred", NULL};

static const struct super_op_desc op_desc[OP_COUNT] = {
    [OP_DELETE] = {"-d", q_delete, "removed", "Deleted"},
    [OP_RELEASE] = {"-H", q_release, "released from hold", "Released from hold"},
    [OP_HOLD] = {"-h", q_hold, "placed on hold", "Placed on hold"},
    [OP_REQUEUE] = {"-r", q_requeue, "requeued", "Requeued"},
};

/* IDs given per operation, in command-line order. */
struct id_list {
    char **ids;
    size_t n;
};

static struct id_list op_ids[OP_COUNT];
static const char **user_queues;    /* queues named on the command line */
static size_t n_user_queues;
static int exit_status;

static void usage(void)
{
    fprintf(stderr, "usage: facteur-super [-c config_dir] [-psv] [-d queue_id] [-h queue_id] "
            "[-H queue_id] [-r queue_id] [queue...]\n");
    exit(2);
}

/* A line for the mail log only (syslog, maillog_file), not the terminal. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    struct strbuf *text = strbuf_new(128);
    va_list ap;

    va_start(ap, fmt);
    strbuf_vappendf(text, fmt, ap);
    va_end(ap);
    log_set_dest(LOG_DEST_SYSLOG | LOG_DEST_FILE);
    log_info("%s", strbuf_str(text));
    log_set_dest(LOG_DEST_STDERR | LOG_DEST_SYSLOG | LOG_DEST_FILE);
    strbuf_free(&text);
}

static void id_add(struct id_list *l, const char *id)
{
    if (strcmp(id, "ALL") != 0 && !qid_valid(id))
        log_fatal("invalid queue ID: %.100s", id);
    l->ids = xreallocarray(l->ids, l->n + 1, sizeof(*l->ids));
    l->ids[l->n++] = xstrdup(id);
}

/* "-": queue IDs from stdin, one a line (white space around allowed). */
static void id_add_stdin(struct id_list *l)
{
    char buf[STDIN_LINE_MAX + 2];
    size_t count = 0;

    while (fgets(buf, sizeof(buf), stdin) != NULL) {
        size_t len = strlen(buf);
        char *p = buf;

        if (len > 0 && buf[len - 1] != '\n' && !feof(stdin))
            log_fatal("standard input: line longer than %d bytes", STDIN_LINE_MAX);
        if (++count > QUEUE_SCAN_MAX)
            log_fatal("standard input: more than %d queue IDs", QUEUE_SCAN_MAX);
        while (len > 0 && strchr(" \t\r\n", buf[len - 1]) != NULL)
            buf[--len] = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != 0)
            id_add(l, p);
    }
}

/* The queues an operation works on: those named on the command line
 * (each must be one it can apply to), else its defaults. */
static bool op_applies(enum super_op op, const char *queue)
{
    if (op == OP_REQUEUE && strcmp(queue, "active") == 0)
        return false;
    if (n_user_queues > 0) {
        for (size_t i = 0; i < n_user_queues; i++)
            if (strcmp(user_queues[i], queue) == 0)
                return true;
        return false;
    }
    for (const char *const *q = op_desc[op].queues; *q != NULL; q++)
        if (strcmp(*q, queue) == 0)
            return true;
    return false;
}

/* Apply op to qid in queue.  Returns 1 when done, 0 when the message is
 * not there any more, -1 on error (logged). */
static int op_one(enum super_op op, const char *queue, const char *qid)
{
    static const char *const target[OP_COUNT] = {
        [OP_DELETE] = NULL, [OP_RELEASE] = "deferred", [OP_HOLD] = "hold",
        [OP_REQUEUE] = "incoming",
    };
    struct strbuf *why;
    int rc;

    /* Already where the operation would put it (a queue named on the
     * command line, e.g. -r ALL incoming): nothing to do. */
    if (target[op] != NULL && strcmp(target[op], queue) == 0)
        return 0;
    why = strbuf_new(128);
    switch (op) {
    case OP_DELETE:
        rc = queue_delete(var_queue_directory, queue, qid, why);
        break;
    case OP_RELEASE:
        /* deferred/ with mtime now: due at qmgr's next deferred scan. */
        rc = queue_move(var_queue_directory, queue, "deferred", qid, true, why);
        break;
    case OP_HOLD:
        rc = queue_move(var_queue_directory, queue, "hold", qid, false, why);
        break;
    default:
        /* incoming/: qmgr resolves every address again.  The old delay
         * reasons no longer apply; the delay-warning mark stays, so the
         * sender is not warned twice. */
        rc = queue_move(var_queue_directory, queue, "incoming", qid, true, why);
        if (rc == 0 && queue_defer_remove(var_queue_directory, qid, false, why) < 0)
            log_warn("%s", strbuf_str(why));
        break;
    }
    if (rc < 0) {
        if (errno == ENOENT) {
            strbuf_free(&why);
            return 0;
        }
        log_error("%s", strbuf_str(why));
        exit_status = 1;
        strbuf_free(&why);
        return -1;
    }
    note("%s: %s", qid, op_desc[op].log_text);
    strbuf_free(&why);
    return 1;
}

static size_t op_run(enum super_op op)
{
    struct strbuf *why = strbuf_new(128);
    size_t done = 0;

    for (size_t i = 0; i < op_ids[op].n; i++) {
        const char *id = op_ids[op].ids[i];

        if (strcmp(id, "ALL") == 0) {
            for (const char *const *q = queue_scan_queues; *q != NULL; q++) {
                struct queue_entry *list = NULL;
                size_t n = 0;

                /* A message moved by this very loop (hold -> deferred)
                 * must not be seen twice: each queue is listed once,
                 * and a target is never a source of the same op. */
                if (!op_applies(op, *q))
                    continue;
                if (queue_scan_list(var_queue_directory, *q, &list, &n, why) < 0) {
                    log_error("%s", strbuf_str(why));
                    exit_status = 1;
                    continue;
                }
                for (size_t j = 0; j < n; j++)
                    if (op_one(op, *q, list[j].qid) > 0)
                        done++;
                free(list);
            }
            continue;
        }
        for (const char *const *q = queue_scan_queues; *q != NULL; q++) {
            struct strbuf *path = strbuf_new(128);
            struct stat st;
            bool there;

            if (!op_applies(op, *q)) {
                strbuf_free(&path);
                continue;
            }
            queue_scan_path(path, var_queue_directory, *q, id);
            there = lstat(strbuf_str(path), &st) == 0 && S_ISREG(st.st_mode);
            strbuf_free(&path);
            if (there && op_one(op, *q, id) > 0) {
                done++;
                break;
            }
        }
    }
    strbuf_free(&why);
    return done;
}

/* ---- structure check and repair (-s) and temp files (-p) --------------- */

static uid_t mail_uid = (uid_t)-1;
static gid_t mail_gid = (gid_t)-1;

/* Mode 0600 and (as root) mail_owner for a queue file, checked and fixed
 * on a descriptor opened without following a symbolic link. */
static void fix_file_perms(const char *queue, const char *name)
{
    struct strbuf *path = strbuf_new(128);
    struct stat st;
    int fd;

    strbuf_printf(path, "%s/%s/%s", var_queue_directory, queue, name);
    if ((fd = open(strbuf_str(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0
        || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        strbuf_free(&path);
        return;
    }
    if ((st.st_mode & 07777) != 0600) {
        if (fchmod(fd, 0600) < 0)
            log_warn("chmod %s: %m", strbuf_str(path));
        else
            note("%s: mode %04o changed to 0600", strbuf_str(path), (unsigned)(st.st_mode & 07777));
    }
    if (mail_uid != (uid_t)-1 && (st.st_uid != mail_uid || st.st_gid != mail_gid)) {
        if (fchown(fd, mail_uid, mail_gid) < 0)
            log_warn("chown %s: %m", strbuf_str(path));
        else
            note("%s: owner changed to %s", strbuf_str(path), var_mail_owner);
    }
    close(fd);
    strbuf_free(&path);
}

static void fix_dir_perms(const char *queue)
{
    struct strbuf *path = strbuf_new(128);
    struct stat st;

    strbuf_printf(path, "%s/%s", var_queue_directory, queue);
    if (lstat(strbuf_str(path), &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_warn("missing queue directory %s: run facteur check", strbuf_str(path));
        exit_status = 1;
    } else {
        if ((st.st_mode & 07777) != 0700) {
            if (chmod(strbuf_str(path), 0700) < 0)
                log_warn("chmod %s: %m", strbuf_str(path));
            else
                note("%s: mode %04o changed to 0700", strbuf_str(path),
                     (unsigned)(st.st_mode & 07777));
        }
        if (mail_uid != (uid_t)-1 && (st.st_uid != mail_uid || st.st_gid != mail_gid)) {
            if (lchown(strbuf_str(path), mail_uid, mail_gid) < 0)
                log_warn("chown %s: %m", strbuf_str(path));
            else
                note("%s: owner changed to %s", strbuf_str(path), var_mail_owner);
        }
    }
    strbuf_free(&path);
}

/* The ID encodes the file's inode: a file restored from a backup (new
 * inode) gets the ID its inode calls for, so it cannot collide with a
 * newer message.  Returns the (possibly new) ID in qid. */
static void fix_name(const char *queue, char qid[QID_BUFSIZE], const struct stat *st)
{
    struct strbuf *from = strbuf_new(128), *to = strbuf_new(128);
    char new_qid[QID_BUFSIZE];
    struct timeval tv;
    uint64_t ino;

    if (qid_decode(qid, &tv, &ino) < 0 || ino == (uint64_t)st->st_ino
        || qid_make(new_qid, &tv, (uint64_t)st->st_ino) < 0)
        goto out;
    queue_scan_path(from, var_queue_directory, queue, qid);
    queue_scan_path(to, var_queue_directory, queue, new_qid);
    if (renameat2(AT_FDCWD, strbuf_str(from), AT_FDCWD, strbuf_str(to), RENAME_NOREPLACE) < 0) {
        log_warn("rename %s to %s: %m", strbuf_str(from), strbuf_str(to));
        exit_status = 1;
        goto out;
    }
    for (const char *suffix = ""; suffix != NULL; suffix = *suffix ? NULL : ".warned") {
        strbuf_printf(from, "%s/defer/%s%s", var_queue_directory, qid, suffix);
        strbuf_printf(to, "%s/defer/%s%s", var_queue_directory, new_qid, suffix);
        if (rename(strbuf_str(from), strbuf_str(to)) < 0 && errno != ENOENT)
            log_warn("rename %s to %s: %m", strbuf_str(from), strbuf_str(to));
    }
    note("%s: renamed to %s (the queue ID did not match the file's inode)", qid, new_qid);
    strcpy(qid, new_qid);
out:
    strbuf_free(&from);
    strbuf_free(&to);
}

/* Check every message of one queue; returns the number moved to corrupt/. */
static size_t check_queue(const char *queue)
{
    struct strbuf *why = strbuf_new(128), *path = strbuf_new(128), *reason = strbuf_new(128);
    struct queue_entry *list = NULL;
    size_t n = 0, moved = 0;
    bool owned = strcmp(queue, "maildrop") != 0;   /* maildrop files are the sender's */

    if (queue_scan_list(var_queue_directory, queue, &list, &n, why) < 0) {
        log_error("%s", strbuf_str(why));
        exit_status = 1;
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        char *qid = list[i].qid;
        struct qfile *qf;
        struct stat st;
        bool corrupt = false;

        queue_scan_path(path, var_queue_directory, queue, qid);
        if (lstat(strbuf_str(path), &st) < 0)
            continue;                       /* taken by qmgr meanwhile */
        if (!S_ISREG(st.st_mode)) {
            log_warn("%s: not a regular file: left alone", strbuf_str(path));
            exit_status = 1;
            continue;
        }
        strbuf_reset(why);
        if ((qf = qfile_open(strbuf_str(path), 0, &corrupt, why)) != NULL) {
            qfile_close(&qf);
            /* qmgr holds active/ files by name; pickup names maildrop/
             * files anew. */
            if (strcmp(queue, "active") != 0 && owned)
                fix_name(queue, qid, &st);
            if (owned)
                fix_file_perms(queue, qid);
            continue;
        }
        if (!corrupt) {
            if (errno != ENOENT)
                log_warn("%s", strbuf_str(why));
            continue;
        }
        strbuf_set(reason, strbuf_str(why));
        if (queue_move(var_queue_directory, queue, "corrupt", qid, false, why) < 0) {
            log_error("%s", strbuf_str(why));
            exit_status = 1;
            continue;
        }
        note("%s: %s: moved to the corrupt queue", qid, strbuf_str(reason));
        moved++;
    }
    free(list);
    strbuf_free(&why);
    strbuf_free(&path);
    strbuf_free(&reason);
    return moved;
}

/* Defer logs whose message is in no queue any more (twice looked for: a
 * message may move between queues while we look). */
static size_t purge_defer_logs(void)
{
    struct strbuf *dir = strbuf_new(128), *why = strbuf_new(128);
    struct dirent *de;
    size_t removed = 0;
    DIR *d;

    strbuf_printf(dir, "%s/defer", var_queue_directory);
    if ((d = opendir(strbuf_str(dir))) == NULL) {
        if (errno != ENOENT)
            log_warn("open directory %s: %m", strbuf_str(dir));
        strbuf_free(&dir);
        strbuf_free(&why);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        char qid[QID_BUFSIZE];
        size_t len = strcspn(de->d_name, ".");

        if (len >= QID_BUFSIZE || !qid_validn(de->d_name, len)
            || (de->d_name[len] != 0 && strcmp(de->d_name + len, ".warned") != 0))
            continue;
        memcpy(qid, de->d_name, len);
        qid[len] = 0;
        if (queue_scan_find(var_queue_directory, qid) != NULL
            || queue_scan_find(var_queue_directory, qid) != NULL)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
        else if (errno != ENOENT)
            log_warn("remove %s/%s: %m", strbuf_str(dir), de->d_name);
    }
    closedir(d);
    if (removed > 0 && fileops_fsync_dir(strbuf_str(dir), why) < 0)
        log_warn("%s", strbuf_str(why));
    strbuf_free(&dir);
    strbuf_free(&why);
    return removed;
}

static void purge_tmp(void)
{
    struct strbuf *why = strbuf_new(128);
    int total = 0, n;

    for (const char *const *q = queue_scan_queues; *q != NULL; q++) {
        strbuf_reset(why);
        /* Any age: qfile_purge_tmp_in keeps files whose writer runs. */
        if ((n = qfile_purge_tmp_in(var_queue_directory, *q, 0, why)) < 0) {
            if (errno != ENOENT) {
                log_error("%s", strbuf_str(why));
                exit_status = 1;
            }
            continue;
        }
        total += n;
    }
    if (total > 0)
        log_info("Deleted: %d temporary file%s", total, total == 1 ? "" : "s");
    strbuf_free(&why);
}

static void structure_check(void)
{
    static const char *const checked[] = {"maildrop", "incoming", "active", "deferred", "hold", NULL};
    size_t corrupt = 0, logs;

    for (const char *const *q = (const char *const[]){"incoming", "active", "deferred", "hold",
                                                      "corrupt", "defer", NULL};
         *q != NULL; q++)
        fix_dir_perms(*q);
    purge_tmp();
    for (const char *const *q = checked; *q != NULL; q++)
        corrupt += check_queue(*q);
    if (corrupt > 0)
        log_warn("Moved to the corrupt queue: %zu message%s", corrupt, corrupt == 1 ? "" : "s");
    if ((logs = purge_defer_logs()) > 0)
        log_info("Deleted: %zu stale defer log%s", logs, logs == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    bool check = false, purge = false, any = false;
    struct strbuf *why;
    int ch;

    log_init("facteur-super", LOG_DEST_STDERR | LOG_DEST_SYSLOG);
    while ((ch = getopt(argc, argv, "c:d:h:H:pr:sv")) != -1) {
        enum super_op op;

        switch (ch) {
        case 'c':
            confdir = optarg;
            continue;
        case 'p':
            purge = true;
            continue;
        case 's':
            check = true;
            continue;
        case 'v':
            log_set_verbose(true);
            continue;
        case 'd':
            op = OP_DELETE;
            break;
        case 'H':
            op = OP_RELEASE;
            break;
        case 'h':
            op = OP_HOLD;
            break;
        case 'r':
            op = OP_REQUEUE;
            break;
        default:
            usage();
        }
        if (strcmp(optarg, "-") == 0)
            id_add_stdin(&op_ids[op]);
        else
            id_add(&op_ids[op], optarg);
        any = true;
    }
    for (int i = optind; i < argc; i++) {
        if (!queue_scan_is_queue(argv[i]))
            log_fatal("unknown queue name: %.100s", argv[i]);
        user_queues = xreallocarray(user_queues, n_user_queues + 1, sizeof(*user_queues));
        user_queues[n_user_queues++] = argv[i];
    }
    if (!any && !check && !purge)
        usage();
    for (size_t i = 0; i < n_user_queues; i++)
        if (op_ids[OP_REQUEUE].n > 0 && strcmp(user_queues[i], "active") == 0)
            log_warn("-r leaves the active queue alone: qmgr is delivering those messages");
    why = strbuf_new(128);
    if (conf_load(confdir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    /* The mail log, when we may write it (syslog has the lines anyway). */
    if (*var_maillog_file)
        (void)log_set_file(var_maillog_file);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(var_mail_owner);

        if (pw == NULL)
            log_fatal("unknown mail_owner user: %s", var_mail_owner);
        mail_uid = pw->pw_uid;
        mail_gid = pw->pw_gid;
    }
    if (check)
        structure_check();
    else if (purge)
        purge_tmp();
    for (int op = 0; op < OP_COUNT; op++) {
        size_t n;

        if (op_ids[op].n == 0)
            continue;
        n = op_run((enum super_op)op);
        log_info("%s: %zu message%s", op_desc[op].summary, n, n == 1 ? "" : "s");
        if (op == OP_REQUEUE && n > 0) {
            why = strbuf_new(128);
            /* On failure trigger_send has said so; qmgr's next incoming
             * scan takes the mail anyway. */
            (void)queue_wake_qmgr(var_queue_directory, why);
            strbuf_free(&why);
        }
        for (size_t i = 0; i < op_ids[op].n; i++)
            free(op_ids[op].ids[i]);
        free(op_ids[op].ids);
    }
    free(user_queues);
    conf_unload();
    return exit_status;
}
