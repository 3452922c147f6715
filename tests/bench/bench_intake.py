#!/usr/bin/python3
"""bench_intake.py - smtpd intake: messages accepted per second over SMTP,
facteur's smtpd against Postfix's smtpd + cleanup, same machine, same run.

    /usr/bin/python3 tests/bench/bench_intake.py [--quick] [--messages N]
        [--sessions S] [--sizes 1024,51200] [--rounds R]

Both servers get the same client, Postfix's smtp-source (S parallel
sessions, a new connection per message, one recipient, payload of each
size), on their own free loopback port, with the same main.cf choices
(127.0.0.0/8 in mynetworks, recipient in relay_domains, no reverse lookup
of the client, log written to a file).  Mail is parked after queueing:
neither instance runs a queue manager; public/qmgr is a FIFO that this
script drains (bench_common.QueueDoor), so each server still pays for its
wake-up but nothing moves the mail.  Postfix's in_flow_delay is 0 since no
qmgr hands back flow-control tokens.  Durability is the stock one of each:
250 only after the queue file is fsynced (facteur also syncs incoming/).

For each size, the two servers are measured in alternation for R rounds
(the machine is shared: alternation spreads background load over both),
and each figure is its median over the rounds: messages per second (wall
clock of smtp-source), CPU ms per message (whole process tree, reaped
children included), fsync-type calls per message (strace over a separate
short run, first round); the ratio is the median of the per-round ratios
(facteur's rate over Postfix's in the same round).  Every message must get its 250 (smtp-source aborts
otherwise) and land in incoming/.  The last lines are

    intake-1k: facteur N msg/s, postfix M msg/s, ratio R; cpu ...
    intake-50k: ...
"""

import argparse
import os
import sys

import bench_common as bc

SIZE_NAMES = {1024: "1k", 51200: "50k"}


def size_name(size):
    return SIZE_NAMES.get(size, "%db" % size)


class FacteurIntake:
    """facteur's master + smtpd (+ anvil) with no qmgr."""

    def __init__(self):
        self.port = bc.free_port()
        self.inst = bc.facteur_instance("bench-intake")
        fh = bc.fh
        self.inst.configure(params={
            "myorigin": "localhost",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "localhost",
            "relay_domains": "example.test",
            "alias_maps": "",
            "smtpd_peername_lookup": "no",
        }, services=[
            fh.service_line("127.0.0.1:%d" % self.port, "inet", "smtpd", private="n"),
            fh.service_line("anvil", "unix", "anvil", maxproc=1),
        ])
        self.door = None

    def start(self):
        self.inst.start()
        self.door = bc.QueueDoor(self.inst.queue, self.inst.mail_owner)
        self.mark = self.inst.log_mark()
        return self

    def root(self):
        return self.inst.master_pid()

    def queued(self):
        return bc.count_files(os.path.join(self.inst.queue, "incoming"))

    def log_text(self):
        """What the instance logged after it started."""
        return self.inst.log_text()[self.mark:]

    def cleanup(self):
        if self.door is not None:
            self.door.close()
        self.inst.cleanup()


class PostfixIntake:
    """Postfix's master + smtpd + cleanup (+ trivial-rewrite, anvil,
    postlogd) with no qmgr."""

    def __init__(self):
        self.pf = bc.PostfixInstance(bc.free_port(), main={})
        self.port = self.pf.port
        self.door = None

    def start(self):
        self.pf.start()
        self.door = bc.QueueDoor(self.pf.queue, self.pf.mail_owner)
        self.mark = len(self.pf.log_text())
        return self

    def root(self):
        return self.pf.master_pid()

    def queued(self):
        return bc.count_files(os.path.join(self.pf.queue, "incoming"))

    def log_text(self):
        return self.pf.log_text()[self.mark:]

    def cleanup(self):
        if self.door is not None:
            self.door.close()
        self.pf.cleanup()


def bench_size(servers, size, args):
    """Alternate the servers for args.rounds rounds; returns name -> median
    result, and "ratio" -> the median of the per-round rate ratios."""
    rounds = {name: [] for name in servers}
    for rnd in range(args.rounds):
        for name, srv in servers.items():
            before = srv.queued()

            def run(n, srv=srv):
                return bc.smtp_source(srv.port, n, args.sessions, size)
            # Syncs are counted in the first round only: strace is slow.
            res = bc.measure("%s %s #%d" % (name, size_name(size), rnd + 1), srv.root(), run,
                             args.messages, args.sync_messages if rnd == 0 else 0,
                             warmup=args.warmup)
            sent = args.warmup + args.messages + (args.sync_messages if rnd == 0 else 0)
            got = bc.wait_until(lambda: srv.queued() - before >= sent and srv.queued(), 30,
                                "%d queue files in %s's incoming/" % (sent, name)) - before
            if got != sent:
                raise RuntimeError("%s: %d messages accepted, %d queue files" % (
                    name, sent, got))
            bc.print_figures(res)
            rounds[name].append(res)
    out = {}
    for name, results in rounds.items():
        out[name] = bc.median_result(results, "%s %s median" % (name, size_name(size)))
    out["ratio"] = bc.paired_ratio(rounds["facteur"], rounds.get("postfix"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    ap.add_argument("--messages", type=int)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--sizes", default="1024,51200")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--sync-messages", type=int)
    ap.add_argument("--warmup", type=int, help="messages sent before each timed run")
    args = ap.parse_args()
    if args.messages is None:
        args.messages = 1000 if args.quick else 4000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.sync_messages is None:
        args.sync_messages = 100 if args.quick else 300
    if args.warmup is None:
        args.warmup = 200 if args.quick else 500
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.messages < 1 or args.sessions < 1 or args.rounds < 1 or not sizes or \
            min(sizes) < 1 or min(sizes) > 10 * 1024 * 1024:
        ap.error("messages, sessions, rounds and sizes must be positive (sizes <= 10 MB)")
    names = ["intake-%s" % size_name(s) for s in sizes]

    if not bc.have_daemons("master", "smtpd", "anvil"):
        for n in names:
            print("%s: skipped (facteur smtpd not built in %s)" % (n, bc.LIBEXEC))
        return 0
    bc.ensure_anchor_packages()
    if not os.access(bc.SMTP_SOURCE, os.X_OK):
        for n in names:
            print("%s: skipped (%s missing: Debian's postfix package)" % (n, bc.SMTP_SOURCE))
        return 0
    anchor = bc.is_root() and bc.postfix_available()
    print("intake bench: %d messages x %d rounds, %d sessions, sizes %s, %d CPUs; "
          "anchor: %s" % (args.messages, args.rounds, args.sessions,
                          ",".join(map(str, sizes)), os.cpu_count(),
                          "private Postfix" if anchor else
                          "none (Postfix's master needs root)"), flush=True)

    servers = {}
    try:
        servers["facteur"] = FacteurIntake().start()
        if anchor:
            servers["postfix"] = PostfixIntake().start()
        results = {}
        for size in sizes:
            results[size] = bench_size(servers, size, args)
        for name, srv in servers.items():
            bc.log_problems(name, srv.log_text())
        for size, res in results.items():
            for name in servers:
                bc.print_figures(res[name])
        for size, res in results.items():
            bc.print_ratio("intake-%s" % size_name(size), res["facteur"], "postfix",
                           res.get("postfix"), res["ratio"])
    finally:
        for srv in servers.values():
            srv.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
