"""bench_common.py - helpers shared by the benchmarks in tests/bench/.

For the authors of bench_*.py scripts (run_bench.py runs each of them in
name order, alone, with an optional --quick, and collects their result
lines).  A script ends with one line per comparison in this shape, which
run_bench.py copies into its summary table:

    NAME: facteur N msg/s, ANCHOR M msg/s, ratio R
    NAME: skipped (why)

What this module provides:

  Locations     ROOT, BIN, LIBEXEC (FACTEUR_BIN / FACTEUR_LIBEXEC from the
                environment, else the in-tree bin/ and libexec/, as the
                system-test harness does); have_daemons(*names).
  Ports         free_port() (loopback only, never handed out twice).
  CPU           tree_pids(root), tree_cpu_seconds(root): utime + stime +
                cutime + cstime of root and every live descendant.  A child
                that exits during a run is counted through its parent's
                cutime/cstime once reaped, so two snapshots (before, after)
                cover short-lived processes without sampling.
  fsyncs        SyncCounter(root): strace -f -c attached to every process
                of a tree for a separate, short run (strace slows the run,
                so its rate is not reported); .calls after stop().
  Measurement   measure(label, root, run, nmsgs, sync_msgs, warmup) -> dict
                with rate, cpu_ms, syncs; run(n) must send n messages and
                return the seconds it took.  median_result(rounds, label)
                combines rounds (each figure its own median);
                paired_ratio() is the median of per-round rate ratios.
                print_figures() prints one server's line, print_ratio()
                the final result line.
  Clients       smtp_source(port, n, sessions, size) runs Postfix's
                /usr/sbin/smtp-source; returns the wall-clock seconds and
                raises when it fails or leaves messages unsent.
  Parking       QueueDoor(queue_dir, owner): a FIFO public/qmgr that a
                thread of this process drains, so the servers' "wake qmgr"
                trigger costs them what it costs with a real qmgr while no
                queue manager moves the mail (intake is measured alone).
  Anchors       ensure_anchor_packages() installs them as root when
                missing (tools/deps.sh --test); PostfixInstance (a private Postfix: own config_directory,
                queue_directory, data_directory, postlogd maillog; root
                only) and DovecotLmtp (a private Dovecot LMTP on a UNIX
                socket, passwd-file users, Maildir; root or not).
  facteur       facteur_instance(name) -> facteur_harness.Instance (import
                of tests/system/facteur_harness.py).
  Logs          log_problems(name, text) prints the count of warning, error,
                fatal and panic lines a server logged.

measure() and SyncCounter accept a list of roots where one system is
several trees (Postfix's master and Dovecot's).  Its result also has
client_ms, the CPU of the clients this process ran (smtp-source), for
scale.  Importing this module makes SIGTERM leave through finally blocks.

Every wait has a bound; every server listens on 127.0.0.1 only, on free
ports; every instance is stopped and removed by its cleanup().
"""

import os
import pwd
import re
import resource
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))

import facteur_harness as fh  # noqa: E402

BIN = fh.BIN
LIBEXEC = fh.LIBEXEC
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
DOVECOT = "/usr/sbin/dovecot"
SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range", "sync")
CLIENT_TIMEOUT = 600        # seconds for one client run, whatever its size
STOP_TIMEOUT = 30

free_port = fh.free_port
wait_until = fh.wait_until


def _terminate(signum, frame):
    # run_bench.py stops a script that overruns with SIGTERM: leave through
    # the finally blocks so that every private instance is stopped.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _terminate)


def is_root():
    return os.geteuid() == 0


def have_daemons(*names):
    """True when every named facteur daemon is built in LIBEXEC."""
    return all(os.access(os.path.join(LIBEXEC, n), os.X_OK) for n in names)


def facteur_instance(name):
    return fh.Instance(name=name)


# ---- process trees and CPU ------------------------------------------------

