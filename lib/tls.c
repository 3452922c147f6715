/*
 * tls.c - OpenSSL 3 contexts and sessions plugged under lib/stream.
 *
 * Trust: the peer's bytes are handled by OpenSSL; this file only moves
 * them.  The descriptor is switched to non-blocking for the handshake and
 * stays so: the TLS read/write functions report EAGAIN (with errno) and the
 * stream waits for the descriptor within its own deadline, so a stalled
 * peer cannot hold a process past its timeout, in the handshake or after.
 * Certificate reload: the server context remembers the files' identity
 * (device, inode, mtime, size) and reloads both before a handshake when
 * either changed.
 * OpenSSL reaches the descriptor through a small BIO of ours that sends
 * with MSG_NOSIGNAL: a peer gone away is an error return (EPIPE), never a
 * SIGPIPE, even in a process that did not ignore the signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mem.h"
#include "tls.h"

/* Forward-secret AEAD suites for TLS 1.2 (TLS 1.3 suites are all FS). */
#define TLS_DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"

struct file_id {
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    off_t size;
};

struct tls_ctx {
    SSL_CTX *ssl;
    bool server;
    char *cert_file, *key_file;
    struct file_id cert_id, key_id;
    /* Server options, kept to build a fresh context on reload. */
    char *protocols, *ciphers, *ca_file;
    bool ask_client_cert;
};

struct tls_conn {
    SSL *ssl;
    struct stream *stream;      /* the stream whose I/O this session serves */
    char summary[160];
    char peer_cn[256];
};

static void tls_why_openssl(struct strbuf *why, const char *what)
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

static int file_id_get(const char *path, struct file_id *id)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->mtime = st.st_mtim;
    id->size = st.st_size;
    return 0;
}

static bool file_id_same(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size
        && a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int tls_parse_protocols(const char *spec, int *min_r, int *max_r, struct strbuf *why)
{
    static const struct { const char *name; int version; } names[] = {
        { "SSLv2", 0x0200 }, { "SSLv3", SSL3_VERSION }, { "TLSv1", TLS1_VERSION },
        { "TLSv1.1", TLS1_1_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
        { "TLSv1.3", TLS1_3_VERSION },
    };
    enum { N = sizeof(names) / sizeof(names[0]) };
    bool allowed[N], named[N] = { false }, any_named = false;
    char *copy, *tok, *save = NULL;
    int min = 0, max = 0;

    if (spec == NULL || *spec == 0)
        spec = ">=TLSv1.2";
    for (size_t i = 0; i < N; i++)
        allowed[i] = true;
    copy = xstrdup(spec);
    for (tok = strtok_r(copy, " ,:\t", &save); tok; tok = strtok_r(NULL, " ,:\t", &save)) {
        char op = 0;
        size_t i;

        if (*tok == '!')
            op = *tok++;
        else if (strncmp(tok, ">=", 2) == 0 || strncmp(tok, "<=", 2) == 0) {
            op = *tok;
            tok += 2;
        }
        for (i = 0; i < N; i++)
            if (strcasecmp(tok, names[i].name) == 0)
                break;
        if (i == N) {
            strbuf_printf(why, "unknown TLS protocol \"%s\"", tok);
            free(copy);
            return -1;
        }
        for (size_t j = 0; j < N; j++) {
            if ((op == '!' && j == i) || (op == '>' && j < i) || (op == '<' && j > i))
                allowed[j] = false;
        }
        if (op == 0)
            named[i] = any_named = true;
    }
    free(copy);
    /* SSLv2 and SSLv3 are never offered whatever the list says.  OpenSSL
     * takes a range, so a hole in the list is filled. */
    allowed[0] = allowed[1] = false;
    for (size_t i = 0; i < N; i++) {
        if (!allowed[i] || (any_named && !named[i]))
            continue;
        if (min == 0)
            min = names[i].version;
        max = names[i].version;
    }
    if (min == 0) {
        strbuf_printf(why, "TLS protocol list \"%s\" leaves no protocol enabled", spec);
        return -1;
    }
    *min_r = min;
    *max_r = max;
    return 0;
}

static int tls_no_passphrase(char *buf, int size, int rwflag, void *ctx)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)ctx;
    return 0;
}

