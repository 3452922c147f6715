/*
 * auth_proto.h - the Dovecot authentication protocol: line parser and
 * formatter, shared by authd (server) and auth_client (client).
 *
 * A line is TAB-separated arguments ending in "\n"; inside an argument the
 * bytes TAB, LF, CR, 0x01 and NUL are escaped Dovecot's way as 0x01 then
 * 't', 'n', 'r', '1', '0'.  Server greeting (client side of the socket):
 *   VERSION 1 2 / MECH name [flags] / SPID pid / CUID id / COOKIE hex / DONE
 * client: VERSION 1 x / CPID pid / AUTH id mech service=S [resp=B64]
 *   [secured] [valid-client-cert] [nologin] lip= rip= lport= rport= /
 *   CONT id B64
 * server: CONT id B64 / OK id user=U [...] / FAIL id [reason=R] [temp]
 *   [user=U]
 * userdb side: USER id user service=S -> USER id user uid= gid= home=
 *   [mail=] [quota_rule=] / NOTFOUND id / FAIL id [reason=]
 * Everything here is pure: bytes in, structures out, no I/O.
 */
#ifndef FACTEUR_AUTH_PROTO_H
#define FACTEUR_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define AUTH_PROTO_MAJOR 1
#define AUTH_PROTO_MINOR 2
#define AUTH_PROTO_LINE_MAX 16384   /* bytes, "\n" included (Dovecot's limit) */
#define AUTH_PROTO_ARGS_MAX 64      /* arguments a line may have */
#define AUTH_PROTO_USER_MAX 255     /* bytes in a user name */

/* One parsed line.  buf is owned; argv points into it. */
struct auth_proto_line {
    char *buf;
    unsigned argc;
    char *argv[AUTH_PROTO_ARGS_MAX + 1];   /* argv[argc] == NULL */
};

/* Parse len bytes (one line, with or without its final "\n"; a "\r" before
 * it is not allowed) into l: split on TAB, unescape each argument.  Fails
 * on an empty line or command, NUL bytes, a bad escape, more than
 * AUTH_PROTO_ARGS_MAX arguments or more than AUTH_PROTO_LINE_MAX bytes.
 * Returns 0, or -1 with why (l is then empty and need not be freed). */
int auth_proto_parse(struct auth_proto_line *l, const char *line, size_t len,
                     struct strbuf *why);
/* Free a parsed line (safe on an empty or already freed one). */
void auth_proto_line_free(struct auth_proto_line *l);

/* The value of "key=value" among argv[first..]: the text after '=', or ""
 * for a bare "key"; NULL if absent.  Borrowed from l. */
const char *auth_proto_param(const struct auth_proto_line *l, unsigned first,
                             const char *key);

/* A request id: decimal, 1..4294967295, no sign or leading zero.
 * Returns 0 or -1. */
int auth_proto_parse_id(const char *s, unsigned *id_r);
/* An address argument (lip/rip): empty, or an IPv4/IPv6 literal. */
bool auth_proto_valid_ip(const char *s);
/* A user name: 1..AUTH_PROTO_USER_MAX bytes, no control characters, no
 * TAB, ':' or '/' (it becomes a file name and a passwd-file key). */
bool auth_proto_valid_user(const char *s);

/* AUTH request; strings are borrowed from the parsed line. */
struct auth_proto_auth {
    unsigned id;
    const char *mech;
    const char *service;
    const char *resp;           /* base64 initial response, NULL if none */
    const char *lip, *rip;      /* "" if not given */
    const char *lport, *rport;  /* "" if not given */
    bool secured, valid_client_cert, nologin;
};
int auth_proto_parse_auth(const struct auth_proto_line *l, struct auth_proto_auth *a,
                          struct strbuf *why);

/* CONT id data (client to server or server to client). */
int auth_proto_parse_cont(const struct auth_proto_line *l, unsigned *id_r,
                          const char **data_r, struct strbuf *why);

/* USER id user service=S (userdb lookup request). */
int auth_proto_parse_user(const struct auth_proto_line *l, unsigned *id_r,
                          const char **user_r, const char **service_r,
                          struct strbuf *why);

/* Formatting: out grows "CMD\targ\targ...\n".  begin appends cmd as is (a
 * constant); add appends TAB and the escaped argument; add_kv appends TAB
 * key=escaped-value; addf formats then escapes; end appends "\n". */
void auth_proto_begin(struct strbuf *out, const char *cmd);
void auth_proto_add(struct strbuf *out, const char *arg);
void auth_proto_add_kv(struct strbuf *out, const char *key, const char *value);
void auth_proto_addf(struct strbuf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void auth_proto_end(struct strbuf *out);

/* Append s (n bytes) escaped; unescape in place (returns new length, or
 * -1 for a bad escape or an escaped NUL, which no C string can carry). */
void auth_proto_escape(struct strbuf *out, const char *s, size_t n);
long auth_proto_unescape(char *s);

#endif
