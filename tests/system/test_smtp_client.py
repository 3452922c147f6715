"""test_smtp_client.py - the smtp delivery agent against real peers.

Each test starts a facteur instance whose master runs the smtp agent on
private/smtp, writes a queue file into active/ and sends the agent a
delivery request (lib/deliver_proto.h) as qmgr would, then checks the
per-recipient reply, the Postfix-style log lines and what the peer got.
MX records come from a real unbound on loopback serving a local zone
(LocalUnbound from test_dns.py); the remote MX is Postfix's smtp-sink, or
FakePeer (smtp_client_fixture.py) where a test needs STARTTLS, AUTH,
per-recipient replies or LMTP.  MX hosts resolve to 127.0.0.x; the port
comes from the next hop ("domain:port" keeps the MX lookup).

TLS, SASL and LMTP tests are in test_smtp_client_tls.py.
"""

import os
import signal
import time

import pytest

import facteur_harness as fh
from conftest import require_daemon
from smtp_client_fixture import (FakePeer, SmtpSink, delivery_request, reply_statuses,
                                 write_queue_file)
from test_dns import UNBOUND, LocalUnbound

ZONE = [
    "ok.example. 300 IN MX 10 mx1.ok.example.",
    "mx1.ok.example. 300 IN A 127.0.0.1",
    "fallback.example. 300 IN MX 10 dead.fallback.example.",
    "fallback.example. 300 IN MX 20 live.fallback.example.",
    "dead.fallback.example. 300 IN A 127.0.0.2",
    "live.fallback.example. 300 IN A 127.0.0.1",
    "implicit.example. 300 IN A 127.0.0.1",
    "tls.example. 300 IN MX 10 mx.tls.example.",
    "mx.tls.example. 300 IN A 127.0.0.1",
    "noaddr.example. 300 IN MX 10 gone.noaddr.example.",
    "v6.example. 300 IN MX 10 mx6.v6.example.",
    "mx6.v6.example. 300 IN AAAA ::1",
    "dual.example. 300 IN MX 10 mxd.dual.example.",
    "mxd.dual.example. 300 IN A 127.0.0.2",
    "mxd.dual.example. 300 IN AAAA ::1",
]

MSG = (b"From: <sender@src.example>\nTo: <rcpt@ok.example>\nSubject: facteur smtp test\n"
       b"\nHello.\n.a line that starts with a dot\n..two dots\nbare\rcarriage return\nend\n")


@pytest.fixture(scope="module")
def unbound():
    if not os.access(UNBOUND, os.X_OK):
        pytest.fail("unbound is not installed (%s)" % UNBOUND, pytrace=False)
    u = LocalUnbound(data=ZONE)
    yield u
    u.stop()


