/*
 * qmgr.c - the queue manager: main, queue scans, wakeups.
 *
 * A SERVER_TRIGGER daemon (keep_running) woken through public/qmgr by
 * smtpd, pickup, facteur flush and master's periodic wakeup.  Trigger
 * letters as Postfix: "I" (new mail in incoming/), "A" (scan deferred/
 * too, ignoring retry times), "F" (forget dead destinations); anything
 * else (master's "W") scans incoming/ and the deferred queue when its run
 * is due.  deferred/ is also scanned every queue_run_delay for files
 * whose retry time (their mtime) has come.
 *
 * At start every file left in active/ (a previous qmgr died) is loaded
 * again: done recipients are marked in the files, so nothing is
 * delivered twice.  A file a delivery agent still holds its lock on (the
 * agent outlived the qmgr that sent it the request, or qmgr gave up
 * waiting for it) is loaded only once the agent is done with it, checked
 * every QMGR_BUSY_RETRY_MS: loaded at once, the recipients that agent is
 * delivering would go out twice.  A file moves incoming/ -> active/ by rename, and the
 * rename is made durable by one sync of active/ per scan, before any
 * delivery of the files it moved.  The active queue is bounded by
 * qmgr_message_active_limit messages and qmgr_message_recipient_limit
 * recipient entries; what does not fit waits in incoming/ or deferred/.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "deliver_proto.h"
#include "events.h"
#include "fileops.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "qid.h"
#include "qmgr.h"
#include "server.h"

#define QMGR_SCAN_BATCH 1000    /* files moved per scan pass before yielding */
#define QMGR_BUSY_RETRY_MS 200  /* check again for files an agent has locked */

struct resolve *qmgr_resolve;
size_t qmgr_active_count;
size_t qmgr_entry_count;

static bool qmgr_scan_incoming_wanted;
static bool qmgr_scan_deferred_wanted;
static bool qmgr_scan_deferred_all;
static struct timer *qmgr_deferred_timer;
static char **qmgr_busy;                /* queue IDs in active/ an agent has locked */
static size_t qmgr_nbusy;
static struct timer *qmgr_busy_timer;

long qmgr_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long)tv.tv_sec * 1000000L + tv.tv_usec;
}

void qmgr_want_scan(void)
{
    qmgr_scan_incoming_wanted = true;
}

static bool qmgr_room(void)
{
    return qmgr_active_count < (size_t)var_qmgr_message_active_limit
           && qmgr_entry_count < (size_t)var_qmgr_message_recipient_limit;
}

