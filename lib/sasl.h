/*
 * sasl.h - server side of the SASL mechanisms PLAIN (RFC 4616), LOGIN and
 * SCRAM-SHA-256 (RFC 5802, RFC 7677), as state machines without I/O.
 *
 * The caller (authd) feeds each client response, already base64-decoded,
 * to sasl_mech_step and acts on the result:
 *   SASL_STEP_CHALLENGE       send `out` (raw bytes; caller base64s) as CONT
 *   SASL_STEP_CHECK_PASSWORD  verify sasl_mech_user()/sasl_mech_password()
 *                             against the passdb; the exchange is over
 *   SASL_STEP_NEED_SCRAM      look up sasl_mech_user()'s SCRAM credentials
 *                             and call sasl_mech_scram_creds()
 *   SASL_STEP_DONE            authenticated as sasl_mech_user()
 *   SASL_STEP_FAIL            malformed or wrong: why says what (for logs)
 * A step after DONE, FAIL or CHECK_PASSWORD fails.  The first call gets
 * the initial response, or in == NULL when the client sent none.
 */
#ifndef FACTEUR_SASL_H
#define FACTEUR_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "pwscheme.h"
#include "strbuf.h"

#define SASL_RESPONSE_MAX 8192      /* decoded bytes in one client response */

enum sasl_step {
    SASL_STEP_FAIL = -1,
    SASL_STEP_CHALLENGE = 0,
    SASL_STEP_CHECK_PASSWORD,
    SASL_STEP_NEED_SCRAM,
    SASL_STEP_DONE,
};

struct sasl_mech;

/* A new exchange for mechanism name (case-insensitive); NULL if unknown. */
struct sasl_mech *sasl_mech_new(const char *name);
/* Free (wiping the password) and NULL *mp; mp or *mp may be NULL. */
void sasl_mech_free(struct sasl_mech **mp);

/* True if name is a mechanism this module implements. */
bool sasl_mech_supported(const char *name);
/* True if the mechanism sends the password in the clear (PLAIN, LOGIN). */
bool sasl_mech_is_plaintext(const char *name);
/* Canonical upper-case name of the exchange's mechanism. */
const char *sasl_mech_name(const struct sasl_mech *m);

/* Feed one client response (in/len; in == NULL: none).  `out` receives a
 * challenge (replaced).  See the results above. */
enum sasl_step sasl_mech_step(struct sasl_mech *m, const char *in, size_t len,
                              struct strbuf *out, struct strbuf *why);

/* The authentication identity, valid after CHECK_PASSWORD, NEED_SCRAM or
 * DONE (borrowed, lives as long as m); the password after CHECK_PASSWORD. */
const char *sasl_mech_user(const struct sasl_mech *m);
const char *sasl_mech_password(const struct sasl_mech *m);

/* SCRAM: give the user's credentials after NEED_SCRAM; returns
 * SASL_STEP_CHALLENGE (server-first-message in out) or SASL_STEP_FAIL. */
enum sasl_step sasl_mech_scram_creds(struct sasl_mech *m, const struct pwscheme_scram *sc,
                                     struct strbuf *out, struct strbuf *why);
/* SCRAM: use this server nonce part instead of a random one (tests). */
void sasl_mech_set_nonce(struct sasl_mech *m, const char *nonce);

#endif
