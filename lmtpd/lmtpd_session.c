/*
 * lmtpd_session.c - the LMTP server side (RFC 2033): one client session.
 *
 * A command table (verb, states where it is allowed, handler) drives the
 * session; lib/smtp_syntax parses every command line and path, and
 * lib/smtp_data decodes DATA and BDAT.  All input is untrusted: command
 * lines are bounded (LMTPD_LINE_MAX), a message by message_size_limit, a
 * session by LMTPD_ERROR_LIMIT errors and lmtpd_timeout per read.
 *
 * The session reads through its own buffer (in) so that bytes pipelined
 * after the end of DATA or a BDAT chunk stay available for the next
 * command; replies are flushed only when no complete input is waiting, so
 * a pipelining client gets them in one write.  After DATA (or BDAT LAST)
 * each accepted recipient gets its own reply, in RCPT order, once
 * lmtpd_deliver() has made its file durable.  A client that vanishes
 * before the end of the data gets nothing delivered: the message is only
 * in memory until then.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lmtpd.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qid.h"
#include "smtp_data.h"
#include "smtp_syntax.h"

/* Session states, as bits for the command table. */
#define ST_INIT 0x01    /* greeted, no LHLO yet */
#define ST_READY 0x02   /* after LHLO, no transaction */
#define ST_MAIL 0x04    /* after MAIL */
#define ST_ANY (ST_INIT | ST_READY | ST_MAIL)

/* Read buffer refill size. */
#define LMTPD_READ_CHUNK 65536

struct session {
    struct stream *s;
    struct strbuf *in;          /* input read but not yet used */
    struct strbuf *line;        /* the current command line */
    struct strbuf *reply;
    struct strbuf *why;
    char peer[80];
    char sid[QID_BUFSIZE];      /* session ID for logs without XQID */
    unsigned state;
    bool quit;
    int errors;
    unsigned ncmds;
    /* transaction */
    struct strbuf *sender;
    struct strbuf *xqid;
    bool smtputf8;
    uint64_t mail_size;         /* MAIL SIZE=, 0 if not given */
    struct timeval start;
    struct lmtpd_rcpt **rcpts;
    size_t nrcpt, rcpt_cap;
    /* message */
    struct smtp_data *dec;
    struct strbuf *msg;
    uint64_t msg_max;
    bool toobig;
    bool bdat_open;             /* a BDAT transaction is under way */
};

/* ---- input ------------------------------------------------------- */

/* Append more input to s->in.  Before blocking, flush pending replies
 * (the end of a pipelined group).  Returns 1, 0 at EOF, -1 on error. */
static int session_fill(struct session *ss)
{
    char buf[LMTPD_READ_CHUNK];
    ssize_t n;

    if (stream_pending(ss->s) == 0 && stream_out_pending(ss->s) > 0
        && stream_flush(ss->s) < 0)
        return -1;
    n = stream_read(ss->s, buf, sizeof(buf));
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    strbuf_appendn(ss->in, buf, (size_t)n);
    return 1;
}

/* The next command line into ss->line (terminator included).  Returns 1,
 * 0 at EOF, -1 on error, 2 for a line over LMTPD_LINE_MAX (skipped). */
static int session_read_line(struct session *ss)
{
    size_t n;
    int r;
    bool toolong = false;

    for (;;) {
        switch (smtp_line_find(strbuf_str(ss->in), strbuf_len(ss->in), LMTPD_LINE_MAX, &n)) {
        case SMTP_FIND_LINE:
            if (toolong) {
                strbuf_consume(ss->in, n);
                return 2;
            }
            strbuf_setn(ss->line, strbuf_str(ss->in), n);
            strbuf_consume(ss->in, n);
            return 1;
        case SMTP_FIND_TOOLONG: {
            /* Drop the line through its newline, which may already be
             * buffered with pipelined commands after it. */
            const char *nl = memchr(strbuf_str(ss->in), '\n', strbuf_len(ss->in));

            if (nl != NULL) {
                strbuf_consume(ss->in, (size_t)(nl - strbuf_str(ss->in)) + 1);
                return 2;
            }
            toolong = true;
            strbuf_reset(ss->in);
            break;
        }
        case SMTP_FIND_NEED_MORE:
            break;
        }
        if ((r = session_fill(ss)) <= 0)
            return r;
    }
}

