/*
 * events.c - the process's one event loop: epoll, a timer heap, signalfd.
 *
 * Owns the epoll and signalfd descriptors, a table of registrations indexed
 * by descriptor, the timer heap and the before-sleep hooks, all in static
 * state (one loop per process).  Daemons and the server skeletons call it.
 *
 * Callbacks may add or remove anything while the loop dispatches, including
 * closing other descriptors.  Each registration carries a serial number that
 * also travels in the epoll event; at dispatch time the loop looks the
 * descriptor up again and skips an event whose registration was removed or
 * replaced (a closed and reused descriptor number gets a new serial), and
 * never keeps a pointer into the table across a callback.  Epoll is
 * level-triggered, so a skipped readiness is reported again next time.
 *
 * Timers fire in (deadline, creation) order; a timer added by a callback
 * never fires in the same dispatch round, so a zero-delay timer cannot
 * starve the descriptors.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "mem.h"

#define EVENT_BATCH 128

struct event_reg {
    event_fn *rfn;
    void *rctx;
    event_fn *wfn;
    void *wctx;
    uint32_t serial;        /* 0: not in epoll */
    uint32_t mask;          /* EPOLLIN/EPOLLOUT as registered */
};

struct timer {
    uint64_t when;
    uint64_t seq;
    size_t idx;             /* position in the heap */
    timer_fn *fn;
    void *ctx;
};

struct sleep_hook {
    sleep_fn *fn;
    void *ctx;
};

struct signal_handler {
    signal_fn *fn;
    void *ctx;
};

static int ev_epfd = -1;
static struct event_reg *ev_regs;
static size_t ev_nregs;
static uint32_t ev_serial;

static struct timer **tm_heap;
static size_t tm_len, tm_size;
static uint64_t tm_seq;

static struct sleep_hook *ev_hooks;
static size_t ev_nhooks;

static int ev_sigfd = -1;
static sigset_t ev_sigset;
static struct signal_handler ev_sigs[_NSIG];

static uint64_t ev_now;

uint64_t event_now(void)
{
    if (ev_now == 0)
        event_now_update();
    return ev_now;
}

void event_now_update(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ev_now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void event_init(void)
{
    if (ev_epfd >= 0)
        return;
    ev_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ev_epfd < 0)
        log_fatal("epoll_create1: %m");
}

static struct event_reg *event_reg_get(int fd)
{
    if (fd < 0)
        log_panic("event: bad descriptor %d", fd);
    if ((size_t)fd >= ev_nregs) {
        size_t n = ev_nregs ? ev_nregs : 64;
        while (n <= (size_t)fd)
            n *= 2;
        ev_regs = xreallocarray(ev_regs, n, sizeof(*ev_regs));
        memset(ev_regs + ev_nregs, 0, (n - ev_nregs) * sizeof(*ev_regs));
        ev_nregs = n;
    }
    return &ev_regs[fd];
}

