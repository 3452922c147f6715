/*
 * test_auth_client.c - the authd client: handshake parsing (feed), and
 * login and lookup dialogues against a scripted fake authd in a child
 * process on a UNIX socket (bounded by alarm), including CONT rounds,
 * FAIL with temp, answers for other ids, garbage and a vanished server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth_client.h"
#include "mem.h"
#include "strbuf.h"

#define HANDSHAKE "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tlogin\tplaintext\n" \
                  "MECH\tSECRET\tprivate\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n"

struct feed_case {
    const char *name;
    const char *lines;
    int expect;             /* 0 all fed, -1 some line refused */
    bool ready;
    const char *mechs;
};

static const struct feed_case feed_cases[] = {
    {"full", HANDSHAKE, 0, true, "PLAIN LOGIN"},
    {"no mechs", "VERSION\t1\t0\nDONE\n", 0, true, ""},
    {"unknown lines ignored", "VERSION\t1\t2\nFOO\tbar\nMECH\tX-A\nDONE\n", 0, true, "X-A"},
    {"wrong major", "VERSION\t2\t0\n", -1, false, ""},
    {"mech before version", "MECH\tPLAIN\n", -1, false, ""},
    {"mech name with space", "VERSION\t1\t2\nMECH\ta b\nDONE\n", 0, true, ""},
    {"bad escape", "VERSION\t1\t2\nMECH\t\001x\n", -1, false, ""},
    {"not done", "VERSION\t1\t2\nMECH\tPLAIN\n", 0, false, "PLAIN"},
};

static void test_feed_table(void **state)
{
    struct strbuf *why = strbuf_new(64);

    for (size_t i = 0; i < sizeof(feed_cases) / sizeof(feed_cases[0]); i++) {
        const struct feed_case *c = &feed_cases[i];
        struct auth_client *ac = auth_client_new_detached();
        const char *p = c->lines;
        int got = 0;

        while (*p && got == 0) {
            const char *nl = strchr(p, '\n');
            got = auth_client_feed(ac, p, (size_t)(nl - p + 1), why);
            p = nl + 1;
        }
        if (got != c->expect || auth_client_ready(ac) != c->ready
            || strcmp(auth_client_mechs(ac), c->mechs) != 0)
            fail_msg("case '%s': got %d ready %d mechs '%s' (%s)", c->name, got,
                     auth_client_ready(ac), auth_client_mechs(ac), strbuf_str(why));
        auth_client_close(&ac);
    }
    struct auth_client *ac = auth_client_new_detached();
    const char *p = HANDSHAKE;
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_int_equal(auth_client_feed(ac, p, (size_t)(nl - p + 1), why), 0);
        p = nl + 1;
    }
    assert_true(auth_client_has_mech(ac, "plain"));
    assert_true(auth_client_has_mech(ac, "LOGIN"));
    assert_false(auth_client_has_mech(ac, "SECRET"));
    assert_false(auth_client_has_mech(ac, "PLAI"));
    auth_client_close(&ac);
    strbuf_free(&why);
}

/* ---- a scripted fake authd ---- */

struct script_step {
    const char *expect_prefix;  /* what the client's line must start with */
    const char *answer;         /* written back (may be several lines, or "") */
};

static char sock_dir[64];
static char sock_path[96];

/* Serve one connection: send the handshake, then for each step read a
 * line, check its prefix (exit 3 if wrong) and answer.  Exit 0 at the end. */
static pid_t fake_authd(const struct script_step *steps, size_t n, const char *handshake)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    unlink(sock_path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(lfd);
        return pid;
    }
    alarm(10);
    int fd = accept(lfd, NULL, NULL);
    FILE *in = fdopen(fd, "r");
    char line[70000];

    if (write(fd, handshake, strlen(handshake)) < 0)
        _exit(2);
    for (size_t i = 0; i < n; i++) {
        do {
            if (fgets(line, sizeof(line), in) == NULL)
                _exit(4);
        } while (strncmp(line, "VERSION\t", 8) == 0 || strncmp(line, "CPID\t", 5) == 0);
        if (strncmp(line, steps[i].expect_prefix, strlen(steps[i].expect_prefix)) != 0)
            _exit(3);
        if (*steps[i].answer && write(fd, steps[i].answer, strlen(steps[i].answer)) < 0)
            _exit(2);
    }
    _exit(0);
}