/* ---- output ------------------------------------------------------ */

static void session_reply_line(struct session *ss, const char *text)
{
    stream_printf(ss->s, "%s\r\n", text);
}

/* A reply from the table.  Refusals count toward LMTPD_ERROR_LIMIT when
 * they answer a protocol error; a recipient refused or not delivered is
 * an outcome, not a client error (an MTA may send many unknown users). */
static void session_reply_count(struct session *ss, enum smtp_reply_id id, const char *detail,
                                bool count)
{
    smtp_reply_format(ss->reply, id, detail);
    stream_write(ss->s, strbuf_str(ss->reply), strbuf_len(ss->reply));
    if (count && smtp_reply_get(id)->code >= 400)
        ss->errors++;
}

static void session_reply(struct session *ss, enum smtp_reply_id id, const char *detail)
{
    session_reply_count(ss, id, detail, true);
}

/* ---- transaction ------------------------------------------------- */

static void session_reset(struct session *ss)
{
    for (size_t i = 0; i < ss->nrcpt; i++)
        lmtpd_rcpt_free(&ss->rcpts[i]);
    ss->nrcpt = 0;
    strbuf_reset(ss->sender);
    strbuf_reset(ss->xqid);
    strbuf_reset(ss->msg);
    ss->smtputf8 = false;
    ss->mail_size = 0;
    ss->toobig = false;
    ss->bdat_open = false;
    if (ss->state == ST_MAIL)
        ss->state = ST_READY;
}

static int session_parse_opts(const struct session *ss)
{
    int opts = SMTP_OPT_8BITMIME | SMTP_OPT_SIZE;

    if (var_smtputf8_enable)
        opts |= SMTP_OPT_SMTPUTF8;
    return opts;
}

/* The data decoder's line callback: rebuild the message with LF ends. */
static int session_data_line(const char *line, size_t len, unsigned flags, void *ctx)
{
    struct session *ss = ctx;
    size_t add = len + ((flags & (SMTP_DATA_LINE_PARTIAL | SMTP_DATA_LINE_NO_EOL)) ? 0 : 1);

    if (ss->toobig)
        return 1;
    if (strbuf_len(ss->msg) + add > ss->msg_max) {
        ss->toobig = true;
        strbuf_reset(ss->msg);
        return 1;
    }
    strbuf_appendn(ss->msg, line, len);
    if (add > len)
        strbuf_appendc(ss->msg, '\n');
    return 0;
}

/* Feed input to the decoder until the message ends (or, for a BDAT
 * chunk, the chunk), within lmtpd_timeout extended by LMTPD_MIN_DATA_RATE
 * bytes per second, so a client trickling bytes cannot hold a process.  Bytes past the end stay in ss->in.
 * Returns 1 when reached, 0 at EOF, -1 on error. */
static int session_feed(struct session *ss, bool chunk)
{
    int r = 0;

    stream_set_deadline(ss->s, (int)(var_lmtpd_timeout * 1000), LMTPD_MIN_DATA_RATE);
    for (;;) {
        size_t used = 0;
        enum smtp_data_status st;

        /* Fed even when empty: a zero-size BDAT chunk ends at once. */
        st = smtp_data_feed(ss->dec, strbuf_str(ss->in), strbuf_len(ss->in), &used);
        strbuf_consume(ss->in, used);
        if (st == SMTP_DATA_END || (chunk && st == SMTP_DATA_CHUNK_DONE)) {
            r = 1;
            break;
        }
        if ((r = session_fill(ss)) <= 0)
            break;
    }
    if (r >= 0)
        stream_set_deadline(ss->s, 0, 0);
    return r;
}

