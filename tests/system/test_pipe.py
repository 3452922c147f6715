"""pipe system tests: a real master, qmgr and pipe agent delivering the
|command and /file targets of local aliases; fake contract-5 agents
(test_qmgr.FakeAgent) stand in for smtp and local so DSNs can be read.

As root (CI) the commands must run as the alias file's owner (a test
user), or as default_privs (nobody) for a root-owned alias file, never
as uid 0.  Run by an ordinary user, everything runs as that user.
"""

import os
import pwd
import re
import subprocess

import pytest

import facteur_harness as fh
import qfile_py as qp
from conftest import require_daemon, require_command
from test_qmgr import FakeAgent, close_agents, dsn_for, queue_msg, trigger

PIPE_USER = "facteurpipe"


@pytest.fixture(autouse=True)
def built():
    require_command("facteur")
    require_daemon("master", "qmgr", "pipe")


def pipe_user():
    """The alias owner: a test account as root, ourselves otherwise."""
    if not fh.is_root():
        return pwd.getpwuid(os.getuid())
    try:
        return pwd.getpwnam(PIPE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        PIPE_USER], capture_output=True)
        return pwd.getpwnam(PIPE_USER)


def pipe_instance(inst, aliases, params=None, owner=None):
    """Scripts in inst/bin, an output directory anyone may write, the
    alias file (texthash:) owned by owner, and a running instance with
    qmgr, pipe and fake smtp/local agents."""
    out = os.path.join(inst.dir, "out")
    os.makedirs(out, exist_ok=True)
    os.chmod(out, 0o1777)
    bindir = os.path.join(inst.dir, "bin")
    os.makedirs(bindir, exist_ok=True)
    os.chmod(bindir, 0o755)
    scripts = {
        # record NAME: uid, environment, signal mask and stdin into out/NAME.*
        "record": 'id -u > "%s/$1.uid"\nenv > "%s/$1.env"\n'
                  'grep -E "^Sig(Blk|Ign):" /proc/$$/status > "%s/$1.sig"\n'
                  'cat > "%s/$1.in"\nexit 0\n' % (out, out, out, out),
        # fail CODE: a line of output, the input read, exit CODE
        "fail": 'echo "sorry: mailbox $1 unavailable"\ncat > /dev/null\nexit "$1"\n',
        # hang: a background child, then wait forever (the group must die)
        "hang": 'sleep 60 &\necho $! > "%s/hang.pid"\ncat > /dev/null\nwait\n' % out,
    }
    for name, body in scripts.items():
        p = os.path.join(bindir, name)
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(p, 0o755)
    path = inst.write_file("etc/aliases", aliases % {"bin": bindir, "out": out})
    if owner is not None and fh.is_root():
        os.chown(path, owner.pw_uid, owner.pw_gid)
    p = {
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "mydestination": "localhost",
        "relay_domains": "",
        "myorigin": "localhost",
        "recipient_delimiter": "+",
        "alias_maps": "texthash:" + path,
        "allow_mail_to_commands": "alias",
        "allow_mail_to_files": "alias",
        "default_privs": "nobody",
        "command_time_limit": "60s",
    }
    if os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"):
        p["import_environment"] = "FACTEUR_CONFIG_DIR TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS"
    p.update(params or {})
    inst.configure(params=p, services=[
        fh.service_line("qmgr", "unix", "qmgr", private="n", wakeup=60, maxproc=1),
        fh.service_line("pipe", "unix", "pipe", unpriv="n"),
    ])
    inst.facteur_check()
    agents = {"smtp": FakeAgent(inst, "smtp"), "local": FakeAgent(inst, "local")}
    inst.start()
    return agents, out


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def test_command_runs_as_alias_owner_with_envelope_in_env(instance):
    owner = pipe_user()
    agents, out = pipe_instance(instance, 'prog "|%(bin)s/record prog"\n', owner=owner)
    try:
        body = "From: s@example.org\nSubject: pipe\n\nFrom the start\nhello\n"
        qid = queue_msg(instance, "s@example.org", ["prog@localhost"], body=body)
        trigger(instance)
        instance.wait_for_log(r"facteur/pipe\[\d+\]: %s: to=<prog@localhost>, relay=pipe, "
                              r".*dsn=2\.0\.0, status=sent \(delivered to command: " % qid)
        instance.wait_for_log(r"%s: removed" % qid)
        with open(os.path.join(out, "prog.uid")) as f:
            uid = int(f.read())
        assert uid == owner.pw_uid and uid != 0
        env = read_env(os.path.join(out, "prog.env"))
        assert env["SENDER"] == "s@example.org"
        assert env["RECIPIENT"] == "prog@localhost"
        assert env["LOCAL"] == "prog" and env["DOMAIN"] == "localhost"
        assert env["EXTENSION"] == "" and env["ORIGINAL_RECIPIENT"] == "prog@localhost"
        assert env["PATH"] == "/usr/bin:/bin"
        # Default signal handling: nothing blocked or ignored by the agent.
        with open(os.path.join(out, "prog.sig")) as f:
            sig = dict(line.split() for line in f.read().replace(":", "").splitlines())
        # Signals 32 and 33 are glibc's own (thread cancel, setxid): no glibc
        # program can change them, so a disposition inherited from whatever
        # started the test run passes through; every other one must be clean.
        glibc_reserved = (1 << 31) | (1 << 32)
        assert int(sig["SigBlk"], 16) & ~glibc_reserved == 0, sig
        assert int(sig["SigIgn"], 16) & ~glibc_reserved == 0, sig
        # A clean environment: nothing of the agent's own beyond the list.
        assert not any(k.startswith("FACTEUR_") and k != "FACTEUR_CONFIG_DIR" for k in env)
        with open(os.path.join(out, "prog.in")) as f:
            data = f.read()
        assert data.startswith("Return-Path: <s@example.org>\nDelivered-To: prog@localhost\n")
        assert data.endswith(body)
    finally:
        close_agents(agents)


