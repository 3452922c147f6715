"""lmtpd: LMTP (RFC 2033) into Maildir, driven by Python's smtplib.LMTP and
by hand-written dialogues.

Each test starts an instance with authd (passwd-file users plus a static
userdb for the vhost domain) and lmtpd on private/lmtp and on a TCP port,
then checks the replies, the Maildir files (headers, size, ownership) and
the log lines.  Run as root, files must belong to the mailbox owner: the
virtual users' uid, and a real system user for the passwd userdb.
"""

import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon

DOMAIN = "example.test"
VUID = 5000             # virtual-mail owner when run as root
SYS_USER = "facteurlmtpu"


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master", "authd", "lmtpd")


def owner_ids():
    """uid/gid the mailboxes belong to: a virtual uid as root, else us."""
    if fh.is_root():
        return VUID, VUID
    return os.getuid(), os.getgid()


class Lmtp:
    """An instance running authd + lmtpd, and what the tests look at."""

    def __init__(self, instance, params=None, users=None):
        self.inst = instance
        self.uid, self.gid = owner_ids()
        self.vmail = os.path.join(instance.dir, "vmail")
        os.makedirs(self.vmail, exist_ok=True)
        os.chown(self.vmail, self.uid, self.gid)
        lines = users if users is not None else [
            self.user_line("alice"),
            self.user_line("bob"),
            self.user_line("small", extra="userdb_quota_rule=*:bytes=3000"),
            self.user_line("tiny", extra="userdb_quota_rule=*:messages=1"),
        ]
        self.users = instance.write_file("etc/users", "".join(lines))
        self.port = fh.free_port()
        merged = {
            "auth_passdb": "passwd-file:" + self.users,
            "auth_userdb": "passwd-file:" + self.users,
            "mail_location": "maildir:~/Maildir",
            "mailbox_size_limit": "0",
            "lmtpd_timeout": "10s",
            "mydestination": "localhost, " + DOMAIN,
        }
        if os.environ.get("ASAN_OPTIONS"):
            merged["import_environment"] = ("FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS "
                                            "UBSAN_OPTIONS")
        merged.update(params or {})
        instance.configure(params=merged, services=[
            fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
            fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
            fh.service_line("127.0.0.1:%d" % self.port, "inet", "lmtpd", unpriv="n"),
        ])
        instance.start()
        self.socket = instance.socket_path("lmtp")

    def home(self, user):
        return os.path.join(self.vmail, user)

    def user_line(self, user, extra="", uid=None, gid=None, home=None):
        return "%s@%s:{PLAIN}pw:%d:%d::%s::%s\n" % (
            user, DOMAIN, self.uid if uid is None else uid, self.gid if gid is None else gid,
            home or self.home(user), extra)

    def maildir(self, user, folder=None):
        base = os.path.join(self.home(user), "Maildir")
        return os.path.join(base, "." + folder) if folder else base

    def files(self, user, sub="new", folder=None):
        d = os.path.join(self.maildir(user, folder), sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def read(self, user, folder=None, index=0):
        name = self.files(user, folder=folder)[index]
        with open(os.path.join(self.maildir(user, folder), "new", name), "rb") as f:
            return f.read()

    def client(self, tcp=False):
        c = smtplib.LMTP("127.0.0.1", self.port) if tcp else smtplib.LMTP(self.socket)
        c.ehlo("client.example")
        return c

    def dialogue(self):
        d = fh.Dialogue.unix(self.socket)
        d.expect(r"^220 ")
        return d


def msg(subject="hello", body="Hello there.\r\n"):
    return ("From: sender@example.org\r\nTo: someone@%s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\n%s" % (DOMAIN, subject, subject, body))


def lmtp_send(c, sender, rcpts, message):
    """One transaction through smtplib.LMTP, reading LMTP's one reply per
    accepted recipient after the data (smtplib itself reads only one).
    Returns {rcpt: (code, text)} for every recipient."""
    out = {}
    code, text = c.mail(sender)
    assert code == 250, (code, text)
    accepted = []
    for r in rcpts:
        code, text = c.rcpt(r)
        out[r] = (code, text)
        if code == 250:
            accepted.append(r)
    if not accepted:
        c.rset()
        return out
    code, text = c.data(message)
    out[accepted[0]] = (code, text)
    for r in accepted[1:]:
        out[r] = c.getreply()
    return out


def data_replies(d, n):
    """The n per-recipient replies after the final dot."""
    return [d.read_line() for _ in range(n)]


def test_lhlo_and_single_delivery(instance):
    lm = Lmtp(instance)
    c = smtplib.LMTP(lm.socket)
    code, text = c.ehlo("client.example")
    assert code == 250
    for ext in (b"PIPELINING", b"ENHANCEDSTATUSCODES", b"8BITMIME", b"SIZE", b"CHUNKING",
                b"XQID"):
        assert ext in text, text
    refused = c.sendmail("sender@example.org", ["alice@" + DOMAIN], msg())
    assert refused == {}
    c.quit()
    data = lm.read("alice")
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: alice@"
                           + DOMAIN.encode() + b"\n")
    assert b"\r\n" not in data and b"Subject: hello\n" in data
    name = lm.files("alice")[0]
    assert re.search(r",S=%d" % len(data), name), name
    assert lm.files("alice", "tmp") == []
    st = os.stat(os.path.join(lm.maildir("alice"), "new", name))
    assert (st.st_uid, st.st_gid) == (lm.uid, lm.gid)
    assert st.st_mode & 0o077 == 0
    m = instance.wait_for_log(r"lmtpd\[\d+\]: \w+: saved mail to INBOX for "
                              r"<alice@example\.test>: size=(\d+), delay=[\d.]+, name=(\S+)$")
    assert m.group(2) == name
    # Not a line pflogsumm counts: the LMTP client logs the delivery.
    assert not instance.log_lines(r"lmtpd\[\d+\]: .*to=<[^>]*>, relay=")


