"""test_pickup.py - pickup(8): maildrop/ to incoming/ through cleanup.

An instance runs master with pickup alone (chroot, as the default
master.cf has it).  Checks: a dropped message reaches incoming/ with the
Received: header of local mail; garbage in maildrop/ (random bytes under a
queue-ID name, a truncated queue file, a stray name, a symlink) goes to
corrupt/ with a log line while pickup keeps working; header_checks and
body_checks actions (REJECT bounces to the sender, HOLD into hold/,
DISCARD drops, WARN logs, IGNORE/REPLACE edit); hopcount_limit and
header_size_limit return the message with a bounce.
"""

import os
import shutil

import pytest

from facteur_harness import wait_until
from test_sendmail import (queue_files, read_qfile, sendmail, start, wait_maildrop_empty,
                           wait_queued)


@pytest.fixture(autouse=True)
def pickup_never_dies(instance):
    """Whatever a test feeds it, pickup must not exit abnormally."""
    yield
    bad = instance.log_lines(r"pickup pid \d+ (exit status|killed)")
    assert not bad, [m.group(0) for m in bad]


def drop_one(inst, text, args=("a@example.org",)):
    r = sendmail(inst, list(args), text)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_received_and_log(instance):
    start(instance)
    drop_one(instance, "Subject: hello\n\nbody\n")
    name, q = wait_queued(instance, [])
    assert q["attrs"].get("origin") == "pickup"
    first = q["text"].split("\n")[0:2]
    assert first[0] == "Received: by localhost (facteur, from userid %d)" % os.getuid()
    assert first[1].startswith("\tid %s; " % name)
    instance.wait_for_log(r"facteur/pickup\[\d+\]: %s: uid=%d from=<" % (name, os.getuid()))
    wait_maildrop_empty(instance)


def test_garbage_goes_to_corrupt(instance):
    start(instance)
    maildrop = os.path.join(instance.queue, "maildrop")
    # Garbage lands while pickup sleeps; the next drop wakes it, and it
    # must set the garbage aside and still queue the good message.
    drop_one(instance, "Subject: good\n\nx\n")
    name, q = wait_queued(instance, [])
    garbage = {
        "1AbCdE0000Azz": b"\x00\x01 this is not a queue file\n" * 10,
        "1AbCdE0001Azz": b"V\x00\x00\x00\x0ffacteur-queue 1T\x00\x00\x00\x0c\x00",
        "not-a-queue-id.txt": b"stray\n",
    }
    for fname, data in garbage.items():
        with open(os.path.join(maildrop, fname), "wb") as f:
            f.write(data)
    os.symlink("/etc/passwd", os.path.join(maildrop, "1AbCdE0002Azz"))
    mark = instance.log_mark()
    drop_one(instance, "Subject: second\n\ny\n")
    name2, q2 = wait_queued(instance, [name])
    assert "Subject: second" in q2["text"]
    for fname in list(garbage) + ["1AbCdE0002Azz"]:
        instance.wait_for_log(r"warning: maildrop/%s: corrupt file" % fname.replace(".", r"\."),
                              since=mark)
    corrupt = sorted(os.listdir(os.path.join(instance.queue, "corrupt")))
    assert corrupt == sorted(list(garbage) + ["1AbCdE0002Azz"])
    wait_maildrop_empty(instance)
    # The queue-ID names were parsed and refused by the queue file reader,
    # the stray name never was.
    for fname in ("1AbCdE0000Azz", "1AbCdE0001Azz"):
        m = instance.wait_for_log(r"maildrop/%s: corrupt file \((.*)\)" % fname, since=mark)
        assert "unexpected file name" not in m.group(1)
    instance.wait_for_log(r"maildrop/not-a-queue-id\.txt: corrupt file \(unexpected file name",
                          since=mark)
    # pickup never died on any of it.
    assert len(instance.service_pids("pickup")) == 1
    assert not instance.log_lines(r"pickup pid \d+ exit status")


CHECKS = ("/^Subject:.*forbidden/ REJECT 5.7.1 no forbidden things here\n"
          "/^Subject:.*quarantine/ HOLD needs a look\n"
          "/^Subject:.*dropme/ DISCARD not wanted\n"
          "/^Subject:.*watched/ WARN someone looks\n"
          "/^X-Secret:/ IGNORE\n"
          "/^X-Old: (.*)/ REPLACE X-New: $1\n")
