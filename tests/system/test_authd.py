"""authd: the Dovecot auth protocol as Postfix and facteur's daemons speak
it, password schemes, failure delays and lockout, malformed input, userdb
lookups, facteur-auth, fail2ban's stock filters, an unmodified Postfix
smtpd authenticating through authd (swaks), and PAM for real as root.

Each test runs its own instance with authd on private/auth, talking to it
with a small client written here (AuthConn) so every protocol line is
visible in the test.
"""

import base64
import hashlib
import hmac
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon

DOMAIN = "example.test"
FAILURE_DELAY = 1       # auth_failure_delay in these tests (seconds)
FAILURE_DELAY_MAX = 4
LOCKOUT_THRESHOLD = 4


@pytest.fixture(autouse=True)
def built():
    require_command("facteur", "facteur-auth")
    require_daemon("master", "authd")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_resp(user, password):
    return b64(b"\0" + user.encode() + b"\0" + password.encode())


class AuthConn:
    """A client of authd's socket: handshake, then request/answer lines."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.handshake = []
        for _ in range(50):
            line = self.readline()
            self.handshake.append(line)
            if line == "DONE":
                break
        else:
            raise AssertionError("no DONE in handshake: %r" % self.handshake)
        self.send("VERSION\t1\t2")
        self.send("CPID\t%d" % os.getpid())

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("authd closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def send(self, line):
        self.sendraw(line.encode() if isinstance(line, str) else line)

    def sendraw(self, data):
        self.s.sendall(data + b"\n")

    def request(self, line):
        self.send(line)
        return self.readline()

    def timed(self, line):
        start = time.monotonic()
        reply = self.request(line)
        return reply, time.monotonic() - start

    def plain(self, rid, user, password, rip="192.0.2.1", secured=True, service="smtp"):
        return self.timed("AUTH\t%d\tPLAIN\tservice=%s\tlip=127.0.0.1\trip=%s%s\tresp=%s" % (
            rid, service, rip, "\tsecured" if secured else "", plain_resp(user, password)))

    def login(self, rid, user, password, rip="192.0.2.1"):
        r = self.request("AUTH\t%d\tLOGIN\tservice=smtp\trip=%s\tsecured" % (rid, rip))
        assert r == "CONT\t%d\t%s" % (rid, b64("Username:")), r
        r = self.request("CONT\t%d\t%s" % (rid, b64(user)))
        assert r == "CONT\t%d\t%s" % (rid, b64("Password:")), r
        return self.request("CONT\t%d\t%s" % (rid, b64(password)))

    def scram(self, rid, user, password, rip="192.0.2.1"):
        """RFC 5802 client; returns authd's last answer."""
        cnonce = b64(os.urandom(18))
        first_bare = "n=%s,r=%s" % (user, cnonce)
        r = self.request("AUTH\t%d\tSCRAM-SHA-256\tservice=imap\trip=%s\tsecured\tresp=%s" % (
            rid, rip, b64("n,," + first_bare)))
        assert r.startswith("CONT\t%d\t" % rid), r
        server_first = base64.b64decode(r.split("\t")[2]).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = "c=biws,r=" + attrs["r"]
        auth_msg = ",".join([first_bare, server_first, final_bare]).encode()
        sig = hmac.new(stored_key, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        r = self.request("CONT\t%d\t%s" % (rid, b64(final_bare + ",p=" + b64(proof))))
        if not r.startswith("CONT\t"):
            return r
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        want = "v=" + b64(hmac.new(server_key, auth_msg, "sha256").digest())
        assert base64.b64decode(r.split("\t")[2]).decode() == want, "server signature"
        return self.request("CONT\t%d\t" % rid)

    def close(self):
        self.s.close()


def facteur_auth(*args, input_text=None, timeout=60):
    return fh.run_cmd([os.path.join(fh.BIN, "facteur-auth")] + list(args),
                      timeout=timeout, input_text=input_text)


def make_hash(scheme, password):
    r = facteur_auth("hash", "-s", scheme, password)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def users_line(user, stored, uid=5000, gid=5000, home=None, extra=""):
    return "%s:%s:%d:%d::%s::%s\n" % (user, stored, uid, gid,
                                       home or "/var/mail/%s" % user, extra)


def start_authd(instance, users_text, params=None, unpriv="-"):
    """Configure and start an instance whose only service is authd; returns
    the path of its socket."""
    users = instance.write_file("etc/users", users_text, mode=0o644)
    merged = {
        "auth_passdb": "passwd-file:" + users,
        "auth_userdb": "passwd-file:%s static:uid=5000 gid=5000 home=%s/vhosts/%%d/%%n "
                       "allow_all_users=yes" % (users, instance.dir),
        "auth_failure_delay": "%ds" % FAILURE_DELAY,
        "auth_failure_delay_max": "%ds" % FAILURE_DELAY_MAX,
        "auth_lockout_threshold": str(LOCKOUT_THRESHOLD),
        "auth_lockout_time": "60s",
        "auth_mechanisms": "plain login scram-sha-256",
    }
    if os.environ.get("ASAN_OPTIONS"):
        # Sanitizer builds: let authd's sanitizer report where we look.
        merged["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    merged.update(params or {})
    instance.configure(params=merged, services=[
        fh.service_line("auth", "unix", "authd", unpriv=unpriv, maxproc=1)])
    instance.start()
    return instance.socket_path("auth")


def test_handshake_and_plain_login(instance):
    stored = "{SHA512-CRYPT}" + subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "saltsalt", "secret"],
        capture_output=True, text=True, check=True).stdout.strip()
    path = start_authd(instance, users_line("bob@" + DOMAIN, stored))
    c = AuthConn(path)
    hs = c.handshake
    assert hs[0] == "VERSION\t1\t2"
    assert "MECH\tPLAIN\tplaintext" in hs and "MECH\tLOGIN\tplaintext" in hs
    assert any(l.startswith("MECH\tSCRAM-SHA-256") for l in hs)
    spid = [l for l in hs if l.startswith("SPID\t")]
    assert spid and int(spid[0].split("\t")[1]) in instance.service_pids("authd")
    assert any(re.match(r"COOKIE\t[0-9a-f]{32}$", l) for l in hs)

    reply, took = c.plain(1, "bob@" + DOMAIN, "secret")
    assert reply == "OK\t1\tuser=bob@" + DOMAIN
    assert took < 1.0
    # User names are normalised (auth_username_format = %Lu).
    reply, _ = c.plain(2, "Bob@Example.TEST", "secret", rip="192.0.2.2")
    assert reply == "OK\t2\tuser=bob@" + DOMAIN
    reply, took = c.plain(3, "bob@" + DOMAIN, "wrong", rip="192.0.2.3")
    assert reply == "FAIL\t3\treason=Authentication failed\tuser=bob@" + DOMAIN
    assert took >= FAILURE_DELAY - 0.05
    reply, _ = c.plain(4, "nobody@" + DOMAIN, "secret", rip="192.0.2.4")
    assert reply.startswith("FAIL\t4\t")
    assert c.login(5, "bob@" + DOMAIN, "secret", rip="192.0.2.5") == "OK\t5\tuser=bob@" + DOMAIN
    assert c.login(6, "bob@" + DOMAIN, "nope", rip="192.0.2.6").startswith("FAIL\t6\t")
    # Plaintext without TLS from a remote address is refused outright.
    reply, _ = c.plain(7, "bob@" + DOMAIN, "secret", rip="198.51.100.7", secured=False)
    assert reply.startswith("FAIL\t7\treason=Plaintext authentication disallowed")
    c.close()
    instance.wait_for_log(r"facteur/authd\[\d+\]: passwd-file\(bob@example\.test,"
                          r"192\.0\.2\.3\): Password mismatch")
    instance.wait_for_log(r"facteur/authd\[\d+\]: passwd-file\(nobody@example\.test,"
                          r"192\.0\.2\.4\): unknown user")


