"""test_crash_e2e.py - issue 6 at full size: kill -9 of qmgr and of the
delivery processes during a run of 1,000 messages loses none and
duplicates none, counted by Message-ID at the receiving side.

Remote path: smtpd -> qmgr -> smtp -> a receiving SMTP server on loopback
(Receiver below, in this process) that appends each message's Message-ID
to a list and a file before it answers 250.  Local path: smtpd -> qmgr ->
local (the smtp client in LMTP mode, sending XQID) -> lmtpd -> Maildir,
counted in the Maildir files.  While the messages flow, qmgr and the
delivery processes are killed at random moments (a seeded schedule, a
bounded number of kills); master restarts them.  Then the queue must
empty within a bounded time, every Message-ID must have arrived exactly
once, and the maillog must show the kills took effect (recoveries of the
active queue, retries).

The run is measured, not just judged: each test prints messages, kills,
losses, duplicates and the time taken (pytest -s shows them).

One window cannot be closed by any SMTP client: the receiver has stored
the message and answers 250, and the client is killed before it reads
that reply (RFC 1047).  The receiver keeps it as small as a real server
does (store, then answer at once), and the kills are spread over the
whole run, so hitting it needs a kill within microseconds of a reply.
"""

import os
import random
import re
import signal
import smtplib
import socket
import threading
import time

import facteur_harness as fh
from conftest import require_command, require_daemon

MESSAGES = 1000
SENDERS = 4                 # smtplib connections injecting in parallel
QMGR_KILLS = 10
AGENT_KILLS = 20            # smtp (remote) or local + lmtpd (local path)
KILL_GAP = (0.03, 0.12)     # seconds between kills, uniform
DRAIN_TIMEOUT = 120         # seconds for the queue to empty after the run
MID_RE = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]{1,200})>", re.M | re.I)

# ---- the receiving side --------------------------------------------------


