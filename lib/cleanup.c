/*
 * cleanup.c - envelope and content cleanup into a queue file (cleanup.h).
 *
 * Called by smtpd (one message per DATA) and pickup (one per maildrop
 * file).  The envelope goes to the qfile writer as it arrives; the content
 * streams through: the Received: header is written before the first
 * message header, each header is parsed (lib/header), checked and written
 * as soon as it is complete, so memory stays bounded by one header
 * (header_size_limit) whatever the message size.  Body lines pass through
 * body_checks and are written at once.
 *
 * Trust: the content and the envelope strings come from a client.  Lines
 * are bounded by the header parser, addresses by qfile's own checks (a
 * control character in an address fails the writer: 451 or 5xx, never a
 * crash), and header_checks text is only ever logged through "%s".
 * The process-wide tables live in statics opened by cleanup_init().
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cleanup_int.h"
#include "fileops.h"
#include "header.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"

/* Process-wide tables (cleanup_init). */
static struct maps *header_checks;
static struct maps *body_checks;
static struct maps *sender_bcc;
static struct maps *rcpt_bcc;
static bool cleanup_ready;

int cleanup_init(struct strbuf *why)
{
    static const struct {
        struct maps **mp;
        char **value;
        const char *name;
    } tables[] = {
        {&header_checks, &var_header_checks, "header_checks"},
        {&body_checks, &var_body_checks, "body_checks"},
        {&sender_bcc, &var_sender_bcc_maps, "sender_bcc_maps"},
        {&rcpt_bcc, &var_recipient_bcc_maps, "recipient_bcc_maps"},
    };

    if (cleanup_ready)
        return 0;
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        const char *list = *tables[i].value ? *tables[i].value : "";

        if ((*tables[i].mp = maps_open(list, 0, why)) == NULL) {
            struct strbuf *tmp = strbuf_new(64);

            strbuf_printf(tmp, "%s: %s", tables[i].name, strbuf_str(why));
            strbuf_set(why, strbuf_str(tmp));
            strbuf_free(&tmp);
            cleanup_deinit();
            return -1;
        }
    }
    cleanup_ready = true;
    return 0;
}

void cleanup_deinit(void)
{
    maps_close(&header_checks);
    maps_close(&body_checks);
    maps_close(&sender_bcc);
    maps_close(&rcpt_bcc);
    cleanup_ready = false;
}

struct maps *cleanup_header_checks(void)
{
    return header_checks;
}

struct maps *cleanup_body_checks(void)
{
    return body_checks;
}

/* ---- Recipient set: no recipient twice in one file. ---- */

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t rcpt_hash(const char *addr, const char *orcpt)
{
    return fnv1a(orcpt, fnv1a(addr, 14695981039346656037ULL) ^ 0xff);
}

/* True if (addr, orcpt) was already present; adds it otherwise. */
static bool rcpt_seen(struct cleanup *c, const char *addr, const char *orcpt)
{
    uint64_t h = rcpt_hash(addr, orcpt);
    size_t i;

    if (c->rset_count * 2 >= c->rset_size) {
        size_t nsize = c->rset_size ? c->rset_size * 2 : 16;
        struct cleanup_rkey *n = xcalloc(nsize, sizeof(*n));

        for (i = 0; i < c->rset_size; i++) {
            if (c->rset[i].addr == NULL)
                continue;
            size_t j = c->rset[i].hash & (nsize - 1);

            while (n[j].addr != NULL)
                j = (j + 1) & (nsize - 1);
            n[j] = c->rset[i];
        }
        free(c->rset);
        c->rset = n;
        c->rset_size = nsize;
    }
    for (i = h & (c->rset_size - 1); c->rset[i].addr != NULL; i = (i + 1) & (c->rset_size - 1))
        if (c->rset[i].hash == h && strcmp(c->rset[i].addr, addr) == 0 &&
            strcmp(c->rset[i].orcpt, orcpt) == 0)
            return true;
    c->rset[i].hash = h;
    c->rset[i].addr = xstrdup(addr);
    c->rset[i].orcpt = xstrdup(orcpt);
    c->rset_count++;
    return false;
}

/* ---- Failure bookkeeping. ---- */

/* Doom the message with result and reply (the first reason wins). */
void cleanup_fail(struct cleanup *c, int result, const char *reply)
{
    if (c->result != CLEANUP_OK)
        return;
    c->result = result;
    strbuf_set(c->reply, reply);
}

