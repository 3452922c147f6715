"""test_smtp_client_lmtpd.py - facteur's LMTP client against facteur's
lmtpd: per-recipient outcomes and exactly-once delivery through XQID, and
how the smtp agent chooses LMTP for a request.

The instance runs authd + lmtpd (Lmtp from test_lmtpd.py, lmtpd on
private/lmtp and on a TCP port) plus the smtp agent as service "local", as
in etc/master.cf.  The service name does not start with "lmtp": the
request's next hop selects LMTP, "unix:private/lmtp" (relative to the
queue directory, as qmgr writes local_transport's) or "inet:host:port".
An SMTP next hop ("[host]:port") through the same service stays SMTP.
Sending the same request twice, as qmgr does after a reply lost to a
crash, must leave one copy in the Maildir: the client passes the queue ID
(XQID=, advertised by lmtpd) and lmtpd keys the delivery on it.
"""

import facteur_harness as fh
from smtp_client_fixture import delivery_request, reply_statuses, write_queue_file
from test_lmtpd import DOMAIN, Lmtp
from test_smtp_client import MSG


def lmtp_with_client(instance):
    orig = instance.configure

    def configure(params=None, services=None, **kw):
        services = list(services or []) + [fh.service_line("local", "unix", "smtp")]
        return orig(params=params, services=services, **kw)

    instance.configure = configure
    return Lmtp(instance)


def request(instance, nexthop, rcpts):
    qid = write_queue_file(instance.queue, "s@src.example", rcpts, MSG,
                           owner=instance.mail_owner)
    return qid, delivery_request(qid, nexthop, "s@src.example", rcpts, transport="local")


def send(instance, req):
    with fh.AttrClient(instance.socket_path("local"), 60) as c:
        reply = c.request(req)
    assert reply is not None, instance.log_text()[-2000:]
    return reply_statuses(reply)


def test_lmtp_client_to_lmtpd_exactly_once(instance):
    lm = lmtp_with_client(instance)
    rcpts = ["alice@%s" % DOMAIN, "nobody@%s" % DOMAIN, "bob@%s" % DOMAIN]
    qid, req = request(instance, "unix:private/lmtp", rcpts)
    for attempt in range(2):
        got = send(instance, req)
        assert [g[0] for g in got] == [0, 5, 0], (attempt, got)
        assert got[1][1] == "5.1.1"
    assert len(lm.files("alice")) == 1 and len(lm.files("bob")) == 1
    body = lm.read("alice")
    assert b"facteur smtp test" in body and b"\n.a line that starts with a dot\n" in body.replace(
        b"\r\n", b"\n")
    instance.wait_for_log(r"lmtpd\[\d+\]: %s: saved mail to INBOX for <alice@example\.test>: "
                          r".*\(already delivered\)" % qid)
    instance.wait_for_log(r"smtp\[\d+\]: %s: to=<alice@example\.test>, relay=\S+\[private/lmtp\]"
                          r", .*status=sent" % qid, count=2)


def test_inet_next_hop_speaks_lmtp_smtp_next_hop_does_not(instance):
    lm = lmtp_with_client(instance)
    # Postfix's LMTP next hop over TCP: LMTP, port as given, no MX lookup.
    qid, req = request(instance, "inet:127.0.0.1:%d" % lm.port, ["alice@%s" % DOMAIN])
    got = send(instance, req)
    assert [g[0] for g in got] == [0], got
    assert len(lm.files("alice")) == 1
    instance.wait_for_log(r"smtp\[\d+\]: %s: to=<alice@example\.test>, "
                          r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent"
                          % (qid, lm.port))
    # The same server as an SMTP next hop: EHLO and HELO, which an LMTP
    # server refuses, so the recipient is deferred and nothing delivered.
    qid, req = request(instance, "[127.0.0.1]:%d" % lm.port, ["bob@%s" % DOMAIN])
    got = send(instance, req)
    assert [g[0] for g in got] == [4], got
    assert "EHLO/HELO command" in got[0][2], got
    assert lm.files("bob") == []
    instance.wait_for_log(r"smtp\[\d+\]: %s: to=<bob@example\.test>, .*status=deferred" % qid)
