/*
 * smtp_syntax.h - RFC 5321 syntax: command lines, paths, ESMTP parameters,
 * replies, and the one table of reply codes and enhanced status codes.
 *
 * Used by smtpd and lmtpd (command side) and by the smtp client (reply
 * side).  Everything here is pure parsing: bytes and a length in, results
 * out, no I/O, a bound on every length and count.  All input is untrusted.
 *
 * Server side, per command line:
 *   1. smtp_line_find() on the bytes buffered so far: where the line ends,
 *      "need more", or "too long";
 *   2. smtp_line_check() on that line: CRLF, bare LF, bare CR, NUL;
 *   3. smtp_cmd_parse(): verb (table lookup) and argument text;
 *   4. for MAIL and RCPT, smtp_parse_mail() / smtp_parse_rcpt(): the path
 *      (struct smtp_addr) and the ESMTP parameters (struct smtp_params).
 * A parse error returns an enum smtp_reply_id (never 0); smtp_reply_format()
 * turns it into the reply line, with the detail written into `why`.
 *
 * Client side: smtp_reply_feed() takes one reply line at a time and
 * says "more lines follow", "reply complete" or "malformed".
 *
 * Implemented in smtp_syntax.c (commands, paths, parameters) and
 * smtp_reply.c (reply table, enhanced codes, reply parser).
 */
#ifndef FACTEUR_SMTP_SYNTAX_H
#define FACTEUR_SMTP_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* RFC 5321 4.5.3.1: command line 512 octets with CRLF; a server may accept
 * more (ESMTP parameters add to it; Postfix allows 2048 by default). */
#define SMTP_CMD_LINE_MIN       512
#define SMTP_CMD_LINE_MAX       65536   /* upper bound for any configuration */
#define SMTP_REPLY_LINE_MAX     512     /* default bound for one reply line */
#define SMTP_REPLY_LINES_MAX    100     /* lines in one multi-line reply */
#define SMTP_REPLY_TOTAL_MAX    65536   /* bytes of text in one reply */
#define SMTP_LOCAL_MAX          256     /* local part (RFC: 64; lenient) */
#define SMTP_LOCAL_STRICT_MAX   64
#define SMTP_DOMAIN_MAX         255
#define SMTP_ENVID_MAX          100     /* RFC 3461 4.4, decoded */
#define SMTP_ORCPT_MAX          500     /* RFC 3461 4.2, decoded */
#define SMTP_PARAMS_MAX         16      /* ESMTP parameters on one command */

/* ------------------------------------------------------------------ */
/* Reply table (one place for every code smtpd and lmtpd send).        */