SCHEMES = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "SCRAM-SHA-256", "PLAIN"]


def test_every_scheme_and_scram(instance):
    users = "".join(users_line("%s@%s" % (s.lower(), DOMAIN), make_hash(s, "pw-" + s))
                    for s in SCHEMES)
    users += users_line("mkpasswd@" + DOMAIN, "{YESCRYPT}$y$j9T$ppADu/gvVcO2PAYbxFjPQ.$"
                        "gr94.LKbW8.ACTplhHbneKoPMcBbXGuouDC3RFbZfT6")
    path = start_authd(instance, users)
    c = AuthConn(path)
    rid = 0
    for i, s in enumerate(SCHEMES):
        user = "%s@%s" % (s.lower(), DOMAIN)
        rid += 1
        reply, _ = c.plain(rid, user, "pw-" + s, rip="192.0.2.%d" % (10 + i))
        assert reply == "OK\t%d\tuser=%s" % (rid, user), s
        rid += 1
        reply, _ = c.plain(rid, user, "pw-" + s + "x", rip="192.0.2.%d" % (30 + i))
        assert reply.startswith("FAIL\t%d\t" % rid), s
    rid += 1
    reply, _ = c.plain(rid, "mkpasswd@" + DOMAIN, "secret", rip="192.0.2.50")
    assert reply.startswith("OK\t")
    # SCRAM works where the passdb keeps what it needs (SCRAM-SHA-256, PLAIN).
    for s in ("SCRAM-SHA-256", "PLAIN"):
        user = "%s@%s" % (s.lower(), DOMAIN)
        rid += 1
        assert c.scram(rid, user, "pw-" + s, rip="192.0.2.60") == "OK\t%d\tuser=%s" % (rid, user)
        rid += 1
        assert c.scram(rid, user, "bad", rip="192.0.2.61").startswith("FAIL\t%d\t" % rid)
    rid += 1
    assert c.scram(rid, "sha512-crypt@" + DOMAIN, "pw-SHA512-CRYPT",
                   rip="192.0.2.62").startswith("FAIL\t")
    c.close()


