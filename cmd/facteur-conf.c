/*
 * facteur-conf - print, check and edit facteur parameters (postconf's twin).
 *
 *   facteur-conf [-c dir] [-o name=value] [-d|-n] [-h] [-x] [name ...]
 *   facteur-conf [-c dir] -e name=value ...      set (in place or appended)
 *   facteur-conf [-c dir] -X name ...            remove
 *   facteur-conf [-c dir] -# name ...            comment out
 *   facteur-conf [-c dir] -M [service[/type] ...]  print master.cf entries
 *   facteur-conf -m < main.cf.5.in > main.cf.5   write main.cf(5)
 *
 * Reading goes through lib/conf (the parser every daemon uses), so a main.cf
 * this command accepts is one the daemons accept, and errors name the file
 * and line.  Edits rewrite main.cf atomically: main.cf.tmp in the same
 * directory, locked so two editors serialise, written, fsynced, renamed over
 * main.cf, then the directory fsynced; comments and every other line are
 * kept byte for byte.  Input is the administrator's own files and arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "mastercf.h"
#include "mem.h"
#include "strbuf.h"

enum conf_mode { MODE_SHOW, MODE_EDIT, MODE_REMOVE, MODE_COMMENT, MODE_MASTER, MODE_MAN };

static struct {
    const char *dir;
    bool defaults, nondefault, hide_name, expand;
    enum conf_mode mode;
} opt;

static void usage(void)
{
    fprintf(stderr,
            "usage: facteur-conf [-c dir] [-o name=value] [-d | -n] [-h] [-x] [name ...]\n"
            "       facteur-conf [-c dir] -e name=value ...\n"
            "       facteur-conf [-c dir] -X name ...\n"
            "       facteur-conf [-c dir] -# name ...\n"
            "       facteur-conf [-c dir] -M [service[/type] ...]\n"
            "       facteur-conf -m < main.cf.5.in\n");
    exit(2);
}

static void set_mode(enum conf_mode mode)
{
    if (opt.mode != MODE_SHOW && opt.mode != mode)
        log_fatal("options -e, -X, -#, -M and -m exclude each other");
    opt.mode = mode;
}

/* ---- printing parameters -------------------------------------------- */

static void print_param(const char *name)
{
    const char *v = opt.expand ? conf_get(name) : conf_get_value(name);

    if (v == NULL)
        v = "";
    if (opt.hide_name)
        printf("%s\n", v);
    else
        printf("%s =%s%s\n", name, *v ? " " : "", v);
}

static int strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every name to print when none is given: the table, plus names set in
 * main.cf that something uses, sorted. */
static char **all_names(void)
{
    char **set = opt.defaults ? xcalloc(1, sizeof(char *)) : conf_names_set();
    size_t nset = 0, n = 0;
    char **names;

    while (set[nset])
        nset++;
    names = xcalloc(param_count + nset + 1, sizeof(*names));
    for (unsigned i = 0; !opt.nondefault && i < param_count; i++)
        names[n++] = xstrdup(param_table[i].name);
    for (size_t i = 0; i < nset; i++) {
        if ((opt.nondefault || param_find(set[i]) == NULL) && conf_is_known(set[i]))
            names[n++] = set[i];
        else
            free(set[i]);
    }
    free(set);
    qsort(names, n, sizeof(*names), strcmp_p);
    return names;
}

static int show_params(char **argv, int argc)
{
    struct strbuf *why = strbuf_new(128);
    char *path = xasprintf("%s/main.cf", conf_dir());

    if (opt.defaults) {
        /* Defaults alone, as if main.cf and overrides were empty. */
        conf_override_clear();
        if (conf_load_buffer(path, "", 0, why) < 0)
            log_fatal("%s", strbuf_str(why));
    } else {
        conf_check_unknown();
    }
    if (argc == 0) {
        char **names = all_names();

        for (size_t i = 0; names[i]; i++)
            print_param(names[i]);
        conf_list_free(&names);
    } else {
        for (int i = 0; i < argc; i++) {
            if (!conf_is_known(argv[i]) || (opt.defaults && param_find(argv[i]) == NULL)) {
                log_warn("unknown parameter: %s", argv[i]);
                continue;
            }
            if (opt.nondefault && !conf_is_set(argv[i]))
                continue;
            print_param(argv[i]);
        }
    }
    free(path);
    strbuf_free(&why);
    return 0;
}

/* ---- editing main.cf -------------------------------------------------- */

struct edit {
    char *name;
    char *value;        /* -e only */
    int found;
};

