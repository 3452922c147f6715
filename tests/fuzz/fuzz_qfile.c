/*
 * fuzz_qfile.c - libFuzzer target for the queue file reader.
 *
 * Writes the input to an anonymous memory file (memfd), walks its raw
 * records with qfile_walk() (facteur-cat's path), and opens it with
 * qfile_open_fd(), the entry point qfile_open() uses; on success walks the
 * envelope, reads the whole content back in odd-sized pieces, checks its
 * length against the envelope, and flips a recipient's done flag.  Every
 * descriptor and allocation is released before returning.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qfile.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_record(int type, off_t off, const unsigned char *data, uint32_t len, void *ctx)
{
    size_t *n = ctx;

    if (data == NULL && len <= QFILE_CHUNK_MAX)
        __builtin_trap();
    (*n)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf *why = strbuf_new(64);
    struct qfile *qf;
    bool corrupt;
    char buf[1000];
    uint64_t total = 0;
    ssize_t n;
    int fd = memfd_create("fuzz_qfile", MFD_CLOEXEC);

    if (fd < 0)
        __builtin_trap();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        __builtin_trap();
    size_t nrec = 0;
    if (qfile_walk(fd, count_record, &nrec, why) != 0 && strbuf_len(why) == 0)
        __builtin_trap();
    qf = qfile_open_fd(fd, QFILE_OPEN_RDWR, &corrupt, why);
    if (qf == NULL) {
        if (!corrupt || strbuf_len(why) == 0)
            __builtin_trap();
        strbuf_free(&why);
        return 0;
    }
    const struct qfile_env *env = qfile_env(qf);
    if (env->nrcpt == 0 || env->nrcpt > QFILE_RCPT_MAX || env->sender == NULL)
        __builtin_trap();
    for (size_t i = 0; i < env->nrcpt; i++)
        if (strlen(env->rcpts[i].addr) == 0 || env->rcpts[i].status_off >= (off_t)size)
            __builtin_trap();
    for (size_t i = 0; i < env->nattr; i++)
        if (qfile_attr(qf, env->attrs[i].name) != env->attrs[i].value)
            __builtin_trap();
    for (size_t piece = 1; (n = qfile_content_read(qf, buf, piece, why)) > 0; piece = piece % 997 + 1)
        total += (uint64_t)n;
    if (n < 0 || total != env->content_size)
        __builtin_trap();
    if (qfile_rcpt_mark(qf, 0, QFILE_RCPT_SENT, why) < 0 || env->rcpts[0].status != QFILE_RCPT_SENT)
        __builtin_trap();
    (void)qfile_all_done(qf);
    qfile_close(&qf);
    strbuf_free(&why);
    return 0;
}
