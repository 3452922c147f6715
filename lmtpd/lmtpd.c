/*
 * lmtpd.c - facteur's local delivery agent: an LMTP server (RFC 2033) on
 * private/lmtp (and on TCP when master.cf says so) that writes each
 * recipient's copy into its Maildir.
 *
 * A thin main over the single-client server skeleton: the session lives
 * in lmtpd_session.c, user lookups and the Maildir write in
 * lmtpd_deliver.c.  master runs lmtpd as root (unpriv n) only so that
 * each file is written with the mailbox owner's file-system identity; see
 * lmtpd(8).
 */
#include "lmtpd.h"
#include "server.h"

static void lmtpd_post_jail(void)
{
    lmtpd_deliver_init();
}

static const struct server_desc lmtpd_desc = {
    .name = "lmtpd",
    .kind = SERVER_SINGLE,
    .post_jail = lmtpd_post_jail,
    .service = lmtpd_session,
};

int main(int argc, char **argv)
{
    return server_main(argc, argv, &lmtpd_desc);
}
