"""test_smtpd_tls_auth.py - STARTTLS on port 25 and 587, implicit TLS on
465 (smtplib and openssl s_client), AUTH PLAIN and LOGIN against authd
with a passwd-file (good, bad, aborted), AUTH refused before TLS where TLS
is required, the submission relay rule, the fail2ban-readable failure line,
and STARTTLS command injection."""

import base64
import os
import re
import select
import shutil
import smtplib
import subprocess
import time

import pytest

from test_smtpd_common import (PASSWORD, USER, Dialog, make_cert, start_smtpd, tls_context,
                               wait_messages)

MSG = b"Subject: tls\r\n\r\nover TLS\r\n"


def s_client(args, steps, timeout=20):
    """Run openssl s_client; for each (line, wait_for) send line and read
    until wait_for shows up.  Returns everything read."""
    p = subprocess.Popen(["openssl", "s_client", "-quiet"] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        for line, wait_for in steps:
            if line:
                p.stdin.write(line)
                p.stdin.flush()
            while wait_for not in out and time.monotonic() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 0.5)
                if r:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out += chunk
    finally:
        p.kill()
        p.wait(10)
    return out


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def test_starttls_on_smtp_port(instance):
    ports = start_smtpd(instance, tls=True)
    with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="client.test",
                      timeout=10) as c:
        code, text = c.ehlo()
        assert b"STARTTLS" in text
        code, _ = c.starttls(context=tls_context())
        assert code == 220
        code, text = c.ehlo()
        assert b"STARTTLS" not in text
        c.sendmail("a@remote.test", ["bob@example.test"], MSG)
    (m,) = wait_messages(instance, 1)
    assert "with ESMTPS id" in m.header("Received")
    instance.wait_for_log(r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: "
                          r"TLSv1\.[23] with cipher")


def test_submission_requires_tls_then_auth(instance):
    ports = start_smtpd(instance, submission=True)
    d = Dialog(ports["submission"])
    d.expect(220)
    text = d.cmd("EHLO client.test", 250)
    assert "STARTTLS" in text and "AUTH" not in text
    d.cmd("MAIL FROM:<%s>" % USER, 530, r"5\.7\.0 Must issue a STARTTLS command first")
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 530, r"5\.7\.0")
    d.cmd("STARTTLS", 220, r"2\.0\.0")
    d.starttls()
    text = d.cmd("EHLO client.test", 250)
    assert re.search(r"250[- ]AUTH PLAIN LOGIN", text), text
    # Relaying needs AUTH on submission.
    d.cmd("MAIL FROM:<%s>" % USER, 250)
    d.cmd("RCPT TO:<someone@far.test>", 554, r"5\.7\.1")
    d.cmd("RSET", 250)
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 235, r"2\.7\.0")
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 503, r"5\.5\.1")
    d.cmd("MAIL FROM:<%s>" % USER, 250)
    d.cmd("RCPT TO:<someone@far.test>", 250)
    d.cmd("DATA", 354)
    d.send(MSG + b".\r\n")
    qid = d.expect(250, r"queued as").split()[-1]
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    assert "with ESMTPSA id" in m.header("Received")
    instance.wait_for_log(r"facteur/submission/smtpd\[\d+\]: %s: client=unknown\[127\.0\.0\.1\], "
                          r"sasl_method=PLAIN, sasl_username=%s" % (qid, re.escape(USER)))


