/*
 * facteur-queue.c - list and flush the mail queue: facteur-queue
 * [-c DIR] [-v] -p | -j | -f | -s site | -i queue_id.  The counterpart of
 * postqueue(1); `mailq` (sendmail -bp) runs facteur-queue -p.
 *
 * -p prints the queue in Postfix's mailq format, -j one JSON object per
 * message (postqueue -j's fields); both read the queue files directly
 * (lib/queue_scan), so the invoking user needs read access to the queue
 * directories: root or mail_owner.  -f makes every deferred message due
 * and wakes qmgr (the same as `facteur flush`); -s and -i move matching
 * deferred messages to incoming/ with a fresh retry time, as Postfix's
 * flush service does, and wake qmgr.
 *
 * Trust: the command line is the user's (a queue ID must be a valid ID,
 * a site is bounded); the queue files are validated by qfile_open and a
 * damaged one is reported on stderr and skipped, never shown half-read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "params.h"
#include "qid.h"
#include "queue_scan.h"
#include "strbuf.h"

#define SITE_MAX 255            /* bytes of a -s site (a domain name) */

static void usage(void)
{
    fprintf(stderr, "usage: facteur-queue [-c config_dir] [-v] -p | -j | -f | -s site | -i queue_id\n");
    exit(2);
}

/* Write out and empty it; a closed pipe (mailq | head) ends us quietly. */
static void emit(struct strbuf *out)
{
    if (strbuf_len(out) > 0 && fwrite(strbuf_str(out), 1, strbuf_len(out), stdout) != strbuf_len(out))
        log_fatal("output write error: %m");
    strbuf_reset(out);
}

/* Fatal unless every queue can be listed: a user without access gets a
 * message that says how to get it. */
static void list_queue(const char *queue, struct queue_entry **list, size_t *n)
{
    struct strbuf *why = strbuf_new(128);

    if (queue_scan_list(var_queue_directory, queue, list, n, why) < 0) {
        if (errno == EACCES || errno == EPERM)
            log_fatal("%s (run as root or as mail_owner)", strbuf_str(why));
        log_fatal("%s", strbuf_str(why));
    }
    strbuf_free(&why);
}

static int show_queue(bool json)
{
    struct strbuf *out = strbuf_new(4096), *why = strbuf_new(128);
    struct queue_entry *list = NULL;
    uint64_t total = 0;
    size_t n = 0, shown = 0;
    int rc = 0;

    /* Every queue but corrupt/: those files cannot be shown as mail. */
    for (const char *const *q = queue_scan_queues; *q != NULL; q++)
        if (strcmp(*q, "corrupt") != 0)
            list_queue(*q, &list, &n);
    for (size_t i = 0; i < n; i++) {
        struct queue_msg m;
        bool corrupt;

        strbuf_reset(why);
        if (queue_msg_load(var_queue_directory, list[i].queue, list[i].qid, &m, &corrupt, why) < 0) {
            /* Gone since the listing (delivered, or moved by qmgr): not
             * an error.  Anything else is worth a line. */
            if (corrupt || errno != ENOENT) {
                log_warn("%s: %s", list[i].qid, strbuf_str(why));
                rc = 1;
            }
            continue;
        }
        if (json) {
            queue_format_json(out, &m);
        } else {
            if (shown == 0)
                queue_format_heading(out);
            else
                strbuf_appendc(out, '\n');
            queue_format_mailq(out, &m);
        }
        total += m.size;
        shown++;
        queue_msg_free(&m);
        emit(out);
    }
    if (!json)
        queue_format_summary(out, total, shown);
    emit(out);
    if (fflush(stdout) != 0)
        log_fatal("output write error: %m");
    free(list);
    strbuf_free(&out);
    strbuf_free(&why);
    return rc;
}

static int flush_all(void)
{
    struct strbuf *why = strbuf_new(128);

    if (queue_flush_all(var_queue_directory, why) < 0) {
        if (errno == EACCES || errno == EPERM)
            log_fatal("%s (run as root or as mail_owner)", strbuf_str(why));
        log_fatal("%s", strbuf_str(why));
    }
    strbuf_free(&why);
    return 0;
}

static void wake_qmgr(void)
{
    struct strbuf *why = strbuf_new(128);

    /* The moved files wait in incoming/ for qmgr's next scan anyway;
     * on failure trigger_send has said so. */
    (void)queue_wake_qmgr(var_queue_directory, why);
    strbuf_free(&why);
}

static int flush_site(const char *site)
{
    struct strbuf *why = strbuf_new(128);
    struct queue_entry *list = NULL;
    size_t n = 0, moved = 0;

    if (*site == 0 || strlen(site) > SITE_MAX || strpbrk(site, " \t\r\n/@") != NULL)
        log_fatal("invalid site name: %.100s", site);
    list_queue("deferred", &list, &n);
    for (size_t i = 0; i < n; i++) {
        struct queue_msg m;
        bool match;

        strbuf_reset(why);
        if (queue_msg_load(var_queue_directory, "deferred", list[i].qid, &m, NULL, why) < 0)
            continue;           /* gone, or corrupt: qmgr sets it aside */
        match = queue_msg_matches_site(&m, site);
        queue_msg_free(&m);
        if (!match)
            continue;
        if (queue_move(var_queue_directory, "deferred", "incoming", list[i].qid, true, why) == 0)
            moved++;
        else if (errno != ENOENT)
            log_warn("%s", strbuf_str(why));
    }
    if (moved > 0)
        wake_qmgr();
    free(list);
    strbuf_free(&why);
    return 0;
}

static int flush_one(const char *qid)
{
    struct strbuf *why = strbuf_new(128);
    int r;

    if (!qid_valid(qid))
        log_fatal("invalid queue ID: %.100s", qid);
    if ((r = queue_kick(var_queue_directory, qid, why)) < 0)
        log_fatal("%s", strbuf_str(why));
    wake_qmgr();
    strbuf_free(&why);
    return 0;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL, *arg = NULL;
    struct strbuf *why;
    int ch, mode = 0, rc;

    log_init("facteur-queue", LOG_DEST_STDERR);
    while ((ch = getopt(argc, argv, "c:fi:jps:v")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'f':
        case 'j':
        case 'p':
            if (mode != 0 && mode != ch)
                usage();
            mode = ch;
            break;
        case 'i':
        case 's':
            if (mode != 0)
                usage();
            mode = ch;
            arg = optarg;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        default:
            usage();
        }
    }
    if (optind != argc || mode == 0)
        usage();
    why = strbuf_new(128);
    if (conf_load(confdir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    switch (mode) {
    case 'p':
        rc = show_queue(false);
        break;
    case 'j':
        rc = show_queue(true);
        break;
    case 'f':
        rc = flush_all();
        break;
    case 's':
        rc = flush_site(arg);
        break;
    default:
        rc = flush_one(arg);
        break;
    }
    conf_unload();
    return rc;
}
