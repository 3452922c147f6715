"""test_smtp_client_lmtpd.py - facteur's LMTP client against facteur's
lmtpd: per-recipient outcomes and exactly-once delivery through XQID.

The instance runs authd + lmtpd (Lmtp from test_lmtpd.py, lmtpd on
private/lmtpd) plus the smtp agent as service "lmtp" (LMTP mode).  The
request's next hop is "unix:private/lmtpd", relative to the queue
directory as qmgr writes it.  Sending the same request twice, as qmgr
does after a reply lost to a crash, must leave one copy in the Maildir:
the client passes the queue ID (XQID=, advertised by lmtpd) and lmtpd
keys the delivery on it.
"""

import facteur_harness as fh
from smtp_client_fixture import delivery_request, reply_statuses, write_queue_file
from test_lmtpd import DOMAIN, Lmtp
from test_smtp_client import MSG


def lmtp_with_client(instance):
    orig = instance.configure

    def configure(params=None, services=None, **kw):
        services = list(services or []) + [fh.service_line("lmtp", "unix", "smtp")]
        return orig(params=params, services=services, **kw)

    instance.configure = configure
    return Lmtp(instance)


def test_lmtp_client_to_lmtpd_exactly_once(instance):
    lm = lmtp_with_client(instance)
    rcpts = ["alice@%s" % DOMAIN, "nobody@%s" % DOMAIN, "bob@%s" % DOMAIN]
    qid = write_queue_file(instance.queue, "s@src.example", rcpts, MSG,
                           owner=instance.mail_owner)
    req = delivery_request(qid, "unix:private/lmtpd", "s@src.example", rcpts,
                           transport="lmtp")
    for attempt in range(2):
        with fh.AttrClient(instance.socket_path("lmtp"), 60) as c:
            reply = c.request(req)
        assert reply is not None, instance.log_text()[-2000:]
        got = reply_statuses(reply)
        assert [g[0] for g in got] == [0, 5, 0], (attempt, got)
        assert got[1][1] == "5.1.1"
    assert len(lm.files("alice")) == 1 and len(lm.files("bob")) == 1
    body = lm.read("alice")
    assert b"facteur smtp test" in body and b"\n.a line that starts with a dot\n" in body.replace(
        b"\r\n", b"\n")
    instance.wait_for_log(r"lmtpd\[\d+\]: %s: saved mail to INBOX for <alice@example\.test>: "
                          r".*\(already delivered\)" % qid)
    instance.wait_for_log(r"smtp\[\d+\]: %s: to=<alice@example\.test>, relay=\S+\[private/lmtpd\]"
                          r", .*status=sent" % qid, count=2)