def test_failure_delay_grows_then_lockout(instance):
    user = "victim@" + DOMAIN
    path = start_authd(instance, users_line(user, "{PLAIN}right"))
    c = AuthConn(path)
    expected = [FAILURE_DELAY * 2 ** n for n in range(LOCKOUT_THRESHOLD)]
    expected = [min(e, FAILURE_DELAY_MAX) for e in expected]
    for n, want in enumerate(expected, start=1):
        reply, took = c.plain(n, user, "wrong", rip="203.0.113.5")
        assert reply.startswith("FAIL\t%d\t" % n)
        assert want - 0.1 <= took <= want + 1.5, "failure %d took %.2fs, want %ds" % (
            n, took, want)
    # Locked out: even the right password fails, after the delay.
    reply, took = c.plain(10, user, "right", rip="203.0.113.5")
    assert reply.startswith("FAIL\t10\t")
    assert took >= FAILURE_DELAY_MAX - 0.1
    instance.wait_for_log(r"auth\(victim@example\.test,203\.0\.113\.5\): Password mismatch "
                          r"\(locked out")
    # The lockout is per client and user: another address still logs in.
    reply, took = c.plain(11, user, "right", rip="203.0.113.6")
    assert reply == "OK\t11\tuser=" + user
    assert took < 1.0
    c.close()


