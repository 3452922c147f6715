"""test_smtpd_limits.py - every smtpd limit: message_size_limit (SIZE and
counted DATA/BDAT bytes, 552 5.3.4), smtpd_recipient_limit (452 4.5.3),
command line length (500 5.5.0), smtpd_timeout (421 4.4.2 and "timeout
after"), smtpd_hard_error_limit (421 4.7.0 and "too many errors after"),
smtpd_soft_error_limit with smtpd_error_sleep_time, and the anvil-backed
connection count, connection rate, message rate and recipient rate
limits."""

import time

from test_smtpd_common import Dialog, queue_names, start_smtpd, wait_messages


def session(port):
    d = Dialog(port)
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    return d


def test_message_size_limit(instance):
    ports = start_smtpd(instance, params={"message_size_limit": "2000"})
    d = session(ports["smtp"])
    assert "SIZE 2000" in d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<a@remote.test> SIZE=2001", 552, r"5\.3\.4")
    d.cmd("MAIL FROM:<a@remote.test> SIZE=100", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40 + b".\r\n")
    d.expect(552, r"5\.3\.4")
    # The session goes on, in step: the body was read to its end.
    d.cmd("NOOP", 250)
    # BDAT announcing more than the limit ends the session without reading.
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.send(b"BDAT 5000 LAST\r\n")
    d.expect(552, r"5\.3\.4")
    assert d.closed()
    instance.wait_for_log(r"NOQUEUE: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: "
                          r"552 5\.3\.4|: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: "
                          r"552 5\.3\.4")
    assert queue_names(instance) == []


def test_recipient_limit(instance):
    ports = start_smtpd(instance, params={"smtpd_recipient_limit": "3"})
    d = session(ports["smtp"])
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    for i in range(3):
        d.cmd("RCPT TO:<u%d@example.test>" % i, 250)
    d.cmd("RCPT TO:<u9@example.test>", 452, r"4\.5\.3")
    d.cmd("DATA", 354)
    d.send("Subject: r\r\n\r\nx\r\n.\r\n")
    d.expect(250)
    d.cmd("QUIT", 221)
    (m,) = wait_messages(instance, 1)
    assert len(m.rcpts) == 3


def test_command_line_too_long(instance):
    ports = start_smtpd(instance, params={"line_length_limit": "1000"})
    d = session(ports["smtp"])
    d.cmd("NOOP " + "x" * 5000, 500, r"5\.5\.0")
    d.cmd("NOOP", 250)
    d.cmd("QUIT", 221)


def test_timeout(instance):
    ports = start_smtpd(instance, params={"smtpd_timeout": "2s"})
    d = session(ports["smtp"])
    d.send("MAIL FROM:<a@rem")      # a slow client that never finishes
    d.timeout = 10
    d.expect(421, r"4\.4\.2")
    assert d.closed()
    instance.wait_for_log(r"timeout after EHLO from unknown\[127\.0\.0\.1\]")


def test_timeout_during_data_and_lost_connection(instance):
    ports = start_smtpd(instance, params={"smtpd_timeout": "2s", "smtpd_min_data_rate": "0"})
    d = session(ports["smtp"])
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send("Subject: slow\r\n\r\npartial")
    d.timeout = 10
    d.expect(421, r"4\.4\.2")
    instance.wait_for_log(r"timeout after DATA from unknown\[127\.0\.0\.1\]")
    d2 = session(ports["smtp"])
    d2.cmd("MAIL FROM:<a@remote.test>", 250)
    d2.close()
    instance.wait_for_log(r"lost connection after MAIL from unknown\[127\.0\.0\.1\]")
    assert queue_names(instance) == []


