"""test_smtpd_proto.py - smtpd's SMTP protocol with real clients (smtplib,
swaks, raw dialogues): greeting, EHLO extensions, a message queued with a
correct Received: header, PIPELINING, CHUNKING (BDAT), DSN parameters in
the queue file, SMTPUTF8, 8BITMIME, enhanced status codes on every reply,
command sequencing errors, and the Postfix log lines."""

import os
import pwd
import re
import shutil
import smtplib
import subprocess

import pytest

import facteur_harness as fh
from test_smtpd_common import (Dialog, queue_messages, queue_names, send_simple,
                               start_smtpd, tls_context, wait_messages)

ENH = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


def test_greeting_and_ehlo_keywords(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220, r"^220 localhost ESMTP facteur$")
    text = d.cmd("EHLO client.test", 250)
    lines = text.split("\n")
    assert lines[0] == "250-localhost"
    kws = [l[4:] for l in lines[1:]]
    for kw in ("PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
               "SMTPUTF8", "CHUNKING"):
        assert kw in kws, kws
    assert "STARTTLS" not in kws and not any(k.startswith("AUTH") for k in kws)
    assert all(l.startswith("250-") for l in lines[:-1]) and lines[-1].startswith("250 ")
    d.cmd("HELO other.test", 250, r"^250 localhost$")
    d.cmd("QUIT", 221, r"^221 2\.0\.0 ")
    assert d.closed()
    instance.wait_for_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]")
    instance.wait_for_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 helo=1 quit=1 "
                          r"commands=3|disconnect from unknown\[127\.0\.0\.1\] helo=1 ehlo=1 "
                          r"quit=1 commands=3")


def test_smtplib_message_queued_with_received_header(instance):
    ports = start_smtpd(instance)
    with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="client.test",
                      timeout=10) as c:
        refused = c.sendmail("sender@remote.test", ["bob@example.test"],
                             b"Subject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\n"
                             b"line one\r\n.leading dot\r\n")
        assert refused == {}
    (m,) = wait_messages(instance, 1)
    assert m.ended and m.sender == "sender@remote.test"
    assert m.addrs == ["bob@example.test"]
    assert m.rcpts[0][0] == "T"
    rec = m.header("Received")
    assert re.match(r"from client\.test \(unknown \[127\.0\.0\.1\]\)\s+by localhost "
                    r"\(facteur\) with ESMTP id %s\s+for <bob@example\.test>; " % m.qid, rec), rec
    body = m.content.split(b"\n\n", 1)[1]
    assert body == b"line one\n.leading dot\n"
    assert m.attrs.get("client_address") == "127.0.0.1"
    assert m.attrs.get("helo_name") == "client.test"
    instance.wait_for_log(r"%s: client=unknown\[127\.0\.0\.1\]$" % m.qid)
    instance.wait_for_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 "
                          r"data=1 quit=1 commands=5")


def test_swaks_message(instance):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed")
    ports = start_smtpd(instance)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(ports["smtp"]),
                        "--from", "a@remote.test", "--to", "carol@example.test",
                        "--helo", "swaks.test", "--body", "from swaks", "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as \w+", r.stdout), r.stdout
    (m,) = wait_messages(instance, 1)
    assert m.addrs == ["carol@example.test"] and b"from swaks" in m.content


