"""test_sendmail.py - local submission as cron, mail(1) and scripts use it.

A real instance runs master with only the pickup service (no qmgr, so a
queued message stays in incoming/ where the test reads it).  Messages go
in through bin/sendmail -> facteur-drop -> maildrop/ -> pickup -> cleanup
-> incoming/, and the test checks the queue file's envelope and content:
-t recipient extraction from To/Cc/Bcc with the Bcc header removed, -f,
-F, -i/-oi versus a lone dot, -N/-R/-V, -bs as an SMTP session on
stdin/stdout, and the mailq/newaliases names.
"""

import os
import socket
import struct
import subprocess

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon
from facteur_harness import Dialogue, service_line, wait_until


def read_qfile(path):
    """Parse a facteur queue file (lib/qfile.h) into a dict."""
    with open(path, "rb") as f:
        data = f.read()
    out = {"rcpts": [], "attrs": {}, "content": b"", "ret": None, "envid": None}
    pos = 0
    while pos < len(data):
        rtype = chr(data[pos])
        (length,) = struct.unpack(">I", data[pos + 1:pos + 5])
        body = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if rtype == "S":
            out["sender"] = body.decode()
        elif rtype == "R":
            alen = struct.unpack(">H", body[2:4])[0]
            out["rcpts"].append((body[4:4 + alen].decode(), body[1]))
        elif rtype == "A":
            name, _, value = body.partition(b"\0")
            out["attrs"][name.decode()] = value.decode()
        elif rtype == "N":
            out["ret"] = body.decode()
        elif rtype == "I":
            out["envid"] = body.decode()
        elif rtype == "M":
            out["content"] += body
        elif rtype == "E":
            out["end"] = True
    out["text"] = out["content"].decode("utf-8", "replace")
    return out


def queue_files(inst, queue="incoming"):
    d = os.path.join(inst.queue, queue)
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def wait_queued(inst, before, queue="incoming", timeout=15):
    """Wait for a new file in queue (not in before) and return its parse."""
    def new():
        names = [n for n in queue_files(inst, queue) if n not in before]
        return names[0] if names else None
    name = wait_until(new, timeout, "a new file in %s/" % queue)
    return name, read_qfile(os.path.join(inst.queue, queue, name))


def wait_maildrop_empty(inst, timeout=10):
    """pickup removes a maildrop file just after its queued copy is durable:
    wait for that (bounded)."""
    wait_until(lambda: queue_files(inst, "maildrop") == [], timeout, "an empty maildrop/")


def start(instance, params=None, chroot="y"):
    require_daemon("master", "pickup")
    require_command("sendmail", "facteur-drop")
    instance.configure(params=params or {},
                       services=[service_line("pickup", "unix", "pickup", private="n",
                                              chroot=chroot, wakeup=60, maxproc=1)])
    instance.start()
    return instance


def sendmail(inst, args, text, timeout=20):
    env = dict(os.environ, FACTEUR_CONFIG_DIR=inst.confdir)
    env.pop("NAME", None)
    return subprocess.run([os.path.join(fh.BIN, "sendmail")] + args, input=text.encode(),
                          capture_output=True, timeout=timeout, env=env)


MSG_T = ("To: Alice <alice@example.org>, bob@example.org\n"
         "Cc: \"Doe, Carol\" <carol@example.org>\n"
         "Bcc: secret@example.org\n"
         "Subject: cron output\n"
         "\n"
         "line one\n")