def _stat(pid):
    """(ppid, utime+stime+cutime+cstime in ticks) of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def tree_pids(root):
    """root and its live descendants."""
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, _ = _stat(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo and len(out) < 100000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu_seconds(root):
    """CPU seconds used so far by root's tree (or by the trees of a list of
    roots), reaped children included."""
    roots = root if isinstance(root, (list, tuple)) else [root]
    ticks = 0
    for pid in [p for r in roots for p in tree_pids(r)]:
        try:
            ticks += _stat(pid)[1]
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class SyncCounter:
    """Count fsync-type system calls of a process tree with strace."""

    def __init__(self, root):
        self.roots = root if isinstance(root, (list, tuple)) else [root]
        self.proc = None
        self.calls = None
        self.out = None

    def start(self):
        if shutil.which("strace") is None:
            return self
        fd, self.out = tempfile.mkstemp(prefix="facteur-bench-strace-")
        os.close(fd)
        argv = ["strace", "-f", "-c", "-o", self.out, "-e", "trace=" + ",".join(SYNC_CALLS)]
        for pid in [p for r in self.roots for p in tree_pids(r)]:
            argv += ["-p", str(pid)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # strace says "Process N attached" once per process on stderr.
        time.sleep(1.0)
        return self

    def stop(self):
        if self.proc is None:
            return None
        try:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.communicate(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate(timeout=STOP_TIMEOUT)
            calls = 0
            with open(self.out) as f:
                for line in f:
                    fields = line.split()
                    # "% time seconds usecs/call calls [errors] syscall"
                    if len(fields) >= 5 and fields[-1] in SYNC_CALLS:
                        calls += int(fields[3])
            self.calls = calls
        finally:
            os.unlink(self.out)
            self.proc = None
        return self.calls


# ---- measurement -----------------------------------------------------------

def children_cpu_seconds():
    """CPU of this process's reaped children (the clients it ran)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(label, root, run, nmsgs, sync_msgs, warmup=200):
    """Warm up with warmup messages, time nmsgs with the CPU of the
    server tree(s) (root: a pid or a list) before and after, then count
    syncs over sync_msgs more (0: not counted).  client_ms is the CPU of
    the client processes run meanwhile, for scale: on a small machine the
    client competes with the server for the same cores."""
    if warmup:
        run(warmup)
    cpu0, ccpu0 = tree_cpu_seconds(root), children_cpu_seconds()
    elapsed = run(nmsgs)
    cpu1, ccpu1 = tree_cpu_seconds(root), children_cpu_seconds()
    res = {"label": label, "msgs": nmsgs, "seconds": elapsed, "rate": nmsgs / elapsed,
           "cpu_ms": (cpu1 - cpu0) * 1000.0 / nmsgs,
           "client_ms": (ccpu1 - ccpu0) * 1000.0 / nmsgs, "syncs": None}
    if sync_msgs:
        sc = SyncCounter(root).start()
        try:
            run(sync_msgs)
        finally:
            calls = sc.stop()
        if calls is not None:
            res["syncs"] = calls / sync_msgs
    return res


def median_result(results, label):
    """One result from several rounds: rate, CPU and client CPU are each
    the median over the rounds; syncs and message count from round 1 (the
    only one traced)."""
    def med(key):
        return statistics.median(r[key] for r in results)
    out = dict(results[0])
    out.update(label=label, rate=med("rate"), cpu_ms=med("cpu_ms"),
               client_ms=med("client_ms"))
    out["seconds"] = out["msgs"] / out["rate"]
    return out


def print_figures(res):
    print("%-28s %6d msgs in %6.2fs: %7.0f msg/s, CPU %6.3f ms/msg, %s fsyncs/msg"
          " (client CPU %.3f ms/msg)" % (
              res["label"], res["msgs"], res["seconds"], res["rate"], res["cpu_ms"],
              "n/a" if res["syncs"] is None else "%.2f" % res["syncs"],
              res.get("client_ms", 0.0)), flush=True)


def ratio_text(a, b):
    return "%.2f" % (a / b) if a and b else "n/a"


def paired_ratio(facteur_rounds, anchor_rounds):
    """Median over the rounds of facteur's rate over the anchor's rate in
    the same round: the two ran back to back, so a change of background
    load between rounds cancels out of each ratio.  None without anchor."""
    if not anchor_rounds:
        return None
    return statistics.median(f["rate"] / a["rate"]
                             for f, a in zip(facteur_rounds, anchor_rounds))


def print_ratio(name, facteur, anchor_name, anchor, ratio=None):
    """The result line run_bench.py collects: rates of both, their ratio
    (ratio if given, e.g. paired_ratio(), else the quotient of the two
    rates), then the CPU and sync figures beside them."""
    f_rate = facteur["rate"] if facteur else 0
    a_rate = anchor["rate"] if anchor else 0
    extra = ""
    if facteur and anchor:
        extra = "; cpu ms/msg %.3f vs %.3f; fsyncs/msg %s vs %s" % (
            facteur["cpu_ms"], anchor["cpu_ms"],
            "n/a" if facteur["syncs"] is None else "%.2f" % facteur["syncs"],
            "n/a" if anchor["syncs"] is None else "%.2f" % anchor["syncs"])
    text = "%.2f" % ratio if ratio is not None else ratio_text(f_rate, a_rate)
    print("%s: facteur %.0f msg/s, %s %.0f msg/s, ratio %s%s" % (
        name, f_rate, anchor_name, a_rate, text, extra), flush=True)


