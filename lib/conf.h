/*
 * conf.h - main.cf: parse, expand, check, and set the var_ globals.
 *
 * Syntax as Postfix: "name = value", a line starting with white space
 * continues the previous one, "#" starts a comment line, $name / ${name} /
 * $(name) expand recursively (with ${name?text} and ${name:text}), a loop
 * in expansion is an error.  Errors name the file and line
 * ("/etc/facteur/main.cf, line 12: ...").  Unknown names are kept (they may
 * be user macros used in $expansion) and warned about by conf_check_unknown.
 */
#ifndef FACTEUR_CONF_H
#define FACTEUR_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "params.h"
#include "strbuf.h"

/* Default configuration directory, overridden by $FACTEUR_CONFIG_DIR. */
#define CONF_DEFAULT_DIR "/etc/facteur"

/* Load DIR/main.cf (confdir NULL: $FACTEUR_CONFIG_DIR, else /etc/facteur),
 * apply earlier conf_override() values, expand, convert and range-check
 * every parameter into its var_.  A missing main.cf means all defaults.
 * Returns 0, or -1 with the reason (file and line) in why. */
int conf_load(const char *confdir, struct strbuf *why);

/* Record a "name=value" override (master.cf -o, command line); it wins
 * over main.cf in the next conf_load().  -1 with why if malformed. */
int conf_override(const char *assignment, struct strbuf *why);

/* The directory the last conf_load() read. */
const char *conf_dir(void);

/* Expanded value of any parameter or user macro after conf_load(); NULL if
 * neither known nor set. */
const char *conf_get(const char *name);
/* Value as written in main.cf (unexpanded); NULL if not set there. */
const char *conf_get_raw(const char *name);
/* True if main.cf or an override set name. */
bool conf_is_set(const char *name);

/* Log a warning for each name set in main.cf that no table declares and no
 * other value references.  Returns the number of such names. */
int conf_check_unknown(void);

/* Split a LIST value on commas and white space: returns a NULL-terminated
 * array of owned strings (free with conf_list_free). */
char **conf_list_split(const char *value);
void conf_list_free(char ***listp);

/* Parse a TIME ("30s", "5m", "1h", "2d", "1w", bare = seconds) or SIZE
 * value; -1 with why if malformed. */
int conf_parse_time(const char *value, long *secs_r, struct strbuf *why);
int conf_parse_long(const char *value, long *val_r, struct strbuf *why);

/* Limits of the parser: past any of them conf_load fails with file:line. */
#define CONF_FILE_MAX       (4 * 1024 * 1024) /* bytes in main.cf */
#define CONF_LINE_MAX       8192        /* bytes in one physical line */
#define CONF_LOGICAL_MAX    65536       /* bytes in one logical line */
#define CONF_NAME_MAX       100         /* bytes in a parameter name */
#define CONF_PARAMS_MAX     2000        /* distinct names in main.cf */
#define CONF_OVERRIDES_MAX  1000        /* conf_override() calls kept */
#define CONF_EXPAND_DEPTH   100         /* nested $name / ${...} levels */
#define CONF_EXPAND_MAX     (256 * 1024) /* bytes of one expanded value */

/* As conf_load, but parse len bytes of main.cf text from memory; path is
 * only used in messages (and by conf_check_unknown).  conf_load reads the
 * file and calls this; it is also the fuzz target's entry point.  The text
 * need not be NUL-terminated.  On failure (of either) the var_ globals and
 * conf_get() and friends keep answering from the last successful load. */
int conf_load_buffer(const char *path, const char *text, size_t len, struct strbuf *why);

/* Forget everything: parsed values, overrides, and the var_ strings (set
 * back to NULL / 0).  For tests, fuzzing and a clean exit under ASan. */
void conf_unload(void);

/* Forget the conf_override() values recorded so far. */
void conf_override_clear(void);

/* Effective value before expansion (override, else main.cf, else the
 * default, computed for myhostname, mydomain and mynetworks); NULL if the
 * name is neither known nor set.  Borrowed until the next load. */
const char *conf_get_value(const char *name);

/* Names set in main.cf or by an override, sorted (C locale): a
 * NULL-terminated owned array, free with conf_list_free. */
char **conf_names_set(void);

/* True if name is declared in params.def, or is set and used: mentioned as
 * $name by some value, listed in smtpd_restriction_classes, or shaped like
 * a per-transport parameter (TRANSPORT_destination_concurrency_limit ...).
 * facteur-conf prints such names; conf_check_unknown warns about the rest. */
bool conf_is_known(const char *name);

/* True if name is a valid parameter name: 1 to CONF_NAME_MAX bytes of
 * letters, digits and '_'. */
bool conf_name_valid(const char *name, size_t len);

/* SIZE: a number of bytes, optionally followed by k, m or g (x 1024).
 * BOOL: yes or no (any case).  -1 with why if malformed. */
int conf_parse_size(const char *value, long *val_r, struct strbuf *why);
int conf_parse_bool(const char *value, bool *val_r, struct strbuf *why);

#endif
