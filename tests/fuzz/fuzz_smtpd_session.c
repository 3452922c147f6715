/*
 * fuzz_smtpd_session.c - libFuzzer target for a whole smtpd session: the
 * command table, state checks, pipelining rules, bare newline handling,
 * MAIL/RCPT parameters, DATA and BDAT through lib/smtp_data, AUTH without
 * authd, XCLIENT/XFORWARD argument parsing, error limits.
 *
 * smtpd's sources are compiled in (they live in smtpd/, which fuzz builds
 * do not link; smtpd.c's main is renamed away) and smtpd_service() runs on
 * a memory stream holding the input.  The restrictions and the queue are
 * replaced below: smtpd_check() answers from the first letter of the
 * address or HELO ('r' reject, 't' temporary failure), and the queue side
 * of lib/cleanup keeps only counts (weak definitions: a build that
 * compiles lib/cleanup.c in uses the real one, which then fails to open a
 * queue file and answers 451).  The first input byte picks options: the
 * bare newline mode or TLS required, XCLIENT rights, AUTH on, the size
 * limit, a reject footer with macros.
 * Checks: the session always ends, every reply line ends in CRLF and
 * starts with a 3-digit code.  Everything is freed per input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define main smtpd_unused_main
#include "../../smtpd/smtpd.c"
#undef main
#include "../../smtpd/smtpd_auth.c"
#include "../../smtpd/smtpd_cmd.c"
#include "../../smtpd/smtpd_data.c"
#include "../../smtpd/smtpd_peer.c"
#include "../../smtpd/smtpd_tls.c"
#include "../../smtpd/smtpd_xclient.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- restrictions ---------------------------------------------------- */

int smtpd_check_init(struct strbuf *why)
{
    return 0;
}

void smtpd_check_deinit(void)
{
}

static int fuzz_verdict(const char *what, struct strbuf *reply_r)
{
    if (what == NULL || what[0] == 0)
        return 0;
    if (what[0] == 'r') {
        strbuf_printf(reply_r, "554 5.7.1 <%.40s>: rejected", what);
        return 1;
    }
    if (what[0] == 't') {
        strbuf_set(reply_r, "451 4.3.0 Error: temporary failure");
        return -1;
    }
    return 0;
}

int smtpd_check(enum smtpd_check_stage stage, const struct smtpd_check_ctx *ctx,
                struct strbuf *reply_r)
{
    switch (stage) {
    case SMTPD_CHECK_HELO:
        return fuzz_verdict(ctx->helo, reply_r);
    case SMTPD_CHECK_MAIL:
        return fuzz_verdict(ctx->sender, reply_r);
    case SMTPD_CHECK_RCPT:
        return fuzz_verdict(ctx->recipient, reply_r);
    default:
        return 0;
    }
}

/* ---- the queue side of cleanup ---------------------------------------- */

struct cleanup {
    size_t rcpts, lines;
    uint64_t bytes;
    bool sender;
};

__attribute__((weak)) int cleanup_init(struct strbuf *why)
{
    return 0;
}

__attribute__((weak)) struct cleanup *cleanup_open(const char *queue_dir, unsigned flags,
                                                   struct strbuf *why)
{
    return xcalloc(1, sizeof(struct cleanup));
}

__attribute__((weak)) const char *cleanup_qid(const struct cleanup *c)
{
    return "1xFUZZ0000001";
}

__attribute__((weak)) int cleanup_set_sender(struct cleanup *c, const char *addr)
{
    c->sender = true;
    return 0;
}

__attribute__((weak)) int cleanup_add_rcpt(struct cleanup *c, const char *addr,
                                           const char *orcpt, unsigned notify)
{
    c->rcpts++;
    return 0;
}

__attribute__((weak)) int cleanup_set_ret(struct cleanup *c, char ret)
{
    return ret == 'F' || ret == 'H' ? 0 : -1;
}

__attribute__((weak)) int cleanup_set_envid(struct cleanup *c, const char *envid)
{
    return 0;
}

__attribute__((weak)) int cleanup_set_flags(struct cleanup *c, unsigned flags)
{
    return 0;
}

__attribute__((weak)) int cleanup_set_attr(struct cleanup *c, const char *name,
                                           const char *value)
{
    return 0;
}

__attribute__((weak)) int cleanup_add_received(struct cleanup *c,
                                               const struct cleanup_received *r)
{
    return 0;
}

__attribute__((weak)) int cleanup_line(struct cleanup *c, const char *line, size_t len)
{
    c->lines++;
    c->bytes += len + 1;
    return c->bytes > 1000000 ? -1 : 0;
}

