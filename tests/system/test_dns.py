"""test_dns.py - lib/dns against a real unbound serving a local zone.

A private unbound (the Debian package's /usr/sbin/unbound) listens on a
free 127.0.0.1 port with local-zone/local-data lines only: it never
recurses anywhere.  facteur-dns -r 127.0.0.1@PORT asks it, through the
same lib/dns code smtpd and smtp use, and the tests check MX order and
randomisation among equal preferences, null MX, NXDOMAIN and no data
(exit 1), A/AAAA/TXT/TLSA/PTR answers, the DNSBL-style reversed-address
A record reject_rbl_client looks up, and a temporary failure (exit 2)
when the resolver is down.  A second unbound serves a zone signed with
ldns-signzone (one record tampered with after signing) as an auth-zone:
with that zone's DS as trust anchor, answers are "secure" (the bit DANE
needs) and the tampered record is a temporary failure, never an answer.

LocalUnbound is imported by test_smtpd_restrictions.py as well.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import facteur_harness as fh

UNBOUND = "/usr/sbin/unbound"

# Records every test here can rely on; tests may add more.
ZONE_DATA = [
    "domain.example. 300 IN MX 20 mx2.domain.example.",
    "domain.example. 300 IN MX 10 mx1.domain.example.",
    "domain.example. 300 IN MX 10 mx1b.domain.example.",
    'domain.example. 300 IN TXT "v=spf1 -all" " more"',
    "mx1.domain.example. 300 IN A 127.0.0.10",
    "mx1.domain.example. 300 IN AAAA 2001:db8::10",
    "mx2.domain.example. 300 IN A 127.0.0.11",
    "mx1b.domain.example. 300 IN A 127.0.0.12",
    "_25._tcp.mx1.domain.example. 300 IN TLSA 3 1 1 "
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "nomail.example. 300 IN MX 0 .",
    "alias.example. 300 IN CNAME mx1.domain.example.",
    # DNSBL: 127.0.0.2 is listed, with a reason in TXT.
    "2.0.0.127.rbl.example. 300 IN A 127.0.0.2",
    '2.0.0.127.rbl.example. 300 IN TXT "listed for testing"',
    "10.0.18.198.in-addr.arpa. 300 IN PTR mx1.domain.example.",
]
# Not ".test" nor the TEST-NET reverse zones: libunbound answers those
# itself (RFC 6761 default local zones) before asking any server.
ZONES = ["example.", "18.198.in-addr.arpa."]



def unbound_server_lines(port, directory):
    """The server: section every private test unbound starts with: loopback
    on port, no daemon, no privileges dropped, and never recursing (anything
    outside the local zones is refused)."""
    return [
        "server:",
        "    interface: 127.0.0.1@%d" % port,
        "    port: %d" % port,
        "    do-daemonize: no",
        '    username: ""',
        '    chroot: ""',
        '    directory: "%s"' % directory,
        '    pidfile: ""',
        "    use-syslog: no",
        '    logfile: ""',
        "    verbosity: 1",
        "    do-ip6: no",
        "    num-threads: 1",
        "    access-control: 127.0.0.0/8 allow",
        '    local-zone: "." refuse',
    ]

def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (unbound takes both)."""
    for _ in range(100):
        port = fh.free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free UDP+TCP port")


