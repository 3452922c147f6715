/*
 * test_events.c - unit tests for lib/events.c.
 *
 * Pipes and socketpairs for readiness, short timers (at most a few tens of
 * milliseconds) for ordering and cancel, raise() for signals.  The loop is
 * process-wide state, so every test leaves nothing registered; every loop
 * here is bounded in iterations.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"

static int calls;
static int last_fd, last_events;

static void count_read(int fd, int events, void *ctx)
{
    char buf[64];

    calls++;
    last_fd = fd;
    last_events = events;
    if (ctx != NULL)
        *(int *)ctx += 1;
    (void)!read(fd, buf, sizeof(buf));
}

static void count_write(int fd, int events, void *ctx)
{
    calls++;
    last_fd = fd;
    last_events = events;
}

static void test_readiness(void **state)
{
    int p[2], sv[2], hits = 0;

    assert_int_equal(pipe(p), 0);
    calls = 0;
    event_read(p[0], count_read, &hits);
    /* Nothing to read: a zero wait runs nothing. */
    assert_int_equal(event_loop(0), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(event_loop(1000), 1);
    assert_int_equal(hits, 1);
    assert_int_equal(last_fd, p[0]);
    assert_int_equal(last_events, EVENT_READ);
    /* Disabled: readable again but not reported. */
    event_disable_read(p[0]);
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(event_loop(0), 0);
    /* Hangup: the reader learns with EVENT_ERROR. */
    event_read(p[0], count_read, &hits);
    assert_int_equal(event_loop(100), 1);     /* drains "y" */
    close(p[1]);
    assert_int_equal(event_loop(1000), 1);
    assert_true(last_events & EVENT_ERROR);
    assert_true(last_events & EVENT_READ);
    event_disable(p[0]);
    close(p[0]);

    /* Write interest on a socket: ready at once; read and write apart. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    calls = 0;
    event_write(sv[0], count_write, NULL);
    event_read(sv[0], count_read, NULL);
    assert_int_equal(event_loop(1000), 1);
    assert_int_equal(last_events, EVENT_WRITE);
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(event_loop(1000), 2);
    event_disable_write(sv[0]);
    assert_int_equal(event_loop(0), 0);
    event_disable(sv[0]);
    event_disable(sv[0]);       /* twice is harmless */
    close(sv[0]);
    close(sv[1]);
}

/* Timers record the order they fire in. */
static char order[64];
static size_t norder;

static void mark(void *ctx)
{
    if (norder < sizeof(order) - 1)
        order[norder++] = *(const char *)ctx;
    order[norder] = 0;
}

static void run_until(size_t want, int max_rounds)
{
    for (int i = 0; i < max_rounds && norder < want; i++)
        event_loop(200);
}

struct timer_case {
    const char *name;
    long delays[6];         /* -1 ends the list */
    const char *cancel;     /* labels to cancel before running */
    const char *expect;
};

static const struct timer_case timer_cases[] = {
    { "by deadline", { 30, 10, 20, -1 }, "", "bca" },
    { "ties keep creation order", { 10, 10, 0, 10, -1 }, "", "cabd" },
    { "cancel middle", { 5, 10, 15, -1 }, "b", "ac" },
    { "cancel first", { 5, 10, 15, -1 }, "a", "bc" },
    { "cancel all", { 5, 10, -1 }, "ab", "" },
    { "zero delay", { 0, -1 }, "", "a" },
};

static void test_timers(void **state)
{
    static const char labels[] = "abcdef";

    for (size_t i = 0; i < sizeof(timer_cases) / sizeof(timer_cases[0]); i++) {
        const struct timer_case *c = &timer_cases[i];
        struct timer *t[6] = { 0 };
        size_t n = 0;

        norder = 0;
        order[0] = 0;
        for (; n < 6 && c->delays[n] >= 0; n++)
            t[n] = timer_add(c->delays[n], mark, (void *)&labels[n]);
        for (const char *p = c->cancel; *p; p++) {
            timer_cancel(&t[*p - 'a']);
            assert_null(t[*p - 'a']);
        }
        run_until(strlen(c->expect), 20);
        /* Give a cancelled timer the chance to misfire. */
        event_loop(25);
        if (strcmp(order, c->expect) != 0)
            fail_msg("case %s: fired \"%s\", want \"%s\"", c->name, order, c->expect);
    }
    timer_cancel(NULL);
}

