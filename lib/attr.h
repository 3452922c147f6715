/*
 * attr.h - the internal request/response protocol: typed attribute lists.
 *
 * Daemons talk over UNIX sockets (qmgr <-> smtp/lmtpd, smtpd -> anvil,
 * trigger messages, userdb lookups) in messages that are lists of named,
 * typed attributes, read back strictly: the reader says which attributes
 * it expects and of which type, and anything missing, extra, duplicated,
 * mistyped or over a length limit is an error with a reason.  A malformed
 * message is a peer bug: log it with both ends named and drop that
 * connection.
 *
 * Wire format (binary-safe, self-delimiting, readable in a hex dump):
 *
 *   message   = *attribute end
 *   attribute = type name NUL value
 *   type      = "S" (string) / "L" (long) / "D" (data)
 *   name      = 1*( a-z / 0-9 / "_" / "-" / "." )
 *   value     = for S: *(any byte but NUL) NUL
 *               for L: ["-"] 1*20DIGIT NUL      (fits in a long, no "+",
 *                      no leading zeros except "0" itself)
 *               for D: 1*20DIGIT NUL <exactly that many raw bytes>
 *   end       = NUL                             (where a type would be)
 *
 * Example: "Srequest\0connect\0Lcount\0-12\0Dbody\05\0hello\0".
 * Names are unique within a message.  Limits (struct attr_limits) bound
 * the attribute count, name length, value length (string bytes, data
 * bytes, long digits) and the whole message including the end marker.
 */
#ifndef FACTEUR_ATTR_H
#define FACTEUR_ATTR_H

#include <stdbool.h>
#include <stddef.h>

#include "stream.h"
#include "strbuf.h"

enum attr_type { ATTR_STR = 'S', ATTR_LONG = 'L', ATTR_DATA = 'D' };

struct attr_limits {
    size_t max_attrs;       /* attributes per message */
    size_t max_name;        /* bytes per name */
    size_t max_value;       /* bytes per string or data value */
    size_t max_message;     /* bytes per message, end marker included */
};

/* 64 attributes, 64-byte names, 64 KiB values, 1 MiB messages.  Used when
 * a function is given NULL limits. */
extern const struct attr_limits attr_default_limits;

/* What a reader expects: a table ended by an entry with name NULL. */
#define ATTR_OPTIONAL 1     /* may be absent (present: type still checked) */
struct attr_spec {
    const char *name;
    enum attr_type type;
    int flags;
};

struct attr_list;

/* A new empty list; free with attr_free(). */
struct attr_list *attr_new(void);
/* Free the list and every value; NULL *lp.  NULL and *NULL allowed. */
void attr_free(struct attr_list **lp);
/* Remove every attribute (keeps the allocation, for reuse per message). */
void attr_reset(struct attr_list *l);

/* Append an attribute.  The name must be a valid name not yet in the
 * list and the value is copied; a bad or duplicate name is a bug in the
 * caller (log_panic), never a peer's doing. */
void attr_add_str(struct attr_list *l, const char *name, const char *value);
void attr_add_long(struct attr_list *l, const char *name, long value);
void attr_add_data(struct attr_list *l, const char *name, const void *data, size_t len);

/* Number of attributes; the i-th name and type (0 <= i < count), for
 * logging and dispatch.  Borrowed until the list changes. */
size_t attr_count(const struct attr_list *l);
const char *attr_name(const struct attr_list *l, size_t i);
enum attr_type attr_type_of(const struct attr_list *l, size_t i);

/* Lookups by name.  The returned pointers are borrowed: valid until the
 * list is reset, freed or read into again. */
bool attr_has(const struct attr_list *l, const char *name);
/* The string, or NULL if absent or not a string. */
const char *attr_get_str(const struct attr_list *l, const char *name);
/* 0 and *value_r set, or -1 if absent or not a long. */
int attr_get_long(const struct attr_list *l, const char *name, long *value_r);
/* The bytes (NUL-terminated for convenience) and *len_r, or NULL if absent
 * or not data. */
const void *attr_get_data(const struct attr_list *l, const char *name, size_t *len_r);

/* Append the wire form of l (end marker included) to out. */
void attr_format(const struct attr_list *l, struct strbuf *out);
/* Write l and flush.  Returns 0, or -1 on a stream error (sticky; see
 * stream_error).  On a non-blocking stream output the socket cannot take
 * yet stays buffered (0 is returned): flush again when writable. */
int attr_write(struct stream *s, const struct attr_list *l);

/* Strict check of a parsed list against spec: every non-optional entry
 * present, every attribute in spec, each with its declared type.
 * Returns 0, or -1 with the first problem in why. */
int attr_check(const struct attr_list *l, const struct attr_spec *spec, struct strbuf *why);

/* Parse one message from buf[0..len) into l (replacing its content).
 * spec NULL skips the strict check (call attr_check later, e.g. once the
 * "request" attribute says which spec applies); limits NULL means
 * attr_default_limits.  Returns 1 with *consumed set to the message size,
 * 0 when buf holds only the start of a valid message (need more; nothing
 * consumed), -1 with why for a malformed, over-limit or (with spec)
 * unexpected message.  Bytes after the message are left alone.  why may
 * be NULL here and in attr_read (no reason kept). */
int attr_parse(const char *buf, size_t len, struct attr_list *l, const struct attr_spec *spec,
               const struct attr_limits *limits, size_t *consumed, struct strbuf *why);

/* Read one message from a blocking stream into l (replacing its content),
 * without reading past its end marker.  Returns 1 for a message, 0 for EOF
 * before its first byte, -1 with why for a stream error, EOF inside the
 * message, or a message attr_parse would refuse. */
int attr_read(struct stream *s, struct attr_list *l, const struct attr_spec *spec,
              const struct attr_limits *limits, struct strbuf *why);

#endif
