"""System tests of the queue commands: facteur-queue (mailq, -j, -f, -s,
-i), facteur-super (-d, -h, -H, -r, -s), facteur-cat and facteur flush.

Queue files are written with qfile_py (lib/qfile.h's format) straight into
a spool made by `facteur check`, so every listing can be compared line by
line with Postfix's layout.  The flush tests stand in for qmgr with a FIFO
reader on public/qmgr (to see the exact trigger) and, end to end, run the
real master and qmgr with test_qmgr's fake delivery agent: a message held
back by a retry time far in the future leaves the queue only when a flush
asks for it.
"""

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import pytest

import facteur_harness as fh
import qfile_py as qp
from conftest import require_command, require_daemon

HEADING = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
RCPT_PAD = " " * 41
BODY = "From: s@example.org\nSubject: queue test\n\nhello\n"


@pytest.fixture(autouse=True)
def built():
    require_command("facteur", "facteur-queue", "facteur-super", "facteur-cat")


@pytest.fixture
def spool(instance):
    """An instance with its spool created, not started."""
    instance.configure()
    instance.facteur_check()
    return instance


def env_for(inst):
    return dict(os.environ, TZ="UTC", FACTEUR_CONFIG_DIR=inst.confdir)


def run(inst, prog, *args, input_text=None, user=None):
    argv = [os.path.join(fh.BIN, prog), "-c", inst.confdir] + list(args)
    if user is not None:
        pw = pwd.getpwnam(user)
        argv = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                "--clear-groups"] + argv
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env_for(inst),
                          input=input_text, stdin=None if input_text else subprocess.DEVNULL)


def owner_of(inst):
    if fh.is_root():
        pw = pwd.getpwnam(inst.mail_owner)
        return (pw.pw_uid, pw.pw_gid)
    return None


def put(inst, queue, sender, rcpts, body=BODY, arrival=None, reasons=None, mtime=None):
    """Queue a message in queue; reasons: {address: text} for defer/QID."""
    qid = qp.write_queue_file(inst.queue, sender, rcpts, body, arrival=arrival,
                              queue="incoming", owner=owner_of(inst))
    if queue != "incoming":
        os.rename(os.path.join(inst.queue, "incoming", qid), os.path.join(inst.queue, queue, qid))
    if reasons:
        with open(os.path.join(inst.queue, "defer", qid), "w") as f:
            for addr, text in reasons.items():
                f.write("recipient=%s reason=%s\n" % (addr, text))
    if mtime is not None:
        os.utime(os.path.join(inst.queue, queue, qid), (mtime, mtime))
    return qid


def where(inst, qid):
    return [q for q in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
            if os.path.exists(os.path.join(inst.queue, q, qid))]


def mark_done(inst, queue, qid, index):
    """Set recipient index's status byte to 'S' (delivered), as qmgr does."""
    path = os.path.join(inst.queue, queue, qid)
    with open(path, "r+b") as f:
        data = f.read()
        pos, seen = 0, 0
        while pos + 5 <= len(data):
            n = int.from_bytes(data[pos + 1:pos + 5], "big")
            if data[pos:pos + 1] == b"R":
                if seen == index:
                    f.seek(pos + 5)
                    f.write(b"S")
                    return
                seen += 1
            pos += 5 + n
    raise AssertionError("no recipient %d in %s" % (index, path))


def asctime19(t):
    return time.strftime("%a %b %e %H:%M:%S", time.gmtime(t))


# ---- facteur-queue -p / -j ---------------------------------------------------