# ---- clients -----------------------------------------------------------------

def smtp_source(port, nmsgs, sessions, size, sender="from@example.org",
                rcpt="to@example.test", extra=()):
    """Send nmsgs messages of size payload bytes over sessions parallel
    connections (a new connection per message, as smtp-source does by
    default); returns the wall-clock seconds.  smtp-source stops at the
    first reply that is not the expected one: that is an error here."""
    argv = [SMTP_SOURCE, "-4", "-s", str(sessions), "-m", str(nmsgs), "-l", str(size),
            "-M", "client.example.org", "-f", sender, "-t", rcpt] + list(extra) + \
        ["127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=CLIENT_TIMEOUT)
    elapsed = time.monotonic() - t0
    if r.returncode != 0 or "fatal" in r.stderr or "error" in r.stderr.lower():
        raise RuntimeError("smtp-source to port %d failed (%d): %s%s" % (
            port, r.returncode, r.stdout[-500:], r.stderr[-1500:]))
    return elapsed


def count_files(top):
    """Regular files under top (queue files in hashed subdirectories too)."""
    n = 0
    for _, _, files in os.walk(top):
        n += len(files)
    return n


# ---- parking: a qmgr door nobody acts on ------------------------------------

class QueueDoor:
    """queue_dir/public/qmgr as a FIFO drained by a thread of this process.

    A queueing server writes a wake-up there after every message; the
    reader throws it away, so mail stays where intake put it.  The FIFO is
    opened read-write so that writers never see ENXIO between reads."""

    def __init__(self, queue_dir, owner=None, name="qmgr"):
        self.path = os.path.join(queue_dir, "public", name)
        if os.path.lexists(self.path):
            os.unlink(self.path)
        os.mkfifo(self.path, 0o622)
        if owner is not None and is_root():
            pw = pwd.getpwnam(owner)
            os.chown(self.path, pw.pw_uid, pw.pw_gid)
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self.wakeups = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        import select
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.wakeups += len(os.read(self.fd, 65536))
                except BlockingIOError:
                    pass

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        os.close(self.fd)


# ---- Postfix anchor -----------------------------------------------------------

ANCHOR_FILES = (SMTP_SOURCE, POSTFIX, os.path.join(POSTFIX_DAEMONS, "master"), DOVECOT,
                "/usr/lib/dovecot/lmtp", "/usr/bin/strace")
_install_tried = []


def ensure_anchor_packages():
    """As root, install the anchors (postfix, dovecot-lmtpd, strace) when
    one is missing, with the project's own tools/deps.sh --test (once per
    process; Postfix comes unconfigured, so no system instance starts).
    Returns the files still missing."""
    missing = [f for f in ANCHOR_FILES if not os.access(f, os.X_OK)]
    if missing and is_root() and not _install_tried:
        _install_tried.append(True)
        print("anchors missing (%s): running tools/deps.sh --test" % ", ".join(missing),
              flush=True)
        r = subprocess.run([os.path.join(ROOT, "tools", "deps.sh"), "--test"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=1800)
        if r.returncode != 0:
            print("tools/deps.sh --test failed (%d): %s" % (
                r.returncode, (r.stdout + r.stderr)[-1000:]), flush=True)
        missing = [f for f in ANCHOR_FILES if not os.access(f, os.X_OK)]
    return missing


def postfix_available():
    return os.access(POSTFIX, os.X_OK) and os.path.isdir(POSTFIX_DAEMONS) and \
        os.access(SMTP_SOURCE, os.X_OK)


class PostfixInstance:
    """A private Postfix in a temporary directory, listening on
    127.0.0.1:port.  main is a dict of extra main.cf parameters, services
    extra master.cf lines (smtpd, cleanup, trivial-rewrite, anvil and
    postlogd are always there; qmgr only if given).  Root only: Postfix's
    master refuses to run otherwise."""

    BASE_SERVICES = [
        "cleanup unix n - n - 0 cleanup",
        "rewrite unix - - n - - trivial-rewrite",
        "anvil unix - - n - 1 anvil",
        "postlog unix-dgram n - n - 1 postlogd",
        "proxymap unix - - n - - proxymap",
    ]

    def __init__(self, port, main=None, services=(), mail_owner="postfix"):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="facteur-bench-postfix-")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "spool")
        self.maillog = os.path.join(self.dir, "maillog")
        self.mail_owner = mail_owner
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(self.dir, sub))
        pw = pwd.getpwnam(mail_owner)
        os.chown(os.path.join(self.dir, "data"), pw.pw_uid, pw.pw_gid)
        params = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": os.path.join(self.dir, "data"),
            "mail_owner": mail_owner,
            "myhostname": "localhost",
            "mydomain": "example.test",
            "myorigin": "localhost",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "localhost",
            "relay_domains": "example.test",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": "",
            "smtpd_peername_lookup": "no",
            # No qmgr hands back flow-control tokens while mail is parked:
            # without this, smtpd waits 1s per message at RCPT.
            "in_flow_delay": "0s",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
        }
        params.update(main or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in params.items()))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
            f.write("".join(line + "\n" for line in self.BASE_SERVICES + list(services)))
        self.started = False

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        r = fh.run_cmd([POSTFIX, "-c", self.etc, "start"], timeout=60)
        self.started = True
        wait_until(lambda: self.master_pid() and fh.tcp_listening(self.port), 30,
                   "Postfix smtpd on port %d (%s %s %s)" % (self.port, r.stdout, r.stderr,
                                                           self.log_text()[-2000:]))
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if fh.pid_alive(pid) else None

    def pids(self):
        root = self.master_pid()
        return tree_pids(root) if root else []

    def stop(self):
        if not self.started:
            return
        pids = self.pids()
        fh.run_cmd([POSTFIX, "-c", self.etc, "stop"], timeout=60)
        try:
            wait_until(lambda: not any(fh.pid_alive(p) for p in pids), STOP_TIMEOUT,
                       "Postfix to stop")
        finally:
            for p in pids:
                if fh.pid_alive(p):
                    os.kill(p, signal.SIGKILL)
        self.started = False

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- Dovecot LMTP anchor ----------------------------------------------------------