def start_agent(make_instance, unbound, params=None, service="smtp", chroot="n"):
    require_daemon("master", "smtp")
    inst = make_instance()
    p = {"smtp_dns_resolver_address": unbound.address if unbound else "",
         "smtp_connect_timeout": "5s", "smtp_helo_timeout": "10s"}
    p.update(params or {})
    if os.environ.get("ASAN_OPTIONS"):
        p["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    inst.configure(p, [fh.service_line(service, "unix", "smtp", chroot=chroot)])
    inst.start()
    return inst


def deliver(inst, nexthop, rcpts, content=MSG, sender="sender@src.example", service="smtp",
            flags=0, timeout=60, **kw):
    qid = write_queue_file(inst.queue, sender, rcpts, content, flags=flags,
                           owner=inst.mail_owner, **kw)
    with fh.AttrClient(inst.socket_path(service), timeout) as c:
        reply = c.request(delivery_request(qid, nexthop, sender, rcpts, transport=service))
    assert reply is not None, "agent closed without a reply:\n" + inst.log_text()[-2000:]
    return qid, reply


@pytest.fixture
def sink_port():
    return fh.free_port()


@pytest.fixture
def sink(tmp_path, sink_port):
    s = SmtpSink(sink_port, str(tmp_path / "dump"))
    yield s
    s.stop()


def test_mx_delivery_to_smtp_sink(make_instance, unbound, sink, sink_port):
    inst = start_agent(make_instance, unbound)
    qid, reply = deliver(inst, "ok.example:%d" % sink_port, ["rcpt@ok.example"])
    assert reply_statuses(reply)[0][:2] == (0, "2.0.0"), reply
    assert reply["relay"] == "mx1.ok.example[127.0.0.1]:%d" % sink_port
    assert reply["throttle"] == 0
    inst.wait_for_log(r"%s: to=<rcpt@ok\.example>, relay=mx1\.ok\.example\[127\.0\.0\.1\]:%d, "
                      r"delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, "
                      r"status=sent \(250 2\.0\.0 Ok" % (qid, sink_port))
    fh.wait_until(lambda: sink.messages(), 10, "smtp-sink to dump the message")
    dump = sink.messages()[0]
    # smtp-sink dumps the message dot-unstuffed, with LF line ends; the
    # lone CR became a line end (never a bare CR on the wire).
    assert b"\n.a line that starts with a dot\n..two dots\n" in dump
    assert b"bare\ncarriage return\nend\n" in dump


def test_chrooted_agent_resolves_and_delivers(make_instance, unbound, sink, sink_port):
    """As master.cf ships it (chroot y): DNS, TLS and maps are set up
    before the chroot, so MX lookups still work inside it (as root the
    chroot is real; as a normal user master skips it)."""
    inst = start_agent(make_instance, unbound, {"smtp_tls_security_level": "may"},
                       chroot="y")
    qid, reply = deliver(inst, "fallback.example:%d" % sink_port, ["rcpt@fallback.example"])
    assert reply_statuses(reply)[0][0] == 0, reply
    if fh.is_root():
        pid = inst.wait_service_pid("smtp")
        assert os.readlink("/proc/%d/root" % pid) == inst.queue


def test_4xx_defers(make_instance, unbound, tmp_path, sink_port):
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), ["-r", "RCPT"])
    try:
        inst = start_agent(make_instance, unbound)
        qid, reply = deliver(inst, "ok.example:%d" % sink_port, ["rcpt@ok.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert st == 4 and dsn.startswith("4."), reply
        assert "said: 4" in text and "in reply to RCPT TO command" in text
        inst.wait_for_log(r"%s: to=<rcpt@ok\.example>, .*status=deferred \(host "
                          r"mx1\.ok\.example\[127\.0\.0\.1\] said: 4" % qid)
        assert sink.messages() == []
    finally:
        sink.stop()


def test_5xx_bounces(make_instance, unbound, tmp_path, sink_port):
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), ["-f", "RCPT"])
    try:
        inst = start_agent(make_instance, unbound)
        qid, reply = deliver(inst, "ok.example:%d" % sink_port, ["rcpt@ok.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert st == 5 and dsn.startswith("5."), reply
        inst.wait_for_log(r"%s: to=<rcpt@ok\.example>, .*status=bounced \(host "
                          r"mx1\.ok\.example\[127\.0\.0\.1\] said: 5" % qid)
    finally:
        sink.stop()


@pytest.mark.parametrize("option,status", [("-f", 5), ("-r", 4)])
def test_mail_from_refused(make_instance, unbound, tmp_path, sink_port, option, status):
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), [option, "MAIL"])
    try:
        inst = start_agent(make_instance, unbound)
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example", "b@ok.example"])
        for st, dsn, text in reply_statuses(reply):
            assert st == status and "in reply to MAIL FROM command" in text, reply
        # The session ended cleanly (RSET or QUIT answered, no timeout).
        assert "timed out" not in inst.log_text()
    finally:
        sink.stop()


def test_data_5xx_bounces_every_recipient(make_instance, unbound, tmp_path, sink_port):
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), ["-f", "DATA"])
    try:
        inst = start_agent(make_instance, unbound)
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example", "b@ok.example"])
        for st, dsn, text in reply_statuses(reply):
            assert st == 5 and "in reply to DATA command" in text, reply
    finally:
        sink.stop()


