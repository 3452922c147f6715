/*
 * authd_worker.c - password checks off the event loop.
 *
 * A password check can take long: bcrypt and yescrypt cost tens of
 * milliseconds by design, and a PAM module may wait on the network.  So
 * authd forks a few worker processes at start (after privileges are
 * settled, before it listens); authd_conn hands each check to an idle
 * worker over a socketpair and goes on serving other clients; the answer
 * comes back as an event.  Jobs wait in a FIFO when every worker is busy.
 *
 * Internal lines use the auth protocol's escaping and bounds:
 *   authd -> worker   V serial user password rip service
 *   worker -> authd   R serial result
 * A worker logs its own failures (same "backend(user,rip): ..." lines).
 * A worker that dies fails its job as temporary and is not replaced; when
 * none is left, checks run in the main process as before, with a warning.
 * Workers exit when authd goes away (EOF, or PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth_proto.h"
#include "authd.h"
#include "events.h"
#include "log.h"
#include "master_proto.h"
#include "mem.h"
#include "stream.h"

#define WORKERS_MAX 4

struct worker_job {
    struct worker_job *next;
    unsigned long serial;
    char *line;                 /* the request, wiped once sent */
    worker_done_fn *fn;         /* NULL once cancelled */
    void *ctx;
    struct worker *w;           /* worker running it, NULL while queued */
};

struct worker {
    pid_t pid;
    int fd;
    struct stream *s;
    struct strbuf *line;
    struct worker_job *job;     /* in flight, or NULL when idle */
    bool dead;
};

static struct worker workers[WORKERS_MAX];
static int worker_count;
static struct worker_job *queue_head, *queue_tail;
static unsigned long job_serial;

static void worker_readable(int fd, int events, void *ctx);
static void worker_dispatch(void);
static bool worker_any_alive(void);

static void free_line(char **p)
{
    if (*p) {
        explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

/* ---- the worker process ---- */

static void worker_serve(int fd)
{
    struct stream *s = stream_fdopen(fd);
    struct strbuf *line = strbuf_new(256), *out = strbuf_new(64), *why = strbuf_new(64);
    struct auth_proto_line l;
    int r;

    while ((r = stream_read_line(s, line, AUTH_PROTO_LINE_MAX)) == 1) {
        enum passdb_result res = PASSDB_TEMPFAIL;

        if (auth_proto_parse(&l, strbuf_str(line), strbuf_len(line), why) == 0
            && l.argc == 6 && strcmp(l.argv[0], "V") == 0) {
            res = passdb_verify_inline(l.argv[2], l.argv[3], l.argv[4], l.argv[5]);
            strbuf_reset(out);
            auth_proto_begin(out, "R");
            auth_proto_add(out, l.argv[1]);
            auth_proto_addf(out, "%d", (int)res);
            auth_proto_end(out);
            explicit_bzero(l.argv[3], strlen(l.argv[3]));
            stream_write(s, strbuf_str(out), strbuf_len(out));
            if (stream_flush(s) < 0)
                break;
        } else {
            log_warn("auth worker: malformed request from authd");
            break;
        }
        auth_proto_line_free(&l);
        explicit_bzero(line->data, line->size);
    }
    _exit(0);
}

/* The worker must not keep master's descriptors: the status socket
 * (SOCK_SEQPACKET, master_proto.h) and the listening sockets, or they
 * would stay open after authd died.  Anything else (log, tables) stays. */
static void worker_close_inherited(int keep)
{
    for (int fd = 3; fd < MASTER_LISTEN_FD + MASTER_LISTEN_MAX + 32; fd++) {
        int listening = 0, type = 0;
        socklen_t len = sizeof(listening), tlen = sizeof(type);

        if (fd == keep)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
            close(fd);
        else if (fd == MASTER_STATUS_FD
                 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0
                 && type == SOCK_SEQPACKET)
            close(fd);
    }
}

static int worker_spawn(struct worker *w)
{
    int sv[2];
    pid_t parent = getpid();

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_warn("auth worker: socketpair: %m");
        return -1;
    }
    switch (w->pid = fork()) {
    case -1:
        log_warn("auth worker: fork: %m");
        close(sv[0]);
        close(sv[1]);
        return -1;
    case 0:
        close(sv[0]);
        event_fork_reset();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0);
        signal(SIGTERM, SIG_DFL);
        worker_close_inherited(sv[1]);
        worker_serve(sv[1]);
        _exit(0);
    default:
        close(sv[1]);
        w->fd = sv[0];
        w->s = stream_fdopen(sv[0]);
        stream_set_nonblock(w->s, true);
        w->line = strbuf_new(64);
        w->job = NULL;
        w->dead = false;
        return 0;
    }
}

void worker_pool_start(int n)
{
    if (n > WORKERS_MAX)
        n = WORKERS_MAX;
    worker_count = 0;
    for (int i = 0; i < n; i++) {
        if (worker_spawn(&workers[worker_count]) == 0) {
            /* Always watched, so a worker that dies idle is noticed. */
            event_read(workers[worker_count].fd, worker_readable, &workers[worker_count]);
            worker_count++;
        }
    }
}

/* ---- the authd side ---- */