def test_t_extracts_recipients_and_removes_bcc(instance):
    start(instance)
    r = sendmail(instance, ["-t", "-f", "cron@example.org", "-F", "Cron Daemon"], MSG_T)
    assert r.returncode == 0, r.stderr
    name, q = wait_queued(instance, [])
    assert q.get("end")
    assert q["sender"] == "cron@example.org"
    assert sorted(a for a, _ in q["rcpts"]) == ["alice@example.org", "bob@example.org",
                                                 "carol@example.org", "secret@example.org"]
    text = q["text"]
    assert "Bcc:" not in text and "secret@example.org" not in text
    assert text.startswith("Received: by localhost (facteur, from userid %d)\n\tid %s; "
                           % (os.getuid(), name))
    assert "\nFrom: Cron Daemon <cron@example.org>\n" in text
    assert "\nMessage-ID: <" in text and "@localhost>\n" in text
    assert "\nDate: " in text
    assert text.endswith("\n\nline one\n")
    # pickup logged the Postfix line and the maildrop is empty again.
    instance.wait_for_log(r"pickup\[\d+\]: %s: uid=%d from=<cron@example.org>"
                          % (name, os.getuid()))
    instance.wait_for_log(r"%s: message-id=<" % name)
    wait_maildrop_empty(instance)


def test_default_sender_and_qualification(instance):
    start(instance)
    r = sendmail(instance, ["root", "x@example.org,y@example.org"],
                 "Subject: plain\nFrom: me@example.org\n\nbody\n")
    assert r.returncode == 0, r.stderr
    _, q = wait_queued(instance, [])
    import pwd
    login = pwd.getpwuid(os.getuid()).pw_name
    assert q["sender"] == login + "@localhost"
    assert [a for a, _ in q["rcpts"]] == ["root@localhost", "x@example.org", "y@example.org"]
    assert "\nFrom: me@example.org\n" in q["text"]
    assert q["text"].count("From:") == 1


@pytest.mark.parametrize("flag,body", [
    ([], "before\n"),
    (["-i"], "before\n.\nafter\n"),
    (["-oi"], "before\n.\nafter\n"),
])
def test_dot_handling(instance, flag, body):
    start(instance)
    r = sendmail(instance, flag + ["a@example.org"], "Subject: dots\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    _, q = wait_queued(instance, [])
    assert q["text"].endswith("\n\n" + body)


@pytest.mark.parametrize("who,args,sender,rcpts,full", [
    # Debian cron(8): full name attached, 8BITMIME body type, errors mailed.
    ("cron", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], None, ["root@localhost"],
     "CronDaemon"),
    # git send-email: -i, envelope sender, recipients as arguments.
    ("git send-email", ["-i", "-f", "dev@example.org", "list@example.org",
                        "maint@example.org"], "dev@example.org",
     ["list@example.org", "maint@example.org"], None),
    # bsd-mailx / s-nail: -oi, "--" before the recipients.
    ("mailx", ["-oi", "-oem", "-odi", "--", "user@example.org"], None, ["user@example.org"],
     None),
    # Scripts: -t with an attached -f and -r.
    ("script -t", ["-t", "-rbot@example.org"], "bot@example.org", ["to@example.org"], None),
])
def test_client_command_lines(instance, who, args, sender, rcpts, full):
    import pwd
    start(instance)
    r = sendmail(instance, args, "To: to@example.org\nSubject: from %s\n\nhello\n" % who)
    assert r.returncode == 0, r.stderr
    _, q = wait_queued(instance, [])
    login = pwd.getpwuid(os.getuid()).pw_name
    assert q["sender"] == (sender or login + "@localhost")
    assert [a for a, _ in q["rcpts"]] == rcpts
    assert "Subject: from %s" % who in q["text"]
    if full:
        assert "\nFrom: %s <%s@localhost>\n" % (full, login) in q["text"]


def test_dsn_options(instance):
    start(instance)
    r = sendmail(instance, ["-N", "success,failure", "-R", "hdrs", "-V", "env-42",
                            "-f", "<>", "a@example.org"], "Subject: dsn\n\nx\n")
    assert r.returncode == 0, r.stderr
    _, q = wait_queued(instance, [])
    assert q["sender"] == ""
    assert q["rcpts"] == [("a@example.org", 0x02 | 0x04)]
    assert q["ret"] == "H" and q["envid"] == "env-42"
    assert "\nFrom: MAILER-DAEMON\n" in q["text"]


