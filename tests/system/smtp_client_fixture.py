"""smtp_client_fixture.py - helpers for the smtp/lmtp client agent tests.

- write_queue_file(): a queue file in lib/qfile.h's format, put straight
  into active/ as qmgr would have moved it there, with a valid queue ID.
- delivery_request(): the contract-5 request (lib/deliver_proto.h) qmgr
  sends to private/smtp, encoded with facteur_harness.attr_encode.
- SmtpSink: Postfix's smtp-sink on a loopback port, dumping each message.
- FakePeer: a scripted SMTP/LMTP server (threads, loopback or a UNIX
  socket) for what smtp-sink cannot do: STARTTLS with a chosen
  certificate, AUTH, per-recipient replies, 452 limits, LMTP, XQID.  It
  records every session and checks that the client never sent a bare CR
  or LF.
- make_certs(): a test CA, a server certificate it signed, and a
  self-signed certificate (the "wrong" one).

Every wait is bounded; every server is stopped by its owner.
"""

import os
import pwd
import socket
import ssl
import struct
import subprocess
import threading
import time

import facteur_harness as fh

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_seq = [1000]


def b62(n, width=None):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    out = out or "0"
    if width is not None:
        out = out.rjust(width, "0")
    return out


def make_qid():
    t = time.time()
    sec = int(t)
    usec = int((t - sec) * 1e6)
    _seq[0] += 1
    return b62(sec, 6) + b62(usec, 4) + b62(_seq[0] + os.getpid() * 1000)


def _rec(rtype, data):
    return rtype.encode() + struct.pack(">I", len(data)) + data


def write_queue_file(queue_dir, sender, rcpts, content, flags=0, ret=None, envid=None,
                     owner=None):
    """rcpts: list of addresses or (addr, orcpt, notify).  content: bytes
    with LF line ends (as smtpd stores them).  Returns the queue ID."""
    qid = make_qid()
    now = time.time()
    out = _rec("V", b"facteur-queue 1")
    out += _rec("T", struct.pack(">qI", int(now), int((now - int(now)) * 1e6)))
    out += _rec("S", sender.encode())
    for r in rcpts:
        addr, orcpt, notify = (r, "", 0) if isinstance(r, str) else r
        a = addr.encode()
        out += _rec("R", b"T" + bytes([notify]) + struct.pack(">H", len(a)) + a
                    + orcpt.encode())
    if ret:
        out += _rec("N", ret.encode())
    if envid:
        out += _rec("I", envid.encode())
    if flags:
        out += _rec("F", struct.pack(">I", flags))
    for i in range(0, len(content), 65536):
        out += _rec("M", content[i:i + 65536])
    out += _rec("E", struct.pack(">QI", len(content), len(rcpts)))
    path = os.path.join(queue_dir, "active", qid)
    with open(path, "wb") as f:
        f.write(out)
    if owner and fh.is_root():
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return qid


def delivery_request(qid, nexthop, sender, rcpts, transport="smtp"):
    """rcpts: list of addresses or (addr, orcpt, notify)."""
    now_us = int(time.time() * 1e6)
    attrs = [("path", "active/" + qid), ("qid", qid), ("nexthop", nexthop),
             ("transport", transport), ("sender", sender), ("arrival_us", now_us - 2000),
             ("active_us", now_us - 1000), ("nrcpt", len(rcpts))]
    for i, r in enumerate(rcpts):
        addr, orcpt, notify = (r, "", 0) if isinstance(r, str) else r
        attrs += [("rcpt_%d" % i, addr), ("rcpt_%d_index" % i, i),
                  ("rcpt_%d_orcpt" % i, orcpt), ("rcpt_%d_notify" % i, notify)]
    return attrs


def reply_statuses(reply):
    """[(status, dsn, text)] from a delivery reply dict."""
    return [(reply["status_%d" % i], reply["dsn_%d" % i], reply["reply_%d" % i])
            for i in range(reply["nrcpt"])]