__attribute__((weak)) int cleanup_finish(struct cleanup *c, struct qfile_group *g,
                                         uint64_t *seq_r, struct strbuf *reply_r)
{
    if (!c->sender || c->rcpts == 0)
        __builtin_trap();       /* smtpd must not finish an empty envelope */
    if (c->bytes > 1000000) {
        strbuf_set(reply_r, "552 5.3.4 Message size exceeds fixed limit");
        return CLEANUP_TOOBIG;
    }
    strbuf_set(reply_r, "250 2.0.0 Ok: queued as 1xFUZZ0000001");
    return CLEANUP_OK;
}

__attribute__((weak)) void cleanup_free(struct cleanup **cp)
{
    free(*cp);
    *cp = NULL;
}

__attribute__((weak)) int trigger_send(const char *queue_dir, const char *service,
                                       const char *msg, size_t len)
{
    return 0;
}

/* ---- the session -------------------------------------------------------- */

static void fuzz_config(uint8_t opt)
{
    static const char *const nl[] = {"normalize", "reject", "no", "normalize"};
    static const char *const sizes[] = {"10240000", "100", "5000", "0"};
    struct strbuf *cf = strbuf_new(512), *why = strbuf_new(64);

    strbuf_printf(cf, "myhostname = fuzz.example\nsmtpd_error_sleep_time = 0\n"
                  "smtpd_peername_lookup = no\nsmtpd_forbid_bare_newline = %s\n"
                  "message_size_limit = %s\nsmtpd_sasl_auth_enable = %s\n"
                  "smtpd_forbid_unauth_pipelining = %s\nsmtpd_recipient_limit = 5\n"
                  "smtpd_sasl_path = /nonexistent/fuzz/auth\nline_length_limit = 600\n"
                  "smtpd_reject_footer = %s\n",
                  nl[opt & 3], sizes[(opt >> 2) & 3], (opt & 16) ? "yes" : "no",
                  (opt & 32) ? "yes" : "no",
                  (opt & 128) ? "\\c see $client_address\\n$code ${enhanced_code} $helo_name\\n$"
                              : "");
    if (conf_load_buffer("fuzz/main.cf", strbuf_str(cf), strbuf_len(cf), why) < 0)
        __builtin_trap();
    memset(&smtpd_g, 0, sizeof(smtpd_g));
    smtpd_g.queue_dir = "/nonexistent/fuzz";
    smtpd_g.bare_nl = (opt & 3) == 1 ? SMTPD_BARE_NL_REJECT : SMTPD_BARE_NL_NORMALIZE;
    /* Mode 3: TLS required (and never available here), as on port 587. */
    smtpd_g.tls_level = (opt & 3) == 3 ? 2 : 0;
    /* Memory streams have no peer address, so XCLIENT is refused here;
     * its argument parser is fuzzed directly (fuzz_xattrs). */
    smtpd_g.xclient_hosts = (opt & 64) ? cidr_list_parse("0.0.0.0/0", why) : NULL;
    strbuf_free(&cf);
    strbuf_free(&why);
}

/* The XCLIENT/XFORWARD argument parser and value checks on the raw input. */
static void fuzz_xattrs(const char *buf, size_t len)
{
    struct xattr x[XATTRS_MAX];
    struct strbuf *why = strbuf_new(32);
    int n;

    xattrs_init(x);
    n = xattr_parse(buf, len, x, why);
    if (n < -1 || n > XATTRS_MAX || (n < 0 && strbuf_len(why) == 0))
        __builtin_trap();
    for (int i = 0; i < n; i++) {
        if (strbuf_len(x[i].value) > SMTPD_XATTR_MAX)
            __builtin_trap();
        (void)xname_valid(strbuf_str(x[i].value));
        (void)xport_valid(strbuf_str(x[i].value));
        (void)xaddr_valid(x[i].value);
    }
    xattrs_free(x);
    strbuf_free(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *in, *out;
    struct stream *s;
    const char *p, *end;

    if (size == 0)
        return 0;
    log_init("fuzz_smtpd_session", 0);
    fuzz_config(data[0]);
    in = strbuf_new(size);
    out = strbuf_new(1024);
    strbuf_appendn(in, data + 1, size - 1);
    s = stream_memopen(in, out);
    smtpd_service(s);
    stream_close(&s);
    /* Every reply line: three digits, then ' ' or '-', ending in CRLF. */
    p = strbuf_str(out);
    end = p + strbuf_len(out);
    if (p == end)
        __builtin_trap();       /* not even a greeting */
    while (p < end) {
        const char *nlp = memchr(p, '\n', (size_t)(end - p));
        if (nlp == NULL || nlp - p < 5 || nlp[-1] != '\r' || p[0] < '2' || p[0] > '5'
            || (p[3] != ' ' && p[3] != '-'))
            __builtin_trap();
        p = nlp + 1;
    }
    cidr_list_free(&smtpd_g.xclient_hosts);
    fuzz_xattrs((const char *)data + 1, size - 1);
    strbuf_free(&in);
    strbuf_free(&out);
    conf_unload();
    return 0;
}