class Receiver:
    """A minimal ESMTP server on 127.0.0.1 (a thread per connection).  Each
    message's Message-ID is appended to self.ids and to path, then 250 is
    sent.  Input is bounded: 1,000-byte lines, 1 MB messages, 100
    recipients, a 30 s read timeout; sessions end on anything else."""

    LINE_MAX = 1000
    MSG_MAX = 1 << 20

    def __init__(self, path, data_delay=0.0):
        self.path = path
        self.data_delay = data_delay    # pause before 354: kills land mid-transaction
        self.ids = []
        self.sessions = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.out = open(path, "ab")
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.sessions += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _record(self, data):
        m = MID_RE.search(data)
        mid = m.group(1).decode("ascii", "replace") if m else "?"
        with self.lock:
            self.ids.append(mid)
            self.out.write(mid.encode() + b"\n")
            self.out.flush()

    def _session(self, conn):
        conn.settimeout(30)
        f = conn.makefile("rb")

        def say(text):
            conn.sendall(text.encode() + b"\r\n")

        def line():
            raw = f.readline(self.LINE_MAX + 2)
            if not raw or not raw.endswith(b"\n"):
                raise EOFError
            return raw

        try:
            say("220 receiver.test ESMTP")
            rcpts = 0
            while True:
                cmd = line().rstrip(b"\r\n").decode("ascii", "replace")
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-receiver.test\r\n250-8BITMIME\r\n250 SIZE 10485760"
                        if verb == "EHLO" else "250 receiver.test")
                elif verb == "MAIL":
                    rcpts = 0
                    say("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts += 1
                    say("250 2.1.5 Ok" if rcpts <= 100 else "452 4.5.3 Too many recipients")
                elif verb == "DATA":
                    if rcpts == 0:
                        say("503 5.5.1 No recipients")
                        continue
                    if self.data_delay:
                        time.sleep(self.data_delay)
                    say("354 End data with <CR><LF>.<CR><LF>")
                    data = b""
                    while True:
                        raw = line()
                        if raw == b".\r\n":
                            break
                        data += raw
                        if len(data) > self.MSG_MAX:
                            raise EOFError
                    self._record(data)
                    say("250 2.0.0 Ok: queued")
                    rcpts = 0
                elif verb == "RSET":
                    rcpts = 0
                    say("250 2.0.0 Ok")
                elif verb == "NOOP":
                    say("250 2.0.0 Ok")
                elif verb == "QUIT":
                    say("221 2.0.0 Bye")
                    break
                else:
                    say("502 5.5.2 Error: command not recognized")
        except (EOFError, OSError):
            pass
        finally:
            f.close()
            conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        self.out.close()


# ---- instances -------------------------------------------------------------


def common_params():
    p = {
        "mynetworks": "127.0.0.0/8",
        "smtpd_peername_lookup": "no",
        "alias_maps": "",
        "local_recipient_maps": "",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "service_throttle_time": "1s",
    }
    if os.environ.get("ASAN_OPTIONS"):
        p["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    return p


def start_remote(inst, rport):
    require_daemon("master", "smtpd", "qmgr", "smtp", "anvil")
    port = fh.free_port()
    params = common_params()
    params.update({
        "mydestination": "localhost",
        "transport_maps": "inline:{ far.example=smtp:[127.0.0.1]:%d }" % rport,
        "smtp_tls_security_level": "none",
        "smtp_connect_timeout": "5s",
    })
    inst.configure(params, [
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n"),
        fh.service_line("anvil", "unix", "anvil", maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("smtp", "unix", "smtp"),
    ])
    inst.start()
    return port


LOCAL_DOMAIN = "example.test"
LOCAL_USERS = ["u0", "u1"]


def start_local(inst):
    require_command("facteur")
    require_daemon("master", "smtpd", "qmgr", "smtp", "lmtpd", "authd", "anvil")
    uid, gid = (5000, 5000) if fh.is_root() else (os.getuid(), os.getgid())
    vmail = os.path.join(inst.dir, "vmail")
    os.makedirs(vmail)
    os.chown(vmail, uid, gid)
    users = inst.write_file("etc/users", "".join(
        "%s@%s:{PLAIN}pw:%d:%d::%s/%s::\n" % (u, LOCAL_DOMAIN, uid, gid, vmail, u)
        for u in LOCAL_USERS))
    port = fh.free_port()
    params = common_params()
    params.update({
        "mydestination": "localhost, " + LOCAL_DOMAIN,
        "myorigin": LOCAL_DOMAIN,
        "auth_passdb": "passwd-file:" + users,
        "auth_userdb": "passwd-file:" + users,
        "mail_location": "maildir:~/Maildir",
        "mailbox_size_limit": "0",
    })
    inst.configure(params, [
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n"),
        fh.service_line("anvil", "unix", "anvil", maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("local", "unix", "smtp"),
        fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
        fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
    ])
    inst.start()
    return port, vmail


# ---- the run ---------------------------------------------------------------


def queue_count(inst):
    n = 0
    for sub in ("incoming", "active", "deferred"):
        for _, _, files in os.walk(os.path.join(inst.queue, sub)):
            n += len(files)
    return n


def inject(port, rcpts_for, tag):
    """Send MESSAGES messages over SENDERS parallel smtplib connections.
    Returns (the Message-IDs accepted, errors)."""
    accepted, errors = [], []
    lock = threading.Lock()

    def one_sender(k):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                for i in range(k, MESSAGES, SENDERS):
                    mid = "%s-%04d@src.example" % (tag, i)
                    s.sendmail("sender@src.example", rcpts_for(i),
                               "From: sender@src.example\r\nSubject: crash %d\r\n"
                               "Message-ID: <%s>\r\n\r\nbody of message %d\r\n" % (i, mid, i))
                    with lock:
                        accepted.append(mid)
        except Exception as e:      # reported by the caller with the counts
            with lock:
                errors.append("sender %d: %r" % (k, e))

    threads = [threading.Thread(target=one_sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    return threads, accepted, errors


def kill_during_run(inst, victims, senders, seed):
    """While the senders run or the queue is not empty, kill -9 one process
    at a time at random moments.  victims: {command: budget}.  qmgr is only
    killed again once its successor runs.  Returns {command: kills}."""
    rng = random.Random(seed)
    left = dict(victims)
    done = {c: 0 for c in victims}
    deadline = time.monotonic() + 90
    while sum(left.values()) > 0 and time.monotonic() < deadline:
        if not any(t.is_alive() for t in senders) and queue_count(inst) == 0:
            break
        time.sleep(rng.uniform(*KILL_GAP))
        names = [c for c, n in left.items() if n > 0]
        cmd = rng.choices(names, weights=[left[c] for c in names])[0]
        pids = inst.service_pids(cmd)
        if not pids:
            continue
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
        except ProcessLookupError:
            continue
        left[cmd] -= 1
        done[cmd] += 1
    return done


def show_history(inst, mids):
    """Print the maillog lines of the queue IDs that carried these
    Message-IDs: where a loss or a second copy came from."""
    text = inst.log_text()
    for mid in mids:
        qids = set(re.findall(r": (\w+): message-id=<%s>" % re.escape(mid), text))
        print("--- %s (queue ID %s)" % (mid, ", ".join(sorted(qids)) or "none"))
        for line in text.splitlines():
            if any(q in line for q in qids):
                print(line)


def finish_run(inst, senders, accepted, errors, arrived_fn, kills, started, label):
    for t in senders:
        t.join(120)
    assert not errors and len(accepted) == MESSAGES, (len(accepted), errors[:4])
    try:
        fh.wait_until(lambda: queue_count(inst) == 0, DRAIN_TIMEOUT,
                      "the queue to empty after the kills", interval=0.2)
    finally:
        arrived = arrived_fn()
        counts = {}
        for mid in arrived:
            counts[mid] = counts.get(mid, 0) + 1
        lost = sorted(set(accepted) - set(counts))
        dups = sorted(m for m, n in counts.items() if n > 1)
        stray = sorted(set(counts) - set(accepted))
        print("\n%s: %d messages, kills %s, arrived %d, lost %d, duplicated %d, "
              "stray %d, %.1fs" % (label, len(accepted), kills, len(arrived), len(lost),
                                   len(dups), len(stray), time.monotonic() - started))
    if lost or dups or stray:
        show_history(inst, (lost + dups + stray)[:3])
    assert not lost, ("lost", len(lost), lost[:10])
    assert not dups, ("duplicated", len(dups), [(m, counts[m]) for m in dups[:10]])
    assert not stray, ("unexpected Message-IDs", stray[:10])
    return arrived


def test_remote_path_kill9_qmgr_and_smtp(make_instance, tmp_path):
    receiver = Receiver(str(tmp_path / "received-ids"), data_delay=0.002)
    try:
        inst = make_instance("crash-remote")
        port = start_remote(inst, receiver.port)
        started = time.monotonic()
        senders, accepted, errors = inject(port, lambda i: ["rcpt%d@far.example" % (i % 3)],
                                           "remote")
        kills = kill_during_run(inst, {"qmgr": QMGR_KILLS, "smtp": AGENT_KILLS}, senders,
                                seed=6001)
        finish_run(inst, senders, accepted, errors, lambda: list(receiver.ids), kills,
                   started, "remote path")
        assert kills["qmgr"] >= QMGR_KILLS // 2 and kills["smtp"] >= AGENT_KILLS // 2, kills
        # The kills were felt: a restarted qmgr took up the active queue.
        assert inst.log_lines(r"qmgr\[\d+\]: recovering \d+ messages? left in the active queue")
    finally:
        receiver.stop()


def maildir_ids(vmail, user):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(vmail, user, "Maildir", sub)
        for name in (os.listdir(d) if os.path.isdir(d) else []):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    m = MID_RE.search(f.read(8192))
            except FileNotFoundError:
                continue
            out.append(m.group(1).decode("ascii", "replace") if m else "?")
    return out


def test_local_path_kill9_qmgr_local_and_lmtpd(make_instance):
    inst = make_instance("crash-local")
    port, vmail = start_local(inst)
    started = time.monotonic()
    user_of = lambda i: LOCAL_USERS[i % len(LOCAL_USERS)]   # noqa: E731
    senders, accepted, errors = inject(port, lambda i: ["%s@%s" % (user_of(i), LOCAL_DOMAIN)],
                                       "local")
    kills = kill_during_run(inst, {"qmgr": QMGR_KILLS, "smtp": AGENT_KILLS // 2,
                                   "lmtpd": AGENT_KILLS // 2}, senders, seed=6002)
    arrived = finish_run(inst, senders, accepted, errors,
                         lambda: sum((maildir_ids(vmail, u) for u in LOCAL_USERS), []),
                         kills, started, "local path")
    # Each message is in the mailbox of the user it was sent to.
    for u in LOCAL_USERS:
        want = sorted(m for m in accepted if user_of(int(m.split("-")[1].split("@")[0])) == u)
        assert sorted(maildir_ids(vmail, u)) == want, u
    assert len(arrived) == MESSAGES
    assert kills["qmgr"] >= QMGR_KILLS // 2, kills
    assert kills["smtp"] + kills["lmtpd"] >= AGENT_KILLS // 2, kills
    assert inst.log_lines(r"qmgr\[\d+\]: recovering \d+ messages? left in the active queue")
