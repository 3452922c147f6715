/*
 * test_anvil_client.c - the anvil client: the exact request bytes it sends
 * and how strictly it reads replies, from one table of canned replies fed
 * through a memory stream (valid, refused, missing/extra/mistyped
 * attributes, out-of-range numbers, truncated, garbage, over-long), plus
 * the paths that never reach anvil: an over-long ident, a missing socket,
 * and a dead stream staying dead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "anvil_client.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "stream.h"

/* Binary literals with their length (they contain NUL bytes). */
#define BIN(s) s, sizeof(s) - 1

enum req { R_CONNECT, R_DISCONNECT, R_MESSAGE, R_RECIPIENT, R_LOOKUP };

struct reply_case {
    const char *label;
    enum req req;
    const char *reply;
    size_t reply_len;
    enum anvil_result want;
    long count, rate, message_rate, recipient_rate;     /* when want == ANVIL_OK */
};

static const struct reply_case reply_cases[] = {
    {"connect ok", R_CONNECT,
     BIN("Lstatus\0" "0\0" "Lcount\0" "3\0" "Lrate\0" "5\0" "\0"), ANVIL_OK, 3, 5, -1, -1},
    {"connect attributes in another order", R_CONNECT,
     BIN("Lrate\0" "7\0" "Lstatus\0" "0\0" "Lcount\0" "1\0" "\0"), ANVIL_OK, 1, 7, -1, -1},
    {"disconnect ok", R_DISCONNECT, BIN("Lstatus\0" "0\0" "\0"), ANVIL_OK, -1, -1, -1, -1},
    {"message ok", R_MESSAGE, BIN("Lstatus\0" "0\0" "Lrate\0" "12\0" "\0"), ANVIL_OK,
     -1, -1, 12, -1},
    {"recipient ok", R_RECIPIENT, BIN("Lstatus\0" "0\0" "Lrate\0" "40\0" "\0"), ANVIL_OK,
     -1, -1, -1, 40},
    {"lookup ok", R_LOOKUP,
     BIN("Lstatus\0" "0\0" "Lcount\0" "2\0" "Lrate\0" "4\0" "Lmessage_rate\0" "6\0"
         "Lrecipient_rate\0" "8\0" "\0"), ANVIL_OK, 2, 4, 6, 8},
    {"zero counts", R_CONNECT,
     BIN("Lstatus\0" "0\0" "Lcount\0" "0\0" "Lrate\0" "0\0" "\0"), ANVIL_OK, 0, 0, -1, -1},
    {"refused: table full", R_CONNECT,
     BIN("Lstatus\0" "1\0" "Lcount\0" "0\0" "Lrate\0" "0\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"missing count", R_CONNECT, BIN("Lstatus\0" "0\0" "Lrate\0" "5\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"missing status", R_DISCONNECT, BIN("\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"extra attribute", R_DISCONNECT, BIN("Lstatus\0" "0\0" "Lcount\0" "1\0" "\0"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"string instead of long", R_MESSAGE, BIN("Lstatus\0" "0\0" "Srate\0" "5\0" "\0"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"negative count", R_CONNECT,
     BIN("Lstatus\0" "0\0" "Lcount\0" "-1\0" "Lrate\0" "5\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"count out of range", R_CONNECT,
     BIN("Lstatus\0" "0\0" "Lcount\0" "9999999999\0" "Lrate\0" "5\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"number with garbage", R_MESSAGE, BIN("Lstatus\0" "0\0" "Lrate\0" "5x\0" "\0"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"duplicate attribute", R_MESSAGE,
     BIN("Lstatus\0" "0\0" "Lrate\0" "5\0" "Lrate\0" "6\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"truncated before the end marker", R_MESSAGE, BIN("Lstatus\0" "0\0" "Lrate\0" "5\0"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"truncated inside a value", R_MESSAGE, BIN("Lstatus\0" "0\0" "Lrate\0" "5"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"no reply at all", R_LOOKUP, BIN(""), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"unknown type byte", R_DISCONNECT, BIN("Xstatus\0" "0\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"garbage", R_LOOKUP, BIN("HTTP/1.0 200 OK\r\n\r\n"), ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"over-long value", R_MESSAGE,
     BIN("Lstatus\0" "0\0" "Lrate\0" "1234567890123456789012345678901234567890\0" "\0"),
     ANVIL_UNKNOWN, 0, 0, 0, 0},
    {"over-long name", R_DISCONNECT,
     BIN("Lstatus_with_a_name_far_too_long_for_anvil\0" "0\0" "\0"), ANVIL_UNKNOWN, 0, 0, 0, 0},
};

static const char *const request_bytes[] = {
    [R_CONNECT] = "connect", [R_DISCONNECT] = "disconnect", [R_MESSAGE] = "message",
    [R_RECIPIENT] = "recipient", [R_LOOKUP] = "lookup",
};

static enum anvil_result call(struct anvil_client *ac, enum req req,
                              struct anvil_client_counts *counts)
{
    switch (req) {
    case R_CONNECT:
        return anvil_client_connect(ac, "smtp", "192.0.2.1", counts);
    case R_DISCONNECT:
        return anvil_client_disconnect(ac, "smtp", "192.0.2.1");
    case R_MESSAGE:
        return anvil_client_message(ac, "smtp", "192.0.2.1", counts);
    case R_RECIPIENT:
        return anvil_client_recipient(ac, "smtp", "192.0.2.1", counts);
    case R_LOOKUP:
        return anvil_client_lookup(ac, "smtp", "192.0.2.1", counts);
    }
    return ANVIL_UNKNOWN;
}

static void test_replies(void **state)
{
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *c = &reply_cases[i];
        struct strbuf *in = strbuf_new(64), *out = strbuf_new(64), *want_req = strbuf_new(64);
        struct anvil_client *ac;
        struct anvil_client_counts counts;
        enum anvil_result got;

        strbuf_setn(in, c->reply, c->reply_len);
        ac = anvil_client_new_stream(stream_memopen(in, out), 500);
        got = call(ac, c->req, &counts);
        if (got != c->want)
            fail_msg("%s: result %d, want %d (%s)", c->label, got, c->want,
                     anvil_client_error(ac));
        /* The request is always the same two attributes. */
        strbuf_appendn(want_req, "Srequest\0", 9);
        strbuf_appendn(want_req, request_bytes[c->req], strlen(request_bytes[c->req]) + 1);
        strbuf_appendn(want_req, "Sident\0smtp:192.0.2.1\0\0", 23);
        if (strbuf_len(out) != strbuf_len(want_req) ||
            memcmp(strbuf_str(out), strbuf_str(want_req), strbuf_len(out)) != 0)
            fail_msg("%s: wrong request bytes (%zu bytes)", c->label, strbuf_len(out));
        if (got == ANVIL_OK) {
            if (c->req != R_DISCONNECT &&
                (counts.count != c->count || counts.rate != c->rate ||
                 counts.message_rate != c->message_rate ||
                 counts.recipient_rate != c->recipient_rate))
                fail_msg("%s: counts %ld/%ld/%ld/%ld", c->label, counts.count, counts.rate,
                         counts.message_rate, counts.recipient_rate);
            assert_string_equal(anvil_client_error(ac), "");
        } else {
            assert_true(strlen(anvil_client_error(ac)) > 0);
        }
        anvil_client_free(&ac);
        assert_null(ac);
        strbuf_free(&in);
        strbuf_free(&out);
        strbuf_free(&want_req);
    }
}

/* Two requests over one stream: replies are read one message at a time. */
static void test_two_requests_one_stream(void **state)
{
    struct strbuf *in = strbuf_new(64), *out = strbuf_new(64);
    struct anvil_client *ac;
    struct anvil_client_counts counts;

    strbuf_setn(in, BIN("Lstatus\0" "0\0" "Lcount\0" "1\0" "Lrate\0" "1\0" "\0"
                        "Lstatus\0" "0\0" "\0"));
    ac = anvil_client_new_stream(stream_memopen(in, out), 500);
    assert_int_equal(anvil_client_connect(ac, "smtp", "192.0.2.7", &counts), ANVIL_OK);
    assert_int_equal(counts.count, 1);
    assert_int_equal(anvil_client_disconnect(ac, "smtp", "192.0.2.7"), ANVIL_OK);
    /* Nothing more to read: unknown, and the dead stream stays dead. */
    assert_int_equal(anvil_client_lookup(ac, "smtp", "192.0.2.7", &counts), ANVIL_UNKNOWN);
    assert_int_equal(counts.count, -1);
    strbuf_setn(in, BIN("Lstatus\0" "0\0" "\0"));
    assert_int_equal(anvil_client_disconnect(ac, "smtp", "192.0.2.7"), ANVIL_UNKNOWN);
    anvil_client_free(&ac);
    strbuf_free(&in);
    strbuf_free(&out);
}

static void test_overlong_ident_sends_nothing(void **state)
{
    struct strbuf *in = strbuf_new(64), *out = strbuf_new(64);
    struct anvil_client *ac;
    struct anvil_client_counts counts;
    char addr[400];

    memset(addr, 'a', sizeof(addr) - 1);
    addr[sizeof(addr) - 1] = 0;
    strbuf_setn(in, BIN("Lstatus\0" "0\0" "\0"));
    ac = anvil_client_new_stream(stream_memopen(in, out), 500);
    assert_int_equal(anvil_client_connect(ac, "smtp", addr, &counts), ANVIL_UNKNOWN);
    assert_int_equal(strbuf_len(out), 0);
    assert_non_null(strstr(anvil_client_error(ac), "too long"));
    /* The link is still good for a normal request. */
    assert_int_equal(anvil_client_disconnect(ac, "smtp", "192.0.2.1"), ANVIL_OK);
    anvil_client_free(&ac);
    strbuf_free(&in);
    strbuf_free(&out);
}

static void test_no_anvil_is_unknown(void **state)
{
    struct anvil_client *ac = anvil_client_new("/nonexistent/facteur/private/anvil", 200);
    struct anvil_client_counts counts;

    assert_int_equal(anvil_client_connect(ac, "smtp", "192.0.2.1", &counts), ANVIL_UNKNOWN);
    assert_non_null(strstr(anvil_client_error(ac), "/nonexistent/facteur/private/anvil"));
    assert_int_equal(anvil_client_message(ac, "smtp", "192.0.2.1", &counts), ANVIL_UNKNOWN);
    anvil_client_free(&ac);
    anvil_client_free(&ac);     /* NULL is allowed */
    anvil_client_free(NULL);
}

static void test_path_too_long(void **state)
{
    char path[200];
    struct anvil_client *ac;

    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = 0;
    ac = anvil_client_new(path, 200);
    assert_int_equal(anvil_client_disconnect(ac, "smtp", "192.0.2.1"), ANVIL_UNKNOWN);
    assert_non_null(strstr(anvil_client_error(ac), "too long"));
    anvil_client_free(&ac);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* An anvil that takes the request and never answers: the call gives up
 * after the client's timeout and says unknown. */
static void test_silent_anvil_times_out(void **state)
{
    int sv[2];
    struct anvil_client *ac;
    struct anvil_client_counts counts;
    struct timespec t0;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ac = anvil_client_new_stream(stream_fdopen(sv[0]), 150);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(anvil_client_connect(ac, "smtp", "192.0.2.1", &counts), ANVIL_UNKNOWN);
    assert_in_range(elapsed_ms(&t0), 100, 2000);
    assert_int_equal(counts.count, -1);
    anvil_client_free(&ac);
    close(sv[1]);
}

/* A real socket path: the client connects on first use, and after anvil
 * goes away it reconnects on the next call (a fresh anvil answers). */
static void test_reconnects_after_anvil_restarts(void **state)
{
    char dir[] = "/tmp/test_anvil_client.XXXXXX";
    char path[64];
    struct anvil_client *ac;
    struct anvil_client_counts counts;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/anvil", dir);
    for (int round = 1; round <= 2; round++) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        pid_t pid;
        int status;

        strcpy(sun.sun_path, path);
        unlink(path);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        assert_int_equal(listen(lfd, 1), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* One connection, one request, one reply, then "crash". */
            static const char reply[] = "Lstatus\0" "0\0" "Lcount\0" "4\0" "Lrate\0" "9\0" "\0";
            char buf[512];
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0 ||
                write(fd, reply, sizeof(reply) - 1) != (ssize_t)(sizeof(reply) - 1))
                _exit(1);
            _exit(0);
        }
        close(lfd);
        if (round == 1)
            ac = anvil_client_new(path, 2000);
        else
            /* The old connection is dead: this call fails and drops it. */
            assert_int_equal(anvil_client_lookup(ac, "smtp", "192.0.2.1", &counts),
                             ANVIL_UNKNOWN);
        assert_int_equal(anvil_client_connect(ac, "smtp", "192.0.2.1", &counts), ANVIL_OK);
        assert_int_equal(counts.count, 4);
        assert_int_equal(counts.rate, 9);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    anvil_client_free(&ac);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_two_requests_one_stream),
        cmocka_unit_test(test_overlong_ident_sends_nothing),
        cmocka_unit_test(test_no_anvil_is_unknown),
        cmocka_unit_test(test_path_too_long),
        cmocka_unit_test(test_silent_anvil_times_out),
        cmocka_unit_test(test_reconnects_after_anvil_restarts),
    };

    /* The client warns on failures; keep the test output readable. */
    log_init("test_anvil_client", 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
