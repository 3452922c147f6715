/*
 * facteur.c - the control command: facteur [-c DIR] [-v] start|stop|reload|status|check|flush
 *
 * The counterpart of postfix(1).  It reads main.cf and master.cf, checks and
 * (re)creates the queue directory tree, starts master (which daemonizes and
 * writes $queue_directory/pid/master.pid), and signals it afterwards:
 * SIGTERM to stop, SIGHUP to reload.  Every wait is bounded.
 *
 * Trust: the configuration is the administrator's; the pid file is read
 * with a length bound and its pid is only believed when that process is
 * alive and runs a program named "master".  Run as root it creates the spool
 * with Postfix's owners and modes; run as a normal user everything belongs
 * to that user (local mode, as `make run` and the tests use it).
 *
 * Messages go to stderr (and syslog, and maillog_file when set), so the
 * administrator sees exactly what is wrong: "file, line N: ..." for the
 * configuration, one line per problem in the spool.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "fileops.h"
#include "log.h"
#include "mastercf.h"
#include "mem.h"
#include "params.h"
#include "queue_scan.h"
#include "strbuf.h"

#define START_WAIT_MS 30000     /* master -w plus pid file */
#define STOP_WAIT_MS 60000      /* master waits for its children first */
#define POLL_MS 50
#define PID_FILE_MAX 64         /* bytes read from master.pid */

/* One queue subdirectory: who owns it and with which mode. */
enum spool_owner { OWN_ROOT, OWN_MAIL };
struct spool_dir {
    const char *name;
    enum spool_owner owner;
    bool setgid_group;          /* group is setgid_group (facteur-drop) */
    mode_t mode;
};

static const struct spool_dir spool_dirs[] = {
    {"maildrop", OWN_MAIL, true, 01730},
    {"incoming", OWN_MAIL, false, 0700},
    {"active", OWN_MAIL, false, 0700},
    {"deferred", OWN_MAIL, false, 0700},
    {"hold", OWN_MAIL, false, 0700},
    {"corrupt", OWN_MAIL, false, 0700},
    {"defer", OWN_MAIL, false, 0700},
    {"private", OWN_MAIL, false, 0700},
    {"public", OWN_MAIL, true, 0710},
    {"pid", OWN_ROOT, false, 0755},
};

/* Who the spool should belong to, resolved once by check_accounts(). */
struct owners {
    bool root;                  /* we run as root: owners are enforced */
    uid_t mail_uid;
    gid_t mail_gid;
    gid_t setgid_gid;
};

static const char *confdir;
static char *confdir_abs;

