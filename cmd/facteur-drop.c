/*
 * facteur-drop - write a locally submitted message into maildrop/.
 *
 * Called by sendmail (never by users directly); installed setgid
 * $setgid_group so that it alone can write into the maildrop directory
 * (mode 1730).  It reads one message in the drop format (facteur-drop(1))
 * on stdin, writes it as a queue file with qfile_create_in(queue_dir,
 * "maildrop"), syncs it and the directory, prints the maildrop queue ID,
 * and exits 0 only then: the message is durable.  pickup(8) takes it from
 * there (woken through public/pickup).
 *
 * Trust: the caller is any local user.  Every record is checked by
 * cleanup_drop_check (lib/cleanup_drop.c: bounds, order, no control
 * characters, only the full_name attribute) before it is written, the
 * content is bounded by message_size_limit, the arrival time is ours, and
 * the file's owner (the real uid) is what pickup trusts for "from userid".
 * The set-group-ID privilege is held only while the file is created and
 * committed; FACTEUR_CONFIG_DIR is ignored when running set-group-ID for
 * an ordinary user (an alternate main.cf could name another queue).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "conf.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "strbuf.h"
#include "trigger.h"

static gid_t real_gid, priv_gid;

/* Drop or regain the set-group-ID group (the saved set-group-ID keeps it). */
static void priv_set(bool on)
{
    if (real_gid == priv_gid)
        return;
    if (setresgid((gid_t)-1, on ? priv_gid : real_gid, (gid_t)-1) < 0)
        log_fatal("setresgid: %m");
}

/* Read exactly n bytes; 1 done, 0 EOF before the first byte, -1 error or
 * EOF inside. */
static int read_full(int fd, void *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return done == 0 ? 0 : -1;
        done += (size_t)r;
    }
    return 1;
}

/* A bad input: say why and exit without queueing anything. */
static void __attribute__((noreturn)) bad_input(struct qfile_writer **wp, const char *why)
{
    priv_set(true);
    qfile_writer_free(wp);      /* removes the unfinished file */
    log_error("invalid message: %s", why);
    exit(EX_DATAERR);
}

/* Make the file readable by pickup (mail_owner): maildrop/ itself is not
 * searchable by others, so the content stays private. */
static void make_readable(struct qfile_writer *w)
{
    int fd = open(qfile_writer_path(w), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0 || fchmod(fd, 0644) < 0)
        log_fatal("%s: %m", qfile_writer_path(w));
    close(fd);
}

int main(int argc, char **argv)
{
    struct strbuf *why = strbuf_new(128), *data = strbuf_new(256);
    struct qfile_writer *w = NULL;
    struct cleanup_drop drop;
    bool writer_failed = false;
    unsigned char hdr[CLEANUP_DROP_HDR];
    char qid[QID_BUFSIZE];

    real_gid = getgid();
    priv_gid = getegid();
    priv_set(false);
    log_init("facteur-drop", LOG_DEST_STDERR);
    if (argc != 1) {
        log_error("usage: facteur-drop < message (see facteur-drop(1))");
        return EX_USAGE;
    }
    if (real_gid != priv_gid && getuid() != 0)
        unsetenv("FACTEUR_CONFIG_DIR");
    if (conf_load(NULL, why) < 0) {
        log_error("%s", strbuf_str(why));
        return EX_CONFIG;
    }
    umask(077);

    priv_set(true);
    w = qfile_create_in(var_queue_directory, "maildrop", why);
    if (w != NULL)
        make_readable(w);
    priv_set(false);
    if (w == NULL) {
        log_error("%s", strbuf_str(why));
        return EX_TEMPFAIL;
    }
    /* Records until E, each checked (cleanup_drop_check) before it is
     * written; the descriptor stays open without the group. */
    cleanup_drop_init(&drop, var_message_size_limit > 0 ? (uint64_t)var_message_size_limit : 0);
    while (!drop.ended) {
        int rc = read_full(0, hdr, sizeof(hdr)), type;
        uint32_t len;

        if (rc == 0)
            bad_input(&w, "end of input before the end record");
        if (rc < 0)
            bad_input(&w, "input cut short");
        if (cleanup_drop_header(&drop, hdr, &type, &len, why) < 0)
            bad_input(&w, strbuf_str(why));
        strbuf_reset(data);
        if (strbuf_reserve(data, len + 1) < 0 || (len > 0 && read_full(0, data->data, len) != 1))
            bad_input(&w, "input cut short");
        data->len = len;
        data->data[len] = '\0';
        if (cleanup_drop_check(&drop, type, data->data, len, why) < 0)
            bad_input(&w, strbuf_str(why));
        if (writer_failed)
            continue;   /* read on to the end; the commit reports the error */
        switch (type) {
        case QFILE_REC_SENDER:
            rc = qfile_add_sender(w, data->data);
            break;
        case QFILE_REC_RCPT:
            rc = qfile_add_rcpt(w, data->data + 1, NULL, (unsigned char)data->data[0]);
            break;
        case QFILE_REC_RET:
            rc = qfile_add_ret(w, data->data[0]);
            break;
        case QFILE_REC_ENVID:
            rc = qfile_add_envid(w, data->data);
            break;
        case QFILE_REC_ATTR:
            rc = qfile_add_attr(w, data->data, data->data + strlen(data->data) + 1);
            break;
        case QFILE_REC_CONTENT:
            rc = qfile_add_content(w, data->data, len);
            break;
        default:
            rc = 0;
            break;
        }
        /* Input was checked above: a writer failure is an I/O error. */
        if (rc < 0)
            writer_failed = true;
    }
    if (read_full(0, hdr, 1) != 0)
        bad_input(&w, "data after the end record");

    snprintf(qid, sizeof(qid), "%s", qfile_writer_qid(w));
    priv_set(true);
    if (qfile_commit(w, why) < 0) {
        qfile_writer_free(&w);
        priv_set(false);
        log_error("%s", strbuf_str(why));
        return EX_TEMPFAIL;
    }
    qfile_writer_free(&w);
    priv_set(false);
    printf("%s\n", qid);
    if (fflush(stdout) != 0)
        log_warn("write queue ID: %m");
    /* Waking pickup is only a speed-up (it scans on its timer too): its
     * failure is not the user's business on stderr. */
    log_set_dest(LOG_DEST_SYSLOG);
    trigger_send(var_queue_directory, "pickup", "W", 1);
    strbuf_free(&why);
    strbuf_free(&data);
    return EX_OK;
}