# ---- smtp-sink --------------------------------------------------------------

SMTP_SINK = "/usr/sbin/smtp-sink"


class SmtpSink:
    """smtp-sink on 127.0.0.1:port; each message dumped into dumpdir."""

    def __init__(self, port, dumpdir, options=()):
        self.port = port
        self.dumpdir = dumpdir
        os.makedirs(dumpdir, exist_ok=True)
        os.chmod(dumpdir, 0o777)
        argv = [SMTP_SINK, "-d", os.path.join(dumpdir, "msg.")]
        if fh.is_root():
            argv += ["-u", "root"]
        argv += list(options) + ["127.0.0.1:%d" % port, "10"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        fh.wait_until(lambda: self.proc.poll() is not None or fh.tcp_listening(port), 10,
                      "smtp-sink on port %d" % port)
        if self.proc.poll() is not None:
            raise AssertionError("smtp-sink exited: %s" % self.proc.stderr.read())

    SETTLE = 0.3        # seconds a dump must stay unchanged before it is read
    SETTLE_MAX = 5.0    # seconds one call waits at most for dumps to settle

    def messages(self):
        """Every dump, each read once it has stopped changing: smtp-sink
        creates the file when DATA starts and writes as the message arrives,
        so an early read saw b"" (seen under ASan).  A dump smtp-sink
        removes meanwhile (a transaction cut short) is no message."""
        out = []
        deadline = time.monotonic() + self.SETTLE_MAX
        for name in sorted(os.listdir(self.dumpdir)):
            path = os.path.join(self.dumpdir, name)
            try:
                while time.monotonic() < deadline:
                    st = os.stat(path)
                    if st.st_size > 0 and time.time() - st.st_mtime >= self.SETTLE:
                        break
                    time.sleep(0.05)
                with open(path, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stderr.close()


# ---- certificates -----------------------------------------------------------

def make_certs(d, server_name):
    """Returns dict: ca (CA cert), cert/key (server, signed by ca, CN and
    SAN server_name), chain (cert then ca, for DANE-TA: the server must
    send its trust anchor), wrong_cert/wrong_key (self-signed, same name)."""
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731

    def run(*argv):
        r = subprocess.run(["openssl"] + list(argv), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("openssl %s: %s" % (argv[0], r.stderr))

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=facteur test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=%s" % server_name)
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s\n" % server_name)
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-out", p("server.pem"), "-days", "2", "-extfile", p("ext.cnf"))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", p("wrong.key"), "-out", p("wrong.pem"), "-days", "2",
        "-subj", "/CN=%s" % server_name, "-addext", "subjectAltName=DNS:%s" % server_name)
    with open(p("chain.pem"), "w") as out:
        for n in ("server.pem", "ca.pem"):
            with open(p(n)) as f:
                out.write(f.read())
    for n in os.listdir(d):
        os.chmod(p(n), 0o644)
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key"),
            "chain": p("chain.pem"),
            "wrong_cert": p("wrong.pem"), "wrong_key": p("wrong.key")}


# ---- a scripted SMTP/LMTP peer ------------------------------------------------

class FakePeer:
    """A small SMTP (or LMTP) server for the client tests.

    rcpt_reply(addr) -> reply line for RCPT (default "250 2.1.5 Ok");
    data_reply(addr) -> per-recipient reply after the dot in LMTP;
    max_rcpts: answer "452 4.5.3 Too many recipients" past this many;
    tls: (cert, key) to offer STARTTLS; auth: {user: password} to offer
    AUTH PLAIN LOGIN and require it before MAIL; features: EHLO keywords
    to offer besides the defaults; hang_data: seconds to wait before the
    354 reply (to kill the client meanwhile); tls_break: answer STARTTLS
    with 220 and then garbage (a failing handshake); xqid: advertise XQID
    (facteur's lmtpd extension); host: the TCP address ("::1" for IPv6)."""

    DEFAULT_FEATURES = ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                        "DSN", "SMTPUTF8"]

    def __init__(self, port=None, unix_path=None, lmtp=False, rcpt_reply=None,
                 data_reply=None, max_rcpts=0, tls=None, auth=None, features=None,
                 hang_data=0, xqid=False, name="peer.example", tls_break=False,
                 host="127.0.0.1"):
        self.lmtp = lmtp
        self.rcpt_reply = rcpt_reply or (lambda a: "250 2.1.5 Ok")
        self.data_reply = data_reply or (lambda a: "250 2.0.0 <%s> delivered" % a)
        self.max_rcpts = max_rcpts
        self.tls = tls
        self.auth = auth
        self.features = self.DEFAULT_FEATURES if features is None else features
        self.hang_data = hang_data
        self.tls_break = tls_break
        self.xqid = xqid
        self.name = name
        self.sessions = []
        self.messages = []
        self.bare_newline = False
        self.lock = threading.Lock()
        self.stopping = False
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o777)
        else:
            six = ":" in host
            self.sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET,
                                      socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
        self.port = port
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.threads = []
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(10)
        for t in self.threads:
            t.join(10)
        self.sock.close()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        sess = {"ehlo": None, "tls": False, "auth_user": None, "mails": [], "commands": []}
        with self.lock:
            self.sessions.append(sess)
        conn.settimeout(15)
        f = conn.makefile("rwb")
        try:
            self._dialogue(conn, f, sess)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def _line(self, f):
        line = f.readline(4096)
        if not line:
            raise ValueError("eof")
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            self.bare_newline = True
        return line[:-2].decode("utf-8", "replace") if line.endswith(b"\r\n") else \
            line.rstrip(b"\r\n").decode("utf-8", "replace")

    def _dialogue(self, conn, f, sess):
        def say(text):
            f.write(text.encode() + b"\r\n")
            f.flush()

        say("220 %s ESMTP fake" % self.name)
        authed = self.auth is None
        mail = None
        rcpts = []
        while not self.stopping:
            line = self._line(f)
            sess["commands"].append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                sess["ehlo"] = line
                feats = list(self.features)
                if self.tls and not sess["tls"]:
                    feats.append("STARTTLS")
                if self.auth:
                    feats.append("AUTH PLAIN LOGIN")
                if self.xqid:
                    feats.append("XQID")
                lines = [self.name] + feats
                for i, text in enumerate(lines):
                    say("250%s%s" % (" " if i == len(lines) - 1 else "-", text))
            elif verb == "HELO":
                say("250 %s" % self.name)
            elif verb == "STARTTLS" and self.tls:
                say("220 2.0.0 Ready to start TLS")
                if self.tls_break:
                    # A broken TLS stack: garbage instead of a ServerHello.
                    f.write(b"this is not TLS\r\n")
                    f.flush()
                    return
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.tls[0], self.tls[1])
                f.close()
                conn = ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rwb")
                sess["tls"] = True
            elif verb == "AUTH" and self.auth:
                parts = line.split()
                import base64
                if parts[1].upper() == "PLAIN":
                    blob = base64.b64decode(parts[2]).split(b"\0")
                    user, pw = blob[1].decode(), blob[2].decode()
                else:
                    say("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self._line(f)).decode()
                    say("334 UGFzc3dvcmQ6")
                    pw = base64.b64decode(self._line(f)).decode()
                if self.auth.get(user) == pw:
                    authed = True
                    sess["auth_user"] = user
                    say("235 2.7.0 Authentication successful")
                else:
                    say("535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                if not authed:
                    say("530 5.7.0 Authentication required")
                    continue
                mail = line
                rcpts = []
                say("250 2.1.0 Ok")
            elif verb == "RCPT":
                addr = line.split("<", 1)[1].split(">", 1)[0]
                if self.max_rcpts and len(rcpts) >= self.max_rcpts:
                    say("452 4.5.3 Error: too many recipients")
                    continue
                r = self.rcpt_reply(addr)
                if r.startswith("2"):
                    rcpts.append(addr)
                say(r)
            elif verb == "DATA":
                if mail is None or not rcpts:
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                if self.hang_data:
                    time.sleep(self.hang_data)
                say("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while True:
                    raw = f.readline(1 << 20)
                    if not raw:
                        raise ValueError("eof in data")
                    if not raw.endswith(b"\r\n") or b"\r" in raw[:-2] or b"\n" in raw[:-2]:
                        self.bare_newline = True
                    if raw == b".\r\n":
                        break
                    body.append(raw)
                with self.lock:
                    self.messages.append({"mail": mail, "rcpts": list(rcpts),
                                          "data": b"".join(body), "tls": sess["tls"]})
                if self.lmtp:
                    for a in rcpts:
                        say(self.data_reply(a))
                else:
                    say("250 2.0.0 Ok: queued as FAKE%d" % len(self.messages))
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Error: command not recognized")


# ---- a DNSSEC-signed zone (DANE) ------------------------------------------

UNBOUND = "/usr/sbin/unbound"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"


def spki_sha256(cert_path):
    """Hex SHA-256 of a certificate's SubjectPublicKeyInfo (TLSA 3 1 1)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True, timeout=30).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


class SignedZoneUnbound:
    """A private unbound on 127.0.0.1 serving one zone signed with a fresh
    ECDSA key (ldns-keygen, ldns-signzone) from an auth-zone, and refusing
    everything else (it never recurses).  trust_anchor is the zone's
    DNSKEY, for smtp_dns_trust_anchor_file: libunbound then validates the
    answers and marks them secure."""

    def __init__(self, zone, records):
        import tempfile
        self.zone = zone.rstrip(".") + "."
        self.dir = tempfile.mkdtemp(prefix="facteur-dnssec-")
        os.chmod(self.dir, 0o755)
        from test_dns import free_udp_tcp_port, unbound_server_lines
        self.port = free_udp_tcp_port()
        self.address = "127.0.0.1@%d" % self.port
        zf = os.path.join(self.dir, "zone")
        with open(zf, "w") as f:
            f.write("$ORIGIN %s\n$TTL 300\n" % self.zone)
            f.write("@ IN SOA ns.%s admin.%s 1 3600 600 86400 300\n" % (self.zone, self.zone))
            f.write("@ IN NS ns.%s\nns IN A 127.0.0.1\n" % self.zone)
            for rr in records:
                f.write(rr + "\n")
        r = subprocess.run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", self.zone],
                           cwd=self.dir, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("ldns-keygen: %s" % r.stderr)
        key = r.stdout.strip()
        r = subprocess.run([LDNS_SIGNZONE, "-o", self.zone, zf, key], cwd=self.dir,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("ldns-signzone: %s" % r.stderr)
        self.trust_anchor = os.path.join(self.dir, key + ".key")
        for n in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, n), 0o644)
        conf = "\n".join(unbound_server_lines(self.port, self.dir) + [
            '    local-zone: "%s" transparent' % self.zone,
            "auth-zone:",
            '    name: "%s"' % self.zone,
            '    zonefile: "%s.signed"' % zf,
            "    for-downstream: yes",
            "    for-upstream: yes",
            "    fallback-enabled: no",
            "remote-control:",
            "    control-enable: no",
            ""])
        self.conf = os.path.join(self.dir, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(self.dir, "unbound.log"), "w")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            fh.wait_until(lambda: self.proc.poll() is not None or fh.tcp_listening(self.port),
                          10, "unbound to listen on %d" % self.port)
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "unbound.log")) as f:
                    raise AssertionError("unbound exited: %s" % f.read())
        except BaseException:
            self.stop()
            raise

    def stop(self):
        import shutil
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