def test_pipelining_replies_in_order(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<x@example.test>\r\n"
           "RCPT TO:<y@example.test>\r\nRCPT TO:<z@relay-elsewhere.test>\r\nDATA\r\n")
    d.expect(250, r"2\.1\.0")
    d.expect(250, r"2\.1\.5")
    d.expect(250, r"2\.1\.5")
    d.expect(554, r"5\.7\.1")
    d.expect(354)
    d.send("Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    d.expect(250, r"queued as")
    d.expect(250, r"2\.0\.0")
    d.expect(221)
    (m,) = wait_messages(instance, 1)
    assert m.addrs == ["x@example.test", "y@example.test"]
    assert "for <" not in m.header("Received")


def test_bdat_chunking(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    part1 = b"Subject: chunks\r\n\r\nfirst part of a li"
    part2 = b"ne\r\n.not stuffed\r\nlast"
    d.send(b"BDAT %d\r\n" % len(part1) + part1)
    d.expect(250, r"2\.0\.0 Ok: %d bytes" % len(part1))
    d.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    d.expect(250, r"queued as")
    # DATA is refused for BINARYMIME; BDAT 0 LAST ends an empty chunk list.
    d.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 503, r"5\.5\.1")
    d.send(b"BDAT 0 LAST\r\n")
    d.expect(250, r"queued as")
    # BDAT without MAIL still consumes its chunk: the bytes are not commands.
    d.send(b"BDAT 6\r\nQUIT\r\n")
    d.expect(503, r"5\.5\.1")
    d.cmd("NOOP", 250)
    d.cmd("QUIT", 221)
    msgs = wait_messages(instance, 2)
    contents = sorted(m.content for m in msgs)
    assert any(c.endswith(b"\n\nfirst part of a line\n.not stuffed\nlast\n") for c in contents), contents
    assert all(m.flags & 0x04 for m in msgs)         # QFILE_FL_BINARYMIME


def test_dsn_parameters_kept(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test> RET=HDRS ENVID=env+2Bid-1 BODY=8BITMIME", 250)
    d.cmd("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE "
          "ORCPT=rfc822;bob+2Bx@example.test", 250)
    d.cmd("RCPT TO:<carol@example.test> NOTIFY=NEVER", 250)
    d.cmd("DATA", 354)
    d.send("Subject: dsn\r\n\r\n\xe9t\xe9\r\n.\r\n".encode("latin-1"))
    d.expect(250)
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    assert m.ret == "H" and m.envid == "env+id-1"
    assert m.rcpts[0][1] == 0x02 | 0x04 and m.rcpts[0][3] == "rfc822;bob+x@example.test"
    assert m.rcpts[1][1] == 0x01 and m.rcpts[1][3] == ""
    assert m.flags & 0x02                               # QFILE_FL_8BITMIME


def test_smtputf8(instance):
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.send("MAIL FROM:<j\u00f6rg@remote.test>\r\n".encode())
    d.expect(553, r"5\.6\.7")
    d.send("MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8\r\n".encode())
    d.expect(250)
    d.send("RCPT TO:<\u00e9l\u00e8ve@example.test>\r\n".encode())
    d.expect(250)
    d.cmd("DATA", 354)
    d.send("Subject: utf8\r\n\r\nhi\r\n.\r\n")
    d.expect(250)
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    assert m.sender == "j\u00f6rg@remote.test" and m.flags & 0x01


def test_enhanced_codes_and_sequence_errors(instance):
    ports = start_smtpd(instance, params={"disable_vrfy_command": "no"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    steps = [
        ("FROBNICATE", 500, r"5\.5\.2"),
        ("RCPT TO:<a@example.test>", 503, r"5\.5\.1"),
        ("DATA", 503, r"5\.5\.1"),
        ("EHLO client.test", 250, None),
        ("MAIL FROM:<bad address>", 501, r"5\.1\.7"),
        ("MAIL FROM:<a@remote.test> FOO=BAR", 555, r"5\.5\.4"),
        ("MAIL FROM:<a@remote.test>", 250, r"2\.1\.0"),
        ("MAIL FROM:<b@remote.test>", 503, r"5\.5\.1"),
        ("RCPT TO:<>", 501, r"5\.1\.3"),
        ("DATA", 503, r"5\.5\.1"),
        ("RSET", 250, r"2\.0\.0"),
        ("NOOP", 250, r"2\.0\.0"),
        ("VRFY bob", 252, r"2\.0\.0"),
        ("EXPN list", 502, r"5\.5\.1"),
        ("HELP", 214, r"2\.0\.0"),
        ("DATA extra", 501, r"5\.5\.4"),
        ("LHLO client.test", 500, r"5\.5\.2"),
    ]
    for line, code, pat in steps:
        text = d.cmd(line, code, pat)
        if code != 250 or not line.startswith("EHLO"):
            assert ENH.match(text), "no enhanced code in %r" % text
    d.cmd("QUIT", 221)
    instance.wait_for_log(r"disconnect from .* unknown=0/1 commands=")


def test_helo_required(instance):
    ports = start_smtpd(instance, params={"smtpd_helo_required": "yes"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("MAIL FROM:<a@remote.test>", 503, r"5\.5\.1 Error: send HELO/EHLO first")
    d.cmd("HELO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("QUIT", 221)


def test_received_for_one_recipient_only(instance):
    ports = start_smtpd(instance)
    send_simple(ports["smtp"], rcpts=("a@example.test", "b@example.test"))
    (m,) = wait_messages(instance, 1)
    assert "for <" not in m.header("Received")
    assert queue_names(instance) == [m.qid]
    assert len(queue_messages(instance)) == 1


def test_client_name_forward_confirmed(instance):
    ports = start_smtpd(instance, params={"smtpd_peername_lookup": "yes",
                                          "smtpd_client_port_logging": "yes"})
    send_simple(ports["smtp"])
    (m,) = wait_messages(instance, 1)
    # /etc/hosts maps 127.0.0.1 to localhost and back.
    assert m.header("Received").startswith("from client.test (localhost [127.0.0.1])")
    instance.wait_for_log(r"connect from localhost\[127\.0\.0\.1\]:\d+$")


def test_chrooted_unprivileged_smtpd_queues_and_wakes_qmgr(instance):
    """As root the service drops to mail_owner and chroots into the queue
    directory (master.cf chroot y): every path smtpd uses is relative to
    it.  The trigger to qmgr's FIFO arrives (a reader stands in for qmgr)."""
    ports = start_smtpd(instance, tls=True, chroot="y")
    fifo = os.path.join(instance.queue, "public", "qmgr")
    os.mkfifo(fifo, 0o622)
    if fh.is_root():
        owner = pwd.getpwnam(instance.mail_owner)
        os.chown(fifo, owner.pw_uid, owner.pw_gid)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="client.test",
                          timeout=10) as c:
            c.starttls(context=tls_context())
            c.sendmail("a@remote.test", ["bob@example.test"], b"Subject: jail\r\n\r\nx\r\n")
        (m,) = wait_messages(instance, 1)
        assert m.ended and "with ESMTPS id" in m.header("Received")
        got = fh.wait_until(lambda: _read_nb(rfd), 5, "a trigger in public/qmgr")
        assert got == b"I"
    finally:
        os.close(rfd)
    if fh.is_root():
        pid = instance.wait_service_pid("smtpd")
        st = fh.proc_status(pid)
        assert st["Uid"].split()[0] == str(pwd.getpwnam(instance.mail_owner).pw_uid)
        assert os.readlink("/proc/%d/root" % pid) == instance.queue


def _read_nb(fd):
    try:
        return os.read(fd, 64)
    except BlockingIOError:
        return b""


def test_discard_ehlo_keywords_banner_and_vrfy(instance):
    ports = start_smtpd(instance, params={"smtpd_discard_ehlo_keywords": "chunking, dsn",
                                          "smtpd_banner": "$myhostname ESMTP ready",
                                          "disable_vrfy_command": "yes"})
    d = Dialog(ports["smtp"])
    d.expect(220, r"^220 localhost ESMTP ready$")
    kws = [l[4:] for l in d.cmd("EHLO client.test", 250).split("\n")[1:]]
    assert "CHUNKING" not in kws and "DSN" not in kws and "PIPELINING" in kws
    assert kws[-1] == "SMTPUTF8"
    d.cmd("VRFY bob", 502, r"5\.5\.1")
    d.cmd("QUIT", 221)


def test_swaks_pipelining(instance):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed")
    ports = start_smtpd(instance)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(ports["smtp"]),
                        "--from", "a@remote.test", "--to", "carol@example.test,dave@example.test",
                        "--helo", "swaks.test", "--pipeline", "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    (m,) = wait_messages(instance, 1)
    assert m.addrs == ["carol@example.test", "dave@example.test"]


def test_pflogsumm_reads_smtpd_lines(instance):
    if shutil.which("pflogsumm") is None:
        pytest.fail("pflogsumm is not installed")
    ports = start_smtpd(instance)
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<someone@elsewhere.test>", 554, r"5\.7\.1")
    d.cmd("QUIT", 221)
    send_simple(ports["smtp"])
    instance.wait_for_log(r"disconnect from", count=2)
    r = subprocess.run(["pflogsumm", "--syslog-name=facteur", instance.maillog],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^\s+1\s+rejected", r.stdout, re.M), r.stdout
    assert re.search(r"(?s)Relay access denied", r.stdout), r.stdout


def test_reject_footer(instance):
    ports = start_smtpd(instance, params={
        "smtpd_reject_footer": r"\c (see https://$myhostname/help)\nclient $client_address "
                               r"code $code $enhanced_code"})
    d = Dialog(ports["smtp"])
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    text = d.cmd("RCPT TO:<a@example.test>", 503)
    assert text == ("503-5.5.1 Error: need MAIL command (see https://localhost/help)\n"
                    "503 5.5.1 client 127.0.0.1 code 503 5.5.1"), text
    assert d.cmd("NOOP", 250) == "250 2.0.0 Ok"
    d.cmd("QUIT", 221)
