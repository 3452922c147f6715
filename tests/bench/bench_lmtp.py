#!/usr/bin/python3
"""bench_lmtp.py - LMTP delivery rate into Maildir: facteur's lmtpd against
Dovecot's LMTP, on the same machine, with the same client and messages.

    /usr/bin/python3 tests/bench/bench_lmtp.py [--messages N] [--clients C] [--quick]

For each server: a private instance in a temporary directory (facteur:
master + authd + lmtpd through tests/system/facteur_harness.py; Dovecot:
its own base_dir and config, passwd-file passdb/userdb, Maildir, stock
mail_fsync), then C client processes each open one LMTP session on the
server's UNIX socket and deliver N/C messages of about 4 KB, one recipient
each, spread over 10 mailboxes, MAIL/RCPT/DATA pipelined as a real MTA
does.  Every delivery must get its 250 (a failure aborts the run).

Printed per server: messages per second (wall clock), CPU milliseconds per
message (utime + stime of the server's whole process tree, children already
reaped included, from /proc, before and after), and fsync-type calls per
message, counted in a separate short run with
`strace -f -c -e trace=fsync,fdatasync,syncfs,sync_file_range` attached to
every process of the server (strace slows that run, so its rate is not
used).  The last line is

    lmtp: facteur N msg/s, dovecot M msg/s, ratio R

(dovecot 0 msg/s and ratio n/a when Dovecot is not installed; "lmtp:
skipped (...)" when facteur's daemons are not built).
"""

import argparse
import multiprocessing
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "system"))

import facteur_harness as fh  # noqa: E402

DOMAIN = "bench.example"
USERS = ["user%d" % i for i in range(10)]
VUID = 5000
DOVECOT = "/usr/sbin/dovecot"
CLIENT_TIMEOUT = 30.0
RUN_TIMEOUT = 600.0