static int qmgr_id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect the valid queue IDs in dir (at most max), sorted (oldest first). */
static char **qmgr_list(const char *dir, size_t max, size_t *n_r, bool due_only, time_t now)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **ids = NULL;
    size_t n = 0;

    *n_r = 0;
    if (d == NULL) {
        log_warn("open directory %s: %m", dir);
        return NULL;
    }
    while ((de = readdir(d)) != NULL && n < max) {
        if (!qid_valid(de->d_name))
            continue;
        if (due_only) {
            struct stat st;
            char path[320];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            if (stat(path, &st) < 0 || st.st_mtime > now)
                continue;
        }
        ids = xreallocarray(ids, n + 1, sizeof(char *));
        ids[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(ids, n, sizeof(char *), qmgr_id_cmp);
    *n_r = n;
    return ids;
}

static void qmgr_free_list(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void qmgr_busy_tick(void *ctx);

/* Load active/<qid>, or put it off while a delivery agent holds its
 * lock (logged the first time only). */
static void qmgr_load_when_free(const char *qid, bool first)
{
    struct strbuf *why = strbuf_new(64);
    char path[QID_BUFSIZE + 16];
    int busy;

    snprintf(path, sizeof(path), "active/%s", qid);
    busy = deliver_queue_file_busy(path, why);
    if (busy == 1) {
        if (first)
            log_info("%s: a delivery agent is still working on it: loaded when it is done",
                     qid);
        qmgr_busy = xreallocarray(qmgr_busy, qmgr_nbusy + 1, sizeof(char *));
        qmgr_busy[qmgr_nbusy++] = xstrdup(qid);
        if (qmgr_busy_timer == NULL)
            qmgr_busy_timer = timer_add(QMGR_BUSY_RETRY_MS, qmgr_busy_tick, NULL);
    } else if (busy == 0) {
        qmgr_message_load(qid);
    } else if (errno != ENOENT) {       /* ENOENT: taken away by facteur-super */
        log_warn("%s", strbuf_str(why));
    }
    strbuf_free(&why);
}

static void qmgr_busy_tick(void *ctx)
{
    char **ids = qmgr_busy;
    size_t n = qmgr_nbusy;

    (void)ctx;
    qmgr_busy_timer = NULL;
    qmgr_busy = NULL;
    qmgr_nbusy = 0;
    for (size_t i = 0; i < n; i++)
        qmgr_load_when_free(ids[i], false);
    qmgr_free_list(ids, n);
}

/*
 * Move due files from queue to active/ (while there is room), sync
 * active/ once, then load them.  Returns the number moved; *more_r says
 * whether files were left for lack of room or batch size.
 */
static size_t qmgr_scan(const char *queue, bool due_only, bool *more_r)
{
    struct strbuf *why = strbuf_new(64);
    char src[QID_BUFSIZE + 16], dst[QID_BUFSIZE + 16];
    char **ids, **moved;
    size_t n, nmoved = 0;

    *more_r = false;
    ids = qmgr_list(queue, QMGR_SCAN_BATCH, &n, due_only, time(NULL));
    if (ids == NULL) {
        strbuf_free(&why);
        return 0;
    }
    moved = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (!qmgr_room() || qmgr_active_count + nmoved >= (size_t)var_qmgr_message_active_limit) {
            *more_r = true;
            break;
        }
        snprintf(src, sizeof(src), "%s/%s", queue, ids[i]);
        snprintf(dst, sizeof(dst), "active/%s", ids[i]);
        if (rename(src, dst) < 0) {
            if (errno != ENOENT)        /* taken away by facteur-super: fine */
                log_warn("rename %s to %s: %m", src, dst);
            continue;
        }
        moved[nmoved++] = ids[i];
    }
    if (n == QMGR_SCAN_BATCH)
        *more_r = true;
    /* One sync of active/ for the whole batch, before any delivery of
     * the files moved.  The source directory needs none: a rename is
     * atomic, so after a power loss each file is under one name or the
     * other, and either queue is scanned again (its done marks travel
     * with it). */
    if (nmoved > 0 && fileops_fsync_dir("active", why) < 0)
        log_warn("%s", strbuf_str(why));
    for (size_t i = 0; i < nmoved; i++)
        qmgr_load_when_free(moved[i], true);
    free(moved);
    qmgr_free_list(ids, n);
    strbuf_free(&why);
    return nmoved;
}

static void qmgr_scan_deferred_now(void)
{
    bool more;

    qmgr_scan_deferred_wanted = false;
    qmgr_sched_revive();
    qmgr_scan("deferred", !qmgr_scan_deferred_all, &more);
    qmgr_scan_deferred_all = false;
    if (more)
        qmgr_scan_deferred_wanted = true;
}

static void qmgr_scan_incoming_now(void)
{
    bool more;

    qmgr_scan_incoming_wanted = false;
    qmgr_scan("incoming", false, &more);
    if (more)
        qmgr_scan_incoming_wanted = true;
}

/* Before each wait: run the scans asked for, then the scheduler.  When
 * both queues wait for room in the active queue, they take turns, so a
 * deferred backlog cannot keep new mail out, nor the reverse. */
static void qmgr_before_sleep(void *ctx)
{
    static bool incoming_first = true;

    (void)ctx;
    if (incoming_first) {
        if (qmgr_scan_incoming_wanted && qmgr_room())
            qmgr_scan_incoming_now();
        if (qmgr_scan_deferred_wanted && qmgr_room())
            qmgr_scan_deferred_now();
    } else {
        if (qmgr_scan_deferred_wanted && qmgr_room())
            qmgr_scan_deferred_now();
        if (qmgr_scan_incoming_wanted && qmgr_room())
            qmgr_scan_incoming_now();
    }
    incoming_first = !incoming_first;
    qmgr_sched_run();
}

static void qmgr_deferred_tick(void *ctx)
{
    (void)ctx;
    qmgr_deferred_timer = timer_add(var_queue_run_delay * 1000L, qmgr_deferred_tick, NULL);
    qmgr_scan_deferred_wanted = true;
}

/* The loop may sleep with nothing to wake it while a scan is still owed
 * (room freed by a finished message): poll for it once a second. */
static void qmgr_pending_tick(void *ctx)
{
    (void)ctx;
    timer_add(1000, qmgr_pending_tick, NULL);
}

static void qmgr_wake(const char *buf, size_t len)
{
    if (len == 0)
        qmgr_scan_incoming_wanted = true;
    for (size_t i = 0; i < len; i++) {
        switch (buf[i]) {
        case 'A':
            qmgr_scan_deferred_wanted = true;
            qmgr_scan_deferred_all = true;
            qmgr_scan_incoming_wanted = true;
            break;
        case 'F':
            qmgr_sched_revive();
            break;
        case 'I':
            qmgr_scan_incoming_wanted = true;
            break;
        default:
            /* master's periodic wakeup: a safety net for lost triggers */
            qmgr_scan_incoming_wanted = true;
            break;
        }
    }
}

static void qmgr_post_jail(void)
{
    struct strbuf *why = strbuf_new(64);
    size_t n;
    char **ids;

    if ((qmgr_resolve = resolve_new(why)) == NULL)
        log_fatal("cannot open lookup tables: %s", strbuf_str(why));
    for (const char *const *q = (const char *const[]){ "incoming", "active", "deferred",
                                                       "defer", "corrupt", NULL };
         *q != NULL; q++)
        if (fileops_mkdir_p(*q, 0700, why) < 0)
            log_fatal("%s", strbuf_str(why));
    /* Whatever a previous qmgr left in active/ is taken up again. */
    ids = qmgr_list("active", (size_t)-1, &n, false, 0);
    if (n > 0)
        log_info("recovering %zu message%s left in the active queue", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        qmgr_load_when_free(ids[i], true);
    qmgr_free_list(ids, n);
    qmgr_scan_incoming_wanted = true;
    qmgr_scan_deferred_wanted = true;
    event_before_sleep(qmgr_before_sleep, NULL);
    qmgr_deferred_timer = timer_add(var_queue_run_delay * 1000L, qmgr_deferred_tick, NULL);
    timer_add(1000, qmgr_pending_tick, NULL);
    strbuf_free(&why);
}

static const struct server_desc qmgr_desc = {
    .name = "qmgr",
    .kind = SERVER_TRIGGER,
    .post_jail = qmgr_post_jail,
    .wake_fn = qmgr_wake,
    .keep_running = true,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &qmgr_desc);
}
