/*
 * pwscheme.h - password schemes with Dovecot's {SCHEME} prefixes.
 *
 * A stored password is "{SCHEME}data" or, without a prefix, data in the
 * passdb's default scheme (usually CRYPT).  Schemes:
 *   SHA512-CRYPT  $6$...      SHA256-CRYPT  $5$...
 *   BLF-CRYPT     $2y$/$2b$   YESCRYPT      $y$...
 *   CRYPT         anything crypt(3) (libxcrypt) accepts
 *   PLAIN, CLEARTEXT          the password itself (tests only)
 *   SCRAM-SHA-256 ITER,SALT64,STOREDKEY64,SERVERKEY64 (Dovecot's format)
 * Names are case-insensitive.  Comparisons run in constant time.
 */
#ifndef FACTEUR_PWSCHEME_H
#define FACTEUR_PWSCHEME_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define PWSCHEME_PASSWORD_MAX 1024      /* longest password we hash */
#define PWSCHEME_SCRAM_ITER_MIN 4096
#define PWSCHEME_SCRAM_ITER_MAX 1000000
#define PWSCHEME_SCRAM_SALT_MAX 128
#define PWSCHEME_SHA256_LEN 32

/* Split a stored password into its scheme and data.  With no "{...}"
 * prefix the scheme is default_scheme.  The scheme name is copied
 * upper-cased into scheme_r (at most 31 bytes); *data_r points into
 * stored.  Returns 0, or -1 (unterminated or over-long prefix). */
int pwscheme_split(const char *stored, const char *default_scheme,
                   char scheme_r[32], const char **data_r);

/* True if the scheme name is one pwscheme_verify knows. */
bool pwscheme_known(const char *scheme);

/* Check password against stored.  Returns 1 on a match, 0 on a mismatch,
 * -1 with why if stored is malformed or its scheme unknown (a broken
 * passdb entry, never a successful login). */
int pwscheme_verify(const char *password, const char *stored,
                    const char *default_scheme, struct strbuf *why);

/* Set out to "{SCHEME}hash" of password with a fresh random salt.
 * rounds 0 means the scheme's default cost.  Returns 0 or -1 with why. */
int pwscheme_hash(const char *scheme, const char *password, unsigned rounds,
                  struct strbuf *out, struct strbuf *why);

/* SCRAM-SHA-256 credentials, as stored or derived from a password. */
struct pwscheme_scram {
    unsigned iter;
    unsigned char salt[PWSCHEME_SCRAM_SALT_MAX];
    size_t salt_len;
    unsigned char stored_key[PWSCHEME_SHA256_LEN];
    unsigned char server_key[PWSCHEME_SHA256_LEN];
};

/* Parse Dovecot's SCRAM-SHA-256 data "ITER,SALT,STOREDKEY,SERVERKEY"
 * (without the prefix).  Returns 0 or -1 with why. */
int pwscheme_scram_parse(const char *data, struct pwscheme_scram *sc, struct strbuf *why);
/* Derive credentials from a password, salt and iteration count (RFC 5802:
 * SaltedPassword = PBKDF2-HMAC-SHA-256, ClientKey, StoredKey, ServerKey). */
int pwscheme_scram_derive(const char *password, const unsigned char *salt, size_t salt_len,
                          unsigned iter, struct pwscheme_scram *sc, struct strbuf *why);
/* Credentials for SCRAM from any stored password that allows it:
 * SCRAM-SHA-256 data, or PLAIN (derived with a salt made from the user
 * name so repeated logins see the same salt).  Returns 1 with sc set, 0 if
 * the scheme cannot serve SCRAM (a crypt hash), -1 with why if malformed. */
int pwscheme_scram_from_stored(const char *stored, const char *default_scheme,
                               const char *user, struct pwscheme_scram *sc,
                               struct strbuf *why);

#endif