static void job_finish(struct worker_job *job, enum passdb_result res)
{
    if (job->fn)
        job->fn(job->ctx, res);
    free_line(&job->line);
    free(job);
}

static void worker_kill(struct worker *w, const char *why)
{
    struct worker_job *job = w->job;

    log_warn("auth worker %ld: %s; checking passwords in authd from now on if none is left",
             (long)w->pid, why);
    event_disable(w->fd);
    stream_close(&w->s);
    strbuf_free(&w->line);
    w->dead = true;
    w->job = NULL;
    if (job)
        job_finish(job, PASSDB_TEMPFAIL);
}

static void worker_readable(int fd, int events, void *ctx)
{
    struct worker *w = ctx;
    struct strbuf *why = strbuf_new(64);
    int r;

    while (!w->dead && (r = stream_read_line(w->s, w->line, 256)) != STREAM_AGAIN) {
        struct auth_proto_line l;
        unsigned long serial;
        char *end;

        if (r != 1) {
            worker_kill(w, r == 0 ? "exited" : "read error");
            break;
        }
        if (auth_proto_parse(&l, strbuf_str(w->line), strbuf_len(w->line), why) < 0
            || l.argc != 3 || strcmp(l.argv[0], "R") != 0 || w->job == NULL) {
            if (l.buf)
                auth_proto_line_free(&l);
            worker_kill(w, "sent a malformed answer");
            break;
        }
        serial = strtoul(l.argv[1], &end, 10);
        bool bad_serial = *end != 0 || serial != w->job->serial;
        long res = strtol(l.argv[2], NULL, 10);
        auth_proto_line_free(&l);
        if (bad_serial || res < PASSDB_OK || res > PASSDB_TEMPFAIL) {
            worker_kill(w, "answered another request");
            break;
        }
        struct worker_job *job = w->job;
        w->job = NULL;
        job_finish(job, (enum passdb_result)res);
    }
    strbuf_free(&why);
    worker_dispatch();
}

/* No worker left: run the queued checks here, in order. */
static void worker_drain_inline(void)
{
    struct strbuf *why = strbuf_new(64);

    while (queue_head != NULL) {
        struct worker_job *job = queue_head;
        struct auth_proto_line l;
        enum passdb_result res = PASSDB_TEMPFAIL;

        queue_head = job->next;
        if (queue_head == NULL)
            queue_tail = NULL;
        if (auth_proto_parse(&l, job->line, strlen(job->line), why) == 0) {
            if (l.argc == 6)
                res = passdb_verify_inline(l.argv[2], l.argv[3], l.argv[4], l.argv[5]);
            if (l.argc > 3)
                explicit_bzero(l.argv[3], strlen(l.argv[3]));
            auth_proto_line_free(&l);
        }
        job_finish(job, res);
    }
    strbuf_free(&why);
}

/* Give queued jobs to idle workers. */
static void worker_dispatch(void)
{
    for (int i = 0; i < worker_count && queue_head; i++) {
        struct worker *w = &workers[i];
        struct worker_job *job;

        if (w->dead || w->job)
            continue;
        job = queue_head;
        queue_head = job->next;
        if (queue_head == NULL)
            queue_tail = NULL;
        job->next = NULL;
        job->w = w;
        w->job = job;
        stream_write(w->s, job->line, strlen(job->line));
        free_line(&job->line);
        /* A few hundred bytes into an empty socket buffer: a short write
         * means the worker is gone. */
        if (stream_flush(w->s) != 0) {
            worker_kill(w, "does not take requests");
            continue;
        }
    }
    if (queue_head != NULL && !worker_any_alive())
        worker_drain_inline();
}

static bool worker_any_alive(void)
{
    for (int i = 0; i < worker_count; i++)
        if (!workers[i].dead)
            return true;
    return false;
}

void worker_verify(const char *user, const char *password, const char *rip,
                   const char *service, worker_done_fn *fn, void *ctx,
                   struct worker_job **job_r)
{
    struct worker_job *job;
    struct strbuf *line;

    if (!worker_any_alive()) {
        /* fn may free whatever holds job_r: set it first, touch it never after. */
        *job_r = NULL;
        fn(ctx, passdb_verify_inline(user, password, rip, service));
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->serial = ++job_serial;
    job->fn = fn;
    job->ctx = ctx;
    line = strbuf_new(128);
    auth_proto_begin(line, "V");
    auth_proto_addf(line, "%lu", job->serial);
    auth_proto_add(line, user);
    auth_proto_add(line, password);
    auth_proto_add(line, rip);
    auth_proto_add(line, service);
    auth_proto_end(line);
    job->line = strbuf_steal(&line);
    if (queue_tail)
        queue_tail->next = job;
    else
        queue_head = job;
    queue_tail = job;
    *job_r = job;
    worker_dispatch();
}

void worker_job_cancel(struct worker_job **jp)
{
    struct worker_job *job = *jp;

    if (job == NULL)
        return;
    *jp = NULL;
    if (job->w != NULL) {
        job->fn = NULL;         /* freed when the worker answers */
        return;
    }
    for (struct worker_job **pp = &queue_head; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    queue_tail = NULL;
    for (struct worker_job *j = queue_head; j; j = j->next)
        queue_tail = j;
    free_line(&job->line);
    free(job);
}
