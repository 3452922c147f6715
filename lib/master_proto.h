/*
 * master_proto.h - how master and its children meet.
 *
 * master starts a service as
 *   DAEMON -c CONFDIR -n SERVICE -t TYPE [-s COUNT] [-z] [-u] [-v] [-o name=value]... [args]
 * with these descriptors open:
 *   MASTER_STATUS_FD  one end of a per-service socketpair (SOCK_SEQPACKET).
 *                     The child sends struct master_status records on it
 *                     (busy when it takes a client, idle when done); it
 *                     reads nothing from it, and sees EOF/HUP when master
 *                     is gone, which makes it exit.
 *   MASTER_LISTEN_FD  the listening socket (inet or unix), or the read end
 *                     of the trigger FIFO/socket for trigger services.
 *                     -s COUNT (default 1): COUNT listening descriptors,
 *                     MASTER_LISTEN_FD .. MASTER_LISTEN_FD + COUNT - 1 (an
 *                     inet service given as a bare port listens on every
 *                     inet_interfaces address, e.g. 127.0.0.1 and ::1).
 * -z: chroot into queue_directory (master.cf chroot column).
 * -u: drop privileges to mail_owner (master.cf unpriv column); master passes
 *     it only when running as root.
 * TYPE is inet, unix, pass or fifo (master.cf type column).  Other
 * master.cf arguments follow the options unchanged.  For a wakeup service
 * master writes a one-byte trigger ("W") to the service every N seconds.
 */
#ifndef FACTEUR_MASTER_PROTO_H
#define FACTEUR_MASTER_PROTO_H

#include <sys/types.h>

#define MASTER_STATUS_FD 3
#define MASTER_LISTEN_FD 4
#define MASTER_LISTEN_MAX 64    /* largest -s COUNT */

enum master_avail { MASTER_STAT_IDLE = 0, MASTER_STAT_BUSY = 1 };

struct master_status {
    pid_t pid;
    int avail;      /* enum master_avail */
};

#endif
