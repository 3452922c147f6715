"""test_smtp_client_e2e.py - the whole outbound path: smtpd -> queue ->
qmgr -> smtp -> a remote MX (Postfix's smtp-sink), in one instance.

Mail for ok.example is routed by MX (local unbound) to smtp-sink through
transport_maps (smtp:ok.example:PORT keeps the MX lookup and sets the
port).  The kill -9 test sends a batch while the sink holds every DATA
reply for a second and kills the smtp processes repeatedly: every message
must arrive, none twice, and the queue must end empty.
"""

import os
import re
import signal
import smtplib
import time

import facteur_harness as fh
from conftest import require_daemon
from smtp_client_fixture import SmtpSink
from test_smtp_client import unbound  # noqa: F401 (fixture)


def start_chain(make_instance, unbound, sink_port):  # noqa: F811
    require_daemon("master", "smtpd", "qmgr", "smtp", "anvil")
    inst = make_instance("e2e")
    port = fh.free_port()
    params = {
        "smtp_dns_resolver_address": unbound.address,
        "transport_maps": "inline:{ ok.example=smtp:ok.example:%d }" % sink_port,
        "mynetworks": "127.0.0.0/8",
        "mydestination": "localhost",
        "alias_maps": "",
        "local_recipient_maps": "",
        "smtpd_peername_lookup": "no",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
        "smtp_connect_timeout": "5s",
        "smtp_tls_security_level": "none",
    }
    if os.environ.get("ASAN_OPTIONS"):
        params["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    inst.configure(params, [
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n"),
        fh.service_line("anvil", "unix", "anvil", maxproc=1),
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=1, maxproc=1),
        fh.service_line("smtp", "unix", "smtp"),
    ])
    inst.start()
    return inst, port


def send(port, n, tag):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        for i in range(n):
            c.sendmail("sender@src.example", ["rcpt@ok.example"],
                       "From: sender@src.example\r\nTo: rcpt@ok.example\r\n"
                       "Subject: %s-%d\r\n\r\nbody %d\r\n" % (tag, i, i))


def subjects(sink):
    out = []
    for m in sink.messages():
        found = re.search(rb"^Subject: (\S+)", m, re.M)
        if found:
            out.append(found.group(1).decode())
    return sorted(out)


def queue_empty(inst):
    for q in ("incoming", "active", "deferred"):
        d = os.path.join(inst.queue, q)
        for root, _, files in os.walk(d):
            if any(not f.startswith(".") for f in files):
                return False
    return True


def test_smtpd_qmgr_smtp_to_sink(make_instance, unbound, tmp_path):  # noqa: F811
    sink_port = fh.free_port()
    sink = SmtpSink(sink_port, str(tmp_path / "dump"))
    try:
        inst, port = start_chain(make_instance, unbound, sink_port)
        send(port, 3, "e2e")
        fh.wait_until(lambda: len(sink.messages()) >= 3, 30, "3 messages at the sink")
        assert subjects(sink) == ["e2e-0", "e2e-1", "e2e-2"]
        inst.wait_for_log(r"facteur/smtp\[\d+\]: \w+: to=<rcpt@ok\.example>, "
                          r"relay=mx1\.ok\.example\[127\.0\.0\.1\]:%d, .*status=sent" % sink_port,
                          count=3)
        fh.wait_until(lambda: queue_empty(inst), 20, "the queue to empty")
    finally:
        sink.stop()


def test_kill9_smtp_during_a_run(make_instance, unbound, tmp_path):  # noqa: F811
    sink_port = fh.free_port()
    # -w 1: the sink waits a second before its 354, so kills land
    # mid-transaction, before the message is complete.
    sink = SmtpSink(sink_port, str(tmp_path / "dump"), ["-w", "1"])
    try:
        inst, port = start_chain(make_instance, unbound, sink_port)
        n = 12
        send(port, n, "k9")
        kills = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and kills < 6:
            pids = inst.service_pids("smtp")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.7)
        assert kills > 0, "no smtp process was seen to kill"
        fh.wait_until(lambda: len(sink.messages()) >= n and queue_empty(inst), 120,
                      "all %d messages delivered and the queue empty" % n)
        time.sleep(1)
        assert subjects(sink) == sorted("k9-%d" % i for i in range(n)), subjects(sink)
    finally:
        sink.stop()