@pytest.mark.skipif(not fh.is_root(), reason="needs root to own files as others")
def test_root_owned_aliases_run_as_default_privs(instance):
    agents, out = pipe_instance(instance, 'prog "|%(bin)s/record rootprog"\n', owner=None)
    try:
        qid = queue_msg(instance, "s@example.org", ["prog@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % qid)
        with open(os.path.join(out, "rootprog.uid")) as f:
            assert int(f.read()) == pwd.getpwnam("nobody").pw_uid
    finally:
        close_agents(agents)


def test_exit_codes_defer_and_bounce(instance):
    agents, out = pipe_instance(instance, 'tempfail "|%(bin)s/fail 75"\nnouser "|%(bin)s/fail 67"\n',
                        owner=pipe_user())
    try:
        q1 = queue_msg(instance, "s@example.org", ["tempfail@localhost"])
        q2 = queue_msg(instance, "s@example.org", ["nouser@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: to=<tempfail@localhost>, relay=pipe, .*dsn=4\.3\.0, "
                              r"status=deferred \(Command died with status 75 \(temporary "
                              r"failure\): sorry: mailbox 75 unavailable\)" % q1)
        fh.wait_until(lambda: q1 in qp.list_queue(instance.queue, "deferred"), 10,
                      "the deferred message in deferred/")
        instance.wait_for_log(r"%s: to=<nouser@localhost>, relay=pipe, .*dsn=5\.1\.1, "
                              r"status=bounced \(Command died with status 67 \(user unknown\): "
                              r"sorry: mailbox 67 unavailable\)" % q2)
        instance.wait_for_log(r"%s: sender non-delivery notification" % q2)
        instance.wait_for_log(r"%s: removed" % q2)
        _, text = fh.wait_until(lambda: dsn_for(agents["smtp"], "s@example.org"), 10,
                                "the DSN to the sender")
        assert "Final-Recipient: rfc822; nouser@localhost" in text
        assert "Status: 5.1.1" in text and "Action: failed" in text
    finally:
        close_agents(agents)


def test_time_limit_kills_the_process_group(instance):
    agents, out = pipe_instance(instance, 'slow "|%(bin)s/hang"\n', owner=pipe_user(),
                        params={"command_time_limit": "2s"})
    try:
        qid = queue_msg(instance, "s@example.org", ["slow@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: to=<slow@localhost>, relay=pipe, .*dsn=4\.3\.0, "
                              r"status=deferred \(Command time limit exceeded\)" % qid,
                              timeout=20)
        with open(os.path.join(out, "hang.pid")) as f:
            pid = int(f.read())
        # The background sleep was in the command's process group: gone.
        fh.wait_until(lambda: not fh.pid_alive(pid), 5, "the killed command's child to go")
    finally:
        close_agents(agents)


def test_commands_not_allowed_bounce(instance):
    agents, out = pipe_instance(instance, 'prog "|%(bin)s/record never"\n', owner=pipe_user(),
                        params={"allow_mail_to_commands": ""})
    try:
        qid = queue_msg(instance, "s@example.org", ["prog@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: to=<prog@localhost>, relay=none, .*dsn=5\.7\.1, "
                              r"status=bounced \(mail to command is restricted\)" % qid)
        instance.wait_for_log(r"%s: removed" % qid)
        assert not os.path.exists(os.path.join(out, "never.uid"))
    finally:
        close_agents(agents)


def test_file_delivery_appends_mbox(instance):
    owner = pipe_user()
    agents, out = pipe_instance(instance, "archive %(out)s/archive.mbox\n"
                                  "linked %(out)s/link.mbox\n", owner=owner)
    try:
        target = os.path.join(out, "victim")
        with open(target, "w") as f:
            f.write("keep me\n")
        os.symlink(target, os.path.join(out, "link.mbox"))
        body1 = "From: s@example.org\nSubject: one\n\nFrom me to you\nline\n"
        body2 = "From: s@example.org\nSubject: two\n\nsecond\n"
        q1 = queue_msg(instance, "s@example.org", ["archive@localhost"], body=body1)
        trigger(instance)
        instance.wait_for_log(r"%s: to=<archive@localhost>, relay=pipe, .*status=sent "
                              r"\(delivered to file: " % q1)
        q2 = queue_msg(instance, "", ["archive@localhost"], body=body2)
        q3 = queue_msg(instance, "s@example.org", ["linked@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: to=<archive@localhost>, .*status=sent" % q2)
        instance.wait_for_log(r"%s: to=<linked@localhost>, relay=pipe, .*dsn=5\.2\.0, "
                              r"status=bounced \(cannot deliver to file .*symbolic link\)" % q3)
        with open(os.path.join(out, "archive.mbox")) as f:
            mbox = f.read()
        st = os.stat(os.path.join(out, "archive.mbox"))
        assert st.st_uid == owner.pw_uid and st.st_mode & 0o777 == 0o600
        froms = re.findall(r"^From (\S+) \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", mbox, re.M)
        assert froms == ["s@example.org", "MAILER-DAEMON"]
        assert "\n>From me to you\n" in mbox
        assert "Return-Path: <s@example.org>\nDelivered-To: archive@localhost\n" in mbox
        assert mbox.endswith("\nsecond\n\n")
        with open(target) as f:
            assert f.read() == "keep me\n"
    finally:
        close_agents(agents)


def test_metacharacters_in_extension_stay_in_env(instance):
    agents, out = pipe_instance(instance, 'prog "|%(bin)s/record meta"\n'
                                  'shprog "|%(bin)s/record shmeta; true"\n', owner=pipe_user())
    marker = os.path.join(out, "pwned")
    ext = "$(touch %s)`touch %s`;touch %s|x" % (marker, marker, marker)
    try:
        q1 = queue_msg(instance, "s@example.org", ["prog+%s@localhost" % ext])
        q2 = queue_msg(instance, "s@example.org", ["shprog+%s@localhost" % ext])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % q1)
        instance.wait_for_log(r"%s: removed" % q2)
        for name in ("meta", "shmeta"):
            env = read_env(os.path.join(out, name + ".env"))
            assert env["EXTENSION"] == ext
            assert env["RECIPIENT"].startswith("prog+" if name == "meta" else "shprog+")
        assert not os.path.exists(marker)
    finally:
        close_agents(agents)


def test_forged_request_only_runs_what_the_aliases_say(instance):
    """The agent checks each target against its own resolution: a request
    naming another command, another recipient or other rights (what a
    subverted qmgr could send) runs nothing it should not."""
    owner = pipe_user()
    agents, out = pipe_instance(instance, 'prog "|%(bin)s/record forged"\n', owner=owner)
    marker = os.path.join(out, "marker")
    try:
        qid = queue_msg(instance, "s@example.org", ["prog@localhost"], queue="active")
        real = "|%s/record forged" % os.path.join(instance.dir, "bin")
        now = 1700000000000000
        req = [("path", "active/" + qid), ("qid", qid), ("nexthop", "pipe"),
               ("transport", "pipe"), ("sender", "s@example.org"), ("arrival_us", now),
               ("active_us", now), ("nrcpt", 3)]
        rcpts = [("prog@localhost", 0, "|/usr/bin/touch " + marker, owner.pw_uid),
                 ("other@localhost", 0, real, owner.pw_uid),
                 ("prog@localhost", 0, real, 1)]
        for i, (addr, index, target, uid) in enumerate(rcpts):
            req += [("rcpt_%d" % i, addr), ("rcpt_%d_index" % i, index),
                    ("rcpt_%d_orcpt" % i, ""), ("rcpt_%d_notify" % i, 0),
                    ("rcpt_%d_target" % i, target), ("rcpt_%d_uid" % i, uid),
                    ("rcpt_%d_gid" % i, uid)]
        with fh.AttrClient(instance.socket_path("pipe"), timeout=30) as c:
            rep = c.request(req)
        assert rep["status_0"] == 4 and rep["reply_0"] == "alias target not confirmed"
        assert rep["status_1"] == 4 and rep["reply_1"] == "alias target not confirmed"
        assert rep["status_2"] == 0, rep
        assert not os.path.exists(marker)
        with open(os.path.join(out, "forged.uid")) as f:
            assert int(f.read()) == owner.pw_uid
        instance.wait_for_log(r"%s: refused: \"\|/usr/bin/touch .*\" is not a permitted "
                              r"target of <prog@localhost>" % qid)
        instance.wait_for_log(r"%s: refused: recipient <other@localhost> is not recipient 0"
                              % qid)
    finally:
        close_agents(agents)


@pytest.mark.skipif(not fh.is_root(), reason="needs root to own files as others")
def test_hash_alias_table_owner_is_the_db_owner(instance):
    """hash: aliases (built by facteur-map -a, as newaliases does): the
    rights come from PATH.db, not from the source text."""
    owner = pipe_user()
    src = instance.write_file("etc/hashaliases",
                              'prog: "|%s/record hashprog"\n' % os.path.join(instance.dir, "bin"))
    r = fh.run_cmd([os.path.join(fh.BIN, "facteur-map"), "-a", "hash:" + src])
    assert r.returncode == 0, r.stderr
    os.chown(src + ".db", owner.pw_uid, owner.pw_gid)
    agents, out = pipe_instance(instance, "", params={"alias_maps": "hash:" + src})
    try:
        qid = queue_msg(instance, "s@example.org", ["prog@localhost"])
        trigger(instance)
        instance.wait_for_log(r"%s: removed" % qid)
        with open(os.path.join(out, "hashprog.uid")) as f:
            assert int(f.read()) == owner.pw_uid
    finally:
        close_agents(agents)
