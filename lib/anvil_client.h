/*
 * anvil_client.h - how smtpd asks anvil(8) for shared connection and rate
 * counts.
 *
 * One client holds one connection to $queue_directory/private/anvil,
 * opened on first use and reopened after a failure.  Each call sends one
 * request (lib/attr.h: request=NAME, ident=SERVICE:CLIENTADDR) and reads
 * one reply within the client's timeout.  anvil is advisory: when it is not
 * running, is slow, or answers something malformed, a call returns
 * ANVIL_UNKNOWN and the caller must not limit the client (smtpd never
 * refuses mail because anvil is unavailable).  Failures are logged as
 * warnings, at most one per ANVIL_CLIENT_WARN_INTERVAL seconds.
 *
 * Replies are checked strictly: exactly the attributes the request type
 * answers, numbers in range, a status of 0.  Anything else is UNKNOWN and
 * the connection is dropped (the next call reconnects).
 */
#ifndef FACTEUR_ANVIL_CLIENT_H
#define FACTEUR_ANVIL_CLIENT_H

#include "stream.h"
#include "strbuf.h"

#define ANVIL_CLIENT_WARN_INTERVAL 60
#define ANVIL_CLIENT_IDENT_MAX 300      /* "service:clientaddr", as anvil's bound */
#define ANVIL_CLIENT_COUNT_MAX 1000000000L

enum anvil_result { ANVIL_OK = 0, ANVIL_UNKNOWN = -1 };

/* What a lookup answers; connect/message/recipient fill the fields their
 * reply carries and leave the others at -1. */
struct anvil_client_counts {
    long count;
    long rate;
    long message_rate;
    long recipient_rate;
};

struct anvil_client;

/* A client for the anvil socket at path (not opened yet); each request and
 * its reply together take at most timeout_ms milliseconds. */
struct anvil_client *anvil_client_new(const char *path, int timeout_ms);
/* A client over an already open stream (tests: stream_memopen); the client
 * owns the stream and does not reconnect once it failed. */
struct anvil_client *anvil_client_new_stream(struct stream *s, int timeout_ms);
/* Close the connection, free, NULL *acp; NULL and *NULL allowed. */
void anvil_client_free(struct anvil_client **acp);

/* A connection from addr to service opened: counts->count (open now,
 * including this one) and counts->rate (this time unit). */
enum anvil_result anvil_client_connect(struct anvil_client *ac, const char *service,
                                       const char *addr, struct anvil_client_counts *counts);
/* That connection closed. */
enum anvil_result anvil_client_disconnect(struct anvil_client *ac, const char *service,
                                          const char *addr);
/* A message (counts->message_rate) or a recipient (counts->recipient_rate)
 * from addr was accepted. */
enum anvil_result anvil_client_message(struct anvil_client *ac, const char *service,
                                       const char *addr, struct anvil_client_counts *counts);
enum anvil_result anvil_client_recipient(struct anvil_client *ac, const char *service,
                                         const char *addr, struct anvil_client_counts *counts);
/* Every counter of addr, counting nothing. */
enum anvil_result anvil_client_lookup(struct anvil_client *ac, const char *service,
                                      const char *addr, struct anvil_client_counts *counts);

/* Why the last call returned ANVIL_UNKNOWN (empty after a success). */
const char *anvil_client_error(const struct anvil_client *ac);

#endif