def test_malformed_input_fails_cleanly(instance):
    path = start_authd(instance, users_line("bob@" + DOMAIN, "{PLAIN}secret"),
                       params={"auth_failure_delay": "0", "auth_failure_delay_max": "0"})
    pid = instance.wait_service_pid("authd") if instance.service_pids("authd") else None
    c = AuthConn(path)
    pid = instance.wait_service_pid("authd")
    cases = [
        (b"AUTH\tx\tPLAIN\tservice=smtp", "FAIL\t0\t"),
        (b"AUTH\t5\tPLAIN", "FAIL\t5\t"),
        (b"AUTH\t6\tNOSUCH\tservice=smtp", "FAIL\t6\treason=Unsupported"),
        (b"AUTH\t7\tPLAIN\tservice=smtp\tsecured\tresp=!!notbase64", "FAIL\t7\t"),
        (b"AUTH\t8\tPLAIN\tservice=smtp\tsecured\tresp=" + b"QUFB" * 5000, "FAIL\t8\t"),
        (b"X" * 70000, "FAIL\t0\t"),
        (b"CONT\t99\tQUFB", "FAIL\t99\t"),
        (b"HELLO\tworld", "FAIL\t0\t"),
        (b"AUTH\t9\tPLAIN\tservice=smtp\tx=\x01z", "FAIL\t0\t"),
        (b"AUTH\t10\tPLAIN\tservice=smtp\trip=not-an-ip", "FAIL\t10\t"),
        (b"AUTH\t11\tPLAIN\tservice=smtp\tsecured\tresp=" + b64(b"\0\0").encode(), "FAIL\t11\t"),
        (b"AUTH\t12\tPLAIN\tservice=smtp\tsecured\tresp=" + b64(b"root\0bob@" + DOMAIN.encode()
                                                               + b"\0secret").encode(),
         "FAIL\t12\t"),
        (b"AUTH\t13\tSCRAM-SHA-256\tservice=imap\tsecured\tresp=" + b64(b"p=x,,n=a,r=b").encode(),
         "FAIL\t13\t"),
        (b"USER\t14\t../etc\tservice=lmtp", "FAIL\t14\t"),
        (b"\xff\xfe\x00garbage", "FAIL\t0\t"),
    ]
    for line, want in cases:
        reply = c.request(line)
        assert reply.startswith(want), "%r -> %r" % (line[:60], reply)
    # Duplicate ids in flight are refused too.
    c.send("AUTH\t20\tLOGIN\tservice=smtp\tsecured")
    assert c.readline().startswith("CONT\t20\t")
    assert c.request("AUTH\t20\tLOGIN\tservice=smtp\tsecured").startswith("FAIL\t20\t")
    # Still alive, same process, and a good login still works.
    reply, _ = c.plain(30, "bob@" + DOMAIN, "secret")
    assert reply == "OK\t30\tuser=bob@" + DOMAIN
    assert instance.service_pids("authd") == [pid]
    c.close()
    assert "panic" not in instance.log_text() and "fatal" not in instance.log_text()
    instance.wait_for_log(r"facteur/authd\[\d+\]: warning: auth client pid \d+: "
                          r"line longer than 16384 bytes")


def test_userdb_lookups_and_facteur_auth(instance):
    user = "bob@" + DOMAIN
    users = users_line(user, make_hash("SHA512-CRYPT", "secret"), uid=1234, gid=2345,
                       home="/srv/mail/bob",
                       extra="userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G")
    path = start_authd(instance, users)
    c = AuthConn(path)
    assert c.request("USER\t1\t%s\tservice=lmtp" % user) == (
        "USER\t1\t%s\tuid=1234\tgid=2345\thome=/srv/mail/bob\tmail=maildir:~/Maildir\t"
        "quota_rule=*:storage=1G" % user)
    # Anyone else falls to the static userdb and its template.
    assert c.request("USER\t2\tann@example.org\tservice=lmtp") == (
        "USER\t2\tann@example.org\tuid=5000\tgid=5000\thome=%s/vhosts/example.org/ann"
        % instance.dir)
    # A name that would climb out of the template is not found.
    assert c.request("USER\t3\t..@example.org\tservice=lmtp") == "NOTFOUND\t3"
    c.close()

    sock = ["-c", instance.confdir]
    r = facteur_auth(*sock, "test", user, "secret")
    assert r.returncode == 0 and "passdb: %s auth succeeded" % user in r.stdout, r.stdout + r.stderr
    r = facteur_auth(*sock, "test", user, "nope")
    assert r.returncode == 1 and "auth failed" in r.stdout
    # The password may come on standard input (no terminal).
    r = facteur_auth(*sock, "-a", path, "test", user, input_text="secret\n")
    assert r.returncode == 0, r.stdout + r.stderr
    r = facteur_auth(*sock, "lookup", user)
    assert r.returncode == 0
    assert re.search(r"uid\s+: 1234", r.stdout) and "home       : /srv/mail/bob" in r.stdout
    r = facteur_auth(*sock, "-a", os.path.join(instance.dir, "nonexistent"), "lookup", user)
    assert r.returncode == 2 and "connect" in r.stderr
    r = facteur_auth("hash", "-s", "NOPE", "x")
    assert r.returncode != 0
    r = facteur_auth("hash", input_text="from-stdin\n")
    assert r.returncode == 0 and r.stdout.startswith("{SHA512-CRYPT}$6$")


