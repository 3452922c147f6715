/*
 * test_tls.c - unit tests for lib/tls.c.
 *
 * Protocol lists as a table; everything else is a real handshake over a
 * socketpair, the server side in a thread and the client side in the test
 * itself, both through lib/tls and lib/stream, with certificates generated
 * here through the OpenSSL API into a temporary directory.  The thread never
 * asserts: it records what it saw in its struct side and the test checks
 * after joining.  Every wait is bounded by a stream timeout or a handshake
 * timeout of at most a few seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "stream.h"
#include "strbuf.h"
#include "tls.h"

#define IO_TIMEOUT_MS 5000
#define HS_TIMEOUT_MS 5000
#define SUMMARY13 "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"

static char tmpdir[128];

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *path_in_tmp(const char *name)
{
    static char paths[16][256];
    static int next;
    char *p = paths[next++ % 16];

    snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
    return p;
}

/* ------------------------------------------------------------------ */
/* Certificates made with the OpenSSL API.                             */

/* Write a self-signed certificate for cn (also its DNS subjectAltName)
 * and its key to dir/<base>.crt and dir/<base>.key, through temporary
 * names and rename() so a reloading server never sees half a file. */
static void make_pair(const char *base, const char *cn, bool rsa)
{
    EVP_PKEY *pkey = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    X509_EXTENSION *ext;
    X509V3_CTX v3;
    char san[300], tmp[300], final[300];
    FILE *fp;
    static long serial = 1;

    assert_non_null(pkey);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    snprintf(san, sizeof(san), "DNS:%s", cn);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);

    snprintf(tmp, sizeof(tmp), "%s/%s.crt.tmp", tmpdir, base);
    snprintf(final, sizeof(final), "%s/%s.crt", tmpdir, base);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_true(PEM_write_X509(fp, x) == 1);
    fclose(fp);
    assert_int_equal(rename(tmp, final), 0);
    snprintf(tmp, sizeof(tmp), "%s/%s.key.tmp", tmpdir, base);
    snprintf(final, sizeof(final), "%s/%s.key", tmpdir, base);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    assert_true(PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(fp);
    assert_int_equal(rename(tmp, final), 0);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

/* Copy dir/<from>.<ext> over dir/<to>.<ext> atomically. */
static void copy_file(const char *from, const char *to)
{
    char src[300], tmp[300], dst[300], buf[8192];
    FILE *in, *out;
    size_t n;

    snprintf(src, sizeof(src), "%s/%s", tmpdir, from);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", tmpdir, to);
    snprintf(dst, sizeof(dst), "%s/%s", tmpdir, to);
    in = fopen(src, "r");
    out = fopen(tmp, "w");
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    assert_int_equal(rename(tmp, dst), 0);
}

/* ------------------------------------------------------------------ */
/* One side of a connection.                                           */

struct side;
typedef void side_fn(struct side *sd, struct stream *s);

struct side {
    struct tls_ctx *ctx;
    int fd;
    bool server;
    const char *sni, *verify_name;
    int timeout_ms;
    side_fn *before;        /* plaintext exchange before the handshake */
    side_fn *after;         /* exchange through TLS after it */
    struct tls_conn *conn;  /* during after() */
    /* Results. */
    int rc;
    char why[256];
    char summary[160], protocol[32], cipher[64], cn[256];
    int bits;
    bool peer_cert, verified;
    size_t pending_before;  /* stream_pending() just before the handshake */
    char line[256];         /* a line the scenario wants checked */
    int errors;             /* scenario mismatches */
    long count;
};

static void side_run(struct side *sd)
{
    struct stream *s = stream_fdopen(sd->fd);
    struct strbuf *why = strbuf_new(64);
    struct tls_conn *conn = NULL;

    stream_set_timeout(s, IO_TIMEOUT_MS);
    if (sd->before)
        sd->before(sd, s);
    sd->pending_before = stream_pending(s);
    sd->rc = sd->server
        ? tls_server_start(sd->ctx, s, sd->timeout_ms ? sd->timeout_ms : HS_TIMEOUT_MS, &conn, why)
        : tls_client_start(sd->ctx, s, sd->timeout_ms ? sd->timeout_ms : HS_TIMEOUT_MS, sd->sni,
                           sd->verify_name, &conn, why);
    snprintf(sd->why, sizeof(sd->why), "%s", strbuf_str(why));
    if (sd->rc == 0) {
        snprintf(sd->summary, sizeof(sd->summary), "%s", tls_conn_summary(conn));
        snprintf(sd->protocol, sizeof(sd->protocol), "%s", tls_conn_protocol(conn));
        snprintf(sd->cipher, sizeof(sd->cipher), "%s", tls_conn_cipher(conn));
        snprintf(sd->cn, sizeof(sd->cn), "%s", tls_conn_peer_cn(conn));
        sd->bits = tls_conn_bits(conn);
        sd->peer_cert = tls_conn_peer_cert(conn);
        sd->verified = tls_conn_peer_verified(conn);
        sd->conn = conn;
        if (sd->after)
            sd->after(sd, s);
        sd->conn = NULL;
        tls_conn_free(&conn);
    }
    stream_close(&s);
    strbuf_free(&why);
}

static void *side_thread(void *arg)
{
    side_run(arg);
    return NULL;
}

/* Run srv in a thread and cli here, over a fresh socketpair. */
static void run_pair(struct side *srv, struct side *cli)
{
    int sv[2];
    pthread_t th;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    srv->fd = sv[0];
    srv->server = true;
    cli->fd = sv[1];
    cli->server = false;
    assert_int_equal(pthread_create(&th, NULL, side_thread, srv), 0);
    side_run(cli);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static struct tls_ctx *server_ctx(const char *base, const char *protocols,
                                  const char *ca_file, bool ask)
{
    char crt[300], key[300];
    struct strbuf *why = strbuf_new(64);
    struct tls_server_opts o = { 0 };
    struct tls_ctx *ctx;

    snprintf(crt, sizeof(crt), "%s/%s.crt", tmpdir, base);
    snprintf(key, sizeof(key), "%s/%s.key", tmpdir, base);
    o.cert_file = crt;
    o.key_file = key;
    o.protocols = protocols;
    o.ca_file = ca_file;
    o.ask_client_cert = ask;
    ctx = tls_server_ctx_new(&o, why);
    if (ctx == NULL)
        fail_msg("tls_server_ctx_new: %s", strbuf_str(why));
    strbuf_free(&why);
    return ctx;
}

static struct tls_ctx *client_ctx(const char *ca_base, const char *protocols,
                                  const char *cert_base)
{
    char ca[300], crt[300], key[300];
    struct strbuf *why = strbuf_new(64);
    struct tls_client_opts o = { 0 };
    struct tls_ctx *ctx;

    if (ca_base) {
        snprintf(ca, sizeof(ca), "%s/%s.crt", tmpdir, ca_base);
        o.ca_file = ca;
    }
    if (cert_base) {
        snprintf(crt, sizeof(crt), "%s/%s.crt", tmpdir, cert_base);
        snprintf(key, sizeof(key), "%s/%s.key", tmpdir, cert_base);
        o.cert_file = crt;
        o.key_file = key;
    }
    o.protocols = protocols;
    ctx = tls_client_ctx_new(&o, why);
    if (ctx == NULL)
        fail_msg("tls_client_ctx_new: %s", strbuf_str(why));
    strbuf_free(&why);
    return ctx;
}

/* ------------------------------------------------------------------ */
/* tls_parse_protocols.                                                */

static void test_parse_protocols(void **state)
{
    static const struct {
        const char *spec;
        int rc, min, max;
        const char *why;    /* substring of the error */
    } cases[] = {
        { NULL, 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { "", 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { ">=TLSv1.2", 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { ">=TLSv1.3", 0, TLS1_3_VERSION, TLS1_3_VERSION, NULL },
        { ">=TLSv1", 0, TLS1_VERSION, TLS1_3_VERSION, NULL },
        { "TLSv1.2, TLSv1.3", 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { "TLSv1.2", 0, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
        { "tlsv1.3", 0, TLS1_3_VERSION, TLS1_3_VERSION, NULL },
        { "TLSv1.2:TLSv1.3", 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", 0, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
        { "!SSLv2 !SSLv3", 0, TLS1_VERSION, TLS1_3_VERSION, NULL },
        { "<=TLSv1.2", 0, TLS1_VERSION, TLS1_2_VERSION, NULL },
        { ">=TLSv1.1 <=TLSv1.2", 0, TLS1_1_VERSION, TLS1_2_VERSION, NULL },
        { "!TLSv1.3", 0, TLS1_VERSION, TLS1_2_VERSION, NULL },
        /* A hole is filled: OpenSSL takes a range. */
        { "TLSv1, TLSv1.3", 0, TLS1_VERSION, TLS1_3_VERSION, NULL },
        /* Errors name the offending word or the list. */
        { "TLSv1.4", -1, 0, 0, "\"TLSv1.4\"" },
        { ">=TLSv1.2, bogus", -1, 0, 0, "\"bogus\"" },
        { "!", -1, 0, 0, "unknown TLS protocol" },
        { ">=", -1, 0, 0, "unknown TLS protocol" },
        { "=>TLSv1.2", -1, 0, 0, "\"=>TLSv1.2\"" },
        { "SSLv3", -1, 0, 0, "leaves no protocol" },
        { "SSLv2, SSLv3", -1, 0, 0, "leaves no protocol" },
        { "!TLSv1, !TLSv1.1, !TLSv1.2, !TLSv1.3", -1, 0, 0, "leaves no protocol" },
        { ">=TLSv1.3, <=TLSv1.2", -1, 0, 0, "leaves no protocol" },
        { "<=SSLv3", -1, 0, 0, "leaves no protocol" },
        { "TLSv1.3, !TLSv1.3", -1, 0, 0, "leaves no protocol" },
    };
    struct strbuf *why = strbuf_new(64);
    char longspec[2000];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int min = -7, max = -7;
        int rc;

        strbuf_reset(why);
        rc = tls_parse_protocols(cases[i].spec, &min, &max, why);
        if (rc != cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d, why \"%s\"", i,
                     cases[i].spec ? cases[i].spec : "(null)", rc, strbuf_str(why));
        if (rc == 0) {
            assert_int_equal(min, cases[i].min);
            assert_int_equal(max, cases[i].max);
        } else {
            assert_int_equal(min, -7);  /* untouched on error */
            if (strstr(strbuf_str(why), cases[i].why) == NULL)
                fail_msg("case %zu: why \"%s\" lacks \"%s\"", i, strbuf_str(why), cases[i].why);
        }
    }
    /* An over-long list of valid words, and an over-long unknown word. */
    longspec[0] = 0;
    while (strlen(longspec) + 12 < sizeof(longspec))
        strcat(longspec, "!TLSv1.1, ");
    strcat(longspec, "TLSv1.3");
    {
        int min = 0, max = 0;
        assert_int_equal(tls_parse_protocols(longspec, &min, &max, why), 0);
        assert_int_equal(min, TLS1_3_VERSION);
    }
    memset(longspec, 'A', sizeof(longspec) - 1);
    longspec[sizeof(longspec) - 1] = 0;
    {
        int min = 0, max = 0;
        strbuf_reset(why);
        assert_int_equal(tls_parse_protocols(longspec, &min, &max, why), -1);
        assert_non_null(strstr(strbuf_str(why), "unknown TLS protocol"));
    }
    strbuf_free(&why);
}

/* ------------------------------------------------------------------ */
/* Contexts that cannot be made.                                       */

static void test_bad_contexts(void **state)
{
    struct strbuf *why = strbuf_new(64);
    struct tls_server_opts so = { 0 };
    struct tls_client_opts co = { 0 };
    struct tls_ctx *ctx;

    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "no TLS certificate"));

    strbuf_reset(why);
    so.cert_file = path_in_tmp("missing.crt");
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "missing.crt"));

    /* Key of another pair. */
    strbuf_reset(why);
    so.cert_file = path_in_tmp("one.crt");
    so.key_file = path_in_tmp("two.key");
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "two.key"));

    strbuf_reset(why);
    so.key_file = path_in_tmp("one.key");
    so.protocols = "TLSv9";
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "TLSv9"));

    strbuf_reset(why);
    so.protocols = NULL;
    so.ciphers = "NO-SUCH-CIPHER";
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "cipher"));

    strbuf_reset(why);
    so.ciphers = NULL;
    so.ca_file = path_in_tmp("missing-ca.crt");
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "CA"));

    strbuf_reset(why);
    co.ca_file = path_in_tmp("missing-ca.crt");
    ctx = tls_client_ctx_new(&co, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "CA"));

    strbuf_reset(why);
    co.ca_file = NULL;
    co.protocols = "SSLv3";
    ctx = tls_client_ctx_new(&co, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "no protocol"));

    strbuf_reset(why);
    co.protocols = NULL;
    co.cert_file = path_in_tmp("missing.crt");
    ctx = tls_client_ctx_new(&co, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "missing.crt"));

    /* An encrypted key: refused with a reason, no passphrase prompt. */
    {
        FILE *in = fopen(path_in_tmp("one.key"), "r"), *out;
        EVP_PKEY *pk;

        assert_non_null(in);
        pk = PEM_read_PrivateKey(in, NULL, NULL, NULL);
        fclose(in);
        assert_non_null(pk);
        out = fopen(path_in_tmp("enc.key"), "w");
        assert_non_null(out);
        assert_int_equal(PEM_write_PrivateKey(out, pk, EVP_aes_128_cbc(),
                                              (const unsigned char *)"secret", 6, NULL, NULL), 1);
        fclose(out);
        EVP_PKEY_free(pk);
    }
    strbuf_reset(why);
    so.ca_file = NULL;
    so.key_file = path_in_tmp("enc.key");
    ctx = tls_server_ctx_new(&so, why);
    assert_null(ctx);
    assert_non_null(strstr(strbuf_str(why), "enc.key"));
    so.key_file = path_in_tmp("one.key");

    /* The good pair works; freeing twice is harmless. */
    so.ca_file = NULL;
    ctx = tls_server_ctx_new(&so, why);
    assert_non_null(ctx);
    tls_ctx_free(&ctx);
    assert_null(ctx);
    tls_ctx_free(&ctx);
    strbuf_free(&why);
}