def test_empty_queue(spool):
    r = run(spool, "facteur-queue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Mail queue is empty\n"
    r = run(spool, "facteur-queue", "-j")
    assert r.returncode == 0 and r.stdout == ""


def test_mailq_layout(spool):
    t = 1795564862          # Wed Nov 25 00:01:02 2026 UTC
    body2 = BODY + "x" * 2000
    a = put(spool, "active", "a@example.org", ["r1@example.com"], arrival=t)
    d = put(spool, "deferred", "d@example.org",
            ["r1@example.com", "r2@example.com", "done@example.com", "r3@example.net"],
            body=body2, arrival=t + 60,
            reasons={"r1@example.com": "connect to mx.example.com[192.0.2.1]:25: Connection refused",
                     "r2@example.com": "connect to mx.example.com[192.0.2.1]:25: Connection refused"})
    mark_done(spool, "deferred", d, 2)
    h = put(spool, "hold", "", ["x@example.net"], arrival=t + 120)
    i = put(spool, "incoming", "i@example.org", ["y@example.net"], arrival=t + 180)
    r = run(spool, "facteur-queue", "-p")
    assert r.returncode == 0, r.stderr
    reason = "connect to mx.example.com[192.0.2.1]:25: Connection refused"
    size2 = len(body2)
    expect = [
        HEADING,
        "%-11s %7d %s  %s" % (i, len(BODY), asctime19(t + 180), "i@example.org"),
        RCPT_PAD + "y@example.net",
        "",
        "%-11s %7d %s  %s" % (a + "*", len(BODY), asctime19(t), "a@example.org"),
        RCPT_PAD + "r1@example.com",
        "",
        "%-11s %7d %s  %s" % (d, size2, asctime19(t + 60), "d@example.org"),
        " " * (76 - len(reason)) + "(" + reason + ")",
        RCPT_PAD + "r1@example.com",
        RCPT_PAD + "r2@example.com",
        " " * 58 + "(reason unavailable)",
        RCPT_PAD + "r3@example.net",
        "",
        "%-11s %7d %s  %s" % (h + "!", len(BODY), asctime19(t + 120), "MAILER-DAEMON"),
        RCPT_PAD + "x@example.net",
        "",
        "-- %d Kbytes in 4 Requests." % ((3 * len(BODY) + size2) // 1024),
    ]
    assert r.stdout.split("\n")[:-1] == expect, r.stdout
    assert "done@example.com" not in r.stdout


def test_json(spool):
    t = 1795564862
    d = put(spool, "deferred", "d@example.org", ["r1@example.com", "r2@example.com"],
            arrival=t, reasons={"r1@example.com": 'say "no"\tand \\ more'})
    h = put(spool, "hold", "", ["x@example.net"], arrival=t + 1)
    r = run(spool, "facteur-queue", "-j")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    objs = [json.loads(line) for line in lines]
    assert objs[0] == {"queue_name": "deferred", "queue_id": d, "arrival_time": t,
                       "message_size": len(BODY), "forced_expire": False,
                       "sender": "d@example.org",
                       "recipients": [{"address": "r1@example.com",
                                       "delay_reason": 'say "no"\tand \\ more'},
                                      {"address": "r2@example.com"}]}
    assert objs[1]["queue_name"] == "hold" and objs[1]["queue_id"] == h
    assert objs[1]["sender"] == ""


def test_mailq_name(spool, tmp_path):
    put(spool, "deferred", "d@example.org", ["r@example.com"])
    links = tmp_path / "bin"
    links.mkdir()
    for name in ("sendmail", "facteur-queue"):
        os.symlink(os.path.join(fh.BIN, name), links / name)
    os.symlink("sendmail", links / "mailq")
    r = subprocess.run([str(links / "mailq")], capture_output=True, text=True, timeout=20,
                       env=env_for(spool))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(HEADING + "\n")
    assert "-- 0 Kbytes in 1 Request.\n" in r.stdout


def test_damaged_file_is_skipped(spool):
    good = put(spool, "deferred", "d@example.org", ["r@example.com"])
    bad = put(spool, "deferred", "e@example.org", ["q@example.com"])
    path = os.path.join(spool.queue, "deferred", bad)
    with open(path, "r+b") as f:
        f.truncate(60)
    with open(os.path.join(spool.queue, "deferred", "stray-name"), "w") as f:
        f.write("not a queue file\n")
    r = run(spool, "facteur-queue", "-p")
    assert r.returncode == 1
    assert good in r.stdout and bad not in r.stdout
    assert "in 1 Request." in r.stdout
    assert re.search(r"facteur-queue: warning: %s: " % bad, r.stderr), r.stderr


def test_permission_denied(spool):
    put(spool, "deferred", "d@example.org", ["r@example.com"])
    if fh.is_root():
        r = run(spool, "facteur-queue", "-p", user="nobody")
    else:
        os.chmod(os.path.join(spool.queue, "maildrop"), 0)
        try:
            r = run(spool, "facteur-queue", "-p")
        finally:
            os.chmod(os.path.join(spool.queue, "maildrop"), 0o1730)
    assert r.returncode != 0
    assert r.stdout == ""
    assert re.search(r"facteur-queue: fatal: cannot read queue directory \S+/maildrop: "
                     r"Permission denied \(run as root or as mail_owner\)", r.stderr), r.stderr


def test_usage_and_bad_ids(spool):
    for args in ([], ["-p", "-f"], ["-p", "extra"], ["-x"]):
        r = run(spool, "facteur-queue", *args)
        assert r.returncode == 2 and "usage:" in r.stderr, args
    r = run(spool, "facteur-queue", "-i", "../../etc/passwd")
    assert r.returncode != 0 and "invalid queue ID" in r.stderr
    r = run(spool, "facteur-queue", "-s", "bad/site")
    assert r.returncode != 0 and "invalid site" in r.stderr
    r = run(spool, "facteur-queue", "-i", "1xW1Ua3cBPk3zz")
    assert r.returncode != 0 and "no such message" in r.stderr


# ---- flush with a FIFO standing in for qmgr -----------------------------------


class FifoDoor:
    def __init__(self, inst):
        self.path = inst.socket_path("qmgr", private=False)
        os.mkfifo(self.path, 0o622)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    def read(self):
        try:
            return os.read(self.fd, 64)
        except BlockingIOError:
            return b""

    def close(self):
        os.close(self.fd)
        os.unlink(self.path)


def test_flush_all_touches_deferred(spool):
    future = time.time() + 86400
    ids = [put(spool, "deferred", "d@example.org", ["r%d@example.com" % i], mtime=future)
           for i in range(3)]
    door = FifoDoor(spool)
    try:
        r = run(spool, "facteur-queue", "-f")
        assert r.returncode == 0, r.stderr
        assert door.read() == b"FAI"
    finally:
        door.close()
    for qid in ids:
        st = os.stat(os.path.join(spool.queue, "deferred", qid))
        assert abs(st.st_mtime - time.time()) < 30
    # Without anybody at the door: a clear error, the files still due.
    r = run(spool, "facteur-queue", "-f")
    assert r.returncode != 0 and "qmgr is not running" in r.stderr


def test_flush_site_and_one(spool):
    future = time.time() + 86400
    a = put(spool, "deferred", "d@example.org", ["x@a.example", "y@b.example"], mtime=future)
    b = put(spool, "deferred", "d@example.org", ["z@b.example"], mtime=future)
    c = put(spool, "deferred", "d@example.org", ["w@sub.a.example"], mtime=future)
    h = put(spool, "hold", "d@example.org", ["v@a.example"])
    door = FifoDoor(spool)
    try:
        r = run(spool, "facteur-queue", "-s", "A.EXAMPLE")
        assert r.returncode == 0, r.stderr
        assert door.read() == b"FI"
        assert where(spool, a) == ["incoming"]
        assert where(spool, b) == ["deferred"] and where(spool, c) == ["deferred"]
        assert where(spool, h) == ["hold"]
        st = os.stat(os.path.join(spool.queue, "incoming", a))
        assert abs(st.st_mtime - time.time()) < 30
        r = run(spool, "facteur-queue", "-s", ".a.example")
        assert r.returncode == 0 and where(spool, c) == ["incoming"]
        assert door.read() == b"FI"
        r = run(spool, "facteur-queue", "-i", b)
        assert r.returncode == 0, r.stderr
        assert where(spool, b) == ["incoming"]
        assert door.read() == b"FI"
        r = run(spool, "facteur-queue", "-i", h)
        assert r.returncode != 0 and "hold queue" in r.stderr
        assert where(spool, h) == ["hold"]
    finally:
        door.close()


def test_facteur_flush_matches_facteur_queue(instance):
    instance.add_sleeper()
    instance.configure(services=[fh.service_line("sleeper", "unix", "sleeper")])
    instance.facteur_check()
    instance.start()
    qid = put(instance, "deferred", "d@example.org", ["r@example.com"], mtime=time.time() + 86400)
    door = FifoDoor(instance)
    try:
        r = instance.facteur("flush")
        assert r.returncode == 0, r.stderr
        assert door.read() == b"FAI"
    finally:
        door.close()
    st = os.stat(os.path.join(instance.queue, "deferred", qid))
    assert abs(st.st_mtime - time.time()) < 30


# ---- facteur-super ----------------------------------------------------------


def maillog(inst):
    try:
        with open(inst.maillog) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_hold_release_requeue_delete(spool):
    reasons = {"r@example.com": "451 later"}
    a = put(spool, "deferred", "d@example.org", ["r@example.com"], reasons=reasons,
            mtime=time.time() + 86400)
    b = put(spool, "incoming", "d@example.org", ["r@example.com"])
    open(os.path.join(spool.queue, "defer", a + ".warned"), "w").close()

    r = run(spool, "facteur-super", "-h", a)
    assert r.returncode == 0, r.stderr
    assert "Placed on hold: 1 message" in r.stderr
    assert where(spool, a) == ["hold"]
    assert "%s!" % a in run(spool, "facteur-queue", "-p").stdout
    assert re.search(r"facteur-super\[\d+\]: %s: placed on hold" % a, maillog(spool))

    r = run(spool, "facteur-super", "-H", a)
    assert r.returncode == 0 and "Released from hold: 1 message" in r.stderr
    assert where(spool, a) == ["deferred"]
    assert abs(os.stat(os.path.join(spool.queue, "deferred", a)).st_mtime - time.time()) < 30

    r = run(spool, "facteur-super", "-r", a)
    assert r.returncode == 0 and "Requeued: 1 message" in r.stderr
    assert where(spool, a) == ["incoming"]
    assert not os.path.exists(os.path.join(spool.queue, "defer", a))
    assert os.path.exists(os.path.join(spool.queue, "defer", a + ".warned"))

    # A queue ID twice or in a queue the operation does not touch: counted once / not at all.
    r = run(spool, "facteur-super", "-H", b)
    assert r.returncode == 0 and "Released from hold: 0 messages" in r.stderr
    assert where(spool, b) == ["incoming"]

    r = run(spool, "facteur-super", "-d", a, "-d", b)
    assert r.returncode == 0 and "Deleted: 2 messages" in r.stderr
    assert where(spool, a) == [] and where(spool, b) == []
    assert not os.path.exists(os.path.join(spool.queue, "defer", a + ".warned"))
    log = maillog(spool)
    assert re.search(r"%s: removed" % a, log) and re.search(r"%s: removed" % b, log)
    assert run(spool, "facteur-queue", "-p").stdout == "Mail queue is empty\n"


def test_all_and_queue_names(spool):
    d = [put(spool, "deferred", "d@example.org", ["r@example.com"]) for _ in range(3)]
    h = put(spool, "hold", "d@example.org", ["r@example.com"])
    i = put(spool, "incoming", "d@example.org", ["r@example.com"])
    r = run(spool, "facteur-super", "-h", "ALL", "deferred")
    assert r.returncode == 0 and "Placed on hold: 3 messages" in r.stderr
    assert all(where(spool, q) == ["hold"] for q in d)
    assert where(spool, i) == ["incoming"]
    r = run(spool, "facteur-super", "-H", "ALL")
    assert "Released from hold: 4 messages" in r.stderr
    assert where(spool, h) == ["deferred"]
    r = run(spool, "facteur-super", "-d", "ALL", "deferred")
    assert "Deleted: 4 messages" in r.stderr
    assert where(spool, i) == ["incoming"]
    # Requeue never takes a message qmgr is delivering (active).
    act = put(spool, "active", "d@example.org", ["r@example.com"])
    r = run(spool, "facteur-super", "-r", act)
    assert r.returncode == 0 and "Requeued: 0 messages" in r.stderr
    r = run(spool, "facteur-super", "-r", "ALL", "active")
    assert "-r leaves the active queue alone" in r.stderr
    assert where(spool, act) == ["active"]
    r = run(spool, "facteur-super", "-h", act)
    assert "Placed on hold: 1 message" in r.stderr and where(spool, act) == ["hold"]
    r = run(spool, "facteur-super", "-d", "ALL", "hold")
    assert "Deleted: 1 message" in r.stderr
    r = run(spool, "facteur-super", "-d", "-", input_text="\n  %s  \n" % i)
    assert r.returncode == 0 and "Deleted: 1 message" in r.stderr
    assert where(spool, i) == []


def test_refuses_bad_input(spool):
    a = put(spool, "deferred", "d@example.org", ["r@example.com"])
    for args in (["-d", "../deferred/" + a], ["-d", a + "/"], ["-h", "all"],
                 ["-d", a, "nosuchqueue"], ["-d", a, "../etc"]):
        r = run(spool, "facteur-super", *args)
        assert r.returncode != 0, args
    r = run(spool, "facteur-super", "-d", "-", input_text=a + "\n" + "x" * 300 + "\n")
    assert r.returncode != 0 and "line longer" in r.stderr
    r = run(spool, "facteur-super")
    assert r.returncode == 2 and "usage:" in r.stderr
    assert where(spool, a) == ["deferred"]


def test_structure_repair(spool):
    good = put(spool, "deferred", "d@example.org", ["r@example.com"])
    cut = put(spool, "deferred", "e@example.org", ["q@example.com"])
    with open(os.path.join(spool.queue, "deferred", cut), "r+b") as f:
        f.truncate(40)
    held = put(spool, "hold", "e@example.org", ["q@example.com"])
    os.chmod(os.path.join(spool.queue, "hold", held), 0o644)
    # A copy has another inode than its name says (a restored backup).
    restored_src = put(spool, "incoming", "f@example.org", ["p@example.com"])
    tmpcopy = os.path.join(spool.queue, "incoming", "copy.tmp")
    shutil.copyfile(os.path.join(spool.queue, "incoming", restored_src), tmpcopy)
    os.unlink(os.path.join(spool.queue, "incoming", restored_src))
    os.rename(tmpcopy, os.path.join(spool.queue, "incoming", restored_src))
    ino = os.stat(os.path.join(spool.queue, "incoming", restored_src)).st_ino
    # Left by a crashed writer (its pid runs no more), and a stale defer log.
    dead = os.path.join(spool.queue, "incoming", ".tmp.%d.1.%d" % (4194000, int(time.time() * 1e6)))
    with open(dead, "w") as f:
        f.write("partial")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    stale = os.path.join(spool.queue, "defer", qp.make_qid(int(time.time()), 1, 99))
    with open(stale, "w") as f:
        f.write("recipient=a@b reason=x\n")

    r = run(spool, "facteur-super", "-s")
    assert where(spool, cut) == ["corrupt"], r.stderr
    assert where(spool, good) == ["deferred"]
    assert "Moved to the corrupt queue: 1 message" in r.stderr
    assert re.search(r"%s: .*moved to the corrupt queue" % cut, maillog(spool))
    assert stat.S_IMODE(os.stat(os.path.join(spool.queue, "hold", held)).st_mode) == 0o600
    assert not os.path.exists(dead)
    assert not os.path.exists(stale)
    new_id = qp.make_qid(*divmod_id(restored_src), ino)
    assert where(spool, restored_src) == [] and where(spool, new_id) == ["incoming"]
    assert re.search(r"%s: renamed to %s" % (restored_src, new_id), maillog(spool))
    # Everything now reads back: a second pass changes nothing.
    r = run(spool, "facteur-super", "-s")
    assert r.returncode == 0, r.stderr
    assert "corrupt" not in r.stderr and "Deleted" not in r.stderr
    r = run(spool, "facteur-queue", "-p")
    assert r.returncode == 0 and "in 3 Requests." in r.stdout


def divmod_id(qid):
    """Arrival seconds and microseconds from a queue ID (qid.h)."""
    def b62(s):
        n = 0
        for ch in s:
            n = n * 62 + qp.ALPHABET.index(ch)
        return n
    return b62(qid[:6]), b62(qid[6:10])


# ---- facteur-cat ----------------------------------------------------------------


def test_cat(spool):
    t = 1795564862
    qid = qp.write_queue_file(spool.queue, "s@example.org",
                              [("r@example.com", "rfc822;r@example.com", qp.NOTIFY_SUCCESS
                                | qp.NOTIFY_FAILURE), "t@example.net"],
                              BODY, arrival=t, ret="H", envid="env-1",
                              attrs={"client_name": "localhost", "protocol": "ESMTP"},
                              owner=owner_of(spool))
    mark_done(spool, "incoming", qid, 1)
    r = run(spool, "facteur-cat", qid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "*** ENVELOPE RECORDS incoming/%s ***\n"
        "version: facteur-queue 1\n"
        "message_arrival_time: Wed Nov 25 00:01:02 2026\n"
        "sender: s@example.org\n"
        "recipient: r@example.com\n"
        "dsn_orig_rcpt: rfc822;r@example.com\n"
        "dsn_notify_flags: SUCCESS,FAILURE\n"
        "done_recipient: t@example.net\n"
        "dsn_ret: HDRS\n"
        "dsn_envid: env-1\n"
        "named_attribute: client_name=localhost\n"
        "named_attribute: protocol=ESMTP\n"
        "*** MESSAGE CONTENTS incoming/%s ***\n"
        "%s"
        "end: content_size=%d recipient_count=2\n"
        "*** MESSAGE FILE END incoming/%s ***\n" % (qid, qid, BODY, len(BODY), qid))
    r = run(spool, "facteur-cat", "-h", qid)
    assert r.stdout == ("*** MESSAGE CONTENTS incoming/%s ***\n"
                        "From: s@example.org\nSubject: queue test\n"
                        "*** MESSAGE FILE END incoming/%s ***\n" % (qid, qid))
    r = run(spool, "facteur-cat", "-b", qid)
    assert r.stdout == ("*** MESSAGE CONTENTS incoming/%s ***\nhello\n"
                        "*** MESSAGE FILE END incoming/%s ***\n" % (qid, qid))
    r = run(spool, "facteur-cat", "-e", os.path.join(spool.queue, "incoming", qid))
    assert r.returncode == 0
    assert "sender: s@example.org\n" in r.stdout and "hello" not in r.stdout
    assert "MESSAGE CONTENTS" not in r.stdout


def test_cat_damaged_and_missing(spool, tmp_path):
    qid = put(spool, "deferred", "s@example.org", ["r@example.com"])
    path = os.path.join(spool.queue, "deferred", qid)
    with open(path, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut"
    cut.write_bytes(data[:len(data) - 20])      # inside the content, no end record
    r = run(spool, "facteur-cat", str(cut))
    assert r.returncode == 1
    assert "sender: s@example.org\n" in r.stdout
    assert "MESSAGE FILE END" not in r.stdout
    assert "damaged queue file" in r.stderr
    noend = tmp_path / "noend"
    noend.write_bytes(data[:len(data) - 17])    # E record removed whole
    r = run(spool, "facteur-cat", str(noend))
    assert r.returncode == 1 and "no valid end record" in r.stderr
    assert "hello" in r.stdout
    # Control characters in envelope values never reach the terminal raw.
    evil = qp.record("V", qp.VERSION) + qp.record("S", b"a\x1b[2Jb@example.org")
    (tmp_path / "evil").write_bytes(evil)
    r = run(spool, "facteur-cat", str(tmp_path / "evil"))
    assert "sender: a?[2Jb@example.org\n" in r.stdout and "\x1b" not in r.stdout
    # Empty records of every type (an empty end record is not an end).
    empties = b"".join(qp.record(t, b"") for t in "VSARTNIFME")
    (tmp_path / "empties").write_bytes(empties)
    r = run(spool, "facteur-cat", str(tmp_path / "empties"))
    assert r.returncode == 1 and "no valid end record" in r.stderr
    assert "recipient: (malformed, 0 bytes)\n" in r.stdout
    assert "MESSAGE FILE END" not in r.stdout
    r = run(spool, "facteur-cat", "1xW1Ua3cBPk3zz")
    assert r.returncode == 1 and "no such message" in r.stderr
    r = run(spool, "facteur-cat", "-q", "../x")
    assert r.returncode != 0 and "invalid queue ID" in r.stderr


# ---- end to end with the real qmgr ---------------------------------------------


def test_flush_end_to_end(instance):
    require_daemon("master", "qmgr")
    from test_qmgr import qmgr_instance, close_agents
    agents = qmgr_instance(instance)
    try:
        future = time.time() + 86400
        held = {}
        for name, dom in (("one", "a.example"), ("site", "b.example"), ("all", "c.example")):
            held[name] = put(instance, "deferred", "s@example.org", ["v@%s" % dom],
                             mtime=future)
        time.sleep(2.5)     # deferred-queue runs (queue_run_delay 1s) leave them
        assert all(where(instance, q) == ["deferred"] for q in held.values())

        r = run(instance, "facteur-queue", "-i", held["one"])
        assert r.returncode == 0, r.stderr
        fh.wait_until(lambda: not where(instance, held["one"]), 20, "-i delivery")
        assert where(instance, held["site"]) == ["deferred"]

        r = run(instance, "facteur-queue", "-s", "b.example")
        assert r.returncode == 0, r.stderr
        fh.wait_until(lambda: not where(instance, held["site"]), 20, "-s delivery")
        assert where(instance, held["all"]) == ["deferred"]

        r = run(instance, "facteur-queue", "-f")
        assert r.returncode == 0, r.stderr
        fh.wait_until(lambda: not where(instance, held["all"]), 20, "-f delivery")
        assert run(instance, "facteur-queue", "-p").stdout == "Mail queue is empty\n"
        seen = agents["smtp"].rcpts_seen()
        for dom in ("a.example", "b.example", "c.example"):
            assert seen.count("v@%s" % dom) == 1, seen
    finally:
        close_agents(agents)
