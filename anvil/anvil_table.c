/*
 * anvil_table.c - the counters behind anvil: a hash table of idents with
 * open-connection counts and fixed-window rates.
 *
 * Owns every entry; idents are copied in.  The caller (anvil.c) has already
 * checked that an ident is short and printable, but nothing here depends on
 * it beyond the length bound.  The hash is seeded at start-up (getrandom)
 * so a client cannot choose addresses that all land in one chain.
 * Growth doubles the bucket array; the entry count is capped by
 * max_entries.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "anvil.h"
#include "mem.h"

struct anvil_entry {
    struct anvil_entry *next;
    uint64_t window_start;      /* ms; the window is [start, start + unit) */
    struct anvil_counts c;
    char ident[];
};

struct anvil_table {
    struct anvil_entry **buckets;
    size_t nbuckets;            /* power of two */
    size_t size;
    size_t max_entries;
    uint64_t unit_ms;
    uint64_t seed;
    struct anvil_peaks peaks;
};

/* FNV-1a over the seed and the bytes. */
static uint64_t anvil_hash(const struct anvil_table *t, const char *s)
{
    uint64_t h = 14695981039346656037ULL ^ t->seed;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

struct anvil_table *anvil_table_new(uint64_t unit_ms, size_t max_entries)
{
    struct anvil_table *t = xcalloc(1, sizeof(*t));

    t->nbuckets = 256;
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    t->unit_ms = unit_ms ? unit_ms : 1;
    t->max_entries = max_entries;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
        t->seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ULL;
    return t;
}

void anvil_table_free(struct anvil_table **tp)
{
    struct anvil_table *t;

    if (tp == NULL || (t = *tp) == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct anvil_entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    free(t);
    *tp = NULL;
}

static void anvil_table_grow(struct anvil_table *t)
{
    size_t n = t->nbuckets * 2;
    struct anvil_entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < t->nbuckets; i++) {
        struct anvil_entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            size_t k = anvil_hash(t, e->ident) & (n - 1);
            next = e->next;
            e->next = b[k];
            b[k] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* A new window starts with the first event after the old one ended. */
static void anvil_entry_roll(const struct anvil_table *t, struct anvil_entry *e, uint64_t now)
{
    if (now >= e->window_start + t->unit_ms || now < e->window_start) {
        e->window_start = now;
        e->c.rate = 0;
        e->c.message_rate = 0;
        e->c.recipient_rate = 0;
    }
}

static void anvil_peak_note(struct anvil_peak *p, long value, const char *ident)
{
    if (value > p->value) {
        p->value = value;
        strncpy(p->ident, ident, ANVIL_IDENT_MAX);
        p->ident[ANVIL_IDENT_MAX] = 0;
    }
}

int anvil_table_event(struct anvil_table *t, const char *ident, enum anvil_event ev,
                      uint64_t now_ms, struct anvil_counts *r)
{
    size_t len = strnlen(ident, ANVIL_IDENT_MAX + 1);
    size_t k;
    struct anvil_entry *e;

    memset(r, 0, sizeof(*r));
    if (len > ANVIL_IDENT_MAX)
        return -1;
    k = anvil_hash(t, ident) & (t->nbuckets - 1);
    for (e = t->buckets[k]; e; e = e->next)
        if (strcmp(e->ident, ident) == 0)
            break;
    if (e == NULL) {
        /* Disconnects and lookups of unknown idents create nothing. */
        if (ev == ANVIL_EV_DISCONNECT || ev == ANVIL_EV_LOOKUP)
            return 0;
        if (t->size >= t->max_entries && anvil_table_expire(t, now_ms) == 0)
            return -1;
        if (t->size >= t->nbuckets)
            anvil_table_grow(t);
        k = anvil_hash(t, ident) & (t->nbuckets - 1);
        e = xcalloc(1, sizeof(*e) + len + 1);
        memcpy(e->ident, ident, len + 1);
        e->window_start = now_ms;
        e->next = t->buckets[k];
        t->buckets[k] = e;
        t->size++;
    }
    anvil_entry_roll(t, e, now_ms);
    switch (ev) {
    case ANVIL_EV_CONNECT:
        e->c.count++;
        e->c.rate++;
        anvil_peak_note(&t->peaks.count, e->c.count, ident);
        anvil_peak_note(&t->peaks.rate, e->c.rate, ident);
        break;
    case ANVIL_EV_DISCONNECT:
        if (e->c.count > 0)
            e->c.count--;
        break;
    case ANVIL_EV_MESSAGE:
        e->c.message_rate++;
        anvil_peak_note(&t->peaks.message_rate, e->c.message_rate, ident);
        break;
    case ANVIL_EV_RECIPIENT:
        e->c.recipient_rate++;
        anvil_peak_note(&t->peaks.recipient_rate, e->c.recipient_rate, ident);
        break;
    case ANVIL_EV_LOOKUP:
        break;
    }
    *r = e->c;
    return 0;
}

size_t anvil_table_expire(struct anvil_table *t, uint64_t now_ms)
{
    size_t dropped = 0;

    for (size_t i = 0; i < t->nbuckets; i++) {
        struct anvil_entry **pp = &t->buckets[i];
        while (*pp) {
            struct anvil_entry *e = *pp;
            if (e->c.count == 0 && (now_ms >= e->window_start + t->unit_ms
                                    || now_ms < e->window_start)) {
                *pp = e->next;
                free(e);
                t->size--;
                dropped++;
            } else {
                pp = &e->next;
            }
        }
    }
    return dropped;
}

size_t anvil_table_size(const struct anvil_table *t)
{
    return t->size;
}

const struct anvil_peaks *anvil_table_peaks(const struct anvil_table *t)
{
    return &t->peaks;
}

void anvil_table_peaks_reset(struct anvil_table *t)
{
    memset(&t->peaks, 0, sizeof(t->peaks));
}
