"""lmtpd at the end of facteur's own chain: smtpd -> queue -> qmgr -> local
(the smtp client, in LMTP mode for the default local_transport
local:unix:private/lmtp, sending XQID) -> lmtpd on private/lmtp ->
Maildir, with kill -9 of the delivery processes at random moments.

The durability and exactly-once rules of DESIGN.md say every accepted
message arrives and none twice: a kill after lmtpd linked some files but
before its replies reached the client makes qmgr retry, and the retry must
find those files by their queue-ID key instead of writing second copies.
Each message goes to several mailboxes so that window (files linked and
synced one after another before any reply) is wide enough to be hit: in a
typical run about 130 kills make about 90 retries find earlier copies, and
an lmtpd that does not offer XQID leaves a dozen duplicates.
"""

import os
import random
import re
import signal
import smtplib
import threading
import time

import facteur_harness as fh
from conftest import require_command, require_daemon

DOMAIN = "example.test"
USERS = ["u%d" % i for i in range(8)]
MESSAGES = 60


def start_chain(instance):
    require_command("facteur")
    require_daemon("master", "smtpd", "qmgr", "smtp", "lmtpd", "authd", "anvil")
    uid, gid = (5000, 5000) if fh.is_root() else (os.getuid(), os.getgid())
    vmail = os.path.join(instance.dir, "vmail")
    os.makedirs(vmail)
    os.chown(vmail, uid, gid)
    users = instance.write_file("etc/users", "".join(
        "%s@%s:{PLAIN}pw:%d:%d::%s/%s::\n" % (u, DOMAIN, uid, gid, vmail, u) for u in USERS))
    port = fh.free_port()
    params = {
        "mydestination": "localhost, " + DOMAIN,
        "myorigin": DOMAIN,
        "mynetworks": "127.0.0.0/8",
        "smtpd_peername_lookup": "no",
        "alias_maps": "",
        "local_recipient_maps": "",
        "auth_passdb": "passwd-file:" + users,
        "auth_userdb": "passwd-file:" + users,
        "mail_location": "maildir:~/Maildir",
        "mailbox_size_limit": "0",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "service_throttle_time": "1s",
    }
    if os.environ.get("ASAN_OPTIONS"):
        params["import_environment"] = ("FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS "
                                        "UBSAN_OPTIONS")
    instance.configure(params=params, services=[
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n"),
        fh.service_line("anvil", "unix", "anvil", maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("local", "unix", "smtp"),
        fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
        fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
    ])
    instance.start()
    return port, vmail


def mailbox_ids(vmail, user):
    """Message-IDs of the files in user's new/ (a list: duplicates show)."""
    d = os.path.join(vmail, user, "Maildir", "new")
    out = []
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        try:
            with open(os.path.join(d, name), "rb") as f:
                m = re.search(rb"^Message-ID: <([^>]+)>", f.read(), re.M)
        except FileNotFoundError:
            continue
        out.append(m.group(1).decode() if m else "?")
    return out


def queue_empty(instance):
    for sub in ("incoming", "active", "deferred"):
        d = os.path.join(instance.queue, sub)
        for _, _, files in os.walk(d):
            if files:
                return False
    return True


def test_kill_9_during_delivery_loses_nothing_duplicates_nothing(instance):
    port, vmail = start_chain(instance)
    rng = random.Random(4242)
    sent = []
    body = "".join("line %d of a message long enough to take a moment\r\n" % i
                   for i in range(400))

    def send_all():
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for i in range(MESSAGES):
                mid = "e2e-%d@src.example" % i
                s.sendmail("sender@src.example", ["%s@%s" % (u, DOMAIN) for u in USERS],
                           "From: sender@src.example\r\nSubject: kill %d\r\n"
                           "Message-ID: <%s>\r\n\r\n%s" % (i, mid, body))
                sent.append(mid)

    sender = threading.Thread(target=send_all)
    sender.start()
    # Kill lmtpd and LMTP client processes at random while mail flows.
    kills = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (sender.is_alive() or not queue_empty(instance)):
        time.sleep(rng.uniform(0.005, 0.05))
        victims = instance.service_pids("lmtpd") + instance.service_pids("smtp")
        if victims:
            try:
                os.kill(rng.choice(victims), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    sender.join(60)
    assert len(sent) == MESSAGES
    # Then let the retries finish undisturbed.
    fh.wait_until(lambda: queue_empty(instance), 90, "the queue to empty after the kills")
    for u in USERS:
        ids = mailbox_ids(vmail, u)
        assert sorted(ids) == sorted(sent), (u, len(ids), kills,
                                             sorted(set(ids) ^ set(sent)),
                                             [x for x in set(ids) if ids.count(x) > 1])
    assert kills > 0
