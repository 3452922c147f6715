"""facteur_harness.py - run a whole facteur instance for system tests.

An Instance lives in its own temporary directory:

    DIR/etc/main.cf, DIR/etc/master.cf   the configuration it was given
    DIR/spool/                           queue_directory (created by `facteur check`)
    DIR/libexec/                         daemon_directory: symlinks to the built
                                         daemons plus any test scripts
    DIR/log/maillog                      maillog_file

It listens on 127.0.0.1 only, on ports from free_port().  Everything waits
with a bound: a step that does not happen in time raises an error that says
what was awaited.  stop() checks that no process mentioning the instance's
configuration directory survives.

Run as root (CI), the instance's mail_owner is the system user TEST_USER,
created once, so privilege dropping and chroot are exercised for real; run
as a normal user, mail_owner is that user and master skips chroot.

Environment (exported by tests/run_all.py): FACTEUR_BIN, FACTEUR_LIBEXEC,
FACTEUR_ROOT; defaults are the in-tree bin/ and libexec/.  With a sanitizer
build also ASAN_OPTIONS/UBSAN_OPTIONS (added to import_environment so
master's children keep them) and FACTEUR_SAN_DIR, their report directory:
it is mirrored inside the queue directory for chrooted daemons, and what
they write there is moved back when the instance stops.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

# Absolute: instances symlink these paths from their own directories, where
# a relative value (FACTEUR_BIN=bin) would point nowhere.
ROOT = os.path.abspath(os.environ.get("FACTEUR_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.abspath(os.environ.get("FACTEUR_BIN") or os.path.join(ROOT, "bin"))
LIBEXEC = os.path.abspath(os.environ.get("FACTEUR_LIBEXEC")
                          or os.path.join(ROOT, "libexec"))

# Set by run_all.py for a sanitizer build: where ASan/UBSan reports go.
SAN_DIR = os.environ.get("FACTEUR_SAN_DIR")

TEST_USER = "facteur-test"
TEST_GROUP = "facteur-testdrop"
SPOOL_SUBDIRS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt",
                 "defer", "private", "public", "pid")

_ports_given = set()


def is_root():
    return os.geteuid() == 0


def ensure_test_accounts():
    """As root, create the unprivileged user and the setgid group once.
    Returns (mail_owner, setgid_group) names to configure."""
    if not is_root():
        return (pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name)
    # Another test run may be creating them at the same moment: a failed
    # useradd is fine as long as the account exists afterwards.
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        TEST_USER], capture_output=True)
        pwd.getpwnam(TEST_USER)
    try:
        grp.getgrnam(TEST_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", TEST_GROUP], capture_output=True)
        grp.getgrnam(TEST_GROUP)
    return (TEST_USER, TEST_GROUP)


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on now and this process has not handed out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port found on %s" % host)


def wait_until(pred, timeout, what, interval=0.05):
    """Call pred() until it returns a true value (returned) or timeout
    seconds pass (AssertionError naming what)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def proc_status(pid):
    """/proc/PID/status as a dict of field -> text."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def proc_ppid(pid):
    return int(proc_status(pid)["PPid"])


def proc_children(pid):
    """Live direct children of pid."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if proc_ppid(int(entry)) == pid and pid_alive(int(entry)):
                kids.append(int(entry))
        except (OSError, KeyError, ValueError):
            continue
    return sorted(kids)


def tcp_connect(port, host="127.0.0.1", timeout=2.0):
    """A connected socket, or None if refused."""
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None


def tcp_listening(port, host="127.0.0.1"):
    s = tcp_connect(port, host, timeout=1.0)
    if s is None:
        return False
    s.close()
    return True


def service_line(name, stype, command, *args, private="-", unpriv="-", chroot="n",
                 wakeup="-", maxproc="-"):
    """One master.cf line: service type private unpriv chroot wakeup maxproc command args."""
    return " ".join([name, stype, private, unpriv, chroot, str(wakeup), str(maxproc),
                     command] + [str(a) for a in args])