def test_mixed_outcomes_per_recipient(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send("LHLO client.example")
    d.expect_reply("250")
    d.send("MAIL FROM:<sender@example.org>")
    d.expect(r"^250 2\.1\.0")
    d.send("RCPT TO:<alice@%s>" % DOMAIN)
    d.expect(r"^250 2\.1\.5")
    d.send("RCPT TO:<nobody@%s>" % "elsewhere.example")
    d.expect(r"^550 5\.1\.1 .*nobody@elsewhere\.example")
    d.send("RCPT TO:<small@%s>" % DOMAIN)
    d.expect(r"^250 2\.1\.5")
    d.send("RCPT TO:<bob@%s>" % DOMAIN)
    d.expect(r"^250 2\.1\.5")
    d.send("DATA")
    d.expect(r"^354 ")
    d.send_raw(msg(body="x" * 4000 + "\r\n") + ".\r\n")
    replies = data_replies(d, 3)
    assert replies[0].startswith("250 2.0.0 <alice@example.test>"), replies
    assert replies[1].startswith("552 5.2.2 <small@example.test>: Mailbox full"), replies
    assert replies[2].startswith("250 2.0.0 <bob@example.test>"), replies
    d.send("QUIT")
    d.expect(r"^221 ")
    d.close()
    assert len(lm.files("alice")) == 1 and len(lm.files("bob")) == 1
    assert lm.files("small") == []
    instance.wait_for_log(r"not saved for <small@example\.test>: delay=[\d.]+, dsn=5\.2\.2, "
                          r"bounced \(552 5\.2\.2 ")
    instance.wait_for_log(r"reject: RCPT from local: 550 5\.1\.1 .*to=<nobody@elsewhere")
    # Both recipients shared the transaction but sit in different Maildirs.
    assert lm.files("alice")[0] != lm.files("bob")[0]


def test_quota_message_count_and_tempfail(instance):
    lm = Lmtp(instance, params={"quota_full_tempfail": "yes"})
    c = lm.client()
    assert c.sendmail("s@example.org", ["tiny@" + DOMAIN], msg("one")) == {}
    with pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("s@example.org", ["tiny@" + DOMAIN], msg("two"))
    assert e.value.smtp_code == 452 and e.value.smtp_error.startswith(b"4.2.2"), e.value
    c.quit()
    assert len(lm.files("tiny")) == 1
    size_file = os.path.join(lm.maildir("tiny"), "maildirsize")
    with open(size_file) as f:
        assert f.readline().strip() == "1C"


def test_quota_checked_at_rcpt(instance):
    lm = Lmtp(instance, params={"lmtp_rcpt_check_quota": "yes"})
    d = lm.dialogue()
    d.send("LHLO client.example")
    d.expect_reply("250")
    d.send("MAIL FROM:<s@example.org> SIZE=5000")
    d.expect(r"^250 ")
    d.send("RCPT TO:<small@%s>" % DOMAIN)
    d.expect(r"^552 5\.2\.2 <small@example\.test>: Mailbox full")
    d.send("RCPT TO:<alice@%s>" % DOMAIN)
    d.expect(r"^250 ")
    d.close()


def test_unknown_user_and_unknown_domain(instance):
    uid, gid = owner_ids()
    static = os.path.join(instance.dir, "static")
    os.makedirs(static)
    os.chown(static, uid, gid)
    users = os.path.join(instance.dir, "etc", "users")
    # Known users first, then one virtual-mail owner for the local domains.
    lm = Lmtp(instance, params={
        "auth_userdb": "passwd-file:%s static:uid=%d gid=%d home=%s/%%d/%%n "
                       "allow_all_users=yes" % (users, uid, gid, static),
        "mydestination": "localhost"})
    c = lm.client()
    # The static userdb accepts every name: here it answers for all.
    assert c.sendmail("s@example.org", ["carol@localhost"], msg()) == {}
    assert c.sendmail("s@example.org", ["alice@" + DOMAIN], msg()) == {}
    c.quit()
    static_home = os.path.join(static, "localhost", "carol")
    assert len(os.listdir(os.path.join(static_home, "Maildir", "new"))) == 1
    assert len(lm.files("alice")) == 1
    # Without it, unknown names are refused whatever the domain.
    lm2 = Lmtp(fh.Instance(name="lmtp-nostatic"))
    try:
        c = lm2.client()
        for rcpt in ("ghost@other.example", "ghost@" + DOMAIN, "ghost@localhost"):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                c.sendmail("s@example.org", [rcpt], msg())
            code, text = e.value.recipients[rcpt]
            assert code == 550 and text.startswith(b"5.1.1"), (rcpt, code, text)
        c.quit()
    finally:
        lm2.inst.cleanup()


def test_detail_mailbox(instance):
    lm = Lmtp(instance, params={"recipient_delimiter": "+-",
                                "lmtp_save_to_detail_mailbox": "yes"})
    folder = lm.maildir("alice", "lists")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(folder, sub))
    for root, dirs, _ in os.walk(lm.home("alice")):
        os.chown(root, lm.uid, lm.gid)
    c = lm.client()
    rcpts = ["alice+lists@" + DOMAIN, "alice-nosuch@" + DOMAIN, "alice+x/y@" + DOMAIN]
    replies = lmtp_send(c, "s@example.org", rcpts, msg())
    assert [r[0] for r in replies.values()] == [250, 250, 250], replies
    c.quit()
    assert len(lm.files("alice", folder="lists")) == 1
    # A folder that does not exist (or could not be one) gets INBOX.
    assert len(lm.files("alice")) == 2
    data = lm.read("alice", folder="lists")
    assert b"Delivered-To: alice+lists@example.test\n" in data
    instance.wait_for_log(r"saved mail to lists for <alice\+lists@example\.test>")


