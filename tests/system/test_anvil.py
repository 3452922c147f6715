"""anvil: connection counts and rates shared by smtpd processes.

Each test starts an instance whose only service is anvil on private/anvil
and speaks lib/attr messages to it over AF_UNIX, as lib/anvil_client does.
"""

import os
import socket
import time

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon

IDENT = "smtp:192.0.2.1"


@pytest.fixture
def anvil(instance):
    """A started instance with anvil; returns a function making clients."""
    require_command("facteur")
    require_daemon("master", "anvil")
    instance.configure(params={"anvil_rate_time_unit": "60s"},
                       services=[fh.service_line("anvil", "unix", "anvil", maxproc=1)])
    instance.start()
    return lambda: fh.AttrClient(instance.socket_path("anvil"))


def start_anvil(instance, **params):
    require_command("facteur")
    require_daemon("master", "anvil")
    instance.configure(params=params,
                       services=[fh.service_line("anvil", "unix", "anvil", maxproc=1)])
    instance.start()
    return lambda: fh.AttrClient(instance.socket_path("anvil"))


def req(client, request, ident=IDENT):
    reply = client.request([("request", request), ("ident", ident)])
    assert reply is not None, "anvil closed the connection on %s" % request
    return reply


def test_connect_disconnect_counts(anvil):
    with anvil() as c:
        assert req(c, "connect") == {"status": 0, "count": 1, "rate": 1}
        assert req(c, "connect") == {"status": 0, "count": 2, "rate": 2}
        assert req(c, "lookup") == {"status": 0, "count": 2, "rate": 2, "message_rate": 0,
                                    "recipient_rate": 0}
        assert req(c, "disconnect") == {"status": 0}
        assert req(c, "lookup")["count"] == 1
        # The rate remembers connections that are already closed.
        assert req(c, "lookup")["rate"] == 2
        # Other clients and other services are counted apart.
        assert req(c, "connect", "smtp:192.0.2.2") == {"status": 0, "count": 1, "rate": 1}
        assert req(c, "connect", "submission:192.0.2.1")["count"] == 1
        assert req(c, "lookup")["count"] == 1
        # A disconnect with nothing open does not go below zero.
        req(c, "disconnect", "smtp:192.0.2.9")
        assert req(c, "lookup", "smtp:192.0.2.9")["count"] == 0


def test_message_and_recipient_rates(anvil):
    with anvil() as c:
        for i in range(1, 4):
            assert req(c, "message") == {"status": 0, "rate": i}
        for i in range(1, 6):
            assert req(c, "recipient") == {"status": 0, "rate": i}
        r = req(c, "lookup")
        assert (r["message_rate"], r["recipient_rate"], r["count"]) == (3, 5, 0)


def test_counts_are_shared_between_clients(anvil):
    with anvil() as a, anvil() as b:
        req(a, "connect")
        req(b, "connect")
        assert req(a, "lookup")["count"] == 2
        assert req(b, "lookup")["count"] == 2


def test_a_client_that_goes_away_closes_its_connections(anvil):
    with anvil() as watcher:
        a = anvil()
        req(a, "connect")
        req(a, "connect")
        req(a, "connect", "smtp:192.0.2.3")
        assert req(watcher, "lookup")["count"] == 2
        a.close()       # an smtpd that died without saying disconnect
        fh.wait_until(lambda: req(watcher, "lookup")["count"] == 0, 5,
                      "anvil to drop the dead client's connections")
        assert req(watcher, "lookup", "smtp:192.0.2.3")["count"] == 0


def test_pipelined_requests_are_answered_in_order(anvil):
    with anvil() as c:
        c.send_raw(b"".join(fh.attr_encode([("request", r), ("ident", IDENT)])
                            for r in ("connect", "connect", "message", "disconnect",
                                      "lookup")))
        replies = [c.recv() for _ in range(5)]
    assert replies == [{"status": 0, "count": 1, "rate": 1},
                       {"status": 0, "count": 2, "rate": 2},
                       {"status": 0, "rate": 1},
                       {"status": 0},
                       {"status": 0, "count": 1, "rate": 2, "message_rate": 1,
                        "recipient_rate": 0}]


@pytest.mark.parametrize("ident", ["no-colon", ":192.0.2.1", "smtp:", "smtp:192.0.2.1 x",
                                   "smtp:\x01", "s:" + "a" * 299],
                         ids=["no-colon", "no-service", "no-addr", "space", "control",
                              "301-bytes"])
def test_a_malformed_ident_is_refused_but_the_link_stays(anvil, ident):
    with anvil() as c:
        r = req(c, "connect", ident)
        assert r["status"] == 1
        assert req(c, "connect") == {"status": 0, "count": 1, "rate": 1}


@pytest.mark.parametrize("raw,why", [
    (fh.attr_encode([("request", "explode"), ("ident", IDENT)]), "unknown request"),
    (fh.attr_encode([("request", "connect")]), "malformed request"),
    (fh.attr_encode([("request", "connect"), ("ident", IDENT), ("extra", "x")]),
     "malformed request"),
    (fh.attr_encode([("request", 1), ("ident", IDENT)]), "malformed request"),
    (b"GET / HTTP/1.0\r\n\r\n", "malformed request"),
    (b"Srequest\0" + b"x" * 5000, "malformed request|longer than"),
    (fh.attr_encode([("request", "connect"), ("ident", "smtp:" + "a" * 400)]),
     "malformed request"),
], ids=["unknown-request", "missing-ident", "extra-attribute", "long-request", "http",
        "over-long-value", "over-long-ident"])