class LocalUnbound:
    """A private unbound on 127.0.0.1:port answering only local data."""

    def __init__(self, data=(), zones=()):
        self.dir = tempfile.mkdtemp(prefix="facteur-unbound-")
        os.chmod(self.dir, 0o755)
        self.port = free_udp_tcp_port()
        self.address = "127.0.0.1@%d" % self.port
        lines = unbound_server_lines(self.port, self.dir)
        for z in list(ZONES) + list(zones):
            lines.append('    local-zone: "%s" static' % z)
        for rr in list(ZONE_DATA) + list(data):
            lines.append("    local-data: '%s'" % rr)
        lines += ["remote-control:", "    control-enable: no", ""]
        self.conf = os.path.join(self.dir, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        self.log = open(os.path.join(self.dir, "unbound.log"), "w")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            fh.wait_until(lambda: self.proc.poll() is not None or fh.tcp_listening(self.port),
                          10, "unbound to listen on %d" % self.port)
            if self.proc.poll() is not None:
                raise AssertionError("unbound exited: %s" % self.log_text())
        except BaseException:
            self.stop()
            raise

    def log_text(self):
        with open(os.path.join(self.dir, "unbound.log")) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def unbound():
    if not os.access(UNBOUND, os.X_OK):
        pytest.fail("unbound is not installed (%s)" % UNBOUND, pytrace=False)
    u = LocalUnbound()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def confdir():
    d = tempfile.mkdtemp(prefix="facteur-dnsconf-")
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write("# empty: defaults\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def dns(confdir, resolver, *args, timeout=30):
    path = os.path.join(fh.BIN, "facteur-dns")
    if not os.access(path, os.X_OK):
        pytest.fail("facteur-dns is not built (%s)" % path, pytrace=False)
    return fh.run_cmd([path, "-c", confdir, "-r", resolver] + list(args), timeout=timeout)


def lines(out):
    return [l for l in out.splitlines() if not l.startswith(";;")]


@pytest.mark.parametrize("qtype,name,want", [
    ("a", "mx1.domain.example", ["A 127.0.0.10"]),
    ("aaaa", "mx1.domain.example", ["AAAA 2001:db8::10"]),
    ("txt", "domain.example", ['TXT "v=spf1 -all more"']),
    ("tlsa", "_25._tcp.mx1.domain.example",
     ["TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]),
    ("ptr", "198.18.0.10", ["PTR mx1.domain.example"]),
    ("a", "2.0.0.127.rbl.example", ["A 127.0.0.2"]),
    ("txt", "2.0.0.127.rbl.example", ['TXT "listed for testing"']),
])
def test_found(unbound, confdir, qtype, name, want):
    r = dns(confdir, unbound.address, qtype, name)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == want


def test_mx_order_and_shuffle(unbound, confdir):
    firsts = set()
    for _ in range(30):
        r = dns(confdir, unbound.address, "mx", "domain.example")
        assert r.returncode == 0, r.stderr
        got = lines(r.stdout)
        assert len(got) == 3
        assert [l.split()[1] for l in got] == ["10", "10", "20"]
        assert got[2] == "MX 20 mx2.domain.example"
        firsts.add(got[0])
        if len(firsts) == 2:
            break
    # Equal preferences come in random order: both show up first.
    assert firsts == {"MX 10 mx1.domain.example", "MX 10 mx1b.domain.example"}


@pytest.mark.parametrize("qtype,name,say", [
    ("mx", "nomail.example", "null MX"),
    ("a", "absent.example", "NXDOMAIN"),
    ("mx", "mx1.domain.example", "no data"),
    ("ptr", "198.18.0.99", "NXDOMAIN"),
])
def test_permanent(unbound, confdir, qtype, name, say):
    r = dns(confdir, unbound.address, qtype, name)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert say in r.stdout
    assert lines(r.stdout) == []


def test_cname(unbound, confdir):
    r = dns(confdir, unbound.address, "a", "alias.example")
    assert r.returncode == 0, r.stderr
    assert "A 127.0.0.10" in lines(r.stdout)
    assert "canonical name mx1.domain.example" in r.stdout


def test_refused_is_temporary(unbound, confdir):
    # Outside the local zones this unbound refuses: a temporary failure.
    r = dns(confdir, unbound.address, "a", "www.example.com")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "temporary failure" in r.stderr


def test_resolver_down_times_out(confdir):
    port = free_udp_tcp_port()
    start = time.monotonic()
    r = dns(confdir, "127.0.0.1@%d" % port, "-t", "2", "mx", "domain.example")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert time.monotonic() - start < 10


def test_resolver_from_main_cf(unbound):
    d = tempfile.mkdtemp(prefix="facteur-dnsconf-")
    try:
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write("smtp_dns_resolver_address = %s\n" % unbound.address)
        path = os.path.join(fh.BIN, "facteur-dns")
        r = fh.run_cmd([path, "-c", d, "a", "mx2.domain.example"])
        assert r.returncode == 0, r.stderr
        assert lines(r.stdout) == ["A 127.0.0.11"]
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("args", [
    ["bogus", "domain.example"],
    ["mx"],
    ["mx", "bad..name"],
    ["ptr", "not-an-address"],
])
def test_usage_errors(unbound, confdir, args):
    r = dns(confdir, unbound.address, *args)
    assert r.returncode == 3, (r.stdout, r.stderr)


SIGNED_ZONE = """$ORIGIN secure.example.
$TTL 300
@ IN SOA ns.secure.example. admin.secure.example. 1 3600 600 86400 300
@ IN NS ns.secure.example.
ns IN A 127.0.0.53
mx IN A 127.0.0.20
bad IN A 127.0.0.30
@ IN MX 10 mx.secure.example.
_25._tcp.mx IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"""


class SignedUnbound:
    """unbound serving secure.example (signed) as an auth-zone; it never
    sends a query anywhere (do-not-query-address covers everything)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="facteur-dnssec-")
        os.chmod(self.dir, 0o755)
        self.proc = None
        zone = os.path.join(self.dir, "zone")
        with open(zone, "w") as f:
            f.write(SIGNED_ZONE)
        key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "secure.example"],
                             cwd=self.dir, capture_output=True, text=True, timeout=60,
                             check=True).stdout.strip()
        subprocess.run(["ldns-signzone", "-n", zone, key], cwd=self.dir, check=True,
                       capture_output=True, timeout=60)
        self.anchor = os.path.join(self.dir, key + ".ds")
        signed = os.path.join(self.dir, "zone.signed")
        with open(signed) as f:
            text = f.read()
        # Tamper with one signed record: its RRSIG no longer matches.
        assert "\t127.0.0.30" in text
        with open(signed, "w") as f:
            f.write(text.replace("\t127.0.0.30", "\t127.0.0.31"))
        self.port = free_udp_tcp_port()
        self.address = "127.0.0.1@%d" % self.port
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "server:",
                "    interface: 127.0.0.1@%d" % self.port,
                "    port: %d" % self.port,
                "    do-daemonize: no",
                '    username: ""',
                '    chroot: ""',
                '    directory: "%s"' % self.dir,
                '    pidfile: ""',
                "    use-syslog: no",
                '    logfile: ""',
                "    do-ip6: no",
                "    num-threads: 1",
                "    access-control: 127.0.0.0/8 allow",
                "    do-not-query-address: 0.0.0.0/0",
                "    do-not-query-address: ::/0",
                "auth-zone:",
                '    name: "secure.example."',
                '    zonefile: "%s"' % signed,
                "    for-upstream: yes",
                "    for-downstream: yes",
                "    fallback-enabled: no",
                "remote-control:",
                "    control-enable: no",
                ""]))
        self.log = open(os.path.join(self.dir, "unbound.log"), "w")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            fh.wait_until(lambda: self.proc.poll() is not None or fh.tcp_listening(self.port),
                          10, "unbound to listen on %d" % self.port)
            assert self.proc.poll() is None, "unbound exited"
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def signed():
    for tool in ("ldns-keygen", "ldns-signzone"):
        if shutil.which(tool) is None:
            pytest.fail("%s is not installed (ldnsutils)" % tool, pytrace=False)
    u = SignedUnbound()
    yield u
    u.stop()


def test_dnssec_secure(signed, confdir):
    r = dns(confdir, signed.address, "-T", signed.anchor, "tlsa", "_25._tcp.mx.secure.example")
    assert r.returncode == 0, r.stderr
    assert ";; secure" in r.stdout.splitlines()
    assert lines(r.stdout) == [
        "TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
    r = dns(confdir, signed.address, "-T", signed.anchor, "mx", "secure.example")
    assert r.returncode == 0, r.stderr
    assert ";; secure" in r.stdout.splitlines()


def test_dnssec_bogus_is_temporary(signed, confdir):
    r = dns(confdir, signed.address, "-T", signed.anchor, "a", "bad.secure.example")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "DNSSEC validation failed" in r.stderr
    assert lines(r.stdout) == []


def test_dnssec_not_validated_without_anchor(signed, confdir):
    r = dns(confdir, signed.address, "tlsa", "_25._tcp.mx.secure.example")
    assert r.returncode == 0, r.stderr
    assert "secure" not in r.stdout
    r = dns(confdir, signed.address, "a", "bad.secure.example")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["A 127.0.0.31"]
