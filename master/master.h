/*
 * master.h - master's shared state: services, children, lifecycle.
 *
 * One struct master_service per master.cf entry; each holds its listening
 * descriptors, the master end of its status socket, its children counts
 * and its lifecycle state (a small state table in master_ent.c with
 * timestamps: when the state began, and "no spawn before" for throttling).
 * Children are in one list, each tied to the service generation it was
 * started for, so a reload that restarts a service does not confuse the
 * old children's exits with the new ones.
 */
#ifndef FACTEUR_MASTER_H
#define FACTEUR_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "master_proto.h"
#include "mastercf.h"

/* Lifecycle states of a service. */
enum master_state {
    MASTER_SVC_ACTIVE,      /* listening; spawns on demand */
    MASTER_SVC_THROTTLED,   /* failed at startup: no spawn until throttle_until */
    MASTER_SVC_RETIRED,     /* removed or replaced: no spawn, children leaving */
    MASTER_SVC_NSTATES
};

/* Events that move a service between states. */
enum master_event {
    MASTER_EV_START_FAILED, /* a child died abnormally before serving */
    MASTER_EV_THROTTLE_END, /* the throttle time has passed */
    MASTER_EV_RETIRE,       /* reload removed or changed it, or master stops */
    MASTER_EV_NEVENTS
};

/* Why master watches a service's listening descriptors. */
enum master_watch {
    MASTER_WATCH_NONE,      /* an idle child will accept, or no spawn allowed */
    MASTER_WATCH_SPAWN,     /* a client starts a process */
    MASTER_WATCH_LIMIT,     /* at the process limit: warn that clients wait */
};

struct master_service {
    const struct mastercf_entry *ent;   /* borrowed from master_cf */
    char *label;                        /* "smtp/inet", for logs */
    char *path;                         /* daemon_directory/command */
    char *sock_path;                    /* unix/pass/fifo: socket or FIFO path */
    char *listen_key;                   /* address + what it depends on */
    int maxproc;                        /* resolved: 0 = unlimited */
    int listen_fd[MASTER_LISTEN_MAX];
    int nlisten;
    enum master_watch watching;         /* what the listen fds are watched for */
    int status_fd[2];                   /* [0] master end, [1] children's end */
    unsigned generation;                /* bumped when children are retired */
    int total, busy;                    /* children of this generation */
    int old_total;                      /* earlier generations still alive */
    bool used;                          /* a child has taken a client */
    enum master_state state;
    uint64_t state_since;               /* ms, event_now() */
    uint64_t throttle_until;            /* ms: no spawn before */
    uint64_t limit_warned;              /* ms: last process-limit warning */
    pid_t replace_pid;                  /* died abnormally; replacement pending */
    struct timer *throttle_timer;
    struct timer *wakeup_timer;
    struct master_service *next;
};

struct master_child {
    pid_t pid;
    char *path;                         /* for exit messages */
    struct master_service *svc;         /* NULL once its service is gone */
    unsigned generation;
    bool busy;
    bool used;                          /* has ever reported busy */
    bool signalled;                     /* master sent it a signal */
    uint64_t started;                   /* ms */
    struct master_child *next;
};

/* master.c */
extern const char *master_confdir;      /* absolute, passed to children */
extern bool master_verbose;
extern struct mastercf *master_cf;
extern struct master_service *master_services;
extern struct master_child *master_children;
extern bool master_root;                /* started as root */
extern bool master_stopping;
void master_remove_pidfile(void);
int master_load_tables(struct mastercf **cf_r, bool log_errors);

/* master_ent.c: services from master.cf, reload, lifecycle table. */
void master_ent_start(void);
void master_ent_reload(struct mastercf *newcf);
void master_ent_event(struct master_service *svc, enum master_event ev);
void master_ent_free(struct master_service **svcp);
const char *master_state_name(enum master_state st);

/* master_listen.c */
int master_listen_open(struct master_service *svc, struct strbuf *why);
void master_listen_close(struct master_service *svc);
void master_listen_dirs(void);

/* master_spawn.c */
void master_spawn(struct master_service *svc);
void master_spawn_orphan_children(struct master_service *svc);
int master_status_open(struct master_service *svc);
void master_status_close(struct master_service *svc);
void master_avail_update(struct master_service *svc);
void master_wakeup_arm(struct master_service *svc);
void master_spawn_signal_children(struct master_service *svc, int signo);
int master_children_count(void);
void master_reap(void);

/* master_sig.c */
void master_sig_init(void);
void master_stop(int signo);

#endif