static int tls_ctx_common(SSL_CTX *ssl, const char *protocols, const char *ciphers,
                          struct strbuf *why)
{
    int min, max;

    if (tls_parse_protocols(protocols, &min, &max, why) < 0)
        return -1;
    if (!SSL_CTX_set_min_proto_version(ssl, min) || !SSL_CTX_set_max_proto_version(ssl, max)) {
        tls_why_openssl(why, "cannot set TLS protocol range");
        return -1;
    }
    if (!SSL_CTX_set_cipher_list(ssl, ciphers && *ciphers ? ciphers : TLS_DEFAULT_CIPHERS)) {
        tls_why_openssl(why, "bad TLS cipher list");
        return -1;
    }
    /* A peer that closes without close_notify ends the stream like a TCP
     * close: the protocols above have their own end markers (".", QUIT,
     * LOGOUT), so a truncation cannot pass for a complete message. */
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                 | SSL_OP_CIPHER_SERVER_PREFERENCE
                                 | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A daemon has no terminal to ask a passphrase on: an encrypted key
     * fails to load with a reason instead of waiting on /dev/tty. */
    SSL_CTX_set_default_passwd_cb(ssl, tls_no_passphrase);
    return 0;
}

/* Load the pair into ctx->ssl.  The files' identity is taken before they
 * are read, so a change made during the load is seen at the next check. */
static int tls_load_pair(struct tls_ctx *ctx, struct strbuf *why)
{
    struct file_id c = { 0 }, k = { 0 };

    (void)file_id_get(ctx->cert_file, &c);
    (void)file_id_get(ctx->key_file, &k);
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl, ctx->cert_file) != 1) {
        tls_why_openssl(why, "cannot load certificate");
        strbuf_appendf(why, " (%s)", ctx->cert_file);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl, ctx->key_file, SSL_FILETYPE_PEM) != 1) {
        tls_why_openssl(why, "cannot load private key");
        strbuf_appendf(why, " (%s)", ctx->key_file);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
        tls_why_openssl(why, "private key does not match certificate");
        strbuf_appendf(why, " (%s, %s)", ctx->cert_file, ctx->key_file);
        return -1;
    }
    ctx->cert_id = c;
    ctx->key_id = k;
    return 0;
}

/* Client certificates are asked for, never required: the handshake goes
 * on whatever the chain is worth and tls_conn_peer_verified() reports the
 * result (Postfix smtpd_tls_ask_ccert). */
static int tls_verify_accept(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

/* Build ctx->ssl from the options kept in ctx; on failure ctx->ssl may be
 * half made and the caller frees it. */
static int tls_server_ssl_build(struct tls_ctx *ctx, struct strbuf *why)
{
    ctx->ssl = SSL_CTX_new(TLS_server_method());
    if (ctx->ssl == NULL) {
        tls_why_openssl(why, "cannot create TLS context");
        return -1;
    }
    if (tls_ctx_common(ctx->ssl, ctx->protocols, ctx->ciphers, why) < 0
        || tls_load_pair(ctx, why) < 0)
        return -1;
    /* Built-in DH groups (RFC 7919 sizes matched to the key) for DHE
     * suites, the forward-secret choice of TLS 1.2 clients without ECDHE. */
    SSL_CTX_set_dh_auto(ctx->ssl, 1);
    if (ctx->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx->ssl, ctx->ca_file, NULL) != 1) {
            tls_why_openssl(why, "cannot load CA file");
            strbuf_appendf(why, " (%s)", ctx->ca_file);
            return -1;
        }
        if (ctx->ask_client_cert) {
            /* Name the acceptable issuers in the CertificateRequest. */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ctx->ca_file);
            if (names)
                SSL_CTX_set_client_CA_list(ctx->ssl, names);
            ERR_clear_error();
        }
    }
    if (ctx->ask_client_cert)
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, tls_verify_accept);
    /* Session tickets and a cache keep repeated clients cheap. */
    SSL_CTX_set_session_cache_mode(ctx->ssl, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx->ssl, (const unsigned char *)"facteur", 7);
    return 0;
}

