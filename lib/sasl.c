/*
 * sasl.c - PLAIN, LOGIN and SCRAM-SHA-256 server mechanisms.
 *
 * authd runs one struct sasl_mech per AUTH request.  Every byte comes from
 * the network client (through smtpd, imapd, pop3d or Postfix), so each
 * response is bounded (SASL_RESPONSE_MAX), user names are checked with
 * auth_proto_valid_user, and any malformed message ends the exchange with
 * SASL_STEP_FAIL.  SCRAM follows RFC 5802 without channel binding (a
 * client asking for "p=" is refused; "y" is accepted since we never offer
 * -PLUS); the proof is compared in constant time.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth_proto.h"
#include "base64.h"
#include "mem.h"
#include "sasl.h"

#define SCRAM_NONCE_MAX 256

enum mech_kind { MECH_PLAIN, MECH_LOGIN, MECH_SCRAM };

enum mech_state {
    ST_START,           /* nothing received */
    ST_LOGIN_USER,      /* LOGIN: waiting for the user name */
    ST_LOGIN_PASS,      /* LOGIN: waiting for the password */
    ST_SCRAM_FIRST,     /* SCRAM: empty challenge sent, waiting for client-first */
    ST_SCRAM_CREDS,     /* SCRAM: waiting for sasl_mech_scram_creds */
    ST_SCRAM_FINAL,     /* SCRAM: waiting for client-final-message */
    ST_SCRAM_ACK,       /* SCRAM: server-final sent, waiting for "" */
    ST_OVER,            /* done or failed */
};

struct sasl_mech {
    enum mech_kind kind;
    enum mech_state state;
    char *user;
    char *password;
    /* SCRAM */
    char *gs2_header;           /* "n,," or "n,a=x," */
    char *client_first_bare;
    char *server_first;
    char *nonce;                /* client nonce + server nonce */
    char *server_nonce;         /* set by tests, else random */
    struct pwscheme_scram creds;
};

static const struct {
    const char *name;
    enum mech_kind kind;
    bool plaintext;
} mech_table[] = {
    {"PLAIN", MECH_PLAIN, true},
    {"LOGIN", MECH_LOGIN, true},
    {"SCRAM-SHA-256", MECH_SCRAM, false},
};

#define MECH_COUNT (sizeof(mech_table) / sizeof(mech_table[0]))

static int mech_index(const char *name)
{
    for (size_t i = 0; i < MECH_COUNT; i++)
        if (strcasecmp(name, mech_table[i].name) == 0)
            return (int)i;
    return -1;
}

bool sasl_mech_supported(const char *name)
{
    return mech_index(name) >= 0;
}

bool sasl_mech_is_plaintext(const char *name)
{
    int i = mech_index(name);
    return i >= 0 && mech_table[i].plaintext;
}

struct sasl_mech *sasl_mech_new(const char *name)
{
    int i = mech_index(name);
    struct sasl_mech *m;

    if (i < 0)
        return NULL;
    m = xcalloc(1, sizeof(*m));
    m->kind = mech_table[i].kind;
    m->state = ST_START;
    return m;
}

const char *sasl_mech_name(const struct sasl_mech *m)
{
    for (size_t i = 0; i < MECH_COUNT; i++)
        if (mech_table[i].kind == m->kind)
            return mech_table[i].name;
    return "?";
}

