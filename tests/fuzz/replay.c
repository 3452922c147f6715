/*
 * replay.c - a main() that runs a fuzz target over stored inputs.
 *
 * Linked with each tests/fuzz/fuzz_<parser>.c instead of libFuzzer, so
 * `make check` (and check-asan) replays every seed and every crash found
 * so far through the real parser.  Each argument is a file, or a directory
 * whose regular files (not recursive; dot files skipped) are inputs, read
 * in sorted order.  A crash or sanitizer report is the failure; otherwise
 * it prints "replayed N inputs" and exits 0.  An unreadable argument exits
 * 2.  LLVMFuzzerInitialize is called first when the target defines it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Seeds are small; a file larger than this is not a seed. */
#define REPLAY_MAX_INPUT (64UL * 1024 * 1024)

static int replay_file(const char *path, size_t *count)
{
    struct stat st;
    uint8_t *buf;
    size_t got = 0;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: not a regular file of at most %lu bytes\n", path,
                REPLAY_MAX_INPUT);
        close(fd);
        return -1;
    }
    /* An exact-size allocation, so ASan catches a read one past the end. */
    buf = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        close(fd);
        return -1;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    (*count)++;
    return 0;
}

static int replay_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, size_t *count)
{
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, size = 0;
    int rc = 0;
    DIR *d;

    d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == size) {
            size = size ? size * 2 : 64;
            char **nn = realloc(names, size * sizeof(*names));
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if ((names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2)) == NULL) {
            rc = -1;
            break;
        }
        sprintf(names[n], "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), replay_name_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && replay_file(names[i], count) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;

    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 2;
            continue;
        }
        if ((S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i], &count)) < 0)
            rc = 2;
    }
    printf("replayed %zu inputs\n", count);
    return rc;
}