/* Many timers with scattered deadlines, some cancelled: the heap gives
 * them back in deadline order and never fires a cancelled one. */
static uint64_t fired_at[200];
static int nfired;
static long fired_delay[200];

static void heap_fire(void *ctx)
{
    fired_delay[nfired] = (long)(intptr_t)ctx;
    fired_at[nfired] = event_now();
    nfired++;
}

static void test_timer_heap(void **state)
{
    struct timer *t[200];
    unsigned seed = 12345;
    int live = 0;

    nfired = 0;
    for (int i = 0; i < 200; i++) {
        long d;
        seed = seed * 1103515245 + 12345;
        d = (long)((seed >> 16) % 40);
        t[i] = timer_add(d, heap_fire, (void *)(intptr_t)d);
    }
    for (int i = 0; i < 200; i += 3)
        timer_cancel(&t[i]);
    for (int i = 0; i < 200; i++)
        live += t[i] != NULL;
    for (int i = 0; i < 100 && nfired < live; i++)
        event_loop(100);
    assert_int_equal(nfired, live);
    for (int i = 1; i < nfired; i++) {
        assert_true(fired_delay[i - 1] <= fired_delay[i] + 2);
        assert_true(fired_at[i - 1] <= fired_at[i]);
    }
}

/* A zero-delay timer added by a timer runs in a later round. */
static int rearms;

static void rearm(void *ctx)
{
    if (++rearms < 5)
        timer_add(0, rearm, ctx);
}

static void test_timer_rearm(void **state)
{
    rearms = 0;
    timer_add(0, rearm, NULL);
    assert_int_equal(event_loop(100), 1);
    assert_int_equal(rearms, 1);
    for (int i = 0; i < 10 && rearms < 5; i++)
        event_loop(100);
    assert_int_equal(rearms, 5);
}

/* Callbacks that tear down other registrations in the same round. */
struct victim {
    int fds[2][2];
    int reader_calls[2];
    int reused_fd;
    int reused_calls;
};

static void reused_read(int fd, int events, void *ctx)
{
    struct victim *v = ctx;
    v->reused_calls++;
}

static void killer_read(int fd, int events, void *ctx)
{
    struct victim *v = ctx;
    int me = fd == v->fds[0][0] ? 0 : 1;
    int other = 1 - me;
    int np[2];

    v->reader_calls[me]++;
    /* Remove and close the other reader, then reuse its descriptor
     * number for a fresh, readable pipe: its stale event must not reach
     * the new registration in this round. */
    event_disable(v->fds[other][0]);
    close(v->fds[other][0]);
    assert_int_equal(pipe(np), 0);
    if (np[0] != v->fds[other][0]) {
        /* The kernel handed out another number; keep the test honest. */
        assert_int_equal(dup2(np[0], v->fds[other][0]), v->fds[other][0]);
        close(np[0]);
        np[0] = v->fds[other][0];
    }
    v->reused_fd = np[0];
    assert_int_equal(write(np[1], "n", 1), 1);
    close(np[1]);
    event_read(np[0], reused_read, v);
    event_disable(fd);
}

static void test_remove_during_dispatch(void **state)
{
    struct victim v;
    int ran;

    memset(&v, 0, sizeof(v));
    assert_int_equal(pipe(v.fds[0]), 0);
    assert_int_equal(pipe(v.fds[1]), 0);
    event_read(v.fds[0][0], killer_read, &v);
    event_read(v.fds[1][0], killer_read, &v);
    assert_int_equal(write(v.fds[0][1], "a", 1), 1);
    assert_int_equal(write(v.fds[1][1], "b", 1), 1);
    ran = event_loop(1000);
    /* Exactly one killer ran; its victim never did, nor the newcomer. */
    assert_int_equal(ran, 1);
    assert_int_equal(v.reader_calls[0] + v.reader_calls[1], 1);
    assert_int_equal(v.reused_calls, 0);
    /* The newcomer gets its event in the next round. */
    assert_int_equal(event_loop(1000), 1);
    assert_int_equal(v.reused_calls, 1);
    event_disable(v.reused_fd);
    close(v.reused_fd);
    for (int i = 0; i < 2; i++) {
        if (v.reader_calls[i]) {
            close(v.fds[i][0]);
        }
        close(v.fds[i][1]);
    }
}

