/*
 * facteur-cat.c - print queue files: facteur-cat [-c DIR] [-v] [-e] [-h]
 * [-b] [-q] ID|path...  The counterpart of postcat(1).
 *
 * An argument that is a valid queue ID is looked up in the queues (as
 * postcat -q does; -q insists on it); anything else is a file name.  The
 * file is shown record by record with qfile_walk(), which checks only the
 * framing, so a damaged file (no end record, a record cut short: what
 * facteur-super -s moves to corrupt/) is shown up to the damage and then
 * reported, with exit status 1.
 *
 * -e shows the envelope records, -h the message header, -b the body; the
 * default is all three.  Envelope values come from a file that may be
 * damaged and reach the terminal, so control characters in them are
 * printed as '?'; message content is printed as it is stored, as postcat
 * does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "params.h"
#include "qfile.h"
#include "qid.h"
#include "queue_scan.h"
#include "strbuf.h"

#define SHOW_ENVELOPE 0x01
#define SHOW_HEADER   0x02
#define SHOW_BODY     0x04

/* Walk state for one file. */
struct cat_state {
    const char *label;          /* "deferred/QID" or the path given */
    unsigned show;
    struct strbuf *out;
    bool content_started;       /* the MESSAGE CONTENTS line is out */
    bool in_header;             /* before the first empty line */
    bool line_start;            /* the last content byte was a '\n' */
    bool held_cr;               /* a '\r' at a header line start, undecided */
    bool shown_nl;              /* the last byte shown was a '\n' (or none shown) */
    bool seen_end;
    int records;
};

static void usage(void)
{
    fprintf(stderr, "usage: facteur-cat [-c config_dir] [-behqv] queue_id|file...\n");
    exit(2);
}

static void flush_out(struct strbuf *out)
{
    if (strbuf_len(out) > 0 && fwrite(strbuf_str(out), 1, strbuf_len(out), stdout) != strbuf_len(out))
        log_fatal("output write error: %m");
    strbuf_reset(out);
}