enum smtp_reply_id {
    SMTP_R_NONE = 0,            /* success: no reply chosen */
    SMTP_R_OK,                  /* 250 2.0.0 Ok */
    SMTP_R_SENDER_OK,           /* 250 2.1.0 */
    SMTP_R_RCPT_OK,             /* 250 2.1.5 */
    SMTP_R_QUEUED,              /* 250 2.0.0 Ok: queued as */
    SMTP_R_DATA_GO,             /* 354 End data with <CR><LF>.<CR><LF> */
    SMTP_R_BYE,                 /* 221 2.0.0 Bye */
    SMTP_R_HELP,                /* 214 2.0.0 */
    SMTP_R_VRFY_CANNOT,         /* 252 2.0.0 */
    SMTP_R_TLS_GO,              /* 220 2.0.0 Ready to start TLS */
    SMTP_R_AUTH_OK,             /* 235 2.7.0 Authentication successful */
    SMTP_R_SHUTDOWN,            /* 421 4.3.0 service shutting down */
    SMTP_R_TIMEOUT,             /* 421 4.4.2 timeout exceeded */
    SMTP_R_TOO_MANY_ERRORS,     /* 421 4.7.0 too many errors */
    SMTP_R_TEMP_LOCAL,          /* 451 4.3.0 local error in processing */
    SMTP_R_QUEUE_WRITE,         /* 451 4.3.0 queue file write error */
    SMTP_R_TOO_MANY_RCPTS,      /* 452 4.5.3 too many recipients */
    SMTP_R_NO_SPACE,            /* 452 4.3.1 insufficient system storage */
    SMTP_R_TLS_UNAVAILABLE,     /* 454 4.7.0 TLS not available */
    SMTP_R_AUTH_TEMP,           /* 454 4.7.0 temporary authentication failure */
    SMTP_R_BAD_CMD,             /* 500 5.5.2 command unrecognized */
    SMTP_R_LINE_TOO_LONG,       /* 500 5.5.0 line too long */
    SMTP_R_BARE_NEWLINE,        /* 500 5.5.2 bare <CR> or <LF> */
    SMTP_R_NUL_BYTE,            /* 500 5.5.2 NUL byte in command */
    SMTP_R_SYNTAX_ARGS,         /* 501 5.5.4 syntax error in parameters */
    SMTP_R_BAD_SENDER_SYNTAX,   /* 501 5.1.7 bad sender address syntax */
    SMTP_R_BAD_RCPT_SYNTAX,     /* 501 5.1.3 bad recipient address syntax */
    SMTP_R_NOT_IMPLEMENTED,     /* 502 5.5.1 command not implemented */
    SMTP_R_BAD_SEQUENCE,        /* 503 5.5.1 bad sequence of commands */
    SMTP_R_NEED_MAIL,           /* 503 5.5.1 need MAIL command */
    SMTP_R_NEED_RCPT,           /* 503 5.5.1 need RCPT command */
    SMTP_R_NEED_HELO,           /* 503 5.5.1 send HELO/EHLO first */
    SMTP_R_PARAM_NOT_IMPL,      /* 504 5.5.4 parameter not implemented */
    SMTP_R_AUTH_REQUIRED,       /* 530 5.7.0 authentication required */
    SMTP_R_TLS_REQUIRED,        /* 530 5.7.0 must issue STARTTLS first */
    SMTP_R_AUTH_FAILED,         /* 535 5.7.8 authentication failed */
    SMTP_R_RELAY_DENIED,        /* 554 5.7.1 relay access denied */
    SMTP_R_USER_UNKNOWN,        /* 550 5.1.1 user unknown */
    SMTP_R_MAILBOX_FULL,        /* 552 5.2.2 mailbox full */
    SMTP_R_MSG_TOO_BIG,         /* 552 5.3.4 message size exceeds limit */
    SMTP_R_ADDR_REJECTED,       /* 553 5.1.2 address rejected (routing tricks) */
    SMTP_R_NEED_SMTPUTF8,       /* 553 5.6.7 non-ASCII address needs SMTPUTF8 */
    SMTP_R_REJECTED,            /* 554 5.7.1 rejected by policy */
    SMTP_R_UNKNOWN_PARAM,       /* 555 5.5.4 unsupported MAIL/RCPT parameter */
    SMTP_R_BAD_DATA_END,        /* 550 5.6.0 bad end of data / bare LF in data */
    SMTP_R_COUNT                /* not a reply: the table length */
};

struct smtp_reply_desc {
    int code;                   /* 250 */
    const char *esc;            /* "2.0.0" */
    const char *text;           /* "Ok" */
    const char *sep;            /* put between text and a detail: ": " or " " */
};

/* The table entry for id (id < SMTP_R_COUNT; others panic: a bug). */
const struct smtp_reply_desc *smtp_reply_get(enum smtp_reply_id id);
/* Replace out's content with one reply line "CODE ESC TEXT[: detail]\r\n".
 * detail may be NULL; its CR, LF and control bytes are replaced by spaces
 * and it is cut to keep the line under SMTP_REPLY_LINE_MAX. */
void smtp_reply_format(struct strbuf *out, enum smtp_reply_id id, const char *detail);
/* RFC 3463 / IANA description of an enhanced status code ("5.1.1" ->
 * "Bad destination mailbox address"); subject and detail are looked up
 * independently of the class.  Returns NULL for an unknown or malformed
 * code. */