def test_a_malformed_request_drops_only_that_client(instance, raw, why):
    make = start_anvil(instance)
    mark = instance.log_mark()
    with make() as bad, make() as good:
        req(good, "connect")
        bad.send_raw(raw)
        assert bad.recv() is None       # anvil hung up on it
        instance.wait_for_log(r"facteur/anvil\[\d+\]: warning: client pid %d: (%s)"
                              % (os.getpid(), why), since=mark)
        assert req(good, "lookup")["count"] == 1
    with make() as again:
        assert req(again, "lookup")["count"] == 0


def test_rates_start_over_after_the_time_unit(instance):
    make = start_anvil(instance, anvil_rate_time_unit="2s")
    with make() as c:
        assert req(c, "connect")["rate"] == 1
        assert req(c, "message")["rate"] == 1
        assert req(c, "connect")["rate"] == 2
        time.sleep(2.3)
        r = req(c, "connect")
        assert (r["count"], r["rate"]) == (3, 1)
        assert req(c, "message")["rate"] == 1


def test_statistics_are_logged(instance):
    make = start_anvil(instance, anvil_status_update_time="1s")
    with make() as c:
        req(c, "connect")
        req(c, "connect")
        req(c, "recipient")
    instance.wait_for_log(r"facteur/anvil\[\d+\]: statistics: max connection count 2 "
                          r"for \(smtp:192\.0\.2\.1\)", timeout=5)
    instance.wait_for_log(r"statistics: max recipient rate 1/60s for \(smtp:192\.0\.2\.1\)",
                          timeout=5)


def test_anvil_survives_many_clients(anvil):
    clients = [anvil() for _ in range(50)]
    try:
        for i, c in enumerate(clients):
            assert req(c, "connect")["count"] == i + 1
    finally:
        for c in clients:
            c.close()
    with anvil() as c:
        fh.wait_until(lambda: req(c, "lookup")["count"] == 0, 5, "all 50 to be closed")


def test_socket_refuses_outsiders_as_root(anvil, instance):
    if not fh.is_root():
        pytest.skip("ownership of private/ is only set by root")
    st = os.stat(instance.socket_path("anvil"))
    import pwd
    assert st.st_uid == pwd.getpwnam(instance.mail_owner).pw_uid
    assert fh.file_mode(instance.socket_path("anvil")) & 0o077 == 0
    # A plain AF_UNIX stream socket, as the client library expects.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(instance.socket_path("anvil"))
    s.close()


def test_the_table_is_bounded(instance):
    """100000 idents with an open connection fill the table: a new ident is
    refused (status 1, so smtpd applies no limit), known ones still count."""
    import threading
    make = start_anvil(instance)
    total = 100000
    replies = []
    with make() as c:
        c.sock.settimeout(60)

        def reader():
            for _ in range(total + 2):
                replies.append(c.recv())

        t = threading.Thread(target=reader)
        t.start()
        batch = []
        for i in range(total):
            batch.append(fh.attr_encode([("request", "connect"),
                                         ("ident", "smtp:10.%d.%d.%d" % (i >> 16, (i >> 8) & 255,
                                                                          i & 255))]))
            if len(batch) == 1000:
                c.send_raw(b"".join(batch))
                batch = []
        c.send_raw(fh.attr_encode([("request", "connect"), ("ident", "smtp:192.0.2.250")]))
        c.send_raw(fh.attr_encode([("request", "connect"), ("ident", "smtp:10.0.0.7")]))
        t.join(90)
        assert not t.is_alive(), "anvil did not answer %d requests" % (total + 2)
    assert all(r == {"status": 0, "count": 1, "rate": 1} for r in replies[:total])
    assert replies[total]["status"] == 1
    assert replies[total + 1] == {"status": 0, "count": 2, "rate": 2}
    instance.wait_for_log(r"facteur/anvil\[\d+\]: warning: table full \(100000 idents\)")


def test_a_client_that_does_not_read_cannot_grow_anvil(instance):
    """Requests keep coming but replies are never read: anvil stops reading
    that client (its memory stays bounded) and still serves the others."""
    make = start_anvil(instance)
    with make() as greedy, make() as good:
        greedy.sock.setblocking(False)
        request = fh.attr_encode([("request", "lookup"), ("ident", IDENT)]) * 1000
        sent = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                sent += greedy.sock.send(request)
            except BlockingIOError:
                time.sleep(0.2)
                try:
                    sent += greedy.sock.send(request)
                except BlockingIOError:
                    break       # both directions are full: anvil stopped reading
        assert time.monotonic() < deadline, "anvil kept reading %d bytes" % sent
        assert req(good, "connect") == {"status": 0, "count": 1, "rate": 1}
        pid = instance.wait_service_pid("anvil")
        rss_kb = int(fh.proc_status(pid)["VmRSS"].split()[0])
        assert rss_kb < 64 * 1024, rss_kb
