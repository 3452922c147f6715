"""test_chroot_lookups.py - table lookups inside a chrooted smtpd.

As root, master chroots smtpd into the queue directory (master.cf chroot
column y) after smtpd opened its tables, so neither the table files
(/.../access.db) nor /etc/passwd exist where smtpd then looks.  Lookups
must go on from what was opened before the jail:

- hash: tables (check_recipient_access, alias_maps) answer: the access
  table's REJECT applies and an alias is a known recipient (a failing
  table would give 451 "Temporary lookup failure" to every RCPT);
- the default local_recipient_maps (unix:passwd.byname $alias_maps)
  knows a real system user this test creates (250) and rejects an unknown
  one with 550 5.1.1.

Skipped when not root (no chroot without root); CI runs as root.
"""

import os
import pwd
import subprocess

import pytest

import facteur_harness as fh
from conftest import require_command, require_daemon
from test_smtpd_common import Dialog

LOCAL_USER = "facteurchroot"


@pytest.fixture(scope="module")
def system_user():
    """A real system user in /etc/passwd, removed again at the end unless
    it existed before."""
    try:
        pwd.getpwnam(LOCAL_USER)
        created = False
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            LOCAL_USER], capture_output=True, text=True, timeout=30)
        # A concurrent run may have created it meanwhile: only its absence fails.
        created = r.returncode == 0
        pwd.getpwnam(LOCAL_USER)
    yield LOCAL_USER
    if created:
        subprocess.run(["userdel", LOCAL_USER], capture_output=True, timeout=30)


def build_table(inst, name, text, *opts):
    """Write etc/NAME and build etc/NAME.db with facteur-map (opts: -a for
    aliases(5) format); the hash: spec."""
    path = inst.write_file("etc/" + name, text)
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur-map"), *opts, "hash:" + path])
    assert r.returncode == 0, "facteur-map %s: %s%s" % (path, r.stdout, r.stderr)
    assert os.path.exists(path + ".db")
    return "hash:" + path


def start_chrooted_smtpd(inst):
    """smtpd chrooted, default local_recipient_maps; returns the port."""
    require_daemon("master", "smtpd")
    require_command("facteur-map")
    aliases = build_table(inst, "aliases", "postmaster: root\nwebmaster: root\n", "-a")
    access = build_table(inst, "access",
                         "spamtrap@example.test REJECT no mail for the trap\n"
                         "blocked@example.test REJECT chroot access table applied\n")
    port = fh.free_port()
    params = {
        "mydestination": "localhost, example.test",
        "mynetworks": "192.0.2.0/24",
        "smtpd_peername_lookup": "no",
        "smtpd_error_sleep_time": "0s",
        "smtpd_timeout": "20s",
        "alias_maps": aliases,
        "smtpd_recipient_restrictions": "check_recipient_access %s, "
                                        "reject_unauth_destination" % access,
        "unknown_local_recipient_reject_code": "550",
    }
    # local_recipient_maps is left out on purpose: its default is the point.
    inst.configure(params=params, services=[
        fh.service_line("127.0.0.1:%d" % port, "inet", "smtpd", private="n", chroot="y"),
    ])
    main_cf = open(os.path.join(inst.confdir, "main.cf")).read()
    assert "local_recipient_maps" not in main_cf
    inst.start()
    return port


def rcpt(dialog, addr):
    """RCPT TO:<addr>; the reply as (code, text)."""
    dialog.send("RCPT TO:<%s>\r\n" % addr)
    return dialog.reply()


def test_lookups_in_chrooted_smtpd(make_instance, system_user):
    if not fh.is_root():
        pytest.skip("chroot needs root")
    inst = make_instance("chroot-lookups")
    port = start_chrooted_smtpd(inst)
    d = Dialog(port)
    try:
        d.expect(220)
        d.cmd("EHLO client.example", 250)
        # The smtpd serving us is jailed in the queue directory.
        pids = inst.service_pids("smtpd")
        assert pids, "no smtpd process"
        roots = {os.path.realpath(os.readlink("/proc/%d/root" % p)) for p in pids}
        assert roots == {os.path.realpath(inst.queue)}, roots
        d.cmd("MAIL FROM:<sender@client.example>", 250)

        code, text = rcpt(d, "%s@example.test" % system_user)
        assert code == 250, "real user %s: %s" % (system_user, text)
        code, text = rcpt(d, "nosuchuser-xyzzy@example.test")
        assert code == 550 and "5.1.1" in text, text
        # From alias_maps, a hash: table read in the jail.
        code, text = rcpt(d, "webmaster@example.test")
        assert code == 250, "alias: %s" % text
        code, text = rcpt(d, "blocked@example.test")
        assert code in (550, 554) and "chroot access table applied" in text, text
        code, text = rcpt(d, "spamtrap@example.test")
        assert code in (550, 554) and "no mail for the trap" in text, text
        # Twice more: the open handles keep answering lookup after lookup.
        for _ in range(2):
            assert rcpt(d, "%s@example.test" % system_user)[0] == 250
            assert "chroot access table applied" in rcpt(d, "blocked@example.test")[1]
        d.cmd("QUIT", 221)
    finally:
        d.close()
    assert "Temporary lookup failure" not in inst.log_text()
    assert not inst.log_lines(r"(warning|error|fatal):.*(\.db|passwd)"), inst.log_text()
