/*
 * facteur-maildir - inspect and maintain Maildir mailboxes.
 *
 *   facteur-maildir deliver [-k key] [-a arrival] [-F flags] DIR < message
 *   facteur-maildir list DIR          uid, flags, size, name per message
 *   facteur-maildir uidlist DIR       UIDVALIDITY, next UID, UID map
 *   facteur-maildir quota [-d def] [-r] DIR
 *   facteur-maildir mkfolder DIR NAME
 *   facteur-maildir folders DIR       folders and subscriptions
 *   facteur-maildir clean DIR         remove stale tmp/ files (36 h)
 *
 * A thin front end over lib/maildir, for administrators and for the
 * Dovecot interoperability tests.  It runs as the invoking user and
 * touches only the Maildir named on the command line; message data comes
 * from standard input and is streamed, never held whole in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "maildir_quota.h"
#include "maildir_uidlist.h"
#include "mem.h"
#include "strbuf.h"

/* How long list/uidlist wait for dovecot-uidlist.lock. */
#define CMD_LOCK_TIMEOUT_MS 30000

static void usage(void)
{
    fprintf(stderr,
            "usage: facteur-maildir deliver [-k key] [-a arrival] [-F flags] DIR < message\n"
            "       facteur-maildir list DIR\n"
            "       facteur-maildir uidlist DIR\n"
            "       facteur-maildir quota [-d definition] [-r] DIR\n"
            "       facteur-maildir mkfolder DIR NAME\n"
            "       facteur-maildir folders DIR\n"
            "       facteur-maildir clean DIR\n");
    exit(2);
}

