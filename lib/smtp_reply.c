/*
 * smtp_reply.c - SMTP replies: the one reply table, enhanced status code
 * descriptions (RFC 3463), reply formatting, and the client-side reply
 * parser (the reply half of smtp_syntax.h).
 *
 * smtpd and lmtpd take every reply they send from the table, so a code
 * and its enhanced status code never drift apart (as OpenSMTPD's esc.c);
 * the smtp client parses what remote servers answer.  Reply lines come
 * from untrusted servers: bounded per line, per line count and in total,
 * and nothing is read past the length given.
 */
#include <string.h>

#include "log.h"
#include "smtp_syntax.h"

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------ */
/* Reply table.                                                        */

static const struct smtp_reply_desc reply_table[SMTP_R_COUNT] = {
    [SMTP_R_NONE] = {250, "2.0.0", "Ok", ": "},
    [SMTP_R_OK] = {250, "2.0.0", "Ok", ": "},
    [SMTP_R_SENDER_OK] = {250, "2.1.0", "Ok", ": "},
    [SMTP_R_RCPT_OK] = {250, "2.1.5", "Ok", ": "},
    [SMTP_R_QUEUED] = {250, "2.0.0", "Ok: queued as", " "},
    [SMTP_R_DATA_GO] = {354, "", "End data with <CR><LF>.<CR><LF>", " "},
    [SMTP_R_BYE] = {221, "2.0.0", "Bye", " "},
    [SMTP_R_HELP] = {214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321", " "},
    [SMTP_R_VRFY_CANNOT] = {252, "2.0.0", "Cannot VRFY user, but will accept message", ": "},
    [SMTP_R_TLS_GO] = {220, "2.0.0", "Ready to start TLS", " "},
    [SMTP_R_AUTH_OK] = {235, "2.7.0", "Authentication successful", " "},
    [SMTP_R_SHUTDOWN] = {421, "4.3.0", "Service shutting down, closing transmission channel", ": "},
    [SMTP_R_TIMEOUT] = {421, "4.4.2", "Error: timeout exceeded", ": "},
    [SMTP_R_TOO_MANY_ERRORS] = {421, "4.7.0", "Error: too many errors", ": "},
    [SMTP_R_TEMP_LOCAL] = {451, "4.3.0", "Error: local error in processing", ": "},
    [SMTP_R_QUEUE_WRITE] = {451, "4.3.0", "Error: queue file write error", ": "},
    [SMTP_R_TOO_MANY_RCPTS] = {452, "4.5.3", "Error: too many recipients", ": "},
    [SMTP_R_NO_SPACE] = {452, "4.3.1", "Insufficient system storage", ": "},
    [SMTP_R_TLS_UNAVAILABLE] = {454, "4.7.0", "TLS not available due to local problem", ": "},
    [SMTP_R_AUTH_TEMP] = {454, "4.7.0", "Temporary authentication failure", ": "},
    [SMTP_R_BAD_CMD] = {500, "5.5.2", "Error: command not recognized", ": "},
    [SMTP_R_LINE_TOO_LONG] = {500, "5.5.0", "Error: line too long", ": "},
    [SMTP_R_BARE_NEWLINE] = {500, "5.5.2", "Error: bare <CR> or <LF> received", ": "},
    [SMTP_R_NUL_BYTE] = {500, "5.5.2", "Error: NUL byte in command", ": "},
    [SMTP_R_SYNTAX_ARGS] = {501, "5.5.4", "Syntax error in parameters or arguments", ": "},
    [SMTP_R_BAD_SENDER_SYNTAX] = {501, "5.1.7", "Bad sender address syntax", ": "},
    [SMTP_R_BAD_RCPT_SYNTAX] = {501, "5.1.3", "Bad recipient address syntax", ": "},
    [SMTP_R_NOT_IMPLEMENTED] = {502, "5.5.1", "Error: command not implemented", ": "},
    [SMTP_R_BAD_SEQUENCE] = {503, "5.5.1", "Error: bad sequence of commands", ": "},
    [SMTP_R_NEED_MAIL] = {503, "5.5.1", "Error: need MAIL command", ": "},
    [SMTP_R_NEED_RCPT] = {503, "5.5.1", "Error: need RCPT command", ": "},
    [SMTP_R_NEED_HELO] = {503, "5.5.1", "Error: send HELO/EHLO first", ": "},
    [SMTP_R_PARAM_NOT_IMPL] = {504, "5.5.4", "Error: parameter value not implemented", ": "},
    [SMTP_R_AUTH_REQUIRED] = {530, "5.7.0", "Authentication required", ": "},
    [SMTP_R_TLS_REQUIRED] = {530, "5.7.0", "Must issue a STARTTLS command first", ": "},
    [SMTP_R_AUTH_FAILED] = {535, "5.7.8", "Error: authentication failed", ": "},
    [SMTP_R_RELAY_DENIED] = {554, "5.7.1", "Relay access denied", ": "},
    [SMTP_R_USER_UNKNOWN] = {550, "5.1.1", "Recipient address rejected: User unknown", ": "},
    [SMTP_R_MAILBOX_FULL] = {552, "5.2.2", "Mailbox full", ": "},
    [SMTP_R_MSG_TOO_BIG] = {552, "5.3.4", "Message size exceeds fixed limit", ": "},
    [SMTP_R_ADDR_REJECTED] = {553, "5.1.2", "Address rejected: routing syntax not allowed", ": "},
    [SMTP_R_NEED_SMTPUTF8] = {553, "5.6.7", "Non-ASCII address requires SMTPUTF8", ": "},
    [SMTP_R_REJECTED] = {554, "5.7.1", "Rejected", ": "},
    [SMTP_R_UNKNOWN_PARAM] = {555, "5.5.4", "Unsupported option", ": "},
    [SMTP_R_BAD_DATA_END] = {550, "5.6.0", "Error: bare <LF> or bad end of data", ": "},
};

const struct smtp_reply_desc *smtp_reply_get(enum smtp_reply_id id)
{
    if ((unsigned)id >= SMTP_R_COUNT)
        log_panic("smtp_reply_get: bad reply id %d", (int)id);
    return &reply_table[id];
}

void smtp_reply_format(struct strbuf *out, enum smtp_reply_id id, const char *detail)
{
    const struct smtp_reply_desc *d = smtp_reply_get(id);
    size_t room;

    strbuf_printf(out, "%d ", d->code);
    if (d->esc[0])
        strbuf_appendf(out, "%s ", d->esc);
    strbuf_append(out, d->text);
    if (detail != NULL && detail[0] != 0) {
        strbuf_append(out, d->sep);
        /* keep the whole line, CRLF included, within SMTP_REPLY_LINE_MAX */
        room = SMTP_REPLY_LINE_MAX - 2 > strbuf_len(out) ? SMTP_REPLY_LINE_MAX - 2 - strbuf_len(out) : 0;
        for (const unsigned char *p = (const unsigned char *)detail; *p && room > 0; p++, room--)
            strbuf_appendc(out, (*p < 32 || *p == 127) ? ' ' : *p);
    }
    strbuf_append(out, "\r\n");
}

/* RFC 3463 and the IANA registry: subject.detail, independent of class. */
static const struct {
    unsigned subject, detail;
    const char *text;
} esc_table[] = {
    {0, 0, "Other undefined Status"},
    {1, 0, "Other address status"},
    {1, 1, "Bad destination mailbox address"},
    {1, 2, "Bad destination system address"},
    {1, 3, "Bad destination mailbox address syntax"},
    {1, 4, "Destination mailbox address ambiguous"},
    {1, 5, "Destination address valid"},
    {1, 6, "Destination mailbox has moved, No forwarding address"},
    {1, 7, "Bad sender's mailbox address syntax"},
    {1, 8, "Bad sender's system address"},
    {1, 10, "Recipient address has null MX"},
    {2, 0, "Other or undefined mailbox status"},
    {2, 1, "Mailbox disabled, not accepting messages"},
    {2, 2, "Mailbox full"},
    {2, 3, "Message length exceeds administrative limit"},
    {2, 4, "Mailing list expansion problem"},
    {3, 0, "Other or undefined mail system status"},
    {3, 1, "Mail system full"},
    {3, 2, "System not accepting network messages"},
    {3, 3, "System not capable of selected features"},
    {3, 4, "Message too big for system"},
    {3, 5, "System incorrectly configured"},
    {4, 0, "Other or undefined network or routing status"},
    {4, 1, "No answer from host"},
    {4, 2, "Bad connection"},
    {4, 3, "Directory server failure"},
    {4, 4, "Unable to route"},
    {4, 5, "Mail system congestion"},
    {4, 6, "Routing loop detected"},
    {4, 7, "Delivery time expired"},
    {5, 0, "Other or undefined protocol status"},
    {5, 1, "Invalid command"},
    {5, 2, "Syntax error"},
    {5, 3, "Too many recipients"},
    {5, 4, "Invalid command arguments"},
    {5, 5, "Wrong protocol version"},
    {5, 6, "Authentication Exchange line is too long"},
    {6, 0, "Other or undefined media error"},
    {6, 1, "Media not supported"},
    {6, 2, "Conversion required and prohibited"},
    {6, 3, "Conversion required but not supported"},
    {6, 4, "Conversion with loss performed"},
    {6, 5, "Conversion Failed"},
    {6, 6, "Message content not currently available"},
    {6, 7, "Non-ASCII addresses not permitted for that sender/recipient"},
    {6, 8, "UTF-8 string reply is required, but not permitted by the SMTP client"},
    {6, 9, "UTF-8 header message cannot be transferred to one or more recipients"},
    {7, 0, "Other or undefined security status"},
    {7, 1, "Delivery not authorized, message refused"},
    {7, 2, "Mailing list expansion prohibited"},
    {7, 3, "Security conversion required but not possible"},
    {7, 4, "Security features not supported"},
    {7, 5, "Cryptographic failure"},
    {7, 6, "Cryptographic algorithm not supported"},
    {7, 7, "Message integrity failure"},
    {7, 8, "Authentication credentials invalid"},
    {7, 9, "Authentication mechanism is too weak"},
    {7, 10, "Encryption Needed"},
    {7, 11, "Encryption required for requested authentication mechanism"},
    {7, 12, "A password transition is needed"},
    {7, 13, "User Account Disabled"},
    {7, 14, "Trust relationship required"},
    {7, 15, "Priority Level is too low"},
    {7, 16, "Message is too big for the specified priority"},
    {7, 17, "Mailbox owner has changed"},
    {7, 18, "Domain owner has changed"},
    {7, 19, "RRVS test cannot be completed"},
    {7, 20, "No passing DKIM signature found"},
    {7, 21, "No acceptable DKIM signature found"},
    {7, 22, "No valid author-matched DKIM signature found"},
    {7, 23, "SPF validation failed"},
    {7, 24, "SPF validation error"},
    {7, 25, "Reverse DNS validation failed"},
    {7, 26, "Multiple authentication checks failed"},
    {7, 27, "Sender address has null MX"},
};

/* Parse 1-3 decimal digits at *pp; -1 if none or more than 3. */
static int parse_num3(const char **pp, const char *end)
{
    const char *p = *pp;
    int n = 0, digits = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 3)
            return -1;
        n = n * 10 + (*p++ - '0');
    }
    if (digits == 0)
        return -1;
    *pp = p;
    return n;
}

