"""facteur-conf as an administrator uses it, on temporary directories.

Runs bin/facteur-conf (directory from $FACTEUR_BIN, default ./bin) with -c on
a tmp_path: printing (-n, -d, -x, -h, names), errors with file and line,
unused-parameter warnings, atomic edits (-e, -X, -#) that keep comments,
concurrent editors, master.cf (-M) and main.cf(5) generation (-m).
Self-contained: only pytest's tmp_path and subprocess.
"""
import os
import stat
import subprocess

import pytest

BIN = os.environ.get("FACTEUR_BIN", "./bin")
CONF = os.path.join(BIN, "facteur-conf")


def run(*args, stdin=None, check=True):
    """Run facteur-conf; return (stdout, stderr, returncode)."""
    p = subprocess.run([CONF, *args], input=stdin, capture_output=True, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise AssertionError(f"facteur-conf {args} exited {p.returncode}: {p.stderr}")
    return p.stdout, p.stderr, p.returncode


def write(d, text, name="main.cf"):
    (d / name).write_text(text)


@pytest.fixture(autouse=True)
def need_binary():
    if not os.access(CONF, os.X_OK):
        pytest.fail(f"{CONF} not built (set FACTEUR_BIN)")


def test_n_prints_only_settings_sorted(tmp_path):
    write(tmp_path, "# comment\nrelayhost = [r.example]:587\nmyhostname = mx.example.org\n"
                    "mydestination = $myhostname,\n    localhost\n")
    out, err, _ = run("-c", str(tmp_path), "-n")
    assert out.splitlines() == [
        "mydestination = $myhostname, localhost",
        "myhostname = mx.example.org",
        "relayhost = [r.example]:587",
    ]
    assert err == ""


def test_x_expands_and_h_hides_names(tmp_path):
    write(tmp_path, "myhostname = mx.example.org\nmyorigin = $mydomain\n")
    out, _, _ = run("-c", str(tmp_path), "-x", "myorigin", "smtpd_banner")
    assert out.splitlines() == ["myorigin = example.org",
                                "smtpd_banner = mx.example.org ESMTP facteur"]
    out, _, _ = run("-c", str(tmp_path), "-h", "myorigin")
    assert out == "$mydomain\n"


def test_d_ignores_main_cf(tmp_path):
    write(tmp_path, "smtpd_timeout = 10s\n")
    out, _, _ = run("-c", str(tmp_path), "-d", "smtpd_timeout", "default_transport")
    assert out.splitlines() == ["smtpd_timeout = 300s", "default_transport = smtp"]
    out, _, _ = run("-c", str(tmp_path), "-d")
    lines = out.splitlines()
    assert len(lines) >= 150
    assert lines == sorted(lines, key=lambda l: l.split(" ")[0])
    assert "message_size_limit = 10240000" in lines


def test_all_parameters_printed(tmp_path):
    out, _, _ = run("-c", str(tmp_path))
    names = [l.split(" = ")[0].rstrip(" =") for l in out.splitlines()]
    assert "queue_directory" in names and "smtpd_milters" in names
    assert names == sorted(names)


def test_unknown_name_warns_exit_0(tmp_path):
    out, err, rc = run("-c", str(tmp_path), "no_such_parameter", "mail_owner")
    assert rc == 0
    assert out == "mail_owner = facteur\n"
    assert "facteur-conf: warning: unknown parameter: no_such_parameter" in err


def test_unused_parameter_warning_names_line(tmp_path):
    write(tmp_path, "relayhost = r\n\nmy_macro = x\nsmtpd_banner = $my_macro\nstray = 1\n")
    out, err, rc = run("-c", str(tmp_path), "-n")
    assert rc == 0
    assert f"warning: {tmp_path}/main.cf, line 5: unused parameter: stray=1" in err
    assert "my_macro" not in err
    assert "my_macro = x" in out.splitlines()     # a used macro is printed
    assert "stray" not in out


@pytest.mark.parametrize("text,line,msg", [
    ("relayhost = a\n\nthis is wrong\n", 3, "missing '=' after parameter name"),
    ("= x\n", 1, "missing parameter name before '='"),
    ("  indented = 1\n", 1, "line starts with white space"),
    ("a = 1\nsmtpd_timeout = 5x\n", 2, "parameter smtpd_timeout: invalid time value \"5x\""),
    ("smtpd_recipient_limit = 0\n", 1, "parameter smtpd_recipient_limit: value 0 is less"),
    ("smtpd_sasl_auth_enable = maybe\n", 1, "invalid boolean"),
    ("a = $b\nb = $a\n", 2, "expansion loop: $a -> $b -> $a"),
    ("smtpd_banner = ${x\n", 1, "unbalanced '{'"),
])
def test_bad_main_cf_names_file_and_line(tmp_path, text, line, msg):
    write(tmp_path, text)
    for args in (["-n"], [], ["mail_owner"], ["-M"]):
        out, err, rc = run("-c", str(tmp_path), *args, check=False)
        assert rc == 1, (args, out, err)
        assert f"{tmp_path}/main.cf, line {line}: " in err
        assert msg in err
        assert out == ""


def test_e_keeps_comments_and_replaces_in_place(tmp_path):
    original = ("# facteur main.cf\n"
                "#relayhost = commented\n"
                "relayhost = old.example\n"
                "   # a comment inside\n"
                "mydestination = a,\n"
                "    b,\n"
                "\tc\n"
                "\n"
                "# the end\n"
                "myorigin = $myhostname")            # no final newline
    write(tmp_path, original)
    os.chmod(tmp_path / "main.cf", 0o640)
    run("-c", str(tmp_path), "-e", "mydestination=x, y", "relayhost = [new]:25",
        "message_size_limit=20480000")
    text = (tmp_path / "main.cf").read_text()
    assert text == ("# facteur main.cf\n"
                    "#relayhost = commented\n"
                    "relayhost = [new]:25\n"
                    "   # a comment inside\n"
                    "mydestination = x, y\n"
                    "\n"
                    "# the end\n"
                    "myorigin = $myhostname\n"
                    "message_size_limit = 20480000\n")
    assert stat.S_IMODE(os.stat(tmp_path / "main.cf").st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["main.cf"]      # no temporary left
    out, _, _ = run("-c", str(tmp_path), "-h", "-x", "relayhost", "message_size_limit")
    assert out == "[new]:25\n20480000\n"


def test_e_creates_missing_main_cf(tmp_path):
    run("-c", str(tmp_path), "-e", "relayhost=r")
    assert (tmp_path / "main.cf").read_text() == "relayhost = r\n"


def test_e_rejects_bad_names(tmp_path):
    write(tmp_path, "relayhost = r\n")
    for arg in ("bad-name=1", "noequals", "=1"):
        _, err, rc = run("-c", str(tmp_path), "-e", arg, check=False)
        assert rc == 1, arg
    assert (tmp_path / "main.cf").read_text() == "relayhost = r\n"


def test_e_repairs_a_broken_file(tmp_path):
    write(tmp_path, "smtpd_timeout = soon\nrelayhost = r\n")
    run("-c", str(tmp_path), "-e", "smtpd_timeout=60s")
    out, _, _ = run("-c", str(tmp_path), "-n")
    assert out.splitlines() == ["relayhost = r", "smtpd_timeout = 60s"]


def test_X_removes_and_hash_comments_out(tmp_path):
    write(tmp_path, "# keep\nrelayhost = r\nmydestination = a,\n  b\nmyorigin = o\n")
    run("-c", str(tmp_path), "-X", "relayhost")
    run("-c", str(tmp_path), "-#", "mydestination")
    assert (tmp_path / "main.cf").read_text() == (
        "# keep\n#mydestination = a,\n#  b\nmyorigin = o\n")
    out, _, _ = run("-c", str(tmp_path), "-n")
    assert out == "myorigin = o\n"


def test_concurrent_edits_all_land(tmp_path):
    write(tmp_path, "# shared\n")
    procs = [subprocess.Popen([CONF, "-c", str(tmp_path), "-e", f"user_macro_{i}={i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(12)]
    for p in procs:
        assert p.wait(timeout=30) == 0
    text = (tmp_path / "main.cf").read_text()
    assert text.startswith("# shared\n")
    for i in range(12):
        assert f"user_macro_{i} = {i}\n" in text
    assert sorted(os.listdir(tmp_path)) == ["main.cf"]


def test_M_prints_folded_entries(tmp_path):
    write(tmp_path, "")
    write(tmp_path, "# services\n"
                    "smtp      inet  n       -       y       -       -       smtpd\n"
                    "submission inet n - y - - smtpd\n"
                    "  -o syslog_name=facteur/submission\n"
                    "# between\n"
                    "  -o smtpd_sasl_auth_enable=yes\n"
                    "smtp      unix  -       -       y       -       -       smtp\n",
          name="master.cf")
    out, _, _ = run("-c", str(tmp_path), "-M")
    assert out.splitlines() == [
        "smtp       inet  n       -       y       -       -       smtpd",
        "submission inet  n       -       y       -       -       smtpd "
        "-o syslog_name=facteur/submission -o smtpd_sasl_auth_enable=yes",
        "smtp       unix  -       -       y       -       -       smtp",
    ]
    out, _, _ = run("-c", str(tmp_path), "-M", "smtp/unix")
    assert out.splitlines() == ["smtp       unix  -       -       y       -       -       smtp"]
    out, _, _ = run("-c", str(tmp_path), "-M", "smtp")
    assert len(out.splitlines()) == 2


def test_M_bad_master_cf(tmp_path):
    write(tmp_path, "")
    write(tmp_path, "smtp inet n - y - - smtpd\nbroken line\n", name="master.cf")
    _, err, rc = run("-c", str(tmp_path), "-M", check=False)
    assert rc == 1
    assert f"{tmp_path}/master.cf, line 2" in err


def test_m_writes_man_page(tmp_path):
    pre = ".TH MAIN.CF 5\n.SH NAME\nmain.cf \\- test\n"
    out, _, _ = run("-m", stdin=pre)
    assert out.startswith(pre)
    assert ".SH PARAMETERS\n" in out
    assert "\n.TP\n.B smtpd_timeout\n(time; default: \\fB300s\\fR; range 1 to 3600 seconds)\n" in out
    assert out.count("\n.TP\n") >= 150


def test_o_override_wins(tmp_path):
    write(tmp_path, "relayhost = file\n")
    out, _, _ = run("-c", str(tmp_path), "-o", "relayhost=cmdline", "relayhost")
    assert out == "relayhost = cmdline\n"


def test_config_dir_from_environment(tmp_path):
    write(tmp_path, "relayhost = env\n")
    p = subprocess.run([CONF, "-n"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "FACTEUR_CONFIG_DIR": str(tmp_path)})
    assert p.returncode == 0
    assert p.stdout == "relayhost = env\n"


def test_missing_directory_is_an_error(tmp_path):
    _, err, rc = run("-c", str(tmp_path / "nope"), "-n", check=False)
    assert rc == 1
    assert f"configuration directory {tmp_path}/nope" in err
    out, _, rc = run("-c", str(tmp_path), "-n")              # no main.cf: defaults
    assert (rc, out) == (0, "")