def test_large_message_over_tcp(instance):
    lm = Lmtp(instance, params={"message_size_limit": "20000000"})
    line = "0123456789" * 9 + "abcdefg\r\n"
    body = line * (11 * 1024 * 1024 // len(line))
    c = lm.client(tcp=True)
    assert c.sendmail("s@example.org", ["alice@" + DOMAIN], msg("big", body)) == {}
    c.quit()
    data = lm.read("alice")
    assert len(data) > 10 * 1024 * 1024
    assert data.count(b"abcdefg\n") == len(body) // len(line)


def test_size_limit(instance):
    lm = Lmtp(instance, params={"message_size_limit": "20000"})
    d = lm.dialogue()
    d.send("LHLO client.example")
    lines = d.expect_reply("250")
    assert "250-SIZE 20000" in lines
    d.send("MAIL FROM:<s@example.org> SIZE=30000")
    d.expect(r"^552 5\.3\.4")
    d.send("MAIL FROM:<s@example.org>")
    d.expect(r"^250 ")
    d.send("RCPT TO:<alice@%s>" % DOMAIN)
    d.expect(r"^250 ")
    d.send("DATA")
    d.expect(r"^354 ")
    d.send_raw(msg(body="y" * 30000 + "\r\n") + ".\r\n")
    d.expect(r"^552 5\.3\.4")
    d.send("NOOP")
    d.expect(r"^250 ")
    d.close()
    assert lm.files("alice") == []


MALFORMED = [
    # (commands before the probe, probe, expected reply regex)
    ([], "MAIL FROM:<s@example.org>", r"^503 5\.5\.1"),
    ([], "LHLO", r"^501 5\.5\.4"),
    ([], "HELO client.example", r"^500 5\.5\.2"),
    ([], "EHLO client.example", r"^500 5\.5\.2"),
    (["LHLO c"], "RCPT TO:<alice@example.test>", r"^503 5\.5\.1"),
    (["LHLO c"], "DATA", r"^503 5\.5\.1"),
    (["LHLO c"], "MAIL FROM:<s@example.org", r"^501 5\.1\.7"),
    (["LHLO c"], "MAIL FROM:<s@example.org> XQID=../etc", r"^501 5\.5\.4"),
    (["LHLO c"], "MAIL FROM:<s@example.org> BOGUS=1", r"^555 5\.5\.4"),
    (["LHLO c", "MAIL FROM:<>"], "MAIL FROM:<>", r"^503 5\.5\.1"),
    (["LHLO c", "MAIL FROM:<>"], "RCPT TO:<>", r"^501 5\.1\.3"),
    (["LHLO c", "MAIL FROM:<>"], "RCPT TO:alice", r"^501 5\.1\.3"),
    (["LHLO c", "MAIL FROM:<>"], "DATA", r"^503 5\.5\.1"),
    (["LHLO c"], "FOOBAR", r"^500 5\.5\.2"),
    (["LHLO c"], "STARTTLS", r"^502 5\.5\.1"),
    (["LHLO c"], "MAIL FROM:<" + "a" * 5000 + "@example.org>", r"^500 5\.5\.0"),
    (["LHLO c"], "NOOP\0x", r"^500 5\.5\.2"),
]


@pytest.mark.parametrize("before,probe,expect", MALFORMED,
                         ids=[m[1][:24] for m in MALFORMED])
def test_malformed_commands(instance, before, probe, expect):
    lm = Lmtp(instance)
    d = lm.dialogue()
    for line in before:
        d.send(line)
        d.expect_reply("250")
    d.send(probe)
    d.expect(expect)
    # The session goes on after the error.
    d.send("NOOP")
    d.expect(r"^250 ")
    d.close()


ERROR_LIMIT = 20        # LMTPD_ERROR_LIMIT in lmtpd/lmtpd.h


def test_bare_lf_command_and_too_many_errors(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send_raw("LHLO c\n")
    d.expect(r"^500 5\.5\.2")
    for _ in range(ERROR_LIMIT - 2):
        d.send("FOO")
        d.expect(r"^500 5\.5\.2")
    # The last error is answered, then the session ends.
    d.send("FOO")
    d.expect(r"^500 5\.5\.2")
    d.expect(r"^421 4\.7\.0")
    d.expect_closed()


def test_http_first_line_ends_session(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send("GET / HTTP/1.0")
    d.expect_closed()


def test_pipelining_and_bdat(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    body = msg("chunked").encode()
    first, second = body[:50], body[50:]
    d.send_raw(("LHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@%s>\r\n"
                "RCPT TO:<ghost@nowhere.example>\r\nRCPT TO:<bob@%s>\r\n"
                "BDAT %d\r\n" % (DOMAIN, DOMAIN, len(first))).encode() + first
               + b"BDAT %d LAST\r\n" % len(second) + second + b"NOOP\r\n")
    d.expect_reply("250")
    d.expect(r"^250 2\.1\.0")
    d.expect(r"^250 2\.1\.5")
    d.expect(r"^550 5\.1\.1")
    d.expect(r"^250 2\.1\.5")
    d.expect(r"^250 2\.0\.0 Ok: 50 octets")
    d.expect(r"^250 2\.0\.0 <alice@")
    d.expect(r"^250 2\.0\.0 <bob@")
    d.expect(r"^250 2\.0\.0 Ok")
    d.close()
    assert lm.read("alice").endswith(b"Hello there.\n")
    # BDAT without a transaction: the chunk is still read, then refused.
    d = lm.dialogue()
    d.send_raw(b"LHLO c\r\nBDAT 5\r\nabcdeNOOP\r\n")
    d.expect_reply("250")
    d.expect(r"^503 5\.5\.1")
    d.expect(r"^250 ")
    d.close()


def test_client_vanishing_mid_data_leaves_nothing(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send("LHLO c")
    d.expect_reply("250")
    d.send("MAIL FROM:<s@example.org>")
    d.expect(r"^250 ")
    d.send("RCPT TO:<alice@%s>" % DOMAIN)
    d.expect(r"^250 ")
    d.send("DATA")
    d.expect(r"^354 ")
    mark = instance.log_mark()
    d.send_raw(msg(body="partial " * 2000))
    d.close()
    instance.wait_for_log(r"lost connection after DATA", since=mark)
    assert lm.files("alice") == [] and lm.files("alice", "tmp") == []


def test_xqid_delivers_exactly_once(instance):
    lm = Lmtp(instance)
    qid = "1iHmFu0aEx3Rq"

    def attempt():
        d = lm.dialogue()
        d.send("LHLO c")
        d.expect_reply("250")
        d.send("MAIL FROM:<s@example.org> XQID=%s" % qid)
        d.expect(r"^250 ")
        d.send("RCPT TO:<alice@%s>" % DOMAIN)
        d.expect(r"^250 ")
        d.send("DATA")
        d.expect(r"^354 ")
        d.send_raw(msg("once") + ".\r\n")
        d.expect(r"^250 2\.0\.0 <alice@")
        d.close()

    attempt()
    attempt()
    assert len(lm.files("alice")) == 1
    instance.wait_for_log(r"lmtpd\[\d+\]: %s: saved mail to INBOX for <alice@example\.test>: "
                          r".*name=\(already delivered\)" % qid)


def test_root_owned_mailbox_refused(instance):
    if not fh.is_root():
        pytest.skip("the uid switch needs root (CI runs this as root)")
    lm = Lmtp(instance, users=None)
    with open(lm.users, "a") as f:
        f.write(lm.user_line("toor", uid=0, gid=0))
    c = lm.client()
    with pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("s@example.org", ["toor@" + DOMAIN], msg())
    assert e.value.smtp_code == 451
    c.quit()
    assert not os.path.exists(lm.home("toor"))
    instance.wait_for_log(r"lmtpd\[\d+\]: warning: \w+: refusing to deliver as root for toor@")


def test_system_user_written_as_that_user(instance):
    if not fh.is_root():
        pytest.skip("the uid switch needs root (CI runs this as root)")
    home = os.path.join(instance.dir, "home", SYS_USER)
    try:
        pwd.getpwnam(SYS_USER)
        subprocess.run(["usermod", "--home", home, SYS_USER], check=True)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell",
                        "/usr/sbin/nologin", SYS_USER], check=True)
    pw = pwd.getpwnam(SYS_USER)
    os.makedirs(home)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o700)
    lm = Lmtp(instance, params={"auth_userdb": "passwd"}, users=[])
    c = lm.client()
    assert c.sendmail("s@example.org", ["%s@localhost" % SYS_USER], msg()) == {}
    c.quit()
    new = os.path.join(home, "Maildir", "new")
    names = os.listdir(new)
    assert len(names) == 1
    for path in (os.path.join(new, names[0]), new, os.path.join(home, "Maildir")):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), path
    # lmtpd itself is still root: it only switched its file-system identity.
    pid = instance.service_pids("lmtpd")
    assert pid and fh.proc_status(pid[0])["Uid"].split()[0] == "0"


def test_smtplib_many_messages_one_session(instance):
    lm = Lmtp(instance)
    c = lm.client()
    for i in range(50):
        replies = lmtp_send(c, "s@example.org", ["alice@" + DOMAIN, "bob@" + DOMAIN],
                            msg("m%d" % i))
        assert [r[0] for r in replies.values()] == [250, 250], replies
    c.quit()
    assert len(lm.files("alice")) == 50 and len(lm.files("bob")) == 50


def test_userdb_mail_location_and_quota_rules(instance):
    uid, gid = owner_ids()
    lm_dir = os.path.join(instance.dir, "vmail")
    spool = os.path.join(instance.dir, "vspool")
    os.makedirs(spool)
    os.chown(spool, uid, gid)

    def line(user, extra):
        return "%s@%s:{PLAIN}pw:%d:%d::%s/%s::%s\n" % (user, DOMAIN, uid, gid, lm_dir, user,
                                                        extra)

    lm = Lmtp(instance, users=[
        line("loc", "userdb_mail=maildir:%s/%%Ld/%%n/box:INDEX=/nowhere" % spool),
        line("kb", "userdb_quota_rule=*:storage=1K"),
        line("both", "userdb_quota_rule=*:storage=1M:messages=5"),
        line("none", "userdb_quota_rule=*:ignore"),
        line("rel", "userdb_mail=maildir:relative/Maildir"),
        line("dots", "userdb_mail=maildir:%s/../escape" % spool),
        line("mbox", "userdb_mail=mbox:~/mail"),
        line("badq", "userdb_quota_rule=*:storage=lots"),
    ])
    c = lm.client()
    ok = ["loc@" + DOMAIN, "both@" + DOMAIN, "none@" + DOMAIN]
    replies = lmtp_send(c, "s@example.org", ok + ["kb@" + DOMAIN], msg(body="k" * 2000))
    assert [replies[r][0] for r in ok] == [250, 250, 250], replies
    assert replies["kb@" + DOMAIN][0] == 552, replies
    for user in ("rel", "dots", "mbox", "badq"):
        code, text = c.rcpt("%s@%s" % (user, DOMAIN)) if c.mail("s@example.org")[0] == 250 \
            else (0, b"")
        assert code == 451 and text.startswith(b"4.3.0"), (user, code, text)
        c.rset()
    c.quit()
    box = os.path.join(spool, DOMAIN, "loc", "box", "new")
    assert len(os.listdir(box)) == 1
    with open(os.path.join(lm_dir, "both", "Maildir", "maildirsize")) as f:
        assert f.readline().strip() == "1048576S,5C"
    assert not os.path.exists(os.path.join(lm_dir, "none", "Maildir", "maildirsize"))
    assert not os.path.exists(os.path.join(instance.dir, "escape"))
    instance.wait_for_log(r"user rel@example\.test: mail location of rel@example\.test is "
                          r"not absolute")


def test_many_refused_recipients_are_not_errors(instance):
    # An MTA may hand over many unknown users at once: those are outcomes,
    # not protocol errors, and must not end the session.
    lm = Lmtp(instance)
    c = lm.client()
    rcpts = ["ghost%d@%s" % (i, DOMAIN) for i in range(ERROR_LIMIT + 5)] + ["alice@" + DOMAIN]
    replies = lmtp_send(c, "s@example.org", rcpts, msg())
    assert all(replies[r][0] == 550 for r in rcpts[:-1]), replies
    assert replies["alice@" + DOMAIN][0] == 250, replies
    assert c.noop()[0] == 250
    c.quit()


def test_long_line_pipelined_with_next_command(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send_raw("LHLO c\r\nMAIL FROM:<%s@example.org>\r\nNOOP\r\n" % ("a" * 6000))
    d.expect_reply("250")
    d.expect(r"^500 5\.5\.0")
    d.expect(r"^250 ")
    d.close()


def test_delivered_to_loop_is_refused(instance):
    lm = Lmtp(instance)
    c = lm.client()
    looped = ("Delivered-To: bob@example.test\r\nDelivered-To:  ALICE@example.test \r\n"
              + msg())
    # Only the header counts: the same line in the body is content.
    body_only = msg(body="Delivered-To: bob@%s\r\n" % DOMAIN)
    replies = lmtp_send(c, "s@example.org", ["alice@" + DOMAIN, "bob@" + DOMAIN], looped)
    assert replies["alice@" + DOMAIN][0] == 554, replies
    assert replies["alice@" + DOMAIN][1].startswith(b"5.4.6"), replies
    assert replies["bob@" + DOMAIN][0] == 554, replies
    replies = lmtp_send(c, "s@example.org", ["bob@" + DOMAIN], body_only)
    assert replies["bob@" + DOMAIN][0] == 250, replies
    c.quit()
    assert lm.files("alice") == [] and len(lm.files("bob")) == 1
    instance.wait_for_log(r"not saved for <alice@example\.test>: .*dsn=5\.4\.6, bounced")


def test_trickling_data_times_out(instance):
    lm = Lmtp(instance, params={"lmtpd_timeout": "2s"})
    d = lm.dialogue()
    d.send("LHLO c")
    d.expect_reply("250")
    d.send("MAIL FROM:<s@example.org>")
    d.expect(r"^250 ")
    d.send("RCPT TO:<alice@%s>" % DOMAIN)
    d.expect(r"^250 ")
    d.send("DATA")
    d.expect(r"^354 ")
    # One byte every 0.2 s never reaches the minimum data rate: each read
    # is quick, but the whole data phase must end near lmtpd_timeout.
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < 10:
        try:
            d.send_raw(b"x")
        except OSError:
            closed = True
            break
        time.sleep(0.2)
        d.sock.settimeout(0.01)
        try:
            if d.sock.recv(4096) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    assert closed, "lmtpd kept a trickling client for 10s"
    assert time.monotonic() - start < 6
    assert lm.files("alice") == []


def test_tmp_is_swept_at_most_every_8_hours(instance):
    # The sweep itself (stale tmp/ files, expired markers) is lib/maildir's
    # maildir_clean_tmp, tested there; here: lmtpd runs it when tmp/'s
    # atime is over 8 hours old, and marks the time by setting that atime.
    lm = Lmtp(instance)
    c = lm.client()
    assert c.sendmail("s@example.org", ["alice@" + DOMAIN], msg("first")) == {}
    tmp = os.path.join(lm.maildir("alice"), "tmp")
    now = time.time()
    one_hour, nine_hours = now - 3600, now - 9 * 3600
    os.utime(tmp, (one_hour, os.stat(tmp).st_mtime))
    assert c.sendmail("s@example.org", ["alice@" + DOMAIN], msg("second")) == {}
    assert abs(os.stat(tmp).st_atime - one_hour) < 2, "swept again within 8 hours"
    os.utime(tmp, (nine_hours, os.stat(tmp).st_mtime))
    assert c.sendmail("s@example.org", ["alice@" + DOMAIN], msg("third")) == {}
    c.quit()
    assert os.stat(tmp).st_atime > now - 60, "not swept after 9 hours"
    assert len(lm.files("alice")) == 3 and lm.files("alice", "tmp") == []


def test_nul_in_message_refused_for_each_recipient(instance):
    lm = Lmtp(instance)
    d = lm.dialogue()
    d.send_raw("LHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@%s>\r\n"
               "RCPT TO:<bob@%s>\r\nDATA\r\n" % (DOMAIN, DOMAIN))
    d.expect_reply("250")
    for code in ("250", "250", "250", "354"):
        d.expect(r"^%s " % code)
    d.send_raw(b"Subject: nul\r\n\r\nbad\x00byte\r\n.\r\n")
    d.expect(r"^550 5\.6\.0 .*NUL")
    d.expect(r"^550 5\.6\.0 .*NUL")
    d.send("NOOP")
    d.expect(r"^250 ")
    d.close()
    assert lm.files("alice") == [] and lm.files("bob") == []


def test_one_directory_sync_per_mailbox_per_transaction(instance):
    """Group commit: every file is fsynced, but a new/ directory shared by
    several recipients of one transaction is fsynced once, before the
    replies; counted with strace on the serving lmtpd."""
    if not fh.is_root() or not shutil.which("strace"):
        pytest.skip("needs root and strace to trace lmtpd")
    lm = Lmtp(instance, params={"recipient_delimiter": "+"})
    c = lm.client()
    pids = instance.service_pids("lmtpd")
    assert pids
    out = os.path.join(instance.dir, "strace.out")
    argv = ["strace", "-f", "-e", "trace=fsync,fdatasync", "-o", out]
    for p in pids:
        argv += ["-p", str(p)]
    st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fh.wait_until(lambda: os.path.exists(out), 10, "strace to attach")
        time.sleep(0.5)
        replies = lmtp_send(c, "s@example.org",
                            ["alice@" + DOMAIN, "alice+x@" + DOMAIN, "bob@" + DOMAIN], msg())
        assert [r[0] for r in replies.values()] == [250, 250, 250], replies
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(20)
    c.quit()
    with open(out) as f:
        calls = [l for l in f if re.search(r"\b(fsync|fdatasync)\(\d+", l)]
    # Three files, two mailboxes: 3 file syncs + 2 directory syncs.
    assert len(calls) == 5, calls
    assert len(lm.files("alice")) == 2 and len(lm.files("bob")) == 1
