/*
 * events.h - the one event loop: epoll, monotonic millisecond timers,
 * signals as events.
 *
 * One loop per process, held in static state.  Callbacks run from
 * event_loop(); they may add or remove any event or timer, including their
 * own.  Timers sit in a binary heap; a handle lets a caller cancel one.
 * Signals are delivered through signalfd: the handler runs from the loop
 * like any callback, so it may do real work.
 */
#ifndef FACTEUR_EVENTS_H
#define FACTEUR_EVENTS_H

#include <stdint.h>

#define EVENT_READ   1
#define EVENT_WRITE  2
#define EVENT_ERROR  4   /* hangup or error: the callback should read/close */

typedef void event_fn(int fd, int events, void *ctx);
typedef void timer_fn(void *ctx);
typedef void signal_fn(int signo, void *ctx);
typedef void sleep_fn(void *ctx);

struct timer;

/* Call fn when fd is readable / writable.  Read and write interest are
 * independent; registering again replaces the callback. */
void event_read(int fd, event_fn *fn, void *ctx);
void event_write(int fd, event_fn *fn, void *ctx);
void event_disable_read(int fd);
void event_disable_write(int fd);
/* Remove every interest in fd (call before close(fd)). */
void event_disable(int fd);

/* Call fn once after ms milliseconds.  The handle stays valid until the
 * timer fires or is cancelled. */
struct timer *timer_add(long ms, timer_fn *fn, void *ctx);
/* Cancel a pending timer and NULL *tp; NULL and *NULL allowed.  Do not cancel
 * a timer from its own callback after it fired (the handle is gone). */
void timer_cancel(struct timer **tp);

/* Call fn before each wait (flush corked output, batch fsyncs). */
void event_before_sleep(sleep_fn *fn, void *ctx);

/* Deliver signo to fn from the loop (blocks it for normal delivery). */
void event_signal(int signo, signal_fn *fn, void *ctx);

/* Wait up to max_ms (-1: until something happens) and run what is ready.
 * Returns the number of callbacks run. */
int event_loop(long max_ms);
/* Monotonic time in milliseconds (cached per loop iteration; event_now_update
 * refreshes it). */
uint64_t event_now(void);
void event_now_update(void);

/* In a child after fork(): forget the parent's loop (close the epoll and
 * signalfd descriptors, drop every registration, unblock signals). */
void event_fork_reset(void);

#endif
