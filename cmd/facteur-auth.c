/*
 * facteur-auth - test logins and user lookups against authd, make
 * password hashes (doveadm auth test / auth lookup / pw, for facteur).
 *
 *   facteur-auth [-c confdir] [-a socket] [-r rip] [-s service] test USER [PASSWORD]
 *   facteur-auth [-c confdir] [-a socket] lookup USER
 *   facteur-auth hash [-s SCHEME] [-r ROUNDS] [PASSWORD]
 *
 * test and lookup talk to the running authd through lib/auth_client
 * ($queue_directory/private/auth unless -a).  A password not given on the
 * command line is read without echo from the terminal, or as one line
 * from standard input when that is not a terminal.  Exit status: 0
 * success, 1 authentication failed or user unknown, 2 any other error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth_client.h"
#include "base64.h"
#include "conf.h"
#include "log.h"
#include "mem.h"
#include "params.h"
#include "pwscheme.h"
#include "strbuf.h"

#define AUTH_TIMEOUT_MS 60000

/* Report an error and exit 2 (log_fatal would exit 1, "auth failed"). */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    struct strbuf *msg = strbuf_new(128);
    va_list ap;

    va_start(ap, fmt);
    strbuf_vappendf(msg, fmt, ap);
    va_end(ap);
    log_error("%s", strbuf_str(msg));
    exit(2);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: facteur-auth [-c confdir] [-a socket] [-r rip] [-s service] test USER [PASSWORD]\n"
            "       facteur-auth [-c confdir] [-a socket] lookup USER\n"
            "       facteur-auth hash [-s SCHEME] [-r ROUNDS] [PASSWORD]\n");
    exit(2);
}

/* Read a password: without echo from a terminal, else one line of stdin. */
static char *read_password(const char *prompt)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (tty) {
        fprintf(stderr, "%s", prompt);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
    }
    n = getline(&line, &cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n < 0) {
        free(line);
        die("no password given");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    return line;
}

