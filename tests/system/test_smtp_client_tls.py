"""test_smtp_client_tls.py - TLS levels, policy maps, SASL and LMTP mode of
the smtp agent (chosen per request: a service name beginning with "lmtp",
or a "unix:" / "inet:" next hop).

Same set-up as test_smtp_client.py (an instance running the agent, a
local unbound for MX records, a queue file and a contract-5 request), with
FakePeer as the remote: it offers STARTTLS with a certificate signed by a
test CA (or a self-signed "wrong" one), AUTH, or speaks LMTP on a UNIX
socket.  The certificate names the MX host mx.tls.example.
"""

import os
import re

import pytest

import facteur_harness as fh
from smtp_client_fixture import FakePeer, SmtpSink, make_certs, reply_statuses
from test_smtp_client import MSG, deliver, start_agent, unbound  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    os.chmod(str(d), 0o755)
    return make_certs(str(d), "mx.tls.example")


@pytest.fixture
def port():
    return fh.free_port()


def run_level(make_instance, unbound, port, peer, params, nexthop=None):  # noqa: F811
    inst = start_agent(make_instance, unbound, params)
    qid, reply = deliver(inst, nexthop or "tls.example:%d" % port, ["r@tls.example"])
    return inst, qid, reply


@pytest.mark.parametrize("level,cafile,trust", [
    ("may", False, "Untrusted"),
    ("may", True, "Trusted"),
    ("encrypt", False, "Untrusted"),
    ("verify", True, "Verified"),
])
def test_tls_levels_good_certificate(make_instance, unbound, certs, port,  # noqa: F811
                                     level, cafile, trust):
    peer = FakePeer(port=port, tls=(certs["cert"], certs["key"]))
    try:
        params = {"smtp_tls_security_level": level}
        if cafile:
            params["smtp_tls_CAfile"] = certs["ca"]
        inst, qid, reply = run_level(make_instance, unbound, port, peer, params)
        assert reply_statuses(reply)[0][0] == 0, reply
        assert peer.messages[0]["tls"] is True
        inst.wait_for_log(r"%s TLS connection established to mx\.tls\.example\[127\.0\.0\.1\]"
                          r":%d: TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)" % (trust, port))
        # After STARTTLS the client said EHLO again.
        cmds = peer.sessions[0]["commands"]
        assert [c.split()[0] for c in cmds[:3]] == ["EHLO", "STARTTLS", "EHLO"], cmds
    finally:
        peer.stop()


def test_may_without_starttls_sends_in_clear(make_instance, unbound, port):  # noqa: F811
    peer = FakePeer(port=port)
    try:
        inst, qid, reply = run_level(make_instance, unbound, port, peer,
                                     {"smtp_tls_security_level": "may"})
        assert reply_statuses(reply)[0][0] == 0, reply
        assert peer.messages[0]["tls"] is False
    finally:
        peer.stop()


def test_may_handshake_failure_retries_in_clear(make_instance, unbound, certs, port):  # noqa: F811
    peer = FakePeer(port=port, tls=(certs["cert"], certs["key"]), tls_break=True)
    try:
        inst, qid, reply = run_level(make_instance, unbound, port, peer,
                                     {"smtp_tls_security_level": "may"})
        assert reply_statuses(reply)[0][0] == 0, reply
        assert len(peer.sessions) == 2
        assert "STARTTLS" not in peer.sessions[1]["commands"]
        inst.wait_for_log(r"%s: Cannot start TLS with .*; retrying without TLS" % qid)
    finally:
        peer.stop()


@pytest.mark.parametrize("level,peer_tls,nexthop,dsn,say", [
    ("encrypt", None, None, "4.7.4", "TLS is required, but was not offered by host "
     "mx.tls.example[127.0.0.1]"),
    ("verify", "wrong", None, "4.7.5", "Server certificate not verified"),
    ("verify", "good-no-ca", None, "4.7.5", "Server certificate not verified"),
    # secure checks the next-hop domain, which the MX's certificate does not name.
    ("secure", "good", None, "4.7.5", "Server certificate not verified"),
    ("encrypt", "broken", None, "4.7.5", "Cannot start TLS"),
])
def test_tls_mandatory_failures_defer(make_instance, unbound, certs, port,  # noqa: F811
                                      level, peer_tls, nexthop, dsn, say):
    tls = None
    if peer_tls in ("good", "good-no-ca", "broken"):
        tls = (certs["cert"], certs["key"])
    elif peer_tls == "wrong":
        tls = (certs["wrong_cert"], certs["wrong_key"])
    peer = FakePeer(port=port, tls=tls, tls_break=peer_tls == "broken")
    try:
        params = {"smtp_tls_security_level": level}
        if peer_tls != "good-no-ca":
            params["smtp_tls_CAfile"] = certs["ca"]
        inst, qid, reply = run_level(make_instance, unbound, port, peer, params, nexthop)
        st, got_dsn, text = reply_statuses(reply)[0]
        assert (st, got_dsn) == (4, dsn), reply
        assert say in text, text
        assert peer.messages == []
        inst.wait_for_log(r"%s: to=<r@tls\.example>, .*status=deferred" % qid)
    finally:
        peer.stop()


