"""End to end through qmgr: smtpd -> incoming/ -> qmgr -> smtp (as the
LMTP client) -> lmtpd -> Maildir, and qmgr -> smtp -> relayhost
(Postfix's smtp-sink), with authd for lmtpd's user lookups.

The services are etc/master.cf's: the LMTP client is service "local" (the
smtp binary, LMTP because of its unix: next hop) and lmtpd listens as
service "lmtp" on private/lmtp; local_transport is left at its default,
local:unix:private/lmtp.  pflogsumm then reads the whole maillog.
"""

import os
import re
import smtplib
import subprocess

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon
from smtp_client_fixture import SmtpSink

DOMAIN = "example.test"


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master", "qmgr", "smtpd", "smtp", "lmtpd", "authd", "anvil")


def owner_ids():
    if fh.is_root():
        return 5000, 5000
    return os.getuid(), os.getgid()


def start_e2e(inst, sink_port, params=None):
    uid, gid = owner_ids()
    vmail = os.path.join(inst.dir, "vmail")
    os.makedirs(vmail, exist_ok=True)
    os.chown(vmail, uid, gid)
    users = inst.write_file("etc/users", "".join(
        "%s@%s:{PLAIN}pw:%d:%d::%s/%s::\n" % (u, DOMAIN, uid, gid, vmail, u)
        for u in ("alice", "bob")))
    port = fh.free_port()
    p = {
        "mydestination": "localhost, " + DOMAIN,
        "myorigin": DOMAIN,
        "mynetworks": "127.0.0.0/8",
        "smtpd_peername_lookup": "no",
        "smtpd_error_sleep_time": "0s",
        "smtpd_client_event_limit_exceptions": "",
        "alias_maps": "",
        "local_recipient_maps": "",
        "relayhost": "[127.0.0.1]:%d" % sink_port,
        "auth_passdb": "passwd-file:" + users,
        "auth_userdb": "passwd-file:" + users,
        "mail_location": "maildir:~/Maildir",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "smtp_connect_timeout": "5s",
    }
    if os.environ.get("ASAN_OPTIONS"):
        p["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    p.update(params or {})
    inst.configure(params=p, services=[
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n"),
        fh.service_line("anvil", "unix", "anvil", maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("smtp", "unix", "smtp"),
        fh.service_line("local", "unix", "smtp"),
        fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
        fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
    ])
    inst.start()
    return port, vmail


def maildir_files(vmail, user):
    d = os.path.join(vmail, user, "Maildir", "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_smtpd_to_maildir_and_relayhost(instance, tmp_path):
    sink_port = fh.free_port()
    sink = SmtpSink(sink_port, str(tmp_path / "dump"))
    try:
        port, vmail = start_e2e(instance, sink_port)
        body = ("From: sender@src.example\r\nTo: alice@%s\r\nSubject: e2e\r\n"
                "Message-ID: <e2e-1@src.example>\r\n\r\nHello through qmgr.\r\n" % DOMAIN)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("sender@src.example", ["alice@" + DOMAIN, "bob@" + DOMAIN,
                                              "far@remote.example"], body)
        m = instance.wait_for_log(r"(\w+): from=<sender@src\.example>, size=\d+, nrcpt=3 "
                                  r"\(queue active\)", timeout=20)
        qid = m.group(1)
        instance.wait_for_log(r"%s: removed" % qid, timeout=30)
        fh.wait_until(lambda: maildir_files(vmail, "alice") and maildir_files(vmail, "bob"),
                      10, "the message in both Maildirs")
        with open(os.path.join(vmail, "alice", "Maildir", "new",
                               maildir_files(vmail, "alice")[0]), "rb") as f:
            assert b"Hello through qmgr." in f.read()
        fh.wait_until(lambda: sink.messages(), 10, "the message at the relayhost")
        assert b"Hello through qmgr." in sink.messages()[0]
        sent = instance.log_lines(r"%s: to=<([^>]+)>, relay=[^,]+, delay=[\d.]+, "
                                  r"delays=[\d./]+, dsn=2\.\d\.\d, status=sent" % qid)
        assert sorted(x.group(1) for x in sent) == sorted(
            ["alice@" + DOMAIN, "bob@" + DOMAIN, "far@remote.example"])
        # Two local recipients went in one LMTP request.
        assert len(instance.log_lines(r"facteur/smtp\[\d+\]: %s: to=<(alice|bob)@[^>]+>, "
                                      r"relay=localhost\[private/lmtp\]" % qid)) == 2
    finally:
        sink.stop()


def test_pflogsumm_counts_each_recipient_once(instance, tmp_path):
    sink_port = fh.free_port()
    sink = SmtpSink(sink_port, str(tmp_path / "dump"))
    try:
        port, vmail = start_e2e(instance, sink_port)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("sender@src.example", ["alice@" + DOMAIN, "bob@" + DOMAIN,
                                              "far@remote.example"], "Subject: x\r\n\r\nx\r\n")
        m = instance.wait_for_log(r"(\w+): from=<sender@src\.example>", timeout=20)
        instance.wait_for_log(r"%s: removed" % m.group(1), timeout=30)
        r = subprocess.run(["pflogsumm", "--syslog-name=facteur", instance.maillog],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        received = re.search(r"^\s+(\d+)\s+received", r.stdout, re.M)
        delivered = re.search(r"^\s+(\d+)\s+delivered", r.stdout, re.M)
        assert received and int(received.group(1)) == 1, r.stdout
        assert delivered and int(delivered.group(1)) == 3, r.stdout
    finally:
        sink.stop()


def test_unknown_local_user_bounces_to_sender(instance, tmp_path):
    sink_port = fh.free_port()
    sink = SmtpSink(sink_port, str(tmp_path / "dump"))
    try:
        port, vmail = start_e2e(instance, sink_port)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("sender@src.example", ["nosuchuser@" + DOMAIN],
                       "Subject: lost\r\n\r\nbody\r\n")
        m = instance.wait_for_log(r"(\w+): to=<nosuchuser@example\.test>, .*dsn=5\.1\.1, "
                                  r"status=bounced", timeout=20)
        instance.wait_for_log(r"%s: sender non-delivery notification: \w+" % m.group(1))
        # The DSN went to the (remote) sender through the relayhost.
        fh.wait_until(lambda: sink.messages(), 20, "the bounce at the relayhost")
        dsn = sink.messages()[0]
        assert b"report-type=delivery-status" in dsn
        assert b"Final-Recipient: rfc822; nosuchuser@example.test" in dsn
        assert b"Status: 5.1.1" in dsn
    finally:
        sink.stop()