class DovecotLmtp:
    """A private Dovecot serving LMTP on a UNIX socket (mode 0666) for
    users user0..N-1@domain, passwd-file passdb/userdb, Maildir homes
    owned by uid:gid, stock mail_fsync (optimized)."""

    def __init__(self, domain, users, uid, gid):
        self.base = tempfile.mkdtemp(prefix="facteur-bench-dovecot-")
        os.chmod(self.base, 0o755)
        if is_root():
            login, internal, igroup = "dovenull", "dovecot", "dovecot"
        else:
            import grp
            login = internal = pwd.getpwuid(os.getuid()).pw_name
            igroup = grp.getgrgid(os.getgid()).gr_name
        self.homes = os.path.join(self.base, "vmail")
        os.makedirs(self.homes)
        os.chown(self.homes, uid, gid)
        self.users = users
        self.run_dir = os.path.join(self.base, "run")
        self.socket = os.path.join(self.run_dir, "lmtp-bench")
        self.log = os.path.join(self.base, "dovecot.log")
        passwd = os.path.join(self.base, "passwd")
        with open(passwd, "w") as f:
            for u in users:
                f.write("%s@%s:{PLAIN}x:%d:%d::%s/%s\n" % (u, domain, uid, gid, self.homes, u))
        self.conf = os.path.join(self.base, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""\
base_dir = {run}
state_dir = {base}/state
log_path = {log}
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {igroup}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service lmtp {{
  unix_listener lmtp-bench {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
""".format(run=self.run_dir, base=self.base, log=self.log, login=login,
           internal=internal, igroup=igroup, uid=uid, gid=gid, passwd=passwd))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-c", self.conf, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.proc.poll() is not None or os.path.exists(self.socket), 30,
                   "Dovecot's LMTP socket")
        if self.proc.poll() is not None:
            raise RuntimeError("dovecot exited: " + self.log_text()[-2000:])
        return self

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def delivered(self):
        n = 0
        for u in self.users:
            d = os.path.join(self.homes, u, "Maildir", "new")
            if os.path.isdir(d):
                n += len(os.listdir(d))
        return n

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def is_fifo(path):
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except OSError:
        return False


def log_problems(name, text, limit=4):
    """Print how many warning/error/fatal/panic lines a server logged during
    the benchmark, grouped by kind (digits and queue IDs folded), most
    frequent first: a fast run that logged trouble is not a result."""
    kinds = {}
    total = 0
    for line in text.splitlines():
        m = re.search(r"\b(warning|error|fatal|panic): (.*)", line)
        if not m:
            continue
        total += 1
        kind = re.sub(r"/tmp/[^/ ]+", "DIR", m.group(0))
        kind = re.sub(r"\b[0-9A-Za-z]{10,}\b|\d+", "N", kind)[:200]
        kinds.setdefault(kind, [0, line[:300]])[0] += 1
    print("%s log: %d warning/error lines" % (name, total), flush=True)
    for kind, (count, example) in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:limit]:
        print("    %6d x %s" % (count, example), flush=True)
    return total
