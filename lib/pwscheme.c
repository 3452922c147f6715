/*
 * pwscheme.c - verify and generate stored passwords in Dovecot's schemes.
 *
 * authd calls pwscheme_verify for every password login and
 * pwscheme_scram_from_stored for SCRAM; facteur-auth hash calls
 * pwscheme_hash.  The stored value comes from an administrator's passdb,
 * the password from a network peer: both are bounded, neither is trusted
 * to be well formed.  crypt schemes go through libxcrypt's crypt_r (one
 * struct crypt_data per call: it is large and not shared, so the code is
 * reentrant); every comparison is constant-time (CRYPTO_memcmp) so a
 * mismatch costs the same however many bytes agree.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base64.h"
#include "mem.h"
#include "pwscheme.h"

#define SCRAM_DEFAULT_ITER 4096
#define SCRAM_SALT_LEN 16

struct crypt_scheme {
    const char *name;
    const char *prefix;     /* crypt_gensalt prefix; NULL: cannot generate */
};

static const struct crypt_scheme crypt_schemes[] = {
    {"SHA512-CRYPT", "$6$"},
    {"SHA256-CRYPT", "$5$"},
    {"BLF-CRYPT", "$2y$"},
    {"YESCRYPT", "$y$"},
    {"CRYPT", NULL},
};

static const struct crypt_scheme *crypt_scheme_find(const char *scheme)
{
    for (size_t i = 0; i < sizeof(crypt_schemes) / sizeof(crypt_schemes[0]); i++)
        if (strcasecmp(scheme, crypt_schemes[i].name) == 0)
            return &crypt_schemes[i];
    return NULL;
}

static bool scheme_is_plain(const char *scheme)
{
    return strcasecmp(scheme, "PLAIN") == 0 || strcasecmp(scheme, "CLEARTEXT") == 0;
}

static bool scheme_is_scram(const char *scheme)
{
    return strcasecmp(scheme, "SCRAM-SHA-256") == 0;
}

bool pwscheme_known(const char *scheme)
{
    return crypt_scheme_find(scheme) != NULL || scheme_is_plain(scheme)
        || scheme_is_scram(scheme);
}

