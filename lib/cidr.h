/*
 * cidr.h - IPv4 and IPv6 addresses and networks: mynetworks and the like.
 *
 * An address is parsed with inet_pton into 16 bytes and a family; an
 * IPv4-mapped IPv6 address (::ffff:192.0.2.1) is turned into its IPv4
 * form, so a client that reaches an IPv6 socket from IPv4 matches IPv4
 * networks.  A network is "address/prefix" or a bare address (a host);
 * IPv6 may be written in brackets as Postfix wants in mynetworks
 * ("[2001:db8::]/32").  As Postfix, a network whose address has bits set
 * past its prefix is an error ("1.2.3.4/24": perhaps 1.2.3.0/24 was meant).
 *
 * Lists (the value of mynetworks, smtpd_client_event_limit_exceptions ...)
 * are separated by commas and/or white space; an entry starting with "!"
 * excludes (the first entry that matches decides, as Postfix match lists).
 * Host names and type:table entries are not network entries: parsing a
 * list with one fails with why, so the caller notices.
 */
#ifndef FACTEUR_CIDR_H
#define FACTEUR_CIDR_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Entries in one list, and the bytes of one entry. */
#define CIDR_LIST_MAX   10000
#define CIDR_ENTRY_MAX  100

struct cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* network bytes; IPv4 uses the first 4 */
    unsigned prefix;            /* 0-32 or 0-128 */
    bool negate;                /* "!" entry in a list */
};

/* Parse one address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]", a
 * mapped "::ffff:192.0.2.1" which becomes IPv4) of len bytes.  Returns 0
 * with *family_r (AF_INET or AF_INET6) and addr_r (4 or 16 bytes used),
 * or -1 if it is not an address.  Reads nothing past s[len]. */
int cidr_addr_parse(const char *s, size_t len, int *family_r, unsigned char addr_r[16]);

/* Parse one network entry of len bytes ("!" allowed first).  Returns 0,
 * or -1 with why. */
int cidr_parse(const char *s, size_t len, struct cidr *c, struct strbuf *why);

/* True if the address (as from cidr_addr_parse) is inside c (the negate
 * flag is ignored here). */
bool cidr_contains(const struct cidr *c, int family, const unsigned char addr[16]);

/* Print c as Postfix would write it in mynetworks ("192.0.2.0/24",
 * "[2001:db8::]/32"), appending to out. */
void cidr_format(const struct cidr *c, struct strbuf *out);

struct cidr_list;

/* Parse a list; NULL with why (naming the bad entry) on failure.  An
 * empty list matches nothing. */
struct cidr_list *cidr_list_parse(const char *list, struct strbuf *why);
/* 1 if addr (text) matches the list, 0 if not (also for a string that is
 * not an address, or a "!" entry matching first). */
int cidr_list_match(const struct cidr_list *l, const char *addr);
size_t cidr_list_count(const struct cidr_list *l);
void cidr_list_free(struct cidr_list **lp);

#endif