def run_cmd(argv, timeout=30, env=None, input_text=None):
    """Run a command with a bound; returns CompletedProcess with text output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env, input=input_text, stdin=None if input_text else subprocess.DEVNULL)


class Instance:
    """One facteur instance in a temporary directory (see the module comment)."""

    def __init__(self, base=None, name="inst"):
        self.mail_owner, self.setgid_group = ensure_test_accounts()
        if base is None:
            base = tempfile.mkdtemp(prefix="facteur-%s-" % name)
        else:
            os.makedirs(base, exist_ok=True)
        self.dir = os.path.abspath(base)
        # The unprivileged children must be able to reach the spool and log.
        os.chmod(self.dir, 0o755)
        self.confdir = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "spool")
        self.daemon_dir = os.path.join(self.dir, "libexec")
        self.logdir = os.path.join(self.dir, "log")
        self.maillog = os.path.join(self.logdir, "maillog")
        for d in (self.confdir, self.daemon_dir, self.logdir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        if is_root():
            owner = pwd.getpwnam(self.mail_owner)
            os.chown(self.logdir, owner.pw_uid, owner.pw_gid)
        self.params = {}
        self.services = []
        self.master_proc = None     # set when master runs in the foreground
        self.started = False
        self._link_daemons()

    # ---- configuration ------------------------------------------------

    def _link_daemons(self):
        if not os.path.isdir(LIBEXEC):
            return
        for name in os.listdir(LIBEXEC):
            src = os.path.join(LIBEXEC, name)
            dst = os.path.join(self.daemon_dir, name)
            if os.path.isfile(src) and os.access(src, os.X_OK) and not os.path.lexists(dst):
                os.symlink(src, dst)

    def default_params(self):
        params = {
            "queue_directory": self.queue,
            "daemon_directory": self.daemon_dir,
            "maillog_file": self.maillog,
            "mail_owner": self.mail_owner,
            "setgid_group": self.setgid_group,
            "myhostname": "localhost",
            "mydomain": "example.test",
            "inet_interfaces": "loopback-only",
            "service_throttle_time": "2s",
        }
        if os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"):
            # master keeps only import_environment for its children: the
            # default list plus the sanitizer options (run_all.py points
            # their reports at a directory, daemons' stderr is /dev/null).
            params["import_environment"] = ("FACTEUR_CONFIG_DIR MAIL_DEBUG MAIL_LOGTAG TZ "
                                            "LANG=C ASAN_OPTIONS UBSAN_OPTIONS")
        return params

    def configure(self, params=None, services=None, raw_main=None, raw_master=None):
        """Write main.cf (defaults updated with params) and master.cf (lines).
        raw_main / raw_master replace the generated text entirely."""
        merged = self.default_params()
        merged.update(params or {})
        self.params = merged
        if services is not None:
            self.services = list(services)
        if raw_main is None:
            raw_main = "# written by facteur_harness\n" + "".join(
                "%s = %s\n" % (k, v) for k, v in merged.items())
        if raw_master is None:
            raw_master = "# written by facteur_harness\n" + "".join(
                line + "\n" for line in self.services)
        self.write_file("etc/main.cf", raw_main)
        self.write_file("etc/master.cf", raw_master)

    def write_file(self, rel, text, mode=0o644):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def add_script(self, name, body, shell="/bin/sh"):
        """Put an executable shell script named name into daemon_directory."""
        path = os.path.join(self.daemon_dir, name)
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, "w") as f:
            f.write("#!%s\n%s" % (shell, body))
        os.chmod(path, 0o755)
        return path

    def add_sleeper(self, name="sleeper", seconds=60):
        """A service command that just sleeps, keeping its own path as
        argv[0] so service_pids() and the leftover check in stop() see it."""
        return self.add_script(name, 'exec -a "$0" sleep %d\n' % seconds, shell="/bin/bash")

    def inet_ports(self):
        """(host, port) of every inet service in the current master.cf lines."""
        out = []
        for line in self.services:
            fields = line.split()
            if len(fields) >= 2 and fields[1] == "inet":
                host, _, port = fields[0].rpartition(":")
                host = host.strip("[]") or "127.0.0.1"
                if host in ("*", ""):
                    host = "127.0.0.1"
                if port.isdigit():
                    out.append((host, int(port)))
        return out

    def socket_path(self, name, private=True):
        return os.path.join(self.queue, "private" if private else "public", name)

    # ---- commands -----------------------------------------------------

    def facteur(self, *args, timeout=60):
        """Run bin/facteur -c CONFDIR args...; returns CompletedProcess."""
        return run_cmd([os.path.join(BIN, "facteur"), "-c", self.confdir] + list(args),
                       timeout=timeout)

    def pid_file(self):
        return os.path.join(self.queue, "pid", "master.pid")

    def master_pid(self):
        """The pid in the pid file if that process is alive, else None."""
        try:
            with open(self.pid_file()) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def start(self, foreground=False, timeout=20, wait=True):
        """Start master (via `facteur start`, or `master -d` in the
        foreground), then wait until it is ready."""
        if foreground:
            self.facteur_check()
            self._san_jail_make()
            self._fg_out = open(os.path.join(self.logdir, "master.out"), "ab")
            self.master_proc = subprocess.Popen(
                [os.path.join(self.daemon_dir, "master"), "-c", self.confdir, "-d"],
                stdin=subprocess.DEVNULL, stdout=self._fg_out, stderr=subprocess.STDOUT)
        else:
            r = self.facteur("start", timeout=timeout + 10)
            if r.returncode != 0:
                raise AssertionError("facteur start failed (%d): %s%s" % (
                    r.returncode, r.stdout, r.stderr))
            self._san_jail_make()
        self.started = True
        if wait:
            self.wait_ready(timeout)
        return self

    def facteur_check(self):
        r = self.facteur("check")
        if r.returncode != 0:
            raise AssertionError("facteur check failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))
        return r

    def wait_ready(self, timeout=20):
        """Pid file names a live master, every inet port accepts, every
        unix service socket exists."""
        def master_up():
            if self.master_proc is not None and self.master_proc.poll() is not None:
                raise AssertionError("master exited with status %s: %s" % (
                    self.master_proc.returncode, self.log_text()[-2000:]))
            return self.master_pid()
        pid = wait_until(master_up, timeout, "master.pid to name a live master")
        # Look in /proc/net rather than connect: a connection would make
        # master spawn a process for the service.
        for host, port in self.inet_ports():
            wait_until(lambda: listening_inode(port) is not None, timeout,
                       "a listener on %s:%d" % (host, port))
        for line in self.services:
            f = line.split()
            if len(f) >= 3 and f[1] in ("unix", "fifo", "pass"):
                path = self.socket_path(f[0], private=(f[2] != "n"))
                wait_until(lambda: os.path.exists(path), timeout, "socket %s" % path)
        return pid

    def signal_master(self, sig):
        pid = self.master_pid()
        if pid is None:
            raise AssertionError("master is not running")
        os.kill(pid, sig)
        return pid

    def reload(self):
        r = self.facteur("reload")
        if r.returncode != 0:
            raise AssertionError("facteur reload failed: %s%s" % (r.stdout, r.stderr))
        return r

    def instance_pids(self):
        """Live processes whose command line mentions this instance's
        directory (master and every service it started)."""
        pids = []
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            pid = int(entry)
            if self.dir + "/" in proc_cmdline(pid) and pid_alive(pid):
                pids.append(pid)
        return sorted(pids)

    def stop(self, timeout=20, check=True):
        """Stop master and check (when check) that nothing is left running.
        Leftovers are killed in any case so one test cannot hurt the next."""
        problems = []
        if self.master_proc is not None:
            if self.master_proc.poll() is None:
                self.master_proc.send_signal(signal.SIGTERM)
                try:
                    self.master_proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    problems.append("foreground master ignored SIGTERM for %ds" % timeout)
                    self.master_proc.kill()
                    self.master_proc.wait(5)
            self._fg_out.close()
            self.master_proc = None
        elif self.master_pid() is not None:
            r = self.facteur("stop", timeout=timeout + 10)
            if r.returncode != 0:
                problems.append("facteur stop: exit %d: %s%s" % (r.returncode, r.stdout,
                                                                 r.stderr))
        try:
            wait_until(lambda: not self.instance_pids(), 10,
                       "every process of the instance to exit")
        except AssertionError:
            left = ["%d %s" % (p, proc_cmdline(p)) for p in self.instance_pids()]
            problems.append("left running after stop: " + "; ".join(left))
            for p in self.instance_pids():
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started = False
        self._san_jail_collect()
        if check and problems:
            raise AssertionError("; ".join(problems))
        return problems

    def cleanup(self):
        if self.started or self.instance_pids():
            self.stop(check=False)
        self._san_jail_collect()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- sanitizer reports of chrooted daemons ------------------------

    def _san_jail(self):
        """SAN_DIR as a daemon chrooted into the queue directory sees it."""
        return os.path.join(self.queue, SAN_DIR.lstrip("/")) if SAN_DIR else None

    def _san_jail_make(self):
        jail = self._san_jail()
        if jail is not None and os.path.isdir(self.queue):
            os.makedirs(jail, exist_ok=True)
            os.chmod(jail, 0o1777)

    def _san_jail_collect(self):
        """Move reports written inside the chroot to SAN_DIR (run_all.py
        counts them there)."""
        jail = self._san_jail()
        if jail is None or not os.path.isdir(jail):
            return
        for name in os.listdir(jail):
            shutil.move(os.path.join(jail, name),
                        os.path.join(SAN_DIR, "chroot-%s-%s" % (os.path.basename(self.dir),
                                                                name)))

    # ---- the log ------------------------------------------------------

    def log_text(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """An offset: wait_for_log(..., since=mark) looks only after it."""
        try:
            return os.path.getsize(self.maillog)
        except OSError:
            return 0

    def log_lines(self, regex, since=0):
        pat = re.compile(regex)
        return [m for m in (pat.search(l) for l in self.log_text()[since:].splitlines()) if m]

    def wait_for_log(self, regex, timeout=10, since=0, count=1):
        """Wait until regex matches count lines of the maillog after since;
        returns the last match object."""
        def found():
            ms = self.log_lines(regex, since)
            return ms[count - 1] if len(ms) >= count else None
        try:
            return wait_until(found, timeout, "log line /%s/" % regex)
        except AssertionError as e:
            raise AssertionError("%s\n--- maillog tail ---\n%s" % (
                e, "\n".join(self.log_text().splitlines()[-30:])))

    # ---- services -----------------------------------------------------

    def service_pids(self, command):
        """Live children of master running daemon_directory/command."""
        pid = self.master_pid()
        if pid is None:
            return []
        out = []
        for kid in proc_children(pid):
            argv = proc_cmdline(kid).split(" ")
            # A script runs as "/bin/sh PATH args".
            if argv and argv[0] in ("/bin/sh", "sh", "/bin/bash") and len(argv) > 1:
                argv = argv[1:]
            if argv and os.path.basename(argv[0]) == command:
                out.append(kid)
        return out

    def wait_service_pid(self, command, timeout=10, exclude=()):
        return wait_until(lambda: [p for p in self.service_pids(command) if p not in exclude],
                          timeout, "a %s process" % command)[0]


def socket_inodes(pid):
    """Map fd number -> socket inode for the sockets pid holds open."""
    out = {}
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            out[int(fd)] = int(m.group(1))
    return out


def listening_inode(port, host="127.0.0.1"):
    """Inode of the TCP socket listening on host:port, from /proc/net/tcp(6)."""
    want_port = "%04X" % port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, st, inode = fields[1], fields[3], fields[9]
                    if st == "0A" and local.rsplit(":", 1)[1] == want_port:
                        return int(inode)
        except OSError:
            continue
    return None


def file_mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- lib/attr wire format (internal requests: anvil, triggers) ----------

def attr_encode(attrs):
    """Encode [(name, value)] in lib/attr.h's wire format: str -> S,
    int -> L, bytes -> D; ends with the NUL end marker."""
    out = b""
    for name, value in attrs:
        n = name.encode()
        if isinstance(value, bool):
            raise TypeError("attr value for %s: bool" % name)
        if isinstance(value, int):
            out += b"L" + n + b"\0" + str(value).encode() + b"\0"
        elif isinstance(value, bytes):
            out += b"D" + n + b"\0" + str(len(value)).encode() + b"\0" + value
        else:
            out += b"S" + n + b"\0" + value.encode() + b"\0"
    return out + b"\0"


def attr_decode(buf):
    """Decode one message from the front of buf.  Returns (dict, rest), or
    (None, buf) when buf holds only part of a message; raises ValueError
    on malformed input."""
    attrs = {}
    i = 0
    while True:
        if i >= len(buf):
            return None, buf
        t = buf[i:i + 1]
        if t == b"\0":
            return attrs, buf[i + 1:]
        if t not in (b"S", b"L", b"D"):
            raise ValueError("bad attribute type %r at %d" % (t, i))
        end = buf.find(b"\0", i + 1)
        if end < 0:
            return None, buf
        name = buf[i + 1:end].decode()
        vend = buf.find(b"\0", end + 1)
        if vend < 0:
            return None, buf
        raw = buf[end + 1:vend]
        if t == b"S":
            attrs[name] = raw.decode("utf-8", "replace")
            i = vend + 1
        elif t == b"L":
            attrs[name] = int(raw)
            i = vend + 1
        else:
            n = int(raw)
            if len(buf) < vend + 1 + n:
                return None, buf
            attrs[name] = buf[vend + 1:vend + 1 + n]
            i = vend + 1 + n


class AttrClient:
    """A connection to a UNIX socket speaking lib/attr messages."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send(self, attrs):
        self.sock.sendall(attr_encode(attrs))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        """The next reply as a dict; None if the peer closed first."""
        while True:
            msg, rest = attr_decode(self.buf)
            if msg is not None:
                self.buf = rest
                return msg
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b""     # closed with our request still unread
            if not chunk:
                return None
            self.buf += chunk

    def request(self, attrs):
        self.send(attrs)
        return self.recv()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def anvil_request(path, request, ident, timeout=5.0):
    """One anvil request on a fresh connection; returns the reply dict."""
    with AttrClient(path, timeout) as c:
        return c.request([("request", request), ("ident", ident)])


