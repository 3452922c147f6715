"""The facteur control command: start, stop, reload, status, check, flush.

Each test builds an instance (facteur_harness.Instance) with a service
table of one inet test service (a shell script that just sleeps), so only
master and the command are exercised here.
"""

import os
import pwd
import re

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon


def sleeper_instance(instance, port=None):
    """An instance whose only service is a script on a loopback port."""
    instance.add_sleeper()
    port = port or fh.free_port()
    instance.configure(services=[fh.service_line("127.0.0.1:%d" % port, "inet", "sleeper",
                                                 private="n")])
    return port


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master")


def test_status_stop_reload_when_not_running(instance):
    sleeper_instance(instance)
    r = instance.facteur("status")
    assert r.returncode == 1
    assert "the mail system is not running" in r.stderr
    for cmd in ("stop", "reload", "flush"):
        r = instance.facteur(cmd)
        assert r.returncode == 1, cmd
        assert "not running" in r.stderr, (cmd, r.stderr)


def test_start_status_reload_stop(instance):
    port = sleeper_instance(instance)
    mark = instance.log_mark()
    r = instance.facteur("start")
    assert r.returncode == 0, r.stderr
    assert "starting the mail system" in r.stderr
    pid = instance.wait_ready()
    instance.started = True
    assert fh.listening_inode(port) is not None

    r = instance.facteur("status")
    assert r.returncode == 0
    assert "the mail system is running. PID: %d" % pid in r.stderr

    r = instance.facteur("start")
    assert r.returncode == 1
    assert "the mail system is already running" in r.stderr
    assert instance.master_pid() == pid

    r = instance.facteur("reload")
    assert r.returncode == 0, r.stderr
    assert "refreshing the mail system" in r.stderr
    instance.wait_for_log(r"facteur/master\[%d\]: reload" % pid, since=mark)
    assert instance.master_pid() == pid

    r = instance.facteur("stop")
    assert r.returncode == 0, r.stderr
    assert "stopping the mail system" in r.stderr
    assert not fh.pid_alive(pid)
    instance.started = False
    assert instance.instance_pids() == []
    r = instance.facteur("status")
    assert r.returncode == 1
    r = instance.facteur("stop")
    assert r.returncode == 1
    assert "the mail system is not running" in r.stderr


def test_stale_pid_file_is_not_running(instance):
    sleeper_instance(instance)
    instance.facteur_check()
    # A pid file naming a live process that is not master (this test).
    with open(instance.pid_file(), "w") as f:
        f.write("%10d\n" % os.getpid())
    r = instance.facteur("status")
    assert r.returncode == 1
    with open(instance.pid_file(), "w") as f:
        f.write("garbage\n")
    assert instance.facteur("status").returncode == 1
    os.unlink(instance.pid_file())


def test_check_creates_the_queue_tree(instance):
    sleeper_instance(instance)
    assert not os.path.exists(instance.queue)
    r = instance.facteur("check")
    assert r.returncode == 0, r.stderr
    assert "created missing directory" in r.stderr
    modes = {"maildrop": 0o1730, "public": 0o710, "private": 0o700, "incoming": 0o700,
             "active": 0o700, "deferred": 0o700, "hold": 0o700, "corrupt": 0o700,
             "defer": 0o700, "pid": 0o755}
    for name, mode in modes.items():
        path = os.path.join(instance.queue, name)
        assert os.path.isdir(path), path
        assert fh.file_mode(path) == mode, (name, oct(fh.file_mode(path)))
    if fh.is_root():
        owner = pwd.getpwnam(instance.mail_owner).pw_uid
        for name in modes:
            st = os.stat(os.path.join(instance.queue, name))
            assert st.st_uid == (0 if name == "pid" else owner), name
        import grp
        gid = grp.getgrnam(instance.setgid_group).gr_gid
        assert os.stat(os.path.join(instance.queue, "maildrop")).st_gid == gid
        assert os.stat(os.path.join(instance.queue, "public")).st_gid == gid
    # A second check has nothing to say.
    r = instance.facteur("check")
    assert r.returncode == 0
    assert r.stderr == ""


def test_check_recreates_a_missing_directory(instance):
    sleeper_instance(instance)
    instance.facteur_check()
    os.rmdir(os.path.join(instance.queue, "hold"))
    r = instance.facteur("check")
    assert r.returncode == 0
    assert "created missing directory %s/hold" % instance.queue in r.stderr
    assert fh.file_mode(os.path.join(instance.queue, "hold")) == 0o700