/* ------------------------------------------------------------------ */
/* A full handshake and data both ways.                                */

#define BODY_LEN (1024 * 1024)

static unsigned char body_byte(size_t i)
{
    return (unsigned char)((i * 131 + (i >> 9)) & 0xff);
}

/* Server: echo lines until "BODY\r\n", then read BODY_LEN bytes and
 * check them, then send BODY_LEN bytes back and a last line. */
static void echo_server(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);
    unsigned char *buf = malloc(BODY_LEN);

    for (int i = 0; i < 100; i++) {
        if (stream_read_line(s, line, 1000) != 1) {
            sd->errors++;
            goto out;
        }
        if (strcmp(strbuf_str(line), "BODY\r\n") == 0)
            break;
        stream_printf(s, "echo %s", strbuf_str(line));
        stream_flush(s);
        sd->count++;
    }
    if (stream_read_exact(s, buf, BODY_LEN) != 1) {
        sd->errors++;
        goto out;
    }
    for (size_t i = 0; i < BODY_LEN; i++)
        if (buf[i] != body_byte(i)) {
            sd->errors++;
            break;
        }
    for (size_t i = 0; i < BODY_LEN; i++)
        buf[i] = body_byte(i + 7);
    stream_write(s, buf, BODY_LEN);
    stream_puts(s, "221 bye\r\n");
    if (stream_flush(s) < 0)
        sd->errors++;