/* A timer callback cancels another timer due in the same round. */
static struct timer *victim_timer;
static int victim_fired;

static void victim_cb(void *ctx)
{
    victim_fired++;
}

static void canceller_cb(void *ctx)
{
    timer_cancel(&victim_timer);
}

static void test_timer_cancel_in_callback(void **state)
{
    victim_fired = 0;
    timer_add(0, canceller_cb, NULL);
    victim_timer = timer_add(0, victim_cb, NULL);
    for (int i = 0; i < 3; i++)
        event_loop(20);
    assert_int_equal(victim_fired, 0);
    assert_null(victim_timer);
}

static int sig_seen[3];

static void on_signal(int signo, void *ctx)
{
    if (signo == SIGUSR1)
        sig_seen[0]++;
    else if (signo == SIGUSR2)
        sig_seen[1]++;
    else if (signo == SIGHUP)
        sig_seen[2]++;
    *(int *)ctx = signo;
}

static void test_signals(void **state)
{
    int got = 0;

    event_signal(SIGUSR1, on_signal, &got);
    event_signal(SIGUSR2, on_signal, &got);
    event_signal(SIGHUP, on_signal, &got);
    assert_int_equal(raise(SIGUSR2), 0);
    for (int i = 0; i < 5 && sig_seen[1] == 0; i++)
        event_loop(1000);
    assert_int_equal(sig_seen[1], 1);
    assert_int_equal(got, SIGUSR2);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(raise(SIGHUP), 0);
    for (int i = 0; i < 5 && (sig_seen[0] == 0 || sig_seen[2] == 0); i++)
        event_loop(1000);
    assert_int_equal(sig_seen[0], 1);
    assert_int_equal(sig_seen[2], 1);
    assert_int_equal(sig_seen[1], 1);
}

static int hook_runs;

static void hook(void *ctx)
{
    hook_runs += *(int *)ctx;
}

static void test_before_sleep(void **state)
{
    static int one = 1, ten = 10;

    hook_runs = 0;
    event_before_sleep(hook, &one);
    event_before_sleep(hook, &one);     /* same pair: once */
    event_before_sleep(hook, &ten);
    event_loop(0);
    assert_int_equal(hook_runs, 11);
    event_loop(0);
    assert_int_equal(hook_runs, 22);
}

static void test_now(void **state)
{
    uint64_t a, b;

    event_now_update();
    a = event_now();
    assert_true(a > 0);
    timer_add(15, victim_cb, NULL);
    for (int i = 0; i < 10 && event_loop(100) == 0; i++)
        ;
    b = event_now();
    assert_true(b >= a + 14);
}

/* Last: the child's reset forgets everything the tests above left. */
static void test_fork_reset(void **state)
{
    int p[2], hits = 0;

    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    event_read(p[0], count_read, &hits);
    timer_add(0, victim_cb, NULL);
    hook_runs = 0;
    event_fork_reset();
    victim_fired = 0;
    assert_int_equal(event_loop(0), 0);
    assert_int_equal(hits, 0);
    assert_int_equal(hook_runs, 0);
    assert_int_equal(victim_fired, 0);
    /* The signals the loop had blocked are unblocked again. */
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    assert_false(sigismember(&mask, SIGUSR1));
    /* And the loop works afresh. */
    event_read(p[0], count_read, &hits);
    assert_int_equal(event_loop(1000), 1);
    assert_int_equal(hits, 1);
    event_disable(p[0]);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readiness),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_timer_heap),
        cmocka_unit_test(test_timer_rearm),
        cmocka_unit_test(test_remove_during_dispatch),
        cmocka_unit_test(test_timer_cancel_in_callback),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_before_sleep),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_fork_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
