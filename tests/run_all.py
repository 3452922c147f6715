#!/usr/bin/python3
"""run_all.py - the one test runner behind `make check`.

Runs, in order:
  1. every cmocka unit test binary in BUILD/tests/ (counts its PASSED and
     FAILED summary lines; a binary that crashes, times out or exits non-zero
     without a summary counts as one failure);
  2. every fuzz replay binary in BUILD/fuzz/ over its seeds in
     tests/fuzz/corpus/<name without fuzz_>/ (one test each);
  3. pytest on tests/system with FACTEUR_BIN, FACTEUR_LIBEXEC and
     FACTEUR_ROOT exported, counted from a JUnit XML report.

With a sanitizer build (check-asan), the system tests run with
ASAN_OPTIONS and UBSAN_OPTIONS naming a report directory (log_path): the
daemons master starts have their stderr on /dev/null, so a report would
otherwise be lost.  The harness passes both variables through master's
import_environment.  Every report file found afterwards is one failure,
shown with its head, whether or not the test that caused it noticed;
a report saying only that the exit-time leak check could not run (a
chrooted daemon has no /proc) counts as skipped.

Every child has a wall-clock limit.  Each failure is printed with the
output that explains it, and the last line is exactly
"N passed, N failed" (", N skipped" when any); exit status 1 if anything
failed.  Run with Debian's /usr/bin/python3 (it has pytest).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_TIMEOUT = 120          # seconds per unit test binary
FUZZ_TIMEOUT = 300          # seconds per fuzz replay over its whole corpus
PYTEST_TIMEOUT = 2400       # seconds for the whole system test run
PYTEST_CASE_TIMEOUT = 180   # seconds per system test (pytest-timeout)
TAIL_LINES = 40             # lines of output shown with a failure
REPORT_LINES = 30           # lines of a sanitizer report shown with a failure
REPORT_MAX = 50             # sanitizer report files read at most

PASSED_RE = re.compile(r"\[\s*PASSED\s*\]\s+(\d+)\s+test", re.M)
FAILED_RE = re.compile(r"\[\s*FAILED\s*\]\s+(\d+)\s+test", re.M)
FAILED_NAME_RE = re.compile(r"\[\s*FAILED\s*\]\s+([^\s].*)$", re.M)


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []      # (title, detail)

    def fail(self, title, detail=""):
        self.failed += 1
        self.failures.append((title, detail))
        print("FAIL: %s" % title, flush=True)

    def summary(self):
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        return line


def tail(text, n=TAIL_LINES):
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[-n:])


def run_bounded(argv, timeout, env=None, cwd=None):
    """Run argv in its own process group; kill the group on timeout.
    Returns (returncode or None on timeout, combined output)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def executables(directory, prefix):
    if not os.path.isdir(directory):
        return []
    names = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if (name.startswith(prefix) and os.path.isfile(path)
                and os.access(path, os.X_OK) and not name.endswith((".o", ".d"))):
            names.append(name)
    return names


def describe_status(rc):
    if rc is None:
        return "timed out"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def run_unit(build, tally):
    tdir = os.path.join(build, "tests")
    for name in executables(tdir, "test_"):
        path = os.path.join(tdir, name)
        start = time.monotonic()
        rc, out = run_bounded([path], UNIT_TIMEOUT, cwd=ROOT)
        took = time.monotonic() - start
        passed = sum(int(m) for m in PASSED_RE.findall(out))
        failed = sum(int(m) for m in FAILED_RE.findall(out))
        has_summary = bool(PASSED_RE.search(out) or FAILED_RE.search(out))
        tally.passed += passed
        if failed:
            names = [n for n in FAILED_NAME_RE.findall(out)
                     if not re.match(r"\d+\s+test", n)]
            tally.failed += failed - 1
            tally.fail("unit %s: %d failed (%s)" % (name, failed, ", ".join(names)),
                       tail(out))
        if rc != 0 and (not has_summary or (not failed)):
            # A crash, a timeout or a bad exit not explained by the summary.
            tally.fail("unit %s: %s%s" % (name, describe_status(rc),
                                          "" if has_summary else " without a summary"),
                       tail(out))
        print("unit %-32s %3d passed %3d failed  %.1fs" % (name, passed, failed, took),
              flush=True)


def run_fuzz(build, tally):
    fdir = os.path.join(build, "fuzz")
    for name in executables(fdir, "fuzz_"):
        corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", name[len("fuzz_"):])
        if not os.path.isdir(corpus) or not os.listdir(corpus):
            tally.fail("fuzz %s: no seeds in %s" % (name, corpus))
            continue
        rc, out = run_bounded([os.path.join(fdir, name), corpus], FUZZ_TIMEOUT, cwd=ROOT)
        if rc == 0:
            tally.passed += 1
            print("fuzz %-32s ok (%d seeds)" % (name, len(os.listdir(corpus))), flush=True)
        else:
            tally.fail("fuzz %s: %s" % (name, describe_status(rc)), tail(out))


def have_pytest_timeout():
    try:
        import pytest_timeout  # noqa: F401
        return True
    except ImportError:
        return False


def sanitized(build):
    """True when the build under test has ASan compiled in."""
    try:
        with open(os.path.join(build, "libfacteur.a"), "rb") as f:
            return b"__asan_report" in f.read()
    except OSError:
        return False


def sanitizer_env(env, report_dir):
    """Point ASan and UBSan reports of every process at report_dir, keeping
    any option the caller already set (theirs win)."""
    base = os.path.join(report_dir, "san")
    asan = "log_path=%s:log_exe_name=1:detect_leaks=1" % base
    ubsan = "log_path=%s:log_exe_name=1:print_stacktrace=1" % base
    for name, ours in (("ASAN_OPTIONS", asan), ("UBSAN_OPTIONS", ubsan)):
        theirs = env.get(name, "")
        env[name] = ours + (":" + theirs if theirs else "")