BODY = "/^viagra/ REJECT body spam\n"


@pytest.fixture
def checks_instance(instance):
    hc = instance.write_file("etc/header_checks", CHECKS)
    bc = instance.write_file("etc/body_checks", BODY)
    return start(instance, {"header_checks": "regexp:" + hc, "body_checks": "regexp:" + bc})


def bounce_for(inst, before, sender_local):
    name, q = wait_queued(inst, before)
    assert q["sender"] == ""
    assert [a for a, _ in q["rcpts"]] == [sender_local + "@localhost"]
    assert q["attrs"].get("origin") == "bounce"
    return q


def test_header_checks_reject_bounces(checks_instance):
    inst = checks_instance
    mark = inst.log_mark()
    drop_one(inst, "Subject: something forbidden\n\nbody\n", ["-f", "joe", "a@example.org"])
    q = bounce_for(inst, [], "joe")
    assert "no forbidden things here" in q["text"]
    assert "Status: 5.7.1" in q["text"]
    inst.wait_for_log(r": reject: header Subject: something forbidden from local; "
                      r"from=<joe@localhost> to=<a@example.org>.*: 5\.7\.1 no forbidden things",
                      since=mark)
    wait_maildrop_empty(inst)


def test_body_checks_reject(checks_instance):
    inst = checks_instance
    drop_one(inst, "Subject: ok\n\nhello\nviagra cheap\n", ["-f", "joe", "a@example.org"])
    q = bounce_for(inst, [], "joe")
    assert "body spam" in q["text"]


def test_hold_discard_warn_edit(checks_instance):
    inst = checks_instance
    mark = inst.log_mark()
    drop_one(inst, "Subject: quarantine this\n\nx\n")
    name, q = wait_queued(inst, [], queue="hold")
    assert "Subject: quarantine this" in q["text"]
    inst.wait_for_log(r"%s: hold: header Subject: quarantine this from local; .*: needs a look"
                      % name, since=mark)
    drop_one(inst, "Subject: dropme please\n\nx\n")
    inst.wait_for_log(r": discard: header Subject: dropme please from local;", since=mark)
    drop_one(inst, "Subject: watched\nX-Secret: 42\nX-Old: value\n\nx\n")
    name, q = wait_queued(inst, [])
    inst.wait_for_log(r"%s: warning: header Subject: watched from local; .*: someone looks"
                      % name, since=mark)
    assert "X-Secret" not in q["text"]
    assert "\nX-New: value\n" in q["text"] and "X-Old" not in q["text"]
    # The discarded message was never queued: only the edited one is.
    assert len(queue_files(inst, "incoming")) == 1
    wait_maildrop_empty(inst)


def test_hopcount_limit(instance):
    start(instance, {"hopcount_limit": "5"})
    hops = "".join("Received: from hop%d by x; date\n" % i for i in range(4))
    drop_one(instance, hops + "Subject: loop\n\nx\n", ["-f", "joe", "a@example.org"])
    q = bounce_for(instance, [], "joe")
    assert "too many hops" in q["text"]
    # Three hops plus ours is under the limit.
    before = queue_files(instance)
    hops = "".join("Received: from hop%d by x; date\n" % i for i in range(3))
    drop_one(instance, hops + "Subject: fine\n\nx\n", ["-f", "joe", "a@example.org"])
    name, q = wait_queued(instance, before)
    assert q["sender"] == "joe@localhost" and "Subject: fine" in q["text"]


def test_header_size_limit(instance):
    start(instance, {"header_size_limit": "200"})
    long_subject = "Subject: " + "x" * 150 + "\n " + "y" * 100 + "\n"
    drop_one(instance, long_subject + "\nbody\n", ["-f", "joe", "a@example.org"])
    q = bounce_for(instance, [], "joe")
    assert "header size exceeds safety limit" in q["text"]
    before = queue_files(instance)
    drop_one(instance, "Subject: " + "x" * 150 + "\n\nbody\n", ["-f", "joe", "a@example.org"])
    name, q = wait_queued(instance, before)
    assert q["sender"] == "joe@localhost"


