/*
 * base64.h - RFC 4648 base64, strict decoding.
 *
 * Used by the SASL mechanisms and the Dovecot auth protocol (responses travel
 * base64-encoded), and by the SCRAM stored-key format.  Decoding is strict:
 * only the standard alphabet, padding only at the end and only as needed, no
 * white space, so garbage from a peer is an error and never a partial value.
 */
#ifndef FACTEUR_BASE64_H
#define FACTEUR_BASE64_H

#include <stddef.h>

#include "strbuf.h"

/* Append the base64 encoding of len bytes at p to out. */
void base64_encode(struct strbuf *out, const void *p, size_t len);

/* Append the bytes encoded by the len characters at s to out.  Returns 0,
 * or -1 if s is not strict base64 (bad character, bad padding, length not
 * a multiple of 4) or out's maximum would be passed; out is then left as it
 * was. */
int base64_decode(struct strbuf *out, const char *s, size_t len);

/* Bytes that decoding len characters may produce (an upper bound). */
static inline size_t base64_decoded_max(size_t len) { return len / 4 * 3 + 3; }

#endif
