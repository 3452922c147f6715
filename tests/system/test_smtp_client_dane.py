"""test_smtp_client_dane.py - smtp_tls_security_level = dane against a
DNSSEC-signed zone.

A private unbound serves dane.example, signed with a fresh key
(SignedZoneUnbound); the agent's libunbound validates with that key as
its trust anchor (smtp_dns_support_level = dnssec), so MX, A and TLSA
answers are "secure".  FakePeer offers STARTTLS with a certificate for
mx.dane.example signed by a test CA.  TLSA 3 1 1 (DANE-EE, SPKI digest)
and 2 0 1 (DANE-TA, the CA certificate's digest) must authenticate it; a
digest of another key must not; a host without TLSA records gets
opportunistic TLS.
"""

import hashlib
import os
import subprocess

import pytest

import facteur_harness as fh
from conftest import require_daemon
from smtp_client_fixture import (FakePeer, SignedZoneUnbound, make_certs, reply_statuses,
                                 spki_sha256, write_queue_file, delivery_request)
from test_smtp_client import MSG

PORTS = {}


def cert_sha256(path):
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                         capture_output=True, check=True, timeout=30).stdout
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    for tool in ("/usr/sbin/unbound", "/usr/bin/ldns-signzone", "/usr/bin/ldns-keygen"):
        if not os.access(tool, os.X_OK):
            pytest.fail("%s is not installed (Debian unbound, ldnsutils)" % tool, pytrace=False)
    d = tmp_path_factory.mktemp("danecerts")
    os.chmod(str(d), 0o755)
    certs = make_certs(str(d), "mx.dane.example")
    ports = {k: fh.free_port() for k in ("ee", "wrong", "ta", "none", "plain")}
    good = spki_sha256(certs["cert"])
    wrong = spki_sha256(certs["wrong_cert"])
    ca = cert_sha256(certs["ca"])
    records = [
        "mx IN A 127.0.0.1",
        "ee IN MX 10 mx",
        "wrong IN MX 10 mx",
        "ta IN MX 10 mx",
        "none IN MX 10 mx",
        "plain IN MX 10 mx",
        "_%d._tcp.mx IN TLSA 3 1 1 %s" % (ports["ee"], good),
        "_%d._tcp.mx IN TLSA 3 1 1 %s" % (ports["wrong"], wrong),
        "_%d._tcp.mx IN TLSA 2 0 1 %s" % (ports["ta"], ca),
        "_%d._tcp.mx IN TLSA 3 1 1 %s" % (ports["plain"], good),
    ]
    u = SignedZoneUnbound("dane.example", records)
    yield {"unbound": u, "certs": certs, "ports": ports}
    u.stop()


def run(make_instance, env, which, peer_tls=True):
    require_daemon("master", "smtp")
    port = env["ports"][which]
    certs = env["certs"]
    # DANE-TA needs the trust anchor in the chain the server sends.
    chain = certs["chain"] if which == "ta" else certs["cert"]
    peer = FakePeer(port=port, tls=(chain, certs["key"]) if peer_tls else None)
    try:
        inst = make_instance()
        params = {"smtp_dns_resolver_address": env["unbound"].address,
                  "smtp_dns_support_level": "dnssec",
                  "smtp_dns_trust_anchor_file": env["unbound"].trust_anchor,
                  "smtp_tls_security_level": "dane",
                  "smtp_connect_timeout": "5s"}
        if os.environ.get("ASAN_OPTIONS"):
            params["import_environment"] = ("FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS "
                                            "UBSAN_OPTIONS")
        inst.configure(params, [fh.service_line("smtp", "unix", "smtp")])
        inst.start()
        rcpt = "r@%s.dane.example" % which
        qid = write_queue_file(inst.queue, "s@src.example", [rcpt], MSG, owner=inst.mail_owner)
        with fh.AttrClient(inst.socket_path("smtp"), 60) as c:
            reply = c.request(delivery_request(qid, "%s.dane.example:%d" % (which, port),
                                               "s@src.example", [rcpt]))
        assert reply is not None, inst.log_text()[-2000:]
        return inst, reply, peer
    finally:
        peer.stop()


@pytest.mark.parametrize("which", ["ee", "ta"])
def test_dane_authenticates(make_instance, env, which):
    inst, reply, peer = run(make_instance, env, which)
    assert reply_statuses(reply)[0][0] == 0, (reply, inst.log_text()[-1500:])
    assert peer.messages[0]["tls"] is True
    inst.wait_for_log(r"Verified TLS connection established to mx\.dane\.example\[127\.0\.0\.1\]"
                      r":%d: TLSv1\.[23] .*\(DANE\)" % env["ports"][which])


def test_dane_mismatch_defers(make_instance, env):
    inst, reply, peer = run(make_instance, env, "wrong")
    st, dsn, text = reply_statuses(reply)[0]
    assert (st, dsn) == (4, "4.7.5"), reply
    assert "Server certificate not trusted" in text, text
    assert peer.messages == []


def test_dane_requires_starttls_when_tlsa_exists(make_instance, env):
    inst, reply, peer = run(make_instance, env, "plain", peer_tls=False)
    st, dsn, text = reply_statuses(reply)[0]
    assert (st, dsn) == (4, "4.7.4") and "TLS is required" in text, reply


def test_no_tlsa_is_opportunistic(make_instance, env):
    inst, reply, peer = run(make_instance, env, "none")
    assert reply_statuses(reply)[0][0] == 0, reply
    inst.wait_for_log(r"Untrusted TLS connection established to mx\.dane\.example")
