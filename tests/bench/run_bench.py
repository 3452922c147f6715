#!/usr/bin/python3
"""run_bench.py - the runner behind `make bench`.

    /usr/bin/python3 tests/bench/run_bench.py [--quick] [--only NAME] [--limit SECONDS]
        [--bin DIR] [--libexec DIR]

Runs every tests/bench/bench_*.py (bench_common.py is the helper module)
in name order, one after the other so that they do not compete for the
CPUs, each with a wall-clock limit, showing their output as it comes.
--quick is passed on to every script (fewer messages and rounds).
--bin/--libexec export FACTEUR_BIN/FACTEUR_LIBEXEC (default: the in-tree
bin/ and libexec/ that `make bench` has just built).

Each script ends with result lines of the form

    NAME: facteur N msg/s, ANCHOR M msg/s, ratio R[; more figures]
    NAME: skipped (why)

which are gathered into a final table with the target ratio of
DESIGN.md's performance budget beside each.  A script that fails or runs
out of time is listed as FAILED and makes the exit status 1.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK_LIMIT = 420           # seconds per script with --quick
FULL_LIMIT = 900            # seconds per script otherwise

RESULT_RE = re.compile(r"^([A-Za-z][\w.-]*): (facteur ([\d.]+) msg/s, (\S+) ([\d.]+) msg/s, "
                       r"ratio (\S+?))(;.*)?$")
CPU_RE = re.compile(r"cpu ms/msg ([\d.]+) vs ([\d.]+)")
SKIP_RE = re.compile(r"^([A-Za-z][\w.-]*): skipped \((.*)\)$")

# DESIGN.md "Performance budget": facteur's rate over the anchor's.
TARGETS = (("intake", 1.5), ("lmtp", 1.5), ("e2e", 2.0))


def target_for(name):
    for prefix, ratio in TARGETS:
        if name == prefix or name.startswith(prefix + "-"):
            return ratio
    return None


def cpu_ratio(notes):
    """The anchor's CPU per message over facteur's, from the result line's
    "cpu ms/msg F vs A" figures; "-" when the line has none."""
    m = CPU_RE.search(notes)
    if not m or float(m.group(1)) <= 0:
        return "-"
    return "%.2f" % (float(m.group(2)) / float(m.group(1)))


def scripts():
    return sorted(os.path.join(HERE, f) for f in os.listdir(HERE)
                  if f.startswith("bench_") and f.endswith(".py") and f != "bench_common.py")


def run_script(path, quick, limit):
    """Run one script, echoing its output; returns (status, result rows)."""
    argv = [sys.executable, path] + (["--quick"] if quick else [])
    rows = []
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, cwd=HERE)
    deadline = time.monotonic() + limit
    timed_out = False
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if not sel.select(timeout=min(left, 5.0)):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        sys.stdout.write("  " + line)
        sys.stdout.flush()
        line = line.rstrip("\n")
        m = RESULT_RE.match(line)
        if m:
            rows.append((m.group(1), float(m.group(3)), m.group(4), float(m.group(5)),
                         m.group(6), (m.group(7) or "").lstrip("; ")))
            continue
        m = SKIP_RE.match(line)
        if m:
            rows.append((m.group(1), None, None, None, None, "skipped: " + m.group(2)))
    if timed_out:
        # The script's own cleanup runs on SIGTERM (KeyboardInterrupt-free
        # exit through finally blocks); SIGKILL only if it ignores that.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        return "FAILED (no end within %ds)" % limit, rows
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    sel.close()
    proc.stdout.close()
    if proc.returncode != 0:
        return "FAILED (exit status %d)" % proc.returncode, rows
    if not rows:
        return "FAILED (no result line)", rows
    return "ok", rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", action="append", default=[],
                    help="run only bench_NAME.py (repeatable)")
    ap.add_argument("--limit", type=int, help="seconds per script (default %d, %d with "
                    "--quick)" % (FULL_LIMIT, QUICK_LIMIT))
    ap.add_argument("--bin")
    ap.add_argument("--libexec")
    args = ap.parse_args()
    if args.bin:
        os.environ["FACTEUR_BIN"] = os.path.abspath(args.bin)
    if args.libexec:
        os.environ["FACTEUR_LIBEXEC"] = os.path.abspath(args.libexec)
    todo = scripts()
    if args.only:
        todo = [p for p in todo if os.path.basename(p)[6:-3] in args.only]
        if not todo:
            ap.error("no bench script matches %s" % ", ".join(args.only))
    limit = args.limit or (QUICK_LIMIT if args.quick else FULL_LIMIT)
    if os.geteuid() != 0:
        print("note: not root: the Postfix anchor cannot run (its master needs root)")
    t0 = time.monotonic()
    table, failed = [], 0
    for path in todo:
        name = os.path.basename(path)
        print("== %s" % name, flush=True)
        t1 = time.monotonic()
        status, rows = run_script(path, args.quick, limit)
        print("== %s: %s in %.0fs" % (name, status, time.monotonic() - t1), flush=True)
        if status != "ok":
            failed += 1
            table.append((name, None, None, None, None, status))
        table.extend(rows)

    print()
    print("benchmark summary (%.0fs, %d CPUs, load average %s)" % (
        time.monotonic() - t0, os.cpu_count(), " ".join(
            "%.2f" % x for x in os.getloadavg())))
    print("rate ratio = facteur msg/s over the anchor's; cpu ratio = the anchor's CPU ms "
          "per message over facteur's (less sensitive to other load on the machine)")
    fmt = "%-12s %10s %-16s %10s %6s %6s %6s %-7s %s"
    print(fmt % ("name", "facteur/s", "anchor", "anchor/s", "rate", "cpu", "target",
                 "verdict", "notes"))
    for name, f_rate, anchor, a_rate, ratio, notes in table:
        target = target_for(name)
        if f_rate is None:
            print(fmt % (name, "-", "-", "-", "-", "-", "-", "-", notes))
            continue
        verdict = "-"
        if target is not None and ratio != "n/a":
            verdict = "meets" if float(ratio) >= target else "below"
        print(fmt % (name, "%.0f" % f_rate, anchor, "%.0f" % a_rate, ratio, cpu_ratio(notes),
                     "%.1fx" % target if target else "-", verdict, notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
