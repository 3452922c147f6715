/*
 * cleanup_headers.c - what cleanup does to message content: the Received:
 * header, header_checks and body_checks actions (header_checks(5)), the
 * hop count, and the Message-ID:/Date:/From: headers submission adds.
 *
 * Called only by cleanup.c, for one message at a time.  Header and body
 * text is untrusted: it reaches log lines only through "%s" after control
 * characters are replaced and the length is cut at CLEANUP_LOG_TEXT_MAX;
 * table results (header_checks) are the administrator's and trusted, but
 * a PREPEND/REPLACE text that is not a header is refused with a warning
 * rather than written into the header.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cleanup_int.h"
#include "log.h"
#include "maps.h"
#include "mem.h"
#include "params.h"

static const char *myhostname(void)
{
    static char host[256];

    if (var_myhostname != NULL && *var_myhostname != '\0')
        return var_myhostname;
    if (host[0] == '\0' && gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "localhost");
    return host;
}

/* Append s with control characters and DEL replaced by '?' (they could
 * end a header line or a log line early). */
static void append_safe(struct strbuf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\n' || ch == '\t')
            ch = ' ';
        else if (ch < 0x20 || ch == 0x7f)
            ch = '?';
        strbuf_appendc(out, ch);
    }
}

void cleanup_date(time_t when, struct strbuf *out)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    char zone[64];
    long off;

    localtime_r(&when, &tm);
    off = tm.tm_gmtoff / 60;
    if (strftime(zone, sizeof(zone), "%Z", &tm) == 0)
        zone[0] = '\0';
    strbuf_printf(out, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
                  tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
    if (zone[0] != '\0')
        strbuf_appendf(out, " (%s)", zone);
}

static void append_opt(struct strbuf *out, const char *s, const char *dflt)
{
    s = s != NULL && *s != '\0' ? s : dflt;
    append_safe(out, s, strlen(s));
}

void cleanup_received_format(struct cleanup *c, struct strbuf *out)
{
    const struct cleanup_received *r = &c->recv;
    struct strbuf *date = strbuf_new(64);

    cleanup_date(c->arrival.tv_sec, date);
    if (r->client_addr == NULL && r->userid != NULL) {
        /* Local submission, as Postfix's pickup writes it. */
        strbuf_printf(out, "Received: by %s (%s, from userid ", myhostname(),
                      var_mail_name && *var_mail_name ? var_mail_name : "facteur");
        append_opt(out, r->userid, "unknown");
        strbuf_appendf(out, ")\n\tid %s; %s", c->qid, strbuf_str(date));
        strbuf_free(&date);
        return;
    }
    strbuf_set(out, "Received: from ");
    append_opt(out, r->helo != NULL && *r->helo ? r->helo : r->client_name, "unknown");
    strbuf_append(out, " (");
    append_opt(out, r->client_name, "unknown");
    strbuf_append(out, " [");
    if (r->client_addr != NULL && strchr(r->client_addr, ':') != NULL &&
        strncasecmp(r->client_addr, "IPv6:", 5) != 0)
        strbuf_append(out, "IPv6:");
    append_opt(out, r->client_addr, "unknown");
    strbuf_append(out, "])");
    if (r->tls_summary != NULL && *r->tls_summary != '\0') {
        strbuf_append(out, "\n\t(using ");
        append_opt(out, r->tls_summary, "");
        strbuf_append(out, ")");
    }
    if (r->sasl_user != NULL && *r->sasl_user != '\0' && var_smtpd_sasl_authenticated_header) {
        strbuf_append(out, "\n\t(Authenticated sender: ");
        append_opt(out, r->sasl_user, "");
        strbuf_append(out, ")");
    }
    strbuf_appendf(out, "\n\tby %s (%s) with ", myhostname(),
                   var_mail_name && *var_mail_name ? var_mail_name : "facteur");
    append_opt(out, r->protocol, "SMTP");
    strbuf_appendf(out, " id %s", c->qid);
    if (r->for_rcpt != NULL && *r->for_rcpt != '\0') {
        strbuf_append(out, "\n\tfor <");
        append_opt(out, r->for_rcpt, "");
        strbuf_appendf(out, ">; %s", strbuf_str(date));
    } else {
        strbuf_appendf(out, ";\n\t%s", strbuf_str(date));
    }
    strbuf_free(&date);
}

void cleanup_write_header_text(struct cleanup *c, const char *text, size_t len)
{
    cleanup_write_line(c, text, len);
}

/* ---- header_checks(5) actions. ---- */

enum act_result { ACT_KEEP, ACT_DROP, ACT_REPLACE };