def test_secure_matches_the_nexthop(make_instance, unbound, certs, port):  # noqa: F811
    peer = FakePeer(port=port, tls=(certs["cert"], certs["key"]))
    try:
        inst, qid, reply = run_level(
            make_instance, unbound, port, peer,
            {"smtp_tls_security_level": "secure", "smtp_tls_CAfile": certs["ca"]},
            nexthop="[mx.tls.example]:%d" % port)
        assert reply_statuses(reply)[0][0] == 0, reply
        inst.wait_for_log(r"Verified TLS connection established to mx\.tls\.example")
    finally:
        peer.stop()


def test_policy_maps_per_destination(make_instance, unbound, port):  # noqa: F811
    peer = FakePeer(port=port)
    try:
        params = {"smtp_tls_security_level": "none",
                  "smtp_tls_policy_maps": "inline:{ .example=none, tls.example=encrypt }"}
        inst, qid, reply = run_level(make_instance, unbound, port, peer, params)
        assert reply_statuses(reply)[0][:2] == (4, "4.7.4"), reply
        # ok.example has no entry of its own: the parent ".example" says none.
        _, reply = deliver(inst, "[127.0.0.1]:%d" % port, ["r@ok.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
    finally:
        peer.stop()


def sasl_params(port, secret="secret", options="noanonymous"):
    return {"smtp_tls_security_level": "none", "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "inline:{ [127.0.0.1]:%d=user:%s }" % (port, secret),
            "smtp_sasl_security_options": options}


@pytest.mark.parametrize("mechs", [["PLAIN"], ["LOGIN"]])
def test_relayhost_sasl(make_instance, unbound, port, mechs):  # noqa: F811
    peer = FakePeer(port=port, auth={"user": "secret"})
    try:
        params = sasl_params(port)
        params["smtp_sasl_mechanism_filter"] = ",".join(mechs)
        inst = start_agent(make_instance, unbound, params)
        qid, reply = deliver(inst, "[127.0.0.1]:%d" % port, ["r@remote.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
        assert peer.sessions[0]["auth_user"] == "user"
        assert any(c.startswith("AUTH " + mechs[0]) for c in peer.sessions[0]["commands"])
        inst.wait_for_log(r"%s: SASL authentication to 127\.0\.0\.1\[127\.0\.0\.1\] as user "
                          r"succeeded with %s" % (qid, mechs[0]))
        assert "secret" not in inst.log_text()
    finally:
        peer.stop()


@pytest.mark.parametrize("secret,options,say", [
    ("wrong", "noanonymous", "SASL authentication failed; server 127.0.0.1[127.0.0.1] "
     "said: 535 5.7.8"),
    ("secret", "noplaintext, noanonymous", "offered no compatible authentication mechanisms"),
])
def test_relayhost_sasl_failures_defer(make_instance, unbound, port, secret, options,  # noqa: F811
                                       say):
    peer = FakePeer(port=port, auth={"user": "secret"})
    try:
        inst = start_agent(make_instance, unbound, sasl_params(port, secret, options))
        _, reply = deliver(inst, "[127.0.0.1]:%d" % port, ["r@remote.example"])
        st, dsn, text = reply_statuses(reply)[0]
        assert st == 4 and dsn.startswith("4.7"), reply
        assert say in text, text
        assert peer.messages == []
    finally:
        peer.stop()


def test_sasl_over_starttls(make_instance, unbound, certs, port):  # noqa: F811
    peer = FakePeer(port=port, auth={"user": "secret"}, tls=(certs["cert"], certs["key"]))
    try:
        params = sasl_params(port, options="noplaintext, noanonymous")
        params.update({"smtp_tls_security_level": "encrypt",
                       "smtp_sasl_tls_security_options": "noanonymous"})
        inst = start_agent(make_instance, unbound, params)
        _, reply = deliver(inst, "[127.0.0.1]:%d" % port, ["r@remote.example"])
        assert reply_statuses(reply)[0][0] == 0, reply
        cmds = [c.split()[0] for c in peer.sessions[0]["commands"]]
        assert cmds[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"], cmds
    finally:
        peer.stop()


@pytest.mark.parametrize("xqid", [True, False])
def test_lmtp_over_unix_socket(make_instance, unbound, xqid):  # noqa: F811
    # The "local" service of etc/master.cf: the unix: next hop makes it LMTP.
    inst = start_agent(make_instance, unbound, service="local")
    path = os.path.join(inst.dir, "peer-lmtp.sock")
    outcome = {"a@local.example": "250 2.0.0 <a@local.example> saved",
               "full@local.example": "552 5.2.2 <full@local.example> mailbox full",
               "later@local.example": "452 4.2.2 <later@local.example> try later"}
    peer = FakePeer(unix_path=path, lmtp=True, xqid=xqid, data_reply=lambda a: outcome[a])
    try:
        rcpts = ["a@local.example", "full@local.example", "later@local.example"]
        qid, reply = deliver(inst, "unix:" + path, rcpts, service="local")
        got = reply_statuses(reply)
        assert [g[0] for g in got] == [0, 5, 4], got
        assert got[1][1] == "5.2.2"
        cmds = peer.sessions[0]["commands"]
        assert cmds[0].startswith("LHLO ")
        mail = [c for c in cmds if c.startswith("MAIL")][0]
        assert (("XQID=%s" % qid) in mail) == xqid, mail
        inst.wait_for_log(r"%s: to=<a@local\.example>, relay=\S+\[%s\], .*status=sent" % (
            qid, re.escape(path)))
    finally:
        peer.stop()


def test_lmtp_over_tcp_to_smtp_sink(make_instance, unbound, tmp_path, port):  # noqa: F811
    sink = SmtpSink(port, str(tmp_path / "dump"), ["-L"])
    try:
        # transport_maps: local.example local:inet:127.0.0.1:PORT
        inst = start_agent(make_instance, unbound, service="local")
        _, reply = deliver(inst, "inet:127.0.0.1:%d" % port, ["a@local.example",
                                                                "b@local.example"],
                           service="local")
        assert [g[0] for g in reply_statuses(reply)] == [0, 0], reply
        assert reply["relay"] == "127.0.0.1[127.0.0.1]:%d" % port
    finally:
        sink.stop()


# (service, next hop, LMTP expected): the service name or the next hop's
# syntax selects LMTP, request by request; "[host]:port" alone is SMTP.
MODE_CASES = [
    ("smtp", "[127.0.0.1]:%d", False),
    ("smtp", "inet:127.0.0.1:%d", True),
    ("local", "inet:[127.0.0.1]:%d", True),
    ("lmtp-relay", "[127.0.0.1]:%d", True),
]


@pytest.mark.parametrize("service,nexthop,lmtp", MODE_CASES)
def test_lmtp_mode_per_request(make_instance, unbound, port, service, nexthop, lmtp):  # noqa: F811
    # The greeting name and TLS level follow the request's mode: SMTP must
    # have TLS here (the peer offers none), LMTP need not.
    params = {"smtp_helo_name": "smtp-name.example", "lmtp_lhlo_name": "lmtp-name.example",
              "smtp_tls_security_level": "encrypt", "lmtp_tls_security_level": "none"}
    peer = FakePeer(port=port, lmtp=lmtp)
    try:
        inst = start_agent(make_instance, unbound, params, service=service)
        _, reply = deliver(inst, nexthop % port, ["a@local.example"], service=service)
        got = reply_statuses(reply)
        cmds = peer.sessions[0]["commands"]
        if lmtp:
            assert cmds[0] == "LHLO lmtp-name.example", cmds
            assert got[0][0] == 0, got
            assert len(peer.messages) == 1
        else:
            assert cmds[0] == "EHLO smtp-name.example", cmds
            assert got[0][0] == 4 and "TLS is required" in got[0][2], got
            assert peer.messages == []
    finally:
        peer.stop()