const char *smtp_esc_describe(const char *esc);

/* ------------------------------------------------------------------ */
/* Lines.                                                              */

enum smtp_line_status {
    SMTP_LINE_CRLF = 0,     /* a good line ending in CRLF */
    SMTP_LINE_BARE_LF,      /* ends in LF without CR (smtpd_forbid_bare_newline) */
    SMTP_LINE_BARE_CR,      /* a CR not followed by LF inside the line */
    SMTP_LINE_NUL,          /* a NUL byte in the line */
    SMTP_LINE_NO_EOL,       /* no LF at all (EOF before end of line) */
};

enum smtp_find_status {
    SMTP_FIND_LINE = 0,     /* *len_r = line length including the LF */
    SMTP_FIND_NEED_MORE,    /* no LF yet and fewer than max bytes */
    SMTP_FIND_TOOLONG,      /* max bytes and no LF: reply 500 5.5.0, skip */
};

/* Find the end of the first line in buf[0..len): the first LF.  A line is
 * at most max bytes including its CRLF. */
enum smtp_find_status smtp_line_find(const char *buf, size_t len, size_t max,
                                     size_t *len_r);
/* Classify one line (as returned by smtp_line_find or stream_read_line,
 * terminator included) and set *content_len_r to its length without the
 * line terminator (CRLF, or the bare LF). */
enum smtp_line_status smtp_line_check(const char *line, size_t len,
                                      size_t *content_len_r);

/* ------------------------------------------------------------------ */
/* Commands.                                                           */

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_LHLO, SMTP_VERB_MAIL,
    SMTP_VERB_RCPT, SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET,
    SMTP_VERB_NOOP, SMTP_VERB_QUIT, SMTP_VERB_VRFY, SMTP_VERB_EXPN,
    SMTP_VERB_HELP, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH, SMTP_VERB_XCLIENT,
    SMTP_VERB_XFORWARD, SMTP_VERB_ETRN,
    SMTP_VERB_COUNT
};

/* Argument rules per verb, from the verb table. */
#define SMTP_ARGS_NONE      0x01    /* no argument allowed (DATA, QUIT, RSET, STARTTLS) */
#define SMTP_ARGS_REQUIRED  0x02    /* an argument is required */
#define SMTP_ARGS_OPTIONAL  0x04    /* NOOP, HELP, (RFC 5321 4.1.1.9) */

struct smtp_cmd {
    enum smtp_verb verb;        /* SMTP_VERB_UNKNOWN for a word not in the table */
    const char *name;           /* canonical upper-case verb name, or "" */
    const char *args;           /* points into the parsed line: text after the
                                 * verb and its separating space(s); "" if none.
                                 * Valid while the line is. */
    size_t args_len;
};

/* The verb's name ("MAIL") or NULL for an invalid verb. */
const char *smtp_verb_name(enum smtp_verb verb);
/* Look a verb up by name (case-insensitive, exact length). */
enum smtp_verb smtp_verb_lookup(const char *name, size_t len);

/* Parse one command line, content only (no CRLF; use smtp_line_check).
 * Nothing past line[len] is read (no NUL terminator needed).  Fills cmd.
 * Returns SMTP_R_NONE, or:
 *   SMTP_R_BAD_CMD       empty line, or a verb not in the table (cmd->verb
 *                        is then SMTP_VERB_UNKNOWN);
 *   SMTP_R_SYNTAX_ARGS   arguments given to a verb that takes none, or
 *                        missing where required; the verb is still set;
 *   SMTP_R_NUL_BYTE      a NUL byte inside the line.
 * Leading white space is not allowed; trailing spaces are removed from
 * args (clients add them).  why gets a short explanation. */
enum smtp_reply_id smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
                                  struct strbuf *why);

/* True if the first line of a session looks like HTTP ("GET ", "POST ",
 * "CONNECT " ...): the session must end (cross-protocol attack). */
