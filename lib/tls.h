/*
 * tls.h - TLS for every daemon and client, on OpenSSL 3, below lib/stream.
 *
 * A tls_ctx holds the configuration of one role (server or client); a
 * tls_conn is one TLS session bound to a struct stream: tls_server_start and
 * tls_client_start purge the stream's buffered input (nothing read before
 * STARTTLS survives it), run the handshake within the given time, then plug
 * the session into the stream with stream_set_io so the protocol code keeps
 * using stream_read_line/stream_write unchanged.
 *
 * Defaults follow DESIGN.md: TLS 1.2 or newer, forward-secret AEAD ciphers
 * only.  A server context notices when its certificate or key file changes
 * on disk (a Let's Encrypt renewal) and loads the new pair for the next
 * handshake; a failed reload keeps the old pair and logs a warning.
 */
#ifndef FACTEUR_TLS_H
#define FACTEUR_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "stream.h"
#include "strbuf.h"

struct tls_ctx;
struct tls_conn;

struct tls_server_opts {
    const char *cert_file;      /* PEM chain, leaf first */
    const char *key_file;       /* PEM key; may be the same file */
    const char *protocols;      /* Postfix syntax: ">=TLSv1.2", "!SSLv3, !TLSv1"; NULL: >=TLSv1.2 */
    const char *ciphers;        /* OpenSSL cipher list for TLS <= 1.2; NULL: forward-secret AEAD */
    const char *ca_file;        /* to verify client certificates; may be NULL */
    bool ask_client_cert;       /* ask, never require: an unverified or absent
                                 * certificate does not fail the handshake;
                                 * tls_conn_peer_verified() tells */
};

struct tls_client_opts {
    const char *ca_file;        /* trust anchors; NULL: system default store */
    const char *ca_path;
    const char *protocols;
    const char *ciphers;
    const char *cert_file;      /* client certificate, optional */
    const char *key_file;
};

/* Server context; NULL with why on a bad file or option. */
struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *opts, struct strbuf *why);
/* Client context; NULL with why. */
struct tls_ctx *tls_client_ctx_new(const struct tls_client_opts *opts, struct strbuf *why);
void tls_ctx_free(struct tls_ctx **ctxp);

/* Handshake as server on s's descriptor within timeout_ms; 0 and *conn_r on
 * success (the stream now reads and writes through TLS), -1 with why.
 * Output buffered in s is flushed first; buffered input is discarded.
 * If the certificate or key file changed on disk since the last load, the
 * pair is reloaded first (a broken new pair: warning, old pair kept).
 * A peer that closes without close_notify reads as end of file. */
int tls_server_start(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                     struct tls_conn **conn_r, struct strbuf *why);
/* Handshake as client; servername is sent as SNI (may be NULL) and, when
 * verify_name is set, checked against the certificate (RFC 6125 host name
 * rules as OpenSSL implements them; a wildcard covers one whole leftmost
 * label).  A certificate that does not verify, or names another host, does
 * not fail the handshake: tls_conn_peer_verified() is false and the
 * caller's security level decides.  Output buffered in s is flushed and
 * buffered input discarded first, as for the server. */
int tls_client_start(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                     const char *servername, const char *verify_name,
                     struct tls_conn **conn_r, struct strbuf *why);

/* One TLSA record (RFC 6698) for DANE (RFC 7672). */
struct tls_dane_rr {
    unsigned char usage;        /* 2 DANE-TA, 3 DANE-EE; others are ignored */
    unsigned char selector;     /* 0 full certificate, 1 SubjectPublicKeyInfo */
    unsigned char mtype;        /* 0 full, 1 SHA-256, 2 SHA-512 */
    const unsigned char *data;
    size_t len;
};

/* Handshake as client authenticated by DANE (RFC 7672): host is the TLSA
 * base domain (the MX host name), sent as SNI and, for DANE-TA, checked
 * against the certificate; DANE-EE needs no name.  Only DANE-TA(2) and
 * DANE-EE(3) records are used (3.1.3); unusable ones are skipped.  Unlike
 * tls_client_start, an unauthenticated peer FAILS the handshake: -1 with
 * why when no record is usable or the peer's chain matches none; on
 * success tls_conn_peer_verified() is true.  The records must come from a
 * DNSSEC-validated answer: the caller checks that. */
int tls_client_start_dane(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                          const char *host, const struct tls_dane_rr *rrs, size_t n,
                          struct tls_conn **conn_r, struct strbuf *why);

/* Send close_notify (best effort) and free.  Call it before the stream is
 * closed or released: output still buffered in the stream is first flushed
 * through TLS (within the stream's timeout; a non-blocking stream gets one
 * attempt), then the stream is detached, so later reads and writes on it
 * fail (EPIPE) instead of reaching the freed session or the descriptor in
 * plaintext; stream_close still works. */
void tls_conn_free(struct tls_conn **connp);

/* Negotiated protocol ("TLSv1.3"), cipher name and secret bits. */
const char *tls_conn_protocol(const struct tls_conn *c);
const char *tls_conn_cipher(const struct tls_conn *c);
int tls_conn_bits(const struct tls_conn *c);
/* Did the peer present a certificate, and did it verify against the CA
 * store (and the name, for clients)?  peer_cn: subject CN or "". */
bool tls_conn_peer_cert(const struct tls_conn *c);
bool tls_conn_peer_verified(const struct tls_conn *c);
const char *tls_conn_peer_cn(const struct tls_conn *c);
/* Decrypted bytes OpenSSL holds that the stream has not read yet.  A TLS
 * record is decrypted whole, so after a read some of it may wait here and
 * the descriptor will not turn readable for it: a non-blocking caller
 * (lib/events) must read again while this (or stream_pending) is non-zero
 * before it waits for the descriptor.  Blocking streams need not care:
 * they call the TLS read before they poll. */
size_t tls_conn_pending(const struct tls_conn *c);
/* Postfix-style summary for Received headers and logs:
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)". */
const char *tls_conn_summary(const struct tls_conn *c);

/* Parse a Postfix protocol list (">=TLSv1.2", "TLSv1.2, TLSv1.3",
 * "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1") into OpenSSL min/max versions;
 * -1 with why if unknown names or an empty range. */
int tls_parse_protocols(const char *spec, int *min_r, int *max_r, struct strbuf *why);

#endif