/* After the data: deliver and send one reply per accepted recipient. */
static void session_finish_message(struct session *ss)
{
    struct lmtpd_msg m;
    unsigned flags = smtp_data_flags(ss->dec);

    if (ss->toobig) {
        for (size_t i = 0; i < ss->nrcpt; i++)
            session_reply_count(ss, SMTP_R_MSG_TOO_BIG, NULL, false);
        log_info("%s: reject: message from <%s> larger than %llu bytes",
                 strbuf_len(ss->xqid) ? strbuf_str(ss->xqid) : ss->sid,
                 strbuf_str(ss->sender), (unsigned long long)ss->msg_max);
        session_reset(ss);
        return;
    }
    if (flags & SMTP_DATA_SAW_NUL) {
        /* A NUL cannot be stored faithfully for IMAP clients: refuse as
         * Postfix's cleanup does with its default. */
        for (size_t i = 0; i < ss->nrcpt; i++)
            session_reply_count(ss, SMTP_R_BAD_DATA_END, "NUL byte in message content", false);
        session_reset(ss);
        return;
    }
    m.log_id = strbuf_len(ss->xqid) ? strbuf_str(ss->xqid) : ss->sid;
    m.qid = strbuf_len(ss->xqid) ? strbuf_str(ss->xqid) : NULL;
    m.sender = strbuf_str(ss->sender);
    m.data = strbuf_str(ss->msg);
    m.len = strbuf_len(ss->msg);
    m.start = ss->start;
    lmtpd_deliver(&m, ss->rcpts, ss->nrcpt);
    for (size_t i = 0; i < ss->nrcpt; i++)
        session_reply_line(ss, strbuf_str(ss->rcpts[i]->reply));
    session_reset(ss);
}

/* ---- XQID -------------------------------------------------------- */

int lmtpd_mail_xqid(const char *args, size_t len, struct strbuf *rest_r,
                    struct strbuf *qid_r, struct strbuf *why)
{
    size_t i = 0, path_end;
    bool seen = false;

    strbuf_reset(rest_r);
    strbuf_reset(qid_r);
    /* Skip "FROM:" and the path: up to the '>' that closes '<', honouring
     * quoted strings and quoted pairs; without '<', up to a space. */
    while (i < len && args[i] != ':')
        i++;
    if (i < len)
        i++;
    while (i < len && args[i] == ' ')
        i++;
    if (i < len && args[i] == '<') {
        bool quoted = false;

        for (i++; i < len; i++) {
            if (quoted && args[i] == '\\' && i + 1 < len)
                i++;
            else if (args[i] == '"')
                quoted = !quoted;
            else if (!quoted && args[i] == '>')
                break;
        }
        if (i < len)
            i++;
    } else {
        while (i < len && args[i] != ' ')
            i++;
    }
    path_end = i;
    strbuf_appendn(rest_r, args, path_end);
    while (i < len) {
        size_t start, tlen;

        while (i < len && args[i] == ' ')
            i++;
        start = i;
        while (i < len && args[i] != ' ')
            i++;
        tlen = i - start;
        if (tlen == 0)
            break;
        if (tlen >= 5 && strncasecmp(args + start, "XQID=", 5) == 0) {
            if (seen) {
                strbuf_set(why, "duplicate XQID parameter");
                return -1;
            }
            seen = true;
            if (!qid_validn(args + start + 5, tlen - 5)) {
                strbuf_set(why, "malformed XQID parameter");
                return -1;
            }
            strbuf_appendn(qid_r, args + start + 5, tlen - 5);
            continue;
        }
        strbuf_appendc(rest_r, ' ');
        strbuf_appendn(rest_r, args + start, tlen);
    }
    return 0;
}

/* ---- commands ---------------------------------------------------- */

static void cmd_lhlo(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reset(ss);
    ss->state = ST_READY;
    stream_printf(ss->s, "250-%s\r\n", var_myhostname);
    stream_puts(ss->s, "250-PIPELINING\r\n");
    if (var_message_size_limit > 0)
        stream_printf(ss->s, "250-SIZE %ld\r\n", var_message_size_limit);
    else
        stream_puts(ss->s, "250-SIZE\r\n");
    stream_puts(ss->s, "250-8BITMIME\r\n");
    if (var_smtputf8_enable)
        stream_puts(ss->s, "250-SMTPUTF8\r\n");
    stream_puts(ss->s, "250-CHUNKING\r\n");
    stream_puts(ss->s, "250-XQID\r\n");
    stream_puts(ss->s, "250 ENHANCEDSTATUSCODES\r\n");
}