/* Append len bytes of an envelope value, control characters as '?'. */
static void put_value(struct strbuf *out, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        strbuf_appendc(out, p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i]);
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_time(struct strbuf *out, const unsigned char *d, uint32_t len)
{
    char date[64];
    struct tm tm;
    time_t t;

    if (len != 12) {
        strbuf_appendf(out, "message_arrival_time: (malformed, %u bytes)\n", len);
        return;
    }
    t = (time_t)(int64_t)get_be(d, 8);
    if (localtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
        strbuf_appendf(out, "message_arrival_time: %lld\n", (long long)t);
    else
        strbuf_appendf(out, "message_arrival_time: %s\n", date);
}

static void put_rcpt(struct strbuf *out, const unsigned char *d, uint32_t len)
{
    static const char *const notify_names[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
    size_t alen;
    const char *field;
    bool first = true;

    if (len < 4 || (alen = (size_t)get_be(d + 2, 2)) > len - 4) {
        strbuf_appendf(out, "recipient: (malformed, %u bytes)\n", len);
        return;
    }
    switch (d[0]) {
    case QFILE_RCPT_OPEN: field = "recipient"; break;
    case QFILE_RCPT_SENT: field = "done_recipient"; break;
    case QFILE_RCPT_BOUNCED: field = "bounced_recipient"; break;
    case QFILE_RCPT_DROPPED: field = "dropped_recipient"; break;
    default: field = "unknown_status_recipient"; break;
    }
    strbuf_appendf(out, "%s: ", field);
    put_value(out, d + 4, alen);
    strbuf_appendc(out, '\n');
    if (len - 4 > alen) {
        strbuf_append(out, "dsn_orig_rcpt: ");
        put_value(out, d + 4 + alen, len - 4 - alen);
        strbuf_appendc(out, '\n');
    }
    if (d[1] != 0) {
        strbuf_append(out, "dsn_notify_flags: ");
        for (int i = 0; i < 4; i++)
            if (d[1] & (1u << i)) {
                strbuf_appendf(out, "%s%s", first ? "" : ",", notify_names[i]);
                first = false;
            }
        if (d[1] & ~QFILE_NOTIFY_MASK)
            strbuf_appendf(out, "%s0x%02x", first ? "" : ",", d[1] & ~QFILE_NOTIFY_MASK);
        strbuf_appendc(out, '\n');
    }
}

static void put_flags(struct strbuf *out, const unsigned char *d, uint32_t len)
{
    static const char *const names[] = {"SMTPUTF8", "8BITMIME", "BINARYMIME", "7BIT"};
    unsigned flags;
    bool first = true;

    if (len != 4) {
        strbuf_appendf(out, "message_flags: (malformed, %u bytes)\n", len);
        return;
    }
    flags = (unsigned)get_be(d, 4);
    strbuf_append(out, "message_flags:");
    for (int i = 0; i < 4; i++)
        if (flags & (1u << i)) {
            strbuf_appendf(out, "%s%s", first ? " " : ",", names[i]);
            first = false;
        }
    if (flags & ~(unsigned)QFILE_FL_MASK)
        strbuf_appendf(out, "%s0x%x", first ? " " : ",", flags & ~(unsigned)QFILE_FL_MASK);
    strbuf_appendc(out, '\n');
}

static void put_envelope(struct cat_state *st, int type, const unsigned char *d, uint32_t len)
{
    struct strbuf *out = st->out;
    const unsigned char *nul;

    switch (type) {
    case QFILE_REC_VERSION:
        strbuf_append(out, "version: ");
        put_value(out, d, len);
        strbuf_appendc(out, '\n');
        break;
    case QFILE_REC_TIME:
        put_time(out, d, len);
        break;
    case QFILE_REC_SENDER:
        strbuf_append(out, "sender: ");
        put_value(out, d, len);
        strbuf_appendc(out, '\n');
        break;
    case QFILE_REC_RCPT:
        put_rcpt(out, d, len);
        break;
    case QFILE_REC_RET:
        strbuf_appendf(out, "dsn_ret: %s\n", len == 1 && d[0] == 'F' ? "FULL"
                       : len == 1 && d[0] == 'H' ? "HDRS" : "(malformed)");
        break;
    case QFILE_REC_ENVID:
        strbuf_append(out, "dsn_envid: ");
        put_value(out, d, len);
        strbuf_appendc(out, '\n');
        break;
    case QFILE_REC_FLAGS:
        put_flags(out, d, len);
        break;
    case QFILE_REC_ATTR:
        strbuf_append(out, "named_attribute: ");
        if ((nul = memchr(d, 0, len)) == NULL) {
            put_value(out, d, len);
        } else {
            put_value(out, d, (size_t)(nul - d));
            strbuf_appendc(out, '=');
            put_value(out, nul + 1, len - (size_t)(nul - d) - 1);
        }
        strbuf_appendc(out, '\n');
        break;
    default:
        strbuf_appendf(out, "unknown_record_type_0x%02x: %u bytes\n", (unsigned)type & 0xff, len);
        break;
    }
}

static void show_byte(struct cat_state *st, unsigned char c)
{
    strbuf_appendc(st->out, c);
    st->shown_nl = c == '\n';
}

/* The empty line after the header, shown only with both parts. */
static void put_separator(struct cat_state *st, bool cr)
{
    if ((st->show & SHOW_HEADER) && (st->show & SHOW_BODY)) {
        if (cr)
            show_byte(st, '\r');
        show_byte(st, '\n');
    }
}

/* Content bytes: split into header and body at the first empty line
 * ("\n" or "\r\n" at a line start), which belongs to neither. */
static void put_content(struct cat_state *st, const unsigned char *d, uint32_t len)
{
    if (!st->content_started && (st->show & (SHOW_HEADER | SHOW_BODY))) {
        strbuf_appendf(st->out, "*** MESSAGE CONTENTS %s ***\n", st->label);
        st->content_started = true;
        st->shown_nl = true;
    }
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = d[i];

        if (st->in_header) {
            if (st->held_cr) {
                st->held_cr = false;
                if (c == '\n') {
                    put_separator(st, true);
                    st->in_header = false;
                    st->line_start = true;
                    continue;
                }
                if (st->show & SHOW_HEADER)
                    show_byte(st, '\r');
                st->line_start = false;
            }
            if (st->line_start && c == '\n') {
                put_separator(st, false);
                st->in_header = false;
                continue;
            }
            if (st->line_start && c == '\r') {
                st->held_cr = true;
                continue;
            }
            if (st->show & SHOW_HEADER)
                show_byte(st, c);
        } else if (st->show & SHOW_BODY) {
            show_byte(st, c);
        }
        st->line_start = c == '\n';
    }
}

static int cat_record(int type, off_t off, const unsigned char *data, uint32_t len, void *ctx)
{
    static const unsigned char none[1];
    struct cat_state *st = ctx;

    st->records++;
    if (data == NULL && len > 0) {
        strbuf_appendf(st->out, "%s*** record '%c' at offset %lld: %u bytes, over the limit ***\n",
                       st->shown_nl ? "" : "\n", type >= 0x21 && type < 0x7f ? type : '?',
                       (long long)off, len);
        return 2;
    }
    if (data == NULL)
        data = none;            /* an empty record: no pointer to look at */
    if (st->records == 1 && (st->show & SHOW_ENVELOPE))
        strbuf_appendf(st->out, "*** ENVELOPE RECORDS %s ***\n", st->label);
    if (type == QFILE_REC_CONTENT) {
        put_content(st, data, len);
    } else if (type == QFILE_REC_END) {
        st->seen_end = len == 12;
        put_content(st, NULL, 0);       /* the heading, for empty content */
        if (st->show & SHOW_ENVELOPE) {
            if (!st->shown_nl)
                strbuf_appendc(st->out, '\n');
            st->shown_nl = true;
            if (len == 12)
                strbuf_appendf(st->out, "end: content_size=%llu recipient_count=%llu\n",
                               (unsigned long long)get_be(data, 8),
                               (unsigned long long)get_be(data + 8, 4));
            else
                strbuf_appendf(st->out, "end: (malformed, %u bytes)\n", len);
        }
    } else if (st->show & SHOW_ENVELOPE) {
        put_envelope(st, type, data, len);
    }
    if (strbuf_len(st->out) >= 65536)
        flush_out(st->out);
    return 0;
}

/* Show one file.  Returns 0, or 1 when it is damaged or unreadable. */
static int cat_file(const char *arg, unsigned show, bool by_id)
{
    struct strbuf *label = strbuf_new(128), *why = strbuf_new(128);
    struct cat_state st = {.show = show, .in_header = true, .line_start = true, .shown_nl = true};
    const char *queue;
    int fd, r, rc = 0;

    if (qid_valid(arg)) {
        if ((queue = queue_scan_find(var_queue_directory, arg)) == NULL) {
            log_error("%s: no such message in the queue", arg);
            strbuf_free(&label);
            strbuf_free(&why);
            return 1;
        }
        strbuf_printf(label, "%s/%s", queue, arg);
        strbuf_printf(why, "%s/%s", var_queue_directory, strbuf_str(label));
        fd = open(strbuf_str(why), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    } else if (by_id) {
        log_fatal("invalid queue ID: %.100s", arg);
    } else {
        strbuf_set(label, arg);
        fd = open(arg, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        log_error("open %s: %m", strbuf_str(label));
        strbuf_free(&label);
        strbuf_free(&why);
        return 1;
    }
    st.label = strbuf_str(label);
    st.out = strbuf_new(65536 + 1024);
    strbuf_reset(why);
    r = qfile_walk(fd, cat_record, &st, why);
    close(fd);
    if (st.held_cr && (show & SHOW_HEADER))
        show_byte(&st, '\r');
    if (!st.shown_nl)
        strbuf_appendc(st.out, '\n');
    if (r == 0 && st.seen_end)
        strbuf_appendf(st.out, "*** MESSAGE FILE END %s ***\n", st.label);
    flush_out(st.out);
    if (fflush(stdout) != 0)
        log_fatal("output write error: %m");
    if (r < 0) {
        log_error("%s: damaged queue file: %s", st.label, strbuf_str(why));
        rc = 1;
    } else if (r > 0) {
        log_error("%s: damaged queue file: a record over the length limit", st.label);
        rc = 1;
    } else if (!st.seen_end) {
        log_error("%s: damaged queue file: no valid end record", st.label);
        rc = 1;
    }
    strbuf_free(&st.out);
    strbuf_free(&label);
    strbuf_free(&why);
    return rc;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    unsigned show = 0;
    bool by_id = false;
    struct strbuf *why;
    int ch, rc = 0;

    log_init("facteur-cat", LOG_DEST_STDERR);
    while ((ch = getopt(argc, argv, "bc:ehqv")) != -1) {
        switch (ch) {
        case 'b':
            show |= SHOW_BODY;
            break;
        case 'c':
            confdir = optarg;
            break;
        case 'e':
            show |= SHOW_ENVELOPE;
            break;
        case 'h':
            show |= SHOW_HEADER;
            break;
        case 'q':
            by_id = true;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    if (show == 0)
        show = SHOW_ENVELOPE | SHOW_HEADER | SHOW_BODY;
    why = strbuf_new(128);
    if (conf_load(confdir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    for (int i = optind; i < argc; i++)
        if (cat_file(argv[i], show, by_id) != 0)
            rc = 1;
    conf_unload();
    return rc;
}
