/*
 * master.c - the facteur supervisor: main, pid lock, daemon start.
 *
 * master [-c confdir] [-d] [-t] [-w] [-v]
 *
 * Reads main.cf and master.cf, takes the lock on
 * queue_directory/process_id_directory/master.pid (one master per queue
 * directory), detaches (unless -d) while the starting process waits until
 * every listener is open, then supervises the services (master_ent.c,
 * master_spawn.c) and handles signals (master_sig.c).  Run as root it
 * gives children -u and -z as master.cf says; run by anyone else every
 * process runs as that user without chroot.
 *
 * Relative paths in main.cf are taken from the directory master was
 * started in: master does not change directory, and its children inherit
 * that directory before they move into the queue directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "events.h"
#include "fileops.h"
#include "log.h"
#include "master.h"
#include "mem.h"
#include "params.h"
#include "privs.h"

/* How long the starting process waits for the daemon to be ready. */
#define MASTER_START_WAIT_MS 30000

const char *master_confdir;
bool master_verbose;
struct mastercf *master_cf;
struct master_service *master_services;
struct master_child *master_children;
bool master_root;
bool master_stopping;

static char *master_pid_path;
static int master_pid_fd = -1;

void master_remove_pidfile(void)
{
    if (master_pid_path != NULL && master_pid_fd >= 0)
        unlink(master_pid_path);
}

/* master.cf of the configuration directory.  On error: fatal at start,
 * logged (and -1) on reload. */
int master_load_tables(struct mastercf **cf_r, bool log_errors)
{
    struct strbuf *why = strbuf_new(128);
    char *path = xasprintf("%s/master.cf", master_confdir);
    int rc = mastercf_load(path, cf_r, why);

    if (rc < 0) {
        if (!log_errors)
            log_fatal("%s", strbuf_str(why));
        log_error("reload failed, keeping the running configuration: %s", strbuf_str(why));
    }
    free(path);
    strbuf_free(&why);
    return rc;
}

static char *pid_path(void)
{
    if (var_process_id_directory[0] == '/')
        return xasprintf("%s/master.pid", var_process_id_directory);
    return xasprintf("%s/%s/master.pid", var_queue_directory, var_process_id_directory);
}

/* -t: exit 0 when a master holds the lock, else 1. */
static int master_test_running(void)
{
    char *path = pid_path();
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int running = 0;

    free(path);
    if (fd < 0)
        return 1;
    if (fileops_lock(fd, FILEOPS_LOCK_SHARED, NULL) < 0 && errno == EAGAIN)
        running = 1;
    close(fd);
    return running ? 0 : 1;
}

/* Take the pid lock, or say who holds it.  The lock belongs to the open
 * file (lib/fileops), so it survives the fork in master_detach(). */
static void master_lock(void)
{
    struct strbuf *why = strbuf_new(128);
    char *dir;
    pid_t holder;

    master_pid_path = pid_path();
    dir = xstrdup(master_pid_path);
    *strrchr(dir, '/') = 0;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        log_fatal("mkdir %s: %m", dir);
    free(dir);
    if ((master_pid_fd = fileops_pidlock(master_pid_path, &holder, why)) < 0) {
        if (errno == EAGAIN)
            log_fatal("the facteur mail system is already running (%s)", strbuf_str(why));
        log_fatal("%s", strbuf_str(why));
    }
    strbuf_free(&why);
}

static void master_write_pid(void)
{
    struct strbuf *why = strbuf_new(64);

    if (fileops_pidlock_update(master_pid_fd, why) < 0 || fsync(master_pid_fd) < 0)
        log_fatal("%s: %s", master_pid_path, strbuf_len(why) ? strbuf_str(why) : "fsync failed");
    strbuf_free(&why);
}

/* Detach from the terminal.  The parent waits (bounded) for one byte on
 * ready_fd[0]: the daemon sends it once it listens; the parent exits 0,
 * or 1 if the daemon died first.  Returns the write end in the daemon. */
static int master_detach(void)
{
    int ready[2];
    struct pollfd pfd;
    char c;
    pid_t pid;

    if (pipe2(ready, O_CLOEXEC) < 0)
        log_fatal("pipe: %m");
    if ((pid = fork()) < 0)
        log_fatal("fork: %m");
    if (pid > 0) {
        close(ready[1]);
        pfd.fd = ready[0];
        pfd.events = POLLIN;
        if (poll(&pfd, 1, MASTER_START_WAIT_MS) == 1 && read(ready[0], &c, 1) == 1)
            _exit(0);
        _exit(1);
    }
    close(ready[0]);
    if (setsid() < 0)
        log_fatal("setsid: %m");
    return ready[1];
}