def message(i):
    body = "".join("Line %04d of the benchmark message, some text to fill it up.\r\n" % n
                   for n in range(60))
    return ("From: bench@example.org\r\nTo: someone@%s\r\nSubject: bench %d\r\n"
            "Message-ID: <bench.%d.%d@example.org>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            "\r\n%s" % (DOMAIN, i, os.getpid(), i, body)).encode()


class LmtpClient:
    """A minimal pipelining LMTP client on a UNIX socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(CLIENT_TIMEOUT)
        self.sock.connect(path)
        self.buf = b""
        self.reply("220")
        self.sock.sendall(b"LHLO bench.client\r\n")
        self.reply("250")

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, code):
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                break
        if not line.startswith(code):
            raise RuntimeError("expected %s, got %r" % (code, line))
        return line

    def deliver(self, rcpt, data):
        self.sock.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                          % rcpt.encode())
        self.reply("250")
        self.reply("250")
        self.reply("354")
        self.sock.sendall(data + b".\r\n")
        self.reply("250")

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply("221")
        finally:
            self.sock.close()


def client_worker(path, first, count, start_evt, out_q):
    try:
        c = LmtpClient(path)
        msgs = [message(first + i) for i in range(count)]
        start_evt.wait(RUN_TIMEOUT)
        for i in range(count):
            c.deliver("%s@%s" % (USERS[(first + i) % len(USERS)], DOMAIN), msgs[i])
        c.close()
        out_q.put(("ok", count))
    except Exception as e:  # reported by the parent
        out_q.put(("error", "%s: %s" % (type(e).__name__, e)))


def run_clients(path, total, nclients):
    """Deliver total messages over nclients sessions; returns seconds."""
    ctx = multiprocessing.get_context("fork")
    start_evt, out_q = ctx.Event(), ctx.Queue()
    per = total // nclients
    procs = [ctx.Process(target=client_worker, args=(path, i * per, per, start_evt, out_q))
             for i in range(nclients)]
    for p in procs:
        p.start()
    time.sleep(0.5)     # sessions open and greeted
    t0 = time.monotonic()
    start_evt.set()
    results = [out_q.get(timeout=RUN_TIMEOUT) for _ in procs]
    elapsed = time.monotonic() - t0
    for p in procs:
        p.join(10)
    errors = [r[1] for r in results if r[0] != "ok"]
    if errors:
        raise RuntimeError("client failed: " + "; ".join(errors))
    return elapsed, per * nclients


# ---- process trees and CPU --------------------------------------------

def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after ")": state ppid ... utime(14) stime(15) cutime(16) cstime(17)
    return int(fields[1]), [int(x) for x in fields[11:15]]


def tree(root):
    """root and all its live descendants."""
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, _ = proc_stat(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu_ticks(root):
    """utime+stime of every live process in the tree plus the CPU of its
    reaped children (cutime+cstime)."""
    total = 0
    for pid in tree(root):
        try:
            _, t = proc_stat(pid)
        except (OSError, IndexError, ValueError):
            continue
        total += sum(t)
    return total


def count_syncs(root, path, nmsgs, nclients):
    """fsync-type calls per message over a short traced run."""
    if shutil.which("strace") is None:
        return None
    out = tempfile.NamedTemporaryFile(prefix="bench-strace-", delete=False)
    out.close()
    argv = ["strace", "-f", "-c", "-o", out.name,
            "-e", "trace=fsync,fdatasync,syncfs,sync_file_range"]
    for pid in tree(root):
        argv += ["-p", str(pid)]
    st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)     # attached
    try:
        _, done = run_clients(path, nmsgs, nclients)
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(30)
    calls = 0
    with open(out.name) as f:
        for line in f:
            fields = line.split()
            if fields and fields[-1] in ("fsync", "fdatasync", "syncfs", "sync_file_range"):
                # "% time seconds usecs/call calls [errors] syscall"
                calls += int(fields[3])
    os.unlink(out.name)
    return calls / done


def measure(name, root, path, nmsgs, nclients, sync_msgs):
    tick = os.sysconf("SC_CLK_TCK")
    run_clients(path, max(nclients * 10, 100), nclients)        # warm up: processes, caches
    cpu0 = tree_cpu_ticks(root)
    elapsed, done = run_clients(path, nmsgs, nclients)
    cpu1 = tree_cpu_ticks(root)
    rate = done / elapsed
    cpu_ms = (cpu1 - cpu0) * 1000.0 / tick / done
    syncs = count_syncs(root, path, sync_msgs, nclients)
    print("%s: %d messages in %.2fs: %.0f msg/s, CPU %.3f ms/msg, %s fsyncs/msg" % (
        name, done, elapsed, rate, cpu_ms, "n/a" if syncs is None else "%.2f" % syncs))
    sys.stdout.flush()
    return rate


def mailbox_owner():
    if os.geteuid() == 0:
        return VUID, VUID
    return os.getuid(), os.getgid()


def count_files(base):
    n = 0
    for user in USERS:
        d = os.path.join(base, user, "Maildir", "new")
        if os.path.isdir(d):
            n += len(os.listdir(d))
    return n


# ---- facteur ----------------------------------------------------------

def bench_facteur(nmsgs, nclients, sync_msgs):
    uid, gid = mailbox_owner()
    inst = fh.Instance(name="bench-lmtp")
    try:
        homes = os.path.join(inst.dir, "vmail")
        os.makedirs(homes)
        os.chown(homes, uid, gid)
        users = inst.write_file("etc/users", "".join(
            "%s@%s:{PLAIN}x:%d:%d::%s/%s::\n" % (u, DOMAIN, uid, gid, homes, u) for u in USERS))
        inst.configure(params={
            "auth_passdb": "passwd-file:" + users,
            "auth_userdb": "passwd-file:" + users,
            "mail_location": "maildir:~/Maildir",
            "mailbox_size_limit": "0",
        }, services=[
            fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
            fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
        ])
        inst.start()
        rate = measure("facteur lmtpd", inst.master_pid(), inst.socket_path("lmtp"), nmsgs,
                       nclients, sync_msgs)
        delivered = count_files(homes)
        expect = max(nclients * 10, 100) // nclients * nclients + \
            nmsgs // nclients * nclients + sync_msgs // nclients * nclients
        if delivered != expect:
            raise RuntimeError("facteur: %d files in new/, %d expected" % (delivered, expect))
        inst.stop()
        return rate
    finally:
        inst.cleanup()


# ---- Dovecot ----------------------------------------------------------

class Dovecot:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="facteur-bench-dovecot-", dir="/tmp")
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            login, internal, igroup = "dovenull", "dovecot", "dovecot"
        else:
            login = internal = pwd.getpwuid(os.getuid()).pw_name
            igroup = grp.getgrgid(os.getgid()).gr_name
        self.uid, self.gid = mailbox_owner()
        self.homes = os.path.join(self.base, "vmail")
        os.makedirs(self.homes)
        os.chown(self.homes, self.uid, self.gid)
        self.run = os.path.join(self.base, "run")
        self.socket = os.path.join(self.run, "lmtp-bench")
        self.log = os.path.join(self.base, "dovecot.log")
        with open(os.path.join(self.base, "passwd"), "w") as f:
            for u in USERS:
                f.write("%s@%s:{PLAIN}x:%d:%d::%s/%s\n" % (u, DOMAIN, self.uid, self.gid,
                                                          self.homes, u))
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
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
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
""".format(run=self.run, base=self.base, log=self.log, login=login, internal=internal,
           igroup=igroup, uid=self.uid, gid=self.gid))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-c", self.conf, "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        fh.wait_until(lambda: self.proc.poll() is not None or os.path.exists(self.socket),
                      20, "Dovecot's LMTP socket")
        if self.proc.poll() is not None:
            raise RuntimeError("dovecot exited: " + self.log_text())

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def bench_dovecot(nmsgs, nclients, sync_msgs):
    if not os.access(DOVECOT, os.X_OK):
        print("dovecot lmtp: not installed (Debian's dovecot-lmtpd)")
        return None
    dc = Dovecot()
    try:
        dc.start()
        rate = measure("dovecot lmtp", dc.proc.pid, dc.socket, nmsgs, nclients, sync_msgs)
        delivered = count_files(dc.homes)
        if delivered == 0:
            raise RuntimeError("dovecot: nothing in new/: " + dc.log_text())
        return rate
    finally:
        dc.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--sync-messages", type=int, default=200)
    ap.add_argument("--quick", action="store_true",
                    help="a short run (600 messages) for a smoke test of the bench")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.sync_messages = 600, 100
    missing = [d for d in ("master", "authd", "lmtpd")
               if not os.access(os.path.join(fh.LIBEXEC, d), os.X_OK)]
    if missing:
        print("lmtp: skipped (not built: %s)" % ", ".join(missing))
        return 0
    if args.clients < 1 or args.messages < args.clients:
        ap.error("need at least one message per client")
    print("lmtp bench: %d messages of %d bytes, %d sessions, 1 recipient each, %d CPUs" % (
        args.messages, len(message(0)), args.clients, os.cpu_count()))
    f_rate = bench_facteur(args.messages, args.clients, args.sync_messages)
    d_rate = bench_dovecot(args.messages, args.clients, args.sync_messages)
    if d_rate:
        print("lmtp: facteur %.0f msg/s, dovecot %.0f msg/s, ratio %.2f" % (
            f_rate, d_rate, f_rate / d_rate))
    else:
        print("lmtp: facteur %.0f msg/s, dovecot 0 msg/s, ratio n/a" % f_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