static int find_edit(struct edit *edits, int n, const char *name, size_t len)
{
    for (int i = n - 1; i >= 0; i--)        /* the last -e of a name wins */
        if (strlen(edits[i].name) == len && strncmp(edits[i].name, name, len) == 0)
            return i;
    return -1;
}

static bool blank_or_comment(const char *p, size_t len)
{
    size_t b = 0;

    while (b < len && (p[b] == ' ' || p[b] == '\t' || p[b] == '\r' || p[b] == '\n'))
        b++;
    return b == len || p[b] == '#';
}

/* Build the new main.cf text from the old one and the edits. */
static void edit_text(const char *old, size_t oldlen, struct edit *edits, int nedits,
                      const char *path, struct strbuf *out)
{
    size_t pos = 0;
    int owner = -1;

    while (pos < oldlen) {
        const char *p = old + pos, *nl = memchr(p, '\n', oldlen - pos);
        size_t len = nl ? (size_t)(nl - p) + 1 : oldlen - pos;

        pos += len;
        if (blank_or_comment(p, len)) {
            strbuf_appendn(out, p, len);
            continue;
        }
        if (p[0] != ' ' && p[0] != '\t') {
            size_t n = 0;

            while (n < len && p[n] != ' ' && p[n] != '\t' && p[n] != '=' && p[n] != '\n'
                   && p[n] != '\r')
                n++;
            owner = find_edit(edits, nedits, p, n);
            if (owner >= 0) {
                struct edit *e = &edits[owner];

                if (e->found++ == 1)
                    log_warn("%s: more than one setting of %s", path, e->name);
                if (opt.mode == MODE_EDIT)
                    strbuf_appendf(out, "%s = %s\n", e->name, e->value);
                else if (opt.mode == MODE_COMMENT)
                    strbuf_appendc(out, '#'), strbuf_appendn(out, p, len);
                if (opt.mode == MODE_COMMENT && p[len - 1] != '\n')
                    strbuf_appendc(out, '\n');
                continue;
            }
        } else if (owner >= 0) {                /* continuation of an edited setting */
            if (opt.mode == MODE_COMMENT) {
                strbuf_appendc(out, '#');
                strbuf_appendn(out, p, len);
                if (p[len - 1] != '\n')
                    strbuf_appendc(out, '\n');
            }
            continue;
        }
        strbuf_appendn(out, p, len);
    }
    if (opt.mode != MODE_EDIT)
        return;
    for (int i = 0; i < nedits; i++) {
        if (edits[i].found || find_edit(edits, nedits, edits[i].name,
                                        strlen(edits[i].name)) != i)
            continue;
        if (strbuf_len(out) > 0 && strbuf_str(out)[strbuf_len(out) - 1] != '\n')
            strbuf_appendc(out, '\n');
        strbuf_appendf(out, "%s = %s\n", edits[i].name, edits[i].value);
    }
}

static int read_all(int fd, struct strbuf *sb)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (strbuf_appendn(sb, buf, (size_t)n) < 0) {
            errno = EFBIG;
            return -1;
        }
    }
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Open and lock DIR/main.cf.tmp; retry if another editor renamed it away
 * between our open and our lock. */
static int open_locked_tmp(const char *tmp)
{
    for (int tries = 0; tries < 50; tries++) {
        struct stat fst, pst;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);

        if (fd < 0)
            log_fatal("open %s: %m", tmp);
        if (flock(fd, LOCK_EX) < 0)
            log_fatal("lock %s: %m", tmp);
        if (fstat(fd, &fst) == 0 && lstat(tmp, &pst) == 0 && fst.st_ino == pst.st_ino
            && fst.st_dev == pst.st_dev)
            return fd;
        close(fd);
    }
    log_fatal("%s: cannot lock a stable temporary file", tmp);
}

