/*
 * sendmail - the Sendmail-compatible entry point (also mailq, newaliases).
 *
 * Cron, mail(1), git send-email and scripts call "sendmail [options]
 * [recipients] < message".  This program reads the message, works out the
 * envelope (-f, -F, -t header recipients, -N, -R, -V) and hands message
 * and envelope to facteur-drop(1) in its drop format on a pipe; that
 * setgid helper writes the file into maildrop/, and pickup(8) queues it
 * through cleanup.  -bs speaks SMTP on stdin/stdout and drops each
 * message the same way; -bp (mailq) runs facteur-queue -p; -bi
 * (newaliases) runs facteur-map as newaliases; -q runs facteur flush.
 *
 * Trust: it runs as the calling user with no privilege; its input is that
 * user's own, so bounds here protect the queue more than this process:
 * the drop helper checks everything again.  Child programs get an argv
 * array, never a shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "conf.h"
#include "header.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "qfile.h"
#include "smtp_syntax.h"
#include "strbuf.h"

#define HEADER_BUFFER_MAX   (16UL << 20)    /* -t: header bytes held before sending */
#define DROP_FLUSH          32768           /* content bytes per M record */
#define BS_RCPT_MAX         1000            /* recipients per -bs transaction */
#define BS_LINE_MAX         4096            /* -bs command line */

struct rcpt {
    char *addr;
    unsigned notify;
};

struct envelope {
    char *sender;               /* "" for <> */
    char *full_name;            /* NULL if none */
    struct rcpt *rcpts;
    size_t nrcpt;
    char ret;                   /* 0, 'F', 'H' */
    char *envid;
};

/* A message on its way to facteur-drop. */
struct drop {
    pid_t pid;
    int in;                     /* its stdin */
    int out;                    /* its stdout (the queue ID) */
    struct strbuf *buf;         /* content not yet sent */
    bool failed;                /* a write failed: the helper died */
};

static char *find_cmd(const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *path;

    /* Next to this program first (an in-tree or relocated install), then
     * command_directory. */
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        if ((slash = strrchr(self, '/')) != NULL) {
            *slash = '\0';
            path = xasprintf("%s/%s", self, name);
            if (access(path, X_OK) == 0)
                return path;
            free(path);
        }
    }
    path = xasprintf("%s/%s", var_command_directory ? var_command_directory : "/usr/sbin",
                     name);
    if (access(path, X_OK) == 0)
        return path;
    free(path);
    return NULL;
}

static void __attribute__((noreturn)) run_cmd(const char *name, char *const argv[])
{
    char *path = find_cmd(name);

    if (path == NULL) {
        log_error("%s is not installed (looked beside sendmail and in %s)", name,
                  var_command_directory);
        exit(EX_UNAVAILABLE);
    }
    execv(path, argv);
    log_error("exec %s: %m", path);
    exit(EX_OSERR);
}

/* ---- The drop format (facteur-drop(1)): type, 4-byte length, data. ---- */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void drop_record(struct drop *d, int type, const void *data, size_t len)
{
    struct strbuf *frame = strbuf_new(CLEANUP_DROP_HDR + len);

    cleanup_drop_frame(frame, type, data, len);
    if (!d->failed && write_all(d->in, strbuf_str(frame), strbuf_len(frame)) < 0)
        d->failed = true;
    strbuf_free(&frame);
}

static void drop_flush(struct drop *d)
{
    if (strbuf_len(d->buf) > 0)
        drop_record(d, QFILE_REC_CONTENT, strbuf_str(d->buf), strbuf_len(d->buf));
    strbuf_reset(d->buf);
}