static void usage(void)
{
    fprintf(stderr, "usage: facteur [-c config_dir] [-v] start|stop|reload|status|check|flush\n");
    exit(2);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- master's pid file ------------------------------------------------ */

static char *pid_file_path(void)
{
    return xasprintf("%s/pid/master.pid", var_queue_directory);
}

/* A process counts as alive unless it is gone or a zombie. */
static bool pid_alive(pid_t pid)
{
    char path[64];
    char buf[512];
    ssize_t n;
    int fd;
    char *close_paren;

    if (kill(pid, 0) < 0 && errno != EPERM)
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno != ENOENT;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    /* "pid (comm) S ...": the state follows the last ')'. */
    if ((close_paren = strrchr(buf, ')')) == NULL || close_paren[1] == 0)
        return true;
    return close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* True when pid runs a program named master (a stale pid file may name
 * a pid that an unrelated process has since taken). */
static bool pid_is_master(pid_t pid)
{
    char path[64];
    char buf[PATH_MAX];
    ssize_t n;
    int fd;
    const char *base;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return true;            /* cannot tell: trust the pid file */
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;                 /* argv[0] ends at the first NUL */
    base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    return strcmp(base, "master") == 0;
}

/* The pid of the running master, or 0. */
static pid_t master_running(void)
{
    char *path = pid_file_path();
    struct strbuf *text = strbuf_new(PID_FILE_MAX);
    const char *p;
    char *end;
    long pid = 0;

    /* Postfix's format, "%10d\n"; anything else is no master of ours. */
    if (fileops_read_file(path, text, PID_FILE_MAX, NULL) == 0) {
        p = strbuf_str(text);
        errno = 0;
        pid = strtol(p, &end, 10);
        if (errno || end == p || pid <= 1 || pid > INT_MAX)
            pid = 0;
        else
            end += strspn(end, " \t\n");
        if (pid != 0 && *end != 0)
            pid = 0;
    }
    strbuf_free(&text);
    free(path);
    if (pid == 0 || !pid_alive((pid_t)pid) || !pid_is_master((pid_t)pid))
        return 0;
    return (pid_t)pid;
}

/* ---- check ------------------------------------------------------------ */

static int check_accounts(struct owners *own)
{
    const char *user = var_mail_owner;
    const char *group = var_setgid_group;
    struct passwd *pw;
    struct group *gr;
    int problems = 0;

    own->root = (geteuid() == 0);
    own->mail_uid = geteuid();
    own->mail_gid = getegid();
    own->setgid_gid = getegid();
    if (!own->root)
        return 0;
    if ((pw = getpwnam(user)) == NULL) {
        log_error("mail_owner: user \"%s\" does not exist (create it: "
                  "useradd --system --user-group --home-dir /nonexistent "
                  "--shell /usr/sbin/nologin %s)", user, user);
        problems++;
    } else if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        log_error("mail_owner: user \"%s\" has uid or gid 0: it must be an "
                  "unprivileged account", user);
        problems++;
    } else {
        own->mail_uid = pw->pw_uid;
        own->mail_gid = pw->pw_gid;
    }
    if ((gr = getgrnam(group)) == NULL) {
        log_error("setgid_group: group \"%s\" does not exist (create it: "
                  "groupadd --system %s)", group, group);
        problems++;
    } else if (gr->gr_gid == 0) {
        log_error("setgid_group: group \"%s\" has gid 0", group);
        problems++;
    } else if (pw != NULL && gr->gr_gid == own->mail_gid) {
        log_error("setgid_group \"%s\" must not be the primary group of mail_owner \"%s\"",
                  group, user);
        problems++;
    } else {
        own->setgid_gid = gr->gr_gid;
    }
    return problems;
}

/* Create dir if missing (with owner and mode), else verify them.
 * Returns the number of problems reported. */
static int check_dir(const char *path, uid_t uid, gid_t gid, bool check_gid, mode_t mode,
                     const struct owners *own)
{
    struct stat st;
    int problems = 0;

    if (lstat(path, &st) < 0) {
        if (errno != ENOENT) {
            log_error("%s: %m", path);
            return 1;
        }
        if (mkdir(path, 0700) < 0) {
            log_error("cannot create missing directory %s: %m", path);
            return 1;
        }
        /* chown before chmod: chown clears the set-id bits. */
        if (own->root && chown(path, uid, gid) < 0) {
            log_error("chown %s: %m", path);
            return 1;
        }
        if (chmod(path, mode) < 0) {
            log_error("chmod %s: %m", path);
            return 1;
        }
        log_warn("created missing directory %s (mode %04o)", path, (unsigned)mode);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error("%s is not a directory%s", path,
                  S_ISLNK(st.st_mode) ? " (a symbolic link is not allowed here)" : "");
        return 1;
    }
    if ((st.st_mode & 07777) != mode) {
        log_error("%s has mode %04o; it must be %04o (chmod %04o %s)", path,
                  (unsigned)(st.st_mode & 07777), (unsigned)mode, (unsigned)mode, path);
        problems++;
    }
    if (own->root && st.st_uid != uid) {
        struct passwd *pw = getpwuid(uid);
        log_error("%s is owned by uid %ld; it must be owned by %s (chown %s %s)", path,
                  (long)st.st_uid, pw ? pw->pw_name : "?", pw ? pw->pw_name : "?", path);
        problems++;
    }
    if (own->root && check_gid && st.st_gid != gid) {
        struct group *gr = getgrgid(gid);
        log_error("%s has group gid %ld; it must be %s (chgrp %s %s)", path,
                  (long)st.st_gid, gr ? gr->gr_name : "?", gr ? gr->gr_name : "?", path);
        problems++;
    }
    return problems;
}

/* Create missing parents of the queue directory itself (mode 0755). */
static int check_parents(const char *path)
{
    char *parent = xstrdup(path);
    char *slash = strrchr(parent, '/');
    struct strbuf *why = strbuf_new(128);
    int problems = 0;

    if (slash != NULL && slash != parent) {
        *slash = 0;
        if (fileops_mkdir_p(parent, 0755, why) < 0) {
            log_error("%s", strbuf_str(why));
            problems++;
        }
    }
    strbuf_free(&why);
    free(parent);
    return problems;
}

static int check_spool(const struct owners *own)
{
    const char *queue = var_queue_directory;
    int problems = 0;

    if (queue[0] != '/') {
        log_error("queue_directory must be an absolute path: \"%s\"", queue);
        return 1;
    }
    if (check_parents(queue))
        return 1;
    /* The queue directory itself: root's, searchable by everyone (the
     * public/ and maildrop/ doors are protected by their own modes). */
    problems += check_dir(queue, 0, 0, false, 0755, own);
    if (problems)
        return problems;
    for (size_t i = 0; i < sizeof(spool_dirs) / sizeof(spool_dirs[0]); i++) {
        const struct spool_dir *d = &spool_dirs[i];
        char *path = xasprintf("%s/%s", queue, d->name);
        uid_t uid = d->owner == OWN_MAIL ? own->mail_uid : 0;
        gid_t gid = d->setgid_group ? own->setgid_gid : (d->owner == OWN_MAIL ? own->mail_gid : 0);

        if (!own->root) {
            uid = own->mail_uid;
            gid = own->mail_gid;
        }
        problems += check_dir(path, uid, gid, d->setgid_group, d->mode, own);
        free(path);
    }
    return problems;
}

/* Every command master.cf names must be an executable file. */
static int check_daemons(const struct mastercf *cf)
{
    const char *ddir = var_daemon_directory;
    struct stat st;
    int problems = 0;

    if (stat(ddir, &st) < 0) {
        log_error("daemon_directory %s: %m", ddir);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error("daemon_directory %s is not a directory", ddir);
        return 1;
    }
    for (size_t i = 0; i < cf->count; i++) {
        const struct mastercf_entry *e = &cf->entries[i];
        char *path = e->command[0] == '/' ? xstrdup(e->command)
                                           : xasprintf("%s/%s", ddir, e->command);

        errno = 0;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
            log_error("%s, line %d: service %s/%s: command %s %s", cf->path, e->line,
                      e->name, mastercf_type_name(e->type), path,
                      errno == ENOENT ? "does not exist" : "is not an executable file");
            problems++;
        }
        free(path);
    }
    char *master = xasprintf("%s/master", ddir);
    if (access(master, X_OK) < 0) {
        log_error("%s: %m (master is not installed in daemon_directory)", master);
        problems++;
    }
    free(master);
    return problems;
}