bool smtp_line_is_http(const char *line, size_t len);

/* BDAT arguments (RFC 3030): "chunk-size [LAST]".  chunk-size is 1-20
 * digits and must fit in 64 bits.  Returns SMTP_R_NONE or
 * SMTP_R_SYNTAX_ARGS with why. */
enum smtp_reply_id smtp_parse_bdat(const char *args, size_t len, uint64_t *size_r,
                                   bool *last_r, struct strbuf *why);
/* True if a HELO/EHLO/LHLO argument is an RFC 5321 Domain (UTF-8 labels
 * allowed when utf8) or address literal; smtpd decides what to do with
 * others (Postfix accepts them unless smtpd_helo_restrictions say no). */
bool smtp_helo_valid(const char *args, size_t len, bool utf8);

/* ------------------------------------------------------------------ */
/* Addresses.                                                          */

/*
 * struct smtp_addr flags.  A parse accepts an address only if it matches
 * RFC 5321 Path / Mailbox (or, without SMTP_OPT_STRICT, the lenient forms
 * described below); the flags then describe what was seen so smtpd's relay
 * checks can refuse the "address tricks" of issue 4.  For each trick the
 * address below is what `domain` names; a relay check on `domain` alone
 * would be fooled, so smtpd must refuse relaying when any of
 * SMTP_ADDR_TRICKS is set and the domain is local:
 *
 *   user%other@local      SMTP_ADDR_PERCENT: the local part has '%'; an old
 *                         "percent hack" router forwards it to other.
 *   "user@other"@local    SMTP_ADDR_LOCAL_AT | SMTP_ADDR_QUOTED: a quoted
 *                         local part holds '@'; a later unquoting hop
 *                         would send to other.
 *   @local:user@other     SMTP_ADDR_ROUTE: an RFC 5321 source route; it is
 *                         stripped as RFC 5321 4.1.1.3 / C says, so domain
 *                         is "other" and relay checks see the real target.
 *   user@other@local      SMTP_ADDR_LOCAL_AT | SMTP_ADDR_LENIENT: two
 *                         unquoted '@' (invalid); without SMTP_OPT_STRICT
 *                         the last '@' separates, local = "user@other".
 *                         With SMTP_OPT_STRICT it is a syntax error.
 *   user!other@local      SMTP_ADDR_BANG: UUCP bang path in the local part.
 */
#define SMTP_ADDR_NULL          0x0001  /* <> (MAIL only, or RCPT: error) */
#define SMTP_ADDR_POSTMASTER    0x0002  /* <Postmaster> without domain (RCPT only) */
#define SMTP_ADDR_QUOTED        0x0004  /* local part was a quoted string */
#define SMTP_ADDR_LITERAL       0x0008  /* domain is an address literal [..] */
#define SMTP_ADDR_LITERAL6      0x0010  /* ... and it is [IPv6:...] */
#define SMTP_ADDR_ROUTE         0x0020  /* a source route was stripped */
#define SMTP_ADDR_PERCENT       0x0040  /* '%' in the local part */
#define SMTP_ADDR_LOCAL_AT      0x0080  /* '@' in the local part */
#define SMTP_ADDR_BANG          0x0100  /* '!' in the local part */
#define SMTP_ADDR_8BIT          0x0200  /* non-ASCII (valid UTF-8) bytes */
#define SMTP_ADDR_LENIENT       0x0400  /* accepted only because not strict:
                                         * no <>, space after ':', two '@' */
#define SMTP_ADDR_TRICKS (SMTP_ADDR_ROUTE | SMTP_ADDR_PERCENT | SMTP_ADDR_LOCAL_AT | SMTP_ADDR_BANG)

struct smtp_addr {
    struct strbuf *local;   /* local part, unquoted (quoted-pairs resolved) */
    struct strbuf *domain;  /* domain (as given, no trailing dot) or literal
                             * with its brackets "[192.0.2.1]"; "" for <> and
                             * <Postmaster> */
    struct strbuf *addr;    /* the address in external form: local part
                             * quoted again only if it is not a dot-string,
                             * "@", domain; "" for <>; "Postmaster" */
    unsigned flags;         /* SMTP_ADDR_* */
};