/* "QID: action: class text from client; from=<s> to=<r> proto=P helo=<h>[: why]" */
static void act_log(struct cleanup *c, const char *action, const char *class,
                    const char *text, size_t len, const char *why)
{
    struct strbuf *line = strbuf_new(256);

    strbuf_printf(line, "%s: %s: %s ", c->qid, action, class);
    append_safe(line, text, len > CLEANUP_LOG_TEXT_MAX ? CLEANUP_LOG_TEXT_MAX : len);
    strbuf_append(line, " from ");
    if (c->client_name != NULL || c->client_addr != NULL) {
        append_opt(line, c->client_name, "unknown");
        strbuf_append(line, "[");
        append_opt(line, c->client_addr, "unknown");
        strbuf_append(line, "]");
    } else {
        strbuf_append(line, "local");
    }
    strbuf_append(line, "; from=<");
    append_opt(line, c->sender, "");
    strbuf_append(line, ">");
    if (c->first_rcpt != NULL) {
        strbuf_append(line, " to=<");
        append_opt(line, c->first_rcpt, "");
        strbuf_append(line, ">");
    }
    if (c->protocol != NULL) {
        strbuf_append(line, " proto=");
        append_opt(line, c->protocol, "");
    }
    if (c->helo != NULL) {
        strbuf_append(line, " helo=<");
        append_opt(line, c->helo, "");
        strbuf_append(line, ">");
    }
    if (why != NULL && *why != '\0') {
        strbuf_append(line, ": ");
        append_opt(line, why, "");
    }
    log_info("%s", strbuf_str(line));
    strbuf_free(&line);
}

/* True if text starts with an enhanced status code "C.S.D " of class cls. */
static size_t dsn_prefix(const char *text, char cls)
{
    const char *s = text;

    if (*s != cls || s[1] != '.')
        return 0;
    s += 2;
    for (int part = 0; part < 2; part++) {
        size_t n = 0;

        while (isdigit((unsigned char)s[n]) && n < 3)
            n++;
        if (n == 0)
            return 0;
        s += n;
        if (part == 0 && *s++ != '.')
            return 0;
    }
    if (*s != ' ' && *s != '\0')
        return 0;
    return (size_t)(s - text);
}

/* REJECT or DEFER: "550 5.7.1 text" / "450 4.7.1 text". */
static void act_reject(struct cleanup *c, const char *class, const char *line, size_t len,
                       const char *text, bool defer)
{
    struct strbuf *dsn_text = strbuf_new(64), *reply = strbuf_new(64);
    char cls = defer ? '4' : '5';
    size_t n = dsn_prefix(text, cls);

    if (n > 0)
        strbuf_setn(dsn_text, text, n);
    else
        strbuf_set(dsn_text, defer ? "4.7.1" : "5.7.1");
    text += n;
    while (*text == ' ')
        text++;
    strbuf_appendf(dsn_text, " %s", *text ? text : defer ? "message content deferred"
                                                          : "message content rejected");
    strbuf_printf(reply, "%s %s", defer ? "450" : "550", strbuf_str(dsn_text));
    act_log(c, defer ? "defer" : "reject", class, line, len, strbuf_str(dsn_text));
    cleanup_fail(c, defer ? CLEANUP_TEMPFAIL : CLEANUP_REJECT, strbuf_str(reply));
    c->checks_done = true;
    strbuf_free(&dsn_text);
    strbuf_free(&reply);
}

/* A PREPEND/REPLACE text must be a header when it goes into the header. */
static bool text_fits(bool is_header, const char *text)
{
    size_t colon = strcspn(text, ":");

    for (const char *s = text; *s; s++) {
        /* A header may be folded (LF then white space); nothing else. */
        if (*s == '\n' && is_header && (s[1] == ' ' || s[1] == '\t'))
            continue;
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    }
    if (!is_header)
        return true;
    return text[colon] == ':' && header_name_valid(text, colon);
}

/* Look line up in m and act.  replace_r receives the replacement
 * (ACT_REPLACE); a PREPEND line is written at once. */
