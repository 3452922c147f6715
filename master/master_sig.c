/*
 * master_sig.c - master's signals: SIGHUP reload, SIGTERM/SIGINT stop,
 * SIGCHLD reaping.
 *
 * Signals arrive through lib/events (signalfd), so these handlers run from
 * the loop and may do real work.  A reload whose main.cf or master.cf does
 * not parse changes nothing: the error is logged and the running
 * configuration stays.  A stop closes every listener, sends SIGTERM to
 * every child, waits a bounded time, kills what is left, removes the pid
 * file and exits 0, so no process of the instance survives it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "master.h"
#include "params.h"

/* How long children get to leave after SIGTERM before SIGKILL. */
#define MASTER_STOP_GRACE_MS 5000

static void on_sigchld(int signo, void *ctx)
{
    master_reap();
}

static void on_sighup(int signo, void *ctx)
{
    struct strbuf *why = strbuf_new(128);
    struct mastercf *cf = NULL;

    if (master_stopping)
        return;
    if (conf_load(master_confdir, why) < 0) {
        log_error("reload failed, keeping the running configuration: %s", strbuf_str(why));
        strbuf_free(&why);
        return;
    }
    if (master_load_tables(&cf, true) < 0) {
        strbuf_free(&why);
        return;
    }
    if (var_maillog_file && *var_maillog_file) {
        if (log_set_file(var_maillog_file) < 0)
            log_error("reload: open maillog_file %s: %m", var_maillog_file);
    }
    log_info("reload -- version %s, configuration %s", var_mail_version, master_confdir);
    master_ent_reload(cf);
    strbuf_free(&why);
}

void master_stop(int signo)
{
    struct master_service *svc, *next;
    uint64_t deadline;

    if (signo > 0)
        log_info("terminating on signal %d", signo);
    master_stopping = true;
    for (svc = master_services; svc; svc = next) {
        next = svc->next;
        master_ent_event(svc, MASTER_EV_RETIRE);
        master_listen_close(svc);
        master_status_close(svc);
        master_ent_free(&svc);
    }
    master_services = NULL;
    master_spawn_signal_children(NULL, SIGTERM);

    /* SIGCHLD still arrives through the loop and reaps; bounded wait. */
    event_now_update();
    deadline = event_now() + MASTER_STOP_GRACE_MS;
    while (master_children_count() > 0 && event_now() < deadline) {
        event_loop(100);
        master_reap();
        event_now_update();
    }
    if (master_children_count() > 0) {
        log_warn("%d processes did not stop in %d ms: killing them", master_children_count(),
                 MASTER_STOP_GRACE_MS);
        master_spawn_signal_children(NULL, SIGKILL);
        /* SIGKILL cannot be ignored: each wait ends. */
        while (master_children != NULL) {
            struct master_child *c = master_children;
            int status;

            if (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
                continue;
            master_children = c->next;
            free(c->path);
            free(c);
        }
    }
    master_remove_pidfile();
    exit(0);
}

static void on_sigterm(int signo, void *ctx)
{
    master_stop(signo);
}

void master_sig_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    event_signal(SIGCHLD, on_sigchld, NULL);
    event_signal(SIGHUP, on_sighup, NULL);
    event_signal(SIGTERM, on_sigterm, NULL);
    event_signal(SIGINT, on_sigterm, NULL);
}