def test_demo_user_like_make_run(instance):
    """tools/run-instance.sh writes its demo user with openssl passwd -6."""
    stored = subprocess.run(["openssl", "passwd", "-6", "demo"], capture_output=True,
                            text=True, check=True).stdout.strip()
    home = os.path.join(instance.dir, "mail", "demo@" + DOMAIN)
    uid, gid = os.getuid(), os.getgid()
    start_authd(instance, "demo@%s:{SHA512-CRYPT}%s:%d:%d::%s::\n" % (DOMAIN, stored, uid, gid,
                                                                      home))
    r = facteur_auth("-c", instance.confdir, "test", "demo@" + DOMAIN, "demo")
    assert r.returncode == 0, r.stdout + r.stderr
    r = facteur_auth("-c", instance.confdir, "lookup", "demo@" + DOMAIN)
    assert r.returncode == 0 and home in r.stdout


def fail2ban_matches(logfile, filt):
    r = fh.run_cmd(["fail2ban-regex", logfile, filt], timeout=60)
    m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", r.stdout)
    assert m, r.stdout + r.stderr
    return int(m.group(1))


def test_fail2ban_stock_filters_match(instance):
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex is not installed (Debian package fail2ban)")
    path = start_authd(instance, users_line("bob@" + DOMAIN, "{PLAIN}secret"),
                       params={"auth_failure_delay": "0", "auth_failure_delay_max": "0"})
    c = AuthConn(path)
    c.plain(1, "bob@" + DOMAIN, "wrong", rip="198.51.100.1")
    c.plain(2, "ghost@" + DOMAIN, "wrong", rip="198.51.100.2")
    c.plain(3, "bob@" + DOMAIN, "secret", rip="198.51.100.3")
    c.close()
    instance.wait_for_log(r"ghost@example\.test,198\.51\.100\.2\): unknown user")
    # The stock dovecot filter, told the process tag (jail.local:
    # filter = dovecot[_daemon="facteur/authd"]): both failures, not the success.
    assert fail2ban_matches(instance.maillog, 'dovecot[_daemon="facteur/authd"]') == 2


def postfix_available():
    return os.path.exists("/usr/lib/postfix/sbin/master") and shutil.which("postfix")