/* Parse options (ORed). */
#define SMTP_OPT_STRICT     0x01    /* RFC 5321 exactly: <> required, no space
                                     * after ':', no double '@', local <= 64 */
#define SMTP_OPT_SMTPUTF8   0x02    /* SMTPUTF8 advertised (MAIL) or used by
                                     * the transaction (RCPT) */
#define SMTP_OPT_8BITMIME   0x04    /* BODY=8BITMIME advertised */
#define SMTP_OPT_BINARYMIME 0x08    /* BODY=BINARYMIME advertised (with CHUNKING) */
#define SMTP_OPT_DSN        0x10    /* DSN advertised: RET ENVID NOTIFY ORCPT */
#define SMTP_OPT_AUTH       0x20    /* AUTH advertised: MAIL AUTH= */
#define SMTP_OPT_SIZE       0x40    /* SIZE advertised */
#define SMTP_OPT_ALL_EXT    (SMTP_OPT_SMTPUTF8 | SMTP_OPT_8BITMIME | SMTP_OPT_BINARYMIME | \
                             SMTP_OPT_DSN | SMTP_OPT_AUTH | SMTP_OPT_SIZE)

void smtp_addr_init(struct smtp_addr *addr);
void smtp_addr_free(struct smtp_addr *addr);

/* Parse a Mailbox ("local@domain", no angle brackets, no route) of len
 * bytes into addr (its strbufs replaced, its flags ORed).  Non-ASCII bytes
 * are accepted when they form valid UTF-8, and flagged SMTP_ADDR_8BIT: the
 * caller decides whether SMTPUTF8 allows them.  opts: SMTP_OPT_STRICT.
 * Returns 0 or -1 with why.  Sets SMTP_ADDR_QUOTED, _LITERAL(6), _PERCENT,
 * _LOCAL_AT, _BANG, _8BIT, _LENIENT. */
int smtp_mailbox_parse(const char *s, size_t len, int opts, struct smtp_addr *addr,
                       struct strbuf *why);
/* True if s is a valid RFC 5321 Domain (or, with utf8, with U-labels). */
bool smtp_domain_valid(const char *s, size_t len, bool utf8);
/* True if s is a valid address literal with brackets: [IPv4], [IPv6:...]. */
bool smtp_literal_valid(const char *s, size_t len, bool *ipv6_r);

/* ------------------------------------------------------------------ */
/* ESMTP parameters (RFC 1870 SIZE, 6152 BODY, 3030 BINARYMIME, 6531
 * SMTPUTF8, 3461 DSN, 4954 AUTH).                                      */

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER   0x01
#define SMTP_NOTIFY_SUCCESS 0x02
#define SMTP_NOTIFY_FAILURE 0x04
#define SMTP_NOTIFY_DELAY   0x08

/* Which parameters were present. */
#define SMTP_PARAM_SIZE     0x01
#define SMTP_PARAM_BODY     0x02
#define SMTP_PARAM_SMTPUTF8 0x04
#define SMTP_PARAM_RET      0x08
#define SMTP_PARAM_ENVID    0x10
#define SMTP_PARAM_AUTH     0x20
#define SMTP_PARAM_NOTIFY   0x40
#define SMTP_PARAM_ORCPT    0x80

struct smtp_params {
    unsigned seen;              /* SMTP_PARAM_* */
    uint64_t size;              /* SIZE= (bytes) */
    enum smtp_body body;
    bool smtputf8;
    enum smtp_ret ret;
    struct strbuf *envid;       /* ENVID=, xtext-decoded */
    struct strbuf *auth;        /* AUTH=, xtext-decoded; "<>" kept as is */
    unsigned notify;            /* SMTP_NOTIFY_* */
    struct strbuf *orcpt_type;  /* ORCPT= address type ("rfc822", "utf-8") */
    struct strbuf *orcpt;       /* ORCPT= address, xtext-decoded */
};

