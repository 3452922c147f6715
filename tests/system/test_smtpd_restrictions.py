"""test_smtpd_restrictions.py - smtpd's restrictions with real clients.

A whole instance (master, smtpd, anvil, authd when a login is needed) on a
free loopback port, driven by Python's smtplib, raw dialogues and swaks.
DNS checks go to a private unbound serving a local zone (LocalUnbound from
test_dns.py): reject_unknown_sender_domain / recipient_domain, null MX,
and reject_rbl_client with 127.0.0.1 listed under rbl.example.

Covered: relaying (refused from outside, allowed from mynetworks and
after AUTH), the four address tricks, reject_unlisted_recipient for local
users, aliases and virtual mailboxes, check_client/sender/recipient
access, reject_non_fqdn_sender/recipient, reject_invalid_helo_hostname,
reject_sender_login_mismatch, smtpd_delay_reject = no, and the Postfix
"NOQUEUE: reject: RCPT from ..." log line pflogsumm and fail2ban read.
"""

import os
import re
import smtplib
import subprocess

import pytest

import facteur_harness as fh
from test_dns import LocalUnbound, UNBOUND
from test_smtpd_common import PASSWORD, USER, Dialog, start_smtpd

RBL_DATA = [
    "1.0.0.127.rbl.example. 300 IN A 127.0.0.2",
    '1.0.0.127.rbl.example. 300 IN TXT "test listing"',
    "known.example. 300 IN MX 10 mx.known.example.",
]

BASE = {
    "mydestination": "localhost, example.test",
    "virtual_alias_domains": "valias.example",
    "virtual_alias_maps": "inline:{ info@valias.example=alice@example.test,"
                          " sales@example.test=alice@example.test }",
    "virtual_mailbox_domains": "vbox.example",
    "virtual_mailbox_maps": "inline:{ carol@vbox.example=carol/ }",
    "local_recipient_maps": "inline:{ alice=1, bob=1, postmaster=1, blocked=1 }",
    "mynetworks": "192.0.2.0/24",
    "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated,"
                                " reject_unauth_destination",
    "unknown_address_reject_code": "550",
    "recipient_delimiter": "+",
}


@pytest.fixture(scope="module")
def unbound():
    if not os.access(UNBOUND, os.X_OK):
        pytest.fail("unbound is not installed (%s)" % UNBOUND, pytrace=False)
    u = LocalUnbound(data=RBL_DATA)
    yield u
    u.stop()


def rcpt(port, rcpt_to, mail_from="sender@known.example", helo="client.known.example"):
    """EHLO, MAIL, RCPT: the RCPT reply as (code, text)."""
    d = Dialog(port)
    try:
        d.expect(220)
        d.send("EHLO %s\r\n" % helo)
        d.expect(250)
        d.send("MAIL FROM:<%s>\r\n" % mail_from)
        code, text = d.reply()
        if code != 250:
            return code, text
        d.send("RCPT TO:<%s>\r\n" % rcpt_to if not rcpt_to.startswith("<")
               else "RCPT TO:%s\r\n" % rcpt_to)
        code, text = d.reply()
        d.send("QUIT\r\n")
        d.reply()
        return code, text
    finally:
        d.sock.close()