out:
    free(buf);
    strbuf_free(&line);
}

static void echo_client(struct side *sd, struct stream *s)
{
    static const char *const lines[] = { "EHLO client.example\r\n", "NOOP\r\n", "x\r\n" };
    struct strbuf *line = strbuf_new(64);
    unsigned char *buf = malloc(BODY_LEN);
    char want[128];

    for (size_t i = 0; i < 3; i++) {
        stream_puts(s, lines[i]);
        stream_flush(s);
        snprintf(want, sizeof(want), "echo %s", lines[i]);
        if (stream_read_line(s, line, 1000) != 1 || strcmp(strbuf_str(line), want) != 0)
            sd->errors++;
    }
    stream_puts(s, "BODY\r\n");
    for (size_t i = 0; i < BODY_LEN; i++)
        buf[i] = body_byte(i);
    stream_write(s, buf, BODY_LEN);
    if (stream_flush(s) < 0)
        sd->errors++;
    memset(buf, 0, BODY_LEN);
    if (stream_read_exact(s, buf, BODY_LEN) != 1)
        sd->errors++;
    for (size_t i = 0; i < BODY_LEN; i++)
        if (buf[i] != body_byte(i + 7)) {
            sd->errors++;
            break;
        }
    if (stream_read_line(s, line, 1000) == 1)
        snprintf(sd->line, sizeof(sd->line), "%s", strbuf_str(line));
    /* The server closes after its last line: a clean end of file. */
    sd->count = stream_read_line(s, line, 1000);
    free(buf);
    strbuf_free(&line);
}