/* Length of an enhanced status code "c.sss.ddd" at s (class 2, 4 or 5,
 * and equal to want_class unless that is 0), or 0 if there is none. */
static size_t esc_span(const char *s, size_t len, int want_class)
{
    const char *p = s, *end = s + len;

    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    if (want_class != 0 && s[0] - '0' != want_class)
        return 0;
    p += 2;
    if (parse_num3(&p, end) < 0 || p >= end || *p++ != '.')
        return 0;
    if (parse_num3(&p, end) < 0)
        return 0;
    return (size_t)(p - s);
}

const char *smtp_esc_describe(const char *esc)
{
    const char *p, *end;
    int subject, detail;

    if (esc == NULL || esc_span(esc, strlen(esc), 0) != strlen(esc))
        return NULL;
    end = esc + strlen(esc);
    p = esc + 2;
    subject = parse_num3(&p, end);
    p++;
    detail = parse_num3(&p, end);
    for (size_t i = 0; i < sizeof(esc_table) / sizeof(esc_table[0]); i++)
        if (esc_table[i].subject == (unsigned)subject && esc_table[i].detail == (unsigned)detail)
            return esc_table[i].text;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Replies.                                                            */

void smtp_reply_init(struct smtp_reply *r, size_t line_max)
{
    memset(r, 0, sizeof(*r));
    r->text = strbuf_new(128);
    r->line_max = line_max == 0 ? SMTP_REPLY_LINE_MAX
        : line_max > SMTP_CMD_LINE_MAX ? SMTP_CMD_LINE_MAX : line_max;
}

void smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->esc[0] = 0;
    r->nlines = 0;
    r->done = false;
    strbuf_reset(r->text);
}