def test_check_reports_a_wrong_mode(instance):
    sleeper_instance(instance)
    instance.facteur_check()
    path = os.path.join(instance.queue, "private")
    os.chmod(path, 0o777)
    r = instance.facteur("check")
    assert r.returncode != 0
    assert "%s has mode 0777; it must be 0700" % path in r.stderr
    # start refuses as well, and says why.
    r = instance.facteur("start")
    assert r.returncode != 0
    assert "mode 0777" in r.stderr
    assert instance.master_pid() is None


@pytest.mark.skipif(not fh.is_root(), reason="ownership is only enforced as root")
def test_check_reports_a_wrong_owner(instance):
    sleeper_instance(instance)
    instance.facteur_check()
    path = os.path.join(instance.queue, "incoming")
    os.chown(path, 0, 0)
    r = instance.facteur("check")
    assert r.returncode != 0
    assert "%s is owned by uid 0; it must be owned by %s" % (path, instance.mail_owner) \
        in r.stderr


def test_check_reports_a_symlink_instead_of_a_directory(instance):
    sleeper_instance(instance)
    instance.facteur_check()
    path = os.path.join(instance.queue, "corrupt")
    os.rmdir(path)
    os.symlink("/tmp", path)
    r = instance.facteur("check")
    assert r.returncode != 0
    assert "%s is not a directory" % path in r.stderr


def test_check_reports_a_missing_daemon(instance):
    port = fh.free_port()
    instance.configure(services=[
        "# comment line",
        fh.service_line("127.0.0.1:%d" % port, "inet", "nosuchd", private="n")])
    r = instance.facteur("check")
    assert r.returncode != 0
    assert re.search(r"master\.cf, line 3: service 127\.0\.0\.1:%d/inet: command \S+/nosuchd "
                     r"does not exist" % port, r.stderr), r.stderr


def test_check_reports_main_cf_errors_with_file_and_line(instance):
    sleeper_instance(instance)
    main = open(os.path.join(instance.confdir, "main.cf")).read()
    instance.write_file("etc/main.cf", main + "service_throttle_time = soon\n")
    nlines = main.count("\n") + 1
    r = instance.facteur("check")
    assert r.returncode != 0
    assert "main.cf, line %d" % nlines in r.stderr, r.stderr


def test_check_reports_master_cf_errors_with_file_and_line(instance):
    sleeper_instance(instance)
    with open(os.path.join(instance.confdir, "master.cf"), "a") as f:
        f.write("broken inet n - n - - sleeper\nalso bogus\n")
    r = instance.facteur("check")
    assert r.returncode != 0
    assert re.search(r"master\.cf, line [34]\b", r.stderr), r.stderr


@pytest.mark.skipif(not fh.is_root(), reason="mail_owner is only checked as root")
@pytest.mark.parametrize("owner,message", [
    ("root", 'mail_owner: user "root" has uid or gid 0'),
    ("no-such-user-facteur", 'mail_owner: user "no-such-user-facteur" does not exist'),
])
def test_check_refuses_a_bad_mail_owner(instance, owner, message):
    port = fh.free_port()
    instance.add_sleeper()
    instance.configure(params={"mail_owner": owner},
                       services=[fh.service_line("127.0.0.1:%d" % port, "inet", "sleeper")])
    r = instance.facteur("check")
    assert r.returncode != 0
    assert message in r.stderr


def test_flush_without_qmgr(instance):
    sleeper_instance(instance)
    instance.start()
    r = instance.facteur("flush")
    assert r.returncode == 1
    assert "qmgr is not running" in r.stderr


def test_flush_wakes_a_fifo_reader(instance):
    sleeper_instance(instance)
    instance.start()
    fifo = os.path.join(instance.queue, "public", "qmgr")
    os.mkfifo(fifo, 0o622)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = instance.facteur("flush")
        assert r.returncode == 0, r.stderr
        assert os.read(rfd, 16) == b"FAI"
    finally:
        os.close(rfd)
        os.unlink(fifo)


def test_usage_errors(instance):
    sleeper_instance(instance)
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur"), "-c", instance.confdir, "frobnicate"])
    assert r.returncode == 2
    assert 'unknown command: "frobnicate"' in r.stderr
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur")])
    assert r.returncode == 2
    assert "usage:" in r.stderr
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur"), "-c", "/nonexistent/dir", "status"])
    assert r.returncode != 0
    assert "/nonexistent/dir" in r.stderr


def test_flush_wakes_a_socket_listener(instance):
    import socket
    sleeper_instance(instance)
    instance.start()
    path = os.path.join(instance.queue, "public", "qmgr")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)
    try:
        r = instance.facteur("flush")
        assert r.returncode == 0, r.stderr
        conn, _ = srv.accept()
        conn.settimeout(10)
        data = b""
        while len(data) < 3:
            chunk = conn.recv(16)
            if not chunk:
                break
            data += chunk
        conn.close()
        assert data == b"FAI"
    finally:
        srv.close()
        os.unlink(path)
