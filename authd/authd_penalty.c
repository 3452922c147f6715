/*
 * authd_penalty.c - the price of a failed login.
 *
 * authd_conn asks penalty_failure() how long to wait before it answers
 * FAIL: auth_failure_delay doubled for each earlier recent failure from
 * the same client address or against the same user, up to
 * auth_failure_delay_max.  A client+user pair that fails
 * auth_lockout_threshold times is refused for auth_lockout_time, even with
 * the right password.  State is a bounded table (PENALTY_TABLE_MAX
 * entries, the least recently used one is reused), so a flood of distinct
 * addresses or names costs memory once; an entry older than the lockout
 * window is forgotten.  Keys come from the network (user names were
 * normalised and checked, addresses parsed) and are copied bounded.
 */
#include <stdio.h>
#include <string.h>

#include "auth_proto.h"
#include "authd.h"

#define KEY_MAX (AUTH_PROTO_USER_MAX + 64)

struct penalty_entry {
    char key[KEY_MAX];          /* "i:ADDR", "u:USER" or "p:ADDR/USER" */
    unsigned failures;
    uint64_t last;              /* last failure (ms) */
    uint64_t locked_until;
};

static struct penalty_entry pen_table[PENALTY_TABLE_MAX];
static unsigned pen_used;
static struct penalty_conf pen_conf = {2000, 15000, 10, 900000};

void penalty_configure(const struct penalty_conf *pc)
{
    pen_conf = *pc;
}

unsigned penalty_count(void)
{
    return pen_used;
}

static void make_key(char *key, char kind, const char *rip, const char *user)
{
    switch (kind) {
    case 'i':
        snprintf(key, KEY_MAX, "i:%s", rip);
        break;
    case 'u':
        snprintf(key, KEY_MAX, "u:%s", user);
        break;
    default:
        snprintf(key, KEY_MAX, "p:%s/%s", rip, user);
        break;
    }
}

/* Forget an entry whose last failure is older than the window. */
static bool expired(const struct penalty_entry *e, uint64_t now)
{
    uint64_t window = (uint64_t)(pen_conf.lockout_ms > 0 ? pen_conf.lockout_ms : 900000);
    return e->locked_until <= now && now - e->last > window;
}

static struct penalty_entry *find(const char *key, uint64_t now, bool create)
{
    struct penalty_entry *oldest = NULL;

    for (unsigned i = 0; i < pen_used; i++) {
        struct penalty_entry *e = &pen_table[i];
        if (strcmp(e->key, key) == 0) {
            if (expired(e, now)) {
                e->failures = 0;
                e->locked_until = 0;
            }
            return e;
        }
        if (oldest == NULL || e->last < oldest->last)
            oldest = e;
    }
    if (!create)
        return NULL;
    if (pen_used < PENALTY_TABLE_MAX)
        oldest = &pen_table[pen_used++];
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->key, sizeof(oldest->key), "%s", key);
    return oldest;
}

bool penalty_locked(const char *rip, const char *user, uint64_t now)
{
    char key[KEY_MAX];
    struct penalty_entry *e;

    make_key(key, 'p', rip, user);
    e = find(key, now, false);
    return e != NULL && e->locked_until > now;
}

long penalty_failure(const char *rip, const char *user, uint64_t now)
{
    static const char kinds[] = {'i', 'u', 'p'};
    char key[KEY_MAX];
    unsigned most = 0;
    long delay;

    for (size_t k = 0; k < sizeof(kinds); k++) {
        struct penalty_entry *e;

        /* A failure before any user name (bad base64, a malformed SASL
         * message) charges the address only: an empty name is no one's. */
        if (kinds[k] != 'i' && user[0] == 0)
            continue;
        make_key(key, kinds[k], rip, user);
        e = find(key, now, true);
        if (e->failures < 1000000)
            e->failures++;
        e->last = now;
        if (kinds[k] == 'p') {
            if (pen_conf.lockout_threshold > 0
                && e->failures >= (unsigned long)pen_conf.lockout_threshold)
                e->locked_until = now + (uint64_t)pen_conf.lockout_ms;
        } else if (e->failures > most) {
            most = e->failures;
        }
    }
    /* base * 2^(most-1), capped; the shift is bounded so it cannot overflow. */
    delay = pen_conf.base_ms;
    for (unsigned i = 1; i < most && delay > 0 && delay < pen_conf.max_ms; i++)
        delay *= 2;
    if (delay > pen_conf.max_ms)
        delay = pen_conf.max_ms;
    return delay;
}

void penalty_success(const char *rip, const char *user)
{
    char key[KEY_MAX];
    struct penalty_entry *e;

    make_key(key, 'p', rip, user);
    if ((e = find(key, 0, false)) != NULL)
        e->failures = 0;
    make_key(key, 'u', rip, user);
    if ((e = find(key, 0, false)) != NULL)
        e->failures = 0;
}