static void free_secret(char **p)
{
    if (*p) {
        explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

void sasl_mech_free(struct sasl_mech **mp)
{
    struct sasl_mech *m;

    if (mp == NULL || (m = *mp) == NULL)
        return;
    free(m->user);
    free_secret(&m->password);
    free(m->gs2_header);
    free(m->client_first_bare);
    free(m->server_first);
    free(m->nonce);
    free(m->server_nonce);
    explicit_bzero(&m->creds, sizeof(m->creds));
    free(m);
    *mp = NULL;
}

const char *sasl_mech_user(const struct sasl_mech *m)
{
    return m->user;
}

const char *sasl_mech_password(const struct sasl_mech *m)
{
    return m->password;
}

void sasl_mech_set_nonce(struct sasl_mech *m, const char *nonce)
{
    free(m->server_nonce);
    m->server_nonce = xstrdup(nonce);
}

static enum sasl_step fail(struct sasl_mech *m, struct strbuf *why, const char *reason)
{
    strbuf_set(why, reason);
    m->state = ST_OVER;
    return SASL_STEP_FAIL;
}

/* A password: no NUL (the caller already bounded the length). */
static bool valid_password(const char *in, size_t len)
{
    return memchr(in, 0, len) == NULL;
}

static enum sasl_step plain_step(struct sasl_mech *m, const char *in, size_t len,
                                 struct strbuf *out, struct strbuf *why)
{
    const char *authzid, *authcid, *pass, *nul1, *nul2;
    size_t passlen;

    if (in == NULL) {
        strbuf_reset(out);
        return SASL_STEP_CHALLENGE;    /* empty challenge: send your response */
    }
    authzid = in;
    if ((nul1 = memchr(in, 0, len)) == NULL
        || (nul2 = memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - in))) == NULL)
        return fail(m, why, "PLAIN response is not authzid NUL authcid NUL password");
    authcid = nul1 + 1;
    pass = nul2 + 1;
    passlen = len - (size_t)(pass - in);
    if (!valid_password(pass, passlen))
        return fail(m, why, "PLAIN response has more than two NULs");
    if (!auth_proto_valid_user(authcid))
        return fail(m, why, "PLAIN user name is empty, too long or malformed");
    if (authzid[0] != 0 && strcmp(authzid, authcid) != 0)
        return fail(m, why, "PLAIN authorization identity differs from the user");
    m->user = xstrdup(authcid);
    m->password = xstrndup(pass, passlen);
    m->state = ST_OVER;
    return SASL_STEP_CHECK_PASSWORD;
}

static enum sasl_step login_step(struct sasl_mech *m, const char *in, size_t len,
                                 struct strbuf *out, struct strbuf *why)
{
    switch (m->state) {
    case ST_START:
        if (in == NULL) {
            strbuf_set(out, "Username:");
            m->state = ST_LOGIN_USER;
            return SASL_STEP_CHALLENGE;
        }
        /* An initial response is the user name (RFC 4954 clients do so). */
        /* FALLTHROUGH */
    case ST_LOGIN_USER:
        if (in == NULL || memchr(in, 0, len) != NULL)
            return fail(m, why, "LOGIN user name contains NUL");
        m->user = xstrndup(in, len);
        if (!auth_proto_valid_user(m->user))
            return fail(m, why, "LOGIN user name is empty, too long or malformed");
        strbuf_set(out, "Password:");
        m->state = ST_LOGIN_PASS;
        return SASL_STEP_CHALLENGE;
    case ST_LOGIN_PASS:
        if (in == NULL || !valid_password(in, len))
            return fail(m, why, "LOGIN password contains NUL");
        m->password = xstrndup(in, len);
        m->state = ST_OVER;
        return SASL_STEP_CHECK_PASSWORD;
    default:
        return fail(m, why, "LOGIN exchange already finished");
    }
}

/* RFC 5802 saslname: "=2C" is ',', "=3D" is '=', any other '=' is wrong.
 * Returns an owned string or NULL. */
static char *scram_decode_name(const char *s, size_t len)
{
    struct strbuf *sb = strbuf_new(len + 1);

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=') {
            if (i + 2 < len && s[i + 1] == '2' && s[i + 2] == 'C')
                strbuf_appendc(sb, ',');
            else if (i + 2 < len && s[i + 1] == '3' && s[i + 2] == 'D')
                strbuf_appendc(sb, '=');
            else {
                strbuf_free(&sb);
                return NULL;
            }
            i += 2;
        } else if (s[i] == ',' || s[i] == 0) {
            strbuf_free(&sb);
            return NULL;
        } else {
            strbuf_appendc(sb, s[i]);
        }
    }
    return strbuf_steal(&sb);
}

static bool scram_valid_nonce(const char *s, size_t len)
{
    if (len == 0 || len > SCRAM_NONCE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',')
            return false;
    return true;
}

static enum sasl_step scram_first(struct sasl_mech *m, const char *in, size_t len,
                                  struct strbuf *out, struct strbuf *why)
{
    const char *p, *end = in + len, *bare, *c;
    const char *cnonce;

