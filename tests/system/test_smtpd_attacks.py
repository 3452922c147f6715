"""test_smtpd_attacks.py - the attack classes smtpd must resist: SMTP
smuggling (every bare-LF / bare-CR end-of-data variant yields one message,
never a second; with smtpd_forbid_bare_newline = reject, none), bare
newlines in commands, a first line that looks like HTTP, improper
pipelining before EHLO, open relay through address tricks, XCLIENT and
XFORWARD from clients that are not authorized, and over-long lines in
DATA."""

import pytest

from test_smtpd_common import Dialog, queue_messages, queue_names, start_smtpd, wait_messages

SMUGGLED = b"MAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n" \
           b"Subject: smuggled\r\n\r\nevil\r\n"

# (name, end-of-data imitation).  Only "\r\n.\r\n" ends DATA.
VARIANTS = [
    ("lf-dot-lf", b"\n.\n"),
    ("crlf-dot-lf", b"\r\n.\n"),
    ("lf-dot-crlf", b"\n.\r\n"),
    ("cr-dot-cr", b"\r.\r"),
    ("crlf-dot-cr", b"\r\n.\r"),
    ("cr-dot-crlf", b"\r.\r\n"),
    ("crlf-dot-nul-crlf", b"\r\n.\0\r\n"),
]


def smuggle(port, imitation):
    d = Dialog(port)
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send(b"Subject: one\r\n\r\nbody" + imitation + SMUGGLED + b"\r\n.\r\n")
    code, text = d.reply()
    d.send(b"QUIT\r\n")
    d.closed()
    return code, text