void smtp_reply_free(struct smtp_reply *r)
{
    strbuf_free(&r->text);
}

static enum smtp_reply_status reply_error(struct smtp_reply *r, struct strbuf *why, const char *msg)
{
    strbuf_set(why, msg);
    r->done = true;
    return SMTP_REPLY_ERROR;
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                       struct strbuf *why)
{
    int code;
    bool last;
    const char *text;
    size_t tlen, n;

    if (r->done)
        return reply_error(r, why, "reply fed after its end");
    if (len > r->line_max)
        return reply_error(r, why, "reply line too long");
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (memchr(line, 0, len) != NULL)
        return reply_error(r, why, "NUL byte in reply");
    if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
        return reply_error(r, why, "bare <CR> or <LF> in reply");
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5'
        || !is_digit((unsigned char)line[2]))
        return reply_error(r, why, "malformed reply code");
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code)
        return reply_error(r, why, "reply code changed inside a multi-line reply");
    if (len == 3 || line[3] == ' ')
        last = true;
    else if (line[3] == '-')
        last = false;
    else
        return reply_error(r, why, "malformed reply separator");
    if (!last && r->nlines + 1 >= SMTP_REPLY_LINES_MAX)
        return reply_error(r, why, "too many lines in reply");
    text = len > 4 ? line + 4 : line + len;
    tlen = len > 4 ? len - 4 : 0;
    if (r->nlines == 0) {
        r->code = code;
        n = esc_span(text, tlen, line[0] - '0');
        if (n > 0 && n < sizeof(r->esc) && (n == tlen || text[n] == ' ')) {
            memcpy(r->esc, text, n);
            r->esc[n] = 0;
        }
    }
    n = strlen(r->esc);
    if (n > 0 && tlen >= n && memcmp(text, r->esc, n) == 0 && (tlen == n || text[n] == ' ')) {
        text += n;
        tlen -= n;
        if (tlen > 0) {
            text++;
            tlen--;
        }
    }
    if (strbuf_len(r->text) + tlen + 1 > SMTP_REPLY_TOTAL_MAX)
        return reply_error(r, why, "reply text too long");
    if (r->nlines > 0)
        strbuf_appendc(r->text, '\n');
    strbuf_appendn(r->text, text, tlen);
    r->nlines++;
    if (last) {
        r->done = true;
        return SMTP_REPLY_DONE;
    }
    return SMTP_REPLY_MORE;
}