def test_auth_bad_password_and_login_mechanism(instance):
    ports = start_smtpd(instance, submission=True)
    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as c:
        c.starttls(context=tls_context())
        c.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login(USER, "wrong")
        assert e.value.smtp_code == 535
        assert b"5.7.8" in e.value.smtp_error
    instance.wait_for_log(r"warning: unknown\[127\.0\.0\.1\]: SASL (PLAIN|LOGIN) "
                          r"authentication failed: ")
    # LOGIN by hand, then an aborted exchange.
    d = Dialog(ports["submission"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("STARTTLS", 220)
    d.starttls()
    d.cmd("EHLO client.test", 250)
    d.cmd("AUTH LOGIN", 334)
    d.cmd("*", 501, r"5\.7\.0")
    d.cmd("AUTH CRAM-MD5", 504, r"5\.5\.4")
    d.cmd("AUTH LOGIN", 334)
    d.cmd(base64.b64encode(USER.encode()).decode(), 334)
    d.cmd(base64.b64encode(PASSWORD.encode()).decode(), 235)
    d.cmd("QUIT", 221)


def test_auth_on_port_25_with_tls_auth_only(instance):
    ports = start_smtpd(instance, tls=True, auth=True, params={"smtpd_tls_auth_only": "yes"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    text = d.cmd("EHLO client.test", 250)
    assert "AUTH" not in text
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 530, r"5\.7\.0")
    d.cmd("STARTTLS", 220)
    d.starttls()
    assert "AUTH PLAIN" in d.cmd("EHLO client.test", 250)
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 235)
    d.cmd("QUIT", 221)


def test_smtps_implicit_tls(instance):
    ports = start_smtpd(instance, smtps=True)
    with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"], local_hostname="client.test",
                          context=tls_context(), timeout=10) as c:
        code, text = c.ehlo()
        assert b"STARTTLS" not in text and b"AUTH PLAIN" in text
        c.login(USER, PASSWORD)
        c.sendmail(USER, ["friend@far.test"], MSG)
    (m,) = wait_messages(instance, 1)
    assert m.addrs == ["friend@far.test"]
    assert "with ESMTPSA id" in m.header("Received")
    out = s_client(["-connect", "127.0.0.1:%d" % ports["smtps"]],
                   [(None, b"220 localhost ESMTP facteur\r\n"), (b"QUIT\r\n", b"221 2.0.0")])
    assert b"221 2.0.0 Bye" in out, out


def test_openssl_starttls_submission(instance):
    ports = start_smtpd(instance, submission=True)
    out = s_client(["-connect", "127.0.0.1:%d" % ports["submission"], "-starttls", "smtp",
                    "-tls1_2"],
                   [(b"EHLO client.test\r\n", b"250 CHUNKING"), (b"QUIT\r\n", b"221 2.0.0")])
    assert b"250-AUTH PLAIN LOGIN" in out, out
    assert b"221 2.0.0 Bye" in out, out


def test_starttls_command_injection(instance):
    """Bytes pipelined after STARTTLS are dropped, never run over TLS."""
    ports = start_smtpd(instance, tls=True)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
    d.expect(220)
    d.starttls()
    d.cmd("EHLO client.test", 250)
    # Had the injected MAIL run, this would be a nested MAIL (503).
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("QUIT", 221)
    instance.wait_for_log(r"discarding \d+ bytes sent after STARTTLS")


def test_tls_protocol_below_minimum_refused(instance):
    ports = start_smtpd(instance, smtps=True)
    out = s_client(["-connect", "127.0.0.1:%d" % ports["smtps"], "-tls1_1"],
                   [(None, b"220 ")], timeout=5)
    assert b"220 " not in out
    instance.wait_for_log(r"SSL_accept error from unknown\[127\.0\.0\.1\]")


def test_sasl_exceptions_networks(instance):
    ports = start_smtpd(instance, auth=True,
                        params={"smtpd_sasl_exceptions_networks": "127.0.0.0/8"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    assert "AUTH" not in d.cmd("EHLO client.test", 250)
    d.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD), 454, r"4\.7\.0")
    d.cmd("QUIT", 221)


def test_fail2ban_postfix_filter_matches_auth_failures(instance):
    """The stock postfix filter in auth mode, told facteur's process tag
    (jail.local: filter = postfix[mode=auth, _daemon="..."]), matches each
    failed AUTH and not the successful one."""
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex is not installed (Debian package fail2ban)")
    ports = start_smtpd(instance, submission=True)
    for password in ("wrong-1", "wrong-2", PASSWORD):
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as c:
            c.starttls(context=tls_context())
            c.ehlo("client.test")
            try:
                c.login(USER, password)
            except smtplib.SMTPAuthenticationError:
                pass
    instance.wait_for_log(r"SASL \w+ authentication failed", count=2)
    r = subprocess.run(["fail2ban-regex", instance.maillog,
                        'postfix[mode=auth, _daemon="facteur(?:/\\w+)?/smtpd"]'],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", r.stdout)
    # smtplib tries PLAIN, then LOGIN: two failure lines per bad login.
    failures = len(instance.log_lines(r"SASL \w+ authentication failed"))
    assert failures == 4
    assert m and int(m.group(1)) == failures, r.stdout + r.stderr


def test_client_certificate_logged_trusted(instance):
    cert, key = make_cert(instance)
    ports = start_smtpd(instance, tls=True, params={"smtpd_tls_ask_ccert": "yes",
                                                    "smtpd_tls_CAfile": cert})
    ctx = tls_context()
    ctx.load_cert_chain(cert, key)
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as c:
        c.starttls(context=ctx)
        c.ehlo("client.test")
        c.noop()
    instance.wait_for_log(r"Trusted TLS connection established from unknown\[127\.0\.0\.1\]")


def test_authenticated_sender_in_received_header(instance):
    ports = start_smtpd(instance, smtps=True,
                        params={"smtpd_sasl_authenticated_header": "yes",
                                "smtpd_tls_received_header": "yes"})
    with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"], local_hostname="client.test",
                          context=tls_context(), timeout=10) as c:
        c.login(USER, PASSWORD)
        c.sendmail(USER, ["friend@far.test"], MSG)
    (m,) = wait_messages(instance, 1)
    rec = m.header("Received")
    assert "(Authenticated sender: %s)" % USER in rec, rec
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)", rec), rec