static char *opt_dup(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *opts, struct strbuf *why)
{
    struct tls_ctx *ctx;

    if (opts->cert_file == NULL || *opts->cert_file == 0) {
        strbuf_printf(why, "no TLS certificate file configured");
        return NULL;
    }
    ctx = xcalloc(1, sizeof(*ctx));
    ctx->server = true;
    ctx->cert_file = xstrdup(opts->cert_file);
    ctx->key_file = xstrdup(opts->key_file && *opts->key_file ? opts->key_file : opts->cert_file);
    ctx->protocols = opt_dup(opts->protocols);
    ctx->ciphers = opt_dup(opts->ciphers);
    ctx->ca_file = opt_dup(opts->ca_file);
    ctx->ask_client_cert = opts->ask_client_cert;
    if (tls_server_ssl_build(ctx, why) < 0) {
        tls_ctx_free(&ctx);
        return NULL;
    }
    return ctx;
}

struct tls_ctx *tls_client_ctx_new(const struct tls_client_opts *opts, struct strbuf *why)
{
    struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));

    ctx->ssl = SSL_CTX_new(TLS_client_method());
    if (ctx->ssl == NULL) {
        tls_why_openssl(why, "cannot create TLS context");
        free(ctx);
        return NULL;
    }
    if (tls_ctx_common(ctx->ssl, opts->protocols, opts->ciphers, why) < 0) {
        tls_ctx_free(&ctx);
        return NULL;
    }
    if ((opts->ca_file && *opts->ca_file) || (opts->ca_path && *opts->ca_path)) {
        const char *f = opts->ca_file && *opts->ca_file ? opts->ca_file : NULL;
        const char *p = opts->ca_path && *opts->ca_path ? opts->ca_path : NULL;
        if (SSL_CTX_load_verify_locations(ctx->ssl, f, p) != 1) {
            tls_why_openssl(why, "cannot load CA file");
            tls_ctx_free(&ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx->ssl);
    }
    if (opts->cert_file && *opts->cert_file) {
        ctx->cert_file = xstrdup(opts->cert_file);
        ctx->key_file = xstrdup(opts->key_file && *opts->key_file ? opts->key_file : opts->cert_file);
        if (tls_load_pair(ctx, why) < 0) {
            tls_ctx_free(&ctx);
            return NULL;
        }
    }
    /* Verification result is read after the handshake; the level decides. */
    SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
    /* Lets any session of this context be armed with TLSA records. */
    if (SSL_CTX_dane_enable(ctx->ssl) <= 0) {
        tls_why_openssl(why, "cannot enable DANE");
        tls_ctx_free(&ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(struct tls_ctx **ctxp)
{
    struct tls_ctx *ctx = *ctxp;

    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx->cert_file);
    free(ctx->key_file);
    free(ctx->protocols);
    free(ctx->ciphers);
    free(ctx->ca_file);
    free(ctx);
    *ctxp = NULL;
}

/* Before a server handshake: reload the pair if a file changed.  The new
 * pair goes into a whole new SSL_CTX that replaces the old one only once
 * it loaded cleanly: loading into the live context could leave it with a
 * certificate and a key that do not match (a renewal caught half way), or
 * keep the old certificate beside a new one of another key type.  Sessions
 * in progress hold their own reference to the old context. */
static void tls_ctx_refresh(struct tls_ctx *ctx)
{
    struct file_id c, k;
    struct tls_ctx fresh;
    struct strbuf *why;

    if (!ctx->server || ctx->cert_file == NULL)
        return;
    if (file_id_get(ctx->cert_file, &c) < 0 || file_id_get(ctx->key_file, &k) < 0)
        return;
    if (file_id_same(&c, &ctx->cert_id) && file_id_same(&k, &ctx->key_id))
        return;
    why = strbuf_new(128);
    fresh = *ctx;
    fresh.ssl = NULL;
    if (tls_server_ssl_build(&fresh, why) == 0) {
        SSL_CTX_free(ctx->ssl);
        ctx->ssl = fresh.ssl;
        ctx->cert_id = fresh.cert_id;
        ctx->key_id = fresh.key_id;
        log_info("reloaded TLS certificate %s and key %s", ctx->cert_file, ctx->key_file);
    } else {
        SSL_CTX_free(fresh.ssl);
        log_warn("TLS certificate reload failed, keeping the old one: %s", strbuf_str(why));
        ctx->cert_id = c;   /* do not retry on every connection */
        ctx->key_id = k;
    }
    strbuf_free(&why);
}

static int ms_left(const struct timespec *end)
{
    struct timespec now;
    long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (int)ms;
}

static ssize_t tls_io_read(void *vctx, void *buf, size_t len)
{
    struct tls_conn *c = vctx;
    size_t got = 0;
    int r, err;

    ERR_clear_error();
    r = SSL_read_ex(c->ssl, buf, len, &got);
    if (r == 1)
        return (ssize_t)got;
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_SYSCALL && errno == 0)
        return 0;   /* peer closed without close_notify */
    if (err != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

static ssize_t tls_io_write(void *vctx, const void *buf, size_t len)
{
    struct tls_conn *c = vctx;
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

static int tls_handshake(struct tls_conn *c, struct stream *s, int timeout_ms, bool server,
                         struct strbuf *why)
{
    struct timespec end;
    int fd = stream_fd(s);
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        strbuf_printf(why, "cannot set descriptor non-blocking: %m");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    for (;;) {
        int r, err;
        struct pollfd pfd = { .fd = fd };

        ERR_clear_error();
        r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ)
            pfd.events = POLLIN;
        else if (err == SSL_ERROR_WANT_WRITE)
            pfd.events = POLLOUT;
        else {
            /* An end of file shows as SYSCALL or (unexpected EOFs being
             * ignored) ZERO_RETURN, with nothing in the error queue. */
            int saved = errno;
            if (ERR_peek_error() == 0
                && (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN))
                strbuf_printf(why, "TLS handshake failed: %s",
                              err == SSL_ERROR_SYSCALL && saved ? strerror(saved)
                                                                : "lost connection");
            else
                tls_why_openssl(why, "TLS handshake failed");
            return -1;
        }
        int left = ms_left(&end);
        if (left == 0 || (r = poll(&pfd, 1, left)) == 0) {
            strbuf_printf(why, "TLS handshake timed out");
            return -1;
        }
        if (r < 0 && errno != EINTR) {
            strbuf_printf(why, "poll: %m");
            return -1;
        }
    }
}

static void tls_conn_describe(struct tls_conn *c)
{
    const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
    int alg_bits = 0;
    int bits = SSL_CIPHER_get_bits(ciph, &alg_bits);
    X509 *peer = SSL_get0_peer_certificate(c->ssl);

    snprintf(c->summary, sizeof(c->summary), "%s with cipher %s (%d/%d bits)",
             SSL_get_version(c->ssl), SSL_CIPHER_get_name(ciph), bits, alg_bits);
    c->peer_cn[0] = 0;
    if (peer) {
        X509_NAME *subj = X509_get_subject_name(peer);
        if (subj && X509_NAME_get_text_by_NID(subj, NID_commonName, c->peer_cn,
                                              sizeof(c->peer_cn)) < 0)
            c->peer_cn[0] = 0;
    }
}

/* The descriptor BIO: OpenSSL's socket BIO writes with write(2), which
 * raises SIGPIPE on a closed connection.  Reads and writes never block
 * (the descriptor is non-blocking); EOF is remembered for BIO_eof, which
 * OpenSSL asks to tell an unexpected EOF from a retry. */
struct tls_bio {
    int fd;
    bool eof;
};

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static bool tls_bio_retry(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static int tls_bio_write(BIO *b, const char *buf, int len)
{
    struct tls_bio *tb = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = send(tb->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && tls_bio_retry())
        BIO_set_retry_write(b);
    return (int)n;
}

static int tls_bio_read(BIO *b, char *buf, int len)
{
    struct tls_bio *tb = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = recv(tb->fd, buf, (size_t)len, 0);
    if (n == 0)
        tb->eof = true;
    else if (n < 0 && tls_bio_retry())
        BIO_set_retry_read(b);
    return (int)n;
}

static int tls_bio_puts(BIO *b, const char *str)
{
    return tls_bio_write(b, str, (int)strlen(str));
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_bio *tb = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return tb->eof;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = tb->fd;
        return tb->fd;
    default:
        return 0;
    }
}

static int tls_bio_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static void tls_bio_init_once(void)
{
    int type = BIO_get_new_index();
    BIO_METHOD *m;

    if (type < 0 || (m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                      "facteur socket")) == NULL)
        log_fatal("cannot create the TLS descriptor BIO method");
    BIO_meth_set_write(m, tls_bio_write);
    BIO_meth_set_read(m, tls_bio_read);
    BIO_meth_set_puts(m, tls_bio_puts);
    BIO_meth_set_ctrl(m, tls_bio_ctrl);
    BIO_meth_set_destroy(m, tls_bio_destroy);
    tls_bio_method = m;
}

/* Attach fd to ssl through the BIO above; 0 or -1. */
static int tls_bio_attach(SSL *ssl, int fd)
{
    struct tls_bio *tb;
    BIO *b;

    pthread_once(&tls_bio_once, tls_bio_init_once);
    if ((b = BIO_new(tls_bio_method)) == NULL)
        return -1;
    tb = xcalloc(1, sizeof(*tb));
    tb->fd = fd;
    BIO_set_data(b, tb);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b);     /* one reference, owned by ssl */
    return 0;
}

struct tls_dane {
    const struct tls_dane_rr *rrs;
    size_t n;
};

/* Arm a client session with the usable TLSA records; -1 with why if none. */
static int tls_dane_arm(SSL *ssl, const char *host, const struct tls_dane *dane,
                        struct strbuf *why)
{
    size_t added = 0;

    if (host == NULL || *host == 0 || SSL_dane_enable(ssl, host) <= 0) {
        tls_why_openssl(why, "cannot enable DANE for this session");
        return -1;
    }
    /* RFC 7672 3.1.3: DANE-EE authenticates the key alone, no name. */
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    for (size_t i = 0; i < dane->n; i++) {
        const struct tls_dane_rr *rr = &dane->rrs[i];
        if (rr->usage != 2 && rr->usage != 3)
            continue;
        if (SSL_dane_tlsa_add(ssl, rr->usage, rr->selector, rr->mtype, rr->data, rr->len) > 0)
            added++;
        else
            ERR_clear_error();  /* an unusable record is ignored (RFC 7672) */
    }
    if (added == 0) {
        strbuf_printf(why, "no usable TLSA records for %s", host);
        return -1;
    }
    return 0;
}

static int tls_start(struct tls_ctx *ctx, struct stream *s, int timeout_ms, bool server,
                     const char *servername, const char *verify_name,
                     const struct tls_dane *dane, struct tls_conn **conn_r,
                     struct strbuf *why)
{
    struct tls_conn *c;

    if (server)
        tls_ctx_refresh(ctx);
    /* Anything the peer pipelined before the handshake is discarded:
     * STARTTLS command injection (CVE-2011-0411 class). */
    if (stream_flush(s) < 0) {
        strbuf_printf(why, "cannot flush before TLS: %s", stream_strerror(s));
        return -1;
    }
    stream_purge_input(s);
    c = xcalloc(1, sizeof(*c));
    c->ssl = SSL_new(ctx->ssl);
    if (c->ssl == NULL || tls_bio_attach(c->ssl, stream_fd(s)) < 0) {
        tls_why_openssl(why, "cannot create TLS session");
        SSL_free(c->ssl);
        free(c);
        return -1;
    }
    if (!server) {
        if (servername && *servername)
            SSL_set_tlsext_host_name(c->ssl, servername);
        if (verify_name && *verify_name) {
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(c->ssl, verify_name);
        }
        if (dane != NULL && tls_dane_arm(c->ssl, servername, dane, why) < 0) {
            SSL_free(c->ssl);
            free(c);
            return -1;
        }
    }
    if (tls_handshake(c, s, timeout_ms, server, why) < 0) {
        SSL_free(c->ssl);
        free(c);
        return -1;
    }
    if (dane != NULL && (SSL_get_verify_result(c->ssl) != X509_V_OK
                         || SSL_get0_dane_authority(c->ssl, NULL, NULL) < 0)) {
        strbuf_printf(why, "Server certificate not trusted (DANE: %s)",
                      X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
        SSL_free(c->ssl);
        free(c);
        return -1;
    }
    tls_conn_describe(c);
    c->stream = s;
    stream_set_io(s, tls_io_read, tls_io_write, c);
    *conn_r = c;
    return 0;
}

int tls_server_start(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                     struct tls_conn **conn_r, struct strbuf *why)
{
    return tls_start(ctx, s, timeout_ms, true, NULL, NULL, NULL, conn_r, why);
}

int tls_client_start(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                     const char *servername, const char *verify_name,
                     struct tls_conn **conn_r, struct strbuf *why)
{
    return tls_start(ctx, s, timeout_ms, false, servername, verify_name, NULL, conn_r, why);
}

int tls_client_start_dane(struct tls_ctx *ctx, struct stream *s, int timeout_ms,
                          const char *host, const struct tls_dane_rr *rrs, size_t n,
                          struct tls_conn **conn_r, struct strbuf *why)
{
    const struct tls_dane dane = { rrs, n };

    return tls_start(ctx, s, timeout_ms, false, host, NULL, &dane, conn_r, why);
}

/* The stream's I/O once its session is gone: it must not fall back to
 * plaintext on a descriptor the peer expects TLS on. */
static ssize_t tls_io_closed_read(void *vctx, void *buf, size_t len)
{
    (void)vctx;
    (void)buf;
    (void)len;
    errno = EPIPE;
    return -1;
}

static ssize_t tls_io_closed_write(void *vctx, const void *buf, size_t len)
{
    (void)vctx;
    (void)buf;
    (void)len;
    errno = EPIPE;
    return -1;
}

void tls_conn_free(struct tls_conn **connp)
{
    struct tls_conn *c = *connp;

    if (c == NULL)
        return;
    /* Output still buffered in the stream goes out through TLS now (within
     * the stream's own timeout): afterwards the stream has no session. */
    if (stream_out_pending(c->stream) > 0)
        (void)stream_flush(c->stream);
    stream_set_io(c->stream, tls_io_closed_read, tls_io_closed_write, NULL);
    /* One non-blocking close_notify attempt; never wait for the peer's. */
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
    *connp = NULL;
}

const char *tls_conn_protocol(const struct tls_conn *c) { return SSL_get_version(c->ssl); }
const char *tls_conn_cipher(const struct tls_conn *c)
{
    return SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl));
}
int tls_conn_bits(const struct tls_conn *c)
{
    return SSL_CIPHER_get_bits(SSL_get_current_cipher(c->ssl), NULL);
}
bool tls_conn_peer_cert(const struct tls_conn *c) { return SSL_get0_peer_certificate(c->ssl) != NULL; }
bool tls_conn_peer_verified(const struct tls_conn *c)
{
    return SSL_get0_peer_certificate(c->ssl) != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK;
}
const char *tls_conn_peer_cn(const struct tls_conn *c) { return c->peer_cn; }
size_t tls_conn_pending(const struct tls_conn *c) { return (size_t)SSL_pending(c->ssl); }
const char *tls_conn_summary(const struct tls_conn *c) { return c->summary; }