def test_hard_and_soft_error_limits(instance):
    ports = start_smtpd(instance, params={"smtpd_hard_error_limit": "5",
                                          "smtpd_soft_error_limit": "3",
                                          "smtpd_error_sleep_time": "1s"})
    d = session(ports["smtp"])
    t0 = time.monotonic()
    for _ in range(4):
        d.cmd("BOGUS", 500, r"5\.5\.2")
    # Errors 3 and 4 each waited a second.
    assert time.monotonic() - t0 >= 1.8
    d.send("BOGUS\r\n")
    d.expect(500)
    d.expect(421, r"4\.7\.0")
    assert d.closed()
    instance.wait_for_log(r"too many errors after UNKNOWN from unknown\[127\.0\.0\.1\]")


def test_connection_count_limit(instance):
    ports = start_smtpd(instance, params={"smtpd_client_connection_count_limit": "2"})
    a = session(ports["smtp"])
    b = session(ports["smtp"])
    c = Dialog(ports["smtp"])
    c.expect(421, r"4\.7\.0 .*too many connections from 127\.0\.0\.1")
    assert c.closed()
    instance.wait_for_log(r"warning: Connection concurrency limit exceeded: 3 from "
                          r"unknown\[127\.0\.0\.1\] for service 127\.0\.0\.1:%d" % ports["smtp"])
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)
    a.closed()
    b.closed()
    instance.wait_for_log(r"disconnect from .* quit=1", count=2)
    d = session(ports["smtp"])
    d.cmd("QUIT", 221)


def test_connection_rate_limit(instance):
    ports = start_smtpd(instance, params={"smtpd_client_connection_rate_limit": "2",
                                          "anvil_rate_time_unit": "60s"})
    for _ in range(2):
        d = session(ports["smtp"])
        d.cmd("QUIT", 221)
        d.closed()
    d = Dialog(ports["smtp"])
    d.expect(421, r"4\.7\.0")
    instance.wait_for_log(r"warning: Connection rate limit exceeded: 3 from "
                          r"unknown\[127\.0\.0\.1\]")


def test_message_and_recipient_rate_limits(instance):
    ports = start_smtpd(instance, params={"smtpd_client_message_rate_limit": "1",
                                          "smtpd_client_recipient_rate_limit": "2",
                                          "anvil_rate_time_unit": "60s"})
    d = session(ports["smtp"])
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<x@example.test>", 250)
    d.cmd("RCPT TO:<y@example.test>", 250)
    d.cmd("RCPT TO:<z@example.test>", 450, r"4\.7\.1 Error: too many recipients from")
    d.cmd("RSET", 250)
    d.cmd("MAIL FROM:<a@remote.test>", 450, r"4\.7\.1 Error: too much mail from 127\.0\.0\.1")
    d.cmd("QUIT", 221)
    instance.wait_for_log(r"warning: Message delivery request rate limit exceeded: 2 from")
    instance.wait_for_log(r"warning: Recipient address rate limit exceeded: 3 from")


def test_limit_exceptions(instance):
    ports = start_smtpd(instance, params={"smtpd_client_connection_count_limit": "1",
                                          "smtpd_client_event_limit_exceptions": "127.0.0.0/8"})
    a = session(ports["smtp"])
    b = session(ports["smtp"])
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)


def test_header_size_and_hop_count_limits(instance):
    ports = start_smtpd(instance, params={"header_size_limit": "1000", "hopcount_limit": "3"})
    d = session(ports["smtp"])
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    # One header folded over many lines, larger than header_size_limit.
    d.send(b"Subject: long\r\n" + b"X-Long: start\r\n" + b"\tcontinued text\r\n" * 200
           + b"\r\nbody\r\n.\r\n")
    d.expect(552, r"5\.3\.4")
    d.cmd("MAIL FROM:<a@remote.test>", 250)
    d.cmd("RCPT TO:<bob@example.test>", 250)
    d.cmd("DATA", 354)
    d.send(b"".join(b"Received: from hop%d.test by x.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                    % i for i in range(5)) + b"Subject: loop\r\n\r\nbody\r\n.\r\n")
    d.expect(554, r"5\.4\.0")
    d.cmd("QUIT", 221)
    assert queue_names(instance) == []
