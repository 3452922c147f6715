/*
 * anvil.h - anvil's counter table, shared by anvil.c (the service) and
 * anvil_table.c (the counting).
 *
 * One entry per ident ("service:clientaddr"): the number of connections
 * open now, and the connections, messages and recipients counted in the
 * current rate window of anvil_rate_time_unit seconds (a fixed window that
 * starts with the first event after the previous one ended, as Postfix
 * anvil does).  An entry with no open connection disappears once its window
 * has ended.  The table is bounded: when full (after expiring what can be)
 * a new ident is refused and the client answers "unknown", so smtpd goes on
 * without the limit rather than blocking mail.
 *
 * Time is passed in by the caller (monotonic milliseconds), so the table
 * has no clock of its own.
 */
#ifndef FACTEUR_ANVIL_H
#define FACTEUR_ANVIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANVIL_IDENT_MAX 300         /* bytes in "service:clientaddr" */
#define ANVIL_TABLE_MAX 100000      /* idents tracked at once */

struct anvil_counts {
    long count;             /* connections open now */
    long rate;              /* connections in the current window */
    long message_rate;      /* messages in the current window */
    long recipient_rate;    /* recipients in the current window */
};

enum anvil_event { ANVIL_EV_CONNECT, ANVIL_EV_DISCONNECT, ANVIL_EV_MESSAGE,
                   ANVIL_EV_RECIPIENT, ANVIL_EV_LOOKUP };

struct anvil_table;

/* A table with rate windows of unit_ms and at most max_entries idents. */
struct anvil_table *anvil_table_new(uint64_t unit_ms, size_t max_entries);
void anvil_table_free(struct anvil_table **tp);

/* Apply one event to ident at time now_ms and report the counts after it.
 * DISCONNECT of an ident with no open connection is ignored (still 0).
 * Returns 0, or -1 when the table is full and ident is new (counts zero). */
int anvil_table_event(struct anvil_table *t, const char *ident, enum anvil_event ev,
                      uint64_t now_ms, struct anvil_counts *r);

/* Drop entries whose window ended and that have no open connection.
 * Returns how many were dropped. */
size_t anvil_table_expire(struct anvil_table *t, uint64_t now_ms);

/* Number of idents held. */
size_t anvil_table_size(const struct anvil_table *t);

/* The largest values seen since the last anvil_table_peaks_reset(), with
 * the ident that reached each (NULL when none). */
struct anvil_peak {
    long value;
    char ident[ANVIL_IDENT_MAX + 1];
};
struct anvil_peaks {
    struct anvil_peak count, rate, message_rate, recipient_rate;
};
const struct anvil_peaks *anvil_table_peaks(const struct anvil_table *t);
void anvil_table_peaks_reset(struct anvil_table *t);

#endif