/* Parse master.cf; NULL (reported) if it cannot be read or parsed. */
static struct mastercf *load_mastercf(void)
{
    struct strbuf *why = strbuf_new(256);
    char *path = xasprintf("%s/master.cf", confdir_abs);
    struct mastercf *cf = NULL;

    if (mastercf_load(path, &cf, why) < 0) {
        log_error("%s", strbuf_str(why));
        cf = NULL;
    }
    free(path);
    strbuf_free(&why);
    return cf;
}

/* The whole check; returns the number of problems (0: ready to start). */
static int do_check(void)
{
    struct owners own;
    struct mastercf *cf;
    int problems;

    problems = check_accounts(&own);
    if ((cf = load_mastercf()) == NULL)
        problems++;
    if (problems == 0)
        problems += check_spool(&own);
    if (cf != NULL) {
        problems += check_daemons(cf);
        mastercf_free(&cf);
    }
    return problems;
}

/* ---- start, stop, reload --------------------------------------------- */

static int do_start(void)
{
    pid_t running, child, got;
    int status = 0;
    char *master;
    long waited;

    if ((running = master_running()) != 0) {
        log_info("the mail system is already running");
        return 1;
    }
    if (do_check() != 0) {
        log_error("the mail system is not started: fix the problems above");
        return 1;
    }
    log_info("starting the mail system");
    master = xasprintf("%s/master", var_daemon_directory);
    if ((child = fork()) < 0)
        log_fatal("fork: %m");
    if (child == 0) {
        execl(master, master, "-c", confdir_abs, "-w", (char *)NULL);
        log_error("exec %s: %m", master);
        _exit(127);
    }
    /* master -w returns once its daemon is up (or has failed). */
    for (waited = 0; waited < START_WAIT_MS; waited += POLL_MS) {
        if ((got = waitpid(child, &status, WNOHANG)) == child)
            break;
        if (got < 0 && errno != EINTR)
            log_fatal("waitpid: %m");
        sleep_ms(POLL_MS);
    }
    if (waited >= START_WAIT_MS) {
        kill(child, SIGTERM);
        (void)waitpid(child, &status, 0);
        log_error("%s did not finish starting within %d seconds", master, START_WAIT_MS / 1000);
        free(master);
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            log_error("%s was killed by signal %d during startup", master, WTERMSIG(status));
        else
            log_error("%s failed to start (exit status %d); see the messages above and "
                      "the mail log", master, WEXITSTATUS(status));
        free(master);
        return 1;
    }
    free(master);
    for (; waited < START_WAIT_MS; waited += POLL_MS) {
        if (master_running() != 0)
            return 0;
        sleep_ms(POLL_MS);
    }
    log_error("master did not write a pid file naming a live process within %d seconds",
              START_WAIT_MS / 1000);
    return 1;
}

