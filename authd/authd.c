/*
 * authd.c - the authentication and user database service.
 *
 * A multi-client server (lib/server.h, SERVER_MULTI) on the socket master
 * hands it (private/auth, and any other master.cf entry, e.g. a path an
 * unmodified Postfix uses with smtpd_sasl_type = dovecot).  It speaks the
 * Dovecot authentication protocol (authd_conn.c) over the passdb and
 * userdb backends named by auth_passdb and auth_userdb.
 *
 * Privileges: backends are opened in pre_jail, while still root when
 * master runs as root.  A pam passdb (pam_unix reads /etc/shadow) needs
 * authd to stay root: give it master.cf unpriv "n" then.  Otherwise run
 * it unprivileged ("y") with files readable by mail_owner.  Password
 * checks run in worker processes forked after the privilege change
 * (authd_worker.c), so a slow hash or PAM module never stalls the loop.
 */
#include <unistd.h>

#include "authd.h"
#include "conf.h"
#include "log.h"
#include "params.h"
#include "server.h"

static void authd_pre_jail(void)
{
    struct strbuf *why = strbuf_new(128);
    struct penalty_conf pc;

    if (passdb_init(why) < 0)
        log_fatal("%s", strbuf_str(why));
    if (userdb_init(why) < 0)
        log_fatal("%s", strbuf_str(why));
    strbuf_free(&why);
    pc.base_ms = var_auth_failure_delay * 1000L;
    pc.max_ms = var_auth_failure_delay_max * 1000L;
    if (pc.max_ms < pc.base_ms)
        pc.max_ms = pc.base_ms;
    pc.lockout_threshold = var_auth_lockout_threshold;
    pc.lockout_ms = var_auth_lockout_time * 1000L;
    penalty_configure(&pc);
    /* Failure penalties live in this process; smtpd processes come and go
     * with their own connections, so the default max_use (100 clients)
     * would restart authd and forget them.  An explicit max_use wins. */
    if (!conf_is_set("max_use"))
        var_max_use = 10000000L;    /* the table's maximum */
}

/* Privileges are final here, and nothing listens yet: fork the workers
 * that check passwords (authd_worker.c), one per CPU up to four. */
static void authd_post_jail(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    worker_pool_start(cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus);
}

static const struct server_desc authd_desc = {
    .name = "authd",
    .kind = SERVER_MULTI,
    .pre_jail = authd_pre_jail,
    .post_jail = authd_post_jail,
    .accept_fn = authd_conn_accept,
    /* Failure penalties live in this process: do not forget them just
     * because nobody logged in for max_idle seconds. */
    .keep_running = true,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &authd_desc);
}