static void master_quiet_stdio(void)
{
    int fd = open("/dev/null", O_RDWR);

    if (fd < 0)
        log_fatal("open /dev/null: %m");
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

/* Children get only the environment import_environment names ("NAME"
 * keeps the caller's value, "NAME=value" sets one): whoever starts master
 * as root must not be able to steer the daemons through it. */
static void master_clean_env(void)
{
    char **items = conf_list_split(var_import_environment);
    size_t n = 0;
    char **names, **values;

    while (items[n])
        n++;
    names = xcalloc(n + 1, sizeof(char *));
    values = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        const char *v;

        if (eq != NULL) {
            names[i] = xstrndup(items[i], (size_t)(eq - items[i]));
            values[i] = xstrdup(eq + 1);
        } else {
            names[i] = xstrdup(items[i]);
            values[i] = (v = getenv(items[i])) != NULL ? xstrdup(v) : NULL;
        }
    }
    if (clearenv() != 0)
        log_fatal("clearenv failed");
    for (size_t i = 0; i < n; i++) {
        if (values[i] != NULL && *names[i] && setenv(names[i], values[i], 1) < 0)
            log_warn("import_environment %s: %m", names[i]);
        free(names[i]);
        free(values[i]);
    }
    free(names);
    free(values);
    conf_list_free(&items);
}

static void usage(void)
{
    log_fatal("usage: master [-c config_dir] [-d] [-t] [-w] [-v]");
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    bool foreground = false, test_only = false;
    struct strbuf *why = strbuf_new(128);
    char real[PATH_MAX];
    int dest, ready_fd = -1, c;

    log_init("master", LOG_DEST_STDERR);
    while ((c = getopt(argc, argv, "c:dtwv")) != -1) {
        switch (c) {
        case 'c':
            confdir = optarg;
            break;
        case 'd':
            foreground = true;
            break;
        case 't':
            test_only = true;
            break;
        case 'w':
            /* Waiting until the daemon is ready is what master always
             * does when it detaches; kept for Postfix compatibility. */
            break;
        case 'v':
            master_verbose = true;
            log_set_verbose(true);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();

    /* Stray descriptors 0-2 closed by the caller would let a socket land
     * there; make sure they are taken. */
    while ((c = open("/dev/null", O_RDWR)) >= 0 && c <= 2)
        ;
    if (c > 2)
        close(c);

    if (conf_load(confdir, why) < 0)
        log_fatal("%s", strbuf_str(why));
    master_confdir = xstrdup(realpath(conf_dir(), real) ? real : conf_dir());
    if (test_only)
        return master_test_running();

    master_root = privs_is_root();
    master_clean_env();
    dest = LOG_DEST_STDERR | LOG_DEST_SYSLOG;
    log_init("master", dest);
    if (var_maillog_file && *var_maillog_file) {
        if (log_set_file(var_maillog_file) < 0)
            log_fatal("open maillog_file %s: %m", var_maillog_file);
        dest = LOG_DEST_STDERR | LOG_DEST_FILE;
        log_set_dest(dest);
    }
    log_set_verbose(master_verbose);
    master_load_tables(&master_cf, false);
    if (master_root) {
        uid_t uid;
        gid_t gid;
        if (privs_user_lookup(var_mail_owner, &uid, &gid, why) < 0)
            log_fatal("mail_owner: %s", strbuf_str(why));
        if (uid == 0)
            log_fatal("mail_owner %s must not be a privileged user", var_mail_owner);
    }
    master_listen_dirs();
    master_lock();
    if (!foreground)
        ready_fd = master_detach();
    master_write_pid();
    log_set_fatal_hook(master_remove_pidfile);
    umask(022);

    master_sig_init();
    master_ent_start();
    log_info("daemon started -- version %s, configuration %s", var_mail_version,
             master_confdir);
    if (ready_fd >= 0) {
        if (write(ready_fd, "R", 1) != 1)
            log_warn("cannot tell the starting process we are ready: %m");
        close(ready_fd);
        master_quiet_stdio();
        log_set_dest(dest & ~LOG_DEST_STDERR);
    }
    strbuf_free(&why);
    for (;;)
        event_loop(-1);
}