@pytest.mark.parametrize("name,imitation", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_smuggling_normalize_one_message(instance, name, imitation):
    ports = start_smtpd(instance, params={"smtpd_forbid_bare_newline": "normalize"})
    code, text = smuggle(ports["smtp"], imitation)
    assert code == 250, text
    (m,) = wait_messages(instance, 1)
    assert m.addrs == ["bob@example.test"]
    # The would-be second transaction is text inside the first message.
    assert b"MAIL FROM:<evil@evil.test>" in m.content
    assert len(queue_names(instance)) == 1


@pytest.mark.parametrize("name,imitation", VARIANTS[:6], ids=[v[0] for v in VARIANTS[:6]])
def test_smuggling_reject_no_message(instance, name, imitation):
    ports = start_smtpd(instance, params={"smtpd_forbid_bare_newline": "reject"})
    code, text = smuggle(ports["smtp"], imitation)
    assert code == 550 and "5.6.0" in text, text
    assert queue_names(instance) == []


def test_bare_newline_exclusions(instance):
    ports = start_smtpd(instance, params={"smtpd_forbid_bare_newline": "reject",
                                          "smtpd_forbid_bare_newline_exclusions": "127.0.0.1"})
    code, text = smuggle(ports["smtp"], b"\n.\n")
    assert code == 250, text
    assert len(wait_messages(instance, 1)) == 1


def test_bare_newline_in_commands(instance):
    ports = start_smtpd(instance, params={"smtpd_forbid_bare_newline": "reject"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.send(b"EHLO client.test\n")
    d.expect(500, r"5\.5\.2")
    assert d.closed()
    instance.wait_for_log(r"disallowed bare <LF> received from unknown\[127\.0\.0\.1\]")
    # normalize: a bare LF ends a command; a bare CR is refused.
    instance.stop()
    ports = start_smtpd(instance, params={"smtpd_forbid_bare_newline": "normalize"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.send(b"EHLO client.test\n")
    d.expect(250)
    d.send(b"NOOP\rMAIL FROM:<a@b.test>\r\n")
    d.expect(500, r"5\.5\.2")
    d.cmd("QUIT", 221)


def test_http_first_line_ends_session(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    code, _ = d.reply()
    assert code == 521
    assert d.closed()
    instance.wait_for_log(r"warning: non-SMTP command from unknown\[127\.0\.0\.1\]: GET / HTTP")
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.send(b"POST /x HTTP/1.0\r\n")
    assert d.reply()[0] == 521


def test_pipelining_before_ehlo_disconnects(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.send(b"HELO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<b@example.test>\r\n")
    d.expect(554, r"5\.5\.0")
    assert d.closed()
    instance.wait_for_log(r"improper command pipelining after HELO from unknown\[127\.0\.0\.1\]")


@pytest.mark.parametrize("rcpt", [
    "user%other.test@example.test",
    '"user@other.test"@example.test',
    "@example.test:user@other.test",
    "user@other.test@example.test",
    "user!other.test@example.test",
    "user@other.test",
])
def test_no_relay_through_address_tricks(instance, rcpt):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.send("RCPT TO:<%s>\r\n" % rcpt)
    code, text = d.reply()
    assert code is not None and 500 <= code < 600, text
    d.cmd("QUIT", 221)
    assert queue_names(instance) == []


def test_xclient_xforward_need_authorization(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    text = d.cmd("EHLO client.test", 250)
    assert "XCLIENT" not in text and "XFORWARD" not in text
    d.cmd("XCLIENT ADDR=192.0.2.1 NAME=trusted.test", 550, r"5\.7\.0")
    d.cmd("XFORWARD ADDR=192.0.2.1", 550, r"5\.7\.0")
    d.cmd("QUIT", 221)


def test_xclient_and_xforward_for_trusted_client(instance):
    ports = start_smtpd(instance, params={"smtpd_authorized_xclient_hosts": "127.0.0.1",
                                          "smtpd_authorized_xforward_hosts": "127.0.0.0/8"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    text = d.cmd("EHLO client.test", 250)
    assert "XCLIENT NAME ADDR" in text and "XFORWARD NAME ADDR" in text
    d.cmd("XFORWARD NAME=orig.test ADDR=198.51.100.7 HELO=orig-helo.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send(b"Subject: fwd\r\n\r\nx\r\n.\r\n")
    d.expect(250)
    d.cmd("XCLIENT NAME=proxied.test ADDR=203.0.113.9 HELO=[UNAVAILABLE]", 220)
    d.cmd("XCLIENT ADDR=not-an-address", 501, r"5\.5\.4")
    d.cmd("EHLO again.test", 250)
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    assert m.header("Received").startswith("from orig-helo.test (orig.test [198.51.100.7])")
    instance.wait_for_log(r"%s: client=unknown\[127\.0\.0\.1\], "
                          r"orig_client=orig\.test\[198\.51\.100\.7\]$" % m.qid)
    instance.wait_for_log(r"xclient: now proxied\.test\[203\.0\.113\.9\]")
    instance.wait_for_log(r"disconnect from proxied\.test\[203\.0\.113\.9\]")


def test_long_data_lines_are_bounded(instance):
    ports = start_smtpd(instance, params={"line_length_limit": "1000",
                                          "message_size_limit": "10000000"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send(b"Subject: long\r\n\r\n" + b"y" * 300000 + b"\r\n.\r\n")
    d.timeout = 30
    d.expect(250)
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    body = m.content.split(b"\n\n", 1)[1]
    assert body.count(b"y") == 300000
    assert max(len(l) for l in body.split(b"\n")) <= 1000
    assert len(queue_messages(instance)) == 1


def test_refused_bdat_chunk_is_never_run_as_commands(instance):
    """On a port that requires TLS, BDAT before STARTTLS is refused, and
    its chunk (here, commands) is skipped, not executed."""
    ports = start_smtpd(instance, submission=True)
    d = Dialog(ports["submission"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    chunk = b"MAIL FROM:<x@evil.test>\r\n"
    d.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    d.expect(530, r"5\.7\.0")
    d.cmd("NOOP", 250)
    d.cmd("QUIT", 221)
    instance.wait_for_log(r"disconnect from .* bdat=0/1 noop=1 quit=1")
