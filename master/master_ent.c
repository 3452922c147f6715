/*
 * master_ent.c - services from master.cf: creation, reload, lifecycle.
 *
 * Each master.cf entry becomes a struct master_service.  On reload the old
 * and new tables are compared entry by entry: a new entry starts, a
 * removed one closes its listener and its children are terminated, a
 * changed one (or every one, when main.cf changed) gets fresh children,
 * and a listener is re-created only when its address changed, so clients
 * of an unchanged service never see a refused connection.
 *
 * The lifecycle is the state x event table below, with the time each
 * state began and a "no spawn before" timestamp for throttling, as in
 * s6-supervise; transitions are the only place a state changes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "master.h"
#include "mem.h"
#include "params.h"

struct master_transition {
    enum master_state next;
    void (*action)(struct master_service *svc);
};

static void act_throttle(struct master_service *svc);
static void act_unthrottle(struct master_service *svc);
static void act_retire(struct master_service *svc);

static const struct master_transition transitions[MASTER_SVC_NSTATES][MASTER_EV_NEVENTS] = {
    [MASTER_SVC_ACTIVE] = {
        [MASTER_EV_START_FAILED] = { MASTER_SVC_THROTTLED, act_throttle },
        [MASTER_EV_THROTTLE_END] = { MASTER_SVC_ACTIVE, NULL },
        [MASTER_EV_RETIRE] = { MASTER_SVC_RETIRED, act_retire },
    },
    [MASTER_SVC_THROTTLED] = {
        [MASTER_EV_START_FAILED] = { MASTER_SVC_THROTTLED, NULL },
        [MASTER_EV_THROTTLE_END] = { MASTER_SVC_ACTIVE, act_unthrottle },
        [MASTER_EV_RETIRE] = { MASTER_SVC_RETIRED, act_retire },
    },
    [MASTER_SVC_RETIRED] = {
        [MASTER_EV_START_FAILED] = { MASTER_SVC_RETIRED, NULL },
        [MASTER_EV_THROTTLE_END] = { MASTER_SVC_RETIRED, NULL },
        [MASTER_EV_RETIRE] = { MASTER_SVC_RETIRED, NULL },
    },
};

/* The main.cf values of the last (re)load, to see whether a reload
 * changed main.cf (then every service gets fresh children). */
static char *conf_snapshot_last;

const char *master_state_name(enum master_state st)
{
    switch (st) {
    case MASTER_SVC_ACTIVE: return "active";
    case MASTER_SVC_THROTTLED: return "throttled";
    case MASTER_SVC_RETIRED: return "retired";
    case MASTER_SVC_NSTATES: break;
    }
    return "unknown";
}

void master_ent_event(struct master_service *svc, enum master_event ev)
{
    const struct master_transition *t = &transitions[svc->state][ev];
    enum master_state old = svc->state;

    svc->state = t->next;
    if (t->next != old) {
        event_now_update();
        svc->state_since = event_now();
        log_debug("service %s: %s -> %s", svc->label, master_state_name(old),
                  master_state_name(t->next));
    }
    if (t->action)
        t->action(svc);
    master_avail_update(svc);
}

static void throttle_end(void *ctx)
{
    struct master_service *svc = ctx;

    svc->throttle_timer = NULL;
    master_ent_event(svc, MASTER_EV_THROTTLE_END);
}

static void act_throttle(struct master_service *svc)
{
    log_warn("%s: bad command startup -- throttling", svc->path);
    event_now_update();
    svc->throttle_until = event_now() + (uint64_t)var_service_throttle_time * 1000;
    timer_cancel(&svc->throttle_timer);
    svc->throttle_timer = timer_add(var_service_throttle_time * 1000L, throttle_end, svc);
}

static void act_unthrottle(struct master_service *svc)
{
    svc->throttle_until = 0;
    /* A process died: replace it now (this is what spaces a crash loop
     * by service_throttle_time). */
    if (svc->replace_pid > 0)
        master_spawn(svc);
}

static void act_retire(struct master_service *svc)
{
    timer_cancel(&svc->throttle_timer);
    timer_cancel(&svc->wakeup_timer);
}

/* What identifies a listener besides the entry: for a bare inet port the
 * interface and protocol lists, for the others the path. */
static char *listen_key(const struct mastercf_entry *e)
{
    if (e->type == MASTERCF_INET)
        return xasprintf("inet|%s|%s|%s|%s", e->host ? e->host : "", e->port,
                         e->host ? "" : var_inet_interfaces, e->host ? "" : var_inet_protocols);
    return xasprintf("%s|%s/%s/%s", mastercf_type_name(e->type), var_queue_directory,
                     e->is_private ? "private" : "public", e->name);
}

/* Derived fields that depend on the entry and main.cf. */
static void service_configure(struct master_service *svc, const struct mastercf_entry *e)
{
    svc->ent = e;
    free(svc->label);
    free(svc->path);
    free(svc->sock_path);
    svc->label = xasprintf("%s/%s", e->name, mastercf_type_name(e->type));
    svc->path = xasprintf("%s/%s", var_daemon_directory, e->command);
    svc->sock_path = e->type == MASTERCF_INET ? NULL :
        xasprintf("%s/%s/%s", var_queue_directory, e->is_private ? "private" : "public",
                  e->name);
    svc->maxproc = e->maxproc < 0 ? (int)var_default_process_limit : e->maxproc;
    if (e->wakeup > 0 && e->type == MASTERCF_INET)
        log_warn("%s: wakeup is ignored for inet services", svc->label);
}

static struct master_service *service_new(const struct mastercf_entry *e)
{
    struct master_service *svc = xcalloc(1, sizeof(*svc));

