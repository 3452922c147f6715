/*
 * pipe_util.c - exit status mapping, output text, shell-free argv split,
 * mbox framing and recipient parts for the pipe delivery agent (contract
 * in pipe_util.h).
 *
 * Called by pipe/pipe.c only.  A command's output is untrusted bytes (it
 * may be anything the command printed, including text an attacker put in
 * the message): it is bounded and reduced to printable ASCII before it
 * reaches a log line or a DSN.  Alias commands are administrator text,
 * but the split still refuses anything a shell would interpret, so a
 * command run without a shell means the same as with one.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>

#include "mem.h"
#include "pipe_util.h"

struct pipe_exit {
    int code;
    const char *dsn;
    const char *text;
};

/* sysexits(3), with Postfix's enhanced status codes (global/sys_exits.c). */
static const struct pipe_exit pipe_exits[] = {
    { EX_USAGE, "5.3.0", "command line usage error" },
    { EX_DATAERR, "5.6.0", "data format error" },
    { EX_NOINPUT, "5.3.0", "cannot open input" },
    { EX_NOUSER, "5.1.1", "user unknown" },
    { EX_NOHOST, "5.1.2", "host name unknown" },
    { EX_UNAVAILABLE, "5.3.0", "service unavailable" },
    { EX_SOFTWARE, "5.3.0", "internal software error" },
    { EX_OSERR, "4.3.0", "system resource problem" },
    { EX_OSFILE, "5.3.0", "critical OS file missing" },
    { EX_CANTCREAT, "5.2.0", "can't create user output file" },
    { EX_IOERR, "5.3.0", "input/output error" },
    { EX_TEMPFAIL, "4.3.0", "temporary failure" },
    { EX_PROTOCOL, "5.5.0", "remote error in protocol" },
    { EX_NOPERM, "5.7.0", "permission denied" },
    { EX_CONFIG, "5.3.5", "local configuration error" },
};

int pipe_exit_status(int wstatus, char dsn_r[8], struct strbuf *text_r)
{
    strbuf_reset(text_r);
    if (WIFEXITED(wstatus)) {
        int code = WEXITSTATUS(wstatus);

        if (code == 0) {
            memcpy(dsn_r, "2.0.0", 6);
            return PIPE_SENT;
        }
        for (size_t i = 0; i < sizeof(pipe_exits) / sizeof(pipe_exits[0]); i++)
            if (pipe_exits[i].code == code) {
                memcpy(dsn_r, pipe_exits[i].dsn, 6);
                strbuf_printf(text_r, "Command died with status %d (%s)", code,
                              pipe_exits[i].text);
                return dsn_r[0] == '4' ? PIPE_DEFER : PIPE_BOUNCE;
            }
        memcpy(dsn_r, "5.3.0", 6);
        strbuf_printf(text_r, "Command died with status %d", code);
        return PIPE_BOUNCE;
    }
    memcpy(dsn_r, "4.3.0", 6);
    if (WIFSIGNALED(wstatus))
        strbuf_printf(text_r, "Command died with signal %d", WTERMSIG(wstatus));
    else
        strbuf_printf(text_r, "Command ended abnormally (wait status %d)", wstatus);
    return PIPE_DEFER;
}

void pipe_output_text(struct strbuf *text, const char *out, size_t len)
{
    size_t i = 0, n = 0;
    bool space = false;

    /* The first line with something printable in it. */
    for (;;) {
        size_t end = i, j;
        bool printable = false;

        while (end < len && out[end] != '\n')
            end++;
        for (j = i; j < end; j++)
            if ((unsigned char)out[j] > ' ' && (unsigned char)out[j] < 0x7f)
                printable = true;
        if (printable)
            break;
        if (end >= len)
            return;
        i = end + 1;
    }
    strbuf_append(text, ": ");
    for (; i < len && out[i] != '\n'; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c == ' ' || c == '\t' || c == '\r') {
            space = true;
            continue;
        }
        /* The byte and the space before it must both fit. */
        if (n + (space && n > 0 ? 2 : 1) > PIPE_OUTPUT_MAX) {
            strbuf_append(text, "...");
            return;
        }
        if (space && n > 0) {
            strbuf_appendc(text, ' ');
            n++;
        }
        space = false;
        strbuf_appendc(text, c > ' ' && c < 0x7f ? c : '?');
        n++;
    }
}

static bool pipe_safe_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c != 0 && strchr("_-+./,:@%=", c) != NULL);
}

char **pipe_split_argv(const char *cmd)
{
    char **argv = xcalloc(PIPE_ARGV_MAX + 1, sizeof(char *));
    size_t n = 0;
    const char *p = cmd;

    for (;;) {
        const char *start;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            if (!pipe_safe_byte((unsigned char)*p))
                goto shell;
            p++;
        }
        if (n >= PIPE_ARGV_MAX)
            goto shell;
        argv[n++] = xstrndup(start, (size_t)(p - start));
    }
    if (n == 0)
        goto shell;
    return argv;