# ---- line dialogues (SMTP, LMTP, IMAP, POP3, the auth protocol) ----------

class Dialogue:
    """A line-based conversation written as send/expect steps:

        d = Dialogue.tcp(port)
        d.expect(r"^220 ")
        d.send("EHLO client.example")
        d.expect_reply("250")          # SMTP multi-line reply, last line
        d.starttls()                   # wraps the socket, drops buffered input

    Every read has a deadline; expect() fails with the lines it saw."""

    def __init__(self, sock, timeout=10.0, eol=b"\r\n"):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.eol = eol
        self.buf = b""
        self.seen = []

    @classmethod
    def tcp(cls, port, host="127.0.0.1", timeout=10.0, **kw):
        return cls(socket.create_connection((host, port), timeout=timeout), timeout, **kw)

    @classmethod
    def unix(cls, path, timeout=10.0, **kw):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, timeout, **kw)

    def send(self, line):
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + self.eol)

    def send_raw(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_line(self):
        """The next line without its terminator; None at EOF."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("no complete line within %.1fs; saw %r" % (
                    self.timeout, self.seen[-5:]))
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return self._note(line)
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return self._note(line.rstrip(b"\r"))

    def _note(self, raw):
        line = raw.decode("utf-8", "replace")
        self.seen.append(line)
        return line

    def expect(self, pattern):
        """Read one line and require it to match pattern; returns the match."""
        line = self.read_line()
        m = re.search(pattern, line) if line is not None else None
        if m is None:
            raise AssertionError("expected /%s/, got %r (earlier: %r)" % (
                pattern, line, self.seen[-6:-1]))
        return m

    def expect_reply(self, code):
        """Read an SMTP/LMTP reply (continuation lines "code-"); require the
        code; returns all its lines."""
        lines = []
        while True:
            line = self.read_line()
            if line is None:
                raise AssertionError("connection closed inside a reply; saw %r" % lines)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        if not lines[-1].startswith(str(code)):
            raise AssertionError("expected %s, got %r" % (code, lines))
        return lines

    def expect_closed(self):
        line = self.read_line()
        if line is not None:
            raise AssertionError("expected the peer to close, got %r" % line)

    def starttls(self, server_hostname="localhost", context=None):
        """Switch to TLS (certificate checks off unless a context is given);
        input read before the switch is discarded, as servers must."""
        import ssl
        if context is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.buf = b""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
