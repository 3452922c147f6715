/*
 * trigger.h - wake a trigger service (qmgr, pickup) through its door in
 * queue_dir/public/.
 *
 * A trigger is a few bytes written to queue_dir/public/<service>: a FIFO
 * (opened O_WRONLY|O_NONBLOCK: ENXIO means nobody reads it) or a UNIX
 * stream socket (connected non-blocking, bounded by trigger_timeout).
 * The door is not followed when it is a symbolic link.  A trigger is an
 * optimisation, never a condition of correctness: qmgr and pickup also scan
 * on their wakeup timer, so trigger_send never fails its caller; it logs a
 * warning and returns -1 so tests can tell.
 *
 * Messages understood by qmgr (Postfix's letters): "I" new mail in
 * incoming/, "A" scan all queues, "F" forget dead destinations.  pickup
 * takes any message as "scan maildrop/".
 */
#ifndef FACTEUR_TRIGGER_H
#define FACTEUR_TRIGGER_H

#include <stddef.h>

#define TRIGGER_MSG_MAX 1024    /* bytes of one trigger message */

/* Write msg (len bytes, 1..TRIGGER_MSG_MAX) to queue_dir/public/<service>.
 * Returns 0 when written whole, -1 (warning logged) otherwise. */
int trigger_send(const char *queue_dir, const char *service, const char *msg, size_t len);

#endif