@pytest.mark.parametrize("domain,status,dsn,say", [
    ("nomail.example", 5, "5.1.10", "does not accept mail (nullMX)"),
    ("nosuch.example", 5, "5.4.4", "type=MX: Host not found"),
    ("www.example.com", 4, "4.4.3", "Host not found, try again"),
    ("noaddr.example", 5, "5.4.4", "Host or domain name not found"),
])
def test_dns_outcomes(make_instance, unbound, sink_port, domain, status, dsn, say):
    inst = start_agent(make_instance, unbound)
    qid, reply = deliver(inst, "%s:%d" % (domain, sink_port), ["rcpt@" + domain])
    st, got_dsn, text = reply_statuses(reply)[0]
    assert (st, got_dsn) == (status, dsn), reply
    assert say in text
    assert reply["relay"] == "none"
    inst.wait_for_log(r"%s: to=<rcpt@%s>, relay=none, .*dsn=%s, status=%s" % (
        qid, domain.replace(".", r"\."), dsn.replace(".", r"\."),
        "bounced" if status == 5 else "deferred"))


def test_next_mx_after_connection_refused(make_instance, unbound, sink, sink_port):
    inst = start_agent(make_instance, unbound)
    qid, reply = deliver(inst, "fallback.example:%d" % sink_port, ["rcpt@fallback.example"])
    assert reply_statuses(reply)[0][0] == 0, reply
    assert reply["relay"] == "live.fallback.example[127.0.0.1]:%d" % sink_port
    inst.wait_for_log(r"connect to dead\.fallback\.example\[127\.0\.0\.2\]:%d: "
                      r"Connection refused" % sink_port)