static void test_handshake_and_data(void **state)
{
    struct side srv = { .after = echo_server };
    struct side cli = { .after = echo_client, .sni = "mail.example.test",
                        .verify_name = "mail.example.test" };

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", NULL, NULL);
    run_pair(&srv, &cli);
    if (srv.rc != 0 || cli.rc != 0)
        fail_msg("server \"%s\" client \"%s\"", srv.why, cli.why);
    assert_string_equal(srv.summary, SUMMARY13);
    assert_string_equal(cli.summary, SUMMARY13);
    assert_string_equal(cli.protocol, "TLSv1.3");
    assert_string_equal(cli.cipher, "TLS_AES_256_GCM_SHA384");
    assert_int_equal(cli.bits, 256);
    assert_true(cli.peer_cert);
    assert_true(cli.verified);
    assert_string_equal(cli.cn, "mail.example.test");
    assert_false(srv.peer_cert);
    assert_false(srv.verified);
    assert_string_equal(srv.cn, "");
    assert_int_equal(srv.errors, 0);
    assert_int_equal(srv.count, 3);
    assert_int_equal(cli.errors, 0);
    assert_string_equal(cli.line, "221 bye\r\n");
    assert_int_equal(cli.count, 0);
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
}

/* TLS 1.2 on request, and no common protocol at all. */
static void test_protocol_choice(void **state)
{
    struct side srv = { 0 }, cli = { 0 };

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", "TLSv1.2", NULL);
    cli.verify_name = "mail.example.test";
    run_pair(&srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    assert_string_equal(cli.summary,
                        "TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)");
    assert_true(cli.verified);
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);

    /* A TLS 1.2 client that offers only DHE gets the built-in groups. */
    memset(&srv, 0, sizeof(srv));
    memset(&cli, 0, sizeof(cli));
    {
        struct strbuf *why = strbuf_new(64);
        struct tls_client_opts co = { .protocols = "TLSv1.2", .ciphers = "DHE+AESGCM" };

        co.ca_file = path_in_tmp("rsa.crt");
        cli.ctx = tls_client_ctx_new(&co, why);
        assert_non_null(cli.ctx);
        strbuf_free(&why);
    }
    srv.ctx = server_ctx("rsa", NULL, NULL, false);
    run_pair(&srv, &cli);
    if (srv.rc != 0 || cli.rc != 0)
        fail_msg("DHE: server \"%s\" client \"%s\"", srv.why, cli.why);
    assert_string_equal(cli.summary,
                        "TLSv1.2 with cipher DHE-RSA-AES256-GCM-SHA384 (256/256 bits)");
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);

    memset(&srv, 0, sizeof(srv));
    memset(&cli, 0, sizeof(cli));
    srv.ctx = server_ctx("mail", ">=TLSv1.3", NULL, false);
    cli.ctx = client_ctx("mail", "<=TLSv1.2", NULL);
    run_pair(&srv, &cli);
    assert_int_equal(srv.rc, -1);
    assert_int_equal(cli.rc, -1);
    assert_non_null(strstr(srv.why, "TLS handshake failed"));
    assert_non_null(strstr(cli.why, "TLS handshake failed"));
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
}