shell:
    pipe_argv_free(&argv);
    return NULL;
}

void pipe_argv_free(char ***argvp)
{
    char **argv = *argvp;

    if (argv == NULL)
        return;
    for (size_t i = 0; argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
    *argvp = NULL;
}

void pipe_mbox_from_line(struct strbuf *out, const char *sender, time_t when)
{
    static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;

    strbuf_set(out, "From ");
    if (sender[0] == '\0') {
        strbuf_append(out, "MAILER-DAEMON");
    } else {
        for (const char *s = sender; *s != '\0'; s++)
            strbuf_appendc(out, *s == ' ' || *s == '\t' ? '_' : *s);
    }
    gmtime_r(&when, &tm);
    strbuf_appendf(out, " %s %s %2d %02d:%02d:%02d %d\n", wday[tm.tm_wday % 7],
                   mon[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   tm.tm_year + 1900);
}

void pipe_mbox_init(struct pipe_mbox_state *st)
{
    memset(st, 0, sizeof(*st));
    st->bol = true;
}

/* Quote and copy whole data; returns how many trailing bytes were not
 * copied because the next buffer decides them (a "From " prefix at a
 * line start, a CR that may precede LF). */
static size_t pipe_mbox_copy(struct strbuf *out, const char *buf, size_t len, bool *bol,
                             bool final)
{
    size_t i = 0;

    while (i < len) {
        const char *nl;
        size_t n, rest = len - i;

        if (*bol && !final && rest < 5 && memchr(buf + i, '\n', rest) == NULL
            && memcmp(buf + i, "From ", rest) == 0)
            return rest;
        if (*bol && rest >= 5 && memcmp(buf + i, "From ", 5) == 0)
            strbuf_appendc(out, '>');
        nl = memchr(buf + i, '\n', rest);
        n = nl != NULL ? (size_t)(nl - (buf + i)) : rest;
        if (nl != NULL) {
            size_t keep = n > 0 && buf[i + n - 1] == '\r' ? n - 1 : n;
            strbuf_appendn(out, buf + i, keep);
            strbuf_appendc(out, '\n');
            i += n + 1;
            *bol = true;
        } else {
            if (!final && n > 0 && buf[len - 1] == '\r') {
                strbuf_appendn(out, buf + i, n - 1);
                *bol = false;
                return 1;
            }
            strbuf_appendn(out, buf + i, n);
            i += n;
            *bol = false;
        }
    }
    return 0;
}

void pipe_mbox_quote(struct strbuf *out, const char *buf, size_t len,
                     struct pipe_mbox_state *st)
{
    struct strbuf *tmp = NULL;
    size_t keep;

    if (st->nheld > 0) {
        /* Rare: a buffer ended inside a decision; decide on the joint. */
        tmp = strbuf_new(st->nheld + len);
        strbuf_appendn(tmp, st->held, st->nheld);
        strbuf_appendn(tmp, buf, len);
        buf = strbuf_str(tmp);
        len = strbuf_len(tmp);
        st->nheld = 0;
    }
    keep = pipe_mbox_copy(out, buf, len, &st->bol, false);
    memcpy(st->held, buf + len - keep, keep);
    st->nheld = keep;
    strbuf_free(&tmp);
}

void pipe_mbox_end(struct strbuf *out, struct pipe_mbox_state *st)
{
    if (st->nheld > 0)
        pipe_mbox_copy(out, st->held, st->nheld, &st->bol, true);
    st->nheld = 0;
    if (!st->bol)
        strbuf_appendc(out, '\n');
    strbuf_appendc(out, '\n');
    st->bol = true;
}

void pipe_addr_split(const char *addr, const char *delims, struct strbuf *local_r,
                     struct strbuf *domain_r, struct strbuf *user_r, struct strbuf *ext_r)
{
    const char *at = strrchr(addr, '@');
    size_t llen = at != NULL ? (size_t)(at - addr) : strlen(addr);
    size_t ulen = llen;

    strbuf_setn(local_r, addr, llen);
    strbuf_set(domain_r, at != NULL ? at + 1 : "");
    if (delims != NULL && delims[0] != '\0')
        for (size_t i = 1; i < llen; i++)
            if (strchr(delims, addr[i]) != NULL) {
                ulen = i;
                break;
            }
    strbuf_setn(user_r, addr, ulen);
    if (ulen < llen)
        strbuf_setn(ext_r, addr + ulen + 1, llen - ulen - 1);
    else
        strbuf_reset(ext_r);
}
