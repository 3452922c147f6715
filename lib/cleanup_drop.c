/*
 * cleanup_drop.c - the drop format between sendmail and facteur-drop
 * (contract in cleanup.h): framing of the writer, checks of the reader.
 *
 * facteur-drop runs set-group-ID for any local user, so its input is
 * untrusted: every record is checked here, I/O-free, before facteur-drop
 * writes it into a maildrop queue file.  The rules mirror what qfile's
 * writer accepts, so a record that passes never makes the writer fail
 * (a writer failure then means an I/O error), and what pickup expects.
 */
#include <string.h>

#include "cleanup.h"

void cleanup_drop_init(struct cleanup_drop *d, uint64_t size_limit)
{
    memset(d, 0, sizeof(*d));
    d->size_limit = size_limit;
}

static long type_max(int type)
{
    switch (type) {
    case QFILE_REC_SENDER: return QFILE_ADDR_MAX;
    case QFILE_REC_RCPT: return 1 + QFILE_ADDR_MAX;
    case QFILE_REC_RET: return 1;
    case QFILE_REC_ENVID: return QFILE_ENVID_MAX;
    case QFILE_REC_ATTR: return QFILE_ATTR_NAME_MAX + 1 + QFILE_ATTR_VALUE_MAX;
    case QFILE_REC_CONTENT: return QFILE_CHUNK_MAX;
    case QFILE_REC_END: return 0;
    default: return -1;
    }
}

int cleanup_drop_header(const struct cleanup_drop *d, const unsigned char hdr[CLEANUP_DROP_HDR],
                        int *type_r, uint32_t *len_r, struct strbuf *why)
{
    uint32_t len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
    long max = type_max(hdr[0]);

    if (d->ended) {
        strbuf_set(why, "data after the end record");
        return -1;
    }
    if (max < 0) {
        strbuf_set(why, "unknown record type");
        return -1;
    }
    if (len > (uint32_t)max) {
        strbuf_set(why, "record too long");
        return -1;
    }
    *type_r = hdr[0];
    *len_r = len;
    return 0;
}

/* No control character or DEL in [from, len), except a NUL at skip. */
static bool text_ok(const char *s, size_t from, size_t len, size_t skip)
{
    for (size_t i = from; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (i != skip && (ch < 0x20 || ch == 0x7f))
            return false;
    }
    return true;
}

static int fail(struct strbuf *why, const char *text)
{
    strbuf_set(why, text);
    return -1;
}

int cleanup_drop_check(struct cleanup_drop *d, int type, const char *data, size_t len,
                       struct strbuf *why)
{
    const char *nul;

    if (d->ended)
        return fail(why, "data after the end record");
    if (type_max(type) < 0 || len > (size_t)type_max(type))
        return fail(why, "bad record");
    if (d->in_content && type != QFILE_REC_CONTENT && type != QFILE_REC_END)
        return fail(why, "envelope record after the content");
    switch (type) {
    case QFILE_REC_SENDER:
        if (d->have_sender)
            return fail(why, "two senders");
        if (!text_ok(data, 0, len, (size_t)-1))
            return fail(why, "control character in the sender");
        d->have_sender = true;
        return 0;
    case QFILE_REC_RCPT:
        if (len < 2)
            return fail(why, "empty recipient");
        if ((unsigned char)data[0] & ~QFILE_NOTIFY_MASK)
            return fail(why, "bad NOTIFY bits");
        if (!text_ok(data, 1, len, (size_t)-1))
            return fail(why, "control character in a recipient");
        if (++d->nrcpt > QFILE_RCPT_MAX)
            return fail(why, "too many recipients");
        return 0;
    case QFILE_REC_RET:
        if (len != 1 || (data[0] != 'F' && data[0] != 'H'))
            return fail(why, "bad RET value");
        return 0;
    case QFILE_REC_ENVID:
        if (len == 0)
            return fail(why, "empty ENVID");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)data[i] <= ' ' || (unsigned char)data[i] > '~')
                return fail(why, "bad ENVID");
        return 0;
    case QFILE_REC_ATTR:
        /* Only the full name: client attributes would be forged. */
        nul = memchr(data, '\0', len);
        if (nul == NULL || (size_t)(nul - data) != strlen(CLEANUP_ATTR_FULL_NAME) ||
            memcmp(data, CLEANUP_ATTR_FULL_NAME, strlen(CLEANUP_ATTR_FULL_NAME)) != 0)
            return fail(why, "attribute not allowed");
        if (len - (size_t)(nul - data) - 1 > QFILE_ATTR_VALUE_MAX ||
            !text_ok(data, 0, len, (size_t)(nul - data)))
            return fail(why, "bad full name");
        return 0;
    case QFILE_REC_CONTENT:
        if (!d->have_sender || d->nrcpt == 0)
            return fail(why, "content before the sender and a recipient");
        d->in_content = true;
        d->content += len;
        if (d->size_limit > 0 && d->content > d->size_limit)
            return fail(why, "message too big");
        return 0;
    default:    /* QFILE_REC_END */
        if (!d->have_sender || d->nrcpt == 0)
            return fail(why, "no sender or no recipient");
        d->ended = true;
        return 0;
    }
}

void cleanup_drop_frame(struct strbuf *out, int type, const void *data, size_t len)
{
    unsigned char hdr[CLEANUP_DROP_HDR] = {
        (unsigned char)type, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
        (unsigned char)(len >> 8), (unsigned char)len,
    };

    strbuf_appendn(out, hdr, sizeof(hdr));
    if (len > 0)
        strbuf_appendn(out, data, len);
}
