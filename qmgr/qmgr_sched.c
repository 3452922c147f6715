/*
 * qmgr_sched.c - per-destination queues and the choice of the next
 * delivery.
 *
 * A destination is a (transport, next hop) pair.  Each has a FIFO of
 * recipient entries (those of one message kept together, so a request
 * can carry up to the transport's recipient limit of them), a concurrency
 * window and a failure count:
 *   - slow start: the window starts at QMGR_INITIAL_WINDOW (at most the
 *     limit), grows by one for each delivery that reached the peer and
 *     halves when the agent reports a failure of the destination itself
 *     (lib/deliver_proto "throttle");
 *   - the limit is <transport>_destination_concurrency_limit, else
 *     default_destination_concurrency_limit;
 *   - after QMGR_DEAD_FAILURES such failures in a row with no success the
 *     destination is dead: its queued entries are deferred at once and new
 *     ones too, until the next deferred-queue run or an "F" trigger, so an
 *     unreachable site is not hammered.
 * The scheduler walks destinations round robin, one delivery per
 * destination per pass, so one slow destination (its window full) never
 * holds up the others; the total in flight is bounded by
 * default_process_limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "deliver_proto.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qmgr.h"

#define QMGR_INITIAL_WINDOW 5
#define QMGR_DEAD_FAILURES  3
#define QMGR_HASH_SIZE      1024

struct qmgr_dest {
    char *transport, *nexthop;
    struct qmgr_entry *head, *tail;
    size_t count;
    int active, window, limit, rcpt_limit;
    int failures;
    time_t dead_until;
    char *dead_reason;
    struct qmgr_dest *next;     /* all destinations */
    struct qmgr_dest *hnext;    /* hash chain */
};

static struct qmgr_dest *qmgr_dests;
static struct qmgr_dest *qmgr_hash[QMGR_HASH_SIZE];
size_t qmgr_inflight;

const char *qmgr_dest_transport(const struct qmgr_dest *d)
{
    return d->transport;
}

const char *qmgr_dest_nexthop(const struct qmgr_dest *d)
{
    return d->nexthop;
}

static unsigned qmgr_hash_key(const char *transport, const char *nexthop)
{
    unsigned h = 2166136261u;

    for (const char *p = transport; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = nexthop; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % QMGR_HASH_SIZE;
}

/* A per-transport override "<transport>_<suffix>", else the default. */
static int qmgr_transport_param(const char *transport, const char *suffix, long dflt)
{
    char name[128];
    const char *v;
    long n;
    char *end;

    snprintf(name, sizeof(name), "%s_%s", transport, suffix);
    if ((v = conf_get(name)) == NULL || v[0] == '\0')
        return (int)dflt;
    n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 100000) {
        log_warn("%s = %s: not a number from 1 to 100000, using %ld", name, v, dflt);
        return (int)dflt;
    }
    return (int)n;
}

static struct qmgr_dest *qmgr_dest_find(const char *transport, const char *nexthop, bool create)
{
    unsigned h = qmgr_hash_key(transport, nexthop);
    struct qmgr_dest *d;

    for (d = qmgr_hash[h]; d != NULL; d = d->hnext)
        if (strcmp(d->transport, transport) == 0 && strcmp(d->nexthop, nexthop) == 0)
            return d;
    if (!create)
        return NULL;
    d = xcalloc(1, sizeof(*d));
    d->transport = xstrdup(transport);
    d->nexthop = xstrdup(nexthop);
    d->limit = qmgr_transport_param(transport, "destination_concurrency_limit",
                                    var_default_destination_concurrency_limit);
    d->rcpt_limit = qmgr_transport_param(transport, "destination_recipient_limit",
                                         var_default_destination_recipient_limit);
    if (d->rcpt_limit > DELIVER_RCPT_MAX)
        d->rcpt_limit = DELIVER_RCPT_MAX;
    d->window = d->limit < QMGR_INITIAL_WINDOW ? d->limit : QMGR_INITIAL_WINDOW;
    d->hnext = qmgr_hash[h];
    qmgr_hash[h] = d;
    d->next = qmgr_dests;
    qmgr_dests = d;
    return d;
}

static bool qmgr_dest_dead(const struct qmgr_dest *d)
{
    return d->dead_until != 0 && time(NULL) < d->dead_until;
}

