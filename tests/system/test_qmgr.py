"""qmgr system tests: a real master and qmgr, queue files written by the
test (qfile_py), and fake delivery agents on private/smtp and private/local
that speak contract 5 (lib/deliver_proto.h) over lib/attr.

The fake agent decides per recipient by its local part: "defer..." gets a
4xx, "bounce..." a 5xx, anything else 250; a domain in agent.down answers
as an unreachable site (every recipient deferred, throttle=1).  Like the
real agents it logs Postfix "to=" lines into the maillog, so pflogsumm can
report on the whole run.  It remembers every (queue ID, recipient index)
it delivered, which is how the tests see losses and duplicates.
"""

import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import facteur_harness as fh
import qfile_py as qp
from conftest import require_daemon, require_command


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master", "qmgr")


class FakeAgent:
    """A contract-5 delivery agent on a UNIX socket, one thread a connection."""

    def __init__(self, inst, name):
        self.inst = inst
        self.name = name
        self.path = inst.socket_path(name)
        self.requests = []          # request dicts, in arrival order
        self.delivered = {}         # (qid, index) -> count
        self.contents = {}          # qid -> queue file content (bytes)
        self.down = set()           # domains that act unreachable
        self.slow = {}              # domain -> seconds to wait before replying
        self.inflight = {}          # domain -> requests being served now
        self.peak = {}              # domain -> most requests served at once
        self.accept_all = False     # turn deferrals into successes
        self.delay = 0.0
        self.lock = threading.Lock()
        self.stopping = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock.bind(self.path)
        if fh.is_root():
            pw = pwd.getpwnam(inst.mail_owner)
            os.chown(self.path, pw.pw_uid, pw.pw_gid)
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _log(self, qid, rcpt, relay, dsn, status, text):
        stamp = time.strftime("%b %e %H:%M:%S")
        line = "%s localhost facteur/%s[%d]: %s: to=<%s>, relay=%s, delay=0.1, " \
               "delays=0/0/0/0.1, dsn=%s, status=%s (%s)\n" % (
                   stamp, self.name, os.getpid(), qid, rcpt, relay, dsn, status, text)
        with open(self.inst.maillog, "a") as f:
            f.write(line)

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        req = None
        try:
            while req is None:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                req, _ = fh.attr_decode(buf)
            qid = req["qid"]
            try:
                with open(os.path.join(self.inst.queue, req["path"]), "rb") as f:
                    pass
                parsed = qp.read_queue_file(os.path.join(self.inst.queue, req["path"]))
                content = parsed["content"]
            except OSError:
                content = None
            n = req["nrcpt"]
            domain = req["rcpt_0"].rpartition("@")[2]
            with self.lock:
                self.inflight[domain] = self.inflight.get(domain, 0) + 1
                self.peak[domain] = max(self.peak.get(domain, 0), self.inflight[domain])
            if self.delay or domain in self.slow:
                time.sleep(self.slow.get(domain, self.delay))
            with self.lock:
                self.inflight[domain] -= 1
            reply = [("relay", "%s[127.0.0.1]:25" % req["nexthop"]), ("throttle", 0),
                     ("nrcpt", n)]
            with self.lock:
                self.requests.append(req)
                if content is not None:
                    self.contents[qid] = content
                if domain in self.down:
                    reply = [("relay", "none"), ("throttle", 1), ("nrcpt", n)]
                    for i in range(n):
                        reply += [("status_%d" % i, 4), ("dsn_%d" % i, "4.4.1"),
                                  ("reply_%d" % i, "connect to %s: Connection refused" % domain)]
                        self._log(qid, req["rcpt_%d" % i], "none", "4.4.1", "deferred",
                                  "connect to %s: Connection refused" % domain)
                else:
                    for i in range(n):
                        rcpt = req["rcpt_%d" % i]
                        local = rcpt.partition("@")[0]
                        if local.startswith("defer") and not self.accept_all:
                            st, dsn, text = 4, "4.4.1", "451 4.4.1 try again later"
                        elif local.startswith("bounce"):
                            st, dsn, text = 5, "5.1.1", "550 5.1.1 <%s>: no such user" % rcpt
                        else:
                            st, dsn, text = 0, "2.0.0", "250 2.0.0 Ok: queued"
                            key = (qid, req["rcpt_%d_index" % i])
                            self.delivered[key] = self.delivered.get(key, 0) + 1
                        reply += [("status_%d" % i, st), ("dsn_%d" % i, dsn),
                                  ("reply_%d" % i, text)]
                        self._log(qid, rcpt, "%s[127.0.0.1]:25" % req["nexthop"], dsn,
                                  {0: "sent", 4: "deferred", 5: "bounced"}[st], text)
            conn.sendall(fh.attr_encode(reply))
        except (OSError, ValueError, KeyError):
            return
        finally:
            conn.close()

    def rcpts_seen(self):
        with self.lock:
            return [r["rcpt_%d" % i] for r in self.requests for i in range(r["nrcpt"])]