static enum act_result check(struct cleanup *c, struct maps *m, bool is_header,
                             const char *line, size_t len, struct strbuf *replace_r)
{
    const char *class = is_header ? "header" : "body";
    struct strbuf *key = strbuf_new(len + 1), *val = strbuf_new(64), *why = strbuf_new(64);
    enum act_result res = ACT_KEEP;
    const char *action, *text;
    size_t alen;
    int rc;

    strbuf_setn(key, line, len);
    rc = maps_lookup(m, strbuf_str(key), val, why);
    if (rc == MAP_ERROR) {
        log_warn("%s: %s_checks lookup: %s", c->qid, class, strbuf_str(why));
        cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: temporary lookup failure");
        goto out;
    }
    if (rc != MAP_FOUND)
        goto out;
    action = strbuf_str(val);
    while (*action == ' ' || *action == '\t')
        action++;
    alen = strcspn(action, " \t");
    for (text = action + alen; *text == ' ' || *text == '\t'; text++)
        ;
#define IS(word) (alen == strlen(word) && strncasecmp(action, word, alen) == 0)
    if (IS("REJECT")) {
        act_reject(c, class, line, len, text, false);
    } else if (IS("DEFER")) {
        act_reject(c, class, line, len, text, true);
    } else if (IS("WARN")) {
        act_log(c, "warning", class, line, len, text);
    } else if (IS("INFO")) {
        act_log(c, "info", class, line, len, text);
    } else if (IS("HOLD")) {
        act_log(c, "hold", class, line, len, text);
        c->hold = true;
    } else if (IS("DISCARD")) {
        act_log(c, "discard", class, line, len, text);
        c->discard = true;
        c->checks_done = true;
    } else if (IS("IGNORE")) {
        res = ACT_DROP;
    } else if (IS("PREPEND") || IS("REPLACE")) {
        bool prepend = IS("PREPEND");

        if (*text == '\0' || !text_fits(is_header, text)) {
            log_warn("%s: %s_checks: %.*s: bad text \"%s\": ignored", c->qid, class,
                     (int)alen, action, text);
        } else if (prepend) {
            cleanup_write_line(c, text, strlen(text));
        } else {
            strbuf_set(replace_r, text);
            res = ACT_REPLACE;
        }
    } else if (IS("DUNNO") || IS("OK")) {
        res = ACT_KEEP;
    } else {
        log_warn("%s: %s_checks: unsupported action \"%.*s\": ignored", c->qid, class,
                 (int)alen, action);
    }
#undef IS
out:
    strbuf_free(&key);
    strbuf_free(&val);
    strbuf_free(&why);
    return res;
}

/* Write line after the checks of table m (NULL: no checks). */
/* Check line against table m (NULL: no checks) and write it, or what
 * the action says instead.  keep (may be NULL) is what to write when the
 * line is kept: the line as rewritten for the queue. */
static void check_and_write(struct cleanup *c, struct maps *m, bool is_header,
                            const char *line, size_t len, const struct strbuf *keep)
{
    enum act_result res = ACT_KEEP;
    struct strbuf *replace = NULL;

    if (m != NULL && maps_count(m) > 0 && !c->checks_done && !(c->flags & CLEANUP_FL_NOCHECKS)) {
        replace = strbuf_new(64);
        res = check(c, m, is_header, line, len, replace);
    }
    if (c->result == CLEANUP_OK && !c->discard) {
        if (res == ACT_KEEP && keep != NULL)
            cleanup_write_line(c, strbuf_str(keep), strbuf_len(keep));
        else if (res == ACT_KEEP)
            cleanup_write_line(c, line, len);
        else if (res == ACT_REPLACE)
            cleanup_write_line(c, strbuf_str(replace), strbuf_len(replace));
    }
    strbuf_free(&replace);
}

/* Local mail: headers whose addresses get @$myorigin when they have no
 * domain, as Postfix's cleanup rewrites them (append_at_myorigin). */
static const char *const addr_headers[] = {
    "From", "Sender", "Reply-To", "To", "Cc", "Resent-From", "Resent-Sender",
    "Resent-Reply-To", "Resent-To", "Resent-Cc", "Errors-To", "Return-Receipt-To",
};

struct qualify {
    size_t ends[CLEANUP_QUALIFY_MAX];
    size_t n;
};

static int qualify_addr(const char *addr, size_t end, void *ctx)
{
    struct qualify *q = ctx;

    if (strchr(addr, '@') != NULL)
        return 0;
    if (q->n >= CLEANUP_QUALIFY_MAX)
        return 1;
    q->ends[q->n++] = end;
    return 0;
}

/* The header with its domainless addresses qualified, into out; false if
 * nothing changes (not local mail, not an address header, nothing to do,
 * or a value this reader does not understand: left as it is). */
static bool qualify_header(struct cleanup *c, const struct header *h, struct strbuf *out)
{
    struct qualify *q;
    size_t voff = (size_t)(h->value - h->raw), prev = 0;
    bool listed = false;

    if (!(c->flags & CLEANUP_FL_LOCAL) || !var_append_at_myorigin || var_myorigin == NULL ||
        *var_myorigin == '\0')
        return false;
    for (size_t i = 0; i < sizeof(addr_headers) / sizeof(addr_headers[0]) && !listed; i++)
        listed = header_name_is(h, addr_headers[i]);
    if (!listed)
        return false;
    q = xcalloc(1, sizeof(*q));
    if (header_addr_list_pos(h->value, h->value_len, 0, qualify_addr, q) < 0 || q->n == 0) {
        free(q);
        return false;
    }
    strbuf_setn(out, h->raw, voff);
    for (size_t i = 0; i < q->n; i++) {
        strbuf_appendn(out, h->value + prev, q->ends[i] - prev);
        strbuf_appendf(out, "@%s", var_myorigin);
        prev = q->ends[i];
    }
    strbuf_appendn(out, h->value + prev, h->value_len - prev);
    free(q);
    return true;
}