/* ------------------------------------------------------------------ */
/* Bytes pipelined before the handshake are dropped, on both sides.    */

static void inject_server_before(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    if (stream_read_line(s, line, 1000) != 1 || strcmp(strbuf_str(line), "STARTTLS\r\n") != 0)
        sd->errors++;
    /* The client's injected command is buffered here, unread. */
    sd->count = (long)stream_pending(s);
    stream_puts(s, "220 go ahead\r\n250 INJECTED\r\n");
    stream_flush(s);
    strbuf_free(&line);
}

static void inject_server_after(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    if (stream_read_line(s, line, 1000) == 1)
        snprintf(sd->line, sizeof(sd->line), "%s", strbuf_str(line));
    stream_puts(s, "250 ok\r\n");
    stream_flush(s);
    strbuf_free(&line);
}

static void inject_client_before(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    /* One write: the command rides in the same segment as STARTTLS. */
    stream_puts(s, "STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n");
    stream_flush(s);
    if (stream_read_line(s, line, 1000) != 1 || strcmp(strbuf_str(line), "220 go ahead\r\n") != 0)
        sd->errors++;
    sd->count = (long)stream_pending(s);
    strbuf_free(&line);
}

static void inject_client_after(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    stream_puts(s, "NOOP\r\n");
    stream_flush(s);
    if (stream_read_line(s, line, 1000) == 1)
        snprintf(sd->line, sizeof(sd->line), "%s", strbuf_str(line));
    strbuf_free(&line);
}

static void test_pipelined_input_dropped(void **state)
{
    struct side srv = { .before = inject_server_before, .after = inject_server_after };
    struct side cli = { .before = inject_client_before, .after = inject_client_after };

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", NULL, NULL);
    run_pair(&srv, &cli);
    if (srv.rc != 0 || cli.rc != 0)
        fail_msg("server \"%s\" client \"%s\"", srv.why, cli.why);
    assert_int_equal(srv.errors, 0);
    assert_int_equal(cli.errors, 0);
    /* Both had the injected bytes buffered before the handshake ... */
    assert_int_equal(srv.count, (long)strlen("MAIL FROM:<evil@example.net>\r\n"));
    assert_int_equal(cli.count, (long)strlen("250 INJECTED\r\n"));
    /* ... and neither saw them after it. */
    assert_string_equal(srv.line, "NOOP\r\n");
    assert_string_equal(cli.line, "250 ok\r\n");
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
}

/* ------------------------------------------------------------------ */
/* Peers that never answer, hang up or speak something else.           */

static void silent_handshake(bool server, int timeout_ms)
{
    int sv[2];
    struct strbuf *why = strbuf_new(64);
    struct stream *s;
    struct tls_conn *conn = NULL;
    struct tls_ctx *ctx = server ? server_ctx("mail", NULL, NULL, false)
                                 : client_ctx("mail", NULL, NULL);
    uint64_t t0;
    int rc, elapsed;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    t0 = now_ms();
    rc = server ? tls_server_start(ctx, s, timeout_ms, &conn, why)
                : tls_client_start(ctx, s, timeout_ms, NULL, NULL, &conn, why);
    elapsed = (int)(now_ms() - t0);
    assert_int_equal(rc, -1);
    assert_null(conn);
    assert_non_null(strstr(strbuf_str(why), "timed out"));
    if (elapsed < timeout_ms - 20 || elapsed > timeout_ms + 700)
        fail_msg("handshake gave up after %d ms, timeout %d ms", elapsed, timeout_ms);
    stream_close(&s);
    close(sv[1]);
    tls_ctx_free(&ctx);
    strbuf_free(&why);
}

static void test_silent_peer_times_out(void **state)
{
    silent_handshake(true, 300);
    silent_handshake(false, 300);
}