static int edit_main(char **argv, int argc)
{
    char *path = xasprintf("%s/main.cf", conf_dir());
    char *tmp = xasprintf("%s/main.cf.tmp", conf_dir());
    struct edit *edits = xcalloc((size_t)argc, sizeof(*edits));
    struct strbuf *old = strbuf_new(8192), *out = strbuf_new(8192);
    struct stat st;
    bool have_old;
    int fd, dfd, in;

    if (argc == 0)
        usage();
    for (int i = 0; i < argc; i++) {
        if (opt.mode == MODE_EDIT) {
            const char *eq = strchr(argv[i], '=');
            size_t n;
            const char *v;

            if (eq == NULL)
                log_fatal("-e %s: expected name=value", argv[i]);
            n = (size_t)(eq - argv[i]);
            while (n > 0 && (argv[i][n - 1] == ' ' || argv[i][n - 1] == '\t'))
                n--;
            for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
                ;
            if (!conf_name_valid(argv[i], n))
                log_fatal("-e %s: invalid parameter name", argv[i]);
            if (strpbrk(v, "\r\n"))
                log_fatal("-e %.*s: value must be one line", (int)n, argv[i]);
            edits[i].name = xstrndup(argv[i], n);
            edits[i].value = xstrdup(v);
            /* Trailing blanks would not survive a read anyway. */
            for (size_t l = strlen(edits[i].value);
                 l > 0 && (edits[i].value[l - 1] == ' ' || edits[i].value[l - 1] == '\t'); l--)
                edits[i].value[l - 1] = 0;
        } else {
            if (!conf_name_valid(argv[i], strlen(argv[i])))
                log_fatal("%s: invalid parameter name", argv[i]);
            edits[i].name = xstrdup(argv[i]);
        }
    }

    fd = open_locked_tmp(tmp);
    strbuf_set_max(old, CONF_FILE_MAX);
    in = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    have_old = in >= 0;
    if (!have_old && errno != ENOENT)
        log_fatal("open %s: %m", path);
    if (have_old && (read_all(in, old) < 0 || fstat(in, &st) < 0))
        log_fatal("read %s: %m", path);
    if (have_old)
        close(in);

    edit_text(strbuf_str(old), strbuf_len(old), edits, argc, path, out);

    /* Durability: data on disk before the rename, the rename on disk
     * before we report success. */
    if (ftruncate(fd, 0) < 0)
        goto fail;
    /* Permissions first, so a main.cf readable by root alone is never
     * readable by others, even as the temporary file. */
    if (have_old) {
        if (fchmod(fd, st.st_mode & 07777) < 0)
            goto fail;
        if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
            goto fail;
    }
    if (write_all(fd, strbuf_str(out), strbuf_len(out)) < 0)
        goto fail;
    if (fsync(fd) < 0 || rename(tmp, path) < 0)
        goto fail;
    dfd = open(conf_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        log_fatal("fsync %s: %m", conf_dir());
    close(dfd);
    close(fd);                                  /* releases the lock */

    for (int i = 0; i < argc; i++) {
        free(edits[i].name);
        free(edits[i].value);
    }
    free(edits);
    strbuf_free(&old);
    strbuf_free(&out);
    free(path);
    free(tmp);
    return 0;
fail:
    log_error("write %s: %m", tmp);
    unlink(tmp);
    exit(1);
}

/* ---- master.cf ---------------------------------------------------------- */

/* Fold the logical line that starts at line `first` of text into out,
 * fields separated as postconf -M prints them. */
static void fold_entry(const char *text, size_t len, int first, struct strbuf *out)
{
    static const int width[] = { 10, 5, 7, 7, 7, 7, 7 };
    size_t pos = 0;
    int line = 0, field = 0;

    strbuf_reset(out);
    while (pos < len) {
        const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;

        pos += n + (nl ? 1 : 0);
        line++;
        if (line < first || blank_or_comment(p, n))
            continue;
        if (line > first && p[0] != ' ' && p[0] != '\t')
            break;
        for (size_t i = 0; i < n;) {
            size_t start;

            while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
                i++;
            if (i >= n)
                break;
            start = i;
            while (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                i++;
            /* The seven columns padded as postconf -M pads them, then the
             * command and its arguments one space apart. */
            strbuf_appendf(out, "%-*.*s ", field < 7 ? width[field] : 0, (int)(i - start),
                           p + start);
            field++;
        }
    }
    strbuf_rtrim(out);
}

static bool entry_selected(const struct mastercf_entry *e, char **argv, int argc)
{
    if (argc == 0)
        return true;
    for (int i = 0; i < argc; i++) {
        const char *slash = strchr(argv[i], '/');
        size_t n = slash ? (size_t)(slash - argv[i]) : strlen(argv[i]);

        if ((n == 0 || (strlen(e->name) == n && strncmp(e->name, argv[i], n) == 0))
            && (slash == NULL || strcmp(slash + 1, mastercf_type_name(e->type)) == 0))
            return true;
    }
    return false;
}

static int show_master(char **argv, int argc)
{
    char *path = xasprintf("%s/master.cf", conf_dir());
    struct strbuf *why = strbuf_new(128), *text = strbuf_new(8192), *line = strbuf_new(256);
    struct mastercf *cf = NULL;
    int fd;

    if (mastercf_load(path, &cf, why) < 0)
        log_fatal("%s", strbuf_str(why));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || read_all(fd, text) < 0)
        log_fatal("read %s: %m", path);
    close(fd);
    for (size_t i = 0; i < cf->count; i++) {
        if (!entry_selected(&cf->entries[i], argv, argc))
            continue;
        fold_entry(strbuf_str(text), strbuf_len(text), cf->entries[i].line, line);
        printf("%s\n", strbuf_str(line));
    }
    mastercf_free(&cf);
    strbuf_free(&why);
    strbuf_free(&text);
    strbuf_free(&line);
    free(path);
    return 0;
}

/* ---- main.cf(5) ------------------------------------------------------------ */

/* Write s for man(7): backslashes doubled, a leading . or ' protected. */
static void man_escape(const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", stdout);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", stdout);
        else if (*s == '-')
            fputs("\\-", stdout);
        else
            putchar(*s);
    }
}

