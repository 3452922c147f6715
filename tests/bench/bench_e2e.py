#!/usr/bin/python3
"""bench_e2e.py - end to end, SMTP in and Maildir out: facteur (smtpd ->
qmgr -> LMTP client -> lmtpd -> Maildir) against Postfix + Dovecot
(smtpd -> cleanup -> qmgr -> lmtp -> Dovecot LMTP -> Maildir), same
machine, same run.

    /usr/bin/python3 tests/bench/bench_e2e.py [--quick] [--messages N]
        [--sessions S] [--size BYTES] [--rounds R]

The client is Postfix's smtp-source: USERS processes in parallel, each
with S/USERS sessions and its own recipient userK@example.test, a new
connection per message.  A run lasts from the first connection until the
last message is in a Maildir new/ directory (counted, so every message
must arrive: a run that does not deliver everything in time fails).
Both sides keep their stock durability (Postfix fsyncs its queue file,
Dovecot its Maildir file; facteur also syncs the directories it renames
and links into).  Neither side may send mail off the machine:
default_transport is the error transport, the sender is a local mailbox.

Printed per side: messages per second, CPU ms per message of the whole
system (facteur's process tree; Postfix's plus Dovecot's), fsync-type
calls per message (strace over a separate short run).  The servers are
measured in alternation for R rounds; each figure is its median over the
rounds and the ratio the median of the per-round rate ratios.
The last line is

    e2e: facteur N msg/s, postfix+dovecot M msg/s, ratio R; ...

and "e2e: skipped (...)" while facteur's qmgr and lmtpd are not built.
"""

import argparse
import os
import subprocess
import sys
import time

import bench_common as bc

DOMAIN = "example.test"
USERS = ["user%d" % i for i in range(4)]
SENDER = "user0@" + DOMAIN
VUID = 5000
DELIVERY_TIMEOUT = 120      # seconds past the client's end for the last delivery


def mailbox_owner():
    if bc.is_root():
        return VUID, VUID
    return os.getuid(), os.getgid()


def count_new(homes):
    n = 0
    for u in USERS:
        d = os.path.join(homes, u, "Maildir", "new")
        if os.path.isdir(d):
            n += len(os.listdir(d))
    return n


