/*
 * test_anvil_table.c - anvil's counter table with an injected clock: one
 * table of event scripts (event, ident, time, expected counts) walked by
 * one driver, covering counts, fixed rate windows, expiry of idle idents,
 * the size bound, over-long idents, growth past many buckets and peaks.
 *
 * The table is part of the anvil daemon (anvil/anvil_table.c), not of
 * lib/, so this file compiles it in directly; it has no other dependency
 * than lib/mem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../anvil/anvil_table.c"

#define UNIT 1000   /* ms: the rate window of every scripted table */

struct step {
    enum anvil_event ev;
    const char *ident;
    uint64_t now;
    int rc;
    long count, rate, message_rate, recipient_rate;
};

#define END {ANVIL_EV_LOOKUP, NULL, 0, 0, 0, 0, 0, 0}
#define C ANVIL_EV_CONNECT
#define D ANVIL_EV_DISCONNECT
#define M ANVIL_EV_MESSAGE
#define R ANVIL_EV_RECIPIENT
#define L ANVIL_EV_LOOKUP

struct script {
    const char *label;
    size_t max_entries;
    struct step steps[16];
};

static const struct script scripts[] = {
    {"connect and disconnect", 100, {
        {C, "smtp:a", 0, 0, 1, 1, 0, 0},
        {C, "smtp:a", 10, 0, 2, 2, 0, 0},
        {D, "smtp:a", 20, 0, 1, 2, 0, 0},
        {D, "smtp:a", 30, 0, 0, 2, 0, 0},
        {D, "smtp:a", 40, 0, 0, 2, 0, 0},            /* never below zero */
        {L, "smtp:a", 50, 0, 0, 2, 0, 0},
        END}},
    {"idents are independent", 100, {
        {C, "smtp:a", 0, 0, 1, 1, 0, 0},
        {C, "smtp:b", 0, 0, 1, 1, 0, 0},
        {C, "submission:a", 0, 0, 1, 1, 0, 0},
        {M, "smtp:a", 1, 0, 1, 1, 1, 0},
        {L, "smtp:b", 2, 0, 1, 1, 0, 0},
        END}},
    {"fixed window: a new one starts with the first event after it ends", 100, {
        {C, "smtp:a", 0, 0, 1, 1, 0, 0},
        {M, "smtp:a", 500, 0, 1, 1, 1, 0},
        {R, "smtp:a", 999, 0, 1, 1, 1, 1},
        {C, "smtp:a", 1000, 0, 2, 1, 0, 0},          /* window [1000, 2000) */
        {R, "smtp:a", 1500, 0, 2, 1, 0, 1},
        {R, "smtp:a", 1999, 0, 2, 1, 0, 2},
        {L, "smtp:a", 5000, 0, 2, 0, 0, 0},          /* a lookup rolls too */
        END}},
    {"lookups and disconnects of unknown idents create nothing", 1, {
        {L, "smtp:x", 0, 0, 0, 0, 0, 0},
        {D, "smtp:y", 0, 0, 0, 0, 0, 0},
        {C, "smtp:z", 0, 0, 1, 1, 0, 0},             /* the one slot is still free */
        END}},
    {"a full table refuses new idents, keeps known ones", 2, {
        {C, "smtp:a", 0, 0, 1, 1, 0, 0},
        {C, "smtp:b", 0, 0, 1, 1, 0, 0},
        {C, "smtp:c", 0, -1, 0, 0, 0, 0},
        {M, "smtp:c", 0, -1, 0, 0, 0, 0},
        {C, "smtp:a", 1, 0, 2, 2, 0, 0},
        END}},
    {"a full table makes room by expiring idle idents", 2, {
        {C, "smtp:a", 0, 0, 1, 1, 0, 0},
        {M, "smtp:b", 0, 0, 0, 0, 1, 0},             /* no open connection */
        {C, "smtp:c", 500, -1, 0, 0, 0, 0},          /* b's window is still open */
        {C, "smtp:c", 1000, 0, 1, 1, 0, 0},          /* b expired, c fits */
        {L, "smtp:b", 1001, 0, 0, 0, 0, 0},
        {L, "smtp:a", 1001, 0, 1, 0, 0, 0},          /* a has a connection: kept */
        END}},
};