static void cmd_mail(struct session *ss, const struct smtp_cmd *cmd)
{
    struct strbuf *rest = strbuf_new(cmd->args_len + 1);
    struct smtp_addr addr;
    struct smtp_params params;
    enum smtp_reply_id rid;

    smtp_addr_init(&addr);
    smtp_params_init(&params);
    strbuf_reset(ss->why);
    if (lmtpd_mail_xqid(cmd->args, cmd->args_len, rest, ss->xqid, ss->why) < 0) {
        session_reply(ss, SMTP_R_SYNTAX_ARGS, strbuf_str(ss->why));
        strbuf_reset(ss->xqid);
        goto out;
    }
    rid = smtp_parse_mail(strbuf_str(rest), strbuf_len(rest), session_parse_opts(ss), &addr,
                          &params, ss->why);
    if (rid != SMTP_R_NONE) {
        session_reply(ss, rid, strbuf_str(ss->why));
        strbuf_reset(ss->xqid);
        goto out;
    }
    if ((params.seen & SMTP_PARAM_SIZE) && params.size > ss->msg_max) {
        session_reply(ss, SMTP_R_MSG_TOO_BIG, NULL);
        strbuf_reset(ss->xqid);
        goto out;
    }
    strbuf_set(ss->sender, strbuf_str(addr.addr));
    ss->smtputf8 = params.smtputf8;
    ss->mail_size = (params.seen & SMTP_PARAM_SIZE) ? params.size : 0;
    gettimeofday(&ss->start, NULL);
    ss->state = ST_MAIL;
    session_reply(ss, SMTP_R_SENDER_OK, NULL);
out:
    smtp_addr_free(&addr);
    smtp_params_free(&params);
    strbuf_free(&rest);
}

static void cmd_rcpt(struct session *ss, const struct smtp_cmd *cmd)
{
    struct smtp_addr addr;
    struct smtp_params params;
    struct lmtpd_rcpt *r = NULL;
    enum smtp_reply_id rid;
    int opts = session_parse_opts(ss) & ~SMTP_OPT_SMTPUTF8;

    if (ss->nrcpt >= (size_t)var_lmtpd_recipient_limit) {
        session_reply(ss, SMTP_R_TOO_MANY_RCPTS, NULL);
        return;
    }
    if (ss->smtputf8)
        opts |= SMTP_OPT_SMTPUTF8;
    smtp_addr_init(&addr);
    smtp_params_init(&params);
    strbuf_reset(ss->why);
    rid = smtp_parse_rcpt(cmd->args, cmd->args_len, opts, &addr, &params, ss->why);
    if (rid != SMTP_R_NONE) {
        session_reply(ss, rid, strbuf_str(ss->why));
        goto out;
    }
    switch (lmtpd_rcpt_resolve(strbuf_str(addr.addr), strbuf_str(addr.local),
                               strbuf_str(addr.domain), &r, ss->reply)) {
    case 0:
        break;
    case 1:
        log_info("%s: reject: RCPT from %s: %s; from=<%s> to=<%s> proto=LMTP",
                 strbuf_len(ss->xqid) ? strbuf_str(ss->xqid) : "NOQUEUE", ss->peer,
                 strbuf_str(ss->reply), strbuf_str(ss->sender), strbuf_str(addr.addr));
        /* fall through */
    default:
        session_reply_line(ss, strbuf_str(ss->reply));
        goto out;
    }
    if (var_lmtp_rcpt_check_quota) {
        if (lmtpd_rcpt_quota(r, ss->mail_size, ss->reply) != 0) {
            session_reply_line(ss, strbuf_str(ss->reply));
            lmtpd_rcpt_free(&r);
            goto out;
        }
    }
    if (ss->nrcpt == ss->rcpt_cap) {
        ss->rcpt_cap = ss->rcpt_cap ? 2 * ss->rcpt_cap : 8;
        ss->rcpts = xreallocarray(ss->rcpts, ss->rcpt_cap, sizeof(*ss->rcpts));
    }
    ss->rcpts[ss->nrcpt++] = r;
    session_reply(ss, SMTP_R_RCPT_OK, NULL);
out:
    smtp_addr_free(&addr);
    smtp_params_free(&params);
}

