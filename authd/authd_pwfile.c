/*
 * authd_pwfile.c - Dovecot's passwd-file format, for the passdb and the
 * userdb, and the value format of the hash: (Berkeley DB) backend.
 *
 *   user:{SCHEME}hash:uid:gid:gecos:home:shell:extra fields
 *
 * The file is the administrator's, but it is still parsed with bounds:
 * lines longer than PWFILE_LINE_MAX are skipped with a warning, and a
 * lookup reads the file afresh (so edits need no reload; files are small
 * next to the cost of a password hash).  Extra fields after the seventh
 * ':' are space-separated key=value pairs and may themselves hold ':'
 * (userdb_quota_rule=*:storage=1G).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authd.h"
#include "log.h"
#include "mem.h"
#include "stream.h"

void pwfile_entry_free(struct pwfile_entry *e)
{
    if (e->buf) {
        explicit_bzero(e->buf, strlen(e->buf));
        free(e->buf);
    }
    memset(e, 0, sizeof(*e));
}

int pwfile_parse_line(const char *line, struct pwfile_entry *e)
{
    const char **fields[8] = {&e->user, &e->password, &e->uid, &e->gid,
                              &e->gecos, &e->home, &e->shell, &e->extra};
    char *p;
    int i;

    memset(e, 0, sizeof(*e));
    if (line[0] == 0 || line[0] == '#' || line[0] == ':')
        return -1;
    e->buf = xstrdup(line);
    p = e->buf;
    for (i = 0; i < 8; i++) {
        char *colon = i < 7 ? strchr(p, ':') : NULL;

        *fields[i] = p;
        if (colon == NULL) {
            i++;
            break;
        }
        *colon = 0;
        p = colon + 1;
    }
    for (; i < 8; i++)
        *fields[i] = "";
    return 0;
}

int pwfile_lookup(const char *path, const char *user, struct pwfile_entry *e,
                  struct strbuf *why)
{
    struct strbuf *line;
    struct stream *s;
    size_t ulen = strlen(user);
    unsigned lineno = 0;
    int fd, r, found = 0;

    memset(e, 0, sizeof(*e));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        strbuf_printf(why, "open %s: %m", path);
        return -1;
    }
    s = stream_fdopen(fd);
    stream_set_timeout(s, 10000);
    line = strbuf_new(256);
    for (;;) {
        r = stream_read_line(s, line, PWFILE_LINE_MAX);
        if (r == 0)
            break;
        lineno++;
        if (r < 0) {
            if (stream_error(s) != STREAM_ERR_TOOLONG) {
                strbuf_printf(why, "read %s: %s", path, stream_strerror(s));
                found = -1;
                break;
            }
            /* One bad line must not hide the rest of the file. */
            log_warn("%s: line %u: longer than %d bytes, skipped", path, lineno,
                     PWFILE_LINE_MAX);
            stream_clear_toolong(s);
            if (stream_skip_line(s, (size_t)-1) != 1)
                break;
            continue;
        }
        strbuf_rtrim(line);
        if (strbuf_len(line) > ulen && strncmp(strbuf_str(line), user, ulen) == 0
            && strbuf_str(line)[ulen] == ':' && pwfile_parse_line(strbuf_str(line), e) == 0) {
            found = 1;
            break;
        }
    }
    explicit_bzero(line->data, line->size);
    strbuf_free(&line);
    stream_close(&s);
    return found;
}

bool pwfile_extra(const char *extra, const char *key, struct strbuf *out)
{
    size_t klen = strlen(key);
    const char *p = extra;

    while (*p) {
        const char *end;

        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strcspn(p, " \t");
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            strbuf_setn(out, p + klen + 1, (size_t)(end - p - klen - 1));
            return true;
        }
        p = end;
    }
    return false;
}