def test_ipv6_mx(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port, host="::1")
    try:
        inst = start_agent(make_instance, unbound)
        _, reply = deliver(inst, "v6.example:%d" % sink_port, ["r@v6.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
        assert reply["relay"] == "mx6.v6.example[::1]:%d" % sink_port
        _, reply = deliver(inst, "[IPv6:::1]:%d" % sink_port, ["r@v6.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
    finally:
        peer.stop()


@pytest.mark.parametrize("pref,refused_first", [("ipv6", False), ("ipv4", True)])
def test_address_preference(make_instance, unbound, sink_port, pref, refused_first):
    # mxd has 127.0.0.2 (nobody listens) and ::1 (the peer).
    peer = FakePeer(port=sink_port, host="::1")
    try:
        inst = start_agent(make_instance, unbound, {"smtp_address_preference": pref})
        _, reply = deliver(inst, "dual.example:%d" % sink_port, ["r@dual.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
        refused = bool(inst.log_lines(r"connect to mxd\.dual\.example\[127\.0\.0\.2\]"))
        assert refused == refused_first
    finally:
        peer.stop()


def test_inet_protocols_ipv4_only(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port, host="::1")
    try:
        inst = start_agent(make_instance, unbound, {"inet_protocols": "ipv4"})
        _, reply = deliver(inst, "dual.example:%d" % sink_port, ["r@dual.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert st == 4 and "127.0.0.2" in text and peer.messages == [], reply
    finally:
        peer.stop()


def test_implicit_mx_and_literal(make_instance, unbound, sink, sink_port):
    inst = start_agent(make_instance, unbound)
    _, reply = deliver(inst, "implicit.example:%d" % sink_port, ["r@implicit.example"])
    assert reply_statuses(reply)[0][0] == 0, reply
    assert reply["relay"] == "implicit.example[127.0.0.1]:%d" % sink_port
    _, reply = deliver(inst, "[127.0.0.1]:%d" % sink_port, ["r@other.example"])
    assert reply_statuses(reply)[0][0] == 0, reply
    assert reply["relay"] == "127.0.0.1[127.0.0.1]:%d" % sink_port


def test_no_host_reachable_defers_and_throttles(make_instance, unbound, sink_port):
    inst = start_agent(make_instance, unbound)
    qid, reply = deliver(inst, "ok.example:%d" % sink_port, ["rcpt@ok.example"])
    st, dsn, text = reply_statuses(reply)[0]
    assert st == 4 and "Connection refused" in text, reply
    assert reply["throttle"] == 1


def test_per_recipient_replies_pipelined(make_instance, unbound, sink_port):
    replies = {"good@ok.example": "250 2.1.5 Ok",
               "gone@ok.example": "550 5.1.1 <gone@ok.example>: Recipient address rejected",
               "busy@ok.example": "450 4.2.0 <busy@ok.example>: try later"}
    peer = FakePeer(port=sink_port, rcpt_reply=lambda a: replies[a])
    try:
        inst = start_agent(make_instance, unbound)
        rcpts = ["good@ok.example", "gone@ok.example", "busy@ok.example"]
        qid, reply = deliver(inst, "ok.example:%d" % sink_port, rcpts)
        got = reply_statuses(reply)
        assert [g[0] for g in got] == [0, 5, 4], got
        assert got[1][1] == "5.1.1" and got[2][1] == "4.2.0"
        assert len(peer.messages) == 1 and peer.messages[0]["rcpts"] == ["good@ok.example"]
        # Pipelining: MAIL, every RCPT and DATA went out before any reply
        # was needed, so the peer saw them in one order.
        cmds = peer.sessions[0]["commands"]
        assert [c.split(":")[0].split()[0] for c in cmds[1:6]] == \
            ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"], cmds
        assert not peer.bare_newline
        inst.wait_for_log(r"%s: to=<gone@ok\.example>, .*dsn=5\.1\.1, status=bounced" % qid)
        inst.wait_for_log(r"%s: to=<busy@ok\.example>, .*dsn=4\.2\.0, status=deferred" % qid)
    finally:
        peer.stop()


def test_too_many_recipients_reuses_connection(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port, max_rcpts=2, features=["ENHANCEDSTATUSCODES"])
    try:
        inst = start_agent(make_instance, unbound)
        rcpts = ["r%d@ok.example" % i for i in range(5)]
        _, reply = deliver(inst, "ok.example:%d" % sink_port, rcpts)
        assert [g[0] for g in reply_statuses(reply)] == [0] * 5, reply
        assert len(peer.sessions) == 1, "one connection for the whole batch"
        assert [m["rcpts"] for m in peer.messages] == [rcpts[0:2], rcpts[2:4], rcpts[4:5]]
    finally:
        peer.stop()


def test_dsn_and_size_parameters(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port)
    try:
        inst = start_agent(make_instance, unbound)
        rcpts = [("a@ok.example", "rfc822;orig+x@ok.example", 0x02 | 0x04)]
        _, reply = deliver(inst, "ok.example:%d" % sink_port, rcpts, ret="H", envid="env-1",
                           flags=0x02)
        assert reply_statuses(reply)[0][0] == 0, reply
        cmds = peer.sessions[0]["commands"]
        mail = [c for c in cmds if c.startswith("MAIL")][0]
        assert "SIZE=%d" % len(MSG) in mail and "BODY=8BITMIME" in mail, mail
        assert "RET=HDRS" in mail and "ENVID=env-1" in mail, mail
        rcpt = [c for c in cmds if c.startswith("RCPT")][0]
        assert "NOTIFY=SUCCESS,FAILURE" in rcpt and "ORCPT=rfc822;orig+2Bx@ok.example" in rcpt
    finally:
        peer.stop()


def test_size_limit_and_8bit_without_8bitmime_bounce(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port, features=["SIZE 50", "PIPELINING"])
    try:
        inst = start_agent(make_instance, unbound)
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert (st, dsn) == (5, "5.3.4") and "exceeds size limit 50" in text, reply
        peer.features = ["PIPELINING"]
        eight = b"Subject: caf\xc3\xa9\n\ncaf\xc3\xa9\n"
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example"], content=eight,
                           flags=0x02)
        assert reply_statuses(reply)[0][:2] == (5, "5.6.3"), reply
        # 7-bit content flagged 8BITMIME goes through without BODY=.
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example"], flags=0x02)
        assert reply_statuses(reply)[0][0] == 0, reply
        assert len(peer.messages) == 1 and "BODY=" not in peer.messages[0]["mail"]
    finally:
        peer.stop()


def test_long_lines_folded_and_smtputf8_needed(make_instance, unbound, sink_port):
    peer = FakePeer(port=sink_port, features=["PIPELINING", "8BITMIME"])
    try:
        inst = start_agent(make_instance, unbound)
        long_body = b"Subject: long\n\n" + b"x" * 2500 + b"\n"
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["a@ok.example"],
                           content=long_body)
        assert reply_statuses(reply)[0][0] == 0, reply
        lines = peer.messages[0]["data"].split(b"\r\n")
        assert max(len(x) for x in lines) <= 998, [len(x) for x in lines]
        assert b"".join(x.lstrip(b" ") for x in lines[2:]) == b"x" * 2500
        assert not peer.bare_newline
        # An SMTPUTF8 envelope with a non-ASCII address, to a server
        # without SMTPUTF8: bounced before MAIL FROM (5.6.7).
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["j\u00f6rg@ok.example"],
                           flags=0x01)
        assert reply_statuses(reply)[0][:2] == (5, "5.6.7"), reply
        assert len(peer.messages) == 1
    finally:
        peer.stop()


def test_helo_fallback_without_esmtp(make_instance, unbound, tmp_path, sink_port):
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), ["-e"])
    try:
        inst = start_agent(make_instance, unbound)
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["rcpt@ok.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
    finally:
        sink.stop()


def test_malformed_request_is_dropped(make_instance, unbound):
    inst = start_agent(make_instance, unbound)
    with fh.AttrClient(inst.socket_path("smtp"), 20) as c:
        reply = c.request([("path", "../etc/passwd"), ("qid", "x")])
    assert reply is None
    inst.wait_for_log(r"warning: malformed delivery request from qmgr")


def test_kill9_mid_delivery_loses_and_duplicates_nothing(make_instance, unbound, sink_port):
    """kill -9 of smtp while the peer holds the DATA reply: qmgr sees no
    reply (it defers everything), the peer has no message, and the retry
    delivers exactly one copy."""
    peer = FakePeer(port=sink_port, hang_data=3)
    try:
        inst = start_agent(make_instance, unbound)
        qid = write_queue_file(inst.queue, "s@src.example", ["r@ok.example"], MSG,
                               owner=inst.mail_owner)
        req = delivery_request(qid, "ok.example:%d" % sink_port, "s@src.example",
                               ["r@ok.example"])
        c = fh.AttrClient(inst.socket_path("smtp"), 20)
        c.send(req)
        fh.wait_until(lambda: any("DATA" in s["commands"] for s in peer.sessions), 10,
                      "the agent to send DATA")
        pid = inst.wait_service_pid("smtp")
        os.kill(pid, signal.SIGKILL)
        assert c.recv() is None
        c.close()
        time.sleep(3.5)
        assert peer.messages == []
        assert os.path.exists(os.path.join(inst.queue, "active", qid))
        peer.hang_data = 0
        with fh.AttrClient(inst.socket_path("smtp"), 30) as c2:
            reply = c2.request(req)
        assert reply_statuses(reply)[0][0] == 0, reply
        assert len(peer.messages) == 1
    finally:
        peer.stop()


class RawPeer:
    """Accepts connections and answers each with fixed bytes, then keeps
    the connection open (reading and discarding) until it is closed."""

    def __init__(self, port, data):
        import socket
        import threading
        self.data = data
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import socket
        conns = []
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conns.append(c)
            try:
                c.sendall(self.data)
            except OSError:
                pass
        for c in conns:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(10)
        self.sock.close()


@pytest.mark.parametrize("data,say", [
    (b"hello there\r\n", "malformed reply from mx1.ok.example[127.0.0.1] while receiving "
     "the initial server greeting"),
    (b"220 " + b"x" * 10000 + b"\r\n", "reply line from mx1.ok.example[127.0.0.1] too long"),
    (b"".join(b"220-line %d\r\n" % i for i in range(150)) + b"220 end\r\n", "malformed reply"),
    (b"", "conversation with mx1.ok.example[127.0.0.1] timed out while receiving the "
     "initial server greeting"),
    (b"421 4.3.2 busy\r\n", "refused to talk to me: 421 4.3.2 busy"),
    (b"554 5.7.1 go away\r\n", "refused to talk to me: 554 5.7.1 go away"),
])
def test_hostile_or_broken_greetings_defer(make_instance, unbound, sink_port, data, say):
    peer = RawPeer(sink_port, data)
    try:
        inst = start_agent(make_instance, unbound, {"smtp_helo_timeout": "2s"})
        t0 = time.monotonic()
        _, reply = deliver(inst, "ok.example:%d" % sink_port, ["r@ok.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert st == 4 and dsn.startswith("4."), reply
        assert say in text, text
        assert reply["throttle"] == 1
        assert time.monotonic() - t0 < 10
    finally:
        peer.stop()