static int cmd_hash(int argc, char **argv)
{
    const char *scheme = "SHA512-CRYPT";
    struct strbuf *out = strbuf_new(128), *why = strbuf_new(64);
    unsigned rounds = 0;
    char *pw;
    int c;

    optind = 1;
    while ((c = getopt(argc, argv, "s:r:")) != -1) {
        switch (c) {
        case 's':
            scheme = optarg;
            break;
        case 'r':
            rounds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (argc - optind > 1)
        usage();
    if (optind < argc) {
        pw = xstrdup(argv[optind]);
    } else {
        char *again;
        pw = read_password("Enter new password: ");
        if (isatty(STDIN_FILENO)) {
            again = read_password("Retype new password: ");
            if (strcmp(pw, again) != 0)
                die("passwords do not match");
            free(again);
        }
    }
    if (pwscheme_hash(scheme, pw, rounds, out, why) < 0) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
        strbuf_free(&out);
        die("%s", strbuf_str(why));
    }
    printf("%s\n", strbuf_str(out));
    explicit_bzero(pw, strlen(pw));
    free(pw);
    strbuf_free(&out);
    strbuf_free(&why);
    return 0;
}

static struct auth_client *connect_authd(const char *sock)
{
    struct strbuf *why = strbuf_new(64);
    struct auth_client *ac;
    char *path = sock ? xstrdup(sock) : xasprintf("%s/private/auth", var_queue_directory);

    if ((ac = auth_client_connect(path, AUTH_TIMEOUT_MS, why)) == NULL)
        die("%s", strbuf_str(why));
    free(path);
    strbuf_free(&why);
    return ac;
}

static int cmd_test(struct auth_client *ac, const char *user, const char *password,
                    const char *rip, const char *service)
{
    struct strbuf *resp = strbuf_new(128), *plain = strbuf_new(128);
    struct strbuf *name = strbuf_new(64), *reason = strbuf_new(64);
    struct auth_client_login req = {
        .mech = "PLAIN", .service = service, .lip = "", .rip = rip, .secured = true,
    };
    enum auth_client_result r;

    if (!auth_client_has_mech(ac, "PLAIN")) {
        log_error("authd does not offer PLAIN (auth_mechanisms)");
        return 2;
    }
    strbuf_appendc(plain, 0);
    strbuf_append(plain, user);
    strbuf_appendc(plain, 0);
    strbuf_append(plain, password);
    base64_encode(resp, strbuf_str(plain), strbuf_len(plain));
    req.initial = strbuf_str(resp);
    r = auth_client_login(ac, &req, NULL, NULL, name, reason);
    switch (r) {
    case AUTH_CLIENT_OK:
        printf("passdb: %s auth succeeded\n", strbuf_str(name));
        break;
    case AUTH_CLIENT_FAIL:
        printf("passdb: %s auth failed: %s\n", user, strbuf_str(reason));
        break;
    case AUTH_CLIENT_TEMPFAIL:
        printf("passdb: %s auth temporarily failed: %s\n", user, strbuf_str(reason));
        break;
    }
    explicit_bzero(plain->data, plain->size);
    explicit_bzero(resp->data, resp->size);
    strbuf_free(&resp);
    strbuf_free(&plain);
    strbuf_free(&name);
    strbuf_free(&reason);
    return r == AUTH_CLIENT_OK ? 0 : r == AUTH_CLIENT_FAIL ? 1 : 2;
}

static int cmd_lookup(struct auth_client *ac, const char *user, const char *service)
{
    struct auth_client_user u;
    struct strbuf *why = strbuf_new(64);
    int r = auth_client_lookup(ac, user, service, &u, why);

    if (r == 1) {
        printf("userdb: %s\n", user);
        printf("  uid        : %lu\n", u.uid);
        printf("  gid        : %lu\n", u.gid);
        printf("  home       : %s\n", strbuf_str(u.home));
        if (strbuf_len(u.mail))
            printf("  mail       : %s\n", strbuf_str(u.mail));
        if (strbuf_len(u.quota_rule))
            printf("  quota_rule : %s\n", strbuf_str(u.quota_rule));
        auth_client_user_clear(&u);
    } else if (r == 0) {
        printf("userdb: user %s doesn't exist\n", user);
    } else {
        log_error("userdb lookup of %s failed: %s", user, strbuf_str(why));
    }
    strbuf_free(&why);
    return r == 1 ? 0 : r == 0 ? 1 : 2;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL, *sock = NULL, *rip = "", *service = "facteur-auth";
    struct strbuf *why;
    struct auth_client *ac;
    int c, ret;

    log_init("facteur-auth", LOG_DEST_STDERR);
    while ((c = getopt(argc, argv, "+c:a:r:s:")) != -1) {
        switch (c) {
        case 'c':
            confdir = optarg;
            break;
        case 'a':
            sock = optarg;
            break;
        case 'r':
            rip = optarg;
            break;
        case 's':
            service = optarg;
            break;
        default:
            usage();
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1)
        usage();
    if (strcmp(argv[0], "hash") == 0)
        return cmd_hash(argc, argv);
    why = strbuf_new(64);
    if (conf_load(confdir, why) < 0)
        die("%s", strbuf_str(why));
    strbuf_free(&why);
    if (strcmp(argv[0], "test") == 0 && (argc == 2 || argc == 3)) {
        char *pw = argc == 3 ? xstrdup(argv[2]) : read_password("Password: ");
        ac = connect_authd(sock);
        ret = cmd_test(ac, argv[1], pw, rip, service);
        explicit_bzero(pw, strlen(pw));
        free(pw);
    } else if (strcmp(argv[0], "lookup") == 0 && argc == 2) {
        ac = connect_authd(sock);
        ret = cmd_lookup(ac, argv[1], service);
    } else {
        usage();
    }
    auth_client_close(&ac);
    return ret;
}