@pytest.fixture
def postfix_instance():
    """A private Postfix (Debian's package) in a temp dir; stopped after."""
    made = []

    def make(port, sasl_path, mail_owner):
        d = tempfile.mkdtemp(prefix="facteur-postfix-")
        os.chmod(d, 0o755)
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(d, sub))
        owner = pwd.getpwnam(mail_owner)
        os.chown(os.path.join(d, "data"), owner.pw_uid, owner.pw_gid)
        with open(os.path.join(d, "etc", "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6",
                "queue_directory = %s/spool" % d,
                "data_directory = %s/data" % d,
                "mail_owner = %s" % mail_owner,
                "myhostname = localhost",
                "mydomain = %s" % DOMAIN,
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mydestination =",
                "local_recipient_maps =",
                "alias_maps =",
                "alias_database =",
                "smtpd_client_connection_count_limit = 0",
                "smtpd_client_connection_rate_limit = 0",
                "smtpd_sasl_auth_enable = yes",
                "smtpd_sasl_type = dovecot",
                "smtpd_sasl_path = %s" % sasl_path,
                "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
                "maillog_file = %s/maillog" % d,
                "maillog_file_prefixes = %s" % d,
                ""]))
        with open(os.path.join(d, "etc", "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
            f.write("postlog unix-dgram n - n - 1 postlogd\n")
            f.write("proxymap unix - - n - - proxymap\n")
            f.write("anvil unix - - n - 1 anvil\n")
            f.write("rewrite unix - - n - - trivial-rewrite\n")
            f.write("cleanup unix n - n - 0 cleanup\n")
        made.append(d)
        # `postfix` prints its errors only to a terminal: keep stderr for the report.
        r = fh.run_cmd(["postfix", "-c", os.path.join(d, "etc"), "start"], timeout=60)
        log = os.path.join(d, "maillog")
        fh.wait_until(lambda: fh.tcp_listening(port), 20,
                      "Postfix smtpd on port %d (%s)" % (port, r.stdout + r.stderr + (
                          open(log).read() if os.path.exists(log) else "")))
        return d

    yield make
    for d in made:
        fh.run_cmd(["postfix", "-c", os.path.join(d, "etc"), "stop"], timeout=60)
        fh.wait_until(lambda: not any(d in fh.proc_cmdline(int(p)) for p in os.listdir("/proc")
                                      if p.isdigit()), 20, "Postfix to stop")
        shutil.rmtree(d, ignore_errors=True)


def swaks(port, mech, user, password):
    return fh.run_cmd(["swaks", "--server", "127.0.0.1:%d" % port, "--auth", mech,
                       "--auth-user", user, "--auth-password", password,
                       "--to", "someone@example.org", "--quit-after", "AUTH"], timeout=60)


def test_postfix_smtpd_authenticates_through_authd(instance, postfix_instance):
    if not fh.is_root():
        pytest.skip("Postfix's master must run as root (CI runs this as root)")
    if not postfix_available() or shutil.which("swaks") is None:
        pytest.fail("Debian's postfix and swaks packages are required")
    user = "bob@" + DOMAIN
    path = start_authd(instance, users_line(user, make_hash("BLF-CRYPT", "s3cret")))
    port = fh.free_port()
    # Postfix's smtpd runs as facteur's mail_owner, which owns private/auth.
    d = postfix_instance(port, path, instance.mail_owner)
    for mech in ("PLAIN", "LOGIN"):
        r = swaks(port, mech, user, "s3cret")
        assert "235 2.7.0 Authentication successful" in r.stdout, r.stdout + r.stderr
        r = swaks(port, mech, user, "wrong")
        assert re.search(r"<\*\* +535 5\.7\.8", r.stdout), r.stdout + r.stderr
    instance.wait_for_log(r"auth\(bob@example\.test,127\.0\.0\.1\): login succeeded, "
                          r"method=LOGIN, service=smtp")
    instance.wait_for_log(r"passwd-file\(bob@example\.test,127\.0\.0\.1\): Password mismatch",
                          count=2)
    # Postfix's own failure lines are what its stock fail2ban filter reads.
    plog = os.path.join(d, "maillog")
    fh.wait_until(lambda: open(plog).read().count("authentication failed") >= 2, 10,
                  "Postfix to log the SASL failures")
    if shutil.which("fail2ban-regex"):
        assert fail2ban_matches(plog, "postfix[mode=auth]") == 2


PAM_USER = "facteurpamtest"
PAM_SERVICE = "facteur-test"


@pytest.fixture
def pam_user():
    if not fh.is_root():
        pytest.skip("PAM with pam_unix needs root (CI runs this as root)")
    password = "Pam-" + base64.b32encode(os.urandom(10)).decode()
    try:
        pwd.getpwnam(PAM_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", PAM_USER], check=True)
    subprocess.run(["chpasswd"], input="%s:%s\n" % (PAM_USER, password), text=True, check=True)
    pam_file = "/etc/pam.d/" + PAM_SERVICE
    with open(pam_file, "w") as f:
        f.write("auth    required pam_unix.so\naccount required pam_unix.so\n")
    yield password
    os.unlink(pam_file)
    subprocess.run(["userdel", PAM_USER], check=False)


def test_pam_passdb_as_root(instance, pam_user):
    path = start_authd(instance, "", unpriv="n", params={
        "auth_passdb": "pam", "auth_pam_service": PAM_SERVICE, "auth_userdb": "passwd"})
    c = AuthConn(path)
    reply, _ = c.plain(1, PAM_USER, pam_user, rip="192.0.2.70")
    assert reply == "OK\t1\tuser=" + PAM_USER
    reply, took = c.plain(2, PAM_USER, pam_user + "x", rip="192.0.2.71")
    assert reply.startswith("FAIL\t2\t")
    assert took >= FAILURE_DELAY - 0.05
    reply, _ = c.plain(3, "nosuchpamuser", "x", rip="192.0.2.72")
    assert reply.startswith("FAIL\t3\t")
    uid = pwd.getpwnam(PAM_USER).pw_uid
    assert c.request("USER\t4\t%s\tservice=lmtp" % PAM_USER).startswith(
        "USER\t4\t%s\tuid=%d\t" % (PAM_USER, uid))
    c.close()
    instance.wait_for_log(r"pam\(facteurpamtest,192\.0\.2\.71\): pam_authenticate\(\) failed: "
                          r"Authentication failure \(Password mismatch\?\)")
    if shutil.which("fail2ban-regex"):
        assert fail2ban_matches(instance.maillog, 'dovecot[_daemon="facteur/authd"]') >= 1


def test_hash_table_passdb_and_userdb(instance):
    """Berkeley DB backend: key user, value a passwd-file line without it."""
    require_command("facteur-map")
    src = instance.write_file("etc/dbusers", "carol@%s %s:4321:4322::/srv/mail/carol::"
                              "userdb_mail=maildir:~/Mail\n" % (DOMAIN, make_hash("SHA256-CRYPT",
                                                                                  "db-pw")))
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur-map"), "hash:" + src])
    assert r.returncode == 0, r.stdout + r.stderr
    path = start_authd(instance, "", params={"auth_passdb": "hash:" + src,
                                             "auth_userdb": "hash:" + src})
    c = AuthConn(path)
    reply, _ = c.plain(1, "carol@" + DOMAIN, "db-pw", rip="192.0.2.80")
    assert reply == "OK\t1\tuser=carol@" + DOMAIN
    reply, _ = c.plain(2, "carol@" + DOMAIN, "nope", rip="192.0.2.81")
    assert reply.startswith("FAIL\t2\t")
    assert c.request("USER\t3\tcarol@%s\tservice=lmtp" % DOMAIN) == (
        "USER\t3\tcarol@%s\tuid=4321\tgid=4322\thome=/srv/mail/carol\tmail=maildir:~/Mail"
        % DOMAIN)
    assert c.request("USER\t4\tdave@%s\tservice=lmtp" % DOMAIN) == "NOTFOUND\t4"
    c.close()
    instance.wait_for_log(r"hash\(carol@example\.test,192\.0\.2\.81\): Password mismatch")


def test_dead_backend_is_a_temporary_failure(instance):
    """A passdb file that vanished: FAIL with temp, a log line, never OK."""
    path = start_authd(instance, users_line("bob@" + DOMAIN, "{PLAIN}secret"))
    os.unlink(os.path.join(instance.dir, "etc", "users"))
    c = AuthConn(path)
    reply, took = c.plain(1, "bob@" + DOMAIN, "secret", rip="192.0.2.90")
    assert reply.startswith("FAIL\t1\t") and reply.endswith("\ttemp"), reply
    assert took < 1.0      # a backend failure is not the client's fault: no penalty
    assert c.request("USER\t2\tbob@%s\tservice=lmtp" % DOMAIN).startswith("FAIL\t2\t")
    c.close()
    instance.wait_for_log(r"warning: passwd-file\(bob@example\.test,192\.0\.2\.90\): open "
                          r"\S+/etc/users: No such file or directory")


def authd_workers(instance):
    """authd's own children: its password-check workers."""
    pid = instance.wait_service_pid("authd")
    return fh.proc_children(pid)


def test_slow_hash_does_not_stall_other_clients(instance):
    """A costly bcrypt runs in a worker: meanwhile authd answers others."""
    slow = make_hash_rounds("BLF-CRYPT", "slow-pw", 14)
    path = start_authd(instance, users_line("slow@" + DOMAIN, slow)
                       + users_line("fast@" + DOMAIN, "{PLAIN}fast"))
    a, b = AuthConn(path), AuthConn(path)
    start = time.monotonic()
    a.send("AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.100\tsecured\tresp=%s"
           % plain_resp("slow@" + DOMAIN, "slow-pw"))
    reply, took = b.plain(1, "fast@" + DOMAIN, "fast", rip="192.0.2.101")
    assert reply == "OK\t1\tuser=fast@" + DOMAIN
    assert b.request("USER\t2\tfast@%s\tservice=lmtp" % DOMAIN).startswith("USER\t2\t")
    quick = time.monotonic() - start
    assert a.readline() == "OK\t1\tuser=slow@" + DOMAIN
    slow_took = time.monotonic() - start
    # The slow check took visibly longer than everything b did meanwhile.
    assert quick < slow_took
    assert quick < 0.5, "other clients waited %.2fs behind a bcrypt check" % quick
    a.close()
    b.close()


def test_dead_workers_fall_back_to_inline_checks(instance):
    path = start_authd(instance, users_line("bob@" + DOMAIN, "{PLAIN}secret"))
    c = AuthConn(path)
    workers = authd_workers(instance)
    assert workers, "authd has no password-check workers"
    mark = instance.log_mark()
    for w in workers:
        os.kill(w, 9)
    instance.wait_for_log(r"auth worker \d+: exited", since=mark, count=len(workers))
    reply, _ = c.plain(1, "bob@" + DOMAIN, "secret", rip="192.0.2.110")
    assert reply == "OK\t1\tuser=bob@" + DOMAIN
    reply, _ = c.plain(2, "bob@" + DOMAIN, "bad", rip="192.0.2.111")
    assert reply.startswith("FAIL\t2\t")
    c.close()


def make_hash_rounds(scheme, password, rounds):
    r = facteur_auth("hash", "-s", scheme, "-r", str(rounds), password)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_username_normalisation(instance):
    """auth_default_realm completes bare names; auth_username_chars refuses
    the rest before any backend sees them."""
    path = start_authd(instance, users_line("bob@" + DOMAIN, "{PLAIN}secret"),
                       params={"auth_default_realm": DOMAIN, "auth_failure_delay": "0",
                               "auth_failure_delay_max": "0"})
    c = AuthConn(path)
    reply, _ = c.plain(1, "BOB", "secret", rip="192.0.2.120")
    assert reply == "OK\t1\tuser=bob@" + DOMAIN
    for rid, name in ((2, "bo b"), (3, "bob%d"), (4, "bob;rm")):
        reply, _ = c.plain(rid, name, "secret", rip="192.0.2.121")
        assert reply == "FAIL\t%d\treason=Invalid user name" % rid, reply
    assert c.request("USER\t5\tbob\tservice=lmtp").startswith("USER\t5\tbob@%s\t" % DOMAIN)
    c.close()