def qmgr_instance(inst, params=None):
    p = {
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "mydestination": "localhost",
        "relay_domains": "",
        "alias_maps": "",
        "bounce_notice_recipient": "postmaster",
        "myorigin": "localhost",
    }
    if os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"):
        # Sanitizer builds: let the reports reach qmgr.
        p["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    p.update(params or {})
    inst.configure(params=p, services=[fh.service_line("qmgr", "unix", "qmgr", private="n",
                                                       wakeup=60, maxproc=1)])
    inst.facteur_check()
    agents = {"smtp": FakeAgent(inst, "smtp"), "local": FakeAgent(inst, "local")}
    inst.start()
    return agents


def trigger(inst, msg=b"I"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(inst.socket_path("qmgr", private=False))
        s.sendall(msg)
    finally:
        s.close()


def queue_msg(inst, sender, rcpts, body=None, **kw):
    body = body or "From: %s\nSubject: test\nMessage-ID: <t@x>\n\nhello\n" % (sender or "x@y")
    if fh.is_root():
        pw = pwd.getpwnam(inst.mail_owner)
        kw["owner"] = (pw.pw_uid, pw.pw_gid)
    return qp.write_queue_file(inst.queue, sender, rcpts, body, **kw)


def empty_queues(inst):
    return all(not qp.list_queue(inst.queue, q) for q in ("incoming", "active", "deferred"))


def close_agents(agents):
    for a in agents.values():
        a.close()


def pflogsumm_counts(inst):
    r = subprocess.run(["pflogsumm", "--syslog-name=facteur", inst.maillog],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    counts = {}
    for word in ("received", "delivered", "forwarded", "deferred", "bounced"):
        m = re.search(r"^\s+(\d+)\s+%s" % word, r.stdout, re.M)
        counts[word] = int(m.group(1)) if m else None
    return counts, r.stdout


def test_deliver_batch_and_remove(instance):
    agents = qmgr_instance(instance)
    try:
        q1 = queue_msg(instance, "alice@example.org", ["a@remote.example", "b@remote.example"])
        q2 = queue_msg(instance, "", ["c@other.example"])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % q1)
        instance.wait_for_log(r"%s: removed" % q2)
        assert instance.log_lines(r"%s: from=<alice@example.org>, size=\d+, nrcpt=2 "
                                  r"\(queue active\)" % q1)
        reqs = {r["qid"]: r for r in agents["smtp"].requests}
        # Two recipients for one destination travel in one request.
        assert reqs[q1]["nrcpt"] == 2
        assert reqs[q1]["path"] == "active/" + q1
        assert reqs[q1]["nexthop"] == "remote.example"
        assert reqs[q1]["transport"] == "smtp"
        assert reqs[q1]["sender"] == "alice@example.org"
        assert reqs[q2]["sender"] == ""
        assert reqs[q1]["arrival_us"] <= reqs[q1]["active_us"]
        assert empty_queues(instance)
    finally:
        close_agents(agents)


def test_defer_backoff_then_retry(instance):
    agents = qmgr_instance(instance, {"minimal_backoff_time": "2s"})
    try:
        qid = queue_msg(instance, "alice@example.org", ["ok@remote.example",
                                                         "defer@remote.example"])
        trigger(instance)
        wait_deferred = lambda: qid in qp.list_queue(instance.queue, "deferred")
        fh.wait_until(wait_deferred, 10, "the message in deferred/")
        path = os.path.join(instance.queue, "deferred", qid)
        # Retry time in the future; the delivered recipient is marked done.
        assert os.stat(path).st_mtime > time.time()
        q = qp.read_queue_file(path)
        assert [r[1] for r in q["rcpts"]] == ["S", "T"]
        with open(os.path.join(instance.queue, "defer", qid)) as f:
            assert f.read() == ("recipient=defer@remote.example "
                                "reason=451 4.4.1 try again later\n")
        agents["smtp"].accept_all = True
        instance.wait_for_log(r"%s: removed" % qid, timeout=15)
        # ok@ was delivered once only: the retry carried the other one alone.
        assert agents["smtp"].rcpts_seen().count("ok@remote.example") == 1
        assert agents["smtp"].rcpts_seen().count("defer@remote.example") == 2
        assert not os.path.exists(os.path.join(instance.queue, "defer", qid))
        counts, out = pflogsumm_counts(instance)
        assert counts["delivered"] == 2, out
        assert counts["deferred"] == 1, out
    finally:
        close_agents(agents)


def dsn_for(agent, rcpt):
    """Content of the first message the agent saw for rcpt."""
    with agent.lock:
        for r in agent.requests:
            if r["rcpt_0"] == rcpt and r["qid"] in agent.contents:
                return r, agent.contents[r["qid"]].decode("utf-8", "replace")
    return None


def test_bounce_dsn_and_double_bounce(instance):
    agents = qmgr_instance(instance)
    try:
        qid = queue_msg(instance, "alice@example.org",
                        [("bounce@remote.example", "rfc822;orig@remote.example",
                          qp.NOTIFY_FAILURE), "ok@remote.example"], envid="E123")
        trigger(instance)
        instance.wait_for_log(r"%s: sender non-delivery notification: (\w+)" % qid)
        instance.wait_for_log(r"%s: removed" % qid)
        got = fh.wait_until(lambda: dsn_for(agents["smtp"], "alice@example.org"), 10,
                            "the bounce delivered to the sender")
        req, text = got
        assert req["sender"] == ""
        for needle in ("Subject: Undelivered Mail Returned to Sender",
                       "Content-Type: multipart/report; report-type=delivery-status",
                       "Content-Type: message/delivery-status",
                       "Final-Recipient: rfc822; bounce@remote.example",
                       "Original-Recipient: rfc822; orig@remote.example",
                       "Original-Envelope-Id: E123",
                       "Action: failed", "Status: 5.1.1",
                       "Diagnostic-Code: smtp; 550 5.1.1 <bounce@remote.example>: no such user",
                       "Content-Type: message/rfc822", "Subject: test"):
            assert needle in text, needle
        assert "ok@remote.example" not in text.split("message/delivery-status")[1].split(
            "message/rfc822")[0]
        # A bounce that bounces goes to postmaster from double-bounce@...
        q2 = queue_msg(instance, "", ["bounce2@remote.example"])
        trigger(instance)
        instance.wait_for_log(r"%s: sender non-delivery notification" % q2)
        req2, _ = fh.wait_until(lambda: dsn_for(agents["local"], "postmaster@localhost"), 10,
                                "the double bounce to postmaster")
        assert req2["sender"] == "double-bounce@localhost"
        # ... and a double bounce that bounces is dropped.
        q3 = queue_msg(instance, "double-bounce@localhost", ["bounce3@remote.example"])
        trigger(instance)
        instance.wait_for_log(r"%s: no notification for a failed double bounce" % q3)
        instance.wait_for_log(r"%s: removed" % q3)
        fh.wait_until(lambda: empty_queues(instance), 10, "empty queues")
        counts, out = pflogsumm_counts(instance)
        assert counts["bounced"] == 3, out
    finally:
        close_agents(agents)


def test_expired_message_bounces(instance):
    agents = qmgr_instance(instance, {"maximal_queue_lifetime": "1d"})
    try:
        qid = queue_msg(instance, "alice@example.org", ["defer-forever@remote.example"],
                        arrival=time.time() - 2 * 86400)
        trigger(instance)
        instance.wait_for_log(r"%s: to=<defer-forever@remote.example>, relay=[^,]+, "
                              r"delay=[\d.]+, delays=[\d./]+, dsn=4\.4\.1, "
                              r"status=expired, returned to sender" % qid)
        instance.wait_for_log(r"%s: removed" % qid)
        _, text = fh.wait_until(lambda: dsn_for(agents["smtp"], "alice@example.org"), 10,
                                "the expiry bounce")
        assert "Status: 4.4.1" in text and "Action: failed" in text
    finally:
        close_agents(agents)


def test_aliases_and_virtual_aliases(instance):
    aliases = instance.write_file("etc/aliases",
                                  "team alice, bob@remote.example\n"
                                  "prog \"|/bin/cat\"\n"
                                  "listed :include:%s/etc/list\n" % instance.dir)
    instance.write_file("etc/list", "carol\n# comment\ndave@remote.example\n")
    agents = qmgr_instance(instance, {
        "alias_maps": "texthash:" + aliases,
        "virtual_alias_maps": "inline:{ {info@virt.example = erin@remote.example},"
                              " {@catch.example = frank} }",
        "allow_mail_to_commands": "",
    })
    try:
        q1 = queue_msg(instance, "s@example.org", ["team@localhost"])
        q2 = queue_msg(instance, "s@example.org", ["info@virt.example", "x@catch.example"])
        q3 = queue_msg(instance, "s@example.org", ["prog@localhost"])
        q4 = queue_msg(instance, "s@example.org", ["listed@localhost"])
        trigger(instance)
        m = instance.wait_for_log(r"%s: to=<team@localhost>, relay=none, .*status=sent "
                                  r"\(forwarded as (\w+)\)" % q1)
        fwd = m.group(1)
        instance.wait_for_log(r"%s: removed" % fwd)
        # The expansion went on as a new message, each target to its transport.
        lm = [r for r in agents["local"].requests if r["qid"] == fwd]
        sm = [r for r in agents["smtp"].requests if r["qid"] == fwd]
        assert [r["rcpt_0"] for r in lm] == ["alice@localhost"]
        assert lm[0]["nexthop"] == "unix:private/lmtp"
        assert [r["rcpt_0"] for r in sm] == ["bob@remote.example"]
        assert sm[0]["rcpt_0_orcpt"] == "rfc822;team@localhost"
        # Virtual aliases: one-to-one rewrites keep the original recipient slot.
        instance.wait_for_log(r"%s: removed" % q2)
        seen = [(r["rcpt_%d" % i], r["rcpt_%d_index" % i]) for r in agents["smtp"].requests +
                agents["local"].requests if r["qid"] == q2 for i in range(r["nrcpt"])]
        assert sorted(seen) == [("erin@remote.example", 0), ("frank@localhost", 1)]
        # A pipe when allow_mail_to_commands forbids it: bounced, 5.7.1.
        instance.wait_for_log(r"%s: to=<prog@localhost>, relay=none, .*dsn=5\.7\.1, "
                              r"status=bounced \(mail to command is restricted\)" % q3)
        m = instance.wait_for_log(r"%s: to=<listed@localhost>, .*forwarded as (\w+)" % q4)
        instance.wait_for_log(r"%s: removed" % m.group(1))
        got = sorted(agents["smtp"].rcpts_seen() + agents["local"].rcpts_seen())
        assert "carol@localhost" in got and "dave@remote.example" in got
    finally:
        close_agents(agents)


def test_pipe_targets_go_to_the_pipe_transport(instance):
    aliases = instance.write_file("etc/aliases",
                                  "prog \"|/bin/cat -u\"\n"
                                  "deferprog \"|/bin/false\"\n"
                                  "bounceprog /var/tmp/x.mbox\n"
                                  "mixed alice, \"|/bin/true\"\n")
    agents = qmgr_instance(instance, {"alias_maps": "texthash:" + aliases,
                                      "allow_mail_to_commands": "alias",
                                      "allow_mail_to_files": "alias"})
    agents["pipe"] = FakeAgent(instance, "pipe")
    if fh.is_root():
        # A root-owned alias file: the default_privs user's rights.
        pw = pwd.getpwnam("nobody")
    else:
        pw = pwd.getpwuid(os.getuid())
    try:
        q1 = queue_msg(instance, "s@example.org", ["prog@localhost"])
        q2 = queue_msg(instance, "s@example.org", ["deferprog@localhost"])
        q3 = queue_msg(instance, "s@example.org", ["bounceprog@localhost"])
        q4 = queue_msg(instance, "s@example.org", ["mixed@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % q1)
        reqs = {r["qid"]: r for r in agents["pipe"].requests}
        # One request per target, naming the alias (DSNs and logs say it).
        assert reqs[q1]["transport"] == "pipe"
        assert reqs[q1]["rcpt_0"] == "prog@localhost"
        assert reqs[q1]["rcpt_0_target"] == "|/bin/cat -u"
        assert reqs[q1]["rcpt_0_uid"] == pw.pw_uid and reqs[q1]["rcpt_0_uid"] != 0
        assert reqs[q1]["rcpt_0_gid"] == pw.pw_gid
        # The agent deferred the command: the recipient waits, whole.
        fh.wait_until(lambda: q2 in qp.list_queue(instance.queue, "deferred"), 10,
                      "the deferred pipe message in deferred/")
        # The agent bounced the file delivery: a DSN, the message is gone.
        instance.wait_for_log(r"%s: removed" % q3)
        assert reqs[q3]["rcpt_0_target"] == "/var/tmp/x.mbox"
        instance.wait_for_log(r"%s: sender non-delivery notification" % q3)
        # Mixed: the command ran from this message, the address is forwarded.
        m = instance.wait_for_log(r"%s: to=<mixed@localhost>, .*forwarded as (\w+)" % q4)
        instance.wait_for_log(r"%s: removed" % m.group(1))
        assert reqs[q4]["rcpt_0_target"] == "|/bin/true"
        assert "alice@localhost" in agents["local"].rcpts_seen()
        assert all("rcpt_0_target" not in r for r in agents["local"].requests)
    finally:
        close_agents(agents)


def test_dead_destination_is_not_hammered(instance):
    agents = qmgr_instance(instance, {"smtp_destination_concurrency_limit": "1"})
    agents["smtp"].down.add("down.example")
    try:
        qids = [queue_msg(instance, "s@example.org", ["u%d@down.example" % i])
                for i in range(10)]
        ok = queue_msg(instance, "s@example.org", ["fine@up.example"])
        trigger(instance)
        instance.wait_for_log(r"destination down\.example marked dead")
        instance.wait_for_log(r"%s: removed" % ok)
        for q in qids:
            instance.wait_for_log(r"%s: to=<[^>]+>, .*status=deferred" % q)
        down = [r for r in agents["smtp"].requests if r["nexthop"] == "down.example"]
        # Three failed attempts mark it dead; the rest wait without a try.
        assert len(down) <= 4, len(down)
        assert instance.log_lines(r"status=deferred \(delivery temporarily suspended: "
                                  r"connect to down\.example: Connection refused\)")
    finally:
        close_agents(agents)


def test_kill9_loses_nothing(instance):
    agents = qmgr_instance(instance, {"default_destination_recipient_limit": "2",
                                      "default_destination_concurrency_limit": "2"})
    agents["smtp"].delay = 0.005
    try:
        expected = set()
        for i in range(150):
            rcpts = ["r%d@d%d.example" % (j, i % 7) for j in range(3)]
            qid = queue_msg(instance, "s@example.org", rcpts)
            expected |= {(qid, j) for j in range(3)}
        trigger(instance)
        kills = 0
        deadline = time.monotonic() + 60
        while kills < 3 and time.monotonic() < deadline:
            n = len(agents["smtp"].delivered)
            if n >= 60 * (kills + 1):
                pid = instance.wait_service_pid("qmgr")
                os.kill(pid, signal.SIGKILL)
                kills += 1
                instance.wait_service_pid("qmgr", timeout=20, exclude=(pid,))
                trigger(instance)
            time.sleep(0.01)
        assert kills >= 1

        def done():
            if empty_queues(instance):
                return True
            try:
                trigger(instance, b"A")
            except OSError:
                pass
            return False
        fh.wait_until(done, 60, "every message delivered", interval=0.5)
        delivered = agents["smtp"].delivered
        assert set(delivered) == expected                   # nothing lost
        repeats = sum(c - 1 for c in delivered.values())
        # A repeat needs a kill between the agent's reply and the done mark:
        # at most what was in flight at each kill, 7 destinations with 2
        # requests of 2 recipients each.
        assert repeats <= kills * 7 * 2 * 2, repeats
    finally:
        close_agents(agents)


def test_delay_warning_once(instance):
    agents = qmgr_instance(instance, {"delay_warning_time": "5s"})
    try:
        qid = queue_msg(instance, "alice@example.org",
                        ["defer-a@remote.example",
                         ("defer-b@remote.example", "", qp.NOTIFY_FAILURE)],
                        arrival=time.time() - 60)
        trigger(instance)
        instance.wait_for_log(r"%s: sender delay notification: \w+" % qid)
        _, text = fh.wait_until(lambda: dsn_for(agents["smtp"], "alice@example.org"), 10,
                                "the delay warning")
        assert "Subject: Delayed Mail (still being retried)" in text
        assert "Action: delayed" in text and "Will-Retry-Until:" in text
        assert "Final-Recipient: rfc822; defer-a@remote.example" in text
        # NOTIFY=FAILURE only: no delay warning for that one.
        assert "defer-b@remote.example" not in text.split("message/delivery-status")[1]
        # Retried at least twice more, never warned again.
        instance.wait_for_log(r"%s: from=<" % qid, count=3, timeout=20)
        assert len(instance.log_lines(r"%s: sender delay notification" % qid)) == 1
    finally:
        close_agents(agents)


def test_notify_success_and_never(instance):
    agents = qmgr_instance(instance)
    try:
        qid = queue_msg(instance, "alice@example.org",
                        [("ok@remote.example", "rfc822;ok@remote.example", qp.NOTIFY_SUCCESS),
                         ("bounce-quiet@remote.example", "", qp.NOTIFY_NEVER)])
        trigger(instance)
        instance.wait_for_log(r"%s: sender delivery status notification: \w+" % qid)
        instance.wait_for_log(r"%s: removed" % qid)
        _, text = fh.wait_until(lambda: dsn_for(agents["smtp"], "alice@example.org"), 10,
                                "the success report")
        assert "Subject: Successful Mail Delivery Report" in text
        assert "Action: delivered" in text and "Final-Recipient: rfc822; ok@remote.example" in text
        # NOTIFY=NEVER: bounced without a notification.
        assert not instance.log_lines(r"%s: sender non-delivery notification" % qid)
        assert instance.log_lines(r"%s: to=<bounce-quiet@remote\.example>, .*status=bounced" % qid)
    finally:
        close_agents(agents)


def test_slow_destination_does_not_starve_others(instance):
    agents = qmgr_instance(instance, {"smtp_destination_concurrency_limit": "2"})
    agents["smtp"].slow["slow.example"] = 3.0
    try:
        slow = [queue_msg(instance, "s@example.org", ["u%d@slow.example" % i]) for i in range(8)]
        trigger(instance)
        fh.wait_until(lambda: agents["smtp"].inflight.get("slow.example", 0) == 2, 10,
                      "two deliveries to the slow destination in flight")
        start = time.monotonic()
        fast = queue_msg(instance, "s@example.org", ["v@fast.example"])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % fast, timeout=10)
        assert time.monotonic() - start < 2.5
        for q in slow:
            instance.wait_for_log(r"%s: removed" % q, timeout=30)
        # The slow destination never had more than its limit in flight.
        assert agents["smtp"].peak["slow.example"] == 2
    finally:
        close_agents(agents)


def test_active_queue_is_bounded(instance):
    agents = qmgr_instance(instance, {"qmgr_message_active_limit": "3"})
    agents["smtp"].delay = 0.2
    try:
        qids = [queue_msg(instance, "s@example.org", ["u%d@d%d.example" % (i, i)])
                for i in range(10)]
        trigger(instance)
        peak = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not empty_queues(instance):
            peak = max(peak, len(qp.list_queue(instance.queue, "active")))
            time.sleep(0.02)
        assert empty_queues(instance)
        assert 1 <= peak <= 3, peak
        for q in qids:
            assert instance.log_lines(r"%s: removed" % q)
    finally:
        close_agents(agents)


def test_corrupt_file_and_missing_transport(instance):
    agents = qmgr_instance(instance, {
        "transport_maps": "inline:{ {nowhere.example = nosuch:} }"})
    try:
        bad = qp.make_qid(int(time.time()), 1, 12345)
        path = os.path.join(instance.queue, "incoming", bad)
        with open(path, "wb") as f:
            f.write(b"V\0\0\0\x0ffacteur-queue 1T\0\0\0\x01x")
        if fh.is_root():
            pw = pwd.getpwnam(instance.mail_owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        qid = queue_msg(instance, "s@example.org", ["u@nowhere.example"])
        trigger(instance)
        instance.wait_for_log(r"warning: %s: corrupt queue file, moved to corrupt/" % bad)
        assert os.path.exists(os.path.join(instance.queue, "corrupt", bad))
        instance.wait_for_log(r"%s: to=<u@nowhere\.example>, relay=none, .*status=deferred "
                              r"\(mail transport unavailable\)" % qid)
        fh.wait_until(lambda: qid in qp.list_queue(instance.queue, "deferred"), 10,
                      "the message in deferred/")
    finally:
        close_agents(agents)


def test_expiry_also_when_the_destination_is_dead(instance):
    agents = qmgr_instance(instance, {"maximal_queue_lifetime": "1d",
                                      "smtp_destination_concurrency_limit": "1"})
    agents["smtp"].down.add("down.example")
    try:
        qids = [queue_msg(instance, "s@example.org", ["u%d@down.example" % i],
                          arrival=time.time() - 2 * 86400) for i in range(6)]
        trigger(instance)
        for q in qids:
            instance.wait_for_log(r"%s: to=<u\d@down\.example>, .*status=expired, "
                                  r"returned to sender" % q)
            instance.wait_for_log(r"%s: removed" % q)
        assert instance.log_lines(r"status=expired, returned to sender \(delivery temporarily "
                                  r"suspended")
        assert len([r for r in agents["smtp"].requests if r["nexthop"] == "down.example"]) <= 4
    finally:
        close_agents(agents)


def test_expansion_with_a_failed_part(instance):
    aliases = instance.write_file("etc/aliases", "mixed good, \"|/bin/cat\"\n")
    agents = qmgr_instance(instance, {"alias_maps": "texthash:" + aliases,
                                      "allow_mail_to_commands": ""})
    try:
        qid = queue_msg(instance, "s@example.org", ["mixed@localhost"])
        trigger(instance)
        m = instance.wait_for_log(r"%s: to=<mixed@localhost>, .*forwarded as (\w+)" % qid)
        instance.wait_for_log(r"%s: removed" % m.group(1))
        instance.wait_for_log(r"%s: to=</bin/cat>, orig_to=<mixed@localhost>, relay=none, "
                              r".*dsn=5\.7\.1, status=bounced" % qid)
        instance.wait_for_log(r"%s: sender non-delivery notification" % qid)
        _, text = fh.wait_until(lambda: dsn_for(agents["smtp"], "s@example.org"), 10,
                                "the notice about the refused command")
        assert "Final-Recipient: rfc822; /bin/cat" in text and "Status: 5.7.1" in text
        assert "good@localhost" in agents["local"].rcpts_seen()
    finally:
        close_agents(agents)
