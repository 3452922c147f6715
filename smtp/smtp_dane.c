/*
 * smtp_dane.c - DANE-authenticated TLS for the SMTP client (RFC 7672).
 *
 * When the MX host's address and its TLSA records (_port._tcp.host) came
 * back DNSSEC-validated, smtp_tls.c hands the session here instead of to
 * lib/tls: the handshake needs OpenSSL's DANE verifier
 * (SSL_dane_enable/SSL_dane_tlsa_add) armed before it starts, which lib/
 * tls's API does not expose.  Only DANE-TA(2) and DANE-EE(3) records are
 * used, as RFC 7672 3.1.3 says; DANE-EE skips name checks, DANE-TA checks
 * the MX host name.  Records are data from DNS: lengths were checked by
 * lib/dns, and OpenSSL refuses a digest of the wrong size.  Like lib/tls
 * this discards input buffered before the handshake and plugs the
 * session into the stream with stream_set_io.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dns.h"
#include "log.h"
#include "mem.h"
#include "smtp.h"

struct smtp_dane_conn {
    SSL *ssl;
    char summary[256];
};

static SSL_CTX *dane_ctx;

static void why_openssl(struct strbuf *why, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
        strbuf_printf(why, "%s: %s", what, buf);
    } else {
        strbuf_printf(why, "%s", what);
    }
    ERR_clear_error();
}

static SSL_CTX *ctx_get(struct strbuf *why)
{
    if (dane_ctx)
        return dane_ctx;
    dane_ctx = SSL_CTX_new(TLS_client_method());
    if (dane_ctx == NULL || SSL_CTX_set_min_proto_version(dane_ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_dane_enable(dane_ctx) <= 0) {
        why_openssl(why, "cannot create the DANE TLS context");
        SSL_CTX_free(dane_ctx);
        dane_ctx = NULL;
        return NULL;
    }
    /* The verdict is read after the handshake, so the log can say why. */
    SSL_CTX_set_verify(dane_ctx, SSL_VERIFY_NONE, NULL);
    return dane_ctx;
}

static ssize_t dane_read(void *vctx, void *buf, size_t len)
{
    struct smtp_dane_conn *c = vctx;
    size_t got = 0;
    int r, err;

    ERR_clear_error();
    r = SSL_read_ex(c->ssl, buf, len, &got);
    if (r == 1)
        return (ssize_t)got;
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

static ssize_t dane_write(void *vctx, const void *buf, size_t len)
{
    struct smtp_dane_conn *c = vctx;
    size_t put = 0;
    int r, err;

    ERR_clear_error();
    r = SSL_write_ex(c->ssl, buf, len, &put);
    if (r == 1)
        return (ssize_t)put;
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

static int handshake(SSL *ssl, int fd, int timeout_ms, struct strbuf *why)
{
    struct timespec end, now;
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        strbuf_printf(why, "cannot set descriptor non-blocking: %m");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    for (;;) {
        struct pollfd pfd = { .fd = fd };
        int r, err;

        ERR_clear_error();
        r = SSL_connect(ssl);
        if (r == 1)
            return 0;
        err = SSL_get_error(ssl, r);
        if (err == SSL_ERROR_WANT_READ)
            pfd.events = POLLIN;
        else if (err == SSL_ERROR_WANT_WRITE)
            pfd.events = POLLOUT;
        else {
            why_openssl(why, "TLS handshake failed");
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
        if (left <= 0 || (r = poll(&pfd, 1, (int)left)) == 0) {
            strbuf_printf(why, "TLS handshake timed out");
            return -1;
        }
        if (r < 0 && errno != EINTR) {
            strbuf_printf(why, "poll: %m");
            return -1;
        }
    }
}

int smtp_dane_usable(const struct dns_answer *tlsa)
{
    int n = 0;

    for (size_t i = 0; i < tlsa->count; i++) {
        const struct dns_rr *rr = &tlsa->rr[i];
        if (rr->type == DNS_T_TLSA && (rr->usage == 2 || rr->usage == 3) && rr->selector <= 1
            && rr->mtype <= 2 && rr->data_len > 0)
            n++;
    }
    return n;
}

int smtp_dane_start(struct stream *s, const char *host, const struct dns_answer *tlsa,
                    int timeout_ms, struct smtp_dane_conn **conn_r, struct strbuf *why)
{
    SSL_CTX *ctx = ctx_get(why);
    struct smtp_dane_conn *c;
    int added = 0;

    if (ctx == NULL)
        return -1;
    if (stream_flush(s) < 0) {
        strbuf_printf(why, "cannot flush before TLS: %s", stream_strerror(s));
        return -1;
    }
    stream_purge_input(s);
    c = xcalloc(1, sizeof(*c));
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, stream_fd(s)) != 1
        || SSL_dane_enable(c->ssl, host) <= 0) {
        why_openssl(why, "cannot create the TLS session");
        goto fail;
    }
    SSL_set_tlsext_host_name(c->ssl, host);
    /* RFC 7672 3.1.3: no name checks for DANE-EE. */
    SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    for (size_t i = 0; i < tlsa->count; i++) {
        const struct dns_rr *rr = &tlsa->rr[i];
        if (rr->type != DNS_T_TLSA || (rr->usage != 2 && rr->usage != 3))
            continue;
        int r = SSL_dane_tlsa_add(c->ssl, rr->usage, rr->selector, rr->mtype, rr->data,
                                  rr->data_len);
        if (r > 0)
            added++;
        else
            ERR_clear_error();  /* unusable record: RFC 7672 ignores it */
    }
    if (added == 0) {
        strbuf_printf(why, "no usable TLSA records for %s", host);
        goto fail;
    }
    if (handshake(c->ssl, stream_fd(s), timeout_ms, why) < 0)
        goto fail;
    if (SSL_get_verify_result(c->ssl) != X509_V_OK || SSL_get0_dane_authority(c->ssl, NULL, NULL) < 0) {
        strbuf_printf(why, "Server certificate not trusted (DANE: %s)",
                      X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
        goto fail;
    }
    const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
    int alg_bits = 0, bits = SSL_CIPHER_get_bits(ciph, &alg_bits);
    snprintf(c->summary, sizeof(c->summary), "%s with cipher %s (%d/%d bits)",
             SSL_get_version(c->ssl), SSL_CIPHER_get_name(ciph), bits, alg_bits);
    stream_set_io(s, dane_read, dane_write, c);
    *conn_r = c;
    return 0;
fail:
    SSL_free(c->ssl);
    free(c);
    return -1;
}

const char *smtp_dane_summary(const struct smtp_dane_conn *c)
{
    return c->summary;
}

void smtp_dane_free(struct smtp_dane_conn **cp)
{
    struct smtp_dane_conn *c = *cp;

    if (c == NULL)
        return;
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
    *cp = NULL;
}