static int writer_check(struct cleanup *c, int rc)
{
    if (rc < 0)
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: queue file write error");
    return rc;
}

static bool envelope_open(struct cleanup *c)
{
    if (c->state != CL_ENVELOPE) {
        log_warn("%s: envelope change after the message started", c->qid);
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        return false;
    }
    return true;
}

/* Local submission: "user" becomes "user@$myorigin" (append_at_myorigin). */
static char *local_qualify(const struct cleanup *c, const char *addr)
{
    if ((c->flags & CLEANUP_FL_LOCAL) && var_append_at_myorigin && *addr != '\0' &&
        strchr(addr, '@') == NULL && var_myorigin != NULL && *var_myorigin != '\0')
        return xasprintf("%s@%s", addr, var_myorigin);
    return xstrdup(addr);
}

/* ---- Public: open, envelope. ---- */

struct cleanup *cleanup_open(const char *queue_dir, unsigned flags, struct strbuf *why)
{
    struct cleanup *c;

    if (cleanup_init(why) < 0)
        return NULL;
    c = xcalloc(1, sizeof(*c));
    if ((c->w = qfile_create(queue_dir, why)) == NULL) {
        free(c);
        return NULL;
    }
    c->queue_dir = xstrdup(queue_dir);
    c->flags = flags;
    snprintf(c->qid, sizeof(c->qid), "%s", qfile_writer_qid(c->w));
    gettimeofday(&c->arrival, NULL);
    c->reply = strbuf_new(64);
    c->scratch = strbuf_new(256);
    c->sender = NULL;
    c->hp = header_parser_new((size_t)var_header_size_limit, CLEANUP_HEADERS_MAX);
    c->state = CL_ENVELOPE;
    c->result = CLEANUP_OK;
    return c;
}

const char *cleanup_qid(const struct cleanup *c)
{
    return c->qid;
}

int cleanup_set_sender(struct cleanup *c, const char *addr)
{
    if (!envelope_open(c))
        return -1;
    if (c->sender != NULL) {
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        return -1;
    }
    c->sender = local_qualify(c, addr);
    return writer_check(c, qfile_add_sender(c->w, c->sender));
}

/* Add a recipient to the file unless it is there already. */
static int add_rcpt(struct cleanup *c, const char *addr, const char *orcpt, unsigned notify)
{
    if (rcpt_seen(c, addr, orcpt ? orcpt : ""))
        return 0;
    if (c->nrcpt >= QFILE_RCPT_MAX) {
        cleanup_fail(c, CLEANUP_TEMPFAIL, "452 4.5.3 Error: too many recipients");
        return -1;
    }
    c->nrcpt++;
    if (c->first_rcpt == NULL)
        c->first_rcpt = xstrdup(addr);
    return writer_check(c, qfile_add_rcpt(c->w, addr, orcpt, notify));
}

int cleanup_add_rcpt(struct cleanup *c, const char *addr, const char *orcpt, unsigned notify)
{
    char *full;
    int rc;

    if (!envelope_open(c))
        return -1;
    if (*addr == '\0') {
        cleanup_fail(c, CLEANUP_REJECT, "550 5.1.3 Error: empty recipient address");
        return -1;
    }
    full = local_qualify(c, addr);
    rc = add_rcpt(c, full, orcpt, notify);
    if (rc == 0 && !(c->flags & CLEANUP_FL_NOBCC) && maps_count(rcpt_bcc) > 0 &&
        c->rcpt_bcc_n < CLEANUP_BCC_LOOKUPS_MAX) {
        /* recipient_bcc_maps are looked up now, added at the first line. */
        c->rcpt_bcc = xreallocarray(c->rcpt_bcc, c->rcpt_bcc_n + 1, sizeof(char *));
        c->rcpt_bcc[c->rcpt_bcc_n++] = xstrdup(full);
    }
    free(full);
    return rc;
}

int cleanup_set_ret(struct cleanup *c, char ret)
{
    if (!envelope_open(c))
        return -1;
    return writer_check(c, qfile_add_ret(c->w, ret));
}

int cleanup_set_envid(struct cleanup *c, const char *envid)
{
    if (!envelope_open(c))
        return -1;
    return writer_check(c, qfile_add_envid(c->w, envid));
}