static void log_msgid(struct cleanup *c, const char *value, size_t len)
{
    struct strbuf *line = strbuf_new(128), *unfolded = strbuf_new(128);

    header_value_unfold(value, len, unfolded);
    strbuf_printf(line, "%s: message-id=", c->qid);
    append_safe(line, strbuf_str(unfolded),
                strbuf_len(unfolded) > CLEANUP_LOG_TEXT_MAX ? CLEANUP_LOG_TEXT_MAX
                                                             : strbuf_len(unfolded));
    log_info("%s", strbuf_str(line));
    strbuf_free(&line);
    strbuf_free(&unfolded);
}

void cleanup_header(struct cleanup *c, const struct header *h)
{
    if (c->result != CLEANUP_OK || c->discard)
        return;
    if (header_name_is(h, "Received"))
        c->hops++;
    else if (header_name_is(h, "Message-ID") && !c->have_msgid) {
        c->have_msgid = true;
        log_msgid(c, h->value, h->value_len);
    } else if (header_name_is(h, "Date"))
        c->have_date = true;
    else if (header_name_is(h, "From"))
        c->have_from = true;
    else if ((c->flags & CLEANUP_FL_LOCAL) &&
             (header_name_is(h, "Bcc") || header_name_is(h, "Resent-Bcc")))
        return;     /* sendmail -t: blind copies stay blind */
    {
        struct strbuf *qualified = strbuf_new(h->raw_len + 64);
        bool rewritten = qualify_header(c, h, qualified);

        check_and_write(c, cleanup_header_checks(), true, h->raw, h->raw_len,
                        rewritten ? qualified : NULL);
        strbuf_free(&qualified);
    }
}

/* A display name as a quoted string when it holds specials. */
static void append_phrase(struct strbuf *out, const char *name)
{
    bool quote = strpbrk(name, "()<>[]:;@\\,.\"") != NULL;

    if (quote)
        strbuf_appendc(out, '"');
    for (const char *s = name; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20 || ch == 0x7f)
            continue;
        if (quote && (ch == '"' || ch == '\\'))
            strbuf_appendc(out, '\\');
        strbuf_appendc(out, ch);
    }
    if (quote)
        strbuf_appendc(out, '"');
}

void cleanup_add_missing(struct cleanup *c)
{
    struct strbuf *hdr = strbuf_new(128), *date = strbuf_new(64);
    bool submission = (c->flags & (CLEANUP_FL_SUBMISSION | CLEANUP_FL_LOCAL)) != 0;

    if (!c->have_msgid && submission) {
        struct tm tm;
        time_t t = c->arrival.tv_sec;

        gmtime_r(&t, &tm);
        strbuf_printf(hdr, "<%04d%02d%02d%02d%02d%02d.%s@%s>", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, c->qid,
                      myhostname());
        log_msgid(c, strbuf_str(hdr), strbuf_len(hdr));
        strbuf_printf(date, "Message-ID: %s", strbuf_str(hdr));
        cleanup_write_line(c, strbuf_str(date), strbuf_len(date));
    } else if (!c->have_msgid) {
        log_info("%s: message-id=<>", c->qid);
    }
    if (!c->have_date && submission) {
        cleanup_date(c->arrival.tv_sec, date);
        strbuf_printf(hdr, "Date: %s", strbuf_str(date));
        cleanup_write_line(c, strbuf_str(hdr), strbuf_len(hdr));
    }
    if (!c->have_from && (c->flags & CLEANUP_FL_LOCAL)) {
        strbuf_set(hdr, "From: ");
        if (c->sender == NULL || *c->sender == '\0') {
            strbuf_append(hdr, "MAILER-DAEMON");
        } else if (c->full_name != NULL && *c->full_name != '\0') {
            append_phrase(hdr, c->full_name);
            strbuf_append(hdr, " <");
            append_safe(hdr, c->sender, strlen(c->sender));
            strbuf_append(hdr, ">");
        } else {
            append_safe(hdr, c->sender, strlen(c->sender));
        }
        cleanup_write_line(c, strbuf_str(hdr), strbuf_len(hdr));
    }
    strbuf_free(&hdr);
    strbuf_free(&date);
}

int cleanup_body(struct cleanup *c, const char *line, size_t len)
{
    struct maps *m = NULL;

    if (c->result != CLEANUP_OK || c->discard)
        return -1;
    if (c->body_checked < (uint64_t)var_body_checks_size_limit) {
        c->body_checked += len + 1;
        m = cleanup_body_checks();
    }
    check_and_write(c, m, false, line, len, NULL);
    return c->result == CLEANUP_OK && !c->discard ? 0 : -1;
}