static void cmd_data(struct session *ss, const struct smtp_cmd *cmd)
{
    int r;

    if (ss->nrcpt == 0) {
        session_reply(ss, SMTP_R_NEED_RCPT, "no valid recipients");
        return;
    }
    if (ss->bdat_open) {
        session_reply(ss, SMTP_R_BAD_SEQUENCE, "DATA after BDAT");
        return;
    }
    session_reply(ss, SMTP_R_DATA_GO, NULL);
    strbuf_reset(ss->msg);
    smtp_data_begin(ss->dec, SMTP_DATA_MODE_DOT);
    if ((r = session_feed(ss, false)) <= 0) {
        log_info("%s: lost connection after DATA from %s (%zu bytes)", ss->sid, ss->peer,
                 strbuf_len(ss->msg));
        ss->quit = true;
        session_reset(ss);
        return;
    }
    session_finish_message(ss);
}

static void cmd_bdat(struct session *ss, const struct smtp_cmd *cmd)
{
    uint64_t size;
    bool last;
    enum smtp_reply_id rid;
    const char *refuse = NULL;
    enum smtp_reply_id refuse_id = SMTP_R_NONE;
    int r;

    strbuf_reset(ss->why);
    rid = smtp_parse_bdat(cmd->args, cmd->args_len, &size, &last, ss->why);
    if (rid != SMTP_R_NONE) {
        /* The chunk size is unknown: the session cannot stay in step. */
        session_reply(ss, rid, strbuf_str(ss->why));
        ss->quit = true;
        return;
    }
    if (ss->state != ST_MAIL) {
        refuse_id = ss->state == ST_INIT ? SMTP_R_NEED_HELO : SMTP_R_NEED_MAIL;
    } else if (ss->nrcpt == 0) {
        refuse_id = SMTP_R_NEED_RCPT;
        refuse = "no valid recipients";
    }
    if (!ss->bdat_open && refuse_id == SMTP_R_NONE) {
        strbuf_reset(ss->msg);
        smtp_data_begin(ss->dec, SMTP_DATA_MODE_BDAT);
        ss->bdat_open = true;
    }
    if (refuse_id != SMTP_R_NONE) {
        /* RFC 3030: the chunk is read (and dropped) even when refused. */
        uint64_t left = size;

        stream_set_deadline(ss->s, (int)(var_lmtpd_timeout * 1000), LMTPD_MIN_DATA_RATE);
        while (left > 0) {
            size_t take = strbuf_len(ss->in) < left ? strbuf_len(ss->in) : (size_t)left;

            strbuf_consume(ss->in, take);
            left -= take;
            if (left > 0 && (r = session_fill(ss)) <= 0) {
                ss->quit = true;
                return;
            }
        }
        stream_set_deadline(ss->s, 0, 0);
        session_reply(ss, refuse_id, refuse);
        return;
    }
    if (smtp_data_chunk(ss->dec, size, last) < 0)
        log_panic("BDAT chunk refused by the decoder in state %u", ss->state);
    if ((r = session_feed(ss, true)) <= 0) {
        log_info("%s: lost connection after BDAT from %s (%zu bytes)", ss->sid, ss->peer,
                 strbuf_len(ss->msg));
        ss->quit = true;
        session_reset(ss);
        return;
    }
    if (!last) {
        stream_printf(ss->s, "250 2.0.0 Ok: %llu octets\r\n", (unsigned long long)size);
        return;
    }
    session_finish_message(ss);
}

static void cmd_rset(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reset(ss);
    session_reply(ss, SMTP_R_OK, NULL);
}

static void cmd_noop(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reply(ss, SMTP_R_OK, NULL);
}