static void test_peer_hangs_up_or_speaks_http(void **state)
{
    static const struct {
        const char *bytes, *why;
    } junk[] = {
        { "", "lost connection" },                         /* closes at once */
        { "GET / HTTP/1.0\r\n\r\n", "http request" },   /* plaintext */
        { "\x16\x03\x01\x00\x05\x01\x00\x00\x01", "lost connection" }, /* cut short */
    };

    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int sv[2];
        struct strbuf *why = strbuf_new(64);
        struct tls_ctx *ctx = server_ctx("mail", NULL, NULL, false);
        struct tls_conn *conn = NULL;
        struct stream *s;
        uint64_t t0;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(write(sv[1], junk[i].bytes, strlen(junk[i].bytes)),
                         (ssize_t)strlen(junk[i].bytes));
        close(sv[1]);
        s = stream_fdopen(sv[0]);
        t0 = now_ms();
        assert_int_equal(tls_server_start(ctx, s, 3000, &conn, why), -1);
        assert_true(now_ms() - t0 < 1000);
        assert_null(conn);
        if (strstr(strbuf_str(why), "TLS handshake failed") == NULL
            || strstr(strbuf_str(why), junk[i].why) == NULL)
            fail_msg("case %zu: \"%s\"", i, strbuf_str(why));
        stream_close(&s);
        tls_ctx_free(&ctx);
        strbuf_free(&why);
    }
}

/* ------------------------------------------------------------------ */
/* Certificate and name verification.                                  */

static void test_client_verifies_name(void **state)
{
    static const struct {
        const char *ca, *verify_name;
        bool verified;
    } cases[] = {
        { "mail", "mail.example.test", true },
        { "mail", "MAIL.Example.TEST", true },
        { "mail", "other.example.test", false },
        { "mail", "example.test", false },
        { "mail", NULL, true },             /* chain only */
        { "one", "mail.example.test", false },  /* untrusted issuer */
        { "one", NULL, false },
        /* A wildcard covers one whole label, no more, no less. */
        { "wild", "mx.wild.example.test", true },
        { "wild", "a.mx.wild.example.test", false },
        { "wild", "wild.example.test", false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct side srv = { 0 }, cli = { 0 };

        srv.ctx = server_ctx(strcmp(cases[i].ca, "wild") == 0 ? "wild" : "mail", NULL, NULL,
                             false);
        cli.ctx = client_ctx(cases[i].ca, NULL, NULL);
        cli.verify_name = cases[i].verify_name;
        cli.sni = "mail.example.test";
        run_pair(&srv, &cli);
        if (srv.rc != 0 || cli.rc != 0)
            fail_msg("case %zu: server \"%s\" client \"%s\"", i, srv.why, cli.why);
        assert_true(cli.peer_cert);
        if (cli.verified != cases[i].verified)
            fail_msg("case %zu: verified %d", i, cli.verified);
        tls_ctx_free(&srv.ctx);
        tls_ctx_free(&cli.ctx);
    }
}

/* A server that asks for a client certificate records what it got and
 * never aborts the handshake over it (Postfix smtpd_tls_ask_ccert). */
static void test_client_certificate(void **state)
{
    static const struct {
        const char *client_cert;
        bool peer_cert, verified;
        const char *cn;
    } cases[] = {
        { "client", true, true, "client.example.test" },
        { "one", true, false, "one.example.test" },     /* not in the CA file */
        { NULL, false, false, "" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct side srv = { 0 }, cli = { 0 };

        srv.ctx = server_ctx("mail", NULL, path_in_tmp("client.crt"), true);
        cli.ctx = client_ctx("mail", NULL, cases[i].client_cert);
        run_pair(&srv, &cli);
        if (srv.rc != 0 || cli.rc != 0)
            fail_msg("case %zu: server \"%s\" client \"%s\"", i, srv.why, cli.why);
        assert_int_equal(srv.peer_cert, cases[i].peer_cert);
        assert_int_equal(srv.verified, cases[i].verified);
        assert_string_equal(srv.cn, cases[i].cn);
        tls_ctx_free(&srv.ctx);
        tls_ctx_free(&cli.ctx);
    }
}

/* A record is decrypted whole: what the stream had no room for waits in
 * OpenSSL, and tls_conn_pending says so. */
#define RECORD_LEN 16000

static void record_server(struct side *sd, struct stream *s)
{
    static char rec[RECORD_LEN];
    struct strbuf *line = strbuf_new(64);

    memset(rec, 'r', sizeof(rec));
    stream_write(s, rec, sizeof(rec));
    stream_flush(s);
    (void)stream_read_line(s, line, 1000);  /* the client's "done" */
    strbuf_free(&line);
}

static void record_client(struct side *sd, struct stream *s)
{
    static char buf[RECORD_LEN];
    size_t got = 0;

    if (stream_read(s, buf, 1) != 1)
        sd->errors++;
    sd->count = (long)tls_conn_pending(sd->conn);
    /* Every byte is somewhere: read, in the stream, or in OpenSSL. */
    if (1 + stream_pending(s) + tls_conn_pending(sd->conn) != RECORD_LEN)
        sd->errors++;
    got = 1;
    while (got < RECORD_LEN) {
        ssize_t n = stream_read(s, buf, sizeof(buf));
        if (n <= 0) {
            sd->errors++;
            break;
        }
        got += (size_t)n;
    }
    if (tls_conn_pending(sd->conn) != 0 || stream_pending(s) != 0)
        sd->errors++;
    stream_puts(s, "done\r\n");
    stream_flush(s);
}

static void test_pending_record(void **state)
{
    struct side srv = { .after = record_server }, cli = { .after = record_client };

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", NULL, NULL);
    run_pair(&srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    assert_int_equal(cli.errors, 0);
    assert_true(cli.count > 0);     /* the stream reads 4 KB at first */
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
}

/* ------------------------------------------------------------------ */
/* Certificate reload.                                                 */

/* One handshake against ctx; returns the CN the client saw ("" on failure). */
static void handshake_cn(struct tls_ctx *ctx, char *cn, size_t size)
{
    struct side srv = { .ctx = ctx }, cli = { 0 };

    cli.ctx = client_ctx(NULL, NULL, NULL);
    run_pair(&srv, &cli);
    snprintf(cn, size, "%s", srv.rc == 0 && cli.rc == 0 ? cli.cn : "");
    tls_ctx_free(&cli.ctx);
}

static bool log_has(const char *logpath, const char *needle)
{
    char buf[8192];
    FILE *fp = fopen(logpath, "r");
    size_t n;

    if (fp == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

static void test_certificate_reload(void **state)
{
    char cn[256];
    char *logpath = path_in_tmp("reload.log");
    struct tls_ctx *ctx;

    log_init("test_tls", LOG_DEST_FILE);
    assert_int_equal(log_set_file(logpath), 0);
    copy_file("one.crt", "live.crt");
    copy_file("one.key", "live.key");
    ctx = server_ctx("live", NULL, NULL, false);
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "one.example.test");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "one.example.test");

    /* A renewal: both files replaced. */
    copy_file("two.crt", "live.crt");
    copy_file("two.key", "live.key");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "two.example.test");
    assert_true(log_has(logpath, "reloaded TLS certificate"));

    /* Half a renewal: a certificate without its key is refused, the old
     * pair stays in service, and a warning says why. */
    copy_file("three.crt", "live.crt");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "two.example.test");
    assert_true(log_has(logpath, "warning: TLS certificate reload failed"));
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "two.example.test");
    /* The key arrives: the next handshake uses the new pair. */
    copy_file("three.key", "live.key");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "three.example.test");

    /* Garbage in the certificate file keeps the working pair too. */
    {
        FILE *fp = fopen(path_in_tmp("junk.crt"), "w");
        assert_non_null(fp);
        fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
        fclose(fp);
    }
    copy_file("junk.crt", "live.crt");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "three.example.test");

    /* A new key type (EC to RSA): the new certificate, not the old one
     * kept beside it, is presented. */
    copy_file("rsa.crt", "live.crt");
    copy_file("rsa.key", "live.key");
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "rsa.example.test");

    /* Files removed: the loaded pair keeps serving. */
    assert_int_equal(unlink(path_in_tmp("live.crt")), 0);
    handshake_cn(ctx, cn, sizeof(cn));
    assert_string_equal(cn, "rsa.example.test");

    tls_ctx_free(&ctx);
    log_set_file(NULL);
    log_init("test_tls", LOG_DEST_STDERR);
}