LSAN_CANNOT_RUN_RE = re.compile(
    r"==(?:[^=\s]+==)?\d+==(Can't open /proc/\d+/task for reading\."
    r"|LeakSanitizer has encountered a fatal error\.|HINT: .*)$")


def leak_check_impossible(text):
    """A report saying only that LeakSanitizer could not run: a chrooted
    daemon (master.cf chroot y) has no /proc for LSan's thread list, so its
    exit-time leak check stops there.  Nothing was checked, nothing found."""
    lines = [l for l in text.splitlines() if l.strip()]
    return bool(lines) and all(LSAN_CANNOT_RUN_RE.match(l) for l in lines)


def collect_reports(report_dir, tally):
    """One failure per sanitizer report file in report_dir."""
    names = sorted(os.listdir(report_dir))
    for name in names[:REPORT_MAX]:
        path = os.path.join(report_dir, name)
        try:
            with open(path, "rb") as f:
                text = f.read(64 * 1024).decode("utf-8", "replace")
        except OSError as e:
            text = "(unreadable: %s)" % e
        if leak_check_impossible(text) or (name.startswith("chroot-") and not text):
            # Empty from a chrooted daemon: master's stop closes the status
            # pipe ("master is gone": exit, so the leak check starts, opening
            # the file) and then sends SIGTERM, which ends it before it writes.
            tally.skipped += 1
            print("skipped: %s: exit-time leak check could not run (chroot)" % name,
                  flush=True)
            continue
        head = "\n".join(text.splitlines()[:REPORT_LINES])
        tally.fail("sanitizer report %s" % name, head)
    if len(names) > REPORT_MAX:
        tally.fail("sanitizer reports: %d more not shown" % (len(names) - REPORT_MAX))


def run_system(build, binp, libexec, tally, extra):
    sysdir = os.path.join(ROOT, "tests", "system")
    if not any(n.startswith("test_") and n.endswith(".py") for n in os.listdir(sysdir)):
        return
    env = dict(os.environ)
    report_dir = None
    if sanitized(build):
        report_dir = tempfile.mkdtemp(prefix="facteur-san-")
        # Daemons run as the unprivileged test user when we are root.
        os.chmod(report_dir, 0o1777)
        sanitizer_env(env, report_dir)
        # The harness mirrors it inside each queue directory for the
        # chrooted daemons and moves what they write back here.
        env["FACTEUR_SAN_DIR"] = report_dir
    try:
        run_pytest(sysdir, build, binp, libexec, tally, extra, env)
    finally:
        if report_dir is not None:
            collect_reports(report_dir, tally)
            shutil.rmtree(report_dir, ignore_errors=True)


def run_pytest(sysdir, build, binp, libexec, tally, extra, env):
    env["FACTEUR_BIN"] = os.path.abspath(binp)
    env["FACTEUR_LIBEXEC"] = os.path.abspath(libexec)
    env["FACTEUR_ROOT"] = ROOT
    env["FACTEUR_BUILD"] = os.path.abspath(build)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory(prefix="facteur-junit-") as tmp:
        xml_path = os.path.join(tmp, "junit.xml")
        argv = ["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "-q",
                "--continue-on-collection-errors",
                "-rfE", "--junitxml=%s" % xml_path, sysdir]
        if have_pytest_timeout():
            argv.insert(-1, "--timeout=%d" % PYTEST_CASE_TIMEOUT)
        argv += extra
        rc, out = run_bounded(argv, PYTEST_TIMEOUT, env=env, cwd=ROOT)
        print(tail(out, 15), flush=True)
        if rc is None:
            tally.fail("system tests: pytest timed out after %ds" % PYTEST_TIMEOUT, tail(out))
        if not os.path.exists(xml_path):
            tally.fail("system tests: pytest wrote no report (%s)" % describe_status(rc),
                       tail(out))
            return
        count_junit(xml_path, tally, out)
        if rc not in (0, 1, 5, None):
            # 2: interrupted, 3: internal error, 4: usage error.
            tally.fail("system tests: pytest %s" % describe_status(rc), tail(out))


def count_junit(xml_path, tally, out):
    tree = ET.parse(xml_path)
    for case in tree.iter("testcase"):
        title = "system %s::%s" % (case.get("classname", ""), case.get("name", ""))
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            detail = (bad.get("message") or "") + "\n" + (bad.text or "")
            tally.fail(title, tail(detail))
            continue
        if case.find("skipped") is not None:
            tally.skipped += 1
            continue
        tally.passed += 1


def main():
    ap = argparse.ArgumentParser(description="run every facteur test")
    ap.add_argument("--build", default="build")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--libexec", default="libexec")
    ap.add_argument("--only", choices=["unit", "fuzz", "system"], action="append")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = ap.parse_args()
    build = args.build if os.path.isabs(args.build) else os.path.join(ROOT, args.build)
    binp = args.bin if os.path.isabs(args.bin) else os.path.join(ROOT, args.bin)
    libexec = args.libexec if os.path.isabs(args.libexec) else os.path.join(ROOT, args.libexec)
    only = set(args.only or ["unit", "fuzz", "system"])

    tally = Tally()
    if "unit" in only:
        run_unit(build, tally)
    if "fuzz" in only:
        run_fuzz(build, tally)
    if "system" in only:
        run_system(build, binp, libexec, tally, args.pytest_args)

    if tally.failures:
        print("\n==== failures ====")
        for title, detail in tally.failures:
            print("--- %s" % title)
            if detail.strip():
                print(detail)
    print(tally.summary())
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
