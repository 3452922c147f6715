"""`make run` / `make stop`: tools/run-instance.sh end to end, in a temporary
RUN directory and with its ports shifted, so a developer's own ./run
instance is left alone.
"""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon

SCRIPT = os.path.join(fh.ROOT, "tools", "run-instance.sh")
BASE_PORTS = (2525, 2587, 2465, 2143, 2993, 2110, 2995)


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_offset():
    """An offset that puts every demo port on a free loopback port."""
    for _ in range(100):
        offset = fh.free_port() - 2465
        if offset > 0 and all(p + offset < 65536 and port_free(p + offset) for p in BASE_PORTS):
            return offset
    pytest.fail("no free port range for the run instance")


@pytest.fixture
def run_dir():
    require_command("facteur")
    require_daemon("master")
    d = tempfile.mkdtemp(prefix="facteur-run-")
    os.chmod(d, 0o755)
    env = dict(os.environ, BIN=fh.BIN, LIBEXEC=fh.LIBEXEC, RUN=d,
               PORT_OFFSET=str(pick_offset()))
    yield d, env
    subprocess.run([SCRIPT, "stop"], env=env, capture_output=True, timeout=90)
    left = [p for p in os.listdir("/proc") if p.isdigit() and d + "/" in fh.proc_cmdline(int(p))]
    shutil.rmtree(d, ignore_errors=True)
    assert not left, "run instance processes left: %s" % left


def run(env, *args, timeout=120):
    return subprocess.run([SCRIPT] + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_run_start_is_idempotent_and_stop_stops(run_dir):
    d, env = run_dir
    r = run(env, "start")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "starting the mail system" in r.stderr
    assert "Services (%s/etc/master.cf):" % d in r.stdout
    assert "swaks --server 127.0.0.1:%d" % (2525 + int(env["PORT_OFFSET"])) in r.stdout
    # Generated configuration: loopback ports, demo domain, the spool here.
    main = open(os.path.join(d, "etc", "main.cf")).read()
    assert "queue_directory = %s/spool" % d in main
    assert "inet_interfaces = loopback-only" in main
    assert "mydomain = example.test" in main
    master = open(os.path.join(d, "etc", "master.cf")).read()
    for line in master.splitlines():
        if re.match(r"^[^#\s]\S*\s+inet\s", line):
            assert line.startswith("127.0.0.1:"), line
    # Entries whose daemon is missing are commented out, the others are on.
    for cmd in ("smtpd", "qmgr", "pickup", "smtp", "lmtpd", "authd", "anvil"):
        built = os.access(os.path.join(fh.LIBEXEC, cmd), os.X_OK)
        active = re.search(r"^[^#\s].*\s%s(\s|$)" % cmd, master, re.M) is not None
        assert active == built, (cmd, built)
    assert os.path.exists(os.path.join(d, "etc", "tls", "cert.pem"))
    assert fh.file_mode(os.path.join(d, "etc", "tls", "key.pem")) == 0o600
    cert = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                           os.path.join(d, "etc", "tls", "cert.pem")],
                          capture_output=True, text=True)
    assert "CN = localhost" in cert.stdout
    users = open(os.path.join(d, "etc", "users")).read()
    assert re.match(r"^demo@example\.test:\{SHA512-CRYPT\}\$6\$", users)

    status = subprocess.run([os.path.join(fh.BIN, "facteur"), "-c", os.path.join(d, "etc"),
                             "status"], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0
    pid = int(re.search(r"PID: (\d+)", status.stderr).group(1))

    again = run(env, "start")
    assert again.returncode == 0
    assert "the mail system is already running" in again.stdout
    assert fh.pid_alive(pid)

    stop = run(env, "stop")
    assert stop.returncode == 0, stop.stderr
    fh.wait_until(lambda: not fh.pid_alive(pid), 10, "master to exit")
    stop = run(env, "stop")
    assert stop.returncode == 0
    assert "not running" in stop.stdout


def test_run_demo_user_logs_in(run_dir):
    require_command("facteur-auth")
    require_daemon("authd")
    d, env = run_dir
    r = run(env, "start")
    assert r.returncode == 0, r.stdout + r.stderr
    auth = [os.path.join(fh.BIN, "facteur-auth"), "-c", os.path.join(d, "etc")]
    good = subprocess.run(auth + ["test", "demo@example.test", "demo"], capture_output=True,
                          text=True, timeout=30)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run(auth + ["test", "demo@example.test", "wrong"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode != 0


def test_run_local_mail_goes_through_lmtpd_on_private_lmtp(run_dir):
    """The shipped master.cf: lmtpd is service "lmtp" on private/lmtp, and
    the "local" service (the smtp client) feeds it for local_transport's
    default local:unix:private/lmtp; mail to the demo user lands in its
    Maildir."""
    require_daemon("smtpd", "qmgr", "smtp", "lmtpd", "authd", "anvil")
    d, env = run_dir
    r = run(env, "start")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s+private/lmtp\s+lmtpd\s+ready$", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+private/local\s+smtp\s+ready$", r.stdout, re.M), r.stdout
    assert "private/lmtpd" not in r.stdout
    sock = os.path.join(d, "spool", "private", "lmtp")
    assert "smtplib.LMTP('%s')" % sock in r.stdout
    lmtp = smtplib.LMTP(sock, timeout=20)
    try:
        code, features = lmtp.ehlo()
        assert code == 250 and b"XQID" in features, features
    finally:
        lmtp.quit()

    port = 2525 + int(env["PORT_OFFSET"])
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.sendmail("you@example.test", ["demo@example.test"],
                   "From: you@example.test\r\nSubject: run\r\n"
                   "Message-ID: <run-lmtp@example.test>\r\n\r\nthrough lmtpd\r\n")
    new = os.path.join(d, "mail", "demo@example.test", "Maildir", "new")
    fh.wait_until(lambda: os.path.isdir(new) and os.listdir(new), 30,
                  "the message in the demo Maildir")
    with open(os.path.join(new, os.listdir(new)[0]), "rb") as f:
        assert b"through lmtpd" in f.read()
    sent = re.compile(r"facteur/smtp\[\d+\]: \w+: to=<demo@example\.test>, "
                      r"relay=localhost\[private/lmtp\], .*status=sent")
    maillog = os.path.join(d, "log", "maillog")
    fh.wait_until(lambda: sent.search(open(maillog).read()), 10,
                  "the local agent's status=sent line")