def test_pickup_without_chroot_and_restart(instance):
    """Files dropped while pickup is stopped are taken at its start."""
    start(instance, chroot="n")
    drop_one(instance, "Subject: one\n\nx\n")
    wait_queued(instance, [])
    instance.stop()
    maildrop = os.path.join(instance.queue, "maildrop")
    # facteur-drop writes the file even when pickup is away.
    r = sendmail(instance, ["a@example.org"], "Subject: while down\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(maildrop)) == 1
    before = queue_files(instance)
    instance.start()
    name, q = wait_queued(instance, before)
    assert "Subject: while down" in q["text"]
    assert shutil.disk_usage(instance.queue)


def test_sendmail_to_mailbox_end_to_end(instance):
    """sendmail -t -> facteur-drop -> pickup -> qmgr -> lmtpd -> Maildir:
    every To/Cc/Bcc recipient gets one copy, none shows the Bcc header."""
    import facteur_harness as fh
    from conftest import require_daemon
    require_daemon("master", "pickup", "qmgr", "smtp", "lmtpd", "authd")
    uid, gid = (5000, 5000) if fh.is_root() else (os.getuid(), os.getgid())
    vmail = os.path.join(instance.dir, "vmail")
    os.makedirs(vmail)
    os.chown(vmail, uid, gid)
    users = instance.write_file("etc/users", "".join(
        "%s@example.test:{PLAIN}pw:%d:%d::%s/%s::\n" % (u, uid, gid, vmail, u)
        for u in ("alice", "bob", "carol")))
    params = {
        "mydestination": "localhost, example.test", "myorigin": "example.test",
        "alias_maps": "", "local_recipient_maps": "",
        "auth_passdb": "passwd-file:" + users, "auth_userdb": "passwd-file:" + users,
        "mail_location": "maildir:~/Maildir", "queue_run_delay": "1s",
    }
    if os.environ.get("ASAN_OPTIONS"):
        params["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    instance.configure(params=params, services=[
        fh.service_line("pickup", "unix", "pickup", private="n", chroot="y", wakeup=60,
                        maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("local", "unix", "smtp"),
        fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
        fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
    ])
    instance.start()
    r = sendmail(instance, ["-t", "-f", "cron@example.test"],
                 "To: alice\nCc: Bob <bob@example.test>\nBcc: carol@example.test\n"
                 "Subject: nightly report\n\nall good\n")
    assert r.returncode == 0, r.stderr

    def delivered(user):
        new = os.path.join(vmail, user, "Maildir", "new")
        return os.listdir(new) if os.path.isdir(new) else []

    for user in ("alice", "bob", "carol"):
        wait_until(lambda: delivered(user), 30, "delivery to %s" % user)
        files = delivered(user)
        assert len(files) == 1
        with open(os.path.join(vmail, user, "Maildir", "new", files[0])) as f:
            text = f.read()
        assert "Subject: nightly report" in text and "all good" in text
        header = text.split("\n\n")[0]
        assert "\nBcc:" not in header
        if user != "carol":
            assert "carol" not in text
        assert "(facteur, from userid %d)" % os.getuid() in text
    instance.wait_for_log(r"to=<alice@example\.test>.*status=sent")


def test_backlog_shares_syncs_and_loses_nothing(instance):
    """150 messages dropped while pickup is stopped (more than one group
    of 100): all reach incoming/ once, in order, and maildrop/ empties."""
    start(instance, chroot="n")
    instance.stop()
    for i in range(150):
        r = sendmail(instance, ["a@example.org"], "Subject: backlog %03d\n\nx\n" % i)
        assert r.returncode == 0, r.stderr
    assert len(queue_files(instance, "maildrop")) == 150
    instance.start()
    wait_until(lambda: len(queue_files(instance)) == 150, 60, "150 queued messages")
    wait_maildrop_empty(instance, timeout=30)
    subjects = []
    for name in queue_files(instance):
        q = read_qfile(os.path.join(instance.queue, "incoming", name))
        subjects += [line for line in q["text"].split("\n") if line.startswith("Subject:")]
    assert sorted(subjects) == ["Subject: backlog %03d" % i for i in range(150)]
    # Queue IDs follow arrival: pickup took the oldest maildrop files first.
    assert subjects == sorted(subjects)