static void cmd_quit(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reply(ss, SMTP_R_BYE, NULL);
    ss->quit = true;
}

static void cmd_vrfy(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reply(ss, SMTP_R_VRFY_CANNOT, NULL);
}

static void cmd_helo(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reply(ss, SMTP_R_BAD_CMD, "this is LMTP: send LHLO");
}

static void cmd_unimpl(struct session *ss, const struct smtp_cmd *cmd)
{
    session_reply(ss, SMTP_R_NOT_IMPLEMENTED, NULL);
}

struct cmd_desc {
    enum smtp_verb verb;
    unsigned states;            /* where the command is allowed */
    void (*fn)(struct session *, const struct smtp_cmd *);
};

static const struct cmd_desc cmd_table[] = {
    {SMTP_VERB_LHLO, ST_ANY, cmd_lhlo},
    {SMTP_VERB_MAIL, ST_READY, cmd_mail},
    {SMTP_VERB_RCPT, ST_MAIL, cmd_rcpt},
    {SMTP_VERB_DATA, ST_MAIL, cmd_data},
    {SMTP_VERB_BDAT, ST_ANY, cmd_bdat},     /* checks state itself: must read the chunk */
    {SMTP_VERB_RSET, ST_ANY, cmd_rset},
    {SMTP_VERB_NOOP, ST_ANY, cmd_noop},
    {SMTP_VERB_QUIT, ST_ANY, cmd_quit},
    {SMTP_VERB_VRFY, ST_ANY, cmd_vrfy},
    {SMTP_VERB_HELO, ST_ANY, cmd_helo},
    {SMTP_VERB_EHLO, ST_ANY, cmd_helo},
    {SMTP_VERB_EXPN, ST_ANY, cmd_unimpl},
    {SMTP_VERB_HELP, ST_ANY, cmd_unimpl},
    {SMTP_VERB_STARTTLS, ST_ANY, cmd_unimpl},
    {SMTP_VERB_AUTH, ST_ANY, cmd_unimpl},
    {SMTP_VERB_XCLIENT, ST_ANY, cmd_unimpl},
    {SMTP_VERB_XFORWARD, ST_ANY, cmd_unimpl},
    {SMTP_VERB_ETRN, ST_ANY, cmd_unimpl},
};

/* The reply for a command not allowed in the current state. */
static void session_wrong_state(struct session *ss, enum smtp_verb verb)
{
    if (ss->state == ST_INIT)
        session_reply(ss, SMTP_R_NEED_HELO, "send LHLO first");
    else if (verb == SMTP_VERB_MAIL)
        session_reply(ss, SMTP_R_BAD_SEQUENCE, "nested MAIL command");
    else
        session_reply(ss, SMTP_R_NEED_MAIL, NULL);
}

static void session_command(struct session *ss)
{
    const char *line = strbuf_str(ss->line);
    size_t clen;
    struct smtp_cmd cmd;
    enum smtp_reply_id rid;
    const struct cmd_desc *d = NULL;

    ss->ncmds++;
    switch (smtp_line_check(line, strbuf_len(ss->line), &clen)) {
    case SMTP_LINE_CRLF:
        break;
    case SMTP_LINE_NUL:
        session_reply(ss, SMTP_R_NUL_BYTE, NULL);
        return;
    default:
        session_reply(ss, SMTP_R_BARE_NEWLINE, NULL);
        return;
    }
    if (ss->ncmds == 1 && smtp_line_is_http(line, clen)) {
        log_warn("%s: HTTP command from %s: session ended", ss->sid, ss->peer);
        ss->quit = true;
        return;
    }
    strbuf_reset(ss->why);
    rid = smtp_cmd_parse(line, clen, &cmd, ss->why);
    if (rid != SMTP_R_NONE) {
        session_reply(ss, rid, strbuf_len(ss->why) ? strbuf_str(ss->why) : NULL);
        return;
    }
    for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++) {
        if (cmd_table[i].verb == cmd.verb) {
            d = &cmd_table[i];
            break;
        }
    }
    if (d == NULL) {
        session_reply(ss, SMTP_R_BAD_CMD, NULL);
        return;
    }
    if (!(d->states & ss->state)) {
        session_wrong_state(ss, cmd.verb);
        return;
    }
    d->fn(ss, &cmd);
}