static int fake_wait(pid_t pid)
{
    int st;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int cont_answers(const char *challenge, struct strbuf *resp, void *ctx)
{
    int *round = ctx;

    (*round)++;
    if (strcmp(challenge, "VXNlcm5hbWU6") == 0)        /* "Username:" */
        strbuf_set(resp, "Ym9i");
    else if (strcmp(challenge, "UGFzc3dvcmQ6") == 0)   /* "Password:" */
        strbuf_set(resp, "c2VjcmV0");
    else
        return -1;
    return 0;
}

static void test_login_dialogues(void **state)
{
    static const struct script_step ok_steps[] = {
        {"AUTH\t1\tPLAIN\tservice=smtp\tlip=127.0.0.1\trip=192.0.2.1\trport=4000\tsecured\tresp=AGJvYgBz",
         "OK\t1\tuser=bob\n"},
        {"AUTH\t2\tLOGIN\tservice=imap", "CONT\t2\tVXNlcm5hbWU6\n"},
        {"CONT\t2\tYm9i", "CONT\t2\tUGFzc3dvcmQ6\n"},
        /* An answer to an older id first, which the client skips. */
        {"CONT\t2\tc2VjcmV0", "FAIL\t1\treason=old\nFAIL\t2\treason=Bad\001tpass\tuser=bob\n"},
        {"AUTH\t3\tPLAIN", "FAIL\t3\treason=backend down\ttemp\n"},
        {"AUTH\t4\tPLAIN", "OK\t4\n"},
    };
    struct strbuf *user = strbuf_new(16), *reason = strbuf_new(16), *why = strbuf_new(16);
    struct auth_client_login req = {.mech = "PLAIN", .initial = "AGJvYgBz", .service = "smtp",
                                    .lip = "127.0.0.1", .rip = "192.0.2.1", .rport = 4000,
                                    .secured = true};
    int rounds = 0;
    pid_t pid = fake_authd(ok_steps, sizeof(ok_steps) / sizeof(ok_steps[0]), HANDSHAKE);
    struct auth_client *ac = auth_client_connect(sock_path, 5000, why);

    assert_non_null(ac);
    assert_string_equal(auth_client_mechs(ac), "PLAIN LOGIN");
    assert_int_equal(auth_client_login(ac, &req, NULL, NULL, user, reason), AUTH_CLIENT_OK);
    assert_string_equal(strbuf_str(user), "bob");

    struct auth_client_login login = {.mech = "LOGIN", .service = "imap"};
    assert_int_equal(auth_client_login(ac, &login, cont_answers, &rounds, user, reason),
                     AUTH_CLIENT_FAIL);
    assert_int_equal(rounds, 2);
    assert_string_equal(strbuf_str(reason), "Bad?pass");   /* made printable */

    struct auth_client_login plain = {.mech = "PLAIN", .initial = "", .service = "pop3"};
    assert_int_equal(auth_client_login(ac, &plain, NULL, NULL, user, reason),
                     AUTH_CLIENT_TEMPFAIL);
    assert_string_equal(strbuf_str(reason), "backend down");
    /* OK without a user name is not a success. */
    assert_int_equal(auth_client_login(ac, &plain, NULL, NULL, user, reason),
                     AUTH_CLIENT_TEMPFAIL);
    auth_client_close(&ac);
    assert_int_equal(fake_wait(pid), 0);
    strbuf_free(&user);
    strbuf_free(&reason);
    strbuf_free(&why);
}

static void test_lookup_dialogues(void **state)
{
    static const struct script_step steps[] = {
        {"USER\t1\tbob@example.com\tservice=lmtp",
         "USER\t1\tbob@example.com\tuid=1000\tgid=100\thome=/home/bob\tmail=maildir:~/M\n"},
        {"USER\t2\tann", "NOTFOUND\t2\n"},
        {"USER\t3\tcid", "USER\t3\tcid\tuid=x\tgid=1\thome=/h\n"},
        {"USER\t4\tdan", "FAIL\t4\treason=db down\ttemp\n"},
        {"USER\t5\teve", "WHAT\t5\n"},
    };
    struct strbuf *why = strbuf_new(16);
    struct auth_client_user u;
    pid_t pid = fake_authd(steps, sizeof(steps) / sizeof(steps[0]), HANDSHAKE);
    struct auth_client *ac = auth_client_connect(sock_path, 5000, why);

    assert_non_null(ac);
    assert_int_equal(auth_client_lookup(ac, "bob@example.com", "lmtp", &u, why), 1);
    assert_int_equal(u.uid, 1000);
    assert_int_equal(u.gid, 100);
    assert_string_equal(strbuf_str(u.home), "/home/bob");
    assert_string_equal(strbuf_str(u.mail), "maildir:~/M");
    assert_string_equal(strbuf_str(u.quota_rule), "");
    auth_client_user_clear(&u);
    assert_int_equal(auth_client_lookup(ac, "ann", "lmtp", &u, why), 0);
    assert_int_equal(auth_client_lookup(ac, "cid", "lmtp", &u, why), -1);
    assert_int_equal(auth_client_lookup(ac, "dan", "lmtp", &u, why), -1);
    assert_string_equal(strbuf_str(why), "db down");
    assert_int_equal(auth_client_lookup(ac, "eve", "lmtp", &u, why), -1);
    /* Refused before anything is sent. */
    assert_int_equal(auth_client_lookup(ac, "a/b", "lmtp", &u, why), -1);
    auth_client_close(&ac);
    assert_int_equal(fake_wait(pid), 0);
    strbuf_free(&why);
}

static void test_broken_servers(void **state)
{
    struct strbuf *why = strbuf_new(16), *user = strbuf_new(16), *reason = strbuf_new(16);
    struct auth_client *ac;
    pid_t pid;

    /* Nobody listening. */
    unlink(sock_path);
    assert_null(auth_client_connect(sock_path, 1000, why));
    assert_non_null(strstr(strbuf_str(why), "connect"));
    /* Wrong protocol version. */
    pid = fake_authd(NULL, 0, "VERSION\t2\t0\n");
    assert_null(auth_client_connect(sock_path, 1000, why));
    fake_wait(pid);
    /* Server goes away after the handshake: a temporary failure. */
    static const struct script_step one[] = {{"AUTH\t1\tPLAIN", ""}};
    pid = fake_authd(one, 1, HANDSHAKE);
    ac = auth_client_connect(sock_path, 2000, why);
    assert_non_null(ac);
    struct auth_client_login req = {.mech = "PLAIN", .initial = "AGEAYg==", .service = "smtp"};
    assert_int_equal(auth_client_login(ac, &req, NULL, NULL, user, reason),
                     AUTH_CLIENT_TEMPFAIL);
    fake_wait(pid);
    /* The next call reconnects once; nobody is there now. */
    unlink(sock_path);
    assert_int_equal(auth_client_login(ac, &req, NULL, NULL, user, reason),
                     AUTH_CLIENT_TEMPFAIL);
    auth_client_close(&ac);
    strbuf_free(&why);
    strbuf_free(&user);
    strbuf_free(&reason);
}

static int setup(void **state)
{
    snprintf(sock_dir, sizeof(sock_dir), "/tmp/test_auth_client.XXXXXX");
    if (mkdtemp(sock_dir) == NULL)
        return -1;
    snprintf(sock_path, sizeof(sock_path), "%s/auth", sock_dir);
    return 0;
}

static int teardown(void **state)
{
    unlink(sock_path);
    rmdir(sock_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed_table),
        cmocka_unit_test(test_login_dialogues),
        cmocka_unit_test(test_lookup_dialogues),
        cmocka_unit_test(test_broken_servers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