@pytest.mark.parametrize("args,text,status", [
    ([], "Subject: none\n\nx\n", 64),
    (["-t"], "Subject: none\n\nx\n", 64),
    (["-t"], "To: <unclosed@example.org\n\nx\n", 65),
    (["-N", "sometimes", "a@example.org"], "x\n", 64),
    (["-bz"], "x\n", 64),
    (["-f"], "x\n", 64),
])
def test_refused_invocations(instance, args, text, status):
    start(instance)
    r = sendmail(instance, args, text)
    assert r.returncode == status, r.stderr
    assert r.stderr
    assert queue_files(instance, "maildrop") == []
    assert queue_files(instance, "incoming") == []


def test_message_too_big(instance):
    start(instance, {"message_size_limit": "600"})
    r = sendmail(instance, ["a@example.org"], "Subject: big\n\n" + "x" * 1000 + "\n")
    assert r.returncode == 65, r.stderr
    assert b"message too big" in r.stderr
    assert queue_files(instance, "maildrop") == []
    r = sendmail(instance, ["a@example.org"], "Subject: small\n\n" + "x" * 20 + "\n")
    assert r.returncode == 0, r.stderr
    _, q = wait_queued(instance, [])
    assert q["sender"] != "" and "Subject: small" in q["text"]


def test_bs_smtp_session(instance):
    start(instance)
    ours, theirs = socket.socketpair()
    env = dict(os.environ, FACTEUR_CONFIG_DIR=instance.confdir)
    proc = subprocess.Popen([os.path.join(fh.BIN, "sendmail"), "-bs"], stdin=theirs,
                            stdout=theirs, stderr=subprocess.PIPE, env=env)
    theirs.close()
    try:
        d = Dialogue(ours)
        d.expect(r"^220 localhost ESMTP")
        d.send("EHLO client")
        d.expect_reply("250")
        d.send("RCPT TO:<early@example.org>")
        d.expect(r"^503 ")
        d.send("MAIL FROM:<sender@example.org>")
        d.expect(r"^250 2\.1\.0")
        d.send("RCPT TO:<rcpt@example.org> NOTIFY=FAILURE")
        d.expect(r"^250 2\.1\.5")
        d.send("RCPT TO:<bad address>")
        d.expect(r"^501 ")
        d.send("DATA")
        d.expect(r"^354 ")
        for line in ("Subject: via -bs", "", "..leading dot", "plain", "."):
            d.send(line)
        m = d.expect(r"^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)")
        d.send("NOOP")
        d.expect(r"^250 ")
        d.send("QUIT")
        d.expect(r"^221 ")
        assert proc.wait(10) == 0
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
    assert m is not None
    _, q = wait_queued(instance, [])
    assert q["sender"] == "sender@example.org"
    assert q["rcpts"] == [("rcpt@example.org", 0x04)]
    assert q["text"].endswith("\n\n.leading dot\nplain\n")