def send_and_wait(port, nmsgs, sessions, size, delivered):
    """Send nmsgs spread over the users, wait for them in the Maildirs;
    returns the seconds from the first connection to the last delivery."""
    per_user = [nmsgs // len(USERS) + (1 if i < nmsgs % len(USERS) else 0)
                for i in range(len(USERS))]
    per_sessions = max(1, sessions // len(USERS))
    before = delivered()
    t0 = time.monotonic()
    procs = []
    for user, count in zip(USERS, per_user):
        if count == 0:
            continue
        argv = [bc.SMTP_SOURCE, "-4", "-s", str(per_sessions), "-m", str(count),
                "-l", str(size), "-M", "client.example.org", "-f", SENDER,
                "-t", "%s@%s" % (user, DOMAIN), "127.0.0.1:%d" % port]
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=bc.CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate(timeout=30)
            errors.append("smtp-source ran out of time")
        if p.returncode != 0 or "fatal" in err:
            errors.append("smtp-source exit %d: %s" % (p.returncode, err[-800:]))
    if errors:
        raise RuntimeError("; ".join(errors))
    # 20 looks a second: listing new/ (thousands of files by the last
    # round) must not take much CPU from the servers under test.
    bc.wait_until(lambda: delivered() - before >= nmsgs, DELIVERY_TIMEOUT,
                  "%d deliveries into Maildir new/" % nmsgs, interval=0.05)
    elapsed = time.monotonic() - t0
    if delivered() - before != nmsgs:
        raise RuntimeError("%d messages delivered, %d sent" % (delivered() - before, nmsgs))
    return elapsed


class FacteurE2E:
    name = "facteur"

    def __init__(self):
        uid, gid = mailbox_owner()
        self.port = bc.free_port()
        self.inst = bc.facteur_instance("bench-e2e")
        fh = bc.fh
        self.homes = os.path.join(self.inst.dir, "vmail")
        os.makedirs(self.homes)
        os.chown(self.homes, uid, gid)
        users = self.inst.write_file("etc/users", "".join(
            "%s@%s:{PLAIN}x:%d:%d::%s/%s::\n" % (u, DOMAIN, uid, gid, self.homes, u)
            for u in USERS))
        self.inst.configure(params={
            "myorigin": DOMAIN,
            "mynetworks": "127.0.0.0/8",
            "mydestination": "localhost, " + DOMAIN,
            "alias_maps": "",
            "local_recipient_maps": "",
            "default_transport": "error:no remote delivery in this benchmark",
            "smtpd_peername_lookup": "no",
            "auth_passdb": "passwd-file:" + users,
            "auth_userdb": "passwd-file:" + users,
            "mail_location": "maildir:~/Maildir",
            "mailbox_size_limit": "0",
        }, services=[
            fh.service_line("127.0.0.1:%d" % self.port, "inet", "smtpd", private="n"),
            fh.service_line("anvil", "unix", "anvil", maxproc=1),
            fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
            fh.service_line("local", "unix", "smtp"),
            fh.service_line("lmtp", "unix", "lmtpd", unpriv="n"),
            fh.service_line("auth", "unix", "authd", unpriv="n", maxproc=1),
        ])

    def start(self):
        self.inst.start()
        self.mark = self.inst.log_mark()
        return self

    def roots(self):
        return [self.inst.master_pid()]

    def log_text(self):
        """What the instance logged after it started."""
        return self.inst.log_text()[self.mark:]

    def delivered(self):
        return count_new(self.homes)

    def cleanup(self):
        self.inst.cleanup()


class PostfixDovecotE2E:
    name = "postfix+dovecot"

    def __init__(self):
        uid, gid = mailbox_owner()
        self.dc = bc.DovecotLmtp(DOMAIN, USERS, uid, gid)
        self.pf = bc.PostfixInstance(bc.free_port(), main={
            "myorigin": DOMAIN,
            "relay_domains": "",
            "virtual_mailbox_domains": DOMAIN,
            # Every address is valid for Postfix: Dovecot decides.
            "virtual_mailbox_maps": "static:yes",
            "virtual_transport": "lmtp:unix:" + self.dc.socket,
            # A qmgr runs here: Postfix's stock flow control is back on.
            "in_flow_delay": "1s",
            "default_transport": "error:no remote delivery in this benchmark",
        }, services=[
            "qmgr unix n - n 300 1 qmgr",
            "lmtp unix - - n - - lmtp",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "scache unix - - n - 1 scache",
        ])
        self.port = self.pf.port

    def start(self):
        self.dc.start()
        self.pf.start()
        self.marks = (len(self.pf.log_text()), len(self.dc.log_text()))
        return self

    def roots(self):
        return [self.pf.master_pid(), self.dc.proc.pid]

    def log_text(self):
        return self.pf.log_text()[self.marks[0]:] + self.dc.log_text()[self.marks[1]:]

    def delivered(self):
        return self.dc.delivered()

    def cleanup(self):
        try:
            self.pf.cleanup()
        finally:
            self.dc.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    ap.add_argument("--messages", type=int)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--sync-messages", type=int)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    if args.messages is None:
        args.messages = 600 if args.quick else 2000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.sync_messages is None:
        args.sync_messages = 100 if args.quick else 200
    if args.messages < len(USERS) or args.sessions < 1 or args.rounds < 1 or \
            not 1 <= args.size <= 10 * 1024 * 1024:
        ap.error("need messages >= %d, sessions and rounds >= 1, 1 <= size <= 10 MB" %
                 len(USERS))

    if not bc.have_daemons("master", "smtpd", "qmgr", "smtp", "lmtpd", "authd", "anvil"):
        print("e2e: skipped (facteur qmgr/lmtpd not built yet)")
        return 0
    bc.ensure_anchor_packages()
    if not os.access(bc.SMTP_SOURCE, os.X_OK):
        print("e2e: skipped (%s missing: Debian's postfix package)" % bc.SMTP_SOURCE)
        return 0
    anchor = bc.is_root() and bc.postfix_available() and os.access(bc.DOVECOT, os.X_OK)
    print("e2e bench: %d messages of %d bytes x %d rounds, %d sessions, %d mailboxes, "
          "%d CPUs; anchor: %s" % (args.messages, args.size, args.rounds, args.sessions,
                                   len(USERS), os.cpu_count(),
                                   "private Postfix + Dovecot LMTP" if anchor else
                                   "none (needs root, postfix and dovecot-lmtpd)"),
          flush=True)

    sides = []
    try:
        sides.append(FacteurE2E().start())
        if anchor:
            sides.append(PostfixDovecotE2E().start())
        rounds = {s.name: [] for s in sides}
        for rnd in range(args.rounds):
            for side in sides:
                def run(n, side=side):
                    return send_and_wait(side.port, n, args.sessions, args.size,
                                         side.delivered)
                res = bc.measure("%s e2e #%d" % (side.name, rnd + 1), side.roots(), run,
                                 args.messages, args.sync_messages if rnd == 0 else 0,
                                 warmup=args.warmup if rnd == 0 else 0)
                bc.print_figures(res)
                rounds[side.name].append(res)
        for side in sides:
            bc.log_problems(side.name, side.log_text())
        best = {}
        for name, results in rounds.items():
            best[name] = bc.median_result(results, "%s e2e median" % name)
            bc.print_figures(best[name])
        bc.print_ratio("e2e", best["facteur"], "postfix+dovecot", best.get("postfix+dovecot"),
                       bc.paired_ratio(rounds["facteur"], rounds.get("postfix+dovecot")))
    finally:
        for side in sides:
            side.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
