/*
 * base64.c - RFC 4648 base64 encoder and strict decoder.
 *
 * The decoder sees peer data (SASL responses, stored SCRAM keys), so it
 * accepts exactly the canonical form: length a multiple of 4, the standard
 * alphabet, at most two '=' and only at the end, and zero bits where the
 * padding leaves bits over.  Anything else fails without touching the
 * output buffer.
 */
#include <stdint.h>

#include "base64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(struct strbuf *out, const void *p, size_t len)
{
    const unsigned char *in = p;
    char quad[4];
    size_t i;

    for (i = 0; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        quad[0] = b64_alphabet[v >> 18 & 63];
        quad[1] = b64_alphabet[v >> 12 & 63];
        quad[2] = b64_alphabet[v >> 6 & 63];
        quad[3] = b64_alphabet[v & 63];
        strbuf_appendn(out, quad, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        quad[0] = b64_alphabet[v >> 18 & 63];
        quad[1] = b64_alphabet[v >> 12 & 63];
        quad[2] = quad[3] = '=';
        strbuf_appendn(out, quad, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        quad[0] = b64_alphabet[v >> 18 & 63];
        quad[1] = b64_alphabet[v >> 12 & 63];
        quad[2] = b64_alphabet[v >> 6 & 63];
        quad[3] = '=';
        strbuf_appendn(out, quad, 4);
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(struct strbuf *out, const char *s, size_t len)
{
    size_t start = strbuf_len(out);
    unsigned char bytes[3];
    size_t i;

    if (len % 4 != 0)
        return -1;
    for (i = 0; i < len; i += 4) {
        int v[4], pad = 0, k;
        for (k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                /* '=' may only end the last quad: "xx==" or "xxx=". */
                if (k == 2 && s[i + 3] != '=')
                    goto bad;
                pad = 4 - k;
                break;
            }
            if ((v[k] = b64_value(c)) < 0)
                goto bad;
        }
        if (pad == 2) {
            if (v[1] & 15)
                goto bad;
            bytes[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        } else if (pad == 1) {
            if (v[2] & 3)
                goto bad;
            bytes[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
            bytes[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        } else {
            bytes[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
            bytes[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
            bytes[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
        }
        if (strbuf_appendn(out, bytes, (size_t)(3 - pad)) < 0)
            goto bad;
    }
    return 0;
bad:
    strbuf_truncate(out, start);
    return -1;
}