def test_names_and_modes(instance, tmp_path):
    start(instance)
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: root\nabuse: root\n")
    instance.configure(params={"alias_database": "hash:%s" % aliases})
    links = tmp_path / "bin"
    links.mkdir()
    for name in ("sendmail", "facteur-drop", "facteur-map", "facteur-queue"):
        src = os.path.join(fh.BIN, name)
        if os.path.exists(src):
            os.symlink(src, links / name)
    os.symlink("sendmail", links / "newaliases")
    os.symlink("sendmail", links / "mailq")
    env = dict(os.environ, FACTEUR_CONFIG_DIR=instance.confdir)
    r = subprocess.run([str(links / "newaliases")], capture_output=True, timeout=20, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "aliases.db").exists()
    os.unlink(tmp_path / "aliases.db")
    r = subprocess.run([str(links / "sendmail"), "-bi"], capture_output=True, timeout=20,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "aliases.db").exists()
    # mailq lists the queue: a message dropped now shows with its queue ID.
    r = sendmail(instance, ["-f", "lister@example.org", "a@example.org"], "Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    name, _ = wait_queued(instance, [])
    r = subprocess.run([str(links / "mailq")], capture_output=True, timeout=20, env=env)
    if os.path.exists(os.path.join(fh.BIN, "facteur-queue")):
        assert r.returncode == 0, r.stderr
        assert name.encode() in r.stdout and b"lister@example.org" in r.stdout, r.stdout
    else:
        assert r.returncode == 69 and b"facteur-queue is not installed" in r.stderr


def frame(rtype, data):
    return rtype.encode() + struct.pack(">I", len(data)) + data


GOOD_DROP = (frame("S", b"joe") + frame("R", b"\x00a@example.org") +
             frame("M", b"Subject: framed\n\nx\n") + frame("E", b""))


@pytest.mark.parametrize("name,data,status", [
    ("good", GOOD_DROP, 0),
    ("empty", b"", 65),
    ("no end record", GOOD_DROP[:-5], 65),
    ("cut inside a record", GOOD_DROP[:-12], 65),
    ("data after end", GOOD_DROP + b"x", 65),
    ("unknown record", frame("Z", b"x") + GOOD_DROP, 65),
    ("two senders", frame("S", b"a") + GOOD_DROP, 65),
    ("no recipient", frame("S", b"a") + frame("M", b"x\n") + frame("E", b""), 65),
    ("control char in sender", frame("S", b"a\nb") + GOOD_DROP[8:], 65),
    ("forged client attribute", frame("A", b"client_address\x00192.0.2.1") + GOOD_DROP, 65),
    ("oversized record", b"S" + struct.pack(">I", 1 << 30) + b"abc", 65),
    ("envelope after content", GOOD_DROP[:-5] + frame("R", b"\x00b@example.org") +
     frame("E", b""), 65),
])
def test_facteur_drop_input(instance, name, data, status):
    """facteur-drop trusts nothing from its caller: a bad frame queues
    nothing; a good one prints the maildrop queue ID."""
    require_command("facteur-drop")
    instance.configure(services=[])
    instance.facteur_check()
    env = dict(os.environ, FACTEUR_CONFIG_DIR=instance.confdir)
    r = subprocess.run([os.path.join(fh.BIN, "facteur-drop")], input=data,
                       capture_output=True, timeout=20, env=env)
    assert r.returncode == status, (name, r.stderr)
    files = queue_files(instance, "maildrop")
    if status == 0:
        assert files == [r.stdout.decode().strip()]
        q = read_qfile(os.path.join(instance.queue, "maildrop", files[0]))
        assert q["sender"] == "joe" and q["rcpts"] == [("a@example.org", 0)]
        assert os.stat(os.path.join(instance.queue, "maildrop", files[0])).st_mode & 0o777 == 0o644
    else:
        assert files == [] and r.stdout == b""
        assert b"invalid message" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to install a set-group-ID copy")
def test_setgid_drop_ignores_config_dir_for_users(instance):
    """Installed set-group-ID, facteur-drop run by an ordinary user must not
    let FACTEUR_CONFIG_DIR point it at another queue: the instance's
    maildrop stays empty even though the group could write there."""
    import grp
    import pwd
    require_command("facteur-drop")
    instance.configure(services=[])
    instance.facteur_check()
    bindir = os.path.join(instance.dir, "sgid")
    os.mkdir(bindir)
    os.chmod(bindir, 0o755)
    drop = os.path.join(bindir, "facteur-drop")
    with open(os.path.join(fh.BIN, "facteur-drop"), "rb") as src, open(drop, "wb") as dst:
        dst.write(src.read())
    gid = grp.getgrnam(instance.setgid_group).gr_gid
    os.chown(drop, 0, gid)
    os.chmod(drop, 0o2755)
    nobody = pwd.getpwnam("nobody")
    env = {"FACTEUR_CONFIG_DIR": instance.confdir, "PATH": "/usr/bin:/bin"}

    def as_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    r = subprocess.run([drop], input=GOOD_DROP, capture_output=True, timeout=20, env=env,
                       preexec_fn=as_nobody)
    assert r.returncode != 0, r.stderr
    assert queue_files(instance, "maildrop") == []
    assert instance.confdir.encode() not in r.stderr