static int do_stop(void)
{
    pid_t pid = master_running();

    if (pid == 0) {
        log_info("the mail system is not running");
        return 1;
    }
    log_info("stopping the mail system");
    if (kill(pid, SIGTERM) < 0) {
        log_error("kill -TERM %ld: %m", (long)pid);
        return 1;
    }
    for (long waited = 0; waited < STOP_WAIT_MS; waited += POLL_MS) {
        if (!pid_alive(pid))
            return 0;
        sleep_ms(POLL_MS);
    }
    log_error("master (pid %ld) is still running %d seconds after SIGTERM", (long)pid,
              STOP_WAIT_MS / 1000);
    return 1;
}

static int do_reload(void)
{
    pid_t pid = master_running();
    struct mastercf *cf;

    if (pid == 0) {
        log_info("the mail system is not running");
        return 1;
    }
    /* master would refuse a broken master.cf and keep the old one; saying
     * so here is kinder than a line in the log. */
    if ((cf = load_mastercf()) == NULL) {
        log_error("not reloading: fix master.cf first");
        return 1;
    }
    mastercf_free(&cf);
    log_info("refreshing the mail system");
    if (kill(pid, SIGHUP) < 0) {
        log_error("kill -HUP %ld: %m", (long)pid);
        return 1;
    }
    return 0;
}

static int do_status(void)
{
    pid_t pid = master_running();

    if (pid == 0) {
        log_info("the mail system is not running");
        return 1;
    }
    log_info("the mail system is running. PID: %ld", (long)pid);
    return 0;
}

/* Ask qmgr to retry the deferred queue now, exactly as facteur-queue -f
 * does (lib/queue_scan): every deferred message becomes due and qmgr gets
 * Postfix's flush request letters (F: forget dead destinations, A: scan
 * all queues, I: incoming). */
static int do_flush(void)
{
    struct strbuf *why;
    int n;

    if (master_running() == 0) {
        log_info("the mail system is not running");
        return 1;
    }
    why = strbuf_new(128);
    if ((n = queue_flush_all(var_queue_directory, why)) < 0) {
        log_error("%s", strbuf_str(why));
        strbuf_free(&why);
        return 1;
    }
    strbuf_free(&why);
    log_info("asked qmgr to flush the queue (%d deferred message%s)", n, n == 1 ? "" : "s");
    return 0;
}

struct command {
    const char *name;
    int (*run)(void);
};

static int run_check(void)
{
    return do_check() == 0 ? 0 : 1;
}

static const struct command commands[] = {
    {"start", do_start},
    {"stop", do_stop},
    {"reload", do_reload},
    {"status", do_status},
    {"check", run_check},
    {"flush", do_flush},
};

int main(int argc, char **argv)
{
    struct strbuf *why;
    const struct command *cmd = NULL;
    int ch;

    log_init("facteur", LOG_DEST_STDERR | LOG_DEST_SYSLOG);
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        log_error("unknown command: \"%s\"", argv[optind]);
        usage();
    }
    if (confdir == NULL)
        confdir = getenv("FACTEUR_CONFIG_DIR") ? getenv("FACTEUR_CONFIG_DIR") : CONF_DEFAULT_DIR;
    if ((confdir_abs = realpath(confdir, NULL)) == NULL)
        log_fatal("configuration directory %s: %m", confdir);

    why = strbuf_new(256);
    if (conf_load(confdir_abs, why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    /* Control actions belong in the mail log too, as postfix(1) does. */
    if (*var_maillog_file && cmd->run != do_status && log_set_file(var_maillog_file) < 0)
        log_warn("cannot open maillog_file %s: %m", var_maillog_file);
    ch = cmd->run();
    free(confdir_abs);
    return ch;
}