    if (memchr(in, 0, len) != NULL)
        return fail(m, why, "SCRAM client-first-message contains NUL");
    /* gs2-header: cbind-flag "," [authzid] "," */
    if (len < 3 || (in[0] != 'n' && in[0] != 'y') || in[1] != ',') {
        if (len > 0 && in[0] == 'p')
            return fail(m, why, "SCRAM channel binding requested but not offered");
        return fail(m, why, "SCRAM client-first-message has a bad GS2 header");
    }
    p = in + 2;
    if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
        return fail(m, why, "SCRAM GS2 header is not terminated");
    if (c != p) {
        char *authzid;

        if (c - p < 3 || p[0] != 'a' || p[1] != '=')
            return fail(m, why, "SCRAM GS2 header has a bad authzid");
        if ((authzid = scram_decode_name(p + 2, (size_t)(c - p - 2))) == NULL)
            return fail(m, why, "SCRAM authzid is malformed");
        m->user = authzid;    /* compared with the user name below */
    }
    bare = c + 1;
    m->gs2_header = xstrndup(in, (size_t)(bare - in));
    m->client_first_bare = xstrndup(bare, (size_t)(end - bare));
    /* client-first-bare: "n=" saslname ",r=" nonce ["," extensions] */
    if (end - bare < 2 || bare[0] != 'n' || bare[1] != '=')
        return fail(m, why, "SCRAM client-first-message has no user name");
    p = bare + 2;
    if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
        return fail(m, why, "SCRAM client-first-message has no nonce");
    char *user = scram_decode_name(p, (size_t)(c - p));
    if (user == NULL || !auth_proto_valid_user(user)) {
        free(user);
        return fail(m, why, "SCRAM user name is empty, too long or malformed");
    }
    if (m->user != NULL && strcmp(m->user, user) != 0) {
        free(user);
        return fail(m, why, "SCRAM authorization identity differs from the user");
    }
    free(m->user);
    m->user = user;
    p = c + 1;
    if (end - p < 2 || p[0] != 'r' || p[1] != '=')
        return fail(m, why, "SCRAM client-first-message has no nonce");
    cnonce = p + 2;
    c = memchr(cnonce, ',', (size_t)(end - cnonce));
    if (!scram_valid_nonce(cnonce, (size_t)((c ? c : end) - cnonce)))
        return fail(m, why, "SCRAM client nonce is malformed");
    if (c != NULL && c + 1 < end && c[1] == 'm')
        return fail(m, why, "SCRAM mandatory extension not supported");

    struct strbuf *nonce = strbuf_new(64);
    strbuf_appendn(nonce, cnonce, (size_t)((c ? c : end) - cnonce));
    if (m->server_nonce != NULL) {
        strbuf_append(nonce, m->server_nonce);
    } else {
        unsigned char rnd[18];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            strbuf_free(&nonce);
            return fail(m, why, "getrandom failed for the SCRAM nonce");
        }
        base64_encode(nonce, rnd, sizeof(rnd));
    }
    m->nonce = strbuf_steal(&nonce);
    m->state = ST_SCRAM_CREDS;
    return SASL_STEP_NEED_SCRAM;
}

enum sasl_step sasl_mech_scram_creds(struct sasl_mech *m, const struct pwscheme_scram *sc,
                                     struct strbuf *out, struct strbuf *why)
{
    if (m->kind != MECH_SCRAM || m->state != ST_SCRAM_CREDS)
        return fail(m, why, "SCRAM credentials given out of order");
    m->creds = *sc;
    strbuf_printf(out, "r=%s,s=", m->nonce);
    base64_encode(out, sc->salt, sc->salt_len);
    strbuf_appendf(out, ",i=%u", sc->iter);
    m->server_first = xstrdup(strbuf_str(out));
    m->state = ST_SCRAM_FINAL;
    return SASL_STEP_CHALLENGE;
}

static enum sasl_step scram_final(struct sasl_mech *m, const char *in, size_t len,
                                  struct strbuf *out, struct strbuf *why)
{
    const char *end, *proof_at, *p;
    struct strbuf *tmp;
    unsigned char sig[PWSCHEME_SHA256_LEN], client_key[PWSCHEME_SHA256_LEN];
    unsigned char stored[PWSCHEME_SHA256_LEN], server_sig[PWSCHEME_SHA256_LEN];
    unsigned int mdlen;
    bool ok;

    if (in == NULL || memchr(in, 0, len) != NULL)
        return fail(m, why, "SCRAM client-final-message missing or contains NUL");
    end = in + len;
    /* "c=" b64(gs2-header) ",r=" nonce ["," ext]* ",p=" proof; p last. */
    proof_at = NULL;
    for (p = in; p + 3 <= end; p++)
        if (p[0] == ',' && p[1] == 'p' && p[2] == '=')
            proof_at = p;
    if (proof_at == NULL || len < 2 || in[0] != 'c' || in[1] != '=')
        return fail(m, why, "SCRAM client-final-message is malformed");

