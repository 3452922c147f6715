"""test_maildir_dovecot.py - facteur's Maildir library against Debian's Dovecot.

Both directions, with a private Dovecot (its own base_dir, config, log and
loopback port) serving the same Maildir that facteur-maildir writes:

1. facteur delivers, Dovecot reads: messages delivered by facteur-maildir
   are listed by Dovecot's imapd with the UIDs and UIDVALIDITY that
   facteur wrote into dovecot-uidlist.
2. Dovecot writes, facteur reads: messages APPENDed and flagged through
   Dovecot, and a folder it created and subscribed, are seen by
   facteur-maildir with the same UIDs, flags and keywords; a message
   facteur delivers afterwards gets the next UID in both.

Self-contained: only tmp_path (or, as root, a private directory owned by
the unprivileged user Dovecot's mail processes must run as), subprocess
and imaplib.  Dovecot is stopped at the end, with bounded waits.
"""

import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("FACTEUR_BIN", "./bin")
DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# IMAP system flag -> Maildir info letter.
IMAP_TO_LETTER = {
    "\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
    "\\Seen": "S", "\\Deleted": "T",
}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """A Maildir, the user who owns it, and a Dovecot that can serve it."""

    def __init__(self, tmp_path):
        tool = os.path.join(BIN, "facteur-maildir")
        if not os.access(tool, os.X_OK):
            pytest.fail("facteur-maildir is not built (%s missing)" % tool, pytrace=False)
        if not os.access(DOVECOT, os.X_OK):
            pytest.skip("Debian's dovecot-core is not installed")
        self.private = None
        if os.geteuid() == 0:
            # Dovecot never serves mail as root: use nobody, in a directory
            # nobody can reach (pytest's tmp_path is root-only).
            for name in ("nobody", "dovenull", "dovecot"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    pytest.skip("user %s missing" % name)
            user = pwd.getpwnam("nobody")
            self.uid, self.gid = user.pw_uid, user.pw_gid
            self.login_user, self.internal_user = "dovenull", "dovecot"
            self.internal_group = "dovecot"
            self.private = tempfile.mkdtemp(prefix="facteur-dovecot-", dir="/tmp")
            os.chmod(self.private, 0o755)
            self.base = self.private
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            me = pwd.getpwuid(self.uid).pw_name
            self.login_user = self.internal_user = me
            self.internal_group = grp.getgrgid(self.gid).gr_name
            self.base = str(tmp_path)
        self.home = os.path.join(self.base, "home")
        self.maildir = os.path.join(self.home, "Maildir")
        os.makedirs(self.home)
        os.chown(self.home, self.uid, self.gid)
        # A copy of the tool the mail user can run whatever the checkout's
        # permissions are.
        self.tool = os.path.join(self.base, "facteur-maildir")
        shutil.copy(tool, self.tool)
        os.chmod(self.tool, 0o755)
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(self.base, "dovecot.log")
        self._write_config()

    def _write_config(self):
        run = os.path.join(self.base, "run")
        with open(os.path.join(self.base, "passwd"), "w") as f:
            f.write("test:{PLAIN}secret:%d:%d::%s\n" % (self.uid, self.gid, self.home))
        self.conf = os.path.join(self.base, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""\
base_dir = {run}
state_dir = {base}/state
log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {igroup}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{maildir}
mail_fsync = always
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
""".format(run=run, base=self.base, log=self.log, login=self.login_user,
           internal=self.internal_user, igroup=self.internal_group, uid=self.uid, gid=self.gid,
           maildir=self.maildir, port=self.port))

    # -- facteur-maildir, run as the mail user --------------------------

    def tool_run(self, *args, stdin=None):
        kw = {}
        if os.geteuid() == 0:
            kw = {"user": self.uid, "group": self.gid, "extra_groups": []}
        p = subprocess.run([self.tool] + list(args), input=stdin, capture_output=True,
                           timeout=30, cwd=self.base, **kw)
        assert p.returncode == 0, "facteur-maildir %s: %s" % (args, p.stderr.decode())
        return p.stdout.decode()

    def deliver(self, body, key=None):
        args = ["deliver"]
        if key:
            args += ["-k", key, "-a", "1700000000"]
        return self.tool_run(*args, self.maildir, stdin=body).strip()

    def uidlist(self):
        out = self.tool_run("uidlist", self.maildir).splitlines()
        head = dict(line.split(" ", 1) for line in out[:4])
        uids = {}
        for line in out[4:]:
            uid, name = line.split(" ", 1)
            uids[int(uid)] = name
        return int(head["uidvalidity"]), int(head["next_uid"]), uids

    def listing(self):
        rows = {}
        for line in self.tool_run("list", self.maildir).splitlines():
            uid, flags, size, path = line.split(" ", 3)
            rows[int(uid)] = (flags if flags != "-" else "", int(size), path)
        return rows

    # -- Dovecot ---------------------------------------------------------

    def start(self):
        assert self.proc is None
        self.proc = subprocess.Popen([DOVECOT, "-c", self.conf, "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("dovecot exited: %s" % self.log_text(), pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail("dovecot did not listen on %d: %s" % (self.port, self.log_text()),
                    pytrace=False)

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        m.login("test", "secret")
        return m

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def cleanup(self):
        self.stop()
        if self.private is not None:
            shutil.rmtree(self.private, ignore_errors=True)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.cleanup()


def fetch_all(m):
    """{uid: (flags set, subject)} for the selected mailbox."""
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = set(re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split())
        subject = item[1].decode().strip().replace("Subject: ", "")
        out[uid] = (flags, subject)
    return out


def status(m, box="INBOX"):
    typ, data = m.status(box, "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert typ == "OK", data
    text = data[0].decode()
    return {k: int(v) for k, v in re.findall(r"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)", text)}


def subject_of(env, name_with_dir):
    with open(os.path.join(env.maildir, name_with_dir), "rb") as f:
        for line in f:
            if line.startswith(b"Subject: "):
                return line[9:].decode().strip()
    return None


def test_facteur_delivers_dovecot_reads(env):
    names = [env.deliver(b"Subject: first\n\nbody one\n"),
             env.deliver(b"Subject: second\n\nbody two\n", key="QID1:alice@example.org"),
             env.deliver(b"Subject: third\n\nbody three\n")]
    # A retried delivery with the same key finds its earlier file.
    assert env.deliver(b"Subject: second\n\nbody two\n",
                       key="QID1:alice@example.org") == "already delivered"
    assert all(n != "already delivered" for n in names)
    uidvalidity, next_uid, uids = env.uidlist()
    assert len(uids) == 3 and next_uid == 4
    rows = env.listing()
    want = {uid: subject_of(env, rows[uid][2]) for uid in uids}
    assert sorted(want.values()) == ["first", "second", "third"]

    env.start()
    m = env.imap()
    # facteur's delivery markers (facteur-keys/) are no folder to Dovecot.
    typ, boxes = m.list()
    assert typ == "OK" and [b.decode().split(" ")[-1] for b in boxes] == ["INBOX"], boxes
    st = status(m)
    assert st["UIDVALIDITY"] == uidvalidity
    assert st["MESSAGES"] == 3 and st["UIDNEXT"] == next_uid
    m.select("INBOX")
    seen = fetch_all(m)
    assert {uid: subj for uid, (flags, subj) in seen.items()} == want
    # A flag set through Dovecot lands in the file name facteur reads.
    first_uid = min(seen)
    assert m.uid("STORE", str(first_uid), "+FLAGS", "(\\Seen)")[0] == "OK"
    m.logout()
    env.stop()
    rows = env.listing()
    assert "S" in rows[first_uid][0]
    assert env.uidlist()[0] == uidvalidity


def test_dovecot_writes_facteur_reads(env):
    env.start()
    m = env.imap()
    assert m.append("INBOX", "(\\Answered)", None, b"Subject: from dovecot 1\r\n\r\nhi\r\n")[0] == "OK"
    assert m.append("INBOX", None, None, b"Subject: from dovecot 2\r\n\r\nhi again\r\n")[0] == "OK"
    m.select("INBOX")
    before = fetch_all(m)
    assert len(before) == 2
    second = max(before)
    assert m.uid("STORE", str(second), "+FLAGS", "(\\Seen \\Flagged $Junk)")[0] == "OK"
    assert m.create("Archive.2024")[0] == "OK"
    assert m.subscribe("Archive.2024")[0] == "OK"
    dv = fetch_all(m)
    uidvalidity = status(m)["UIDVALIDITY"]
    m.logout()
    env.stop()

    # facteur sees the same UIDs, flags and keywords.
    with open(os.path.join(env.maildir, "dovecot-keywords")) as f:
        letters = {line.split(" ", 1)[1].strip(): chr(ord("a") + int(line.split(" ", 1)[0]))
                   for line in f if line.strip()}
    rows = env.listing()
    assert set(rows) == set(dv)
    for uid, (flags, subject) in dv.items():
        want = "".join(sorted(IMAP_TO_LETTER[f] for f in flags if f in IMAP_TO_LETTER))
        want += "".join(sorted(letters[f] for f in flags if not f.startswith("\\")))
        assert rows[uid][0] == want, (uid, rows[uid], flags)
        assert subject_of(env, rows[uid][2]) == subject
    assert env.uidlist()[0] == uidvalidity
    folders = env.tool_run("folders", env.maildir).splitlines()
    assert "folder Archive.2024" in folders
    assert "subscribed Archive.2024" in folders

    # Mail facteur delivers now gets the next UID, in both views.
    env.deliver(b"Subject: from facteur\n\nlate\n")
    _, next_uid, uids = env.uidlist()
    new_uid = max(uids)
    assert new_uid == max(dv) + 1 and next_uid == new_uid + 1
    env.start()
    m = env.imap()
    m.select("INBOX")
    after = fetch_all(m)
    assert after[new_uid][1] == "from facteur"
    assert status(m)["UIDVALIDITY"] == uidvalidity
    m.logout()