    svc->status_fd[0] = svc->status_fd[1] = -1;
    svc->state = MASTER_SVC_ACTIVE;
    event_now_update();
    svc->state_since = event_now();
    service_configure(svc, e);
    svc->listen_key = listen_key(e);
    return svc;
}

/* Listener, status socket, wakeups.  -1 with why when it cannot listen. */
static int service_start(struct master_service *svc, struct strbuf *why)
{
    if (master_listen_open(svc, why) < 0)
        return -1;
    if (master_status_open(svc) < 0) {
        master_listen_close(svc);
        strbuf_printf(why, "%s: cannot create the status socket", svc->label);
        return -1;
    }
    master_wakeup_arm(svc);
    master_avail_update(svc);
    return 0;
}

void master_ent_free(struct master_service **svcp)
{
    struct master_service *svc = *svcp;

    if (svc == NULL)
        return;
    timer_cancel(&svc->throttle_timer);
    timer_cancel(&svc->wakeup_timer);
    master_spawn_orphan_children(svc);
    free(svc->label);
    free(svc->path);
    free(svc->sock_path);
    free(svc->listen_key);
    free(svc);
    *svcp = NULL;
}

static char *conf_snapshot(void)
{
    struct strbuf *sb = strbuf_new(4096);

    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        switch (d->type) {
        case PARAM_STR:
        case PARAM_LIST: {
            const char *v = *(char **)d->var;
            strbuf_appendf(sb, "%s=%s\n", d->name, v ? v : "");
            break;
        }
        case PARAM_INT:
        case PARAM_TIME:
        case PARAM_SIZE:
            strbuf_appendf(sb, "%s=%ld\n", d->name, *(long *)d->var);
            break;
        case PARAM_BOOL:
            strbuf_appendf(sb, "%s=%d\n", d->name, *(bool *)d->var);
            break;
        }
    }
    return strbuf_steal(&sb);
}

void master_ent_start(void)
{
    struct master_service **tail = &master_services;
    struct strbuf *why = strbuf_new(128);

    free(conf_snapshot_last);
    conf_snapshot_last = conf_snapshot();
    for (size_t i = 0; i < master_cf->count; i++) {
        struct master_service *svc = service_new(&master_cf->entries[i]);

        if (service_start(svc, why) < 0)
            log_fatal("%s", strbuf_str(why));
        *tail = svc;
        tail = &svc->next;
    }
    strbuf_free(&why);
}

/* Stop a service for good: no listener, children told to go. */
static void service_remove(struct master_service *svc)
{
    master_ent_event(svc, MASTER_EV_RETIRE);
    master_listen_close(svc);
    master_spawn_signal_children(svc, SIGTERM);
    master_status_close(svc);
    log_info("service %s removed", svc->label);
    master_ent_free(&svc);
}

void master_ent_reload(struct mastercf *newcf)
{
    struct master_service *old = master_services, *svc, *next;
    struct master_service **tail = &master_services;
    struct strbuf *why = strbuf_new(128);
    char *snap = conf_snapshot();
    bool conf_changed = strcmp(snap, conf_snapshot_last) != 0;

    free(conf_snapshot_last);
    conf_snapshot_last = snap;
    master_services = NULL;

    /* Old services: keep (maybe with new children or a new listener),
     * or remove.  svc->listen_key was computed with the old main.cf. */
    for (svc = old; svc; svc = next) {
        const struct mastercf_entry *e = mastercf_find(newcf, svc->ent->name, svc->ent->type);
        char *key_new, *key_old = svc->listen_key;

        next = svc->next;
        svc->next = NULL;
        if (e == NULL) {
            service_remove(svc);
            continue;
        }
        key_new = listen_key(e);
        bool same = mastercf_entry_same(svc->ent, e);
        bool relisten = !mastercf_entry_same_listener(svc->ent, e) ||
                        strcmp(key_old, key_new) != 0;

        if (!same || conf_changed || relisten) {
            /* Fresh children with the new settings; idle ones leave now,
             * busy ones when their client is done. */
            master_status_close(svc);
            if (relisten)
                master_listen_close(svc);
            timer_cancel(&svc->wakeup_timer);
            service_configure(svc, e);
            free(svc->listen_key);
            svc->listen_key = key_new;
            if (svc->state == MASTER_SVC_THROTTLED)
                master_ent_event(svc, MASTER_EV_THROTTLE_END);
            svc->used = false;
            if ((relisten && master_listen_open(svc, why) < 0) ||
                master_status_open(svc) < 0) {
                log_error("reload: %s", strbuf_len(why) ? strbuf_str(why) : svc->label);
                strbuf_reset(why);
                service_remove(svc);
                continue;
            }
            if (!same)
                log_info("service %s changed: restarting its processes", svc->label);
            master_wakeup_arm(svc);
            master_avail_update(svc);
        } else {
            svc->ent = e;
            free(key_new);
        }
        *tail = svc;
        tail = &svc->next;
    }

    /* New services. */
    for (size_t i = 0; i < newcf->count; i++) {
        const struct mastercf_entry *e = &newcf->entries[i];
        bool known = false;

        for (svc = master_services; svc && !known; svc = svc->next)
            known = svc->ent == e;
        if (known)
            continue;
        svc = service_new(e);
        if (service_start(svc, why) < 0) {
            log_error("reload: %s", strbuf_str(why));
            strbuf_reset(why);
            master_ent_free(&svc);
            continue;
        }
        log_info("service %s added", svc->label);
        *tail = svc;
        tail = &svc->next;
    }
    mastercf_free(&master_cf);
    master_cf = newcf;
    strbuf_free(&why);
}
