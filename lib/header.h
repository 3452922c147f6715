/*
 * header.h - RFC 5322 message header parsing, bounded and I/O-free.
 *
 * The parser takes a message one line at a time (no line terminator) and
 * hands each complete logical header (a "Name:" line and its continuation
 * lines) to a callback.  The first line that cannot be part of the header
 * (an empty line, a line without a "name:" prefix, a continuation line
 * with no header before it) ends the header section; the parser returns
 * HEADER_END for it without consuming it, so the caller treats it as the
 * first body line.
 *
 * Limits: one logical header (its lines joined with LF) holds at most
 * size_max bytes and the section at most count_max headers; past either
 * the parser returns an error and stays in that state.  Names are 1 to
 * HEADER_NAME_MAX bytes of printable ASCII other than ':'; white space
 * before the colon is allowed (RFC 5322 obsolete syntax).
 *
 * Also here: the address-list reader sendmail -t uses on To:/Cc:/Bcc:
 * values (display names, comments, quoted strings, groups, source routes),
 * and the Message-ID extractor cleanup logs with.
 */
#ifndef FACTEUR_HEADER_H
#define FACTEUR_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define HEADER_NAME_MAX   256       /* bytes of a header name */
#define HEADER_ADDR_MAX   2048      /* bytes of one extracted address */

/* A complete logical header, valid during the callback only. */
struct header {
    const char *name;       /* name_len bytes, no NUL: not a C string */
    size_t name_len;
    const char *raw;        /* whole header, lines joined by LF, NUL-terminated */
    size_t raw_len;
    const char *value;      /* after the colon, inside raw (folded, leading
                             * white space kept) */
    size_t value_len;
};

/* Called for each complete header; return 0 to go on, anything else to
 * stop (header_parser_line then returns HEADER_STOPPED). */
typedef int header_fn(const struct header *h, void *ctx);

/* header_parser_line / _finish results. */
#define HEADER_IN        0      /* line consumed: part of the header */
#define HEADER_END       1      /* header section over; line not consumed */
#define HEADER_STOPPED   2      /* the callback returned non-zero */
#define HEADER_TOOLONG  (-1)    /* a header passed size_max */
#define HEADER_TOOMANY  (-2)    /* more than count_max headers */

struct header_parser;

/* size_max: bytes of one logical header (>= 1); count_max: headers. */
struct header_parser *header_parser_new(size_t size_max, size_t count_max);
void header_parser_free(struct header_parser **pp);
/* Feed one line (len bytes, any byte; no terminator).  Complete headers
 * go to fn.  Once HEADER_END, HEADER_STOPPED or an error was returned,
 * every later call returns the same value without calling fn. */
int header_parser_line(struct header_parser *p, const char *line, size_t len,
                       header_fn *fn, void *ctx);
/* The message ended inside the header: deliver the pending header.
 * Returns HEADER_END, HEADER_STOPPED or the sticky error. */
int header_parser_finish(struct header_parser *p, header_fn *fn, void *ctx);
/* Headers delivered so far. */
size_t header_parser_count(const struct header_parser *p);

/* True if s[0..len) is a valid header name. */
bool header_name_valid(const char *s, size_t len);
/* Case-insensitive comparison of h's name with name (a C string). */
bool header_name_is(const struct header *h, const char *name);
/* The value unfolded (folding line breaks removed) and trimmed of leading
 * and trailing white space, replacing out's content. */
void header_value_unfold(const char *value, size_t len, struct strbuf *out);

/* Called for each address of an address list (a C string, comments and
 * white space outside quotes removed, "<>" and empty ones skipped);
 * return 0 to go on, non-zero to stop. */
typedef int header_addr_fn(const char *addr, void *ctx);
/* Read an RFC 5322 address-list (lenient, as mail clients write it).
 * Returns the number of addresses passed to fn, or -1 if an address is
 * longer than HEADER_ADDR_MAX, there are more than max_count, a quote,
 * comment or angle bracket is not closed, or fn stopped. */
int header_addr_list(const char *value, size_t len, size_t max_count,
                     header_addr_fn *fn, void *ctx);

/* Same, also giving each address's end: the offset in value just after
 * its last byte (for "<addr>", the offset of the '>'), where a domain can
 * be inserted; comments and display names are never inside [.., end). */
typedef int header_addr_pos_fn(const char *addr, size_t end, void *ctx);
int header_addr_list_pos(const char *value, size_t len, size_t max_count,
                         header_addr_pos_fn *fn, void *ctx);

/* The first "<...>" of a Message-ID value, brackets excluded, into out.
 * Returns 0, or -1 if there is none (or it holds control characters or is
 * longer than HEADER_ADDR_MAX). */
int header_msgid(const char *value, size_t len, struct strbuf *out);

#endif
