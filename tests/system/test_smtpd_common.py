"""test_smtpd_common.py - helpers shared by the smtpd system tests
(test_smtpd_proto, _tls_auth, _limits, _attacks, _durability).  It holds
no tests itself.

- start_smtpd(instance, params, ...) configures an instance with smtpd on a
  free loopback port (plus anvil, and authd with a passwd-file when asked;
  submission and smtps ports on request) and starts it.
- Dialog: a raw SMTP client that sends exact bytes and reads whole replies
  (multi-line included), so a test reads as send/expect steps.
- queue_messages(): the queue files in incoming/, parsed with the record
  format of lib/qfile.h, so a test can check envelope and content.
"""

import os
import re
import socket
import ssl
import struct
import subprocess
import time

import facteur_harness as fh
from conftest import require_daemon

USER = "alice@example.test"
PASSWORD = "s3cret-pw"


def make_cert(inst):
    """A self-signed certificate and key in the instance's etc/."""
    cert = os.path.join(inst.confdir, "cert.pem")
    key = os.path.join(inst.confdir, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o644)
    return cert, key


def start_smtpd(inst, params=None, tls=False, auth=False, submission=False, smtps=False,
                smtpd_args=(), with_anvil=True, chroot="n"):
    """Configure and start; returns a dict of ports: smtp, and submission /
    smtps when asked.  chroot: the smtp service's master.cf chroot column."""
    require_daemon("smtpd", "master")
    ports = {"smtp": fh.free_port()}
    merged = {
        "smtpd_peername_lookup": "no",
        "smtpd_forbid_bare_newline_exclusions": "",
        "smtpd_client_event_limit_exceptions": "",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                    "reject_unauth_destination",
        "mydestination": "localhost, example.test",
        # The tests' client (127.0.0.1) is not trusted: relaying needs AUTH.
        "mynetworks": "192.0.2.0/24",
        "smtpd_timeout": "20s",
        # Every local address exists (no alias or passwd tables to build).
        "alias_maps": "",
        "local_recipient_maps": "",
        "smtpd_error_sleep_time": "0s",
    }
    services = [fh.service_line("127.0.0.1:%d" % ports["smtp"], "inet", "smtpd",
                                *smtpd_args, private="n", chroot=chroot)]
    if with_anvil:
        require_daemon("anvil")
        services.append(fh.service_line("anvil", "unix", "anvil", maxproc=1))
    if tls or submission or smtps:
        cert, key = make_cert(inst)
        merged.update({"smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key,
                       "smtpd_tls_security_level": "may"})
    if auth or submission or smtps:
        require_daemon("authd")
        users = inst.write_file("etc/users", "%s:{PLAIN}%s:5000:5000::%s/home::\n" % (
            USER, PASSWORD, inst.dir))
        merged.update({
            "auth_passdb": "passwd-file:" + users,
            "auth_userdb": "passwd-file:" + users,
            "auth_failure_delay": "0s",
            "auth_failure_delay_max": "0s",
            "auth_mechanisms": "plain login",
            "smtpd_sasl_auth_enable": "yes",
        })
        services.append(fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1))
    if submission:
        ports["submission"] = fh.free_port()
        services.append(fh.service_line(
            "127.0.0.1:%d" % ports["submission"], "inet", "smtpd",
            "-o", "syslog_name=facteur/submission", "-o", "smtpd_tls_security_level=encrypt",
            "-o", "smtpd_sasl_auth_enable=yes",
            "-o", "smtpd_relay_restrictions=permit_sasl_authenticated,reject", private="n"))
    if smtps:
        ports["smtps"] = fh.free_port()
        services.append(fh.service_line(
            "127.0.0.1:%d" % ports["smtps"], "inet", "smtpd",
            "-o", "syslog_name=facteur/smtps", "-o", "smtpd_tls_wrappermode=yes",
            "-o", "smtpd_sasl_auth_enable=yes",
            "-o", "smtpd_relay_restrictions=permit_sasl_authenticated,reject", private="n"))
    if os.environ.get("ASAN_OPTIONS"):
        # Sanitizer builds: let the daemons' sanitizer report where we look.
        merged["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    merged.update(params or {})
    inst.configure(params=merged, services=services)
    inst.start()
    return ports


class Dialog:
    """Exact bytes out, whole replies in; every wait is bounded."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """The next reply as (code, text of all lines); (None, '') at EOF."""
        lines = []
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\n" not in self.buf:
                if time.monotonic() > deadline:
                    raise AssertionError("no reply within %.0fs; got %r" % (self.timeout,
                                                                           self.buf))
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    chunk = b""
                if not chunk:
                    if lines:
                        raise AssertionError("EOF inside a reply: %r" % lines)
                    return None, self.buf.decode("utf-8", "replace")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def expect(self, code, pattern=None):
        got, text = self.reply()
        assert got == code, "expected %s, got %s: %s" % (code, got, text)
        if pattern:
            assert re.search(pattern, text), "reply %r does not match %r" % (text, pattern)
        return text

    def cmd(self, line, code, pattern=None):
        self.send(line + "\r\n")
        return self.expect(code, pattern)

    def closed(self, timeout=5.0):
        """True once the server closed the connection (after any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---- queue files (lib/qfile.h) ------------------------------------------

class QueueFile:
    def __init__(self, path):
        self.path = path
        self.qid = os.path.basename(path)
        self.sender = None
        self.rcpts = []         # (status, notify, addr, orcpt)
        self.attrs = {}
        self.ret = None
        self.envid = None
        self.flags = 0
        self.content = b""
        self.ended = False
        with open(path, "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):
            if i + 5 > len(data):
                raise ValueError("%s: truncated record header" % path)
            t = chr(data[i])
            n = struct.unpack(">I", data[i + 1:i + 5])[0]
            body = data[i + 5:i + 5 + n]
            if len(body) != n:
                raise ValueError("%s: truncated record" % path)
            i += 5 + n
            if t == "S":
                self.sender = body.decode()
            elif t == "R":
                alen = struct.unpack(">H", body[2:4])[0]
                self.rcpts.append((chr(body[0]), body[1], body[4:4 + alen].decode(),
                                   body[4 + alen:].decode()))
            elif t == "A":
                k, _, v = body.partition(b"\0")
                self.attrs[k.decode()] = v.decode()
            elif t == "N":
                self.ret = chr(body[0])
            elif t == "I":
                self.envid = body.decode()
            elif t == "F":
                self.flags = struct.unpack(">I", body)[0]
            elif t == "M":
                self.content += body
            elif t == "E":
                size, nrcpt = struct.unpack(">QI", body)
                if size != len(self.content) or nrcpt != len(self.rcpts) or i != len(data):
                    raise ValueError("%s: bad end record" % path)
                self.ended = True

    @property
    def addrs(self):
        return [r[2] for r in self.rcpts]

    def header(self, name):
        head = self.content.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        m = re.search(r"(?mi)^%s:(.*(?:\n[ \t].*)*)" % re.escape(name), head)
        return m.group(1).strip() if m else None


def queue_names(inst, queue="incoming"):
    d = os.path.join(inst.queue, queue)
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def queue_messages(inst, queue="incoming"):
    return [QueueFile(os.path.join(inst.queue, queue, n)) for n in queue_names(inst, queue)]


def wait_messages(inst, count, timeout=10):
    return fh.wait_until(lambda: len(queue_names(inst)) >= count and queue_messages(inst),
                         timeout, "%d queue files in incoming/" % count)


def send_simple(port, sender="s@sender.test", rcpts=("bob@example.test",), body="hello\r\n",
                subject="test"):
    """One message over a Dialog; returns the queue ID from the 250."""
    d = Dialog(port)
    d.expect(220)
    d.cmd("EHLO client.test", 250)
    d.cmd("MAIL FROM:<%s>" % sender, 250)
    for r in rcpts:
        d.cmd("RCPT TO:<%s>" % r, 250)
    d.cmd("DATA", 354)
    d.send("Subject: %s\r\n\r\n%s.\r\n" % (subject, body))
    text = d.expect(250, r"2\.0\.0 Ok: queued as")
    d.cmd("QUIT", 221)
    d.close()
    return text.split()[-1]