/* Start facteur-drop and send the envelope. */
static int drop_open(struct drop *d, const struct envelope *env)
{
    char *path = find_cmd("facteur-drop");
    int in[2], out[2];

    memset(d, 0, sizeof(*d));
    d->in = d->out = -1;
    if (path == NULL) {
        log_error("facteur-drop is not installed (looked beside sendmail and in %s)",
                  var_command_directory);
        return -1;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        log_fatal("pipe: %m");
    if ((d->pid = fork()) < 0)
        log_fatal("fork: %m");
    if (d->pid == 0) {
        char *argv[] = {"facteur-drop", NULL};

        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(EX_OSERR);
        execv(path, argv);
        log_error("exec %s: %m", path);
        _exit(EX_OSERR);
    }
    free(path);
    close(in[0]);
    close(out[1]);
    d->in = in[1];
    d->out = out[0];
    d->buf = strbuf_new(DROP_FLUSH + 1024);
    drop_record(d, QFILE_REC_SENDER, env->sender, strlen(env->sender));
    for (size_t i = 0; i < env->nrcpt; i++) {
        struct strbuf *r = strbuf_new(64);

        strbuf_appendc(r, (char)env->rcpts[i].notify);
        strbuf_append(r, env->rcpts[i].addr);
        drop_record(d, QFILE_REC_RCPT, strbuf_str(r), strbuf_len(r));
        strbuf_free(&r);
    }
    if (env->ret)
        drop_record(d, QFILE_REC_RET, &env->ret, 1);
    if (env->envid != NULL)
        drop_record(d, QFILE_REC_ENVID, env->envid, strlen(env->envid));
    if (env->full_name != NULL && *env->full_name != '\0') {
        struct strbuf *a = strbuf_new(64);

        strbuf_append(a, CLEANUP_ATTR_FULL_NAME);
        strbuf_appendc(a, '\0');
        strbuf_appendn(a, env->full_name, strnlen(env->full_name, QFILE_ATTR_VALUE_MAX));
        drop_record(d, QFILE_REC_ATTR, strbuf_str(a), strbuf_len(a));
        strbuf_free(&a);
    }
    return 0;
}

/* One content line (LF added). */
static void drop_line(struct drop *d, const char *line, size_t len)
{
    strbuf_appendn(d->buf, line, len);
    strbuf_appendc(d->buf, '\n');
    while (strbuf_len(d->buf) >= DROP_FLUSH) {
        drop_record(d, QFILE_REC_CONTENT, strbuf_str(d->buf), DROP_FLUSH);
        strbuf_consume(d->buf, DROP_FLUSH);
    }
}

/* Finish: E record, wait for facteur-drop.  Returns its exit status (0:
 * queued, qid_r set) or EX_* for a failure of ours. */
static int drop_close(struct drop *d, struct strbuf *qid_r)
{
    char buf[128];
    ssize_t n;
    int status = 0;

    drop_flush(d);
    drop_record(d, QFILE_REC_END, "", 0);
    close(d->in);
    strbuf_reset(qid_r);
    while ((n = read(d->out, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && strbuf_len(qid_r) < 64)
            strbuf_appendn(qid_r, buf, (size_t)n);
    strbuf_rtrim(qid_r);
    close(d->out);
    strbuf_free(&d->buf);
    while (waitpid(d->pid, &status, 0) < 0)
        if (errno != EINTR)
            return EX_OSERR;
    if (WIFEXITED(status))
        return WEXITSTATUS(status) == 0 && d->failed ? EX_TEMPFAIL : WEXITSTATUS(status);
    log_error("facteur-drop killed by signal %d", WTERMSIG(status));
    return EX_TEMPFAIL;
}

/* ---- Envelope from the command line and headers. ---- */

static void add_rcpt(struct envelope *env, const char *addr, unsigned notify)
{
    if (env->nrcpt >= QFILE_RCPT_MAX) {
        log_error("too many recipients");
        exit(EX_USAGE);
    }
    env->rcpts = xreallocarray(env->rcpts, env->nrcpt + 1, sizeof(*env->rcpts));
    env->rcpts[env->nrcpt].addr = xstrdup(addr);
    env->rcpts[env->nrcpt].notify = notify;
    env->nrcpt++;
}

struct addr_ctx {
    struct envelope *env;
    unsigned notify;
};

static int add_addr(const char *addr, void *ctx)
{
    struct addr_ctx *a = ctx;

    add_rcpt(a->env, addr, a->notify);
    return 0;
}

/* -N: "never" or a comma list of success, failure, delay. */
static unsigned parse_notify(const char *s)
{
    unsigned bits = 0;
    char *copy = xstrdup(s), *tok, *save = NULL;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(tok, "never") == 0)
            bits |= QFILE_NOTIFY_NEVER;
        else if (strcasecmp(tok, "success") == 0)
            bits |= QFILE_NOTIFY_SUCCESS;
        else if (strcasecmp(tok, "failure") == 0)
            bits |= QFILE_NOTIFY_FAILURE;
        else if (strcasecmp(tok, "delay") == 0)
            bits |= QFILE_NOTIFY_DELAY;
        else {
            log_error("-N: bad notify keyword: %s", tok);
            exit(EX_USAGE);
        }
    }
    free(copy);
    if ((bits & QFILE_NOTIFY_NEVER) && bits != QFILE_NOTIFY_NEVER) {
        log_error("-N: \"never\" cannot be combined with other keywords");
        exit(EX_USAGE);
    }
    return bits;
}

/* "<a@b>" -> "a@b"; "<>" -> "". */
static char *strip_brackets(const char *s)
{
    size_t len = strlen(s);

    if (len >= 2 && s[0] == '<' && s[len - 1] == '>')
        return xstrndup(s + 1, len - 2);
    return xstrdup(s);
}

/* ---- Reading the message (-bm, -t). ---- */

struct hdr_ctx {
    struct envelope *to;        /* To/Cc/Bcc recipients */
    struct envelope *resent;    /* Resent-To/Cc/Bcc recipients */
    unsigned notify;
    bool bad;
};

static int header_rcpts(const struct header *h, void *ctx)
{
    struct hdr_ctx *hc = ctx;
    struct envelope *env = NULL;

    if (header_name_is(h, "To") || header_name_is(h, "Cc") || header_name_is(h, "Bcc"))
        env = hc->to;
    else if (header_name_is(h, "Resent-To") || header_name_is(h, "Resent-Cc") ||
             header_name_is(h, "Resent-Bcc"))
        env = hc->resent;
    if (env != NULL) {
        struct addr_ctx a = {env, hc->notify};

        if (header_addr_list(h->value, h->value_len, QFILE_RCPT_MAX, add_addr, &a) < 0)
            hc->bad = true;
    }
    return 0;
}

/* Read one line from stdin without its LF (and CR before it).  Returns
 * 1, or 0 at EOF. */
static int read_line(char **line, size_t *cap, size_t *len_r)
{
    ssize_t n = getline(line, cap, stdin);

    if (n <= 0)
        return 0;
    if (n > 0 && (*line)[n - 1] == '\n')
        n--;
    if (n > 0 && (*line)[n - 1] == '\r')
        n--;
    *len_r = (size_t)n;
    return 1;
}

static int send_message(struct envelope *env, bool extract, bool dots, unsigned notify)
{
    struct header_parser *hp = header_parser_new((size_t)var_header_size_limit,
                                                 CLEANUP_HEADERS_MAX);
    struct strbuf *headers = strbuf_new(4096), *qid = strbuf_new(32);
    struct envelope resent = {0};
    struct hdr_ctx hc = {env, &resent, notify, false};
    struct drop d;
    char *line = NULL;
    size_t cap = 0, len;
    bool first = true, in_header = true, more = true, have_line = false;
    int status = EX_OK;

    /* The header section is held until it ends, so -t recipients go out
     * with the envelope, before the content. */
    while (in_header && (more = read_line(&line, &cap, &len))) {
        if (first && len >= 5 && strncmp(line, "From ", 5) == 0) {
            first = false;      /* a mailbox "From " line: not part of the message */
            continue;
        }
        first = false;
        if (dots && len == 1 && line[0] == '.') {
            more = false;
            break;
        }
        int rc = header_parser_line(hp, line, len, extract ? header_rcpts : NULL, &hc);

        if (rc == HEADER_END) {
            in_header = false;
            have_line = true;   /* the first body line, still in line */
            break;
        }
        if (rc != HEADER_IN && extract) {
            log_error("message header too long: cannot extract recipients");
            status = EX_DATAERR;
            goto out;
        }
        if (strbuf_len(headers) + len + 1 > HEADER_BUFFER_MAX) {
            log_error("message header too long");
            status = EX_DATAERR;
            goto out;
        }
        strbuf_appendn(headers, line, len);
        strbuf_appendc(headers, '\n');
        if (rc != HEADER_IN)
            in_header = false;
    }
    if (in_header)
        header_parser_finish(hp, extract ? header_rcpts : NULL, &hc);
    if (hc.bad) {
        log_error("bad address syntax in a recipient header");
        status = EX_DATAERR;
        goto out;
    }
    /* RFC 5322 3.6.6: resent messages go to the Resent- recipients. */
    for (size_t i = 0; i < resent.nrcpt; i++) {
        if (i == 0)
            env->nrcpt = 0;
        add_rcpt(env, resent.rcpts[i].addr, resent.rcpts[i].notify);
    }
    if (env->nrcpt == 0) {
        log_error(extract ? "No recipient addresses found in message header"
                          : "no recipients specified");
        status = EX_USAGE;
        goto out;
    }
    if (drop_open(&d, env) < 0) {
        status = EX_UNAVAILABLE;
        goto out;
    }
    if (strbuf_len(headers) > 0) {
        strbuf_appendn(d.buf, strbuf_str(headers), strbuf_len(headers));
        drop_line(&d, "", 0);
        strbuf_truncate(d.buf, strbuf_len(d.buf) - 1);     /* no extra LF */
    }
    if (have_line)
        drop_line(&d, line, len);
    while (more && read_line(&line, &cap, &len)) {
        if (dots && len == 1 && line[0] == '.')
            break;
        drop_line(&d, line, len);
    }
    status = drop_close(&d, qid);
    if (status != 0)
        log_error("message not queued: facteur-drop exit status %d", status);
out:
    free(line);
    header_parser_free(&hp);
    strbuf_free(&headers);
    strbuf_free(&qid);
    for (size_t i = 0; i < resent.nrcpt; i++)
        free(resent.rcpts[i].addr);
    free(resent.rcpts);
    return status;
}

/* ---- -bs: SMTP on stdin/stdout. ---- */

static void reply(const char *text)
{
    printf("%s\r\n", text);
    fflush(stdout);
}

static void envelope_reset(struct envelope *env)
{
    for (size_t i = 0; i < env->nrcpt; i++)
        free(env->rcpts[i].addr);
    free(env->rcpts);
    free(env->sender);
    free(env->envid);
    env->rcpts = NULL;
    env->nrcpt = 0;
    env->sender = NULL;
    env->envid = NULL;
    env->ret = 0;
}

/* DATA: read up to ".", un-dot-stuff, drop. */
static void bs_data(struct envelope *env)
{
    struct strbuf *qid = strbuf_new(32), *text = strbuf_new(64);
    char *line = NULL;
    size_t cap = 0, len;
    struct drop d;
    bool ended = false;
    int status;

    if (drop_open(&d, env) < 0) {
        reply("451 4.3.0 Error: queue file write error");
        return;
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    while (read_line(&line, &cap, &len)) {
        if (len == 1 && line[0] == '.') {
            ended = true;
            break;
        }
        if (len > 0 && line[0] == '.')
            drop_line(&d, line + 1, len - 1);
        else
            drop_line(&d, line, len);
    }
    free(line);
    if (!ended) {
        /* EOF inside DATA: never queue half a message. */
        d.failed = true;
        kill(d.pid, SIGTERM);
    }
    status = drop_close(&d, qid);
    if (!ended)
        exit(EX_DATAERR);
    if (status == 0)
        strbuf_printf(text, "250 2.0.0 Ok: queued as %s", strbuf_str(qid));
    else if (status == EX_DATAERR)
        strbuf_set(text, "554 5.6.0 Error: message rejected by facteur-drop");
    else
        strbuf_set(text, "451 4.3.0 Error: queue file write error");
    reply(strbuf_str(text));
    strbuf_free(&qid);
    strbuf_free(&text);
}

static int smtp_session(const char *login)
{
    struct strbuf *why = strbuf_new(64), *text = strbuf_new(128);
    struct smtp_params params;
    struct smtp_addr addr;
    struct smtp_cmd cmd;
    struct envelope env = {0};
    char *line = NULL;
    size_t cap = 0, len;
    const int opts = SMTP_OPT_8BITMIME | SMTP_OPT_DSN | SMTP_OPT_SMTPUTF8;

    smtp_params_init(&params);
    smtp_addr_init(&addr);
    strbuf_printf(text, "220 %s ESMTP %s", var_myhostname, var_mail_name);
    reply(strbuf_str(text));
    while (read_line(&line, &cap, &len)) {
        if (len > BS_LINE_MAX) {
            reply("500 5.5.2 Error: line too long");
            continue;
        }
        if (smtp_cmd_parse(line, len, &cmd, why) != SMTP_R_NONE) {
            reply("502 5.5.2 Error: command not recognized");
            continue;
        }
        switch (cmd.verb) {
        case SMTP_VERB_HELO:
            strbuf_printf(text, "250 %s", var_myhostname);
            reply(strbuf_str(text));
            break;
        case SMTP_VERB_EHLO:
            strbuf_printf(text, "250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                          "250-ENHANCEDSTATUSCODES\r\n250 DSN", var_myhostname);
            reply(strbuf_str(text));
            break;
        case SMTP_VERB_MAIL:
            if (env.sender != NULL) {
                reply("503 5.5.1 Error: nested MAIL command");
                break;
            }
            if (smtp_parse_mail(cmd.args, cmd.args_len, opts, &addr, &params, why) !=
                SMTP_R_NONE) {
                strbuf_printf(text, "501 5.5.4 Syntax error in MAIL command: %s",
                              strbuf_str(why));
                reply(strbuf_str(text));
                break;
            }
            env.sender = xstrdup(strbuf_str(addr.addr));
            if (params.ret != SMTP_RET_NONE)
                env.ret = params.ret == SMTP_RET_FULL ? 'F' : 'H';
            if (params.seen & SMTP_PARAM_ENVID)
                env.envid = xstrdup(strbuf_str(params.envid));
            reply("250 2.1.0 Ok");
            break;
        case SMTP_VERB_RCPT:
            if (env.sender == NULL) {
                reply("503 5.5.1 Error: need MAIL command");
            } else if (env.nrcpt >= BS_RCPT_MAX) {
                reply("452 4.5.3 Error: too many recipients");
            } else if (smtp_parse_rcpt(cmd.args, cmd.args_len, opts, &addr, &params, why) !=
                       SMTP_R_NONE) {
                strbuf_printf(text, "501 5.5.4 Syntax error in RCPT command: %s",
                              strbuf_str(why));
                reply(strbuf_str(text));
            } else {
                add_rcpt(&env, strbuf_str(addr.addr), params.notify & QFILE_NOTIFY_MASK);
                reply("250 2.1.5 Ok");
            }
            break;
        case SMTP_VERB_DATA:
            if (env.nrcpt == 0) {
                reply(env.sender ? "554 5.5.1 Error: no valid recipients"
                                 : "503 5.5.1 Error: need RCPT command");
                break;
            }
            bs_data(&env);
            envelope_reset(&env);
            break;
        case SMTP_VERB_RSET:
            envelope_reset(&env);
            reply("250 2.0.0 Ok");
            break;
        case SMTP_VERB_NOOP:
            reply("250 2.0.0 Ok");
            break;
        case SMTP_VERB_VRFY:
            reply("252 2.0.0 Send some mail, I'll try my best");
            break;
        case SMTP_VERB_QUIT:
            reply("221 2.0.0 Bye");
            goto out;
        default:
            reply("502 5.5.2 Error: command not implemented");
            break;
        }
    }
out:
    (void)login;
    free(line);
    envelope_reset(&env);
    smtp_params_free(&params);
    smtp_addr_free(&addr);
    strbuf_free(&why);
    strbuf_free(&text);
    return EX_OK;
}

/* ---- Options. ---- */

static void __attribute__((noreturn)) usage(void)
{
    log_error("usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] "
              "[-bs | -bp | -bi | -bm] [-q] [-C config] [--] [recipient ...]");
    exit(EX_USAGE);
}

int main(int argc, char **argv)
{
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    struct strbuf *why = strbuf_new(128);
    struct envelope env = {0};
    char mode = 'm';
    bool extract = false, dots = true, flush = false;
    unsigned notify = 0;
    const char *from = NULL, *full_name = NULL;
    int i;

    log_init("sendmail", LOG_DEST_STDERR);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(prog, "mailq") == 0)
        mode = 'p';
    else if (strcmp(prog, "newaliases") == 0)
        mode = 'i';
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i] + 1, *val = NULL;

        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        /* Options that take a value, attached or as the next argument. */
        if (strchr("fFrNRVCBhLOXo", *a) != NULL && *a != 'o') {
            if (a[1] != '\0')
                val = a + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                usage();
        }
        switch (*a) {
        case 'f':
        case 'r':
            from = val;
            break;
        case 'F':
            full_name = val;
            break;
        case 'N':
            notify = parse_notify(val);
            break;
        case 'R':
            if (strcasecmp(val, "full") == 0)
                env.ret = 'F';
            else if (strcasecmp(val, "hdrs") == 0)
                env.ret = 'H';
            else
                usage();
            break;
        case 'V':
            if (strlen(val) > QFILE_ENVID_MAX)
                usage();
            env.envid = xstrdup(val);
            break;
        case 'C':
            /* A directory, or a main.cf path as Postfix accepts. */
            if (strlen(val) > 8 && strcmp(val + strlen(val) - 8, "/main.cf") == 0) {
                char *dir = xstrndup(val, strlen(val) - 8);

                setenv("FACTEUR_CONFIG_DIR", dir, 1);
                free(dir);
            } else {
                setenv("FACTEUR_CONFIG_DIR", val, 1);
            }
            break;
        case 'b':
            if (a[1] == '\0' || strchr("mspi", a[1]) == NULL || a[2] != '\0') {
                log_error("unsupported mode -%s", a);
                exit(EX_USAGE);
            }
            mode = a[1];
            break;
        case 'o':
            /* -oi is -i; other sendmail -o options have no meaning here. */
            if (strcmp(a, "oi") == 0)
                dots = false;
            break;
        case 'i':
            dots = false;
            break;
        case 't':
            extract = true;
            break;
        case 'q':
            flush = a[1] == '\0';
            if (!flush) {
                log_error("unsupported option -%s", a);
                exit(EX_USAGE);
            }
            break;
        case 'v':
        case 'n':
        case 'U':
        case 'G':
        case 'B':
        case 'h':
        case 'L':
        case 'O':
        case 'X':
            break;      /* accepted for compatibility, no effect */
        default:
            log_error("unsupported option -%s", a);
            usage();
        }
    }
    if (conf_load(NULL, why) < 0) {
        log_error("%s", strbuf_str(why));
        return EX_CONFIG;
    }
    if (flush) {
        char *args[] = {"facteur", "flush", NULL};
        run_cmd("facteur", args);
    }
    if (mode == 'p') {
        char *args[] = {"facteur-queue", "-p", NULL};
        run_cmd("facteur-queue", args);
    }
    if (mode == 'i') {
        char *args[] = {"newaliases", NULL};
        run_cmd("facteur-map", args);
    }

    struct passwd *pw = getpwuid(getuid());
    char *login = pw != NULL ? xstrdup(pw->pw_name) : xasprintf("uid%lu", (unsigned long)getuid());

    int status;

    if (mode == 's') {
        status = smtp_session(login);
        goto done;
    }
    env.sender = from != NULL ? strip_brackets(from) : xstrdup(login);
    if (full_name == NULL)
        full_name = getenv("NAME");
    if (full_name != NULL)
        env.full_name = xstrdup(full_name);
    else if (pw != NULL && pw->pw_gecos != NULL && *pw->pw_gecos != '\0')
        env.full_name = xstrndup(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
    for (; i < argc; i++) {
        struct addr_ctx a = {&env, notify};

        if (header_addr_list(argv[i], strlen(argv[i]), QFILE_RCPT_MAX, add_addr, &a) < 0) {
            log_error("bad recipient address: %s", argv[i]);
            status = EX_USAGE;
            goto done;
        }
    }
    status = send_message(&env, extract, dots, notify);
done:
    free(login);
    envelope_reset(&env);
    free(env.full_name);
    strbuf_free(&why);
    return status;
}