/* ------------------------------------------------------------------ */
/* Shutdown: a peer that closes without close_notify, and freeing the  */
/* session with output still buffered in the stream.                   */

static void abrupt_server(struct side *sd, struct stream *s)
{
    /* Close the descriptor under TLS without a close_notify. */
    shutdown(stream_fd(s), SHUT_RDWR);
}

static void abrupt_client(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    sd->count = stream_read_line(s, line, 1000);
    strbuf_free(&line);
}

static void test_peer_closes_without_close_notify(void **state)
{
    struct side srv = { .after = abrupt_server };
    struct side cli = { .after = abrupt_client };

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", NULL, NULL);
    run_pair(&srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    /* The client sees the end of the stream (SMTP has its own framing). */
    assert_int_equal(cli.count, 0);
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
}

static void pending_server(struct side *sd, struct stream *s)
{
    struct strbuf *line = strbuf_new(64);

    sd->count = stream_read_line(s, line, 1000);
    if (sd->count == 1)
        snprintf(sd->line, sizeof(sd->line), "%s", strbuf_str(line));
    strbuf_free(&line);
}

static void test_free_with_output_pending(void **state)
{
    int sv[2];
    pthread_t th;
    struct side srv = { .after = pending_server };
    struct side cli = { 0 };
    struct strbuf *why = strbuf_new(64);
    struct tls_conn *conn = NULL;
    struct stream *s;

    srv.ctx = server_ctx("mail", NULL, NULL, false);
    cli.ctx = client_ctx("mail", NULL, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    srv.fd = sv[0];
    srv.server = true;
    assert_int_equal(pthread_create(&th, NULL, side_thread, &srv), 0);
    s = stream_fdopen(sv[1]);
    stream_set_timeout(s, IO_TIMEOUT_MS);
    assert_int_equal(tls_client_start(cli.ctx, s, HS_TIMEOUT_MS, NULL, NULL, &conn, why), 0);
    /* Buffered, not flushed: tls_conn_free must deliver it through TLS
     * or drop it, never hand it to a freed session. */
    stream_puts(s, "QUIT\r\n");
    tls_conn_free(&conn);
    assert_null(conn);
    stream_close(&s);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(srv.rc, 0);
    assert_true(srv.count == 1 || srv.count == 0);
    if (srv.count == 1)
        assert_string_equal(srv.line, "QUIT\r\n");
    tls_ctx_free(&srv.ctx);
    tls_ctx_free(&cli.ctx);
    strbuf_free(&why);
}

/* Writing to a peer that has gone away is an error, never a SIGPIPE, even
 * in a process that did not ignore the signal (commands, tests). */
static void test_no_sigpipe(void **state)
{
    int sv[2], status;
    pid_t pid;
    struct strbuf *why = strbuf_new(64);
    struct tls_ctx *sctx = server_ctx("mail", NULL, NULL, false);
    struct tls_ctx *cctx = client_ctx("mail", NULL, NULL);
    struct tls_conn *conn = NULL;
    struct stream *s;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Client: wait for the server to hang up, then write. */
        struct strbuf *line = strbuf_new(64);
        static char big[65536];
        int bad = 0;

        signal(SIGPIPE, SIG_DFL);
        close(sv[0]);
        alarm(10);
        s = stream_fdopen(sv[1]);
        stream_set_timeout(s, IO_TIMEOUT_MS);
        if (tls_client_start(cctx, s, HS_TIMEOUT_MS, NULL, NULL, &conn, why) < 0)
            _exit(2);
        bad += stream_read_line(s, line, 1000) != 0;  /* the server's close */
        for (int i = 0; i < 8; i++)
            stream_write(s, big, sizeof(big));
        bad += stream_flush(s) != -1;
        bad += stream_error(s) == STREAM_ERR_NONE;
        tls_conn_free(&conn);
        stream_close(&s);
        strbuf_free(&line);
        _exit(bad ? 3 : 0);
    }
    close(sv[1]);
    s = stream_fdopen(sv[0]);
    stream_set_timeout(s, IO_TIMEOUT_MS);
    assert_int_equal(tls_server_start(sctx, s, HS_TIMEOUT_MS, &conn, why), 0);
    tls_conn_free(&conn);
    stream_close(&s);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("client %s %d", WIFSIGNALED(status) ? "killed by signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    tls_ctx_free(&sctx);
    tls_ctx_free(&cctx);
    strbuf_free(&why);
}

/* ------------------------------------------------------------------ */

static int setup(void **state)
{
    char tmpl[64];
    size_t n;

    /* A peer that disappears must show as an error, not kill the run. */
    signal(SIGPIPE, SIG_IGN);
    n = (size_t)snprintf(tmpl, sizeof(tmpl), "/tmp/test_tls.");
    memset(tmpl + n, 'X', 6);   /* mkdtemp's template letters */
    tmpl[n + 6] = 0;
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
    make_pair("mail", "mail.example.test", false);
    make_pair("one", "one.example.test", false);
    make_pair("two", "two.example.test", false);
    make_pair("three", "three.example.test", false);
    make_pair("client", "client.example.test", false);
    make_pair("rsa", "rsa.example.test", true);
    make_pair("wild", "*.wild.example.test", false);
    return 0;
}

static int teardown(void **state)
{
    static const char *const names[] = {
        "mail.crt", "mail.key", "one.crt", "one.key", "two.crt", "two.key",
        "three.crt", "three.key", "client.crt", "client.key", "rsa.crt", "rsa.key",
        "live.crt", "live.key", "junk.crt", "reload.log", "wild.crt", "wild.key", "enc.key",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(path_in_tmp(names[i]));
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_protocols),
        cmocka_unit_test(test_bad_contexts),
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_protocol_choice),
        cmocka_unit_test(test_pipelined_input_dropped),
        cmocka_unit_test(test_silent_peer_times_out),
        cmocka_unit_test(test_peer_hangs_up_or_speaks_http),
        cmocka_unit_test(test_client_verifies_name),
        cmocka_unit_test(test_client_certificate),
        cmocka_unit_test(test_pending_record),
        cmocka_unit_test(test_certificate_reload),
        cmocka_unit_test(test_peer_closes_without_close_notify),
        cmocka_unit_test(test_free_with_output_pending),
        cmocka_unit_test(test_no_sigpipe),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
