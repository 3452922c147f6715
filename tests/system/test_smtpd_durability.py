"""test_smtpd_durability.py - the queue rule: 250 only after the queue file
is whole, synced and renamed into incoming/.  kill -9 of smtpd right after
its 250 leaves a complete queue file; kill -9 before the end of data leaves
none; kills at moments around the final dot never leave a partial file
under a queue ID name, and every 250 has its file."""

import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

import facteur_harness as fh
from test_smtpd_common import Dialog, QueueFile, queue_names, start_smtpd


def smtpd_pid(inst, exclude=()):
    return inst.wait_service_pid("smtpd", exclude=exclude)


def open_data(port):
    d = Dialog(port)
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    return d


def test_kill_right_after_250_leaves_complete_file(instance):
    ports = start_smtpd(instance, with_anvil=False)
    d = open_data(ports["smtp"])
    pid = smtpd_pid(instance)
    body = b"Subject: durable\r\n\r\n" + b"line of text\r\n" * 2000
    d.send(body + b".\r\n")
    qid = d.expect(250, r"queued as").split()[-1]
    os.kill(pid, signal.SIGKILL)
    fh.wait_until(lambda: not fh.pid_alive(pid), 5, "smtpd to die")
    assert queue_names(instance) == [qid]
    m = QueueFile(os.path.join(instance.queue, "incoming", qid))
    assert m.ended and m.addrs == ["bob@example.test"]
    assert m.content.endswith(b"line of text\n" * 2000)


def test_kill_before_end_of_data_leaves_nothing(instance):
    ports = start_smtpd(instance, with_anvil=False)
    d = open_data(ports["smtp"])
    pid = smtpd_pid(instance)
    d.send(b"Subject: never\r\n\r\n" + b"almost there\r\n" * 2000)
    # Let smtpd write what it got into its temp file.
    time.sleep(0.5)
    tmp = [n for n in os.listdir(os.path.join(instance.queue, "incoming"))]
    os.kill(pid, signal.SIGKILL)
    fh.wait_until(lambda: not fh.pid_alive(pid), 5, "smtpd to die")
    d.close()
    assert queue_names(instance) == []
    # Whatever is left is a temp name that no scanner takes for a message.
    for n in os.listdir(os.path.join(instance.queue, "incoming")):
        assert n.startswith("."), n
    assert all(n.startswith(".") for n in tmp)


def test_kills_around_the_final_dot(instance):
    ports = start_smtpd(instance, with_anvil=False)
    rnd = random.Random(4)
    acked = []
    seen = set()
    for round_no in range(6):
        d = open_data(ports["smtp"])
        pid = smtpd_pid(instance, exclude=seen)
        seen.add(pid)
        d.send(b"Subject: round %d\r\n\r\n" % round_no + b"x" * 5000 + b"\r\n.\r\n")
        time.sleep(rnd.choice([0, 0.001, 0.003, 0.01, 0.05]))
        os.kill(pid, signal.SIGKILL)
        code, text = d.reply()
        if code == 250:
            acked.append(text.split()[-1])
        d.close()
        fh.wait_until(lambda: not fh.pid_alive(pid), 5, "smtpd to die")
    names = queue_names(instance)
    for qid in acked:
        assert qid in names, "acknowledged %s lost" % qid
    for n in names:
        assert QueueFile(os.path.join(instance.queue, "incoming", n)).ended


def test_syscall_order_sync_rename_sync_then_250(instance):
    """strace a stand-alone smtpd (-S) receiving one message: the queue
    file is fdatasynced, renamed into incoming/ and incoming/ fsynced,
    all before the 250 is written."""
    if shutil.which("strace") is None:
        pytest.fail("strace is not installed")
    start_smtpd(instance, with_anvil=False)
    trace = os.path.join(instance.dir, "strace.out")
    dialog = b"EHLO client.test\r\n"
    r = subprocess.run(["strace", "-f", "-o", trace, "-e",
                        "trace=fsync,fdatasync,rename,renameat,renameat2,write",
                        os.path.join(instance.daemon_dir, "smtpd"), "-S", "-c", instance.confdir,
                        "-o", "smtpd_forbid_unauth_pipelining=no"],
                       input=dialog + b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
                       b"DATA\r\nSubject: traced\r\n\r\nbody\r\n.\r\nQUIT\r\n",
                       capture_output=True, timeout=60)
    assert b"250 2.0.0 Ok: queued as" in r.stdout, r.stdout + r.stderr
    with open(trace) as f:
        calls = f.read().splitlines()
    def first(pattern):
        for i, line in enumerate(calls):
            if re.search(pattern, line):
                return i
        raise AssertionError("no %s in the trace:\n%s" % (pattern, "\n".join(calls[-30:])))
    i_sync = first(r"fdatasync\(\d+\)\s+= 0|fsync\(\d+\)\s+= 0")
    i_rename = first(r"rename.*incoming/\.tmp.*incoming/\w+")
    i_dirsync = next(i for i in range(i_rename + 1, len(calls))
                     if re.search(r"\bfsync\(\d+\)\s+= 0", calls[i]))
    i_250 = first(r'write\(1, "250 2\.0\.0 Ok: queued as')
    assert i_sync < i_rename < i_dirsync < i_250