int pwscheme_split(const char *stored, const char *default_scheme,
                   char scheme_r[32], const char **data_r)
{
    const char *end;
    size_t n;

    if (stored[0] != '{') {
        snprintf(scheme_r, 32, "%s", default_scheme ? default_scheme : "CRYPT");
        for (char *p = scheme_r; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        *data_r = stored;
        return 0;
    }
    if ((end = strchr(stored, '}')) == NULL)
        return -1;
    n = (size_t)(end - stored - 1);
    if (n == 0 || n >= 32)
        return -1;
    for (size_t i = 0; i < n; i++)
        scheme_r[i] = (char)toupper((unsigned char)stored[1 + i]);
    scheme_r[n] = 0;
    *data_r = end + 1;
    return 0;
}

/* Constant-time equality of two byte strings (length is not secret). */
static bool ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

static int crypt_verify(const char *password, const char *hash, struct strbuf *why)
{
    struct crypt_data *cd;
    const char *res;
    int ret;

    if (hash[0] == 0 || hash[0] == '*' || hash[0] == '!') {
        strbuf_set(why, "stored crypt hash is empty or locked");
        return -1;
    }
    cd = xcalloc(1, sizeof(*cd));
    res = crypt_r(password, hash, cd);
    if (res == NULL || res[0] == '*') {
        strbuf_set(why, "crypt(3) does not accept the stored hash");
        ret = -1;
    } else {
        ret = ct_equal(res, strlen(res), hash, strlen(hash)) ? 1 : 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ret;
}

static int scram_verify(const char *password, const char *data, struct strbuf *why)
{
    struct pwscheme_scram want, got;

    if (pwscheme_scram_parse(data, &want, why) < 0)
        return -1;
    if (pwscheme_scram_derive(password, want.salt, want.salt_len, want.iter, &got, why) < 0)
        return -1;
    return CRYPTO_memcmp(want.stored_key, got.stored_key, sizeof(got.stored_key)) == 0
        && CRYPTO_memcmp(want.server_key, got.server_key, sizeof(got.server_key)) == 0;
}

int pwscheme_verify(const char *password, const char *stored,
                    const char *default_scheme, struct strbuf *why)
{
    char scheme[32];
    const char *data;

    if (strlen(password) > PWSCHEME_PASSWORD_MAX)
        return 0;
    if (pwscheme_split(stored, default_scheme, scheme, &data) < 0) {
        strbuf_set(why, "malformed {SCHEME} prefix in stored password");
        return -1;
    }
    if (scheme_is_plain(scheme))
        return ct_equal(password, strlen(password), data, strlen(data)) ? 1 : 0;
    if (scheme_is_scram(scheme))
        return scram_verify(password, data, why);
    if (crypt_scheme_find(scheme) != NULL)
        return crypt_verify(password, data, why);
    strbuf_printf(why, "unknown password scheme %s", scheme);
    return -1;
}

static int scram_format(const struct pwscheme_scram *sc, struct strbuf *out)
{
    strbuf_printf(out, "{SCRAM-SHA-256}%u,", sc->iter);
    base64_encode(out, sc->salt, sc->salt_len);
    strbuf_appendc(out, ',');
    base64_encode(out, sc->stored_key, sizeof(sc->stored_key));
    strbuf_appendc(out, ',');
    base64_encode(out, sc->server_key, sizeof(sc->server_key));
    return 0;
}

int pwscheme_hash(const char *scheme, const char *password, unsigned rounds,
                  struct strbuf *out, struct strbuf *why)
{
    const struct crypt_scheme *cs;

    if (strlen(password) > PWSCHEME_PASSWORD_MAX) {
        strbuf_set(why, "password too long");
        return -1;
    }
    if (scheme_is_plain(scheme)) {
        strbuf_printf(out, "{PLAIN}%s", password);
        return 0;
    }
    if (scheme_is_scram(scheme)) {
        struct pwscheme_scram sc;
        unsigned char salt[SCRAM_SALT_LEN];

        if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt)) {
            strbuf_printf(why, "getrandom: %m");
            return -1;
        }
        if (pwscheme_scram_derive(password, salt, sizeof(salt),
                                  rounds ? rounds : SCRAM_DEFAULT_ITER, &sc, why) < 0)
            return -1;
        return scram_format(&sc, out);
    }
    if ((cs = crypt_scheme_find(scheme)) == NULL || cs->prefix == NULL) {
        strbuf_printf(why, "cannot generate hashes in scheme %s", scheme);
        return -1;
    }

    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char *res;
    int ret = 0;

    if (crypt_gensalt_rn(cs->prefix, rounds, NULL, 0, setting, sizeof(setting)) == NULL) {
        strbuf_printf(why, "crypt_gensalt %s: %m", cs->prefix);
        return -1;
    }
    cd = xcalloc(1, sizeof(*cd));
    res = crypt_r(password, setting, cd);
    if (res == NULL || res[0] == '*') {
        strbuf_printf(why, "crypt(3) cannot hash with %s", cs->prefix);
        ret = -1;
    } else {
        strbuf_printf(out, "{%s}%s", cs->name, res);
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ret;
}

static int decode_exact(const char *s, size_t len, unsigned char *dst, size_t want_min,
                        size_t want_max, size_t *len_r)
{
    struct strbuf *sb = strbuf_new(base64_decoded_max(len));
    int ret = -1;

    if (base64_decode(sb, s, len) == 0 && strbuf_len(sb) >= want_min
        && strbuf_len(sb) <= want_max) {
        memcpy(dst, strbuf_str(sb), strbuf_len(sb));
        *len_r = strbuf_len(sb);
        ret = 0;
    }
    strbuf_free(&sb);
    return ret;
}

int pwscheme_scram_parse(const char *data, struct pwscheme_scram *sc, struct strbuf *why)
{
    const char *f[4];
    size_t flen[4];
    const char *p = data;
    size_t klen;
    char *end;
    unsigned long iter;

    for (int i = 0; i < 4; i++) {
        const char *comma = strchr(p, ',');
        f[i] = p;
        if (i < 3) {
            if (comma == NULL)
                goto bad;
            flen[i] = (size_t)(comma - p);
            p = comma + 1;
        } else {
            if (comma != NULL)
                goto bad;
            flen[i] = strlen(p);
        }
    }
    if (flen[0] == 0 || flen[0] > 7 || !isdigit((unsigned char)f[0][0]))
        goto bad;
    errno = 0;
    iter = strtoul(f[0], &end, 10);
    if (end != f[0] + flen[0] || iter < PWSCHEME_SCRAM_ITER_MIN || iter > PWSCHEME_SCRAM_ITER_MAX)
        goto bad;
    sc->iter = (unsigned)iter;
    if (decode_exact(f[1], flen[1], sc->salt, 1, sizeof(sc->salt), &sc->salt_len) < 0
        || decode_exact(f[2], flen[2], sc->stored_key, PWSCHEME_SHA256_LEN,
                        PWSCHEME_SHA256_LEN, &klen) < 0
        || decode_exact(f[3], flen[3], sc->server_key, PWSCHEME_SHA256_LEN,
                        PWSCHEME_SHA256_LEN, &klen) < 0)
        goto bad;
    return 0;
bad:
    strbuf_set(why, "malformed SCRAM-SHA-256 stored credentials");
    return -1;
}

int pwscheme_scram_derive(const char *password, const unsigned char *salt, size_t salt_len,
                          unsigned iter, struct pwscheme_scram *sc, struct strbuf *why)
{
    unsigned char salted[PWSCHEME_SHA256_LEN], client_key[PWSCHEME_SHA256_LEN];
    unsigned int mdlen = 0;
    int ok;

    if (salt_len == 0 || salt_len > sizeof(sc->salt) || iter < 1
        || iter > PWSCHEME_SCRAM_ITER_MAX) {
        strbuf_set(why, "bad SCRAM salt or iteration count");
        return -1;
    }
    ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
                           EVP_sha256(), sizeof(salted), salted) == 1
        && HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10,
                client_key, &mdlen) != NULL
        && HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Server Key", 10,
                sc->server_key, &mdlen) != NULL
        && SHA256(client_key, sizeof(client_key), sc->stored_key) != NULL;
    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(client_key, sizeof(client_key));
    if (!ok) {
        strbuf_set(why, "OpenSSL SCRAM derivation failed");
        return -1;
    }
    sc->iter = iter;
    memcpy(sc->salt, salt, salt_len);
    sc->salt_len = salt_len;
    return 0;
}

int pwscheme_scram_from_stored(const char *stored, const char *default_scheme,
                               const char *user, struct pwscheme_scram *sc,
                               struct strbuf *why)
{
    char scheme[32];
    const char *data;

    if (pwscheme_split(stored, default_scheme, scheme, &data) < 0) {
        strbuf_set(why, "malformed {SCHEME} prefix in stored password");
        return -1;
    }
    if (scheme_is_scram(scheme))
        return pwscheme_scram_parse(data, sc, why) < 0 ? -1 : 1;
    if (scheme_is_plain(scheme)) {
        unsigned char salt[SHA256_DIGEST_LENGTH];

        /* A stable salt per user: the salt is public in SCRAM anyway, and
         * a stable one keeps a client's cached SaltedPassword valid. */
        SHA256((const unsigned char *)user, strlen(user), salt);
        return pwscheme_scram_derive(data, salt, 16, SCRAM_DEFAULT_ITER, sc, why) < 0 ? -1 : 1;
    }
    return 0;
}