void smtp_params_init(struct smtp_params *p);
void smtp_params_reset(struct smtp_params *p);
void smtp_params_free(struct smtp_params *p);

/* Decode RFC 3461 xtext of len bytes, replacing out's content.  Rejects
 * characters outside "!".."~" other than "+HH", "=", a bad hex pair, and a
 * decoded byte that is a control character.  Returns 0 or -1 (with why). */
int smtp_xtext_decode(const char *s, size_t len, struct strbuf *out, struct strbuf *why);
/* Append the xtext encoding of s[0..len) to out. */
void smtp_xtext_encode(const char *s, size_t len, struct strbuf *out);

/*
 * Parse the arguments of MAIL ("FROM:<path> params") or RCPT ("TO:<path>
 * params"), i.e. smtp_cmd.args.  opts: SMTP_OPT_*; a parameter for an
 * extension whose bit is clear is unknown (555).  Both functions reset
 * addr and params first.  Returns SMTP_R_NONE, or the reply to send:
 *   SMTP_R_SYNTAX_ARGS        no "FROM:"/"TO:", a malformed parameter,
 *                             a duplicate parameter, too many parameters;
 *   SMTP_R_BAD_SENDER_SYNTAX  (MAIL) / SMTP_R_BAD_RCPT_SYNTAX (RCPT): path;
 *   SMTP_R_NEED_SMTPUTF8      8-bit address without SMTPUTF8;
 *   SMTP_R_UNKNOWN_PARAM      a parameter not known or not for this verb;
 *   SMTP_R_PARAM_NOT_IMPL     a known parameter with an unsupported value.
 * MAIL takes <> (SMTP_ADDR_NULL) and never <Postmaster>; RCPT takes
 * <Postmaster> (any case) and never <>.  For RCPT, SMTP_OPT_SMTPUTF8 means
 * "this transaction's MAIL had SMTPUTF8".
 */
enum smtp_reply_id smtp_parse_mail(const char *args, size_t len, int opts,
                                   struct smtp_addr *addr, struct smtp_params *params,
                                   struct strbuf *why);
enum smtp_reply_id smtp_parse_rcpt(const char *args, size_t len, int opts,
                                   struct smtp_addr *addr, struct smtp_params *params,
                                   struct strbuf *why);

/* ------------------------------------------------------------------ */
/* Replies (client side).                                              */

enum smtp_reply_status {
    SMTP_REPLY_MORE = 0,        /* a "NNN-" line: feed the next one */
    SMTP_REPLY_DONE,            /* the last line: the reply is complete */
    SMTP_REPLY_ERROR,           /* malformed; why says how; the connection
                                 * should be dropped (4.4.2-ish deferral) */
};

struct smtp_reply {
    int code;                   /* 250 */
    char esc[12];               /* "2.1.5" or "" if the lines carry none */
    struct strbuf *text;        /* lines' text after code and esc, joined
                                 * with "\n" (no trailing newline) */
    unsigned nlines;
    /* parser state */
    size_t line_max;            /* bound for one line, terminator included */
    bool done;
};

/* line_max: 0 for SMTP_REPLY_LINE_MAX; at most SMTP_CMD_LINE_MAX. */
void smtp_reply_init(struct smtp_reply *r, size_t line_max);
/* Forget the current reply, ready for the next. */
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
/* Feed one line (terminator CRLF or LF included or not).  Rules: 3 digits,
 * first 2-5, second 0-5; then "-" (more), " " or end of line (last); every
 * line has the same code; the enhanced code "c.sss.ddd" (c = first digit,
 * 1-3 digits each) is taken from the first line and stripped from every
 * line that repeats it; at most SMTP_REPLY_LINES_MAX lines and
 * SMTP_REPLY_TOTAL_MAX bytes of text; no NUL, bare CR, over-long line.
 * After DONE or ERROR, reset before feeding more. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                       struct strbuf *why);

#endif
