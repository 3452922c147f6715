"""lmtpd interoperating with an unmodified Postfix (Debian's package).

A private Postfix instance (its own config and queue directories in a
temporary directory, smtpd on a free loopback port) delivers its virtual
domain to facteur's lmtpd, over `lmtp:unix:` and over `lmtp:inet:`.  Mail
goes in with swaks; the test reads the Maildir and both logs.  Postfix's
master must run as root, so these tests run as root only (as CI does).
"""

import os
import pwd
import re
import shutil
import tempfile

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon
from test_lmtpd import DOMAIN, Lmtp

POSTFIX_SERVICES = [
    "postlog unix-dgram n - n - 1 postlogd",
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "lmtp unix - - n - - lmtp",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
]


@pytest.fixture(autouse=True)
def needs():
    if not fh.is_root():
        pytest.skip("Postfix's master must run as root (CI runs this as root)")
    if not os.path.exists("/usr/lib/postfix/sbin/master") or not shutil.which("postfix") \
            or not shutil.which("swaks"):
        pytest.fail("Debian's postfix and swaks packages are required")
    require_command("facteur")
    require_daemon("master", "authd", "lmtpd")


@pytest.fixture
def postfix():
    """make(port, transport, mail_owner) starts a private Postfix whose
    virtual domain DOMAIN goes to transport; stopped and removed after."""
    made = []

    def make(port, transport, mail_owner):
        d = tempfile.mkdtemp(prefix="facteur-pf-lmtp-")
        os.chmod(d, 0o755)
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(d, sub))
        owner = pwd.getpwnam(mail_owner)
        os.chown(os.path.join(d, "data"), owner.pw_uid, owner.pw_gid)
        with open(os.path.join(d, "etc", "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6",
                "queue_directory = %s/spool" % d,
                "data_directory = %s/data" % d,
                "mail_owner = %s" % mail_owner,
                "myhostname = localhost",
                "mydomain = localdomain",
                "myorigin = localhost",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mynetworks = 127.0.0.0/8",
                "mydestination =",
                "alias_maps =",
                "alias_database =",
                "relayhost =",
                "smtpd_client_connection_count_limit = 0",
                "smtpd_client_connection_rate_limit = 0",
                "virtual_mailbox_domains = " + DOMAIN,
                # Every address is valid for Postfix: lmtpd decides.
                "virtual_mailbox_maps = static:yes",
                "virtual_transport = " + transport,
                "lmtp_destination_recipient_limit = 50",
                "maillog_file = %s/maillog" % d,
                "maillog_file_prefixes = %s" % d,
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 2s",
                ""]))
        with open(os.path.join(d, "etc", "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
            f.write("".join(line + "\n" for line in POSTFIX_SERVICES))
        made.append(d)
        r = fh.run_cmd(["postfix", "-c", os.path.join(d, "etc"), "start"], timeout=60)
        log = os.path.join(d, "maillog")
        fh.wait_until(lambda: fh.tcp_listening(port), 20,
                      "Postfix smtpd on port %d (%s)" % (port, r.stdout + r.stderr + (
                          open(log).read() if os.path.exists(log) else "")))
        return d

    yield make
    for d in made:
        fh.run_cmd(["postfix", "-c", os.path.join(d, "etc"), "stop"], timeout=60)
        fh.wait_until(lambda: not any(d in fh.proc_cmdline(int(p)) for p in os.listdir("/proc")
                                      if p.isdigit()), 20, "Postfix to stop")
        shutil.rmtree(d, ignore_errors=True)


def swaks(port, rcpts, body="Hello from Postfix.", extra=()):
    return fh.run_cmd(["swaks", "--server", "127.0.0.1:%d" % port, "--from",
                       "sender@example.org", "--to", ",".join(rcpts), "--body", body,
                       "--header", "Subject: via postfix"] + list(extra), timeout=60)


def postfix_log(d):
    try:
        with open(os.path.join(d, "maillog")) as f:
            return f.read()
    except OSError:
        return ""


def wait_postfix(d, regex, count=1, timeout=30):
    return fh.wait_until(lambda: len(re.findall(regex, postfix_log(d))) >= count, timeout,
                         "Postfix log /%s/ x%d; log:\n%s" % (regex, count,
                                                              postfix_log(d)[-3000:]))


@pytest.mark.parametrize("via", ["unix", "inet"])
def test_postfix_delivers_through_lmtpd(instance, postfix, via):
    lm = Lmtp(instance, params={"recipient_delimiter": "+"})
    transport = ("lmtp:unix:" + lm.socket) if via == "unix" else \
        "lmtp:inet:127.0.0.1:%d" % lm.port
    port = fh.free_port()
    d = postfix(port, transport, instance.mail_owner)
    rcpts = ["alice@" + DOMAIN, "bob+tag@" + DOMAIN, "ghost@" + DOMAIN]
    r = swaks(port, rcpts)
    assert re.search(r"<- +250 2\.0\.0 Ok: queued", r.stdout), r.stdout + r.stderr
    # Two delivered, one bounced by lmtpd's 550 at RCPT.
    wait_postfix(d, r"to=<alice@example\.test>, relay=[^,]+, .*status=sent \(250 2\.0\.0 <alice@")
    wait_postfix(d, r"to=<bob\+tag@example\.test>, .*status=sent")
    wait_postfix(d, r"to=<ghost@example\.test>, .*dsn=5\.1\.1, status=bounced")
    data = lm.read("alice")
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: alice@example.test\n")
    assert b"Subject: via postfix\n" in data and b"Hello from Postfix." in data
    assert b"\r\n" not in data
    assert len(lm.files("bob")) == 1
    instance.wait_for_log(r"saved mail to INBOX for <bob\+tag@example\.test>")


def test_postfix_sees_quota_as_deferral(instance, postfix):
    lm = Lmtp(instance, params={"quota_full_tempfail": "yes"})
    port = fh.free_port()
    d = postfix(port, "lmtp:unix:" + lm.socket, instance.mail_owner)
    r = swaks(port, ["small@" + DOMAIN], body="z" * 5000)
    assert re.search(r"<- +250 2\.0\.0 Ok: queued", r.stdout), r.stdout + r.stderr
    wait_postfix(d, r"to=<small@example\.test>, .*dsn=4\.2\.2, status=deferred")
    assert lm.files("small") == []