def test_relay_and_tricks(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    ports = start_smtpd(instance, params)
    port = ports["smtp"]
    mark = instance.log_mark()
    cases = [
        ("alice@example.test", 250, None),
        ("Postmaster", 250, None),
        ("alice+tag@example.test", 250, None),
        ("x@elsewhere.example", 554, r"5\.7\.1 <x@elsewhere\.example>: Relay access denied"),
        ("user%elsewhere.example@example.test", 554, "Relay access denied"),
        ('<"user@elsewhere.example"@example.test>', 554, "Relay access denied"),
        ("<@example.test:user@elsewhere.example>", 554, "Relay access denied"),
        ("elsewhere.example!user@example.test", 554, "Relay access denied"),
    ]
    for to, code, pattern in cases:
        got, text = rcpt(port, to)
        assert got == code, (to, text)
        if pattern:
            assert re.search(pattern, text), (to, text)
    # user@other@local: a syntax error or a relay refusal, never accepted.
    got, text = rcpt(port, "user@elsewhere.example@example.test")
    assert got >= 500, text
    instance.wait_for_log(
        r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 554 5\.7\.1 <x@elsewhere\.example>: "
        r"Relay access denied; from=<sender@known\.example> to=<x@elsewhere\.example> "
        r"proto=ESMTP helo=<client\.known\.example>", since=mark)
    assert len(instance.log_lines(r"NOQUEUE: reject: RCPT from .*Relay access denied",
                                  since=mark)) >= 5


def test_unlisted_recipients(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    port = start_smtpd(instance, params)["smtp"]
    cases = [
        ("bob@example.test", 250, None),
        ("sales@example.test", 250, None),
        ("nobody@example.test", 550,
         r"5\.1\.1 <nobody@example\.test>: Recipient address rejected: "
         r"User unknown in local recipient table"),
        ("info@valias.example", 250, None),
        ("nope@valias.example", 550, "User unknown in virtual alias table"),
        ("carol@vbox.example", 250, None),
        ("dave@vbox.example", 550, "User unknown in virtual mailbox table"),
    ]
    for to, code, pattern in cases:
        got, text = rcpt(port, to)
        assert got == code, (to, text)
        if pattern:
            assert re.search(pattern, text), (to, text)


def test_access_maps_and_names(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params.update({
        "smtpd_helo_restrictions": "reject_invalid_helo_hostname",
        "smtpd_sender_restrictions": "check_sender_access inline:{ spammer@bad.example=REJECT,"
                                     " { bad2.example = 550 5.7.0 go away } },"
                                     " reject_non_fqdn_sender, reject_unknown_sender_domain",
        "smtpd_recipient_restrictions": "check_recipient_access inline:{"
                                        " { blocked@example.test = REJECT not here } },"
                                        " reject_non_fqdn_recipient,"
                                        " reject_unknown_recipient_domain",
    })
    port = start_smtpd(instance, params)["smtp"]
    cases = [
        # (mail from, rcpt to, helo, code, pattern)
        ("sender@known.example", "alice@example.test", "client.known.example", 250, None),
        ("spammer@bad.example", "alice@example.test", "c.example", 554,
         r"5\.7\.1 <spammer@bad\.example>: Sender address rejected: Access denied"),
        ("x@sub.bad2.example", "alice@example.test", "c.example", 550,
         r"5\.7\.0 <x@sub\.bad2\.example>: Sender address rejected: go away"),
        ("x@nodots", "alice@example.test", "c.example", 504,
         "Sender address rejected: need fully-qualified address"),
        ("x@nxdomain.example", "alice@example.test", "c.example", 550,
         r"5\.1\.8 <x@nxdomain\.example>: Sender address rejected: Domain not found"),
        ("x@nomail.example", "alice@example.test", "c.example", 550,
         r"5\.7\.27 .*does not accept mail \(nullMX\)"),
        ("sender@known.example", "blocked@example.test", "c.example", 554,
         "Recipient address rejected: not here"),
        ("sender@known.example", "alice@example.test", "bad..helo", 501,
         r"<bad\.\.helo>: Helo command rejected: Invalid name"),
    ]
    for mail_from, to, helo, code, pattern in cases:
        got, text = rcpt(port, to, mail_from=mail_from, helo=helo)
        assert got == code, (mail_from, to, helo, text)
        if pattern:
            assert re.search(pattern, text), (mail_from, text)


def test_client_access_and_rbl(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params["smtpd_client_restrictions"] = "reject_rbl_client rbl.example"
    port = start_smtpd(instance, params)["smtp"]
    mark = instance.log_mark()
    got, text = rcpt(port, "alice@example.test")
    assert got == 554, text
    assert ("Service unavailable; Client host [127.0.0.1] blocked using rbl.example; "
            "test listing") in text
    instance.wait_for_log(r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 554 5\.7\.1 "
                          r"Service unavailable; Client host \[127\.0\.0\.1\] blocked using "
                          r"rbl\.example", since=mark)


def test_client_access_swaks(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params["smtpd_client_restrictions"] = "check_client_access inline:{ 127.0.0=REJECT }"
    port = start_smtpd(instance, params)["smtp"]
    swaks = "/usr/bin/swaks"
    if not os.access(swaks, os.X_OK):
        pytest.fail("swaks is not installed", pytrace=False)
    r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(port),
                        "--from", "sender@known.example", "--to", "alice@example.test",
                        "--helo", "client.known.example", "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "554 5.7.1 <" in r.stdout and "[127.0.0.1]>: Client host rejected: Access denied" \
        in r.stdout, r.stdout


def test_sasl_relay_and_login_mismatch(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params.update({
        "smtpd_sender_login_maps": "inline:{ %s=%s, owned@example.test=someone }" % (USER, USER),
        "smtpd_sender_restrictions": "reject_sender_login_mismatch",
    })
    port = start_smtpd(instance, params, auth=True)["smtp"]
    # Without AUTH: relaying refused, an owned sender refused.
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.known.example")
        s.mail("sender@known.example")
        code, text = s.rcpt("x@elsewhere.example")
        assert code == 554, text
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.known.example")
        s.mail(USER)
        code, text = s.rcpt("bob@example.test")
        assert code == 553 and b"not logged in" in text, text
    # With AUTH: relaying allowed for its own address, not for another's.
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.known.example")
        s.login(USER, PASSWORD)
        s.mail(USER)
        code, text = s.rcpt("x@known.example")
        assert code == 250, text
        s.rset()
        s.mail("owned@example.test")
        code, text = s.rcpt("x@known.example")
        assert code == 553 and b"not owned by user" in text, text


def test_no_delay_reject(instance, unbound):
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params.update({
        "smtpd_delay_reject": "no",
        "smtpd_sender_restrictions": "check_sender_access inline:{ spammer@bad.example=REJECT }",
    })
    port = start_smtpd(instance, params)["smtp"]
    mark = instance.log_mark()
    d = Dialog(port)
    try:
        d.expect(220)
        d.send("EHLO client.known.example\r\n")
        d.expect(250)
        d.send("MAIL FROM:<spammer@bad.example>\r\n")
        d.expect(554, r"<spammer@bad\.example>: Sender address rejected: Access denied")
        d.send("QUIT\r\n")
        d.reply()
    finally:
        d.sock.close()
    instance.wait_for_log(r"NOQUEUE: reject: MAIL from \S+\[127\.0\.0\.1\]: 554 5\.7\.1 "
                          r"<spammer@bad\.example>", since=mark)


def test_open_relay_config_refused(instance):
    """A configuration that cannot refuse relaying does not serve mail."""
    params = dict(BASE)
    params.update({"smtpd_relay_restrictions": "permit_mynetworks",
                   "smtpd_recipient_restrictions": "permit"})
    try:
        port = start_smtpd(instance, params)["smtp"]
    except AssertionError:
        port = None
    if port is not None:
        # master is up; the smtpd child must refuse to run, so no 250 to RCPT.
        try:
            got, text = rcpt(port, "x@elsewhere.example")
        except (AssertionError, OSError):
            got, text = None, ""
        assert got != 250, text
    instance.wait_for_log(r"specify at least one working instance of: reject_unauth_destination")


def test_unlisted_recipients_via_authd(instance, unbound):
    """local_recipient_maps may name authd: its userdb decides who exists."""
    params = dict(BASE, smtp_dns_resolver_address=unbound.address)
    params["local_recipient_maps"] = "authd:private/auth inline:{ postmaster=1 }"
    port = start_smtpd(instance, params, auth=True)["smtp"]
    local, domain = USER.split("@")
    cases = [
        (USER, 250, None),
        ("%s+tag@%s" % (local, domain), 250, None),
        ("postmaster@example.test", 250, None),
        ("nobody@example.test", 550, r"5\.1\.1 <nobody@example\.test>: Recipient address "
                                     r"rejected: User unknown in local recipient table"),
    ]
    for to, code, pattern in cases:
        got, text = rcpt(port, to)
        assert got == code, (to, text)
        if pattern:
            assert re.search(pattern, text), (to, text)


def test_policy_service_greylisting(instance, unbound):
    """check_policy_service with a postgrey-like server on a UNIX socket:
    the first attempt of a triplet is deferred, the retry passes."""
    import socket
    import threading

    path = os.path.join(instance.dir, "policy.sock")
    seen = set()
    queries = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(8)
    listener.settimeout(1.0)
    stop = threading.Event()

    def serve_one(conn):
        buf = b""
        conn.settimeout(5.0)
        try:
            while not stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                while b"\n\n" in buf:
                    req, buf = buf.split(b"\n\n", 1)
                    attrs = dict(l.split("=", 1) for l in req.decode().splitlines() if "=" in l)
                    queries.append(attrs)
                    key = (attrs.get("client_address"), attrs.get("sender"),
                           attrs.get("recipient"))
                    if key in seen:
                        conn.sendall(b"action=PREPEND X-Greylist: passed\n\n")
                    else:
                        seen.add(key)
                        conn.sendall(b"action=DEFER_IF_PERMIT Greylisted, try again later\n\n")
        finally:
            conn.close()

    def serve():
        for _ in range(100):
            if stop.is_set():
                return
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        params = dict(BASE, smtp_dns_resolver_address=unbound.address)
        params["smtpd_recipient_restrictions"] = "check_policy_service unix:" + path
        port = start_smtpd(instance, params)["smtp"]
        got, text = rcpt(port, "alice@example.test")
        assert got == 450, text
        assert "4.7.1 <alice@example.test>: Recipient address rejected: Greylisted" in text
        got, text = rcpt(port, "alice@example.test")
        assert got == 250, text
        q = queries[0]
        assert q["request"] == "smtpd_access_policy"
        assert q["protocol_state"] == "RCPT"
        assert q["client_address"] == "127.0.0.1"
        assert q["sender"] == "sender@known.example"
        assert q["recipient"] == "alice@example.test"
        assert q["helo_name"] == "client.known.example"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