int cleanup_set_flags(struct cleanup *c, unsigned flags)
{
    if (!envelope_open(c))
        return -1;
    return writer_check(c, qfile_add_flags(c->w, flags));
}

int cleanup_set_time(struct cleanup *c, const struct timeval *arrival)
{
    if (!envelope_open(c))
        return -1;
    c->arrival = *arrival;
    return writer_check(c, qfile_add_time(c->w, arrival));
}

/* Remember the client attributes cleanup logs with. */
static void note_attr(struct cleanup *c, const char *name, const char *value)
{
    char **slot = NULL;

    if (strcmp(name, QFILE_ATTR_CLIENT_NAME) == 0)
        slot = &c->client_name;
    else if (strcmp(name, QFILE_ATTR_CLIENT_ADDR) == 0)
        slot = &c->client_addr;
    else if (strcmp(name, QFILE_ATTR_HELO) == 0)
        slot = &c->helo;
    else if (strcmp(name, QFILE_ATTR_PROTOCOL) == 0)
        slot = &c->protocol;
    if (slot != NULL && *slot == NULL)
        *slot = xstrdup(value);
}

int cleanup_set_attr(struct cleanup *c, const char *name, const char *value)
{
    if (!envelope_open(c))
        return -1;
    if (strcmp(name, CLEANUP_ATTR_FULL_NAME) == 0) {
        /* Used for a From: header only; not stored. */
        free(c->full_name);
        c->full_name = xstrdup(value);
        return 0;
    }
    note_attr(c, name, value);
    return writer_check(c, qfile_add_attr(c->w, name, value));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

int cleanup_add_received(struct cleanup *c, const struct cleanup_received *r)
{
    static const struct {
        const char *name;
        size_t off;
    } attrs[] = {
        {QFILE_ATTR_CLIENT_NAME, offsetof(struct cleanup_received, client_name)},
        {QFILE_ATTR_CLIENT_ADDR, offsetof(struct cleanup_received, client_addr)},
        {QFILE_ATTR_HELO, offsetof(struct cleanup_received, helo)},
        {QFILE_ATTR_PROTOCOL, offsetof(struct cleanup_received, protocol)},
        {QFILE_ATTR_SASL_USER, offsetof(struct cleanup_received, sasl_user)},
        {QFILE_ATTR_TLS, offsetof(struct cleanup_received, tls_summary)},
    };
    int rc;

    if (!envelope_open(c))
        return -1;
    if (c->have_received) {
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        return -1;
    }
    c->have_received = true;
    c->recv.helo = dup_or_null(r->helo);
    c->recv.client_name = dup_or_null(r->client_name);
    c->recv.client_addr = dup_or_null(r->client_addr);
    c->recv.protocol = dup_or_null(r->protocol);
    c->recv.tls_summary = dup_or_null(r->tls_summary);
    c->recv.sasl_user = dup_or_null(r->sasl_user);
    c->recv.for_rcpt = dup_or_null(r->for_rcpt);
    c->recv.userid = dup_or_null(r->userid);
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        const char *v = *(const char *const *)((const char *)r + attrs[i].off);
        bool known = false;

        if (v == NULL)
            continue;
        if (strcmp(attrs[i].name, QFILE_ATTR_CLIENT_NAME) == 0)
            known = c->client_name != NULL;
        else if (strcmp(attrs[i].name, QFILE_ATTR_CLIENT_ADDR) == 0)
            known = c->client_addr != NULL;
        else if (strcmp(attrs[i].name, QFILE_ATTR_HELO) == 0)
            known = c->helo != NULL;
        else if (strcmp(attrs[i].name, QFILE_ATTR_PROTOCOL) == 0)
            known = c->protocol != NULL;
        else if (strcmp(attrs[i].name, QFILE_ATTR_SASL_USER) == 0)
            known = c->have_sasl_attr;
        else
            known = c->have_tls_attr;
        if (known)
            continue;
        if (strcmp(attrs[i].name, QFILE_ATTR_SASL_USER) == 0)
            c->have_sasl_attr = true;
        if (strcmp(attrs[i].name, QFILE_ATTR_TLS) == 0)
            c->have_tls_attr = true;
        /* Client-supplied text (HELO): made fit for a queue file attribute
         * rather than failing the message. */
        char *safe = xstrndup(v, QFILE_ATTR_VALUE_MAX);

        for (char *p = safe; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        note_attr(c, attrs[i].name, safe);
        rc = writer_check(c, qfile_add_attr(c->w, attrs[i].name, safe));
        free(safe);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- Content. ---- */

/* Write one content line (LF added), counting message_size_limit. */
int cleanup_write_line(struct cleanup *c, const char *line, size_t len)
{
    if (c->result != CLEANUP_OK)
        return -1;
    c->size += len + 1;
    if (var_message_size_limit > 0 && c->size > (uint64_t)var_message_size_limit) {
        cleanup_fail(c, CLEANUP_TOOBIG, "552 5.3.4 Error: message file too big");
        return -1;
    }
    if (writer_check(c, qfile_add_content(c->w, line, len)) < 0 ||
        writer_check(c, qfile_add_content(c->w, "\n", 1)) < 0)
        return -1;
    return 0;
}

/* Add the bcc recipients (always_bcc, sender_bcc_maps, recipient_bcc_maps):
 * the last envelope records, written before the first content byte. */
static void add_bcc(struct cleanup *c)
{
    struct strbuf *val = strbuf_new(64), *why = strbuf_new(64);
    size_t n = c->rcpt_bcc_n;

    if (c->flags & CLEANUP_FL_NOBCC)
        goto out;
    if (var_always_bcc != NULL && *var_always_bcc != '\0') {
        char *bcc = local_qualify(c, var_always_bcc);

        add_rcpt(c, bcc, NULL, QFILE_NOTIFY_NEVER);
        free(bcc);
    }
    if (c->sender != NULL && *c->sender != '\0' && maps_count(sender_bcc) > 0) {
        int rc = maps_lookup_addr(sender_bcc, c->sender, var_recipient_delimiter, 0, val,
                                  NULL, why);

        if (rc == MAP_FOUND && strbuf_len(val) > 0)
            add_rcpt(c, strbuf_str(val), NULL, QFILE_NOTIFY_NEVER);
        else if (rc == MAP_ERROR)
            goto tempfail;
    }
    for (size_t i = 0; i < n && maps_count(rcpt_bcc) > 0; i++) {
        int rc = maps_lookup_addr(rcpt_bcc, c->rcpt_bcc[i], var_recipient_delimiter, 0, val,
                                  NULL, why);

        if (rc == MAP_FOUND && strbuf_len(val) > 0)
            add_rcpt(c, strbuf_str(val), NULL, QFILE_NOTIFY_NEVER);
        else if (rc == MAP_ERROR)
            goto tempfail;
    }
    goto out;
tempfail:
    log_warn("%s: bcc lookup: %s", c->qid, strbuf_str(why));
    cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: temporary lookup failure");
out:
    strbuf_free(&val);
    strbuf_free(&why);
}

/* The first message line: envelope complete, write Received:. */
static void start_content(struct cleanup *c)
{
    add_bcc(c);
    c->state = CL_HEADER;
    if (c->have_received && c->result == CLEANUP_OK) {
        cleanup_received_format(c, c->scratch);
        /* Our own Received: counts as a hop, as in Postfix. */
        c->hops++;
        cleanup_write_header_text(c, strbuf_str(c->scratch), strbuf_len(c->scratch));
    }
}

/* The header section ended: add what is missing, then the empty line. */
static void end_header(struct cleanup *c, bool body_line_is_empty)
{
    if (c->state != CL_HEADER)
        return;
    c->state = CL_BODY;
    if (c->hops >= var_hopcount_limit)
        cleanup_fail(c, CLEANUP_HOPS, "554 5.4.0 Error: too many hops");
    cleanup_add_missing(c);
    if (!body_line_is_empty)
        cleanup_write_line(c, "", 0);
}

static int header_cb(const struct header *h, void *ctx)
{
    struct cleanup *c = ctx;

    cleanup_header(c, h);
    return 0;
}

int cleanup_line(struct cleanup *c, const char *line, size_t len)
{
    int rc;

    if (c->state == CL_ENVELOPE)
        start_content(c);
    if (c->state == CL_FINISHED) {
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        return -1;
    }
    if (c->result != CLEANUP_OK || c->discard)
        return -1;
    if (memchr(line, '\n', len) != NULL) {
        cleanup_fail(c, CLEANUP_REJECT, "550 5.6.0 Error: bare newline in message line");
        return -1;
    }
    if (c->state == CL_HEADER) {
        rc = header_parser_line(c->hp, line, len, header_cb, c);
        if (rc == HEADER_IN)
            return c->result == CLEANUP_OK && !c->discard ? 0 : -1;
        if (rc == HEADER_TOOLONG || rc == HEADER_TOOMANY) {
            cleanup_fail(c, CLEANUP_TOOBIG,
                         rc == HEADER_TOOLONG
                             ? "552 5.3.4 Error: message header size exceeds safety limit"
                             : "552 5.3.4 Error: too many message headers");
            log_info("%s: reject: %s", c->qid,
                     rc == HEADER_TOOLONG ? "message header size exceeds safety limit"
                                          : "too many message headers");
            return -1;
        }
        if (c->result != CLEANUP_OK || c->discard)
            return -1;
        end_header(c, len == 0);
    }
    if (cleanup_body(c, line, len) < 0)
        return -1;
    return c->result == CLEANUP_OK && !c->discard ? 0 : -1;
}

int cleanup_finish(struct cleanup *c, struct qfile_group *g, uint64_t *seq_r,
                   struct strbuf *reply_r)
{
    struct strbuf *why = strbuf_new(64);
    int rc;

    if (seq_r != NULL)
        *seq_r = 0;
    if (c->state == CL_FINISHED) {
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        goto done;
    }
    if (c->state == CL_ENVELOPE)
        start_content(c);
    if (c->state == CL_HEADER && c->result == CLEANUP_OK && !c->discard) {
        rc = header_parser_finish(c->hp, header_cb, c);
        if (rc == HEADER_END)
            end_header(c, true);
    }
    c->state = CL_FINISHED;
    if (c->result == CLEANUP_OK && c->discard) {
        strbuf_printf(c->reply, "250 2.0.0 Ok: queued as %s", c->qid);
        c->result = CLEANUP_DISCARDED;
        goto done;
    }
    if (c->result != CLEANUP_OK)
        goto done;
    if (c->sender == NULL || c->nrcpt == 0) {
        log_warn("%s: message without %s", c->qid, c->sender == NULL ? "sender" : "recipients");
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: internal error");
        goto done;
    }
    if (c->hold) {
        /* Straight into hold/: qmgr never sees a held message. */
        rc = qfile_writer_set_queue(c->w, "hold", why);
        if (rc == 0)
            rc = qfile_commit(c->w, why);
    } else if (g != NULL) {
        rc = qfile_group_prepare(g, c->w, seq_r, why);
    } else {
        rc = qfile_commit(c->w, why);
    }
    if (rc < 0) {
        log_warn("%s: %s", c->qid, strbuf_str(why));
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: queue file write error");
        goto done;
    }
    c->committed = true;
    strbuf_printf(c->reply, "250 2.0.0 Ok: queued as %s", c->qid);
done:
    if (reply_r != NULL)
        strbuf_set(reply_r, strbuf_str(c->reply));
    strbuf_free(&why);
    return c->result;
}

size_t cleanup_rcpt_count(const struct cleanup *c)
{
    return c->nrcpt;
}

uint64_t cleanup_size(const struct cleanup *c)
{
    return c->size;
}

void cleanup_free(struct cleanup **cp)
{
    struct cleanup *c;

    if (cp == NULL || (c = *cp) == NULL)
        return;
    /* An uncommitted writer removes its temp file. */
    qfile_writer_free(&c->w);
    header_parser_free(&c->hp);
    for (size_t i = 0; i < c->rset_size; i++) {
        free(c->rset[i].addr);
        free(c->rset[i].orcpt);
    }
    free(c->rset);
    for (size_t i = 0; i < c->rcpt_bcc_n; i++)
        free(c->rcpt_bcc[i]);
    free(c->rcpt_bcc);
    free((char *)c->recv.helo);
    free((char *)c->recv.client_name);
    free((char *)c->recv.client_addr);
    free((char *)c->recv.protocol);
    free((char *)c->recv.tls_summary);
    free((char *)c->recv.sasl_user);
    free((char *)c->recv.for_rcpt);
    free((char *)c->recv.userid);
    free(c->client_name);
    free(c->client_addr);
    free(c->helo);
    free(c->protocol);
    free(c->full_name);
    free(c->sender);
    free(c->first_rcpt);
    free(c->queue_dir);
    strbuf_free(&c->reply);
    strbuf_free(&c->scratch);
    free(c);
    *cp = NULL;
}