    const char *c_end = memchr(in, ',', len);
    tmp = strbuf_new(64);
    if (c_end == NULL || base64_decode(tmp, in + 2, (size_t)(c_end - in - 2)) < 0
        || strcmp(strbuf_str(tmp), m->gs2_header) != 0) {
        strbuf_free(&tmp);
        return fail(m, why, "SCRAM channel binding data does not match the GS2 header");
    }
    p = c_end + 1;
    size_t nlen = strlen(m->nonce);
    if (end - p < (long)nlen + 2 || p[0] != 'r' || p[1] != '='
        || memcmp(p + 2, m->nonce, nlen) != 0 || (p + 2 + nlen != end && p[2 + nlen] != ',')) {
        strbuf_free(&tmp);
        return fail(m, why, "SCRAM nonce does not match");
    }
    strbuf_reset(tmp);
    if (base64_decode(tmp, proof_at + 3, (size_t)(end - proof_at - 3)) < 0
        || strbuf_len(tmp) != PWSCHEME_SHA256_LEN) {
        strbuf_free(&tmp);
        return fail(m, why, "SCRAM proof is not base64 of 32 bytes");
    }
    memcpy(client_key, strbuf_str(tmp), PWSCHEME_SHA256_LEN);

    /* AuthMessage = client-first-bare "," server-first "," final-without-proof */
    strbuf_printf(tmp, "%s,%s,", m->client_first_bare, m->server_first);
    strbuf_appendn(tmp, in, (size_t)(proof_at - in));
    ok = HMAC(EVP_sha256(), m->creds.stored_key, PWSCHEME_SHA256_LEN,
              (const unsigned char *)strbuf_str(tmp), strbuf_len(tmp), sig, &mdlen) != NULL
        && HMAC(EVP_sha256(), m->creds.server_key, PWSCHEME_SHA256_LEN,
                (const unsigned char *)strbuf_str(tmp), strbuf_len(tmp), server_sig,
                &mdlen) != NULL;
    strbuf_free(&tmp);
    if (!ok)
        return fail(m, why, "OpenSSL HMAC failed");
    for (size_t i = 0; i < PWSCHEME_SHA256_LEN; i++)
        client_key[i] ^= sig[i];    /* ClientKey = ClientProof XOR ClientSignature */
    SHA256(client_key, sizeof(client_key), stored);
    explicit_bzero(client_key, sizeof(client_key));
    if (CRYPTO_memcmp(stored, m->creds.stored_key, PWSCHEME_SHA256_LEN) != 0)
        return fail(m, why, "Password mismatch");
    strbuf_set(out, "v=");
    base64_encode(out, server_sig, sizeof(server_sig));
    m->state = ST_SCRAM_ACK;
    return SASL_STEP_CHALLENGE;
}

enum sasl_step sasl_mech_step(struct sasl_mech *m, const char *in, size_t len,
                              struct strbuf *out, struct strbuf *why)
{
    if (in != NULL && len > SASL_RESPONSE_MAX)
        return fail(m, why, "SASL response too long");
    if (m->state == ST_OVER)
        return fail(m, why, "SASL exchange already finished");
    switch (m->kind) {
    case MECH_PLAIN:
        return plain_step(m, in, len, out, why);
    case MECH_LOGIN:
        return login_step(m, in, len, out, why);
    case MECH_SCRAM:
        switch (m->state) {
        case ST_START:
            if (in == NULL) {
                strbuf_reset(out);
                m->state = ST_SCRAM_FIRST;
                return SASL_STEP_CHALLENGE;
            }
            return scram_first(m, in, len, out, why);
        case ST_SCRAM_FIRST:
            if (in == NULL)
                return fail(m, why, "SCRAM client-first-message missing");
            return scram_first(m, in, len, out, why);
        case ST_SCRAM_FINAL:
            return scram_final(m, in, len, out, why);
        case ST_SCRAM_ACK:
            m->state = ST_OVER;
            if (in != NULL && len != 0)
                return fail(m, why, "SCRAM client sent data after server-final");
            return SASL_STEP_DONE;
        default:
            return fail(m, why, "SCRAM step out of order");
        }
    }
    return fail(m, why, "unknown mechanism state");
}