/* Bring epoll in line with the registration's callbacks. */
static void event_sync(int fd, struct event_reg *r)
{
    struct epoll_event ev;
    uint32_t want = (r->rfn ? EPOLLIN : 0) | (r->wfn ? EPOLLOUT : 0);

    event_init();
    if (want == 0) {
        if (r->serial != 0 && epoll_ctl(ev_epfd, EPOLL_CTL_DEL, fd, NULL) < 0
            && errno != ENOENT && errno != EBADF)
            log_warn("epoll_ctl DEL fd %d: %m", fd);
        r->serial = 0;
        r->mask = 0;
        return;
    }
    if (r->serial != 0 && want == r->mask)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    if (r->serial == 0) {
        if (++ev_serial == 0)
            ev_serial = 1;
        r->serial = ev_serial;
        ev.data.u64 = ((uint64_t)r->serial << 32) | (uint32_t)fd;
        if (epoll_ctl(ev_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            /* A stale entry left by a descriptor closed without
             * event_disable() and reused: take it over. */
            if (errno != EEXIST || epoll_ctl(ev_epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                log_fatal("epoll_ctl ADD fd %d: %m", fd);
        }
    } else {
        ev.data.u64 = ((uint64_t)r->serial << 32) | (uint32_t)fd;
        if (epoll_ctl(ev_epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
            /* The kernel dropped it when the descriptor was closed. */
            if (errno != ENOENT || epoll_ctl(ev_epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                log_fatal("epoll_ctl MOD fd %d: %m", fd);
        }
    }
    r->mask = want;
}

void event_read(int fd, event_fn *fn, void *ctx)
{
    struct event_reg *r = event_reg_get(fd);

    r->rfn = fn;
    r->rctx = ctx;
    event_sync(fd, r);
}

void event_write(int fd, event_fn *fn, void *ctx)
{
    struct event_reg *r = event_reg_get(fd);

    r->wfn = fn;
    r->wctx = ctx;
    event_sync(fd, r);
}

void event_disable_read(int fd)
{
    struct event_reg *r;

    if (fd < 0 || (size_t)fd >= ev_nregs)
        return;
    r = &ev_regs[fd];
    r->rfn = NULL;
    r->rctx = NULL;
    event_sync(fd, r);
}

void event_disable_write(int fd)
{
    struct event_reg *r;

    if (fd < 0 || (size_t)fd >= ev_nregs)
        return;
    r = &ev_regs[fd];
    r->wfn = NULL;
    r->wctx = NULL;
    event_sync(fd, r);
}

void event_disable(int fd)
{
    struct event_reg *r;

    if (fd < 0 || (size_t)fd >= ev_nregs)
        return;
    r = &ev_regs[fd];
    r->rfn = r->wfn = NULL;
    r->rctx = r->wctx = NULL;
    event_sync(fd, r);
}

/* Timer heap ordered by (when, seq). */
static bool timer_before(const struct timer *a, const struct timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void timer_place(size_t i, struct timer *t)
{
    tm_heap[i] = t;
    t->idx = i;
}

static void timer_up(size_t i)
{
    struct timer *t = tm_heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_before(t, tm_heap[p]))
            break;
        timer_place(i, tm_heap[p]);
        i = p;
    }
    timer_place(i, t);
}

static void timer_down(size_t i)
{
    struct timer *t = tm_heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= tm_len)
            break;
        if (c + 1 < tm_len && timer_before(tm_heap[c + 1], tm_heap[c]))
            c++;
        if (!timer_before(tm_heap[c], t))
            break;
        timer_place(i, tm_heap[c]);
        i = c;
    }
    timer_place(i, t);
}

static void timer_remove(struct timer *t)
{
    size_t i = t->idx;

    if (i >= tm_len || tm_heap[i] != t)
        log_panic("timer_cancel: unknown timer");
    tm_len--;
    if (i < tm_len) {
        struct timer *moved = tm_heap[tm_len];
        timer_place(i, moved);
        timer_down(i);
        timer_up(moved->idx);
    }
}

struct timer *timer_add(long ms, timer_fn *fn, void *ctx)
{
    struct timer *t = xmalloc(sizeof(*t));

    event_now_update();
    t->when = ev_now + (uint64_t)(ms > 0 ? ms : 0);
    t->seq = tm_seq++;
    t->fn = fn;
    t->ctx = ctx;
    if (tm_len == tm_size) {
        tm_size = tm_size ? tm_size * 2 : 16;
        tm_heap = xreallocarray(tm_heap, tm_size, sizeof(*tm_heap));
    }
    tm_heap[tm_len] = t;
    t->idx = tm_len++;
    timer_up(t->idx);
    return t;
}

void timer_cancel(struct timer **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    timer_remove(*tp);
    free(*tp);
    *tp = NULL;
}

void event_before_sleep(sleep_fn *fn, void *ctx)
{
    for (size_t i = 0; i < ev_nhooks; i++)
        if (ev_hooks[i].fn == fn && ev_hooks[i].ctx == ctx)
            return;
    ev_hooks = xreallocarray(ev_hooks, ev_nhooks + 1, sizeof(*ev_hooks));
    ev_hooks[ev_nhooks].fn = fn;
    ev_hooks[ev_nhooks].ctx = ctx;
    ev_nhooks++;
}

static void event_signal_read(int fd, int events, void *ctx)
{
    struct signalfd_siginfo si[16];
    ssize_t n;

    n = read(fd, si, sizeof(si));
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            log_warn("read signalfd: %m");
        return;
    }
    for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
        int signo = (int)si[i].ssi_signo;
        if (signo > 0 && signo < _NSIG && ev_sigs[signo].fn != NULL)
            ev_sigs[signo].fn(signo, ev_sigs[signo].ctx);
    }
}

void event_signal(int signo, signal_fn *fn, void *ctx)
{
    sigset_t one;
    int fd;

    if (signo <= 0 || signo >= _NSIG)
        log_panic("event_signal: bad signal %d", signo);
    if (ev_sigfd < 0)
        sigemptyset(&ev_sigset);
    ev_sigs[signo].fn = fn;
    ev_sigs[signo].ctx = ctx;
    sigaddset(&ev_sigset, signo);
    sigemptyset(&one);
    sigaddset(&one, signo);
    if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
        log_fatal("sigprocmask: %m");
    fd = signalfd(ev_sigfd, &ev_sigset, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        log_fatal("signalfd: %m");
    if (ev_sigfd < 0) {
        ev_sigfd = fd;
        event_read(ev_sigfd, event_signal_read, NULL);
    }
}

/* Run the timers that are due, but none added during this round. */
static int event_run_timers(void)
{
    uint64_t limit = tm_seq;
    int ran = 0;

    while (tm_len > 0 && tm_heap[0]->when <= ev_now && tm_heap[0]->seq < limit) {
        struct timer *t = tm_heap[0];
        timer_fn *fn = t->fn;
        void *ctx = t->ctx;

        timer_remove(t);
        free(t);
        fn(ctx);
        ran++;
    }
    return ran;
}

int event_loop(long max_ms)
{
    struct epoll_event evs[EVENT_BATCH];
    int n, ran = 0;
    long wait;

    event_init();
    for (size_t i = 0; i < ev_nhooks; i++)
        ev_hooks[i].fn(ev_hooks[i].ctx);

    wait = max_ms < 0 ? -1 : max_ms;
    if (tm_len > 0) {
        uint64_t now;
        event_now_update();
        now = ev_now;
        long due = tm_heap[0]->when <= now ? 0 : (long)(tm_heap[0]->when - now);
        if (wait < 0 || due < wait)
            wait = due;
    }
    if (wait > 0x7fffffffL)
        wait = 0x7fffffffL;
    n = epoll_wait(ev_epfd, evs, EVENT_BATCH, (int)wait);
    if (n < 0) {
        if (errno != EINTR)
            log_fatal("epoll_wait: %m");
        n = 0;
    }
    event_now_update();

    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t serial = (uint32_t)(evs[i].data.u64 >> 32);
        uint32_t what = evs[i].events;
        int err = (what & (EPOLLERR | EPOLLHUP)) ? EVENT_ERROR : 0;
        bool delivered = false;

        /* Look the registration up afresh before each callback: an
         * earlier callback may have removed or replaced it. */
        if ((size_t)fd >= ev_nregs || ev_regs[fd].serial != serial)
            continue;
        if ((what & (EPOLLIN | EPOLLERR | EPOLLHUP)) && ev_regs[fd].rfn) {
            ev_regs[fd].rfn(fd, EVENT_READ | err, ev_regs[fd].rctx);
            ran++;
            delivered = true;
        }
        if ((size_t)fd >= ev_nregs || ev_regs[fd].serial != serial)
            continue;
        if (((what & EPOLLOUT) || (err && !delivered)) && ev_regs[fd].wfn) {
            ev_regs[fd].wfn(fd, EVENT_WRITE | err, ev_regs[fd].wctx);
            ran++;
        }
    }
    ran += event_run_timers();
    return ran;
}

void event_fork_reset(void)
{
    sigset_t blocked;

    if (ev_epfd >= 0)
        close(ev_epfd);
    ev_epfd = -1;
    if (ev_sigfd >= 0) {
        close(ev_sigfd);
        blocked = ev_sigset;
        sigprocmask(SIG_UNBLOCK, &blocked, NULL);
    }
    ev_sigfd = -1;
    sigemptyset(&ev_sigset);
    memset(ev_sigs, 0, sizeof(ev_sigs));
    free(ev_regs);
    ev_regs = NULL;
    ev_nregs = 0;
    for (size_t i = 0; i < tm_len; i++)
        free(tm_heap[i]);
    free(tm_heap);
    tm_heap = NULL;
    tm_len = tm_size = 0;
    free(ev_hooks);
    ev_hooks = NULL;
    ev_nhooks = 0;
}