static int cmd_deliver(int argc, char **argv)
{
    struct maildir_deliver_opts opts = { 0 };
    struct strbuf *why = strbuf_new(128), *name = strbuf_new(256);
    struct maildir_delivery *d;
    char buf[65536];
    ssize_t n;
    int c, r;

    while ((c = getopt(argc, argv, "k:a:F:")) != -1) {
        switch (c) {
        case 'k':
            opts.key = optarg;
            break;
        case 'a':
            opts.arrival = (time_t)strtoll(optarg, NULL, 10);
            break;
        case 'F':
            if (maildir_flags_parse(optarg, strlen(optarg), &opts.flags, &opts.keywords,
                                    why) < 0)
                log_fatal("bad flags: %s", strbuf_str(why));
            opts.to_cur = true;
            break;
        default:
            usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    if (!maildir_exists(argv[optind]) && maildir_create(argv[optind], why) < 0)
        log_fatal("%s", strbuf_str(why));
    r = maildir_deliver_start(argv[optind], &opts, &d, why);
    if (r < 0)
        log_fatal("%s", strbuf_str(why));
    if (r == 0) {
        printf("already delivered\n");
        strbuf_free(&why);
        strbuf_free(&name);
        return 0;
    }
    while ((n = read(0, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            maildir_deliver_abort(&d);
            log_fatal("read standard input: %m");
        }
        if (maildir_deliver_write(d, buf, (size_t)n, why) < 0) {
            maildir_deliver_abort(&d);
            log_fatal("%s", strbuf_str(why));
        }
    }
    r = maildir_deliver_finish(&d, name, why);
    if (r < 0 || maildir_deliver_sync(argv[optind], opts.to_cur, why) < 0)
        log_fatal("%s", strbuf_str(why));
    printf("%s\n", r == 1 ? "already delivered" : strbuf_str(name));
    strbuf_free(&why);
    strbuf_free(&name);
    return 0;
}

/* Lock, sync and return the UID list of dir (fatal on failure). */
static struct maildir_uidlist *synced_uidlist(const char *dir, struct maildir_list **list_r)
{
    struct strbuf *why = strbuf_new(128);
    struct maildir_uidlist *ul = maildir_uidlist_new(dir);

    if (!maildir_exists(dir))
        log_fatal("%s is not a Maildir", dir);
    if (maildir_uidlist_lock(ul, CMD_LOCK_TIMEOUT_MS, why) < 0)
        log_fatal("%s", strbuf_str(why));
    if (maildir_list_scan(dir, MAILDIR_SCAN_STAT, list_r, why) < 0 ||
        maildir_uidlist_sync(ul, *list_r, why) < 0) {
        maildir_uidlist_unlock(ul);
        log_fatal("%s", strbuf_str(why));
    }
    maildir_uidlist_unlock(ul);
    strbuf_free(&why);
    return ul;
}

static int cmd_list(const char *dir)
{
    struct maildir_list *list = NULL;
    struct maildir_uidlist *ul = synced_uidlist(dir, &list);
    struct strbuf *flags = strbuf_new(64);
    size_t i;

    for (i = 0; i < maildir_uidlist_count(ul); i++) {
        const struct maildir_uidlist_rec *r = maildir_uidlist_rec(ul, i);
        struct maildir_entry *e = maildir_list_find(list, r->name, strlen(r->name));

        if (e == NULL)
            continue;
        strbuf_reset(flags);
        maildir_flags_format(flags, e->flags, e->keywords);
        printf("%u %s %llu %s%s\n", r->uid, strbuf_len(flags) > 0 ? strbuf_str(flags) : "-",
               (unsigned long long)e->size, e->in_new ? "new/" : "cur/", e->name);
    }
    strbuf_free(&flags);
    maildir_list_free(&list);
    maildir_uidlist_free(&ul);
    return 0;
}

static int cmd_uidlist(const char *dir)
{
    struct maildir_list *list = NULL;
    struct maildir_uidlist *ul = synced_uidlist(dir, &list);
    size_t i;

    printf("uidvalidity %u\nnext_uid %u\nguid %s\nmessages %zu\n",
           maildir_uidlist_uidvalidity(ul), maildir_uidlist_next_uid(ul),
           maildir_uidlist_guid(ul), maildir_uidlist_count(ul));
    for (i = 0; i < maildir_uidlist_count(ul); i++) {
        const struct maildir_uidlist_rec *r = maildir_uidlist_rec(ul, i);

        printf("%u %s\n", r->uid, r->name);
    }
    maildir_list_free(&list);
    maildir_uidlist_free(&ul);
    return 0;
}

static int cmd_quota(int argc, char **argv)
{
    struct strbuf *why = strbuf_new(128), *def = strbuf_new(64);
    struct maildir_quota q;
    const char *want = NULL;
    bool recalc = false;
    int c, r;

    while ((c = getopt(argc, argv, "d:r")) != -1) {
        if (c == 'd')
            want = optarg;
        else if (c == 'r')
            recalc = true;
        else
            usage();
    }
    if (optind + 1 != argc)
        usage();
    r = recalc ? maildir_quota_recalc(argv[optind], want, &q, why)
               : maildir_quota_get(argv[optind], want, &q, why);
    if (r < 0)
        log_fatal("%s", strbuf_str(why));
    maildir_quota_format_def(def, q.limit_bytes, q.limit_count);
    printf("definition %s\nbytes %lld\nmessages %lld\nover_quota %s\n",
           strbuf_len(def) > 0 ? strbuf_str(def) : "none", (long long)q.bytes,
           (long long)q.count, maildir_quota_exceeded(&q, 0, 0) ? "yes" : "no");
    strbuf_free(&why);
    strbuf_free(&def);
    return 0;
}

static int cmd_mkfolder(const char *dir, const char *name)
{
    struct strbuf *why = strbuf_new(128);
    int r;

    if (!maildir_exists(dir) && maildir_create(dir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    r = maildir_folder_create(dir, name, why);
    if (r < 0 || maildir_subs_set(dir, name, true, why) < 0)
        log_fatal("%s", strbuf_str(why));
    printf("%s %s\n", name, r == 1 ? "exists" : "created");
    strbuf_free(&why);
    return 0;
}

static int cmd_folders(const char *dir)
{
    struct strbuf *why = strbuf_new(128);
    char **names = NULL, **subs = NULL;
    size_t i, n, ns;

    if (maildir_folder_list(dir, &names, &n, why) < 0 ||
        maildir_subs_read(dir, &subs, &ns, why) < 0)
        log_fatal("%s", strbuf_str(why));
    for (i = 0; i < n; i++)
        printf("folder %s\n", names[i]);
    for (i = 0; i < ns; i++)
        printf("subscribed %s\n", subs[i]);
    maildir_names_free(&names);
    maildir_names_free(&subs);
    strbuf_free(&why);
    return 0;
}

static int cmd_clean(const char *dir)
{
    struct strbuf *why = strbuf_new(128);
    int r = maildir_clean_tmp(dir, time(NULL), MAILDIR_TMP_STALE_SECS, why);

    if (r < 0)
        log_fatal("%s", strbuf_str(why));
    printf("removed %d\n", r);
    strbuf_free(&why);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd;

    log_init("facteur-maildir", LOG_DEST_STDERR);
    if (argc < 2)
        usage();
    cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "deliver") == 0)
        return cmd_deliver(argc, argv);
    if (strcmp(cmd, "quota") == 0)
        return cmd_quota(argc, argv);
    if (strcmp(cmd, "list") == 0 && argc == 2)
        return cmd_list(argv[1]);
    if (strcmp(cmd, "uidlist") == 0 && argc == 2)
        return cmd_uidlist(argv[1]);
    if (strcmp(cmd, "mkfolder") == 0 && argc == 3)
        return cmd_mkfolder(argv[1], argv[2]);
    if (strcmp(cmd, "folders") == 0 && argc == 2)
        return cmd_folders(argv[1]);
    if (strcmp(cmd, "clean") == 0 && argc == 2)
        return cmd_clean(argv[1]);
    usage();
}