/* Defer one entry because its destination is dead; frees it. */
static void qmgr_defer_dead(struct qmgr_dest *d, struct qmgr_entry *e)
{
    struct strbuf *text = strbuf_new(128);
    struct qmgr_message *msg = e->msg;

    strbuf_printf(text, "delivery temporarily suspended: %s",
                  d->dead_reason != NULL ? d->dead_reason : "destination unreachable");
    qmgr_log_rcpt(msg, e->index, e->addr, "none", "4.4.1", "deferred", strbuf_str(text));
    if (e->part != NULL)
        qmgr_part_done(e, DELIVER_DEFER, "4.4.1", strbuf_str(text), "none");
    else
        qmgr_message_defer(msg, e->index, e->addr, "4.4.1", strbuf_str(text), "none");
    qmgr_entry_free(e);
    strbuf_free(&text);
    qmgr_message_release(msg);
}

void qmgr_sched_enqueue(const char *transport, const char *nexthop, struct qmgr_entry *e)
{
    struct qmgr_dest *d = qmgr_dest_find(transport, nexthop, true);

    if (qmgr_dest_dead(d)) {
        qmgr_defer_dead(d, e);
        return;
    }
    e->next = NULL;
    if (d->tail != NULL)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
    d->count++;
}

/* Take the head entry and the entries of the same message after it. */
static size_t qmgr_dest_take(struct qmgr_dest *d, struct qmgr_entry ***batch_r)
{
    struct qmgr_entry **batch = xcalloc((size_t)d->rcpt_limit, sizeof(*batch));
    struct qmgr_message *msg = d->head->msg;
    size_t n = 0;

    while (d->head != NULL && d->head->msg == msg && n < (size_t)d->rcpt_limit) {
        struct qmgr_entry *e = d->head;
        d->head = e->next;
        e->next = NULL;
        batch[n++] = e;
        d->count--;
    }
    if (d->head == NULL)
        d->tail = NULL;
    *batch_r = batch;
    return n;
}

/* Free destinations with nothing queued, nothing in flight and no
 * dead mark to remember. */
static void qmgr_dest_gc(void)
{
    struct qmgr_dest **pp = &qmgr_dests;

    while (*pp != NULL) {
        struct qmgr_dest *d = *pp;
        if (d->head != NULL || d->active > 0 || qmgr_dest_dead(d)) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        for (struct qmgr_dest **hp = &qmgr_hash[qmgr_hash_key(d->transport, d->nexthop)];
             *hp != NULL; hp = &(*hp)->hnext)
            if (*hp == d) {
                *hp = d->hnext;
                break;
            }
        free(d->transport);
        free(d->nexthop);
        free(d->dead_reason);
        free(d);
    }
}

void qmgr_sched_run(void)
{
    size_t max_total = (size_t)var_default_process_limit;
    bool started = true;

    qmgr_dest_gc();
    while (started && qmgr_inflight < max_total) {
        started = false;
        for (struct qmgr_dest *d = qmgr_dests; d != NULL && qmgr_inflight < max_total;
             d = d->next) {
            struct qmgr_entry **batch;
            size_t n;

            if (d->head == NULL)
                continue;
            if (qmgr_dest_dead(d)) {
                while (d->head != NULL) {
                    struct qmgr_entry *e = d->head;
                    d->head = e->next;
                    d->count--;
                    qmgr_defer_dead(d, e);
                }
                d->tail = NULL;
                continue;
            }
            if (d->active >= d->window)
                continue;
            n = qmgr_dest_take(d, &batch);
            d->active++;
            qmgr_inflight++;
            qmgr_deliver_start(d, batch, n);
            free(batch);
            started = true;
        }
    }
}

void qmgr_sched_done(struct qmgr_dest *d, bool throttle, bool success, const char *reason)
{
    d->active--;
    qmgr_inflight--;
    if (success) {
        d->failures = 0;
        if (d->window < d->limit)
            d->window++;
    }
    if (!throttle)
        return;
    d->window = d->window > 1 ? d->window / 2 : 1;
    if (success || ++d->failures < QMGR_DEAD_FAILURES)
        return;
    {
        long pause = var_minimal_backoff_time < var_queue_run_delay ? var_minimal_backoff_time
                                                                     : var_queue_run_delay;
        d->dead_until = time(NULL) + (pause > 0 ? pause : 1);
    }
    free(d->dead_reason);
    d->dead_reason = xstrdup(reason != NULL ? reason : "destination unreachable");
    log_warn("%s: destination %s marked dead after %d failures: %s", d->transport, d->nexthop,
             d->failures, d->dead_reason);
    /* What waits for it is deferred by the next scheduler pass. */
}

void qmgr_sched_revive(void)
{
    for (struct qmgr_dest *d = qmgr_dests; d != NULL; d = d->next) {
        d->dead_until = 0;
        d->failures = 0;
    }
}
