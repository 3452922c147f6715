/*
 * test_mem.c - unit tests for lib/mem.c.
 *
 * The allocators return usable, independent memory; zero-size requests
 * still give a pointer to free; xcalloc zeroes; xrealloc keeps content;
 * the string helpers copy exactly.  An impossible allocation must end the
 * process with a fatal log line (checked in a child).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "mem.h"

/* Under AddressSanitizer an impossible malloc must return NULL (so mem.c
 * reports it) rather than abort inside the sanitizer. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void test_alloc(void **state)
{
    unsigned char *p = xmalloc(100), *z = xcalloc(10, 10);
    void *zero = xmalloc(0);

    memset(p, 0xab, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    p = xrealloc(p, 100000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 0xab);
    p = xreallocarray(p, 3, 7);
    assert_int_equal(p[20], 0xab);
    assert_non_null(zero);
    free(zero);
    free(p);
    free(z);
    p = xrealloc(NULL, 5);
    assert_non_null(p);
    free(p);
}

struct str_case {
    const char *in;
    size_t n;
    const char *dup;
    const char *ndup;
};

static const struct str_case str_cases[] = {
    { "", 0, "", "" },
    { "abc", 2, "abc", "ab" },
    { "abc", 3, "abc", "abc" },
    { "abc", 10, "abc", "abc" },
};

static void test_strings(void **state)
{
    for (size_t i = 0; i < sizeof(str_cases) / sizeof(str_cases[0]); i++) {
        char *d = xstrdup(str_cases[i].in), *n = xstrndup(str_cases[i].in, str_cases[i].n);

        assert_string_equal(d, str_cases[i].dup);
        assert_string_equal(n, str_cases[i].ndup);
        assert_ptr_not_equal(d, str_cases[i].in);
        free(d);
        free(n);
    }
    char *f = xasprintf("%s-%d-%05.1f", "q", 42, 3.14159);
    assert_string_equal(f, "q-42-003.1");
    free(f);
}

/* Run fn in a child with stderr on a pipe; returns its output and status. */
static void run_child(void (*fn)(void), char *out, size_t outlen, int *status)
{
    int p[2];
    pid_t pid;
    size_t got = 0;
    ssize_t n;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    while (got < outlen - 1 && (n = read(p[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(p[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
}

static void huge_alloc(void)
{
    log_init("test_mem", LOG_DEST_STDERR);
    /* More than any address space: malloc must fail. */
    (void)xmalloc(SIZE_MAX / 2);
}

static void huge_array(void)
{
    log_init("test_mem", LOG_DEST_STDERR);
    /* n * size overflows: refused, not wrapped. */
    (void)xreallocarray(NULL, SIZE_MAX / 2, 4);
}

static void test_oom_is_fatal(void **state)
{
    void (*fns[])(void) = { huge_alloc, huge_array };

    for (size_t i = 0; i < 2; i++) {
        char out[512];
        int status;

        run_child(fns[i], out, sizeof(out), &status);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        assert_non_null(strstr(out, "test_mem: fatal: out of memory"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_oom_is_fatal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