static int write_man(void)
{
    static const char *const type_name[] = {
        [PARAM_STR] = "string", [PARAM_LIST] = "list", [PARAM_INT] = "integer",
        [PARAM_TIME] = "time", [PARAM_SIZE] = "size", [PARAM_BOOL] = "boolean",
    };
    struct strbuf *pre = strbuf_new(16384);

    if (read_all(0, pre) < 0)
        log_fatal("read standard input: %m");
    fwrite(strbuf_str(pre), 1, strbuf_len(pre), stdout);
    if (strbuf_len(pre) && strbuf_str(pre)[strbuf_len(pre) - 1] != '\n')
        putchar('\n');
    printf(".SH PARAMETERS\n");
    for (unsigned i = 0; i < param_count; i++) {
        const struct param_desc *d = &param_table[i];

        printf(".TP\n.B %s\n", d->name);
        printf("(%s; default: ", type_name[d->type]);
        if (*d->def) {
            fputs("\\fB", stdout);
            man_escape(d->def);
            fputs("\\fR", stdout);
        } else {
            fputs("empty", stdout);
        }
        if (d->type == PARAM_INT || d->type == PARAM_TIME || d->type == PARAM_SIZE)
            printf("; range %ld to %ld%s", d->min, d->max, d->type == PARAM_TIME ? " seconds" : "");
        printf(")\n");
        man_escape(d->desc);
        printf(".\n");
    }
    strbuf_free(&pre);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct strbuf *why = strbuf_new(128);
    int c;

    log_init("facteur-conf", LOG_DEST_STDERR);
    while ((c = getopt(argc, argv, "c:dehmnMo:xX#")) != -1) {
        switch (c) {
        case 'c': opt.dir = optarg; break;
        case 'd': opt.defaults = true; break;
        case 'n': opt.nondefault = true; break;
        case 'h': opt.hide_name = true; break;
        case 'x': opt.expand = true; break;
        case 'e': set_mode(MODE_EDIT); break;
        case 'X': set_mode(MODE_REMOVE); break;
        case '#': set_mode(MODE_COMMENT); break;
        case 'M': set_mode(MODE_MASTER); break;
        case 'm': set_mode(MODE_MAN); break;
        case 'o':
            if (conf_override(optarg, why) < 0)
                log_fatal("%s", strbuf_str(why));
            break;
        default: usage();
        }
    }
    argc -= optind;
    argv += optind;
    if (opt.defaults && opt.nondefault)
        log_fatal("options -d and -n exclude each other");
    if (opt.mode == MODE_MAN) {
        strbuf_free(&why);
        return write_man();
    }

    /* Every mode reads main.cf first, so a broken one is reported with its
     * line (postconf does the same), and conf_dir() is settled. */
    if (conf_load(opt.dir, why) < 0 && opt.mode == MODE_SHOW && !opt.defaults)
        log_fatal("%s", strbuf_str(why));
    if (strbuf_len(why) && opt.mode == MODE_SHOW && opt.defaults)
        strbuf_reset(why);
    /* A missing main.cf means defaults, but a missing directory is a typo. */
    {
        struct stat st;

        errno = 0;
        if (stat(conf_dir(), &st) < 0 || !S_ISDIR(st.st_mode))
            log_fatal("configuration directory %s: %s", conf_dir(),
                      errno ? strerror(errno) : "not a directory");
    }
    switch (opt.mode) {
    case MODE_EDIT:
    case MODE_REMOVE:
    case MODE_COMMENT:
        /* Editing must work on a file that does not parse, to repair it. */
        strbuf_free(&why);
        return edit_main(argv, argc);
    case MODE_MASTER:
        if (strbuf_len(why))
            log_fatal("%s", strbuf_str(why));
        strbuf_free(&why);
        return show_master(argv, argc);
    default:
        strbuf_free(&why);
        return show_params(argv, argc);
    }
}