/* ---- the session ------------------------------------------------- */

static void session_peer(struct session *ss)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    char addr[INET6_ADDRSTRLEN];

    snprintf(ss->peer, sizeof(ss->peer), "local");
    if (getpeername(stream_fd(ss->s), (struct sockaddr *)&sa, &salen) < 0)
        return;
    if (sa.ss_family == AF_INET
        && inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr, sizeof(addr)))
        snprintf(ss->peer, sizeof(ss->peer), "unknown[%s]", addr);
    else if (sa.ss_family == AF_INET6
             && inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr,
                          sizeof(addr)))
        snprintf(ss->peer, sizeof(ss->peer), "unknown[%s]", addr);
}

/* A session ID that looks like a queue ID: time plus pid and a counter. */
static void session_make_id(struct session *ss)
{
    static unsigned counter;
    struct timeval tv;

    gettimeofday(&tv, NULL);
    if (qid_make(ss->sid, &tv, ((uint64_t)getpid() << 20) | (++counter & 0xfffff)) < 0)
        snprintf(ss->sid, sizeof(ss->sid), "NOQUEUE");
}

void lmtpd_session(struct stream *s)
{
    struct session ss;
    int r;

    memset(&ss, 0, sizeof(ss));
    ss.s = s;
    ss.in = strbuf_new(LMTPD_READ_CHUNK);
    ss.line = strbuf_new(256);
    ss.reply = strbuf_new(256);
    ss.why = strbuf_new(128);
    ss.sender = strbuf_new(64);
    ss.xqid = strbuf_new(QID_BUFSIZE);
    ss.msg = strbuf_new(65536);
    ss.state = ST_INIT;
    ss.msg_max = var_message_size_limit > 0 ? (uint64_t)var_message_size_limit
                                            : LMTPD_MSG_HARD_MAX;
    if (ss.msg_max > LMTPD_MSG_HARD_MAX)
        ss.msg_max = LMTPD_MSG_HARD_MAX;
    ss.dec = smtp_data_new(LMTPD_DATA_LINE_MAX, session_data_line, &ss);
    session_make_id(&ss);
    session_peer(&ss);
    stream_set_timeout(s, (int)(var_lmtpd_timeout * 1000));
    log_info("%s: connect from %s", ss.sid, ss.peer);

    stream_printf(s, "220 %s\r\n", var_lmtpd_banner);
    while (!ss.quit) {
        r = session_read_line(&ss);
        if (r <= 0) {
            if (r < 0 && stream_error(s) == STREAM_ERR_TIMEOUT) {
                session_reply(&ss, SMTP_R_TIMEOUT, NULL);
                log_info("%s: timeout after command %u from %s", ss.sid, ss.ncmds, ss.peer);
            } else if (ss.nrcpt > 0 || ss.state == ST_MAIL) {
                log_info("%s: lost connection in a transaction from %s", ss.sid, ss.peer);
            }
            break;
        }
        if (r == 2)
            session_reply(&ss, SMTP_R_LINE_TOO_LONG, NULL);
        else
            session_command(&ss);
        if (ss.errors >= LMTPD_ERROR_LIMIT && !ss.quit) {
            session_reply(&ss, SMTP_R_TOO_MANY_ERRORS, NULL);
            log_warn("%s: too many errors from %s", ss.sid, ss.peer);
            ss.quit = true;
        }
    }
    stream_flush(s);
    log_info("%s: disconnect from %s commands=%u errors=%d", ss.sid, ss.peer, ss.ncmds,
             ss.errors);
    session_reset(&ss);
    free(ss.rcpts);
    smtp_data_free(&ss.dec);
    strbuf_free(&ss.in);
    strbuf_free(&ss.line);
    strbuf_free(&ss.reply);
    strbuf_free(&ss.why);
    strbuf_free(&ss.sender);
    strbuf_free(&ss.xqid);
    strbuf_free(&ss.msg);
}
