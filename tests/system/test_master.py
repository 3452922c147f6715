"""master: supervision, throttling, reload, stop, configuration errors,
one master per queue directory, privilege dropping and chroot.

The supervised service is authd (a real multi-client daemon built on the
server skeleton; a round trip is its Dovecot auth handshake); crash loops
and listeners use small shell scripts put in the instance's
daemon_directory.
"""

import os
import re
import signal
import socket
import time

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master")


def auth_line(chroot="n", unpriv="-"):
    return fh.service_line("auth", "unix", "authd", chroot=chroot, unpriv=unpriv, maxproc=1)


def auth_roundtrip(instance):
    """Connect to private/auth and read authd's handshake through DONE;
    returns the handshake lines."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(instance.socket_path("auth"))
        s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        data = b""
        while not data.endswith(b"DONE\n") and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    lines = data.decode().splitlines()
    assert lines and lines[0].startswith("VERSION\t1\t"), lines
    assert lines[-1] == "DONE", lines
    return lines


def test_killed_child_is_restarted_and_logged(instance):
    require_daemon("authd")
    instance.configure(services=[auth_line()])
    instance.start()
    auth_roundtrip(instance)
    first = instance.wait_service_pid("authd")
    mark = instance.log_mark()
    os.kill(first, signal.SIGKILL)
    instance.wait_for_log(r"facteur/master\[\d+\]: warning: process \S*/authd pid %d "
                          r"killed by signal 9" % first, since=mark)
    # The next request gets a fresh process that answers.
    fh.wait_until(lambda: _try_roundtrip(instance), 10, "authd to answer again")
    second = instance.wait_service_pid("authd", exclude=(first,))
    assert second != first
    assert not fh.pid_alive(first)
    instance.wait_for_log(r"facteur/master\[\d+\]: service auth/unix: process \S*/authd "
                          r"pid %d started to replace pid %d" % (second, first), since=mark)


def _try_roundtrip(instance):
    try:
        return auth_roundtrip(instance)
    except (OSError, AssertionError):
        return None


def test_crash_loop_is_throttled(instance):
    spawns = os.path.join(instance.dir, "spawns")
    open(spawns, "w").close()
    os.chmod(spawns, 0o666)
    instance.add_script("crasher", "date +%%s.%%N >> %s\nexit 1\n" % spawns)
    port = fh.free_port()
    instance.configure(params={"service_throttle_time": "2s"},
                       services=[fh.service_line("127.0.0.1:%d" % port, "inet", "crasher",
                                                 private="n")])
    instance.start()
    mark = instance.log_mark()
    # A client waiting in the backlog keeps the listener readable, so master
    # keeps trying to start the crashing command.
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        instance.wait_for_log(r"facteur/master\[\d+\]: warning: \S*/crasher: bad command "
                              r"startup -- throttling", since=mark, timeout=10)
        time.sleep(5.5)
    finally:
        client.close()
    times = [float(t) for t in open(spawns).read().split()]
    assert 2 <= len(times) <= 5, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 1.5 for g in gaps), gaps
    assert instance.log_lines(r"warning: process \S*/crasher pid \d+ exit status 1", mark)


def test_reload_applies_a_changed_master_cf(instance):
    require_daemon("authd")
    instance.add_sleeper()
    kept, removed, added = fh.free_port(), fh.free_port(), fh.free_port()
    line = lambda port: fh.service_line("127.0.0.1:%d" % port, "inet", "sleeper", private="n")
    instance.configure(services=[line(kept), line(removed), auth_line()])
    pid = instance.start().master_pid()
    inode = fh.listening_inode(kept)
    assert inode is not None
    assert fh.listening_inode(removed) is not None
    assert fh.listening_inode(added) is None
    assert inode in fh.socket_inodes(pid).values()

    mark = instance.log_mark()
    instance.configure(services=[line(kept), line(added), auth_line()])
    instance.reload()
    instance.wait_for_log(r"facteur/master\[%d\]: reload" % pid, since=mark)
    fh.wait_until(lambda: fh.listening_inode(added) is not None, 10, "the added service")
    fh.wait_until(lambda: fh.listening_inode(removed) is None, 10, "the removed service to go")
    assert fh.tcp_connect(removed) is None
    # The unchanged service kept the very same listening socket.
    assert fh.listening_inode(kept) == inode
    assert inode in fh.socket_inodes(pid).values()
    assert instance.master_pid() == pid
    auth_roundtrip(instance)


def test_stop_leaves_nothing_running(instance):
    require_daemon("authd")
    instance.add_sleeper()
    port = fh.free_port()
    instance.configure(services=[auth_line(), fh.service_line(
        "127.0.0.1:%d" % port, "inet", "sleeper", private="n")])
    instance.start()
    auth_roundtrip(instance)
    conn = fh.tcp_connect(port)             # makes master start a sleeper
    try:
        fh.wait_until(lambda: instance.service_pids("sleeper"), 10, "a sleeper child")
        children = instance.service_pids("authd") + instance.service_pids("sleeper")
        assert len(children) == 2
        mark = instance.log_mark()
        pid = instance.master_pid()
        instance.stop()                     # raises if anything is left running
        for p in children + [pid]:
            assert not fh.pid_alive(p)
        assert not os.path.exists(instance.pid_file())
        assert instance.log_lines(r"facteur/master\[%d\]: terminating on signal 15" % pid,
                                  mark)
    finally:
        conn.close()


def test_bad_master_cf_refuses_to_start(instance):
    instance.add_sleeper()
    instance.configure(services=["# one comment",
                                 "127.0.0.1:%d inet n - n - - sleeper" % fh.free_port(),
                                 "oops inet n - n"])
    r = instance.facteur("start")
    assert r.returncode != 0
    assert re.search(r"master\.cf, line 4\b", r.stderr), r.stderr
    assert instance.master_pid() is None
    # master itself refuses it too, whoever starts it.
    r = fh.run_cmd([os.path.join(instance.daemon_dir, "master"), "-c", instance.confdir, "-d"],
                   timeout=15)
    assert r.returncode != 0
    assert re.search(r"master\.cf, line 4\b", r.stderr + instance.log_text())


def test_bad_main_cf_refuses_to_start(instance):
    instance.add_sleeper()
    instance.configure(services=["127.0.0.1:%d inet n - n - - sleeper" % fh.free_port()])
    with open(os.path.join(instance.confdir, "main.cf"), "a") as f:
        f.write("max_idle = forever\n")
    nline = open(os.path.join(instance.confdir, "main.cf")).read().count("\n")
    r = instance.facteur("start")
    assert r.returncode != 0
    assert "main.cf, line %d" % nline in r.stderr, r.stderr
    r = fh.run_cmd([os.path.join(instance.daemon_dir, "master"), "-c", instance.confdir, "-d"],
                   timeout=15)
    assert r.returncode != 0
    assert "main.cf, line %d" % nline in r.stderr + instance.log_text()


def test_second_master_on_one_queue_directory_refuses(instance, make_instance):
    instance.add_sleeper()
    instance.configure(services=["127.0.0.1:%d inet n - n - - sleeper" % fh.free_port()])
    pid = instance.start().master_pid()
    # Another configuration directory naming the same queue directory.
    other = make_instance("second")
    other.add_sleeper()
    other.configure(params={"queue_directory": instance.queue},
                    services=["127.0.0.1:%d inet n - n - - sleeper" % fh.free_port()])
    r = fh.run_cmd([os.path.join(other.daemon_dir, "master"), "-c", other.confdir, "-d"],
                   timeout=15)
    assert r.returncode != 0
    assert instance.master_pid() == pid
    r = other.facteur("start")
    assert r.returncode != 0
    assert "already running" in r.stderr
    assert instance.master_pid() == pid


@pytest.mark.skipif(not fh.is_root(), reason="privileges are dropped only by root")
def test_child_runs_as_mail_owner_in_its_chroot(instance):
    require_daemon("authd")
    import pwd
    instance.configure(services=[auth_line(chroot="y")])
    instance.start()
    auth_roundtrip(instance)
    child = instance.wait_service_pid("authd")
    status = fh.proc_status(child)
    uid = pwd.getpwnam(instance.mail_owner).pw_uid
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split()[0] == str(pwd.getpwnam(instance.mail_owner).pw_gid)
    assert status["Groups"].split() in ([], [str(pwd.getpwnam(instance.mail_owner).pw_gid)])
    assert os.readlink("/proc/%d/root" % child) == os.path.realpath(instance.queue)
    # master itself stays root and unjailed.
    master = instance.master_pid()
    assert fh.proc_status(master)["Uid"].split()[0] == "0"
    assert os.readlink("/proc/%d/root" % master) == "/"


@pytest.mark.skipif(not fh.is_root(), reason="privileges are dropped only by root")
def test_unpriv_n_child_stays_root_without_chroot(instance):
    require_daemon("authd")
    instance.configure(services=[auth_line(unpriv="n")])
    instance.start()
    auth_roundtrip(instance)
    child = instance.wait_service_pid("authd")
    assert fh.proc_status(child)["Uid"].split()[0] == "0"
    assert os.readlink("/proc/%d/root" % child) == "/"


def test_foreground_master_stops_on_sigterm(instance):
    """master -d (no daemonizing, as under systemd): same pid file and lock,
    and SIGTERM ends it with status 0 and removes the pid file."""
    require_daemon("authd")
    instance.configure(services=[auth_line()])
    instance.start(foreground=True)
    assert instance.master_pid() == instance.master_proc.pid
    auth_roundtrip(instance)
    child = instance.wait_service_pid("authd")
    r = instance.facteur("status")
    assert r.returncode == 0
    assert "PID: %d" % instance.master_proc.pid in r.stderr
    proc = instance.master_proc
    instance.stop()
    assert proc.returncode == 0
    assert not fh.pid_alive(child)
    assert not os.path.exists(instance.pid_file())