static void run_script(const struct script *sc)
{
    struct anvil_table *t = anvil_table_new(UNIT, sc->max_entries);

    for (size_t i = 0; sc->steps[i].ident != NULL; i++) {
        const struct step *s = &sc->steps[i];
        struct anvil_counts c;
        int rc = anvil_table_event(t, s->ident, s->ev, s->now, &c);

        if (rc != s->rc || c.count != s->count || c.rate != s->rate ||
            c.message_rate != s->message_rate || c.recipient_rate != s->recipient_rate)
            fail_msg("%s, step %zu (%s at %llu): rc %d counts %ld/%ld/%ld/%ld, want %d "
                     "%ld/%ld/%ld/%ld", sc->label, i, s->ident, (unsigned long long)s->now,
                     rc, c.count, c.rate, c.message_rate, c.recipient_rate, s->rc, s->count,
                     s->rate, s->message_rate, s->recipient_rate);
    }
    anvil_table_free(&t);
    assert_null(t);
}

static void test_scripts(void **state)
{
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
        run_script(&scripts[i]);
}

static void test_expire(void **state)
{
    struct anvil_table *t = anvil_table_new(UNIT, 100);
    struct anvil_counts c;

    anvil_table_event(t, "smtp:open", C, 0, &c);
    anvil_table_event(t, "smtp:idle", M, 0, &c);
    anvil_table_event(t, "smtp:late", C, 600, &c);
    anvil_table_event(t, "smtp:late", D, 700, &c);
    assert_int_equal(anvil_table_size(t), 3);
    assert_int_equal(anvil_table_expire(t, 999), 0);
    assert_int_equal(anvil_table_expire(t, 1000), 1);    /* idle */
    assert_int_equal(anvil_table_size(t), 2);
    assert_int_equal(anvil_table_expire(t, 1600), 1);    /* late */
    assert_int_equal(anvil_table_expire(t, 100000), 0);  /* open stays */
    assert_int_equal(anvil_table_size(t), 1);
    anvil_table_free(&t);
    anvil_table_free(&t);
    anvil_table_free(NULL);
}

static void test_overlong_ident(void **state)
{
    struct anvil_table *t = anvil_table_new(UNIT, 100);
    struct anvil_counts c;
    char ident[ANVIL_IDENT_MAX + 2];

    memset(ident, 'a', sizeof(ident) - 1);
    ident[sizeof(ident) - 1] = 0;
    assert_int_equal(anvil_table_event(t, ident, C, 0, &c), -1);
    assert_int_equal(c.count, 0);
    assert_int_equal(anvil_table_size(t), 0);
    ident[ANVIL_IDENT_MAX] = 0;                           /* exactly the maximum */
    assert_int_equal(anvil_table_event(t, ident, C, 0, &c), 0);
    assert_int_equal(c.count, 1);
    anvil_table_free(&t);
}

/* Many idents: the bucket array grows and every ident keeps its count. */
static void test_growth(void **state)
{
    struct anvil_table *t = anvil_table_new(UNIT, 50000);
    struct anvil_counts c;
    char ident[64];

    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < 20000; i++) {
            snprintf(ident, sizeof(ident), "smtp:10.%d.%d", i / 256, i % 256);
            assert_int_equal(anvil_table_event(t, ident, C, 0, &c), 0);
            assert_int_equal(c.count, round);
        }
    }
    assert_int_equal(anvil_table_size(t), 20000);
    anvil_table_free(&t);
}

static void test_peaks(void **state)
{
    struct anvil_table *t = anvil_table_new(UNIT, 100);
    const struct anvil_peaks *p = anvil_table_peaks(t);
    struct anvil_counts c;

    anvil_table_event(t, "smtp:a", C, 0, &c);
    anvil_table_event(t, "smtp:b", C, 0, &c);
    anvil_table_event(t, "smtp:b", C, 0, &c);
    anvil_table_event(t, "smtp:b", D, 0, &c);
    anvil_table_event(t, "smtp:a", R, 0, &c);
    anvil_table_event(t, "smtp:a", R, 0, &c);
    anvil_table_event(t, "smtp:a", R, 0, &c);
    assert_int_equal(p->count.value, 2);
    assert_string_equal(p->count.ident, "smtp:b");
    assert_int_equal(p->rate.value, 2);
    assert_int_equal(p->recipient_rate.value, 3);
    assert_string_equal(p->recipient_rate.ident, "smtp:a");
    assert_int_equal(p->message_rate.value, 0);
    anvil_table_peaks_reset(t);
    assert_int_equal(p->count.value, 0);
    assert_int_equal(p->recipient_rate.value, 0);
    anvil_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_overlong_ident),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_peaks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
